"""The studio's guard: who may use it and how a request proves it.

* It binds a loopback address by default; any other address needs a token (``LIMNER_SERVE_TOKEN`` from the
  environment or the project's ``.env``, else one generated here and printed once by ``limner serve``).
* With a token, a browser logs in once at ``/login?token=…`` (an HttpOnly, SameSite=Strict session cookie
  signed with an HMAC of the token) and a script sends ``Authorization: Bearer <token>``; anything else
  is 401.
* Token or not, every state-changing request carries the CSRF token of this process in ``X-CSRF-Token``
  (the pages embed it; ``GET /api/session`` returns it) unless it is authenticated by the Bearer header, and
  a request whose ``Origin`` is another site is refused: a page elsewhere cannot act on a reviewer's behalf.
* The Host header must be one the server answers to (TrustedHostMiddleware, against DNS rebinding).
* A state-changing request's body is at most ``MAX_BODY_BYTES`` (a note, a prompt, a thousand ids take a
  few KiB): a larger one is a 413, refused on its ``Content-Length`` before it is read, or as soon as a
  chunked one passes the cap (it was read whole into memory, then parsed).
* Responses carry a strict Content-Security-Policy (scripts only from ``/static``), ``nosniff`` and
  ``frame-ancestors 'none'``.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import json
import secrets
import socket
import time
from collections.abc import Awaitable, Callable, Iterable, MutableMapping
from typing import Any
from urllib.parse import urlsplit

from limner.errors import ConfigError

TOKEN_ENV = "LIMNER_SERVE_TOKEN"
SESSION_COOKIE = "limner_session"
CSRF_HEADER = "x-csrf-token"
SESSION_MAX_AGE_S = 7 * 24 * 3600
#: paths anyone may fetch: the log-in page and the static files (a stylesheet and a script)
PUBLIC_PREFIXES = ("/static/", "/login", "/favicon.ico")
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
#: the largest request body read (the largest the API takes, an 8,000-character prompt as JSON escapes,
#: is under 64 KiB); a larger one is a 413
MAX_BODY_BYTES = 1024 * 1024
CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
       "form-action 'self'; base-uri 'none'; frame-ancestors 'none'")

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


def is_loopback(host: str) -> bool:
    """``localhost`` or a loopback IP address (``127.0.0.1``, ``::1``)."""
    host = host.strip().strip("[]")
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def resolve_token(secret: Callable[[str], str | None], host: str, want: bool | None) -> tuple[str | None, bool]:
    """The token the server requires, and whether it was generated here (print it once).

    ``want``: True (``--token``) requires one, False (``--no-token``) refuses one (only on a loopback
    address), None (the default) requires one when ``host`` is not loopback or ``LIMNER_SERVE_TOKEN`` is set.
    """
    configured = secret(TOKEN_ENV)
    if want is False:
        if not is_loopback(host):
            raise ConfigError(f"binding {host} (not a loopback address) needs a token; drop --no-token",
                              hint=f"set {TOKEN_ENV} in the environment or .env, or let limner serve generate one")
        return None, False
    if want is None and not configured and is_loopback(host):
        return None, False
    if configured:
        if len(configured) < 16:
            raise ConfigError(f"{TOKEN_ENV} is too short (at least 16 characters)",
                              hint='python -c "import secrets; print(secrets.token_urlsafe(24))"')
        return configured, False
    return secrets.token_urlsafe(24), True


def allowed_hosts(host: str, extra: Iterable[str] = ()) -> list[str]:
    """Host names the server answers to: the loopback names, the bound address, and for a wildcard bind
    (``0.0.0.0``, ``::``) this machine's names; plus ``extra`` (``--allowed-host``)."""
    names = {"localhost", "127.0.0.1", "[::1]", "::1"}
    bare = host.strip("[]")
    if bare in ("0.0.0.0", "::", ""):
        for name in (socket.gethostname(), socket.getfqdn()):
            if name:
                names.add(name)
    else:
        names.add(bare)
        if ":" in bare:
            names.add(f"[{bare}]")
    names.update(h.strip() for h in extra if h.strip())
    return sorted(names)


def _sign(key: bytes, text: str) -> str:
    return hmac.new(key, text.encode(), hashlib.sha256).hexdigest()


class Guard:
    """The token (None: none required), the session cookie signed with it, and this process's CSRF token."""

    def __init__(self, token: str | None) -> None:
        self.token = token
        self._session_key = hashlib.sha256(b"limner-studio-session\0" + token.encode()).digest() if token else b""
        self.csrf_token = secrets.token_urlsafe(32)

    @property
    def required(self) -> bool:
        return self.token is not None

    def token_ok(self, candidate: str | None) -> bool:
        return bool(self.token and candidate) and hmac.compare_digest(str(candidate).encode(), self.token.encode())  # type: ignore[union-attr]

    def bearer_ok(self, header: str | None) -> bool:
        if not header or not header.startswith("Bearer "):
            return False
        return self.token_ok(header[len("Bearer "):].strip())

    def new_session(self, now: float | None = None) -> str:
        issued = str(int(now if now is not None else time.time()))
        return f"{issued}.{_sign(self._session_key, 'session:' + issued)}"

    def session_ok(self, value: str | None, now: float | None = None) -> bool:
        if not self.token or not value or "." not in value:
            return False
        issued, _, signature = value.partition(".")
        if not issued.isdigit() or not hmac.compare_digest(signature.encode(), _sign(self._session_key, "session:" + issued).encode()):
            return False
        age = (now if now is not None else time.time()) - int(issued)
        return -60 <= age <= SESSION_MAX_AGE_S

    def csrf_ok(self, header: str | None) -> bool:
        return bool(header) and hmac.compare_digest(str(header).encode(), self.csrf_token.encode())

    def session_cookie_header(self) -> str:
        return (f"{SESSION_COOKIE}={self.new_session()}; Path=/; HttpOnly; SameSite=Strict; "
                f"Max-Age={SESSION_MAX_AGE_S}")


def _headers(scope: Scope) -> dict[str, str]:
    return {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])}


def _cookie(header: str | None, name: str) -> str | None:
    for part in (header or "").split(";"):
        key, _, value = part.strip().partition("=")
        if key == name:
            return value
    return None


async def _capped_body(receive: Receive, declared: str | None) -> Receive | None:
    """The request's body read here, at most :data:`MAX_BODY_BYTES` of it, and a ``receive`` that hands it
    on in one message; None when it is larger (refused on its declared length before a byte is read)."""
    if declared is not None and declared.strip().isdigit() and int(declared) > MAX_BODY_BYTES:
        return None
    parts: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] != "http.request":  # the client went away: handed on as it came
            break
        parts.append(message.get("body", b""))
        size += len(parts[-1])
        if size > MAX_BODY_BYTES:
            return None
        if not message.get("more_body", False):
            message = {"type": "http.request", "body": b"".join(parts), "more_body": False}
            break
    queued = [message]

    async def replay() -> Message:
        return queued.pop() if queued else await receive()

    return replay


class GuardMiddleware:
    """Authentication (token mode), CSRF and Origin checks, and security headers, for every request."""

    def __init__(self, app: ASGIApp, guard: Guard) -> None:
        self.app = app
        self.guard = guard

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path: str = scope.get("path", "")
        method: str = scope.get("method", "GET")
        headers = _headers(scope)
        guard = self.guard
        by_bearer = guard.bearer_ok(headers.get("authorization"))
        public = path.startswith(PUBLIC_PREFIXES)
        scope.setdefault("state", {})["limner_authenticated_by"] = "bearer" if by_bearer else None

        if guard.required and not public and not by_bearer and not guard.session_ok(_cookie(headers.get("cookie"), SESSION_COOKIE)):
            await self._refuse(scope, send, 401, "authentication required: log in at /login?token=… or send "
                                                 "Authorization: Bearer <token>", www_authenticate=True)
            return
        if method not in SAFE_METHODS and not by_bearer:
            origin = headers.get("origin")
            if origin and origin != "null" and urlsplit(origin).netloc.lower() != headers.get("host", "").lower():
                await self._refuse(scope, send, 403, "cross-origin request refused")
                return
            if origin == "null" or not guard.csrf_ok(headers.get(CSRF_HEADER)):
                await self._refuse(scope, send, 403, "missing or wrong CSRF token (X-CSRF-Token)")
                return
        if method not in SAFE_METHODS:
            capped = await _capped_body(receive, headers.get("content-length"))
            if capped is None:
                await self._refuse(scope, send, 413, f"request body too large (at most {MAX_BODY_BYTES} bytes)")
                return
            receive = capped

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                extra = [(b"x-content-type-options", b"nosniff"), (b"x-frame-options", b"DENY"),
                         (b"referrer-policy", b"no-referrer"), (b"content-security-policy", CSP.encode())]
                if not path.startswith(("/static/", "/media/")):
                    extra.append((b"cache-control", b"no-store"))
                message["headers"] = [*message.get("headers", []), *extra]
            await send(message)

        await self.app(scope, receive, send_with_headers)

    @staticmethod
    async def _refuse(scope: Scope, send: Send, status: int, detail: str, *, www_authenticate: bool = False) -> None:
        wants_html = not scope.get("path", "").startswith(("/api/", "/media/")) and scope.get("method") == "GET"
        if wants_html:
            body = (f"<!doctype html><meta charset=utf-8><title>Limner studio</title><h1>{status}</h1>"
                    "<p>This review studio needs its token. Open the address <code>limner serve</code> printed "
                    "(<code>/login?token=…</code>).</p>").encode()
            content_type = b"text/html; charset=utf-8"
        else:
            body = json.dumps({"detail": detail}).encode()
            content_type = b"application/json"
        headers = [(b"content-type", content_type), (b"content-length", str(len(body)).encode()),
                   (b"x-content-type-options", b"nosniff"), (b"cache-control", b"no-store")]
        if www_authenticate:
            headers.append((b"www-authenticate", b'Bearer realm="limner"'))
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body})


__all__ = ["CSRF_HEADER", "MAX_BODY_BYTES", "SESSION_COOKIE", "TOKEN_ENV", "Guard", "GuardMiddleware", "allowed_hosts", "is_loopback",
           "resolve_token"]
