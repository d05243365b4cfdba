"""Hugging Face Inference Providers, through the router's ``hf-inference`` route (text-to-image task).

::

    POST {base}/hf-inference/models/{model}     header ``Authorization: Bearer $HF_TOKEN``
      {"inputs": prompt, "parameters": {"width", "height", "seed", "num_inference_steps"?,
                                        "guidance_scale"?, "negative_prompt"?, "scheduler"?}}
      -> the image bytes (``Content-Type: image/*``)

``base`` is ``providers.huggingface.base_url``, else ``HF_BASE_URL``, else ``https://router.huggingface.co``.

* 429 -> ``RateLimited``; 503 ``{"error": "Model ... is currently loading", "estimated_time": 20}``
  -> ``RateLimited(retry_after=estimated_time)`` (a cold model: wait about that long, then retry).
* Hugging Face documents no moderation answer for this task; a 4xx whose error mentions NSFW,
  safety, moderation or content policy is taken as a refusal, any other 4xx as ``InvalidRequest``.
* The answer is the image itself; a JSON answer with status 200 is ``Transient``.
* 402 (the account's included credits are spent) -> ``OutOfCredit``, which stops the run.

Settings (``[providers.huggingface]``): ``timeout_s``, ``max_download_bytes``, ``base_url``.

API: https://huggingface.co/docs/inference-providers/tasks/text-to-image (parameters from the task's
input schema, ``@huggingface/tasks`` text-to-image ``spec/input.json``).
"""

from __future__ import annotations

import re
from typing import Any, ClassVar

import httpx

from .base import Capabilities, GenerationRequest, GenerationResult, Price
from .errors import ContentRefused, InvalidRequest, RateLimited, Transient
from .hosted import HOSTED_SETTINGS, HostedProvider

KEY_ENV = "HF_TOKEN"
BASE_ENV = "HF_BASE_URL"
DEFAULT_BASE_URL = "https://router.huggingface.co"
ROUTE = "hf-inference"

SUPPORTED_PARAMS = ("num_inference_steps", "guidance_scale", "scheduler")
ALIASES = {"steps": "num_inference_steps", "guidance": "guidance_scale"}
REFUSAL = re.compile(r"nsfw|safety|moderat|content[ _-]?policy|flagged", re.IGNORECASE)

# hf-inference is billed by compute time x hardware price, not per image
# (https://huggingface.co/docs/inference-providers/pricing); no per-image list price is published.
# $0.002 is an estimate for a 4-step FLUX.1 [schnell] image at about 1 MP.
_ESTIMATE = Price(usd_per_image=0.002, as_of="2026-11", source="https://huggingface.co/docs/inference-providers/pricing")


class HuggingFaceProvider(HostedProvider):
    name = "huggingface"
    accepted_settings = HOSTED_SETTINGS
    default_model = "black-forest-labs/FLUX.1-schnell"
    capabilities = Capabilities(
        supports_seed=True,
        supports_negative_prompt=True,  # part of the task's parameters; FLUX models ignore it
        max_concurrency=4,
        rate_limit_per_minute=None,  # 429s carry the wait
        max_side=2048,
        size_multiple=16,
    )
    prices: ClassVar[dict[str, Price]] = {"black-forest-labs/FLUX.1-schnell": _ESTIMATE}
    price_usd = 0.002
    required_env = (KEY_ENV,)
    key_env, base_env, default_base_url = KEY_ENV, BASE_ENV, DEFAULT_BASE_URL
    extra_headers = {"Accept": "image/png"}
    supported_params, param_aliases = SUPPORTED_PARAMS, ALIASES
    credit_hint = "add credits at https://huggingface.co/settings/billing"

    async def error_hook(self, response: httpx.Response) -> None:
        """A loading model (503 + estimated_time) and refusals, read from the error body."""
        if response.status_code not in (400, 422, 503):
            return
        try:
            body = response.json()
        except ValueError:
            return
        if not isinstance(body, dict):
            return
        error = body.get("error")
        error = "; ".join(map(str, error)) if isinstance(error, list) else str(error or "")
        redact = self.http.redact
        if response.status_code == 503:
            wait = body.get("estimated_time")
            if isinstance(wait, (int, float)):
                raise RateLimited(redact.clip(f"huggingface: {error or 'model is loading'}", 300),
                                  retry_after=float(wait))
        elif REFUSAL.search(error):
            raise ContentRefused(redact.clip(f"huggingface: refused: {error}", 300))

    async def generate(self, request: GenerationRequest) -> GenerationResult:
        http = self.http
        model = request.model or self.model
        width, height = self.fit_size(request)
        parameters: dict[str, Any] = {"width": width, "height": height, "seed": request.seed}
        if request.negative_prompt:
            parameters["negative_prompt"] = request.negative_prompt
        parameters.update(self.api_params(request.params))

        response = await http.request("POST", f"/{ROUTE}/models/{model}",
                                      json={"inputs": request.prompt, "parameters": parameters}, headers=self.auth_headers())
        content_type = response.headers.get("content-type", "").split(";")[0].strip().lower()
        cost = self.price_for(model, width, height)  # a 200 answer was a paid call, readable or not
        if not content_type.startswith("image/"):
            raise Transient(http.redact(f"huggingface: expected an image, got {content_type or 'no content type'}: "
                                        f"{http.redact.clip(response.text, 200)}"), billed_usd=cost)
        data = response.content
        if len(data) > http.max_download_bytes:
            raise InvalidRequest(f"huggingface: output is {len(data):,} bytes, over the {http.max_download_bytes:,}-byte cap",
                                 billed_usd=cost)
        metadata = {"width": width, "height": height, "content_type": content_type}
        return GenerationResult(data=data, seed=request.seed, cost_usd=cost, model=model, metadata=metadata)
