"""Small stand-ins shown before the real image loads: a capped preview image,
BlurHash, ThumbHash and a dominant colour."""

from __future__ import annotations

import base64

import blurhash
from PIL import Image

from .encoders import DEFAULT_SETTINGS, EncoderSettings, encode
from .normalize import to_rgb
from .results import Placeholder
from .thumbhash_np import rgba_to_thumb_hash

PLACEHOLDER_QUALITIES = (80, 70, 60, 50, 40, 30, 20)
_SHRINK = 0.75
_MIN_WIDTH = 16
# the previews come from small copies: 4x3 BlurHash terms, 7 ThumbHash terms and a 5-colour palette need no
# more than 32 px (BlurHash's own advice), and on a 256-px image the 64-px copies made them 3.5 of the 15 ms
# that deriving it costs
_BLURHASH_SIDE = 32
_THUMBHASH_SIDE = 32  # ThumbHash needs <=100px; low frequencies are identical from 32px up
_COLOUR_SIDE = 32




def scaled_height(width: int, source: tuple[int, int]) -> int:
    src_w, src_h = source
    return max(1, round(width * src_h / src_w))


#: the longest side every output format can encode (WebP's limit; JPEG takes 65,535, AVIF more)
MAX_ENCODED_SIDE = 16383


def widest_encodable(source: tuple[int, int]) -> int:
    """The widest an image of ``source`` size can be encoded at, in every format, never upscaled: its own
    width unless a side passes :data:`MAX_ENCODED_SIDE` (a 17000x300 panorama, a 300x17000 scroll)."""
    src_w, src_h = source
    width = min(src_w, MAX_ENCODED_SIDE, max(1, (MAX_ENCODED_SIDE * src_w) // src_h))
    while width > 1 and scaled_height(width, source) > MAX_ENCODED_SIDE:
        width -= 1
    return width


def make_placeholder(
    im: Image.Image,
    *,
    width: int = 480,
    fmt: str = "webp",
    max_bytes: int = 100_000,
    xmp: bytes | None = None,
    settings: EncoderSettings = DEFAULT_SETTINGS,
) -> Placeholder:
    """Encode ``im`` at ``width`` (never upscaled), stepping quality down, then width,
    until it fits ``max_bytes``; raises ValueError if even a tiny image does not fit."""
    if fmt not in ("webp", "jpeg"):
        raise ValueError(f"placeholder format must be webp or jpeg, not {fmt!r}")
    rgb = to_rgb(im)  # upright, alpha flattened on white
    width = max(1, min(width, widest_encodable(rgb.size)))
    # the narrowest try: _MIN_WIDTH on the longer side (a tall scroll shrinks below 16 px wide, its height with it)
    narrowest = max(1, _MIN_WIDTH * rgb.width // max(rgb.width, rgb.height))
    while True:
        height = scaled_height(width, rgb.size)
        small = rgb if width == rgb.width else rgb.resize((width, height), Image.Resampling.LANCZOS)
        for quality in PLACEHOLDER_QUALITIES:
            data = encode(small, fmt, settings, quality=quality, xmp=xmp)
            if len(data) <= max_bytes:
                return Placeholder(data=data, format=fmt, width=width, height=height, quality=quality)
        if width <= narrowest:
            raise ValueError(f"cannot fit a {fmt} placeholder into {max_bytes} bytes")
        width = max(narrowest, int(width * _SHRINK))


def _shrunk(im: Image.Image, side: int) -> Image.Image:
    small = im.copy()
    small.thumbnail((side, side), Image.Resampling.BOX)
    return small


def blurhash_of(im: Image.Image) -> str:
    """BlurHash with 4x3 components from a <=32px copy."""
    small = _shrunk(im, _BLURHASH_SIDE).convert("RGB")
    try:
        # blurhash-python's own encode() uses Image.getdata (deprecated, gone in
        # Pillow 14) and closes the image; feed its C encoder raw bytes instead.
        from blurhash._functions import ffi, lib
    except ImportError:  # pragma: no cover - other builds of blurhash-python
        return blurhash.encode(small, 4, 3)
    rgb = ffi.from_buffer("uint8_t[]", small.tobytes())
    out = ffi.new("char[]", 2 + 4 + (9 * 9 - 1) * 2 + 1)
    result = lib.create_hash_from_pixels(4, 3, small.width, small.height, rgb, small.width * 3, out)
    if result == ffi.NULL:
        raise ValueError("blurhash encoding failed")
    return ffi.string(result).decode("ascii")


def thumbhash_of(im: Image.Image) -> str:
    """ThumbHash (base64, standard alphabet) from a small RGBA copy."""
    small = _shrunk(im, _THUMBHASH_SIDE).convert("RGBA")
    return base64.b64encode(rgba_to_thumb_hash(small.width, small.height, small.tobytes())).decode("ascii")


def dominant_color_of(im: Image.Image) -> str:
    """Most common colour after quantising a 32px copy to a few colours, as #rrggbb."""
    small = _shrunk(im, _COLOUR_SIDE).convert("RGB")
    quantised = small.quantize(colors=5, method=Image.Quantize.MEDIANCUT)
    palette = quantised.getpalette() or []
    _count, index = max(quantised.getcolors() or [(1, 0)])
    r, g, b = palette[index * 3 : index * 3 + 3]
    return f"#{r:02x}{g:02x}{b:02x}"
