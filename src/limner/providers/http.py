"""HTTP plumbing every hosted or self-hosted provider shares (httpx).

* one status-to-error mapping: 401/403 -> AuthFailed, 429 -> RateLimited(Retry-After),
  408/425/5xx and network errors -> Transient, other 4xx -> InvalidRequest
* timeouts on every call
* downloads follow redirects only to https URLs (plain http only for hosts listed in
  ``LIMNER_ALLOW_HTTP_HOSTS``), cap bytes, and sniff the format from the bytes
* secrets are redacted from every message this module builds
* an adapter may read an error body first (``on_error``) and raise its own error instead
  (a moderation refusal, a wait given in the body)
"""

from __future__ import annotations

import base64
import binascii
import email.utils
import os
import time
from collections.abc import Awaitable, Callable, Iterable
from typing import Any
from urllib.parse import urljoin, urlsplit

import httpx

from limner.providers.errors import AuthFailed, InvalidRequest, ProviderError, RateLimited, Transient

ALLOW_HTTP_ENV = "LIMNER_ALLOW_HTTP_HOSTS"
DEFAULT_TIMEOUT_S = 60.0
DEFAULT_MAX_DOWNLOAD_BYTES = 50_000_000
MAX_REDIRECTS = 5

#: ``on_error(response)``: called with every response of status >= 400 (its body read) before the
#: generic status mapping; it raises a provider error to replace that mapping, or returns to keep it
ErrorHook = Callable[[httpx.Response], Awaitable[None]]


def allowed_http_hosts() -> set[str]:
    return {h.strip().lower() for h in os.environ.get(ALLOW_HTTP_ENV, "").split(",") if h.strip()}


def check_url(provider: str, url: str) -> None:
    """Refuse anything but https, except plain http to hosts listed in LIMNER_ALLOW_HTTP_HOSTS."""
    parts = urlsplit(url)
    host = (parts.hostname or "").lower()
    if parts.scheme == "https" and host:
        return
    if parts.scheme == "http" and host and host in allowed_http_hosts():
        return
    raise InvalidRequest(f"{provider}: refusing to fetch {parts.scheme}://{host or '?'}/... "
                         f"(only https, or http to hosts listed in {ALLOW_HTTP_ENV})")


def parse_retry_after(value: str | None) -> float | None:
    """Retry-After as seconds: delta-seconds or an HTTP date."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


class Redactor:
    """Removes secret values from text before it reaches a message or a log."""

    def __init__(self, secrets: Iterable[str | None] = ()) -> None:
        self.secrets = sorted({s for s in secrets if s and len(s) >= 4}, key=len, reverse=True)

    def __call__(self, text: str) -> str:
        for secret in self.secrets:
            text = text.replace(secret, "[redacted]")
        return text


def error_for_status(provider: str, response: httpx.Response, redact: Redactor, *, detail: str | None = None) -> ProviderError:
    status = response.status_code
    body = detail if detail is not None else response.text[:300]
    message = redact(f"{provider}: HTTP {status}: {body}".strip())
    if status in (401, 403):
        return AuthFailed(message)
    if status == 429:
        return RateLimited(message, retry_after=parse_retry_after(response.headers.get("retry-after")))
    if status in (408, 425) or status >= 500:
        return Transient(message)
    return InvalidRequest(message)


def decode_base64_image(provider: str, encoded: str, max_bytes: int, *, what: str = "image") -> bytes:
    """Strict base64 decoding of an image sent inline, with the download cap checked before decoding."""
    if len(encoded) * 3 // 4 > max_bytes + 3:
        raise InvalidRequest(f"{provider}: output is over the {max_bytes:,}-byte cap")
    try:
        data = base64.b64decode(encoded, validate=True)
    except (binascii.Error, ValueError):
        raise Transient(f"{provider}: the {what} is not valid base64") from None
    if len(data) > max_bytes:
        raise InvalidRequest(f"{provider}: output is over the {max_bytes:,}-byte cap")
    return data


class ProviderHTTP:
    """An httpx client for one provider, with the shared rules above."""

    def __init__(self, provider: str, *, base_url: str, headers: dict[str, str] | None = None,
                 timeout_s: float | None = None, max_download_bytes: int = DEFAULT_MAX_DOWNLOAD_BYTES,
                 secrets: Iterable[str | None] = (), transport: httpx.AsyncBaseTransport | None = None,
                 on_error: ErrorHook | None = None) -> None:
        self.provider = provider
        self.on_error = on_error
        self.base_url = base_url.rstrip("/")
        check_url(provider, self.base_url + "/")
        self.redact = Redactor(secrets)
        self.max_download_bytes = max_download_bytes
        self.timeout = httpx.Timeout(timeout_s or DEFAULT_TIMEOUT_S, connect=min(10.0, timeout_s or 10.0))
        self.client = httpx.AsyncClient(headers=headers or {}, timeout=self.timeout, follow_redirects=False, transport=transport)

    def url(self, path: str) -> str:
        return path if path.startswith(("http://", "https://")) else f"{self.base_url}/{path.lstrip('/')}"

    async def request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        """Send a request; any status >= 400 or network failure becomes a typed provider error."""
        url = self.url(path)
        check_url(self.provider, url)
        try:
            response = await self.client.request(method, url, **kwargs)
        except httpx.TimeoutException:
            raise Transient(f"{self.provider}: timed out ({method} {urlsplit(url).path})") from None
        except httpx.TransportError as exc:
            raise Transient(self.redact(f"{self.provider}: network error: {type(exc).__name__}: {exc}")) from None
        if response.status_code >= 400:
            await self._check_error(response)
            raise error_for_status(self.provider, response, self.redact)
        return response

    async def _check_error(self, response: httpx.Response) -> None:
        """Give the adapter's ``on_error`` a look at an error answer (it may raise its own error)."""
        if self.on_error is not None:
            await self.on_error(response)

    async def json(self, method: str, path: str, **kwargs: Any) -> Any:
        response = await self.request(method, path, **kwargs)
        try:
            return response.json()
        except ValueError:
            raise Transient(f"{self.provider}: answer is not JSON (HTTP {response.status_code})") from None

    async def download(self, url: str, *, headers: dict[str, str] | None = None) -> bytes:
        """Fetch an output: https-only redirects, capped size. Expired or missing outputs are Transient."""
        for _ in range(MAX_REDIRECTS + 1):
            check_url(self.provider, url)
            try:
                async with self.client.stream("GET", url, headers=headers) as response:
                    if response.is_redirect:
                        location = response.headers.get("location")
                        if not location:
                            raise Transient(f"{self.provider}: redirect without a location")
                        url = urljoin(url, location)
                        continue
                    if response.status_code >= 400:
                        await response.aread()
                        await self._check_error(response)
                        error = error_for_status(self.provider, response, self.redact)
                        if response.status_code in (404, 410):  # an output that expired: generate again
                            raise Transient(str(error))
                        raise error
                    declared = response.headers.get("content-length")
                    if declared and declared.isdigit() and int(declared) > self.max_download_bytes:
                        raise InvalidRequest(f"{self.provider}: output is {int(declared):,} bytes, over the "
                                             f"{self.max_download_bytes:,}-byte cap")
                    chunks, size = [], 0
                    async for chunk in response.aiter_bytes():
                        size += len(chunk)
                        if size > self.max_download_bytes:
                            raise InvalidRequest(f"{self.provider}: output is over the {self.max_download_bytes:,}-byte cap")
                        chunks.append(chunk)
                    return b"".join(chunks)
            except httpx.TimeoutException:
                raise Transient(f"{self.provider}: download timed out") from None
            except httpx.TransportError as exc:
                raise Transient(self.redact(f"{self.provider}: download failed: {type(exc).__name__}: {exc}")) from None
        raise Transient(f"{self.provider}: too many redirects")

    async def aclose(self) -> None:
        await self.client.aclose()

    def __repr__(self) -> str:
        return f"<ProviderHTTP {self.provider} {self.base_url}>"
