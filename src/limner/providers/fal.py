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
import contextlib
import re
import time
from typing import Any, ClassVar
from urllib.parse import urlsplit

import httpx

from .base import Capabilities, GenerationRequest, GenerationResult, KnownCall, Price, report_call_id
from .errors import ContentRefused, InvalidRequest, OutputExpired, ProviderError, Transient
from .hosted import HOSTED_SETTINGS, HostedProvider
from .http import ProviderHTTP, decode_base64_image

KEY_ENV = "FAL_KEY"
BASE_ENV = "FAL_BASE_URL"
DEFAULT_BASE_URL = "https://queue.fal.run"

#: inputs of fal's FLUX endpoints that a style may set (besides prompt, image_size, seed)
SUPPORTED_PARAMS = ("num_inference_steps", "guidance_scale", "enable_safety_checker", "output_format",
                    "acceleration", "safety_tolerance", "loras")
#: Limner's generic parameter names -> fal's
ALIASES = {"steps": "num_inference_steps", "guidance": "guidance_scale"}

WAITING = ("IN_QUEUE", "IN_PROGRESS")
#: a call's id in the ledger: the path of its response URL under the queue's base URL
_CALL_ID = re.compile(r"[\w.-]+(?:/[\w.-]+)*/requests/[\w.-]+")

# List prices per output megapixel. FLUX.1 [schnell]: $0.003/MP on its model page
# (https://fal.ai/models/fal-ai/flux-1/schnell/llms.txt). [dev] and 1.1 [pro] could not be confirmed with
# the search tool: the values are fal's usual list prices (https://fal.ai/pricing); check before relying on them.
# "Images are billed by rounding up to the nearest megapixel"
# (https://fal.ai/docs/model-api-reference/image-generation-api/flux-schnell), the price shown being that of a
# 1024 x 1024 image: a megapixel of 2**20 pixels, so 512 x 512 costs one, 1024 x 1536 two.
_MP = 1 << 20
_SCHNELL = Price(usd_per_megapixel=0.003, as_of="2026-11", source="https://fal.ai/models/fal-ai/flux-1/schnell/llms.txt",
                 whole_megapixels_of=_MP)


class FalProvider(HostedProvider):
    name = "fal"
    accepted_settings = HOSTED_SETTINGS | {"poll_interval_s", "max_wait_s", "enable_safety_checker"}
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
        "fal-ai/flux/dev": Price(usd_per_megapixel=0.025, as_of="2026-11", source="https://fal.ai/pricing",
                                 whole_megapixels_of=_MP),
        "fal-ai/flux-pro/v1.1": Price(usd_per_megapixel=0.04, as_of="2026-11", source="https://fal.ai/pricing",
                                      whole_megapixels_of=_MP),
    }
    required_env = (KEY_ENV,)
    key_env, base_env, default_base_url = KEY_ENV, BASE_ENV, DEFAULT_BASE_URL
    auth_prefix = "Key "
    supported_params, param_aliases = SUPPORTED_PARAMS, ALIASES
    credit_hint = "top up the balance at https://fal.ai/dashboard/billing"

    # -- plumbing ---------------------------------------------------------------------------

    def _auth_for(self, url: str) -> dict[str, str]:
        """The key header, for URLs on the queue's origin only."""
        own, other = urlsplit(self.http.base_url), urlsplit(url)
        if (other.scheme, other.netloc) != (own.scheme, own.netloc):
            raise InvalidRequest(f"fal: the queue answered with a URL on another host ({other.hostname}); "
                                 "not sending the key there (check providers.fal.base_url / FAL_BASE_URL)")
        return self.auth_headers()

    async def error_hook(self, response: httpx.Response) -> None:
        """HTTP 422 with ``type: content_policy_violation`` is a refusal, not a bad request."""
        if response.status_code != 422:
            return
        try:
            body = response.json()
        except ValueError:
            return
        detail = body.get("detail") if isinstance(body, dict) else body
        for item in detail if isinstance(detail, list) else []:
            if isinstance(item, dict) and item.get("type") == "content_policy_violation":
                where = ".".join(str(p) for p in item.get("loc") or [] if p != "body") or "input"
                categories = ", ".join(item.get("categories") or []) or "unspecified"
                raise ContentRefused(self.http.redact(
                    f"fal: content policy violation in {where} ({categories}): {item.get('msg') or ''}".strip()))

    # -- generation -------------------------------------------------------------------------

    def _input(self, request: GenerationRequest) -> tuple[dict[str, Any], int, int]:
        width, height = self.fit_size(request)
        body: dict[str, Any] = {
            "prompt": request.prompt,
            "image_size": {"width": width, "height": height},
            "seed": request.seed,
            "num_images": 1,
            "output_format": "png",
            "enable_safety_checker": bool(self.settings.get("enable_safety_checker", True)),
        }
        body.update(self.api_params(request.params))
        tolerance = body.get("safety_tolerance")
        if isinstance(tolerance, int) and not isinstance(tolerance, bool):
            # fal's FLUX pro endpoints take it as a string enum ("1".."6", default "2"), where BFL and Replicate take
            # an integer: https://fal.ai/docs/model-api-reference/image-generation-api/flux-pro-v1.1-ultra
            body["safety_tolerance"] = str(tolerance)
        return body, width, height

    async def generate(self, request: GenerationRequest) -> GenerationResult:
        http = self.http
        model = request.model or self.model
        body, width, height = self._input(request)

        submitted = await http.json("POST", f"/{model}", json=body, headers=self.auth_headers())
        if not isinstance(submitted, dict) or not submitted.get("status_url") or not submitted.get("response_url"):
            raise Transient("fal: the queue's answer has no status_url/response_url")
        request_id = str(submitted.get("request_id") or "")
        call_id = self._call_id(str(submitted["response_url"]))
        if call_id:  # into the ledger before we wait on it: a timeout or a kill from here on is fetched again
            report_call_id(call_id)
        await self._wait(http, submitted, request_id)
        return await self._collect(http, str(submitted["response_url"]), request_id, model, width, height, request)

    def _call_id(self, response_url: str) -> str | None:
        """The call's id in the ledger: its response URL's path under the queue's base URL
        (``fal-ai/flux/requests/<request_id>``), from which :meth:`fetch_known` finds it again."""
        base = self.http.base_url.rstrip("/") + "/"
        return response_url[len(base):] if response_url.startswith(base) and len(response_url) > len(base) else None

    async def fetch_known(self, external_id: str, request: GenerationRequest) -> KnownCall:
        """The request the queue answered earlier, by its response URL: waited for if still queued, its image
        fetched again if it completed (no new charge), ``gone`` if the queue no longer knows it."""
        http = self.http
        if not _CALL_ID.fullmatch(external_id) or ".." in external_id:
            return KnownCall("gone")  # not an id this provider wrote
        response_url = f"{http.base_url.rstrip('/')}/{external_id}"
        request_id = external_id.rsplit("/", 1)[-1]
        queued = {"status_url": f"{response_url}/status", "response_url": response_url,
                  "cancel_url": f"{response_url}/cancel"}
        model = request.model or self.model
        _, width, height = self._input(request)
        try:
            await self._wait(http, queued, request_id)
            return KnownCall("done", result=await self._collect(http, response_url, request_id, model, width, height,
                                                                request))
        except ContentRefused as exc:
            return KnownCall("failed", error=exc, billed_usd=exc.billed_usd)
        except (InvalidRequest, OutputExpired):  # 404: expired, or never this key's; its image is gone
            return KnownCall("gone")

    async def _collect(self, http: ProviderHTTP, response_url: str, request_id: str, model: str, width: int,
                       height: int, request: GenerationRequest) -> GenerationResult:
        """The response of a completed request, and its image downloaded."""
        result = await http.json("GET", response_url, headers=self._auth_for(response_url),
                                 max_bytes=http.inline_image_json_bytes)  # may hold a data URI
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
        if url.startswith("data:"):  # fal answers a data: URI instead of a URL when ``sync_mode`` is on
            data = decode_base64_image(self.name, url.partition(",")[2], http.max_download_bytes, what="image data URI",
                                       billed_usd=cost)
        else:
            data = await http.download(url)

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
