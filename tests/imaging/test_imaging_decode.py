from __future__ import annotations

import pickle
import struct
import zlib

import pytest
from imaging_samples import detailed_image, encode
from PIL import Image, ImageFile

from limner.imaging import ImageInfo, ImageRejected, inspect_image, safe_open, sniff_format


def _png_chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def huge_png_header(width: int, height: int) -> bytes:
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    idat = zlib.compress(b"\x00" * 64)
    return b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", ihdr) + _png_chunk(b"IDAT", idat) + _png_chunk(b"IEND", b"")


def huge_jpeg_header(width: int, height: int) -> bytes:
    real = encode(detailed_image(16, 16), "JPEG", quality=90)
    sof = real.index(b"\xff\xc0")
    patched = bytearray(real)
    patched[sof + 5 : sof + 9] = struct.pack(">HH", height, width)
    return bytes(patched)


@pytest.fixture
def no_decoding(monkeypatch):
    """Fail loudly if any pixel data gets decoded."""

    def refuse(self):
        raise AssertionError("pixel data was decoded")

    monkeypatch.setattr(ImageFile.ImageFile, "load", refuse)


@pytest.mark.parametrize(
    ("fmt", "kwargs", "expected"),
    [("PNG", {}, "png"), ("JPEG", {}, "jpeg"), ("WEBP", {}, "webp"), ("WEBP", {"lossless": True}, "webp"),
     ("AVIF", {}, "avif"), ("GIF", {}, "gif")],
)
def test_sniff_real_files(fmt, kwargs, expected):
    assert sniff_format(encode(detailed_image(32, 24), fmt, **kwargs)) == expected


@pytest.mark.parametrize("data", [b"", b"\x89PN", b"hello world, not an image", b"RIFF\x00\x00\x00\x00WAVEfmt ",
                                  b"\x00\x00\x00\x1cftypmp42"])
def test_sniff_unknown(data):
    assert sniff_format(data) is None


def test_sniff_avis():
    assert sniff_format(b"\x00\x00\x00\x1cftypavis\x00\x00\x00\x00") == "avif"


def test_png_claiming_100000_squared_is_rejected_without_decoding(no_decoding):
    with pytest.raises(ImageRejected) as err:
        safe_open(huge_png_header(100_000, 100_000))
    assert err.value.code == "too_many_pixels"
    assert not err.value.retryable


def test_pixel_cap_below_pillows_bomb_limit(no_decoding):
    # 8000 x 8000 = 64 MP: under Pillow's own bomb threshold, over our 40 MP default.
    with pytest.raises(ImageRejected) as err:
        safe_open(huge_png_header(8000, 8000))
    assert err.value.code == "too_many_pixels"


def test_jpeg_pixel_cap_checked_from_header(no_decoding):
    with pytest.raises(ImageRejected) as err:
        safe_open(huge_jpeg_header(9000, 9000))
    assert err.value.code == "too_many_pixels"


def test_custom_pixel_cap():
    data = encode(detailed_image(100, 100), "PNG")
    with pytest.raises(ImageRejected) as err:
        safe_open(data, max_pixels=9_999)
    assert err.value.code == "too_many_pixels"
    assert safe_open(data, max_pixels=10_000).size == (100, 100)


def test_byte_cap_checked_first():
    data = encode(detailed_image(64, 64), "PNG")
    with pytest.raises(ImageRejected) as err:
        safe_open(data, max_bytes=len(data) - 1)
    assert err.value.code == "too_large_bytes"
    assert not err.value.retryable
    # Even garbage is refused for its size before anything else.
    with pytest.raises(ImageRejected) as err:
        safe_open(b"x" * 101, max_bytes=100)
    assert err.value.code == "too_large_bytes"


@pytest.mark.parametrize("data", [b"GIF89a" + b"\x00" * 40, b"not an image at all", b""])
def test_unsupported_format(data):
    with pytest.raises(ImageRejected) as err:
        safe_open(data)
    assert err.value.code == "unsupported_format"
    assert not err.value.retryable


@pytest.mark.parametrize("fmt", ["PNG", "JPEG", "WEBP", "AVIF"])
def test_truncated_files_are_corrupt(fmt):
    data = encode(detailed_image(256, 192), fmt)
    with pytest.raises(ImageRejected) as err:
        safe_open(data[: len(data) * 2 // 3])
    assert err.value.code == "corrupt"
    assert err.value.retryable


@pytest.mark.parametrize("fmt", ["PNG", "JPEG", "WEBP", "AVIF"])
def test_garbage_after_magic_is_corrupt(fmt):
    data = encode(detailed_image(64, 64), fmt)
    with pytest.raises(ImageRejected) as err:
        safe_open(data[:33] + bytes(range(256)) * 4)  # keeps a valid PNG IHDR
    assert err.value.code == "corrupt"


def test_png_with_bad_idat_crc_is_corrupt():
    data = bytearray(encode(detailed_image(64, 64), "PNG"))
    idat = data.index(b"IDAT")
    data[idat + 20] ^= 0xFF
    with pytest.raises(ImageRejected) as err:
        safe_open(bytes(data))
    assert err.value.code == "corrupt"


def test_load_truncated_images_is_left_alone():
    assert ImageFile.LOAD_TRUNCATED_IMAGES is False


@pytest.mark.parametrize(("fmt", "name", "mime"), [("PNG", "png", "image/png"), ("JPEG", "jpeg", "image/jpeg"),
                                                   ("WEBP", "webp", "image/webp"), ("AVIF", "avif", "image/avif")])
def test_inspect_image(fmt, name, mime):
    data = encode(detailed_image(120, 80), fmt)
    assert inspect_image(data) == ImageInfo(format=name, mime=mime, width=120, height=80, bytes=len(data))


def test_safe_open_returns_loaded_image(detailed_png):
    im = safe_open(detailed_png)
    assert isinstance(im, Image.Image)
    assert im.size == (320, 240)
    assert im.getpixel((0, 0)) is not None


def test_rejection_is_picklable_and_readable():
    err = ImageRejected("blank", "all white")
    clone = pickle.loads(pickle.dumps(err))
    assert (clone.code, clone.reason, clone.retryable) == ("blank", "all white", True)
    assert "blank" in str(clone) and "all white" in str(clone)
    with pytest.raises(ValueError):
        ImageRejected("nope", "unknown code")
