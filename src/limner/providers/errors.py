"""Typed provider errors. Every provider adapter maps its failures onto these.

The runner decides what to do from the type alone:

* ``RateLimited``   -> wait ``retry_after`` seconds (or back off), then retry.
* ``Transient``     -> retry with exponential backoff and jitter.
* ``ContentRefused``-> permanent failure for this entry; the reason is kept.
* ``InvalidRequest``-> permanent failure for this entry (bad parameters).
* ``AuthFailed``    -> stops the whole run with one clear message.
"""

from __future__ import annotations


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
    retryable = False
