"""The process pool for validation and derivation, started without delaying the first provider calls.

* The workers come from a *forkserver* that preloads the imaging stack once
  (Pillow, codecs, imagehash), so each worker is a cheap fork that has it
  already; the forkserver does not preload the ``limner`` script (``__main__``)
  as it would by default.
* The pool starts when the run's first provider call has gone out (or when a
  unit needs it first: an image to resume from), in a background thread: its
  forkserver imports the imaging stack while the calls are out, rather than
  competing for the CPU with the imports and the plan the first calls wait on
  (on a 2-core machine that made the first call 0.1-0.2 s later). Units wait for
  the pool only when they have an image to derive.
* The forkserver, the resource tracker and the workers are born ignoring Ctrl-C
  (a terminal sends it to the whole process group; the main process stops the
  run and shuts the pool down), and the workers exit with the main process: after a
  ``kill -9`` of ``limner generate`` nothing is left running (the forkserver and the resource
  tracker exit once the last holder of their pipes is gone).
"""

from __future__ import annotations

import multiprocessing
import os
import select
import signal
import threading
import time
from concurrent.futures import Future, InvalidStateError, ProcessPoolExecutor

from limner.runner.imaging_task import IMAGING_MODULES, DeriveOptions, warm_up

def _exit_with(pid: int) -> None:
    """Exit when process ``pid`` (the run's main process) exits, even by ``kill -9``.

    Workers are children of the forkserver, not of the main process, and each holds the forkserver's
    "alive" pipe, so neither a parent-death signal nor the forkserver's own exit would end them: a
    thread waits on a pidfd of the main process instead (Linux 5.3+; elsewhere the pool's shutdown
    is the only way out)."""
    try:
        fd = os.pidfd_open(pid)
    except ProcessLookupError:  # already gone
        os._exit(1)
    except (AttributeError, OSError):  # pragma: no cover - no pidfds here
        return

    def watch() -> None:
        select.select([fd], [], [])
        os._exit(1)

    threading.Thread(target=watch, name="limner-exit-with-run", daemon=True).start()


def init_worker(options: DeriveOptions, main_pid: int) -> None:
    """Pool workers leave Ctrl-C to the main process, die with their parent, run at a lower priority
    (the event loop's provider timings matter more than a few ms of derivation: throughput is the
    same, the work just yields to the loop), and run the pipeline once before taking real work."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    _exit_with(main_pid)
    try:
        os.nice(5)
    except OSError:  # pragma: no cover - not permitted here: run at normal priority
        pass
    try:
        warm_up(options)
    except Exception:  # noqa: BLE001 - warming up is an optimisation: a worker that could not still works
        pass


def _preload() -> list[str]:
    # each worker imports the ``limner`` script again as ``__mp_main__``: all it imports is limner.cli.entry
    return ["limner.runner.forkserver_exit", "limner.cli.entry", "limner.runner.imaging_task", *IMAGING_MODULES]


def start_forkserver() -> None:
    """Start the forkserver now: it imports the imaging stack in its own process, and the pool's workers are
    then forked from it at once. Called by :meth:`ImagingPool.begin` and by ``limner worker`` before
    anything else; idempotent. The forkserver and the resource
    tracker are spawned with Ctrl-C ignored (signal dispositions can be set only in the main thread)."""
    from multiprocessing import forkserver

    multiprocessing.get_context("forkserver").set_forkserver_preload(_preload())
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN) if threading.current_thread() is threading.main_thread() else None
    try:
        forkserver.ensure_running()
    finally:
        if previous is not None:
            signal.signal(signal.SIGINT, previous)


class ImagingPool:
    """A ``ProcessPoolExecutor`` that starts in the background when :meth:`begin` is first called (or at once,
    with :meth:`start`); ``ready`` resolves to it."""

    def __init__(self, workers: int, options: DeriveOptions) -> None:
        self.workers = workers
        self.options = options
        self.ready: Future[ProcessPoolExecutor] = Future()
        self._lock = threading.Lock()
        self._executor: ProcessPoolExecutor | None = None
        self._closed = False
        self._thread: threading.Thread | None = None
        #: when :meth:`begin` started it (epoch seconds; None: not started)
        self.started_at: float | None = None

    @classmethod
    def start(cls, options: DeriveOptions, workers: int = 0) -> ImagingPool:
        """A pool started now (a queue worker's: it runs for hours)."""
        pool = cls.later(options, workers)
        pool.begin()
        return pool

    @classmethod
    def later(cls, options: DeriveOptions, workers: int = 0) -> ImagingPool:
        """A pool that starts at the first :meth:`begin` (a run's: see the module's docstring)."""
        return cls(workers or os.cpu_count() or 1, options)

    def begin(self) -> None:
        """Start the forkserver now and the workers in a background thread; each worker runs the pipeline
        once on a tiny image (:func:`warm_up`) before it takes real work. Idempotent; nothing after
        :meth:`shutdown`."""
        with self._lock:
            if self._thread is not None or self._closed:
                return
            self._thread = threading.Thread(target=self._start, args=(multiprocessing.get_context("forkserver"),),
                                            name="limner-pool-start", daemon=True)
            self.started_at = time.time()
        start_forkserver()
        self._thread.start()

    def _start(self, ctx: multiprocessing.context.BaseContext) -> None:
        try:
            with self._lock:
                if self._closed:
                    raise RuntimeError("the run stopped before the imaging pool started")
                executor = ProcessPoolExecutor(max_workers=self.workers, mp_context=ctx, initializer=init_worker,
                                               initargs=(self.options, os.getpid()))
                self._executor = executor
            # one task per worker makes the executor start them all here, off the event loop
            warm = [executor.submit(os.getpid) for _ in range(self.workers)]
            warm[0].result()  # at least one worker is up: derivation can start
        except BaseException as exc:  # noqa: BLE001 - handed to whoever waits for the pool
            self._settle(exc)
            return
        self._settle(executor)

    def _settle(self, value: ProcessPoolExecutor | BaseException) -> None:
        try:
            if isinstance(value, BaseException):
                self.ready.set_exception(value)
            else:
                self.ready.set_result(value)
        except InvalidStateError:  # shut down (cancelled) meanwhile
            pass

    def shutdown(self, *, wait: bool = True) -> None:
        """Stop the workers; queued derivations are dropped. Safe to call while the pool is starting."""
        with self._lock:
            self._closed = True
            executor = self._executor
        if executor is not None:
            executor.shutdown(wait=wait, cancel_futures=True)
        if not self.ready.done():
            self.ready.cancel()
