"""The writes a unit of work makes for every entry (db/statements.py), on SQLite and on PostgreSQL: the rows
they leave, the claim's three answers, and a fault in the middle of a write that leaves nothing behind."""

from __future__ import annotations

import pytest
from sqlalchemy import event, select
from sqlalchemy.exc import OperationalError

from limner.db.engine import Database, open_database
from limner.db.models import CallStatus, EntryRow, LedgerRow, Render, RenderStatus, SpendHold, Variant
from limner.db.repository import Repository
from test_db_postgres import pg_url  # noqa: F401  (fixture)

SHAPES = [(w, f) for w in (256, 512) for f in ("avif", "webp", "jpeg")]
FIELDS = {"width": 512, "height": 512, "phash": "ff00ff00ff00ff00", "near_duplicate_of": None, "blurhash": "b",
          "thumbhash": "t", "dominant_color": "#102030", "placeholder_key": "placeholders/p.webp",
          "placeholder_width": 16, "placeholder_height": 16}


@pytest.fixture(params=["sqlite", "postgres"])
def db(request, tmp_path):  # type: ignore[no-untyped-def]
    url = f"sqlite:///{tmp_path}/state.db" if request.param == "sqlite" else request.getfixturevalue("pg_url")
    database = open_database(url)
    yield database
    database.close()


def new_render(entry: str, seed: int) -> Render:
    return Render(entry_id=entry, fingerprint="fp", status=RenderStatus.generated.value, provider="fake", model="m",
                  seed=seed, prompt="a boat", negative_prompt="", parameters={"width": 512}, style="default",
                  style_version="1", template_sha="t" * 64, cost_usd=0.003, latency_ms=900, attempts=1,
                  provider_metadata={"id": f"p{seed}"}, master_sha256=f"{seed:064d}", master_key=f"masters/{seed}.png",
                  master_format="png", master_bytes=1000)


def variants(seed: int) -> list[dict]:
    return [{"width": w, "height": w, "format": f, "key": f"variants/{seed}-{w}.{f}", "sha256": f"{seed:064d}",
             "bytes": 100} for w, f in SHAPES]


def prepared(db: Database, *entries: str, runs: int = 1) -> Repository:
    """A repository with ``runs`` runs started, ``entries`` queued and the template recorded (twice: the
    second time changes nothing, as when two runs record the same template at once)."""
    repo = Repository(db)
    for n in range(1, runs + 1):
        repo.start_run(f"run-{n}", "host", n)
    repo.sync_entries([(e, f"Entry {e}", "default", "fp") for e in entries])
    for _ in range(2):
        repo.ensure_template("t" * 64, style="default", version="1", positive="p", negative="n", params={})
    with db.engine.connect() as conn:
        assert conn.exec_driver_sql("SELECT count(*) FROM templates").scalar() == 1
    return repo


def paid_render(repo: Repository, entry: str, seed: int) -> Render:
    claim = repo.claim(entry, "fp", "run-1", force=True)
    assert claim.status == "claimed"
    [line] = repo.open_call_lines([{"entry_id": entry, "fingerprint": "fp", "run_id": "run-1", "provider": "fake",
                                    "model": "m", "estimate_usd": 0.004}])
    repo.note_external_id(line, f"prediction-{seed}")
    repo.settle_call(line, CallStatus.answered, cost_usd=0.003, outcome="answered")
    return repo.record_render(new_render(entry, seed), call_id=line)


def test_a_unit_of_works_writes_leave_the_rows_the_orm_did(db: Database):
    repo = prepared(db, "e1")

    first = paid_render(repo, "e1", 1)
    assert first.id and first.created_at is not None and first.status == RenderStatus.generated.value
    repo.record_derived(first.id, fields=FIELDS, variants=variants(1), publish=True, input_digest="d1")
    repo.record_derived(first.id, fields=FIELDS, variants=variants(1), publish=True, input_digest="d1")  # again: no twin
    second = paid_render(repo, "e1", 2)
    repo.record_derived(second.id, fields=FIELDS, variants=variants(2), publish=True, input_digest="d2")

    with db.session() as s:
        entry = s.get(EntryRow, "e1")
        renders = {r.id: r for r in s.scalars(select(Render))}
        lines = list(s.scalars(select(LedgerRow).order_by(LedgerRow.id)))
        shapes = sorted((v.render_id, v.width, v.format) for v in s.scalars(select(Variant)))
    assert (entry.state, entry.published_render_id, entry.published_fingerprint, entry.input_digest,
            entry.claimed_by, entry.pinned) == ("published", second.id, "fp", "d2", None, False)
    assert renders[first.id].status == "superseded" and renders[second.id].status == "published"
    assert renders[second.id].published_at is not None and renders[second.id].blurhash == "b"
    assert renders[second.id].provider_metadata == {"id": "p2"} and renders[second.id].parameters == {"width": 512}
    assert [(line.status, line.render_id, line.cost_usd, line.external_id) for line in lines] == [
        ("recorded", first.id, 0.003, "prediction-1"), ("recorded", second.id, 0.003, "prediction-2")]
    assert shapes == sorted([(first.id, w, f) for w, f in SHAPES] + [(second.id, w, f) for w, f in SHAPES])


def test_the_claim_answers_claimed_resumable_open_calls_and_held(db: Database):
    repo = prepared(db, "e1", "e2", "e3", runs=2)

    assert repo.claim("e1", "fp", "run-1") == ("claimed", None, None, ())
    render = repo.record_render(new_render("e1", 1))  # paid, not published: the next claim resumes from it
    again = repo.claim("e1", "fp", "run-1")
    assert again.status == "claimed" and again.resumable is not None and again.resumable.id == render.id
    assert again.resumable.master_key == "masters/1.png"  # a whole row, usable once its session is gone

    repo.claim("e2", "fp", "run-1")
    [line] = repo.open_call_lines([{"entry_id": "e2", "fingerprint": "fp", "run_id": "run-1", "provider": "fake",
                                    "model": "m", "estimate_usd": 0.004}])
    opened = repo.claim("e2", "fp", "run-1")
    assert opened.status == "claimed" and [c.id for c in opened.open_calls] == [line]

    repo.claim("e3", "fp", "run-1")
    held = repo.claim("e3", "fp", "run-2")
    assert held.status == "held" and held.holder is not None and held.holder.id == "run-1"


def test_a_fault_in_the_middle_of_a_write_leaves_nothing_behind(db: Database):
    """The variants' insert fails after the render's fields were updated: the whole write rolls back."""
    repo = prepared(db, "e1")
    render = paid_render(repo, "e1", 1)

    def disk_full(conn, cursor, statement, parameters, context, executemany):  # type: ignore[no-untyped-def]
        if statement.lstrip().upper().startswith("INSERT INTO VARIANTS"):
            raise OperationalError(statement, parameters, Exception("database or disk is full"))

    event.listen(db.engine, "before_cursor_execute", disk_full)
    try:
        with pytest.raises(OperationalError, match="disk is full"):
            repo.record_derived(render.id, fields=FIELDS, variants=variants(1), publish=True, input_digest="d")
    finally:
        event.remove(db.engine, "before_cursor_execute", disk_full)
    with db.session() as s:
        row, entry = s.get(Render, render.id), s.get(EntryRow, "e1")
        assert (row.status, row.blurhash, row.width) == ("generated", None, None)
        assert s.scalars(select(Variant)).all() == [] and entry.state == "generated" and entry.published_render_id is None
    repo.record_derived(render.id, fields=FIELDS, variants=variants(1), publish=True, input_digest="d")  # room again
    assert repo.counts_by_state() == {"published": 1}


PUBLISHED = ("state", "published_fingerprint", "input_digest", "fingerprint", "last_error", "retryable", "pinned")
#: what a person's publish sets on an entry a run holds (the rest is the run's)
HELD_BY_RUN = ("published_fingerprint", "input_digest", "pinned")


def test_a_person_publishes_what_a_run_publishes(db: Database):
    """A run publishes through the Core statements (``record_derived``), a person's approval through the ORM
    (``publish_in_session``): both leave the same published image and renders behind, but a run's publish ends its
    own claim, and a person's leaves the run that holds the entry its claim (another run taking it would pay for its
    spec again), its spec and its state (a failure of the run is recorded against the spec it works on); once the
    run publishes, the two entries are alike."""
    from limner.db.repository import publish_in_session

    repo = prepared(db, "run", "person")
    for entry in ("run", "person"):
        first = paid_render(repo, entry, 1 if entry == "run" else 3)
        repo.record_derived(first.id, fields=FIELDS, variants=variants(first.seed), publish=True, input_digest="d1")
    by_run = paid_render(repo, "run", 2)
    repo.record_derived(by_run.id, fields=FIELDS, variants=variants(2), publish=True, input_digest="d2")
    by_person = paid_render(repo, "person", 4)
    repo.record_derived(by_person.id, fields=FIELDS, variants=variants(4), publish=False, input_digest="d2")
    with db.session(write=True) as s:
        publish_in_session(s, s.get(Render, by_person.id), "d2")

    with db.session() as s:
        run, person = s.get(EntryRow, "run"), s.get(EntryRow, "person")
        assert [getattr(person, c) for c in HELD_BY_RUN] == [getattr(run, c) for c in HELD_BY_RUN]
        assert (person.state, person.fingerprint, person.claimed_by) == ("generated", "fp", "run-1")
        assert (run.state, run.claimed_by) == ("published", None)
        assert (run.published_render_id, person.published_render_id) == (by_run.id, by_person.id)
        statuses = {r.seed: (r.status, r.published_at is not None) for r in s.scalars(select(Render))}
    assert statuses == {1: ("superseded", True), 2: ("published", True), 3: ("superseded", True), 4: ("published", True)}
    repo.record_derived(by_person.id, fields=FIELDS, variants=variants(4), publish=True, input_digest="d2")
    with db.session() as s:
        run, person = s.get(EntryRow, "run"), s.get(EntryRow, "person")
        assert [getattr(person, c) for c in PUBLISHED] == [getattr(run, c) for c in PUBLISHED]
        assert (run.claimed_by, person.claimed_by) == (None, None)


def test_no_call_line_is_written_for_an_entry_another_run_took_over(db: Database):
    """A run judged gone (its heartbeat stalled past the lease: a paused VM, a stopped process on another host)
    whose entries another run took over must start no call for them when it resumes: its ledger line is refused
    in the same transaction as the check, through the run's group commit and one line at a time alike."""
    import asyncio

    from limner.db.repository import ClaimLost
    from limner.runner.journal import CallJournal
    from limner.runner.offloop import URGENT, Batched, OffLoop

    repo = prepared(db, "e1", "e2", runs=2)
    assert repo.claim("e1", "fp", "run-1").status == "claimed" and repo.claim("e2", "fp", "run-1").status == "claimed"
    repo.end_run("run-1")  # judged gone: its claims are freed, then taken
    assert repo.claim("e1", "fp", "run-2").status == "claimed"
    lines = [{"entry_id": e, "fingerprint": "fp", "run_id": run, "provider": "fake", "model": "m", "estimate_usd": 0.004}
             for e, run in (("e1", "run-1"), ("e1", "run-2"), ("e2", "run-1"))]
    ids = repo.open_call_lines(lines)
    assert ids[0] is None and isinstance(ids[1], int) and ids[2] is None  # e2 is nobody's now
    with pytest.raises(ClaimLost):
        repo.open_call(**lines[0])

    async def journal_opens(batched: bool) -> None:
        off = OffLoop(db_threads=1, io_threads=1)
        try:
            journal = CallJournal(repo, off, entry_id="e1", fingerprint="fp", run_id="run-1", provider="fake",
                                  model="m", estimate_usd=0.004,
                                  lines=Batched(off, repo.open_call_lines, URGENT) if batched else None)
            with pytest.raises(ClaimLost):
                await journal.open()
            assert journal.calls == []
        finally:
            off.shutdown()

    for batched in (True, False):
        asyncio.run(journal_opens(batched))
    with db.session() as s:
        assert [(line.entry_id, line.run_id) for line in s.scalars(select(LedgerRow))] == [("e1", "run-2")]


def test_one_provider_call_is_given_to_one_ledger_line_however_many_ask_at_once(db: Database):
    """Two runs looking for their unnamed calls (killed while the provider held them) may both find the same
    call: it must go to one line only (else one paid image is never fetched, and both entries show the other's)."""
    from concurrent.futures import ThreadPoolExecutor

    repo = prepared(db, "e1", "e2", runs=2)
    lines = []
    for entry, run in (("e1", "run-1"), ("e2", "run-2")):
        assert repo.claim(entry, "fp", run).status == "claimed"
        [line] = repo.open_call_lines([{"entry_id": entry, "fingerprint": "fp", "run_id": run, "provider": "fake",
                                        "model": "m", "estimate_usd": 0.004}])
        lines.append(line)
    for _ in range(5):  # at once, several times
        with ThreadPoolExecutor(2) as pool:
            given = list(pool.map(lambda line: repo.claim_external_id(line, "prediction-1"), lines))
        assert sorted(given) == [False, True]
        with db.session() as s:
            held = [r.id for r in s.scalars(select(LedgerRow).where(LedgerRow.external_id == "prediction-1"))]
        assert len(held) == 1
        with db.engine.begin() as conn:  # again, from the start
            conn.exec_driver_sql("UPDATE ledger SET external_id = NULL")
    assert repo.claim_external_id(lines[0], "x") and not repo.claim_external_id(lines[1], "x")


def test_a_dead_workers_share_of_a_shared_cap_is_counted_as_spent_not_held_for_good(db):
    """A worker killed between reserving a call's price under a shared cap and settling it left the reservation
    counted for good: the cap looked held by calls in flight, and the other workers' jobs came back again and
    again (up to 25 times) before failing. Each worker's share is now recorded; once the worker is gone, its
    share counts as spent (its call may have been paid) and the others see the cap spent at once."""
    from limner.queue.limits import SharedBudget
    from limner.runner.claims import RunIdentity

    repo = Repository(db)
    repo.open_spend_cap("cap-1", 0.05)
    me = RunIdentity()
    repo.start_run("dead-worker", "another-host", 4242, kind="worker")
    repo.start_run(me.id, me.host, me.pid, kind="worker", process_start=me.process_start)
    dead, alive = SharedBudget(repo, "cap-1", "dead-worker"), SharedBudget(repo, "cap-1", me.id)
    assert dead.reserve(0.03) and not alive.reserve(0.03)
    assert alive.held_in_flight(0.03)  # the other worker is alive: its call may settle at $0
    repo.end_run("dead-worker")  # judged gone (or seen dead) by another worker
    assert not alive.held_in_flight(0.03)  # its share is spent now: the cap is, for a $0.03 call
    cap = repo.spend_cap("cap-1")
    assert (cap.spent_usd, cap.reserved_usd) == (pytest.approx(0.03), pytest.approx(0.0))
    assert alive.reserve(0.02)  # what is left is still there
    alive.settle(0.02, 0.02)
    # the worker was only judged gone: when it settles its call after all (refused, $0), nothing is counted twice
    dead.settle(0.03, 0.0)
    assert_settled(db, repo, "cap-1", 0.02)


def assert_settled(db, repo, cap_id: str, spent_usd: float) -> None:  # type: ignore[no-untyped-def]
    """The cap spent ``spent_usd``, reserves nothing, and no worker's share of it is left."""
    cap = repo.spend_cap(cap_id)
    assert (cap.spent_usd, cap.reserved_usd) == (pytest.approx(spent_usd), pytest.approx(0.0))
    with db.engine.connect() as conn:
        assert conn.execute(select(SpendHold)).all() == []


def test_shares_of_a_shared_cap_settle_to_nothing(db):
    from limner.queue.limits import SharedBudget

    repo = Repository(db)
    repo.open_spend_cap("cap-2", 1.0)
    budget = SharedBudget(repo, "cap-2", "worker-a")
    assert budget.reserve(0.1) and budget.reserve(0.2)
    with db.engine.connect() as conn:
        assert [h.reserved_usd for h in conn.execute(select(SpendHold))] == [pytest.approx(0.3)]
    budget.settle(0.1, 0.1)
    budget.settle(0.2, 0.0)
    assert_settled(db, repo, "cap-2", 0.1)


def test_a_line_another_run_wrote_keeps_its_cost_and_the_run_settling_it_writes_the_difference(db: Database):
    """A run settling an earlier run's open line at another cost rewrote it, so the earlier run's summary (read from
    its lines when it ended) no longer matched the ledger. Now that line keeps its cost and the settling run writes
    the difference as an adjustment line of its own, in the same transaction; its own lines still take the cost."""
    repo = prepared(db, "e1", "e2", "e3", runs=2)
    for entry in ("e1", "e2", "e3"):
        assert repo.claim(entry, "fp", "run-1").status == "claimed"
    a, b, c = repo.open_call_lines([{"entry_id": e, "fingerprint": "fp", "run_id": "run-1", "provider": "fake",
                                     "model": "m", "estimate_usd": 0.004} for e in ("e1", "e2", "e3")])
    assert repo.run_spend("run-1") == (3, pytest.approx(0.012), 0.0)  # what run 1's summary said
    repo.settle_call(a, CallStatus.failed, cost_usd=0.0, outcome="failed", run_id="run-2")  # billed nothing
    render = repo.record_render(new_render("e2", 1), call_id=b, run_id="run-2")  # fetched: it cost 0.003
    repo.record_render(new_render("e3", 2), call_id=c, run_id="run-1")  # its own run: the line takes the cost
    with db.session() as s:
        lines = [(r.run_id, r.status, r.render_id, round(r.cost_usd, 6), r.external_id)
                 for r in s.scalars(select(LedgerRow).order_by(LedgerRow.id))]
    assert lines == [("run-1", "failed", None, 0.004, None), ("run-1", "recorded", render.id, 0.004, None),
                     ("run-1", "recorded", render.id + 1, 0.003, None),
                     ("run-2", "adjustment", None, -0.004, None), ("run-2", "adjustment", render.id, -0.001, None)]
    assert repo.run_spend("run-1") == (3, pytest.approx(0.011), 0.0)  # only its own line's cost changed
    assert repo.run_spend("run-2") == (0, pytest.approx(-0.005), pytest.approx(-0.005))
    assert repo.spend() == pytest.approx(0.006)
    assert [(n, round(usd, 6)) for _, _, _, n, usd in repo.spend_by()] == [(3, 0.006)]  # adjustments are no call

    # e2's image was damaged: its line is opened again and the image downloaded again, by run 2 and then by run 1
    # (a worker's run that lives on): the call is counted once, at what it cost, however often it is settled
    repo.note_external_id(b, "prediction-b")
    for again_by, seed in (("run-2", 3), ("run-1", 4)):
        assert [line.id for line in repo.reject_render(render.id, "corrupt: truncated", refetch=True)] == [b]
        render = repo.record_render(new_render("e2", seed), call_id=b, run_id=again_by)
        assert repo.spend() == pytest.approx(0.006)
    assert repo.run_spend("run-2") == (0, pytest.approx(-0.005), pytest.approx(-0.005))
    assert repo.run_spend("run-1")[:2] == (3, pytest.approx(0.011))  # its own line takes the cost, less run 2's part
