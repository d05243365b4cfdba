"""A loopback fake of the AUTOMATIC1111 / Forge API (pytest-httpserver), for the ``automatic1111`` tests.

``POST /sdapi/v1/txt2img`` answers ``{"images": [base64 PNG], "parameters": <request with defaults>,
"info": "<JSON string>"}`` where ``info`` holds ``seed``, ``all_seeds``, ``sd_model_name``, ... as the
web UI does (seed ``-1`` is replaced by a random one). Errors use the API's shapes: 401 ``{"detail":
"Incorrect username or password"}`` with ``WWW-Authenticate: Basic`` (``--api-auth``), 422 FastAPI
validation errors ``{"detail": [{"loc", "msg", "type"}]}``, 500 ``{"error", "detail", "body", "errors"}``.
``GET /sdapi/v1/options`` answers the current checkpoint.

Modes are those of :mod:`limner.testing.provider_suite`; ``refuse`` answers a 422 (there is no moderation on a
self-hosted server: an invalid request is its permanent failure). Options of ``ok``: ``actual_seed``
(the seed the server reports), ``info`` (raw ``info`` text to send instead).
"""

from __future__ import annotations

import base64
import json
import random
import threading
from typing import Any

from fake_comfyui import QuickHTTPServer, ScriptedFake, json_response, noisy_png
from werkzeug import Request, Response

TYPES = {"prompt": str, "negative_prompt": str, "seed": int, "width": int, "height": int, "steps": int,
         "cfg_scale": (int, float), "sampler_name": str, "batch_size": int, "n_iter": int}
DEFAULTS = {"prompt": "", "negative_prompt": "", "seed": -1, "width": 512, "height": 512, "steps": 50,
            "cfg_scale": 7.0, "sampler_name": None, "batch_size": 1, "n_iter": 1}
CHECKPOINT = "v1-5-pruned-emaonly.safetensors [6ce0161689]"


class FakeAutomatic1111(ScriptedFake):
    def __init__(self) -> None:
        self.server = QuickHTTPServer(host="127.0.0.1", threaded=True)
        self.lock = threading.Lock()
        self.stopping = threading.Event()
        self.auth: str | None = None  # "user:password" required as basic auth when set
        self.reset()

    def reset(self) -> None:
        self._mode, self._options, self._failed_once = "ok", {}, False
        self.create_calls = 0
        self.last_input: dict[str, Any] | None = None
        self.last_headers: dict[str, str] = {}

    def start(self) -> FakeAutomatic1111:
        self.server.expect_request("/sdapi/v1/txt2img", method="POST").respond_with_handler(self._txt2img)
        self.server.expect_request("/sdapi/v1/options", method="GET").respond_with_handler(self._options_route)
        self.server.start()
        return self


    def _unauthorized(self, request: Request) -> Response | None:
        expected = f"Basic {base64.b64encode(self.auth.encode()).decode()}" if self.auth else None
        if self._mode == "auth" or (expected and request.headers.get("Authorization") != expected):
            return json_response({"detail": "Incorrect username or password"}, status=401,
                                 headers={"WWW-Authenticate": "Basic"})
        return None

    @staticmethod
    def _invalid(errors: list[dict[str, Any]]) -> Response:
        return json_response({"detail": errors}, status=422)

    def _txt2img(self, request: Request) -> Response:
        with self.lock:
            self.create_calls += 1
            mode, options = self._mode, dict(self._options)
            first_failure = not self._failed_once
            self._failed_once = True
            self.last_headers = dict(request.headers)
        if denied := self._unauthorized(request):
            return denied
        if mode == "rate_limit_once" and first_failure:
            return json_response({"error": "TooManyRequests", "detail": "", "body": "", "errors": ""}, status=429,
                                 headers={"Retry-After": "1"})
        if mode == "server_error_once" and first_failure:
            return json_response({"error": "OutOfMemoryError", "detail": "", "body": "",
                                  "errors": "CUDA out of memory. Tried to allocate 1.50 GiB"}, status=500)
        if mode == "slow":
            self.stopping.wait(float(options.get("delay", 3)))
        body = request.get_json(silent=True)
        if not isinstance(body, dict):
            return self._invalid([{"loc": ["body"], "msg": "field required", "type": "value_error.missing"}])
        with self.lock:
            self.last_input = body
        errors = [{"loc": ["body", key], "msg": f"value is not a valid {kind.__name__ if isinstance(kind, type) else 'number'}",
                   "type": "type_error"}
                  for key, kind in TYPES.items()
                  if key in body and (not isinstance(body[key], kind) or isinstance(body[key], bool))]
        if mode == "refuse":
            errors.append({"loc": ["body", "steps"], "msg": "value is not a valid integer", "type": "type_error.integer"})
        if errors:
            return self._invalid(errors)
        if body.get("batch_size") != 1 or body.get("send_images") is not True or not body.get("prompt"):
            return json_response({"error": "AssertionError", "detail": "", "body": "",
                                  "errors": "expected batch_size 1, send_images and a prompt"}, status=500)
        params = {**DEFAULTS, **body}
        seed = options.get("actual_seed", params["seed"])
        if seed == -1:
            seed = random.randrange(4294967294)
        if mode == "corrupt":
            image = base64.b64encode(b"<html>oops</html>" * 20).decode()
        elif mode == "oversized":
            image = base64.b64encode(b"\x89PNG\r\n\x1a\n" + random.Random(2).randbytes(1_200_000)).decode()
        else:
            image = base64.b64encode(noisy_png(params["width"], params["height"], seed)).decode()
        checkpoint = (params.get("override_settings") or {}).get("sd_model_checkpoint") or CHECKPOINT
        info = options.get("info")
        if info is None:
            info = json.dumps({
                "prompt": params["prompt"], "all_prompts": [params["prompt"]],
                "negative_prompt": params["negative_prompt"], "all_negative_prompts": [params["negative_prompt"]],
                "seed": seed, "all_seeds": [seed], "subseed": 1234, "all_subseeds": [1234], "subseed_strength": 0,
                "width": params["width"], "height": params["height"], "sampler_name": params["sampler_name"] or "Euler a",
                "cfg_scale": params["cfg_scale"], "steps": params["steps"], "batch_size": 1, "restore_faces": False,
                "sd_model_name": checkpoint.split(" [")[0].rsplit(".", 1)[0], "sd_model_hash": "6ce0161689",
                "seed_resize_from_w": -1, "seed_resize_from_h": -1, "denoising_strength": None,
                "extra_generation_params": {}, "index_of_first_image": 0,
                "infotexts": [f"{params['prompt']}\nSteps: {params['steps']}, Seed: {seed}"],
                "styles": [], "job_timestamp": "20250101120000", "clip_skip": 1, "is_using_inpainting_conditioning": False,
                "version": "v1.10.1"})
        return json_response({"images": [image], "parameters": params, "info": info})

    def _options_route(self, request: Request) -> Response:
        if denied := self._unauthorized(request):
            return denied
        return json_response({"sd_model_checkpoint": CHECKPOINT, "CLIP_stop_at_last_layers": 1})
