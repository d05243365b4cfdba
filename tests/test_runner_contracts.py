"""The runner's declared contracts: a unit of work returns its outcome, the near-duplicate check has one
owner, the pool does not hold up the first calls and leaves nothing behind."""

from __future__ import annotations

import asyncio
import os
import random
import signal
import subprocess
import sys
import time

import pytest
from projects import FailingWrites
from test_runner import rows, run

from limner.db.models import LedgerRow, Render
from limner.runner import RunOptions, Selection, build_plan, run_plan
from limner.runner.unit import Outcome, UnitOfWork


def test_many_published_images_and_many_new_ones_at_once(make_project_dir):
    """Regression: the near-duplicate check iterated a dict in threads while others inserted into it
    ("dictionary changed size during iteration" for 61 of 300 new entries with 30,000 published)."""
    p = make_project_dir(60, extra="")
    p.config.write_text(p.config.read_text().replace("concurrency = 4", "concurrency = 16"))
    rng = random.Random(1)
    published = {f"old-{i}": f"{rng.getrandbits(64):016x}" for i in range(30_000)}
    project = p.project()
    project.repo.phashes = lambda: published  # type: ignore[method-assign]
    try:
        summary = run_plan(project, build_plan(project, Selection()), RunOptions(progress=False))
    finally:
        project.close()
    assert summary.generated == 60 and summary.failed == 0, summary.failures[:3]


def test_identical_images_are_flagged_as_near_duplicates_and_the_threshold_is_a_setting(make_project_dir):
    p = make_project_dir(3)
    entries = p.entries()
    entries[0]["seed"] = entries[1]["seed"] = 4242  # the fake draws the same picture for the same seed
    p.write_catalog(entries)
    run(p)
    near = {r.entry_id: r.near_duplicate_of for r in rows(p, Render)}
    flagged = {k: v for k, v in near.items() if v}
    assert len(flagged) == 1 and set(flagged.items()) <= {("event-000", "event-001"), ("event-001", "event-000")}

    q = make_project_dir(3, name="other")
    q.write_catalog(entries)
    q.config.write_text(q.config.read_text().replace("[generate]\n", "[generate]\nnear_duplicate_distance = 0\n"))
    run(q)  # 0 still flags identical hashes
    assert sum(bool(r.near_duplicate_of) for r in rows(q, Render)) == 1


def test_a_unit_of_work_returns_an_outcome_for_a_bug_too(make_project_dir):
    """Any exception inside a unit becomes a failed outcome recorded on the entry; nothing escapes."""
    p = make_project_dir(2, extra="price_usd = 0.01\n")
    project = p.project()
    project.__dict__["storage"] = FailingWrites(project.storage, "variants/", RuntimeError("a bug in a storage backend"))
    try:
        summary = run_plan(project, build_plan(project, Selection()), RunOptions(progress=False))
    finally:
        project.close()
    assert summary.failed == 2 and summary.generated == 0
    assert all("RuntimeError: a bug in a storage backend" in f["error"] for f in summary.failures)
    # both images were paid and stored as masters: the ledger and the summary agree, and a re-run resumes
    assert abs(summary.spend_usd - sum(r.cost_usd for r in rows(p, LedgerRow))) < 1e-9
    plan, again = run(p)
    assert again.generated == 2 and again.resumed == 2 and again.provider_calls == 0 and again.spend_usd == 0


def test_outcome_defaults_say_nothing_happened():
    o = Outcome("x")
    assert (o.status, o.provider_calls, o.cost_usd, o.resumed) == ("failed", 0, 0.0, False)
    assert "run" in UnitOfWork.__dict__ and asyncio.iscoroutinefunction(UnitOfWork.run)


def test_the_first_calls_do_not_wait_for_the_pool(make_project_dir):
    """Provider calls start before the imaging pool is ready (it starts in the background)."""
    p = make_project_dir(4, extra="latency_s = 0.3\n")
    plan, summary = run(p)
    t = summary.timeline
    assert summary.generated == 4
    assert t["first_call"] <= t["pool_ready"] + 0.05 or t["first_call"] - t["checked"] < 0.2, t
    assert t["run_started"] <= t["checked"] <= t["first_call"] < t["first_published"] <= t["last_published"] <= t["finished"]


@pytest.mark.slow
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="PR_SET_PDEATHSIG is Linux-only")
def test_kill_9_of_generate_leaves_no_process_behind(make_project_dir):
    p = make_project_dir(40, extra="latency_s = 0.5\n")
    proc = subprocess.Popen([sys.executable, "-m", "limner", "--config", str(p.config), "generate", "--no-progress"],
                            cwd=p.root, env=p.env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and len(p.calls()) < 4:
        time.sleep(0.05)
    assert len(p.calls()) >= 4
    time.sleep(0.5)  # the pool is up by now
    children = descendants(proc.pid)
    assert children, "the run should have started a forkserver and pool workers"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and any(alive(pid) for pid in children):
        time.sleep(0.1)
    assert not [pid for pid in children if alive(pid)]


def descendants(pid: int) -> list[int]:
    out = subprocess.run(["ps", "-eo", "pid=,ppid=,sid="], capture_output=True, text=True).stdout.split("\n")
    procs = [tuple(int(x) for x in line.split()) for line in out if line.strip()]
    return [q for q, _, sid in procs if sid == pid and q != pid]


def alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().split(")")[-1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def test_retry_after_is_capped_by_its_own_setting_not_by_the_backoff_cap():
    from types import SimpleNamespace

    from limner.providers import RateLimited, Transient
    from limner.runner.retry import RetryAfterOrBackoff

    def state(exc):
        return SimpleNamespace(outcome=SimpleNamespace(exception=lambda: exc), attempt_number=1)

    wait = RetryAfterOrBackoff(initial=0.01, maximum=1.0, retry_after_max=600.0)
    assert 120.0 <= wait(state(RateLimited(retry_after=120))) <= 121.0  # backoff_max_s (1 s) does not cut it
    assert 600.0 <= wait(state(RateLimited(retry_after=5_000))) <= 601.0  # retry_after_max_s does
    assert wait(state(Transient("503"))) <= 1.0 + 0.01  # our own backoff: capped by backoff_max_s


def test_an_avif_answer_is_never_decoded_in_the_main_process(make_project_dir, monkeypatch):
    """A small AVIF of too many pixels must reach the pool's header check without being decoded and
    re-encoded in the run's own process (it was, to embed XMP: 464 MB for a 2 KB, 40 Mpx AVIF)."""
    import io

    from PIL import Image

    import limner.imaging.xmp_embed as xmp_embed
    from limner.providers import GenerationResult, Provider

    def avif(w, h, seed):
        buf = io.BytesIO()
        Image.effect_noise((w, h), 60 + seed).convert("RGB").save(buf, "AVIF", quality=40)
        return buf.getvalue()

    class AvifProvider(Provider):
        name = "fake"

        async def generate(self, request):
            return GenerationResult(data=avif(64, 48, request.seed % 7), seed=request.seed, cost_usd=0.01)

    decoded = []

    def record(data, xmp):
        decoded.append(len(data))
        return data

    monkeypatch.setattr(xmp_embed, "_reencode_png", record)
    p = make_project_dir(2)
    p.config.write_text(p.config.read_text().replace("[generate]\n", "[generate]\nmax_image_pixels = 3000\n"))
    project = p.project()
    project._providers["fake"] = AvifProvider()
    try:
        summary = run_plan(project, build_plan(project, Selection()), RunOptions(progress=False))
    finally:
        project.close()
    assert summary.failed == 2 and all("too_many_pixels" in f["error"] for f in summary.failures)
    assert abs(summary.spend_usd - 0.02) < 1e-9  # paid, recorded, rejected by the pool's header check
    assert {r.master_format for r in rows(p, Render)} == {"avif"}
    assert decoded == []  # nothing decoded (nor re-encoded) in this process
