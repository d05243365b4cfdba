"""Black Forest Labs' own API: submit a task, poll its ``polling_url``, download the sample at once.

::

    POST {base}/v1/{model}         header ``x-key: $BFL_API_KEY``
      {"prompt", "width", "height", "seed", "output_format": "png", "safety_tolerance"?, ...}
      -> {"id", "polling_url"}
    GET  polling_url               header ``x-key``
      -> {"id", "status": "Pending" | "Ready" | "Error" | "Request Moderated" | "Content Moderated"
                          | "Task not found", "result": {"sample": url, ...}, "details": {...}}
    GET  result.sample             the image (a signed delivery URL, sent without the key)

``base`` is ``providers.bfl.base_url``, else ``BFL_BASE_URL``, else ``https://api.bfl.ai`` (the global
endpoint; ``https://api.eu.bfl.ai`` and ``https://api.us.bfl.ai`` pin a region). The polling URL may
be on a regional host: the key goes to the base host and the hosts of its domain (``*.bfl.ai``) only.

* ``Request Moderated`` / ``Content Moderated`` -> ``ContentRefused`` (not charged); ``Error`` and ``Task not found``
  -> ``Transient``; HTTP 402 (no credits left) -> ``OutOfCredit`` (stops the run); 429 (more than 24
  active tasks) -> ``RateLimited``, with ``Retry-After`` or the body's ``retry_after``.
* Sample URLs expire after 10 minutes, so the image is downloaded as soon as the task is Ready; an
  expired one (404/410) is ``Transient``: generate again.
* Sizes: multiples of 32, 256 to 1440 px. ``flux-pro-1.1-ultra`` and the Kontext models take an
  ``aspect_ratio`` instead.

Settings (``[providers.bfl]``): ``safety_tolerance`` (0 strictest .. 6), ``timeout_s``,
``max_download_bytes``, ``poll_interval_s`` (1.0), ``max_wait_s`` (600), ``base_url``.

API: https://docs.bfl.ai/flux_models/flux_1_1_pro, https://docs.bfl.ai/api-reference/utility/get-result
"""

from __future__ import annotations

import asyncio
import ipaddress
import time
from typing import Any, ClassVar
from urllib.parse import parse_qs, urlsplit

import httpx

from .base import Capabilities, GenerationRequest, GenerationResult, KnownCall, Price, redact_value, report_call_id
from .errors import ContentRefused, InvalidRequest, OutputExpired, RateLimited, Transient
from .hosted import HOSTED_SETTINGS, HostedProvider
from .http import ProviderHTTP
from .options import snap_aspect

KEY_ENV = "BFL_API_KEY"
BASE_ENV = "BFL_BASE_URL"
DEFAULT_BASE_URL = "https://api.bfl.ai"

SUPPORTED_PARAMS = ("safety_tolerance", "prompt_upsampling", "steps", "guidance", "raw", "image_prompt_strength")
ALIASES = {"num_inference_steps": "steps", "guidance_scale": "guidance"}
#: models that take ``aspect_ratio`` rather than width/height
ASPECT_MODELS = ("flux-pro-1.1-ultra", "flux-kontext-pro", "flux-kontext-max")
ASPECTS = ("21:9", "16:9", "3:2", "4:3", "5:4", "1:1", "4:5", "3:4", "2:3", "9:16", "9:21")
MODERATED = ("Request Moderated", "Content Moderated")

# Credits are $0.01 each (https://docs.bfl.ai/quick_start/pricing). FLUX1.1 [pro]: $0.04 per image
# (https://docs.bfl.ai/flux_models/flux_1_1_pro). FLUX1.1 [pro] Ultra $0.06 and FLUX.1 [pro] $0.04: BFL's
# prices as quoted by a relay (https://docs.apiyi.com/en/api-capabilities/flux/historical-versions).
# FLUX.1 [dev] $0.025 could not be confirmed with the search tool: a reasonable list price; check it.
_PRICING = "https://docs.bfl.ai/quick_start/pricing"


class BFLProvider(HostedProvider):
    name = "bfl"
    default_model = "flux-pro-1.1"
    image_settings = ("safety_tolerance",)
    accepted_settings = HOSTED_SETTINGS | {*image_settings, "poll_interval_s", "max_wait_s"}
    capabilities = Capabilities(
        supports_seed=True,
        supports_negative_prompt=False,
        max_concurrency=24,  # BFL answers 429 beyond 24 active tasks per key
        rate_limit_per_minute=None,
        max_side=1440,
        size_multiple=32,
    )
    prices: ClassVar[dict[str, Price]] = {
        "flux-pro-1.1": Price(usd_per_image=0.04, as_of="2026-11", source="https://docs.bfl.ai/flux_models/flux_1_1_pro"),
        "flux-pro-1.1-ultra": Price(usd_per_image=0.06, as_of="2026-11", source=_PRICING),
        "flux-pro": Price(usd_per_image=0.04, as_of="2026-11", source=_PRICING),
        "flux-dev": Price(usd_per_image=0.025, as_of="2026-11", source=_PRICING),
    }
    required_env = (KEY_ENV,)
    key_env, base_env, default_base_url = KEY_ENV, BASE_ENV, DEFAULT_BASE_URL
    auth_header, auth_prefix = "x-key", ""
    supported_params, param_aliases = SUPPORTED_PARAMS, ALIASES
    credit_hint = "add credits at https://dashboard.bfl.ai"

    async def error_hook(self, response: httpx.Response) -> None:
        """A 429 may carry its wait in the body, not in Retry-After."""
        if response.status_code == 429 and "retry-after" not in response.headers:
            try:
                wait = response.json().get("retry_after")
            except (ValueError, AttributeError):
                wait = None
            if isinstance(wait, (int, float)):
                raise RateLimited("bfl: HTTP 429: too many active tasks", retry_after=float(wait))

    def _auth_for(self, url: str) -> dict[str, str]:
        """The key, for the base host and hosts of its domain only (api.us1.bfl.ai next to api.eu.bfl.ai)."""
        base = urlsplit(self.http.base_url).hostname or ""
        host = urlsplit(url).hostname or ""
        domain = ".".join(base.split(".")[-2:])
        if host == base or (not _is_ip(base) and base.count(".") >= 2 and host.endswith("." + domain)):
            return self.auth_headers()
        raise InvalidRequest(f"bfl: polling URL on an unexpected host ({host}); not sending the key there")

    async def check(self) -> str:
        """``limner doctor``: ``GET /v1/credits`` checks the key and reports the balance."""
        await super().check()
        answer = await self.http.json("GET", "/v1/credits", headers=self.auth_headers())
        credits = answer.get("credits") if isinstance(answer, dict) else None
        return f"key accepted ({credits} credits left); model {self.model}"

    def _input(self, request: GenerationRequest, model: str) -> tuple[dict[str, Any], int, int]:
        params = self.api_params(request.params)
        body: dict[str, Any] = {"prompt": request.prompt, "seed": request.seed, "output_format": "png"}
        if self.settings.get("safety_tolerance") is not None:
            body["safety_tolerance"] = int(self.settings["safety_tolerance"])
        if model.startswith(ASPECT_MODELS):
            body["aspect_ratio"] = snap_aspect(request.width, request.height, ASPECTS)
            width, height = request.width, request.height
        else:
            width, height = self.fit_size(request, min_side=256)
            body.update(width=width, height=height)
        body.update(params)
        return body, width, height

    async def generate(self, request: GenerationRequest) -> GenerationResult:
        http = self.http
        model = request.model or self.model
        body, width, height = self._input(request, model)

        task = await http.json("POST", f"/v1/{model}", json=body, headers=self.auth_headers())
        if not isinstance(task, dict) or not task.get("polling_url"):
            raise Transient("bfl: the answer has no polling_url")
        task_id = str(task.get("id") or "")
        # into the ledger before we wait on it: a timeout or a kill from here on is asked about, not paid again
        report_call_id(str(task["polling_url"]))
        result = await self._poll(http, str(task["polling_url"]), task_id)
        return await self._collect(http, result, task_id, model, width, height, request)

    async def fetch_known(self, external_id: str, request: GenerationRequest) -> KnownCall:
        """The task submitted earlier, by its polling URL (the call's id in the ledger): waited for while
        Pending, its sample downloaded if Ready (no new charge; a sample URL lives 10 minutes), ``failed`` when
        moderated (billed 0: BFL does not charge a Request Moderated or Content Moderated task,
        https://help.bfl.ai/articles/2916279050-why-did-my-request-fail) or in error (what it cost stays the
        estimate), ``gone`` when BFL no longer knows it."""
        http = self.http
        model = request.model or self.model
        _, width, height = self._input(request, model)
        try:
            self._auth_for(external_id)  # only a polling URL on BFL's hosts gets the key
            task_id = parse_qs(urlsplit(external_id).query).get("id", [""])[0]
            result = await self._poll(http, external_id, task_id)
            return KnownCall("done", result=await self._collect(http, result, task_id, model, width, height, request))
        except ContentRefused as exc:  # moderated, before or after processing: not charged
            return KnownCall("failed", error=exc, billed_usd=0.0)
        except TaskFailed as exc:
            return KnownCall("failed", error=exc)
        except (TaskGone, OutputExpired):  # BFL forgot the task, or its sample URL expired (10 minutes)
            return KnownCall("gone")
        except InvalidRequest:  # not a URL this provider wrote, or a 404
            return KnownCall("gone")

    async def _collect(self, http: ProviderHTTP, result: Any, task_id: str, model: str, width: int, height: int,
                       request: GenerationRequest) -> GenerationResult:
        """A Ready task's sample, downloaded (at once: its URL expires after 10 minutes)."""
        sample = result.get("sample") if isinstance(result, dict) else None
        if not isinstance(sample, str) or not sample:
            raise Transient(f"bfl: task {task_id} is Ready without a sample URL")
        data = await http.download(sample)  # at once: the URL expires after 10 minutes
        seed = result.get("seed")
        metadata = {"id": task_id, "width": width, "height": height}
        return GenerationResult(data=data, seed=seed if isinstance(seed, int) else request.seed,
                                cost_usd=self.price_for(model, width, height), model=model, metadata=metadata)

    async def _poll(self, http: ProviderHTTP, polling_url: str, task_id: str) -> Any:
        interval = float(self.settings.get("poll_interval_s") or 1.0)
        max_wait = float(self.settings.get("max_wait_s") or 600)
        deadline = time.monotonic() + max_wait
        headers = self._auth_for(polling_url)
        while True:
            answer = await http.json("GET", polling_url, headers=headers)
            status = answer.get("status") if isinstance(answer, dict) else None
            if status == "Ready":
                return answer.get("result")
            if status in MODERATED:
                raise ContentRefused(http.redact(f"bfl: {status}{_reasons(redact_value(answer.get('details'), http.redact))}"))
            if status == "Error":
                raise TaskFailed(http.redact(f"bfl: task {task_id} failed{_reasons(redact_value(answer.get('details'), http.redact))}"))
            if status == "Task not found":
                raise TaskGone(f"bfl: task {task_id} not found (expired or lost)")
            if status != "Pending":
                raise Transient(f"bfl: task {task_id} has unexpected status {status!r}")
            if time.monotonic() >= deadline:
                raise Transient(f"bfl: task {task_id} still Pending after {max_wait:g}s")
            await asyncio.sleep(interval)


class TaskGone(Transient):
    """BFL no longer knows the task (expired or lost): generate again."""


class TaskFailed(Transient):
    """The task ended in ``Error``: generate again."""


def _reasons(details: Any) -> str:
    """BFL's moderation details (``{"Moderation Reasons": [...]}``) as a short suffix (cut: redact them first)."""
    if not isinstance(details, dict) or not details:
        return ""
    parts = []
    for key, value in details.items():
        value = ", ".join(map(str, value)) if isinstance(value, list) else str(value)
        parts.append(f"{key}: {value}")
    return " (" + "; ".join(parts)[:300] + ")"


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True
