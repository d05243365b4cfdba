"""Together AI image generations (one synchronous call, the image comes back base64-encoded).

::

    POST {base}/v1/images/generations     header ``Authorization: Bearer $TOGETHER_API_KEY``
      {"model", "prompt", "width", "height", "steps", "n": 1, "seed", "negative_prompt"?,
       "response_format": "base64"}
      -> {"id", "model", "object": "list", "data": [{"index": 0, "b64_json": "..."}]}

``base`` is ``providers.together.base_url``, else ``TOGETHER_BASE_URL``, else ``https://api.together.xyz``.

Together does not document a moderation answer for images; a 4xx whose error mentions NSFW, safety,
moderation or content policy is taken as a refusal (``ContentRefused``), any other 4xx as
``InvalidRequest``.

HTTP 402 (``credit_limit``: no credit left) is ``OutOfCredit`` and stops the run.

Settings (``[providers.together]``): ``timeout_s``, ``max_download_bytes`` (cap on the decoded image),
``base_url``.

API: https://docs.together.ai/docs/images-overview (base64 images: ``response_format: "base64"``).
"""

from __future__ import annotations

import re
from typing import Any, ClassVar

import httpx

from .base import Capabilities, GenerationRequest, GenerationResult, Price
from .errors import ContentRefused
from .hosted import HOSTED_SETTINGS, HostedProvider

KEY_ENV = "TOGETHER_API_KEY"
BASE_ENV = "TOGETHER_BASE_URL"
DEFAULT_BASE_URL = "https://api.together.xyz"

SUPPORTED_PARAMS = ("steps", "guidance_scale", "output_format", "disable_safety_checker", "image_loras")
ALIASES = {"num_inference_steps": "steps", "guidance": "guidance_scale"}
#: steps sent when the style sets none: the "default steps" of Together's image-model table
DEFAULT_STEPS = {"black-forest-labs/FLUX.1-schnell": 4, "black-forest-labs/FLUX.1-dev": 28,
                 "black-forest-labs/FLUX.1-krea-dev": 28}

REFUSAL = re.compile(r"nsfw|safety|moderat|content[ _-]?policy|flagged", re.IGNORECASE)

# FLUX.1 [schnell]: $0.0027 per 1024x1024 image (together.ai/pricing, as quoted on
# https://www.workflowlab.dev/cost/flux-schnell-together, verified May 2026), i.e. per megapixel.
# FLUX.1 [dev] could not be confirmed with the search tool: $0.025/MP is a reasonable list price; check it.
_PRICING = "https://www.together.ai/pricing"


class TogetherProvider(HostedProvider):
    name = "together"
    accepted_settings = HOSTED_SETTINGS
    default_model = "black-forest-labs/FLUX.1-schnell"
    capabilities = Capabilities(
        supports_seed=True,
        supports_negative_prompt=True,  # accepted by the API; FLUX models ignore it
        max_concurrency=4,
        rate_limit_per_minute=60,  # conservative; Together's limits depend on the account tier
        max_side=2048,  # larger sizes are refused here; the API's own 4xx covers model-specific limits
        size_multiple=16,
    )
    prices: ClassVar[dict[str, Price]] = {
        "black-forest-labs/FLUX.1-schnell": Price(usd_per_megapixel=0.0027, as_of="2026-11", source=_PRICING),
        "black-forest-labs/FLUX.1-dev": Price(usd_per_megapixel=0.025, as_of="2026-11", source=_PRICING),
    }
    required_env = (KEY_ENV,)
    key_env, base_env, default_base_url = KEY_ENV, BASE_ENV, DEFAULT_BASE_URL
    supported_params, param_aliases = SUPPORTED_PARAMS, ALIASES
    credit_hint = "add credit at https://api.together.xyz/settings/billing"

    async def error_hook(self, response: httpx.Response) -> None:
        """A 400/422 whose error mentions NSFW, safety, moderation or content policy is a refusal."""
        if response.status_code not in (400, 422):
            return
        try:
            error = response.json().get("error")
        except (ValueError, AttributeError):
            return
        if isinstance(error, str):
            error = {"message": error}
        if not isinstance(error, dict):
            return
        text = " ".join(str(error.get(k) or "") for k in ("code", "type", "message"))
        if REFUSAL.search(text):
            raise ContentRefused(self.http.redact.clip(f"together: refused: {error.get('message') or text}", 400))

    async def check(self) -> str:
        """``limner doctor``: ``GET /v1/models`` checks the key and looks for the model."""
        await super().check()
        answer = await self.http.json("GET", "/v1/models", headers=self.auth_headers())
        models = answer.get("data", []) if isinstance(answer, dict) else answer
        listed = any(isinstance(m, dict) and m.get("id") == self.model for m in models or [])
        return f"key accepted; model {self.model} {'available' if listed else 'not in the model list'}"

    async def generate(self, request: GenerationRequest) -> GenerationResult:
        http = self.http
        model = request.model or self.model
        width, height = self.fit_size(request)
        body: dict[str, Any] = {"model": model, "prompt": request.prompt, "width": width, "height": height,
                                "n": 1, "seed": request.seed, "response_format": "base64"}
        if model in DEFAULT_STEPS:
            body["steps"] = DEFAULT_STEPS[model]
        if request.negative_prompt:
            body["negative_prompt"] = request.negative_prompt
        body.update(self.api_params(request.params))

        cost = self.price_for(model, width, height)
        answer = await http.json("POST", "/v1/images/generations", json=body, headers=self.auth_headers(),
                                 max_bytes=http.inline_image_json_bytes, billed_usd=cost)  # the image inline, base64
        data = self.b64_json_image(answer, billed_usd=cost)
        metadata: dict[str, Any] = {"id": str(answer.get("id") or ""), "width": width, "height": height}
        return GenerationResult(data=data, seed=request.seed, cost_usd=cost,
                                model=str(answer.get("model") or model), metadata=metadata)
