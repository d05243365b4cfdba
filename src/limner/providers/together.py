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

Settings (``[providers.together]``): ``timeout_s``, ``max_download_bytes`` (cap on the decoded image),
``base_url``.

API: https://docs.together.ai/docs/images-overview (base64 images: ``response_format: "base64"``).
"""

from __future__ import annotations

import base64
import binascii
import re
from typing import Any, ClassVar

import httpx

from .base import Capabilities, GenerationRequest, GenerationResult, Price, Provider
from .errors import AuthFailed, ContentRefused, InvalidRequest, Transient
from .http import DEFAULT_MAX_DOWNLOAD_BYTES, ProviderHTTP
from .options import pick_params, snap_size

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


class TogetherProvider(Provider):
    name = "together"
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

    def __init__(self, *, model: str | None = None, settings: dict[str, Any] | None = None) -> None:
        super().__init__(model=model, settings=settings)
        self._http: ProviderHTTP | None = None
        self._auth: dict[str, str] = {}

    def _connect(self) -> ProviderHTTP:
        if self._http is None:
            key = self.secret(KEY_ENV)
            if not key:
                raise AuthFailed(f"together: {KEY_ENV} is not set")
            base_url = self.settings.get("base_url") or self.secret(BASE_ENV) or DEFAULT_BASE_URL
            http = ProviderHTTP(self.name, base_url=base_url, timeout_s=self.settings.get("timeout_s"),
                                max_download_bytes=int(self.settings.get("max_download_bytes") or DEFAULT_MAX_DOWNLOAD_BYTES),
                                secrets=[key])
            http.client.event_hooks = {"request": [], "response": [self._refusal_hook]}
            self._auth = {"Authorization": f"Bearer {key}"}
            self._http = http
        return self._http

    async def _refusal_hook(self, response: httpx.Response) -> None:
        if response.status_code not in (400, 422):
            return
        await response.aread()
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
            assert self._http is not None
            raise ContentRefused(self._http.redact(f"together: refused: {error.get('message') or text}"[:400]))

    async def check(self) -> str:
        """``limner doctor``: ``GET /v1/models`` checks the key and looks for the model."""
        await super().check()
        answer = await self._connect().json("GET", "/v1/models", headers=self._auth)
        models = answer.get("data", []) if isinstance(answer, dict) else answer
        listed = any(isinstance(m, dict) and m.get("id") == self.model for m in models or [])
        return f"key accepted; model {self.model} {'available' if listed else 'not in the model list'}"

    async def aclose(self) -> None:
        if self._http is not None:
            http, self._http = self._http, None
            await http.aclose()

    async def generate(self, request: GenerationRequest) -> GenerationResult:
        http = self._connect()
        model = request.model or self.model
        if max(request.width, request.height) > self.capabilities.max_side:
            raise InvalidRequest(f"together: {request.width}x{request.height} exceeds {self.capabilities.max_side}px")
        width, height = snap_size(request.width, request.height, multiple=self.capabilities.size_multiple,
                                  max_side=self.capabilities.max_side)
        body: dict[str, Any] = {"model": model, "prompt": request.prompt, "width": width, "height": height,
                                "n": 1, "seed": request.seed, "response_format": "base64"}
        if model in DEFAULT_STEPS:
            body["steps"] = DEFAULT_STEPS[model]
        if request.negative_prompt:
            body["negative_prompt"] = request.negative_prompt
        body.update(pick_params(self.name, {ALIASES.get(k, k): v for k, v in request.params.items()}, SUPPORTED_PARAMS))

        answer = await http.json("POST", "/v1/images/generations", json=body, headers=self._auth)
        items = answer.get("data") if isinstance(answer, dict) else None
        encoded = items[0].get("b64_json") if items and isinstance(items[0], dict) else None
        if not isinstance(encoded, str) or not encoded:
            raise Transient("together: the answer has no data[0].b64_json")
        data = decode_image(self.name, encoded, http.max_download_bytes)
        metadata: dict[str, Any] = {"id": str(answer.get("id") or ""), "width": width, "height": height}
        return GenerationResult(data=data, seed=request.seed, cost_usd=self.price_for(model, width, height),
                                model=str(answer.get("model") or model), metadata=metadata)


def decode_image(provider: str, encoded: str, max_bytes: int) -> bytes:
    """Strict base64 decoding, with the download cap checked before decoding."""
    if len(encoded) * 3 // 4 > max_bytes + 3:
        raise InvalidRequest(f"{provider}: output is over the {max_bytes:,}-byte cap")
    try:
        data = base64.b64decode(encoded, validate=True)
    except (binascii.Error, ValueError):
        raise Transient(f"{provider}: the image is not valid base64") from None
    if len(data) > max_bytes:
        raise InvalidRequest(f"{provider}: output is over the {max_bytes:,}-byte cap")
    return data
