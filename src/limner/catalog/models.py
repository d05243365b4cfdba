"""A catalogue entry. Extra fields are kept and usable in prompt templates."""

from __future__ import annotations

import re
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, StrictInt, field_validator

SLUG_PATTERN = r"^[a-z0-9][a-z0-9-]{0,127}$"
_ASPECT = re.compile(r"^\s*(\d{1,3})\s*[:x/]\s*(\d{1,3})\s*$")


def normalize_aspect(v: str) -> str:
    """``"16:9"`` (also ``16x9``, ``16/9``) as ``"16:9"``; ``ValueError`` for anything else or beyond 4:1."""
    m = _ASPECT.match(v)
    if not m or int(m.group(1)) == 0 or int(m.group(2)) == 0:
        raise ValueError("must look like 16:9")
    a, b = int(m.group(1)), int(m.group(2))
    if max(a, b) / min(a, b) > 4:
        raise ValueError("must be between 1:4 and 4:1")
    return f"{a}:{b}"


class Entry(BaseModel):
    model_config = ConfigDict(extra="allow", frozen=True, str_strip_whitespace=True)

    id: str = Field(pattern=SLUG_PATTERN)
    title: str = Field(min_length=1)
    year: StrictInt | None = None
    date: str | None = None
    era: str | None = None
    description: str | None = None
    prompt: str | None = None
    style: str | None = None
    provider: str | None = None
    seed: StrictInt | None = Field(None, ge=0, le=2**32 - 1)
    aspect: str | None = None
    alt: str | None = None
    tags: list[str] = Field(default_factory=list)

    @field_validator("aspect")
    @classmethod
    def _aspect(cls, v: str | None) -> str | None:
        return None if v is None else normalize_aspect(v)

    @property
    def extras(self) -> dict[str, Any]:
        return dict(self.model_extra or {})

    @property
    def year_label(self) -> str:
        if self.date:
            return self.date
        if self.year is None:
            return ""
        return f"{-self.year} BCE" if self.year < 0 else f"{self.year} CE"

    @property
    def alt_text(self) -> str:
        if self.alt:
            return self.alt
        bits = [self.title]
        if self.year_label:
            bits.append(f"({self.year_label})")
        return "Illustration: " + " ".join(bits)

    def template_vars(self) -> dict[str, Any]:
        """Everything a prompt template may use."""
        data = dict(self.__dict__)  # the fields, without model_dump's deep copy (templates cannot mutate)
        data.update(self.__pydantic_extra__ or {})
        data["year_label"] = self.year_label
        data["alt"] = self.alt_text
        data["entry"] = dict(data)
        return data

    def context(self) -> dict[str, Any]:
        """What a provider may see besides the prompt (for drawing providers like sketch)."""
        return {"id": self.id, "title": self.title, "year": self.year, "date": self.year_label, "era": self.era}
