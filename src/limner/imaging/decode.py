"""Safe decoding of untrusted image bytes: size caps, format sniffing, full load."""

from __future__ import annotations

import io
import struct

from PIL import Image

from .errors import REJECT_CODES, ImageRejected
from .results import ImageInfo

__all__ = ["REJECT_CODES", "ImageInfo", "ImageRejected"]  # re-exported: they live in .errors and .results, importable without Pillow

# Our format name -> (Pillow format id, MIME type). GIF is sniffed but not accepted.
SUPPORTED_FORMATS: dict[str, tuple[str, str]] = {
    "png": ("PNG", "image/png"),
    "jpeg": ("JPEG", "image/jpeg"),
    "webp": ("WEBP", "image/webp"),
    "avif": ("AVIF", "image/avif"),
}

DEFAULT_MAX_BYTES = 50_000_000
DEFAULT_MAX_PIXELS = 40_000_000




def sniff_format(data: bytes) -> str | None:
    """Identify the container from magic bytes only; never decodes."""
    head = bytes(data[:32])
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return "png"
    if head.startswith(b"\xff\xd8\xff"):
        return "jpeg"
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "webp"
    if head[4:8] == b"ftyp" and head[8:12] in (b"avif", b"avis"):
        return "avif"
    if head[:6] in (b"GIF87a", b"GIF89a"):
        return "gif"
    return None


def _check_caps(data: bytes, max_bytes: int) -> str:
    if len(data) > max_bytes:
        raise ImageRejected("too_large_bytes", f"{len(data)} bytes exceeds the cap of {max_bytes}")
    fmt = sniff_format(data)
    if fmt is None:
        raise ImageRejected("unsupported_format", "unrecognised image signature")
    if fmt not in SUPPORTED_FORMATS:
        raise ImageRejected("unsupported_format", f"{fmt} images are not accepted")
    return fmt


def _check_pixels(width: int, height: int, max_pixels: int) -> None:
    if width * height > max_pixels:
        raise ImageRejected(
            "too_many_pixels", f"{width}x{height} = {width * height} pixels exceeds the cap of {max_pixels}"
        )


def _png_ihdr_size(data: bytes) -> tuple[int, int] | None:
    """Width and height straight from the PNG IHDR chunk (needs no other chunk)."""
    if len(data) >= 24 and data[12:16] == b"IHDR":
        return struct.unpack(">II", data[16:24])
    return None


def _open_header(data: bytes, fmt: str, max_pixels: int) -> Image.Image:
    """Parse only the header and enforce the pixel cap before any decoding."""
    if fmt == "png" and (size := _png_ihdr_size(data)):
        _check_pixels(*size, max_pixels)
    try:
        im = Image.open(io.BytesIO(data), formats=[SUPPORTED_FORMATS[fmt][0]])  # header only
    except Image.DecompressionBombError as exc:
        raise ImageRejected("too_many_pixels", str(exc)) from None
    except Exception as exc:  # noqa: BLE001 - any parser failure means bad bytes
        raise ImageRejected("corrupt", f"cannot parse {fmt} header: {exc}") from None
    width, height = im.size
    if width <= 0 or height <= 0:
        raise ImageRejected("corrupt", f"invalid dimensions {width}x{height}")
    _check_pixels(width, height, max_pixels)
    return im


def safe_open(
    data: bytes, *, max_bytes: int = DEFAULT_MAX_BYTES, max_pixels: int = DEFAULT_MAX_PIXELS
) -> Image.Image:
    """Return a fully loaded image or raise :class:`ImageRejected`."""
    fmt = _check_caps(data, max_bytes)
    im = _open_header(data, fmt, max_pixels)
    try:
        im.load()
    except Exception as exc:  # noqa: BLE001 - truncated/garbled data in any codec
        raise ImageRejected("corrupt", f"cannot decode {fmt} data: {exc}") from None
    return im


def inspect_image(
    data: bytes, *, max_bytes: int = DEFAULT_MAX_BYTES, max_pixels: int = DEFAULT_MAX_PIXELS
) -> ImageInfo:
    """Decode safely and describe the image."""
    im = safe_open(data, max_bytes=max_bytes, max_pixels=max_pixels)
    return info_for(data, im)


def info_for(data: bytes, im: Image.Image) -> ImageInfo:
    """Describe already-opened ``im`` decoded from ``data``."""
    fmt = sniff_format(data)
    return ImageInfo(format=fmt, mime=SUPPORTED_FORMATS[fmt][1], width=im.width, height=im.height, bytes=len(data))
