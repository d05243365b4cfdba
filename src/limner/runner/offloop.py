"""Blocking work off the event loop: database calls on their own threads, storage calls on others.

The database threads take work in priority order: a write that a provider slot is waiting for (the
paid-call journal: a call's line before it goes out, its provider id as soon as it is known) jumps
ahead of the bookkeeping queued behind it (claims, renders, variants). With SQLite there is one
database thread (one writer at a time), so without this a call would go out only after every
write queued before it; measured on 192 entries at 1 s, 16 at a time, the journal waited 7.5 ms
on average before each call, 0.75% of every slot's time.

The same goes for the GIL: the database and storage threads run Python (SQLAlchemy, XMP packets) while
the event loop waits for answers, and a thread that holds the GIL keeps it for up to the interpreter's
switch interval (5 ms by default) before the loop gets a turn. During a run the interval is 1 ms
(:func:`responsive_loop`): measured on 400 entries at 0.5 s, 16 at a time, on 2 cores, 0.918 of the
ideal became 0.926.
"""

from __future__ import annotations

import asyncio
import functools
import itertools
import queue
import sys
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from typing import Any, TypeVar

T = TypeVar("T")

#: priorities of database work (lower runs first)
URGENT, NORMAL = 0, 1


class PriorityThreads:
    """A fixed set of threads that run submitted calls lowest priority first, in submission order within
    a priority. ``shutdown`` runs what is queued, then stops the threads."""

    def __init__(self, threads: int, name: str) -> None:
        self._queue: queue.PriorityQueue[tuple[int, int, Callable[[], Any] | None, Future[Any] | None]] = queue.PriorityQueue()
        self._order = itertools.count()
        self._closed = False
        self._lock = threading.Lock()
        self._threads = [threading.Thread(target=self._work, name=f"{name}_{i}", daemon=True) for i in range(max(1, threads))]
        for thread in self._threads:
            thread.start()

    def submit(self, fn: Callable[[], T], priority: int = NORMAL) -> Future[T]:
        future: Future[T] = Future()
        with self._lock:
            if self._closed:
                raise RuntimeError("cannot schedule new work after shutdown")
            self._queue.put((priority, next(self._order), fn, future))
        return future

    def _work(self) -> None:
        while True:
            _priority, _n, fn, future = self._queue.get()
            if fn is None or future is None:  # shutdown's sentinel, queued after all real work
                return
            if not future.set_running_or_notify_cancel():
                continue
            try:
                result = fn()
            except BaseException as exc:  # noqa: BLE001 - handed to whoever waits on the future
                future.set_exception(exc)
            else:
                future.set_result(result)

    def shutdown(self, wait: bool = True) -> None:
        with self._lock:
            if self._closed:
                return
            self._closed = True
            for _ in self._threads:  # after every real item: the largest priority sorts last
                self._queue.put((NORMAL + 1, next(self._order), None, None))
        if wait:
            for thread in self._threads:
                thread.join()


class OffLoop:
    """Runs blocking calls in worker threads so the event loop never waits on them.

    Database calls go to ``db_threads`` threads (one for SQLite: it takes one writer at a time, and
    several writer threads would only wait on each other's locks), in priority order (see the module's
    doc); storage calls go to ``io_threads`` others."""

    def __init__(self, *, db_threads: int = 1, io_threads: int = 8) -> None:
        self._db = PriorityThreads(db_threads, "limner-db")
        self._io = ThreadPoolExecutor(io_threads, thread_name_prefix="limner-io")

    async def db(self, fn: Callable[..., T], /, *args: object, **kwargs: object) -> T:
        """``fn(*args, **kwargs)`` on a database thread, after the urgent work queued."""
        return await asyncio.wrap_future(self._db.submit(functools.partial(fn, *args, **kwargs)))

    async def db_urgent(self, fn: Callable[..., T], /, *args: object, **kwargs: object) -> T:
        """The same, ahead of all non-urgent work queued: for writes a provider slot waits on."""
        return await asyncio.wrap_future(self._db.submit(functools.partial(fn, *args, **kwargs), URGENT))

    async def io(self, fn: Callable[..., T], /, *args: object, **kwargs: object) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._io, functools.partial(fn, *args, **kwargs))

    def shutdown(self) -> None:
        self._db.shutdown(wait=True)
        self._io.shutdown(wait=True)


#: the interpreter's thread switch interval while a run's event loop works beside its threads
LOOP_SWITCH_INTERVAL_S = 0.001


@contextmanager
def responsive_loop(interval_s: float = LOOP_SWITCH_INTERVAL_S) -> Iterator[None]:
    """A shorter thread switch interval for the duration (see the module's doc); the previous one after."""
    previous = sys.getswitchinterval()
    sys.setswitchinterval(interval_s)
    try:
        yield
    finally:
        sys.setswitchinterval(previous)
