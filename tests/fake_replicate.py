"""A loopback Replicate API for tests and benchmarks (pytest-httpserver, threaded).

It reproduces the documented shapes of the HTTP API:

* ``POST /v1/models/{owner}/{name}/predictions`` (official models) and ``POST /v1/predictions``
  (``{"version": ..., "input": ...}``) answer ``201`` with a prediction object (``id``, ``model``,
  ``version``, ``input``, ``logs``, ``output``, ``data_removed``, ``error``, ``status``,
  ``created_at``/``started_at``/``completed_at``, ``urls.get``/``urls.cancel``/``urls.stream``,
  ``metrics.predict_time``). With ``Prefer: wait[=N]`` the answer is held until the prediction ends
  (or N seconds); without it the prediction comes back ``starting`` and is polled.
* ``GET /v1/predictions/{id}``, ``POST /v1/predictions/{id}/cancel``, ``GET /v1/account``.
* Outputs are served by the same server under ``/files/<prediction id>.<ext>`` (no token needed,
  like replicate.delivery): real, noisy PNG/WebP/JPEG bytes made with Pillow. Flux schnell/dev
  (and version-pinned models) answer a list of URLs, ``*-pro`` models one URL string.
* Every ``/v1`` call needs ``Authorization: Bearer <token>`` (else ``401`` in Replicate's
  problem+json shape); ``429`` answers carry ``Retry-After``.

Script it with :meth:`ReplicateFake.mode` (the modes of :mod:`limner.testing.provider_suite`, plus
``failed``, ``canceled`` and ``no_credit``: 402 "Insufficient credit" in Replicate's problem+json shape;
options ``redirect_to`` (every download redirected), ``download_failures=N`` (the first N downloads of
each output redirected to ``failure_location``, default a 404) and ``drip_downloads=N`` (the first N
downloads of each output send one byte every ``drip_s`` seconds)) and :meth:`ReplicateFake.faults` (seeded random 429/500/NSFW for
acceptance runs). Counters: ``create_calls``, ``last_input``, ``last_prefer``, ``poll_calls``,
``cancel_calls``, ``paid`` (predictions that succeeded), ``successes``/``refusals`` per prompt.
"""

from __future__ import annotations

import datetime as dt
import io
import itertools
import json
import logging
import random
import re
import threading
import time
from collections import Counter
from typing import Any

import numpy as np
from PIL import Image
from fake_network import RedirectingServer
from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

NSFW_ERROR = "All generated images contained NSFW content. Try running it again with a different prompt."
ASPECTS = {"1:1": (1, 1), "16:9": (16, 9), "21:9": (21, 9), "3:2": (3, 2), "2:3": (2, 3), "4:5": (4, 5), "5:4": (5, 4),
           "3:4": (3, 4), "4:3": (4, 3), "9:16": (9, 16), "9:21": (9, 21)}
MIME = {"png": "image/png", "webp": "image/webp", "jpg": "image/jpeg"}
#: the ``aspect_ratio`` enum of the official models whose schema the fake checks (others take any value):
#: https://replicate.com/black-forest-labs/flux-schnell/api/schema, .../flux-dev/..., .../flux-1.1-pro/...
MODEL_ASPECTS = {
    "black-forest-labs/flux-schnell": frozenset(ASPECTS),
    "black-forest-labs/flux-dev": frozenset(ASPECTS),
    "black-forest-labs/flux-1.1-pro": frozenset({"custom", "1:1", "16:9", "3:2", "2:3", "4:5", "5:4", "9:16", "3:4", "4:3"}),
}


def noisy_image(width: int, height: int, seed: int, fmt: str = "png") -> bytes:
    """A deterministic, noisy picture (never blank, never a near-duplicate of another seed)."""
    rng = np.random.default_rng(seed & 0xFFFFFFFF)
    base = rng.integers(0, 256, size=(max(1, height // 8), max(1, width // 8), 3), dtype=np.uint8)
    im = Image.fromarray(base).resize((width, height), Image.Resampling.BILINEAR)
    buf = io.BytesIO()
    if fmt == "png":
        im.save(buf, "PNG", compress_level=1)
    elif fmt == "webp":
        im.save(buf, "WEBP", quality=90)
    else:
        im.save(buf, "JPEG", quality=90)
    return buf.getvalue()


def _now() -> str:
    return dt.datetime.now(dt.UTC).isoformat().replace("+00:00", "Z")


def _parse_time(value: str | None) -> dt.datetime | None:
    return dt.datetime.fromisoformat(value.replace("Z", "+00:00")) if value else None


def _json(data: Any, status: int = 200, headers: dict[str, str] | None = None, problem: bool = False) -> Response:
    return Response(json.dumps(data), status=status, headers=headers or {},
                    content_type="application/problem+json" if problem else "application/json")


class ReplicateFake:
    """The fake API; ``url`` is its base URL (use it as ``REPLICATE_BASE_URL``)."""

    def __init__(self, server: HTTPServer, token: str, *, image_size: int = 64, latency: float = 0.0,
                 output_host: str | None = None) -> None:
        self.server = server
        self.token = token
        self.image_size = image_size
        self.latency = latency
        self.output_host = output_host
        self._lock = threading.Lock()
        self._closing = threading.Event()
        self._ids = itertools.count(1)
        self._oversized: bytes | None = None
        self.predictions: dict[str, dict[str, Any]] = {}
        self._mode, self._options = "ok", {}
        self._faults: dict[str, float] = {}
        self._rng = random.Random(0)
        self._epoch = 0
        self.reset_counters()
        self._routes()

    # ------------------------------------------------------------------ scripting
    @property
    def url(self) -> str:
        return f"http://{self.server.host}:{self.server.port}"

    def mode(self, name: str, **options: Any) -> None:
        assert name in {"ok", "rate_limit_once", "server_error_once", "slow", "refuse", "auth", "corrupt", "oversized",
                        "failed", "canceled", "aborted", "no_credit", "redirect_elsewhere"}, name
        with self._lock:
            self._mode, self._options, self._once_done = name, dict(options), False
            if isinstance(self.server, RedirectingServer):
                self.server.redirect_elsewhere = name == "redirect_elsewhere"
                self.server.redirect_after = int(options.get("after", 0))

    @property
    def elsewhere(self) -> list[dict[str, str]]:
        """Headers of the requests that reached the other origin (``redirect_elsewhere``)."""
        return self.server.elsewhere if isinstance(self.server, RedirectingServer) else []

    @property
    def redirected(self) -> int:
        return self.server.redirected if isinstance(self.server, RedirectingServer) else 0

    def faults(self, *, rate_limit: float = 0.0, server_error: float = 0.0, nsfw: float = 0.0, pending: float = 0.0,
               retry_after: int = 1, seed: int = 0) -> None:
        """Random faults on create calls (seeded): 429 (with Retry-After), 500, NSFW refusals, and
        predictions still ``processing`` when the create call answers (``pending``)."""
        with self._lock:
            self._faults = {"rate_limit": rate_limit, "server_error": server_error, "nsfw": nsfw, "pending": pending,
                            "retry_after": retry_after}
            self._rng = random.Random(seed)

    def reset(self) -> None:
        """Back to mode ``ok``, no faults, no predictions, counters at zero (to share one server)."""
        self.mode("ok")  # the redirecting server's switch too
        with self._lock:
            self._faults = {}
            self.predictions.clear()
            self._epoch += 1  # requests still in flight from before the reset change nothing
        self.reset_counters()

    def reset_counters(self) -> None:
        self.create_calls = 0
        self.create_rejected = 0  # 401/429/500 answers to create calls
        self.last_input: dict[str, Any] | None = None
        self.last_body: dict[str, Any] | None = None
        self.last_path: str | None = None
        self.last_prefer: str | None = None
        self.prefer_headers: list[str | None] = []
        self.poll_calls = 0
        self.cancel_calls = 0
        self.list_calls = 0
        self.file_calls = 0
        self.files_with_auth = 0
        self.token_seen = 0
        self.paid = 0
        self.successes: Counter[str] = Counter()
        self.refusals: Counter[str] = Counter()
        self._once_done = False

    def close(self) -> None:
        self._closing.set()

    # ------------------------------------------------------------------ routing
    def _routes(self) -> None:
        s = self.server
        s.expect_request(re.compile(r"^/v1/models/[^/]+/[^/]+/predictions$"), method="POST").respond_with_handler(self._create)
        s.expect_request("/v1/predictions", method="POST").respond_with_handler(self._create)
        s.expect_request(re.compile(r"^/v1/predictions/[^/]+/cancel$"), method="POST").respond_with_handler(self._cancel)
        s.expect_request("/v1/predictions", method="GET").respond_with_handler(self._list)
        s.expect_request(re.compile(r"^/v1/predictions/[^/]+$"), method="GET").respond_with_handler(self._get)
        s.expect_request("/v1/account", method="GET").respond_with_handler(self._account)
        s.expect_request(re.compile(r"^/files/.+$"), method="GET").respond_with_handler(self._file)

    def _authorized(self, request: Request) -> bool:
        ok = request.headers.get("Authorization") == f"Bearer {self.token}"
        if ok:
            with self._lock:
                self.token_seen += 1
        return ok

    @staticmethod
    def _unauthenticated() -> Response:
        return _json({"title": "Unauthenticated", "detail": "You did not pass a valid authentication token",
                      "status": 401}, 401, problem=True)

    # ------------------------------------------------------------------ handlers
    def _create(self, request: Request) -> Response:
        try:
            body = json.loads(request.get_data(as_text=True) or "{}")
        except ValueError:
            return _json({"title": "Invalid JSON", "detail": "the body is not JSON", "status": 400}, 400, problem=True)
        prefer = request.headers.get("Prefer")
        path = request.path
        with self._lock:
            self.create_calls += 1
            self.last_body, self.last_path, self.last_prefer = body, path, prefer
            self.last_input = dict(body.get("input") or {})
            self.prefer_headers.append(prefer)
            mode, options, epoch = self._mode, dict(self._options), self._epoch
            first_in_mode = not self._once_done
            self._once_done = True
            faults = dict(self._faults)
            draw = self._rng.random() if faults else 1.0
            nsfw_draw = self._rng.random() if faults else 1.0
            pending_draw = self._rng.random() if faults else 1.0
            pending_n = self._rng.randint(1, 2) if faults else 0
        if not self._authorized(request) or mode == "auth":
            self._count_rejected()
            return self._unauthenticated()
        if mode == "no_credit":
            self._count_rejected()
            return _json({"title": "Insufficient credit", "status": 402,
                          "detail": "You have insufficient credit to run this model. Go to "
                                    "https://replicate.com/account/billing#billing to purchase credit."}, 402, problem=True)
        if mode == "slow":
            self._closing.wait(float(options.get("delay", 3)))
            if epoch != self._epoch:
                return Response("Service Unavailable", status=503, content_type="text/plain")
        if (mode == "rate_limit_once" and first_in_mode) or draw < faults.get("rate_limit", 0):
            self._count_rejected()
            wait = int(faults.get("retry_after", 1)) if faults else int(options.get("retry_after", 1))
            return _json({"title": "Request was throttled.", "status": 429,
                          "detail": f"Request was throttled. Your rate limit resets in ~{wait}s."}, 429,
                         headers={"Retry-After": str(wait)}, problem=True)
        if (mode == "server_error_once" and first_in_mode) or draw < faults.get("rate_limit", 0) + faults.get("server_error", 0):
            self._count_rejected()
            return Response("Internal Server Error", status=500, content_type="text/plain")
        if not isinstance(body.get("input"), dict) or not body["input"].get("prompt"):
            return _json({"title": "Input validation failed", "status": 422, "detail": "- input: prompt is required",
                          "invalid_fields": [{"type": "required", "field": "input.prompt"}]}, 422, problem=True)

        m = re.match(r"^/v1/models/([^/]+)/([^/]+)/predictions$", path)
        if m:
            model, version = f"{m.group(1)}/{m.group(2)}", "hidden"
            allowed = MODEL_ASPECTS.get(model)
            aspect = body["input"].get("aspect_ratio")
            if allowed is not None and aspect is not None and aspect not in allowed:
                choices = ", ".join(sorted(allowed))
                return _json({"title": "Input validation failed", "status": 422,
                              "detail": f"- input.aspect_ratio: aspect_ratio must be one of the following: {choices}",
                              "invalid_fields": [{"type": "enum", "field": "input.aspect_ratio",
                                                  "description": f"aspect_ratio must be one of the following: {choices}"}]},
                             422, problem=True)
        else:
            version = str(body.get("version") or "")
            if not version:
                return _json({"title": "Invalid version", "status": 422, "detail": "version is required"}, 422, problem=True)
            model, _, tail = version.partition(":")
            version = tail or version
            model = model if tail else "community/unknown"
        outcome, error = "succeeded", None
        if mode == "refuse" or nsfw_draw < faults.get("nsfw", 0):
            outcome, error = "failed", NSFW_ERROR
        elif mode == "failed":
            outcome, error = "failed", str(options.get("error", "Prediction failed for an unknown reason."))
        elif mode in ("canceled", "aborted"):  # aborted: ended by its Cancel-After deadline before it started
            outcome = mode
        pending = int(options.get("pending_polls", 0)) or (pending_n if pending_draw < faults.get("pending", 0) else 0)
        latency = float(options.get("latency", self.latency))
        pid = f"fake{next(self._ids):06d}{random.Random(time.time_ns()).getrandbits(40):010x}"
        base = request.host_url.rstrip("/")
        prediction = {
            "id": pid, "model": model, "version": version, "input": body["input"], "logs": "", "output": None,
            "data_removed": False, "error": None, "status": "starting", "created_at": _now(), "started_at": None,
            "completed_at": None,
            "urls": {"get": f"{base}/v1/predictions/{pid}", "cancel": f"{base}/v1/predictions/{pid}/cancel",
                     "stream": f"{base}/v1/predictions/{pid}/stream"},
            # not part of the answer:
            "_outcome": outcome, "_error": error, "_pending": pending, "_ready_at": time.monotonic() + latency,
            "_mode": mode, "_options": options, "_epoch": epoch, "_host": request.host, "_started": time.monotonic(),
        }
        with self._lock:
            self.predictions[pid] = prediction
        wait = self._prefer_wait(prefer)
        if wait is not None and pending == 0:
            remaining = prediction["_ready_at"] - time.monotonic()
            if remaining > 0:
                self._closing.wait(min(remaining, wait))
            self._advance(prediction)
        elif pending:
            prediction["status"] = "processing" if wait is not None else "starting"
        return _json(self._public(prediction), 201)

    def _get(self, request: Request) -> Response:
        if not self._authorized(request):
            return self._unauthenticated()
        pid = request.path.rsplit("/", 1)[-1]
        with self._lock:
            self.poll_calls += 1
            prediction = self.predictions.get(pid)
        if prediction is None:
            return _json({"title": "Not found", "detail": "Not found.", "status": 404}, 404, problem=True)
        if prediction["status"] in ("starting", "processing"):
            if prediction["_pending"] > 0:
                prediction["_pending"] -= 1
                prediction["status"] = "processing"
            else:
                self._advance(prediction)
        return _json(self._public(prediction))

    def _list(self, request: Request) -> Response:
        """``GET /v1/predictions``: newest first, ``list_page_size`` (100) a page with a ``next`` cursor link,
        filtered by ``created_after`` (inclusive) and ``created_before`` (ISO 8601)."""
        if not self._authorized(request):
            return self._unauthenticated()
        after, before = (_parse_time(request.args.get(k)) for k in ("created_after", "created_before"))
        cursor = int(request.args.get("cursor") or 0)
        size = int(self._options.get("list_page_size", 100))
        with self._lock:
            self.list_calls += 1
            chosen = [p for p in self.predictions.values()
                      if (after is None or _parse_time(p["created_at"]) >= after)
                      and (before is None or _parse_time(p["created_at"]) < before)]
        chosen.sort(key=lambda p: p["_started"], reverse=True)
        for prediction in chosen[cursor:cursor + size]:
            if prediction["status"] in ("starting", "processing") and prediction["_pending"] == 0:
                self._advance(prediction)
        link = None
        if cursor + size < len(chosen):
            query = {k: v for k, v in request.args.items() if k != "cursor"} | {"cursor": str(cursor + size)}
            link = f"{request.host_url.rstrip('/')}/v1/predictions?" + "&".join(f"{k}={v}" for k, v in query.items())
        return _json({"next": link, "previous": None, "results": [self._public(p) for p in chosen[cursor:cursor + size]]})

    def _cancel(self, request: Request) -> Response:
        if not self._authorized(request):
            return self._unauthenticated()
        pid = request.path.split("/")[-2]
        with self._lock:
            self.cancel_calls += 1
            prediction = self.predictions.get(pid)
            if prediction is None:
                return _json({"title": "Not found", "detail": "Not found.", "status": 404}, 404, problem=True)
            if prediction["status"] in ("starting", "processing"):
                prediction.update(status="canceled", completed_at=_now())
        return _json(self._public(prediction))

    def _account(self, request: Request) -> Response:
        if not self._authorized(request) or self._mode == "auth":
            return self._unauthenticated()
        return _json({"type": "user", "username": "limner-test", "name": "Limner Test",
                      "github_url": "https://github.com/limner-test"})

    def _file(self, request: Request) -> Response:
        with self._lock:
            self.file_calls += 1
            if request.headers.get("Authorization"):
                self.files_with_auth += 1
        name = request.path.rsplit("/", 1)[-1]
        pid, _, ext = name.partition(".")
        prediction = self.predictions.get(pid)
        if prediction is None or prediction["status"] != "succeeded":
            return Response("Not Found", status=404, content_type="text/plain")
        mode, options = prediction["_mode"], prediction["_options"]
        with self._lock:  # ``download_failures=N``: the first N downloads of each output are redirected away
            failures_left = prediction.get("_download_failures", options.get("download_failures", 0))
            prediction["_download_failures"] = max(0, failures_left - 1)
            drips_left = prediction.get("_drips", options.get("drip_downloads", 0))
            prediction["_drips"] = max(0, drips_left - 1)
        if failures_left:
            return Response("", status=302, headers={"Location": options.get("failure_location", "/files/gone.png")})
        if drips_left:  # ``drip_downloads=N``: the first N downloads send one byte every ``drip_s`` seconds
            def drip(pause: float = float(options.get("drip_s", 2.0))) -> Any:
                for byte in b"\x89PNG\r\n\x1a\n" * 4:
                    time.sleep(pause)
                    yield bytes([byte])
            return Response(drip(), status=200, content_type="image/png")
        if options.get("redirect_to"):
            return Response("", status=302, headers={"Location": options["redirect_to"]})
        if mode == "corrupt":
            data = noisy_image(64, 64, 1)[:150]
        elif mode == "oversized":
            data = self._oversized_png()
        else:
            inp = prediction["input"]
            w, h = self._size(inp)
            data = noisy_image(w, h, int(inp.get("seed") or 0), ext if ext in MIME else "png")
        return Response(data, status=200, content_type=MIME.get(ext, "application/octet-stream"))

    # ------------------------------------------------------------------ helpers
    def _count_rejected(self) -> None:
        with self._lock:
            self.create_rejected += 1

    @staticmethod
    def _prefer_wait(prefer: str | None) -> float | None:
        if not prefer:
            return None
        m = re.search(r"\bwait(?:=(\d+))?\b", prefer)
        if not m:
            return None
        return float(m.group(1)) if m.group(1) else 60.0

    def _size(self, inp: dict[str, Any]) -> tuple[int, int]:
        if isinstance(inp.get("width"), int) and isinstance(inp.get("height"), int):
            a, b = inp["width"], inp["height"]
        else:
            a, b = ASPECTS.get(str(inp.get("aspect_ratio")), (1, 1))
        scale = self.image_size / max(a, b)
        return max(8, round(a * scale)), max(8, round(b * scale))

    def _oversized_png(self) -> bytes:
        if self._oversized is None:  # incompressible noise: about 1.9 MB of PNG
            arr = np.random.default_rng(7).integers(0, 256, size=(800, 800, 3), dtype=np.uint8)
            buf = io.BytesIO()
            Image.fromarray(arr).save(buf, "PNG", compress_level=0)
            self._oversized = buf.getvalue()
        return self._oversized

    def _advance(self, prediction: dict[str, Any]) -> None:
        """Finish a prediction whose time has come (once)."""
        with self._lock:
            if prediction["status"] not in ("starting", "processing") or prediction["_epoch"] != self._epoch:
                return
            if time.monotonic() < prediction["_ready_at"]:
                prediction["status"] = "processing"
                prediction["started_at"] = prediction["started_at"] or _now()
                return
            outcome = prediction["_outcome"]
            prompt = str(prediction["input"].get("prompt"))
            prediction.update(status=outcome, started_at=prediction["started_at"] or _now(), completed_at=_now(),
                              logs=f"Using seed: {prediction['input'].get('seed')}\n",
                              metrics={"predict_time": round(time.monotonic() - prediction["_started"], 4),
                                       "total_time": round(time.monotonic() - prediction["_started"], 4)})
            if outcome == "succeeded":
                self.paid += 1
                self.successes[prompt] += 1
                fmt = str(prediction["input"].get("output_format") or "webp")
                out_host = prediction["_options"].get("output_host") or self.output_host
                host = f"{out_host}:{self.server.port}" if out_host else prediction["_host"]
                url = f"http://{host}/files/{prediction['id']}.{fmt}"
                if prediction["_options"].get("data_uri"):
                    import base64

                    w, h = self._size(prediction["input"])
                    url = "data:image/png;base64," + base64.b64encode(
                        noisy_image(w, h, int(prediction["input"].get("seed") or 0))).decode()
                prediction["output"] = url if prediction["model"].endswith("-pro") else [url]
            elif outcome == "failed":
                self.refusals[prompt] += int(prediction["_error"] == NSFW_ERROR)
                prediction["error"] = prediction["_error"]

    @staticmethod
    def _public(prediction: dict[str, Any]) -> dict[str, Any]:
        return {k: v for k, v in prediction.items() if not k.startswith("_")}


def start_fake(token: str, **kwargs: Any) -> tuple[HTTPServer, ReplicateFake]:
    """A started threaded server with the fake routes (stop it with ``stop_fake``)."""
    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # no access log lines on stderr
    server = RedirectingServer(host="127.0.0.1", port=0, threaded=True)
    server.start()
    return server, ReplicateFake(server, token, **kwargs)


def stop_fake(server: HTTPServer, fake: ReplicateFake) -> None:
    fake.close()
    if server.is_running():
        server.stop()
