"""fal.ai through its queue API: submit, poll the status, fetch the response, download the image.

::

    POST {base}/{model_id}            the model's input JSON, header ``Authorization: Key $FAL_KEY``
      -> {"request_id", "status_url", "response_url", "cancel_url"}
    GET  status_url                   -> {"status": "IN_QUEUE" | "IN_PROGRESS" | "COMPLETED", ...}
    GET  response_url                 -> {"images": [{"url", "width", "height", "content_type"}],
                                          "seed", "has_nsfw_concepts": [bool], "timings", ...}
    GET  images[0].url                the image, on fal's CDN (sent without the key)

``base`` is ``providers.fal.base_url``, else ``FAL_BASE_URL``, else ``https://queue.fal.run``. The key
is sent only to URLs on the base URL's origin (the queue's status, response and cancel URLs).

Refusals: ``has_nsfw_concepts`` true (the safety checker replaced the image with a black one), or
HTTP 422 whose detail has ``"type": "content_policy_violation"`` (fal's error reference).

Settings (``[providers.fal]``): ``timeout_s``, ``max_download_bytes``, ``poll_interval_s`` (1.0),
``max_wait_s`` (600: give up and cancel a request still queued after that), ``base_url``,
``enable_safety_checker`` (true).

API: https://docs.fal.ai/documentation/model-apis/inference/queue,
https://fal.ai/models/fal-ai/flux/schnell/api
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import time
from typing import Any, ClassVar
from urllib.parse import urlsplit

import httpx

from .base import Capabilities, GenerationRequest, GenerationResult, Price, Provider
from .errors import AuthFailed, ContentRefused, InvalidRequest, ProviderError, Transient
from .http import DEFAULT_MAX_DOWNLOAD_BYTES, ProviderHTTP
from .options import pick_params, snap_size

KEY_ENV = "FAL_KEY"
BASE_ENV = "FAL_BASE_URL"
DEFAULT_BASE_URL = "https://queue.fal.run"

#: inputs of fal's FLUX endpoints that a style may set (besides prompt, image_size, seed)
SUPPORTED_PARAMS = ("num_inference_steps", "guidance_scale", "enable_safety_checker", "output_format",
                    "acceleration", "safety_tolerance", "loras")
#: Limner's generic parameter names -> fal's
ALIASES = {"steps": "num_inference_steps", "guidance": "guidance_scale"}

WAITING = ("IN_QUEUE", "IN_PROGRESS")

# List prices per output megapixel. FLUX.1 [schnell]: $0.003/MP on its model page
# (https://fal.ai/models/fal-ai/flux-1/schnell/llms.txt). [dev] and 1.1 [pro] could not be confirmed with
# the search tool: the values are fal's usual list prices (https://fal.ai/pricing); check before relying on them.
_SCHNELL = Price(usd_per_megapixel=0.003, as_of="2026-11", source="https://fal.ai/models/fal-ai/flux-1/schnell/llms.txt")


class FalProvider(Provider):
    name = "fal"
    default_model = "fal-ai/flux/schnell"
    capabilities = Capabilities(
        supports_seed=True,
        supports_negative_prompt=False,  # FLUX endpoints have no negative prompt
        max_concurrency=8,  # conservative; raise with providers.fal.concurrency
        rate_limit_per_minute=None,  # the queue absorbs bursts; 429 carries Retry-After
        max_side=2048,
        size_multiple=16,
    )
    prices: ClassVar[dict[str, Price]] = {
        "fal-ai/flux/schnell": _SCHNELL,
        "fal-ai/flux-1/schnell": _SCHNELL,
        "fal-ai/flux/dev": Price(usd_per_megapixel=0.025, as_of="2026-11", source="https://fal.ai/pricing"),
        "fal-ai/flux-pro/v1.1": Price(usd_per_megapixel=0.04, as_of="2026-11", source="https://fal.ai/pricing"),
    }
    required_env = (KEY_ENV,)

    def __init__(self, *, model: str | None = None, settings: dict[str, Any] | None = None) -> None:
        super().__init__(model=model, settings=settings)
        self._http: ProviderHTTP | None = None
        self._auth: dict[str, str] = {}

    # -- plumbing ---------------------------------------------------------------------------

    def _connect(self) -> ProviderHTTP:
        if self._http is None:
            key = self.secret(KEY_ENV)
            if not key:
                raise AuthFailed(f"fal: {KEY_ENV} is not set")
            base_url = self.settings.get("base_url") or self.secret(BASE_ENV) or DEFAULT_BASE_URL
            http = ProviderHTTP(self.name, base_url=base_url, timeout_s=self.settings.get("timeout_s"),
                                max_download_bytes=int(self.settings.get("max_download_bytes") or DEFAULT_MAX_DOWNLOAD_BYTES),
                                secrets=[key])
            http.client.event_hooks = {"request": [], "response": [self._refusal_hook]}
            self._auth = {"Authorization": f"Key {key}"}
            self._http = http
        return self._http

    def _auth_for(self, url: str) -> dict[str, str]:
        """The key header, for URLs on the queue's origin only."""
        assert self._http is not None
        own, other = urlsplit(self._http.base_url), urlsplit(url)
        if (other.scheme, other.netloc) != (own.scheme, own.netloc):
            raise InvalidRequest(f"fal: the queue answered with a URL on another host ({other.hostname}); "
                                 "not sending the key there (check providers.fal.base_url / FAL_BASE_URL)")
        return self._auth

    async def _refusal_hook(self, response: httpx.Response) -> None:
        """HTTP 422 with ``type: content_policy_violation`` is a refusal, not a bad request."""
        if response.status_code != 422:
            return
        await response.aread()
        try:
            body = response.json()
        except ValueError:
            return
        detail = body.get("detail") if isinstance(body, dict) else body
        for item in detail if isinstance(detail, list) else []:
            if isinstance(item, dict) and item.get("type") == "content_policy_violation":
                where = ".".join(str(p) for p in item.get("loc") or [] if p != "body") or "input"
                categories = ", ".join(item.get("categories") or []) or "unspecified"
                assert self._http is not None
                raise ContentRefused(self._http.redact(
                    f"fal: content policy violation in {where} ({categories}): {item.get('msg') or ''}".strip()))

    async def aclose(self) -> None:
        if self._http is not None:
            http, self._http = self._http, None
            await http.aclose()

    # -- generation -------------------------------------------------------------------------

    def _input(self, request: GenerationRequest) -> tuple[dict[str, Any], int, int]:
        if max(request.width, request.height) > self.capabilities.max_side:
            raise InvalidRequest(f"fal: {request.width}x{request.height} exceeds {self.capabilities.max_side}px")
        width, height = snap_size(request.width, request.height, multiple=self.capabilities.size_multiple,
                                  max_side=self.capabilities.max_side)
        params = {ALIASES.get(k, k): v for k, v in request.params.items()}
        body: dict[str, Any] = {
            "prompt": request.prompt,
            "image_size": {"width": width, "height": height},
            "seed": request.seed,
            "num_images": 1,
            "output_format": "png",
            "enable_safety_checker": bool(self.settings.get("enable_safety_checker", True)),
        }
        body.update(pick_params(self.name, params, SUPPORTED_PARAMS))
        return body, width, height

    async def generate(self, request: GenerationRequest) -> GenerationResult:
        http = self._connect()
        model = request.model or self.model
        body, width, height = self._input(request)

        submitted = await http.json("POST", f"/{model}", json=body, headers=self._auth)
        if not isinstance(submitted, dict) or not submitted.get("status_url") or not submitted.get("response_url"):
            raise Transient("fal: the queue's answer has no status_url/response_url")
        request_id = str(submitted.get("request_id") or "")
        await self._wait(http, submitted, request_id)

        response_url = submitted["response_url"]
        result = await http.json("GET", response_url, headers=self._auth_for(response_url))
        if not isinstance(result, dict):
            raise Transient("fal: the response is not a JSON object")
        images = result.get("images") or []
        image = images[0] if images and isinstance(images[0], dict) else {}
        width, height = int(image.get("width") or width), int(image.get("height") or height)
        cost = self.price_for(model, width, height)
        if any(result.get("has_nsfw_concepts") or []):
            # the image was generated (and billed), then blacked out by the safety checker
            raise ContentRefused("fal: the safety checker flagged the image (has_nsfw_concepts)", billed_usd=cost)
        url = image.get("url")
        if not isinstance(url, str) or not url:
            raise Transient("fal: the response has no image URL")
        data = _data_uri(url) if url.startswith("data:") else await http.download(url)
        if len(data) > http.max_download_bytes:
            raise InvalidRequest(f"fal: output is over the {http.max_download_bytes:,}-byte cap")

        seed = result.get("seed")
        metadata: dict[str, Any] = {"request_id": request_id, "width": width, "height": height}
        if isinstance(result.get("timings"), dict):
            metadata["timings"] = result["timings"]
        return GenerationResult(data=data, seed=seed if isinstance(seed, int) else request.seed,
                                cost_usd=cost, model=model, metadata=metadata)

    async def _wait(self, http: ProviderHTTP, submitted: dict[str, Any], request_id: str) -> None:
        """Poll the status URL until COMPLETED (or give up after ``max_wait_s`` and cancel)."""
        status_url = submitted["status_url"]
        interval = float(self.settings.get("poll_interval_s") or 1.0)
        deadline = time.monotonic() + float(self.settings.get("max_wait_s") or 600)
        while True:
            status = await http.json("GET", status_url, headers=self._auth_for(status_url))
            state = status.get("status") if isinstance(status, dict) else None
            if state == "COMPLETED":
                return
            if state not in WAITING:
                raise Transient(f"fal: request {request_id} has unexpected status {state!r}")
            if time.monotonic() >= deadline:
                await self._cancel(http, submitted.get("cancel_url"))
                raise Transient(f"fal: request {request_id} still {state} after "
                                f"{self.settings.get('max_wait_s') or 600}s; cancelled")
            await asyncio.sleep(interval)

    async def _cancel(self, http: ProviderHTTP, cancel_url: Any) -> None:
        if isinstance(cancel_url, str) and cancel_url:
            with contextlib.suppress(ProviderError):
                await http.request("PUT", cancel_url, headers=self._auth_for(cancel_url))


def _data_uri(url: str) -> bytes:
    """fal answers a data: URI instead of a URL when ``sync_mode`` is on."""
    _, _, payload = url.partition(",")
    try:
        return base64.b64decode(payload, validate=True)
    except (binascii.Error, ValueError):
        raise Transient("fal: the image data URI is not valid base64") from None
