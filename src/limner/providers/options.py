"""Fit a request to what a provider accepts: supported options, sizes, aspect ratios; read numeric settings.

Unsupported options are dropped with a log line, never sent.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from .errors import InvalidRequest

log = logging.getLogger("limner.providers")


def number_setting(provider: str, settings: Mapping[str, Any], key: str, default: float) -> float:
    """A numeric ``[providers.<name>]`` setting, ``default`` when unset; ``InvalidRequest`` when not a number."""
    value = settings.get(key)
    if value is None or value == "":
        return float(default)
    try:
        return float(value)
    except (TypeError, ValueError):
        raise InvalidRequest(f"{provider}: setting {key} must be a number, got {value!r}") from None


def pick_params(provider: str, params: dict[str, Any], supported: Iterable[str]) -> dict[str, Any]:
    """Keep the parameters the provider supports; log each one dropped."""
    allowed = set(supported)
    kept = {}
    for key, value in params.items():
        if key in allowed:
            kept[key] = value
        else:
            log.info("%s: dropping unsupported option %r", provider, key)
    return kept


def snap_aspect(width: int, height: int, allowed: Sequence[str]) -> str:
    """The allowed aspect ratio ("16:9") closest to width/height."""
    target = width / height

    def distance(ratio: str) -> float:
        a, b = (int(x) for x in ratio.split(":"))
        return abs(a / b - target)

    return min(allowed, key=distance)


def snap_size(width: int, height: int, *, multiple: int = 16, max_side: int = 2048, min_side: int = 64) -> tuple[int, int]:
    """Scale down to ``max_side`` if needed, then round each side to ``multiple``."""
    scale = min(1.0, max_side / max(width, height))

    def snap(v: float) -> int:
        return max(min_side, min(max_side, int(round(v * scale / multiple)) * multiple))

    return snap(width), snap(height)
