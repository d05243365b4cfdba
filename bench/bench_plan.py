"""``limner plan`` over a large catalogue: wall time and peak memory.

Target (issue #2): 100,000 entries, plan <= 3 s and <= 500 MB peak memory.
Runs the real CLI (`limner plan`) in a subprocess under GNU time on a JSONL catalogue,
with an empty state database (already migrated) and a second time with every
entry recorded as published (the "nothing to do" re-run).

    python bench/bench_plan.py [--entries 100000]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from _common import machine, table  # noqa: E402


def run_plan(root: Path) -> tuple[float, float, dict]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LIMNER_")}
    stats = root / "time.txt"
    t0 = time.perf_counter()
    proc = subprocess.run(["/usr/bin/time", "-o", str(stats), "-f", "%M",
                           sys.executable, "-m", "limner", "--config", str(root / "limner.toml"), "plan"],
                          capture_output=True, text=True, env=env)
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        raise SystemExit(f"plan failed: {proc.stderr}")
    peak_kb = int(stats.read_text().split()[-1])
    planned = int(proc.stdout.split(":", 1)[1].split("to generate")[0].strip())
    return wall, peak_kb / 1024, {"planned": planned}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--entries", type=int, default=100_000)
    args = ap.parse_args()
    eras = ["patriarchs", "first-temple", "medieval", "early-modern", "modern"]
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        with (root / "catalog.jsonl").open("w", encoding="utf-8") as fh:
            for i in range(args.entries):
                fh.write(json.dumps({"id": f"event-{i:06d}", "title": f"Event number {i}", "year": -2000 + i % 4000,
                                     "era": eras[i % 5], "description": f"A short factual description of event {i}.",
                                     "tags": ["history", eras[i % 5]]}) + "\n")
        (root / "limner.toml").write_text('catalog = "catalog.jsonl"\n[project]\nera_styles = { modern = "documentary-photo" }\n')
        subprocess.run([sys.executable, "-m", "limner", "--config", str(root / "limner.toml"), "status", "--json"],
                       capture_output=True, check=False)  # creates and migrates the database
        wall1, peak1, out1 = run_plan(root)

        # mark every entry published with its current fingerprint: the re-run case
        sys.path.insert(0, str(Path(__file__).parents[1] / "src"))
        from sqlalchemy import insert

        from limner.config import load_settings
        from limner.db.models import EntryRow
        from limner.project import Project
        from limner.runner import Selection, build_plan

        project = Project(load_settings(root / "limner.toml"))
        plan = build_plan(project, Selection())
        with project.db.session() as s:
            s.execute(insert(EntryRow), [
                {"id": i.entry.id, "title": i.entry.title, "style": i.style.name, "state": "published",
                 "fingerprint": i.fingerprint, "published_fingerprint": i.fingerprint, "input_digest": i.digest,
                 "attempts": 0, "retryable": True}
                for i in plan.items
            ])
        project.close()
        wall2, peak2, out2 = run_plan(root)

    ok1 = wall1 <= 3 and peak1 <= 500
    ok2 = wall2 <= 3 and peak2 <= 500
    rows = [
        ["empty state (all missing)", f"{args.entries:,}", str(out1["planned"]), f"{wall1:.2f} s", f"{peak1:.0f} MB", "PASS" if ok1 else "FAIL"],
        ["all published (nothing to do)", f"{args.entries:,}", str(out2["planned"]), f"{wall2:.2f} s", f"{peak2:.0f} MB", "PASS" if ok2 else "FAIL"],
    ]
    print(table("limner plan (target <= 3 s, <= 500 MB)", ["case", "entries", "planned", "wall", "peak RSS", "result"], rows))
    print(f"\nmachine: {machine()}")
    return 0 if ok1 and ok2 else 1


if __name__ == "__main__":
    raise SystemExit(main())
