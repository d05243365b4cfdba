"""Bring any decoded image to upright 8-bit RGB (transparency flattened on white)."""

from __future__ import annotations

import numpy as np
from PIL import Image, ImageOps

_WHITE = (255, 255, 255)


def _sixteen_bit_to_l(im: Image.Image) -> Image.Image:
    arr = np.asarray(im, dtype=np.float64)
    peak = 65535.0 if arr.max(initial=0) > 255 else 255.0
    return Image.fromarray(np.clip(arr * (255.0 / peak) + 0.5, 0, 255).astype(np.uint8), "L")


def to_rgb(im: Image.Image) -> Image.Image:
    """Apply EXIF orientation, composite alpha over white and return an RGB image."""
    im = ImageOps.exif_transpose(im)
    if im.mode in ("I", "I;16", "I;16B", "I;16L", "I;16N", "F"):
        im = _sixteen_bit_to_l(im)
    has_alpha = im.mode in ("RGBA", "LA", "La", "RGBa", "PA") or (
        im.mode == "P" and "transparency" in im.info
    ) or (im.mode in ("L", "RGB") and "transparency" in im.info)
    if has_alpha:
        rgba = im.convert("RGBA")
        background = Image.new("RGBA", rgba.size, _WHITE + (255,))
        background.alpha_composite(rgba)
        return background.convert("RGB")
    return im if im.mode == "RGB" else im.convert("RGB")
