"""Test helpers for the npm packages in this repository: run npm and node, and `npm ci` only when the
lock file changed since the last install (a stamp in node_modules), so the suite stays fast."""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
JS_PACKAGE = ROOT / "clients" / "js"
EXAMPLE_APP = ROOT / "examples" / "jewish-timeline" / "frontend"
STAMP = ".limner-install-stamp"


def require_chromium() -> str:
    """The Chromium to drive (``LIMNER_CHROMIUM``, else ``chromium`` on the PATH); the test skips without
    one, or fails when ``LIMNER_REQUIRE_BROWSER=1`` (as ``.ci/run`` sets)."""
    found = os.environ.get("LIMNER_CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")
    if found and Path(found).is_file():
        return found
    message = "Chromium not found (apt-get install -y chromium, or set LIMNER_CHROMIUM)"
    if os.environ.get("LIMNER_REQUIRE_BROWSER") == "1":
        pytest.fail(f"LIMNER_REQUIRE_BROWSER=1 but {message}")
    pytest.skip(message)


def node_tools() -> tuple[str, str]:
    """``(node, npm)`` paths, or a skip naming what is missing."""
    node, npm = shutil.which("node"), shutil.which("npm")
    if not node or not npm:
        pytest.skip(f"node and npm are needed for the frontend package tests ({'node' if not node else 'npm'} not found on PATH)")
    return node, npm


def npm_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LIMNER_")}
    env.update({"npm_config_update_notifier": "false", "npm_config_fund": "false", "npm_config_audit": "false",
                "NO_COLOR": "1", "FORCE_COLOR": "0"})
    env.update(extra)
    return env


def run(cmd: list[str], cwd: Path, *, timeout: float = 180, check: bool = True, env: dict[str, str] | None = None
        ) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=timeout, env=env or npm_env())
    if check and proc.returncode != 0:
        raise AssertionError(f"{' '.join(cmd)} (in {cwd}) exited {proc.returncode}\nstdout:\n{proc.stdout[-4000:]}\n"
                             f"stderr:\n{proc.stderr[-4000:]}")
    return proc


def lock_digest(folder: Path) -> str:
    h = hashlib.sha256()
    for name in ("package.json", "package-lock.json"):
        h.update((folder / name).read_bytes())
    return h.hexdigest()


def npm_ci(folder: Path, npm: str) -> bool:
    """``npm ci`` in ``folder`` unless node_modules was installed from this very lock file; True if it ran."""
    stamp = folder / "node_modules" / STAMP
    digest = lock_digest(folder)
    if stamp.is_file() and stamp.read_text().strip() == digest:
        return False
    run([npm, "ci", "--no-audit", "--no-fund"], folder, timeout=600)
    stamp.write_text(digest + "\n")
    return True


@contextlib.contextmanager
def folder_lock(folder: Path) -> Iterator[None]:
    """One test process at a time installs or builds in ``folder`` (pytest-xdist runs modules in parallel)."""
    name = "limner-npm-" + hashlib.sha256(str(folder.resolve()).encode()).hexdigest()[:16] + ".lock"
    with open(Path(tempfile.gettempdir()) / name, "w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def _dist_is_fresh() -> bool:
    built = JS_PACKAGE / "dist" / "index.js"
    if not built.is_file():
        return False
    sources = [*(JS_PACKAGE / "src").glob("*.ts"), JS_PACKAGE / "package.json", JS_PACKAGE / "tsconfig.json",
               JS_PACKAGE / "tsconfig.build.json"]
    oldest_output = min(f.stat().st_mtime for f in (JS_PACKAGE / "dist").glob("*.js"))
    return all(f.stat().st_mtime <= oldest_output for f in sources)


def prepare_js_package(npm: str) -> None:
    """clients/js installed from its lock file and built (each only when out of date), under a lock."""
    with folder_lock(JS_PACKAGE):
        ran_ci = npm_ci(JS_PACKAGE, npm)  # `npm ci` runs `prepare`, which builds
        if not ran_ci and not _dist_is_fresh():
            run([npm, "run", "build"], JS_PACKAGE)


def prepare_example_app(npm: str) -> None:
    prepare_js_package(npm)
    with folder_lock(EXAMPLE_APP):
        npm_ci(EXAMPLE_APP, npm)
