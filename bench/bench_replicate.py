"""Replicate provider throughput against a loopback Replicate fake with a fixed prediction latency.

The fake runs in a child process (its threads must not share the runner's GIL, as the real API
would not). It holds each create call (``Prefer: wait``) for ``--latency`` seconds and answers
``succeeded`` with the URL of a noisy PNG it serves itself, so every entry costs one create call
and one download through the real provider code (httpx, ProviderHTTP, the runner's gate and
retries, validation, derivation, storage, database). Two fakes:

* ``keepalive`` (default): a ``ThreadingHTTPServer`` speaking HTTP/1.1 with keep-alive, like the real API;
* ``httpserver``: the tests' fake (tests/fake_replicate.py, pytest-httpserver/werkzeug), which
  closes every connection, so each call also pays a TCP connect and a thread start.

Two ways to measure (``--mode``):

* ``process`` (default): the whole ``limner generate --json`` command, from exec to exit, as a
  user runs it; the phase breakdown comes from the summary's ``timeline``.
* ``inrun``: ``build_plan`` + ``run_plan`` inside this process (start-up excluded);
* ``bare``: the harness's ceiling, no Limner at all: ``bench/bare_client.py``, a whole process whose
  ``concurrency`` httpx loops only make the create calls and download the outputs against the same fake.
  What it loses against the ideal is the fake's, the loopback's and Python's HTTP stack's share on this
  machine, not the runner's. ``--suite`` runs it beside each case.

Ideal = entries x latency / concurrency seconds (``concurrency / latency`` entries/s). Floor =
ceil(entries / concurrency) x latency: the calls on one slot follow each other, so no run can be
faster (1,000 entries on 16 slots are 63 calls in a row on 8 of them: 31.5 s, not 31.25). Targets
(issue #7), with 256-px images: 16 entries at 1 s and concurrency 16 in <= 1.8 s whole process;
192 entries at 1 s, concurrency 16: >= 0.92 of the ideal; 1,000 entries at 0.5 s, concurrency 16:
>= 0.96.

    python bench/bench_replicate.py [--entries 192] [--latency 1.0] [--concurrency 16] [--size 256]
                                    [--mode process|inrun|both|bare] [--repeat 1]
                                    [--fake keepalive|httpserver] [--derive 'formats = ["webp"]']
    python bench/bench_replicate.py --suite      # the three targets above, whole process, each beside the bare client
"""

from __future__ import annotations

import argparse
import itertools
import json
import multiprocessing
import os
import re
import subprocess
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
from _common import machine, table  # noqa: E402
from fake_replicate import ASPECTS, noisy_image, start_fake, stop_fake  # noqa: E402  (tests/fake_replicate.py)

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
        inp = body.get("input") or {}
        # the image is drawn while the prediction "runs", as a real API has its output ready when it
        # answers: the download then costs only the transfer
        a, b = ASPECTS.get(str(inp.get("aspect_ratio")), (1, 1))
        w, h = max(8, round(a * self.size / max(a, b))), max(8, round(b * self.size / max(a, b)))
        png = noisy_image(w, h, int(inp.get("seed") or 0))
        with self.lock:
            self.counts["create_calls"] += 1
            self.predictions[pid] = {"input": inp, "ready_at": ready_at, "created_at": time.time(), "png": png}
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
            self._send(200, self.predictions[pid]["png"], "image/png")
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


def write_project(root: Path, entries: int, concurrency: int, latency: float, derive: str) -> None:
    rows = [{"id": f"e-{i:05d}", "title": f"Entry {i}", "year": i} for i in range(entries)]
    (root / "catalog.yaml").write_text(yaml.safe_dump({"entries": rows}))
    (root / "limner.toml").write_text(textwrap.dedent(f"""\
        provider = "replicate"
        [generate]
        concurrency = {concurrency}
        {derive}
        [providers.replicate]
        concurrency = {concurrency}
        poll_interval_s = 0.05
        timeout_s = {max(30.0, latency * 4)}
        """))


PHASES = [  # (label, from, to) over the summary's timeline, "exec" and "exit" measured here
    ("start-up (exec -> command)", "exec", "command_started"),
    ("plan", "command_started", "planned"),
    ("checks + commit plan", "planned", "checked"),
    ("to first call", "checked", "first_call"),
    ("pool ready (after exec)", "exec", "pool_ready"),
    ("first call -> first published", "first_call", "first_published"),
    ("first -> last published", "first_published", "last_published"),
    ("tail (last published -> exit)", "last_published", "exit"),
]


def run_process(root: Path, env: dict[str, str]) -> tuple[float, dict, dict[str, float]]:
    """``limner generate`` as a user runs it: returns (wall seconds, summary, timeline incl. exec/exit)."""
    limner = Path(sys.executable).with_name("limner")
    cmd = [str(limner) if limner.exists() else sys.executable, *([] if limner.exists() else ["-m", "limner"]),
           "generate", "--json", "--no-progress"]
    t_exec = time.time()
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, cwd=root, env=env, capture_output=True, text=True, timeout=3600)
    wall = time.perf_counter() - t0
    t_exit = t_exec + wall
    try:
        summary = json.loads(proc.stdout)
    except ValueError:
        raise SystemExit(f"limner generate exited {proc.returncode}:\n{proc.stdout}\n{proc.stderr}") from None
    timeline = {"exec": t_exec, **summary.get("timeline", {}), "exit": t_exit}
    return wall, summary, timeline


def run_bare(env: dict[str, str], entries: int, concurrency: int) -> tuple[float, dict]:
    """``bench/bare_client.py`` (no Limner) against the same fake, exec to exit: returns (wall seconds, its report)."""
    cmd = [sys.executable, str(Path(__file__).with_name("bare_client.py")), env["REPLICATE_BASE_URL"], TOKEN,
           str(entries), str(concurrency)]
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=3600)
    wall = time.perf_counter() - t0
    if proc.returncode:
        raise SystemExit(f"bare_client.py exited {proc.returncode}:\n{proc.stderr}")
    return wall, json.loads(proc.stdout)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--entries", type=int, default=192)
    ap.add_argument("--latency", type=float, default=1.0, help="seconds the fake holds each prediction")
    ap.add_argument("--concurrency", type=int, default=16)
    ap.add_argument("--size", type=int, default=256, help="long side of the fake's images, in pixels")
    ap.add_argument("--mode", choices=["process", "inrun", "both", "bare"], default="process",
                    help="process: the whole limner command; inrun: plan + run in this process; both: the two; "
                         "bare: bench/bare_client.py, the harness's ceiling (no Limner)")
    ap.add_argument("--repeat", type=int, default=1, help="runs per case (each on a new project); the table shows each")
    ap.add_argument("--suite", action="store_true", help="the issue's three whole-process targets (16@1s, 192@1s, 1000@0.5s)")
    ap.add_argument("--derive", default="",
                    help="extra [generate] TOML lines, e.g. 'formats = [\"webp\"]' to cut derivation work "
                         "(default: the full default pipeline)")
    ap.add_argument("--fake", choices=["keepalive", "httpserver"], default="keepalive",
                    help="keepalive: ThreadingHTTPServer with HTTP/1.1 keep-alive (default); "
                         "httpserver: the tests' pytest-httpserver fake (a new connection per request)")
    args = ap.parse_args()
    if args.suite:
        cases = [(16, 1.0, None, 1.8), (192, 1.0, 0.92, None), (1000, 0.5, 0.96, None)]
    else:
        cases = [(args.entries, args.latency, None, None)]
    ok = True
    for entries, latency, min_ratio, max_wall in cases:
        ok &= bench_case(args, entries, latency, min_ratio, max_wall)
    print(f"\nmachine: {machine()}")
    return 0 if ok else 1


def bench_case(args: argparse.Namespace, entries: int, latency: float, min_ratio: float | None,
               max_wall: float | None) -> bool:
    parent, child = multiprocessing.Pipe()
    server = multiprocessing.get_context("spawn").Process(target=serve_fake, args=(child, args.fake, args.size, latency), daemon=True)
    server.start()
    url = parent.recv()
    env = {**os.environ, "REPLICATE_API_TOKEN": TOKEN, "REPLICATE_BASE_URL": url, "LIMNER_ALLOW_HTTP_HOSTS": "127.0.0.1"}
    env = {k: v for k, v in env.items() if not (k.startswith("LIMNER_") and k != "LIMNER_ALLOW_HTTP_HOSTS")}
    ideal = entries * latency / args.concurrency
    # the calls on one slot follow each other: ceil(entries / concurrency) of them on the busiest slot
    floor = -(-entries // args.concurrency) * latency
    passed = True
    rows: list[list[str]] = []
    phase_rows: list[list[str]] = []
    load_before = os.getloadavg()[0]
    try:
        modes = {"both": ["process", "inrun"]}.get(args.mode, [args.mode]) + (["bare"] if args.suite else [])
        for mode in modes:
            for run in range(args.repeat):
                with tempfile.TemporaryDirectory() as tmp:
                    root = Path(tmp)
                    write_project(root, entries, args.concurrency, latency, args.derive)
                    if mode == "bare":
                        wall, done = run_bare(env, entries, args.concurrency)
                        generated, failed = done["created"], entries - done["created"]
                        if not done["downloaded_bytes"]:
                            raise SystemExit("the bare client downloaded nothing")
                    elif mode == "process":
                        wall, summary, timeline = run_process(root, env)
                        generated, failed = summary["generated"], summary["failed"]
                        for label, a, b in PHASES:
                            if a in timeline and b in timeline:
                                phase_rows.append([f"run {run + 1}", label, f"{timeline[b] - timeline[a]:.3f} s"])
                    else:
                        os.environ.update({k: env[k] for k in ("REPLICATE_API_TOKEN", "REPLICATE_BASE_URL", "LIMNER_ALLOW_HTTP_HOSTS")})
                        from limner.config import load_settings
                        from limner.project import Project
                        from limner.runner import RunOptions, Selection, build_plan, run_plan

                        t0 = time.perf_counter()
                        project = Project(load_settings(root / "limner.toml"))
                        plan = build_plan(project, Selection())
                        result = run_plan(project, plan, RunOptions(progress=False))
                        wall = time.perf_counter() - t0
                        project.close()
                        generated, failed = result.generated, result.failed
                        for failure in result.failures[:5]:
                            print(f"failed {failure['id']}: {failure['error']}", file=sys.stderr)
                    ratio = ideal / wall
                    verdict = []
                    if mode == "process" and min_ratio is not None:
                        verdict.append(f">= {min_ratio:.2f}: {'PASS' if ratio >= min_ratio else 'FAIL'}")
                        passed &= ratio >= min_ratio
                    if mode == "process" and max_wall is not None:
                        verdict.append(f"<= {max_wall:g} s: {'PASS' if wall <= max_wall else 'FAIL'}")
                        passed &= wall <= max_wall
                    passed &= failed == 0 and generated == entries
                    rows.append([mode, str(run + 1), f"{generated} ({failed} failed)", f"{wall:.2f} s", f"{ideal:.2f} s",
                                 f"{floor:.2f} s", f"{entries / wall:.2f}/s", f"{ratio:.3f}", "; ".join(verdict)])
    finally:
        parent.send("stop")
        counts = parent.recv() if parent.poll(10) else {}
        server.join(5)
    title = (f"Replicate (loopback fake, {args.fake}): {entries} entries, latency {latency:g} s, concurrency "
             f"{args.concurrency}, {args.size}-px images, derivation {args.derive or 'default'}")
    print(table(title, ["mode", "run", "published", "wall", "ideal", "floor", "throughput", "of ideal", "target"], rows))
    print(f"\ncreate calls / polls / downloads: {' / '.join(str(counts.get(k, '?')) for k in ('create_calls', 'poll_calls', 'file_calls'))}"
          f" · load average (1 min) before {load_before:.2f}, after {os.getloadavg()[0]:.2f}")
    if phase_rows:
        print()
        print(table("Phase breakdown (whole process)", ["run", "phase", "time"], phase_rows))
    print()
    return passed


if __name__ == "__main__":
    raise SystemExit(main())
