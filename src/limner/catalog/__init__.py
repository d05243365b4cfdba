"""The catalogue: the entries that need images, read from YAML, JSON, JSONL or CSV."""

from limner.catalog.loader import Catalog, load_catalog
from limner.catalog.models import SLUG_PATTERN, Entry

__all__ = ["SLUG_PATTERN", "Catalog", "Entry", "load_catalog"]
