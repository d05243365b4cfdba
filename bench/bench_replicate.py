"""Replicate provider throughput against a loopback Replicate fake with a fixed prediction latency.

The fake (tests/fake_replicate.py, a threaded pytest-httpserver) holds each create call
(``Prefer: wait``) for ``--latency`` seconds and answers ``succeeded`` with a small PNG served by
the same server, so every entry costs one create call and one download through the real
provider code (httpx, ProviderHTTP, the runner's gate, validation, derivation, storage).

Target: 500 entries, 1 s per prediction, concurrency 16 -> throughput >= 95% of
concurrency / latency (>= 15.2 entries/s of an ideal 16).

    python bench/bench_replicate.py [--entries 500] [--latency 1.0] [--concurrency 16] [--size 64]
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import sys
import tempfile
import textwrap
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).parent))
sys.path.insert(0, str(ROOT / "tests"))
from _common import machine, table  # noqa: E402
from fake_replicate import start_fake, stop_fake  # noqa: E402  (tests/fake_replicate.py; needs pytest-httpserver)

from limner.config import load_settings  # noqa: E402
from limner.project import Project  # noqa: E402
from limner.runner import RunOptions, Selection, build_plan, run_plan  # noqa: E402

TOKEN = "r8_BENCH_fake_token_not_a_real_credential"


def serve_fake(conn, size: int, latency: float) -> None:  # type: ignore[no-untyped-def]
    """Child process: the fake API, so its threads do not share the runner's GIL (as Replicate would not)."""
    server, fake = start_fake(TOKEN, image_size=size, latency=latency)
    conn.send(fake.url)
    conn.recv()  # "stop"
    stop_fake(server, fake)
    conn.send({"create_calls": fake.create_calls, "poll_calls": fake.poll_calls, "file_calls": fake.file_calls,
               "paid": fake.paid})


def pct(values: list[int], q: float) -> str:
    return str(values[min(len(values) - 1, int(q * len(values)))]) if values else "?"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--entries", type=int, default=500)
    ap.add_argument("--latency", type=float, default=1.0, help="seconds the fake holds each prediction")
    ap.add_argument("--concurrency", type=int, default=16)
    ap.add_argument("--size", type=int, default=64, help="long side of the fake's images, in pixels")
    args = ap.parse_args()

    parent, child = multiprocessing.Pipe()
    server = multiprocessing.get_context("spawn").Process(target=serve_fake, args=(child, args.size, args.latency), daemon=True)
    server.start()
    url = parent.recv()
    counts: dict[str, int] = {}
    os.environ.update(REPLICATE_API_TOKEN=TOKEN, REPLICATE_BASE_URL=url, LIMNER_ALLOW_HTTP_HOSTS="127.0.0.1")
    try:
        with tempfile.TemporaryDirectory() as tmp:
            root = Path(tmp)
            entries = [{"id": f"e-{i:05d}", "title": f"Entry {i}", "year": i} for i in range(args.entries)]
            (root / "catalog.yaml").write_text(yaml.safe_dump({"entries": entries}))
            (root / "limner.toml").write_text(textwrap.dedent(f"""\
                provider = "replicate"
                [generate]
                concurrency = {args.concurrency}
                [providers.replicate]
                concurrency = {args.concurrency}
                poll_interval_s = 0.05
                timeout_s = {max(30.0, args.latency * 4)}
                """))
            project = Project(load_settings(root / "limner.toml"))
            t0 = time.perf_counter()
            plan = build_plan(project, Selection())
            t_plan = time.perf_counter() - t0
            t1 = time.perf_counter()
            summary = run_plan(project, plan, RunOptions(progress=False))
            elapsed = time.perf_counter() - t1
            with project.db.engine.connect() as con:  # provider call latency as the runner measured it
                latencies = sorted(r[0] for r in con.exec_driver_sql("select latency_ms from renders"))
            project.close()
    finally:
        parent.send("stop")
        counts = parent.recv() if parent.poll(10) else {}
        server.join(5)

    ideal = args.concurrency / args.latency
    rate = summary.generated / elapsed
    ratio = rate / ideal
    rows = [
        ["entries", str(args.entries)],
        ["prediction latency (Prefer: wait)", f"{args.latency:g} s"],
        ["concurrency", str(args.concurrency)],
        ["image size", f"{args.size} px"],
        ["published", f"{summary.generated} ({summary.failed} failed)"],
        ["create calls / polls / downloads", " / ".join(str(counts.get(k, "?")) for k in ("create_calls", "poll_calls", "file_calls"))],
        ["spend (list price)", f"${summary.spend_usd:.2f}"],
        ["call latency p50 / p95 / max", f"{pct(latencies, 0.5)} / {pct(latencies, 0.95)} / {pct(latencies, 1.0)} ms"],
        ["plan time", f"{t_plan:.2f} s"],
        ["run time", f"{elapsed:.2f} s"],
        ["throughput", f"{rate:.2f} entries/s"],
        ["ideal (concurrency / latency)", f"{ideal:.2f} entries/s"],
        ["efficiency", f"{ratio:.1%} (target >= 95%: {'PASS' if ratio >= 0.95 else 'FAIL'})"],
    ]
    for failure in summary.failures[:5]:
        print(f"failed {failure['id']}: {failure['error']}", file=sys.stderr)
    print(table("Replicate provider (loopback fake)", ["measure", "value"], rows))
    print(f"\nmachine: {machine()}")
    return 0 if ratio >= 0.95 and summary.failed == 0 else 1


if __name__ == "__main__":
    raise SystemExit(main())
