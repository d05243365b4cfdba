"""Encoder settings: the tuned defaults are in effect, and an AVIF option the codec
rejects is dropped instead of failing every encode."""

from __future__ import annotations

import io
import logging
import re

import pytest
from imaging_samples import detailed_image
from PIL import Image

from limner.imaging.encoders import (
    DEFAULT_SETTINGS,
    EncoderSettings,
    accepted_avif_options,
    codec_versions,
    encode,
    settings_fingerprint,
)


def _aom_version() -> tuple[int, ...] | None:
    match = re.search(r"aom \[enc\]:v?(\d+)\.(\d+)", codec_versions().get("avif_codecs", ""))
    return tuple(int(part) for part in match.groups()) if match else None


def test_default_avif_settings():
    opts = DEFAULT_SETTINGS.for_format("avif")
    assert (opts["quality"], opts["speed"], opts["subsampling"], opts["max_threads"]) == (44, 8, "4:4:4", 1)


@pytest.mark.skipif((_aom_version() or (0,)) < (3, 13), reason="tune=ssimulacra2 needs libaom >= 3.13")
def test_default_avif_options_accepted_by_this_codec():
    assert accepted_avif_options(DEFAULT_SETTINGS.avif_advanced) == DEFAULT_SETTINGS.avif_advanced
    assert DEFAULT_SETTINGS.for_format("avif")["advanced"] == list(DEFAULT_SETTINGS.avif_advanced)


def test_rejected_avif_option_is_dropped(caplog):
    settings = EncoderSettings(avif_advanced=(("enable-smooth-intra", "0"), ("no-such-libaom-option", "1")))
    with caplog.at_level(logging.WARNING, logger="limner.imaging"):
        opts = settings.for_format("avif")
    assert opts["advanced"] == [("enable-smooth-intra", "0")]
    assert "no-such-libaom-option=1" in caplog.text
    # the fingerprint names what is actually used, and encoding works
    assert "no-such-libaom-option" not in settings_fingerprint("avif", settings)
    with Image.open(io.BytesIO(encode(detailed_image(64, 48), "avif", settings))) as im:
        assert im.size == (64, 48)


def test_no_advanced_options():
    assert "advanced" not in EncoderSettings(avif_advanced=()).for_format("avif")


def test_small_avif_variants_use_the_faster_speed():
    from PIL import Image

    small, large = DEFAULT_SETTINGS.avif_small_width, DEFAULT_SETTINGS.avif_small_width + 1
    assert DEFAULT_SETTINGS.for_format("avif", small)["speed"] == DEFAULT_SETTINGS.avif_small_speed == 9
    assert DEFAULT_SETTINGS.for_format("avif", large)["speed"] == DEFAULT_SETTINGS.avif_speed == 8
    assert DEFAULT_SETTINGS.for_format("avif")["speed"] == 8  # width unknown: the full-size speed
    im = Image.linear_gradient("L").convert("RGB").resize((64, 48))
    slow = EncoderSettings(avif_small_speed=8)
    assert encode(im, "avif") != encode(im, "avif", slow)  # the small-image speed is really used
