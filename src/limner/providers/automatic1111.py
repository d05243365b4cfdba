"""The ``automatic1111`` provider: a self-hosted AUTOMATIC1111 / Forge web UI started with ``--api``.

One call is one ``POST /sdapi/v1/txt2img``::

    {"prompt", "negative_prompt", "seed", "width", "height", "steps", "cfg_scale", "sampler_name",
     "batch_size": 1, "n_iter": 1, "send_images": true, "save_images": false, ...}

answered with ``{"images": [base64 PNG, ...], "parameters": {...}, "info": "<JSON string>"}``. The
first image is kept; ``info`` (parsed with ``json.loads``) gives the seed actually used
(``info["seed"]``) and the checkpoint (``info["sd_model_name"]``). The server works one request at a
time, so the provider's default concurrency is 1.

Settings (``[providers.automatic1111]``):

* ``base_url``: the server; else ``A1111_BASE_URL`` (environment or ``.env``); else
  ``http://127.0.0.1:7860``. Plain ``http`` needs the host listed in ``LIMNER_ALLOW_HTTP_HOSTS``.
* ``model``: a checkpoint title (``sd_xl_base_1.0.safetensors``), sent as
  ``override_settings.sd_model_checkpoint`` and kept loaded afterwards; unset: the server's current one.
* ``steps`` (default 20), ``cfg_scale`` (default 7), ``sampler_name`` (default ``Euler a``),
  ``scheduler``: defaults that a style's ``params`` override.
* ``timeout_s`` (default 600), ``max_download_bytes``, ``cost_per_hour_usd`` (each image then costs
  its wall time x rate; self-hosted is otherwise free).

``A1111_AUTH`` (``user:password``, environment or ``.env``), when set, is sent as HTTP basic auth
(the server's ``--api-auth``); a 401 is ``AuthFailed``. Parameters outside :data:`SUPPORTED_PARAMS` are
dropped with a log line. A request the server refuses as invalid (422) is ``InvalidRequest``; there
is no moderation on a self-hosted server, so ``ContentRefused`` does not happen.
"""

from __future__ import annotations

import base64
import json
import logging
import time
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

import httpx

from .base import Capabilities, GenerationRequest, GenerationResult, Provider
from .errors import InvalidRequest, Transient
from .http import ALLOW_HTTP_ENV, DEFAULT_MAX_DOWNLOAD_BYTES, ProviderHTTP, allowed_http_hosts, decode_base64_image, error_for_status
from .options import pick_params, snap_size

log = logging.getLogger("limner.providers")

NAME = "automatic1111"
DEFAULT_BASE_URL = "http://127.0.0.1:7860"
DEFAULT_TIMEOUT_S = 600.0
TXT2IMG = "/sdapi/v1/txt2img"

#: txt2img fields a style's ``params`` may set (A1111 and Forge)
SUPPORTED_PARAMS = frozenset({
    "steps", "cfg_scale", "sampler_name", "scheduler", "distilled_cfg_scale", "denoising_strength",
    "enable_hr", "hr_scale", "hr_upscaler", "hr_second_pass_steps", "hr_resize_x", "hr_resize_y",
    "hr_sampler_name", "hr_scheduler", "hr_prompt", "hr_negative_prompt", "hr_cfg", "hr_distilled_cfg",
    "restore_faces", "tiling", "subseed", "subseed_strength", "seed_resize_from_h", "seed_resize_from_w",
    "eta", "s_churn", "s_tmax", "s_tmin", "s_noise", "s_min_uncond", "styles", "refiner_checkpoint",
    "refiner_switch_at", "override_settings", "alwayson_scripts", "clip_skip",
})
#: other providers' names for the same parameters
PARAM_ALIASES = {"cfg": "cfg_scale", "guidance_scale": "cfg_scale", "sampler": "sampler_name",
                 "num_inference_steps": "steps", "guidance": "distilled_cfg_scale"}
DEFAULTS = {"steps": 20, "cfg_scale": 7.0, "sampler_name": "Euler a"}


def _public_url(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.hostname or ''}{f':{parts.port}' if parts.port else ''}{parts.path}"


def _describe(response: httpx.Response) -> str:
    """A short message from an error body: FastAPI's ``detail`` (422 lists) or the API's ``errors``."""
    try:
        body = response.json()
    except ValueError:
        return " ".join(response.text[:300].split())
    if isinstance(body, Mapping):
        detail = body.get("detail")
        if isinstance(detail, list):
            parts = []
            for item in detail[:5]:
                if isinstance(item, Mapping):
                    loc = ".".join(str(p) for p in item.get("loc", ()) if p != "body")
                    parts.append(f"{loc}: {item.get('msg', 'invalid')}" if loc else str(item.get("msg", "invalid")))
            return "; ".join(parts)[:500] or "invalid request"
        text = body.get("errors") or detail or body.get("error")
        if text:
            return " ".join(str(text).split())[:500]
    return " ".join(json.dumps(body)[:300].split())


class Automatic1111Provider(Provider):
    name = NAME
    default_model = ""  # the checkpoint the server has loaded, unless providers.automatic1111.model is set
    image_settings = ("steps", "cfg_scale", "sampler_name", "scheduler")
    capabilities = Capabilities(
        supports_seed=True,
        supports_negative_prompt=True,
        max_concurrency=1,  # the web UI runs one generation at a time; more calls only queue
        rate_limit_per_minute=None,
        max_side=2048,
        size_multiple=8,
    )
    price_usd = 0.0
    required_env = ()

    def __init__(self, *, model: str | None = None, settings: dict[str, Any] | None = None) -> None:
        super().__init__(model=model, settings=settings)
        self._http: ProviderHTTP | None = None

    # -- settings

    def base_url(self) -> str:
        url = str(self.settings.get("base_url") or self.secret("A1111_BASE_URL") or DEFAULT_BASE_URL).strip().rstrip("/")
        return url if "://" in url else f"http://{url}"

    def missing_env(self) -> list[str]:
        """A plain-http server not allowed by LIMNER_ALLOW_HTTP_HOSTS is reported before a run starts."""
        missing = super().missing_env()
        parts = urlsplit(self.base_url())
        if parts.scheme == "http" and parts.hostname and parts.hostname.lower() not in allowed_http_hosts():
            missing.append(f"{ALLOW_HTTP_ENV} (to allow plain http to {parts.hostname})")
        return missing

    @property
    def timeout_s(self) -> float:
        return float(self.settings.get("timeout_s") or DEFAULT_TIMEOUT_S)

    def client(self) -> ProviderHTTP:
        if self._http is None:
            url = self.base_url()
            parts = urlsplit(url)
            host = (parts.hostname or "").lower()
            if parts.scheme == "http" and host and host not in allowed_http_hosts():
                raise InvalidRequest(f"{self.name}: {_public_url(url)} is plain http; list {host} in {ALLOW_HTTP_ENV} "
                                     f"(e.g. {ALLOW_HTTP_ENV}={host}) to allow it, or use https")
            auth = self.secret("A1111_AUTH")
            headers, secrets = {}, [parts.password]
            if auth:
                token = base64.b64encode(auth.encode()).decode()
                headers["Authorization"] = f"Basic {token}"
                secrets += [auth, auth.partition(":")[2], token]
            self._http = ProviderHTTP(self.name, base_url=url, headers=headers, timeout_s=self.timeout_s,
                                      max_download_bytes=int(self.settings.get("max_download_bytes") or DEFAULT_MAX_DOWNLOAD_BYTES),
                                      secrets=secrets)
        return self._http

    # -- the call

    def payload(self, request: GenerationRequest) -> dict[str, Any]:
        """The txt2img body for ``request``."""
        max_side = self.capabilities.max_side
        if not (0 < request.width <= max_side and 0 < request.height <= max_side):
            raise InvalidRequest(f"{self.name}: size {request.width}x{request.height} outside 1..{max_side}")
        width, height = snap_size(request.width, request.height, multiple=self.capabilities.size_multiple, max_side=max_side)
        if (width, height) != (request.width, request.height):
            log.info("%s: size %dx%d snapped to %dx%d (multiples of %d)", self.name, request.width, request.height,
                     width, height, self.capabilities.size_multiple)
        params = {k: v for k, v in DEFAULTS.items()}
        params.update({k: self.settings[k] for k in ("steps", "cfg_scale", "sampler_name", "scheduler")
                       if self.settings.get(k) is not None})
        given = {PARAM_ALIASES.get(k, k): v for k, v in request.params.items()}
        params.update(pick_params(self.name, given, SUPPORTED_PARAMS))
        override = dict(params.pop("override_settings", None) or {})
        clip_skip = params.pop("clip_skip", None)
        if clip_skip is not None:
            override["CLIP_stop_at_last_layers"] = clip_skip
        body: dict[str, Any] = {
            "prompt": request.prompt, "negative_prompt": request.negative_prompt, "seed": int(request.seed),
            "width": width, "height": height, **params,
            "batch_size": 1, "n_iter": 1, "send_images": True, "save_images": bool(self.settings.get("save_images", False)),
        }
        model = request.model or self.model
        if model:
            override["sd_model_checkpoint"] = model
        if override:
            body["override_settings"] = override
            # keep the checkpoint loaded: restoring it after every image would reload weights each call
            body["override_settings_restore_afterwards"] = False
        return body

    async def generate(self, request: GenerationRequest) -> GenerationResult:
        body = self.payload(request)
        http = self.client()
        started = time.perf_counter()
        url = http.url(TXT2IMG)
        try:
            response = await http.client.post(url, json=body)
        except httpx.TimeoutException:
            raise Transient(f"{self.name}: no answer within {self.timeout_s:g}s ({TXT2IMG})") from None
        except httpx.TransportError as exc:
            raise Transient(http.redact(f"{self.name}: network error: {type(exc).__name__}: {exc}")) from None
        if response.status_code >= 400:
            raise error_for_status(self.name, response, http.redact, detail=_describe(response))
        seconds = time.perf_counter() - started
        try:
            answer = response.json()
        except ValueError:
            raise Transient(f"{self.name}: txt2img answer is not JSON (HTTP {response.status_code})") from None
        images = answer.get("images") if isinstance(answer, Mapping) else None
        if not images or not isinstance(images[0], str):
            raise Transient(f"{self.name}: txt2img answered without an image")
        data = self._decode(images[0], http.max_download_bytes)
        info = self._info(answer.get("info"))
        seed = info.get("seed")
        rate = float(self.settings.get("cost_per_hour_usd") or 0.0)
        metadata = {"host": _public_url(http.base_url), "seconds": round(seconds, 3)}
        for key in ("sd_model_hash", "sampler_name", "steps", "cfg_scale", "job_timestamp", "version"):
            if info.get(key) not in (None, ""):
                metadata[key] = info[key]
        return GenerationResult(
            data=data,
            seed=int(seed) if isinstance(seed, int) and not isinstance(seed, bool) else int(body["seed"]),
            cost_usd=round(seconds * rate / 3600, 6),
            model=str(info.get("sd_model_name") or body.get("override_settings", {}).get("sd_model_checkpoint") or ""),
            metadata=metadata,
        )

    def _decode(self, text: str, cap: int) -> bytes:
        if text.startswith("data:"):
            text = text.partition(",")[2]
        data = decode_base64_image(self.name, text, cap)
        head = data[:12]
        if not (head.startswith(b"\x89PNG\r\n\x1a\n") or head.startswith(b"\xff\xd8\xff")
                or (head[:4] == b"RIFF" and head[8:12] == b"WEBP")):
            raise Transient(f"{self.name}: the returned image is not a PNG, JPEG or WebP")
        return data

    def _info(self, raw: Any) -> dict[str, Any]:
        if isinstance(raw, Mapping):
            return dict(raw)
        try:
            info = json.loads(raw) if isinstance(raw, str) else None
        except ValueError:
            info = None
        if not isinstance(info, dict):
            log.debug("%s: txt2img info is not a JSON object; keeping the requested seed", self.name)
            return {}
        return info

    async def check(self) -> str:
        """``limner doctor``: the server answers ``/sdapi/v1/options`` (with the credentials, if any)."""
        await super().check()
        try:
            options = await self.client().json("GET", "/sdapi/v1/options")
        finally:
            await self.aclose()
        model = options.get("sd_model_checkpoint") if isinstance(options, Mapping) else None
        return f"{_public_url(self.base_url())} reachable" + (f", checkpoint {model}" if model else "")

    async def aclose(self) -> None:
        http, self._http = self._http, None
        if http is not None:
            await http.aclose()
