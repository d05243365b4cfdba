"""The ``diffusers`` provider: images made on this machine with Hugging Face diffusers (CUDA, Apple MPS or CPU).

The module is named ``diffusers_local`` so that it does not shadow the ``diffusers`` library. torch and
diffusers are imported when the first image is made (or ``limner doctor`` asks), never when the CLI starts;
when either is missing, importing this module fails with the package's name, so Limner answers with the
install hint ``pip install 'limner[gpu]'``.

Settings (``[providers.diffusers]``; a style's ``params`` override the generation ones):

* ``model``: a hub id (``black-forest-labs/FLUX.1-schnell``, the default) or a local folder saved with
  ``save_pretrained`` / ``huggingface-cli download --local-dir``. ``local_files_only`` (default false; the
  hub's ``HF_HUB_OFFLINE=1`` has the same effect): never reach the hub, use the cache or the folder only.
  ``HF_TOKEN`` (environment or ``.env``) is passed to the hub for gated models. ``variant`` (``"fp16"``)
  picks a weights variant. ``pipeline``: ``"auto"`` (``AutoPipelineForText2Image``, the default), a
  diffusers class name (``"FluxPipeline"``, ``"StableDiffusionXLPipeline"``), or ``"module:Class"``.
* ``device``: ``"auto"`` (CUDA if available, else MPS, else CPU), or ``"cuda"``, ``"cuda:1"``, ``"mps"``,
  ``"cpu"``; ``devices``: a list of them, one pipeline and one slot each. ``dtype``: ``"auto"`` (bfloat16 on
  CUDA where supported, else float16; bfloat16 on MPS; float32 on the CPU), ``"bfloat16"``, ``"float16"``,
  ``"float32"``.
* ``steps``, ``guidance_scale``, ``max_sequence_length`` (Flux, SD3), ``true_cfg_scale`` (Flux with a
  negative prompt): defaults by model (:data:`MODEL_DEFAULTS`, then by pipeline family). These change the
  image: they are in the fingerprint (:attr:`DiffusersProvider.image_settings`).
* ``memory``: a list (or comma-separated string) of ``"cpu_offload"`` (``enable_model_cpu_offload``: only
  with an accelerator; ignored with a warning on the CPU), ``"sequential_cpu_offload"`` (the same, layer
  by layer: least memory, slowest), ``"attention_slicing"``, ``"vae_tiling"``, ``"vae_slicing"``.
* ``batch_size`` (default 1): how many concurrent calls with the same size and parameters are gathered
  into one pipeline call, within ``batch_window_ms`` (default 25) of the first. Each image gets its own
  ``torch.Generator`` (on the CPU, seeded with its request's seed), so it is the same image it would be
  alone, within float tolerance. The provider's concurrency is devices x ``batch_size``: one pipeline
  call at a time per device, ``batch_size`` calls gathered for it.
* ``compile``: ``true`` or a ``torch.compile`` mode (``"max-autotune"``): compile the denoiser (the
  transformer or UNet) once, at load. The first images are slow while it compiles.
* ``cost_per_hour_usd``: each image then costs its share of its batch's wall time at that rate (free
  otherwise).

The pipeline is loaded once per device and kept warm for the provider's life (every call of a run, and
every run of a long-lived worker); concurrent first calls load it once. Generation runs in a worker thread,
never on the event loop.

Errors: the model missing (a local folder that does not exist, weights neither cached nor downloadable) or
gated (the hub answers 401/403) is :class:`ModelUnavailable`, an ``AuthFailed``: the run stops at once with
one message saying how to get the weights or which token is needed, and its entries stay retryable. Out of
memory is :class:`OutOfMemory` (also an ``AuthFailed``, so not retried): a batch that runs out is first
retried one image at a time; one image that does not fit stops the run with a message naming the memory
modes. A device error the process cannot recover from (``torch.AcceleratorError``: an illegal memory access,
a device lost) is :class:`DeviceFailed`, which stops the run too. Bad parameters (a size the model refuses) are
``InvalidRequest``; a batch that fails so is made
again one image at a time, so that only the entry at fault fails.
"""

from __future__ import annotations

import asyncio
import copy
import importlib
import importlib.util
import io
import json
import logging
import os
import queue
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from .base import Capabilities, GenerationRequest, GenerationResult, Provider
from .errors import AuthFailed, InvalidRequest, ModelUnavailable, ProviderError, SettingsRejected
from .weights import classify_load_error, download_hint, is_local
from .options import number_setting, pick_params

for _package in ("torch", "diffusers"):  # checked now, imported on first use: keeps the install hint working
    if importlib.util.find_spec(_package) is None:
        raise ImportError(f"No module named {_package!r}", name=_package)

log = logging.getLogger("limner.providers")
#: held while diffusers' classes are imported (by the settings check and by each device's load)
_IMPORTING = threading.RLock()
#: held while a pipeline is read from disk: loads of several devices take turns, as accelerate's empty-weights
#: loading patches torch.nn.Module for the whole process (a load beside it gets meta tensors it cannot move)
_LOADING = threading.Lock()

NAME = "diffusers"
DEFAULT_MODEL = "black-forest-labs/FLUX.1-schnell"


class OutOfMemory(AuthFailed):
    """One image does not fit in the device's memory: stops the run (every entry would fail the same way);
    the message names the memory modes that help."""

    refusal = "ran out of memory"
    fix = "choose a memory mode or a smaller size, as the message says"


class DeviceFailed(AuthFailed):
    """The device met an error the process cannot recover from (a CUDA illegal memory access, a device lost):
    every later call on it would fail, so the run stops; the entries stay for the next run."""

    refusal = "cannot use its device"
    fix = "check the device (nvidia-smi), then run again"


def _device_errors(torch: Any) -> tuple[type[BaseException], ...]:
    """The errors after which a device cannot run more work in this process (``torch.AcceleratorError``, from
    torch 2.8; older versions raise a plain RuntimeError, which fails only the entry)."""
    error = getattr(torch, "AcceleratorError", None)
    return (error,) if isinstance(error, type) else ()


#: generation defaults of the models the docs list (a style's params and the settings override them)
MODEL_DEFAULTS: dict[str, dict[str, Any]] = {
    "black-forest-labs/FLUX.1-schnell": {"steps": 4, "guidance_scale": 0.0, "max_sequence_length": 256},
    "black-forest-labs/FLUX.1-dev": {"steps": 28, "guidance_scale": 3.5, "max_sequence_length": 512},
    "stabilityai/stable-diffusion-3.5-large": {"steps": 28, "guidance_scale": 3.5, "max_sequence_length": 256},
    "stabilityai/stable-diffusion-3.5-large-turbo": {"steps": 4, "guidance_scale": 0.0, "max_sequence_length": 256},
    "stabilityai/stable-diffusion-3.5-medium": {"steps": 40, "guidance_scale": 4.5, "max_sequence_length": 256},
    "stabilityai/stable-diffusion-xl-base-1.0": {"steps": 30, "guidance_scale": 5.0},
    "stabilityai/sdxl-turbo": {"steps": 1, "guidance_scale": 0.0},
    "stabilityai/sd-turbo": {"steps": 1, "guidance_scale": 0.0},
}
#: defaults by pipeline family, for other models and local folders (a Flux transformer without guidance
#: embeddings is a distilled schnell-like model: 4 steps, no guidance)
FAMILY_DEFAULTS: dict[str, dict[str, Any]] = {
    "flux-schnell": MODEL_DEFAULTS["black-forest-labs/FLUX.1-schnell"],
    "flux": MODEL_DEFAULTS["black-forest-labs/FLUX.1-dev"],
    "sd3": MODEL_DEFAULTS["stabilityai/stable-diffusion-3.5-large"],
    "sdxl": MODEL_DEFAULTS["stabilityai/stable-diffusion-xl-base-1.0"],
    "sd": {"steps": 30, "guidance_scale": 7.5},
}

#: style params this provider reads, and other providers' names for them
SUPPORTED_PARAMS = frozenset({"steps", "guidance_scale", "max_sequence_length", "true_cfg_scale"})
PARAM_ALIASES = {"num_inference_steps": "steps", "guidance": "guidance_scale", "cfg": "guidance_scale",
                 "cfg_scale": "guidance_scale"}
MEMORY_MODES = ("cpu_offload", "sequential_cpu_offload", "attention_slicing", "vae_tiling", "vae_slicing")
DTYPES = {"float32": "float32", "fp32": "float32", "float16": "float16", "fp16": "float16", "half": "float16",
          "bfloat16": "bfloat16", "bf16": "bfloat16"}


def _quiet_libraries() -> None:
    """Limner shows its own progress and messages: the libraries' progress bars would break its display, and
    their routine warnings (a CLIP prompt cut at 77 tokens while T5 reads all of it, an optional package
    such as torchvision missing) would repeat on every run. Their errors still show."""
    from diffusers.utils import logging as diffusers_logging

    diffusers_logging.disable_progress_bar()
    diffusers_logging.set_verbosity_error()
    try:
        from transformers.utils import logging as transformers_logging
    except ImportError:  # pragma: no cover - a pipeline without transformers models
        return
    transformers_logging.disable_progress_bar()
    transformers_logging.set_verbosity_error()


def _family(pipe: Any) -> str:
    name = type(pipe).__name__
    if "Flux" in name:
        transformer = getattr(pipe, "transformer", None)
        guided = getattr(getattr(transformer, "config", None), "guidance_embeds", True)
        return "flux" if guided else "flux-schnell"
    if "StableDiffusion3" in name:
        return "sd3"
    if "XL" in name:
        return "sdxl"
    return "sd"


@dataclass
class _Call:
    """One ``generate`` waiting for its batch: the request, its resolved parameters and its future."""

    request: GenerationRequest
    future: asyncio.Future[Any]


@dataclass
class _Slot:
    """One device: its pipeline, loaded on first use, and the lock that makes that load happen once."""

    device: str
    pipeline: Any = None
    family: str = ""
    accepts: frozenset[str] = frozenset()
    load_lock: threading.Lock = field(default_factory=threading.Lock)
    applied: list[str] = field(default_factory=list)


class DiffusersProvider(Provider):
    name = NAME
    concurrency_is_per_machine = True  # its devices are this machine's
    default_model = DEFAULT_MODEL
    capabilities = Capabilities(supports_seed=True, supports_negative_prompt=True, max_side=2048, size_multiple=16)
    price_usd = 0.0
    image_settings = ("steps", "guidance_scale", "max_sequence_length", "true_cfg_scale")
    accepted_settings = frozenset({*image_settings, "local_files_only", "variant", "pipeline", "device", "devices",
                                   "dtype", "memory", "batch_size", "batch_window_ms", "compile", "cost_per_hour_usd"})
    credential_env = ("HF_TOKEN",)  # optional: gated weights; checked like a key when set

    def __init__(self, *, model: str | None = None, settings: dict[str, Any] | None = None) -> None:
        super().__init__(model=model, settings=settings)
        devices = self.settings.get("devices")
        if isinstance(devices, str):
            devices = [d.strip() for d in devices.split(",") if d.strip()]
        #: None when ``devices`` is not a non-empty list: refused by :meth:`concurrency_hint` (when the run is
        #: planned, naming the setting), never here, where a refusal would end the command with a traceback
        self._device_names: list[str] | None = (
            [str(self.settings.get("device") or "auto")] if devices is None
            else [str(d) for d in devices] if isinstance(devices, list) and devices else None)
        self._slots: list[_Slot] | None = None
        self._free: queue.Queue[_Slot] | None = None
        self._slots_lock = threading.Lock()
        self._load_error: ProviderError | None = None
        self._settings_checked = False
        self._pending: dict[tuple[Any, ...], list[_Call]] = {}
        self._timers: dict[tuple[Any, ...], asyncio.TimerHandle] = {}
        self._tasks: set[asyncio.Task[Any]] = set()

    # ------------------------------------------------------------------------------------ settings
    async def prepare(self) -> None:
        """Check every setting before the first call's ledger line (once): a typo fails the run here, with the
        entries untouched, not each entry for good after a load of the model."""
        if not self._settings_checked:
            await asyncio.to_thread(self._check_settings_once)  # imports torch and diffusers: off the event loop

    def _check_settings_once(self) -> None:
        with self._slots_lock:  # the units of a run all prepare at once: one checks, the others wait for it
            if not self._settings_checked:
                self.check_settings()
                self._settings_checked = True

    def check_settings(self) -> None:
        """Raise :class:`SettingsRejected` naming the first ``[providers.diffusers]`` setting that cannot work."""
        try:
            _ = self.batch_size, self.batch_window_s
            self.memory_modes()
            self.resolve_dtype("cpu")
            for name in self.device_names():
                self.resolve_device(name)
            self.pipeline_class()
            compile_mode = self.settings.get("compile")
            if isinstance(compile_mode, str):
                import torch

                try:  # the mode is checked when the wrapper is made; nothing is compiled until it is called
                    torch.compile(torch.nn.Identity(), mode=compile_mode)
                except RuntimeError as exc:
                    raise InvalidRequest(f"diffusers: compile {compile_mode!r}: {exc}") from None
            for key, kind in (("steps", int), ("guidance_scale", float), ("max_sequence_length", int),
                              ("true_cfg_scale", float)):
                if self.settings.get(key) is not None:
                    try:
                        kind(self.settings[key])
                    except (TypeError, ValueError):
                        raise InvalidRequest(f"diffusers: {key} must be a number, got {self.settings[key]!r}") from None
        except InvalidRequest as exc:
            raise SettingsRejected(f"{exc} (in [providers.diffusers] of limner.toml)") from None
        self.check_weights()

    def check_weights(self) -> str:
        """Raise :class:`ModelUnavailable` when the model's weights are known not to be here, without loading
        them: a local folder that does not exist or is not a diffusers model, a hub id not in the cache while
        the hub is off limits (``local_files_only``, ``HF_HUB_OFFLINE``). Else say where they are."""
        model = os.path.expanduser(self.model)
        if is_local(self.model):
            if not os.path.isdir(model):
                raise ModelUnavailable(self._redact(
                    f"diffusers: the model folder {self.model} does not exist: set model in [providers.diffusers] "
                    f"of limner.toml to a folder saved with save_pretrained or downloaded with "
                    f"`huggingface-cli download <model id> --local-dir <folder>`"))
            if not os.path.isfile(os.path.join(model, "model_index.json")):
                raise ModelUnavailable(self._redact(
                    f"diffusers: {self.model} (model in [providers.diffusers] of limner.toml) has no "
                    "model_index.json: it is not a diffusers model folder (download the whole repository with "
                    "`huggingface-cli download <model id> --local-dir <folder>`)"))
            return f"model folder {self.model}"
        from huggingface_hub import constants, try_to_load_from_cache

        if isinstance(try_to_load_from_cache(self.model, "model_index.json"), str):
            return f"{self.model} in the Hugging Face cache"
        if self.settings.get("local_files_only") or constants.HF_HUB_OFFLINE:
            raise ModelUnavailable(self._redact(
                f"diffusers: the weights of {self.model} are not on this machine: {download_hint(self.model)}"))
        return f"{self.model} not cached yet: the first run downloads it"

    @property
    def batch_size(self) -> int:
        value = int(number_setting(NAME, self.settings, "batch_size", 1))
        if not 1 <= value <= 64:
            raise InvalidRequest(f"diffusers: batch_size must be 1..64, got {value}")
        return value

    @property
    def batch_window_s(self) -> float:
        return max(0.0, number_setting(NAME, self.settings, "batch_window_ms", 25.0)) / 1000

    def memory_modes(self) -> list[str]:
        raw = self.settings.get("memory") or []
        modes = [m.strip() for m in raw.split(",")] if isinstance(raw, str) else [str(m).strip() for m in raw]
        modes = [m for m in modes if m]
        unknown = [m for m in modes if m not in MEMORY_MODES]
        if unknown:
            raise InvalidRequest(f"diffusers: unknown memory mode(s) {unknown}; known: {', '.join(MEMORY_MODES)}")
        return modes

    def concurrency_hint(self) -> int:
        """One pipeline call at a time per device, with ``batch_size`` calls let in to fill it."""
        return len(self.device_names()) * self.batch_size

    def device_names(self) -> list[str]:
        """``devices``, else ``[device]`` (as written: :meth:`resolve_device` checks each)."""
        if self._device_names is None:
            raise InvalidRequest(f"diffusers: devices must be a non-empty list, such as [\"cuda:0\", \"cuda:1\"], "
                                 f"got {self.settings.get('devices')!r}")
        return self._device_names

    def _secret_values(self) -> Iterable[str | None]:
        return [self.secret("HF_TOKEN")]

    # ------------------------------------------------------------------------------------ devices
    @staticmethod
    def resolve_device(name: str) -> str:
        """``auto`` → ``cuda`` when available, else ``mps``, else ``cpu``; others as given, checked: a device
        this machine lacks is a setting that cannot work here (``InvalidRequest``, ``SettingsRejected`` from
        :meth:`check_settings`)."""
        import torch

        name = (name or "auto").strip().lower()
        if name == "auto":
            if torch.cuda.is_available():
                return "cuda"
            mps = getattr(torch.backends, "mps", None)
            return "mps" if mps is not None and mps.is_available() else "cpu"
        kind, _, index = name.partition(":")
        if kind not in ("cuda", "mps", "cpu", "xpu") or index and not index.isdigit():
            raise InvalidRequest(f"diffusers: unknown device {name!r} (auto, cuda, cuda:N, mps, xpu or cpu)")
        if kind == "cuda" and not torch.cuda.is_available():
            raise InvalidRequest(f"diffusers: device {name!r} asked for, but this torch sees no CUDA device "
                                   f"(torch {torch.__version__}); use device = \"auto\" or \"cpu\"")
        if kind == "cuda" and index and int(index) >= torch.cuda.device_count():
            raise InvalidRequest(f"diffusers: device {name!r} asked for, but this machine has "
                                   f"{torch.cuda.device_count()} CUDA device(s): cuda:0 .. cuda:{torch.cuda.device_count() - 1}")
        if kind == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
            raise InvalidRequest(f"diffusers: device {name!r} asked for, but MPS is not available here")
        if kind == "xpu" and not (getattr(torch, "xpu", None) is not None and torch.xpu.is_available()):
            raise InvalidRequest(f"diffusers: device {name!r} asked for, but this torch sees no XPU device")
        return name

    def resolve_dtype(self, device: str) -> Any:
        import torch

        name = str(self.settings.get("dtype") or "auto").strip().lower()
        if name == "auto":
            if device.startswith("cuda"):
                return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
            return torch.bfloat16 if device.startswith("mps") else torch.float32
        if name not in DTYPES:
            raise InvalidRequest(f"diffusers: unknown dtype {name!r} (auto, bfloat16, float16, float32)")
        return getattr(torch, DTYPES[name])

    def _slot_pool(self) -> queue.Queue[_Slot]:
        with self._slots_lock:
            if self._free is None:
                self._slots = [_Slot(device=self.resolve_device(d)) for d in self.device_names()]
                self._free = queue.Queue()
                for slot in self._slots:
                    self._free.put(slot)
            return self._free

    # ------------------------------------------------------------------------------------ loading
    def pipeline_class(self) -> Any:
        name = str(self.settings.get("pipeline") or "auto")
        with _IMPORTING:  # diffusers' lazy module is not safe to import from two threads at once
            _quiet_libraries()  # before the pipelines' import, which warns of optional packages missing
            if name == "auto":
                from diffusers import AutoPipelineForText2Image

                return AutoPipelineForText2Image
            try:
                if ":" in name:
                    module, _, attr = name.partition(":")
                    return getattr(importlib.import_module(module), attr)
                return getattr(importlib.import_module("diffusers"), name)
            except (ImportError, AttributeError) as exc:
                raise InvalidRequest(f"diffusers: pipeline {name!r} not found ({type(exc).__name__}: {exc})") from None

    def load(self, slot: _Slot) -> Any:
        """Load the pipeline onto ``slot``'s device once (callers of the same slot wait for that load)."""
        if slot.pipeline is not None:
            return slot.pipeline
        with slot.load_lock:
            if slot.pipeline is None:
                if self._load_error is not None:
                    raise copy.copy(self._load_error)
                try:
                    slot.pipeline = self._load(slot)
                except ModelUnavailable as exc:
                    self._load_error = exc
                    raise
        return slot.pipeline

    def _load(self, slot: _Slot) -> Any:

        model = os.path.expanduser(self.model)
        if is_local(self.model):
            self.check_weights()
        _quiet_libraries()
        dtype = self.resolve_dtype(slot.device)
        # diffusers renamed torch_dtype to dtype (the old name warns, then goes in 1.0)
        from diffusers.utils import deprecation_utils

        kwargs: dict[str, Any] = {"dtype" if hasattr(deprecation_utils, "_resolve_dtype") else "torch_dtype": dtype}
        if self.settings.get("local_files_only") or is_local(self.model):
            kwargs["local_files_only"] = True
        token = self.secret("HF_TOKEN")
        if token:
            kwargs["token"] = token
        if self.settings.get("variant"):
            kwargs["variant"] = str(self.settings["variant"])
        cls = self.pipeline_class()
        started = time.perf_counter()
        try:
            with _LOADING:
                pipe = cls.from_pretrained(model, **kwargs)
        except ProviderError:
            raise
        except Exception as exc:  # noqa: BLE001 - every failure of a load is mapped to a provider error
            raise classify_load_error(exc, self.model, redact=self._redact) from exc
        try:
            applied = self._place(pipe, slot)
        except ProviderError:
            raise
        except Exception as exc:  # noqa: BLE001 - a device torch cannot use, a mode the pipeline lacks
            raise ModelUnavailable(f"diffusers: could not put {self.model} on {slot.device} "
                                   f"({type(exc).__name__}: {self._redact(str(exc))[:300]})") from None
        if hasattr(pipe, "set_progress_bar_config"):
            pipe.set_progress_bar_config(disable=True)
        import inspect

        slot.accepts = frozenset(inspect.signature(pipe.__call__).parameters)
        slot.family = _family(pipe)
        slot.applied = applied
        log.info("diffusers: loaded %s (%s) on %s as %s in %.1fs%s", self.model, type(pipe).__name__, slot.device,
                 str(dtype).replace("torch.", ""), time.perf_counter() - started,
                 f"; {', '.join(applied)}" if applied else "")
        return pipe

    def _place(self, pipe: Any, slot: _Slot) -> list[str]:
        """Put a loaded pipeline on its device with the memory modes and compilation asked for; what was applied."""
        import torch

        modes = self.memory_modes()
        accelerated = not slot.device.startswith("cpu")
        applied: list[str] = []
        if "sequential_cpu_offload" in modes or "cpu_offload" in modes:
            if not accelerated:
                log.warning("diffusers: memory mode cpu_offload needs an accelerator (CUDA or MPS); ignored on the CPU")
                pipe.to(slot.device)
            elif "sequential_cpu_offload" in modes:
                pipe.enable_sequential_cpu_offload(device=slot.device)
                applied.append("sequential_cpu_offload")
            else:
                pipe.enable_model_cpu_offload(device=slot.device)
                applied.append("cpu_offload")
        else:
            pipe.to(slot.device)
        if "attention_slicing" in modes:
            pipe.enable_attention_slicing()
            applied.append("attention_slicing")
        for mode, method, vae_method in (("vae_tiling", "enable_vae_tiling", "enable_tiling"),
                                         ("vae_slicing", "enable_vae_slicing", "enable_slicing")):
            if mode in modes:
                if hasattr(pipe, method):  # diffusers < 0.40 has them on the pipeline
                    getattr(pipe, method)()
                else:
                    getattr(pipe.vae, vae_method)()
                applied.append(mode)
        compile_mode = self.settings.get("compile")
        if compile_mode:
            denoiser = "transformer" if getattr(pipe, "transformer", None) is not None else "unet"
            mode = compile_mode if isinstance(compile_mode, str) else None
            setattr(pipe, denoiser, torch.compile(getattr(pipe, denoiser), mode=mode))
            applied.append(f"compile({mode or 'default'})")
        return applied

    # ------------------------------------------------------------------------------------ parameters
    def _params(self, request: GenerationRequest) -> dict[str, Any]:
        """Settings, then the style's params (aliases resolved), as given; defaults are filled per family."""
        params = {k: self.settings[k] for k in SUPPORTED_PARAMS if self.settings.get(k) is not None}
        style = {PARAM_ALIASES.get(k, k): v for k, v in (request.params or {}).items()}
        params.update(pick_params(NAME, style, SUPPORTED_PARAMS))
        return params

    def _resolved(self, slot: _Slot, params: dict[str, Any]) -> dict[str, Any]:
        defaults = MODEL_DEFAULTS.get(self.model) or FAMILY_DEFAULTS.get(slot.family) or FAMILY_DEFAULTS["sd"]
        merged = {**defaults, **params}
        try:
            out: dict[str, Any] = {"num_inference_steps": int(merged["steps"]),
                                   "guidance_scale": float(merged["guidance_scale"])}
            if "max_sequence_length" in merged and "max_sequence_length" in slot.accepts:
                out["max_sequence_length"] = int(merged["max_sequence_length"])
            if "true_cfg_scale" in merged and "true_cfg_scale" in slot.accepts:
                out["true_cfg_scale"] = float(merged["true_cfg_scale"])
        except (TypeError, ValueError) as exc:
            raise InvalidRequest(f"diffusers: bad generation parameter: {exc}") from None
        if out["num_inference_steps"] < 1:
            raise InvalidRequest("diffusers: steps must be at least 1")
        return out

    # ------------------------------------------------------------------------------------ generation
    async def generate(self, request: GenerationRequest) -> GenerationResult:
        width, height = int(request.width), int(request.height)
        side = self.capabilities.max_side
        if not (16 <= width <= side and 16 <= height <= side) or width % 8 or height % 8:
            raise InvalidRequest(f"diffusers: size {width}x{height} must be multiples of 8 within 16..{side}")
        params = self._params(request)
        # a batch shares size and parameters; with and without a negative prompt are kept apart (Flux's true
        # CFG runs only for a batch that has one, so mixing them would change the others' images)
        loop = asyncio.get_running_loop()
        # per event loop: a group left by a loop that has closed (its timer never fires) is never joined
        key = (id(loop), width, height, json.dumps(params, sort_keys=True, default=str), bool(request.negative_prompt))
        for stale in [k for k, group in self._pending.items() if group and group[0].future.get_loop().is_closed()]:
            self._pending.pop(stale, None)
            self._timers.pop(stale, None)
        call = _Call(request, loop.create_future())
        group = self._pending.setdefault(key, [])
        group.append(call)
        batch_size = self.batch_size
        if len(group) >= batch_size:
            self._dispatch(key)
        elif len(group) == 1:
            self._timers[key] = loop.call_later(self.batch_window_s, self._dispatch, key)
        return await call.future

    def _dispatch(self, key: tuple[Any, ...]) -> None:
        timer = self._timers.pop(key, None)
        if timer is not None:
            timer.cancel()
        group = self._pending.pop(key, [])
        if group:
            task = asyncio.get_running_loop().create_task(self._run(group))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _run(self, group: list[_Call]) -> None:
        calls = [c for c in group if not c.future.done()]  # a call cancelled (timed out) while it waited
        if not calls:
            return
        try:
            ran = await asyncio.to_thread(self._generate_blocking, calls)
        except BaseException as exc:  # noqa: BLE001 - every waiting call gets the batch's error
            for c in calls:
                if not c.future.done():
                    c.future.set_exception(copy.copy(exc) if isinstance(exc, ProviderError) else exc)
            if not isinstance(exc, Exception):
                raise
            return
        for c, result in ran:
            if c.future.done():
                continue
            if isinstance(result, ProviderError):  # this image alone failed (its batch was made one at a time)
                c.future.set_exception(result)
            else:
                c.future.set_result(result)

    def _generate_blocking(self, calls: list[_Call]) -> list[tuple[_Call, GenerationResult | ProviderError]]:
        """One pipeline call for ``calls`` (same size and parameters) on the first free device. The calls
        whose callers gave up while the batch waited for a device (a timeout, a stopped run) are left out,
        and a batch none of whose callers still waits is not run at all."""
        pool = self._slot_pool()
        slot = pool.get()
        try:
            live = [c for c in calls if not c.future.done()]
            if not live:
                return []
            pipe = self.load(slot)
            return list(zip(live, self._call_pipeline(slot, pipe, [c.request for c in live])))
        finally:
            pool.put(slot)

    def _one_at_a_time(self, slot: _Slot, pipe: Any,
                       requests: list[GenerationRequest]) -> list[GenerationResult | ProviderError]:
        """A batch that failed, made again image by image: an image the pipeline refuses fails alone (what stops
        the run, such as one image running out of memory, still stops it)."""
        outcomes: list[GenerationResult | ProviderError] = []
        for r in requests:
            try:
                outcomes.extend(self._call_pipeline(slot, pipe, [r]))
            except InvalidRequest as exc:
                outcomes.append(exc)
        return outcomes

    def _call_pipeline(self, slot: _Slot, pipe: Any,
                       requests: list[GenerationRequest]) -> list[GenerationResult | ProviderError]:
        import torch

        first = requests[0]
        kwargs = self._resolved(slot, self._params(first))
        kwargs.update(height=int(first.height), width=int(first.width), output_type="pil",
                      prompt=[r.prompt for r in requests],
                      generator=[torch.Generator("cpu").manual_seed(int(r.seed) % 2**64) for r in requests])
        if "negative_prompt" in slot.accepts and any(r.negative_prompt for r in requests):
            kwargs["negative_prompt"] = [r.negative_prompt or "" for r in requests]
        started = time.perf_counter()
        try:
            with torch.inference_mode():
                images = pipe(**kwargs).images
        except torch.OutOfMemoryError:
            self._free_memory(slot)
            if len(requests) > 1:
                log.warning("diffusers: a batch of %d ran out of memory on %s; making its images one at a time",
                            len(requests), slot.device)
                return self._one_at_a_time(slot, pipe, requests)
            raise OutOfMemory(
                f"diffusers: {first.width}x{first.height} with {self.model} does not fit in the memory of {slot.device}: "
                "set [providers.diffusers] memory = [\"cpu_offload\"] (or \"sequential_cpu_offload\", least memory), "
                "add \"vae_tiling\" for large images, lower batch_size, or use a smaller size or model") from None
        except ProviderError:
            raise
        except _device_errors(torch) as exc:  # the device is unusable for the rest of the process
            raise DeviceFailed(f"diffusers: {slot.device} failed ({self._redact(str(exc))[:300]}); it cannot run more "
                               "work in this process: check the device, then run again") from None
        except Exception as exc:  # noqa: BLE001 - a provider raises only typed errors: this entry fails with it
            if len(requests) > 1:  # which image it was is not known: each one alone, so the others are kept
                log.warning("diffusers: a batch of %d failed on %s (%s); making its images one at a time",
                            len(requests), slot.device, type(exc).__name__)
                return self._one_at_a_time(slot, pipe, requests)
            if isinstance(exc, (ValueError, TypeError)):  # the pipeline's own checks of its arguments
                raise InvalidRequest(f"diffusers: {type(pipe).__name__} refused the call: "
                                     f"{self._redact(str(exc))[:300]}") from None
            raise InvalidRequest(f"diffusers: {type(pipe).__name__} failed on {slot.device} "
                                 f"({type(exc).__name__}: {self._redact(str(exc))[:300]})") from None
        seconds = time.perf_counter() - started
        rate = number_setting(NAME, self.settings, "cost_per_hour_usd", 0.0)
        cost = round(seconds * rate / 3600 / len(requests), 6)
        meta = {"device": slot.device, "dtype": str(self.resolve_dtype(slot.device)).replace("torch.", ""),
                "pipeline": type(pipe).__name__, "steps": kwargs["num_inference_steps"],
                "guidance_scale": kwargs["guidance_scale"], "batch": len(requests),
                "batch_seconds": round(seconds, 3)}
        results = []
        for request, image in zip(requests, images):
            buf = io.BytesIO()
            image.save(buf, "PNG")
            results.append(GenerationResult(data=buf.getvalue(), seed=request.seed, cost_usd=cost,
                                             model=self.model, metadata=dict(meta)))
        return results

    @staticmethod
    def _free_memory(slot: _Slot) -> None:
        import gc

        import torch

        gc.collect()
        if slot.device.startswith("cuda"):
            torch.cuda.empty_cache()
        elif slot.device.startswith("mps") and hasattr(torch, "mps"):
            torch.mps.empty_cache()

    # ------------------------------------------------------------------------------------ doctor
    async def check(self) -> str:
        """``limner doctor``: the device and dtype, and whether the weights are on this machine (without
        loading them)."""
        self.check_credentials()
        return await asyncio.to_thread(self._check_blocking)

    def _check_blocking(self) -> str:
        import torch

        names = self.device_names()
        device = self.resolve_device(names[0])
        dtype = str(self.resolve_dtype(device)).replace("torch.", "")
        where = f"torch {torch.__version__}, {len(names)} device(s), {device} as {dtype}"
        if device.startswith("cuda"):
            where += f" ({torch.cuda.get_device_name(device)})"
        return f"{where}; {self.check_weights()}"
