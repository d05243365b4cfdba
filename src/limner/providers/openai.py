"""OpenAI images with the GPT Image models (``gpt-image-1`` and its siblings).

::

    POST {base}/images/generations     header ``Authorization: Bearer $OPENAI_API_KEY``
      {"model", "prompt", "size", "quality", "n": 1, "output_format": "png", ...}
      -> {"created", "data": [{"b64_json": "..."}], "usage": {...}}

``base`` is ``providers.openai.base_url``, else ``OPENAI_BASE_URL``, else ``https://api.openai.com/v1``.

* GPT Image models always answer base64 (no ``response_format``).
* Sizes are fixed: the request is snapped to the nearest of ``1024x1024``, ``1536x1024`` and
  ``1024x1536`` by aspect ratio.
* There is no seed: ``supports_seed`` is false, and the result's ``seed`` echoes the request's
  without being honoured (``metadata["seed_honoured"]`` is false). Negative prompts are not supported
  either and are ignored.
* A refusal is HTTP 400 with ``{"error": {"code": "moderation_blocked", ...}}`` -> ``ContentRefused``.
* An account that cannot pay answers HTTP 429 (or 400) with ``{"error": {"code": "insufficient_quota"}}``
  (or ``billing_hard_limit_reached``): ``OutOfCredit``, which stops the run, not a rate limit to wait out.

Settings (``[providers.openai]``): ``quality`` (``low`` / ``medium`` (default) / ``high`` / ``auto``;
a style's ``params.quality`` wins; with ``auto`` the call is priced at the quality the answer names),
``timeout_s``, ``max_download_bytes`` (cap on the decoded image),
``base_url``.

API: https://platform.openai.com/docs/api-reference/images/create
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

import httpx

from .base import Capabilities, GenerationRequest, GenerationResult, Price
from .errors import ContentRefused, InvalidRequest, OutOfCredit
from .hosted import HOSTED_SETTINGS, HostedProvider
from .options import snap_aspect

KEY_ENV = "OPENAI_API_KEY"
BASE_ENV = "OPENAI_BASE_URL"
DEFAULT_BASE_URL = "https://api.openai.com/v1"

#: aspect ratio -> the size GPT Image models accept
SIZES = {"1:1": "1024x1024", "3:2": "1536x1024", "2:3": "1024x1536"}
QUALITIES = ("low", "medium", "high", "auto")
SUPPORTED_PARAMS = ("background", "moderation")
REFUSAL_CODES = ("moderation_blocked", "content_policy_violation")
#: error codes of an account that cannot pay (HTTP 429 or 400): no retry can help
QUOTA_CODES = ("insufficient_quota", "billing_hard_limit_reached")

# USD per image by quality: (1024x1024, 1536x1024 or 1024x1536). gpt-image-1: OpenAI's list prices as
# quoted on https://fal.ai/models/fal-ai/gpt-image-1/edit-image/llms.txt; gpt-image-1-mini: OpenAI's model
# page https://developers.openai.com/api/docs/models/gpt-image-1-mini; gpt-image-1.5: as quoted by a relay
# (https://docs.apiyi.com/api-capabilities/gpt-image-2/historical-versions), unconfirmed. "auto" is
# estimated as "medium". Source of record: https://platform.openai.com/docs/pricing
PER_IMAGE: dict[str, dict[str, tuple[float, float]]] = {
    "gpt-image-1": {"low": (0.011, 0.016), "medium": (0.042, 0.063), "high": (0.167, 0.25)},
    "gpt-image-1-mini": {"low": (0.005, 0.006), "medium": (0.011, 0.015), "high": (0.036, 0.052)},
    "gpt-image-1.5": {"low": (0.009, 0.013), "medium": (0.034, 0.05), "high": (0.133, 0.2)},
}
_PRICING = "https://platform.openai.com/docs/pricing"


def image_cost(model: str, quality: str, size: str) -> float | None:
    table = PER_IMAGE.get(model)
    if table is None:
        return None
    square, other = table.get(quality if quality in table else "medium", table["medium"])
    return square if size == "1024x1024" else other


class OpenAIProvider(HostedProvider):
    name = "openai"
    default_model = "gpt-image-1"
    image_settings = ("quality",)
    accepted_settings = HOSTED_SETTINGS | {*image_settings}
    capabilities = Capabilities(
        supports_seed=False,
        supports_negative_prompt=False,
        max_concurrency=4,
        rate_limit_per_minute=5,  # conservative (low usage tiers); raise with providers.openai.rate_limit_per_minute
        max_side=1536,
        size_multiple=16,
    )
    #: medium quality, 1024x1024 (plan estimates); generate() prices the actual quality and size
    prices: ClassVar[dict[str, Price]] = {
        model: Price(usd_per_image=table["medium"][0], as_of="2026-11", source=_PRICING) for model, table in PER_IMAGE.items()
    }
    required_env = (KEY_ENV,)
    key_env, base_env, default_base_url = KEY_ENV, BASE_ENV, DEFAULT_BASE_URL
    supported_params = SUPPORTED_PARAMS
    credit_hint = "add credit at https://platform.openai.com/settings/organization/billing"

    @classmethod
    def estimate_usd(cls, model: str | None, width: int, height: int, *, params: Mapping[str, Any],
                     settings: Mapping[str, Any]) -> float:
        """The price at the size the entry snaps to and the quality the style or the settings ask for (``auto``:
        the dearest): never less than the call costs."""
        model = model or cls.default_model
        quality = str(params.get("quality") or settings.get("quality") or "medium")
        qualities = [quality] if quality in ("low", "medium", "high") else ["low", "medium", "high"]  # auto: any
        size = SIZES[snap_aspect(width, height, list(SIZES))]
        costs = [image_cost(model, q, size) for q in qualities]
        known = [c for c in costs if c is not None]
        return max(known) if known else cls.price_for(model, width, height)

    async def error_hook(self, response: httpx.Response) -> None:
        """HTTP 400 ``moderation_blocked``: the safety system refused the prompt or the image; 429/400
        ``insufficient_quota``: the account cannot pay (decided by the error's ``code``, not its text)."""
        if response.status_code not in (400, 429):
            return
        try:
            error = response.json().get("error")
        except (ValueError, AttributeError):
            return
        if not isinstance(error, dict):
            return
        if error.get("code") in QUOTA_CODES or error.get("type") in QUOTA_CODES:
            message = self.http.redact.clip(str(error.get("message") or error.get("code")), 300)
            raise OutOfCredit(self.http.redact(f"openai: HTTP {response.status_code}: {message} ({self.credit_hint})"))
        if response.status_code == 400 and error.get("code") in REFUSAL_CODES:
            message = self.http.redact.clip(str(error.get("message") or error.get("code")), 300)
            raise ContentRefused(self.http.redact(f"openai: refused by the safety system ({error['code']}): {message}"))

    async def check(self) -> str:
        """``limner doctor``: ``GET /models/{model}`` checks the key and that it may use the model."""
        await super().check()
        answer = await self.http.json("GET", f"/models/{self.model}", headers=self.auth_headers())
        return f"key accepted; model {answer.get('id') if isinstance(answer, dict) else self.model} available"

    def _fit(self, request: GenerationRequest) -> tuple[dict[str, Any], str, str]:
        params = dict(request.params)
        quality = str(params.pop("quality", None) or self.settings.get("quality") or "medium")
        if quality not in QUALITIES:
            raise InvalidRequest(f"openai: quality must be one of {', '.join(QUALITIES)}, not {quality!r}")
        size = SIZES[snap_aspect(request.width, request.height, list(SIZES))]
        return self.api_params(params), quality, size

    async def generate(self, request: GenerationRequest) -> GenerationResult:
        http = self.http
        model = request.model or self.model
        params, quality, size = self._fit(request)
        body: dict[str, Any] = {"model": model, "prompt": request.prompt, "size": size, "quality": quality,
                                "n": 1, "output_format": "png", **params}

        cost = image_cost(model, quality, size)
        width, height = (int(v) for v in size.split("x"))
        if cost is None:
            cost = self.price_for(model, width, height)
        answer = await http.json("POST", "/images/generations", json=body, headers=self.auth_headers(),
                                 max_bytes=http.inline_image_json_bytes, billed_usd=cost)  # the image inline, base64
        # the answer names the quality and size generated (never "auto": openai-python types/images_response.py);
        # with quality "auto" that is what the call was billed at, not the medium fallback
        generated = answer.get("quality") if isinstance(answer, dict) else None
        if generated in ("low", "medium", "high") and generated != quality:
            actual = image_cost(model, generated, size)
            cost, quality = (actual if actual is not None else cost), generated
        data = self.b64_json_image(answer, billed_usd=cost)
        metadata: dict[str, Any] = {"size": size, "quality": quality, "seed_honoured": False}
        if isinstance(answer.get("usage"), dict):
            metadata["usage"] = answer["usage"]
        return GenerationResult(data=data, seed=request.seed, cost_usd=cost, model=model, metadata=metadata)
