"""Supabase Storage through its REST API (plain httpx, no SDK).

``LIMNER_STORAGE_URL=supabase://BUCKET/PREFIX`` with ``SUPABASE_URL`` and
``SUPABASE_SERVICE_ROLE_KEY`` in the environment or ``.env`` (never in limner.toml).
See docs/supabase.md.

The calls, as the official clients (storage-js, storage-py) make them, all under
``{SUPABASE_URL}/storage/v1`` with ``apikey: KEY`` and ``Authorization: Bearer KEY``:

* upload (upsert): ``POST /object/{bucket}/{path}``, raw body, ``x-upsert: true``,
  ``content-type``, ``cache-control: max-age=N``
* download: ``GET /object/{bucket}/{path}``; size / existence: ``HEAD`` on the same path
  (``GET /object/info/{bucket}/{path}`` as a fallback for the size)
* delete: ``DELETE /object/{bucket}`` with ``{"prefixes": [path, ...]}``
* list: ``POST /object/list/{bucket}`` with ``{"prefix", "limit", "offset", "sortBy"}``; one
  folder level per call, folders are entries with ``"id": null``
* copy: ``POST /object/copy`` with ``{"bucketId", "sourceKey", "destinationKey"}`` (``x-upsert``)
* buckets: ``GET /bucket/{id}``, ``POST /bucket`` with ``{"id", "name", "public"}``
* URLs: public ``/object/public/{bucket}/{path}``; signed ``POST /object/sign/{bucket}/{path}``
  with ``{"expiresIn": seconds}`` answering ``{"signedURL": "/object/sign/...?token=..."}``

Errors come as ``{"statusCode": "404", "error": "Bucket not found", "message": "Bucket not found"}``,
often with HTTP status 400 whatever the ``statusCode`` says, so both are read. Transient faults
(5xx, 408, 429, timeouts, dropped connections) are retried with exponential backoff and jitter
(tenacity). Messages name the bucket and the key of the object, never the service key.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from pathlib import PurePosixPath
from typing import TYPE_CHECKING, Any, NoReturn
from urllib.parse import parse_qs, quote, urlsplit

import httpx
from tenacity import Retrying, retry_if_exception_type, stop_after_attempt, wait_exponential, wait_random

from limner.urls import Redactor, allowed_http_hosts, is_loopback, shown_url
from limner.errors import EXIT_AUTH, ConfigError
from limner.storage.base import ObjectMissing, Storage, StorageError, content_type_for, refuse_unsendable_credentials

if TYPE_CHECKING:
    from limner.config.settings import Settings

log = logging.getLogger("limner.storage.supabase")

URL_ENV = "SUPABASE_URL"
KEY_ENV = "SUPABASE_SERVICE_ROLE_KEY"
PUBLIC_ENV = "SUPABASE_BUCKET_PUBLIC"
#: content-addressed objects never change: let browsers and the CDN keep them for a year
IMMUTABLE_CACHE_CONTROL = "max-age=31536000"
LIST_PAGE = 1000
#: what the Supabase dashboard writes to make an empty folder visible; never a Limner key
FOLDER_PLACEHOLDER = ".emptyFolderPlaceholder"
_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


class StorageAuthError(StorageError):
    """Supabase rejected the key (or the key may not do this): stop, like a provider's AuthFailed."""

    exit_code = EXIT_AUTH


#: the longest error message made from an answer of the service
MAX_ERROR_CHARS = 600

def _error(message: str, *, hint: str | None = None, retryable: bool = False, cls: type[StorageError] = StorageError) -> StorageError:
    err = cls(message, retryable=retryable)
    err.hint = hint
    return err


class _Transient(Exception):
    """A fault worth retrying; turned into a retryable StorageError when the attempts run out."""


class _Failure:
    """A parsed error answer: Supabase's ``statusCode`` (falling back to the HTTP status), ``error``, ``message``."""

    def __init__(self, response: httpx.Response) -> None:
        self.http_status = response.status_code
        body: Any = None
        if response.content:
            try:
                body = response.json()
            except ValueError:
                body = None
        code: Any = None
        self.error = self.message = ""
        if isinstance(body, dict):
            code = body.get("statusCode", body.get("status"))
            self.error = str(body.get("error") or body.get("code") or "")
            self.message = str(body.get("message") or body.get("msg") or body.get("hint") or "")
        elif response.content:
            self.message = response.text  # whole: every message is redacted, a cut first could keep part of the key
        try:
            self.status = int(code) if code is not None else self.http_status
        except (TypeError, ValueError):
            self.status = self.http_status
        self.text = " ".join(p for p in (self.error, self.message) if p).lower()

    @property
    def detail(self) -> str:
        if self.error and self.message and self.error.lower() != self.message.lower():
            return f"{self.error}: {self.message}"
        return self.message or self.error or f"HTTP {self.http_status}"

    @property
    def bucket_missing(self) -> bool:
        return "bucket not found" in self.text or self.error.lower() == "nosuchbucket"

    @property
    def object_missing(self) -> bool:
        return not self.bucket_missing and (self.status == 404 or self.error.lower() in ("not_found", "nosuchkey")
                                            or "object not found" in self.text)

    @property
    def denied_by_policy(self) -> bool:
        return "row-level security" in self.text or "row level security" in self.text or "permission denied" in self.text

    @property
    def key_rejected(self) -> bool:
        if self.denied_by_policy:
            return False
        markers = ("invalid signature", "invalid compact jws", "invalid jwt", "jwt expired", "jws", "invalid api key",
                   "no api key", "unauthorized", "invalid token")
        return self.status in (401, 403) or any(m in self.text for m in markers)

    @property
    def duplicate(self) -> bool:
        return self.status == 409 or "already exists" in self.text or self.error.lower() == "duplicate"


def _flag(value: str, what: str) -> bool:
    v = value.strip().lower()
    if v in _TRUE:
        return True
    if v in _FALSE:
        return False
    shown = repr(value) if len(value) <= 8 and value.strip().isalpha() else "another value (not shown)"
    raise ConfigError(f"{what}: expected true or false, got {shown}")


class SupabaseStorage(Storage):
    scheme = "supabase"
    #: the list API answers with each object's metadata, size included
    sizes_in_listing = True

    def __init__(self, base_url: str, key: str, bucket: str, prefix: str = "", *, public: bool = True,
                 public_base_url: str | None = None, cache_control: str = IMMUTABLE_CACHE_CONTROL,
                 timeout_s: float = 60.0, max_attempts: int = 5, backoff_initial_s: float = 0.25,
                 backoff_max_s: float = 8.0, verify_writes: bool = True,
                 transport: httpx.BaseTransport | None = None) -> None:
        base = base_url.strip().rstrip("/")
        if base.endswith("/storage/v1"):
            base = base[: -len("/storage/v1")]
        parts = urlsplit(base)
        host = (parts.hostname or "").lower()
        if not host or parts.scheme not in ("https", "http"):
            raise ConfigError(f"{URL_ENV} must be the project URL, such as https://<project-ref>.supabase.co")
        if parts.scheme == "http" and not is_loopback(host) and host not in allowed_http_hosts():
            raise ConfigError(f"{URL_ENV} uses plain http to {host}: the service key would travel unencrypted",
                              hint="use https, or list the host in LIMNER_ALLOW_HTTP_HOSTS (a local Supabase is allowed as is)")
        if not key:
            raise ConfigError(f"Supabase storage needs {KEY_ENV}")
        if not bucket or "/" in bucket:
            raise ConfigError(f"invalid Supabase bucket name {bucket!r}")
        self.base_url = base
        self.api = f"{base}/storage/v1"
        self.bucket = bucket
        self.prefix = prefix.strip("/")
        self.public = public
        self.public_base_url = public_base_url.rstrip("/") if public_base_url else None
        self.cache_control = cache_control
        self.max_attempts = max(1, max_attempts)
        self.backoff_initial_s = backoff_initial_s
        self.backoff_max_s = backoff_max_s
        self.verify_writes = verify_writes
        self._redact = Redactor([key])
        self._bucket_ready = False
        self._bucket_lock = threading.Lock()
        self._client = httpx.Client(
            headers={"apikey": key, "Authorization": f"Bearer {key}"},
            timeout=httpx.Timeout(timeout_s, connect=min(10.0, timeout_s)),
            follow_redirects=False,
            transport=transport,
        )

    # ------------------------------------------------------------------ construction
    @classmethod
    def from_settings(cls, settings: Settings) -> SupabaseStorage:
        url = settings.storage.url
        shown = shown_url(url)  # the URL in messages: never a user name, password or query value
        parts = urlsplit(url)
        bucket = parts.netloc
        if parts.scheme != "supabase" or not bucket:
            raise ConfigError(f"storage.url {shown!r}: expected supabase://BUCKET or supabase://BUCKET/PREFIX")
        if "@" in bucket or ":" in bucket:  # user:password@ (a password with a / in it leaves only user:pass...)
            raise ConfigError(f"storage.url {shown!r} holds a user name or password (not shown): a supabase:// URL "
                              "names a bucket, supabase://BUCKET/PREFIX",
                              hint=f"the service key goes in {KEY_ENV} and the project URL in {URL_ENV} (environment "
                                   "or .env), never in the storage URL")
        query = parse_qs(parts.query, keep_blank_values=True)
        unknown = sorted(set(query) - {"public"})
        if unknown:
            raise ConfigError(f"storage.url {shown!r}: unknown option(s) {', '.join(unknown)}; the only one is ?public=true|false")
        if "public" in query:
            public = _flag(query["public"][-1], f"storage.url {shown!r} ?public=")
        else:
            env_public = settings.secret(PUBLIC_ENV)
            public = _flag(env_public, PUBLIC_ENV) if env_public else True
        base_url, key = settings.secret(URL_ENV), settings.secret(KEY_ENV)
        missing = [name for name, value in ((URL_ENV, base_url), (KEY_ENV, key)) if not value]
        if missing:
            raise ConfigError(f"storage {shown!r} needs {' and '.join(missing)} in the environment or in .env",
                              hint="find them in the Supabase dashboard under Project Settings > API; secrets never go in limner.toml")
        refuse_unsendable_credentials(f"storage {shown!r}", {URL_ENV: base_url, KEY_ENV: key})
        return cls(base_url or "", key or "", bucket, parts.path, public=public,
                   public_base_url=settings.storage.public_base_url)

    def close(self) -> None:
        """Close the HTTP client (its connection pool)."""
        self._client.close()

    def __repr__(self) -> str:
        prefix = f" prefix={self.prefix!r}" if self.prefix else ""
        return f"<SupabaseStorage {shown_url(self.base_url)} bucket={self.bucket!r}{prefix}>"

    @property
    def location(self) -> str:
        """``supabase://BUCKET/PREFIX``, as in ``storage.url``."""
        return f"supabase://{self.bucket}/{self.prefix}" if self.prefix else f"supabase://{self.bucket}"

    def overlaps(self, other: Storage) -> bool:
        """The same bucket of the same project, with one prefix inside the other (or equal)."""
        if not isinstance(other, SupabaseStorage) or (self.base_url, self.bucket) != (other.base_url, other.bucket):
            return False
        a, b = f"{self.prefix}/" if self.prefix else "", f"{other.prefix}/" if other.prefix else ""
        return a.startswith(b) or b.startswith(a)

    # ------------------------------------------------------------------ keys
    def _name(self, key: str) -> str:
        """The object's name in the bucket (the storage prefix plus the key), checked."""
        pure = PurePosixPath(key)
        if not key or pure.is_absolute() or ".." in pure.parts or not pure.parts:
            raise StorageError(f"invalid storage key {key!r}")
        rel = pure.as_posix()
        return f"{self.prefix}/{rel}" if self.prefix else rel

    def _object_path(self, key: str) -> str:
        return f"{quote(self.bucket, safe='')}/{quote(self._name(key), safe='/')}"

    @property
    def _where(self) -> str:
        return f"Supabase bucket {self.bucket!r}"

    # ------------------------------------------------------------------ HTTP
    def _said(self, text: str) -> str:
        """An error message built from the service's answer: redacted, then cut (an HTML error page can be long)."""
        return self._redact.clip(text, MAX_ERROR_CHARS)

    def _request(self, method: str, path: str, *, op: str, **kwargs: Any) -> httpx.Response:
        """Send a request, retrying transient faults; any answer that is not transient is returned."""
        url = f"{self.api}/{path}"
        retrying = Retrying(
            stop=stop_after_attempt(self.max_attempts),
            # backoff_initial_s, doubling up to backoff_max_s, plus up to backoff_initial_s of jitter
            wait=wait_exponential(multiplier=self.backoff_initial_s, max=self.backoff_max_s)
            + wait_random(0, self.backoff_initial_s),
            retry=retry_if_exception_type(_Transient),
            reraise=True,
        )
        try:
            for attempt in retrying:
                with attempt:
                    try:
                        response = self._client.request(method, url, **kwargs)
                    except httpx.TimeoutException:
                        raise _Transient("timed out") from None
                    except httpx.TransportError as exc:
                        raise _Transient(f"network error ({type(exc).__name__})") from None
                    if response.status_code >= 500 or response.status_code in (408, 425, 429):
                        raise _Transient(f"HTTP {response.status_code}: {_Failure(response).detail}")
                    return response
        except _Transient as exc:
            raise StorageError(self._said(f"{self._where}: {op} failed after {self.max_attempts} attempts: {exc}"),
                               retryable=True) from None
        raise AssertionError("unreachable")  # pragma: no cover

    def _fail(self, response: httpx.Response, op: str, key: str | None = None) -> NoReturn:
        f = _Failure(response)
        what = f"{op} {key!r} in {self._where}" if key is not None else f"{op} in {self._where}"
        if f.bucket_missing:
            raise _error(f"{what}: the bucket does not exist",
                         hint="Limner creates it on the first write; check the bucket name in storage.url")
        if f.denied_by_policy:
            raise _error(self._said(f"{what}: permission denied by a row-level security policy ({f.detail})"),
                         hint=f"use the service_role key in {KEY_ENV}, not the anon key, or add a storage policy",
                         cls=StorageAuthError)
        if f.key_rejected:
            raise _error(self._said(f"{what}: Supabase rejected the key ({f.detail})"),
                         hint=f"check {KEY_ENV} (the service_role key under Project Settings > API) "
                              f"and that {URL_ENV} names the same project", cls=StorageAuthError)
        if f.object_missing and key is not None:
            raise ObjectMissing(f"object {key!r} not found in {self._where}")
        if f.status == 413:
            raise StorageError(self._said(f"{what}: too large for the bucket's size limit ({f.detail})"))
        if f.status == 415:
            raise StorageError(self._said(f"{what}: the bucket does not allow this content type ({f.detail})"))
        raise StorageError(self._said(f"{what}: HTTP {f.http_status}: {f.detail}"))

    # ------------------------------------------------------------------ bucket
    def check(self) -> None:
        self.ensure_bucket()

    def ensure_bucket(self) -> None:
        """Create the bucket (public or not, as configured) unless it exists. Runs once per instance."""
        if self._bucket_ready:
            return
        with self._bucket_lock:
            if self._bucket_ready:
                return
            bucket = quote(self.bucket, safe="")
            response = self._request("GET", f"bucket/{bucket}", op="read bucket")
            if response.status_code == 200:
                try:
                    is_public = bool(response.json().get("public"))
                except (ValueError, AttributeError):
                    is_public = self.public
                if is_public != self.public:
                    log.warning("%s is %s but Limner is configured for a %s bucket: %s", self._where,
                                "public" if is_public else "private", "public" if self.public else "private",
                                "manifest URLs will not load without signed URLs" if not is_public
                                else "its objects are readable by anyone with the URL")
            elif _Failure(response).bucket_missing:
                self._create_bucket()
            else:
                self._fail(response, "read bucket")
            self._bucket_ready = True

    def _create_bucket(self) -> None:
        body = {"id": self.bucket, "name": self.bucket, "public": self.public}
        response = self._request("POST", "bucket", op="create bucket", json=body)
        if response.status_code == 200:
            log.info("created %s %s bucket %r", "public" if self.public else "private", "Supabase", self.bucket)
            return
        f = _Failure(response)
        if f.duplicate:  # created meanwhile (or by the attempt a dropped connection hid)
            return
        if f.denied_by_policy or f.key_rejected:
            self._fail(response, "create bucket")
        raise _error(self._said(f"{self._where} does not exist and creating it failed: HTTP {f.http_status}: {f.detail}"),
                     hint="create the bucket in the Supabase dashboard (Storage > New bucket), or check the name")

    # ------------------------------------------------------------------ contract
    def put(self, key: str, data: bytes, *, content_type: str, cache_control: str | None = None) -> None:
        path = self._object_path(key)
        self.ensure_bucket()
        headers = {"content-type": content_type, "x-upsert": "true", "cache-control": cache_control or self.cache_control}
        for attempt in (1, 2):
            response = self._request("POST", f"object/{path}", op=f"upload {key!r}", content=data, headers=headers)
            if response.status_code == 200:
                break
            if attempt == 1 and _Failure(response).bucket_missing:  # deleted since ensure_bucket
                self._bucket_ready = False
                self.ensure_bucket()
                continue
            self._fail(response, "upload", key)
        if self.verify_writes:
            size = self.size(key)
            if size != len(data):
                raise StorageError(f"wrote {key!r} to {self._where} but it reads back as "
                                   f"{'missing' if size is None else f'{size} bytes'}, not {len(data)} bytes", retryable=True)

    def get(self, key: str) -> bytes:
        response = self._request("GET", f"object/{self._object_path(key)}", op=f"download {key!r}")
        if response.status_code == 200:
            return response.content
        f = _Failure(response)
        if f.bucket_missing:
            raise ObjectMissing(f"object {key!r} not found: {self._where} does not exist")
        self._fail(response, "download", key)

    def exists(self, key: str) -> bool:
        return self.size(key) is not None

    def size(self, key: str) -> int | None:
        path = self._object_path(key)
        response = self._request("HEAD", f"object/{path}", op=f"stat {key!r}")
        if response.status_code == 200:
            length = response.headers.get("content-length")
            if length is not None and length.isdigit():
                return int(length)
            return self._info_size(key, path)
        if response.status_code in (400, 404):  # HEAD answers carry no body: 400 is how Supabase says "not found"
            return None
        if response.status_code in (401, 403):
            raise StorageAuthError(f"stat {key!r} in {self._where}: Supabase refused the request (HTTP {response.status_code}); "
                                   f"check {KEY_ENV}")
        self._fail(response, "stat", key)

    def _info_size(self, key: str, path: str) -> int | None:
        response = self._request("GET", f"object/info/{path}", op=f"stat {key!r}")
        if response.status_code != 200:
            f = _Failure(response)
            if f.object_missing or f.bucket_missing:
                return None
            self._fail(response, "stat", key)
        info = response.json()
        size = info.get("size")
        if size is None and isinstance(info.get("metadata"), dict):
            size = info["metadata"].get("size", info["metadata"].get("contentLength"))
        return int(size) if size is not None else None

    def delete(self, key: str) -> None:
        name = self._name(key)
        response = self._request("DELETE", f"object/{quote(self.bucket, safe='')}", op=f"delete {key!r}",
                                 json={"prefixes": [name]})
        if response.status_code == 200:
            return
        f = _Failure(response)
        if f.bucket_missing or f.object_missing:
            return
        self._fail(response, "delete", key)

    def list(self, prefix: str = "") -> Iterator[str]:
        for key, _item in self._walk(prefix.rpartition("/")[0], prefix):
            yield key

    def list_sizes(self, prefix: str = "") -> Iterator[tuple[str, int]]:
        """Sizes from the listing's metadata; a ``stat`` only for an entry that lacks one."""
        for key, item in self._walk(prefix.rpartition("/")[0], prefix):
            meta = item.get("metadata")
            size = meta.get("size", meta.get("contentLength")) if isinstance(meta, dict) else None
            if size is None:
                size = self.size(key)
                if size is None:  # deleted since the listing
                    continue
            yield key, int(size)

    def _walk(self, folder: str, prefix: str) -> Iterator[tuple[str, dict[str, Any]]]:
        full = "/".join(p for p in (self.prefix, folder) if p)
        offset = 0
        while True:
            body = {"prefix": full, "limit": LIST_PAGE, "offset": offset, "sortBy": {"column": "name", "order": "asc"}}
            response = self._request("POST", f"object/list/{quote(self.bucket, safe='')}", op="list", json=body)
            if response.status_code != 200:
                if _Failure(response).bucket_missing:
                    return
                self._fail(response, f"list {prefix!r}")
            items = response.json()
            for item in items:
                name = item.get("name") or ""
                if not name or name == FOLDER_PLACEHOLDER:
                    continue
                rel = f"{folder}/{name}" if folder else name
                if item.get("id") is None:  # a folder
                    if (rel + "/").startswith(prefix) or prefix.startswith(rel + "/"):
                        yield from self._walk(rel, prefix)
                elif rel.startswith(prefix):
                    yield rel, item
            if len(items) < LIST_PAGE:
                return
            offset += LIST_PAGE

    def url(self, key: str) -> str:
        name = self._name(key)
        if self.public_base_url:
            return f"{self.public_base_url}/{PurePosixPath(key).as_posix()}"
        return f"{self.api}/object/public/{quote(self.bucket, safe='')}/{quote(name, safe='/')}"

    # ------------------------------------------------------------------ extras
    def signed_url(self, key: str, expires_in: int = 3600) -> str:
        """A time-limited URL for an object of a private bucket (``createSignedUrl``)."""
        if expires_in < 1:
            raise StorageError("a signed URL must live at least one second")
        response = self._request("POST", f"object/sign/{self._object_path(key)}", op=f"sign {key!r}",
                                 json={"expiresIn": int(expires_in)})
        if response.status_code != 200:
            self._fail(response, "sign", key)
        signed = response.json().get("signedURL") or response.json().get("signedUrl")
        if not signed:
            raise StorageError(f"sign {key!r} in {self._where}: the answer has no signedURL")
        if signed.startswith(("http://", "https://")):
            return signed
        return f"{self.api}/{signed.lstrip('/')}"

    def copy(self, src_key: str, dst_key: str, *, cache_control: str | None = None) -> None:
        """Server-side copy that replaces ``dst_key`` in one step (readers see the old or the new object).

        ``cache_control`` sets the copy's Cache-Control (the source's is kept otherwise). Servers too
        old to overwrite on copy answer 409; the copy is then a download and an upload."""
        body: dict[str, Any] = {"bucketId": self.bucket, "sourceKey": self._name(src_key), "destinationKey": self._name(dst_key)}
        if cache_control:
            body["metadata"] = {"cacheControl": cache_control}
        self.ensure_bucket()
        response = self._request("POST", "object/copy", op=f"copy {src_key!r} to {dst_key!r}", json=body,
                                 headers={"x-upsert": "true"})
        if response.status_code == 200:
            return
        f = _Failure(response)
        if f.duplicate:
            self.put(dst_key, self.get(src_key), content_type=content_type_for(src_key), cache_control=cache_control)
            return
        self._fail(response, "copy", src_key)
