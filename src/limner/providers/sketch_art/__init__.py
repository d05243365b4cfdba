"""Drawing code of the offline ``sketch`` provider (see :mod:`limner.providers.sketch`)."""

from .palettes import PALETTES, normalize_era
from .render import RENDERER, render_image, render_sketch, style_kind
from .text import format_year, layout_report, sanitize

__all__ = ["PALETTES", "RENDERER", "format_year", "layout_report", "normalize_era", "render_image", "render_sketch", "sanitize", "style_kind"]
