"""The ``replicate`` provider: Flux (schnell, dev, 1.1-pro) and any model version on Replicate.

* Official models by name (``owner/name``): ``POST /v1/models/{owner}/{name}/predictions``.
* Any model version (``owner/name:version`` or a bare 64-hex version id):
  ``POST /v1/predictions`` with ``{"version": ..., "input": ...}``.

Both ask the server to hold the answer (``Prefer: wait=N``); a prediction still
``starting``/``processing`` when that answer comes is polled (``urls.get``, else
``/v1/predictions/{id}``) every ``poll_interval_s`` until it ends or ``timeout_s``
passes (then it is cancelled, best effort, and the call is ``Transient``). Outputs
(a list of URLs, one URL, or a data URI) are downloaded at once through
:class:`~limner.providers.http.ProviderHTTP` (https only, capped).

It builds on :class:`~limner.providers.hosted.HostedProvider`: the base URL is
``providers.replicate.base_url``, else ``REPLICATE_BASE_URL``, else ``https://api.replicate.com`` (the
order of every hosted provider); the client is kept between calls (keep-alive); HTTP 402 (no credit
left) is ``OutOfCredit``, which stops the run. The concurrency slot is given back (``release_slot()``)
as soon as the prediction has ended, before the download.

Settings (``[providers.replicate]``): ``model``, ``timeout_s`` (120), ``poll_interval_s``
(1.0), ``prefer_wait_s`` (how long the create call may be held for the answer: at most 60 and half of
``timeout_s``; shorter means the prediction id reaches the ledger sooner), ``max_download_bytes``,
``output_format`` (``png``), ``base_url``; secrets
(environment or ``.env``): ``REPLICATE_API_TOKEN``, optionally ``REPLICATE_BASE_URL``.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import datetime as dt
import logging
import re
import time
from dataclasses import dataclass
from typing import Any, ClassVar
from urllib.parse import quote, unquote_to_bytes, urlsplit

from limner.providers.base import (
    Capabilities,
    GenerationRequest,
    GenerationResult,
    KnownCall,
    Price,
    release_slot,
    report_call_id,
    time_left,
)
from limner.providers.errors import (
    ContentRefused,
    InvalidRequest,
    OutputExpired,
    ProviderError,
    RateLimited,
    Transient,
)
from limner.providers.hosted import HOSTED_SETTINGS, HostedProvider
from limner.providers.http import ProviderHTTP
from limner.providers.options import number_setting, pick_params, snap_aspect

log = logging.getLogger("limner.providers")

DEFAULT_BASE_URL = "https://api.replicate.com"
TOKEN_ENV = "REPLICATE_API_TOKEN"
BASE_URL_ENV = "REPLICATE_BASE_URL"
DEFAULT_TIMEOUT_S = 120.0
DEFAULT_POLL_INTERVAL_S = 1.0
#: the longest ``Prefer: wait`` Replicate honours, in seconds
MAX_PREFER_WAIT_S = 60
#: Replicate deletes an API prediction's output files an hour after it was made; a download that still
#: answers 404/410 this long after the prediction completed is taken as gone, whatever ``data_removed`` says
OUTPUT_GIVEN_UP_AFTER_S = 6 * 3600

FLUX_ASPECTS = ("1:1", "16:9", "21:9", "3:2", "2:3", "4:5", "5:4", "3:4", "4:3", "9:16", "9:21")
#: FLUX1.1 [pro] has no 21:9 / 9:21 (its aspect_ratio enum: custom, 1:1, 16:9, 3:2, 2:3, 4:5, 5:4, 9:16, 3:4, 4:3;
#: https://replicate.com/black-forest-labs/flux-1.1-pro/api/schema): a wider entry snaps to 16:9, not to a 422
PRO_ASPECTS = ("1:1", "16:9", "3:2", "2:3", "4:5", "5:4", "9:16", "3:4", "4:3")
FLUX_FORMATS = ("png", "webp", "jpg")
RUNNING = ("starting", "processing")
#: ``aborted``: ended before it started, by a ``Cancel-After`` deadline (not billed); Limner sets none, but
#: a prediction another client made may end so (https://replicate.com/docs/topics/predictions/lifecycle)
TERMINAL = ("succeeded", "failed", "canceled", "aborted")
ENDED_UNPAID = ("canceled", "aborted")
_VERSION_ID = re.compile(r"^[0-9a-f]{64}$")
#: failure messages worth another attempt (infrastructure, not the request)
_TRANSIENT_HINTS = ("timed out", "timeout", "out of memory", "cuda", "internal error", "internal server", "unavailable",
                    "connection", "interrupted", "preempt", "director", "worker", "overloaded", "capacity",
                    "temporar", "retry", "setup failed", "boot")
#: request parameter names (style ``params``) -> Replicate input names
ALIASES = {"steps": "num_inference_steps", "guidance_scale": "guidance"}


@dataclass(frozen=True)
class ModelSpec:
    """What one model's input accepts, beyond prompt/aspect_ratio/seed/output_format."""

    #: Replicate input names accepted from ``request.params`` (after ALIASES)
    params: frozenset[str]
    #: the model takes ``num_outputs`` (we always ask for 1)
    num_outputs: bool = True
    #: upper bound of ``num_inference_steps`` (0: the model has none)
    max_steps: int = 0
    #: the values of the model's ``aspect_ratio`` enum the request is snapped to
    aspects: tuple[str, ...] = FLUX_ASPECTS


_FAST = frozenset({"go_fast", "megapixels", "output_quality", "disable_safety_checker"})
MODELS: dict[str, ModelSpec] = {
    "black-forest-labs/flux-schnell": ModelSpec(params=_FAST | {"num_inference_steps"}, max_steps=4),
    "black-forest-labs/flux-dev": ModelSpec(params=_FAST | {"num_inference_steps", "guidance"}, max_steps=50),
    "black-forest-labs/flux-1.1-pro": ModelSpec(params=frozenset({"output_quality", "safety_tolerance", "prompt_upsampling"}),
                                                num_outputs=False, aspects=PRO_ASPECTS),
}

#: list prices, per output image (Replicate bills official models per image, and only successful predictions)
PRICES = {
    # https://replicate.com/black-forest-labs/flux-schnell
    "black-forest-labs/flux-schnell": Price(usd_per_image=0.003, as_of="2026-11",
                                            source="https://replicate.com/black-forest-labs/flux-schnell"),
    # https://replicate.com/black-forest-labs/flux-dev
    "black-forest-labs/flux-dev": Price(usd_per_image=0.025, as_of="2026-11",
                                        source="https://replicate.com/black-forest-labs/flux-dev"),
    # https://replicate.com/black-forest-labs/flux-1.1-pro
    "black-forest-labs/flux-1.1-pro": Price(usd_per_image=0.04, as_of="2026-11",
                                            source="https://replicate.com/black-forest-labs/flux-1.1-pro"),
}


def split_model(model: str) -> tuple[str, str | None]:
    """``owner/name[:version]`` (or a bare version id) -> (``owner/name`` or ``""``, version or None)."""
    model = model.strip()
    if _VERSION_ID.match(model):
        return "", model
    name, sep, version = model.partition(":")
    return name, (version if sep else None)


def is_nsfw(message: str) -> bool:
    """Replicate's safety refusals: "All generated images contained NSFW content...", and E005
    ("The input or output was flagged as sensitive") from the hosted pro models."""
    text = message.lower()
    return ("nsfw" in text or "flagged as sensitive" in text or "(e005)" in text
            or ("safety" in text and ("flagged" in text or "filter" in text or "checker" in text)))


class ReplicateProvider(HostedProvider):
    name = "replicate"
    default_model = "black-forest-labs/flux-schnell"
    image_settings = ("output_format",)
    accepted_settings = HOSTED_SETTINGS | {*image_settings, "poll_interval_s", "prefer_wait_s"}
    capabilities = Capabilities(
        supports_seed=True,
        supports_negative_prompt=False,
        max_concurrency=5,  # Replicate's default concurrency per account
        rate_limit_per_minute=None,  # 600 creates/min: the concurrency binds long before
        max_side=2048,
        size_multiple=16,
    )
    price_usd = 0.0  # models without a table entry: set [providers.replicate] price_usd
    prices: ClassVar[dict[str, Price]] = PRICES
    required_env = (TOKEN_ENV,)
    offline = False
    key_env, base_env, default_base_url = TOKEN_ENV, BASE_URL_ENV, DEFAULT_BASE_URL
    default_timeout_s = DEFAULT_TIMEOUT_S
    credit_hint = "add credit at https://replicate.com/account/billing"

    def __init__(self, *, model: str | None = None, settings: dict[str, Any] | None = None) -> None:
        super().__init__(model=model, settings=settings)
        self._told_negative = False

    # ------------------------------------------------------------------ settings
    @classmethod
    def price_for(cls, model: str | None, width: int = 1024, height: int = 1024) -> float:
        name, _ = split_model(model or cls.default_model)
        price = cls.prices.get(model or cls.default_model) or cls.prices.get(name)
        return price.cost(width, height) if price else float(cls.price_usd)

    @property
    def poll_interval_s(self) -> float:
        return max(0.0, number_setting(self.name, self.settings, "poll_interval_s", DEFAULT_POLL_INTERVAL_S))

    # ------------------------------------------------------------------ input
    def build_input(self, request: GenerationRequest) -> tuple[str, str | None, dict[str, Any]]:
        """(``owner/name``, version or None, the prediction input) for a request."""
        model = request.model or self.model or self.default_model
        name, version = split_model(model)
        if version is None and name.count("/") != 1:
            raise InvalidRequest(f"replicate: model must be 'owner/name' or 'owner/name:version', got {model!r}")
        spec = MODELS.get(name)
        params = {ALIASES.get(k, k): v for k, v in (request.params or {}).items()}
        output_format = str(params.pop("output_format", None) or self.settings.get("output_format") or "png").lower()
        output_format = "jpg" if output_format == "jpeg" else output_format
        if request.negative_prompt and spec is not None and not self._told_negative:  # once per run, not per entry
            log.info("replicate: %s has no negative prompt; dropping it", name)
            self._told_negative = True

        if spec is None:  # a model we hold no table for: its schema is unknown, so pass the request through
            data: dict[str, Any] = {"prompt": request.prompt, "width": request.width, "height": request.height,
                                    "seed": request.seed, "output_format": output_format}
            if request.negative_prompt:
                data["negative_prompt"] = request.negative_prompt
            data.update(params)
            return name, version, data

        if output_format not in FLUX_FORMATS:
            raise InvalidRequest(f"replicate: output_format {output_format!r} is not one of {', '.join(FLUX_FORMATS)}")
        kept = pick_params(self.name, params, spec.params)
        data = {"prompt": request.prompt, "aspect_ratio": snap_aspect(request.width, request.height, spec.aspects),
                "seed": int(request.seed), "output_format": output_format}
        if spec.num_outputs:
            data["num_outputs"] = 1
        if "num_inference_steps" in kept:
            try:
                steps = int(kept["num_inference_steps"])
            except (TypeError, ValueError):
                raise InvalidRequest(f"replicate: steps must be an integer, got {kept['num_inference_steps']!r}") from None
            clamped = max(1, min(spec.max_steps, steps))
            if clamped != steps:
                log.info("replicate: %s takes 1..%d steps; using %d instead of %d", name, spec.max_steps, clamped, steps)
            kept["num_inference_steps"] = clamped
        data.update(kept)
        return name, version, data

    # ------------------------------------------------------------------ calls
    async def generate(self, request: GenerationRequest) -> GenerationResult:
        name, version, data = self.build_input(request)
        http = self.http
        deadline = time.monotonic() + self.timeout_s
        prediction = await self._create(http, name, version, data)
        report_call_id(str(prediction.get("id") or ""))  # into the ledger before we wait on it
        prediction = await self._wait(http, prediction, deadline)

        pid = str(prediction.get("id") or "")
        status = prediction.get("status")
        if status == "failed":
            raise self._failure(pid, prediction.get("error"))
        if status in ENDED_UNPAID:
            raise Transient(f"replicate: prediction {pid} was {status}")
        return await self._result(http, request, prediction)

    async def _result(self, http: ProviderHTTP, request: GenerationRequest, prediction: dict[str, Any]) -> GenerationResult:
        """The image of a prediction that succeeded, downloaded now. A failed download is a retryable error:
        the runner asks :meth:`fetch_known` to download it again, never a new prediction."""
        pid = str(prediction.get("id") or "")
        url = self._first_output(pid, prediction.get("output"))
        release_slot()  # the prediction is done; only the download is left
        image = await self._fetch(http, url)
        metrics = prediction.get("metrics") or {}
        inp = prediction.get("input") if isinstance(prediction.get("input"), dict) else {}
        metadata: dict[str, Any] = {"prediction_id": pid, "aspect_ratio": inp.get("aspect_ratio"),
                                    "output_format": inp.get("output_format")}
        version = split_model(request.model or self.model)[1]
        if version:
            metadata["version"] = version
        if isinstance(metrics.get("predict_time"), (int, float)):
            metadata["predict_time_s"] = round(float(metrics["predict_time"]), 3)
        return GenerationResult(data=image, seed=request.seed, cost_usd=self._cost(request),
                                model=request.model or self.model, metadata=metadata)

    async def fetch_known(self, external_id: str, request: GenerationRequest) -> KnownCall:
        """``GET /v1/predictions/{id}``: a prediction that succeeded is downloaded again (Replicate keeps
        outputs for an hour; no new charge), one still running is waited for, a failed, canceled or aborted one
        cost nothing (official models bill successful predictions only), an unknown one is gone."""
        http = self.http
        try:
            prediction = await http.json("GET", f"/v1/predictions/{quote(external_id, safe='')}",
                                         headers=self.auth_headers())
        except InvalidRequest:  # 404: expired or never ours
            return KnownCall("gone")
        if not isinstance(prediction, dict) or not prediction.get("status"):
            raise Transient("replicate: the poll answer is not a prediction")
        prediction = await self._wait(http, prediction, time.monotonic() + self.timeout_s)
        status = prediction.get("status")
        if status == "failed":
            return KnownCall("failed", error=self._failure(external_id, prediction.get("error")), billed_usd=0.0)
        if status in ENDED_UNPAID:
            return KnownCall("gone", billed_usd=0.0)
        if prediction.get("output") is None and prediction.get("data_removed"):
            return KnownCall("gone")  # succeeded (and billed) but its output has expired
        try:
            return KnownCall("done", result=await self._result(http, request, prediction))
        except OutputExpired:
            # while the API says the output is there (data_removed false), a 404 on it is passing and the call
            # is asked about again later; long past the hour outputs are kept, it is gone (the ledger keeps
            # the estimate) and a new call is fair, or the entry would wait for ever
            if _ended_before(prediction, time.time() - OUTPUT_GIVEN_UP_AFTER_S):
                log.info("replicate: the output of %s still answers 404 hours after it completed; counted lost",
                         external_id)
                return KnownCall("gone")
            raise

    async def find_unnamed(self, request: GenerationRequest, sent_after: dt.datetime,
                           sent_before: dt.datetime) -> list[str]:
        """``GET /v1/predictions?created_after=…&created_before=…`` (newest first, 100 a page, ``next`` to go
        on): the predictions of this model whose input is the one this request sends. A run killed while the
        create call was held (``Prefer: wait``) never learnt its prediction's id; this finds it."""
        name, version, data = self.build_input(request)
        http = self.http
        url: str | None = "/v1/predictions"
        params: dict[str, str] | None = {"created_after": _iso(sent_after), "created_before": _iso(sent_before)}
        found: list[str] = []
        for _ in range(MAX_LIST_PAGES):
            if url is None:
                break
            page = await http.json("GET", url, params=params, headers=self.auth_headers())
            if not isinstance(page, dict):
                raise Transient("replicate: the list of predictions is not a JSON object")
            for prediction in page.get("results") or []:
                if isinstance(prediction, dict) and prediction.get("id") and _made_for(prediction, name, version, data):
                    found.append(str(prediction["id"]))
            url, params = self._next_page(http, page.get("next")), None
        return found

    @staticmethod
    def _next_page(http: ProviderHTTP, link: Any) -> str | None:
        """The ``next`` link, only on the API's own host (it gets the token)."""
        if not isinstance(link, str) or not link:
            return None
        target, base = urlsplit(link), urlsplit(http.base_url)
        return link if (target.scheme, target.netloc) == (base.scheme, base.netloc) else None

    async def _create(self, http: ProviderHTTP, name: str, version: str | None, data: dict[str, Any]) -> dict[str, Any]:
        # the server holds the answer up to `wait` s: keep that well inside the read timeout (timeout_s), and
        # inside the call's deadline, which would cut the call before its id is known (then only found by listing)
        wait = max(1, min(MAX_PREFER_WAIT_S, int(self.timeout_s / 2)))
        if self.settings.get("prefer_wait_s") is not None:
            wait = max(1, min(wait, int(number_setting(self.name, self.settings, "prefer_wait_s", wait))))
        left = time_left()
        if left is not None:
            wait = max(1, min(wait, int(left / 2)))
        headers = {**self.auth_headers(), "Prefer": f"wait={wait}"}
        if version is None:
            owner, model_name = name.split("/", 1)
            path = f"/v1/models/{quote(owner, safe='')}/{quote(model_name, safe='')}/predictions"
            body: dict[str, Any] = {"input": data}
        else:
            path, body = "/v1/predictions", {"version": version, "input": data}
        prediction = await http.json("POST", path, json=body, headers=headers)  # 402: OutOfCredit, stops the run
        if not isinstance(prediction, dict) or not prediction.get("status"):
            raise Transient("replicate: the create answer is not a prediction")
        log.debug("replicate: POST %s -> prediction %s %s", path, prediction.get("id"), prediction.get("status"))
        return prediction

    def _poll_url(self, http: ProviderHTTP, prediction: dict[str, Any]) -> str:
        pid = str(prediction.get("id") or "")
        get = (prediction.get("urls") or {}).get("get")
        if isinstance(get, str) and get:  # only follow urls.get on the API's own host (it gets the token)
            target, base = urlsplit(get), urlsplit(http.base_url)
            if (target.scheme, target.netloc) == (base.scheme, base.netloc):
                return get
        if not pid:
            raise Transient("replicate: a running prediction without an id")
        return f"/v1/predictions/{quote(pid, safe='')}"

    async def _wait(self, http: ProviderHTTP, prediction: dict[str, Any], deadline: float) -> dict[str, Any]:
        interval = self.poll_interval_s
        while prediction.get("status") in RUNNING:
            url = self._poll_url(http, prediction)
            remaining = deadline - time.monotonic()
            if remaining <= interval:
                await self._cancel(http, prediction)
                raise Transient(f"replicate: prediction {prediction.get('id')} not finished within {self.timeout_s:g}s; "
                                "canceled")
            await asyncio.sleep(interval)
            try:
                polled = await http.json("GET", url, headers=self.auth_headers())
            except (RateLimited, Transient) as exc:
                # the prediction runs (and bills) on: keep polling it rather than starting another
                log.debug("replicate: poll of %s failed (%s); polling on", prediction.get("id"), exc)
                if isinstance(exc, RateLimited) and exc.retry_after:
                    await asyncio.sleep(min(exc.retry_after, max(0.0, deadline - time.monotonic() - interval)))
                continue
            except InvalidRequest as exc:
                raise Transient(f"replicate: lost track of prediction {prediction.get('id')}: {exc}") from None
            if not isinstance(polled, dict) or not polled.get("status"):
                raise Transient("replicate: the poll answer is not a prediction")
            prediction = polled
        if prediction.get("status") not in TERMINAL:
            raise Transient(f"replicate: unexpected prediction status {str(prediction.get('status'))[:40]!r}")
        log.debug("replicate: prediction %s %s", prediction.get("id"), prediction.get("status"))
        return prediction

    async def _cancel(self, http: ProviderHTTP, prediction: dict[str, Any]) -> None:
        """Best effort: a prediction nobody waits for should not run (and bill) on."""
        pid = str(prediction.get("id") or "")
        url = (prediction.get("urls") or {}).get("cancel")
        base = urlsplit(http.base_url)
        if not (isinstance(url, str) and (urlsplit(url).scheme, urlsplit(url).netloc) == (base.scheme, base.netloc)):
            if not pid:
                return
            url = f"/v1/predictions/{quote(pid, safe='')}/cancel"
        try:
            await asyncio.wait_for(http.request("POST", url, headers=self.auth_headers()), 5)
        except (ProviderError, TimeoutError) as exc:
            log.debug("replicate: could not cancel %s: %s", pid, exc)

    def _failure(self, pid: str, error: Any) -> ProviderError:
        message = self._redact(str(error or "prediction failed without an error message").strip())[:500]  # redacted, then cut
        text = f"replicate: prediction {pid} failed: {message}"
        if is_nsfw(message):
            return ContentRefused(text)
        if any(hint in message.lower() for hint in _TRANSIENT_HINTS):
            return Transient(text)
        return InvalidRequest(text)

    def _cost(self, request: GenerationRequest) -> float:
        override = self.settings.get("price_usd")
        if override is not None:
            return float(override)
        return self.price_for(request.model or self.model, request.width, request.height)

    @staticmethod
    def _first_output(pid: str, output: Any) -> str:
        if isinstance(output, list):
            output = next((o for o in output if isinstance(o, str) and o), None)
        if not isinstance(output, str) or not output:
            raise Transient(f"replicate: prediction {pid} succeeded without an output")
        return output

    async def _fetch(self, http: ProviderHTTP, url: str) -> bytes:
        if url.startswith("data:"):
            header, sep, payload = url.partition(",")
            if not sep:
                raise InvalidRequest("replicate: malformed data URI in the output")
            try:
                data = base64.b64decode(payload, validate=True) if header.endswith(";base64") else unquote_to_bytes(payload)
            except (binascii.Error, ValueError):
                raise InvalidRequest("replicate: undecodable data URI in the output") from None
            if len(data) > http.max_download_bytes:
                raise InvalidRequest(f"replicate: output is over the {http.max_download_bytes:,}-byte cap")
            return data
        return await http.download(url)

    async def check(self) -> str:
        """``limner doctor``: ``GET /v1/account`` checks the token without running anything."""
        await super().check()
        account = await self.http.json("GET", "/v1/account", headers=self.auth_headers())
        who = account.get("username") if isinstance(account, dict) else None
        return f"token accepted{f' (account {who})' if who else ''}; model {self.model}"


#: pages of the prediction list read when looking for a call without an id (100 predictions a page)
MAX_LIST_PAGES = 5


def _iso(when: dt.datetime) -> str:
    """A UTC time (naive means UTC) in ISO 8601 with ``Z``, as the list's filters take it."""
    aware = when if when.tzinfo is not None else when.replace(tzinfo=dt.UTC)
    return aware.astimezone(dt.UTC).isoformat().replace("+00:00", "Z")


def _ended_before(prediction: dict[str, Any], deadline_epoch: float) -> bool:
    """Whether the prediction's ``completed_at`` (ISO 8601) is before ``deadline_epoch``; False when it has
    none or it cannot be read (asked again, as before)."""
    raw = prediction.get("completed_at")
    if not isinstance(raw, str) or not raw:
        return False
    try:
        ended = dt.datetime.fromisoformat(raw.replace("Z", "+00:00"))
    except ValueError:
        return False
    ended = ended if ended.tzinfo is not None else ended.replace(tzinfo=dt.UTC)
    return ended.timestamp() < deadline_epoch


def _made_for(prediction: dict[str, Any], name: str, version: str | None, data: dict[str, Any]) -> bool:
    """Whether a listed prediction is one this request would have created: same model (or version), and every
    input field the request sends, with the same value."""
    if version is not None:
        if prediction.get("version") != version:
            return False
    elif prediction.get("model") != name:
        return False
    given = prediction.get("input")
    return isinstance(given, dict) and all(given.get(key) == value for key, value in data.items())
