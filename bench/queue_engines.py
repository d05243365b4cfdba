"""Evaluate procrastinate and pgqueuer on a local PostgreSQL (docs/decisions/0001-queue-engine.md).

    .venv/bin/python bench/queue_engines.py [--jobs 300] [--workers 3] [--job-s 0.05]

For each engine, on a fresh database: install its schema with its own command, enqueue N jobs (timed),
enqueue the same N keys again (deduplication), run them with W worker processes (drain time), then
one job that fails once (retry), then kill -9 a worker in the middle of a job and time how long until
another worker has finished that job (stalled-job recovery). Each job appends one JSON line to a file.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

ADMIN = "postgresql://postgres@127.0.0.1:5432/postgres"


def fresh_db() -> str:
    import psycopg

    name = f"limner_qeval_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(ADMIN, autocommit=True) as c:
        c.execute(f'CREATE DATABASE "{name}"')
    return name


def drop_db(name: str) -> None:
    import psycopg

    with psycopg.connect(ADMIN, autocommit=True) as c:
        c.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def dsn(name: str) -> str:
    return f"postgresql://postgres@127.0.0.1:5432/{name}"


def note(log: str, **fields: object) -> None:
    with open(log, "a", encoding="utf-8") as fh:
        fh.write(json.dumps({**fields, "pid": os.getpid(), "t": time.time()}) + "\n")


async def job_body(log: str, key: str, job_s: float, attempt: int) -> None:
    note(log, ev="start", key=key, attempt=attempt)
    if key.startswith("fail-once") and not Path(log + ".failed-" + key).exists():
        Path(log + ".failed-" + key).touch()
        raise RuntimeError("first attempt fails")
    await asyncio.sleep(30.0 if key.startswith("slow") else job_s)
    note(log, ev="end", key=key)


# ----------------------------------------------------------------------------- procrastinate
def procrastinate_app(db: str, log: str, job_s: float):  # type: ignore[no-untyped-def]
    import procrastinate

    app = procrastinate.App(connector=procrastinate.PsycopgConnector(conninfo=dsn(db)))

    @app.task(name="work", pass_context=True, retry=procrastinate.RetryStrategy(max_attempts=3, wait=0))
    async def work(context, key: str) -> None:  # type: ignore[no-untyped-def]
        await job_body(log, key, job_s, context.job.attempts)

    @app.periodic(cron="* * * * *")
    @app.task(name="recover", pass_context=True)
    async def recover(context, timestamp: int) -> None:  # type: ignore[no-untyped-def]
        pass

    return app, work


async def procrastinate_enqueue(db: str, log: str, keys: list[str]) -> tuple[int, int]:
    import procrastinate

    app, work = procrastinate_app(db, log, 0)
    async with app.open_async():
        made = skipped = 0
        for key in keys:
            try:
                await work.configure(queueing_lock=key).defer_async(key=key)
                made += 1
            except procrastinate.exceptions.AlreadyEnqueued:
                skipped += 1
    return made, skipped


async def procrastinate_worker(db: str, log: str, job_s: float, concurrency: int) -> None:
    app, _ = procrastinate_app(db, log, job_s)
    async with app.open_async():
        async def recover_stalled() -> None:  # what Limner has to add: retry jobs of dead workers
            while True:
                await asyncio.sleep(1.0)
                for job in await app.job_manager.get_stalled_jobs(seconds_since_heartbeat=3):
                    await app.job_manager.retry_job(job)
        t = asyncio.create_task(recover_stalled())
        await app.run_worker_async(concurrency=concurrency, update_heartbeat_interval=1, stalled_worker_timeout=3)
        t.cancel()


def procrastinate_install(db: str) -> float:
    started = time.perf_counter()  # what `procrastinate schema --apply` runs
    app, _ = procrastinate_app(db, "/dev/null", 0)

    async def apply() -> None:
        async with app.open_async():
            await app.schema_manager.apply_schema_async()
    asyncio.run(apply())
    return time.perf_counter() - started


def procrastinate_counts(db: str) -> dict[str, int]:
    import psycopg

    with psycopg.connect(dsn(db)) as c:
        return dict(c.execute("SELECT status::text, count(*) FROM procrastinate_jobs WHERE task_name='work' GROUP BY 1").fetchall())


# ----------------------------------------------------------------------------- pgqueuer
async def pgqueuer_connect(db: str):  # type: ignore[no-untyped-def]
    import psycopg

    return await psycopg.AsyncConnection.connect(dsn(db), autocommit=True)


async def pgqueuer_enqueue(db: str, log: str, keys: list[str]) -> tuple[int, int]:
    from pgqueuer import PsycopgDriver, Queries
    from pgqueuer.errors import DuplicateJobError

    conn = await pgqueuer_connect(db)
    q = Queries(PsycopgDriver(conn))
    made = skipped = 0
    for key in keys:
        try:
            await q.enqueue("work", key.encode(), dedupe_key=key)
            made += 1
        except DuplicateJobError:
            skipped += 1
    await conn.close()
    return made, skipped


async def pgqueuer_worker(db: str, log: str, job_s: float, concurrency: int, limit: int) -> None:
    from datetime import timedelta

    from pgqueuer import DatabaseRetryEntrypointExecutor, PgQueuer, PsycopgDriver

    conn = await pgqueuer_connect(db)
    pgq = PgQueuer(PsycopgDriver(conn))

    @pgq.entrypoint("work", concurrency_limit=limit,
                    executor_factory=lambda p: DatabaseRetryEntrypointExecutor(parameters=p, max_attempts=3,
                                                                               initial_delay=timedelta(0)))
    async def work(job) -> None:  # type: ignore[no-untyped-def]
        await job_body(log, job.payload.decode(), job_s, job.attempts)

    await pgq.run(max_concurrent_tasks=max(2 * 10, concurrency), heartbeat_timeout=timedelta(seconds=3),
                  dequeue_timeout=timedelta(seconds=1))


def pgqueuer_install(db: str) -> float:
    started = time.perf_counter()
    subprocess.run([sys.executable, "-m", "pgqueuer", "install"], check=True, capture_output=True,
                   env={**os.environ, "PGHOST": "127.0.0.1", "PGUSER": "postgres", "PGDATABASE": db})
    return time.perf_counter() - started


def pgqueuer_counts(db: str) -> dict[str, int]:
    import psycopg

    with psycopg.connect(dsn(db)) as c:
        queued = dict(c.execute("SELECT status::text, count(*) FROM pgqueuer WHERE entrypoint='work' GROUP BY 1").fetchall())
        done = dict(c.execute("SELECT status::text, count(*) FROM pgqueuer_log WHERE entrypoint='work' GROUP BY 1").fetchall())
        return {**queued, **{f"log:{k}": v for k, v in done.items()}}


# ----------------------------------------------------------------------------- driver
def spawn(engine: str, db: str, log: str, job_s: float, concurrency: int, limit: int) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, __file__, "--worker", engine, db, log, str(job_s), str(concurrency), str(limit)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)


def events(log: str) -> list[dict]:
    p = Path(log)
    return [json.loads(x) for x in p.read_text().splitlines()] if p.exists() else []


def wait_for(pred, timeout: float) -> bool:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return True
        time.sleep(0.05)
    return False


def max_in_flight(evs: list[dict]) -> int:
    points = sorted([(e["t"], 1 if e["ev"] == "start" else -1) for e in evs], key=lambda x: (x[0], x[1]))
    cur = best = 0
    for _, d in points:
        cur += d
        best = max(best, cur)
    return best


def evaluate(engine: str, n: int, workers: int, job_s: float, concurrency: int, limit: int) -> dict:
    db = fresh_db()
    log = f"/tmp/{db}.jsonl"
    res: dict = {"engine": engine}
    procs: list[subprocess.Popen] = []
    try:
        res["install_s"] = round((procrastinate_install if engine == "procrastinate" else pgqueuer_install)(db), 2)
        enqueue = procrastinate_enqueue if engine == "procrastinate" else pgqueuer_enqueue
        keys = [f"k{i:04d}" for i in range(n)]
        t0 = time.perf_counter()
        made, _ = asyncio.run(enqueue(db, log, keys))
        res["enqueue_s"] = round(time.perf_counter() - t0, 3)
        made2, skipped2 = asyncio.run(enqueue(db, log, keys))
        res["jobs_after_two_enqueues"] = made + made2
        res["second_enqueue_skipped"] = skipped2
        t0 = time.perf_counter()
        procs = [spawn(engine, db, log, job_s, concurrency, limit) for _ in range(workers)]
        ok = wait_for(lambda: sum(1 for e in events(log) if e["ev"] == "end") >= n, 120)
        res["drain_s"] = round(time.perf_counter() - t0, 2)
        res["all_done"] = ok
        evs = events(log)
        res["jobs_per_s"] = round(n / res["drain_s"], 1)
        res["max_in_flight"] = max_in_flight(evs)
        res["workers_used"] = len({e["pid"] for e in evs})
        res["ran_twice"] = sum(1 for k in keys if sum(1 for e in evs if e.get("key") == k and e["ev"] == "end") > 1)
        # retry: a job that fails once
        asyncio.run(enqueue(db, log, ["fail-once-1"]))
        res["retried_after_failure"] = wait_for(
            lambda: any(e.get("key") == "fail-once-1" and e["ev"] == "end" for e in events(log)), 30)
        # stalled: kill -9 the worker running "slow-1", time until another worker finishes it
        asyncio.run(enqueue(db, log, ["slow-1"]))
        wait_for(lambda: any(e.get("key") == "slow-1" for e in events(log)), 30)
        victim = next(e["pid"] for e in events(log) if e.get("key") == "slow-1")
        os.kill(victim, signal.SIGKILL)
        killed_at = time.time()
        restarted = wait_for(lambda: sum(1 for e in events(log) if e.get("key") == "slow-1" and e["ev"] == "start") >= 2, 120)
        starts = [e for e in events(log) if e.get("key") == "slow-1" and e["ev"] == "start"]
        res["stalled_job_restarted"] = restarted
        res["stalled_restart_after_s"] = round(starts[-1]["t"] - killed_at, 1) if restarted else None
        res["counts"] = (procrastinate_counts if engine == "procrastinate" else pgqueuer_counts)(db)
    finally:
        for p in procs:
            try:
                os.killpg(p.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            p.wait()
        drop_db(db)
    return res


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--worker":
        engine, db, log, job_s, conc, limit = sys.argv[2:8]
        if engine == "procrastinate":
            asyncio.run(procrastinate_worker(db, log, float(job_s), int(conc)))
        else:
            asyncio.run(pgqueuer_worker(db, log, float(job_s), int(conc), int(limit)))
        return
    ap = argparse.ArgumentParser()
    ap.add_argument("--jobs", type=int, default=300)
    ap.add_argument("--workers", type=int, default=3)
    ap.add_argument("--job-s", type=float, default=0.05)
    ap.add_argument("--concurrency", type=int, default=10, help="jobs at once per worker")
    ap.add_argument("--limit", type=int, default=0, help="pgqueuer's concurrency_limit (0: none)")
    ap.add_argument("--engine", action="append")
    a = ap.parse_args()
    for engine in a.engine or ["procrastinate", "pgqueuer"]:
        print(json.dumps(evaluate(engine, a.jobs, a.workers, a.job_s, a.concurrency, a.limit)), flush=True)


if __name__ == "__main__":
    main()
