"""The queue engine: a procrastinate app on Limner's PostgreSQL database.

The engine's tables live beside Limner's and are created by the engine's own schema
(:meth:`procrastinate.schema.SchemaManager.get_schema`, what ``procrastinate schema --apply`` runs), on
first use, once, under an advisory lock.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from limner.errors import ConfigError

if TYPE_CHECKING:
    import procrastinate

    from limner.project import Project

#: the job of one entry; it carries ``entry_id``, ``fingerprint`` and ``cap_id``
TASK = "limner.generate_entry"
#: the periodic job (``[queue] schedule``): plan and enqueue what is missing or stale; on queue ``schedule``
SCHEDULE_TASK = "limner.scheduled_enqueue"
log = logging.getLogger("limner.queue")

#: after a lost hand-over (see :func:`_entry_job_manager`), the pause before the next try grows by this much (seconds),
#: up to the most
HAND_OVER_PAUSE_S = 0.05
HAND_OVER_MAX_PAUSE_S = 1.0

_SCHEMA_LOCK = 0x6C696D6E  # "limn": serialises the first creation of the engine's schema


def conninfo(project: Project) -> str:
    """The libpq connection string of the project's database; exit 2 unless it is PostgreSQL."""
    from sqlalchemy.engine import make_url

    url = make_url(project.settings.database.url)
    if url.get_backend_name() != "postgresql":
        raise ConfigError(
            f"the queue needs PostgreSQL, and [database] url is {url.get_backend_name()}",
            hint='set [database] url = "postgresql+psycopg://user@host:5432/db" in limner.toml (see docs/scaling.md); '
                 "on SQLite use `limner generate`")
    try:
        import procrastinate  # noqa: F401
    except ImportError as exc:
        raise ConfigError("the queue needs the 'queue' extra", hint="pip install 'limner[queue]'") from exc
    return url.set(drivername="postgresql").render_as_string(hide_password=False)


def make_app(dsn: str, *, schedule: str | None = None) -> procrastinate.App:
    """The app with Limner's tasks; with ``schedule`` (a cron expression) the periodic enqueue too (only
    workers need it: each defers it, the engine keeps one job per tick)."""
    import procrastinate

    from limner.queue.tasks import register

    if schedule:
        import croniter

        if not croniter.croniter.is_valid(schedule):
            raise ConfigError(f"[queue] schedule is not a cron expression: {schedule!r}",
                              hint='e.g. "0 3 * * 1" (Mondays 03:00 UTC); empty for none')
    app = procrastinate.App(connector=procrastinate.PsycopgConnector(conninfo=dsn))
    app.job_manager = _entry_job_manager(app.connector)  # before any task is configured: they all use it
    register(app, schedule=schedule)
    return app


def _entry_job_manager(connector):  # type: ignore[no-untyped-def]
    """The engine's job manager, but a job that comes back (the engine's retry of a held or paused job, or a dead
    worker's job put back) while another job for its entry is queued ends instead (``succeeded``): the queued
    one does what it would have done. Put back, it would break the rule of one queued job per entry (the
    ``queueing_lock``): the engine's update fails, and the job stayed ``doing`` for as long as its worker lived.
    A forced job that ends so hands its request to a queued unforced job of the same fingerprint (which is
    queued again, forced, under its own budget): alone, that job would find the image published and do nothing.

    The hand-over is lost when another worker takes the queued job first (and, for the job to be refused again, an
    enqueue queues one more meanwhile): the job then tries again, without a count limit (a forced request is never
    dropped), pausing a little longer after each loss (:data:`HAND_OVER_PAUSE_S`). Each loss needs another worker and
    another enqueue to have moved on, so the tries end: with the job back on the queue, or its request handed over."""
    import asyncio

    import attrs
    import procrastinate
    from procrastinate import jobs, manager

    from limner.queue.enqueue import keep_forced

    class EntryJobManager(manager.JobManager):
        async def retry_job(self, job, retry_at=None, priority=None, queue=None, lock=None):  # type: ignore[no-untyped-def]
            losses = 0
            while True:
                try:
                    await super().retry_job(job, retry_at=retry_at, priority=priority, queue=queue, lock=lock)
                    return
                except procrastinate.exceptions.UniqueViolation as exc:
                    if job.queueing_lock is None or "queueing_lock" not in (exc.constraint_name or ""):
                        raise
                if await self._hand_over(job):
                    break
                losses += 1  # the queued job was taken meanwhile, and another queued: try again, never drop it
                log.info("job %s (%s): the job queued for its entry was taken meanwhile (%d time(s)); trying again",
                         job.id, job.queueing_lock, losses)
                await asyncio.sleep(min(HAND_OVER_PAUSE_S * losses, HAND_OVER_MAX_PAUSE_S))
            log.info("job %s (%s): another job for it is queued, which does its work; this one ends", job.id,
                     job.queueing_lock)
            await self.finish_job(job, status=jobs.Status.SUCCEEDED, delete_job=False)

        async def _hand_over(self, job) -> bool:  # type: ignore[no-untyped-def]
            """Whether the queued job for ``job``'s entry does its work now (made forced if it must be); False:
            it was taken meanwhile, and ``job`` may go back on the queue."""
            for queued in await self.list_jobs_async(task=job.task_name, status="todo", queueing_lock=job.queueing_lock):
                args = keep_forced(queued.task_kwargs, job.task_kwargs)
                if args is queued.task_kwargs:
                    return True
                if not await self.cancel_job_by_id_async(queued.id):
                    return False
                try:
                    await self.defer_job_async(attrs.evolve(queued, id=None, status=None, task_kwargs=args))
                except procrastinate.exceptions.AlreadyEnqueued:  # an enqueue came first: look at its job
                    return False
                return True
            return False

    return EntryJobManager(connector=connector)


def ensure_schema(dsn: str) -> bool:
    """Create the engine's tables when they are missing (idempotent). True when it created them."""
    import psycopg
    import procrastinate

    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("SELECT pg_advisory_lock(%s)", (_SCHEMA_LOCK,))
        try:
            if conn.execute("SELECT to_regclass('procrastinate_jobs')").fetchone()[0] is not None:
                return False
            conn.execute(procrastinate.schema.SchemaManager.get_schema())
            return True
        finally:
            conn.execute("SELECT pg_advisory_unlock(%s)", (_SCHEMA_LOCK,))
