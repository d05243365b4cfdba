"""bench/money_mix.py's actors against the loopback Replicate fake (tests/fake_replicate.py): provider ids,
fetches of known calls, failed and slow downloads, deadlines, random 429/500/NSFW, kills.

    PYTHONPATH=src:tests python bench/money_mix_replicate.py [--pg URL] [--rounds N] [--seed S]

Beyond bench/money_mix.py's checks: every prediction the fake ran to success is in the ledger under its id
(recorded), and no (prompt, seed) succeeded twice.
"""

from __future__ import annotations

import random
import sys
import tempfile
import textwrap
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from fake_replicate import start_fake, stop_fake  # noqa: E402
from money_mix import Mix, empty_database, parse_args  # noqa: E402

TOKEN = "r8_money_mix_token"


class ReplicateMix(Mix):
    budgets = (None, 0.006, 0.009, 0.015)

    def __init__(self, root: Path, n: int, rng: random.Random, pg: str | None, fake) -> None:
        super().__init__(root, n, rng, pg)
        self.fake = fake
        db = f'\n[database]\nurl = "{pg}"\n' if pg else ""
        (root / "limner.toml").write_text(textwrap.dedent(f"""\
            catalog = "catalog.yaml"
            provider = "replicate"
            [generate]
            concurrency = 4
            workers = 1
            max_attempts = 4
            backoff_initial_s = 0.01
            backoff_max_s = 0.05
            [providers.replicate]
            poll_interval_s = 0.05
            concurrency = 4
            timeout_s = {rng.choice([1, 2, 30])}
            prefer_wait_s = {rng.choice([0, 0.5])}
            """) + db)
        (root / ".env").write_text(f"REPLICATE_API_TOKEN={TOKEN}\n")
        self.refused = None

    def env(self) -> dict[str, str]:
        env = {k: v for k, v in super().env().items() if not k.startswith("REPLICATE_")}
        env.update(REPLICATE_BASE_URL=self.fake.url, LIMNER_ALLOW_HTTP_HOSTS="127.0.0.1")
        return env

    def calls(self) -> list[dict]:
        made = [{"id": p["input"].get("prompt"), "seed": p["input"].get("seed")} for p in self.fake.predictions.values()]
        return made + [{"id": None, "seed": None}] * self.fake.create_rejected  # 429s and 500s: lines too

    def check(self) -> bool:
        ok = super().check()
        from limner.config import load_settings
        from limner.project import Project
        from sqlalchemy import text

        project = Project(load_settings(self.root / "limner.toml"))
        try:
            with project.db.engine.connect() as conn:
                lines = conn.execute(text("select external_id, status from ledger where external_id is not null")).all()
        finally:
            project.close()
        recorded = Counter(e for e, s in lines if s == "recorded")
        done = {pid: p for pid, p in self.fake.predictions.items() if p["status"] == "succeeded"}
        lost = [pid for pid in done if recorded[pid] != 1]
        if lost:
            ok = False
            print(f"!! predictions that succeeded (paid) but are not recorded once in the ledger: {lost}")
        twice = {k: v for k, v in Counter((p["input"].get("prompt"), p["input"].get("seed")) for p in done.values()).items()
                 if v > 1}
        if twice:
            ok = False
            print(f"!! the same (prompt, seed) succeeded (was paid for) more than once: {twice}")
        print(f"   replicate: create_calls={self.fake.create_calls} succeeded={len(done)} paid={self.fake.paid}")
        return ok


def main() -> None:
    args = parse_args(entries=12)
    base = Path(tempfile.mkdtemp(prefix="money-mix-replicate-"))
    failures = 0
    for r in range(args.rounds):
        rng = random.Random(args.seed * 1000 + r)
        server, fake = start_fake(TOKEN, image_size=64, latency=rng.choice([0.1, 0.6, 1.5]))
        try:
            fake.faults(rate_limit=0.1, server_error=0.1, nsfw=0.05, pending=0.3, retry_after=1, seed=r)
            fake.mode("ok", download_failures=rng.choice([0, 1, 2]), drip_downloads=rng.choice([0, 0, 1]), drip_s=0.7)
            empty_database(args.pg)
            mix = ReplicateMix(base / f"round{r}", args.entries, rng, args.pg, fake)
            print(f"round {r} ({mix.root})")
            mix.round()
            fake.faults()  # the final run meets a healthy provider
            fake.mode("ok")
            if not mix.final():
                failures += 1
        finally:
            stop_fake(server, fake)
    print("FAILED rounds:", failures)
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
