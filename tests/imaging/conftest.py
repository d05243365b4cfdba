"""Fixtures for the imaging tests."""

from __future__ import annotations

import pytest
from imaging_samples import detailed_image, encode
from PIL import Image


@pytest.fixture
def detailed() -> Image.Image:
    return detailed_image()


@pytest.fixture
def detailed_png(detailed) -> bytes:
    return encode(detailed, "PNG")
