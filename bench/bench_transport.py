"""The provider clients' HTTP transport against httpx's default, on the loopback Replicate fake.

Each entry is what a Replicate call costs the event loop: a create call (``Prefer: wait``, JSON body)
and the download of its output, ``--concurrency`` at a time, the fake answering after ``--latency``
seconds. Measured in this process: CPU per entry (``time.process_time``: the event loop, the client,
its connection pool) and the wall time of the batch. The two transports alternate, ``--rounds`` times.

* ``httpx default``: ``httpx.AsyncHTTPTransport`` (httpcore on anyio's streams);
* ``asyncio transport``: :class:`limner.providers.transport.AsyncioTransport` (the same httpcore pool
  on an asyncio network backend: a request in one write, readability from the stream's own buffer).

    python bench/bench_transport.py [--entries 1600] [--concurrency 16] [--latency 0.02] [--rounds 3]
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import ssl
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
import bench_replicate as fake  # noqa: E402  (its loopback fake, in a child process)
from _common import machine, table  # noqa: E402

PATH = "/v1/models/black-forest-labs/flux-schnell/predictions"


async def batch(url: str, transport, entries: int, concurrency: int) -> tuple[float, float]:  # type: ignore[no-untyped-def]
    import httpx

    async with httpx.AsyncClient(transport=transport, headers={"Authorization": f"Bearer {fake.TOKEN}"}) as client:
        slots = asyncio.Semaphore(concurrency)

        async def one(i: int) -> None:
            async with slots:
                created = await client.post(f"{url}{PATH}", json={"input": {"prompt": "a boat", "seed": i}},
                                            headers={"Prefer": "wait"})
                image = await client.get(created.json()["output"][0])
                assert image.status_code == 200 and image.content

        cpu, wall = time.process_time(), time.perf_counter()
        await asyncio.gather(*(one(i) for i in range(entries)))
        return (time.process_time() - cpu) / entries, time.perf_counter() - wall


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--entries", type=int, default=1600)
    ap.add_argument("--concurrency", type=int, default=16)
    ap.add_argument("--latency", type=float, default=0.02)
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    import httpx

    from limner.providers.transport import AsyncioTransport

    parent, child = multiprocessing.Pipe()
    server = multiprocessing.get_context("spawn").Process(target=fake.serve_fake, args=(child, "keepalive", 64, args.latency),
                                                          daemon=True)
    server.start()
    url = parent.recv()
    kinds = {"httpx default": lambda: httpx.AsyncHTTPTransport(verify=ssl.create_default_context()),
             "asyncio transport": lambda: AsyncioTransport(ssl.create_default_context())}
    results: dict[str, list[tuple[float, float]]] = {name: [] for name in kinds}
    try:
        for _ in range(args.rounds):
            for name, make in kinds.items():
                results[name].append(asyncio.run(batch(url, make(), args.entries, args.concurrency)))
    finally:
        parent.send("stop")
        parent.recv() if parent.poll(10) else None
        server.join(5)
    rows = []
    for name, runs in results.items():
        cpu = [c for c, _ in runs]
        wall = [w for _, w in runs]
        rows.append([name, f"{statistics.median(cpu) * 1000:.2f} ms", f"{min(cpu) * 1000:.2f} ms",
                     f"{statistics.median(wall):.2f} s"])
    print(table(f"HTTP transport: {args.entries} entries (create + download), concurrency {args.concurrency}, "
                f"fake latency {args.latency:g} s, {args.rounds} rounds", ["transport", "CPU per entry (median)",
                "best", "batch wall (median)"], rows))
    print(f"\nmachine: {machine()}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
