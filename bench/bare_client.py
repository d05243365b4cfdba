"""The ceiling of ``bench_replicate.py``'s harness: a bare client against the same loopback fake.

No Limner: ``concurrency`` asyncio loops on one httpx client, each taking the next entry, making its
create call (``Prefer: wait``) and handing the output's download to a task of its own, so the loop's next
create goes out at once. Nothing is planned, recorded, derived or stored. What this process loses
against the ideal is what the fake, the loopback and Python's HTTP stack cost on this machine; a
runner doing real work per image cannot do better.

    python bench/bare_client.py URL TOKEN ENTRIES CONCURRENCY

Prints one JSON line: entries created, bytes downloaded, and when (epoch seconds) the first create
call went out and the last download ended.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time


async def run(url: str, token: str, entries: int, concurrency: int) -> dict[str, float | int]:
    import httpx

    todo = iter(range(entries))
    created = downloaded = 0
    first_call: float | None = None
    downloads: list[asyncio.Task[None]] = []
    limits = httpx.Limits(max_connections=4 * concurrency, max_keepalive_connections=4 * concurrency)
    async with httpx.AsyncClient(limits=limits, timeout=60) as client:
        async def download(output: str) -> None:
            nonlocal downloaded
            answer = await client.get(output)
            answer.raise_for_status()
            downloaded += len(answer.content)

        async def loop() -> None:
            nonlocal created, first_call
            for i in todo:
                first_call = first_call or time.time()
                answer = await client.post(
                    f"{url}/v1/models/black-forest-labs/flux-schnell/predictions",
                    json={"input": {"prompt": f"entry {i}", "seed": i, "aspect_ratio": "1:1"}},
                    headers={"Authorization": f"Bearer {token}", "Prefer": "wait"})
                answer.raise_for_status()
                prediction = answer.json()
                if prediction["status"] != "succeeded":
                    raise RuntimeError(f"entry {i}: prediction {prediction['id']} is {prediction['status']}")
                created += 1
                downloads.append(asyncio.create_task(download(prediction["output"][0])))

        await asyncio.gather(*(loop() for _ in range(concurrency)))
        await asyncio.gather(*downloads)
    return {"created": created, "downloaded_bytes": downloaded, "first_call": first_call or 0.0, "last_done": time.time()}


def main() -> int:
    url, token, entries, concurrency = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
    print(json.dumps(asyncio.run(run(url, token, entries, concurrency))))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
