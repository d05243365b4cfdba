"""The ``comfyui`` provider: self-hosted ComfyUI servers, driven by an API-format workflow.

A **workflow** is a ComfyUI graph in the *API format* (``Save (API Format)`` / ``Export (API)`` in
ComfyUI): a JSON object of node id -> ``{"class_type": ..., "inputs": {...}}``. Limner fills named
**slots** in it for every request:

==============  ==========================================================================
slot            filled with
==============  ==========================================================================
``prompt``      the prompt (``text``; ``text_g``/``text_l``; ``clip_l``/``t5xxl``)
``negative``    the negative prompt (optional: without it the negative prompt is dropped, logged)
``seed``        the seed (``seed`` or ``noise_seed``)
``width``       the width; ``height``: the height (a ``limner:size`` marker gives both)
``steps``       ``params["steps"]``, when given
``model``       the provider's model (checkpoint / unet filename), when set
others          ``cfg``, ``guidance``, ``sampler_name``, ``scheduler``, ``denoise``: from ``params``
==============  ==========================================================================

Slots come from the setting ``slots`` (``{"prompt": "6.text", "seed": "3.seed"}``; a value may be a
list of ``"node_id.input"`` targets), else from markers in the nodes' ``_meta.title``: a title
containing ``limner:prompt`` makes that node's text input the prompt slot, and so on
(``limner:size`` on an ``EmptyLatentImage`` fills ``width`` and ``height``; one title may hold several
markers, ``"KSampler (limner:seed limner:steps)"``). ``limner:output`` marks the node whose image is
kept (else the first ``SaveImage`` output). A checkpoint / UNET loader without a marker still gets
the model when it is the only loader in the graph.

Shipped workflows (``workflow`` setting): ``sd15``, ``sdxl`` (the default) and ``flux``
(UNETLoader + DualCLIPLoader + VAELoader, FluxGuidance, SamplerCustomAdvanced; no negative prompt),
or a path to a JSON file (relative to the working directory), or the workflow itself as a table.

The hosts, their slots, clients, timeouts and error mapping come from
:class:`~limner.providers.selfhosted.SelfHostedProvider`. Settings (``[providers.comfyui]``):

* ``hosts``: list of base URLs (or a comma-separated string), or ``base_url``; else the ``COMFYUI_HOSTS``
  environment variable (comma-separated); else ``http://127.0.0.1:8188``. Plain ``http`` needs the host
  listed in ``LIMNER_ALLOW_HTTP_HOSTS``.
* ``per_host_concurrency`` (default 1): each host is its own set of slots. The provider picks a free
  host for every call and waits for any host when all are busy; :meth:`ComfyUIProvider.concurrency_hint`
  (hosts x per-host) is this provider's concurrency unless ``concurrency`` is set. A host that cannot be
  reached (``HostUnreachable``: connection refused, DNS failure, connect timeout) is passed over for a
  while when another is free.
* ``workflow``, ``slots``, ``model`` (checkpoint or unet filename put in the loader node).
* ``timeout_s`` (default 600): a prompt not finished this long after it was queued is ``Transient``
  (and removed from the queue, best effort). HTTP calls time out after ``min(timeout_s, 60)`` seconds.
* ``poll_interval_s`` (default 0.5): completion is found by polling ``GET /history/{prompt_id}``.
  The ``/ws`` websocket is not used: polling is enough at one image per call.
* ``cost_per_hour_usd``: the hourly cost of the machine; each image then costs its wall time x rate.
  Self-hosted is otherwise free (price 0).
* ``max_download_bytes``: cap on the output image size.

``COMFYUI_TOKEN`` (optional, environment or ``.env``) is sent as ``Authorization: Bearer ...`` for a
ComfyUI behind an authenticating proxy. No API key is needed otherwise.

Protocol: ``POST /prompt`` ``{"prompt": workflow, "client_id": uuid}`` answers ``{"prompt_id",
"number", "node_errors"}``; a 400 with ``node_errors`` (a missing model file is ``value_not_in_list``)
is ``InvalidRequest`` carrying the node's message. ``GET /history/{id}`` answers ``{}`` until the prompt
has run, then its ``outputs`` and ``status``; ``status_str == "error"`` is ``Transient`` with the
node's exception (``InvalidRequest`` for validation errors). Images come from ``GET /view``.
"""

from __future__ import annotations

import asyncio
import copy
import dataclasses
import importlib.resources
import json
import logging
import re
import time
import uuid
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import httpx

from .base import GenerationRequest, GenerationResult, redact_value
from .errors import InvalidRequest, ProviderError, Transient
from .http import ProviderHTTP, public_url
from .options import pick_params
from .selfhosted import SELF_HOSTED_SETTINGS, SelfHostedProvider, looks_like_image

log = logging.getLogger("limner.providers")

NAME = "comfyui"
DEFAULT_HOST = "http://127.0.0.1:8188"
DEFAULT_WORKFLOW = "sdxl"
DEFAULT_POLL_INTERVAL_S = 0.5
BUILTIN_WORKFLOWS = ("sd15", "sdxl", "flux")

#: slots every workflow must have
REQUIRED_SLOTS = ("prompt", "seed", "width", "height")
#: slots filled from the request itself, never from ``params``
REQUEST_SLOTS = frozenset({"prompt", "negative", "seed", "width", "height", "model", "output"})
#: which inputs of a marked node a marker fills (in this order; all present string-valued ones for prompts)
MARKER_INPUTS: dict[str, tuple[str, ...]] = {
    "prompt": ("text", "text_g", "text_l", "clip_l", "t5xxl"),
    "negative": ("text", "text_g", "text_l", "clip_l", "t5xxl"),
    "seed": ("seed", "noise_seed"),
    "width": ("width",),
    "height": ("height",),
    "steps": ("steps",),
    "model": ("ckpt_name", "unet_name"),
    "cfg": ("cfg",),
    "guidance": ("guidance",),
    "sampler_name": ("sampler_name",),
    "scheduler": ("scheduler",),
    "denoise": ("denoise",),
}
#: markers filling every matching input of the node, not only the first
MULTI_INPUT_MARKERS = frozenset({"prompt", "negative"})
#: other providers' names for the same parameters
PARAM_ALIASES = {"cfg_scale": "cfg", "guidance_scale": "cfg", "sampler": "sampler_name",
                 "num_inference_steps": "steps"}
PARAM_TYPES: dict[str, type] = {"steps": int, "cfg": float, "guidance": float, "denoise": float,
                                "sampler_name": str, "scheduler": str}
LOADER_CLASSES = {"CheckpointLoaderSimple": "ckpt_name", "CheckpointLoader": "ckpt_name", "UNETLoader": "unet_name"}
MARKER_RE = re.compile(r"limner:([a-z][a-z0-9_]*)")
#: phrases of ComfyUI's own validation errors: a retry cannot help
VALIDATION_MARKERS = ("failed validation", "value not in list", "required input is missing", "invalid_prompt",
                      "prompt_outputs_failed_validation", "value_not_in_list")
SEED_MODULUS = 2**64  # ComfyUI seeds are 0 .. 0xffffffffffffffff


# --------------------------------------------------------------------------- workflows


def _node_title(node: Mapping[str, Any]) -> str:
    meta = node.get("_meta")
    return str(meta.get("title", "")) if isinstance(meta, Mapping) else ""


def load_workflow(source: Any) -> tuple[str, dict[str, Any]]:
    """``(label, workflow)`` from a shipped name, a JSON file path, or an inline mapping."""
    if isinstance(source, Mapping):
        label, workflow = "inline", json.loads(json.dumps(source))
    else:
        text_source = str(source or DEFAULT_WORKFLOW)
        if text_source in BUILTIN_WORKFLOWS:
            resource = importlib.resources.files("limner.providers.comfyui_workflows") / f"{text_source}.json"
            label, text = text_source, resource.read_text(encoding="utf-8")
        else:
            path = Path(text_source).expanduser()
            if not path.is_file():
                raise InvalidRequest(f"{NAME}: workflow {text_source!r} is neither one of {', '.join(BUILTIN_WORKFLOWS)} "
                                     "nor a JSON file")
            label, text = path.name, path.read_text(encoding="utf-8")
        try:
            workflow = json.loads(text)
        except ValueError as exc:
            raise InvalidRequest(f"{NAME}: workflow {label} is not valid JSON: {exc}") from None
    if not isinstance(workflow, dict):
        raise InvalidRequest(f"{NAME}: workflow {label} must be a JSON object of nodes")
    if "nodes" in workflow and "links" in workflow:
        raise InvalidRequest(f"{NAME}: workflow {label} is in ComfyUI's UI format; export it with "
                             "'Save (API Format)' / 'Export (API)'")
    for node_id, node in workflow.items():
        if not (isinstance(node, dict) and isinstance(node.get("class_type"), str) and isinstance(node.get("inputs"), dict)):
            raise InvalidRequest(f"{NAME}: workflow {label}: node {node_id!r} is not an API-format node "
                                 "({\"class_type\": ..., \"inputs\": {...}})")
    return label, workflow


def _targets(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, Iterable):
        return [str(v) for v in value]
    raise InvalidRequest(f"{NAME}: a slot must be \"node_id.input\" or a list of them, not {value!r}")


def discover_slots(workflow: Mapping[str, Any], configured: Mapping[str, Any] | None = None,
                   label: str = "workflow") -> dict[str, list[tuple[str, str]]]:
    """Slot name -> ``[(node_id, input_name), ...]``: the ``slots`` setting over ``limner:`` title markers."""
    slots: dict[str, list[tuple[str, str]]] = {}
    for node_id, node in workflow.items():
        inputs = node["inputs"]
        for marker in MARKER_RE.findall(_node_title(node)):
            if marker == "output":
                slots.setdefault("output", []).append((node_id, ""))
                continue
            if marker == "size":
                names = [("width", "width"), ("height", "height")]
            else:
                candidates = MARKER_INPUTS.get(marker, (marker,))
                present = [n for n in candidates if n in inputs and not isinstance(inputs[n], list)]
                if marker not in MULTI_INPUT_MARKERS:
                    present = present[:1]
                names = [(marker, n) for n in present]
            for slot, input_name in names:
                if input_name not in inputs or isinstance(inputs[input_name], list):
                    raise InvalidRequest(f"{NAME}: {label}: node {node_id} ({node['class_type']}) is marked "
                                         f"limner:{marker} but has no plain {input_name!r} input")
                slots.setdefault(slot, []).append((node_id, input_name))
            if not names:
                raise InvalidRequest(f"{NAME}: {label}: node {node_id} ({node['class_type']}) is marked "
                                     f"limner:{marker} but has none of the inputs {', '.join(MARKER_INPUTS.get(marker, (marker,)))}")
    for slot, value in (configured or {}).items():
        targets = []
        for target in _targets(value):
            node_id, _, input_name = target.rpartition(".")
            node = workflow.get(node_id)
            if not node_id or node is None or (slot != "output" and input_name not in node["inputs"]):
                raise InvalidRequest(f"{NAME}: {label}: slot {slot!r} points at {target!r}, which is not a node input")
            targets.append((node_id, input_name))
        slots[str(slot)] = targets
    if "model" not in slots:
        loaders = [(nid, LOADER_CLASSES[n["class_type"]]) for nid, n in workflow.items() if n["class_type"] in LOADER_CLASSES]
        if len(loaders) == 1:
            slots["model"] = loaders
    missing = [s for s in REQUIRED_SLOTS if s not in slots]
    if missing:
        raise InvalidRequest(f"{NAME}: {label} has no {', '.join(missing)} slot: mark the nodes' titles with "
                             f"{', '.join('limner:' + ('size' if s in ('width', 'height') else s) for s in missing)} "
                             "or set providers.comfyui.slots")
    return slots


def _message(text: Any, limit: int = 300) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def describe_node_errors(body: Any) -> str:
    """One line from a ``POST /prompt`` rejection: the top error, then each node's messages."""
    if not isinstance(body, Mapping):
        return _message(body)
    error = body.get("error")
    parts = []
    if isinstance(error, Mapping):
        head = str(error.get("message") or error.get("type") or "rejected")
        if error.get("details"):
            head += f": {error['details']}"
        parts.append(_message(head))
    elif error:
        parts.append(_message(error))
    node_errors = body.get("node_errors")
    if isinstance(node_errors, Mapping):
        for node_id, info in node_errors.items():
            if not isinstance(info, Mapping):
                continue
            messages = []
            for err in info.get("errors") or ():
                if isinstance(err, Mapping):
                    msg = str(err.get("message") or err.get("type") or "error")
                    if err.get("details"):
                        msg += f": {err['details']}"
                    messages.append(msg)
            parts.append(_message(f"node {node_id} ({info.get('class_type', '?')}): {'; '.join(messages) or 'invalid'}"))
    return _message("; ".join(parts) or "workflow rejected", 900)


def _execution_error(status: Mapping[str, Any]) -> tuple[str, bool]:
    """The failure message from a history ``status``, and whether it is a validation error."""
    for item in status.get("messages") or ():
        if not (isinstance(item, (list, tuple)) and len(item) == 2 and isinstance(item[1], Mapping)):
            continue
        event, data = item
        if event == "execution_error":
            text = (f"node {data.get('node_id', '?')} ({data.get('node_type', '?')}): "
                    f"{data.get('exception_type', 'error')}: {data.get('exception_message', '')}")
            lowered = f"{data.get('exception_type', '')} {data.get('exception_message', '')}".lower()
            return _message(text, 600), any(m in lowered for m in VALIDATION_MARKERS)
        if event == "execution_interrupted":
            return f"interrupted at node {data.get('node_id', '?')} ({data.get('node_type', '?')})", False
    return "execution failed (no error message in history)", False


def _pick_image(outputs: Mapping[str, Any], preferred: list[str]) -> Mapping[str, Any] | None:
    def images(node_id: str) -> list[Mapping[str, Any]]:
        out = outputs.get(node_id)
        found = out.get("images") if isinstance(out, Mapping) else None
        return [i for i in (found or ()) if isinstance(i, Mapping) and i.get("filename")]

    for node_id in preferred:
        if found := images(node_id):
            return found[0]
    ordered = sorted(outputs, key=lambda k: (not str(k).isdigit(), int(k) if str(k).isdigit() else 0, str(k)))
    every = [img for node_id in ordered for img in images(node_id)]
    saved = [img for img in every if img.get("type", "output") == "output"]
    return (saved or every or [None])[0]


# --------------------------------------------------------------------------- provider


class ComfyUIProvider(SelfHostedProvider):
    name = NAME
    default_model = ""  # the loader node's own file, unless providers.comfyui.model is set
    image_settings = ("workflow", "slots")
    accepted_settings = SELF_HOSTED_SETTINGS | {*image_settings, "http_timeout_s", "poll_interval_s"}
    # workflows without a negative slot (flux) drop the negative prompt, with a log line
    capabilities = dataclasses.replace(SelfHostedProvider.capabilities, max_side=4096)
    hosts_env = "COMFYUI_HOSTS"
    credential_env = ("COMFYUI_TOKEN",)
    default_host = DEFAULT_HOST

    def __init__(self, *, model: str | None = None, settings: dict[str, Any] | None = None) -> None:
        super().__init__(model=model, settings=settings)
        self._workflow: tuple[str, dict[str, Any], dict[str, list[tuple[str, str]]]] | None = None
        self._client_id = uuid.uuid4().hex
        self._warned_negative = False

    # -- settings

    def http_timeout_s(self) -> float:
        """One HTTP call (queueing, one poll, the download) takes ``http_timeout_s``, else min(timeout_s, 60)."""
        return float(self.settings.get("http_timeout_s") or min(self.timeout_s, 60.0))

    def credentials(self) -> tuple[dict[str, str], list[str | None]]:
        """``COMFYUI_TOKEN`` (optional) as a Bearer token, for a ComfyUI behind an authenticating proxy."""
        token = self.secret("COMFYUI_TOKEN")
        return ({"Authorization": f"Bearer {token}"} if token else {}), [token]

    def describe_error(self, response: httpx.Response) -> str | None:
        """A rejected workflow (400, ``node_errors``) as one line naming each node's errors."""
        if response.status_code != 400:
            return None
        try:  # redacted before describe_node_errors cuts anything from it
            body = redact_value(response.json(), self._redact)
        except ValueError:
            body = self._redact(response.text)
        return f"workflow rejected: {describe_node_errors(body)}"

    async def check_host(self, http: ProviderHTTP) -> str:
        """``GET /system_stats``: the host's first device."""
        stats = await http.json("GET", "/system_stats")
        devices = stats.get("devices") if isinstance(stats, Mapping) else None
        first = devices[0] if isinstance(devices, list) and devices else None
        return str(first.get("name", "?")) if isinstance(first, Mapping) else "?"

    # -- plumbing

    def workflow(self) -> tuple[str, dict[str, Any], dict[str, list[tuple[str, str]]]]:
        if self._workflow is None:
            label, workflow = load_workflow(self.settings.get("workflow") or DEFAULT_WORKFLOW)
            self._workflow = (label, workflow, discover_slots(workflow, self.settings.get("slots"), label))
        return self._workflow

    def fill(self, request: GenerationRequest) -> tuple[dict[str, Any], dict[str, Any]]:
        """The workflow for ``request`` and the values put in its slots."""
        label, template, slots = self.workflow()
        width, height = self.fit_size(request)
        values: dict[str, Any] = {"prompt": request.prompt, "seed": int(request.seed) % SEED_MODULUS,
                                  "width": width, "height": height}
        if request.negative_prompt:
            if "negative" in slots:
                values["negative"] = request.negative_prompt
            elif not self._warned_negative:
                log.info("%s: workflow %s has no negative prompt slot; dropping the negative prompt", self.name, label)
                self._warned_negative = True
            else:
                log.debug("%s: dropping the negative prompt (workflow %s has no slot for it)", self.name, label)
        elif "negative" in slots:
            values["negative"] = ""
        model = request.model or self.model
        if model:
            if "model" in slots:
                values["model"] = model
            else:
                log.info("%s: workflow %s has no model slot; model %r ignored", self.name, label, model)
        params = {PARAM_ALIASES.get(k, k): v for k, v in request.params.items()}
        supported = [s for s in slots if s not in REQUEST_SLOTS]
        for key, value in pick_params(self.name, params, supported).items():
            kind = PARAM_TYPES.get(key)
            try:
                values[key] = kind(value) if kind is not None and value is not None else value
            except (TypeError, ValueError):
                raise InvalidRequest(f"{self.name}: parameter {key}={value!r} is not a {kind.__name__}") from None
        workflow = copy.deepcopy(template)
        for slot, value in values.items():
            for node_id, input_name in slots.get(slot, ()):
                workflow[node_id]["inputs"][input_name] = value
        return workflow, values

    def _model_used(self, workflow: Mapping[str, Any]) -> str:
        for node_id, input_name in self.workflow()[2].get("model", ()):
            value = workflow[node_id]["inputs"].get(input_name)
            if isinstance(value, str):
                return value
        return ""

    # -- the call

    async def generate(self, request: GenerationRequest) -> GenerationResult:
        workflow, values = self.fill(request)
        started = time.perf_counter()
        async with self.host() as http:
            prompt_id = await self._submit(http, workflow)
            entry = await self._wait(http, prompt_id)
            data = await self._fetch(http, prompt_id, entry)
        seconds = time.perf_counter() - started
        return GenerationResult(
            data=data,
            seed=values["seed"],
            cost_usd=self.wall_cost(seconds),
            model=self._model_used(workflow),
            metadata={"prompt_id": prompt_id, "host": public_url(http.base_url), "workflow": self.workflow()[0],
                      "seconds": round(seconds, 3)},
        )

    async def _submit(self, http: ProviderHTTP, workflow: dict[str, Any]) -> str:
        body = await http.json("POST", "/prompt", json={"prompt": workflow, "client_id": self._client_id})
        prompt_id = body.get("prompt_id") if isinstance(body, Mapping) else None
        if not prompt_id:
            raise Transient(f"{self.name}: /prompt answer has no prompt_id")
        if isinstance(body.get("node_errors"), Mapping) and body["node_errors"]:
            log.warning("%s: prompt %s queued with node errors: %s", self.name, prompt_id, describe_node_errors(body))
        return str(prompt_id)

    async def _wait(self, http: ProviderHTTP, prompt_id: str) -> Mapping[str, Any]:
        deadline = time.monotonic() + self.timeout_s
        interval = float(self.settings.get("poll_interval_s") or DEFAULT_POLL_INTERVAL_S)
        while True:
            history = await http.json("GET", f"/history/{prompt_id}")
            entry = history.get(prompt_id) if isinstance(history, Mapping) else None
            if isinstance(entry, Mapping):
                status = entry.get("status")
                status = status if isinstance(status, Mapping) else {}
                if status.get("status_str") == "error":
                    message, validation = _execution_error(redact_value(status, self._redact))  # redacted, then cut
                    error = InvalidRequest if validation else Transient
                    raise error(f"{self.name}: prompt {prompt_id} failed: {message}")
                if status.get("completed", True) or entry.get("outputs"):
                    return entry
            if time.monotonic() >= deadline:
                await self._forget(http, prompt_id)
                raise Transient(f"{self.name}: prompt {prompt_id} not finished within {self.timeout_s:g}s on "
                                f"{public_url(http.base_url)}")
            await asyncio.sleep(min(interval, max(0.0, deadline - time.monotonic())))

    async def _forget(self, http: ProviderHTTP, prompt_id: str) -> None:
        """Best effort: take a prompt we gave up on out of the queue (a running one is left to finish)."""
        try:
            await http.request("POST", "/queue", json={"delete": [prompt_id]})
        except ProviderError as exc:
            log.debug("%s: could not remove prompt %s from the queue: %s", self.name, prompt_id, exc)

    async def _fetch(self, http: ProviderHTTP, prompt_id: str, entry: Mapping[str, Any]) -> bytes:
        outputs = entry.get("outputs")
        preferred = [node_id for node_id, _ in self.workflow()[2].get("output", ())]
        image = _pick_image(outputs, preferred) if isinstance(outputs, Mapping) else None
        if image is None:
            raise Transient(f"{self.name}: prompt {prompt_id} finished without an image output")
        query = urlencode({"filename": image["filename"], "subfolder": image.get("subfolder", ""),
                           "type": image.get("type", "output")})
        data = await http.download(http.url(f"/view?{query}"))
        if not looks_like_image(data):
            raise Transient(f"{self.name}: output {image['filename']!r} of prompt {prompt_id} is not an image")
        return data
