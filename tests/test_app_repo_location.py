"""`limner check` (and `check-missing`) where there is no project: a usage error (exit 2) that says where the project
is, not a `.gitignore: missing` problem whose advice would scaffold a project inside the app's `frontend/`."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest


def limner(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LIMNER_")}
    env.update(NO_COLOR="1", COLUMNS="200", GIT_CEILING_DIRECTORIES=str(cwd.parent))
    return subprocess.run([sys.executable, "-m", "limner", *args], cwd=cwd, capture_output=True, text=True,
                          timeout=120, env=env)


def snapshot(root: Path) -> list[str]:
    return sorted(p.relative_to(root).as_posix() for p in root.rglob("*"))


@pytest.fixture
def app(tmp_path: Path) -> Path:
    root = tmp_path / "app"
    root.mkdir()
    assert limner(root, "init").returncode == 0
    (root / "frontend").mkdir(exist_ok=True)
    return root


@pytest.mark.parametrize("command", ["check", "check-missing"])
def test_in_a_subfolder_of_the_app_the_error_names_the_project(app: Path, command: str) -> None:
    before = snapshot(app)
    for args in ([command], [command, "--json"]):
        proc = limner(app / "frontend", *args)
        assert proc.returncode == 2, proc.stdout + proc.stderr
        assert proc.stdout == "" and "Traceback" not in proc.stderr
        assert "no limner.toml" in proc.stderr and str(app / "frontend") in proc.stderr, proc.stderr
        assert f"--config ../limner.toml {command}" in proc.stderr and "cd .." in proc.stderr, proc.stderr
        assert "limner init" not in proc.stderr  # the old advice scaffolded a project in frontend/
    assert snapshot(app) == before


def test_in_an_empty_folder_the_hint_gives_config_and_init(tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    proc = limner(empty, "check")
    assert proc.returncode == 2 and "no limner.toml" in proc.stderr, proc.stdout + proc.stderr
    assert "--config" in proc.stderr and "limner init" in proc.stderr and "Traceback" not in proc.stderr
    assert list(empty.iterdir()) == []


def test_the_project_is_still_found_as_every_command_finds_it(app: Path) -> None:
    """In the app's folder, with --config from elsewhere, and in a project on built-in defaults (a catalogue, no
    limner.toml): check runs. It does not look upward: the config is ./limner.toml or --config, as for every command."""
    assert limner(app, "check").returncode == 0
    proc = limner(app / "frontend", "--config", "../limner.toml", "check")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    (app / "limner.toml").unlink()
    proc = limner(app, "check")
    assert proc.returncode in (0, 1) and "no limner.toml" not in proc.stderr, proc.stdout + proc.stderr
