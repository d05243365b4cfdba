"""The review studio in a real browser: headless Chromium (Debian's ``chromium`` through npm
``playwright-core``, as tests/test_example_app.py drives it) against ``uvicorn`` serving the studio in a
thread, with a token (as beyond loopback). A reviewer logs in at ``/login?token=…``, opens the grid,
filters to failed, approves three renders with the keyboard, rejects one with a reason, regenerates one
and sees the new render appear without a reload, pins an earlier render; ``limner sync`` then publishes
exactly the approved ones. Screenshots land in the test's tmp dir
(``LIMNER_STUDIO_SCREENSHOTS=docs/images`` also copies two of them there, for docs/review.md).

Skips without Chromium, unless ``LIMNER_REQUIRE_BROWSER=1`` (set by ``.ci/run``), which makes it a failure."""

from __future__ import annotations

import json
import os
import socket
import textwrap
import threading
import time
from pathlib import Path

import pytest
import yaml

from frontend_tools import EXAMPLE_APP, ROOT, node_tools, prepare_example_app, require_chromium, run
from projects import ProjectDir

pytest.importorskip("fastapi", reason="the review studio needs the serve extra (pip install -e '.[serve]')")
pytestmark = pytest.mark.slow

DEMO_CATALOG = EXAMPLE_APP.parent / "catalog.yaml"
XSS = "<script>alert(1)</script>"
TOKEN = "browser-test-token-0123456789"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _project(root: Path) -> tuple[ProjectDir, list[str]]:
    """Eight entries of the example timeline drawn by the offline sketch provider, with the publish gate on;
    the last is made by the fake provider, which refuses it (a failed entry); one title is a script tag."""
    p = ProjectDir(root)
    p.root.mkdir()
    entries = yaml.safe_load(DEMO_CATALOG.read_text(encoding="utf-8"))["entries"][:8]
    entries[6]["title"] = XSS
    entries[7]["provider"] = "fake"
    p.write_catalog(entries)
    ids = [e["id"] for e in entries]
    p.config.write_text(textwrap.dedent(f"""\
        catalog = "catalog.yaml"
        provider = "sketch"
        [generate]
        size = 384
        aspect = "3:2"
        workers = 2
        [review]
        required = true
        [providers.fake]
        refuse_ids = ["{ids[7]}"]
        calls_file = "{root / "calls.jsonl"}"
        """), encoding="utf-8")
    return p, ids


class _Server:
    """uvicorn serving the studio in a thread, on a free loopback port."""

    def __init__(self, project, token: str) -> None:  # type: ignore[no-untyped-def]
        import uvicorn

        from limner.studio import create_app

        self.app = create_app(project, token=token)
        self.port = _free_port()
        self.server = uvicorn.Server(uvicorn.Config(self.app, host="127.0.0.1", port=self.port, log_level="warning",
                                                    lifespan="on"))
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> str:
        self.thread.start()
        deadline = time.monotonic() + 30
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise AssertionError("uvicorn did not start")
            time.sleep(0.05)
        return f"http://127.0.0.1:{self.port}/"

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=30)


def test_keyboard_review_in_headless_chromium_then_sync_publishes_exactly_the_approved(tmp_path):
    browser = require_chromium()
    node, npm = node_tools()
    prepare_example_app(npm)  # playwright-core comes with the example app's dependencies

    p, ids = _project(tmp_path / "project")
    generated = p.run_json("generate", timeout=240)
    assert generated["generated"] == 7 and generated["failed"] == 1, generated
    assert p.run_json("sync")["published"] == 0  # the gate: nothing approved yet

    shots = tmp_path / "screenshots"
    shots.mkdir()
    project = p.project()
    try:
        with _Server(project, TOKEN) as url:
            proc = run([node, str(ROOT / "tests" / "studio_browser.mjs"), "--url", url, "--out", str(shots), "--chromium", browser,
                        "--modules", str(EXAMPLE_APP), "--regen", ids[4], "--xss", ids[6], "--token", TOKEN], ROOT, timeout=240)
    finally:
        project.close()
    report = json.loads(proc.stdout)
    assert "error" not in report, report.get("error")
    steps = {s["name"]: s for s in report["steps"]}

    login = steps["login"]  # the studio runs with a token, as beyond loopback
    assert login["refused"] == 401 and login["landed"] == url
    assert login["cookies"] == [{"name": "limner_session", "httpOnly": True, "sameSite": "Strict"}]
    assert [c["id"] for c in steps["grid"]["cards"]] == ids  # every entry, in catalogue order
    # the script tag is the title's text, not an element, and never ran
    assert steps["xss"]["text"] == XSS and steps["xss"]["children"] == 0
    assert all(src.endswith("/static/studio.js") for src in steps["xss"]["scripts"])
    assert not [d for d in report["dialogs"] if d["type"] == "alert"], report["dialogs"]

    failed = steps["failed"]["cards"]
    assert [c["id"] for c in failed] == [ids[7]] and "refused" in failed[0]["error"]
    queue = [c["id"] for c in steps["awaiting"]["cards"]]
    assert queue == ids[:7]
    reviewed = {c["id"]: c for c in steps["reviewed"]["cards"]}
    assert [reviewed[i]["review"] for i in ids[:3]] == ["approved"] * 3
    assert "failed" in reviewed[ids[3]]["badges"] and "anachronistic clothing" in reviewed[ids[3]]["error"]
    assert steps["reviewed"]["marker"] == "still here" and steps["reviewed"]["current"] == ids[3]
    assert [d for d in report["dialogs"] if d["type"] == "prompt"] and len(report["dialogs"]) == 1

    regen = steps["regenerated"]
    assert regen["job"] == "done" and regen["marker"] == "still here"  # no reload
    assert len(regen["after"]) == 2 and regen["after"][1]["id"] == regen["before"][0]
    assert regen["after"][0]["id"] > regen["before"][0] and regen["after"][0]["review"] == "awaiting"
    pinned = steps["pinned"]
    assert pinned["published"] == regen["before"]
    # the regenerated render still awaits review: one badge says both, not "pinned" next to "awaiting review"
    assert pinned["badges"] == ["pinned · newer render awaiting review"], pinned["badges"]
    assert pinned["decisions"][0][2] == "pinned"
    assert report["pageErrors"] == [] and report["consoleErrors"] == [], report
    assert report["failedRequests"] == [], report["failedRequests"]

    # after the review, sync publishes exactly the approved (three) and the pinned (one)
    assert p.run_json("sync")["published"] == 4
    manifest = json.loads((p.root / "frontend/src/data/limner-manifest.json").read_text())
    assert sorted(manifest["entries"]) == sorted([*ids[:3], ids[4]])
    pinned_seed = next(r["seed"] for r in regen["after"] if r["id"] == regen["before"][0])
    assert str(manifest["entries"][ids[4]]["seed"]) == pinned_seed  # the earlier render, not the regenerated one
    calls = [json.loads(line) for line in (p.root / "calls.jsonl").read_text().splitlines()]
    assert [c["id"] for c in calls] == [ids[7]]  # the fake was asked once, for the refused entry

    for name in ("grid.png", "grid-reviewed.png", "entry.png"):
        shot = shots / name
        assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and shot.stat().st_size > 10_000, name
    print(f"screenshots: {shots}")
    target = os.environ.get("LIMNER_STUDIO_SCREENSHOTS")
    if target:
        _save_for_docs(shots, Path(target))


def _save_for_docs(shots: Path, target: Path) -> None:
    """The grid and the entry page as small JPEGs (< 150 KB) for docs/review.md."""
    from PIL import Image

    target.mkdir(parents=True, exist_ok=True)
    for name, out in (("grid.png", "studio-grid.jpg"), ("entry.png", "studio-entry.jpg")):
        with Image.open(shots / name) as image:
            image.convert("RGB").save(target / out, "JPEG", quality=80, optimize=True, progressive=True)
        assert (target / out).stat().st_size < 150_000
