"""Call a provider with bounded concurrency, a rate limit, a timeout and retries.

Retries use tenacity: exponential backoff with jitter for transient errors, and
the provider's ``Retry-After`` for rate limits. Concurrency slots are released
while waiting, so a backing-off call never blocks another.
"""

from __future__ import annotations

import asyncio
import random
import time
from dataclasses import dataclass

from aiolimiter import AsyncLimiter
from tenacity import AsyncRetrying, RetryCallState, retry_if_exception_type, stop_after_attempt, wait_exponential_jitter

from limner.providers import AuthFailed, GenerationRequest, GenerationResult, Provider, RateLimited, Transient
from limner.providers.base import _slot_release


class RunStopped(Exception):
    """The run is stopping (first Ctrl-C): no new provider call starts."""


@dataclass
class CallStats:
    attempts: int = 0
    latency_ms: int = 0
    #: billed failed attempts (USD)
    billed_failures_usd: float = 0.0


class RetryAfterOrBackoff:
    """tenacity wait: the server's Retry-After when it sent one, else exponential backoff with jitter."""

    def __init__(self, initial: float, maximum: float, retry_after_max: float = 600.0) -> None:
        self.maximum = maximum
        self.retry_after_max = retry_after_max
        self.backoff = wait_exponential_jitter(multiplier=initial, max=maximum, jitter=initial)

    def __call__(self, state: RetryCallState) -> float:
        exc = state.outcome.exception() if state.outcome else None
        if isinstance(exc, RateLimited) and exc.retry_after is not None:
            # the server's word wins over our backoff settings, up to its own cap (retry_after_max_s); a
            # little jitter keeps concurrent callers from coming back in the same instant
            wait = min(self.retry_after_max, max(0.0, exc.retry_after))
            return wait + random.uniform(0, min(1.0, 0.1 * max(wait, 0.1)))
        return float(self.backoff(state))


class ProviderGate:
    """Concurrency slots, rate limiter and retry policy for one provider."""

    def __init__(self, provider: Provider, *, concurrency: int, rate_per_minute: float | None, timeout_s: float | None,
                 max_attempts: int, backoff_initial_s: float, backoff_max_s: float,
                 retry_after_max_s: float = 600.0) -> None:
        self.provider = provider
        self.concurrency = concurrency
        self.slots = asyncio.Semaphore(concurrency)
        self.limiter = AsyncLimiter(rate_per_minute, 60) if rate_per_minute else None
        self.timeout_s = timeout_s
        self.max_attempts = max_attempts
        self.wait = RetryAfterOrBackoff(backoff_initial_s, backoff_max_s, retry_after_max_s)
        #: set by the first AuthFailed: no further call is started with credentials known to be bad
        self.auth_failure: AuthFailed | None = None
        #: set on the first Ctrl-C: calls in flight finish (they are paid for), no new one starts
        self.stopping = False
        #: when the first call of this run went out (epoch seconds), for the run's timeline
        self.first_call_at: float | None = None

    async def _once(self, request: GenerationRequest, stats: CallStats) -> GenerationResult:
        await self.slots.acquire()
        released = False

        def release() -> None:  # once: at the end of the call, or earlier when the provider says so
            nonlocal released
            if not released:
                released = True
                self.slots.release()

        token = _slot_release.set(release)
        try:
            if self.stopping:
                raise RunStopped()
            if self.auth_failure is not None:
                raise AuthFailed(str(self.auth_failure))
            if self.limiter is not None:
                await self.limiter.acquire()
            stats.attempts += 1
            if self.first_call_at is None:
                self.first_call_at = time.time()
            try:
                return await self._call(request)
            except AuthFailed as exc:
                self.auth_failure = exc
                raise
        finally:
            _slot_release.reset(token)
            release()

    async def _call(self, request: GenerationRequest) -> GenerationResult:
        coro = self.provider.generate(request)
        if self.timeout_s:
            try:
                return await asyncio.wait_for(coro, self.timeout_s)
            except TimeoutError:
                raise Transient(f"{self.provider.name}: no answer within {self.timeout_s:g}s") from None
        return await coro

    async def call(self, request: GenerationRequest, stats: CallStats) -> GenerationResult:
        if self.stopping:
            raise RunStopped()
        retrying = AsyncRetrying(
            retry=retry_if_exception_type((RateLimited, Transient)),
            stop=stop_after_attempt(self.max_attempts),
            wait=self.wait,
            reraise=True,
        )
        async for attempt in retrying:
            with attempt:
                started = time.perf_counter()
                try:
                    result = await self._once(request, stats)
                except (RateLimited, Transient) as exc:
                    stats.billed_failures_usd += exc.billed_usd
                    raise
                stats.latency_ms = int((time.perf_counter() - started) * 1000)
                return result
        raise AssertionError("unreachable")  # pragma: no cover
