"""Loopback fakes of the hosted image APIs (fal, Together, OpenAI, Black Forest Labs, Hugging Face).

Each fake is a pytest-httpserver ``HTTPServer`` on 127.0.0.1 that reproduces the documented requests and
answers of one API (see each provider module's docstring), checks its auth header, and serves real,
noisy PNG bytes. All of them support the modes of :mod:`limner.testing.provider_suite` (``ok``, ``rate_limit_once``,
``server_error_once``, ``slow``, ``refuse``, ``auth``, ``corrupt``, ``oversized``) plus a few of their own,
and record ``create_calls``, ``last_input`` and every request in ``log``.

In ``auth`` mode the fakes echo the key they were sent in the error body, as a careless server might, so
the tests also check that the providers redact it.
"""

from __future__ import annotations

import base64
import functools
import io
import itertools
import json
import re
import threading
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
from fake_network import RedirectingServer, RedirectMode, closed_port_url
from PIL import Image
from werkzeug import Request, Response

from limner.imaging import validate_image
from limner.providers import AuthFailed, HostUnreachable, InvalidRequest, OutOfCredit
from limner.providers.http import ALLOW_HTTP_ENV
from limner.testing.fake_provider import noisy_png
from limner.testing.provider_suite import SECRET_TOKEN, FakeAPI, call_through_gate, request

SUITE_MODES = ("ok", "rate_limit_once", "server_error_once", "slow", "refuse", "auth", "corrupt", "oversized",
               "redirect_elsewhere")
#: long side of the PNGs the fakes serve (small: the tests only need a real, non-blank image)
IMAGE_SIDE = 192


@functools.lru_cache(maxsize=64)
def png(width: int = IMAGE_SIDE, height: int = IMAGE_SIDE, seed: int = 0) -> bytes:
    scale = IMAGE_SIDE / max(width, height, 1)
    return noisy_png(max(8, round(width * scale)), max(8, round(height * scale)), seed)


@functools.lru_cache(maxsize=1)
def oversized_png() -> bytes:
    """A valid PNG of pure noise, over 1 MB (the suite's download cap)."""
    pixels = np.random.default_rng(7).integers(0, 256, size=(640, 640, 3), dtype=np.uint8)
    buf = io.BytesIO()
    Image.fromarray(pixels).save(buf, "PNG", compress_level=1)
    assert len(buf.getvalue()) > 1_100_000
    return buf.getvalue()


#: the PNG signature and a header chunk, then nothing: not an image anyone can decode
CORRUPT_PNG = png()[:40] + b"\x00garbage\x00" * 4




class HostedFake(RedirectMode, FakeAPI):
    """One fake API server. Subclasses implement ``route(request) -> Response``."""

    #: header carrying the key, and the prefix before it
    auth_header = "Authorization"
    auth_prefix = "Bearer "
    #: status of an auth failure
    auth_status = 401
    modes: tuple[str, ...] = SUITE_MODES

    def __init__(self) -> None:
        self.server = RedirectingServer(host="127.0.0.1", threaded=True)
        self.server.expect_request(re.compile(".*")).respond_with_handler(self._handle)
        self._stopping = threading.Event()
        self._lock = threading.Lock()
        self._ids = itertools.count(1)
        self.create_calls = 0
        self.last_input: dict[str, Any] | None = None
        #: (method, path, headers) of every request received
        self.log: list[tuple[str, str, dict[str, str]]] = []
        self.mode("ok")

    # -- lifecycle and scripting --------------------------------------------------------------

    def start(self) -> HostedFake:
        self.server.start()
        return self

    def stop(self) -> None:
        self._stopping.set()  # wakes a "slow" handler still sleeping
        self.server.stop()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.port}"

    def mode(self, name: str, **options: Any) -> None:
        if name not in self.modes:
            raise ValueError(f"{type(self).__name__} has no mode {name!r} (modes: {', '.join(self.modes)})")
        with self._lock:
            self.current, self.options, self._failed_once = name, options, False
            self.script_redirect(name, options)

    def next_id(self) -> str:
        return f"req-{next(self._ids):04d}"

    # -- request handling ---------------------------------------------------------------------

    def _handle(self, request: Request) -> Response:
        with self._lock:
            self.log.append((request.method, request.path, dict(request.headers)))
        if not self.public(request):
            presented = request.headers.get(self.auth_header, "")
            if self.current == "auth" or presented != self.auth_prefix + SECRET_TOKEN:
                # echo what was presented, as a careless server would: the provider must redact it
                return self.auth_failure(presented.removeprefix(self.auth_prefix))
        return self.route(request)

    def public(self, request: Request) -> bool:
        """Requests served without the key (image downloads from a CDN)."""
        return request.path.startswith("/files/")

    def auth_failure(self, presented: str) -> Response:
        return json_response({"error": f"Invalid credentials: {presented}"}, self.auth_status)

    def route(self, request: Request) -> Response:  # pragma: no cover - interface
        raise NotImplementedError

    def record_create(self, request: Request, params: dict[str, Any]) -> Response | None:
        """Count a create call and apply the create-call modes; None means: answer normally."""
        with self._lock:
            self.create_calls += 1
            self.last_input = params
            once = self.current in ("rate_limit_once", "server_error_once") and not self._failed_once
            if once:
                self._failed_once = True
        if once and self.current == "rate_limit_once":
            return json_response(self.rate_limit_body(), 429, headers={"Retry-After": "1"})
        if once:
            return json_response({"error": "internal server error"}, 500)
        if self.current == "slow":
            self._stopping.wait(float(self.options.get("delay", 3)))
        return None

    def rate_limit_body(self) -> Any:
        return {"error": "rate limit exceeded"}

    def image_bytes(self, width: int = IMAGE_SIDE, height: int = IMAGE_SIDE, seed: int = 0) -> bytes:
        if self.current == "corrupt":
            return CORRUPT_PNG
        if self.current == "oversized":
            return oversized_png()
        return png(width, height, seed % 2**32)

    def serve_file(self, request: Request) -> Response:
        """GET /files/<name>.png: the image, as a CDN would serve it (modes ``expired``/``corrupt``/``oversized``)."""
        if self.current == "expired":
            return Response("<Error><Code>BlobNotFound</Code></Error>", 404, content_type="application/xml")
        data = self.image_bytes(seed=int(request.args.get("seed", "0")))
        return Response(data, 200, content_type="image/png")

    def headers_sent_to(self, prefix: str) -> list[dict[str, str]]:
        return [headers for _, path, headers in self.log if path.startswith(prefix)]


def json_response(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(json.dumps(body), status, headers=headers, content_type="application/json")


def body_of(request: Request) -> dict[str, Any]:
    return json.loads(request.get_data() or b"{}")


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


# -- fal.ai queue API -----------------------------------------------------------------------------


class FalFake(HostedFake):
    """fal's queue: submit -> status (IN_QUEUE / IN_PROGRESS / COMPLETED) -> response -> CDN file.

    Extra modes and options: ``ok`` with ``polls=n`` (answer IN_QUEUE then IN_PROGRESS for n status
    polls), ``refuse_422`` (the response URL answers 422 ``content_policy_violation``).
    """

    auth_header = "Authorization"
    auth_prefix = "Key "
    modes = (*SUITE_MODES, "refuse_422")

    def __init__(self) -> None:
        super().__init__()
        self.requests: dict[str, dict[str, Any]] = {}
        #: statuses answered, in order
        self.statuses: list[str] = []

    def auth_failure(self, presented: str) -> Response:
        return json_response({"detail": f"Authentication is required to access this resource (key {presented})"}, 401)

    def route(self, request: Request) -> Response:
        path = request.path
        if path.startswith("/files/"):
            return self.serve_file(request)
        if request.method == "POST":
            return self.submit(request, path.strip("/"))
        match = re.fullmatch(r"/(?P<model>.+)/requests/(?P<id>[^/]+)(?P<tail>/status|/cancel)?", path)
        if not match or match["id"] not in self.requests:
            return json_response({"detail": "Request not found"}, 404)
        if match["tail"] == "/status":
            return self.status(match["id"])
        if match["tail"] == "/cancel":
            return json_response({"status": "CANCELLATION_REQUESTED"}, 202)
        return self.response(match["id"])

    def submit(self, request: Request, model: str) -> Response:
        body = body_of(request)
        early = self.record_create(request, body)
        if early is not None:
            return early
        if "safety_tolerance" in body and body["safety_tolerance"] not in ("1", "2", "3", "4", "5", "6"):
            # a string enum on fal's FLUX pro endpoints (flux-pro-v1.1-ultra API reference): an integer is refused
            return json_response({"detail": [{"loc": ["body", "safety_tolerance"], "type": "literal_error",
                                              "msg": "Input should be '1', '2', '3', '4', '5' or '6'",
                                              "input": body["safety_tolerance"]}]}, 422)
        request_id = self.next_id()
        base = f"{self.url}/{model}/requests/{request_id}"
        self.requests[request_id] = {"input": body, "polls": 0, "response_url": base}
        return json_response({"request_id": request_id, "status": "IN_QUEUE", "queue_position": 0,
                              "status_url": f"{base}/status", "response_url": base, "cancel_url": f"{base}/cancel"})

    def status(self, request_id: str) -> Response:
        state = self.requests[request_id]
        polls = int(self.options.get("polls", 0))
        state["polls"] += 1
        if state["polls"] <= polls:
            status = "IN_QUEUE" if state["polls"] <= (polls + 1) // 2 else "IN_PROGRESS"
            answer = {"status": status, "queue_position": max(0, polls - state["polls"])}
            code = 202
        else:
            status, answer, code = "COMPLETED", {"status": "COMPLETED", "logs": None, "metrics": {"inference_time": 0.4}}, 200
        self.statuses.append(status)
        answer["response_url"] = state["response_url"]
        return json_response(answer, code)

    def response(self, request_id: str) -> Response:
        body = self.requests[request_id]["input"]
        if self.current == "refuse_422":
            return json_response({"detail": [{"loc": ["body", "prompt"], "msg": "The content was flagged by a content checker.",
                                               "type": "content_policy_violation", "categories": ["violence"],
                                               "url": "https://docs.fal.ai/errors#content_policy_violation"}]}, 422)
        size = body.get("image_size") or {}
        width, height = int(size.get("width", 1024)), int(size.get("height", 768))
        seed = int(body.get("seed", 0))
        return json_response({
            "images": [{"url": f"{self.url}/files/{request_id}.png?seed={seed}", "width": width, "height": height,
                        "content_type": "image/png"}],
            "timings": {"inference": 0.31}, "seed": seed, "has_nsfw_concepts": [self.current == "refuse"],
            "prompt": body.get("prompt"),
        })


# -- Together AI --------------------------------------------------------------------------------------


class TogetherFake(HostedFake):
    """POST /v1/images/generations -> {"data": [{"b64_json"}]}. Extra modes: ``bad_base64``, ``no_credit``
    (402 ``credit_limit``, Together's answer when the account has no credit left).

    Refusal shape (Together documents none for images): 422 with an OpenAI-style error naming NSFW.
    """

    modes = (*SUITE_MODES, "bad_base64", "no_credit")

    def auth_failure(self, presented: str) -> Response:
        return json_response({"error": {"message": f"Invalid API key provided: {presented}", "type": "invalid_request_error",
                                        "param": None, "code": "invalid_api_key"}}, 401)

    def route(self, request: Request) -> Response:
        if request.method == "GET" and request.path == "/v1/models":
            return json_response([{"id": "black-forest-labs/FLUX.1-schnell", "object": "model", "type": "image"},
                                  {"id": "meta-llama/Llama-3.3-70B-Instruct-Turbo", "object": "model", "type": "chat"}])
        if request.method != "POST" or request.path != "/v1/images/generations":
            return json_response({"error": {"message": "Not found", "type": "invalid_request_error"}}, 404)
        body = body_of(request)
        early = self.record_create(request, body)
        if early is not None:
            return early
        if self.current == "no_credit":
            return json_response({"id": f"tg-{self.next_id()}", "error": {
                "message": "Credit limit exceeded. Please navigate to https://api.together.xyz/settings/billing to add "
                           "credit or upgrade your plan.", "type": "credit_limit", "param": None, "code": None}}, 402)
        if body.get("response_format") != "base64" or body.get("n") != 1:
            return json_response({"error": {"message": "expected response_format=base64 and n=1"}}, 400)
        if self.current == "refuse":
            return json_response({"error": {"message": "The generated image was flagged as NSFW by the safety checker.",
                                            "type": "invalid_request_error", "param": None, "code": None}}, 422)
        encoded = "!!not*base64!!" if self.current == "bad_base64" else b64(self.image_bytes(
            body.get("width", 1024), body.get("height", 768), body.get("seed", 0)))
        return json_response({"id": f"tg-{self.next_id()}", "model": body.get("model"), "object": "list",
                              "data": [{"index": 0, "b64_json": encoded, "type": "b64_json"}]})


# -- OpenAI images ------------------------------------------------------------------------------------


class OpenAIFake(HostedFake):
    """POST /v1/images/generations for GPT Image models: fixed sizes, always base64, unknown params refused.

    Extra mode: ``no_quota`` (429 with ``code: insufficient_quota``: the account cannot pay). Option of ``ok``:
    ``auto_quality`` (the quality answered for ``quality: "auto"``; default ``medium``).
    """

    modes = (*SUITE_MODES, "no_quota")

    ACCEPTED = frozenset({"model", "prompt", "size", "quality", "n", "output_format", "background", "moderation",
                          "output_compression", "user"})
    SIZES = frozenset({"1024x1024", "1536x1024", "1024x1536", "auto"})

    def auth_failure(self, presented: str) -> Response:
        return json_response({"error": {"message": f"Incorrect API key provided: {presented}. You can find your API key at "
                                                   "https://platform.openai.com/account/api-keys.",
                                        "type": "invalid_request_error", "param": None, "code": "invalid_api_key"}}, 401)

    def rate_limit_body(self) -> Any:
        return {"error": {"message": "Rate limit reached for images per minute.", "type": "requests",
                          "param": None, "code": "rate_limit_exceeded"}}

    def route(self, request: Request) -> Response:
        if request.method == "GET" and request.path.startswith("/v1/models/"):
            model = request.path.removeprefix("/v1/models/")
            if not model.startswith("gpt-image-"):
                return json_response({"error": {"message": f"The model '{model}' does not exist", "type": "invalid_request_error",
                                                "param": "model", "code": "model_not_found"}}, 404)
            return json_response({"id": model, "object": "model", "created": 1745000000, "owned_by": "system"})
        if request.method != "POST" or request.path != "/v1/images/generations":
            return json_response({"error": {"message": "Invalid URL", "type": "invalid_request_error"}}, 404)
        body = body_of(request)
        early = self.record_create(request, body)
        if early is not None:
            return early
        if self.current == "no_quota":
            return json_response({"error": {
                "message": "You exceeded your current quota, please check your plan and billing details. For more "
                           "information on this error, read the docs: https://platform.openai.com/docs/guides/error-codes/api-errors.",
                "type": "insufficient_quota", "param": None, "code": "insufficient_quota"}}, 429)
        unknown = sorted(set(body) - self.ACCEPTED)
        if unknown:
            return json_response({"error": {"message": f"Unknown parameter: '{unknown[0]}'.", "type": "invalid_request_error",
                                            "param": unknown[0], "code": "unknown_parameter"}}, 400)
        if body.get("size") not in self.SIZES:
            return json_response({"error": {"message": f"Invalid value: '{body.get('size')}'. Supported values are: "
                                                       "'1024x1024', '1024x1536', '1536x1024', and 'auto'.",
                                            "type": "invalid_request_error", "param": "size", "code": "invalid_value"}}, 400)
        if self.current == "refuse":
            return json_response({"error": {
                "message": "Your request was rejected by the safety system. If you believe this is an error, contact us "
                           "at help.openai.com and include the request ID req_123. safety_violations=[violence].",
                "type": "image_generation_user_error", "param": None, "code": "moderation_blocked"}}, 400)
        size = str(body["size"]).replace("auto", "1024x1024")
        width, height = (int(v) for v in size.split("x"))
        # the answer names the quality and size generated, never "auto" (openai-python types/images_response.py);
        # option auto_quality: what "auto" (or no quality) turns into
        quality = body.get("quality") if body.get("quality") in ("low", "medium", "high") else \
            str(self.options.get("auto_quality", "medium"))
        return json_response({
            "created": 1767225600, "background": "opaque", "output_format": "png", "quality": quality,
            "size": size, "data": [{"b64_json": b64(self.image_bytes(width, height, len(body.get("prompt", ""))))}],
            "usage": {"input_tokens": 50, "output_tokens": 1056, "total_tokens": 1106,
                      "input_tokens_details": {"image_tokens": 0, "text_tokens": 50}},
        })


# -- Black Forest Labs --------------------------------------------------------------------------------


class BFLFake(HostedFake):
    """POST /v1/{model} -> {id, polling_url}; GET /v1/get_result?id= -> Pending ... Ready + result.sample.

    Extra modes: ``content_moderated``, ``error``, ``not_found`` (status answers), ``expired`` (the sample
    URL answers 404), ``no_credits`` (402), ``busy`` (429 with ``retry_after`` in the body, no header);
    option ``polls=n``: answer Pending n times first. ``refuse`` is "Request Moderated".
    """

    auth_header = "x-key"
    auth_prefix = ""
    auth_status = 403
    modes = (*SUITE_MODES, "content_moderated", "error", "not_found", "expired", "no_credits", "busy")

    def __init__(self) -> None:
        super().__init__()
        self.tasks: dict[str, dict[str, Any]] = {}
        self.statuses: list[str] = []

    def auth_failure(self, presented: str) -> Response:
        return json_response({"detail": f"Not authenticated - Invalid Authentication (x-key {presented})"}, 403)

    def route(self, request: Request) -> Response:
        if request.path.startswith("/files/"):
            return self.serve_file(request)
        if request.method == "GET" and request.path == "/v1/credits":
            return json_response({"credits": 1234.5})
        if request.method == "GET" and request.path == "/v1/get_result":
            return self.get_result(request.args.get("id", ""))
        if request.method == "POST" and request.path.startswith("/v1/"):
            return self.submit(request)
        return json_response({"detail": "Not Found"}, 404)

    def submit(self, request: Request) -> Response:
        body = body_of(request)
        early = self.record_create(request, body)
        if early is not None:
            return early
        if self.current == "no_credits":
            return json_response({"detail": "Insufficient credits"}, 402)
        if self.current == "busy":
            return json_response({"error": "rate_limit_exceeded", "message": "Too many concurrent requests",
                                  "retry_after": 5}, 429)
        width, height = body.get("width", 1024), body.get("height", 768)
        if width % 32 or height % 32 or not (256 <= width <= 1440 and 256 <= height <= 1440):
            return json_response({"detail": [{"loc": ["body", "width"], "msg": "must be a multiple of 32 in 256..1440",
                                              "type": "value_error"}]}, 422)
        task_id = f"bfl-{self.next_id()}"
        self.tasks[task_id] = {"input": body, "polls": 0}
        return json_response({"id": task_id, "polling_url": f"{self.url}/v1/get_result?id={task_id}"})

    def get_result(self, task_id: str) -> Response:
        task = self.tasks.get(task_id)
        if task is None or self.current == "not_found":
            return self._answer({"id": task_id, "status": "Task not found", "result": None})
        task["polls"] += 1
        if task["polls"] <= int(self.options.get("polls", 0)):
            return self._answer({"id": task_id, "status": "Pending", "result": None, "progress": 0.5})
        if self.current == "refuse":
            return self._answer({"id": task_id, "status": "Request Moderated", "result": None,
                                 "details": {"Moderation Reasons": ["Derivative Works Filter"]}})
        if self.current == "content_moderated":
            return self._answer({"id": task_id, "status": "Content Moderated", "result": None,
                                 "details": {"Moderation Reasons": ["NSFW"]}})
        if self.current == "error":
            return self._answer({"id": task_id, "status": "Error", "result": None, "details": {"error": "worker crashed"}})
        body = task["input"]
        return self._answer({"id": task_id, "status": "Ready", "progress": None, "details": None, "result": {
            "sample": f"{self.url}/files/{task_id}.png?seed={body.get('seed', 0)}", "prompt": body.get("prompt"),
            "seed": body.get("seed"), "start_time": 1767225600.0, "end_time": 1767225603.2, "duration": 3.2}})

    def _answer(self, body: dict[str, Any]) -> Response:
        self.statuses.append(body["status"])
        return json_response(body)


# -- Hugging Face Inference Providers ----------------------------------------------------------------


class HuggingFaceFake(HostedFake):
    """POST /hf-inference/models/{model} -> the image bytes. Extra modes: ``loading`` (503 with
    ``estimated_time``), ``loading_once``, ``json_200`` (JSON with status 200), ``no_credit`` (402: the
    monthly included credits are spent).

    Refusal shape (Hugging Face documents none for this task): 400 ``{"error": "... NSFW ..."}``.
    ``last_input`` is the parameters, flattened, with the prompt as ``inputs``.
    """

    modes = (*SUITE_MODES, "loading", "loading_once", "json_200", "no_credit")

    def auth_failure(self, presented: str) -> Response:
        return json_response({"error": f"Invalid credentials in Authorization header ({presented})"}, 401)

    def route(self, request: Request) -> Response:
        match = re.fullmatch(r"/hf-inference/models/(?P<model>[^/]+/[^/]+)", request.path)
        if request.method != "POST" or not match:
            return json_response({"error": "Not Found"}, 404)
        body = body_of(request)
        params = body.get("parameters") or {}
        early = self.record_create(request, {"inputs": body.get("inputs"), **params})
        if early is not None:
            return early
        if self.current == "no_credit":
            return json_response({"error": "You have exceeded your monthly included credits for Inference Providers. "
                                           "Subscribe to PRO to get 20x more monthly included credits."}, 402)
        if self.current == "loading" or (self.current == "loading_once" and not self._loaded_once()):
            wait = float(self.options.get("estimated_time", 20.0))
            return json_response({"error": f"Model {match['model']} is currently loading", "estimated_time": wait}, 503)
        if self.current == "refuse":
            return json_response({"error": "The generated image was flagged as NSFW by the safety checker."}, 400)
        if self.current == "json_200":
            return json_response({"error": "unexpected"}, 200)
        width, height = int(params.get("width", 1024)), int(params.get("height", 768))
        return Response(self.image_bytes(width, height, int(params.get("seed", 0))), 200, content_type="image/png")

    def _loaded_once(self) -> bool:
        with self._lock:
            done, self._failed_once = self._failed_once, True
        return done


# -- fixtures helpers ---------------------------------------------------------------------------------


def start_fake(fake_cls: type[HostedFake]):  # type: ignore[no-untyped-def]
    """A function-scoped ``fake`` fixture body: start the server, stop it afterwards."""
    fake = fake_cls().start()
    try:
        yield fake
    finally:
        fake.stop()


def provider_factory(monkeypatch: pytest.MonkeyPatch, provider_cls: type, fake: HostedFake, *, key_env: str,
                     base_env: str, base_path: str = "", polls: bool = False) -> Callable[..., Any]:
    """``make_provider(**settings)``: the provider pointed at ``fake``, with the suite's token; ``polls``: with a
    short ``poll_interval_s`` (a provider that does not poll does not take that setting).

    Secrets come from the ``_secret`` setting (as Limner passes them), never from the real environment.
    """
    monkeypatch.setenv(ALLOW_HTTP_ENV, "127.0.0.1,localhost")
    secrets = {key_env: SECRET_TOKEN, base_env: fake.url + base_path}

    def make(**settings: Any) -> Any:
        merged = {**({"poll_interval_s": 0.05} if polls else {}), "timeout_s": 10, "_secret": secrets.get, **settings}
        return provider_cls(settings=merged)

    return make


class HostedChecks:
    """Checks every hosted provider passes on top of :class:`limner.testing.provider_suite.ProviderSuite`.

    The test class sets ``key_env`` and ``base_env`` (and ``base_path`` when the API's base URL has a path).
    """

    key_env: str
    base_env: str
    base_path: str = ""
    #: the provider's ``check()`` calls the API (else it only looks for the key)
    online_check: bool = False

    async def test_missing_key_fails_auth_before_any_call(self, fake: HostedFake, make_provider) -> None:
        provider = make_provider(_secret=lambda name: fake.url + self.base_path if name == self.base_env else None)
        with pytest.raises(AuthFailed, match=self.key_env):
            await provider.generate(request(model=provider.model))
        await provider.aclose()
        assert fake.create_calls == 0 and not fake.log

    async def test_plain_http_needs_the_allow_list(self, fake: HostedFake, make_provider, monkeypatch) -> None:
        monkeypatch.delenv(ALLOW_HTTP_ENV)
        provider = make_provider()
        with pytest.raises(InvalidRequest, match=ALLOW_HTTP_ENV):
            await provider.generate(request(model=provider.model))
        await provider.aclose()
        assert not fake.log

    async def test_secrets_from_the_environment(self, fake: HostedFake, make_provider, monkeypatch) -> None:
        monkeypatch.setenv(self.key_env, SECRET_TOKEN)
        monkeypatch.setenv(self.base_env, fake.url + self.base_path)
        provider = make_provider(_secret=None)
        assert provider.missing_env() == []
        result = await provider.generate(request(model=provider.model))
        await provider.aclose()
        validate_image(result.data)

    async def test_base_url_setting_wins_over_the_environment(self, fake: HostedFake, make_provider) -> None:
        provider = make_provider(_secret=lambda name: SECRET_TOKEN if name == self.key_env else "https://nowhere.invalid",
                                 base_url=fake.url + self.base_path)
        result = await provider.generate(request(model=provider.model))
        await provider.aclose()
        validate_image(result.data)
        assert fake.create_calls == 1

    async def test_no_secret_in_result_repr_or_metadata(self, fake: HostedFake, make_provider) -> None:
        provider = make_provider()
        result = await provider.generate(request(model=provider.model))
        await provider.aclose()
        assert SECRET_TOKEN not in repr(provider)
        assert SECRET_TOKEN not in json.dumps(result.metadata, default=str)
        assert result.cost_usd > 0 and result.model

    async def test_key_is_not_sent_to_the_image_host(self, fake: HostedFake, make_provider) -> None:
        provider = make_provider()
        await provider.generate(request(model=provider.model))
        await provider.aclose()
        for headers in fake.headers_sent_to("/files/"):
            assert SECRET_TOKEN not in json.dumps(headers)

    async def test_aclose_twice_and_reuse(self, fake: HostedFake, make_provider) -> None:
        provider = make_provider()
        await provider.generate(request(model=provider.model))
        await provider.aclose()
        await provider.aclose()
        result = await provider.generate(request(model=provider.model, seed=7))  # reconnects lazily
        await provider.aclose()
        validate_image(result.data)
        assert fake.create_calls == 2

    async def test_host_down_is_host_unreachable(self, fake: HostedFake, make_provider) -> None:
        provider = make_provider(base_url=closed_port_url() + self.base_path)
        with pytest.raises(HostUnreachable) as info:
            await provider.generate(request(model=provider.model))
        await provider.aclose()
        assert info.value.retryable and SECRET_TOKEN not in str(info.value)
        assert fake.create_calls == 0

    async def test_doctor_check(self, fake: HostedFake, make_provider) -> None:
        provider = make_provider()
        detail = await provider.check()
        assert SECRET_TOKEN not in detail and fake.create_calls == 0
        await provider.aclose()
        if self.online_check:
            assert fake.log and "accepted" in detail
            fake.mode("auth")
            with pytest.raises(AuthFailed) as info:
                await provider.check()
            await provider.aclose()
            assert SECRET_TOKEN not in str(info.value)
        missing = make_provider(_secret=lambda name: None)
        with pytest.raises(AuthFailed, match=self.key_env):
            await missing.check()


class CreditChecks:
    """An account that cannot pay stops the run: ``OutOfCredit`` (an ``AuthFailed``), decided by the answer's
    status and structure, with the provider's hint on where to add credit, and no retry.

    The test class sets ``credit_mode``: its fake's mode answering the API's out-of-credit shape.
    """

    credit_mode: str

    async def test_out_of_credit_stops_the_run(self, fake: HostedFake, make_provider) -> None:
        fake.mode(self.credit_mode)
        provider = make_provider()
        with pytest.raises(OutOfCredit) as info:
            await call_through_gate(provider)
        assert isinstance(info.value, AuthFailed) and not info.value.retryable
        assert provider.credit_hint in str(info.value) and SECRET_TOKEN not in str(info.value)
        assert fake.create_calls == 1  # not retried
