"""Blocking work off the event loop: database calls on their own threads, storage calls on others.

The database threads take work in priority order: a write that a provider slot is waiting for (a call's
ledger line, written before the call goes out) comes first; then the journal's notes on calls already out
(their provider ids, how they ended); then the bookkeeping (claims, renders, variants). With SQLite there
is one database thread (one writer at a time), so without this a call would go out only after every write
queued before it; measured on 192 entries at 1 s, 16 at a time, the line waited 7.5 ms on average before
each call, 0.75% of every slot's time (3.3 ms with priorities). The lines of calls about to go out
together are written in one transaction (:class:`Batched`, a group commit).

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
from typing import Any, Generic, TypeVar

T = TypeVar("T")
A = TypeVar("A")

#: priorities of database work (lower runs first): a call's line before it goes out (a provider slot waits
#: on it); the journal's notes on calls already out (their provider ids, how they ended); the rest
URGENT, SOON, NORMAL = 0, 1, 2


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
        """The same, ahead of all other work queued: for writes a provider slot waits on."""
        return await asyncio.wrap_future(self._db.submit(functools.partial(fn, *args, **kwargs), URGENT))

    async def db_soon(self, fn: Callable[..., T], /, *args: object, **kwargs: object) -> T:
        """The same, after the urgent work but before the rest: the journal's notes on calls already out."""
        return await asyncio.wrap_future(self._db.submit(functools.partial(fn, *args, **kwargs), SOON))

    async def db_at(self, priority: int, fn: Callable[..., T], /, *args: object, **kwargs: object) -> T:
        """``fn(*args, **kwargs)`` on a database thread at ``priority`` (:data:`URGENT`, :data:`SOON`, :data:`NORMAL`)."""
        return await asyncio.wrap_future(self._db.submit(functools.partial(fn, *args, **kwargs), priority))

    async def io(self, fn: Callable[..., T], /, *args: object, **kwargs: object) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._io, functools.partial(fn, *args, **kwargs))

    def shutdown(self) -> None:
        self._db.shutdown(wait=True)
        self._io.shutdown(wait=True)


class Batched(Generic[A, T]):
    """A group commit: many coroutines each ask for one database write (``await batched(arg)``); the writes
    asked for while a batch is being written go together in the next batch, one call of ``batch_fn`` (one
    transaction) for all of them, on a database thread at ``priority``. Each caller gets its own result once
    its batch is committed, or the batch's error.

    Used for a call's ledger line: when a round of calls ends together (16 answers within a few ms), 16 units
    want a line each before their next call, and one transaction per line made the last of them wait for the
    15 before it; batched, the 16 lines of a run's first round are written in 2 ms."""

    def __init__(self, off: OffLoop, batch_fn: Callable[[list[A]], list[T]], priority: int = NORMAL) -> None:
        self.off, self.batch_fn, self.priority = off, batch_fn, priority
        self._waiting: list[tuple[A, asyncio.Future[T]]] = []
        self._writer: asyncio.Future[None] | None = None

    async def __call__(self, arg: A) -> T:
        future: asyncio.Future[T] = asyncio.get_running_loop().create_future()
        self._waiting.append((arg, future))
        if self._writer is None or self._writer.done():
            self._writer = asyncio.ensure_future(self._write())
        return await future

    async def _write(self) -> None:
        while self._waiting:
            batch = [(arg, future) for arg, future in self._waiting if not future.done()]  # the cancelled left out
            self._waiting = []
            if not batch:
                continue
            try:
                results = await self.off.db_at(self.priority, self.batch_fn, [arg for arg, _ in batch])
            except asyncio.CancelledError:
                for _, future in batch:
                    future.cancel()
                raise
            except Exception as exc:  # noqa: BLE001 - every caller of the batch gets the error
                for _, future in batch:
                    if not future.done():
                        future.set_exception(exc)
                continue
            for (_, future), result in zip(batch, results, strict=True):
                if not future.done():
                    future.set_result(result)


#: the interpreter's thread switch interval while a run's event loop works beside its threads
LOOP_SWITCH_INTERVAL_S = 0.001


_switch_lock = threading.Lock()
_switch_users = 0
_switch_before = 0.0


@contextmanager
def responsive_loop(interval_s: float = LOOP_SWITCH_INTERVAL_S) -> Iterator[None]:
    """A shorter thread switch interval for the duration (see the module's doc). It is the process's setting:
    runs at the same time in several threads (the studio's regenerations) share it, and the last one to end
    puts the interval that was there before the first back."""
    global _switch_users, _switch_before
    with _switch_lock:
        if _switch_users == 0:
            _switch_before = sys.getswitchinterval()
            sys.setswitchinterval(interval_s)
        _switch_users += 1
    try:
        yield
    finally:
        with _switch_lock:
            _switch_users -= 1
            if _switch_users == 0:
                sys.setswitchinterval(_switch_before)
