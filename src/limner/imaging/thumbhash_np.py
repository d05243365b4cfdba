"""ThumbHash encoding (https://evanw.github.io/thumbhash/) with NumPy.

The same algorithm and byte layout as the reference encoder (and the ``thumbhash`` package, which
the tests compare this with), with each channel's cosine transform done as two matrix products
instead of four nested Python loops: 0.2 ms instead of 6 ms for a 32-px image, a third of all the
derivation work for a small image.
"""

from __future__ import annotations

import numpy as np


def _encode_channel(channel: np.ndarray, nx: int, ny: int) -> tuple[float, list[float], float]:
    """DC, the AC coefficients (scaled to 0..1, in the reference's order) and their scale."""
    h, w = channel.shape
    fx = np.cos(np.pi / w * np.arange(nx)[:, None] * (np.arange(w)[None, :] + 0.5))  # (nx, w)
    fy = np.cos(np.pi / h * np.arange(ny)[:, None] * (np.arange(h)[None, :] + 0.5))  # (ny, h)
    coefficients = fy @ channel @ fx.T / (w * h)  # [cy, cx]
    dc = 0.0
    ac: list[float] = []
    for cy in range(ny):
        cx = 0
        while cx * ny < nx * (ny - cy):
            f = float(coefficients[cy, cx])
            if cx or cy:
                ac.append(f)
            else:
                dc = f
            cx += 1
    scale = max((abs(f) for f in ac), default=0.0)
    if scale:
        ac = [0.5 + 0.5 / scale * f for f in ac]
    return dc, ac, scale


def rgba_to_thumb_hash(w: int, h: int, rgba: bytes) -> bytes:
    """The ThumbHash of a ``w`` x ``h`` RGBA image (at most 100 x 100), as bytes."""
    if w > 100 or h > 100:
        raise ValueError(f"{w}x{h} doesn't fit in 100x100")
    pixels = np.frombuffer(rgba, dtype=np.uint8).reshape(h, w, 4).astype(np.float64)
    alpha = pixels[..., 3] / 255
    total_alpha = float(alpha.sum())
    average = (pixels[..., :3] * (alpha / 255)[..., None]).reshape(-1, 3).sum(axis=0)
    if total_alpha:
        average = average / total_alpha
    has_alpha = total_alpha < w * h
    l_limit = 5 if has_alpha else 7
    lx = max(1, round(l_limit * w / max(w, h)))
    ly = max(1, round(l_limit * h / max(w, h)))

    # colours composited over the average colour, then split into luminance and two chroma channels
    rgb = average * (1 - alpha)[..., None] + (alpha / 255)[..., None] * pixels[..., :3]
    r, g, b = rgb[..., 0], rgb[..., 1], rgb[..., 2]
    l_dc, l_ac, l_scale = _encode_channel((r + g + b) / 3, max(3, lx), max(3, ly))
    p_dc, p_ac, p_scale = _encode_channel((r + g) / 2 - b, 3, 3)
    q_dc, q_ac, q_scale = _encode_channel(r - g, 3, 3)
    a_dc, a_ac, a_scale = _encode_channel(alpha, 5, 5) if has_alpha else (1.0, [], 1.0)

    landscape = w > h
    header24 = (round(63 * l_dc) | (round(31.5 + 31.5 * p_dc) << 6) | (round(31.5 + 31.5 * q_dc) << 12)
                | (round(31 * l_scale) << 18) | (int(has_alpha) << 23))
    header16 = (ly if landscape else lx) | (round(63 * p_scale) << 3) | (round(63 * q_scale) << 9) | (int(landscape) << 15)
    out = [header24 & 255, (header24 >> 8) & 255, header24 >> 16, header16 & 255, header16 >> 8]
    if has_alpha:
        out.append(round(15 * a_dc) | (round(15 * a_scale) << 4))
    odd = False
    for f in (*l_ac, *p_ac, *q_ac, *a_ac):
        u = int(round(15.0 * f))
        if odd:
            out[-1] |= u << 4
        else:
            out.append(u)
        odd = not odd
    return bytes(out)

