"""Image handling for Limner: safe decoding, validation, provenance and derivatives.

Every public function is pure and synchronous with picklable arguments and results,
so it can run inside a ``ProcessPoolExecutor``.

Names are imported from their submodules on first use: ``from limner.imaging.errors import
ImageRejected`` (or any light submodule) must not pay for Pillow, numpy and the codecs.
"""

from __future__ import annotations

import importlib
from typing import Any

_WHERE = {
    "ImageInfo": "results", "inspect_image": "decode", "safe_open": "decode", "sniff_format": "decode",
    "ImageRejected": "errors",
    "DEFAULT_FORMATS": "derive", "DEFAULT_WIDTHS": "derive", "Derived": "results", "Variant": "results",
    "derive_all": "derive", "plan_widths": "derive",
    "DEFAULT_SETTINGS": "encoders", "EncoderSettings": "encoders",
    "Placeholder": "results", "make_placeholder": "placeholders",
    "Provenance": "provenance", "embed_xmp": "provenance", "xmp_packet": "provenance",
    "NEAR_DUPLICATE_DISTANCE": "validate", "Validated": "results", "phash_distance": "validate",
    "validate_image": "validate",
}

__all__ = sorted(_WHERE)


def __getattr__(name: str) -> Any:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module 'limner.imaging' has no attribute {name!r}")
    value = getattr(importlib.import_module(f"limner.imaging.{module}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return __all__
