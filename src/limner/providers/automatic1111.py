"""The ``automatic1111`` provider: a self-hosted AUTOMATIC1111 / Forge web UI started with ``--api``.

One call is one ``POST /sdapi/v1/txt2img``::

    {"prompt", "negative_prompt", "seed", "width", "height", "steps", "cfg_scale", "sampler_name",
     "batch_size": 1, "n_iter": 1, "send_images": true, "save_images": false, ...}

answered with ``{"images": [base64 PNG, ...], "parameters": {...}, "info": "<JSON string>"}``. The
first image is kept; ``info`` (parsed with ``json.loads``) gives the seed actually used
(``info["seed"]``) and the checkpoint (``info["sd_model_name"]``). A server works one request at a
time, so the provider's default concurrency is one per server.

The hosts, their slots, clients, timeouts and error mapping come from
:class:`~limner.providers.selfhosted.SelfHostedProvider`. Settings (``[providers.automatic1111]``):

* ``base_url``: the server, or ``hosts``: several (a list or a comma-separated string), each its own
  slot; else ``A1111_BASE_URL`` (environment or ``.env``, comma-separated for several); else
  ``http://127.0.0.1:7860``. Plain ``http`` needs the host listed in ``LIMNER_ALLOW_HTTP_HOSTS``. A host
  that cannot be reached (``HostUnreachable``) is passed over for a while when another is free.
* ``per_host_concurrency`` (default 1).
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
from collections.abc import Callable, Mapping
from typing import Any

import httpx

from .base import GenerationRequest, GenerationResult, redact_value
from .errors import Transient
from .http import ProviderHTTP, decode_base64_image, public_url
from .options import pick_params
from .selfhosted import SELF_HOSTED_SETTINGS, SelfHostedProvider, looks_like_image

log = logging.getLogger("limner.providers")

NAME = "automatic1111"
DEFAULT_BASE_URL = "http://127.0.0.1:7860"
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


def _describe(response: httpx.Response, redact: Callable[[str], str]) -> str:
    """A short message from an error body: FastAPI's ``detail`` (422 lists) or the API's ``errors``. The body
    is redacted before anything is cut from it (a cut first could keep most of a secret)."""
    try:
        body = redact_value(response.json(), redact)
    except ValueError:
        return " ".join(redact(response.text)[:300].split())
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


class Automatic1111Provider(SelfHostedProvider):
    name = NAME
    default_model = ""  # the checkpoint the server has loaded, unless providers.automatic1111.model is set
    image_settings = ("steps", "cfg_scale", "sampler_name", "scheduler")
    accepted_settings = SELF_HOSTED_SETTINGS | {*image_settings, "save_images"}
    # capabilities: SelfHostedProvider's (a server runs one generation at a time: one slot per host)
    hosts_env = "A1111_BASE_URL"
    credential_env = ("A1111_AUTH",)
    default_host = DEFAULT_BASE_URL

    def credentials(self) -> tuple[dict[str, str], list[str | None]]:
        """``A1111_AUTH`` (``user:password``, the server's ``--api-auth``), when set, as HTTP basic auth."""
        auth = self.secret("A1111_AUTH")
        if not auth:
            return {}, []
        token = base64.b64encode(auth.encode()).decode()
        return {"Authorization": f"Basic {token}"}, [auth, auth.partition(":")[2], token]

    def describe_error(self, response: httpx.Response) -> str | None:
        return _describe(response, self._redact)

    async def check_host(self, http: ProviderHTTP) -> str:
        """``GET /sdapi/v1/options`` (with the credentials, if any): the loaded checkpoint."""
        options = await http.json("GET", "/sdapi/v1/options")
        model = options.get("sd_model_checkpoint") if isinstance(options, Mapping) else None
        return f"checkpoint {model}" if model else "reachable"

    # -- the call

    def payload(self, request: GenerationRequest) -> dict[str, Any]:
        """The txt2img body for ``request``."""
        width, height = self.fit_size(request)
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
        started = time.perf_counter()
        async with self.host() as http:
            answer = await http.json("POST", TXT2IMG, json=body, max_bytes=http.inline_image_json_bytes)
        seconds = time.perf_counter() - started
        images = answer.get("images") if isinstance(answer, Mapping) else None
        if not images or not isinstance(images[0], str):
            raise Transient(f"{self.name}: txt2img answered without an image")
        data = self._decode(images[0], http.max_download_bytes)
        info = self._info(answer.get("info"))
        seed = info.get("seed")
        metadata = {"host": public_url(http.base_url), "seconds": round(seconds, 3)}
        for key in ("sd_model_hash", "sampler_name", "steps", "cfg_scale", "job_timestamp", "version"):
            if info.get(key) not in (None, ""):
                metadata[key] = info[key]
        return GenerationResult(
            data=data,
            seed=int(seed) if isinstance(seed, int) and not isinstance(seed, bool) else int(body["seed"]),
            cost_usd=self.wall_cost(seconds),
            model=str(info.get("sd_model_name") or body.get("override_settings", {}).get("sd_model_checkpoint") or ""),
            metadata=metadata,
        )

    def _decode(self, text: str, cap: int) -> bytes:
        if text.startswith("data:"):
            text = text.partition(",")[2]
        data = decode_base64_image(self.name, text, cap)
        if not looks_like_image(data):
            raise Transient(f"{self.name}: the returned image is not a PNG, JPEG, WebP or AVIF")
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
