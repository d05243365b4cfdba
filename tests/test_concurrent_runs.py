"""Two ``limner generate`` runs at once on one project pay once per entry and together publish every entry
(SQLite and PostgreSQL); a claim of a dead run is taken over at once; an upgrade keeps the data."""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import sys
from collections import Counter

import pytest
from test_db_postgres import pg_url  # noqa: F401  (fixture)
from test_runner import rows

from limner.db.engine import SCHEMA_HEAD, Database, alembic_config, create_db_engine
from limner.db.models import EntryRow, LedgerRow, RunRow
from limner.runner.claims import LEASE_S, RunIdentity


def start(p, *args):
    return subprocess.Popen([sys.executable, "-m", "limner", "--config", str(p.config), "generate", "--json",
                             "--no-progress", *args], cwd=p.root, env=p.env(), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
def test_two_runs_at_once_pay_once_per_entry_and_publish_everything(make_project_dir, backend, request):
    p = make_project_dir(16, extra="latency_s = 0.25\nprice_usd = 0.01\n")
    if backend == "postgres":
        url = request.getfixturevalue("pg_url")
        p.config.write_text(p.config.read_text() + f'\n[database]\nurl = "{url}"\n')
    first, second = start(p), start(p)
    results = []
    for proc in (first, second):
        out, err = proc.communicate(timeout=180)
        assert proc.returncode == 0, err
        results.append(json.loads(out))
    calls = Counter(c["id"] for c in p.calls())
    assert len(calls) == 16 and set(calls.values()) == {1}, calls  # every entry paid for exactly once
    assert sum(r["generated"] for r in results) == 16
    assert sum(r["elsewhere"] for r in results) == sum(r["planned"] for r in results) - 16
    assert abs(sum(r["spend_usd"] for r in results) - 0.16) < 1e-9
    project = p.project()
    try:
        assert project.repo.counts_by_state() == {"published": 16}
        with project.db.session() as s:
            ledger = s.query(LedgerRow).all()
            assert len(ledger) == 16 and abs(sum(r.cost_usd for r in ledger) - 0.16) < 1e-9
            assert all(e.claimed_by is None for e in s.query(EntryRow).all())
            assert all(r.finished_at is not None for r in s.query(RunRow).all())
    finally:
        project.close()


def test_claims(project_dir):
    project = project_dir.project()
    repo = project.repo
    try:
        repo.sync_entries([("a", "A", None, "f1")])
        me, other = RunIdentity(), RunIdentity()
        repo.start_run(me.id, me.host, me.pid)
        repo.start_run(other.id, "another-host", 1)
        assert repo.claim("a", "f1", other.id).status == "claimed"
        held = repo.claim("a", "f1", me.id)
        assert held.status == "held" and held.holder.id == other.id
        now = held.holder.heartbeat_at
        assert not me.holder_is_gone(held.holder, now)  # another host, fresh heartbeat: it holds
        assert me.holder_is_gone(held.holder, now + dt.timedelta(seconds=LEASE_S + 1))  # lease over
        # a new plan of the same entry leaves the holder's row alone
        repo.sync_entries([("a", "A", None, "f2")])
        assert {e.id: e.fingerprint for e in rows(project_dir, EntryRow)}["a"] == "f1"
        repo.end_run(other.id)
        assert repo.claim("a", "f1", me.id).status == "claimed"
        assert repo.claim("a", "f1", me.id).status == "claimed"  # idempotent for its holder
    finally:
        project.close()


def test_a_pid_is_judged_only_in_its_own_process_table(project_dir):
    """Two containers with ``--network host`` share a hostname, not a PID namespace: a live worker there has a
    pid that does not exist here. Only a run of this process table is judged dead by its pid."""
    project = project_dir.project()
    repo = project.repo
    try:
        repo.sync_entries([("a", "A", None, "f1"), ("b", "B", None, "f1"), ("c", "C", None, "f1")])
        me = RunIdentity()
        dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
        gone_pid = int(dead.stdout)
        for run_id, scope, entry in (("container", me.scope + "-another-pid-namespace", "a"), ("here", me.scope, "b"),
                                     ("older", None, "c")):
            repo.start_run(run_id, me.host, gone_pid, scope=scope)
            assert repo.claim(entry, "f1", run_id).status == "claimed"
        held = {entry: repo.claim(entry, "f1", me.id) for entry in "abc"}
        now = held["a"].holder.heartbeat_at
        assert not me.holder_is_gone(held["a"].holder, now)  # same hostname, other PID namespace, fresh heartbeat
        assert me.holder_is_gone(held["a"].holder, now + dt.timedelta(seconds=LEASE_S + 1))  # its lease still ends
        assert me.holder_is_gone(held["b"].holder, now)  # this process table: its pid is gone, so is the run
        assert me.holder_is_gone(held["c"].holder, now)  # recorded without a scope: judged by its host, as before
        assert {r.id: r.scope for r in rows(project_dir, RunRow)}["here"] == me.scope
    finally:
        project.close()


def test_another_pid_namespace_is_another_process_table():
    probe = [sys.executable, "-c", "from limner.runner.claims import process_table; print(process_table())"]
    try:
        inside = subprocess.run(["unshare", "--pid", "--fork", "--mount-proc", *probe], capture_output=True, text=True,
                                timeout=60)
    except FileNotFoundError:
        pytest.skip("no unshare here")
    if inside.returncode:
        pytest.skip(f"cannot make a PID namespace here: {inside.stderr.strip()[:200]}")
    here = subprocess.run(probe, capture_output=True, text=True, check=True).stdout.strip()
    assert inside.stdout.strip() != here and inside.stdout.split("/")[0] == here.split("/")[0]  # same hostname


def test_a_run_that_planned_before_another_published_does_not_pay_again(project_dir):
    """The order CI once hit: run B plans entry a, run A publishes it, then B queues its plan and claims."""
    from limner.db.models import EntryState

    project = project_dir.project()
    repo = project.repo
    try:
        repo.sync_entries([("a", "A", None, "f1")])
        a, b = RunIdentity(), RunIdentity()
        repo.start_run(a.id, a.host, a.pid)
        repo.start_run(b.id, b.host, b.pid)
        assert repo.claim("a", "f1", a.id).status == "claimed"
        repo.set_state("a", EntryState.published, published_fingerprint="f1", claimed_by=None, claimed_at=None)
        repo.sync_entries([("a", "A", None, "f1")])  # B queues what it planned before A published
        assert repo.entry_statuses()["a"].state == "published"
        assert repo.claim("a", "f1", b.id).status == "published"  # so B never pays for it
        repo.sync_entries([("a", "A", None, "f2")])  # a changed spec is queued as before
        assert repo.entry_statuses()["a"].state == "queued"
        assert repo.claim("a", "f2", b.id).status == "claimed"
    finally:
        project.close()


def test_a_run_that_planned_before_another_failed_an_entry_for_good_does_not_pay_again(make_project_dir):
    """Run B plans entry event-000, run A is refused for it (failed for good, not retried by itself), then B
    runs its plan: it queued the entry again and paid for the refused spec a second time, which no run planned
    after A's failure would do."""
    from limner.runner import RunOptions, Selection, build_plan, run_plan

    p = make_project_dir(2, extra='refuse_ids = ["event-000"]\nprice_usd = 0.01\n')
    first, second = p.project(), p.project()
    try:
        late = build_plan(second, Selection())  # B plans both entries
        summary = run_plan(first, build_plan(first, Selection()), RunOptions(progress=False))  # A runs
        assert summary.failed == 1 and [c["id"] for c in p.calls()].count("event-000") == 1
        summary = run_plan(second, late, RunOptions(progress=False))  # then B runs what it planned
        assert [c["id"] for c in p.calls()].count("event-000") == 1  # never paid for again
        assert summary.provider_calls == 0 and summary.elsewhere == 2
        status = second.repo.entry_statuses()["event-000"]
        assert (status.state, status.retryable) == ("failed", False)  # still held, with its error
        assert "refused" in (status.last_error or "")
        # asked for by name (forced), or with a changed spec, it is made again as before
        assert run_plan(second, build_plan(second, Selection(ids=("event-000",))),
                        RunOptions(progress=False)).provider_calls == 1
    finally:
        first.close()
        second.close()


def test_a_run_that_planned_before_a_regeneration_published_does_not_pay_for_the_old_spec(make_project_dir):
    """Run G plans entry event-000 (missing), a person regenerates it with a seed of their own (published), then G
    reaches the entry: it paid for the spec it had planned (without the person's change), published it over the
    person's image, and the next run paid for the person's spec a second time. Now G leaves the entry alone: an
    image was published since it planned it."""
    from limner.review import regenerate
    from limner.runner import RunOptions, Selection, build_plan, run_plan

    p = make_project_dir(2, extra="price_usd = 0.01\n")
    g, person = p.project(), p.project()
    try:
        planned = build_plan(g, Selection())  # G plans both entries
        regenerated = regenerate(person, "event-000", seed=7)  # the studio's button, while G has not reached it
        assert regenerated.generated == 1 and [c["seed"] for c in p.calls()] == [7]
        summary = run_plan(g, planned, RunOptions(progress=False))  # then G reaches the entry
        assert summary.elsewhere == 1 and summary.generated == 1
        assert [c["id"] for c in p.calls()].count("event-000") == 1  # the old spec was not paid for
        published = {r.entry_id: r.seed for r in g.repo.published_renders()}
        assert published["event-000"] == 7  # the person's image stays published
        again = run_plan(g, build_plan(g, Selection()), RunOptions(progress=False))
        assert again.provider_calls == 0 and len(p.calls()) == 2  # and nothing is paid for twice
    finally:
        g.close()
        person.close()


def test_an_image_another_run_kept_in_the_recovery_folder_after_this_one_started_is_recorded_not_paid_again(
        make_project_dir, monkeypatch):
    """Run A (on this host) paid for entry event-000, could not store it, kept it in the recovery folder and ended;
    run B had read the folder before that: it took the entry over, settled A's line lost, paid for the same image
    again, and left A's image in the folder for ever. Now B looks in the folder again for an entry with an open
    line, and records the kept image without a call."""
    import hashlib

    from limner.db.tables import CallStatus
    from limner.runner import RunOptions, Selection, build_plan, run_plan
    from limner.runner import run as run_module
    from limner.runner.recovery import Kept, RecoveryFolder
    from limner.testing.fake_provider import noisy_png

    p = make_project_dir(1, extra="price_usd = 0.01\n")
    project = p.project()
    plan = build_plan(project, Selection())
    item = plan.items[0]
    data = noisy_png(96, 96, item.spec.seed)

    def run_a_keeps_its_image(path):
        repo, a = project.repo, RunIdentity()
        repo.start_run(a.id, a.host, a.pid)
        assert repo.claim(item.entry.id, item.fingerprint, a.id).status == "claimed"
        line = repo.open_call(entry_id=item.entry.id, fingerprint=item.fingerprint, run_id=a.id, provider="fake",
                              model=item.spec.model, estimate_usd=0.01)
        RecoveryFolder(path).keep(data, Kept(entry_id=item.entry.id, fingerprint=item.fingerprint, provider="fake",
                                             model=item.spec.model, seed=item.spec.seed, cost_usd=0.01,
                                             sha256=hashlib.sha256(data).hexdigest(), call_id=line))
        repo.settle_call(line, CallStatus.answered, cost_usd=0.01, outcome="kept_locally")
        repo.end_run(a.id)

    def read_then_a_keeps(path):  # B reads the folder (empty) as its run starts; A keeps its image just after
        folder = RecoveryFolder(path)
        assert len(folder) == 0
        run_a_keeps_its_image(path)
        return folder

    monkeypatch.setattr(run_module, "RecoveryFolder", read_then_a_keeps)
    try:
        summary = run_plan(project, plan, RunOptions(progress=False))
        assert summary.generated == 1 and summary.resumed == 1 and p.calls() == []  # not paid again
        assert summary.provider_calls == 0 and summary.spend_usd == 0
        lines = rows(p, LedgerRow)
        assert [(r.status, r.cost_usd) for r in lines] == [("recorded", 0.01)] and lines[0].render_id
        assert list((project.settings.state_dir / "recovery").glob("*.img")) == []
    finally:
        project.close()


def test_a_run_whose_entry_was_taken_over_leaves_the_new_holder_its_claim_when_its_call_fails(make_project_dir,
                                                                                                monkeypatch):
    """Run A, judged gone from another host (its heartbeat stalled), comes back while run B holds its entry; A's
    call then fails: recording the failure cleared B's claim (and set the entry failed under B's feet), so a third
    run could claim the entry and pay for it while B's call was out. Now a failure is recorded only while the run
    still holds the entry."""
    from limner.providers import Transient
    from limner.runner import RunOptions, Selection, build_plan, run_plan
    from limner.testing.fake_provider import FakeProvider

    p = make_project_dir(1)
    p.config.write_text(p.config.read_text().replace("concurrency = 4\n", "concurrency = 4\nmax_attempts = 1\n"))
    project = p.project()
    b = RunIdentity(host="another-host", scope="another-host/x/y")

    async def generate(self, request):  # while A's call is out, B takes the entry over
        repo = project.repo
        [(entry_id, holder)] = [(e.id, e.claimed_by) for e in rows(p, EntryRow)]
        repo.end_run(holder)
        repo.start_run(b.id, b.host, b.pid, scope=b.scope)
        assert repo.claim(entry_id, rows(p, EntryRow)[0].fingerprint, b.id).status == "claimed"
        raise Transient("fake: 503 Service Unavailable")

    monkeypatch.setattr(FakeProvider, "generate", generate)
    try:
        summary = run_plan(project, build_plan(project, Selection()), RunOptions(progress=False))
        assert summary.failed == 1
        [entry] = rows(p, EntryRow)
        assert entry.claimed_by == b.id and entry.state == "generating"  # still B's
    finally:
        project.close()


def test_a_claim_of_a_process_that_is_gone_does_not_hold(project_dir):
    me = RunIdentity()
    now = dt.datetime.now(dt.UTC).replace(tzinfo=None)
    dead = RunRow(id="x", host=me.host, pid=2**22 + 12345, started_at=now, heartbeat_at=now)
    assert me.holder_is_gone(dead, dead.heartbeat_at)
    alive = RunRow(id="y", host=me.host, pid=me.pid, started_at=now, heartbeat_at=dead.heartbeat_at)
    assert not me.holder_is_gone(alive, alive.heartbeat_at)


@pytest.mark.skipif(not os.path.exists("/proc/self/stat"), reason="process states and start ticks come from /proc")
def test_a_live_process_holds_its_claims_however_old_its_heartbeat_but_not_a_reused_pid_or_a_zombie(project_dir):
    """A run stopped with Ctrl-Z (SIGSTOP) for over a minute lost its claims to the next run, and both paid for
    the same entries when it resumed: in the same process table, a live process's claims hold. A pid that now
    names a process that started at another tick (the pid was reused) or a zombie (killed, not reaped) frees
    them. Ticks since boot, not wall-clock times: a clock step changes nothing."""
    import signal

    me = RunIdentity()
    assert me.process_start is not None
    now = dt.datetime.now(dt.UTC).replace(tzinfo=None)
    stale = now - dt.timedelta(seconds=10 * LEASE_S)

    def row(pid: int, start: int | None, heartbeat: dt.datetime = stale) -> RunRow:
        return RunRow(id="r", host=me.host, scope=me.scope, pid=pid, process_start=start,
                      started_at=now - dt.timedelta(hours=5), heartbeat_at=heartbeat)

    assert not me.holder_is_gone(row(me.pid, me.process_start), now)  # stopped, starved, or the clock was set
    assert me.holder_is_gone(row(me.pid, me.process_start - 1000), now)  # this pid is another process now
    assert me.holder_is_gone(row(me.pid, None), now) and not me.holder_is_gone(row(me.pid, None, now), now)
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        from limner.runner.claims import process_status

        started = process_status(child.pid)[1]
        assert not me.holder_is_gone(row(child.pid, started), now)
        os.kill(child.pid, signal.SIGKILL)
        deadline = dt.datetime.now() + dt.timedelta(seconds=10)
        while process_status(child.pid)[0] != "Z" and dt.datetime.now() < deadline:
            pass
        assert me.holder_is_gone(row(child.pid, started, now), now)  # a zombie: dead, whatever its heartbeat
    finally:
        child.wait()
    other_host = RunRow(id="o", host="elsewhere", scope="elsewhere/x/y", pid=me.pid, process_start=me.process_start,
                        started_at=now, heartbeat_at=now - dt.timedelta(seconds=LEASE_S + 1))
    assert me.holder_is_gone(other_host, now)  # from another process table only the heartbeat can tell


def test_upgrading_a_database_from_the_first_revision_keeps_its_data(tmp_path):
    from alembic import command
    from sqlalchemy import text

    db = Database(create_db_engine(f"sqlite:///{tmp_path / 'old.db'}"))
    cfg = alembic_config(db.engine)
    with db.engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "0001")
    with db.engine.begin() as conn:
        conn.execute(text("INSERT INTO entries (id, title, state, attempts, retryable, created_at, updated_at) "
                          "VALUES ('kept', 'Kept', 'published', 1, 1, '2026-01-01', '2026-01-01')"))
    db.migrate()
    assert db.schema_revision() == SCHEMA_HEAD
    with db.engine.connect() as conn:
        assert conn.execute(text("SELECT id, claimed_by FROM entries")).all() == [("kept", None)]
    db.close()


def _open_and_queue(path: str, answers) -> None:  # type: ignore[no-untyped-def]
    from limner.db.engine import open_database
    from limner.db.repository import Repository

    try:
        db = open_database(f"sqlite:///{path}")
        Repository(db).sync_entries([("a", "A", None, "f")])
        db.close()
        answers.put("ok")
    except Exception as exc:  # noqa: BLE001 - the answer is the test's
        answers.put(f"{type(exc).__name__}: {exc}")


def test_two_processes_creating_one_new_database_both_succeed(tmp_path):
    """Switching a new database to WAL answered "database is locked" at once to the second process."""
    import multiprocessing

    ctx = multiprocessing.get_context("fork")
    answers = ctx.Queue()
    for round_ in range(40):
        path = tmp_path / f"new-{round_}.db"
        procs = [ctx.Process(target=_open_and_queue, args=(str(path), answers)) for _ in range(2)]
        for proc in procs:
            proc.start()
        for proc in procs:
            proc.join(60)
        assert [answers.get(timeout=5) for _ in procs] == ["ok", "ok"]


def test_a_run_another_ended_stops_starting_paid_calls(make_project_dir, monkeypatch):
    """A run that another judged gone (its heartbeat stalled past the lease, seen from another host) had its row
    ended and its claims freed, but went on: it ignored its heartbeat's answer, kept claiming entries under the
    ended run, and every one looked free to any other run at once, which could pay for it too. It now stops
    starting paid calls, as after a fault (the calls out finish and are kept), and says why (exit 1)."""
    import threading
    import time

    from limner.runner import RunOptions, Selection, build_plan, run_plan
    from limner.runner import run as run_module

    monkeypatch.setattr(run_module, "HEARTBEAT_S", 0.1)
    p = make_project_dir(8, extra="latency_s = 0.4\nprice_usd = 0.01\n")
    p.config.write_text(p.config.read_text().replace("concurrency = 4", "concurrency = 1"))
    project = p.project()
    ended = threading.Event()

    def end_the_run_once_it_works() -> None:  # what another run does to a run it judges gone
        other = p.project()
        try:
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:
                with other.db.session() as s:
                    holder = next((e.claimed_by for e in s.query(EntryRow).all() if e.claimed_by), None)
                if holder is not None:
                    other.repo.end_run(holder)
                    ended.set()
                    return
                time.sleep(0.05)
        finally:
            other.close()

    judge = threading.Thread(target=end_the_run_once_it_works)
    judge.start()
    try:
        summary = run_plan(project, build_plan(project, Selection()), RunOptions(progress=False))
    finally:
        judge.join()
        project.close()
    assert ended.is_set()
    assert summary.halted and "judged this one gone" in summary.halted and summary.exit_code == 1
    assert summary.provider_calls < 8 and len(p.calls()) == summary.provider_calls
    again = p.run_json("generate", "--no-progress")
    assert again["generated"] + summary.generated == 8
    calls = Counter(c["id"] for c in p.calls())
    assert len(calls) == 8 and set(calls.values()) == {1}, calls  # none paid twice


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
def test_an_image_kept_after_a_fault_on_one_host_is_published_by_a_run_on_another_without_a_call(
        make_project_dir, backend, request, tmp_path):
    """Host A paid for images its store could not take and kept them in its own recovery folder; a provider that
    returns the bytes inline gives no call id to ask about, so a run on host B (another project folder on the same
    database and store: the scale-out setup) found the open lines, settled them lost and paid for every image
    again. The kept image is now in the database, written with its ledger line: a run on any host publishes it
    without a call, and it is removed with the render's record."""
    from projects import FailingWrites
    from test_runner import assert_consistent, run, run_broken

    from sqlalchemy import func, select

    from limner.db.tables import kept_images
    from limner.storage import StorageError

    url = request.getfixturevalue("pg_url") if backend == "postgres" else f"sqlite:///{tmp_path / 'shared.db'}"
    shared = f'\n[database]\nurl = "{url}"\n\n[storage]\nurl = "{tmp_path / "media"}"\n'
    a, b = (make_project_dir(3, extra="price_usd = 0.01\n", name=name) for name in ("host-a", "host-b"))
    for p in (a, b):
        p.config.write_text(p.config.read_text() + shared)
    kept = run_broken(a, storage=lambda project: FailingWrites(project.storage, "masters/", StorageError("disk full")))
    paid = len(a.calls())
    assert paid >= 1 and kept.kept_locally == paid and kept.generated == 0
    assert not list((a.root / ".limner" / "recovery").glob("*.img"))  # kept where every host finds it

    _, published = run(b)  # another host: its own folder, the same database and store
    assert len(b.calls()) == 3 - paid  # the images paid for on host A are not paid for again
    assert published.generated == 3 and published.resumed == paid and published.provider_calls == 3 - paid
    ledger = rows(b, LedgerRow)
    assert len(ledger) == 3 and {r.status for r in ledger} == {"recorded"} and all(r.render_id for r in ledger)
    assert abs(sum(r.cost_usd for r in ledger) - 0.03) < 1e-9
    assert abs(kept.spend_usd + published.spend_usd - 0.03) < 1e-9  # the summaries are the ledger's
    project = b.project()
    try:
        assert project.repo.counts_by_state() == {"published": 3}
        with project.db.engine.connect() as conn:  # removed once the master is stored and recorded
            assert conn.execute(select(func.count()).select_from(kept_images)).scalar() == 0
    finally:
        project.close()
    assert_consistent(b)
