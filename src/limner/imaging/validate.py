"""Quality gate for freshly generated images: decodable, within caps, not blank."""

from __future__ import annotations

from dataclasses import dataclass

import imagehash
from PIL import Image, ImageStat

from .decode import DEFAULT_MAX_BYTES, DEFAULT_MAX_PIXELS, ImageInfo, ImageRejected, info_for, safe_open
from .normalize import to_rgb

NEAR_DUPLICATE_DISTANCE = 6
"""Perceptual-hash Hamming distance at or below which two images count as near duplicates."""

_PROBE_SIDE = 128


@dataclass(frozen=True)
class Validated:
    info: ImageInfo
    phash: str
    mean_std: float
    """Standard deviation of grayscale luminance over a <=128px copy."""


def validate_image(
    data: bytes,
    *,
    max_bytes: int = DEFAULT_MAX_BYTES,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    min_std: float = 4.0,
) -> Validated:
    """Decode safely and reject blank or near-uniform images."""
    im = safe_open(data, max_bytes=max_bytes, max_pixels=max_pixels)
    info = info_for(data, im)
    probe = to_rgb(im)
    probe.thumbnail((_PROBE_SIDE, _PROBE_SIDE), Image.Resampling.BOX)
    gray = probe.convert("L")
    std = float(ImageStat.Stat(gray).stddev[0])
    if std < min_std:
        raise ImageRejected("blank", f"image is near-uniform (luminance std-dev {std:.2f} < {min_std})")
    return Validated(info=info, phash=str(imagehash.phash(gray)), mean_std=round(std, 4))


def phash_distance(a_hex: str, b_hex: str) -> int:
    """Hamming distance between two hex perceptual hashes."""
    return (int(a_hex, 16) ^ int(b_hex, 16)).bit_count()
