"""S3-compatible object storage: AWS S3, Cloudflare R2, MinIO, Supabase's S3 endpoint.

``[storage] url = "s3://bucket/prefix"``; keys live under the prefix. Credentials come from
boto3's default chain (``AWS_ACCESS_KEY_ID`` / ``AWS_SECRET_ACCESS_KEY`` / ``AWS_SESSION_TOKEN``,
``AWS_PROFILE``, instance roles ...) and, failing the environment, from the project's ``.env``;
never from ``limner.toml``.

Every write is verified before ``put`` returns: the object's size, the sha256 stored in its
metadata (``x-amz-meta-sha256``) and, where the service's ETag is an MD5, the ETag. So a
database row is never committed for an object that was not fully written. Transient faults
(5xx, throttling, timeouts, dropped connections) are retried by botocore's ``standard`` retry
mode with exponential backoff and jitter.
"""

from __future__ import annotations

import base64
import hashlib
import io
import logging
import os
import threading
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, urlsplit, urlunsplit

import boto3
from boto3.exceptions import Boto3Error
from boto3.s3.transfer import TransferConfig
from botocore.config import Config
from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    ConnectionError as BotoConnectionError,
    HTTPClientError,
    NoCredentialsError,
    PartialCredentialsError,
)

from limner.errors import ConfigError
from limner.keys import CONTENT_PREFIXES
from limner.storage.base import ObjectInfo, ObjectMissing, Storage, StorageError, refuse_unsendable_credentials
from limner.urls import Redactor, is_loopback, shown_url

if TYPE_CHECKING:
    from limner.config.settings import Settings

log = logging.getLogger("limner.storage")

#: content-addressed prefixes: their objects never change, so caches may keep them forever
IMMUTABLE_PREFIXES = CONTENT_PREFIXES
IMMUTABLE_CACHE_CONTROL = "public, max-age=31536000, immutable"
#: user metadata holding the object's sha256 (sent as ``x-amz-meta-sha256``)
SHA256_METADATA = "sha256"

#: the object ``check()`` writes and removes, at the prefix's root (never listed)
WRITE_CHECK_KEY = ".limner-write-check"

MiB = 1024 * 1024
DEFAULT_MULTIPART_THRESHOLD = 8 * MiB
DEFAULT_MULTIPART_CHUNKSIZE = 8 * MiB
DEFAULT_MAX_ATTEMPTS = 10
#: the longest a SigV4 presigned URL may live (7 days)
MAX_SIGNED_URL_S = 7 * 24 * 3600

_CREDENTIAL_CODES = {"InvalidAccessKeyId", "SignatureDoesNotMatch", "InvalidToken", "ExpiredToken", "TokenRefreshRequired",
                     "InvalidSecurity", "InvalidClientTokenId", "AuthorizationHeaderMalformed"}
_NOT_FOUND_CODES = {"NoSuchKey", "404", "NotFound"}
_TRANSIENT_CODES = {"InternalError", "ServiceUnavailable", "SlowDown", "RequestTimeout", "RequestTimeTooSkewed",
                    "Throttling", "ThrottlingException", "RequestLimitExceeded", "BadDigest", "IncompleteBody"}
_KMS = ("aws:kms", "aws:kms:dsse")
#: the variables whose values go into a request (the secret key only signs it, but a pasted line break in it
#: is as wrong) and must never be shown
_CREDENTIAL_ENV = ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN")
#: how a partial write (an unfinished multipart upload) is named: ``KEY#upload=UPLOAD_ID``
UPLOAD_MARK = "#upload="
_CREDENTIAL_HINT = ("S3 credentials come from the environment or .env: AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY "
                    "(or AWS_PROFILE); they never go in limner.toml")


def _error(message: str, *, retryable: bool = False, hint: str | None = None,
           cls: type[StorageError] = StorageError) -> StorageError:
    exc = cls(message, retryable=retryable)
    exc.hint = hint
    return exc


def _strip_userinfo(url: str) -> str:
    parts = urlsplit(url)
    if parts.username is None and parts.password is None:
        return url
    host = parts.hostname or ""
    if parts.port:
        host += f":{parts.port}"
    return urlunsplit((parts.scheme, host, parts.path, parts.query, parts.fragment))


def _md5(data: bytes) -> Any:
    return hashlib.md5(data, usedforsecurity=False)


_loader_lock = threading.Lock()
_loader: Any = None


def new_session(**kwargs: Any) -> Any:
    """A boto3 session sharing one botocore data loader: each storage then costs milliseconds, not 100 ms
    of model parsing. Credentials are still resolved per session (the environment may have changed)."""
    global _loader
    import botocore.loaders
    import botocore.session

    with _loader_lock:
        if _loader is None:
            _loader = botocore.loaders.create_loader()
        core = botocore.session.get_session()
        core.register_component("data_loader", _loader)
    return boto3.session.Session(botocore_session=core, **kwargs)


def check_endpoint(endpoint_url: str) -> None:
    """https, or plain http to loopback or to a host listed in LIMNER_ALLOW_HTTP_HOSTS (a MinIO on a private network)."""
    parts = urlsplit(endpoint_url)
    host = (parts.hostname or "").lower()
    if parts.scheme not in ("http", "https") or not host:
        raise ConfigError(f"[storage] endpoint_url must be an http(s) URL, not {_strip_userinfo(endpoint_url)!r}")
    allowed = {h.strip().lower() for h in os.environ.get("LIMNER_ALLOW_HTTP_HOSTS", "").split(",") if h.strip()}
    if parts.scheme == "http" and not is_loopback(host) and host not in allowed:
        raise ConfigError(f"the S3 endpoint {_strip_userinfo(endpoint_url)} uses plain http: requests, images and any session "
                          "token would travel unencrypted",
                          hint=f"use https, or list {host} in LIMNER_ALLOW_HTTP_HOSTS (loopback is allowed as is)")


def parse_s3_url(url: str) -> tuple[str, str]:
    """``s3://bucket/some/prefix`` -> ``("bucket", "some/prefix")``."""
    parts = urlsplit(url)
    if parts.scheme != "s3":
        raise ConfigError(f"not an s3:// URL: {shown_url(url)!r}")
    if parts.username is not None or parts.password is not None:
        raise ConfigError("the storage URL must not contain credentials: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY "
                          "in the environment or .env")
    bucket = parts.netloc
    if not bucket:
        raise ConfigError(f"storage URL {shown_url(url)!r} names no bucket; use s3://BUCKET or s3://BUCKET/PREFIX")
    if parts.query or parts.fragment:
        raise ConfigError(f"storage URL {shown_url(url)!r}: query strings are not supported; use [storage] endpoint_url and "
                          "region")
    return bucket, parts.path.strip("/")


class S3Storage(Storage):
    """Objects in an S3 bucket, under an optional key prefix."""

    scheme = "s3"
    #: ``put`` checks the stored object (size, sha256, MD5) before it returns
    verifies_writes = True
    #: ``ListObjectsV2`` answers with every object's size
    sizes_in_listing = True

    def __init__(
        self,
        bucket: str,
        prefix: str = "",
        *,
        endpoint_url: str | None = None,
        region: str | None = None,
        public_base_url: str | None = None,
        max_attempts: int = DEFAULT_MAX_ATTEMPTS,
        connect_timeout: float = 10.0,
        read_timeout: float = 60.0,
        multipart_threshold: int = DEFAULT_MULTIPART_THRESHOLD,
        multipart_chunksize: int = DEFAULT_MULTIPART_CHUNKSIZE,
        max_pool_connections: int = 32,
        session: Any = None,
    ) -> None:
        if not bucket or "/" in bucket:
            raise ConfigError(f"invalid S3 bucket name {bucket!r}")
        prefix = prefix.strip("/")
        if prefix and any(part in ("", ".", "..") for part in prefix.split("/")):
            raise ConfigError(f"invalid S3 key prefix {prefix!r}")
        self.bucket = bucket
        self.prefix = prefix
        # boto3 itself honours these variables; knowing the endpoint also decides addressing and URLs
        endpoint_url = endpoint_url or os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL") or None
        self.endpoint_url = endpoint_url.rstrip("/") if endpoint_url else None
        if self.endpoint_url:
            check_endpoint(self.endpoint_url)
        self.public_base_url = public_base_url.rstrip("/") if public_base_url else None
        self.max_attempts = max_attempts
        custom = self.endpoint_url is not None
        config_kwargs: dict[str, Any] = dict(
            retries={"mode": "standard", "total_max_attempts": max_attempts},
            connect_timeout=connect_timeout,
            read_timeout=read_timeout,
            max_pool_connections=max_pool_connections,
            signature_version="s3v4",
            # custom endpoints (MinIO, R2, Supabase) get path-style URLs: bucket names need no DNS
            s3={"addressing_style": "path" if custom else "auto"},
            user_agent_extra="limner",
        )
        if custom:
            # several S3-compatible services reject the newer default checksum headers; single-part
            # writes send Content-MD5 instead, which every one of them checks
            config_kwargs.update(request_checksum_calculation="when_required", response_checksum_validation="when_required")
        session = session or new_session()
        self._client = session.client("s3", endpoint_url=self.endpoint_url, region_name=region or None,
                                      config=Config(**config_kwargs))
        self.region = region or self._client.meta.region_name
        self._transfer = TransferConfig(multipart_threshold=multipart_threshold, multipart_chunksize=multipart_chunksize,
                                        max_concurrency=4, use_threads=True)
        self._bucket_checked = False
        #: removes the credentials (as they are, escaped, or in pieces) from the messages S3 sends back
        self._redact = Redactor(os.environ.get(name) for name in _CREDENTIAL_ENV)

    @classmethod
    def from_settings(cls, settings: Settings) -> S3Storage:
        s = settings.storage
        bucket, prefix = parse_s3_url(s.url)
        credentials = {name: settings.secret(name) for name in _CREDENTIAL_ENV}
        refuse_unsendable_credentials(f"storage {shown_url(s.url)!r}", credentials)
        session_kwargs: dict[str, str] = {}
        env_has_credentials = any(os.environ.get(n) for n in ("AWS_ACCESS_KEY_ID", "AWS_PROFILE", "AWS_WEB_IDENTITY_TOKEN_FILE",
                                                               "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI"))
        if not env_has_credentials:  # the project's .env, like every other Limner secret
            key_id = settings.secret("AWS_ACCESS_KEY_ID")
            secret = settings.secret("AWS_SECRET_ACCESS_KEY")
            if key_id and secret:
                session_kwargs = {"aws_access_key_id": key_id, "aws_secret_access_key": secret}
                token = settings.secret("AWS_SESSION_TOKEN")
                if token:
                    session_kwargs["aws_session_token"] = token
            elif settings.secret("AWS_PROFILE"):
                session_kwargs = {"profile_name": settings.secret("AWS_PROFILE") or ""}
        region = s.region or (None if os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION")
                              else settings.secret("AWS_REGION") or settings.secret("AWS_DEFAULT_REGION"))
        endpoint = s.endpoint_url or (None if os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL")
                                      else settings.secret("AWS_ENDPOINT_URL_S3") or settings.secret("AWS_ENDPOINT_URL"))
        try:
            session = new_session(**session_kwargs)
        except BotoCoreError as exc:  # e.g. an unknown profile
            raise ConfigError(f"cannot set up S3 credentials: {exc}", hint=_CREDENTIAL_HINT) from None
        try:  # boto3's own variable; the default suits flaky networks
            attempts = max(1, int(os.environ.get("AWS_MAX_ATTEMPTS") or DEFAULT_MAX_ATTEMPTS))
        except ValueError:
            raise ConfigError(f"AWS_MAX_ATTEMPTS must be a whole number, not {os.environ['AWS_MAX_ATTEMPTS']!r}") from None
        storage = cls(bucket, prefix, endpoint_url=endpoint, region=region, public_base_url=s.public_base_url,
                      session=session, max_attempts=attempts)
        storage._redact = Redactor([*storage._redact.secrets, *credentials.values()])
        return storage

    # ------------------------------------------------------------------ keys and names
    @property
    def location(self) -> str:
        return f"s3://{self.bucket}/{self.prefix}" if self.prefix else f"s3://{self.bucket}"

    def _key(self, key: str) -> str:
        if not isinstance(key, str) or not key or key.startswith("/") or any(p in ("", ".", "..") for p in key.split("/")):
            raise StorageError(f"invalid storage key {key!r}")
        return f"{self.prefix}/{key}" if self.prefix else key

    def _unprefix(self, full: str) -> str:
        return full[len(self.prefix) + 1:] if self.prefix else full

    def __repr__(self) -> str:
        endpoint = f" endpoint={_strip_userinfo(self.endpoint_url)!r}" if self.endpoint_url else ""
        return f"<S3Storage {self.location}{endpoint}>"

    # ------------------------------------------------------------------ errors
    def _fail(self, exc: Exception, action: str, key: str | None = None) -> StorageError:
        """A clear StorageError for a botocore exception; never includes credentials."""
        what = f"{action} {key!r} in {self.location}" if key is not None else f"{action} {self.location}"
        at = f" at {_strip_userinfo(self.endpoint_url)}" if self.endpoint_url else ""
        if isinstance(exc, ClientError):
            error = exc.response.get("Error", {})
            code = str(error.get("Code", ""))
            status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
            if code == "NoSuchBucket":
                return _error(f"S3 bucket {self.bucket!r} does not exist{at} (while trying to {what})",
                              hint="create the bucket, or fix [storage] url (s3://BUCKET/PREFIX), endpoint_url and region")
            if code in _CREDENTIAL_CODES:
                return _error(f"S3{at} rejected the credentials ({code}) for bucket {self.bucket!r} (while trying to {what})",
                              hint=_CREDENTIAL_HINT)
            if code == "AccessDenied" or status == 403:
                return _error(f"S3{at} denied access ({code or 'HTTP 403'}) to bucket {self.bucket!r}: cannot {what}",
                              hint="check that the credentials are right and allow s3:GetObject, s3:PutObject, s3:DeleteObject "
                                   f"and s3:ListBucket on {self.bucket!r}")
            if code in _NOT_FOUND_CODES or status == 404:
                if key is None:
                    return _error(f"{what}: not found")
                return _error(f"object {key!r} not found in {self.location}", cls=ObjectMissing)
            transient = code in _TRANSIENT_CODES or (isinstance(status, int) and status >= 500)
            detail = self._redact.clip(str(error.get("Message") or ""), 300)
            suffix = f" after {self.max_attempts} attempts" if transient else ""
            return _error(f"S3 could not {what}{suffix}: {code or 'error'} (HTTP {status}){': ' + detail if detail else ''}",
                          retryable=transient)
        if isinstance(exc, (NoCredentialsError, PartialCredentialsError)):
            return _error(f"no S3 credentials found for bucket {self.bucket!r}", hint=_CREDENTIAL_HINT)
        if isinstance(exc, (BotoConnectionError, HTTPClientError)):
            return _error(f"cannot reach S3{at or ' (' + self.location + ')'} to {what} after {self.max_attempts} attempts: "
                          f"{type(exc).__name__}", retryable=True)
        return _error(f"S3 could not {what}: {type(exc).__name__}: {self._redact.clip(str(exc), 300)}", retryable=True)

    @staticmethod
    def _is_transient(exc: Exception) -> bool:
        if isinstance(exc, ClientError):
            status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
            return exc.response.get("Error", {}).get("Code") in _TRANSIENT_CODES or (isinstance(status, int) and status >= 500)
        return isinstance(exc, (BotoConnectionError, HTTPClientError))

    # ------------------------------------------------------------------ metadata
    def _check_bucket(self) -> None:
        """A 404 from HEAD cannot tell a missing object from a missing bucket: ask once."""
        if self._bucket_checked:
            return
        try:
            self._client.head_bucket(Bucket=self.bucket)
        except ClientError as exc:
            status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
            code = str(exc.response.get("Error", {}).get("Code", ""))
            if status == 404 or code in ("NoSuchBucket", "404", "NotFound"):
                raise self._fail(ClientError({"Error": {"Code": "NoSuchBucket"}, "ResponseMetadata": {"HTTPStatusCode": 404}},
                                             "HeadBucket"), "reach") from None
            return  # 403 on HeadBucket alone is fine (e.g. no s3:ListBucket): the object calls will say more
        except BotoCoreError as exc:
            raise self._fail(exc, "reach") from None
        self._bucket_checked = True

    def head(self, key: str) -> dict[str, Any] | None:
        """HEAD an object: its metadata, or None when it is missing."""
        full = self._key(key)
        try:
            response = self._client.head_object(Bucket=self.bucket, Key=full)
        except ClientError as exc:
            status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
            code = str(exc.response.get("Error", {}).get("Code", ""))
            if status == 404 or code in _NOT_FOUND_CODES:
                self._check_bucket()
                return None
            raise self._fail(exc, "read metadata of", key) from None
        except BotoCoreError as exc:
            raise self._fail(exc, "read metadata of", key) from None
        self._bucket_checked = True
        return response

    def stored_sha256(self, key: str) -> str | None:
        """The sha256 recorded in the object's metadata when Limner wrote it (None if missing or unknown)."""
        head = self.head(key)
        return (head.get("Metadata") or {}).get(SHA256_METADATA) if head else None

    def object_info(self, key: str) -> ObjectInfo | None:
        """Size and the sha256 from the metadata (None for objects other tools wrote), or None when the
        object is missing: one HEAD."""
        head = self.head(key)
        if head is None:
            return None
        return ObjectInfo(int(head["ContentLength"]), (head.get("Metadata") or {}).get(SHA256_METADATA))

    def _expected_etags(self, data: bytes) -> tuple[str, str | None]:
        """The single-part ETag (an MD5) and the multipart one for the way ``put`` would split ``data``."""
        from s3transfer.utils import ChunksizeAdjuster

        single = _md5(data).hexdigest()
        if len(data) < self._transfer.multipart_threshold:
            return single, None
        chunk = ChunksizeAdjuster().adjust_chunksize(self._transfer.multipart_chunksize, len(data))
        digests = b"".join(_md5(data[i:i + chunk]).digest() for i in range(0, len(data), chunk))
        return single, f"{_md5(digests).hexdigest()}-{-(-len(data) // chunk)}"

    def _mismatch(self, head: dict[str, Any] | None, data: bytes, sha: str) -> str | None:
        """Why the stored object is not ``data``, or None when every check we can make agrees."""
        if head is None:
            return "the object is missing"
        if head.get("ContentLength") != len(data):
            return f"it holds {head.get('ContentLength')} bytes, not {len(data)}"
        stored = (head.get("Metadata") or {}).get(SHA256_METADATA)
        if stored is not None and stored != sha:
            return "its sha256 metadata differs"
        etag = str(head.get("ETag") or "").strip('"').lower()
        if head.get("ServerSideEncryption") in _KMS or head.get("SSECustomerAlgorithm"):
            return None  # such ETags are not MD5s
        single, multi = self._expected_etags(data)
        if len(etag) == 32 and "-" not in etag:
            return None if etag == single else "its ETag (MD5) differs"
        if multi and "-" in etag and etag.rsplit("-", 1)[1] == multi.rsplit("-", 1)[1]:
            return None if etag == multi else "its multipart ETag differs"
        return None  # an ETag this service computes its own way: size and metadata must do

    # ------------------------------------------------------------------ contract
    def check(self) -> None:
        """Fail fast, before any paid work, when the bucket is missing or the credentials cannot list, write
        and delete under the prefix: one listing, then a tiny object written and removed."""
        try:
            self._client.list_objects_v2(Bucket=self.bucket, Prefix=f"{self.prefix}/" if self.prefix else "", MaxKeys=1)
        except (ClientError, BotoCoreError) as exc:
            raise self._fail(exc, "list") from None
        self._bucket_checked = True
        probe = self._key(WRITE_CHECK_KEY)
        try:
            self._client.put_object(Bucket=self.bucket, Key=probe, Body=b"limner", ContentType="text/plain")
        except (ClientError, BotoCoreError) as exc:
            raise self._fail(exc, "write", WRITE_CHECK_KEY) from None
        try:
            self._client.delete_object(Bucket=self.bucket, Key=probe)
        except (ClientError, BotoCoreError) as exc:  # writing is what generate needs; gc will say more
            log.warning("could not delete %s from %s: %s", WRITE_CHECK_KEY, self.location, type(exc).__name__)

    def put(self, key: str, data: bytes, *, content_type: str) -> None:
        full = self._key(key)
        data = bytes(data)
        sha = hashlib.sha256(data).hexdigest()
        extra: dict[str, Any] = {"ContentType": content_type, "Metadata": {SHA256_METADATA: sha}}
        if key.startswith(IMMUTABLE_PREFIXES):
            extra["CacheControl"] = IMMUTABLE_CACHE_CONTROL
        try:
            if len(data) < self._transfer.multipart_threshold:
                md5 = base64.b64encode(_md5(data).digest()).decode("ascii")
                self._client.put_object(Bucket=self.bucket, Key=full, Body=data, ContentMD5=md5, **extra)
            else:
                self._client.upload_fileobj(io.BytesIO(data), self.bucket, full, ExtraArgs=extra, Config=self._transfer)
        except (ClientError, BotoCoreError, Boto3Error, OSError) as exc:
            # the write may have landed even though its answer was lost (a dropped connection, a retried
            # multipart completion): the object itself says whether it did
            if not self._is_transient(exc) or self._mismatch(self._head_quietly(key), data, sha) is not None:
                raise self._fail(exc, "write", key) from None
            log.info("write of %s reported %s but the object is complete", key, type(exc).__name__)
        self._bucket_checked = True
        problem = self._mismatch(self.head(key), data, sha)
        if problem:
            raise _error(f"wrote {key!r} to {self.location} but {problem}", retryable=True)

    def _head_quietly(self, key: str) -> dict[str, Any] | None:
        try:
            return self.head(key)
        except StorageError:
            return None

    def put_if_absent(self, key: str, data: bytes, *, content_type: str) -> bool:
        """Write unless the key already holds these bytes (same size, and same sha256 or MD5 where known)."""
        head = self.head(key)
        if head is not None and self._mismatch(head, data, hashlib.sha256(data).hexdigest()) is None:
            return False
        self.put(key, data, content_type=content_type)
        return True

    def get(self, key: str) -> bytes:
        full = self._key(key)
        last: Exception | None = None
        for _ in range(3):  # botocore retries the request; a body cut off mid-read is retried here
            try:
                response = self._client.get_object(Bucket=self.bucket, Key=full)
                body = response["Body"]
                try:
                    data = body.read()
                finally:
                    body.close()
            except ClientError as exc:
                raise self._fail(exc, "read", key) from None
            except (BotoCoreError, OSError) as exc:
                last = exc
                continue
            expected = response.get("ContentLength")
            if expected is not None and expected != len(data):
                last = OSError(f"short read: {len(data)} of {expected} bytes")
                continue
            self._bucket_checked = True
            return data
        assert last is not None
        raise self._fail(last, "read", key) from None

    def exists(self, key: str) -> bool:
        return self.head(key) is not None

    def size(self, key: str) -> int | None:
        head = self.head(key)
        return int(head["ContentLength"]) if head is not None else None

    def delete(self, key: str) -> None:
        full = self._key(key)
        try:
            self._client.delete_object(Bucket=self.bucket, Key=full)
        except ClientError as exc:
            if str(exc.response.get("Error", {}).get("Code")) in _NOT_FOUND_CODES:
                return
            raise self._fail(exc, "delete", key) from None
        except BotoCoreError as exc:
            raise self._fail(exc, "delete", key) from None

    def list_sizes(self, prefix: str = "") -> Iterator[tuple[str, int]]:
        """``(key, size)`` of every object under ``prefix``, one paginated listing (no HEAD per object)."""
        full = f"{self.prefix}/{prefix}" if self.prefix else prefix
        probe = self._key(WRITE_CHECK_KEY)
        paginator = self._client.get_paginator("list_objects_v2")
        try:
            for page in paginator.paginate(Bucket=self.bucket, Prefix=full):
                for item in page.get("Contents", ()):
                    name = item["Key"]
                    if name.endswith("/") or name == probe:  # "folder" markers some consoles create; check()'s probe
                        continue
                    yield self._unprefix(name), int(item.get("Size", 0))
        except (ClientError, BotoCoreError) as exc:
            raise self._fail(exc, "list", prefix or None) from None
        self._bucket_checked = True

    def list(self, prefix: str = "") -> Iterator[str]:
        for key, _size in self.list_sizes(prefix):
            yield key

    def partial_writes(self, older_than_s: float) -> Iterator[tuple[str, int]]:
        """Multipart uploads under the prefix that were started over ``older_than_s`` seconds ago and never
        completed (a process killed while it uploaded a large master): S3 keeps, and bills, their parts until
        they are aborted. Named ``KEY#upload=UPLOAD_ID``; the size is that of the parts stored. A store that
        does not list them (not implemented, or no ``s3:ListBucketMultipartUploads``) has none to give."""
        import datetime as dt

        cutoff = dt.datetime.now(dt.UTC) - dt.timedelta(seconds=older_than_s)
        found: list[tuple[str, int]] = []
        try:
            paginator = self._client.get_paginator("list_multipart_uploads")
            for page in paginator.paginate(Bucket=self.bucket, Prefix=f"{self.prefix}/" if self.prefix else ""):
                for upload in page.get("Uploads", ()):
                    initiated = upload.get("Initiated")
                    if initiated is None or initiated > cutoff:
                        continue
                    parts = self._client.list_parts(Bucket=self.bucket, Key=upload["Key"], UploadId=upload["UploadId"])
                    size = sum(int(part.get("Size", 0)) for part in parts.get("Parts", ()))
                    found.append((f"{self._unprefix(upload['Key'])}{UPLOAD_MARK}{upload['UploadId']}", size))
        except ClientError as exc:
            code = str(exc.response.get("Error", {}).get("Code", ""))
            if code in ("NotImplemented", "AccessDenied", "MethodNotAllowed"):
                log.info("S3 %s: unfinished multipart uploads cannot be listed (%s); none collected", self.location, code)
                return iter(())
            raise self._fail(exc, "list the unfinished uploads of") from None
        except BotoCoreError as exc:
            raise self._fail(exc, "list the unfinished uploads of") from None
        return iter(found)

    def delete_partial_write(self, name: str) -> None:
        key, mark, upload_id = name.partition(UPLOAD_MARK)
        if not mark or not upload_id:
            raise StorageError(f"not a partial write in {self.location}: {name!r}")
        try:
            self._client.abort_multipart_upload(Bucket=self.bucket, Key=self._key(key), UploadId=upload_id)
        except ClientError as exc:
            if str(exc.response.get("Error", {}).get("Code", "")) == "NoSuchUpload":
                return  # completed or aborted meanwhile
            raise self._fail(exc, "abort the unfinished upload of", key) from None
        except BotoCoreError as exc:
            raise self._fail(exc, "abort the unfinished upload of", key) from None

    def url(self, key: str) -> str:
        full = self._key(key)
        if self.public_base_url:
            return f"{self.public_base_url}/{quote(key, safe='/~')}"
        path = quote(full, safe="/~")
        if self.endpoint_url:
            return f"{_strip_userinfo(self.endpoint_url)}/{quote(self.bucket, safe='')}/{path}"
        region = self.region or "us-east-1"
        if "." in self.bucket:  # a dotted bucket breaks the wildcard TLS certificate of virtual-hosted URLs
            return f"https://s3.{region}.amazonaws.com/{self.bucket}/{path}"
        return f"https://{self.bucket}.s3.{region}.amazonaws.com/{path}"

    # ------------------------------------------------------------------ optional operations
    def overlaps(self, other: Storage) -> bool:
        """The same bucket at the same endpoint, with one prefix inside the other (or equal)."""
        if not isinstance(other, S3Storage) or (self.endpoint_url, self.bucket) != (other.endpoint_url, other.bucket):
            return False
        a, b = f"{self.prefix}/" if self.prefix else "", f"{other.prefix}/" if other.prefix else ""
        return a.startswith(b) or b.startswith(a)

    def copy(self, src_key: str, dst_key: str, *, cache_control: str | None = None) -> None:
        """Server-side ``CopyObject`` (the bytes never leave the service), replacing ``dst_key`` in one step.

        The copy keeps the source's content type and sha256 metadata; its ``Cache-Control`` is
        ``cache_control``, else the immutable one for content-addressed keys, else none. The copy is
        checked like a ``put``: same size and sha256 as the source."""
        src_full, dst_full = self._key(src_key), self._key(dst_key)
        source = self.head(src_key)
        if source is None:
            raise StorageError(f"object {src_key!r} not found in {self.location}")
        extra: dict[str, Any] = {"MetadataDirective": "REPLACE", "Metadata": dict(source.get("Metadata") or {}),
                                 "ContentType": source.get("ContentType") or "application/octet-stream"}
        control = cache_control or (IMMUTABLE_CACHE_CONTROL if dst_key.startswith(IMMUTABLE_PREFIXES) else None)
        if control:
            extra["CacheControl"] = control
        try:
            self._client.copy_object(Bucket=self.bucket, Key=dst_full, CopySource={"Bucket": self.bucket, "Key": src_full},
                                     **extra)
        except (ClientError, BotoCoreError) as exc:
            # like put: a copy whose answer was lost may have landed; the object itself says so
            if not self._is_transient(exc) or not self._same_object(self._head_quietly(dst_key), source):
                raise self._fail(exc, "copy", src_key) from None
        if not self._same_object(self.head(dst_key), source):
            raise _error(f"copied {src_key!r} to {dst_key!r} in {self.location} but the copy differs from the source",
                         retryable=True)

    @staticmethod
    def _same_object(head: dict[str, Any] | None, source: dict[str, Any]) -> bool:
        if head is None or head.get("ContentLength") != source.get("ContentLength"):
            return False
        want = (source.get("Metadata") or {}).get(SHA256_METADATA)
        return want is None or (head.get("Metadata") or {}).get(SHA256_METADATA) == want

    def signed_url(self, key: str, expires_in: int = 3600) -> str:
        """A presigned ``GetObject`` URL (SigV4, signed locally: no request), valid ``expires_in`` seconds
        (at most 7 days)."""
        if not 1 <= expires_in <= MAX_SIGNED_URL_S:
            raise StorageError(f"a signed URL must live between 1 second and 7 days, not {expires_in} seconds")
        try:
            return str(self._client.generate_presigned_url("get_object", Params={"Bucket": self.bucket, "Key": self._key(key)},
                                                           ExpiresIn=int(expires_in)))
        except (ClientError, BotoCoreError) as exc:
            raise self._fail(exc, "sign", key) from None

    def close(self) -> None:
        """Close the client's connection pool."""
        self._client.close()
