"""A worker process: runs jobs until SIGTERM or SIGINT, and sends stalled jobs back to the queue.

The engine (procrastinate) stops on the first SIGTERM/SIGINT by taking no new job and waiting for the
jobs in flight (a second signal cancels them: their entries stay claimed by this run, which is then
gone, and the next run or worker resumes them from any stored master). Every worker also looks for
jobs of workers whose heartbeat is older than ``[queue] stalled_after_s`` (killed, lost) and puts them
back in the queue; the unit of work then resumes where the dead worker stopped.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING

from limner.queue.engine import TASK, ensure_schema, make_app
from limner.queue.tasks import WorkerRuntime

if TYPE_CHECKING:
    import procrastinate

    from limner.project import Project

log = logging.getLogger("limner.queue")


async def requeue_stalled(app: procrastinate.App, stalled_after_s: float, every_s: float) -> int:
    """Put the running jobs of dead workers back in the queue, forever (every ``every_s``)."""
    requeued = 0
    while True:
        await asyncio.sleep(every_s)
        try:
            for job in await app.job_manager.get_stalled_jobs(task_name=TASK, seconds_since_heartbeat=stalled_after_s):
                try:
                    await app.job_manager.retry_job(job)  # only while still 'doing': one worker wins
                    requeued += 1
                    log.warning("job %s (%s) of a dead worker is back in the queue", job.id, job.task_kwargs.get("entry_id"))
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


async def run_worker(project: Project, dsn: str, *, concurrency: int, queues: list[str] | None,
                     metrics_port: int | None = None, metrics_host: str = "127.0.0.1") -> WorkerRuntime:
    q = project.settings.queue
    ensure_schema(dsn)
    app = make_app(dsn, schedule=q.schedule or None)
    metrics = None
    if metrics_port is not None:
        from limner.queue.metrics import WorkerMetrics

        metrics = WorkerMetrics(metrics_port, metrics_host)
    runtime = WorkerRuntime(project, dsn, metrics)
    await runtime.start()
    try:
        async with app.open_async():
            recovering = asyncio.create_task(requeue_stalled(app, q.stalled_after_s, max(0.5, q.heartbeat_s)))
            watching = asyncio.create_task(watch_queue(app, metrics, min(5.0, q.heartbeat_s))) if metrics else None
            try:
                await app.run_worker_async(
                    concurrency=concurrency, queues=queues or None, name=f"{runtime.run.host}:{runtime.run.pid}",
                    additional_context={"limner": runtime}, update_heartbeat_interval=q.heartbeat_s,
                    stalled_worker_timeout=q.stalled_after_s, install_signal_handlers=True)
            finally:
                recovering.cancel()
                if watching is not None:
                    watching.cancel()
    finally:
        await runtime.close()
        if metrics is not None:
            metrics.close()
    return runtime
