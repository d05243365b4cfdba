"""``limner gc --delete`` while a run works: a unit of work stores an image's variants and placeholder a moment
before it records their rows, so for that moment they look like garbage. gc must refuse then (sync/gc.py)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from projects import ProjectDir  # noqa: E402

from limner.db.tables import EntryState  # noqa: E402
from limner.runner import RunOptions, Selection, build_plan, run_plan  # noqa: E402


class GcAfterPlaceholder:
    """The project's storage, running ``limner gc --delete`` once, right after the first placeholder is stored
    (its variants are stored, their rows not yet written)."""

    def __init__(self, real: Any, p: ProjectDir, *args: str) -> None:
        self.real, self.p, self.args = real, p, args
        self.gc: subprocess.CompletedProcess[str] | None = None

    def __getattr__(self, name: str) -> Any:
        return getattr(self.real, name)

    def put_if_absent(self, key: str, data: bytes, *, content_type: str) -> bool:
        wrote = self.real.put_if_absent(key, data, content_type=content_type)
        if key.startswith("placeholders/") and self.gc is None:
            self.gc = self.p.run("gc", "--delete", "--json", *self.args)
        return wrote


def run_with_gc(p: ProjectDir, *args: str) -> tuple[subprocess.CompletedProcess[str], list[str]]:
    """One entry generated while gc runs in its window; returns gc's process and the published render's
    keys that point at nothing."""
    p.write_catalog(p.entries()[:1])
    project = p.project()
    racing = GcAfterPlaceholder(project.storage, p, *args)
    project.__dict__["storage"] = racing
    try:
        summary = run_plan(project, build_plan(project, Selection()), RunOptions(progress=False))
        assert summary.generated == 1, summary.failures
        (render,) = project.repo.published_renders()
        keys = [render.master_key, render.placeholder_key, *(v.key for v in render.variants)]
        missing = [k for k in keys if not racing.real.exists(k)]
    finally:
        project.close()
    assert racing.gc is not None
    return racing.gc, missing


def test_gc_refuses_while_a_run_holds_entries_and_leaves_its_objects(project_dir: ProjectDir) -> None:
    gc, missing = run_with_gc(project_dir)
    assert gc.returncode == 1, gc.stdout + gc.stderr
    assert "hold 1 entries" in gc.stderr and "--force" in gc.stderr
    assert missing == []


def test_gc_forced_in_that_window_is_what_the_guard_prevents(project_dir: ProjectDir) -> None:
    gc, missing = run_with_gc(project_dir, "--force")
    assert gc.returncode == 0, gc.stderr
    deleted = json.loads(gc.stdout)["deleted"]
    assert deleted and missing  # without the guard, the published render points at deleted objects


def test_gc_goes_ahead_beside_an_idle_worker_and_a_dead_run(project_dir: ProjectDir) -> None:
    project_dir.run("generate", "--no-progress", check=True)
    project = project_dir.project()
    try:
        project.storage.put("masters/zz/orphan.png", b"o" * 10, content_type="image/png")
        entry = project_dir.entries()[0]["id"]
        project.repo.start_run("idle-worker", os.uname().nodename, os.getpid(), kind="worker")  # alive, holds nothing
        dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
        project.repo.start_run("dead-run", os.uname().nodename, int(dead.stdout))  # gone, holds an entry
        project.repo.claim(entry, "fp", "dead-run", force=True)
        project.repo.set_state(entry, EntryState.published)
    finally:
        project.close()
    gc = project_dir.run_json("gc", "--delete")
    assert [o["key"] for o in gc["objects"]] == ["masters/zz/orphan.png"] and gc["deleted"] == 1


def test_a_run_started_while_gc_deletes_claims_nothing_until_it_ends(make_project_dir: Any) -> None:
    """gc asked whether runs were at work before it deleted, never during: a run started mid-delete adopted an
    image kept after a fault (then in the recovery folder) whose identical master gc had listed (the store skipped the upload: the
    object was still there), recorded and published it, emptied the recovery folder, and gc then deleted the
    master. While ``limner gc --delete`` deletes, it is now a live run of kind ``gc``, and no run claims an
    entry: the run started meanwhile leaves its entries for the next one, which adopts the kept image."""
    from sqlalchemy import func, select, update
    from sqlalchemy.exc import OperationalError

    from limner.db.models import RunRow
    from limner.db.tables import kept_images
    from limner.db.repository import Repository
    from limner.sync.gc import busy, holding_off_runs, plan_gc, run_gc
    from test_runner import run_broken as run

    class RecordFails(Repository):
        def record_render(self, *args: Any, **kwargs: Any) -> Any:
            raise OperationalError("INSERT", {}, Exception("database or disk is full"))

    p = make_project_dir(1, extra="price_usd = 0.04\n")
    assert run(p, repo=lambda project: RecordFails(project.db)).kept_locally == 1  # stored, not recorded: kept
    project = p.project()
    try:
        with project.db.session(write=True) as s:  # that run is gone (a pid no process has)
            s.execute(update(RunRow).values(pid=2**22 + 12345, process_start=None))
        storage, repo = project.storage, project.repo
        assert busy(repo) is None
        during: list[Any] = []
        with holding_off_runs(repo) as still_held:
            plan = plan_gc(storage, repo)
            assert any(k.startswith("masters/") for k, _ in plan.objects)  # the kept image's master: unrecorded

            def meanwhile(key: str) -> None:  # `limner generate` started while gc deletes
                if not during:
                    during.append(run(p))

            result = run_gc(storage, repo, plan, on_delete=meanwhile, still_held=still_held)
        assert result.deleted and during[0].generated == 0 and during[0].elsewhere == 1
        with project.db.engine.connect() as conn:  # still kept (in the database, which took that write)
            assert conn.execute(select(func.count()).select_from(kept_images)).scalar() == 1
        assert not [r for r, _ in repo.live_runs() if r.kind == "gc"]  # gc has ended
    finally:
        project.close()
    after = run(p)  # gc is over: the next run adopts the kept image, without a call
    assert after.generated == 1 and after.resumed == 1 and len(p.calls()) == 1
    project = p.project()
    try:
        (render,) = project.repo.published_renders()
        assert project.storage.exists(render.master_key)
        assert all(project.storage.exists(v.key) for v in render.variants)
    finally:
        project.close()


def test_gc_beats_for_as_long_as_it_holds_runs_off_and_stops_once_judged_gone(make_project_dir: Any) -> None:
    """gc beat only between deletes: while it listed a big bucket (minutes), a run on another host judged it
    gone after a minute, ended its row, and every claim went through while gc went on to delete. It now beats
    on a timer for the whole time, and deletes nothing more once its row was ended all the same."""
    import datetime as dt
    import time

    import pytest
    from sqlalchemy import select, update

    from limner.db.tables import runs, utcnow
    from limner.runner.claims import RunIdentity
    from limner.sync.gc import GcEnded, holding_off_runs

    p = make_project_dir(1)
    project = p.project()
    try:
        repo = project.repo
        elsewhere = RunIdentity(host="host-b", scope="host-b/boot/ns")  # a run on another machine
        repo.start_run(elsewhere.id, elsewhere.host, elsewhere.pid, scope=elsewhere.scope)
        with holding_off_runs(repo, beat_s=0.05) as still_held:
            with repo.db.write() as conn:  # a minute of listing the store, without the beat thread
                conn.execute(update(runs).where(runs.c.kind == "gc").values(heartbeat_at=utcnow() - dt.timedelta(seconds=61)))
            time.sleep(0.3)  # the thread beats
            claim = repo.claim("event-000", "fp", elsewhere.id, force=True)
            assert claim.status == "held" and claim.holder.kind == "gc"
            assert not elsewhere.holder_is_gone(claim.holder, utcnow())  # its beat is fresh: it holds
            still_held()
            with repo.db.write() as conn:  # judged gone all the same (a stalled machine): ended by a run
                conn.execute(update(runs).where(runs.c.kind == "gc").values(finished_at=utcnow()))
            time.sleep(0.3)
            with pytest.raises(GcEnded):
                still_held()
        with repo.db.engine.connect() as conn:
            assert conn.execute(select(runs.c.finished_at).where(runs.c.kind == "gc")).scalar() is not None
    finally:
        project.close()
