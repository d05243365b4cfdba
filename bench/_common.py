"""Helpers shared by the benchmarks: machine description and table printing."""

from __future__ import annotations

import datetime as dt
import os
import platform
import sys


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as fh:
            for line in fh:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return (f"{dt.date.today().isoformat()} · {platform.system()} {platform.machine()} · {cpu} · "
            f"{os.cpu_count()} CPUs · Python {sys.version.split()[0]}")


def table(title: str, header: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(str(x)) for x in col) for col in zip(header, *rows)]
    line = "| " + " | ".join(h.ljust(w) for h, w in zip(header, widths)) + " |"
    sep = "| " + " | ".join("-" * w for w in widths) + " |"
    body = ["| " + " | ".join(str(c).ljust(w) for c, w in zip(r, widths)) + " |" for r in rows]
    return "\n".join([f"### {title}", "", line, sep, *body])


def throughput_rows(summary, *, t_plan: float, elapsed: float, concurrency: int, latency: float) -> tuple[list[list[str]], bool]:  # type: ignore[no-untyped-def]
    """The closing rows of a throughput benchmark (run time, rates, efficiency against the 95% target),
    with failures echoed to stderr; returns (rows, passed)."""
    import sys

    ideal = concurrency / latency
    rate = summary.generated / elapsed
    ratio = rate / ideal
    for failure in summary.failures[:5]:
        print(f"failed {failure['id']}: {failure['error']}", file=sys.stderr)
    rows = [
        ["plan time", f"{t_plan:.2f} s"],
        ["run time", f"{elapsed:.2f} s"],
        ["throughput", f"{rate:.2f} entries/s"],
        ["ideal (concurrency / latency)", f"{ideal:.2f} entries/s"],
        ["efficiency", f"{ratio:.1%} (target >= 95%: {'PASS' if ratio >= 0.95 else 'FAIL'})"],
    ]
    return rows, ratio >= 0.95 and summary.failed == 0
