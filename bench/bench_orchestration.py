"""Orchestration throughput with a fixed-latency fake provider.

Target (issue #2): 1,000 entries, provider latency 0.5 s, concurrency 16, tiny
images -> throughput >= 95% of concurrency / latency (>= 30.4 entries/s).

    python bench/bench_orchestration.py [--entries 1000] [--latency 0.5] [--concurrency 16]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import textwrap
import time
from pathlib import Path

import yaml

sys.path.insert(0, str(Path(__file__).parent))
from _common import machine, table, throughput_rows  # noqa: E402

from limner.config import load_settings  # noqa: E402
from limner.plugins import load_plugins  # noqa: E402
from limner.project import Project  # noqa: E402
from limner.runner import RunOptions, Selection, build_plan, run_plan  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--entries", type=int, default=1000)
    ap.add_argument("--latency", type=float, default=0.5)
    ap.add_argument("--concurrency", type=int, default=16)
    ap.add_argument("--size", type=int, default=32, help="long side of the fake images")
    args = ap.parse_args()
    load_plugins(["limner.testing"])
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        entries = [{"id": f"e-{i:05d}", "title": f"Entry {i}", "year": i} for i in range(args.entries)]
        (root / "catalog.yaml").write_text(yaml.safe_dump({"entries": entries}))
        (root / "limner.toml").write_text(textwrap.dedent(f"""\
            provider = "fake"
            [generate]
            concurrency = {args.concurrency}
            [providers.fake]
            latency_s = {args.latency}
            size = {args.size}
            concurrency = {args.concurrency}
            """))
        project = Project(load_settings(root / "limner.toml"))
        t0 = time.perf_counter()
        plan = build_plan(project, Selection())
        t_plan = time.perf_counter() - t0
        t1 = time.perf_counter()
        summary = run_plan(project, plan, RunOptions(progress=False))
        elapsed = time.perf_counter() - t1
        project.close()
    rows = [
        ["entries", str(args.entries)],
        ["provider latency", f"{args.latency:g} s"],
        ["concurrency", str(args.concurrency)],
        ["published", f"{summary.generated} ({summary.failed} failed)"],
    ]
    closing, passed = throughput_rows(summary, t_plan=t_plan, elapsed=elapsed, concurrency=args.concurrency,
                                      latency=args.latency)
    rows += closing
    print(table("Orchestration (fake provider)", ["measure", "value"], rows))
    print(f"\nmachine: {machine()}")
    return 0 if passed else 1


if __name__ == "__main__":
    raise SystemExit(main())
