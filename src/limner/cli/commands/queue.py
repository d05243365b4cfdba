"""Queue commands on PostgreSQL: ``worker``, ``workers``, ``queue``, ``retry`` (and ``generate --enqueue``).

The engine (procrastinate) is imported only inside the commands: ``limner --help`` never loads it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Optional

import typer

from limner.cli.commands._selection import JsonOpt
from limner.cli.context import err, friendly, get_project, out, print_json
from limner.errors import ConfigError

if TYPE_CHECKING:
    from limner.project import Project
    from limner.runner.plan import Plan


def enqueue_plan_cmd(project: Project, plan: Plan, *, budget: float | None, forcing: bool, as_json: bool) -> None:
    """``limner generate --enqueue``: commit the plan's entries, then one job per entry. With ``--id`` or
    ``--all`` (``forcing``) a published entry's job regenerates it, once (see :mod:`limner.queue.enqueue`)."""
    import asyncio

    from limner.queue.engine import conninfo, ensure_schema, make_app
    from limner.queue.enqueue import commit_plan, enqueue_plan, replaced_renders

    dsn = conninfo(project)
    cap = budget if budget is not None else project.settings.generate.budget_usd
    ensure_schema(dsn)
    replaces = replaced_renders(project, plan) if forcing else {}
    cap_id = commit_plan(project, plan, cap)
    app = make_app(dsn)

    async def go():  # type: ignore[no-untyped-def]
        async with app.open_async():
            return await enqueue_plan(app, plan, cap_id=cap_id, replaces=replaces)

    result = asyncio.run(go())
    data = {"planned": len(plan.items), "skipped": plan.up_to_date + len(plan.held_back), **result.to_dict(),
            "budget_usd": cap}
    if as_json:
        print_json(data)
    else:
        out.print(f"Enqueued {result.enqueued} of {len(plan.items)} planned ({result.already_queued} already queued, "
                  f"{result.replaced} replaced); start workers with `limner worker`.", highlight=False)


def _queue_app(project: Project):  # type: ignore[no-untyped-def]
    from limner.queue.engine import conninfo, ensure_schema, make_app

    dsn = conninfo(project)
    project.db  # opened first: a database that cannot be reached is named (masked), not a traceback
    ensure_schema(dsn)
    return dsn, make_app(dsn)


def register(app: typer.Typer) -> None:
    @app.command("worker")
    @friendly
    def worker_cmd(
        ctx: typer.Context,
        concurrency: Annotated[Optional[int], typer.Option("--concurrency", min=1, help="Jobs at once in this worker (default: [queue] concurrency).")] = None,
        queues: Annotated[Optional[list[str]], typer.Option("--queues", metavar="QUEUE", help="Only these queues (one per provider; repeatable). Default: all.")] = None,
        metrics_port: Annotated[Optional[int], typer.Option("--metrics-port", min=0, max=65535, help="Serve Prometheus metrics on this port (needs the 'queue' extra's prometheus_client).")] = None,
        metrics_host: Annotated[str, typer.Option("--metrics-host", help="Address the metrics are served on.")] = "127.0.0.1",
        log_format: Annotated[str, typer.Option("--log-format", help="Logs on stderr: 'text' (default) or 'json' (one object per line).")] = "text",
        as_json: JsonOpt = False,
    ) -> None:
        """Run queued jobs (PostgreSQL) until SIGTERM or Ctrl-C; in-flight jobs finish first."""
        from limner.runner.pool import start_forkserver

        if log_format not in ("text", "json"):
            raise ConfigError(f"--log-format is 'text' or 'json', not {log_format!r}")
        if log_format == "json":
            import logging

            from limner.queue.logs import use_json_logs

            use_json_logs(min(logging.getLogger("limner").level or logging.INFO, logging.INFO))
        project = get_project(ctx)
        try:
            from limner.providers.sections import check_provider_sections
            from limner.queue.engine import conninfo

            # exit 2 at start, not a failed job per entry later
            check_provider_sections(project.settings, project.settings.providers, installed_only=True)
            dsn = conninfo(project)
            if metrics_port is not None:
                try:
                    import prometheus_client  # noqa: F401
                except ImportError as exc:
                    raise ConfigError("--metrics-port needs prometheus_client", hint="pip install 'limner[queue]'") from exc
            start_forkserver()
            import asyncio

            from limner.gcpause import startup_over
            from limner.queue.worker import run_worker
            from limner.runner.offloop import responsive_loop

            startup_over()  # a long-running process: the garbage collector back on (see gcpause.py)
            names = [q for part in queues or () for q in part.split(",") if q.strip()]
            with responsive_loop():  # the event loop before the database threads (see runner/offloop.py)
                runtime = asyncio.run(run_worker(project, dsn, concurrency=concurrency or project.settings.queue.concurrency,
                                                 queues=names or None, metrics_port=metrics_port,
                                                 metrics_host=metrics_host))
        finally:
            project.close()
        data = {"run_id": runtime.run.id, "host": runtime.run.host, "pid": runtime.run.pid, "published": runtime.done,
                "failed": runtime.failed, "recovered": runtime.recovered, "restarts": runtime.restarts}
        if as_json:
            print_json(data)
        else:
            err.print(f"Worker stopped: {runtime.done} published, {runtime.failed} failed"
                      + (f", {runtime.recovered} kept image(s) recorded after a fault" if runtime.recovered else "")
                      + (f", {runtime.restarts} restart(s) after a lost database or a fault" if runtime.restarts else "")
                      + ".", highlight=False)

    @app.command("workers")
    @friendly
    def workers_cmd(ctx: typer.Context, as_json: JsonOpt = False) -> None:
        """Live queue workers: host, pid, heartbeat and the entries they hold."""
        import datetime as dt

        from limner.db.repository import as_utc_iso
        from limner.runner.claims import LEASE_S, RunIdentity

        project = get_project(ctx)
        try:
            from limner.queue.engine import conninfo

            conninfo(project)
            me, now = RunIdentity(), dt.datetime.now(dt.UTC).replace(tzinfo=None)
            rows = [(r, held) for r, held in project.repo.live_runs(kind="worker") if not me.holder_is_gone(r, now)]
        finally:
            project.close()
        data = [{"run_id": r.id, "host": r.host, "pid": r.pid, "started_at": as_utc_iso(r.started_at),
                 "heartbeat_at": as_utc_iso(r.heartbeat_at),
                 "heartbeat_age_s": round((now - r.heartbeat_at).total_seconds(), 1), "current": held}
                for r, held in rows]
        if as_json:
            print_json({"workers": data, "lease_s": LEASE_S})
            return
        if not data:
            out.print("No live workers.")
        for w in data:
            out.print(f"{w['host']}  pid {w['pid']}  heartbeat {w['heartbeat_age_s']}s ago  "
                      f"current: {', '.join(w['current']) or '-'}", highlight=False, markup=False)

    @app.command("queue")
    @friendly
    def queue_cmd(ctx: typer.Context, as_json: JsonOpt = False) -> None:
        """Jobs on the queue: queued, running, failed and done, per queue."""
        project = get_project(ctx)
        try:
            _, qapp = _queue_app(project)
            import asyncio

            from limner.queue.engine import TASK

            async def go():  # type: ignore[no-untyped-def]
                async with qapp.open_async():
                    return list(await qapp.job_manager.list_queues_async(task=TASK))

            rows = asyncio.run(go())
        finally:
            project.close()
        names = {"todo": "queued", "doing": "running", "failed": "failed", "succeeded": "done", "cancelled": "cancelled",
                 "aborted": "aborted"}
        per_queue = {r["name"]: {names[k]: r.get(k, 0) or 0 for k in names} for r in rows}
        total = {v: sum(q[v] for q in per_queue.values()) for v in names.values()}
        if as_json:
            print_json({**total, "queues": per_queue})
            return
        out.print(f"queued {total['queued']}, running {total['running']}, failed {total['failed']}, done {total['done']}",
                  highlight=False)
        for name, counts in sorted(per_queue.items()):
            out.print(f"  {name}: " + ", ".join(f"{k} {v}" for k, v in counts.items() if v), highlight=False, markup=False)

    @app.command("retry")
    @friendly
    def retry_cmd(
        ctx: typer.Context,
        failed: Annotated[bool, typer.Option("--failed", help="Re-enqueue the failed jobs whose entries failed retryably.")] = False,
        as_json: JsonOpt = False,
    ) -> None:
        """Put failed jobs back on the queue (PostgreSQL)."""
        if not failed:
            raise ConfigError("say what to retry", hint="limner retry --failed")
        project = get_project(ctx)
        try:
            _, qapp = _queue_app(project)
            import asyncio

            from limner.queue.engine import TASK

            statuses = project.repo.entry_statuses()

            def now():  # type: ignore[no-untyped-def]
                import datetime as dt

                return dt.datetime.now(dt.UTC)

            async def go():  # type: ignore[no-untyped-def]
                requeued, held = [], []
                async with qapp.open_async():
                    for job in await qapp.job_manager.list_jobs_async(task=TASK, status="failed"):
                        entry_id = job.task_kwargs.get("entry_id")
                        st = statuses.get(entry_id)
                        if st is not None and st.state == "failed" and not st.retryable:
                            held.append(entry_id)
                            continue
                        try:  # the same job, back to queued (the engine's retry)
                            await qapp.job_manager.retry_job_by_id_async(job.id, retry_at=now())
                        except Exception as exc:  # noqa: BLE001 - a job for the entry is queued already
                            if "procrastinate_jobs_queueing_lock_idx" not in str(exc) and "unique" not in str(exc).lower():
                                raise
                            continue
                        requeued.append(entry_id)
                return requeued, held

            requeued, held = asyncio.run(go())
        finally:
            project.close()
        if as_json:
            print_json({"requeued": len(requeued), "ids": requeued, "not_retryable": held})
        else:
            out.print(f"Re-enqueued {len(requeued)} failed job(s); {len(held)} failed for good (change the entry "
                      "or use `limner generate --id`).", highlight=False)
