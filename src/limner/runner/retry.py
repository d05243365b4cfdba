"""Call a provider with bounded concurrency, a rate limit, a timeout and retries.

Retries use tenacity: exponential backoff with jitter for transient errors, and
the provider's ``Retry-After`` for rate limits. Concurrency slots are released
while waiting, so a backing-off call never blocks another.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TypeVar

from aiolimiter import AsyncLimiter
from tenacity import AsyncRetrying, RetryCallState, retry_if_exception_type, stop_after_attempt, wait_exponential_jitter

from limner.db.tables import CallStatus
from limner.providers import AnswerLost, AuthFailed, GenerationRequest, GenerationResult, Provider, ProviderError, RateLimited, Transient
from limner.providers.base import call_deadline_in, call_ids_to, slot_released_by
from limner.runner.journal import Call, CallJournal

log = logging.getLogger("limner.runner")
T = TypeVar("T")
#: how far from its ledger line's time a call found by its input may have been made (seconds: the two clocks)
UNNAMED_WINDOW_S = 120.0


class RunStopped(Exception):
    """The run is stopping (first Ctrl-C, or a fault after a paid answer): no new provider call starts."""


class CallTimedOut(Transient):
    """A call passed its overall deadline (``[generate] call_timeout_s`` or the provider's ``timeout_s``)."""


@dataclass
class CallStats:
    #: new (paid) calls made
    attempts: int = 0
    #: times the provider was asked about a call made earlier (no new charge)
    fetches: int = 0
    latency_ms: int = 0


@dataclass(frozen=True)
class Answer:
    """An image in hand, and the journaled call it came from (its ledger line is closed when the render
    is recorded)."""

    result: GenerationResult
    call: Call


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
        #: called (soon, on the event loop) once the gate's first call is on its way: the run starts its
        #: imaging pool then (see runner/pool.py)
        self.on_first_call: Callable[[], None] | None = None

    def renew(self, provider: Provider) -> Provider:
        """Make the gate's calls with ``provider`` (a new instance: its credentials read again) and forget the
        refusal of the old one (:attr:`auth_failure`); calls in flight finish on the old instance, which is
        returned for its owner to close once they have. A queue worker's way back after a refusal."""
        old, self.provider, self.auth_failure = self.provider, provider, None
        return old

    async def _once(self, request: GenerationRequest, stats: CallStats, journal: CallJournal) -> Answer:
        await self.slots.acquire()
        released = False

        def release() -> None:  # once: at the end of the call, or earlier when the provider says so
            nonlocal released
            if not released:
                released = True
                self.slots.release()

        try:
            with slot_released_by(release):
                if self.auth_failure is not None:  # of its own kind: the run's message says what stopped it
                    raise type(self.auth_failure)(str(self.auth_failure))
                for call in journal.unanswerable():  # killed before the provider named it: look for it, else lost
                    if not await self._find_unnamed(call, request, journal):
                        await journal.settle(call, CallStatus.lost, outcome="lost")
                asked = journal.to_ask_about()
                if asked is not None:  # a call made earlier for this image: its answer first, never a new payment
                    answer = await self._ask_about(asked, request, stats, journal)
                    if answer is not None:
                        return answer
                if self.stopping:
                    raise RunStopped()
                if self.limiter is not None:
                    await self.limiter.acquire()
                if self.stopping:
                    raise RunStopped()
                return await self._new_call(request, stats, journal)
        finally:
            release()

    async def _bounded(self, coro: Awaitable[T]) -> T:
        if not self.timeout_s:
            return await coro
        try:
            with call_deadline_in(self.timeout_s):  # time_left() for the provider (wait_for's task copies it)
                return await asyncio.wait_for(coro, self.timeout_s)
        except TimeoutError:
            raise CallTimedOut(f"{self.provider.name}: no answer within {self.timeout_s:g}s") from None

    async def _new_call(self, request: GenerationRequest, stats: CallStats, journal: CallJournal) -> Answer:
        try:
            await self.provider.prepare()  # what can fail before a request goes out fails here, leaving no line
        except AuthFailed as exc:  # a missing key: no call of this run can be made
            self.auth_failure = exc
            raise
        call = await journal.open()  # written before the call goes out
        stats.attempts += 1
        if self.first_call_at is None:
            self.first_call_at = time.time()
            if self.on_first_call is not None:  # after this task has sent its request
                asyncio.get_running_loop().call_soon(self.on_first_call)
        with call_ids_to(journal.id_sink(call)):
            try:
                result = await self._bounded(self.provider.generate(request))
            except AuthFailed as exc:
                self.auth_failure = exc
                await journal.settle(call, CallStatus.failed, cost_usd=exc.billed_usd, outcome=type(exc).__name__)
                raise
            except ProviderError as exc:
                await journal.flush()
                if call.external_id:  # the provider named the call: it may have succeeded (and billed)
                    if not exc.retryable:  # no next attempt will ask about it: ask now
                        answer = await self._settle_now(call, request, stats, journal, exc)
                        if answer is not None:
                            return answer
                    # else: left open; the next attempt (or the next run) asks about it before paying again
                elif isinstance(exc, CallTimedOut):  # it may still run and bill: look for it by its input (the
                    # service held its answer past the deadline), so that the next attempt asks about it
                    if not await self._found_after_deadline(call, request, journal):
                        await journal.settle(call, CallStatus.lost, outcome="timed_out")
                elif isinstance(exc, AnswerLost):  # sent, unanswered: it may have been done and billed
                    await journal.settle(call, CallStatus.lost, outcome="answer_lost")
                else:
                    await journal.settle(call, CallStatus.failed, cost_usd=exc.billed_usd, outcome=type(exc).__name__)
                raise
        await journal.flush()
        call.cost_usd = result.cost_usd  # the ledger line closes with the render, in one commit
        return Answer(result, call)

    async def _find_unnamed(self, call: Call, request: GenerationRequest, journal: CallJournal) -> bool:
        """Give an earlier run's call that has no id the id of the provider's call it made, when the provider
        can find one no ledger line has (:meth:`Provider.find_unnamed`); True when it did."""
        if call.sent_at is None:
            return False
        window = dt.timedelta(seconds=UNNAMED_WINDOW_S)
        try:
            found = await self._bounded(self.provider.find_unnamed(request, call.sent_at - window, call.sent_at + window))
        except ProviderError as exc:
            if exc.retryable or isinstance(exc, AuthFailed):
                raise  # asked again on the next attempt, or in the run after the credentials are fixed
            log.info("%s: could not look for the unnamed call %s: %s", self.provider.name, call.id, exc)
            return False
        for candidate in await journal.unknown_ids(found) if found else []:
            if await journal.claim_id(call, candidate):  # another run may take it first: then the next one
                log.info("%s: the call of ledger line %s was %s (found by its input)", self.provider.name, call.id,
                         candidate)
                return True
        return False

    async def _found_after_deadline(self, call: Call, request: GenerationRequest, journal: CallJournal) -> bool:
        """A call of this run cut by its deadline before the provider named it: True when the provider finds it
        by its input (:meth:`_find_unnamed`); its line stays open with that id. False (nobody can ask about
        it: it counts lost at its list price) when it finds none or cannot be asked now."""
        try:
            return await self._find_unnamed(call, request, journal)
        except ProviderError as exc:
            log.info("%s: could not look for the call of ledger line %s past its deadline: %s", self.provider.name,
                     call.id, exc)
            return False

    async def _ask_about(self, call: Call, request: GenerationRequest, stats: CallStats,
                         journal: CallJournal) -> Answer | None:
        """Settle an open call by asking the provider about its id. Returns its image if it succeeded;
        None when a new call is fair (it failed retryably, or is gone); raises when it failed for good,
        or the provider cannot be asked right now (retryable: asked again on the next attempt)."""
        assert call.external_id is not None
        stats.fetches += 1
        known = await self._bounded(self.provider.fetch_known(call.external_id, request))
        if known.state == "done" and known.result is not None:
            call.cost_usd = call.cost_usd if not call.this_run else known.result.cost_usd
            return Answer(known.result, call)
        if known.state == "failed":
            await journal.settle(call, CallStatus.failed, cost_usd=known.billed_usd, outcome="failed")
            if known.error is not None and not known.error.retryable:
                raise known.error
            return None
        if known.billed_usd is None:  # gone, or the provider cannot tell: the estimate stays in the ledger
            await journal.settle(call, CallStatus.lost, outcome=known.state)
        else:
            await journal.settle(call, CallStatus.failed, cost_usd=known.billed_usd, outcome=known.state)
        return None

    async def _settle_now(self, call: Call, request: GenerationRequest, stats: CallStats, journal: CallJournal,
                          exc: ProviderError) -> Answer | None:
        try:
            answer = await self._ask_about(call, request, stats, journal)
        except ProviderError as again:
            if again is exc or not again.retryable:
                return None
            log.info("%s: could not ask about call %s (%s); the next run will", self.provider.name, call.external_id, again)
            return None
        return answer

    async def call(self, request: GenerationRequest, stats: CallStats, journal: CallJournal | None = None) -> Answer:
        """One image for ``request``, retried per the policy. Every paid call goes through ``journal``
        (default: one kept in memory)."""
        if self.stopping and (journal is None or journal.to_ask_about() is None):
            raise RunStopped()
        journal = journal if journal is not None else CallJournal(None, None, provider=self.provider.name)
        retrying = AsyncRetrying(
            retry=retry_if_exception_type((RateLimited, Transient)),
            stop=stop_after_attempt(self.max_attempts),
            wait=self.wait,
            reraise=True,
        )
        async for attempt in retrying:
            with attempt:
                started = time.perf_counter()
                answer = await self._once(request, stats, journal)
                stats.latency_ms = int((time.perf_counter() - started) * 1000)
                return answer
        raise AssertionError("unreachable")  # pragma: no cover
