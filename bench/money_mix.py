"""Adversarial money check: several actors on one project at once, then the money invariants.

    PYTHONPATH=src python bench/money_mix.py [--pg URL] [--rounds N] [--seed S]

Each round makes a fresh project on the scriptable fake provider (``limner.testing``) with 429s, 5xx,
refusals and slow answers, then starts at once: two or three ``limner generate`` runs (each with a
``--budget``), ``limner review regenerate`` on entries the runs are working on, ``limner sync`` and
``limner gc --delete`` (refused while runs hold entries), some of them killed with SIGKILL at random. Then:

* calls the fake recorded == ledger lines of calls == the runs' JSON summaries; ``limner costs`` total (USD) == the
  ledger (its adjustment lines included) == the summaries;
* no spec (entry, fingerprint) paid for twice (two recorded lines of one fingerprint);
* every run's spend <= its --budget;
* after a final plain run every entry (but the refused one) is published, and nothing was paid for twice.

Not a test (it runs for minutes): a harness to aim at the runner and the database.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import textwrap
import time
from collections import Counter
from pathlib import Path

import yaml

PRICE = 0.01


def entries(n: int) -> list[dict]:
    return [{"id": f"e{i:03d}", "title": f"Event {i}", "year": 1000 + i, "description": f"Thing {i}."} for i in range(n)]


class Mix:
    #: the --budget of each generate run (None: no cap)
    budgets: tuple = (None, 0.02, 0.03, 0.05, 0.12)

    def __init__(self, root: Path, n: int, rng: random.Random, pg: str | None) -> None:
        self.root, self.n, self.rng = root, n, rng
        root.mkdir(parents=True)
        (root / "catalog.yaml").write_text(yaml.safe_dump({"entries": entries(n)}))
        ids = [e["id"] for e in entries(n)]
        transient = {i: rng.randint(1, 2) for i in rng.sample(ids, 4)}
        limited = {i: 1 for i in rng.sample(ids, 3)}
        self.refused = rng.choice(ids)
        db = f'\n[database]\nurl = "{pg}"\n' if pg else ""
        (root / "limner.toml").write_text(textwrap.dedent(f"""\
            catalog = "catalog.yaml"
            provider = "fake"
            [generate]
            concurrency = 3
            workers = 1
            max_attempts = 3
            backoff_initial_s = 0.01
            backoff_max_s = 0.05
            [providers.fake]
            size = 64
            latency_s = {rng.choice([0.05, 0.2, 0.5])}
            price_usd = {PRICE}
            calls_file = "{root / 'calls.jsonl'}"
            transient_ids = {json.dumps(transient).replace('":', '" =').replace('{', '{ ').replace('}', ' }')}
            rate_limit_ids = {json.dumps(limited).replace('":', '" =').replace('{', '{ ').replace('}', ' }')}
            refuse_ids = ["{self.refused}"]
            """) + db)
        self.summaries: list[dict] = []
        self.killed: list[str] = []

    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("LIMNER_")}
        env.update(LIMNER_PLUGINS="limner.testing", NO_COLOR="1")
        return env

    def start(self, *args: str) -> subprocess.Popen:
        return subprocess.Popen([sys.executable, "-m", "limner", "--config", str(self.root / "limner.toml"), *args],
                                cwd=self.root, env=self.env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)

    def run(self, *args: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "limner", "--config", str(self.root / "limner.toml"), *args],
                              cwd=self.root, env=self.env(), capture_output=True, text=True, timeout=300)

    def calls(self) -> list[dict]:
        path = self.root / "calls.jsonl"
        return [json.loads(x) for x in path.read_text().splitlines()] if path.exists() else []

    def round(self) -> None:
        rng = self.rng
        procs: list[tuple[str, subprocess.Popen, float | None]] = []
        budgets = []
        for _ in range(rng.choice([2, 3])):
            budget = rng.choice(self.budgets)
            budgets.append(budget)
            args = ["generate", "--json", "--no-progress"] + (["--budget", str(budget)] if budget else [])
            procs.append(("generate", self.start(*args), budget))
            time.sleep(rng.uniform(0, 0.3))
        ids = [e["id"] for e in entries(self.n)]
        for _ in range(rng.choice([1, 2])):
            time.sleep(rng.uniform(0.1, 0.8))
            procs.append(("regenerate", self.start("review", "regenerate", rng.choice(ids[:6]), "--json"), None))
        time.sleep(rng.uniform(0.1, 0.5))
        procs.append(("sync", self.start("sync", "--json"), None))
        procs.append(("gc", self.start("gc", "--delete", "--json"), None))
        if rng.random() < 0.5:  # kill one generate at random mid-run
            time.sleep(rng.uniform(0.2, 1.5))
            victim = rng.choice([p for p in procs if p[0] == "generate"])
            victim[1].send_signal(signal.SIGKILL)
            self.killed.append(str(victim[1].pid))
        for kind, proc, budget in procs:
            out, err = proc.communicate(timeout=300)
            if proc.returncode in (-9,):
                continue
            if kind in ("generate", "regenerate"):
                try:
                    data = json.loads(out)
                except ValueError:
                    print(f"!! {kind} exit {proc.returncode}: not JSON\n{out}\n{err[-2000:]}")
                    continue
                s = data["summary"] if kind == "regenerate" else data
                self.summaries.append({"kind": kind, "budget": budget, **s})
                # an adjustment (a call of an earlier run this one settled at another cost) was spent before it began
                if budget is not None and s["spend_usd"] - s.get("adjustments_usd", 0.0) > budget + 1e-9:
                    print(f"!! {kind} spent {s['spend_usd']} over its budget {budget}")
            elif proc.returncode not in (0, 1, 4) and kind != "gc":
                print(f"!! {kind} exit {proc.returncode}\n{err[-2000:]}")

    def final(self) -> bool:
        out = self.run("generate", "--json", "--no-progress")
        if out.stdout.strip():
            self.summaries.append({"kind": "final", "budget": None, **json.loads(out.stdout)})
        return self.check()

    def check(self) -> bool:
        sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
        from limner.config import load_settings
        from limner.project import Project

        ok = True
        project = Project(load_settings(self.root / "limner.toml"))
        try:
            with project.db.engine.connect() as conn:
                from sqlalchemy import text

                ledger = conn.execute(text("select id, entry_id, fingerprint, status, cost_usd, run_id, render_id, outcome "
                                           "from ledger order by id")).all()
                states = dict(conn.execute(text("select id, state from entries")).all())
                refused = set(conn.execute(text("select id from entries where state = 'failed' and "
                                                "last_error like 'ContentRefused%'")).scalars())
                claimed = conn.execute(text("select id, claimed_by from entries where claimed_by is not null")).all()
                renders = conn.execute(text("select id, entry_id, fingerprint, status, cost_usd from renders")).all()
        finally:
            project.close()
        calls = self.calls()
        costs = json.loads(self.run("costs", "--json").stdout)
        ledger_usd = sum(r.cost_usd for r in ledger)  # adjustment lines included: they are spend
        ledger_calls = [r for r in ledger if r.status != "adjustment"]  # they are no call
        paid = [c for c in ledger if c.status == "recorded"]
        summary_calls = sum(s["provider_calls"] for s in self.summaries)
        summary_usd = sum(s["spend_usd"] for s in self.summaries)

        def bad(msg: str) -> None:
            nonlocal ok
            ok = False
            print("!!", msg)

        if len(calls) != len(ledger_calls):
            bad(f"fake saw {len(calls)} calls, ledger has {len(ledger_calls)} lines of calls")
        if abs(costs["total_usd"] - ledger_usd) > 1e-6:
            bad(f"costs {costs['total_usd']} != ledger {ledger_usd}")
        if not self.killed:
            if summary_calls != len(ledger_calls):
                bad(f"summaries count {summary_calls} calls, ledger {len(ledger_calls)}")
            if abs(summary_usd - ledger_usd) > 1e-6:
                bad(f"summaries spend {summary_usd}, ledger {ledger_usd}")
        fp_paid = Counter((r.entry_id, r.fingerprint) for r in paid)
        twice = {k: v for k, v in fp_paid.items() if v > 1}
        if twice:
            bad(f"specs paid twice: {twice}")
        successes = Counter((c["id"], c["seed"]) for c in calls)
        if claimed:
            bad(f"claims left: {claimed}")
        unpublished = {k: v for k, v in states.items() if v != "published" and k not in refused}
        if unpublished:
            bad(f"not published after the final run: {unpublished}")
        open_lines = [r for r in ledger if r.status in ("pending", "answered")]
        if open_lines:
            bad(f"open ledger lines after the final run: {open_lines}")
        for s in self.summaries:
            print(f"   {s['kind']:<10} budget={s['budget']} gen={s['generated']} calls={s['provider_calls']} "
                  f"usd={s['spend_usd']:.2f} elsewhere={s['elsewhere']} failed={s['failed']} ns={s['not_started']}")
        print(f"   calls={len(calls)} ledger={len(ledger)} usd={ledger_usd:.2f} costs={costs['total_usd']:.2f} "
              f"summaries={summary_calls}/{summary_usd:.2f} killed={len(self.killed)} renders={len(renders)} "
              f"max calls per (id, seed)={max(successes.values()) if successes else 0}")
        return ok


def parse_args(entries: int) -> argparse.Namespace:
    """The options both harnesses take (``entries``: the default number of entries)."""
    ap = argparse.ArgumentParser()
    ap.add_argument("--pg", help="a PostgreSQL URL (the database is emptied each round)")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--entries", type=int, default=entries)
    return ap.parse_args()


def empty_database(pg: str | None) -> None:
    """A new round starts on an empty PostgreSQL database (SQLite rounds each have their own folder)."""
    if pg:
        subprocess.run(["psql", pg.replace("+psycopg", ""), "-qc", "drop schema public cascade; create schema public;"],
                       check=True, capture_output=True)


def main() -> None:
    args = parse_args(entries=16)
    base = Path(tempfile.mkdtemp(prefix="money-mix-"))
    failures = 0
    for r in range(args.rounds):
        rng = random.Random(args.seed * 1000 + r)
        empty_database(args.pg)
        mix = Mix(base / f"round{r}", args.entries, rng, args.pg)
        print(f"round {r} ({mix.root})")
        mix.round()
        if not mix.final():
            failures += 1
    print("FAILED rounds:", failures)
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
