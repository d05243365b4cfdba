"""Issue #8, "paid calls that leave no trace": every fault after a paid call is in the ledger, the summary
agrees with the ledger, and the next run never pays again for an image a call already produced.

The CLI runs in subprocesses against the loopback Replicate fake."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time

import pytest
from fake_replicate import ReplicateFake, start_fake, stop_fake
from test_acceptance_replicate import TOKEN, configure, env_for

pytestmark = pytest.mark.slow


@pytest.fixture
def fake():
    server, api = start_fake(TOKEN, image_size=64)
    try:
        yield api
    finally:
        stop_fake(server, api)


def ledger(p) -> list[dict]:
    with sqlite3.connect(p.root / ".limner" / "limner.db") as conn:
        conn.row_factory = sqlite3.Row
        return [dict(r) for r in conn.execute("SELECT * FROM ledger ORDER BY id")]


def generate(p, env, *args: str, timeout: float = 120):
    proc = p.run("generate", "--no-progress", "--json", *args, env=env, timeout=timeout)
    assert "Traceback" not in proc.stderr, proc.stderr
    return proc.returncode, json.loads(proc.stdout)


def start_generate(p, env, *args: str) -> subprocess.Popen:
    """``limner generate`` in a process group of its own (to be killed with ``os.killpg``), output dropped."""
    return subprocess.Popen([sys.executable, "-m", "limner", "--config", str(p.config), "generate", "--no-progress",
                             *args], cwd=p.root, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)


def agrees(summary: dict, rows: list[dict], run_rows: int | None = None) -> None:
    """The summary's calls and spend are this run's ledger lines."""
    mine = rows[-run_rows:] if run_rows else []
    assert summary["provider_calls"] == len(mine)
    assert summary["spend_usd"] == pytest.approx(sum(r["cost_usd"] for r in mine))


def test_a_slow_drip_download_is_cut_by_the_deadline_recorded_and_fetched_next_run(fake: ReplicateFake, make_project_dir):
    """(a) A download dripping a byte every 2 s hung for ever; with timeout_s set, the timed-out predictions
    were in neither the ledger nor the summary."""
    p = make_project_dir(1, provider="replicate")
    configure(p)
    p.config.write_text(p.config.read_text().replace("max_attempts = 10", "max_attempts = 2")
                        .replace("timeout_s = 30", "timeout_s = 1"))
    env = env_for(p, fake)
    fake.mode("ok", drip_downloads=2, drip_s=2.0)
    started = time.monotonic()
    code, summary = generate(p, env)
    assert time.monotonic() - started < 30
    assert code == 1 and summary["failed"] == 1 and "within 1s" in summary["failures"][0]["error"]
    rows = ledger(p)
    assert fake.create_calls == 1 and len(rows) == 1  # the second attempt asked about the prediction
    assert rows[0]["status"] == "pending" and rows[0]["external_id"] and rows[0]["cost_usd"] == pytest.approx(0.003)
    agrees(summary, rows, 1)

    code, again = generate(p, env)  # the output downloads at full speed now
    assert code == 0 and again["generated"] == 1
    assert fake.create_calls == 1  # fetched, not paid again
    rows = ledger(p)
    assert len(rows) == 1 and rows[0]["status"] == "recorded" and rows[0]["render_id"]
    assert again["provider_calls"] == 0 and again["spend_usd"] == 0


def test_a_failed_download_never_buys_a_new_prediction_in_this_run_or_the_next(fake: ReplicateFake, make_project_dir):
    """(b) A failed download (redirect to a closed port, a loop) made a new paid prediction on every retry,
    and the next run paid again."""
    p = make_project_dir(2, provider="replicate")
    configure(p)
    p.config.write_text(p.config.read_text().replace("max_attempts = 10", "max_attempts = 3"))
    env = env_for(p, fake)
    fake.mode("ok", download_failures=4, failure_location="/files/loop.png")
    code, summary = generate(p, env)
    assert code == 1 and summary["failed"] == 2
    assert fake.create_calls == 2 and fake.paid == 2  # one prediction per entry, never another
    rows = ledger(p)
    assert [r["status"] for r in rows] == ["pending", "pending"] and all(r["external_id"] for r in rows)
    agrees(summary, rows, 2)
    assert summary["spend_usd"] == pytest.approx(0.006)  # both predictions succeeded: billed

    code, again = generate(p, env)
    assert code == 0 and again["generated"] == 2 and fake.create_calls == 2
    assert again["provider_calls"] == 0 and again["spend_usd"] == 0
    assert [r["status"] for r in ledger(p)] == ["recorded", "recorded"]


def test_a_damaged_download_is_downloaded_again_not_paid_again(fake: ReplicateFake, make_project_dir):
    """The first download of each output is cut short (32 bytes, a complete HTTP answer): the image was stored,
    recorded and rejected as corrupt, its ledger line closed, and the next run paid for a new prediction. Now the
    rejected render's line is opened again and the image downloaded again, in the same run, for nothing."""
    p = make_project_dir(3, provider="replicate")
    configure(p)
    env = env_for(p, fake)
    fake.mode("ok", drip_downloads=1, drip_s=0.001)
    code, summary = generate(p, env)
    assert code == 0 and summary["generated"] == 3 and summary["failed"] == 0, summary
    assert fake.create_calls == 3 and fake.paid == 3  # one prediction per entry
    rows = ledger(p)
    assert [r["status"] for r in rows] == ["recorded"] * 3 and all(r["external_id"] for r in rows)
    agrees(summary, rows, 3)
    assert summary["spend_usd"] == pytest.approx(0.009)
    with sqlite3.connect(p.root / ".limner" / "limner.db") as conn:
        statuses = sorted(s for (s,) in conn.execute("SELECT status FROM renders"))
    assert statuses == ["published"] * 3 + ["rejected"] * 3
    code, again = generate(p, env)
    assert code == 0 and again["provider_calls"] == 0 and fake.create_calls == 3


def test_an_image_damaged_at_the_provider_is_paid_for_again_only_after_one_download_again(fake: ReplicateFake,
                                                                                            make_project_dir):
    """A prediction whose output is corrupt however often it is downloaded: downloaded again once (free), then
    the entry fails retryably with its line closed, and the next run pays for a new prediction."""
    p = make_project_dir(1, provider="replicate")
    configure(p)
    env = env_for(p, fake)
    fake.mode("corrupt")
    code, summary = generate(p, env)
    assert code == 1 and summary["failed"] == 1 and "corrupt" in summary["failures"][0]["error"]
    assert fake.create_calls == 1 and fake.file_calls == 2
    rows = ledger(p)
    assert [r["status"] for r in rows] == ["recorded"] and summary["spend_usd"] == pytest.approx(0.003)
    agrees(summary, rows, 1)
    fake.mode("ok")
    code, again = generate(p, env)
    assert code == 0 and again["generated"] == 1 and fake.create_calls == 2


def test_a_forced_regeneration_killed_in_flight_is_fetched_on_the_next_run(fake: ReplicateFake, make_project_dir):
    """A published entry regenerated with --id (same fingerprint), killed while its call is out: the next run
    fetches the paid image. The end of the dead run must not put the entry back as ``published`` (its
    claim would then be refused and the paid prediction never fetched)."""
    p = make_project_dir(1, provider="replicate")
    configure(p, extra="prefer_wait_s = 1\n")
    env = env_for(p, fake)
    code, first = generate(p, env)
    assert code == 0 and first["generated"] == 1
    fake.latency = 3.0
    proc = start_generate(p, env, "--id", "event-000")
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:  # until the second prediction is created and its id is in the ledger
        time.sleep(0.1)
        try:
            if len([r for r in ledger(p) if r["external_id"]]) == 2:
                break
        except sqlite3.Error:
            continue
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(10)
    assert fake.create_calls == 2
    fake.latency = 0.0

    code, again = generate(p, env)
    assert code == 0 and again["generated"] == 1 and again["provider_calls"] == 0, again
    assert fake.create_calls == 2  # fetched, not paid again
    assert [r["status"] for r in ledger(p)] == ["recorded", "recorded"]


def test_calls_in_flight_at_kill_9_are_fetched_on_resume_not_paid_again(fake: ReplicateFake, make_project_dir):
    """(e) After kill -9 the calls in flight were paid again on resume and never recorded."""
    p = make_project_dir(4, provider="replicate")
    configure(p, extra="prefer_wait_s = 1\n")
    env = env_for(p, fake)
    fake.latency = 3.0
    proc = start_generate(p, env)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:  # until every prediction is created and its id is in the ledger
        time.sleep(0.1)
        try:
            known = [r for r in ledger(p) if r["external_id"]]
        except sqlite3.Error:
            continue
        if len(known) == 4:
            break
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(10)
    assert fake.create_calls == 4 and len(known) == 4
    fake.latency = 0.0

    code, again = generate(p, env)
    assert code == 0 and again["generated"] == 4
    assert fake.create_calls == 4  # the known predictions were fetched
    rows = ledger(p)
    assert len(rows) == 4 and {r["status"] for r in rows} == {"recorded"}
    assert again["provider_calls"] == 0 and again["spend_usd"] == 0


def test_calls_held_by_prefer_wait_at_kill_9_are_found_by_their_input_not_paid_again(fake: ReplicateFake,
                                                                                     make_project_dir):
    """Killed while Replicate held the create calls (``Prefer: wait``, the default): no prediction id had reached
    the ledger, and the next run paid for every one again. Now it finds each prediction by its input in the
    list of predictions made around its ledger line's time, and fetches it."""
    p = make_project_dir(4, provider="replicate")
    configure(p)  # prefer wait: up to timeout_s / 2 = 15 s
    env = env_for(p, fake)
    fake.latency = 2.0
    proc = start_generate(p, env)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and fake.create_calls < 4:  # every create call is held by the server
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(10)
    rows = ledger(p)
    assert fake.create_calls == 4 and len(rows) == 4 and not any(r["external_id"] for r in rows)
    time.sleep(2.5)  # the predictions finish at Replicate all the same
    fake.latency = 0.0

    code, again = generate(p, env)
    assert code == 0 and again["generated"] == 4, again
    assert fake.create_calls == 4 and fake.list_calls >= 1  # found and fetched, none paid again
    rows = ledger(p)
    assert len(rows) == 4 and {r["status"] for r in rows} == {"recorded"} and all(r["external_id"] for r in rows)
    assert len({r["external_id"] for r in rows}) == 4  # each line its own prediction
    assert again["provider_calls"] == 0 and again["spend_usd"] == 0


def test_calls_held_past_their_deadline_are_found_by_their_input_not_paid_again(fake: ReplicateFake, make_project_dir):
    """``generate.call_timeout_s`` shorter than Replicate's ``Prefer: wait``: every call was cut by its deadline
    before the prediction's id came back, counted lost, and paid for again on each attempt (the predictions ran
    on and billed at Replicate), till the entry failed. Now the run finds each one by its input and fetches it."""
    p = make_project_dir(2, provider="replicate")
    configure(p)  # prefer wait: up to timeout_s / 2 = 15 s, longer than the call's deadline
    p.config.write_text(p.config.read_text().replace("max_attempts = 10", "max_attempts = 3\ncall_timeout_s = 1")
                        .replace("timeout_s = 30\n", ""))  # Replicate's own timeout_s: its default, 120 s
    env = env_for(p, fake)
    fake.latency = 1.5
    code, summary = generate(p, env)
    assert code == 0 and summary["generated"] == 2, summary
    assert fake.create_calls == 2 and fake.list_calls >= 2  # found, fetched, none paid again
    assert fake.last_prefer == "wait=1"  # the hold asked for is as short as it can be (time_left(), not timeout_s)
    rows = ledger(p)
    assert len(rows) == 2 and {r["status"] for r in rows} == {"recorded"} and len({r["external_id"] for r in rows}) == 2
    agrees(summary, rows, 2)
