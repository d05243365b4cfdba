"""CPU per entry of the database writes a unit of work makes, on SQLite (the default database).

A run's database thread shares the interpreter lock with the event loop: every millisecond of CPU it
spends on an entry is a millisecond the loop may wait before it sends the next call. This measures that
CPU (``time.thread_time``, so waiting on the disk is not counted) for each call of a unit of work, in the
order a run makes them, on a new database of ``--entries`` entries:

    claim -> open_call_lines (the ledger line) -> note_external_id -> settle_call (answered)
          -> record_render -> record_derived (12 variants, published)

    python bench/bench_db.py [--entries 300] [--rounds 3]

The best of ``--rounds`` rounds is shown (each round on a new database).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from _common import machine, table  # noqa: E402

STEPS = ("claim", "open_call_lines", "note_external_id", "settle_call", "record_render", "record_derived")


def one_round(entries: int) -> dict[str, float]:
    from limner.db.engine import open_database
    from limner.db.models import CallStatus, Render, RenderStatus
    from limner.db.repository import Repository

    spent = dict.fromkeys(STEPS, 0.0)

    def timed(step: str, fn, *args, **kwargs):  # type: ignore[no-untyped-def]
        t = time.thread_time()
        try:
            return fn(*args, **kwargs)
        finally:
            spent[step] += time.thread_time() - t

    shapes = [(w, f) for w in (256, 512, 768, 1024) for f in ("avif", "webp", "jpeg")]
    with tempfile.TemporaryDirectory() as tmp:
        db = open_database(f"sqlite:///{tmp}/state.db")
        repo = Repository(db)
        repo.start_run("bench", "host", 1)
        repo.sync_entries((f"e{i:05d}", f"Entry {i}", "default", "fp") for i in range(entries))
        repo.ensure_template("t" * 64, style="default", version="1", positive="p", negative="n", params={})
        for i in range(entries):
            entry = f"e{i:05d}"
            claim = timed("claim", repo.claim, entry, "fp", "bench")
            assert claim.status == "claimed", claim
            [call] = timed("open_call_lines", repo.open_call_lines, [dict(
                entry_id=entry, fingerprint="fp", run_id="bench", provider="replicate", model="m", estimate_usd=0.003)])
            timed("note_external_id", repo.note_external_id, call, f"prediction-{i}")
            timed("settle_call", repo.settle_call, call, CallStatus.answered, cost_usd=0.003, outcome="answered")
            render = Render(entry_id=entry, fingerprint="fp", status=RenderStatus.generated.value, provider="replicate",
                            model="m", seed=i, prompt="a prompt", negative_prompt="", parameters={"width": 256},
                            style="default", style_version="1", template_sha="t" * 64, cost_usd=0.003, latency_ms=1000,
                            attempts=1, provider_metadata={}, master_sha256=f"{i:064d}", master_key=f"masters/{i}.png",
                            master_format="png", master_bytes=1000)
            render = timed("record_render", repo.record_render, render, call_id=call)
            variants = [{"width": w, "height": w, "format": f, "key": f"variants/{i}-{w}.{f}", "sha256": f"{i:064d}",
                         "bytes": 1000} for w, f in shapes]
            timed("record_derived", repo.record_derived, render.id, fields={
                "width": 256, "height": 256, "phash": "ff00ff00ff00ff00", "near_duplicate_of": None, "blurhash": "b",
                "thumbhash": "t", "dominant_color": "#000000", "placeholder_key": "p", "placeholder_width": 16,
                "placeholder_height": 16}, variants=variants, publish=True, input_digest="d")
        assert repo.counts_by_state() == {"published": entries}
        db.close()
    return {step: seconds / entries for step, seconds in spent.items()}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--entries", type=int, default=300)
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    rounds = [one_round(args.entries) for _ in range(args.rounds)]
    best = {step: min(r[step] for r in rounds) for step in STEPS}
    rows = [[step, f"{best[step] * 1000:.2f} ms"] for step in STEPS]
    rows.append(["all, per entry", f"{sum(best.values()) * 1000:.2f} ms"])
    print(table(f"Database writes of a unit of work, CPU per entry (SQLite, {args.entries} entries, best of "
                f"{args.rounds})", ["call", "CPU per entry"], rows))
    print(f"\nmachine: {machine()}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
