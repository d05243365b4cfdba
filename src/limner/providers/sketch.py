"""The ``sketch`` provider: an offline, deterministic draft illustration drawn with Pillow.

It needs neither network nor GPU and costs nothing, so it is Limner's default
provider when nothing else is configured. The picture is a seeded, layered
landscape in the palette of the entry's era (``context["era"]``), with motifs
of the period, finished as a pencil-and-wash sketch, an illuminated
manuscript, an oil painting or an old photograph depending on the style name
(``context["style"]``), and the entry's title and date in a cartouche. Captions
use a bundled DejaVu Sans subset (Latin, Greek, Cyrillic, Hebrew) and are laid
out right to left where the text asks (see :mod:`limner.providers.sketch_art.text`).

The same request always gives byte-identical PNG bytes.

Test hooks (provider settings):

* ``latency_s``: sleep this long before answering (fixed-latency fake for benchmarks).
* ``fail_ids``: entry ids (``context["id"]``) for which ``generate`` raises
  :class:`~limner.providers.errors.Transient`, to exercise retries.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any

from .base import Capabilities, GenerationRequest, GenerationResult, Provider
from .errors import InvalidRequest, Transient

__all__ = ["SketchProvider", "render_sketch"]


def render_sketch(*args: Any) -> bytes:
    """Draw one sketch (see :func:`limner.providers.sketch_art.render_sketch`). The drawing code (numpy,
    fonts) is imported on first use, so planning with this provider stays cheap."""
    from .sketch_art import render_sketch as draw

    return draw(*args)


def _ctx(context: Any, key: str) -> Any:
    if isinstance(context, Mapping):
        return context.get(key)
    return None


def _renderer() -> str:
    from .sketch_art import RENDERER

    return RENDERER


class SketchProvider(Provider):
    name = "sketch"
    accepted_settings = frozenset({"latency_s", "fail_ids"})  # test hooks (see above)
    concurrency_is_per_machine = True  # it draws on this machine's CPU
    default_model = "sketch-v1"
    capabilities = Capabilities(
        supports_seed=True,
        supports_negative_prompt=False,
        max_concurrency=8,
        rate_limit_per_minute=None,
        max_side=2048,
        size_multiple=8,
    )
    price_usd = 0.0
    offline = True
    digital_source_type = "algorithmicMedia"  # drawn by code, no trained model

    async def check(self) -> str:
        """``limner doctor``: nothing to reach; says how captions are laid out (raqm, or the basic
        layout that cannot draw right-to-left scripts properly)."""
        from .sketch_art import layout_report

        return f"{await super().check()}; {layout_report()}"

    async def generate(self, request: GenerationRequest) -> GenerationResult:
        ctx = request.context
        entry_id = _ctx(ctx, "id")
        fail_ids = self.settings.get("fail_ids") or ()
        if entry_id is not None and (entry_id in fail_ids or str(entry_id) in {str(i) for i in fail_ids}):
            raise Transient(f"sketch: injected failure for {entry_id}")

        try:
            width, height = int(request.width), int(request.height)
        except (TypeError, ValueError) as exc:
            raise InvalidRequest(f"sketch: size must be integers, got {request.width!r}x{request.height!r}") from exc
        max_side = self.capabilities.max_side
        if not (1 <= width <= max_side and 1 <= height <= max_side):
            raise InvalidRequest(f"sketch: size {width}x{height} outside 1..{max_side}")

        try:
            png = await asyncio.to_thread(
                render_sketch,
                width,
                height,
                request.seed,
                _ctx(ctx, "title"),
                _ctx(ctx, "year"),
                _ctx(ctx, "date"),
                _ctx(ctx, "era"),
                _ctx(ctx, "style"),
            )
        except Exception as exc:  # a drawing bug must still surface as a typed error
            raise InvalidRequest(f"sketch: rendering failed: {type(exc).__name__}: {exc}") from exc

        latency = self.settings.get("latency_s")
        if latency:
            await asyncio.sleep(float(latency))
        return GenerationResult(
            data=png,
            seed=request.seed,
            cost_usd=0.0,
            model=self.model,
            metadata={"renderer": _renderer()},
        )
