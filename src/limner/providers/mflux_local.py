"""The ``mflux`` provider: FLUX.1 on Apple silicon with mflux (MLX), through its Python API.

Apple silicon only (macOS on arm64). Elsewhere the provider is listed but every call stops the run with
one message saying so (:class:`PlatformUnsupported`) and pointing at the ``diffusers`` provider; on a Mac
without mflux, importing this module fails with the package's name, so Limner answers with the install
hint ``pip install 'limner[mlx]'``. mflux pins an older huggingface-hub than current diffusers and
transformers want: install ``limner[mlx]`` in its own virtual environment (docs/local-models.md). The
module is named ``mflux_local`` so that it does not shadow the ``mflux`` library.

Settings (``[providers.mflux]``; a style's ``params`` override the generation ones):

* ``model``: an mflux model name or alias (``schnell``, the default; ``dev``; or a hub id mflux knows, such
  as ``black-forest-labs/FLUX.1-dev``); ``model_path``: a local folder of its weights (as saved by
  ``mflux-save``, or downloaded from the hub), else mflux downloads them into the Hugging Face cache
  (``HF_TOKEN`` for gated ones).
* ``quantize``: 3, 4, 5, 6 or 8 bits (unset: the weights as they are, bfloat16); FLUX.1's weights take about
  17 GB at 8 bits and 8.5 GB at 4 bits.
* ``steps`` (default 4 for schnell, 25 otherwise), ``guidance`` (default 3.5; schnell ignores it).

The model is loaded once and kept warm; one image at a time (MLX uses the whole GPU); the generation runs in
a worker thread.
"""

from __future__ import annotations

import asyncio
import importlib.util
import io
import platform
import sys
import threading
import time
from collections.abc import Iterable
from typing import Any

from .base import Capabilities, GenerationRequest, GenerationResult, Provider
from .errors import InvalidRequest, SettingsRejected
from .weights import classify_load_error
from .options import number_setting, pick_params

NAME = "mflux"


def apple_silicon() -> bool:
    return sys.platform == "darwin" and platform.machine() == "arm64"


if apple_silicon() and importlib.util.find_spec("mflux") is None:  # the install hint, on the one platform it fits
    raise ImportError("No module named 'mflux'", name="mflux")


class PlatformUnsupported(InvalidRequest):
    """mflux runs on Apple silicon only. A run checks :meth:`MfluxProvider.unavailable` before anything is
    written (exit 2); a call that gets here anyway is refused in :meth:`~MfluxProvider.prepare`, before its
    ledger line, never as a rejected credential."""


SUPPORTED_PARAMS = frozenset({"steps", "guidance"})
PARAM_ALIASES = {"num_inference_steps": "steps", "guidance_scale": "guidance", "cfg": "guidance", "cfg_scale": "guidance"}


class MfluxProvider(Provider):
    name = NAME
    concurrency_is_per_machine = True  # its devices are this machine's
    default_model = "schnell"
    capabilities = Capabilities(supports_seed=True, supports_negative_prompt=False, max_concurrency=1,
                                max_side=2048, size_multiple=16)
    price_usd = 0.0
    image_settings = ("steps", "guidance", "quantize")
    accepted_settings = frozenset({*image_settings, "model_path", "cost_per_hour_usd"})
    credential_env = ("HF_TOKEN",)  # optional: gated weights; checked like a key when set

    def __init__(self, *, model: str | None = None, settings: dict[str, Any] | None = None) -> None:
        super().__init__(model=model, settings=settings)
        self._flux: Any = None
        self._load_lock = threading.Lock()
        self._run_lock = threading.Lock()

    def _secret_values(self) -> Iterable[str | None]:
        return [self.secret("HF_TOKEN")]

    @classmethod
    def unavailable(cls) -> str | None:
        if apple_silicon():
            return None
        return (f"mflux runs on Apple silicon Macs only (MLX), not on {platform.system()} {platform.machine()}: "
                "use the diffusers provider here (provider = \"diffusers\", pip install 'limner[gpu]')")

    def _require_platform(self) -> None:
        reason = self.unavailable()
        if reason is not None:
            raise PlatformUnsupported(f"mflux: {reason.removeprefix('mflux ')}")

    async def prepare(self) -> None:
        self._require_platform()  # before the call's ledger line: no line for a call that cannot be made
        await asyncio.to_thread(self.check_settings)  # imports mflux: off the event loop

    def check_settings(self) -> None:
        """Raise :class:`SettingsRejected` naming the first ``[providers.mflux]`` setting that cannot work (the
        model's name, ``quantize``, ``steps``, ``guidance``), without loading the model."""
        from mflux.models.common.config.model_config import ModelConfig

        try:
            try:
                self.quantize()
            except (TypeError, ValueError):
                raise InvalidRequest(f"mflux: quantize must be 3, 4, 5, 6 or 8 bits, got "
                                     f"{self.settings.get('quantize')!r}") from None
            for key in SUPPORTED_PARAMS:
                if self.settings.get(key) is not None:
                    try:
                        float(self.settings[key])
                    except (TypeError, ValueError):
                        raise InvalidRequest(f"mflux: {key} must be a number, got {self.settings[key]!r}") from None
            try:
                ModelConfig.from_name(model_name=self.model)
            except Exception as exc:  # noqa: BLE001 - mflux's own error for an unknown name
                raise InvalidRequest(f"mflux: unknown model {self.model!r}: {exc}") from None
        except InvalidRequest as exc:
            raise SettingsRejected(self._redact(f"{exc} (in [providers.mflux] of limner.toml)")) from None

    def quantize(self) -> int | None:
        value = self.settings.get("quantize")
        if value in (None, "", 0):
            return None
        if int(value) not in (3, 4, 5, 6, 8):
            raise InvalidRequest(f"mflux: quantize must be 3, 4, 5, 6 or 8 bits, got {value!r}")
        return int(value)

    def params(self, request: GenerationRequest) -> dict[str, Any]:
        """Steps and guidance: defaults by model, then the settings, then the style's params."""
        schnell = "schnell" in self.model.lower()
        params: dict[str, Any] = {"steps": 4 if schnell else 25, "guidance": 3.5}
        params.update({k: self.settings[k] for k in SUPPORTED_PARAMS if self.settings.get(k) is not None})
        style = {PARAM_ALIASES.get(k, k): v for k, v in (request.params or {}).items()}
        params.update(pick_params(NAME, style, SUPPORTED_PARAMS))
        try:
            return {"num_inference_steps": int(params["steps"]), "guidance": float(params["guidance"])}
        except (TypeError, ValueError) as exc:
            raise InvalidRequest(f"mflux: bad generation parameter: {exc}") from None

    def load(self) -> Any:
        with self._load_lock:
            if self._flux is None:
                from mflux.models.common.config.model_config import ModelConfig
                from mflux.models.flux.variants.txt2img.flux import Flux1

                token = self.secret("HF_TOKEN")
                if token:
                    import os

                    os.environ.setdefault("HF_TOKEN", token)  # mflux downloads through huggingface_hub
                try:
                    config = ModelConfig.from_name(model_name=self.model)
                except Exception as exc:  # noqa: BLE001 - mflux's own error for an unknown name
                    raise InvalidRequest(f"mflux: unknown model {self.model!r}: {exc}") from None
                try:
                    quantize = self.quantize()
                except (TypeError, ValueError):
                    raise SettingsRejected(f"mflux: quantize must be 3, 4, 5, 6 or 8 bits, got "
                                           f"{self.settings.get('quantize')!r} (in [providers.mflux] of limner.toml)") from None
                try:
                    self._flux = Flux1(quantize=quantize, model_path=self.settings.get("model_path") or None,
                                       model_config=config)
                except Exception as exc:  # noqa: BLE001 - weights missing, a gated repository, no network
                    raise classify_load_error(exc, self.settings.get("model_path") or self.model, NAME, redact=self._redact) from exc
        return self._flux

    async def generate(self, request: GenerationRequest) -> GenerationResult:
        self._require_platform()
        width, height = int(request.width), int(request.height)
        if not (16 <= width <= self.capabilities.max_side and 16 <= height <= self.capabilities.max_side) or width % 16 or height % 16:
            raise InvalidRequest(f"mflux: size {width}x{height} must be multiples of 16 within 16..{self.capabilities.max_side}")
        params = self.params(request)
        return await asyncio.to_thread(self._generate_blocking, request, width, height, params)

    def _generate_blocking(self, request: GenerationRequest, width: int, height: int,
                           params: dict[str, Any]) -> GenerationResult:
        flux = self.load()
        started = time.perf_counter()
        with self._run_lock:
            generated = flux.generate_image(seed=int(request.seed) % 2**32, prompt=request.prompt, width=width,
                                            height=height, **params)
        seconds = time.perf_counter() - started
        buf = io.BytesIO()
        generated.image.save(buf, "PNG")
        rate = number_setting(NAME, self.settings, "cost_per_hour_usd", 0.0)
        return GenerationResult(data=buf.getvalue(), seed=request.seed, cost_usd=round(seconds * rate / 3600, 6),
                                model=self.model, metadata={"quantize": self.quantize(), "seconds": round(seconds, 3),
                                                            **{k: v for k, v in params.items()}})

    async def check(self) -> str:
        self.check_credentials()
        self._require_platform()
        import mflux  # noqa: F401 - present (the module's import checked it)

        return f"Apple silicon; model {self.model}" + (f", {self.quantize()}-bit" if self.quantize() else "")
