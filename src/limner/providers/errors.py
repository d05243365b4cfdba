"""Typed provider errors. Every provider adapter maps its failures onto these.

The runner decides what to do from the type alone:

* ``RateLimited``     -> wait ``retry_after`` seconds (or back off), then retry.
* ``Transient``       -> retry with exponential backoff and jitter.
* ``AnswerLost``     -> a ``Transient``: the request went out, its answer never came; counted at the list price.
* ``OutputExpired``  -> a ``Transient``: the output's URL answers 404/410; a known call is not asked about again.
* ``HostUnreachable`` -> a ``Transient``: the host could not be reached at all (connection refused,
  DNS failure, connect timeout); self-hosted providers pass such a host over for a while.
* ``ContentRefused``  -> permanent failure for this entry; the reason is kept.
* ``InvalidRequest``  -> permanent failure for this entry (bad parameters).
* ``AuthFailed``      -> stops the whole run with one clear message.
* ``OutOfCredit``     -> an ``AuthFailed``: the account cannot pay (HTTP 402, a quota error); stops the run.
* ``SettingsRejected`` -> an ``AuthFailed``: the provider's settings cannot work; stops the run before any call.

Which one applies is decided from the HTTP status, the structure of the answer and the type of the
network exception (see :mod:`limner.providers.http`), never from the text of a message.
"""

from __future__ import annotations

from typing import ClassVar


class ProviderError(Exception):
    """Base class. ``retryable`` tells the runner whether another attempt may help."""

    retryable: bool = False
    #: set when the provider billed the call even though it failed
    billed_usd: float = 0.0

    def __init__(self, message: str = "", *, billed_usd: float = 0.0) -> None:
        super().__init__(message)
        self.message = message
        self.billed_usd = billed_usd

    def __str__(self) -> str:  # never include request headers or tokens
        return self.message or self.__class__.__name__


class RateLimited(ProviderError):
    retryable = True

    def __init__(self, message: str = "rate limited", *, retry_after: float | None = None, billed_usd: float = 0.0) -> None:
        super().__init__(message, billed_usd=billed_usd)
        self.retry_after = retry_after


class Transient(ProviderError):
    retryable = True


class ContentRefused(ProviderError):
    retryable = False


class InvalidRequest(ProviderError):
    retryable = False


class AuthFailed(ProviderError):
    """No call of this provider can succeed until a person fixes something: the run stops. Subclasses say
    what (``refusal``, after the provider's name) and what to do (``fix``)."""

    retryable = False
    refusal: ClassVar[str] = "rejected the credentials"
    fix: ClassVar[str] = "fix the credentials or the account (see `limner doctor`)"


class OutOfCredit(AuthFailed):
    """The account cannot pay for the call (HTTP 402, an "insufficient quota" answer): no entry can
    succeed until credit is added, so it stops the run exactly as :class:`AuthFailed` does. The message
    says where to add credit."""

    refusal = "has no credit left"
    fix = "add credit to the account (the message says where)"


class SettingsRejected(AuthFailed):
    """The provider's settings (``[providers.<name>]``) cannot work (an unknown mode, a pipeline class that
    does not exist, a number that is not one): found before any call goes out, it stops the run with the
    entries untouched, as :class:`AuthFailed` does. The message names the setting."""

    refusal = "cannot use its settings"
    fix = "fix the setting in limner.toml"


class ModelUnavailable(AuthFailed):
    """The model cannot be loaded: a local folder that does not exist, weights neither in the cache nor
    downloadable, a gated or private model without a token that may read it. Stops the run like
    ``AuthFailed`` (no entry could succeed); the message says how to get the weights."""

    refusal = "cannot load its model"
    fix = "make the model's weights available as the message says"


class AnswerLost(Transient):
    """The request went out but its answer never came (a read timeout, a connection dropped while waiting):
    the service may have done the work, and billed it. Retried like any :class:`Transient`; the runner counts
    the call at its list price (it cannot know), so a spend cap holds."""


class OutputExpired(Transient):
    """The call's output is no longer there (HTTP 404/410 on its download): a new call may succeed; asking the
    provider about this call again will not (``fetch_known`` answers ``gone``)."""


class HostUnreachable(Transient):
    """The host could not be reached: connection refused, DNS failure, connect timeout (or a failed TLS
    handshake). Retried like any :class:`Transient`; a self-hosted provider also passes the host over
    for a while when it has others."""
