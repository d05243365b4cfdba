"""Sample images generated in code for the imaging tests (no binary files in the repo)."""

from __future__ import annotations

import io

import numpy as np
from PIL import Image, ImageDraw


def detailed_image(width: int = 320, height: int = 240, seed: int = 0, mode: str = "RGB") -> Image.Image:
    """Gradients + noise + shapes: not trivially compressible, clearly not blank."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    base = np.stack([255 * x / width, 255 * y / height, 128 + 100 * np.sin(x / 9.0 + y / 13.0)], -1)
    arr = np.clip(base + rng.normal(0, 12, (height, width, 3)), 0, 255).astype(np.uint8)
    im = Image.fromarray(arr, "RGB")
    draw = ImageDraw.Draw(im)
    for _ in range(12):
        x0, y0 = int(rng.integers(0, width)), int(rng.integers(0, height))
        x1, y1 = x0 + int(rng.integers(5, max(6, width // 3))), y0 + int(rng.integers(5, max(6, height // 3)))
        draw.ellipse([x0, y0, x1, y1], fill=tuple(int(c) for c in rng.integers(0, 256, 3)))
    return im.convert(mode) if mode != "RGB" else im


def noisy_image(width: int, height: int, seed: int = 1) -> Image.Image:
    rng = np.random.default_rng(seed)
    return Image.fromarray(rng.integers(0, 256, (height, width, 3), dtype=np.uint8), "RGB")


def encode(im: Image.Image, fmt: str, **kwargs) -> bytes:
    out = io.BytesIO()
    im.save(out, fmt, **kwargs)
    return out.getvalue()


def pixels(data: bytes) -> np.ndarray:
    with Image.open(io.BytesIO(data)) as im:
        return np.asarray(im.convert("RGBA"))
