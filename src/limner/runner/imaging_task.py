"""The CPU-bound part of a unit of work, run in a process pool: validate, then derive."""

from __future__ import annotations

from dataclasses import dataclass

from limner.imaging import Derived, Provenance, Validated, derive_all, validate_image


@dataclass(frozen=True)
class DeriveOptions:
    widths: tuple[int, ...]
    formats: tuple[str, ...]
    placeholder_width: int
    placeholder_format: str
    placeholder_max_bytes: int
    max_bytes: int
    max_pixels: int


@dataclass(frozen=True)
class Processed:
    validated: Validated
    derived: Derived


def process_master(master: bytes, provenance: Provenance, opts: DeriveOptions) -> Processed:
    """Validate a master and derive its variants and placeholders. Raises ``ImageRejected``."""
    validated = validate_image(master, max_bytes=opts.max_bytes, max_pixels=opts.max_pixels)
    derived = derive_all(
        master,
        provenance,
        widths=opts.widths,
        formats=opts.formats,
        placeholder_width=opts.placeholder_width,
        placeholder_format=opts.placeholder_format,
        placeholder_max_bytes=opts.placeholder_max_bytes,
        max_bytes=opts.max_bytes,
        max_pixels=opts.max_pixels,
        threads=1,  # one process per core already: no encoder threads on top
    )
    return Processed(validated=validated, derived=derived)
