"""What the self-hosted adapters (ComfyUI, AUTOMATIC1111) share: your own servers, one or more of them.

A :class:`SelfHostedProvider` reaches one or more servers you run:

* **hosts**: the ``hosts`` setting (a list, or a comma-separated string), else ``base_url`` (one), else the
  ``hosts_env`` variable (environment or ``.env``, comma-separated), else ``default_host``; a host without
  a scheme gets ``http://``. Plain ``http`` needs the host listed in ``LIMNER_ALLOW_HTTP_HOSTS``
  (:meth:`missing_env` reports it before a run starts);
* **slots**: each host takes ``per_host_concurrency`` calls at once (default 1): :meth:`concurrency_hint`
  is hosts x that. :meth:`host` picks a free host (round robin), waits for one when all are busy, and
  passes over, for a while, a host that could not be reached (``HostUnreachable``, decided from the
  network exception's type) while another is free;
* **clients**: one :class:`~limner.providers.http.ProviderHTTP` per host, with the timeouts (``timeout_s``,
  default 600, and :meth:`http_timeout_s` for each HTTP call), ``max_download_bytes``, the credentials of
  :meth:`credentials` (redacted from every message, with the password of a ``user:password@`` URL),
  and :meth:`describe_error` turning the server's error bodies into short messages for the shared
  status mapping;
* **cost**: free, unless ``cost_per_hour_usd`` is set (each image costs its wall time x that rate);
* ``limner doctor``: :meth:`check` asks every host :meth:`check_host`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator
from typing import Any, ClassVar
from urllib.parse import urlsplit

import httpx

from .base import Capabilities, GenerationRequest, Provider
from .errors import HostUnreachable, InvalidRequest
from .http import ALLOW_HTTP_ENV, DEFAULT_MAX_DOWNLOAD_BYTES, DEFAULT_MAX_JSON_BYTES, ProviderHTTP, public_url, url_allowed
from .options import number_setting, snap_size

log = logging.getLogger("limner.providers")

DEFAULT_TIMEOUT_S = 600.0


def normalize_host(url: str) -> str:
    url = url.strip().rstrip("/")
    return url if "://" in url else f"http://{url}"


def http_refusal(provider: str, url: str) -> str | None:
    """Why ``url`` may not be used (not https, or http to a host not allowed), or None."""
    if url_allowed(url):
        return None
    parts = urlsplit(url)
    host = (parts.hostname or "").lower()
    if parts.scheme == "http" and host:
        return (f"{provider}: {public_url(url)} is plain http; list {host} in {ALLOW_HTTP_ENV} "
                f"(e.g. {ALLOW_HTTP_ENV}={host}) to allow it, or use https")
    return f"{provider}: {public_url(url) or url!r} is not an http(s) URL"


def looks_like_image(data: bytes) -> bool:
    """PNG, JPEG, WebP or AVIF by their first bytes (a server's error page is none of them)."""
    head = bytes(data[:16])
    return (head.startswith(b"\x89PNG\r\n\x1a\n") or head.startswith(b"\xff\xd8\xff")
            or (head[:4] == b"RIFF" and head[8:12] == b"WEBP") or (head[4:8] == b"ftyp" and head[8:12] in (b"avif", b"avis")))


class HostPool:
    """Per-host slots: ``acquire`` picks a free host (round robin, avoiding hosts that just failed)
    and waits for any host to free up when all are busy."""

    #: seconds a host that could not be reached is passed over while another is free
    FAILURE_COOLDOWN_S = 30.0

    def __init__(self, hosts: list[str], per_host: int) -> None:
        self.hosts = list(hosts)
        self.per_host = max(1, per_host)
        self.in_flight = {h: 0 for h in self.hosts}
        self.failed_at = {h: float("-inf") for h in self.hosts}
        self._next = 0
        self._waiters: list[asyncio.Future[None]] = []

    def _pick(self) -> str | None:
        n = len(self.hosts)
        rotation = [self.hosts[(self._next + i) % n] for i in range(n)]
        free = [h for h in rotation if self.in_flight[h] < self.per_host]
        if not free:
            return None
        now = time.monotonic()
        free.sort(key=lambda h: (now - self.failed_at[h] < self.FAILURE_COOLDOWN_S, self.in_flight[h]))
        host = free[0]
        self._next = (self.hosts.index(host) + 1) % n
        return host

    async def acquire(self) -> str:
        while True:
            host = self._pick()
            if host is not None:
                self.in_flight[host] += 1
                return host
            waiter = asyncio.get_running_loop().create_future()
            self._waiters.append(waiter)
            try:
                await waiter
            finally:
                if waiter in self._waiters:
                    self._waiters.remove(waiter)

    def release(self, host: str) -> None:
        """Synchronous, so it runs even in a cancelled call's ``finally``."""
        self.in_flight[host] = max(0, self.in_flight[host] - 1)
        waiters, self._waiters = self._waiters, []
        for waiter in waiters:
            if not waiter.done():
                waiter.set_result(None)

    def mark_failed(self, host: str) -> None:
        self.failed_at[host] = time.monotonic()


#: the settings :class:`SelfHostedProvider` reads (besides the common ones): an adapter built on it declares
#: them with its own, ``accepted_settings = SELF_HOSTED_SETTINGS | {"workflow"}``
SELF_HOSTED_SETTINGS: frozenset[str] = frozenset({"hosts", "base_url", "per_host_concurrency", "max_download_bytes",
                                                  "max_json_bytes", "cost_per_hour_usd"})


class SelfHostedProvider(Provider):
    """Base class of the adapters for servers you run, reached over HTTP(S), one slot set per host."""

    #: environment variable listing the hosts (comma-separated), and the host used when none is set
    hosts_env: ClassVar[str]
    default_host: ClassVar[str]
    #: seconds a whole call may take when ``timeout_s`` is not set
    default_timeout_s: ClassVar[float] = DEFAULT_TIMEOUT_S
    capabilities = Capabilities(
        supports_seed=True,
        supports_negative_prompt=True,
        max_concurrency=None,  # concurrency_hint(): hosts x per_host_concurrency
        rate_limit_per_minute=None,
        max_side=2048,
        size_multiple=8,
    )
    price_usd = 0.0  # the machine's time: cost_per_hour_usd
    required_env = ()

    def __init__(self, *, model: str | None = None, settings: dict[str, Any] | None = None) -> None:
        super().__init__(model=model, settings=settings)
        self._clients: dict[str, ProviderHTTP] = {}
        self._pool: HostPool | None = None

    # -- settings ---------------------------------------------------------------------------

    def hosts(self) -> list[str]:
        """The servers' base URLs: ``hosts``, else ``base_url``, else ``hosts_env``, else ``default_host``."""
        configured = self.settings.get("hosts") or self.settings.get("base_url") or self.secret(self.hosts_env)
        if isinstance(configured, str):
            configured = configured.split(",")
        hosts = [normalize_host(str(h)) for h in (configured or ()) if str(h).strip()]
        return list(dict.fromkeys(hosts)) or [self.default_host]

    def per_host_concurrency(self) -> int:
        return max(1, int(number_setting(self.name, self.settings, "per_host_concurrency", 1)))

    def concurrency_hint(self) -> int:
        """One slot set per host: hosts x ``per_host_concurrency``."""
        return len(self.hosts()) * self.per_host_concurrency()

    def missing_env(self) -> list[str]:
        """Plain-http hosts not allowed by LIMNER_ALLOW_HTTP_HOSTS are reported before a run starts."""
        missing = super().missing_env()
        refused = [h for h in self.hosts() if http_refusal(self.name, h) and urlsplit(h).scheme == "http"]
        if refused:
            names = ",".join(sorted({(urlsplit(h).hostname or "") for h in refused}))
            missing.append(f"{ALLOW_HTTP_ENV} (to allow plain http to {names})")
        return missing

    @property
    def timeout_s(self) -> float:
        return number_setting(self.name, self.settings, "timeout_s", self.default_timeout_s)

    def http_timeout_s(self) -> float:
        """The timeout of one HTTP call (default: the whole call's ``timeout_s``)."""
        return self.timeout_s

    def credentials(self) -> tuple[dict[str, str], list[str | None]]:
        """Headers carrying the server's credentials, and the secret values to redact. Default: none."""
        return {}, []

    def _secret_values(self) -> list[str | None]:
        """The credentials' secrets and the hosts' URL passwords, redacted from every message."""
        _, secrets = self.credentials()
        return [*super()._secret_values(), *secrets, *(urlsplit(h).password for h in self.hosts())]

    def describe_error(self, response: httpx.Response) -> str | None:
        """A short text for an error answer of the server (its body read), or None for the raw body."""
        return None

    # -- plumbing ---------------------------------------------------------------------------

    async def prepare(self) -> None:
        """Every host's client, before the call's ledger line (``InvalidRequest`` for plain http to a host
        that is not allowed)."""
        for host in self.hosts():
            self.client(host)

    def client(self, host: str) -> ProviderHTTP:
        """The client of one host (``InvalidRequest`` for plain http to a host not allowed)."""
        client = self._clients.get(host)
        if client is None:
            refusal = http_refusal(self.name, host)
            if refusal:
                raise InvalidRequest(refusal)
            self.check_credentials()  # a token with a line break: refused before h11 shows it in an error
            headers, secrets = self.credentials()
            max_bytes = int(number_setting(self.name, self.settings, "max_download_bytes", DEFAULT_MAX_DOWNLOAD_BYTES))
            max_json = int(number_setting(self.name, self.settings, "max_json_bytes", DEFAULT_MAX_JSON_BYTES))
            client = ProviderHTTP(self.name, base_url=host, headers=headers, timeout_s=self.http_timeout_s(),
                                  max_download_bytes=max_bytes, max_json_bytes=max_json,
                                  secrets=[*secrets, urlsplit(host).password], describe=self.describe_error)
            self._clients[host] = client
        return client

    def _host_pool(self) -> HostPool:
        if self._pool is None:
            self._pool = HostPool(self.hosts(), self.per_host_concurrency())
        return self._pool

    @contextlib.asynccontextmanager
    async def host(self) -> AsyncIterator[ProviderHTTP]:
        """A free host's client for one call: waits while every host is busy; a host that cannot be
        reached (``HostUnreachable``) is passed over for a while when others are free."""
        pool = self._host_pool()
        host = await pool.acquire()
        try:
            yield self.client(host)
        except HostUnreachable:
            pool.mark_failed(host)
            raise
        finally:
            pool.release(host)

    async def aclose(self) -> None:
        clients, self._clients = self._clients, {}
        for client in clients.values():
            try:
                await client.aclose()
            except RuntimeError:  # its event loop is gone: nothing left to release
                pass

    # -- helpers for the call ---------------------------------------------------------------

    def fit_size(self, request: GenerationRequest) -> tuple[int, int]:
        """Refuse sizes outside 1..max_side; snap to ``size_multiple`` (logged when it changes)."""
        caps = self.capabilities
        if not (0 < request.width <= caps.max_side and 0 < request.height <= caps.max_side):
            raise InvalidRequest(f"{self.name}: size {request.width}x{request.height} outside 1..{caps.max_side}")
        width, height = snap_size(request.width, request.height, multiple=caps.size_multiple, max_side=caps.max_side)
        if (width, height) != (request.width, request.height):
            log.info("%s: size %dx%d snapped to %dx%d (multiples of %d)", self.name, request.width, request.height,
                     width, height, caps.size_multiple)
        return width, height

    def wall_cost(self, seconds: float) -> float:
        """What ``seconds`` of the machine cost at ``cost_per_hour_usd`` (0 when unset)."""
        return round(seconds * number_setting(self.name, self.settings, "cost_per_hour_usd", 0.0) / 3600, 6)

    # -- limner doctor ----------------------------------------------------------------------

    async def check_host(self, http: ProviderHTTP) -> str:
        """A short description of one host, from a call that generates nothing. Default: reachable."""
        await http.request("GET", "/")
        return "reachable"

    async def check(self) -> str:
        """``limner doctor``: every host answers :meth:`check_host`."""
        await super().check()
        described = []
        try:
            for host in self.hosts():
                described.append(f"{public_url(host)} ({await self.check_host(self.client(host))})")
        finally:
            await self.aclose()
        return f"{len(described)} host(s) reachable: " + ", ".join(described)
