"""The runner end to end, in process, on the fake provider."""

from __future__ import annotations

import hashlib
from collections import Counter

import pytest
from sqlalchemy import func, select, update

from projects import FailingWrites

from limner.db.models import EntryRow, LedgerRow, Render, RenderStatus, RunRow, Variant
from limner.errors import EXIT_AUTH, EXIT_BUDGET, EXIT_FAILURES
from limner.runner import RunOptions, Selection, build_plan, run_plan


def run(p, selection=Selection(), budget=None, **overrides):
    project = p.project(**overrides)
    try:
        plan = build_plan(project, selection)
        summary = run_plan(project, plan, RunOptions(budget_usd=budget, progress=False))
        return plan, summary
    finally:
        project.close()


def run_broken(p, **parts):
    """One run with parts of the project replaced (``repo=lambda project: ...``, ``storage=...``): a database or a
    store that fails mid-run."""
    project = p.project()
    for name, make in parts.items():
        project.__dict__[name] = make(project)
    try:
        return run_plan(project, build_plan(project, Selection()), RunOptions(progress=False))
    finally:
        project.close()


def rows(p, model):
    project = p.project()
    try:
        with project.db.session() as s:
            return list(s.scalars(select(model)).all())
    finally:
        project.close()


def assert_consistent(p):
    """Every row points at an existing object whose bytes match; one live render per entry."""
    project = p.project()
    try:
        storage = project.storage
        with project.db.session() as s:
            renders = list(s.scalars(select(Render)).all())
            for r in renders:
                data = storage.get(r.master_key)
                assert hashlib.sha256(data).hexdigest() == r.master_sha256
                if r.placeholder_key:
                    assert storage.exists(r.placeholder_key)
            for v in s.scalars(select(Variant)).all():
                assert hashlib.sha256(storage.get(v.key)).hexdigest() == v.sha256
            live = Counter(r.entry_id for r in renders if r.status != RenderStatus.superseded.value)
            assert all(n == 1 for n in live.values()), live
    finally:
        project.close()


def test_generate_publishes_everything_then_rerun_makes_no_calls(project_dir):
    plan, summary = run(project_dir)
    assert summary.planned == 6 and summary.generated == 6 and summary.failed == 0
    assert summary.provider_calls == 6 == len(project_dir.calls())
    entries = rows(project_dir, EntryRow)
    assert {e.state for e in entries} == {"published"}
    variants = rows(project_dir, Variant)
    assert {v.format for v in variants} == {"avif", "webp", "jpeg"}
    assert_consistent(project_dir)

    plan, summary = run(project_dir)
    assert plan.items == [] and plan.up_to_date == 6
    assert summary.provider_calls == 0 and len(project_dir.calls()) == 6


def test_changing_one_description_regenerates_exactly_that_entry(project_dir):
    run(project_dir)
    entries = project_dir.entries()
    entries[2]["description"] = "A new description."
    project_dir.write_catalog(entries)
    plan, summary = run(project_dir)
    assert [(i.entry.id, i.reason) for i in plan.items] == [(entries[2]["id"], "stale")]
    assert summary.generated == 1 and summary.provider_calls == 1
    renders = rows(project_dir, Render)
    assert sum(r.status == "superseded" for r in renders) == 1
    assert_consistent(project_dir)


def test_changing_a_style_template_makes_its_entries_stale(project_dir):
    project_dir.write_config('[project]\nera_styles = { modern = "docu" }\n[styles.docu]\npositive = "photo of {{ title }}"\n')
    run(project_dir)
    project_dir.write_config('[project]\nera_styles = { modern = "docu" }\n[styles.docu]\npositive = "a photograph of {{ title }}"\n')
    modern = {e["id"] for e in project_dir.entries() if e["era"] == "modern"}
    project = project_dir.project()
    plan = build_plan(project, Selection())
    project.close()
    assert {i.entry.id for i in plan.items} == modern and {i.reason for i in plan.items} == {"stale"}
    # --missing leaves stale entries alone
    project = project_dir.project()
    assert build_plan(project, Selection(missing=True, stale=False)).items == []
    project.close()


def test_transient_errors_and_rate_limits_are_retried(make_project_dir):
    p = make_project_dir(4, extra='transient_ids = { event-000 = 2 }\nrate_limit_ids = { event-001 = 1 }\nretry_after = 0.05\n')
    _, summary = run(p)
    assert summary.generated == 4 and summary.failed == 0
    calls = Counter(c["id"] for c in p.calls())
    assert calls["event-000"] == 3 and calls["event-001"] == 2 and calls["event-002"] == 1
    renders = {r.entry_id: r for r in rows(p, Render)}
    assert renders["event-000"].attempts == 3


def test_refusal_is_permanent_and_held_back_until_asked(make_project_dir):
    p = make_project_dir(3, extra='refuse_ids = ["event-001"]\n')
    _, summary = run(p)
    assert summary.generated == 2 and summary.failed == 1 and summary.exit_code == EXIT_FAILURES
    entry = {e.id: e for e in rows(p, EntryRow)}["event-001"]
    assert entry.state == "failed" and not entry.retryable and "refused" in entry.last_error
    project = p.project()
    plan = build_plan(project, Selection())
    assert plan.items == [] and plan.held_back == ["event-001"]
    forced = build_plan(project, Selection(ids=("event-001",)))
    project.close()
    assert [i.reason for i in forced.items] == ["forced"]


def test_exhausted_retries_fail_retryably_and_next_run_retries(make_project_dir):
    p = make_project_dir(2, extra='transient_ids = { event-000 = 99 }\n')
    _, summary = run(p)
    assert summary.failed == 1 and summary.generated == 1
    assert Counter(c["id"] for c in p.calls())["event-000"] == 4  # max_attempts
    project = p.project()
    plan = build_plan(project, Selection())
    project.close()
    assert [(i.entry.id, i.reason) for i in plan.items] == [("event-000", "retry")]


def test_auth_failure_stops_the_run(make_project_dir):
    p = make_project_dir(20, extra="auth_fail = true\n")
    _, summary = run(p)
    assert summary.auth_error and "rejected the credentials" in summary.auth_error
    assert summary.exit_code == EXIT_AUTH
    assert len(p.calls()) <= 4  # the concurrency: nothing new starts after the first failure
    assert summary.generated == 0


def test_a_stopped_run_puts_the_entries_it_left_generating_back(make_project_dir):
    """Credentials rejected mid-run: the entries claimed and never finished are not left ``generating`` (which
    reads as a run in progress, and stops ``gc --delete``): back to ``published`` where an image still shows,
    ``queued`` where none does."""
    p = make_project_dir(6)
    run(p)
    p.write_config("auth_fail = true\n")
    _, summary = run(p, Selection(all=True))
    assert summary.exit_code == EXIT_AUTH
    states = [e.state for e in rows(p, EntryRow)]
    called = len({c["id"] for c in p.calls()[6:]})  # the calls that failed on the credentials: those entries failed
    assert sorted(states) == ["failed"] * called + ["published"] * (6 - called) and called < 6

    q = make_project_dir(6, extra="auth_fail = true\n", name="never")
    _, summary = run(q)
    assert summary.exit_code == EXIT_AUTH
    called = len({c["id"] for c in q.calls()})
    assert sorted(e.state for e in rows(q, EntryRow)) == ["failed"] * called + ["queued"] * (6 - called) and called < 6
    assert not any(e.claimed_by for e in rows(q, EntryRow))
    gc = q.run("gc", "--delete")
    assert gc.returncode == 0, gc.stderr


def test_budget_never_starts_a_call_over_the_cap(make_project_dir):
    p = make_project_dir(10, extra="price_usd = 0.01\n")
    _, summary = run(p, budget=0.035)
    assert summary.generated == 3 and summary.budget_stopped and summary.exit_code == EXIT_BUDGET
    assert len(p.calls()) == 3
    assert abs(sum(r.cost_usd for r in rows(p, LedgerRow)) - 0.03) < 1e-9
    # the rest is still to do, and a bigger budget finishes it
    _, summary = run(p, budget=1.0)
    assert summary.generated == 7 and len(p.calls()) == 10


def test_a_call_that_cost_nothing_leaves_its_room_under_the_cap_to_the_entries_after_it(make_project_dir):
    """Each entry reserved its price when a worker took it, before it waited for a provider slot; an entry that
    found the cap held by those reservations was dropped as "not started" at once. A refused call costs
    nothing: at $0.01 each under a $0.02 cap, two of three entries could be made, but one was ("Budget reached"
    at $0.01). An entry now waits while the cap is held only by reservations in flight."""
    p = make_project_dir(3, extra='price_usd = 0.01\nrefuse_ids = ["event-000"]\n')
    _, summary = run(p, budget=0.02)
    assert summary.generated == 2 and summary.failed == 1 and summary.not_started == 0
    assert not summary.budget_stopped and summary.spend_usd == pytest.approx(0.02)
    assert sum(r.cost_usd for r in rows(p, LedgerRow)) == pytest.approx(0.02)
    # and it still never starts a call past the cap: one more entry does not fit
    p2 = make_project_dir(4, extra='price_usd = 0.01\nrefuse_ids = ["event-000"]\n', name="four")
    _, summary = run(p2, budget=0.02)
    assert summary.generated == 2 and summary.not_started == 1 and summary.budget_stopped
    assert sum(r.cost_usd for r in rows(p2, LedgerRow)) == pytest.approx(0.02)


def test_calls_lost_to_timeouts_never_take_the_spend_past_the_cap(make_project_dir):
    """The price was reserved once per entry, but an entry may make max_attempts calls, and a call lost to its
    deadline costs its list price: 30 entries at $0.10 under a $1.00 cap, every call timing out, spent $4.00.
    Now each call past the entry's reservation reserves its own price first, or is not made."""
    p = make_project_dir(30, extra="price_usd = 0.10\nlatency_s = 0.5\n")
    p.config.write_text(p.config.read_text().replace("concurrency = 4\n", "concurrency = 16\ncall_timeout_s = 0.05\n"
                                                                     "max_attempts = 4\n"))
    _, summary = run(p, budget=1.0)
    lines = rows(p, LedgerRow)
    assert summary.budget_stopped and summary.generated == 0
    assert len(lines) == 10 and all(r.status == "lost" for r in lines)
    assert sum(r.cost_usd for r in lines) == pytest.approx(1.0)
    assert summary.spend_usd == pytest.approx(1.0) and summary.provider_calls == 10
    states = Counter(e.state for e in rows(p, EntryRow))
    assert set(states) <= {"queued", "failed"} and not any(e.claimed_by for e in rows(p, EntryRow))
    assert states["queued"] >= 20  # the entries the cap stopped stay queued, for a run with a new cap
    assert_consistent(p)


def test_blank_and_corrupt_images_are_rejected(make_project_dir):
    p = make_project_dir(3, extra='blank_ids = ["event-000"]\ncorrupt_ids = ["event-001"]\n')
    _, summary = run(p)
    assert summary.generated == 1 and summary.failed == 2
    entries = {e.id: e for e in rows(p, EntryRow)}
    assert "blank" in entries["event-000"].last_error
    assert "corrupt" in entries["event-001"].last_error
    assert {r.entry_id: r.status for r in rows(p, Render)}["event-000"] == "rejected"
    assert_consistent(p)


def test_limit_and_ids(project_dir):
    plan, summary = run(project_dir, Selection(limit=2))
    assert summary.generated == 2
    plan, summary = run(project_dir, Selection(ids=("event-005",)))
    assert [i.entry.id for i in plan.items] == ["event-005"]
    plan, summary = run(project_dir, Selection(all=True))
    assert len(plan.items) == 6 and {i.reason for i in plan.items} >= {"forced", "missing"}
    assert_consistent(project_dir)


async def test_a_provider_can_give_its_slot_back_before_the_download():
    """release_slot(): the next call starts while this one is still fetching its output."""
    import asyncio

    from limner.providers import Capabilities, GenerationRequest, GenerationResult, Provider
    from limner.providers.base import release_slot
    from limner.runner.retry import CallStats, ProviderGate

    events = []

    class TwoPhase(Provider):
        name = "two-phase"
        capabilities = Capabilities()

        async def generate(self, request):
            events.append(("start", request.seed))
            await asyncio.sleep(0.05)  # the remote work
            release_slot()
            release_slot()  # twice is harmless
            await asyncio.sleep(0.2)  # the download, outside the slot
            events.append(("end", request.seed))
            return GenerationResult(data=b"x", seed=request.seed)

    gate = ProviderGate(TwoPhase(), concurrency=1, rate_per_minute=None, timeout_s=None, max_attempts=1,
                        backoff_initial_s=0, backoff_max_s=0)
    req = lambda seed: GenerationRequest(prompt="p", negative_prompt="", width=64, height=64, seed=seed, model="m")  # noqa: E731
    await asyncio.gather(gate.call(req(1), CallStats()), gate.call(req(2), CallStats()))
    assert events.index(("start", 2)) < events.index(("end", 1))
    assert gate.slots._value == 1  # every slot given back exactly once


def test_storage_full_after_a_paid_answer_stops_paying_keeps_the_image_and_the_next_run_adopts_it(make_project_dir):
    """Issue #8 (c): with storage full the run kept paying (20 paid, 1 published), its summary disagreed with
    the ledger, and the re-run paid again. Now the first failure stops new paid calls, the paid images are kept
    (in the database, which took writes: every host finds them there), the summary is the ledger's, and the next
    run records them without a call."""
    from limner.db.tables import kept_images
    from limner.storage import StorageError

    def kept_in_database() -> int:
        project = p.project()
        try:
            with project.db.engine.connect() as conn:
                return conn.execute(select(func.count()).select_from(kept_images)).scalar()
        finally:
            project.close()

    p = make_project_dir(12, extra="latency_s = 0.05\nprice_usd = 0.02\n")
    p.config.write_text(p.config.read_text().replace("concurrency = 4", "concurrency = 2"))
    summary = run_broken(p, storage=lambda project: FailingWrites(project.storage, "masters/", StorageError("disk full")))
    paid = len(p.calls())
    # only calls that were out when the first store failed: up to 2 in flight, and 2 more that started
    # while the first answers were being stored (the slot is free once the provider answers)
    assert 1 <= paid <= 4
    assert summary.halted and "kept in the database" in summary.halted and summary.exit_code == EXIT_FAILURES
    assert summary.kept_locally == paid and summary.generated == 0
    assert summary.not_started == 12 - paid
    ledger = rows(p, LedgerRow)
    assert summary.provider_calls == len(ledger) == paid  # the summary is the ledger's
    assert abs(summary.spend_usd - sum(r.cost_usd for r in ledger)) < 1e-9 and abs(summary.spend_usd - 0.02 * paid) < 1e-9
    assert {(r.status, r.outcome) for r in ledger} == {("answered", "kept")}
    recovery = p.root / ".limner" / "recovery"
    assert kept_in_database() == paid and not recovery.exists()

    _, again = run(p)  # storage works again
    assert again.generated == 12 and again.resumed == paid and again.failed == 0
    assert len(p.calls()) == 12  # the kept images were not paid for again
    ledger = rows(p, LedgerRow)
    assert len(ledger) == 12 and {r.status for r in ledger} == {"recorded"} and all(r.render_id for r in ledger)
    assert again.provider_calls == 12 - paid and abs(again.spend_usd - 0.02 * (12 - paid)) < 1e-9
    assert kept_in_database() == 0 and not recovery.exists()
    assert_consistent(p)


class ReadsFail:
    """Wraps a project's storage: reads of masters raise ``error`` (a store that cannot be reached, credentials
    that may write but not read); everything else passes."""

    def __init__(self, real, error):
        self._real, self._error = real, error

    def __getattr__(self, name):
        return getattr(self._real, name)

    def get(self, key):
        if key.startswith("masters/"):
            raise self._error
        return self._real.get(key)


@pytest.mark.parametrize("fault", ["unreachable", "forbidden", "missing"])
def test_a_master_that_cannot_be_read_on_resume_is_not_paid_for_again(make_project_dir, fault):
    """Any storage error while reading a stored master back to resume its entry was taken as "the master is
    gone", and the entry's image was paid for again. Only a missing master (``ObjectMissing``) is; any other
    read error fails the entry, which the next run resumes without a call."""
    from limner.storage import ObjectMissing, StorageError

    p = make_project_dir(1, extra="price_usd = 0.04\n")
    run_broken(p, storage=lambda project: FailingWrites(project.storage, "variants/", StorageError("disk full")))
    assert len(p.calls()) == 1  # the master is stored and recorded; its variants are not: resumable
    error = {"unreachable": StorageError("cannot reach S3 after 10 attempts", retryable=True),
             "forbidden": StorageError("S3 denied access (AccessDenied)"),
             "missing": ObjectMissing("object not found")}[fault]
    summary = run_broken(p, storage=lambda project: ReadsFail(project.storage, error))
    if fault == "missing":  # gone: a new image is fair
        assert len(p.calls()) == 2 and summary.generated == 1 and summary.provider_calls == 1
        return
    assert len(p.calls()) == 1 and summary.failed == 1 and summary.provider_calls == 0
    _, again = run(p)  # the store reads again: resumed, not paid for
    assert again.generated == 1 and again.resumed == 1 and len(p.calls()) == 1
    assert_consistent(p)


def test_a_failed_retry_of_a_reverted_change_costs_nothing(make_project_dir):
    p = make_project_dir(2)
    run(p)
    original = p.entries()
    changed = [dict(e) for e in original]
    changed[0]["title"] = "A new title"
    p.write_catalog(changed)
    p.config.write_text(p.config.read_text() + 'refuse_ids = ["event-000"]\n')
    _, summary = run(p)
    assert summary.failed == 1
    p.write_catalog(original)  # back to what is published
    project = p.project()
    plan = build_plan(project, Selection())
    project.close()
    assert plan.items == []


def test_a_provider_setting_that_changes_the_image_makes_entries_stale(make_project_dir, monkeypatch):
    from limner.testing.fake_provider import FakeProvider

    monkeypatch.setattr(FakeProvider, "image_settings", ("quality",))
    monkeypatch.setattr(FakeProvider, "accepted_settings", FakeProvider.accepted_settings | {"quality"})
    p = make_project_dir(2, extra='quality = "low"\n')
    run(p)
    project = p.project()
    assert build_plan(project, Selection()).items == []
    project.close()
    p.config.write_text(p.config.read_text().replace('quality = "low"', 'quality = "high"'))
    project = p.project()
    plan = build_plan(project, Selection())
    project.close()
    assert {i.reason for i in plan.items} == {"stale"} and len(plan.items) == 2
    # a setting that does not shape the image changes nothing
    p.config.write_text(p.config.read_text().replace('quality = "high"', 'quality = "low"') + "latency_s = 0.001\n")
    project = p.project()
    assert build_plan(project, Selection()).items == []
    project.close()


def test_a_database_that_fills_up_mid_run_stops_paying_and_loses_nothing(make_project_dir):
    """Issue #8 (d): a database disk filling mid-run aborted with a traceback and no summary, and 6 paid
    calls were paid again on the next run. Now the run ends with a summary, the paid images wait in the
    recovery folder, and the next run records them without a call."""
    from sqlalchemy.exc import OperationalError

    from limner.db.repository import Repository

    class FillsUp(Repository):
        """The disk fills up as the third render is recorded: that write and every write after it fail the way
        a full disk does (a count of writes alone made where the failure falls depend on how the run groups
        its writes)."""

        full = False
        renders = 0

        def __init__(self, db):
            super().__init__(db)
            real = db

            def session(*, write=False):
                if write and FillsUp.full:
                    raise OperationalError("INSERT", {}, Exception("database or disk is full"))
                return real.session(write=write)

            def write():
                if FillsUp.full:
                    raise OperationalError("INSERT", {}, Exception("database or disk is full"))
                return real.write()
            self.db = type("FullDisk", (), {"session": staticmethod(session), "write": staticmethod(write),
                                            "engine": db.engine})()

        def record_render(self, *args, **kwargs):
            FillsUp.renders += 1
            FillsUp.full = FillsUp.full or FillsUp.renders >= 3
            return super().record_render(*args, **kwargs)

    p = make_project_dir(12, extra="latency_s = 0.05\nprice_usd = 0.01\n")
    summary = run_broken(p, repo=lambda project: FillsUp(project.db))
    assert summary.halted and "database" in summary.halted and summary.exit_code == EXIT_FAILURES
    paid = len(p.calls())
    assert 3 <= paid < 12  # nothing new started once the first write failed
    recovery = p.root / ".limner" / "recovery"
    kept = len(list(recovery.glob("*.img"))) if recovery.exists() else 0
    # the third image and those still out then could not be recorded: they wait in the recovery folder
    assert kept == summary.kept_locally >= 1 and summary.generated + summary.kept_locally <= paid

    project = p.project()  # this process stands in for the one that died: its claims lapse with it
    with project.db.session(write=True) as s:
        s.execute(update(RunRow).values(pid=2**22 + 12345))
    project.close()
    _, again = run(p)  # the disk has room again
    assert again.generated == 12 - summary.generated and again.failed == 0
    assert again.resumed == paid - summary.generated  # every image paid for is recorded, none paid again
    ledger = rows(p, LedgerRow)
    assert len(p.calls()) == len(ledger)  # every paid call is in the ledger, none twice
    assert len(ledger) - paid == again.provider_calls and len({r.entry_id for r in ledger if r.status == "recorded"}) == 12
    assert not recovery.exists() or list(recovery.iterdir()) == []
    assert_consistent(p)


def test_a_database_failure_after_the_master_is_recorded_is_not_counted_as_kept_locally(make_project_dir):
    """Found by a flaky run of the test above: a database that fails once the master is stored and recorded
    (here: when the variants are recorded) stopped the run as a fault, and the summary counted those entries as
    "kept in the recovery folder" although nothing was there. Their masters are stored and recorded: the summary
    says 0 kept, and the next run resumes them from the stored masters without paying."""
    from sqlalchemy.exc import OperationalError

    from limner.db.repository import Repository

    class NoRoomForVariants(Repository):
        def record_derived(self, *args, **kwargs):
            raise OperationalError("INSERT", {}, Exception("database or disk is full"))

    p = make_project_dir(6, extra="latency_s = 0.02\nprice_usd = 0.01\n")
    summary = run_broken(p, repo=lambda project: NoRoomForVariants(project.db))
    paid = len(p.calls())
    assert summary.halted and "database" in summary.halted and summary.exit_code == EXIT_FAILURES
    assert paid > 0 and summary.kept_locally == 0 and summary.generated == 0
    assert not (p.root / ".limner" / "recovery").exists()

    _, again = run(p)
    assert again.generated == 6 and again.resumed == paid and len(p.calls()) == 6  # none paid twice
    assert_consistent(p)


def test_the_recovery_folder_keeps_two_entries_given_the_same_bytes_apart(tmp_path):
    """Files were named by the image's hash alone: a second entry given the same bytes overwrote the first's
    record, and adopting one deleted the other's image (its next run would have paid again)."""
    from limner.runner.recovery import Kept, RecoveryFolder

    data = b"\x89PNG same bytes for both"
    sha = hashlib.sha256(data).hexdigest()
    a = Kept(entry_id="event-a", fingerprint="fa", provider="fake", model="m", seed=1, cost_usd=0.01, sha256=sha)
    b = Kept(entry_id="event-b", fingerprint="fb", provider="fake", model="m", seed=1, cost_usd=0.01, sha256=sha)
    folder = RecoveryFolder(tmp_path / "recovery")
    folder.keep(data, a)
    folder.keep(data, b)
    fresh = RecoveryFolder(tmp_path / "recovery")  # as the next run sees it
    assert len(fresh) == 2 and fresh.find("event-a", "fa") == a and fresh.find("event-b", "fb") == b
    fresh.adopted(a)
    assert fresh.read(b) == data and len(RecoveryFolder(tmp_path / "recovery")) == 1


def test_the_imaging_pool_starts_once_the_first_call_is_out(make_project_dir):
    """Its forkserver imports the imaging stack while the calls are out, not while the first calls wait on this
    process's own imports and plan; an entry resumed from a stored image (no call) starts it itself."""
    p = make_project_dir(4, extra="latency_s = 0.2\n")
    _, summary = run(p)
    t = summary.timeline
    assert summary.generated == 4 and t["first_call"] <= t["pool_started"] <= t["pool_ready"] <= t["first_published"]

    project = p.project()  # one entry's image is recorded but not published: the next run resumes it
    with project.db.session(write=True) as s:
        render = s.scalars(select(Render).limit(1)).one()
        s.execute(update(Render).where(Render.id == render.id).values(status="derived"))
        s.execute(update(EntryRow).where(EntryRow.id == render.entry_id).values(state="generated",
                                                                                published_render_id=None,
                                                                                published_fingerprint=None))
    project.close()
    calls = len(p.calls())
    _, again = run(p)
    assert again.generated == 1 and again.resumed == 1 and len(p.calls()) == calls  # no call: the unit started the pool
    assert "first_call" not in again.timeline and again.timeline["pool_started"] <= again.timeline["first_published"]


async def test_calls_after_a_stopping_error_get_its_kind_and_message_not_rejected_credentials():
    """After the first call's error stopped the provider (a model that cannot load, settings that cannot work),
    the calls after it were refused with a plain AuthFailed: the run's summary, taken from whichever entry
    stopped first, said the provider "rejected the credentials" and told the user to fix them."""
    from limner.providers import Capabilities, GenerationRequest, ModelUnavailable, Provider, SettingsRejected
    from limner.runner.retry import CallStats, ProviderGate

    for error in (ModelUnavailable, SettingsRejected):
        class Broken(Provider):
            name = "broken"
            capabilities = Capabilities()

            async def prepare(self):
                raise error("broken: the model folder /models/x does not exist")

            async def generate(self, request):
                raise AssertionError("never called")

        gate = ProviderGate(Broken(), concurrency=1, rate_per_minute=None, timeout_s=None, max_attempts=1,
                            backoff_initial_s=0, backoff_max_s=0)
        req = GenerationRequest(prompt="p", negative_prompt="", width=64, height=64, seed=1, model="m")
        for _ in range(2):
            with pytest.raises(error) as info:
                await gate.call(req, CallStats())
            assert str(info.value) == "broken: the model folder /models/x does not exist"


@pytest.mark.parametrize("found", ["failed", "done", "kept"])
def test_a_run_that_settles_an_earlier_runs_open_line_leaves_that_runs_summary_true(make_project_dir, monkeypatch, found):
    """Run 1's download failed after the provider named its call: the line stayed open at the list price, and run 1's
    summary counted it so. Run 2 asked the provider about it and rewrote run 1's line with what it learned (nothing
    billed for a call that failed; the real price of one that succeeded, also when its store then failed and the
    image was kept): run 1's summary no longer matched the ledger, and the summaries no longer added up to `limner
    costs`. Run 1's line now keeps its cost, and the run that learned the price records the difference as an
    adjustment line of its own (not a call): every summary is its run's lines, and they add up."""
    from limner.providers import GenerationResult, KnownCall, Transient, report_call_id
    from limner.storage import StorageError
    from limner.testing.fake_provider import FakeProvider, noisy_png

    p = make_project_dir(1, extra="price_usd = 0.01\n")
    p.config.write_text(p.config.read_text().replace("concurrency = 4\n", "concurrency = 4\nmax_attempts = 1\n"))
    real_generate = FakeProvider.generate

    async def named_then_lost(self, request):
        report_call_id("pred-1")
        raise Transient("fake: the download failed")

    async def fetch_known(self, external_id, request):
        assert external_id == "pred-1"
        if found == "failed":
            return KnownCall("failed", error=Transient("fake: the prediction failed"), billed_usd=0.0)
        return KnownCall("done", result=GenerationResult(data=noisy_png(96, 96, request.seed), seed=request.seed,
                                                         cost_usd=0.025, model=self.model))

    monkeypatch.setattr(FakeProvider, "generate", named_then_lost)
    monkeypatch.setattr(FakeProvider, "fetch_known", fetch_known)
    _, first = run(p)
    assert first.failed == 1 and first.provider_calls == 1 and first.spend_usd == pytest.approx(0.01)
    [line] = rows(p, LedgerRow)
    assert (line.status, line.external_id) == ("pending", "pred-1")

    monkeypatch.setattr(FakeProvider, "generate", real_generate)
    summaries = [first]
    if found == "kept":  # fetched, but the store fails: the image is kept, and the next run publishes it
        summaries.append(run_broken(p, storage=lambda project: FailingWrites(project.storage, "masters/",
                                                                              StorageError("disk full"))))
        assert summaries[-1].kept_locally == 1 and summaries[-1].provider_calls == 0
    _, last = run(p)
    summaries.append(last)
    assert last.generated == 1
    assert last.provider_calls == (1 if found == "failed" else 0)  # a failed call is made again; a done one fetched
    project = p.project()
    try:
        assert project.repo.run_spend(line.run_id)[:2] == (first.provider_calls, pytest.approx(first.spend_usd))
        ledger = project.repo.spend()
    finally:
        project.close()
    real = 0.01 if found == "failed" else 0.025  # what was billed in all: the new call, or the call fetched
    assert ledger == pytest.approx(real)
    assert sum(s.spend_usd for s in summaries) == pytest.approx(ledger)
    costs = p.run_json("costs")
    assert costs["total_usd"] == pytest.approx(ledger)
    assert sum(d["calls"] for d in costs["by_day"]) == sum(s.provider_calls for s in summaries)
    assert len(p.calls()) == last.provider_calls  # (run 1's call, patched above, is not in the fake's file)
    [adjustment] = [r for r in rows(p, LedgerRow) if r.status == "adjustment"]
    assert adjustment.run_id != line.run_id and adjustment.external_id is None and adjustment.adjusts == line.id
    billed = 0.0 if found == "failed" else 0.025  # what run 1's call cost in the end
    assert adjustment.cost_usd == pytest.approx(billed - 0.01) == pytest.approx(sum(s.adjustments_usd for s in summaries))
    assert first.adjustments_usd == 0
