"""Styles and prompts: versioned, sandboxed templates that give a whole catalogue one look."""

from limner.styles.loader import load_styles
from limner.styles.models import Style
from limner.styles.spec import RenderSpec, build_spec, derive_seed, size_for_aspect
from limner.styles.templates import PromptRenderer

__all__ = ["PromptRenderer", "RenderSpec", "Style", "build_spec", "derive_seed", "load_styles", "size_for_aspect"]
