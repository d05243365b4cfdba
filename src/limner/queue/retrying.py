"""When a job that could not run now comes back (the engine's retry strategy for :data:`limner.queue.engine.TASK`).

A job raises one of :mod:`limner.queue.tasks`' outcomes when its entry cannot be worked on *here, now*:

* ``HeldElsewhere``: another live run holds the entry (a ``limner generate``, or a worker on another host
  within its heartbeat), or this worker already runs a job for it;
* ``Paused``: this worker stopped taking paid work after a storage or database fault;
* ``NotRunnableHere``: the entry's provider cannot run on this worker's machine (mflux off a Mac);
* ``CredentialsRefused``: the provider refused this worker's credentials, which are read again at each job.

Each lasts exactly as long as its cause: a holder finishes, or dies and its claims are taken over; a
paused worker records what it kept and frees the rest; a worker that can run the provider takes the job
(a Mac back online for mflux); a key is fixed in .env. So they come back **without a count limit**, every
``HELD_RETRY_WAIT_S`` at first, then less often (doubling up to ``HELD_RETRY_MAX_WAIT_S``), and the worker logs one line each
time. With a limit, a holder that kept an entry past it (a worker paused for minutes by a store outage)
would make the job fail for good while nothing is wrong with the entry, and the entry would wait for the
next enqueue. (A count could not be kept per kind either: the engine's ``attempts`` counts every retry of
the job.) Any other exception is not retried by the engine (the unit of work already retried the
provider's own faults).

A schedule tick (:data:`limner.queue.engine.SCHEDULE_TASK`) that fails (the database away for a moment, the
catalogue saved half-way, any error) runs again too (:class:`TickRetry`): after ``TICK_RETRY_WAIT_S``, doubling
up to ``TICK_RETRY_MAX_WAIT_S``, for as long as the retry comes before the schedule's next tick, which does the
same work (with a weekly schedule, a failed tick would otherwise leave what is missing for a week).
"""

from __future__ import annotations

import datetime as dt
import time
from typing import Any

import procrastinate

#: the first waits of a job that comes back (seconds), and how many of them before they double
HELD_RETRY_WAIT_S = 5
HELD_RETRY_FAST = 6
#: the longest wait between two tries of a job whose entry is held (seconds)
HELD_RETRY_MAX_WAIT_S = 60
#: how many tries a job whose shared budget is held by calls in flight gets (about twenty minutes of waits):
#: unlike a holder, a reservation a killed worker left never goes away
BUDGET_TRIES = 25


def held_wait_s(attempts: int) -> int:
    """The wait before try ``attempts + 1``: ``HELD_RETRY_WAIT_S`` for the first ``HELD_RETRY_FAST`` tries,
    then doubling up to ``HELD_RETRY_MAX_WAIT_S``."""
    extra = max(0, attempts - HELD_RETRY_FAST + 1)
    return min(HELD_RETRY_MAX_WAIT_S, HELD_RETRY_WAIT_S * 2 ** min(extra, 8))


def gives_up(exception: BaseException, attempts: int, bounded: tuple[type[BaseException], ...]) -> bool:
    """Whether a job that raised a held outcome ``exception`` on try ``attempts + 1`` ends there (fails) instead of
    coming back: only a ``bounded`` kind, after ``BUDGET_TRIES`` tries."""
    return isinstance(exception, bounded) and attempts + 1 >= BUDGET_TRIES


class HeldRetry(procrastinate.BaseRetryStrategy):
    """The engine's retry decision for one job (see the module's docstring)."""

    def __init__(self, *, held: tuple[type[BaseException], ...], bounded: tuple[type[BaseException], ...] = ()) -> None:
        self.held, self.bounded = held, bounded

    def get_retry_decision(self, *, exception: BaseException, job: Any) -> procrastinate.RetryDecision | None:
        if not isinstance(exception, self.held):
            return None
        if gives_up(exception, job.attempts, self.bounded):
            return None  # the job fails, with the exception's message
        return procrastinate.RetryDecision(retry_in={"seconds": held_wait_s(job.attempts)})


#: the first wait before a failed schedule tick runs again (seconds), doubling at each failure up to the longest
TICK_RETRY_WAIT_S = 30
TICK_RETRY_MAX_WAIT_S = 3600


def tick_wait_s(attempts: int) -> int:
    """The wait before try ``attempts + 1`` of a failed schedule tick."""
    return min(TICK_RETRY_MAX_WAIT_S, TICK_RETRY_WAIT_S * 2 ** min(attempts, 16))


class TickRetry(procrastinate.BaseRetryStrategy):
    """The engine's retry decision for a schedule tick that failed: again after :func:`tick_wait_s`, while that
    is before the schedule's next tick (which then does the work); never past it."""

    def __init__(self, cron: str) -> None:
        self.cron = cron

    def get_retry_decision(self, *, exception: BaseException, job: Any) -> procrastinate.RetryDecision | None:
        import croniter

        now = time.time()
        retry_at = now + tick_wait_s(job.attempts)
        tick = job.task_kwargs.get("timestamp")
        next_tick = croniter.croniter(self.cron, float(tick) if isinstance(tick, (int, float)) else now).get_next(float)
        if retry_at >= next_tick:
            return None  # the job fails, with the exception's message; the next tick plans everything again
        return procrastinate.RetryDecision(retry_at=dt.datetime.fromtimestamp(retry_at, dt.timezone.utc))
