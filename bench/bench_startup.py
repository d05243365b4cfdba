"""Start-up: how long the ``limner`` command takes, whole process, for the commands a user types most.

Each command runs ``--rounds`` times as a subprocess (the console script next to this Python); the
table shows the fastest and the median wall time, next to Python's own start-up. ``status`` and
``plan`` run on the 202-event example timeline, published: the example's own state when
``./scripts/demo`` has run, otherwise a copy generated once into a temporary folder (about a
minute with the offline sketch provider).

Targets (issue #7): ``--version`` <= Python's start-up + 0.2 s (and <= 0.25 s); ``--help`` <= 0.25 s;
``status`` <= 0.6 s; ``plan`` <= 0.8 s.

    python bench/bench_startup.py [--rounds 10]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from _common import machine, table  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "jewish-timeline"


def limner_cmd() -> list[str]:
    script = Path(sys.executable).with_name("limner")
    return [str(script)] if script.exists() else [sys.executable, "-m", "limner"]


def timed(cmd: list[str], rounds: int, cwd: Path, env: dict[str, str]) -> list[float]:
    subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, check=True)  # warm the page cache
    out = []
    for _ in range(rounds):
        t0 = time.perf_counter()
        subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, check=True)
        out.append(time.perf_counter() - t0)
    return out


def published_example(tmp: Path, env: dict[str, str]) -> Path:
    if (EXAMPLE / ".limner" / "limner.db").exists():
        return EXAMPLE
    target = tmp / "jewish-timeline"
    shutil.copytree(EXAMPLE, target, ignore=shutil.ignore_patterns(".limner", "frontend"))
    print("generating the example once (offline sketch provider)...", file=sys.stderr)
    subprocess.run([*limner_cmd(), "generate", "--no-progress"], cwd=target, env=env, check=True, capture_output=True)
    return target


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=10)
    args = ap.parse_args()
    env = {k: v for k, v in os.environ.items() if not k.startswith("LIMNER_")}
    with tempfile.TemporaryDirectory() as tmp:
        example = published_example(Path(tmp), env)
        python = timed([sys.executable, "-c", "pass"], args.rounds, example, env)
        python_min = min(python)
        cases = [
            ("python -c pass", None, python, None),
            ("limner --version", ["--version"], None, min(0.25, python_min + 0.2)),
            ("limner --help", ["--help"], None, 0.25),
            ("limner status (202 entries, published)", ["status"], None, 0.6),
            ("limner plan (202 entries, published)", ["plan"], None, 0.8),
        ]
        rows = []
        passed = True
        for label, cli_args, times, target in cases:
            if times is None:
                times = timed([*limner_cmd(), *cli_args], args.rounds, example, env)
            best, median = min(times), statistics.median(times)
            verdict = ""
            if target is not None:
                ok = median <= target
                passed &= ok
                verdict = f"<= {target:.2f} s: {'PASS' if ok else 'FAIL'}"
            rows.append([label, f"{best:.3f} s", f"{median:.3f} s", verdict])
    print(table(f"Start-up, whole process ({args.rounds} rounds)", ["command", "fastest", "median", "target (median)"], rows))
    print(f"\nmachine: {machine()} · load average (1 min) {os.getloadavg()[0]:.2f}")
    return 0 if passed else 1


if __name__ == "__main__":
    raise SystemExit(main())
