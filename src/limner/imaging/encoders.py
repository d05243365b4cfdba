"""Encoder settings and the single place where variants are encoded."""

from __future__ import annotations

import hashlib
import io
import json
import logging
from dataclasses import asdict, dataclass
from functools import cache

import PIL
from PIL import Image, features

log = logging.getLogger("limner.imaging")

EXTENSIONS = {"avif": "avif", "webp": "webp", "jpeg": "jpg"}
MIME_TYPES = {"avif": "image/avif", "webp": "image/webp", "jpeg": "image/jpeg"}


@dataclass(frozen=True)
class EncoderSettings:
    """Encoder options for every variant.

    Tuned with bench/bench_imaging.py --compare --eleventy (docs/benchmarks-imaging.md):
    bytes at equal SSIMULACRA2 against eleventy-img "tuned" (sharp, AVIF effort 2 =
    libaom speed 7, 4:2:0) on a synthetic 1024 px image and five photographs, and CPU
    for the full variant set (2-core target: 350 ms per image from a 2-worker pool).

    * AVIF: libaom speed 8 with ``tune=ssimulacra2`` and 4:4:4 chroma, quality 44.
      The earlier 4:2:0 with libavif's default tune (``iq``) at quality 50 needed
      7.6% more bytes than eleventy-img for the same SSIMULACRA2 (12.7% more on the
      1024 px synthetic image); speed 7 closes that gap but needs 1.6-2.1x the AVIF
      CPU.  These settings need 0.9% fewer bytes over all cases (13.6% fewer on the
      1024 px synthetic image, -3.9% to +6.8% on single photographs) for about 3-12%
      more CPU per image.  Quality 44 keeps the photographs at eleventy-img's
      SSIMULACRA2 (on average) and above where quality 50 had them.
    * AVIF intra blocks stay restricted to the DCT (``use-intra-dct-only``) without
      the SMOOTH predictors (``enable-smooth-intra=0``): lifting both saves 1.4% bytes
      for about a third more AVIF CPU.
    * WebP uses ``method=2`` instead of 4: 0.5-0.6x the WebP CPU for +5.8% bytes at equal
      SSIMULACRA2; method 3 matches method 4's bytes but measured 1.8-2.4x
      method 2's CPU.
    """

    avif_quality: int = 44
    avif_speed: int = 8
    #: libaom speed for images at most ``avif_small_width`` wide: at 240 and 480 px speed 9 takes a
    #: quarter to a third of speed 8's CPU for about 6% more bytes (SSIMULACRA2 -2.9 at 240 px, -0.8 at
    #: 480 px; mean of four scikit-image photographs, docs/benchmarks-imaging.md); the small widths are
    #: a small share of a set's bytes but most of a small master's encoding time
    avif_small_speed: int = 9
    avif_small_width: int = 480
    avif_subsampling: str = "4:4:4"
    avif_advanced: tuple[tuple[str, str], ...] = (
        ("use-intra-dct-only", "1"),
        ("enable-smooth-intra", "0"),
        ("tune", "ssimulacra2"),
    )
    """libaom options passed through libavif."""
    webp_quality: int = 80
    webp_method: int = 2
    jpeg_quality: int = 80
    jpeg_progressive: bool = True
    jpeg_optimize: bool = True

    def for_format(self, fmt: str, width: int | None = None) -> dict:
        """Pillow ``save`` keyword arguments for ``fmt`` at ``width`` px (xmp/icc added by the caller)."""
        if fmt == "avif":
            # One encoder thread: output bytes depend on the AVIF thread count, and
            # derive_all parallelises across variants instead.
            small = width is not None and width <= self.avif_small_width
            opts = {
                "quality": self.avif_quality,
                "speed": self.avif_small_speed if small else self.avif_speed,
                "subsampling": self.avif_subsampling,
                "max_threads": 1,
            }
            advanced = accepted_avif_options(tuple(tuple(pair) for pair in self.avif_advanced))
            if advanced:
                opts["advanced"] = list(advanced)
            return opts
        if fmt == "webp":
            return {"quality": self.webp_quality, "method": self.webp_method}
        if fmt == "jpeg":
            return {
                "quality": self.jpeg_quality,
                "progressive": self.jpeg_progressive,
                "optimize": self.jpeg_optimize,
            }
        raise ValueError(f"unsupported output format {fmt!r}")


DEFAULT_SETTINGS = EncoderSettings()


@cache
def accepted_avif_options(pairs: tuple[tuple[str, str], ...]) -> tuple[tuple[str, str], ...]:
    """``pairs`` less the libaom options this Pillow build's libavif/libaom rejects.

    ``tune=ssimulacra2`` needs libaom 3.13 or newer; with an older codec every AVIF
    encode would fail, so such an option is dropped (once, with a warning) and the
    settings fingerprint names the options actually used."""
    if not pairs or not features.check("avif"):
        return pairs

    def accepted(options: tuple[tuple[str, str], ...]) -> bool:
        try:
            Image.new("RGB", (16, 16)).save(io.BytesIO(), "AVIF", speed=10, max_threads=1, advanced=list(options))
        except ValueError:
            return False
        return True

    if accepted(pairs):
        return pairs
    kept = tuple(pair for pair in pairs if accepted((pair,)))
    dropped = [f"{key}={value}" for key, value in pairs if (key, value) not in kept]
    log.warning("AVIF encoder rejects %s (libaom too old?); encoding without", ", ".join(dropped))
    return kept


@cache
def codec_versions() -> dict[str, str]:
    """Library versions that influence encoded bytes (part of every variant name)."""
    versions = {
        "pillow": PIL.__version__,
        "libavif": str(features.version("avif")),
        "libwebp": str(features.version("webp")),
        "libjpeg": str(features.version("jpg")),
        "libjpeg_turbo": str(features.version_feature("libjpeg_turbo")),
    }
    try:
        from PIL import _avif

        versions["avif_codecs"] = str(_avif.codec_versions())
    except (ImportError, AttributeError):  # pragma: no cover - depends on the Pillow build
        pass
    return versions


def settings_fingerprint(fmt: str, settings: EncoderSettings) -> str:
    """Canonical text for one format's settings plus codec versions."""
    opts = settings.for_format(fmt)
    if fmt == "avif":  # the speed for small images is part of it too
        opts["small"] = [settings.avif_small_width, settings.avif_small_speed]
    return json.dumps({"fmt": fmt, "opts": opts, "lib": codec_versions()}, sort_keys=True)


def settings_version(settings: EncoderSettings) -> str:
    """Short id that changes whenever settings or codec versions change."""
    blob = json.dumps({"settings": asdict(settings), "lib": codec_versions()}, sort_keys=True)
    return "s1-" + hashlib.sha256(blob.encode()).hexdigest()[:12]


def encode(
    im: Image.Image,
    fmt: str,
    settings: EncoderSettings = DEFAULT_SETTINGS,
    *,
    xmp: bytes | None = None,
    icc_profile: bytes | None = None,
    quality: int | None = None,
) -> bytes:
    """Encode ``im`` as ``fmt``; ``quality`` overrides the settings' quality."""
    opts = settings.for_format(fmt, im.width)
    if quality is not None:
        opts["quality"] = quality
    if xmp:
        opts["xmp"] = xmp
    if icc_profile:
        opts["icc_profile"] = icc_profile
    out = io.BytesIO()
    # Image.save stores its options on the Image object, so concurrent encodes of one
    # image would race; a private copy (a cheap memcpy) keeps threads independent.
    im.copy().save(out, fmt.upper(), **opts)
    return out.getvalue()
