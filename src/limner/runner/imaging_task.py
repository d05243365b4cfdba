"""The CPU-bound part of a unit of work, run in a process pool: validate, then derive.

This module is light to import (the runner's main process needs its types); the imaging stack
itself is imported by the pool's forkserver (see :mod:`limner.runner.pool`) and on first use.
"""

from __future__ import annotations

from dataclasses import dataclass
from limner.imaging.provenance import Provenance
from limner.imaging.results import Derived, Validated

__all__ = ["DeriveOptions", "Processed", "Provenance", "process_master", "warm_up"]

#: imported by the pool's forkserver once, so that every worker it forks has them
IMAGING_MODULES = ("limner.imaging.derive", "limner.imaging.validate", "limner.imaging.placeholders",
                   "limner.imaging.provenance")


@dataclass(frozen=True)
class DeriveOptions:
    widths: tuple[int, ...]
    formats: tuple[str, ...]
    placeholder_width: int
    placeholder_format: str
    placeholder_max_bytes: int
    max_bytes: int
    max_pixels: int
    #: ``compact`` (default): variants and placeholders carry no prompt, model or seed; ``full``: all of it
    variant_provenance: str = "compact"


@dataclass(frozen=True)
class Processed:
    validated: Validated
    derived: Derived


def process_master(master: bytes, provenance: Provenance, opts: DeriveOptions) -> Processed:
    """Validate a master and derive its variants and placeholders, decoding it once. Raises ``ImageRejected``."""
    from limner.imaging.decode import safe_open
    from limner.imaging.derive import derive_all
    from limner.imaging.validate import validate_image

    image = safe_open(master, max_bytes=opts.max_bytes, max_pixels=opts.max_pixels)
    validated = validate_image(master, max_bytes=opts.max_bytes, max_pixels=opts.max_pixels, image=image)
    derived = derive_all(
        master,
        provenance if opts.variant_provenance == "full" else provenance.public(),
        widths=opts.widths,
        formats=opts.formats,
        placeholder_width=opts.placeholder_width,
        placeholder_format=opts.placeholder_format,
        placeholder_max_bytes=opts.placeholder_max_bytes,
        max_bytes=opts.max_bytes,
        max_pixels=opts.max_pixels,
        threads=1,  # one process per core already: no encoder threads on top
        image=image,
    )
    return Processed(validated=validated, derived=derived)


def warm_up(opts: DeriveOptions) -> None:
    """Run the whole pipeline once on a tiny image: Pillow's plugins, the codecs' first-use set-up and
    the hashing tables are then ready before the first real image arrives."""
    import io

    from PIL import Image

    image = Image.linear_gradient("L").resize((32, 24)).convert("RGB")
    buf = io.BytesIO()
    image.save(buf, "PNG")
    tiny = DeriveOptions(widths=(32,), formats=opts.formats, placeholder_width=16,
                         placeholder_format=opts.placeholder_format, placeholder_max_bytes=opts.placeholder_max_bytes,
                         max_bytes=opts.max_bytes, max_pixels=opts.max_pixels,
                         variant_provenance=opts.variant_provenance)
    process_master(buf.getvalue(), Provenance(entry_id="warm-up", title="warm-up", prompt="", model="", provider="",
                                              seed=0), tiny)
