"""Benchmark limner.imaging.derive_all: time, and bytes per quality.

Run:  python bench/bench_imaging.py [-n 10] [--rounds 3] [--size 1024] [--ab]
      python bench/bench_imaging.py --skip-timing --eleventy      (quality table only, with eleventy-img)
      python bench/bench_imaging.py --skip-timing --skip-quality --compare --eleventy [--formats avif]
      (setting overrides: --avif-quality/--avif-speed/--avif-subsampling/--avif-advanced "k=v,..."/
       --webp-quality/--webp-method/--jpeg-quality; --ab also times limner 0.1's settings, interleaved)

Timing (skipped with --skip-timing) measures (1) one process, one image at a time
(derive_all with its default in-call thread pool), reporting median and p95 ms per
image, and (2) a 2-worker ProcessPoolExecutor over 2*N images with threads=1 per
call, reporting ms per image of throughput.  The pool is warmed up (one image per
worker) before timing.  Everything is repeated for --rounds rounds; because the
machine may be shared, the table shows each measure's least-contended ("best")
round and its median over rounds, and PASS/FAIL is judged on the best round.  CPU
ms/image is the process CPU time of one derive_all call (all its threads).

Quality (skipped with --skip-quality) encodes every planned width x format of the
synthetic image and of real photographs shipped inside scikit-image's wheel
(skimage.data: astronaut, coffee, chelsea, rocket, motorcycle_left; never fetched;
pixels only, their ICC/XMP dropped so that both encoders' bytes are image data)
exactly as derive_all does (same LANCZOS downscale chain, same settings, no XMP),
and reports bytes, SSIMULACRA2 (the `ssimulacra2` package, against the downscaled
source at that width) and the CPU ms of that one encode.  Needs the `bench` extra:
pip install -e '.[bench]'.

--eleventy also encodes the same downscaled PNGs with eleventy-img "tuned" (sharp,
AVIF effort 2, 4:2:0; WebP/JPEG at eleventy-img's defaults) through
bench/eleventy/encode.mjs (npm ci --prefix bench/eleventy first) and scores its
outputs with the same SSIMULACRA2 code.  AVIF is also encoded from the full-size
master, resized by sharp, as eleventy-img does in a site build ("11ty resized").

--compare sweeps encoder settings (CANDIDATES below) over a range of qualities on
each image's largest width and 480 px, and reports for each setting the bytes at
the SSIMULACRA2 of the reference (eleventy-img's output with --eleventy, otherwise
the current defaults), interpolating log(bytes), quality and CPU ms linearly in the
score between the two sweep points around it.  All bytes-vs-score pairs go to
bench/results/imaging-compare.csv.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import math
import os
import platform
import shutil
import statistics
import subprocess
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import PIL
from _common import machine, table
from PIL import Image, ImageDraw, ImageFilter, features

from limner.imaging import DEFAULT_SETTINGS, EncoderSettings, Provenance, derive_all
from limner.imaging.decode import safe_open
from limner.imaging.derive import DEFAULT_FORMATS, DEFAULT_WIDTHS, _downscale_chain, plan_widths
from limner.imaging.encoders import codec_versions, encode
from limner.imaging.normalize import to_rgb

SINGLE_TARGET_MS = 500.0
POOL_TARGET_MS = 350.0
POOL_WORKERS = 2

BENCH_DIR = Path(__file__).resolve().parent
ELEVENTY_DIR = BENCH_DIR / "eleventy"
RESULTS_DIR = BENCH_DIR / "results"
PHOTOS = ("astronaut.png", "coffee.png", "chelsea.png", "rocket.jpg", "motorcycle_left.png")
"""Colour photographs inside scikit-image's wheel (skimage/data/), read from disk, never downloaded."""

QUALITIES = {"avif": (40, 46, 52, 58, 64, 70), "webp": (60, 70, 80, 90), "jpeg": (60, 70, 80, 90)}
"""Quality sweep of --compare (override with --qualities)."""

_DCT_ONLY = (("use-intra-dct-only", "1"), ("enable-smooth-intra", "0"))
_SSIMU2 = (*_DCT_ONLY, ("tune", "ssimulacra2"))
V0_1_SETTINGS = replace(DEFAULT_SETTINGS, avif_quality=50, avif_speed=8, avif_small_speed=8, avif_subsampling="4:2:0",
                        avif_advanced=_DCT_ONLY, webp_quality=80, webp_method=2, jpeg_quality=80)
"""limner 0.1's encoder settings (before issue #7 part 5), for --ab."""

CANDIDATES: list[tuple[str, str, dict]] = [
    # (format, label, EncoderSettings fields); quality is swept.  libavif picks tune=iq
    # by default with this libaom; "dct" = use-intra-dct-only=1 + enable-smooth-intra=0.
    ("avif", "v0.1: s8 4:2:0 dct", {"avif_speed": 8, "avif_subsampling": "4:2:0", "avif_advanced": _DCT_ONLY}),
    ("avif", "s8 4:2:0", {"avif_speed": 8, "avif_subsampling": "4:2:0", "avif_advanced": ()}),
    ("avif", "s7 4:2:0 dct", {"avif_speed": 7, "avif_subsampling": "4:2:0", "avif_advanced": _DCT_ONLY}),
    ("avif", "s7 4:2:0", {"avif_speed": 7, "avif_subsampling": "4:2:0", "avif_advanced": ()}),
    ("avif", "s9 4:2:0", {"avif_speed": 9, "avif_subsampling": "4:2:0", "avif_advanced": ()}),
    ("avif", "s8 4:2:0 dct tune=ssim", {"avif_speed": 8, "avif_subsampling": "4:2:0", "avif_advanced": (*_DCT_ONLY, ("tune", "ssim"))}),
    ("avif", "s8 4:2:0 dct tune=ssimulacra2", {"avif_speed": 8, "avif_subsampling": "4:2:0", "avif_advanced": _SSIMU2}),
    ("avif", "s8 4:2:2 dct tune=ssimulacra2", {"avif_speed": 8, "avif_subsampling": "4:2:2", "avif_advanced": _SSIMU2}),
    ("avif", "s8 4:4:4 dct", {"avif_speed": 8, "avif_subsampling": "4:4:4", "avif_advanced": _DCT_ONLY}),
    ("avif", "s8 4:4:4 dct tune=ssimulacra2", {"avif_speed": 8, "avif_subsampling": "4:4:4", "avif_advanced": _SSIMU2}),
    ("avif", "s8 4:4:4 dct tune=ssimulacra2 enable-angle-delta=0",
     {"avif_speed": 8, "avif_subsampling": "4:4:4", "avif_advanced": (*_SSIMU2, ("enable-angle-delta", "0"))}),
    ("avif", "s8 4:4:4 tune=ssimulacra2 (smooth + all transforms)",
     {"avif_speed": 8, "avif_subsampling": "4:4:4", "avif_advanced": (("tune", "ssimulacra2"),)}),
    ("webp", "method 1", {"webp_method": 1}),
    ("webp", "method 2", {"webp_method": 2}),
    ("webp", "method 3", {"webp_method": 3}),
    ("webp", "method 4", {"webp_method": 4}),
    ("webp", "method 6", {"webp_method": 6}),
    ("jpeg", "progressive optimised", {"jpeg_progressive": True, "jpeg_optimize": True}),
    ("jpeg", "baseline optimised", {"jpeg_progressive": False, "jpeg_optimize": True}),
]


def detailed_png(size: int = 1024, seed: int = 7) -> bytes:
    """A busy, photo-like image: gradients, fractal texture, hard-edged shapes,
    thin lines and film grain -- far from trivially compressible (~2 MB as PNG)."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:size, 0:size].astype(np.float32) / size
    base = np.stack([200 * x + 30, 120 + 100 * np.sin(5 * y + 2 * x), 220 * (1 - y) + 20 * np.cos(11 * x)], -1)
    texture = np.zeros((size, size, 3), np.float32)
    amplitude = 60.0
    for cells in (4, 8, 16, 32, 64, 128, 256):  # octaves of smooth value noise
        grid = (rng.random((cells, cells, 3)) * 255).astype(np.uint8)
        up = Image.fromarray(grid, "RGB").resize((size, size), Image.Resampling.BICUBIC)
        texture += (np.asarray(up, np.float32) / 255 - 0.5) * amplitude
        amplitude *= 0.62
    grain = rng.normal(0, 6, (size, size, 3))
    im = Image.fromarray(np.clip(base + texture + grain, 0, 255).astype(np.uint8), "RGB")
    draw = ImageDraw.Draw(im)
    for _ in range(40):
        x0, y0 = (int(v) for v in rng.integers(0, size, 2))
        w, h = (int(v) for v in rng.integers(size // 40, size // 5, 2))
        colour = tuple(int(c) for c in rng.integers(0, 256, 3))
        if rng.random() < 0.5:
            draw.ellipse([x0, y0, x0 + w, y0 + h], fill=colour, outline=(20, 20, 20), width=3)
        else:
            draw.rectangle([x0, y0, x0 + w, y0 + h], fill=colour)
    for _ in range(150):
        a, b = (tuple(int(v) for v in rng.integers(0, size, 2)) for _ in range(2))
        draw.line([a, b], fill=tuple(int(c) for c in rng.integers(0, 256, 3)), width=int(rng.integers(1, 5)))
    im = im.filter(ImageFilter.GaussianBlur(0.6))
    noisy = np.asarray(im, np.float32) + rng.normal(0, 3, (size, size, 3))
    out = io.BytesIO()
    Image.fromarray(np.clip(noisy, 0, 255).astype(np.uint8), "RGB").save(out, "PNG")
    return out.getvalue()


PROVENANCE = Provenance(
    entry_id="bench-0001",
    title="Benchmark \u2014 detailed scene",
    prompt='A "busy" market at dusk <lanterns & rain>, \u05e9\u05d5\u05e7 \u05d1\u05e2\u05e8\u05d1 \U0001f3ee',
    model="bench-model",
    provider="bench",
    seed=1234,
    alt="A detailed synthetic benchmark image",
    created="2025-01-01T00:00:00Z",
)


def _derive(args: tuple[bytes, EncoderSettings, int | None]) -> tuple[int, float]:
    """Run one derive; return total variant bytes and the CPU seconds it used (all threads)."""
    master, settings, threads = args
    cpu = time.process_time()
    derived = derive_all(master, PROVENANCE, settings=settings, threads=threads)
    return sum(len(v.data) for v in derived.variants), time.process_time() - cpu


def _percentile(values: list[float], pct: float) -> float:
    return float(np.percentile(values, pct))


def _one_round(pool: ProcessPoolExecutor, master: bytes, settings: EncoderSettings, opts) -> dict:
    single, single_cpu = [], []
    for _ in range(opts.n):
        start = time.perf_counter()
        total_bytes, cpu = _derive((master, settings, opts.threads))
        single.append((time.perf_counter() - start) * 1000)
        single_cpu.append(cpu * 1000)
    jobs = [(master, settings, 1)] * (2 * opts.n)
    start = time.perf_counter()
    results = list(pool.map(_derive, jobs))
    pool_ms = (time.perf_counter() - start) * 1000 / len(jobs)
    return {
        "bytes": total_bytes,
        "single_median": statistics.median(single),
        "single_p95": _percentile(single, 95),
        "single_cpu": statistics.median(single_cpu),
        "pool_ms": pool_ms,
        "pool_cpu": statistics.median(cpu * 1000 for _, cpu in results),
    }


def machine_lines() -> list[str]:
    versions = codec_versions()
    return [
        f"platform : {platform.platform()}",
        f"cpu      : {platform.processor() or platform.machine()}, os.cpu_count()={os.cpu_count()}, "
        f"usable={len(os.sched_getaffinity(0)) if hasattr(os, 'sched_getaffinity') else '?'}",
        f"python   : {sys.version.split()[0]} ({platform.python_implementation()})",
        f"pillow   : {PIL.__version__}; libavif {features.version('avif')} {versions.get('avif_codecs', '')}; "
        f"libwebp {features.version('webp')}; libjpeg-turbo {features.version_feature('libjpeg_turbo')}; "
        f"zlib {features.version('zlib')}",
    ]




# --- sources -------------------------------------------------------------------------


@dataclass
class Source:
    """A master image and its downscale chain, exactly as derive_all makes it."""

    name: str
    master: bytes
    sized: dict[int, Image.Image]

    @property
    def width(self) -> int:
        return max(self.sized)


def make_source(name: str, master: bytes, widths: tuple[int, ...] = DEFAULT_WIDTHS) -> Source:
    rgb = to_rgb(safe_open(master))
    return Source(name, master, _downscale_chain(rgb, plan_widths(rgb.width, widths)))


def _png(im: Image.Image, level: int = 6) -> bytes:
    out = io.BytesIO()
    im.save(out, "PNG", compress_level=level)
    return out.getvalue()


def photo_masters() -> dict[str, bytes]:
    """PHOTOS as RGB PNG masters, read from the installed scikit-image package."""
    try:
        from importlib.resources import files

        root = files("skimage.data")
    except ModuleNotFoundError:
        print("note     : scikit-image is not installed (pip install -e '.[bench]'): synthetic image only")
        return {}
    masters = {}
    for filename in PHOTOS:
        path = root / filename
        if not path.is_file():  # never fetched: only what the wheel ships
            print(f"note     : skimage/data/{filename} not in this scikit-image install, skipped")
            continue
        with Image.open(io.BytesIO(path.read_bytes())) as im:
            # Pixels only: no ICC/XMP, so that both encoders' bytes are image data.
            masters[filename.rsplit(".", 1)[0]] = _png(Image.fromarray(np.asarray(im.convert("RGB"))))
    return masters


# --- SSIMULACRA2 ---------------------------------------------------------------------


class Reference:
    """SSIMULACRA2 against one reference image, using the `ssimulacra2` package's own
    functions (colour transform, blur, SSIM and edge maps, weights) but computing the
    reference side of every scale once instead of once per comparison.  Gives the same
    score as ssimulacra2.compute_ssimulacra2 (checked by check_scorer)."""

    def __init__(self, im: Image.Image):
        from ssimulacra2 import ssimulacra2 as s2

        self._s2 = s2
        self.size = im.size
        linear = s2.srgb_to_linear(np.asarray(im.convert("RGB"), dtype=np.float64))
        self.scales = []
        for scale in range(s2.kNumScales):
            xyb = self._xyb(linear)
            if xyb.shape[0] < 8 or xyb.shape[1] < 8:
                break
            self.scales.append((xyb, s2.blur_image(xyb * xyb), s2.blur_image(xyb)))
            if scale < s2.kNumScales - 1:
                linear = s2.downsample(linear, 2, 2)

    def _xyb(self, linear: np.ndarray) -> np.ndarray:
        return self._s2.make_positive_xyb(self._s2.linear_rgb_to_xyb(linear))

    def score_image(self, im: Image.Image) -> float:
        s2 = self._s2
        if im.size != self.size:
            raise ValueError(f"size {im.size} != reference {self.size}")
        linear = s2.srgb_to_linear(np.asarray(im.convert("RGB"), dtype=np.float64))
        msssim = s2.Msssim()
        for index, (img1, sigma11, mu1) in enumerate(self.scales):
            if index:
                linear = s2.downsample(linear, 2, 2)
            img2 = self._xyb(linear)
            scale = s2.MsssimScale()
            mu2 = s2.blur_image(img2)
            scale.avg_ssim = s2.ssim_map(mu1, mu2, sigma11, s2.blur_image(img2 * img2), s2.blur_image(img1 * img2))
            scale.avg_edgediff = s2.edge_diff_map(img1, mu1, img2, mu2)
            msssim.scales.append(scale)
        return float(msssim.score())

    def score(self, data: bytes) -> float:
        with Image.open(io.BytesIO(data)) as im:
            return self.score_image(im)


def check_scorer(im: Image.Image, data: bytes) -> float:
    """Reference(...).score must equal the package's compute_ssimulacra2; returns it."""
    from ssimulacra2 import compute_ssimulacra2

    expected = compute_ssimulacra2(io.BytesIO(_png(im, 1)), io.BytesIO(data))
    got = Reference(im).score(data)
    if not math.isclose(got, expected, rel_tol=0, abs_tol=1e-9):
        raise SystemExit(f"cached SSIMULACRA2 {got!r} != ssimulacra2.compute_ssimulacra2 {expected!r}")
    return got


# --- encoding ------------------------------------------------------------------------


def timed_encode(im: Image.Image, fmt: str, settings: EncoderSettings, quality: int | None = None) -> tuple[bytes, float]:
    """encode() as derive_all calls it (minus XMP/ICC); returns the bytes and CPU ms.
    Every encode is single-threaded (AVIF max_threads=1), so process CPU time is its cost."""
    cpu = time.process_time()
    data = encode(im, fmt, settings, quality=quality)
    return data, (time.process_time() - cpu) * 1000


def quality_of(settings: EncoderSettings, fmt: str) -> int:
    return settings.for_format(fmt)["quality"]


# --- eleventy-img --------------------------------------------------------------------


def run_eleventy(sources: list[Source], formats: tuple[str, ...]) -> dict:
    """Encode every source width with eleventy-img tuned; {(source, width, fmt, resized): record}."""
    script = ELEVENTY_DIR / "encode.mjs"
    if not (ELEVENTY_DIR / "node_modules" / "@11ty" / "eleventy-img").is_dir():
        raise SystemExit("eleventy-img is not installed: run `npm ci --prefix bench/eleventy` (needs node >= 20)")
    if shutil.which("node") is None:
        raise SystemExit("node is not on PATH: --eleventy needs Node.js >= 20")
    out = ELEVENTY_DIR / "out"
    shutil.rmtree(out, ignore_errors=True)
    (out / "src").mkdir(parents=True)
    jobs, keys = [], {}
    for source in sources:
        master_path = out / "src" / f"{source.name}.png"
        master_path.write_bytes(_png(source.sized[source.width], 1))
        for width, im in sorted(source.sized.items()):
            path = out / "src" / f"{source.name}-{width}.png"
            if width != source.width:
                path.write_bytes(_png(im, 1))
            else:
                path = master_path
            name = f"{source.name}-{width}"
            jobs.append({"name": name, "input": str(path), "width": width, "formats": list(formats)})
            keys[name] = (source.name, width, False)
            if width != source.width and "avif" in formats:
                jobs.append({"name": f"{name}-resized", "input": str(master_path), "width": width, "formats": ["avif"]})
                keys[f"{name}-resized"] = (source.name, width, True)
    jobs_path = out / "jobs.json"
    jobs_path.write_text(json.dumps({"outDir": str(out / "img"), "jobs": jobs}, indent=1))
    print(f"eleventy : node {script.relative_to(BENCH_DIR.parent)} {jobs_path.relative_to(BENCH_DIR.parent)}")
    done = subprocess.run(["node", str(script), str(jobs_path)], capture_output=True, text=True)
    if done.returncode:
        raise SystemExit(f"eleventy-img failed ({done.returncode}):\n{done.stdout}{done.stderr}")
    print(f"eleventy : {done.stdout.strip()}")
    report = json.loads((out / "img" / "results.json").read_text())
    records = {}
    for record in report["results"]:
        source, width, resized = keys[record["name"]]
        if record["width"] != width:
            raise SystemExit(f"eleventy-img wrote {record['width']} px for {record['name']}")
        record["data"] = Path(record["path"]).read_bytes()
        records[(source, width, record["format"], resized)] = record
    records["versions"] = report["versions"]
    return records


# --- quality table -------------------------------------------------------------------


def quality_report(sources: list[Source], settings: EncoderSettings, formats: tuple[str, ...], eleventy: dict | None) -> None:
    rows, totals = [], {}
    for source in sources:
        for width, im in sorted(source.sized.items()):
            ref = Reference(im)
            for fmt in formats:
                data, ms = timed_encode(im, fmt, settings)
                score = ref.score(data)
                row = [source.name, str(width), fmt, f"{len(data):,}", f"{score:.2f}", f"{ms:.0f}"]
                total = totals.setdefault(fmt, {"n": 0, "bytes": 0, "score": 0.0, "ms": 0.0, "e_bytes": 0, "e_score": 0.0, "e_ms": 0.0})
                total["n"] += 1
                total["bytes"] += len(data)
                total["score"] += score
                total["ms"] += ms
                if eleventy is not None:
                    theirs = eleventy[(source.name, width, fmt, False)]
                    their_score = ref.score(theirs["data"])
                    total["e_bytes"] += theirs["bytes"]
                    total["e_score"] += their_score
                    total["e_ms"] += theirs["wall_ms"]
                    row += [f"{theirs['bytes']:,}", f"{their_score:.2f}", f"{theirs['wall_ms']:.0f}",
                            f"{len(data) / theirs['bytes'] - 1:+.1%}", f"{score - their_score:+.2f}"]
                    resized = eleventy.get((source.name, width, fmt, True))
                    row += [f"{resized['bytes']:,} / {ref.score(resized['data']):.2f}" if resized else ""]
                rows.append(row)
    header = ["image", "width", "format", "bytes", "SSIMULACRA2", "CPU ms"]
    if eleventy is not None:
        header += ["11ty bytes", "11ty SSIMULACRA2", "11ty wall ms", "bytes vs 11ty", "score vs 11ty", "11ty resized: bytes / score"]
    print()
    title = "Bytes and SSIMULACRA2 per variant (limner settings as above" + ("; 11ty = eleventy-img tuned)" if eleventy else ")")
    print(table(title, header, rows))
    summary = []
    for fmt, t in totals.items():
        line = [fmt, str(t["n"]), f"{t['bytes']:,}", f"{t['score'] / t['n']:.2f}", f"{t['ms']:.0f}"]
        if eleventy is not None:
            line += [f"{t['e_bytes']:,}", f"{t['e_score'] / t['n']:.2f}", f"{t['e_ms']:.0f}", f"{t['bytes'] / t['e_bytes'] - 1:+.1%}"]
        summary.append(line)
    header = ["format", "variants", "bytes (sum)", "mean SSIMULACRA2", "CPU ms (sum)"]
    if eleventy is not None:
        header += ["11ty bytes (sum)", "11ty mean SSIMULACRA2", "11ty wall ms (sum)", "bytes vs 11ty"]
    print()
    print(table("Totals over all images and widths", header, summary))


# --- settings comparison -------------------------------------------------------------


def at_score(points: list[tuple[int, float, int, float]], target: float) -> tuple[float, float, float, bool]:
    """(quality, score, bytes, ms) sweep points -> (quality, bytes, ms, extrapolated) at ``target``:
    log(bytes), quality and ms linear in the score between the two neighbouring qualities."""
    points = sorted(points)
    pair = next(((a, b) for a, b in zip(points, points[1:]) if min(a[1], b[1]) <= target <= max(a[1], b[1])), None)
    extrapolated = pair is None
    if pair is None:
        pair = (points[0], points[1]) if target < points[0][1] else (points[-2], points[-1])
    (q0, s0, b0, m0), (q1, s1, b1, m1) = pair
    f = 0.0 if s1 == s0 else (target - s0) / (s1 - s0)
    return q0 + f * (q1 - q0), math.exp(math.log(b0) + f * (math.log(b1) - math.log(b0))), m0 + f * (m1 - m0), extrapolated


def compare_report(sources: list[Source], base: EncoderSettings, formats: tuple[str, ...], eleventy: dict | None,
                   qualities: dict[str, tuple[int, ...]]) -> None:
    cases = []  # (source name, width, image, Reference)
    for source in sources:
        for width in sorted({source.width, 480} & set(source.sized), reverse=True):
            cases.append((source.name, width, source.sized[width], Reference(source.sized[width])))
    RESULTS_DIR.mkdir(exist_ok=True)
    csv_path = RESULTS_DIR / "imaging-compare.csv"
    records = []
    for fmt in formats:
        # Reference point per case: eleventy-img's output of this format, else the current defaults.
        targets = {}
        for name, width, im, ref in cases:
            if eleventy is not None:
                data = eleventy[(name, width, fmt, False)]["data"]
                targets[(name, width)] = (ref.score(data), len(data), eleventy[(name, width, fmt, False)]["wall_ms"])
            else:
                data, ms = timed_encode(im, fmt, base)
                targets[(name, width)] = (ref.score(data), len(data), ms)
            records.append({"format": fmt, "setting": "11ty tuned" if eleventy else "defaults", "quality": "",
                            "image": name, "width": width, "bytes": targets[(name, width)][1],
                            "ssimulacra2": round(targets[(name, width)][0], 4), "ms": round(targets[(name, width)][2], 1)})
        ref_label = "eleventy-img tuned" if eleventy is not None else f"current defaults (q{quality_of(base, fmt)})"
        rows, per_case_rows = [], []
        for cand_fmt, label, fields in CANDIDATES:
            if cand_fmt != fmt:
                continue
            # a candidate's speed applies at every width (the small-width speed is compared on its own)
            settings = replace(base, **{"avif_small_speed": fields.get("avif_speed", base.avif_speed), **fields})
            per_case = {}
            for quality in qualities[fmt]:
                for name, width, im, ref in cases:
                    data, ms = timed_encode(im, fmt, settings, quality)
                    score = ref.score(data)
                    per_case.setdefault((name, width), []).append((quality, score, len(data), ms))
                    records.append({"format": fmt, "setting": label, "quality": quality, "image": name, "width": width,
                                    "bytes": len(data), "ssimulacra2": round(score, 4), "ms": round(ms, 1)})
            ratios, qs, ms_total, extrapolated, headline = [], [], 0.0, 0, ""
            per_case_rows.append([label])
            for (name, width), points in per_case.items():
                score, ref_bytes, _ = targets[(name, width)]
                q, nbytes, ms, extra = at_score(points, score)
                per_case_rows[-1].append(f"{nbytes / ref_bytes - 1:+.1%}{'*' if extra else ''} q{q:.0f}")
                ratios.append(nbytes / ref_bytes)
                qs.append(q)
                ms_total += ms
                extrapolated += extra
                if (name, width) == (cases[0][0], cases[0][1]):
                    headline = f"{nbytes / 1000:.1f} KB ({nbytes / ref_bytes - 1:+.1%})"
            gmean = math.exp(statistics.fmean(math.log(r) for r in ratios))
            marker = " (default)" if all(getattr(settings, k) == getattr(DEFAULT_SETTINGS, k) for k in fields) else ""
            rows.append([label + marker, f"{statistics.fmean(qs):.1f} ({min(qs):.0f}-{max(qs):.0f})", f"{gmean - 1:+.1%}",
                         f"{max(ratios) - 1:+.1%}", headline, f"{ms_total:.0f}", str(extrapolated)])
            print(f"  {fmt} {label}: done", file=sys.stderr, flush=True)
        ref_ms = sum(t[2] for t in targets.values())
        ref_bytes = cases and targets[(cases[0][0], cases[0][1])][1]
        header = ["setting", "quality at equal score: mean (range)", "bytes vs ref (geo-mean)", "worst case",
                  f"{cases[0][0]} {cases[0][1]}px (ref {ref_bytes / 1000:.1f} KB)", "CPU ms (sum)", "extrapolated"]
        print()
        print(table(f"{fmt.upper()}: bytes at the SSIMULACRA2 of {ref_label} over {len(cases)} image/width cases "
                    f"(ref CPU/wall ms sum {ref_ms:.0f})", header, rows))
        print()
        print(table(f"{fmt.upper()}: bytes vs {ref_label} at its SSIMULACRA2, and the quality that reaches it, per case "
                    "(* extrapolated)", ["setting"] + [f"{name} {width}" for name, width, _, _ in cases], per_case_rows))
    with csv_path.open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(records[0]))
        writer.writeheader()
        writer.writerows(records)
    print(f"\nbytes-vs-score pairs: {csv_path} ({len(records)} rows)")
    print("cases: " + ", ".join(f"{name} {width}px" for name, width, _, _ in cases))



# --- main ----------------------------------------------------------------------------


def _settings_from(opts) -> EncoderSettings:
    overrides = {
        key: value
        for key, value in (
            ("avif_quality", opts.avif_quality), ("avif_speed", opts.avif_speed),
            ("avif_subsampling", opts.avif_subsampling), ("webp_quality", opts.webp_quality),
            ("webp_method", opts.webp_method), ("jpeg_quality", opts.jpeg_quality),
        )
        if value is not None
    }
    if opts.avif_advanced is not None:
        pairs = [item.split("=", 1) for item in opts.avif_advanced.split(",") if item]
        overrides["avif_advanced"] = tuple((key.strip(), value.strip()) for key, value in pairs)
    return replace(DEFAULT_SETTINGS, **overrides)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-n", type=int, default=10, help="images in the single-process run (pool runs 2*N)")
    parser.add_argument("--rounds", type=int, default=3, help="repeat everything; report best and median round")
    parser.add_argument("--size", type=int, default=1024)
    parser.add_argument("--avif-quality", type=int, default=None)
    parser.add_argument("--avif-speed", type=int, default=None)
    parser.add_argument("--avif-subsampling", default=None)
    parser.add_argument("--avif-advanced", default=None, help='libaom options, e.g. "use-intra-dct-only=1,tune=ssim"')
    parser.add_argument("--webp-quality", type=int, default=None)
    parser.add_argument("--webp-method", type=int, default=None)
    parser.add_argument("--jpeg-quality", type=int, default=None)
    parser.add_argument("--threads", type=int, default=None, help="in-call threads for the single-process run")
    parser.add_argument("--skip-timing", action="store_true", help="no derive_all timing")
    parser.add_argument("--ab", action="store_true", help="also time limner 0.1's settings, interleaved")
    parser.add_argument("--skip-quality", action="store_true", help="no bytes/SSIMULACRA2 table")
    parser.add_argument("--no-photos", action="store_true", help="synthetic image only")
    parser.add_argument("--formats", default=",".join(DEFAULT_FORMATS), help="formats of the quality table and --compare")
    parser.add_argument("--eleventy", action="store_true", help="also encode with eleventy-img tuned (bench/eleventy)")
    parser.add_argument("--compare", action="store_true", help="sweep encoder settings (CANDIDATES) at equal SSIMULACRA2")
    parser.add_argument("--qualities", default=None, help='sweep for --compare, e.g. "avif=40,50,60;webp=70,80"')
    opts = parser.parse_args()

    settings = _settings_from(opts)
    formats = tuple(f.strip() for f in opts.formats.split(",") if f.strip())
    qualities = dict(QUALITIES)
    for item in (opts.qualities or "").split(";"):
        if item.strip():
            fmt, values = item.split("=", 1)
            qualities[fmt.strip()] = tuple(int(v) for v in values.split(","))

    master = detailed_png(opts.size)
    print(f"machine  : {machine()}")
    print("\n".join(machine_lines()))
    print(f"image    : {opts.size}x{opts.size} PNG, {len(master):,} bytes; settings {settings}")

    ok = True
    if not opts.skip_timing:
        ok = timing_report(master, settings, opts)

    if opts.skip_quality and not opts.compare:
        return 0 if ok else 1
    try:
        import ssimulacra2  # noqa: F401
    except ModuleNotFoundError:
        print("\nnote     : the ssimulacra2 package is not installed (pip install -e '.[bench]'): no quality table")
        return 0 if ok else 1
    sources = [make_source(f"synthetic-{opts.size}", master)]
    if not opts.no_photos:
        sources += [make_source(name, data) for name, data in photo_masters().items()]
    print("images   : " + ", ".join(f"{s.name} {s.width}x{s.sized[s.width].height} ({sorted(s.sized)})" for s in sources))
    probe = sources[-1].sized[sources[-1].width]
    print(f"scorer   : ssimulacra2 {_version('ssimulacra2')} (cached reference side checked against "
          f"compute_ssimulacra2: {check_scorer(probe, encode(probe, 'jpeg', settings)):.4f} both)")
    eleventy = run_eleventy(sources, formats) if opts.eleventy else None
    if eleventy is not None:
        print("eleventy : " + ", ".join(f"{k} {v}" for k, v in eleventy["versions"].items())
              + "; AVIF options " + json.dumps({"effort": 2, "chromaSubsampling": "4:2:0"}))
    encode(probe, "avif", settings)  # codec initialisation outside the timed encodes
    start = time.perf_counter()
    if not opts.skip_quality:
        quality_report(sources, settings, formats, eleventy)
    if opts.compare:
        compare_report(sources, settings, formats, eleventy, qualities)
    print(f"\nquality/compare run: {time.perf_counter() - start:.0f} s; 1-min load average {os.getloadavg()[0]:.2f}")
    return 0 if ok else 1


def timing_report(master: bytes, settings: EncoderSettings, opts) -> bool:
    """derive_all timing; with --ab, the v0.1 settings run in the same rounds, interleaved."""
    runs = [("settings", settings)] + ([("v0.1", V0_1_SETTINGS)] if opts.ab else [])
    print(f"runs     : {opts.rounds} rounds x ({opts.n} single-process images + {2 * opts.n} pool images)"
          + (" for the settings above and for v0.1 (interleaved)" if opts.ab else ""))
    load_before = os.getloadavg()[0]
    for _, each in runs:
        _derive((master, each, opts.threads))  # warm-up: codec initialisation
    rounds: dict[str, list[dict]] = {label: [] for label, _ in runs}
    with ProcessPoolExecutor(max_workers=POOL_WORKERS) as pool:
        list(pool.map(_derive, [(master, settings, 1)] * POOL_WORKERS))  # warm both workers
        for _ in range(opts.rounds):
            for label, each in runs:
                rounds[label].append(_one_round(pool, master, each, opts))
    load_after = os.getloadavg()[0]

    ok = True
    for label, each in runs:
        measured = rounds[label]
        best = {key: min(r[key] for r in measured) for key in measured[0]}
        typical = {key: statistics.median(r[key] for r in measured) for key in measured[0]}
        print(f"\n{label}: variants per image {measured[0]['bytes']:,} bytes in total"
              + (f" ({each})" if label != "settings" else ""))
        print(f"{'measure':44s} {'best':>8s} {'median':>8s} {'target':>8s}  result (on best)")
        print("-" * 84)
        for name, key, target in (
            ("single process, median ms/image", "single_median", SINGLE_TARGET_MS),
            ("single process, p95 ms/image", "single_p95", None),
            ("single process, CPU ms/image", "single_cpu", None),
            (f"{POOL_WORKERS}-worker pool, ms/image throughput", "pool_ms", POOL_TARGET_MS),
            (f"{POOL_WORKERS}-worker pool, CPU ms/image", "pool_cpu", None),
        ):
            verdict = "-" if target is None else ("PASS" if best[key] <= target else "FAIL")
            if label == "settings":
                ok &= verdict != "FAIL"
            shown = f"<= {target:.0f}" if target else ""
            print(f"{name:44s} {best[key]:8.1f} {typical[key]:8.1f} {shown:>8s}  {verdict}")
    if opts.ab:
        print("\nsettings vs v0.1 (best rounds): " + ", ".join(
            f"{key} {min(r[key] for r in rounds['settings']) / min(r[key] for r in rounds['v0.1']) - 1:+.1%}"
            for key in ("single_median", "single_cpu", "pool_ms", "pool_cpu")))
    print(f"\n1-min load average: {load_before:.2f} before, {load_after:.2f} after. This machine is shared: "
          "'best' is each measure's least-contended round, 'median' across rounds.")
    return ok


def _version(package: str) -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(package)
    except PackageNotFoundError:
        return "not installed"


if __name__ == "__main__":
    raise SystemExit(main())
