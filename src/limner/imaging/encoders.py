"""Encoder settings and the single place where variants are encoded."""

from __future__ import annotations

import hashlib
import io
import json
from dataclasses import asdict, dataclass
from functools import cache

import PIL
from PIL import Image, features

EXTENSIONS = {"avif": "avif", "webp": "webp", "jpeg": "jpg"}
MIME_TYPES = {"avif": "image/avif", "webp": "image/webp", "jpeg": "image/jpeg"}


@dataclass(frozen=True)
class EncoderSettings:
    """Encoder options for every variant.

    Two speed knobs were tuned against bench/bench_imaging.py (2-core target: about
    500 ms per 1024px image in one process, 350 ms per image from a 2-worker pool):

    * AVIF keeps speed 8 but restricts intra blocks to the DCT transform
      (libaom ``use-intra-dct-only``) and skips the SMOOTH intra predictors
      (``enable-smooth-intra=0``): 25-40% less AVIF CPU for about +1% bytes at
      equal PSNR on detailed and on smooth test images.  Speed 9 was rejected:
      +9-17% bytes at lower PSNR.
    * WebP uses ``method=2`` instead of 4: half the WebP CPU for about +2-4% bytes.
    """

    avif_quality: int = 50
    avif_speed: int = 8
    avif_subsampling: str = "4:2:0"
    avif_advanced: tuple[tuple[str, str], ...] = (("use-intra-dct-only", "1"), ("enable-smooth-intra", "0"))
    """libaom options passed through libavif."""
    webp_quality: int = 80
    webp_method: int = 2
    jpeg_quality: int = 80
    jpeg_progressive: bool = True
    jpeg_optimize: bool = True

    def for_format(self, fmt: str) -> dict:
        """Pillow ``save`` keyword arguments for ``fmt`` (xmp/icc added by the caller)."""
        if fmt == "avif":
            # One encoder thread: output bytes depend on the AVIF thread count, and
            # derive_all parallelises across variants instead.
            opts = {
                "quality": self.avif_quality,
                "speed": self.avif_speed,
                "subsampling": self.avif_subsampling,
                "max_threads": 1,
            }
            if self.avif_advanced:
                opts["advanced"] = [tuple(pair) for pair in self.avif_advanced]
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
    return json.dumps({"fmt": fmt, "opts": settings.for_format(fmt), "lib": codec_versions()}, sort_keys=True)


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
    opts = settings.for_format(fmt)
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
