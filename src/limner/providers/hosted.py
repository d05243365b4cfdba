"""What the hosted-API adapters (Replicate, fal, Together, OpenAI, BFL, Hugging Face) share.

A :class:`HostedProvider` reaches one HTTPS API with one key:

* ``max_json_bytes`` (default 10 MB) caps every JSON answer of the API (see :mod:`limner.providers.http`);
* the key comes from ``key_env`` (environment or the project's .env); a missing key, or one with a line
  break or another control character in it, is ``AuthFailed`` before any call;
* the base URL is ``providers.<name>.base_url``, else ``base_env``, else ``default_base_url`` (the same
  order for every hosted provider: :meth:`base_url`);
* the :class:`~limner.providers.http.ProviderHTTP` client is built on first use (:attr:`http`) with the
  ``timeout_s`` (else ``default_timeout_s``) and ``max_download_bytes`` settings, the key as a secret to
  redact, :meth:`error_hook` reading error bodies before the generic status mapping, and
  ``credit_hint`` in the message of an ``OutOfCredit`` (HTTP 402). The client is kept between calls
  (keep-alive) and belongs to the event loop that made it: a call from another loop gets a new one;
* :meth:`auth_headers` are the headers that carry the key (``auth_header: auth_prefix + key``, plus
  ``extra_headers``), for calls to the API itself only, never to the hosts serving the images;
* :meth:`aclose` drops the client: a later call connects again.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any, ClassVar

import httpx

from .base import GenerationRequest, Provider
from .errors import AuthFailed, InvalidRequest, Transient
from .http import DEFAULT_CREDIT_HINT, DEFAULT_MAX_DOWNLOAD_BYTES, DEFAULT_MAX_JSON_BYTES, DEFAULT_TIMEOUT_S, ProviderHTTP, decode_base64_image
from .options import number_setting, pick_params, snap_size


#: the settings :class:`HostedProvider` reads (besides the common ones): an adapter built on it declares them
#: with its own, ``accepted_settings = HOSTED_SETTINGS | {"poll_interval_s"}``
HOSTED_SETTINGS: frozenset[str] = frozenset({"base_url", "max_download_bytes", "max_json_bytes"})


def _running_loop() -> asyncio.AbstractEventLoop | None:
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        return None


class HostedProvider(Provider):
    """Base class of the adapters for hosted image APIs reached with one key."""

    #: environment variable holding the key, and the one that may override the base URL
    key_env: ClassVar[str]
    base_env: ClassVar[str]
    default_base_url: ClassVar[str]
    #: the key goes in ``auth_header`` as ``auth_prefix + key``
    auth_header: ClassVar[str] = "Authorization"
    auth_prefix: ClassVar[str] = "Bearer "
    #: sent along with the key on every API call
    extra_headers: ClassVar[dict[str, str]] = {}
    #: style parameters the API takes, and Limner's generic names for some of them
    supported_params: ClassVar[tuple[str, ...]] = ()
    param_aliases: ClassVar[dict[str, str]] = {}
    #: HTTP timeout (seconds) when ``timeout_s`` is not set
    default_timeout_s: ClassVar[float] = DEFAULT_TIMEOUT_S
    #: what an OutOfCredit message tells the user to do
    credit_hint: ClassVar[str] = DEFAULT_CREDIT_HINT

    def __init__(self, *, model: str | None = None, settings: dict[str, Any] | None = None) -> None:
        super().__init__(model=model, settings=settings)
        self._http: ProviderHTTP | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._auth: dict[str, str] = {}

    # -- settings ---------------------------------------------------------------------------

    def base_url(self) -> str:
        """``providers.<name>.base_url``, else ``base_env`` (environment or .env), else ``default_base_url``."""
        return str(self.settings.get("base_url") or self.secret(self.base_env) or self.default_base_url).rstrip("/")

    @property
    def timeout_s(self) -> float:
        return number_setting(self.name, self.settings, "timeout_s", self.default_timeout_s)

    # -- plumbing ---------------------------------------------------------------------------

    @property
    def http(self) -> ProviderHTTP:
        """The client, built on first use (``AuthFailed`` when the key is missing)."""
        loop = _running_loop()
        if self._http is None or (loop is not None and self._loop is not loop):
            key = self.secret(self.key_env)
            if not key:
                raise AuthFailed(f"{self.name}: {self.key_env} is not set (environment or .env)")
            self.check_credentials()  # a key with a line break: refused before h11 shows it in an error
            max_bytes = int(number_setting(self.name, self.settings, "max_download_bytes", DEFAULT_MAX_DOWNLOAD_BYTES))
            max_json = int(number_setting(self.name, self.settings, "max_json_bytes", DEFAULT_MAX_JSON_BYTES))
            http = ProviderHTTP(self.name, base_url=self.base_url(), timeout_s=self.timeout_s, max_download_bytes=max_bytes,
                                max_json_bytes=max_json,
                                secrets=[key], on_error=self.error_hook, credit_hint=self.credit_hint)
            self._auth = {self.auth_header: f"{self.auth_prefix}{key}", **self.extra_headers}
            # a client from a loop that is gone cannot be closed any more: it is dropped with its loop
            self._http, self._loop = http, loop
        return self._http

    async def prepare(self) -> None:
        """The client (and its TLS context), before the call's ledger line: ``AuthFailed`` for a missing key."""
        self.http  # noqa: B018 - the property builds it

    def credential_names(self) -> list[str]:
        return list(dict.fromkeys([*super().credential_names(), self.key_env]))

    def _secret_values(self) -> list[str | None]:
        """The key (and the base URL's password, if any), redacted from every message."""
        from urllib.parse import urlsplit

        return [*super()._secret_values(), self.secret(self.key_env), urlsplit(self.base_url()).password]

    def _connect(self) -> ProviderHTTP:
        return self.http

    def auth_headers(self) -> dict[str, str]:
        """The headers carrying the key, for the API's own URLs only (connects first)."""
        self._connect()
        return self._auth

    async def error_hook(self, response: httpx.Response) -> None:
        """Called with each answer of status >= 400 (body read) before the generic status mapping:
        raise a provider error to replace it (a refusal, a wait given in the body). Default: nothing."""

    async def aclose(self) -> None:
        http, self._http, self._loop = self._http, None, None
        if http is not None:
            try:
                await http.aclose()
            except RuntimeError:  # its event loop is gone: nothing left to release
                pass

    # -- fitting a request ------------------------------------------------------------------

    def fit_size(self, request: GenerationRequest, *, min_side: int = 64) -> tuple[int, int]:
        """Refuse sides over ``capabilities.max_side``; snap the rest to ``capabilities.size_multiple``."""
        caps = self.capabilities
        if max(request.width, request.height) > caps.max_side:
            raise InvalidRequest(f"{self.name}: {request.width}x{request.height} exceeds {caps.max_side}px")
        return snap_size(request.width, request.height, multiple=caps.size_multiple, max_side=caps.max_side,
                         min_side=min_side)

    def api_params(self, params: Mapping[str, Any]) -> dict[str, Any]:
        """A style's parameters under the API's names; unsupported ones are dropped with a log line."""
        renamed = {self.param_aliases.get(k, k): v for k, v in params.items()}
        return pick_params(self.name, renamed, self.supported_params)

    # -- reading an answer ------------------------------------------------------------------

    def b64_json_image(self, answer: Any, *, billed_usd: float = 0.0) -> bytes:
        """The image of an OpenAI-style answer, ``{"data": [{"b64_json": "..."}]}``, decoded under the cap.
        ``billed_usd``: what the call cost; an answer without a readable image was still a paid call, so its
        error carries it (the ledger counts it, and a spend cap holds on the next attempt)."""
        items = answer.get("data") if isinstance(answer, dict) else None
        encoded = items[0].get("b64_json") if items and isinstance(items[0], dict) else None
        if not isinstance(encoded, str) or not encoded:
            raise Transient(f"{self.name}: the answer has no data[0].b64_json", billed_usd=billed_usd)
        return decode_base64_image(self.name, encoded, self.http.max_download_bytes, billed_usd=billed_usd)
