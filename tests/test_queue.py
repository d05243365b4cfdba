"""Queue workers on the real PostgreSQL: deduplicated enqueue, a provider's concurrency across worker
processes, SIGTERM, kill -9 and stalled-job recovery, retry of failed jobs, a budget shared by workers."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter

import pytest
from test_db_postgres import pg_url  # noqa: F401  (fixture)
from test_docs import documented, json_docs, json_keys

pytest.importorskip("procrastinate")

FAST_QUEUE = "\n[queue]\nheartbeat_s = 1\nstalled_after_s = 3\n"


def queue_project(make_project_dir, url: str, n: int, extra: str = ""):  # type: ignore[no-untyped-def]
    p = make_project_dir(n, extra=extra)
    p.config.write_text(p.config.read_text().replace("concurrency = 4", "concurrency = 5")
                        + f'spans_file = "{p.root / "spans.jsonl"}"\n'
                        + f'\n[database]\nurl = "{url}"\n' + FAST_QUEUE)
    return p


def spans(p) -> list[dict]:  # type: ignore[no-untyped-def]
    path = p.root / "spans.jsonl"
    return [json.loads(x) for x in path.read_text().splitlines() if x.strip()] if path.exists() else []


def max_in_flight(rows: list[dict]) -> int:
    events = sorted([(r["start"], 1) for r in rows] + [(r["end"], -1) for r in rows], key=lambda e: (e[0], e[1]))
    now = peak = 0
    for _, step in events:
        now += step
        peak = max(peak, now)
    return peak


def start_worker(p, *args: str) -> subprocess.Popen:  # type: ignore[no-untyped-def]
    """A ``limner worker`` process; its stdout and stderr go to files (a pipe nobody reads could block it)."""
    n = len(list(p.root.glob("worker-*.out")))
    out, err = open(p.root / f"worker-{n}.out", "w"), open(p.root / f"worker-{n}.err", "w")  # noqa: SIM115
    proc = subprocess.Popen([sys.executable, "-m", "limner", "--config", str(p.config), "worker", "--json", *args],
                            cwd=p.root, env=p.env(), stdout=out, stderr=err, text=True)
    proc.files = (out.name, err.name)  # type: ignore[attr-defined]
    out.close()
    err.close()
    return proc


def ended(w: subprocess.Popen, timeout: float = 60) -> tuple[int, str, str]:
    code = w.wait(timeout=timeout)
    out, err = (open(f).read() for f in w.files)  # type: ignore[attr-defined]
    return code, out, err


def published(p) -> int:  # type: ignore[no-untyped-def]
    project = p.project()
    try:
        return project.repo.counts_by_state().get("published", 0)
    finally:
        project.close()


def wait_until(pred, timeout: float, what: str) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def stop(workers: list[subprocess.Popen]) -> list[tuple[int, str, str]]:
    for w in workers:
        if w.poll() is None:
            w.send_signal(signal.SIGTERM)
    try:
        return [ended(w) for w in workers]
    except subprocess.TimeoutExpired:  # never leave a worker behind on a database about to be dropped
        for w in workers:
            w.kill()
        raise


def start_workers(p, n: int, *args: str) -> list[subprocess.Popen]:  # type: ignore[no-untyped-def]
    """``n`` workers, once all of them are up (listed by ``limner workers``)."""
    workers = [start_worker(p, *args) for _ in range(n)]
    try:
        wait_until(lambda: len(p.run_json("workers")["workers"]) == n, 60, "the workers to start")
    except AssertionError:
        stop(workers)
        raise
    return workers


def assert_documented(name: str, data: object) -> None:
    """Every key ``limner <name> --json`` printed is listed in its section of docs/cli.md."""
    docs = json_docs(name)
    missing = sorted(k for k in json_keys(data) if not documented(k, docs))
    assert not missing, f"`limner {name} --json` prints keys docs/cli.md does not list: {missing}"


async def test_global_slots_never_exceed_the_limit_and_give_every_lock_back(pg_url):  # noqa: F811
    import asyncio
    import random

    import psycopg

    from limner.queue.limits import GlobalSlots, SlotConnection

    dsn = pg_url.replace("postgresql+psycopg://", "postgresql://")
    sessions = [SlotConnection(dsn) for _ in range(3)]  # three workers
    slots = [GlobalSlots(s, "stress", 5, poll_s=0.005) for s in sessions]
    in_flight = peak = 0

    async def call(g: GlobalSlots) -> None:
        nonlocal in_flight, peak
        await g.acquire()
        in_flight += 1
        peak = max(peak, in_flight)
        await asyncio.sleep(random.uniform(0, 0.01))
        in_flight -= 1
        g.release()

    await asyncio.wait_for(asyncio.gather(*(call(slots[i % 3]) for i in range(300))), 60)
    await asyncio.sleep(0.2)  # unlocks are sent in the background
    assert peak == 5
    async with await psycopg.AsyncConnection.connect(dsn) as conn:
        left = await (await conn.execute("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND database = "
                                       "(SELECT oid FROM pg_database WHERE datname = current_database())")).fetchone()
    assert left[0] == 0  # a lock taken twice by one session (re-entrant) would stay held here
    for s in sessions:
        await s.close()


async def test_global_rate_limit_holds_across_workers(pg_url):  # noqa: F811
    import asyncio
    import time as clock

    from limner.db.engine import Database, create_db_engine
    from limner.queue.limits import GlobalRate, SlotConnection

    db = Database(create_db_engine(pg_url))
    db.migrate()  # Limner's tables, call_starts among them
    db.engine.dispose()
    dsn = pg_url.replace("postgresql+psycopg://", "postgresql://")
    sessions = [SlotConnection(dsn) for _ in range(3)]  # three workers
    window = 1.5
    limits = [GlobalRate(s, "fake", 4, window_s=window) for s in sessions]
    starts: list[float] = []

    async def call(limit: GlobalRate) -> None:
        await limit.acquire()
        starts.append(clock.monotonic())

    began = clock.monotonic()
    await asyncio.wait_for(asyncio.gather(*(call(limits[i % 3]) for i in range(12))), 30)
    starts.sort()
    # never more than 4 starts in any window, so 12 starts need at least two more windows
    assert all(starts[i + 4] - starts[i] >= window - 0.05 for i in range(len(starts) - 4)), starts
    assert starts[-1] - began >= 2 * window - 0.1
    for s in sessions:
        await s.close()


def test_queue_commands_need_postgres(project_dir):
    for args in (["worker"], ["workers"], ["queue"], ["retry", "--failed"], ["generate", "--enqueue"]):
        proc = project_dir.run(*args)
        assert proc.returncode == 2, (args, proc.stdout, proc.stderr)
        assert "needs PostgreSQL" in proc.stderr and "sqlite" in proc.stderr, proc.stderr
    assert project_dir.calls() == []


def test_queue_commands_name_a_database_they_cannot_reach(project_dir):
    """`limner queue` and `limner retry --failed` printed a psycopg traceback when the database could not be
    reached (`workers` and `generate --enqueue` named it); they now say which database, its password masked."""
    env = project_dir.env(LIMNER_DATABASE_URL="postgresql+psycopg://limner:s3cret-Pw-42@127.0.0.1:1/nowhere")
    for args in (["queue"], ["retry", "--failed"], ["workers"], ["generate", "--enqueue"]):
        proc = project_dir.run(*args, env=env)
        assert proc.returncode != 0 and "Traceback" not in proc.stderr, (args, proc.stderr[-3000:])
        assert "cannot open database postgresql+psycopg://limner:***@127.0.0.1:1/nowhere" in proc.stderr, proc.stderr
        assert "s3cret" not in proc.stdout + proc.stderr
    assert project_dir.calls() == []


def test_enqueue_twice_gives_one_job_per_entry_and_a_changed_entry_replaces_its_job(make_project_dir, pg_url):  # noqa: F811
    p = queue_project(make_project_dir, pg_url, 12)
    first = p.run_json("generate", "--enqueue")
    assert (first["enqueued"], first["already_queued"]) == (12, 0), first
    assert_documented("generate", first)
    second = p.run_json("generate", "--enqueue")
    assert (second["enqueued"], second["already_queued"], second["replaced"]) == (0, 12, 0), second
    entries = p.entries()
    entries[3]["title"] = "A different title"  # a new fingerprint for one entry
    p.write_catalog(entries)
    third = p.run_json("generate", "--enqueue")
    assert (third["enqueued"], third["already_queued"], third["replaced"]) == (1, 11, 1), third
    queue = p.run_json("queue")
    assert queue["queued"] == 12 and queue["cancelled"] == 1 and queue["running"] == 0, queue
    assert queue["queues"] == {"fake": {"queued": 12, "running": 0, "failed": 0, "done": 0, "cancelled": 1, "aborted": 0}}
    assert_documented("queue", queue)
    assert p.calls() == []  # enqueuing pays for nothing


def assert_cap_settled(p, budget_id: str, spent_usd: float) -> None:  # type: ignore[no-untyped-def]
    """The shared cap of an enqueue spent ``spent_usd`` and holds nothing in flight any more."""
    project = p.project()
    try:
        cap = project.repo.spend_cap(budget_id)
        assert cap.spent_usd == pytest.approx(spent_usd) and abs(cap.reserved_usd) < 1e-9, cap
    finally:
        project.close()


@pytest.mark.slow
def test_three_workers_hold_the_provider_concurrency_across_processes_and_sigterm_finishes_in_flight(
        make_project_dir, pg_url):  # noqa: F811
    n = 100
    # 100 calls of 0.6 s, 5 at a time: about 12 s of work, so that calls are still in flight after the checks
    # below (three CLI commands of up to a second each on a slow 2-core machine, more when it is loaded)
    p = queue_project(make_project_dir, pg_url, n, extra="latency_s = 0.6\n")
    assert p.run_json("generate", "--enqueue")["enqueued"] == n
    workers = [start_worker(p, "--concurrency", "8") for _ in range(3)]
    try:
        wait_until(lambda: len(spans(p)) >= 10, 60, "the first calls")
        live = p.run_json("workers")["workers"]
        assert sorted(w["pid"] for w in live) == sorted(w.pid for w in workers)
        assert all(w["heartbeat_age_s"] < 5 for w in live)
        assert_documented("workers", p.run_json("workers"))
        # SIGTERM a worker mid-call: it takes no new job and finishes the ones it runs
        def in_flight_of(pid: int) -> set[str]:
            return {c["id"] for c in p.calls() if c["pid"] == pid} - {r["id"] for r in spans(p) if r["pid"] == pid}

        wait_until(lambda: any(in_flight_of(w.pid) for w in workers), 30, "a worker with calls in flight")
        term = next(w for w in workers if in_flight_of(w.pid))
        term.send_signal(signal.SIGTERM)
        cut_short = in_flight_of(term.pid)
        code, out, err = ended(term, 30)
        assert code == 0, err
        assert cut_short and not in_flight_of(term.pid)  # its calls in flight all answered
        wait_until(lambda: published(p) == n, 90, "every entry published")
    finally:
        results = stop(workers)
    assert all(code == 0 for code, _, _ in results), [e[-2000:] for _, _, e in results]
    rows = spans(p)
    assert max_in_flight(rows) <= 5, max_in_flight(rows)  # concurrency = 5 across the three processes
    assert max_in_flight(rows) >= 4  # and they did run in parallel
    calls = Counter(c["id"] for c in p.calls())
    assert len(calls) == n and set(calls.values()) == {1}, calls  # each entry paid once
    assert sum(json.loads(out)["published"] for _, out, _ in results) == n
    assert_documented("worker", json.loads(results[0][1]))
    queue = p.run_json("queue")
    assert (queue["done"], queue["queued"], queue["running"], queue["failed"]) == (n, 0, 0, 0), queue
    assert p.run_json("workers")["workers"] == []


@pytest.mark.slow
def test_a_worker_killed_mid_job_has_its_jobs_finished_by_another_without_paying_twice(make_project_dir, pg_url):  # noqa: F811
    n = 40
    p = queue_project(make_project_dir, pg_url, n, extra="latency_s = 0.5\n")
    workers = start_workers(p, 3, "--concurrency", "4")
    try:
        assert p.run_json("generate", "--enqueue")["enqueued"] == n

        def in_flight_of(pid: int) -> set[str]:  # its calls that started and have not answered
            return {c["id"] for c in p.calls() if c["pid"] == pid} - {r["id"] for r in spans(p) if r["pid"] == pid}

        def busy() -> subprocess.Popen | None:
            return next((w for w in workers if in_flight_of(w.pid)), None)

        wait_until(lambda: busy() is not None, 60, "a worker with calls in flight")
        victim = busy()
        assert victim is not None
        victim.send_signal(signal.SIGKILL)
        victim.wait(timeout=10)
        killed_at = time.time()
        in_flight = in_flight_of(victim.pid)
        assert in_flight
        wait_until(lambda: published(p) == n, 90, "every entry published after the kill")
        recovered_in = time.time() - killed_at
    finally:
        results = [r for w, r in zip(workers, stop(workers)) if w.returncode != -signal.SIGKILL]
    assert all(code == 0 for code, _, _ in results), [e[-2000:] for _, _, e in results]
    calls = Counter(c["id"] for c in p.calls())
    assert set(calls) == {f"event-{i:03d}" for i in range(n)}
    twice = {i for i, k in calls.items() if k > 1}
    assert twice <= in_flight and max(calls.values()) <= 2, (twice, in_flight)  # only calls lost in the kill
    assert recovered_in < 60
    queue = p.run_json("queue")
    assert (queue["queued"], queue["running"], queue["failed"]) == (0, 0, 0), queue
    project = p.project()
    try:
        from limner.db.models import EntryRow

        with project.db.session() as s:
            assert all(e.claimed_by is None for e in s.query(EntryRow).all())
    finally:
        project.close()


@pytest.mark.slow
def test_retry_failed_requeues_retryable_failures(make_project_dir, pg_url):  # noqa: F811
    p = queue_project(make_project_dir, pg_url, 4, extra='transient_ids = {"event-001" = 99}\n')
    p.config.write_text(p.config.read_text().replace("[generate]\n", "[generate]\nmax_attempts = 2\n"))
    assert p.run_json("generate", "--enqueue")["enqueued"] == 4
    worker = start_worker(p)
    try:
        wait_until(lambda: p.run_json("queue")["failed"] == 1 and published(p) == 3, 60, "one failure")
        p.config.write_text(p.config.read_text().replace('transient_ids = {"event-001" = 99}\n', ""))
        stop([worker])
        retried = p.run_json("retry", "--failed")
        assert retried["requeued"] == 1 and retried["ids"] == ["event-001"], retried
        assert_documented("retry", retried)
        assert p.run_json("queue")["queued"] == 1
        worker = start_worker(p)
        wait_until(lambda: published(p) == 4, 60, "the retried entry published")
    finally:
        stop([worker])
    queue = p.run_json("queue")
    assert (queue["failed"], queue["queued"], queue["done"]) == (0, 0, 4), queue


@pytest.mark.slow
def test_a_refused_key_fixed_in_dotenv_is_taken_by_the_running_worker_and_no_job_is_burnt(make_project_dir, pg_url):  # noqa: F811
    """A worker whose provider refused its key (AuthFailed) kept that refusal for its whole life: every later job
    of the provider failed at once without a call (`limner queue` counted them failed, to be re-enqueued by
    hand), and a key fixed in .env was used only after a restart. The jobs now come back without a call while
    the key is the refused one, and the next job after .env changes reads the key again and runs."""
    p = queue_project(make_project_dir, pg_url, 3, extra='auth_env = "FAKE_KEY"\nauth_accepts = "right"\n')
    (p.root / ".env").write_text("FAKE_KEY=not-the-key\n")
    assert p.run_json("generate", "--enqueue")["enqueued"] == 3
    worker = start_worker(p, "--concurrency", "1")
    try:
        wait_until(lambda: "is not a valid key" in open(worker.files[1]).read(), 60, "the key refused")
        time.sleep(1.5)  # the other jobs are taken meanwhile
        queue = p.run_json("queue")
        assert queue["failed"] == 0 and len(p.calls()) == 1, (queue, p.calls())  # nothing burnt, no call repeated
        (p.root / ".env").write_text("FAKE_KEY=right\n")
        wait_until(lambda: published(p) == 3, 60, "every entry published with the fixed key")
    finally:
        [(code, out, err)] = stop([worker])
    assert code == 0, err
    assert json.loads(out)["failed"] == 0, out
    queue = p.run_json("queue")
    assert (queue["failed"], queue["done"]) == (0, 3), queue
    assert len(p.calls()) == 4, p.calls()  # the refused call, then one per entry with the fixed key
    assert "not-the-key" not in err and "right" not in err


def test_refused_credentials_are_tried_again_by_one_job_after_a_doubling_wait_or_at_once_when_changed(project_dir,
                                                                                                    monkeypatch):
    """The back-off of a refusal: the same key is tried again by one job once the wait is over (credit topped up),
    the wait doubling at each refusal; a changed key is tried by the next job."""
    from types import SimpleNamespace

    from limner.queue import tasks
    from limner.queue.tasks import CredentialsRefused, WorkerRuntime

    project_dir.config.write_text(project_dir.config.read_text() + 'auth_env = "FAKE_KEY"\n')
    (project_dir.root / ".env").write_text("FAKE_KEY=wrong\n")
    runtime = WorkerRuntime(project_dir.project(), "")
    now = [1000.0]
    monkeypatch.setattr(tasks.time, "monotonic", lambda: now[0])
    item = SimpleNamespace(lane=SimpleNamespace(name="fake"), entry=SimpleNamespace(id="event-000"))
    refused = SimpleNamespace(stop_reason="provider 'fake' refused the credentials: 401", stop_fix=None)

    assert runtime._may_call(item) is None  # nothing refused yet
    assert isinstance(runtime._refused(item, refused, None), CredentialsRefused)
    with pytest.raises(CredentialsRefused):
        runtime._may_call(item)  # the same key, within the wait
    now[0] += tasks.CREDENTIALS_RECHECK_S
    trying = runtime._may_call(item)  # one job tries it again ...
    assert trying is not None
    with pytest.raises(CredentialsRefused):
        runtime._may_call(item)  # ... while the others wait for its answer
    runtime._refused(item, refused, trying)  # refused again: twice the wait
    now[0] += tasks.CREDENTIALS_RECHECK_S
    with pytest.raises(CredentialsRefused):
        runtime._may_call(item)
    (project_dir.root / ".env").write_text("FAKE_KEY=the-fixed-key\n")
    trying = runtime._may_call(item)  # a changed key: tried at once
    assert trying is not None and runtime.refusals["fake"].wait_s == 2 * tasks.CREDENTIALS_RECHECK_S
    runtime._accepted(item, trying)
    assert runtime.refusals == {} and runtime._may_call(item) is None
    runtime.project.close()


@pytest.mark.slow
def test_a_budget_holds_across_workers(make_project_dir, pg_url):  # noqa: F811
    p = queue_project(make_project_dir, pg_url, 10, extra="latency_s = 0.1\nprice_usd = 0.01\n")
    enq = p.run_json("generate", "--enqueue", "--budget", "0.045")
    assert enq["enqueued"] == 10 and enq["budget_id"]
    workers = [start_worker(p, "--concurrency", "4") for _ in range(2)]
    try:
        wait_until(lambda: p.run_json("queue")["done"] + p.run_json("queue")["failed"] == 10, 60, "every job settled")
    finally:
        stop(workers)
    assert len(p.calls()) == 4  # 4 × 0.01 fits under 0.045, a fifth would not
    assert published(p) == 4 and p.run_json("queue")["failed"] == 6
    assert_cap_settled(p, enq["budget_id"], 0.04)
    assert os.path.exists(p.root / "spans.jsonl")


@pytest.mark.slow
def test_a_shared_budget_given_back_by_a_call_that_cost_nothing_is_used(make_project_dir, pg_url):  # noqa: F811
    """A job that found the shared cap held by reservations in flight failed for good ("the budget of this
    enqueue is spent"), though a refused call gives its reservation back at $0: two of three entries fitted
    under the cap, one was made. The job now comes back while the cap is held only by calls in flight."""
    p = queue_project(make_project_dir, pg_url, 3, extra='latency_s = 0.3\nprice_usd = 0.01\nrefuse_ids = ["event-000"]\n')
    enq = p.run_json("generate", "--enqueue", "--budget", "0.02")
    workers = [start_worker(p, "--concurrency", "3")]
    try:
        wait_until(lambda: p.run_json("queue")["done"] + p.run_json("queue")["failed"] == 3, 60, "every job settled")
    finally:
        stop(workers)
    assert published(p) == 2 and p.run_json("queue")["failed"] == 1  # the refused one
    assert_cap_settled(p, enq["budget_id"], 0.02)


@pytest.mark.slow
def test_a_shared_budget_holds_when_calls_are_lost_to_timeouts(make_project_dir, pg_url):  # noqa: F811
    """A job reserved its entry's price once, then made up to max_attempts calls, each lost to its deadline at
    the list price: the cap was passed about four times over. Each further call now reserves its own price."""
    p = queue_project(make_project_dir, pg_url, 10, extra="latency_s = 0.5\nprice_usd = 0.01\n")
    p.config.write_text(p.config.read_text().replace("[generate]\n", "[generate]\ncall_timeout_s = 0.05\nmax_attempts = 4\n"))
    enq = p.run_json("generate", "--enqueue", "--budget", "0.045")
    workers = [start_worker(p, "--concurrency", "4")]
    try:
        wait_until(lambda: p.run_json("queue")["failed"] == 10, 60, "every job failed (lost calls, then the cap)")
    finally:
        stop(workers)
    project = p.project()
    try:
        cap = project.repo.spend_cap(enq["budget_id"])
        assert cap.spent_usd <= 0.045 + 1e-9 and abs(cap.spent_usd - 0.04) < 1e-9 and abs(cap.reserved_usd) < 1e-9
        from limner.db.models import EntryRow

        with project.db.session() as s:
            assert all(e.claimed_by is None for e in s.query(EntryRow).all())
    finally:
        project.close()
    assert len(p.calls()) == 4 and p.run_json("costs")["total_usd"] == pytest.approx(0.04)


@pytest.mark.slow
def test_the_schedule_enqueues_what_is_missing_once_per_tick_across_workers(make_project_dir, pg_url):  # noqa: F811
    p = queue_project(make_project_dir, pg_url, 6)
    p.config.write_text(p.config.read_text() + 'schedule = "* * * * * */2"\n')  # every 2 s (sixth field: seconds)
    import psycopg

    dsn = pg_url.replace("postgresql+psycopg://", "postgresql://")

    def entry_jobs() -> int:
        with psycopg.connect(dsn) as conn:
            return conn.execute("SELECT count(*) FROM procrastinate_jobs WHERE task_name = 'limner.generate_entry'"
                                ).fetchone()[0]

    workers = start_workers(p, 2)  # nothing enqueued by hand
    try:
        wait_until(lambda: published(p) == 6, 60, "the scheduled run to publish everything")
        time.sleep(2.5)  # a tick that planned before the last publication has enqueued by now
        jobs_then = entry_jobs()
        time.sleep(4.5)  # a few more ticks: nothing is left to enqueue
    finally:
        results = stop(workers)
    assert all(code == 0 for code, _, _ in results), [e[-2000:] for _, _, e in results]
    calls = Counter(c["id"] for c in p.calls())
    assert len(calls) == 6 and set(calls.values()) == {1}, calls
    with psycopg.connect(dsn) as conn:
        ticks, distinct, ok = conn.execute(
            "SELECT count(*), count(DISTINCT args->>'timestamp'), count(*) FILTER (WHERE status = 'succeeded') "
            "FROM procrastinate_jobs WHERE task_name = 'limner.scheduled_enqueue'").fetchone()
    assert ticks >= 3 and ticks == distinct, (ticks, distinct)  # one job per tick, though two workers defer it
    assert ok >= ticks - 2  # the last ticks may still be running as the workers stop
    assert jobs_then >= 6 and entry_jobs() == jobs_then  # later ticks found nothing missing: no job added


@pytest.mark.slow
def test_worker_metrics(make_project_dir, pg_url):  # noqa: F811
    import socket
    import urllib.request

    p = queue_project(make_project_dir, pg_url, 3, extra="latency_s = 0.1\nprice_usd = 0.01\n")
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    assert p.run_json("generate", "--enqueue")["enqueued"] == 3
    worker = start_worker(p, "--metrics-port", str(port), "--log-format", "json")
    try:
        wait_until(lambda: published(p) == 3, 60, "three entries published")

        def scrape() -> str:
            return urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()

        wait_until(lambda: 'limner_queue_jobs{status="done"} 3.0' in scrape(), 30, "the queue gauge")
        text = scrape()
    finally:
        [(code, _, err)] = stop([worker])
    assert code == 0, err
    logs = [json.loads(line) for line in err.splitlines() if line.startswith("{")]
    assert logs and all({"ts", "level", "logger", "message", "host", "pid"} <= set(x) for x in logs), err
    assert sum(1 for x in logs if x.get("job_id") is not None and x["logger"].startswith("procrastinate")) >= 3
    assert 'limner_jobs_total{outcome="published"} 3.0' in text, text
    assert 'limner_provider_call_seconds_count{provider="fake"} 3.0' in text, text
    assert 'limner_spend_usd_total{provider="fake"} 0.03' in text, text
    assert 'limner_queue_jobs{status="queued"} 0.0' in text, text



@pytest.mark.slow
def test_enqueue_again_with_a_budget_puts_the_queued_jobs_under_it(make_project_dir, pg_url):  # noqa: F811
    """Entries queued without a budget and enqueued again with `--budget` were `already_queued`, and the answer
    named the new cap, but their jobs carried none: the workers spent past it. A queued job under another cap
    (or none) is now replaced by one under the cap given; an enqueue without a budget leaves it as it is."""
    p = queue_project(make_project_dir, pg_url, 6, extra="latency_s = 0.05\nprice_usd = 0.01\n")
    assert p.run_json("generate", "--enqueue")["enqueued"] == 6
    capped = p.run_json("generate", "--enqueue", "--budget", "0.02")
    assert (capped["enqueued"], capped["already_queued"], capped["replaced"]) == (6, 0, 6), capped
    again = p.run_json("generate", "--enqueue")
    assert (again["enqueued"], again["already_queued"]) == (0, 6), again
    worker = start_worker(p)
    try:
        wait_until(lambda: (q := p.run_json("queue"))["done"] + q["failed"] == 6, 60, "every job settled")
    finally:
        stop([worker])
    assert len(p.calls()) == 2 and p.run_json("costs")["total_usd"] == pytest.approx(0.02)
    assert_cap_settled(p, capped["budget_id"], 0.02)


@pytest.mark.slow
def test_worker_counts_every_job_it_failed(make_project_dir, pg_url):  # noqa: F811
    """A job failed because the enqueue's budget was spent was counted nowhere: `limner queue` said 2 failed,
    the worker's `--json` and `limner_jobs_total{outcome="failed"}` said 0."""
    import socket
    import urllib.request

    p = queue_project(make_project_dir, pg_url, 4, extra="latency_s = 0.05\nprice_usd = 0.01\n")
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    assert p.run_json("generate", "--enqueue", "--budget", "0.02")["enqueued"] == 4
    worker = start_worker(p, "--metrics-port", str(port), "--concurrency", "1")
    try:
        wait_until(lambda: (q := p.run_json("queue"))["done"] + q["failed"] == 4, 60, "every job settled")
        text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
    finally:
        [(code, out, err)] = stop([worker])
    assert code == 0, err
    queue = p.run_json("queue")
    assert (queue["done"], queue["failed"]) == (2, 2), queue
    assert (json.loads(out)["published"], json.loads(out)["failed"]) == (2, 2), out
    assert 'limner_jobs_total{outcome="published"} 2.0' in text, text
    assert 'limner_jobs_total{outcome="failed"} 2.0' in text, text


async def test_a_schedule_tick_of_a_dead_worker_goes_back_on_the_queue(pg_url):  # noqa: F811
    """A worker killed while it ran the schedule's tick left that job `doing` for good: only entry jobs were
    looked for, a restarted worker finds the tick deferred already, and nothing was enqueued until the next
    tick (a week, by default). Both kinds of job of a dead worker now go back on the queue."""
    import asyncio

    import psycopg

    from limner.queue.engine import SCHEDULE_TASK, TASK, ensure_schema, make_app
    from limner.queue.worker import requeue_stalled

    dsn = pg_url.replace("postgresql+psycopg://", "postgresql://")
    ensure_schema(dsn)
    app = make_app(dsn, schedule="0 3 * * 1")
    async with app.open_async():
        await app.tasks[SCHEDULE_TASK].defer_async(timestamp=1)
        await app.tasks[TASK].configure(queue="fake").defer_async(entry_id="event-000", fingerprint="f")
        dead = await app.job_manager.register_worker()
        for _ in range(2):  # the worker took both jobs, then was killed: its heartbeat stops
            assert await app.job_manager.fetch_job(queues=None, worker_id=dead) is not None
        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute("UPDATE procrastinate_workers SET last_heartbeat = now() - interval '1 hour'")
        looking = asyncio.create_task(requeue_stalled(app, 3, 0.05))
        try:
            for _ in range(100):
                jobs = {j.task_name: j.status for j in await app.job_manager.list_jobs_async()}
                if set(jobs.values()) == {"todo"}:
                    break
                await asyncio.sleep(0.05)
        finally:
            looking.cancel()
    assert jobs == {SCHEDULE_TASK: "todo", TASK: "todo"}, jobs


async def test_a_job_that_comes_back_while_its_entry_has_a_queued_job_ends(pg_url):  # noqa: F811
    """A job that came back (held, paused, or of a dead worker) while `generate --enqueue` had queued another
    job for its entry broke the one-queued-job-per-entry lock: the engine's retry raised UniqueViolation, and
    the job stayed `doing` for as long as its worker lived (and after, until another worker started). It now
    ends: the queued job does what it would have done."""
    from limner.queue.engine import TASK, ensure_schema, make_app

    dsn = pg_url.replace("postgresql+psycopg://", "postgresql://")
    ensure_schema(dsn)
    app = make_app(dsn)
    async with app.open_async():
        task = app.tasks[TASK].configure(queueing_lock="event-000", queue="fake")
        first = await task.defer_async(entry_id="event-000", fingerprint="f")
        worker = await app.job_manager.register_worker()
        running = await app.job_manager.fetch_job(queues=None, worker_id=worker)
        assert running is not None and running.id == first
        second = await task.defer_async(entry_id="event-000", fingerprint="f")  # enqueued again meanwhile
        await app.job_manager.retry_job(running)  # its entry was held: the engine puts it back
        jobs = {j.id: j.status for j in await app.job_manager.list_jobs_async()}
    assert jobs == {first: "succeeded", second: "todo"}, jobs


async def test_a_forced_job_meeting_a_queued_unforced_one_for_its_entry_stays_forced(pg_url):  # noqa: F811
    """A forced job (`generate --enqueue --id X`) that came back (held, paused, or of a dead worker) while an
    unforced job for its entry was queued (a schedule tick or a plain `generate --enqueue` plans an entry a
    run holds as `resume`) ended, and the unforced one found the image published and did nothing: the
    regeneration asked for was dropped. Likewise an enqueue with a budget replaced a queued forced job by an
    unforced one. The job left queued now carries the forced request (and the newer enqueue's cap)."""
    from types import SimpleNamespace

    from limner.queue.engine import TASK, ensure_schema, make_app
    from limner.queue.enqueue import enqueue_plan

    dsn = pg_url.replace("postgresql+psycopg://", "postgresql://")
    ensure_schema(dsn)
    app = make_app(dsn)

    async def queued() -> list[dict]:
        return [j.task_kwargs for j in await app.job_manager.list_jobs_async(task=TASK, status="todo")]

    def plan(entry_id: str) -> SimpleNamespace:  # a plain enqueue of an entry a run holds: `resume`
        return SimpleNamespace(items=[SimpleNamespace(reason="resume", entry=SimpleNamespace(id=entry_id),
                                                      fingerprint="f", provider="fake")])

    async with app.open_async():
        task = app.tasks[TASK].configure(queueing_lock="event-000", queue="fake")
        forced = await task.defer_async(entry_id="event-000", fingerprint="f", cap_id=None, force=True, replaces=7)
        worker = await app.job_manager.register_worker()
        running = await app.job_manager.fetch_job(queues=None, worker_id=worker)
        assert running is not None and running.id == forced
        await enqueue_plan(app, plan("event-000"), cap_id="cap-2")  # an unforced job queued meanwhile
        await app.job_manager.retry_job(running)  # the forced one comes back
        [left] = await queued()
        assert (left.get("force"), left.get("replaces"), left["cap_id"]) == (True, 7, "cap-2"), left

        await app.tasks[TASK].configure(queueing_lock="event-001", queue="fake").defer_async(
            entry_id="event-001", fingerprint="f", cap_id="cap-1", force=True, replaces=9)
        result = await enqueue_plan(app, plan("event-001"), cap_id="cap-3")  # another budget: the job is replaced
        assert result.replaced == 1
        left = [k for k in await queued() if k["entry_id"] == "event-001"]
    assert [(k.get("force"), k.get("replaces"), k["cap_id"]) for k in left] == [(True, 9, "cap-3")], left


async def test_a_schedule_tick_that_fails_runs_again_within_its_period(pg_url):  # noqa: F811
    """A schedule tick that failed (the database away for a moment, a catalogue saved half-way) was not run again:
    what was missing waited for the next tick, a week later with the default schedule. The engine now retries it
    with a back-off, while the retry comes before the next tick."""
    import asyncio
    import datetime as dt

    import procrastinate.worker

    from limner.queue import retrying
    from limner.queue.engine import SCHEDULE_TASK, ensure_schema, make_app

    class Failing:  # the worker's runtime, as far as a tick uses it
        ticks = 0

        async def enqueue_due(self, app, timestamp: int) -> str:  # type: ignore[no-untyped-def]
            self.ticks += 1
            raise RuntimeError("the catalogue cannot be read (saved half-way)")

    dsn = pg_url.replace("postgresql+psycopg://", "postgresql://")
    ensure_schema(dsn)
    app = make_app(dsn, schedule="0 3 29 2 *")  # the next tick is years away
    runtime = Failing()
    async with app.open_async():
        await app.tasks[SCHEDULE_TASK].defer_async(timestamp=int(time.time()))
        worker = procrastinate.worker.Worker(app=app, queues=["schedule"], wait=False, install_signal_handlers=False,
                                             additional_context={"limner": runtime})
        await asyncio.wait_for(worker.run(), 60)  # runs the tick once; its retry is not due yet
        [job] = await app.job_manager.list_jobs_async(task=SCHEDULE_TASK)
    assert runtime.ticks == 1 and (job.status, job.attempts) == ("todo", 1), (job.status, job.attempts)
    wait = (job.scheduled_at - dt.datetime.now(dt.timezone.utc)).total_seconds()
    assert 0 < wait <= retrying.TICK_RETRY_WAIT_S, wait


def test_a_failed_schedule_tick_backs_off_and_is_never_retried_past_the_next_tick() -> None:
    from types import SimpleNamespace

    from limner.queue.retrying import TICK_RETRY_MAX_WAIT_S, TICK_RETRY_WAIT_S, TickRetry

    now = time.time()
    weekly = TickRetry("0 3 * * 1")

    def wait(strategy: TickRetry, tick: float, attempts: int) -> float | None:
        decision = strategy.get_retry_decision(exception=RuntimeError("x"),
                                               job=SimpleNamespace(attempts=attempts, task_kwargs={"timestamp": int(tick)}))
        return None if decision is None else decision.retry_at.timestamp() - now

    first, third = wait(weekly, now, 0), wait(weekly, now, 2)
    assert first == pytest.approx(TICK_RETRY_WAIT_S, abs=2) and third == pytest.approx(4 * TICK_RETRY_WAIT_S, abs=2)
    assert wait(weekly, now, 30) == pytest.approx(TICK_RETRY_MAX_WAIT_S, abs=2)
    hourly = TickRetry(f"{(time.gmtime(now).tm_min + 30) % 60} * * * *")  # the next tick in about half an hour
    assert wait(hourly, now, 0) is not None and wait(hourly, now, 30) is None  # an hour's wait passes the next tick
    every_minute = TickRetry("* * * * *")
    tick = (now - 45) - (now - 45) % 60  # a tick at least 45 s ago: the next one is within 15 s, before a retry
    assert wait(every_minute, tick, 0) is None  # the next tick comes first: it does the work


async def test_a_forced_job_that_loses_the_hand_over_again_and_again_is_never_dropped(pg_url):  # noqa: F811
    """A forced job that came back while an unforced job for its entry was queued hands its request to that job; when
    another worker took the queued job just before (and an enqueue queued another meanwhile), the hand-over is lost
    and the job tries again. After three losses in a row it ended (``succeeded``), and the forced request was dropped:
    the jobs left were unforced, and found the image published. It now keeps trying until its request is handed
    over or the job is back on the queue: here, after a fourth loss, the job left queued is forced."""
    from limner.queue.engine import TASK, ensure_schema, make_app

    dsn = pg_url.replace("postgresql+psycopg://", "postgresql://")
    ensure_schema(dsn)
    app = make_app(dsn)
    manager = app.job_manager
    async with app.open_async():
        task = app.tasks[TASK].configure(queueing_lock="event-000", queue="fake")
        forced = await task.defer_async(entry_id="event-000", fingerprint="f", cap_id=None, force=True, replaces=7)
        worker, others = await manager.register_worker(), await manager.register_worker()
        running = await manager.fetch_job(queues=None, worker_id=worker)
        assert running is not None and running.id == forced
        await task.defer_async(entry_id="event-000", fingerprint="f", cap_id=None)  # a plain enqueue, meanwhile
        real_list, losses = manager.list_jobs_async, []

        async def another_worker_takes_it_first(**filters):  # type: ignore[no-untyped-def]
            """The race, four times in a row: as the returning job looks for the queued one, another worker has just
            taken it, and an enqueue queues the entry once more."""
            if filters.get("status") != "todo" or len(losses) == 4:
                return await real_list(**filters)
            taken = await manager.fetch_job(queues=None, worker_id=others)
            assert taken is not None and not taken.task_kwargs.get("force")
            losses.append(taken.id)
            found = await real_list(**filters)
            await task.defer_async(entry_id="event-000", fingerprint="f", cap_id=None)
            return found

        manager.list_jobs_async = another_worker_takes_it_first  # type: ignore[method-assign]
        await manager.retry_job(running)  # the forced one comes back
        manager.list_jobs_async = real_list  # type: ignore[method-assign]
        queued = [j.task_kwargs for j in await manager.list_jobs_async(task=TASK, status="todo")]
    assert len(losses) == 4
    assert [(k.get("force"), k.get("replaces")) for k in queued] == [(True, 7)], queued
