"""Limner against the original design, side by side on the same loopback Replicate fake.

The original design (``../shared/seed/``): a Bull queue on Redis, one job per entry, a worker with
``concurrency`` slots calling Replicate through the official JS client (``Prefer: wait``) and writing
each image to disk (``bench/bull_baseline/run.mjs``). Limner: ``limner generate --json`` as a user runs
it, which also validates every image, derives its variants (AVIF, WebP, JPEG at every width), stores
masters and variants and records everything in its database.

Both run against the same fake (``bench_replicate.serve_fake``, a child process holding each prediction
for ``--latency`` seconds and serving ``--size``-px PNGs), one after the other, ``--repeat`` times each,
alternating. Wall time is from exec to exit; efficiency = ideal / wall, ideal = ceil(entries /
concurrency) x latency.

    python bench/bench_vs_bull.py [--entries 192] [--latency 1.0] [--concurrency 16] [--size 256] [--repeat 2]

Needs node and npm (``npm ci`` runs in bench/bull_baseline the first time) and Redis on
127.0.0.1:6379 (``REDIS_URL`` to use another).
"""

from __future__ import annotations

import argparse
import json
import math
import multiprocessing
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from _common import machine, table  # noqa: E402
from bench_replicate import TOKEN, run_process, serve_fake, write_project  # noqa: E402

BULL = Path(__file__).parent / "bull_baseline"


def run_bull(entries: int, concurrency: int, url: str) -> tuple[float, dict]:
    if not (BULL / "node_modules").is_dir():
        subprocess.run(["npm", "ci", "--no-audit", "--no-fund"], cwd=BULL, check=True, capture_output=True)
    env = {**os.environ, "REPLICATE_API_TOKEN": TOKEN, "REPLICATE_BASE_URL": url}
    with tempfile.TemporaryDirectory() as out:
        t0 = time.perf_counter()
        proc = subprocess.run(["node", "run.mjs", str(entries), str(concurrency), out], cwd=BULL, env=env,
                              capture_output=True, text=True, timeout=3600)
        wall = time.perf_counter() - t0
    if proc.returncode != 0:
        raise SystemExit(f"the Bull baseline exited {proc.returncode}:\n{proc.stdout}\n{proc.stderr}")
    return wall, json.loads(proc.stdout.strip().splitlines()[-1])


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--entries", type=int, default=192)
    ap.add_argument("--latency", type=float, default=1.0)
    ap.add_argument("--concurrency", type=int, default=16)
    ap.add_argument("--size", type=int, default=256)
    ap.add_argument("--repeat", type=int, default=2)
    args = ap.parse_args()
    if not shutil.which("node"):
        print("node is not installed: the Bull baseline cannot run")
        return 2
    parent, child = multiprocessing.Pipe()
    server = multiprocessing.get_context("spawn").Process(target=serve_fake, args=(child, "keepalive", args.size, args.latency),
                                                          daemon=True)
    server.start()
    url = parent.recv()
    env = {k: v for k, v in os.environ.items() if not k.startswith("LIMNER_")}
    env.update(REPLICATE_API_TOKEN=TOKEN, REPLICATE_BASE_URL=url, LIMNER_ALLOW_HTTP_HOSTS="127.0.0.1")
    ideal = math.ceil(args.entries / args.concurrency) * args.latency
    rows: list[list[str]] = []
    try:
        for run in range(args.repeat):
            wall, result = run_bull(args.entries, args.concurrency, url)
            rows.append([f"{run + 1}", "Bull + Redis + JS client (download + write file)", f"{result['done']}",
                         f"{wall:.2f} s", f"{ideal / wall:.3f}"])
            with tempfile.TemporaryDirectory() as tmp:
                root = Path(tmp)
                write_project(root, args.entries, args.concurrency, args.latency, "")
                wall, summary, _ = run_process(root, env)
            rows.append([f"{run + 1}", "Limner (validate, 12 variants, store, record)", f"{summary['generated']}",
                         f"{wall:.2f} s", f"{ideal / wall:.3f}"])
    finally:
        parent.send("stop")
        server.join(10)
    title = (f"{args.entries} entries, latency {args.latency:g} s, concurrency {args.concurrency}, "
             f"{args.size}-px images; ideal {ideal:.2f} s")
    print(table(title, ["run", "design", "done", "wall (exec to exit)", "efficiency"], rows))
    print(f"\nmachine: {machine()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
