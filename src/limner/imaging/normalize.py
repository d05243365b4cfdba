"""Bring any decoded image to upright 8-bit RGB (transparency flattened on white)."""

from __future__ import annotations

import numpy as np
from PIL import Image, ImageOps

_WHITE = (255, 255, 255)
_ALPHA_MODES = frozenset({"RGBA", "RGBa", "LA", "La", "PA"})


def _high_depth_to_l(im: Image.Image) -> Image.Image:
    """16-bit (or 32-bit integer) grayscale as stored by PNG -> 8-bit; float is clipped."""
    arr = np.asarray(im, dtype=np.float64)
    if im.mode != "F":
        arr = arr / 257.0
    return Image.fromarray(np.clip(arr + 0.5, 0, 255).astype(np.uint8), "L")


def to_rgb(im: Image.Image) -> Image.Image:
    """Apply EXIF orientation, composite alpha over white and return an RGB image."""
    im = ImageOps.exif_transpose(im)
    if im.mode in ("I", "I;16", "I;16B", "I;16L", "I;16N", "F"):
        im = _high_depth_to_l(im)
    if im.mode in _ALPHA_MODES or "transparency" in im.info:
        rgba = im.convert("RGBA")
        background = Image.new("RGBA", rgba.size, _WHITE + (255,))
        background.alpha_composite(rgba)
        return background.convert("RGB")
    return im if im.mode == "RGB" else im.convert("RGB")
