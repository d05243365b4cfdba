"""A worker process: runs jobs until SIGTERM or SIGINT, and sends stalled jobs back to the queue.

The engine (procrastinate) stops on the first SIGTERM/SIGINT by taking no new job and waiting for the
jobs in flight (a second signal stops at once: their entries stay claimed by this run, which is then
gone, and the next run or worker resumes them from any stored master). Every worker also looks for
jobs of workers whose heartbeat is older than ``[queue] stalled_after_s`` (killed, lost) and puts them
back in the queue; the unit of work then resumes where the dead worker stopped.

:class:`Supervisor` keeps the worker alive through two kinds of trouble, with a backoff (tenacity's
exponential wait with jitter, :data:`BACKOFF_INITIAL_S` doubling to :data:`BACKOFF_MAX_S`) and a log line
for each retry, never a crash loop:

* **the database is lost** (a restart, a failover, dropped connections): the engine stops taking jobs, the
  jobs in flight finish, and the engine starts again once a connection succeeds. A job whose end could not
  be written stays ``doing`` under the old engine worker, whose heartbeat has stopped: it is put back on
  the queue (:func:`requeue_stalled`) and finds its entry published, or resumes it.
* **a storage or database fault after a paid answer** (the image is kept in the database, or in
  ``.limner/recovery/`` when the database failed too, as in ``limner generate``): the worker pauses. It takes no new job, starts no new provider call, lets the calls
  in flight finish (their images are kept too), then waits until the store passes its check and the
  database takes a write, records the kept images without a provider call, and only then takes jobs
  again (:meth:`limner.queue.tasks.WorkerRuntime.recover`). The paused jobs go back on the queue.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import threading
import time
from typing import TYPE_CHECKING, Any

from limner.queue.engine import SCHEDULE_TASK, TASK, ensure_schema, make_app
from limner.queue.tasks import WorkerRuntime

if TYPE_CHECKING:
    import procrastinate

    from limner.project import Project

log = logging.getLogger("limner.queue")

#: the first wait before the engine starts again after a lost database or a fault (seconds)
BACKOFF_INITIAL_S = 0.5
#: the longest wait between two tries (seconds)
BACKOFF_MAX_S = 30.0
#: an engine that ran this long before it stopped starts again with the shortest wait (seconds)
BACKOFF_RESET_AFTER_S = 60.0
#: how long one look at the database may take before it counts as away (seconds)
PROBE_TIMEOUT_S = 5


class Interrupted(Exception):
    """The engine stopped without being asked to (a lost database, a fault): start it again later."""

    def __init__(self, reason: str, ran_s: float = 0.0) -> None:
        super().__init__(reason)
        self.ran_s = ran_s


def is_connection_error(exc: BaseException) -> bool:
    """A database that is away or a connection that was dropped (not a bug, not bad SQL)."""
    import procrastinate.exceptions
    import psycopg
    from sqlalchemy.exc import DBAPIError

    seen: set[int] = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        if isinstance(exc, (psycopg.OperationalError, psycopg.InterfaceError, ConnectionError, TimeoutError)):
            return True
        if isinstance(exc, DBAPIError) and (exc.connection_invalidated or isinstance(exc.orig, psycopg.OperationalError)):
            return True
        if isinstance(exc, procrastinate.exceptions.ConnectorException) and exc.__cause__ is None:
            return False
        exc = exc.__cause__ or exc.__context__  # type: ignore[assignment]
    return False


def lost_registration(exc: BaseException) -> bool:
    """The engine's row of this worker is gone: another worker starting judged it stalled (its heartbeat came
    late: a loaded machine, a slow reconnection) and pruned it, so fetching a job breaks the jobs' foreign key
    to it. Its running jobs were put back on the queue meanwhile; the engine must register again."""
    import psycopg

    seen: set[int] = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        if isinstance(exc, psycopg.errors.ForeignKeyViolation) and "worker_id" in (exc.diag.constraint_name or ""):
            return True
        exc = exc.__cause__ or exc.__context__  # type: ignore[assignment]
    return False


async def requeue_stalled(app: procrastinate.App, stalled_after_s: float, every_s: float) -> int:
    """Put the running jobs of dead workers back in the queue, forever (every ``every_s``): entry jobs and the
    schedule's ticks (a tick left ``doing`` is never deferred again: a restarted worker finds it deferred
    already, and what it had not enqueued would wait for the next tick)."""
    requeued = 0
    while True:
        await asyncio.sleep(every_s)
        try:
            stalled = [job for task in (TASK, SCHEDULE_TASK)
                       for job in await app.job_manager.get_stalled_jobs(task_name=task,
                                                                         seconds_since_heartbeat=stalled_after_s)]
            for job in stalled:
                try:
                    await app.job_manager.retry_job(job)  # only while still 'doing': one worker wins
                    requeued += 1
                    log.warning("job %s (%s) of a dead worker is back in the queue", job.id,
                                job.task_kwargs.get("entry_id") or f"schedule tick {job.task_kwargs.get('timestamp')}")
                except Exception as exc:  # noqa: BLE001 - another worker requeued it first
                    log.debug("job %s: %s", job.id, exc)
        except Exception as exc:  # noqa: BLE001 - the database is away: try again later, never crash
            log.warning("looking for stalled jobs failed: %s", exc)


async def watch_queue(app: procrastinate.App, metrics, every_s: float = 5.0) -> None:  # type: ignore[no-untyped-def]
    """Keep the queue-depth gauge current (with ``--metrics-port``)."""
    names = {"todo": "queued", "doing": "running", "failed": "failed", "succeeded": "done"}
    while True:
        try:
            rows = await app.job_manager.list_queues_async(task=TASK)
            metrics.set_queue({v: sum(r.get(k) or 0 for r in rows) for k, v in names.items()})
        except Exception as exc:  # noqa: BLE001 - the database is away: try again later
            log.warning("reading the queue depth failed: %s", exc)
        await asyncio.sleep(every_s)


async def probe(dsn: str) -> None:
    """One short connection and ``SELECT 1``; raises ``psycopg.OperationalError`` while the database is away."""
    import psycopg

    async with await psycopg.AsyncConnection.connect(dsn, autocommit=True, connect_timeout=PROBE_TIMEOUT_S) as conn:
        await conn.execute("SELECT 1")


class Supervisor:
    """Runs the engine's worker until :meth:`stop` (SIGTERM, SIGINT); starts it again with a backoff after a
    lost database or a fault (see the module's docstring)."""

    def __init__(self, app: procrastinate.App, runtime: WorkerRuntime, dsn: str, *, concurrency: int,
                 queues: list[str] | None, metrics: Any = None) -> None:
        self.app, self.runtime, self.dsn, self.metrics = app, runtime, dsn, metrics
        self.concurrency, self.queues = concurrency, queues
        self.q = runtime.project.settings.queue
        self.restarts = 0
        self._stopping = False
        self._stopped: asyncio.Event | None = None
        self._worker: Any = None
        runtime.on_halt = self._pause

    # ------------------------------------------------------------------ control
    def stop(self) -> None:
        """Take no new job; the jobs in flight finish, then :meth:`run` returns."""
        if self._stopping:
            return
        self._stopping = True
        log.info("stopping: no new job; the jobs in flight finish")
        if self._stopped is not None:
            self._stopped.set()
        if self._worker is not None:
            self._worker.stop()

    def _pause(self, reason: str) -> None:
        if self._worker is not None:  # no new job; the jobs in flight finish, then run() waits and recovers
            self._worker.stop()

    # ------------------------------------------------------------------ running
    async def run(self) -> None:
        from tenacity import AsyncRetrying, retry_if_exception, wait_exponential_jitter

        self._stopped = asyncio.Event()
        if self._stopping:
            self._stopped.set()
        restore = self._install_signals()
        try:
            while not self._stopping:
                retrying = AsyncRetrying(
                    retry=retry_if_exception(lambda e: isinstance(e, Interrupted) and e.ran_s < BACKOFF_RESET_AFTER_S),
                    wait=wait_exponential_jitter(multiplier=BACKOFF_INITIAL_S, max=BACKOFF_MAX_S, jitter=BACKOFF_INITIAL_S),
                    sleep=self._sleep, before_sleep=self._log_retry, reraise=True)
                try:
                    async for attempt in retrying:
                        with attempt:
                            await self._generation()
                except Interrupted as exc:  # it ran long and well before this: start again at once
                    self.restarts += 1
                    log.warning("%s; starting again", exc)
        finally:
            restore()

    async def _sleep(self, seconds: float) -> None:
        """The backoff's wait, cut short by :meth:`stop`."""
        assert self._stopped is not None
        try:
            await asyncio.wait_for(self._stopped.wait(), seconds)
        except TimeoutError:
            pass

    def _log_retry(self, state: Any) -> None:
        self.restarts += 1
        wait = state.next_action.sleep if state.next_action else 0.0
        log.warning("%s; retrying in %.1fs (try %d)", state.outcome.exception(), wait, state.attempt_number)

    async def _generation(self) -> None:
        """Run the engine once: until stopped (returns), or until the database is lost or a fault pauses the
        worker (raises :class:`Interrupted`)."""
        import procrastinate.worker

        if self._stopping:
            return
        started = time.monotonic()
        try:
            await probe(self.dsn)
            async with self.app.open_async():
                if self.runtime.halted is not None and not await self.runtime.recover():
                    raise Interrupted(f"paused after a fault ({self.runtime.halted}); the store or the database "
                                      "still fails")
                if self._stopping:
                    return
                side = [asyncio.create_task(requeue_stalled(self.app, self.q.stalled_after_s, max(0.5, self.q.heartbeat_s)))]
                if self.metrics is not None:
                    side.append(asyncio.create_task(watch_queue(self.app, self.metrics, min(5.0, self.q.heartbeat_s))))
                self.app.perform_import_paths()
                self._worker = procrastinate.worker.Worker(
                    app=self.app, **{**self.app.worker_defaults,
                                     "concurrency": self.concurrency, "queues": self.queues or None,
                                     "name": f"{self.runtime.run.host}:{self.runtime.run.pid}",
                                     "additional_context": {"limner": self.runtime},
                                     "update_heartbeat_interval": self.q.heartbeat_s,
                                     "stalled_worker_timeout": self.q.stalled_after_s,
                                     "install_signal_handlers": False})
                try:
                    await self._worker.run()
                finally:
                    self._worker = None
                    for task in side:
                        task.cancel()
        except Interrupted:
            raise
        except Exception as exc:
            if lost_registration(exc):  # judged stalled and pruned by another worker: register again
                if self._stopping:
                    return
                raise Interrupted("this worker's engine registration was pruned by another worker (its heartbeat "
                                  "came late)", time.monotonic() - started) from exc
            if not is_connection_error(exc):
                raise
            if self._stopping:  # its jobs are done; what could not be written is recovered as after a kill
                log.warning("the database was lost while stopping (%s)", exc)
                return
            raise Interrupted(f"the database connection was lost ({type(exc).__name__}: {str(exc).strip()[:300]})",
                              time.monotonic() - started) from exc
        if self._stopping:
            return
        if self.runtime.halted is not None:
            raise Interrupted(f"paused after a fault ({self.runtime.halted})", 0.0)
        raise Interrupted("the engine stopped: its heartbeat or listener lost the database", time.monotonic() - started)

    def _install_signals(self):  # type: ignore[no-untyped-def]
        """SIGTERM/SIGINT: :meth:`stop` on the first; the previous handlers come back, so a second one stops
        at once (as the engine's own handlers do). Returns what puts the previous handlers back."""
        if threading.current_thread() is not threading.main_thread():
            return lambda: None
        loop = asyncio.get_running_loop()
        previous = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
        installed = True

        def restore() -> None:
            nonlocal installed
            if not installed:
                return
            installed = False
            for sig, handler in previous.items():
                loop.remove_signal_handler(sig)
                signal.signal(sig, handler)

        def on_signal() -> None:
            restore()
            self.stop()

        for sig in previous:
            loop.add_signal_handler(sig, on_signal)
        return restore


async def start_runtime(runtime: WorkerRuntime, dsn: str) -> None:
    """The engine's schema and the worker's run, tried again with a backoff while the database is away."""
    from tenacity import AsyncRetrying, retry_if_exception, wait_exponential_jitter

    def log_retry(state: Any) -> None:
        log.warning("starting the worker failed (%s); retrying in %.1fs (try %d)", state.outcome.exception(),
                    state.next_action.sleep if state.next_action else 0.0, state.attempt_number)

    async for attempt in AsyncRetrying(retry=retry_if_exception(is_connection_error), before_sleep=log_retry,
                                       wait=wait_exponential_jitter(multiplier=BACKOFF_INITIAL_S, max=BACKOFF_MAX_S,
                                                                    jitter=BACKOFF_INITIAL_S), reraise=True):
        with attempt:
            await asyncio.to_thread(ensure_schema, dsn)
            await runtime.start()


def queues_runnable_here() -> list[str] | None:
    """The queues a worker takes when none are named: every provider's (a queue per provider), less those of
    providers that cannot run on this machine (``Provider.unavailable``: mflux off Apple silicon) or are not
    installed here, plus the schedule's. None (every queue) when all can run here."""
    from limner.errors import LimnerError
    from limner.registry import provider_class, provider_specs

    runnable, left_out = [], []
    for name in sorted(provider_specs()):
        try:
            ok = provider_class(name).unavailable() is None
        except LimnerError:  # its package is not installed on this machine
            ok = False
        (runnable if ok else left_out).append(name)
    if not left_out:
        return None
    log.info("this worker takes no job of %s: not runnable on this machine (name them with --queues to override)",
             ", ".join(left_out))
    return [*runnable, "schedule"]


async def run_worker(project: Project, dsn: str, *, concurrency: int, queues: list[str] | None,
                     metrics_port: int | None = None, metrics_host: str = "127.0.0.1",
                     supervisor: list[Supervisor] | None = None) -> WorkerRuntime:
    """Run a worker until stopped. ``supervisor``: a list the :class:`Supervisor` is appended to once it
    exists (for a caller in the same process that stops it)."""
    from limner.queue.logs import one_line_outcomes
    from limner.queue.tasks import EntryFailed, HeldElsewhere, Paused

    one_line_outcomes(EntryFailed, HeldElsewhere, Paused)
    if queues is None:
        queues = queues_runnable_here()
    q = project.settings.queue
    app = make_app(dsn, schedule=q.schedule or None)
    metrics = None
    if metrics_port is not None:
        from limner.queue.metrics import WorkerMetrics

        metrics = WorkerMetrics(metrics_port, metrics_host)
    runtime = WorkerRuntime(project, dsn, metrics)
    try:
        await start_runtime(runtime, dsn)
        boss = Supervisor(app, runtime, dsn, concurrency=concurrency, queues=queues, metrics=metrics)
        if supervisor is not None:
            supervisor.append(boss)
        await boss.run()
        runtime.restarts = boss.restarts
    finally:
        await runtime.close()
        if metrics is not None:
            metrics.close()
    return runtime
