"""Image handling for Limner: safe decoding, validation, provenance and derivatives.

Every public function is pure and synchronous with picklable arguments and results,
so it can run inside a ``ProcessPoolExecutor``.
"""

from .decode import ImageInfo, ImageRejected, inspect_image, safe_open, sniff_format
from .derive import (
    DEFAULT_FORMATS,
    DEFAULT_WIDTHS,
    Derived,
    Variant,
    derive_all,
    plan_widths,
)
from .encoders import DEFAULT_SETTINGS, EncoderSettings
from .placeholders import Placeholder, make_placeholder
from .provenance import Provenance, embed_xmp, xmp_packet
from .validate import NEAR_DUPLICATE_DISTANCE, Validated, phash_distance, validate_image

__all__ = [
    "DEFAULT_FORMATS",
    "DEFAULT_SETTINGS",
    "DEFAULT_WIDTHS",
    "Derived",
    "EncoderSettings",
    "ImageInfo",
    "ImageRejected",
    "NEAR_DUPLICATE_DISTANCE",
    "Placeholder",
    "Provenance",
    "Validated",
    "Variant",
    "derive_all",
    "embed_xmp",
    "inspect_image",
    "make_placeholder",
    "phash_distance",
    "plan_widths",
    "safe_open",
    "sniff_format",
    "validate_image",
    "xmp_packet",
]
