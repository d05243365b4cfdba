"""A render spec: everything that shapes one image, and its fingerprint.

The fingerprint is the sha256 of the rendered prompt, negative prompt, provider,
model, parameters, seed, size and the style's template digest. When it changes,
the published image is stale.
"""

from __future__ import annotations

import hashlib
import json
import re
from functools import lru_cache
from dataclasses import asdict, dataclass, field
from typing import Any

from limner.catalog.models import Entry
from limner.styles.models import Style
from limner.styles.templates import PromptRenderer

_ASPECT = re.compile(r"^(\d+):(\d+)$")


@dataclass(frozen=True)
class RenderSpec:
    entry_id: str
    style: str
    style_version: str
    template_sha: str
    prompt: str
    negative_prompt: str
    provider: str
    model: str
    seed: int
    width: int
    height: int
    params: dict[str, Any] = field(default_factory=dict)
    #: provider settings that change the image (see ``Provider.image_settings``)
    provider_settings: dict[str, Any] = field(default_factory=dict)

    @property
    def fingerprint(self) -> str:
        return fingerprint_of(self)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


FINGERPRINT_VERSION = 1


def fingerprint_of(spec: RenderSpec) -> str:
    """sha256 over a JSON array of everything that shapes the image (JSON keeps the fields unambiguous)."""
    params = json.dumps(spec.params, sort_keys=True, ensure_ascii=False, separators=(",", ":")) if spec.params else "{}"
    fields: list[Any] = [FINGERPRINT_VERSION, spec.prompt, spec.negative_prompt, spec.provider, spec.model, params,
                         spec.seed, spec.width, spec.height, spec.template_sha]
    if spec.provider_settings:  # only when set, so fingerprints without them stay as they were
        fields.append(json.dumps(spec.provider_settings, sort_keys=True, ensure_ascii=False, default=str))
    payload = json.dumps(fields, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(payload.encode("utf-8")).hexdigest()


def derive_seed(entry_id: str) -> int:
    """A stable seed from the entry id, for entries that give none (recorded like any other)."""
    return int.from_bytes(hashlib.sha256(f"limner-seed:{entry_id}".encode()).digest()[:4], "big") & 0x7FFFFFFF


@lru_cache(maxsize=256)
def size_for_aspect(aspect: str, long_side: int, multiple: int = 16) -> tuple[int, int]:
    m = _ASPECT.match(aspect.replace(" ", ""))
    if not m:
        raise ValueError(f"bad aspect {aspect!r}")
    a, b = int(m.group(1)), int(m.group(2))

    def snap(v: float) -> int:
        return max(multiple, int(round(v / multiple)) * multiple)

    if a >= b:
        return snap(long_side), snap(long_side * b / a)
    return snap(long_side * a / b), snap(long_side)


def build_spec(
    entry: Entry,
    style: Style,
    renderer: PromptRenderer,
    *,
    provider: str,
    model: str,
    long_side: int,
    default_aspect: str,
    size_multiple: int = 16,
    provider_settings: dict[str, Any] | None = None,
) -> RenderSpec:
    prompt, negative = renderer.render(style, entry)
    width, height = size_for_aspect(entry.aspect or style.aspect or default_aspect, long_side, size_multiple)
    return RenderSpec(
        entry_id=entry.id,
        style=style.name,
        style_version=style.version,
        template_sha=style.template_sha,
        prompt=prompt,
        negative_prompt=negative,
        provider=provider,
        model=model,
        seed=entry.seed if entry.seed is not None else derive_seed(entry.id),
        width=width,
        height=height,
        params=dict(style.params),
        provider_settings=dict(provider_settings or {}),
    )
