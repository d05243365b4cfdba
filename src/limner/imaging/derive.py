"""Derive responsive variants, a placeholder and compact previews from a master image."""

from __future__ import annotations

import hashlib
import os
from concurrent.futures import ThreadPoolExecutor

from PIL import Image

from .decode import DEFAULT_MAX_BYTES, DEFAULT_MAX_PIXELS, safe_open
from .encoders import (
    DEFAULT_SETTINGS,
    EXTENSIONS,
    MIME_TYPES,
    EncoderSettings,
    encode,
    settings_fingerprint,
    settings_version,
)
from .normalize import to_rgb
from .placeholders import (
    PLACEHOLDER_QUALITIES,
    Placeholder,
    blurhash_of,
    dominant_color_of,
    make_placeholder,
    scaled_height,
    widest_encodable,
    thumbhash_of,
)
from .provenance import Provenance, xmp_packet
from .results import Derived, Variant

DEFAULT_WIDTHS = (240, 480, 768, 1024, 1536, 2048)
DEFAULT_FORMATS = ("avif", "webp", "jpeg")




def plan_widths(source_width: int, widths: tuple[int, ...] = DEFAULT_WIDTHS) -> list[int]:
    """Target widths: those at least 1.25x smaller than the source, plus the source
    width itself (never upscaled).  A ratio of exactly 1.25 is kept."""
    if source_width < 1:
        raise ValueError("source_width must be positive")
    # source / w >= 5/4  <=>  4 * source >= 5 * w  (exact in integers)
    kept = {w for w in widths if 0 < w < source_width and 4 * source_width >= 5 * w}
    return sorted(kept | {source_width})


def variant_name(source_sha256: str, fmt: str, width: int, settings: EncoderSettings, xmp: bytes | None) -> str:
    """Deterministic ``<hash>-<width>.<ext>`` from everything that shapes the output bytes."""
    key = "|".join(
        (
            source_sha256,
            fmt,
            str(width),
            settings_fingerprint(fmt, settings),
            hashlib.sha256(xmp or b"").hexdigest(),
        )
    )
    return f"{hashlib.sha256(key.encode()).hexdigest()[:16]}-{width}.{EXTENSIONS[fmt]}"


def _downscale_chain(rgb: Image.Image, plan: list[int]) -> dict[int, Image.Image]:
    """Resize each planned width from the next larger one already made (cheaper than
    always starting from the master, visually indistinguishable with LANCZOS)."""
    sized: dict[int, Image.Image] = {}
    current = rgb
    for width in sorted(plan, reverse=True):
        if width != current.width:
            current = current.resize((width, scaled_height(width, rgb.size)), Image.Resampling.LANCZOS)
        sized[width] = current
    return sized


def derive_all(
    master: bytes,
    provenance: Provenance | None = None,
    *,
    widths: tuple[int, ...] = DEFAULT_WIDTHS,
    formats: tuple[str, ...] = DEFAULT_FORMATS,
    placeholder_width: int = 480,
    placeholder_format: str = "webp",
    placeholder_max_bytes: int = 100_000,
    settings: EncoderSettings = DEFAULT_SETTINGS,
    threads: int | None = None,
    max_bytes: int = DEFAULT_MAX_BYTES,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    image: Image.Image | None = None,
) -> Derived:
    """Decode ``master`` once and produce every width x format variant plus previews. ``image``: ``master``
    already decoded by :func:`~limner.imaging.decode.safe_open` (it is not changed).

    ``threads`` is how many variants are encoded concurrently inside this call
    (default: CPU count).  Use ``threads=1`` when calling from a process pool that
    already has one worker per core.  Output bytes do not depend on ``threads``.
    """
    for fmt in formats:
        if fmt not in EXTENSIONS:
            raise ValueError(f"unsupported output format {fmt!r}")
    im = image if image is not None else safe_open(master, max_bytes=max_bytes, max_pixels=max_pixels)
    icc = _rgb_icc_profile(im)
    rgb = to_rgb(im)
    del im
    # the widest variant is the master's own width, unless a side is past what WebP encodes: then narrower
    plan = plan_widths(widest_encodable(rgb.size), widths)
    sized = _downscale_chain(rgb, plan)
    xmp = xmp_packet(provenance) if provenance is not None else None
    source_sha = hashlib.sha256(master).hexdigest()

    jobs = [(w, fmt) for w in sorted(plan, reverse=True) for fmt in formats]  # biggest first

    def encode_job(job: tuple[int, str]) -> Variant:
        width, fmt = job
        data = encode(sized[width], fmt, settings, xmp=xmp, icc_profile=icc)
        return Variant(
            width=width,
            height=sized[width].height,
            format=fmt,
            mime=MIME_TYPES[fmt],
            name=variant_name(source_sha, fmt, width, settings, xmp),
            sha256=hashlib.sha256(data).hexdigest(),
            data=data,
        )

    previews = rgb if rgb.width <= 256 else sized[min(w for w in plan if w >= 256)]
    summaries = (blurhash_of, thumbhash_of, dominant_color_of)
    workers = max(1, threads if threads is not None else _usable_cpus())
    if workers == 1:
        variants = [encode_job(job) for job in jobs]
        blur, thumb, colour = (summary(previews) for summary in summaries)
    else:
        with ThreadPoolExecutor(max_workers=workers) as pool:  # codecs release the GIL
            variant_futures = [pool.submit(encode_job, job) for job in jobs]
            summary_futures = [pool.submit(summary, previews) for summary in summaries]
            variants = [f.result() for f in variant_futures]
            blur, thumb, colour = (f.result() for f in summary_futures)

    placeholder_width = min(placeholder_width, max(plan))
    placeholder = _reuse_placeholder(variants, placeholder_width, placeholder_format, placeholder_max_bytes, settings)
    if placeholder is None:
        base = sized[min((w for w in plan if w >= placeholder_width), default=max(plan))]
        placeholder = make_placeholder(
            base, width=placeholder_width, fmt=placeholder_format, max_bytes=placeholder_max_bytes, xmp=xmp,
            settings=settings,
        )

    variants.sort(key=lambda v: (v.width, formats.index(v.format)))
    return Derived(
        width=rgb.width,
        height=rgb.height,
        variants=tuple(variants),
        placeholder=placeholder,
        blurhash=blur,
        thumbhash=thumb,
        dominant_color=colour,
        settings_version=settings_version(settings),
    )


def _usable_cpus() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def _rgb_icc_profile(im: Image.Image) -> bytes | None:
    """The master's ICC profile, only if it describes RGB data (a CMYK or gray
    profile would be wrong once the pixels are converted to RGB)."""
    icc = im.info.get("icc_profile")
    return icc if icc and icc[16:20] == b"RGB " else None


def _reuse_placeholder(
    variants: list[Variant], width: int, fmt: str, max_bytes: int, settings: EncoderSettings
) -> Placeholder | None:
    """The matching variant *is* make_placeholder's first attempt when its quality is
    the first rung of the ladder, so reuse it instead of encoding again."""
    quality = settings.for_format(fmt).get("quality") if fmt in EXTENSIONS else None
    if quality != PLACEHOLDER_QUALITIES[0]:
        return None
    for v in variants:
        if v.width == width and v.format == fmt and len(v.data) <= max_bytes:
            return Placeholder(data=v.data, format=fmt, width=v.width, height=v.height, quality=quality)
    return None
