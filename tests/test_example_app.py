"""The example timeline app (examples/jewish-timeline/frontend, Vite + React + limner-images): it builds
from a manifest made by ``limner sync`` and, served on 127.0.0.1 with the media from ``limner media serve``'s
server, loads in headless Chromium with every image in view loaded as AVIF, no console errors and no
layout shift.

The browser test needs Debian's ``chromium`` (``/usr/bin/chromium``, or ``$LIMNER_CHROMIUM``); it skips
without it, unless ``LIMNER_REQUIRE_BROWSER=1`` (set by ``.ci/run``), which turns the skip into a failure.
"""

from __future__ import annotations

import functools
import json
import textwrap
import threading
from collections.abc import Iterator
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import yaml

from frontend_tools import EXAMPLE_APP, node_tools, npm_env, prepare_example_app, require_chromium, run
from limner.storage.serve import MediaServer
from projects import ProjectDir

pytestmark = pytest.mark.slow

DEMO_CATALOG = EXAMPLE_APP.parent / "catalog.yaml"
ENTRIES = 9


class _Quiet(SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:  # noqa: A002
        pass


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, object]]:
    """A small sketch catalogue generated and synced offline, its media served, the app built against it
    and served: ``{"url", "dist", "manifest", "media_base"}``."""
    node, npm = node_tools()
    prepare_example_app(npm)

    root = tmp_path_factory.mktemp("timeline")
    p = ProjectDir(root / "project")
    p.root.mkdir()
    catalogue = yaml.safe_load(DEMO_CATALOG.read_text(encoding="utf-8"))["entries"][:ENTRIES]
    p.write_catalog(catalogue)
    p.config.write_text(textwrap.dedent("""\
        catalog = "catalog.yaml"
        provider = "sketch"
        [generate]
        size = 768
        aspect = "3:2"
        workers = 2
        """), encoding="utf-8")
    p.run("generate", check=True, timeout=240)
    p.run("sync", check=True)
    manifest = p.root / "frontend/src/data/limner-manifest.json"

    media = MediaServer(p.root / ".limner/media", "127.0.0.1", 0)
    media.start()
    dist = root / "dist"
    build = run([npm, "run", "build"], EXAMPLE_APP, timeout=300, env=npm_env(
        LIMNER_MANIFEST=str(manifest), LIMNER_PUBLIC_DIR=str(p.root / "frontend/public"), LIMNER_OUT_DIR=str(dist),
        VITE_LIMNER_MEDIA_BASE=media.base_url))
    assert (dist / "index.html").is_file(), build.stdout
    web = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(_Quiet, directory=str(dist)))
    threading.Thread(target=web.serve_forever, daemon=True).start()
    try:
        yield {"url": f"http://127.0.0.1:{web.server_address[1]}/", "dist": dist, "manifest": manifest,
               "media_base": media.base_url, "node": node}
    finally:
        for server in (web, media):
            server.shutdown()
            server.server_close()


def test_the_app_type_checks_strictly(site):
    run(["npm", "run", "typecheck"], EXAMPLE_APP)


def test_the_app_builds_from_a_synced_manifest(site):
    dist: Path = site["dist"]  # type: ignore[assignment]
    manifest = json.loads(Path(site["manifest"]).read_text(encoding="utf-8"))  # type: ignore[arg-type]
    assert len(manifest["entries"]) == ENTRIES
    bundle = "".join(p.read_text(encoding="utf-8") for p in (dist / "assets").glob("*.js"))
    assert site["media_base"] in bundle  # VITE_LIMNER_MEDIA_BASE baked in
    first = next(iter(manifest["entries"].values()))
    assert first["image_key"] in bundle  # the manifest is bundled
    for entry_id in manifest["entries"]:  # the placeholders are copied with the site
        assert (dist / "images/events" / f"{entry_id}.webp").is_file()


def test_the_timeline_loads_in_headless_chromium(site, tmp_path):
    browser = require_chromium()
    screenshot = tmp_path / "timeline.png"
    proc = run([str(site["node"]), "scripts/browser-check.mjs", "--url", str(site["url"]), "--screenshot", str(screenshot),
                "--chromium", browser], EXAMPLE_APP, timeout=120)
    report = json.loads(proc.stdout)
    images = report["images"]
    assert report["events"] == ENTRIES and report["title"] == "A timeline of Jewish history"
    assert len(images) >= 3, report  # a row of three at least fits in the 1280×900 viewport
    for img in images:
        assert img["naturalWidth"] > 0, img
        assert img["currentSrc"].startswith(str(site["media_base"])), img
        assert img["currentSrc"].endswith(".avif"), img  # the browser chose the AVIF source
        assert img["width"] and img["height"], img
    assert [img["loading"] for img in images[:3]] == ["eager"] * 3  # the first row is `priority`
    assert report["consoleErrors"] == [] and report["pageErrors"] == [], report
    assert report["failedRequests"] == [], report
    assert report["cls"] == 0, report["shifts"]
    assert screenshot.is_file() and screenshot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and screenshot.stat().st_size > 10_000
    print(f"screenshot: {screenshot}")
