"""A loopback fake of the Supabase Storage REST API (``/storage/v1``), on pytest-httpserver.

It answers the requests the official clients (storage-js, storage-py) send, with the documented shapes:

* buckets: ``GET /bucket/{id}``, ``GET /bucket``, ``POST /bucket`` ``{"id", "name", "public"}``
* objects: ``POST|PUT /object/{bucket}/{path}`` (raw body or multipart, ``x-upsert``, ``cache-control``),
  ``GET|HEAD /object/{bucket}/{path}`` (also ``/object/authenticated/...``), ``GET /object/info/{bucket}/{path}``,
  ``DELETE /object/{bucket}`` ``{"prefixes": [...]}``, ``POST /object/list/{bucket}`` (one folder level,
  folders with ``"id": null``), ``POST /object/copy`` ``{"bucketId", "sourceKey", "destinationKey"}``
* URLs: ``GET /object/public/{bucket}/{path}`` (public buckets only), ``POST /object/sign/{bucket}/{path}``
  ``{"expiresIn"}`` -> ``{"signedURL": "/object/sign/...?token=..."}`` and ``GET`` on that URL

Errors are ``{"statusCode": "404", "error": "Bucket not found", "message": "Bucket not found"}`` and the like,
sent with HTTP 400 as hosted Supabase long did (``legacy_status=True``, the default) or with the status itself.

Auth: every call but public and signed downloads needs ``apikey`` (the API gateway answers 401
``{"message": "Invalid API key"}`` for an unknown one, unless ``gateway=False``) and ``Authorization: Bearer``
with the service key (bypasses row-level security) or the anon key (writes are refused by RLS, private
objects are invisible). Another JWT-shaped token gets ``invalid signature``, anything else ``Invalid Compact
JWS``; with ``echo_key`` the message repeats the token, as a careless server might, to test redaction.

Faults: ``fault_rate`` (0..1) of requests, drawn from ``random.Random(seed)``, get a 500, a 503 from the
gateway, or a dropped connection (before, or for writes after, the change is applied).
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import hmac
import json
import logging
import random
import re
import socket
import threading
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote, unquote

from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

SERVICE_KEY = "eyJhbGciOiJIUzI1NiJ9.eyJyb2xlIjoic2VydmljZV9yb2xlIn0.c2VydmljZS1yb2xlLXNlY3JldC1zaWduYXR1cmU"
ANON_KEY = "eyJhbGciOiJIUzI1NiJ9.eyJyb2xlIjoiYW5vbiJ9.YW5vbi1rZXktc2lnbmF0dXJlLWZvci10ZXN0cw"
_SIGNING_SECRET = b"fake-supabase-url-signing"
FAULT_KINDS = ("500", "503", "drop", "drop_after")

logging.getLogger("werkzeug").setLevel(logging.ERROR)  # one access-log line per request is noise in test output


def _now() -> str:
    return dt.datetime.now(dt.UTC).isoformat().replace("+00:00", "Z")


@dataclass
class StoredObject:
    data: bytes
    content_type: str
    cache_control: str
    id: str = field(default_factory=lambda: str(uuid.uuid4()))
    created_at: str = field(default_factory=_now)
    updated_at: str = field(default_factory=_now)

    @property
    def etag(self) -> str:
        return '"' + hashlib.md5(self.data).hexdigest() + '"'  # noqa: S324 - S3's ETag is an MD5

    def metadata(self) -> dict[str, Any]:
        return {"eTag": self.etag, "size": len(self.data), "mimetype": self.content_type, "cacheControl": self.cache_control,
                "lastModified": self.updated_at, "contentLength": len(self.data), "httpStatusCode": 200}


@dataclass
class Bucket:
    name: str
    public: bool
    objects: dict[str, StoredObject] = field(default_factory=dict)
    created_at: str = field(default_factory=_now)

    def describe(self) -> dict[str, Any]:
        return {"id": self.name, "name": self.name, "owner": "", "public": self.public, "file_size_limit": None,
                "allowed_mime_types": None, "created_at": self.created_at, "updated_at": self.created_at}


class _QuickServer(HTTPServer):
    """pytest-httpserver's server, polling for shutdown every 10 ms (fast teardown)."""

    def thread_target(self) -> None:
        assert self.server is not None
        self.server.serve_forever(poll_interval=0.01)


class FakeSupabase:
    def __init__(self, *, service_key: str = SERVICE_KEY, anon_key: str = ANON_KEY, legacy_status: bool = True,
                 gateway: bool = True, echo_key: bool = False, fault_rate: float = 0.0, seed: int = 0,
                 copy_upsert: bool = True) -> None:
        self.service_key = service_key
        self.anon_key = anon_key
        self.legacy_status = legacy_status
        self.gateway = gateway
        self.echo_key = echo_key
        self.fault_rate = fault_rate
        self.copy_upsert = copy_upsert
        #: when set, POST /bucket fails with this (statusCode, error, message)
        self.create_bucket_error: tuple[int, str, str] | None = None
        #: store uploads one byte short (a broken proxy), to test read-back verification
        self.truncate_uploads = False
        self.buckets: dict[str, Bucket] = {}
        self.lock = threading.RLock()
        self.calls: Counter[str] = Counter()
        self.faults: Counter[str] = Counter()
        self.uploads: list[dict[str, str]] = []  # headers of every applied upload
        self._rng = random.Random(seed)
        self.server = _QuickServer(host="127.0.0.1", port=0, threaded=True)
        self.server.expect_request(re.compile(r".*")).respond_with_handler(self.handle)

    # ------------------------------------------------------------------ lifecycle
    def start(self) -> FakeSupabase:
        self.server.start()
        return self

    def stop(self) -> None:
        if self.server.is_running():
            self.server.stop()

    def __enter__(self) -> FakeSupabase:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.port}"

    def public_url(self, bucket: str, name: str) -> str:
        return f"{self.url}/storage/v1/object/public/{bucket}/{quote(name)}"

    # ------------------------------------------------------------------ helpers for tests
    def add_bucket(self, name: str, *, public: bool = True) -> Bucket:
        with self.lock:
            return self.buckets.setdefault(name, Bucket(name, public))

    def object(self, bucket: str, name: str) -> StoredObject | None:
        with self.lock:
            b = self.buckets.get(bucket)
            return b.objects.get(name) if b else None

    def names(self, bucket: str) -> list[str]:
        with self.lock:
            b = self.buckets.get(bucket)
            return sorted(b.objects) if b else []

    # ------------------------------------------------------------------ responses
    def _json(self, body: Any, status: int = 200) -> Response:
        return Response(json.dumps(body), status=status, content_type="application/json")

    def _error(self, status: int, error: str, message: str) -> Response:
        body = {"statusCode": str(status), "error": error, "message": message}
        return self._json(body, 400 if self.legacy_status and 400 < status < 500 else status)

    def _bucket_missing(self) -> Response:
        return self._error(404, "Bucket not found", "Bucket not found")

    def _object_missing(self) -> Response:
        return self._error(404, "not_found", "Object not found")

    def _rls(self) -> Response:
        return self._error(403, "Unauthorized", "new row violates row-level security policy")

    def _serve(self, obj: StoredObject) -> Response:
        return Response(obj.data, status=200, content_type=obj.content_type,
                        headers={"Cache-Control": obj.cache_control, "ETag": obj.etag, "Last-Modified": obj.updated_at})

    # ------------------------------------------------------------------ entry point
    def handle(self, request: Request) -> Response:
        path = request.path
        if not path.startswith("/storage/v1/"):
            return self._json({"message": "no Route matched with those values"}, 404)
        route = path[len("/storage/v1/"):]
        self.calls[f"{request.method} {route.split('/')[0]}/{route.split('/')[1] if '/' in route else ''}"] += 1
        fault = self._draw_fault()
        if fault in ("500", "503"):
            self.faults[fault] += 1
            if fault == "500":
                return self._json({"statusCode": "500", "error": "internal", "message": "Internal Server Error"}, 500)
            return Response("upstream connect error or disconnect/reset before headers", status=503, content_type="text/plain")
        if fault == "drop" or (fault == "drop_after" and request.method == "GET"):
            self.faults["drop"] += 1
            return self._drop(request)
        response = self._route(request, route)
        if fault == "drop_after":  # the change is applied, but the client never hears of it
            self.faults["drop_after"] += 1
            return self._drop(request)
        return response

    def _draw_fault(self) -> str | None:
        if not self.fault_rate:
            return None
        with self.lock:
            if self._rng.random() >= self.fault_rate:
                return None
            return self._rng.choice(FAULT_KINDS)

    def _drop(self, request: Request) -> Response:
        sock = request.environ.get("werkzeug.socket")
        if sock is None:  # cannot drop here: a gateway error does as well for the client
            return Response("bad gateway", status=502)
        try:
            sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        return Response(b"", status=500)

    # ------------------------------------------------------------------ auth
    def _role(self, request: Request) -> str | Response:
        apikey = request.headers.get("apikey")
        if self.gateway:
            if not apikey:
                return self._json({"message": "No API key found in request",
                                   "hint": "No `apikey` request header or url param was found."}, 401)
            if apikey not in (self.service_key, self.anon_key):
                return self._json({"message": "Invalid API key",
                                   "hint": "Double check your Supabase `anon` or `service_role` API key."}, 401)
        auth = request.headers.get("Authorization", "")
        token = auth[len("Bearer "):] if auth.startswith("Bearer ") else ""
        if token == self.service_key:
            return "service_role"
        if token == self.anon_key:
            return "anon"
        echo = f" (token {token})" if self.echo_key else ""
        if not token:
            return self._error(400, "Error", "headers must have required property 'authorization'")
        if token.count(".") == 2:
            return self._error(403, "Unauthorized", "invalid signature" + echo)
        return self._error(403, "Unauthorized", "Invalid Compact JWS" + echo)

    # ------------------------------------------------------------------ routing
    def _route(self, request: Request, route: str) -> Response:
        method = request.method
        if method == "GET" and route.startswith("object/public/"):
            return self._get_public(route[len("object/public/"):])
        if method == "GET" and route.startswith("object/sign/"):
            return self._get_signed(route[len("object/sign/"):], request.args.get("token", ""))
        role = self._role(request)
        if isinstance(role, Response):
            return role
        if route == "bucket" and method == "GET":
            with self.lock:
                return self._json([b.describe() for b in self.buckets.values()])
        if route == "bucket" and method == "POST":
            return self._create_bucket(request, role)
        if route.startswith("bucket/") and method == "GET":
            with self.lock:
                bucket = self.buckets.get(unquote(route[len("bucket/"):]))
                return self._json(bucket.describe()) if bucket and role == "service_role" else self._bucket_missing()
        if route.startswith("object/list/") and method == "POST":
            return self._list(unquote(route[len("object/list/"):]), request.get_json(force=True, silent=True) or {}, role)
        if route == "object/copy" and method == "POST":
            return self._copy(request, role)
        if route.startswith("object/sign/") and method == "POST":
            return self._sign(*self._split(route[len("object/sign/"):]), request.get_json(force=True, silent=True) or {}, role)
        if route.startswith("object/info/") and method == "GET":
            return self._info(*self._split(route[len("object/info/"):]), role)
        if route.startswith("object/authenticated/") and method in ("GET", "HEAD"):
            return self._download(*self._split(route[len("object/authenticated/"):]), role)
        if route.startswith("object/"):
            rest = route[len("object/"):]
            if method == "DELETE" and "/" not in rest:
                return self._delete(unquote(rest), request.get_json(force=True, silent=True) or {}, role)
            bucket, name = self._split(rest)
            if not name:
                return self._error(400, "InvalidKey", "Invalid key")
            if method in ("POST", "PUT"):
                return self._upload(request, bucket, name, role, update=method == "PUT")
            if method in ("GET", "HEAD"):
                return self._download(bucket, name, role)
        return self._json({"statusCode": "404", "error": "Not Found", "message": f"Route {method}:/{route} not found"}, 404)

    @staticmethod
    def _split(rest: str) -> tuple[str, str]:
        bucket, _, name = rest.partition("/")
        return unquote(bucket), unquote(name)

    def _visible(self, bucket: Bucket | None, role: str) -> bool:
        """Service role sees everything; the anon key sees public buckets only (RLS filters the rest)."""
        return bucket is not None and (role == "service_role" or bucket.public)

    # ------------------------------------------------------------------ buckets
    def _create_bucket(self, request: Request, role: str) -> Response:
        body = request.get_json(force=True, silent=True) or {}
        name = body.get("name") or body.get("id")
        if not isinstance(name, str) or not name:
            return self._error(400, "Error", "body must have required property 'name'")
        if role != "service_role":
            return self._rls()
        if self.create_bucket_error:
            return self._error(*self.create_bucket_error)
        if not re.fullmatch(r"[A-Za-z0-9_.\- ]+", name):
            return self._error(400, "Invalid Input", "Bucket name invalid")
        with self.lock:
            if name in self.buckets:
                return self._error(409, "Duplicate", "The resource already exists")
            self.buckets[name] = Bucket(name, bool(body.get("public", False)))
        return self._json({"name": name})

    # ------------------------------------------------------------------ objects
    def _upload(self, request: Request, bucket_name: str, name: str, role: str, *, update: bool) -> Response:
        content_type = request.headers.get("Content-Type", "")
        cache_control = request.headers.get("Cache-Control") or "no-cache"
        if content_type.startswith("multipart/form-data"):
            upload = next(iter(request.files.values()), None)
            if upload is None:
                return self._error(400, "Error", "No file was uploaded")
            data = upload.read()
            content_type = upload.mimetype or "application/octet-stream"
            if request.form.get("cacheControl"):
                cache_control = f"max-age={request.form['cacheControl']}"
        else:
            data = request.get_data()
            content_type = content_type or "application/octet-stream"
        upsert = request.headers.get("x-upsert", "").lower() == "true"
        with self.lock:
            bucket = self.buckets.get(bucket_name)
            if bucket is None:
                return self._bucket_missing()
            if role != "service_role":
                return self._rls()
            existing = bucket.objects.get(name)
            if update and existing is None:
                return self._object_missing()
            if existing is not None and not (upsert or update):
                return self._error(409, "Duplicate", "The resource already exists")
            obj = StoredObject(data[:-1] if self.truncate_uploads and data else data, content_type, cache_control)
            if existing is not None:
                obj.id, obj.created_at = existing.id, existing.created_at
            bucket.objects[name] = obj
            self.uploads.append({"name": name, "content-type": content_type, "cache-control": cache_control,
                                 "x-upsert": request.headers.get("x-upsert", "")})
        return self._json({"Key": f"{bucket_name}/{name}", "Id": obj.id})

    def _download(self, bucket_name: str, name: str, role: str) -> Response:
        with self.lock:
            bucket = self.buckets.get(bucket_name)
            if bucket is None:
                return self._bucket_missing()
            obj = bucket.objects.get(name) if self._visible(bucket, role) else None
            if obj is None:
                return self._object_missing()
            return self._serve(obj)

    def _info(self, bucket_name: str, name: str, role: str) -> Response:
        with self.lock:
            bucket = self.buckets.get(bucket_name)
            if bucket is None:
                return self._bucket_missing()
            obj = bucket.objects.get(name) if self._visible(bucket, role) else None
            if obj is None:
                return self._object_missing()
            return self._json({"id": obj.id, "name": name, "version": obj.id, "size": len(obj.data),
                               "content_type": obj.content_type, "cache_control": obj.cache_control, "etag": obj.etag,
                               "last_modified": obj.updated_at, "created_at": obj.created_at, "metadata": obj.metadata()})

    def _delete(self, bucket_name: str, body: dict[str, Any], role: str) -> Response:
        prefixes = body.get("prefixes")
        if not isinstance(prefixes, list) or not prefixes:
            return self._error(400, "Error", "body/prefixes must NOT have fewer than 1 items")
        with self.lock:
            bucket = self.buckets.get(bucket_name)
            if bucket is None:
                return self._json([])
            if role != "service_role":
                return self._json([])  # RLS: nothing is visible to delete
            deleted = []
            for name in prefixes:
                obj = bucket.objects.pop(name, None)
                if obj is not None:
                    deleted.append({"name": name, "id": obj.id, "bucket_id": bucket_name, "metadata": obj.metadata()})
        return self._json(deleted)

    def _list(self, bucket_name: str, body: dict[str, Any], role: str) -> Response:
        folder = str(body.get("prefix") or "").strip("/")
        limit = int(body.get("limit") or 100)
        offset = int(body.get("offset") or 0)
        search = str(body.get("search") or "").lower()
        order = ((body.get("sortBy") or {}).get("order") or "asc").lower()
        with self.lock:
            bucket = self.buckets.get(bucket_name)
            if not self._visible(bucket, role):
                return self._json([])
            assert bucket is not None
            entries: dict[str, dict[str, Any]] = {}
            start = folder + "/" if folder else ""
            for name, obj in bucket.objects.items():
                if not name.startswith(start):
                    continue
                head, sep, _tail = name[len(start):].partition("/")
                if sep:
                    entries.setdefault(head + "/", {"name": head, "id": None, "updated_at": None, "created_at": None,
                                                    "last_accessed_at": None, "metadata": None})
                else:
                    entries[head] = {"name": head, "id": obj.id, "updated_at": obj.updated_at, "created_at": obj.created_at,
                                     "last_accessed_at": obj.updated_at, "metadata": obj.metadata()}
        items = sorted(entries.values(), key=lambda e: e["name"], reverse=order == "desc")
        if search:
            items = [e for e in items if e["name"].lower().startswith(search)]
        return self._json(items[offset:offset + limit])

    def _copy(self, request: Request, role: str) -> Response:
        body = request.get_json(force=True, silent=True) or {}
        missing = [k for k in ("bucketId", "sourceKey", "destinationKey") if not body.get(k)]
        if missing:
            return self._error(400, "Error", f"body must have required property '{missing[0]}'")
        upsert = request.headers.get("x-upsert", "").lower() == "true" and self.copy_upsert
        with self.lock:
            src_bucket = self.buckets.get(body["bucketId"])
            dst_bucket = self.buckets.get(body.get("destinationBucket") or body["bucketId"])
            if src_bucket is None or dst_bucket is None:
                return self._bucket_missing()
            if role != "service_role":
                return self._rls()
            src = src_bucket.objects.get(body["sourceKey"])
            if src is None:
                return self._object_missing()
            existing = dst_bucket.objects.get(body["destinationKey"])
            if existing is not None and not upsert:
                return self._error(409, "Duplicate", "The resource already exists")
            meta = body.get("metadata") or {}
            obj = StoredObject(src.data, meta.get("mimetype") or src.content_type, meta.get("cacheControl") or src.cache_control)
            dst_bucket.objects[body["destinationKey"]] = obj
        return self._json({"Id": obj.id, "Key": f"{dst_bucket.name}/{body['destinationKey']}", "name": body["destinationKey"]})

    # ------------------------------------------------------------------ URLs
    def _get_public(self, rest: str) -> Response:
        bucket_name, name = self._split(rest)
        with self.lock:
            bucket = self.buckets.get(bucket_name)
            if bucket is None or not bucket.public:
                return self._bucket_missing()
            obj = bucket.objects.get(name)
            return self._serve(obj) if obj is not None else self._object_missing()

    @staticmethod
    def _token(bucket: str, name: str, exp: int) -> str:
        payload = base64.urlsafe_b64encode(json.dumps({"url": f"{bucket}/{name}", "exp": exp}).encode()).decode().rstrip("=")
        sig = hmac.new(_SIGNING_SECRET, payload.encode(), hashlib.sha256).hexdigest()[:32]
        return f"{payload}.{sig}"

    def _sign(self, bucket_name: str, name: str, body: dict[str, Any], role: str) -> Response:
        try:
            expires = int(body.get("expiresIn"))
        except (TypeError, ValueError):
            return self._error(400, "Error", "body must have required property 'expiresIn'")
        if expires < 1:
            return self._error(400, "Error", "body/expiresIn must be >= 1")
        with self.lock:
            bucket = self.buckets.get(bucket_name)
            if bucket is None:
                return self._bucket_missing()
            if not self._visible(bucket, role) or name not in bucket.objects:
                return self._object_missing()
        token = self._token(bucket_name, name, int(time.time()) + expires)
        return self._json({"signedURL": f"/object/sign/{quote(bucket_name)}/{quote(name)}?token={token}"})

    def _get_signed(self, rest: str, token: str) -> Response:
        bucket_name, name = self._split(rest)
        payload, _, sig = token.partition(".")
        good = hmac.new(_SIGNING_SECRET, payload.encode(), hashlib.sha256).hexdigest()[:32]
        if not payload or not hmac.compare_digest(sig, good):
            return self._error(400, "InvalidSignature", "invalid signature")
        claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
        if claims.get("url") != f"{bucket_name}/{name}":
            return self._error(400, "InvalidSignature", "url mismatch")
        if claims["exp"] < time.time():
            return self._error(400, "InvalidJWT", "jwt expired")
        with self.lock:
            bucket = self.buckets.get(bucket_name)
            obj = bucket.objects.get(name) if bucket else None
            return self._serve(obj) if obj is not None else self._object_missing()
