from __future__ import annotations

import base64
import io
import pickle
import re
from concurrent.futures import ProcessPoolExecutor

import blurhash
import numpy as np
import pytest
import thumbhash
from imaging_samples import detailed_image, encode, noisy_image
from PIL import Image

from limner.imaging import (
    DEFAULT_FORMATS,
    Derived,
    ImageRejected,
    Provenance,
    derive_all,
    make_placeholder,
    plan_widths,
)
from limner.imaging.provenance import DIGITAL_SOURCE_TYPE

PROV = Provenance("entry-7", "A title", 'prompt with "quotes" & <tags> שלום 🎨', "model-x", "prov-y", 11, alt="alt")
EXT = {"avif": "avif", "webp": "webp", "jpeg": "jpg"}
SMALL_WIDTHS = (120, 240, 480)


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        (1024, [240, 480, 768, 1024]),
        (2048, [240, 480, 768, 1024, 1536, 2048]),
        (600, [240, 480, 600]),  # 600 / 480 == 1.25 exactly: kept
        (599, [240, 599]),  # 599 / 480 < 1.25: dropped
        (100, [100]),
        (240, [240]),
        (4096, [240, 480, 768, 1024, 1536, 2048, 4096]),
    ],
)
def test_plan_widths(source, expected):
    assert plan_widths(source) == expected


def test_plan_widths_custom_unsorted_duplicates():
    assert plan_widths(1000, (800, 100, 100, 5000, 300)) == [100, 300, 800, 1000]


@pytest.fixture(scope="module")
def master() -> bytes:
    return encode(detailed_image(600, 400, seed=3), "PNG")


@pytest.fixture(scope="module")
def derived(master) -> Derived:
    return derive_all(master, PROV, widths=SMALL_WIDTHS, placeholder_width=240)


def test_every_width_and_format(derived):
    assert (derived.width, derived.height) == (600, 400)
    combos = [(v.width, v.format) for v in derived.variants]
    assert combos == [(w, f) for w in [120, 240, 480, 600] for f in DEFAULT_FORMATS]
    for v in derived.variants:
        assert v.name == f"{v.name[:16]}-{v.width}.{EXT[v.format]}"
        assert re.fullmatch(r"[0-9a-f]{16}", v.name[:16])
        assert v.mime == f"image/{v.format}"
        with Image.open(io.BytesIO(v.data)) as im:
            assert im.format == {"avif": "AVIF", "webp": "WEBP", "jpeg": "JPEG"}[v.format]
            assert im.size == (v.width, v.height)
            assert im.mode == "RGB"
        assert v.height == round(v.width * 400 / 600)


def test_jpeg_variants_are_progressive(derived):
    for v in derived.variants:
        if v.format == "jpeg":
            with Image.open(io.BytesIO(v.data)) as im:
                assert im.info.get("progressive") or im.info.get("progression")


def test_variants_carry_provenance_xmp(derived):
    for v in derived.variants:
        assert DIGITAL_SOURCE_TYPE.encode() in v.data
        assert "שלום".encode() in v.data
        with Image.open(io.BytesIO(v.data)) as im:
            im.load()
            xmp = im.info.get("xmp")
            assert xmp, v.name
            assert DIGITAL_SOURCE_TYPE in (xmp.decode() if isinstance(xmp, bytes) else xmp)


def test_never_upscales(master):
    d = derive_all(master, widths=(240, 1024, 2048), formats=("webp",))
    assert [v.width for v in d.variants] == [240, 600]


def test_deterministic_names_and_bytes(master, derived):
    again = derive_all(master, PROV, widths=SMALL_WIDTHS, placeholder_width=240, threads=1)
    assert [v.name for v in again.variants] == [v.name for v in derived.variants]
    assert [v.sha256 for v in again.variants] == [v.sha256 for v in derived.variants]
    assert again.settings_version == derived.settings_version
    assert len({v.name for v in derived.variants}) == len(derived.variants)


def test_names_change_with_content_inputs(master, derived):
    without_xmp = derive_all(master, None, widths=SMALL_WIDTHS, formats=("jpeg",))
    other_master = derive_all(encode(detailed_image(600, 400, seed=4), "PNG"), PROV, widths=SMALL_WIDTHS,
                              formats=("jpeg",))
    mine = {v.name for v in derived.variants}
    assert not mine & {v.name for v in without_xmp.variants}
    assert not mine & {v.name for v in other_master.variants}
    for v in without_xmp.variants:
        assert DIGITAL_SOURCE_TYPE.encode() not in v.data


def test_sha256_matches_data(derived):
    import hashlib

    for v in derived.variants:
        assert hashlib.sha256(v.data).hexdigest() == v.sha256


def test_previews_are_well_formed(derived):
    assert re.fullmatch(r"#[0-9a-f]{6}", derived.dominant_color)
    assert len(derived.blurhash) == 28  # 1 + 1 + 4 + 2 * (4 * 3 - 1)
    assert blurhash.decode(derived.blurhash, 8, 6).size == (8, 6)
    raw = base64.b64decode(derived.thumbhash, validate=True)
    assert 5 <= len(raw) <= 25
    w, h, rgba = thumbhash.thumb_hash_to_rgba(list(raw))
    assert w > h and len(rgba) == w * h * 4  # landscape master -> landscape preview
    assert derived.settings_version.startswith("s1-")


def test_thumbhash_is_byte_identical_to_the_reference_encoder():
    """Our NumPy ThumbHash against the ``thumbhash`` package (the reference algorithm in pure Python) on
    noisy and smooth images from 8 to 32 px a side (derivation hashes a copy of at most 32 px), landscape and
    portrait. Left out: a flat image, or one narrower than the 7 luminance terms, whose missing AC terms come out
    as rounding noise in both encoders, so that any two of them disagree there."""
    from limner.imaging.thumbhash_np import rgba_to_thumb_hash

    rng = np.random.default_rng(7)
    checked = 0
    for w in range(8, 33, 3):
        for h in range(8, 33, 4):
            noise = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
            smooth = np.asarray(Image.fromarray(rng.integers(0, 256, (3, 4, 3), dtype=np.uint8)).resize((w, h), Image.Resampling.BICUBIC))
            for rgb in (noise, smooth):
                rgba = np.concatenate([rgb, np.full((h, w, 1), 255, np.uint8)], axis=2).tobytes()
                assert rgba_to_thumb_hash(w, h, rgba) == bytes(thumbhash.rgba_to_thumb_hash(w, h, list(rgba))), (w, h)
                checked += 1
    assert checked == 126
    with pytest.raises(ValueError, match="100x100"):
        rgba_to_thumb_hash(101, 1, bytes(404))


def test_placeholder(derived):
    p = derived.placeholder
    assert (p.format, p.width) == ("webp", 240) and p.height == 160
    assert len(p.data) <= 100_000 and 20 <= p.quality <= 80
    with Image.open(io.BytesIO(p.data)) as im:
        assert im.size == (240, 160)


def test_dominant_colour_of_flat_image():
    im = Image.new("RGB", (300, 200), (200, 30, 40))
    im.paste((10, 10, 10), (0, 0, 40, 40))
    d = derive_all(encode(im, "PNG"), widths=(100,), formats=("jpeg",), placeholder_width=100)
    assert d.dominant_color == "#c81e28"


def test_transparency_is_flattened_on_white():
    im = Image.new("RGBA", (200, 100), (0, 0, 0, 0))
    im.paste((0, 0, 255, 255), (100, 0, 200, 100))
    d = derive_all(encode(im, "PNG"), widths=(), formats=("webp",), placeholder_width=200)
    (v,) = d.variants
    with Image.open(io.BytesIO(v.data)) as out:
        left, right = out.convert("RGB").getpixel((20, 50)), out.convert("RGB").getpixel((180, 50))
    assert min(left) > 240 and right[2] > 200 and right[0] < 40


def test_exif_orientation_is_applied():
    im = detailed_image(300, 200, seed=9)
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 CW for display
    d = derive_all(encode(im, "JPEG", exif=exif.tobytes()), widths=(100,), formats=("jpeg",), placeholder_width=100)
    assert (d.width, d.height) == (200, 300)
    assert [(v.width, v.height) for v in d.variants] == [(100, 150), (200, 300)]


def test_rejections_propagate():
    with pytest.raises(ImageRejected) as err:
        derive_all(b"\x89PNG\r\n\x1a\n" + b"\x00" * 50)
    assert err.value.code == "corrupt"


def test_unknown_output_format_is_refused(master):
    with pytest.raises(ValueError):
        derive_all(master, formats=("gif",))


def test_result_is_picklable_and_works_in_a_process_pool(master, derived):
    clone = pickle.loads(pickle.dumps(derived))
    assert clone == derived
    with ProcessPoolExecutor(max_workers=1) as pool:
        remote = pool.submit(derive_all, master, PROV, widths=SMALL_WIDTHS, placeholder_width=240, threads=1).result()
    assert [v.sha256 for v in remote.variants] == [v.sha256 for v in derived.variants]


def test_placeholder_fits_100kb_for_noisy_2048_image():
    noisy = noisy_image(2048, 2048)
    for fmt in ("webp", "jpeg"):
        p = make_placeholder(noisy, fmt=fmt)
        assert len(p.data) <= 100_000
        assert p.width <= 480
        with Image.open(io.BytesIO(p.data)) as im:
            assert im.size == (p.width, p.height)


def test_placeholder_steps_quality_then_width():
    noisy = noisy_image(600, 600, seed=2)
    p = make_placeholder(noisy, width=480, max_bytes=20_000)
    assert len(p.data) <= 20_000
    assert p.width < 480  # the quality ladder alone was not enough
    small = make_placeholder(detailed_image(600, 400), width=480, max_bytes=100_000)
    assert small.quality == 80 and small.width == 480


def test_placeholder_never_upscales_and_can_fail():
    p = make_placeholder(detailed_image(100, 50), width=480)
    assert (p.width, p.height) == (100, 50)
    with pytest.raises(ValueError):
        make_placeholder(noisy_image(300, 300), max_bytes=10)


def test_derive_placeholder_when_width_not_in_plan():
    noisy = encode(noisy_image(1000, 1000, seed=5), "PNG")
    d = derive_all(noisy, widths=(400,), formats=("avif",), placeholder_max_bytes=60_000)
    p = d.placeholder
    assert len(p.data) <= 60_000 and p.format == "webp" and p.width <= 480
    assert np.isclose(p.height, p.width, atol=1)


def test_rgb_icc_profile_is_kept_and_cmyk_dropped():
    from PIL import ImageCms

    srgb = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    d = derive_all(encode(detailed_image(200, 100), "PNG", icc_profile=srgb), widths=(), placeholder_width=200)
    for v in d.variants:
        with Image.open(io.BytesIO(v.data)) as im:
            assert im.info.get("icc_profile") == srgb, v.format
    fake_cmyk_profile = srgb[:16] + b"CMYK" + srgb[20:]
    cmyk = encode(detailed_image(200, 100).convert("CMYK"), "JPEG", icc_profile=fake_cmyk_profile)
    d = derive_all(cmyk, widths=(), formats=("jpeg",), placeholder_width=200)
    with Image.open(io.BytesIO(d.variants[0].data)) as im:
        assert im.mode == "RGB" and not im.info.get("icc_profile")


def test_sixteen_bit_grayscale_master():
    ramp = (np.linspace(0, 65535, 256)[None, :].repeat(64, axis=0)).astype(np.uint16)
    data = encode(Image.fromarray(ramp), "PNG")
    d = derive_all(data, widths=(), formats=("webp",), placeholder_width=256)
    with Image.open(io.BytesIO(d.variants[0].data)) as im:
        row = np.asarray(im.convert("L"))[32]
    assert row[0] < 10 and row[-1] > 245 and row[128] in range(110, 150)


@pytest.mark.parametrize("size", [(17000, 300), (300, 17000), (16383, 200)])
def test_a_master_with_a_side_past_what_webp_encodes_gets_variants_that_fit(size):
    """The pixel cap (40M) accepts a 17000x300 panorama, but every format's widest variant was the master's own
    width, and WebP encodes at most 16,383 pixels a side: derive raised, the entry failed as retryable, and
    every later run resumed it (paid, never published). The widest variant now fits every format."""
    from limner.imaging.placeholders import MAX_ENCODED_SIDE

    w, h = size
    ramp = np.linspace(0, 255, max(w, h))
    pixels = (np.tile(ramp[:w], (h, 1)) if w >= h else np.tile(ramp[:h, None], (1, w))).astype("uint8")
    data = encode(Image.fromarray(pixels, "L").convert("RGB"), "PNG")
    derived = derive_all(data, threads=1, widths=(480, 1024))
    assert (derived.width, derived.height) == size  # the master's own size
    assert {v.format for v in derived.variants} == {"avif", "webp", "jpeg"}
    for v in derived.variants:
        assert v.width <= MAX_ENCODED_SIDE and v.height <= MAX_ENCODED_SIDE
        with Image.open(io.BytesIO(v.data)) as im:
            assert im.size == (v.width, v.height)
    widest = max(v.width for v in derived.variants)
    assert widest == min(w, MAX_ENCODED_SIDE, MAX_ENCODED_SIDE * w // h)
    ph = derived.placeholder
    assert ph.width <= 480 and ph.height <= MAX_ENCODED_SIDE


def test_a_tall_narrow_image_gets_a_placeholder_under_the_limit():
    """A scroll 16 px wide and 16,000 tall: width was the only thing shrunk, and never below 16 px, so its
    placeholder stayed 16x16000 and did not fit 100 KB (ValueError; the entry failed on every run). The
    width may now go down until the longer side reaches the floor."""
    scroll = noisy_image(16, 16_000, seed=3)
    for fmt in ("webp", "jpeg"):
        p = make_placeholder(scroll, fmt=fmt)
        assert len(p.data) <= 100_000 and p.height > p.width, (fmt, p.width, p.height)
        with Image.open(io.BytesIO(p.data)) as im:
            assert im.size == (p.width, p.height)
    # a landscape image keeps the 16-px floor on its width
    with pytest.raises(ValueError):
        make_placeholder(noisy_image(300, 300), max_bytes=10)
