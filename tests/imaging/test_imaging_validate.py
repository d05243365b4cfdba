from __future__ import annotations

import numpy as np
import pytest
from imaging_samples import detailed_image, encode
from PIL import Image, ImageEnhance

from limner.imaging import NEAR_DUPLICATE_DISTANCE, ImageRejected, Validated, phash_distance, validate_image


def test_detailed_image_passes(detailed_png):
    result = validate_image(detailed_png)
    assert isinstance(result, Validated)
    assert result.info.format == "png" and (result.info.width, result.info.height) == (320, 240)
    assert result.mean_std > 20
    assert len(result.phash) == 16 and int(result.phash, 16) >= 0


@pytest.mark.parametrize(
    "im",
    [
        Image.new("RGB", (300, 200), (255, 255, 255)),
        Image.new("RGB", (300, 200), (0, 0, 0)),
        Image.new("L", (300, 200), 128),
        Image.new("RGBA", (300, 200), (10, 200, 30, 0)),  # fully transparent -> white
    ],
)
def test_uniform_images_are_blank(im):
    with pytest.raises(ImageRejected) as err:
        validate_image(encode(im, "PNG"))
    assert err.value.code == "blank"
    assert err.value.retryable


def test_faint_noise_on_flat_colour_is_blank():
    rng = np.random.default_rng(3)
    arr = np.clip(120 + rng.normal(0, 6, (256, 256, 3)), 0, 255).astype(np.uint8)
    with pytest.raises(ImageRejected) as err:
        validate_image(encode(Image.fromarray(arr, "RGB"), "PNG"))
    assert err.value.code == "blank"


def test_min_std_is_configurable():
    gentle = Image.linear_gradient("L").resize((256, 256)).point(lambda v: 100 + v // 32)  # std ~2.3
    data = encode(gentle, "PNG")
    with pytest.raises(ImageRejected):
        validate_image(data)
    assert validate_image(data, min_std=1.0).mean_std < 4.0


def test_caps_are_forwarded(detailed_png):
    with pytest.raises(ImageRejected) as err:
        validate_image(detailed_png, max_pixels=1000)
    assert err.value.code == "too_many_pixels"
    with pytest.raises(ImageRejected) as err:
        validate_image(detailed_png, max_bytes=100)
    assert err.value.code == "too_large_bytes"


def test_near_identical_images_have_small_phash_distance(detailed):
    original = validate_image(encode(detailed, "PNG")).phash
    recompressed = validate_image(encode(detailed, "JPEG", quality=60)).phash
    brighter = validate_image(encode(ImageEnhance.Brightness(detailed).enhance(1.1), "PNG")).phash
    resized = validate_image(encode(detailed.resize((160, 120)), "WEBP")).phash
    for other in (recompressed, brighter, resized):
        assert phash_distance(original, other) <= NEAR_DUPLICATE_DISTANCE


def test_different_images_are_far_apart():
    a = validate_image(encode(detailed_image(seed=1), "PNG")).phash
    b = validate_image(encode(detailed_image(seed=2).transpose(Image.Transpose.ROTATE_90), "PNG")).phash
    assert phash_distance(a, b) > NEAR_DUPLICATE_DISTANCE


def test_phash_distance_basics():
    assert phash_distance("ffff000000000000", "ffff000000000000") == 0
    assert phash_distance("0000000000000000", "000000000000000f") == 4
    assert phash_distance("ffffffffffffffff", "0000000000000000") == 64
