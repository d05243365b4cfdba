"""Queue workers on PostgreSQL: jobs/s and efficiency for 1, 2 and 4 `limner worker` processes.

    .venv/bin/python bench/bench_queue.py [--entries 300] [--latency 0.5] [--concurrency 5] [--workers 1 2 4]
    .venv/bin/python bench/bench_queue.py --workers 3 --kill-every 10    # kill -9 a worker every 10 s

Each case: a fresh database and project on the loopback fake provider (`latency_s`, provider
`concurrency` = --concurrency, held across all workers), `limner generate --enqueue`, then W workers
started at once. Jobs/s counts from the first provider call to the last publication (worker start-up
excluded); the ideal is concurrency ÷ latency, whatever the number of workers, since the provider's
concurrency is global. Also reported: the most calls in flight at once (from the fake's spans file).
Needs PostgreSQL on 127.0.0.1:5432 (trust auth).
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import textwrap
import time
import uuid
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
ADMIN = "postgresql://postgres@127.0.0.1:5432/postgres"


def run_case(n: int, latency: float, concurrency: int, workers: int, per_worker: int, kill_every: float = 0) -> dict:
    import psycopg

    from projects import make_entries

    name = f"limner_bench_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(ADMIN, autocommit=True) as c:
        c.execute(f'CREATE DATABASE "{name}"')
    root = Path(tempfile.mkdtemp(prefix="limner-bench-queue-"))
    (root / "catalog.yaml").write_text(yaml.safe_dump({"entries": make_entries(n)}))
    (root / "limner.toml").write_text(textwrap.dedent(f"""\
        catalog = "catalog.yaml"
        provider = "fake"
        [generate]
        concurrency = {concurrency}
        workers = 1
        [providers.fake]
        size = 64
        latency_s = {latency}
        calls_file = "{root / 'calls.jsonl'}"
        spans_file = "{root / 'spans.jsonl'}"
        [database]
        url = "postgresql+psycopg://postgres@127.0.0.1:5432/{name}"
        [queue]
        heartbeat_s = {1 if kill_every else 10}
        stalled_after_s = {3 if kill_every else 30}
        """))
    env = {**os.environ, "LIMNER_PLUGINS": "limner.testing"}
    cmd = [sys.executable, "-m", "limner", "--config", str(root / "limner.toml")]
    procs: list[subprocess.Popen] = []
    try:
        subprocess.run([*cmd, "generate", "--enqueue", "--json"], check=True, env=env, capture_output=True)
        def worker() -> subprocess.Popen:
            return subprocess.Popen([*cmd, "worker", "--concurrency", str(per_worker)], env=env,
                                    stdout=subprocess.DEVNULL, stderr=open(root / f"w{len(procs)}.err", "w"))  # noqa: SIM115

        for _ in range(workers):
            procs.append(worker())
        deadline = time.monotonic() + 60 + 3 * n * latency / concurrency
        kills: list[tuple[float, set[str]]] = []  # when, and the calls in flight of the killed worker
        next_kill = time.monotonic() + kill_every
        with psycopg.connect(f"postgresql://postgres@127.0.0.1:5432/{name}", autocommit=True) as db:
            while time.monotonic() < deadline:
                done = db.execute("SELECT count(*) FROM entries WHERE state = 'published'").fetchone()[0]
                if done >= n:
                    break
                if kill_every and time.monotonic() >= next_kill:  # kill -9 a worker, start another
                    victim = next(p for p in reversed(procs) if p.poll() is None)
                    victim.kill()
                    victim.wait()
                    started = {json.loads(x)["id"] for x in (root / "calls.jsonl").read_text().splitlines()
                               if json.loads(x)["pid"] == victim.pid}
                    answered = {json.loads(x)["id"] for x in (root / "spans.jsonl").read_text().splitlines()
                                if json.loads(x)["pid"] == victim.pid}
                    kills.append((time.time(), started - answered))
                    procs.append(worker())
                    next_kill = time.monotonic() + kill_every
                time.sleep(0.1)
            last = db.execute("SELECT max(published_at) FROM renders").fetchone()[0]
            stuck = db.execute("SELECT count(*) FROM procrastinate_jobs WHERE status IN ('todo', 'doing')").fetchone()[0]
        spans = [json.loads(x) for x in (root / "spans.jsonl").read_text().splitlines()]
        first_call = min(s["start"] for s in spans)
        end = last.replace(tzinfo=__import__("datetime").UTC).timestamp() if last else time.time()
        events = sorted([(s["start"], 1) for s in spans] + [(s["end"], -1) for s in spans])
        cur = peak = 0
        for _, d in events:
            cur += d
            peak = max(peak, cur)
        wall = end - first_call
        ideal = concurrency / latency
        ids = [json.loads(x)["id"] for x in (root / "calls.jsonl").read_text().splitlines()]
        calls = len(ids)
        in_flight_at_kills = sum(len(k[1]) for k in kills)
        return {"kills": len(kills), "repeat_calls": calls - len(set(ids)), "in_flight_at_kills": in_flight_at_kills,
                "jobs_left": stuck, "workers": workers, "entries": n, "published": done, "calls": calls, "wall_s": round(wall, 2),
                "jobs_per_s": round(done / wall, 2), "ideal_per_s": ideal, "efficiency": round(done / wall / ideal, 3),
                "max_in_flight": peak}
    finally:
        for p in procs:
            p.send_signal(signal.SIGTERM)
        for p in procs:
            try:
                p.wait(timeout=60)
            except subprocess.TimeoutExpired:
                p.kill()
        with psycopg.connect(ADMIN, autocommit=True) as c:
            c.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--entries", type=int, default=300)
    ap.add_argument("--latency", type=float, default=0.5)
    ap.add_argument("--concurrency", type=int, default=5, help="the provider's concurrency, across all workers")
    ap.add_argument("--per-worker", type=int, default=8, help="jobs at once per worker")
    ap.add_argument("--workers", type=int, nargs="+", default=[1, 2, 4])
    ap.add_argument("--kill-every", type=float, default=0,
                    help="kill -9 a worker every S seconds and start another (heartbeat 1 s, stalled after 3 s)")
    a = ap.parse_args()
    rows = [run_case(a.entries, a.latency, a.concurrency, w, a.per_worker, a.kill_every) for w in a.workers]
    if a.kill_every:
        print("| workers | kill -9 every | kills | published | calls in flight at the kills | calls made again | jobs left queued or running | wall | efficiency | most in flight |")
        print("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
        for r in rows:
            print(f"| {r['workers']} | {a.kill_every:g} s | {r['kills']} | {r['published']} of {r['entries']} | {r['in_flight_at_kills']} | "
                  f"{r['repeat_calls']} | {r['jobs_left']} | {r['wall_s']} s | {r['efficiency']:.3f} | {r['max_in_flight']} |")
        return
    print("| workers | entries | published | provider calls | wall (first call → last publish) | jobs/s | ideal | efficiency | most in flight |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for r in rows:
        print(f"| {r['workers']} | {r['entries']} | {r['published']} | {r['calls']} | {r['wall_s']} s | {r['jobs_per_s']} | "
              f"{r['ideal_per_s']:g} | {r['efficiency']:.3f} | {r['max_in_flight']} |")


if __name__ == "__main__":
    main()
