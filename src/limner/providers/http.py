"""HTTP plumbing every hosted or self-hosted provider shares (httpx).

* one status-to-error mapping: 401/403 -> AuthFailed, 402 -> OutOfCredit, 429 -> RateLimited(Retry-After),
  408/425/5xx and network errors -> Transient, other 4xx -> InvalidRequest
* one exception-type mapping for the network: a connection refused, a DNS failure or a connect timeout
  (``httpx.ConnectError``, ``httpx.ConnectTimeout``) -> HostUnreachable; any other timeout or transport
  error -> Transient
* timeouts on every call
* downloads follow redirects only to https URLs (plain http only for hosts listed in
  ``LIMNER_ALLOW_HTTP_HOSTS``), cap bytes, and sniff the format from the bytes
* API answers are streamed and read only up to a cap (``DEFAULT_MAX_JSON_BYTES``, 10 MB, for JSON answers;
  the larger of that and ``max_download_bytes`` for the others): a longer answer is ``InvalidRequest``
* a redirect to another origin is followed without credential headers
* secrets are redacted from every message this module builds, before any text is cut short
* one verifying TLS context for every client of the process (:mod:`limner.providers.tls`)
* httpcore's pool on an asyncio network backend, without anyio (:mod:`limner.providers.transport`)
* an adapter may read an error body first (``on_error``) and raise its own error instead
  (a moderation refusal, a wait given in the body), or only say what the body means (``describe``)
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import email.utils
import time
from collections.abc import Awaitable, Callable, Iterable, Iterator
from typing import Any
from urllib.parse import urljoin, urlsplit

import httpx

from limner.providers.tls import tls_context
from limner.providers.transport import transport_for
from limner.providers.errors import (
    AnswerLost,
    AuthFailed,
    HostUnreachable,
    InvalidRequest,
    OutOfCredit,
    OutputExpired,
    ProviderError,
    RateLimited,
    Transient,
)
from limner.urls import ALLOW_HTTP_ENV, Redactor, allowed_http_hosts

__all__ = ["ALLOW_HTTP_ENV", "Redactor", "allowed_http_hosts"]  # re-exported: they live in limner.urls

DEFAULT_TIMEOUT_S = 60.0
DEFAULT_MAX_DOWNLOAD_BYTES = 50_000_000
#: the most bytes read of an API answer parsed as JSON (``ProviderHTTP.json``); a longer answer is
#: ``InvalidRequest`` and is never read further. Other answers (``request``/``send``) are read up to the
#: larger of this and ``max_download_bytes``
DEFAULT_MAX_JSON_BYTES = 10_000_000
MAX_REDIRECTS = 5
#: sent with every request (API calls and downloads)
USER_AGENT = "limner (+https://github.com/limner)"
#: what an ``OutOfCredit`` message says to do when the provider gives no better hint
DEFAULT_CREDIT_HINT = "add credit to the account"

#: ``on_error(response)``: called with every response of status >= 400 (its body read) before the
#: generic status mapping; it raises a provider error to replace that mapping, or returns to keep it
ErrorHook = Callable[[httpx.Response], Awaitable[None]]
#: ``describe(response)``: a short text for an error answer (its body read), used in the message of the
#: generic mapping instead of the raw body; None keeps the raw body
Describe = Callable[[httpx.Response], "str | None"]


def url_allowed(url: str) -> bool:
    """https to any host, or plain http to a host listed in LIMNER_ALLOW_HTTP_HOSTS."""
    parts = urlsplit(url)
    host = (parts.hostname or "").lower()
    return bool(host) and (parts.scheme == "https" or (parts.scheme == "http" and host in allowed_http_hosts()))


def public_url(url: str) -> str:
    """The URL without user:password, query or fragment, for messages and metadata."""
    parts = urlsplit(url)
    netloc = parts.hostname or ""
    if parts.port:
        netloc += f":{parts.port}"
    return f"{parts.scheme}://{netloc}{parts.path}" if parts.scheme else url


#: request headers that may carry a credential: never sent to another origin than the first one's
CREDENTIAL_HEADER_WORDS = ("auth", "key", "token", "secret", "cookie", "session", "password", "credential")


def origin(url: str) -> tuple[str, str, int | None]:
    """(scheme, host, port) of a URL, the port defaulted from the scheme."""
    parts = urlsplit(url)
    port = parts.port or {"https": 443, "http": 80}.get(parts.scheme)
    return parts.scheme.lower(), (parts.hostname or "").lower(), port


def is_credential_header(name: str, value: str, secrets: Iterable[str] = ()) -> bool:
    """True for a header that may carry a credential: by its name (Authorization, x-key, api-key, Cookie,
    ...) or because its value holds one of ``secrets``."""
    lowered = name.lower()
    if any(word in lowered for word in CREDENTIAL_HEADER_WORDS):
        return True
    return any(secret in value for secret in secrets)


def check_url(provider: str, url: str) -> None:
    """Refuse anything but https, except plain http to hosts listed in LIMNER_ALLOW_HTTP_HOSTS."""
    if url_allowed(url):
        return
    parts = urlsplit(url)
    host = (parts.hostname or "").lower()
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


def error_for_status(provider: str, response: httpx.Response, redact: Redactor, *, detail: str | None = None,
                     credit_hint: str = DEFAULT_CREDIT_HINT) -> ProviderError:
    """The typed error for an answer of status >= 400, decided by the status alone."""
    status = response.status_code
    body = redact(detail) if detail is not None else redact.clip(response.text, 300)  # redacted, then cut
    message = redact(f"{provider}: HTTP {status}: {body}".strip())
    if status in (401, 403):
        return AuthFailed(message)
    if status == 402:  # Payment Required: no call can succeed until the account is paid for
        return OutOfCredit(f"{message} ({credit_hint})")
    if status == 429:
        return RateLimited(message, retry_after=parse_retry_after(response.headers.get("retry-after")))
    if status in (408, 425) or status >= 500:
        return Transient(message)
    return InvalidRequest(message)


def decode_base64_image(provider: str, encoded: str, max_bytes: int, *, what: str = "image",
                        billed_usd: float = 0.0) -> bytes:
    """Strict base64 decoding of an image sent inline, with the download cap checked before decoding.
    ``billed_usd``: what the call that answered with it cost (an answer that cannot be read was paid for)."""
    if len(encoded) * 3 // 4 > max_bytes + 3:
        raise InvalidRequest(f"{provider}: output is over the {max_bytes:,}-byte cap", billed_usd=billed_usd)
    try:
        data = base64.b64decode(encoded, validate=True)
    except (binascii.Error, ValueError):
        raise Transient(f"{provider}: the {what} is not valid base64", billed_usd=billed_usd) from None
    if len(data) > max_bytes:
        raise InvalidRequest(f"{provider}: output is over the {max_bytes:,}-byte cap", billed_usd=billed_usd)
    return data


class ProviderHTTP:
    """An httpx client for one provider, with the shared rules above."""

    def __init__(self, provider: str, *, base_url: str, headers: dict[str, str] | None = None,
                 timeout_s: float | None = None, max_download_bytes: int = DEFAULT_MAX_DOWNLOAD_BYTES,
                 secrets: Iterable[str | None] = (), transport: httpx.AsyncBaseTransport | None = None,
                 on_error: ErrorHook | None = None, describe: Describe | None = None,
                 credit_hint: str = DEFAULT_CREDIT_HINT, max_json_bytes: int = DEFAULT_MAX_JSON_BYTES) -> None:
        self.provider = provider
        self.max_json_bytes = max_json_bytes
        self.on_error = on_error
        self.describe = describe
        self.credit_hint = credit_hint
        self.base_url = base_url.rstrip("/")
        check_url(provider, self.base_url + "/")
        self.redact = Redactor(secrets)
        self.max_download_bytes = max_download_bytes
        self.timeout = httpx.Timeout(timeout_s or DEFAULT_TIMEOUT_S, connect=min(10.0, timeout_s or 10.0))
        if transport is None:  # the asyncio transport (see providers/transport.py), unless a proxy is set
            transport = transport_for(tls_context())
        self.client = httpx.AsyncClient(headers={"User-Agent": USER_AGENT, **(headers or {})}, timeout=self.timeout,
                                        follow_redirects=False, transport=transport,
                                        verify=tls_context() if transport is None else True)

    def url(self, path: str) -> str:
        return path if path.startswith(("http://", "https://")) else f"{self.base_url}/{path.lstrip('/')}"

    @contextlib.contextmanager
    def network_errors(self, url: str, action: str) -> Iterator[None]:
        """Map httpx's network exceptions, by type, onto provider errors: the host could not be reached
        (connection refused, DNS failure, connect timeout) -> HostUnreachable; any other timeout or
        transport failure -> Transient."""
        where = public_url(url).split("://", 1)[-1].split("/", 1)[0]
        try:
            yield
        except httpx.ConnectTimeout:
            raise HostUnreachable(f"{self.provider}: {where} did not accept a connection within "
                                  f"{self.timeout.connect:g}s ({action})") from None
        except httpx.ReadTimeout:  # the request went out: the service may be doing (and billing) the work
            raise AnswerLost(f"{self.provider}: no answer within {self.timeout.read:g}s ({action})") from None
        except httpx.TimeoutException:
            raise Transient(f"{self.provider}: timed out ({action})") from None
        except httpx.ConnectError as exc:
            raise HostUnreachable(self.redact(f"{self.provider}: cannot reach {where} ({action}): "
                                              f"{type(exc).__name__}: {exc}")) from None
        except (httpx.ReadError, httpx.RemoteProtocolError) as exc:  # the connection dropped while we waited
            raise AnswerLost(self.redact(f"{self.provider}: the answer was lost ({action}): "
                                         f"{type(exc).__name__}: {exc}")) from None
        except httpx.TransportError as exc:
            raise Transient(self.redact(f"{self.provider}: network error ({action}): {type(exc).__name__}: {exc}")) from None

    async def send(self, method: str, path: str, *, max_bytes: int | None = None, **kwargs: Any) -> httpx.Response:
        """Send a request; network failures become typed errors, answers of any status come back, their
        body read up to ``max_bytes`` (default: the larger of ``max_json_bytes`` and ``max_download_bytes``;
        a longer answer is ``InvalidRequest``, and is not read further)."""
        url = self.url(path)
        check_url(self.provider, url)
        cap = max_bytes if max_bytes is not None else max(self.max_json_bytes, self.max_download_bytes)
        what = f"{method} {urlsplit(url).path}"
        with self.network_errors(url, what):
            request = self.client.build_request(method, url, **kwargs)
            async with contextlib.aclosing(await self.client.send(request, stream=True)) as response:
                declared = response.headers.get("content-length")
                if declared and declared.isdigit() and int(declared) > cap:
                    raise InvalidRequest(f"{self.provider}: the answer to {what} is {int(declared):,} bytes, "
                                         f"over the {cap:,}-byte cap")
                chunks, size = [], 0
                async for chunk in response.aiter_bytes():
                    size += len(chunk)
                    if size > cap:
                        raise InvalidRequest(f"{self.provider}: the answer to {what} is over the {cap:,}-byte cap")
                    chunks.append(chunk)
        # the body is decoded already: the copy keeps the status and headers, not the encoding
        headers = [(k, v) for k, v in response.headers.multi_items() if k.lower() not in ("content-encoding", "content-length")]
        return httpx.Response(response.status_code, headers=headers, content=b"".join(chunks), request=request,
                              extensions=response.extensions)

    async def request(self, method: str, path: str, *, max_bytes: int | None = None, **kwargs: Any) -> httpx.Response:
        """Send a request; any status >= 400 or network failure becomes a typed provider error."""
        response = await self.send(method, path, max_bytes=max_bytes, **kwargs)
        if response.status_code >= 400:
            raise await self.error(response)
        return response

    async def error(self, response: httpx.Response) -> ProviderError:
        """The typed error for an error answer (body read): the adapter's ``on_error`` may raise its own;
        else the generic status mapping, with the adapter's ``describe`` text when it has one."""
        if self.on_error is not None:
            await self.on_error(response)
        detail = self.describe(response) if self.describe is not None else None
        return error_for_status(self.provider, response, self.redact, detail=detail, credit_hint=self.credit_hint)

    @property
    def inline_image_json_bytes(self) -> int:
        """The cap of a JSON answer that carries the image itself in base64 (OpenAI's ``b64_json``, AUTOMATIC1111's
        ``images``): ``max_json_bytes`` plus the base64 size of ``max_download_bytes``."""
        return self.max_json_bytes + self.max_download_bytes * 4 // 3 + 4

    async def json(self, method: str, path: str, *, max_bytes: int | None = None, billed_usd: float = 0.0,
                   **kwargs: Any) -> Any:
        """The answer parsed as JSON, read up to ``max_bytes`` (default ``max_json_bytes``; a longer answer
        is ``InvalidRequest``, not read further). ``billed_usd``: what the call costs when it was answered as
        done (a 2xx) but cannot be read: a paid call all the same."""
        response = await self.request(method, path, max_bytes=max_bytes or self.max_json_bytes, **kwargs)
        try:
            return response.json()
        except ValueError:
            raise Transient(f"{self.provider}: answer is not JSON (HTTP {response.status_code})",
                            billed_usd=billed_usd if 200 <= response.status_code < 300 else 0.0) from None

    async def download(self, url: str, *, headers: dict[str, str] | None = None) -> bytes:
        """Fetch an output: https-only redirects, capped size. Expired or missing outputs are Transient.

        A redirect to another origin (scheme, host or port) is followed without any credential header
        (the client's or ``headers``': Authorization, x-key, api-key, Cookie, any header holding a secret)."""
        first = origin(url)
        for _ in range(MAX_REDIRECTS + 1):
            check_url(self.provider, url)
            request = self.client.build_request("GET", url, headers=headers)
            if origin(url) != first:
                for name in [n for n, v in request.headers.items() if is_credential_header(n, v, self.redact.secrets)]:
                    del request.headers[name]
            with self.network_errors(url, "download"):
                async with contextlib.aclosing(await self.client.send(request, stream=True)) as response:
                    if response.is_redirect:
                        location = response.headers.get("location")
                        if not location:
                            raise Transient(f"{self.provider}: redirect without a location")
                        url = urljoin(url, location)
                        continue
                    if response.status_code >= 400:
                        await response.aread()
                        error = await self.error(response)
                        if response.status_code in (404, 410):  # an output that expired: generate again
                            raise OutputExpired(str(error))
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
        raise Transient(f"{self.provider}: too many redirects")

    async def aclose(self) -> None:
        await self.client.aclose()

    def __repr__(self) -> str:
        return f"<ProviderHTTP {self.provider} {self.base_url}>"
