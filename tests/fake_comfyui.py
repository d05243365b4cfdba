"""A loopback fake of a ComfyUI server (pytest-httpserver), for the ``comfyui`` provider tests.

It answers the routes the provider uses with ComfyUI's documented shapes (server.py / execution.py):

* ``POST /prompt`` ``{"prompt": workflow, "client_id"}`` -> ``{"prompt_id", "number", "node_errors": {}}``;
  invalid graphs -> 400 ``{"error": {"type", "message", "details", "extra_info"}, "node_errors": {id:
  {"errors": [{"type", "message", "details", "extra_info"}], "dependent_outputs", "class_type"}}}``;
* ``GET /history/{id}`` -> ``{}`` while the prompt is queued or running, then ``{id: {"prompt",
  "outputs": {node: {"images": [{"filename", "subfolder", "type"}]}}, "status": {"status_str",
  "completed", "messages"}, "meta"}}``;
* ``GET /view?filename=&subfolder=&type=`` -> the PNG; ``POST /queue`` ``{"delete": [...]}``;
  ``GET /system_stats``.

Like a real server it reads the filled values out of the graph by following links (positive and
negative ``CLIPTextEncode``, ``KSampler`` / ``RandomNoise`` seed, latent size, steps, loader file) and
checks them; ``last_input`` is that dict. Modes are those of :mod:`limner.testing.provider_suite` plus
``never`` (the prompt never shows up in history) and ``exec_error`` (history reports an
``execution_error``). ``refuse`` answers the ``value_not_in_list`` rejection of a missing model
file: a self-hosted server has no moderation, this is its permanent failure.
"""

from __future__ import annotations

import io
import json
import random
import re
import threading
import time
import uuid
from typing import Any

from PIL import Image
from fake_network import RedirectingServer, RedirectMode
from werkzeug import Request, Response

KNOWN_MODELS = ["v1-5-pruned-emaonly.safetensors", "sd_xl_base_1.0.safetensors", "flux1-dev.safetensors",
                "flux1-schnell.safetensors"]
OUTPUT_CLASSES = {"SaveImage", "PreviewImage"}
NODE_CLASSES = {
    "CheckpointLoaderSimple", "UNETLoader", "DualCLIPLoader", "VAELoader", "CLIPTextEncode", "FluxGuidance",
    "EmptyLatentImage", "EmptySD3LatentImage", "KSampler", "KSamplerAdvanced", "SamplerCustomAdvanced",
    "KSamplerSelect", "BasicScheduler", "BasicGuider", "RandomNoise", "VAEDecode", "SaveImage", "PreviewImage",
}


def noisy_png(width: int, height: int, seed: int, *, long_side: int = 192) -> bytes:
    """A real, non-blank PNG (a seeded gradient with noise); at most ``long_side`` px for speed."""
    scale = min(1.0, long_side / max(width, height, 1))
    w, h = max(16, int(width * scale)), max(16, int(height * scale))
    rng = random.Random(seed)
    base = (rng.randrange(256), rng.randrange(256), rng.randrange(256))
    im = Image.linear_gradient("L").resize((w, h)).convert("RGB")
    noise = Image.effect_noise((w, h), 60).convert("RGB")
    tint = Image.new("RGB", (w, h), base)
    im = Image.blend(Image.blend(im, tint, 0.4), noise, 0.3)
    buf = io.BytesIO()
    im.save(buf, "PNG")
    return buf.getvalue()


class QuickHTTPServer(RedirectingServer):
    """pytest-httpserver with a short shutdown poll and the suite's ``redirect_elsewhere`` mode."""


def json_response(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(json.dumps(body), status=status, headers=headers, content_type="application/json")


class ScriptedFake(RedirectMode):
    """What every self-hosted fake shares: a loopback server, the suite's ``mode()``, ``url`` and ``stop()``.
    Subclasses set ``server``, ``lock``, ``stopping`` and the mode fields in ``__init__``."""

    def stop(self) -> None:
        self.stopping.set()
        if self.server.is_running():
            self.server.stop()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.port}"

    def mode(self, name: str, **options: Any) -> None:
        with self.lock:
            self._mode, self._options, self._failed_once = name, options, False
            self.script_redirect(name, options)


class FakeComfyUI(ScriptedFake):
    """One fake ComfyUI host. ``url`` is its base URL; ``mode(...)`` scripts the next calls."""

    def __init__(self) -> None:
        self.server = QuickHTTPServer(host="127.0.0.1", threaded=True)
        self.lock = threading.Lock()
        self.stopping = threading.Event()
        self.token: str | None = None  # when set, every route requires ``Authorization: Bearer <token>``
        self.models = list(KNOWN_MODELS)
        #: history answers ``{}`` this many times per prompt before the prompt is done
        self.pending_polls = 1
        self.reset()

    def reset(self) -> None:
        self._mode, self._options = "ok", {}
        self.create_calls = 0
        self.last_input: dict[str, Any] | None = None
        self.last_body: dict[str, Any] | None = None
        self.prompts: dict[str, dict[str, Any]] = {}
        self.history_calls = 0
        self.view_calls = 0
        self.deleted: list[str] = []
        self.in_flight = 0
        self.max_in_flight = 0
        self._failed_once = False

    # -- lifecycle

    def start(self) -> FakeComfyUI:
        self.server.expect_request("/prompt", method="POST").respond_with_handler(self._post_prompt)
        self.server.expect_request(re.compile(r"^/history/[^/]+$"), method="GET").respond_with_handler(self._history)
        self.server.expect_request("/view", method="GET").respond_with_handler(self._view)
        self.server.expect_request("/queue", method="POST").respond_with_handler(self._queue)
        self.server.expect_request("/system_stats", method="GET").respond_with_handler(self._system_stats)
        self.server.start()
        return self


    # -- helpers

    def _unauthorized(self, request: Request) -> Response | None:
        if self._mode == "auth" or (self.token and request.headers.get("Authorization") != f"Bearer {self.token}"):
            return Response("401: Unauthorized", status=401, content_type="text/plain")
        return None

    @staticmethod
    def _rejection(node_errors: dict[str, Any], error_type: str = "prompt_outputs_failed_validation",
                   message: str = "Prompt outputs failed validation") -> Response:
        return json_response({"error": {"type": error_type, "message": message, "details": "", "extra_info": {}},
                              "node_errors": node_errors}, status=400)

    @staticmethod
    def _node_error(node: dict[str, Any], kind: str, message: str, details: str, input_name: str, value: Any,
                    outputs: list[str]) -> dict[str, Any]:
        return {"errors": [{"type": kind, "message": message, "details": details,
                            "extra_info": {"input_name": input_name, "received_value": value}}],
                "dependent_outputs": outputs, "class_type": node.get("class_type")}

    def read_graph(self, workflow: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
        """(filled values, node_errors), following links the way the executor would."""
        errors: dict[str, Any] = {}
        outputs = [nid for nid, n in workflow.items() if n.get("class_type") in OUTPUT_CLASSES]

        def node(nid: Any) -> dict[str, Any]:
            return workflow.get(str(nid)) or {}

        def linked(value: Any) -> dict[str, Any]:
            return node(value[0]) if isinstance(value, list) and len(value) == 2 else {}

        def text_of(cond: dict[str, Any]) -> Any:
            for _ in range(8):  # FluxGuidance / BasicGuider -> ... -> CLIPTextEncode
                if "text" in cond.get("inputs", {}):
                    return cond["inputs"]["text"]
                cond = linked(cond.get("inputs", {}).get("conditioning"))
            return None

        values: dict[str, Any] = {}
        for nid, n in workflow.items():
            cls, inputs = n.get("class_type"), n.get("inputs", {})
            if cls not in NODE_CLASSES:
                errors[nid] = {"errors": [{"type": "invalid_prompt", "message": f"Cannot execute because node {cls} "
                                           "does not exist.", "details": f"Node ID '#{nid}'", "extra_info": {}}],
                               "dependent_outputs": outputs, "class_type": cls}
                continue
            for name, value in inputs.items():
                if isinstance(value, list) and str(value[0]) not in workflow:
                    errors[nid] = self._node_error(n, "exception_during_validation", "Exception when validating node",
                                                   f"node {value[0]} does not exist", name, value, outputs)
            if cls == "KSampler":
                values.update(seed=inputs.get("seed"), steps=inputs.get("steps"), cfg=inputs.get("cfg"),
                              sampler_name=inputs.get("sampler_name"), scheduler=inputs.get("scheduler"),
                              prompt=text_of(linked(inputs.get("positive"))),
                              negative=text_of(linked(inputs.get("negative"))))
            elif cls == "SamplerCustomAdvanced":
                values["prompt"] = text_of(linked(linked(inputs.get("guider")).get("inputs", {}).get("conditioning")))
            elif cls == "RandomNoise":
                values["seed"] = inputs.get("noise_seed")
            elif cls == "BasicScheduler":
                values.update(steps=inputs.get("steps"), scheduler=inputs.get("scheduler"))
            elif cls == "KSamplerSelect":
                values["sampler_name"] = inputs.get("sampler_name")
            elif cls == "FluxGuidance":
                values["guidance"] = inputs.get("guidance")
            elif cls in ("EmptyLatentImage", "EmptySD3LatentImage"):
                values.update(width=inputs.get("width"), height=inputs.get("height"))
            elif cls in ("CheckpointLoaderSimple", "UNETLoader"):
                input_name = "ckpt_name" if cls == "CheckpointLoaderSimple" else "unet_name"
                values["model"] = inputs.get(input_name)
                if values["model"] not in self.models:
                    errors[nid] = self._node_error(
                        n, "value_not_in_list", "Value not in list",
                        f"{input_name}: '{values['model']}' not in {self.models}", input_name, values["model"], outputs)
        checks = {"seed": lambda v: isinstance(v, int) and 0 <= v < 2**64,
                  "width": lambda v: isinstance(v, int) and 16 <= v <= 16384 and v % 8 == 0,
                  "height": lambda v: isinstance(v, int) and 16 <= v <= 16384 and v % 8 == 0,
                  "steps": lambda v: isinstance(v, int) and 1 <= v <= 10000,
                  "prompt": lambda v: isinstance(v, str) and v.strip() != ""}
        for key, ok in checks.items():
            if not ok(values.get(key)):
                errors.setdefault("?", self._node_error({"class_type": "?"}, "invalid_input_type",
                                                        f"Failed to validate {key}", f"{key}: {values.get(key)!r}",
                                                        key, values.get(key), outputs))
        values = {k: v for k, v in values.items() if v is not None}
        return values, errors

    # -- routes

    def _post_prompt(self, request: Request) -> Response:
        with self.lock:
            self.create_calls += 1
            mode, options = self._mode, dict(self._options)
            first_failure = not self._failed_once
            self._failed_once = True
        if denied := self._unauthorized(request):
            return denied
        if mode == "rate_limit_once" and first_failure:
            return json_response({"error": "too many requests"}, status=429, headers={"Retry-After": "1"})
        if mode == "server_error_once" and first_failure:
            return Response("500 Internal Server Error", status=500, content_type="text/plain")
        if mode == "slow":
            self.stopping.wait(float(options.get("delay", 3)))
        body = request.get_json(silent=True)
        if not isinstance(body, dict) or "prompt" not in body:
            return json_response({"error": "no prompt", "node_errors": []}, status=400)
        workflow = body["prompt"]
        values, errors = self.read_graph(workflow)
        with self.lock:
            self.last_body, self.last_input = body, values
        if mode == "refuse":
            loader = next((nid for nid, n in workflow.items() if n.get("class_type") in ("CheckpointLoaderSimple",
                                                                                         "UNETLoader")), "4")
            model = values.get("model", "model.safetensors")
            errors = {loader: self._node_error(workflow.get(loader, {}), "value_not_in_list", "Value not in list",
                                               f"ckpt_name: '{model}' not in []", "ckpt_name", model, ["9"])}
        if not any(n.get("class_type") in OUTPUT_CLASSES for n in workflow.values() if isinstance(n, dict)):
            return self._rejection([], "prompt_no_outputs", "Prompt has no outputs")
        if errors:
            return self._rejection(errors)
        prompt_id = str(uuid.uuid4())
        with self.lock:
            number = len(self.prompts)
            self.prompts[prompt_id] = {"workflow": workflow, "values": values, "polls": 0, "number": number,
                                       "client_id": body.get("client_id"), "mode": mode, "options": options}
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)
        return json_response({"prompt_id": prompt_id, "number": number, "node_errors": {}})

    def _finish(self, job: dict[str, Any]) -> None:
        if not job.get("finished"):
            job["finished"] = True
            self.in_flight -= 1

    def _history(self, request: Request) -> Response:
        if denied := self._unauthorized(request):
            return denied
        prompt_id = request.path.rsplit("/", 1)[1]
        with self.lock:
            self.history_calls += 1
            job = self.prompts.get(prompt_id)
            if job is None or job["mode"] == "never" or job["polls"] < self.pending_polls:
                if job is not None:
                    job["polls"] += 1
                return json_response({})
            job["polls"] += 1
        started = {"prompt_id": prompt_id, "timestamp": int(time.time() * 1000)}
        save = next((nid for nid, n in job["workflow"].items() if n.get("class_type") == "SaveImage"), "9")
        entry: dict[str, Any] = {
            "prompt": [job["number"], prompt_id, job["workflow"], {"client_id": job["client_id"]}, [save]],
            "meta": {save: {"node_id": save, "display_node": save, "parent_node": None, "real_node_id": save}},
        }
        if job["mode"] == "exec_error":
            with self.lock:
                self._finish(job)
            message = job["options"].get("message", "CUDA out of memory. Tried to allocate 2.00 GiB")
            kind = job["options"].get("exception_type", "torch.OutOfMemoryError")
            entry["outputs"] = {}
            entry["status"] = {"status_str": "error", "completed": False, "messages": [
                ["execution_start", started],
                ["execution_error", {"prompt_id": prompt_id, "node_id": "3", "node_type": "KSampler", "executed": [],
                                     "exception_message": message, "exception_type": kind, "traceback": [],
                                     "current_inputs": {}, "current_outputs": {}, "timestamp": started["timestamp"]}]]}
        else:
            entry["outputs"] = {save: {"images": [{"filename": f"limner_{job['number']:05d}_.png", "subfolder": "",
                                                   "type": "output"}]}}
            entry["status"] = {"status_str": "success", "completed": True, "messages": [
                ["execution_start", started], ["execution_cached", {"nodes": [], **started}],
                ["execution_success", started]]}
        if job["options"].get("history_padding"):  # an answer far larger than any real history
            entry["padding"] = "x" * int(job["options"]["history_padding"])
        return json_response({prompt_id: entry})

    def _view(self, request: Request) -> Response:
        if denied := self._unauthorized(request):
            return denied
        query = request.args
        if query.get("type") != "output" or query.get("subfolder", None) is None:
            return Response(status=400)
        match = re.fullmatch(r"limner_(\d{5})_\.png", query.get("filename", ""))
        with self.lock:
            self.view_calls += 1
            job = next((j for j in self.prompts.values() if match and j["number"] == int(match.group(1))), None)
            if job is None:
                return Response(status=404)
            self._finish(job)
        mode = job["mode"]
        if job["options"].get("view_redirect"):  # the output is served elsewhere (another origin in a test)
            return Response(status=302, headers={"Location": job["options"]["view_redirect"]})
        if mode == "corrupt":
            data = b"<html>not an image</html>" * 40
        elif mode == "oversized":
            data = b"\x89PNG\r\n\x1a\n" + random.Random(1).randbytes(1_200_000)
        else:
            values = job["values"]
            data = noisy_png(values.get("width", 512), values.get("height", 512), values.get("seed", 0))
        return Response(data, content_type="image/png", headers={"Content-Disposition": f'filename="{match.group(0)}"'})

    def _queue(self, request: Request) -> Response:
        body = request.get_json(silent=True) or {}
        with self.lock:
            for prompt_id in body.get("delete", ()):
                self.deleted.append(prompt_id)
                if prompt_id in self.prompts:
                    self._finish(self.prompts[prompt_id])
        return Response(status=200)

    def _system_stats(self, request: Request) -> Response:
        if denied := self._unauthorized(request):
            return denied
        return json_response({"system": {"os": "posix", "comfyui_version": "0.3.fake", "python_version": "3.11"},
                              "devices": [{"name": "cuda:0 Fake GPU", "type": "cuda", "index": 0,
                                           "vram_total": 1 << 34, "vram_free": 1 << 33}]})
