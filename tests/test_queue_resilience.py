"""Queue workers through trouble, on the real PostgreSQL: a database outage with calls in flight, a storage
fault that pauses a worker's paid work, forced (`--id`/`--all`) jobs that never pay twice, and a job that
plans its entry from its own row."""

from __future__ import annotations

import asyncio
import json
import signal
import time
from collections import Counter

import pytest
from projects import FailingWrites
from test_db_postgres import ADMIN_URL, pg_url  # noqa: F401  (fixture)
from test_queue import (
    ended,
    published,
    queue_project,
    spans,
    start_workers,
    stop,
    wait_until,
)

pytest.importorskip("procrastinate")


def _db_name(url: str) -> str:
    return url.rsplit("/", 1)[1]


def cut_database(url: str, seconds: float) -> None:
    """An outage of this test's database only (never the shared server): it refuses new connections and
    every connection to it is dropped, for ``seconds``."""
    import psycopg

    name = _db_name(url)
    with psycopg.connect(ADMIN_URL, autocommit=True) as admin:
        admin.execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS false')
        try:
            deadline = time.monotonic() + seconds
            while time.monotonic() < deadline:  # connections that were opening as it closed go too
                admin.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                              "WHERE datname = %s AND pid <> pg_backend_pid()", (name,))
                time.sleep(0.2)
        finally:
            admin.execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS true')


@pytest.mark.slow
def test_a_worker_survives_a_database_outage_with_calls_in_flight_and_pays_nothing_twice(make_project_dir, pg_url):  # noqa: F811
    p = queue_project(make_project_dir, pg_url, 3, extra="latency_s = 1.5\n")
    [worker] = start_workers(p, 1, "--concurrency", "3")
    try:
        assert p.run_json("generate", "--enqueue")["enqueued"] == 3
        wait_until(lambda: len(p.calls()) == 3, 30, "three calls out")
        assert not spans(p)  # all three in flight: their answers come while the database is away
        cut_database(pg_url, 4.0)
        assert worker.poll() is None, ended(worker)[2][-3000:]  # the worker lived through it
        wait_until(lambda: published(p) == 3, 60, "the three paid images recorded after the outage")
        assert worker.poll() is None
        entries = p.entries() + [dict(e, id=f"late-{i}", title=f"Late {i}") for i, e in enumerate(p.entries())]
        p.write_catalog(entries)  # and it takes jobs enqueued afterwards
        assert p.run_json("generate", "--enqueue")["enqueued"] == 3
        wait_until(lambda: published(p) == 6, 60, "the jobs enqueued after the outage")
        wait_until(lambda: p.run_json("queue")["running"] + p.run_json("queue")["queued"] == 0, 30, "the queue settled")
    finally:
        [(code, out, err)] = stop([worker])
    assert code == 0, err[-3000:]
    calls = Counter(c["id"] for c in p.calls())
    assert len(calls) == 6 and set(calls.values()) == {1}, calls  # the calls in flight were not paid again
    assert "retrying in" in err, err[-3000:]  # each retry is logged
    summary = json.loads(out)
    assert summary["restarts"] >= 1 and summary["published"] == 6, summary
    queue = p.run_json("queue")
    assert (queue["failed"], queue["queued"], queue["running"]) == (0, 0, 0), queue
    assert not list((p.root / ".limner" / "recovery").glob("*.img"))


class Outage(FailingWrites):
    """A store that is down while ``broken``: masters cannot be written and its check fails."""

    def __init__(self, real) -> None:  # type: ignore[no-untyped-def]
        from limner.storage import StorageError

        super().__init__(real, "masters/", StorageError("the store is down"))
        self.broken = False

    def put_if_absent(self, key: str, data: bytes, *, content_type: str) -> bool:
        if self.broken:
            return super().put_if_absent(key, data, content_type=content_type)
        return self._real.put_if_absent(key, data, content_type=content_type)

    def check(self) -> None:
        if self.broken:
            raise self._error
        self._real.check()


async def _until(pred, timeout: float, what: str) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if await asyncio.to_thread(pred):
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def kept_in_database(project) -> int:  # type: ignore[no-untyped-def]
    from sqlalchemy import func, select

    from limner.db.tables import kept_images

    with project.db.engine.connect() as conn:
        return conn.execute(select(func.count()).select_from(kept_images)).scalar()


@pytest.mark.slow
async def test_a_storage_fault_pauses_a_workers_paid_work_until_the_store_is_back(make_project_dir, pg_url):  # noqa: F811
    from limner.db.models import LedgerRow
    from limner.queue.engine import conninfo
    from limner.queue.worker import run_worker

    n, concurrency = 12, 3
    p = queue_project(make_project_dir, pg_url, n, extra="latency_s = 0.3\nprice_usd = 0.02\n")
    assert (await asyncio.to_thread(p.run_json, "generate", "--enqueue"))["enqueued"] == n
    project = p.project()
    store = Outage(project.storage)
    project.__dict__["storage"] = store
    bosses: list = []
    handler_before = signal.getsignal(signal.SIGTERM)
    running = asyncio.create_task(run_worker(project, conninfo(project), concurrency=concurrency, queues=None,
                                             supervisor=bosses))
    try:
        while not bosses:
            assert not running.done(), running.result()
            await asyncio.sleep(0.005)
        runtime = bosses[0].runtime
        at_halt: list[tuple[int, int]] = []
        halt = runtime.on_halt

        def noted(reason: str) -> None:  # what was paid, and answered, the moment the worker paused
            at_halt.append((len(p.calls()), len(spans(p))))
            halt(reason)

        runtime.on_halt = noted
        store.broken = True  # before the first job: every master write fails
        await _until(lambda: bool(at_halt), 60, "the worker to pause")
        await asyncio.sleep(2.0)  # paused: nothing new is paid for while the store is down
        paid, answered = at_halt[0]
        assert len(p.calls()) == paid, "a call started after the fault"
        assert 1 <= paid <= concurrency  # only the calls in flight at the fault
        assert paid - answered <= concurrency - 1  # the first answer made the fault; the others were out
        recovery = p.root / ".limner" / "recovery"
        assert await asyncio.to_thread(kept_in_database, project) == paid  # every paid image is kept, for any host
        assert not list(recovery.glob("*.img"))
        assert runtime.halted and "kept in the database" in runtime.halted
        assert await asyncio.to_thread(published, p) == 0

        store.broken = False  # the store is back: the kept images are recorded, then the jobs run
        await _until(lambda: published(p) == n, 90, "every entry published")
        assert runtime.halted is None and runtime.recovered == paid
        # the paused jobs came back on the queue and found their entries published
        await _until(lambda: p.run_json("queue")["done"] == n, 60, "every job done")
    finally:
        if bosses:
            bosses[0].stop()
        await asyncio.wait_for(running, 60)
    assert signal.getsignal(signal.SIGTERM) == handler_before  # the worker's signal handlers are gone with it
    calls = Counter(c["id"] for c in p.calls())
    assert len(calls) == n and set(calls.values()) == {1}, calls  # the kept images were not paid again
    assert not list(recovery.glob("*.img")) and kept_in_database(project) == 0
    with project.db.session() as s:
        ledger = list(s.query(LedgerRow).all())
    assert len(ledger) == n and {r.status for r in ledger} == {"recorded"}
    project.close()
    queue = await asyncio.to_thread(p.run_json, "queue")
    assert (queue["failed"], queue["queued"], queue["running"], queue["done"]) == (0, 0, 0, n), queue


@pytest.mark.slow
def test_enqueue_with_id_or_all_regenerates_published_entries_once(make_project_dir, pg_url):  # noqa: F811
    from limner.queue.engine import TASK, conninfo, make_app

    p = queue_project(make_project_dir, pg_url, 3, extra="latency_s = 0.4\n")
    p.run("generate", "--no-progress", check=True)  # all three published, in this process
    assert len(p.calls()) == 3

    def published_renders() -> dict[str, int]:
        project = p.project()
        try:
            return project.repo.published_render_ids_of(["event-000", "event-001", "event-002"])
        finally:
            project.close()

    before = published_renders()
    first = p.run_json("generate", "--enqueue", "--id", "event-001")
    assert (first["enqueued"], first["already_queued"]) == (1, 0), first
    again = p.run_json("generate", "--enqueue", "--id", "event-001")
    assert (again["enqueued"], again["already_queued"]) == (0, 1), again  # one job for a forced entry
    every = p.run_json("generate", "--enqueue", "--all")
    assert (every["enqueued"], every["already_queued"], every["replaced"]) == (2, 1, 0), every
    assert p.run_json("queue")["queued"] == 3

    # the same forced job twice on the queue (as if enqueued again while a worker ran it): still one payment
    project = p.project()
    dsn = conninfo(project)
    project.close()
    app = make_app(dsn)

    async def duplicate() -> None:
        async with app.open_async():
            [job] = await app.job_manager.list_jobs_async(task=TASK, status="todo", queueing_lock="event-002")
            assert job.task_kwargs["force"] is True and job.task_kwargs["replaces"] == before["event-002"]
            await app.tasks[TASK].configure(queue="fake").defer_async(**job.task_kwargs)

    asyncio.run(duplicate())
    workers = start_workers(p, 2, "--concurrency", "4")
    try:
        wait_until(lambda: p.run_json("queue")["done"] == 4, 90, "the four jobs done")
    finally:
        results = stop(workers)
    assert all(code == 0 for code, _, _ in results), [e[-2000:] for _, _, e in results]
    calls = Counter(c["id"] for c in p.calls())
    assert calls == {"event-000": 2, "event-001": 2, "event-002": 2}, calls  # each regenerated once
    after = published_renders()
    assert all(after[k] != before[k] for k in before), (before, after)
    queue = p.run_json("queue")
    assert (queue["failed"], queue["queued"], queue["running"]) == (0, 0, 0), queue
    # a new request after that is a new regeneration
    assert p.run_json("generate", "--enqueue", "--id", "event-001")["enqueued"] == 1


def test_a_job_plans_its_entry_from_its_own_row(make_project_dir, monkeypatch):
    """100,000 entries must not mean reading 100,000 statuses per job: the job reads its entry's row."""
    from sqlalchemy import event

    from limner.db.repository import Repository
    from limner.queue.tasks import WorkerRuntime
    from limner.runner import RunOptions, Selection, build_plan, run_plan

    p = make_project_dir(5)
    project = p.project()
    try:
        fingerprints = {i.entry.id: i.fingerprint for i in build_plan(project, Selection()).items}
        run_plan(project, build_plan(project, Selection(ids=("event-001",))), RunOptions(progress=False))

        def every_row(*_a, **_k):  # type: ignore[no-untyped-def]
            raise AssertionError("a job read every entry's row")

        monkeypatch.setattr(Repository, "entry_statuses", every_row)
        monkeypatch.setattr(Repository, "overrides", every_row)
        statements: list[str] = []
        event.listen(project.db.engine, "before_cursor_execute",
                     lambda _c, _cur, statement, *_: statements.append(" ".join(statement.split())))
        runtime = WorkerRuntime(project, "postgresql://unused")
        missing = runtime._plan_one("event-003", fingerprints["event-003"])
        assert not isinstance(missing, str) and missing.reason == "missing"
        assert runtime._plan_one("event-001", fingerprints["event-001"]) == "up_to_date"
        forced = runtime._plan_one("event-001", fingerprints["event-001"], force=True)
        assert not isinstance(forced, str) and forced.reason == "forced"
        assert runtime._plan_one("event-002", "another fingerprint") == "superseded"
        reads = [s for s in statements if s.startswith("SELECT") and ("FROM entries" in s or "FROM overrides" in s)]
        assert reads and all("WHERE" in s for s in reads), reads
        assert project.repo.entry_status("event-001").state == "published"
        assert project.repo.entry_status("nope") is None and project.repo.entry_override("event-001") is None
    finally:
        project.close()


def test_a_worker_plans_with_the_catalogue_and_styles_as_they_are_now(make_project_dir):
    """A worker read the catalogue once (again only for a job whose fingerprint it did not know) and its styles
    once: after an entry was edited, a job queued before the edit still matched the worker's old copy and paid
    for the outdated spec (its fingerprint is older than the catalogue's: the job is superseded), and after a
    style's template changed, every job of the new spec was dropped as superseded by the worker's old styles,
    until it was restarted. A job now plans with the files as they are when it runs (reread when they change)."""
    import os

    from limner.queue.tasks import InputsUnreadable, WorkerRuntime
    from limner.runner import Selection, build_plan

    p = make_project_dir(3)
    styles = p.root / "styles"
    styles.mkdir()
    style = styles / "house.toml"
    style.write_text('version = "1"\npositive = "an engraving of {{ title }}"\n')
    p.config.write_text(p.config.read_text().replace("[project]", '[project]\ndefault_style = "house"', 1)
                        if "[project]" in p.config.read_text() else p.config.read_text() + '\n[project]\ndefault_style = "house"\n')

    def fingerprints() -> dict[str, str]:
        project = p.project()
        try:
            return {i.entry.id: i.fingerprint for i in build_plan(project, Selection()).items}
        finally:
            project.close()

    def touch(path) -> None:  # an edit a second later (a coarse file system could keep the old mtime)
        st = path.stat()
        os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000_000))

    before = fingerprints()
    project = p.project()
    try:
        runtime = WorkerRuntime(project, "postgresql://unused")
        assert not isinstance(runtime._plan_one("event-000", before["event-000"]), str)  # the worker has read both
        entries = p.entries()
        entries[1]["title"] = entries[1]["title"] + " (revised)"
        p.write_catalog(entries)
        touch(p.root / "catalog.yaml")
        assert fingerprints()["event-001"] != before["event-001"]
        assert runtime._plan_one("event-001", before["event-001"]) == "superseded"  # not paid for the old spec

        style.write_text('version = "1"\npositive = "a woodcut of {{ title }}"\n')
        touch(style)
        after = fingerprints()
        assert after["event-002"] != before["event-002"]
        item = runtime._plan_one("event-002", after["event-002"])
        assert not isinstance(item, str) and "woodcut" in item.spec.prompt, item
        assert runtime._plan_one("event-000", before["event-000"]) == "superseded"

        good = (p.root / "catalog.yaml").read_text()
        (p.root / "catalog.yaml").write_text(good + "\n- id: [unclosed\n")  # saved half-way through an edit
        touch(p.root / "catalog.yaml")
        with pytest.raises(InputsUnreadable, match="catalog.yaml"):  # the job comes back, as a held one
            runtime._plan_one("event-002", after["event-002"])
        (p.root / "catalog.yaml").write_text(good)
        touch(p.root / "catalog.yaml")
        assert not isinstance(runtime._plan_one("event-002", after["event-002"]), str)
    finally:
        project.close()


def test_a_gate_made_while_the_worker_is_paused_starts_no_paid_call(make_project_dir):
    """A job already past its own check when the worker paused, whose provider had no gate yet, gets a gate
    that is stopping too: its unit ends ``not_started`` instead of paying."""
    from limner.queue.tasks import WorkerRuntime
    from limner.runner import Selection, build_plan

    p = make_project_dir(2)
    project = p.project()
    try:
        lane = build_plan(project, Selection()).items[0].lane
        for halted in (None, "storage fault"):
            runtime = WorkerRuntime(project, "postgresql://unused")
            runtime.slots, runtime.halted = None, halted
            assert runtime.gate_for(lane).stopping is (halted is not None)
    finally:
        project.close()


def test_a_jobs_own_outcomes_are_logged_in_one_line_and_crashes_with_their_traceback(caplog):
    import logging

    from limner.queue.logs import one_line_outcomes
    from limner.queue.tasks import EntryFailed, HeldElsewhere, Paused

    one_line_outcomes(EntryFailed, HeldElsewhere, Paused)
    logger = logging.getLogger("procrastinate.worker")
    caplog.set_level(logging.INFO, logger="procrastinate.worker")
    for exc in (EntryFailed("b-two: ContentRefused: refused by the safety filter"), KeyError("boom")):
        try:
            raise exc
        except Exception as raised:  # noqa: BLE001 - logged as the engine does
            logger.log(logging.ERROR, "Job run_entry(entry_id='b-two') ended with status: %s", "Error", exc_info=raised)
    refused, crashed = caplog.records[-2:]
    assert refused.getMessage() == ("Job run_entry(entry_id='b-two') ended with status: Error - "
                                    "EntryFailed: b-two: ContentRefused: refused by the safety filter")
    assert refused.exc_info is None and "Traceback" not in caplog.text.split("\n")[0]
    assert crashed.exc_info is not None and crashed.exc_info[0] is KeyError


@pytest.mark.skipif(__import__("limner.providers.mflux_local", fromlist=["x"]).apple_silicon(),
                    reason="mflux runs on this machine")
def test_a_worker_leaves_jobs_of_a_provider_that_cannot_run_on_its_machine(make_project_dir):
    """Off Apple silicon: a worker takes no mflux queue unless named, and a job it gets anyway goes back on the
    queue for a worker that can run it, the entry neither claimed nor failed (it would never be generated)."""
    from limner.queue.tasks import NotRunnableHere, WorkerRuntime
    from limner.queue.worker import queues_runnable_here
    from limner.runner import Selection, build_plan
    from limner.runner.offloop import OffLoop

    queues = queues_runnable_here()
    assert queues is not None and "mflux" not in queues and {"replicate", "sketch", "schedule"} <= set(queues)
    p = make_project_dir(1, provider="mflux")
    project = p.project()
    try:
        fingerprint = build_plan(project, Selection()).items[0].fingerprint
        runtime = WorkerRuntime(project, "postgresql://unused")
        runtime.off = OffLoop(db_threads=1, io_threads=1)
        try:
            with pytest.raises(NotRunnableHere, match="cannot run on this worker's machine"):
                asyncio.run(runtime.run_entry("event-000", fingerprint))
        finally:
            runtime.off.shutdown()
        status = project.repo.entry_status("event-000")
        assert status.state == "queued" and status.attempts == 0
        assert project.repo.spend() == 0
    finally:
        project.close()


def test_a_held_or_paused_job_comes_back_for_as_long_as_its_cause_lasts():
    """A job whose entry another live run holds (a worker paused for minutes by a store outage keeps its
    claims), or whose provider no worker here can run, comes back without a count limit, less often as it
    waits; the entry's own failure is not retried by the engine."""
    from types import SimpleNamespace

    from limner.queue.engine import TASK, make_app
    from limner.queue.retrying import HELD_RETRY_MAX_WAIT_S, HELD_RETRY_WAIT_S
    from limner.queue.tasks import EntryFailed, HeldElsewhere, NotRunnableHere, Paused

    strategy = make_app("postgresql://unused").tasks[TASK].retry_strategy

    def wait(exc: BaseException, attempts: int) -> int | None:
        decision = strategy.get_retry_decision(exception=exc, job=SimpleNamespace(attempts=attempts))
        return None if decision is None else int(decision.retry_at.timestamp() - __import__("time").time() + 0.5)

    waits = [wait(HeldElsewhere("x"), n) for n in range(12)]
    assert waits[0] == HELD_RETRY_WAIT_S and waits[:6] == [HELD_RETRY_WAIT_S] * 6
    assert waits == sorted(waits) and waits[-1] == HELD_RETRY_MAX_WAIT_S
    for attempts in (30, 500):  # 500 tries is over 8 hours of waiting: still comes back
        for held in (HeldElsewhere("x"), Paused("x"), NotRunnableHere("x")):
            assert wait(held, attempts) == HELD_RETRY_MAX_WAIT_S
    assert wait(EntryFailed("x"), 0) is None and wait(KeyError("x"), 0) is None


def test_a_job_whose_shared_budget_is_held_comes_back_a_bounded_number_of_times():
    """A job finding its enqueue's cap held by calls in flight comes back (a call may settle at $0); but a
    reservation a killed worker left never settles, and while any worker was busy the job came back for ever."""
    from types import SimpleNamespace

    from limner.queue.engine import TASK, make_app
    from limner.queue.retrying import BUDGET_TRIES
    from limner.queue.tasks import BudgetHeld

    strategy = make_app("postgresql://unused").tasks[TASK].retry_strategy
    decide = lambda attempts: strategy.get_retry_decision(exception=BudgetHeld("x"), job=SimpleNamespace(attempts=attempts))  # noqa: E731
    assert all(decide(n) is not None for n in range(BUDGET_TRIES - 1))
    assert decide(BUDGET_TRIES - 1) is None and decide(BUDGET_TRIES + 10) is None


def test_a_local_gpu_keeps_its_own_slots_while_a_hosted_service_shares_them(make_project_dir):
    """With queue.global_limits, every provider's concurrency was one set of slots across all workers: ten GPU
    machines with one device each ran one image at a time in all. A provider whose concurrency counts this
    machine's devices keeps it per worker; a hosted service's stays shared."""
    from limner.queue.limits import GlobalSlots
    from limner.queue.tasks import WorkerRuntime
    from limner.runner.lanes import resolve_lane

    p = make_project_dir(1, provider="sketch")
    project = p.project()
    try:
        runtime = WorkerRuntime(project, "postgresql://unused")
        runtime.slots = object()  # type: ignore[assignment]  # as with queue.global_limits (never connected here)
        local, hosted = runtime.gate_for(resolve_lane(project, "sketch")), runtime.gate_for(resolve_lane(project, "replicate"))
        assert not isinstance(local.slots, GlobalSlots) and isinstance(hosted.slots, GlobalSlots)
    finally:
        project.close()


@pytest.mark.slow
def test_a_worker_whose_engine_registration_was_pruned_starts_its_engine_again(make_project_dir, pg_url):  # noqa: F811
    """A worker whose heartbeat came late (a loaded machine, a slow reconnection after a lost database) had its
    engine row deleted by another worker starting (the engine prunes stalled workers): its next fetch broke the
    row's foreign key, and `limner worker` exited with a traceback. It now starts its engine again."""
    import psycopg

    p = queue_project(make_project_dir, pg_url, 2)
    [worker] = start_workers(p, 1)
    try:
        dsn = pg_url.replace("postgresql+psycopg://", "postgresql://")
        with psycopg.connect(dsn, autocommit=True) as conn:  # what prune_stalled_workers does to a late worker
            conn.execute("DELETE FROM procrastinate_workers")
        assert p.run_json("generate", "--enqueue")["enqueued"] == 2
        wait_until(lambda: published(p) == 2 or worker.poll() is not None, 60, "the jobs done")
        assert worker.poll() is None, ended(worker)[2][-3000:]
    finally:
        [(code, out, err)] = stop([worker])
    assert code == 0 and "Traceback" not in err, err[-3000:]
    assert json.loads(out)["restarts"] >= 1


def test_a_job_whose_held_budget_ends_its_tries_is_counted_failed(make_project_dir):
    """A job whose enqueue's cap stayed held comes back BUDGET_TRIES times, then the engine fails it: that last
    try is a failed job (`limner queue` says failed), not one more retried, in the worker's --json and in
    limner_jobs_total."""
    from types import SimpleNamespace

    from limner.queue.engine import TASK, make_app
    from limner.queue.retrying import BUDGET_TRIES
    from limner.queue.tasks import BudgetHeld, WorkerRuntime

    counted: list[str] = []
    p = make_project_dir(1)
    project = p.project()
    try:
        runtime = WorkerRuntime(project, "postgresql://unused")
        runtime.metrics = SimpleNamespace(jobs=SimpleNamespace(labels=lambda outcome: SimpleNamespace(
            inc=lambda: counted.append(outcome))))

        async def held(*_a, **_k):  # type: ignore[no-untyped-def]
            raise BudgetHeld("event-000: the budget of this enqueue is held by calls in flight")

        runtime._run_job = held  # type: ignore[method-assign]
        task = make_app("postgresql://unused").tasks[TASK]
        for attempts in (0, BUDGET_TRIES - 2, BUDGET_TRIES - 1):
            context = SimpleNamespace(additional_context={"limner": runtime}, job=SimpleNamespace(attempts=attempts))
            with pytest.raises(BudgetHeld):
                asyncio.run(task.func(context, entry_id="event-000", fingerprint="fp"))
        assert counted == ["retried", "retried", "failed"] and runtime.failed == 1
    finally:
        project.close()



async def test_global_slots_after_a_dropped_slot_session_are_over_used_only_until_its_calls_end(pg_url):  # noqa: F811
    """A worker whose slot session dropped (its advisory locks went with it) while its calls were out gave the
    lock of one of its *new* calls away when an old call ended (``release()`` unlocked whichever slot it held):
    calls that lost their lock were replaced by calls without one, so the provider's global concurrency stayed
    over its limit after the calls that were out at the drop had ended. Now the over-use lasts only until they
    end (a session advisory lock cannot outlive its session: that much is inherent, see docs/scaling.md)."""
    import psycopg

    from limner.queue.limits import GlobalSlots, SlotConnection

    dsn = pg_url.replace("postgresql+psycopg://", "postgresql://")
    n = 3
    a_session, b_session = SlotConnection(dsn), SlotConnection(dsn)
    a, b = GlobalSlots(a_session, "fake", n, poll_s=0.01), GlobalSlots(b_session, "fake", n, poll_s=0.01)
    in_flight = peak_after = 0
    old_ended = asyncio.Event()

    async def call(g: GlobalSlots, start: float, seconds: float) -> None:
        nonlocal in_flight, peak_after
        await asyncio.sleep(start)
        await g.acquire()
        in_flight += 1
        if old_ended.is_set():
            peak_after = max(peak_after, in_flight)
        await asyncio.sleep(seconds)
        in_flight -= 1
        g.release()

    async def old_calls() -> None:  # out when A's session drops; they end at 1.0 s
        await asyncio.gather(call(a, 0, 1.0), call(a, 0, 1.0))
        old_ended.set()

    async def drop_a() -> None:
        await asyncio.sleep(0.2)
        pid = (await a_session.conn()).info.backend_pid
        with psycopg.connect(dsn, autocommit=True) as admin:
            admin.execute("SELECT pg_terminate_backend(%s)", (pid,))

    async def watch() -> None:  # what is in flight once the old calls ended
        nonlocal peak_after
        await old_ended.wait()
        for _ in range(100):
            peak_after = max(peak_after, in_flight)
            await asyncio.sleep(0.01)

    await asyncio.wait_for(asyncio.gather(
        old_calls(), drop_a(), watch(),
        call(a, 0.4, 2.0),  # a new call of A, with a lock of its new session, out past the old ones
        call(b, 0.5, 2.0), call(b, 0.5, 2.0),  # B takes the slots the drop freed
        call(b, 0.6, 0.1)), 30)  # and waits for one more
    for s in (a_session, b_session):
        await s.close()
    assert peak_after <= n, peak_after



class Partition:
    """A TCP relay to the PostgreSQL server that can stop passing bytes either way while closing nothing: what a
    worker sees of a network partition, or of a server that vanished in a failover (no RST, no FIN)."""

    def __init__(self, port: int = 5432) -> None:
        import socket
        import threading

        self.target = ("127.0.0.1", port)
        self.cut = threading.Event()
        self.server = socket.socket()
        self.server.bind(("127.0.0.1", 0))
        self.server.listen(16)
        self.port = self.server.getsockname()[1]
        self.sockets: list = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        import socket
        import threading

        while True:
            try:
                client, _ = self.server.accept()
            except OSError:
                return
            upstream = socket.create_connection(self.target)
            self.sockets += [client, upstream]
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    def _pipe(self, a, b) -> None:  # type: ignore[no-untyped-def]
        while True:
            try:
                data = a.recv(65536)
            except OSError:
                return
            if not data:
                return
            while self.cut.is_set():
                time.sleep(0.05)
            try:
                b.sendall(data)
            except OSError:
                return

    def close(self) -> None:
        for sock in [self.server, *self.sockets]:
            sock.close()


async def test_a_slot_look_up_on_a_database_that_stopped_answering_gives_up_and_connects_again(pg_url):  # noqa: F811
    """The slot session had no timeout: across a network partition (or a failover that left the old server
    silent) a call waiting for a global slot waited for as long as the kernel kept the dead connection, and so
    did a worker paused after a fault, which resumes only once its jobs have ended: a paused worker did not
    resume. A statement that gets no answer in time now closes the session (its locks go with it) and the
    next look-up connects again."""
    from limner.queue.limits import GlobalRate, GlobalSlots, SlotConnection

    partition = Partition()
    dsn = f"postgresql://postgres@127.0.0.1:{partition.port}/{_db_name(pg_url)}"
    session, rate_session = SlotConnection(dsn, timeout_s=1.0), SlotConnection(dsn, timeout_s=1.0)
    slots = GlobalSlots(session, "fake", 2, poll_s=0.01)
    try:
        assert await asyncio.wait_for(slots.acquire(), 10)
        slots.release()
        await asyncio.sleep(0.2)
        partition.cut.set()  # the old connection stays open and silent; new ones are made through it too
        began = time.monotonic()
        waiting = asyncio.create_task(slots.acquire())
        await asyncio.sleep(1.5)  # the look-up gave up on the silent session
        partition.cut.clear()  # the network is back: new connections work (the old one would too: it was closed)
        assert await asyncio.wait_for(waiting, 10)
        assert time.monotonic() - began < 8
        slots.release()

        from limner.db.engine import Database, create_db_engine

        db = Database(create_db_engine(pg_url))
        db.migrate()  # call_starts
        db.engine.dispose()
        rate = GlobalRate(rate_session, "fake", 100)
        await asyncio.wait_for(rate.acquire(), 10)
        partition.cut.set()
        assert await asyncio.wait_for(rate._try(), 5) == 1.0  # no answer: wait and ask again, never hang
        partition.cut.clear()
        await asyncio.wait_for(rate.acquire(), 10)
    finally:
        partition.cut.clear()
        for s in (session, rate_session):
            await asyncio.wait_for(s.close(), 5)
        partition.close()


@pytest.mark.slow
async def test_a_worker_whose_run_was_ended_by_another_goes_on_as_a_new_run(make_project_dir, pg_url):  # noqa: F811
    """Another run that finds a worker's heartbeat over a minute old (a lost database, a stalled machine) ends that
    worker's run and takes its entries over. The worker, back, went on under its ended run: `limner workers` no
    longer listed it, and every entry it claimed afterwards looked free to any other run at once (an ended holder
    is gone), so a `limner generate` or a worker running a job of the same entry paid for it again. It now notices
    at its next heartbeat, stops paid work as after a fault, and goes on as a new run."""
    from limner.db.models import LedgerRow
    from limner.queue.engine import conninfo
    from limner.queue.worker import run_worker

    p = queue_project(make_project_dir, pg_url, 4, extra="latency_s = 0.2\n")
    project = p.project()
    bosses: list = []
    running = asyncio.create_task(run_worker(project, conninfo(project), concurrency=2, queues=None,
                                             supervisor=bosses))
    try:
        await _until(lambda: len(p.run_json("workers")["workers"]) == 1, 60, "the worker to start")
        old = bosses[0].runtime.run.id
        await asyncio.to_thread(project.repo.end_run, old)  # what another run does to a worker it judged gone
        await _until(lambda: len(p.run_json("workers")["workers"]) == 1 and bosses[0].runtime.run.id != old, 30,
                     "the worker to go on as a new run")
        assert (await asyncio.to_thread(p.run_json, "generate", "--enqueue"))["enqueued"] == 4
        await _until(lambda: published(p) == 4, 60, "every entry published")
        new = bosses[0].runtime.run.id
    finally:
        if bosses:
            bosses[0].stop()
        await asyncio.wait_for(running, 60)
    with project.db.session() as s:
        assert {r.run_id for r in s.query(LedgerRow).all()} == {new}  # every call under the live run
    project.close()
