"""A style: positive and negative prompt templates, a version, a default aspect, provider parameters."""

from __future__ import annotations

import datetime as dt
import hashlib
from functools import cached_property
import json
import math
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

from limner.catalog.models import SLUG_PATTERN, normalize_aspect


class Style(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(pattern=SLUG_PATTERN)
    #: bump when you change the look on purpose; recorded with every render
    version: str = "1"
    description: str = ""
    #: Jinja2 template for the positive prompt (sandboxed); entry fields are variables
    positive: str = Field(min_length=1)
    #: Jinja2 template for the negative prompt
    negative: str = ""
    #: default aspect ratio for entries of this style
    aspect: str | None = None
    #: provider parameters (steps, guidance, ...), passed through to the provider
    params: dict[str, Any] = Field(default_factory=dict)
    #: provider override for entries of this style
    provider: str | None = None
    #: where it was defined: "builtin", "limner.toml" or a file path
    source: str = "builtin"

    @field_validator("params")
    @classmethod
    def _params(cls, v: dict[str, Any]) -> dict[str, Any]:
        # TOML dates and times (``when = 1979-05-27``) are passed on as their ISO text, as YAML dates in the
        # catalogue are: providers send params as JSON, and the style's digest is taken over JSON
        found = _not_finite(v, "params")
        if found is not None:  # TOML's inf and nan, which JSON has not: an API would get 'Infinity'
            where, value = found
            raise ValueError(f"{where} must be a finite number, got {value}; params are sent to the provider as JSON, "
                             "which has no inf or nan: leave it out for the provider's default")
        return _iso_dates(v)

    @field_validator("aspect")
    @classmethod
    def _aspect(cls, v: str | None) -> str | None:
        # checked at load time: a bad aspect would otherwise fail only when an image is sized
        return None if v is None else normalize_aspect(v)

    @cached_property
    def template_sha(self) -> str:
        """Digest of everything in the style that shapes a prompt (not its description or source)."""
        payload = json.dumps(
            {"positive": self.positive, "negative": self.negative, "version": self.version, "params": self.params, "aspect": self.aspect},
            sort_keys=True,
            ensure_ascii=False,
        )
        return hashlib.sha256(payload.encode()).hexdigest()


def _not_finite(value: Any, path: str, depth: int = 0) -> tuple[str, float] | None:
    """Where in ``value`` an inf or a nan is (``params.guidance``, ``params.loras[1].scale``), and which."""
    if isinstance(value, float):
        return None if math.isfinite(value) else (path, value)
    if depth > 20:
        return None
    items = value.items() if isinstance(value, dict) else enumerate(value) if isinstance(value, list) else ()
    for key, item in items:
        found = _not_finite(item, f"{path}[{key}]" if isinstance(key, int) else f"{path}.{key}", depth + 1)
        if found is not None:
            return found
    return None


def _iso_dates(value: Any) -> Any:
    """``value`` with every date, time and datetime in it (at any depth) as its ISO text."""
    if isinstance(value, (dt.date, dt.time)):  # dt.datetime is a dt.date
        return value.isoformat()
    if isinstance(value, dict):
        return {k: _iso_dates(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_iso_dates(v) for v in value]
    return value
