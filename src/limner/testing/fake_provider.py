"""A scriptable fake provider that records its calls (like ``llm``'s mock model).

Settings (``[providers.fake]`` in limner.toml, or the ``settings`` dict):

* ``latency_s``: fixed latency per call
* ``size``: long side of the (noisy, deterministic) image it returns; default 64
* ``calls_file``: append one JSON line per call (works across processes)
* ``spans_file``: append ``{"id", "start", "end", "pid"}`` when a call's latency is over (epoch seconds):
  how many calls were in flight at once, across processes
* ``transient_ids`` / ``rate_limit_ids``: ``{id: n}`` fail the first n calls for that id
* ``retry_after``: the ``retry_after`` of those rate limits (default 0.01 s)
* ``refuse_ids``, ``blank_ids``, ``corrupt_ids``: lists of ids
* ``auth_fail``: every call raises AuthFailed
* ``auth_env`` / ``auth_accepts``: the variable holding the key (environment or the project's .env), read on
  the instance's first call and kept, as a hosted API's client keeps it; a call made with another value than
  ``auth_accepts`` (or none) is refused with AuthFailed, as a 401
* ``price_usd``: cost reported per successful call

It sets no ``max_concurrency`` (``concurrency_hint()`` is None): ``[generate] concurrency`` applies.
"""

from __future__ import annotations

import asyncio
import io
import json
import os
import time
from collections import Counter
from typing import Any, ClassVar

import numpy as np
from PIL import Image

from limner.plugins.hookspecs import hookimpl
from limner.providers import AuthFailed, Capabilities, ContentRefused, GenerationRequest, GenerationResult, Provider, RateLimited, Transient
from limner.registry import ProviderSpec


def noisy_png(width: int, height: int, seed: int) -> bytes:
    rng = np.random.default_rng(seed)
    base = rng.integers(0, 256, size=(max(1, height // 8), max(1, width // 8), 3), dtype=np.uint8)
    im = Image.fromarray(base).resize((width, height), Image.Resampling.BILINEAR)
    buf = io.BytesIO()
    im.save(buf, "PNG", compress_level=1)
    return buf.getvalue()


class FakeProvider(Provider):
    name = "fake"
    default_model = "fake-1"
    capabilities: ClassVar[Capabilities] = Capabilities(size_multiple=8)
    price_usd = 0.0
    accepted_settings = frozenset({"latency_s", "size", "calls_file", "spans_file", "transient_ids", "rate_limit_ids",
                                   "retry_after", "refuse_ids", "blank_ids", "corrupt_ids", "auth_fail",
                                   "auth_env", "auth_accepts"})

    def __init__(self, *, model: str | None = None, settings: dict[str, Any] | None = None) -> None:
        super().__init__(model=model, settings=settings)
        self.calls: list[GenerationRequest] = []
        self._seen: Counter[str] = Counter()
        self._key: str | None = None
        self._key_read = False

    def credential_names(self) -> list[str]:
        env = self.settings.get("auth_env")
        return [*super().credential_names(), *([str(env)] if env else [])]

    async def prepare(self) -> None:
        if self.settings.get("auth_env") and not self._key_read:  # read once, as a client is built once
            self._key, self._key_read = self.secret(str(self.settings["auth_env"])), True

    async def generate(self, request: GenerationRequest) -> GenerationResult:
        s = self.settings
        entry_id = str(request.context.get("id", ""))
        self.calls.append(request)
        self._seen[entry_id] += 1
        n = self._seen[entry_id]
        if s.get("calls_file"):
            with open(s["calls_file"], "a", encoding="utf-8") as fh:
                fh.write(json.dumps({"id": entry_id, "seed": request.seed, "pid": os.getpid()}) + "\n")
        started = time.time()
        if s.get("latency_s"):
            await asyncio.sleep(float(s["latency_s"]))
        if s.get("spans_file"):
            with open(s["spans_file"], "a", encoding="utf-8") as fh:
                fh.write(json.dumps({"id": entry_id, "start": started, "end": time.time(), "pid": os.getpid()}) + "\n")
        if s.get("auth_fail"):
            raise AuthFailed("fake: invalid token")
        if s.get("auth_env") and self._key != str(s.get("auth_accepts")):
            raise AuthFailed(f"fake: {s['auth_env']} is not a valid key (401)")
        if n <= int((s.get("rate_limit_ids") or {}).get(entry_id, 0)):
            raise RateLimited("fake: 429 Too Many Requests", retry_after=float(s.get("retry_after", 0.01)))
        if n <= int((s.get("transient_ids") or {}).get(entry_id, 0)):
            raise Transient("fake: 503 Service Unavailable")
        if entry_id in (s.get("refuse_ids") or []):
            raise ContentRefused("fake: content refused by the safety filter")
        long_side = int(s.get("size", 64))
        scale = long_side / max(request.width, request.height)
        w, h = max(8, round(request.width * scale)), max(8, round(request.height * scale))
        if entry_id in (s.get("blank_ids") or []):
            buf = io.BytesIO()
            Image.new("RGB", (w, h), (128, 128, 128)).save(buf, "PNG")
            data = buf.getvalue()
        elif entry_id in (s.get("corrupt_ids") or []):
            data = noisy_png(w, h, request.seed)[:200]
        else:
            data = noisy_png(w, h, request.seed)
        return GenerationResult(data=data, seed=request.seed, cost_usd=float(s.get("price_usd", 0.0)), model=self.model)


@hookimpl
def register_providers(register):  # type: ignore[no-untyped-def]
    register(ProviderSpec(name="fake", target="limner.testing.fake_provider:FakeProvider",
                          description="Scriptable fake for tests and benchmarks."))
