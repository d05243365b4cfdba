"""Quality gate for freshly generated images: decodable, within caps, not blank."""

from __future__ import annotations

from functools import cache

import numpy as np
from PIL import Image, ImageStat

from .decode import DEFAULT_MAX_BYTES, DEFAULT_MAX_PIXELS, ImageRejected, info_for, safe_open
from .normalize import to_rgb
from .results import Validated

NEAR_DUPLICATE_DISTANCE = 6
"""Perceptual-hash Hamming distance at or below which two images count as near duplicates."""

_PROBE_SIDE = 128




def validate_image(
    data: bytes,
    *,
    max_bytes: int = DEFAULT_MAX_BYTES,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    min_std: float = 4.0,
    image: Image.Image | None = None,
) -> Validated:
    """Decode safely and reject blank or near-uniform images. ``image``: ``data`` already decoded by
    :func:`~limner.imaging.decode.safe_open` (it is not changed)."""
    im = image if image is not None else safe_open(data, max_bytes=max_bytes, max_pixels=max_pixels)
    info = info_for(data, im)
    probe = to_rgb(im)  # a copy: thumbnail() below shrinks it in place
    probe.thumbnail((_PROBE_SIDE, _PROBE_SIDE), Image.Resampling.BOX)
    gray = probe.convert("L")
    std = float(ImageStat.Stat(gray).stddev[0])
    if std < min_std:
        raise ImageRejected("blank", f"image is near-uniform (luminance std-dev {std:.2f} < {min_std})")
    return Validated(info=info, phash=phash_hex(gray), mean_std=round(std, 4))


_PHASH_SIZE, _PHASH_BITS = 32, 8


@cache
def _dct_matrix(n: int) -> np.ndarray:
    """The unnormalised DCT-II as a matrix: ``2 cos(pi k (2i + 1) / 2n)`` (what ``scipy.fftpack.dct`` computes)."""
    k = np.arange(n)[:, None]
    i = np.arange(n)[None, :]
    return 2.0 * np.cos(np.pi * k * (2 * i + 1) / (2 * n))


def phash_hex(image: Image.Image) -> str:
    """The 64-bit perceptual hash of ``imagehash.phash`` (32x32 grayscale, 2-D DCT, the 8x8 lowest
    frequencies against their median), as the same hex string, computed with a matrix product: the
    same hash without importing SciPy's FFT package, which alone cost a pool worker 0.3-0.5 s."""
    pixels = np.asarray(image.convert("L").resize((_PHASH_SIZE, _PHASH_SIZE), Image.Resampling.LANCZOS), dtype=np.float64)
    d = _dct_matrix(_PHASH_SIZE)
    low = (d @ pixels @ d.T)[:_PHASH_BITS, :_PHASH_BITS]
    bits = (low > np.median(low)).flatten()
    return f"{int(''.join('1' if b else '0' for b in bits), 2):0{_PHASH_BITS * _PHASH_BITS // 4}x}"


def phash_distance(a_hex: str, b_hex: str) -> int:
    """Hamming distance between two hex perceptual hashes."""
    return (int(a_hex, 16) ^ int(b_hex, 16)).bit_count()
