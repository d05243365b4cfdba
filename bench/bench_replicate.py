"""Replicate provider throughput against a loopback Replicate fake with a fixed prediction latency.

The fake runs in a child process (its threads must not share the runner's GIL, as the real API
would not). It holds each create call (``Prefer: wait``) for ``--latency`` seconds and answers
``succeeded`` with the URL of a small PNG it serves itself, so every entry costs one create call
and one download through the real provider code (httpx, ProviderHTTP, the runner's gate and
retries, validation, derivation, storage, database). Two fakes:

* ``keepalive`` (default): a ``ThreadingHTTPServer`` speaking HTTP/1.1 with keep-alive, like the real API;
* ``httpserver``: the tests' fake (tests/fake_replicate.py, pytest-httpserver/werkzeug), which
  closes every connection, so each call also pays a TCP connect and a thread start.

Target: 500 entries, 1 s per prediction, concurrency 16 -> throughput >= 95% of
concurrency / latency (>= 15.2 entries/s of an ideal 16). Note that 500 / 16 is 31.25 waves, so
the last partial wave alone caps the ratio at 97.7%; compare with ``bench_orchestration.py
--entries 500 --latency 1 --concurrency 16 --size 64`` (the fake provider, no HTTP) on the same machine.

    python bench/bench_replicate.py [--entries 500] [--latency 1.0] [--concurrency 16] [--size 64]
                                    [--fake keepalive|httpserver] [--derive 'formats = ["webp"]']
"""

from __future__ import annotations

import argparse
import itertools
import json
import multiprocessing
import os
import re
import sys
import tempfile
import textwrap
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).parent))
sys.path.insert(0, str(ROOT / "tests"))
from _common import machine, table, throughput_rows  # noqa: E402
from fake_replicate import ASPECTS, noisy_image, start_fake, stop_fake  # noqa: E402  (tests/fake_replicate.py)

from limner.config import load_settings  # noqa: E402
from limner.project import Project  # noqa: E402
from limner.runner import RunOptions, Selection, build_plan, run_plan  # noqa: E402

TOKEN = "r8_BENCH_fake_token_not_a_real_credential"


class KeepAliveFake(BaseHTTPRequestHandler):
    """A minimal Replicate (create with ``Prefer: wait``, poll, files) on ``ThreadingHTTPServer``, with
    HTTP/1.1 keep-alive like the real API (werkzeug's dev server, under pytest-httpserver, closes every
    connection, so each call there pays a TCP connect and a thread start)."""

    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True
    latency = 1.0
    size = 64
    lock = threading.Lock()
    counts: dict[str, int] = {"create_calls": 0, "poll_calls": 0, "file_calls": 0}
    predictions: dict[str, dict] = {}
    ids = itertools.count(1)

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - no access log
        pass

    def _send(self, status: int, body: bytes, content_type: str = "application/json") -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _prediction(self, pid: str) -> bytes:
        p = self.predictions[pid]
        done = time.monotonic() >= p["ready_at"]
        base = f"http://{self.headers.get('Host')}"
        return json.dumps({
            "id": pid, "model": "black-forest-labs/flux-schnell", "version": "hidden", "input": p["input"], "logs": "",
            "status": "succeeded" if done else "processing", "error": None, "data_removed": False,
            "output": [f"{base}/files/{pid}.png"] if done else None, "created_at": p["created_at"],
            "urls": {"get": f"{base}/v1/predictions/{pid}", "cancel": f"{base}/v1/predictions/{pid}/cancel"},
            "metrics": {"predict_time": self.latency} if done else {},
        }).encode()

    def do_POST(self) -> None:  # noqa: N802
        body = json.loads(self.rfile.read(int(self.headers.get("Content-Length") or 0)) or b"{}")
        if self.headers.get("Authorization") != f"Bearer {TOKEN}":
            self._send(401, b'{"title": "Unauthenticated", "detail": "You did not pass a valid authentication token", "status": 401}')
            return
        pid = f"bench{next(self.ids):08d}"
        ready_at = time.monotonic() + self.latency
        with self.lock:
            self.counts["create_calls"] += 1
            self.predictions[pid] = {"input": body.get("input") or {}, "ready_at": ready_at, "created_at": time.time()}
        wait = re.search(r"wait(?:=(\d+))?", self.headers.get("Prefer") or "")
        if wait:
            time.sleep(max(0.0, min(ready_at - time.monotonic(), float(wait.group(1) or 60))))
        self._send(201, self._prediction(pid))

    def do_GET(self) -> None:  # noqa: N802
        kind, _, name = self.path.strip("/").rpartition("/")
        pid = name.split(".")[0]
        if pid not in self.predictions:
            self._send(404, b'{"detail": "Not found."}')
        elif kind == "files":
            with self.lock:
                self.counts["file_calls"] += 1
            inp = self.predictions[pid]["input"]
            a, b = ASPECTS.get(str(inp.get("aspect_ratio")), (1, 1))
            w, h = max(8, round(a * self.size / max(a, b))), max(8, round(b * self.size / max(a, b)))
            self._send(200, noisy_image(w, h, int(inp.get("seed") or 0)), "image/png")
        else:
            with self.lock:
                self.counts["poll_calls"] += 1
            self._send(200, self._prediction(pid))


def serve_fake(conn, kind: str, size: int, latency: float) -> None:  # type: ignore[no-untyped-def]
    """Child process: the fake API, so its threads do not share the runner's GIL (as Replicate would not)."""
    if kind == "httpserver":
        server, fake = start_fake(TOKEN, image_size=size, latency=latency)
        conn.send(fake.url)
        conn.recv()  # "stop"
        stop_fake(server, fake)
        conn.send({"create_calls": fake.create_calls, "poll_calls": fake.poll_calls, "file_calls": fake.file_calls})
        return
    KeepAliveFake.latency, KeepAliveFake.size = latency, size
    ThreadingHTTPServer.request_queue_size = 128  # the default backlog of 5 drops SYNs of 16 connects at once
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), KeepAliveFake)
    httpd.daemon_threads = True
    threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True).start()
    conn.send(f"http://127.0.0.1:{httpd.server_address[1]}")
    conn.recv()
    httpd.shutdown()
    conn.send(dict(KeepAliveFake.counts))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--entries", type=int, default=500)
    ap.add_argument("--latency", type=float, default=1.0, help="seconds the fake holds each prediction")
    ap.add_argument("--concurrency", type=int, default=16)
    ap.add_argument("--size", type=int, default=64, help="long side of the fake's images, in pixels")
    ap.add_argument("--derive", default="",
                    help="extra [generate] TOML lines, e.g. 'formats = [\"webp\"]' to cut derivation work "
                         "(default: the full default pipeline, as bench_orchestration.py)")
    ap.add_argument("--fake", choices=["keepalive", "httpserver"], default="keepalive",
                    help="keepalive: ThreadingHTTPServer with HTTP/1.1 keep-alive (default); "
                         "httpserver: the tests' pytest-httpserver fake (a new connection per request)")
    args = ap.parse_args()

    parent, child = multiprocessing.Pipe()
    server = multiprocessing.get_context("spawn").Process(target=serve_fake, args=(child, args.fake, args.size, args.latency), daemon=True)
    server.start()
    url = parent.recv()
    counts: dict[str, int] = {}
    os.environ.update(REPLICATE_API_TOKEN=TOKEN, REPLICATE_BASE_URL=url, LIMNER_ALLOW_HTTP_HOSTS="127.0.0.1")
    try:
        with tempfile.TemporaryDirectory() as tmp:
            root = Path(tmp)
            entries = [{"id": f"e-{i:05d}", "title": f"Entry {i}", "year": i} for i in range(args.entries)]
            (root / "catalog.yaml").write_text(yaml.safe_dump({"entries": entries}))
            (root / "limner.toml").write_text(textwrap.dedent(f"""\
                provider = "replicate"
                [generate]
                concurrency = {args.concurrency}
                {args.derive}
                [providers.replicate]
                concurrency = {args.concurrency}
                poll_interval_s = 0.05
                timeout_s = {max(30.0, args.latency * 4)}
                """))
            project = Project(load_settings(root / "limner.toml"))
            load_before = os.getloadavg()[0]
            t0 = time.perf_counter()
            plan = build_plan(project, Selection())
            t_plan = time.perf_counter() - t0
            t1 = time.perf_counter()
            summary = run_plan(project, plan, RunOptions(progress=False))
            elapsed = time.perf_counter() - t1
            load_after = os.getloadavg()[0]
            project.close()
    finally:
        parent.send("stop")
        counts = parent.recv() if parent.poll(10) else {}
        server.join(5)

    rows = [
        ["entries", str(args.entries)],
        ["prediction latency (Prefer: wait)", f"{args.latency:g} s"],
        ["concurrency", str(args.concurrency)],
        ["image size", f"{args.size} px"],
        ["derivation", args.derive or "default (avif, webp, jpeg)"],
        ["fake server", "ThreadingHTTPServer, keep-alive" if args.fake == "keepalive" else "pytest-httpserver (werkzeug)"],
        ["published", f"{summary.generated} ({summary.failed} failed)"],
        ["create calls / polls / downloads", " / ".join(str(counts.get(k, "?")) for k in ("create_calls", "poll_calls", "file_calls"))],
        ["spend (list price)", f"${summary.spend_usd:.2f}"],
    ]
    closing, passed = throughput_rows(summary, t_plan=t_plan, elapsed=elapsed, concurrency=args.concurrency,
                                      latency=args.latency)
    rows += closing
    print(table("Replicate provider (loopback fake)", ["measure", "value"], rows))
    print(f"\nmachine: {machine()} · load average (1 min) {load_before:.2f} before, {load_after:.2f} after")
    return 0 if passed else 1


if __name__ == "__main__":
    raise SystemExit(main())
