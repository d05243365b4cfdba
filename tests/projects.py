"""Test helpers: a throwaway project on the fake provider, and the CLI run in a subprocess.

A module of its own (not conftest.py) so test modules can import it by a name no other
conftest shadows: ``from projects import ProjectDir, make_entries``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import yaml

from limner.config import load_settings
from limner.project import Project


def make_entries(n: int, *, prefix: str = "event") -> list[dict[str, Any]]:
    eras = ["patriarchs", "medieval", "modern"]
    return [
        {"id": f"{prefix}-{i:03d}", "title": f"Event {i}", "year": -1000 + i * 10, "era": eras[i % 3],
         "description": f"Something that happened, number {i}."}
        for i in range(n)
    ]


class ProjectDir:
    """A project folder with limner.toml and catalog.yaml; ``run`` invokes the CLI in a subprocess."""

    def __init__(self, root: Path) -> None:
        self.root = root

    @property
    def config(self) -> Path:
        return self.root / "limner.toml"

    @property
    def catalog(self) -> Path:
        return self.root / "catalog.yaml"

    def write_catalog(self, entries: list[dict[str, Any]]) -> None:
        self.catalog.write_text(yaml.safe_dump({"entries": entries}, allow_unicode=True, sort_keys=False), encoding="utf-8")

    def entries(self) -> list[dict[str, Any]]:
        return yaml.safe_load(self.catalog.read_text(encoding="utf-8"))["entries"]

    def write_config(self, extra: str = "", provider: str = "fake") -> None:
        self.config.write_text(textwrap.dedent(f"""\
            catalog = "catalog.yaml"
            provider = "{provider}"
            [generate]
            concurrency = 4
            workers = 2
            backoff_initial_s = 0.01
            backoff_max_s = 0.05
            [providers.fake]
            size = 96
            calls_file = "{self.root / "calls.jsonl"}"
            """) + textwrap.dedent(extra), encoding="utf-8")

    def project(self, **overrides: Any) -> Project:
        return Project(load_settings(self.config, overrides=overrides))

    def calls(self) -> list[dict[str, Any]]:
        path = self.root / "calls.jsonl"
        if not path.exists():
            return []
        return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]

    def env(self, **extra: str) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("LIMNER_")}
        env["LIMNER_PLUGINS"] = "limner.testing"
        env["NO_COLOR"] = "1"
        env["COLUMNS"] = "200"
        env.update(extra)
        return env

    def env_without_the_test_plugin(self) -> dict[str, str]:
        """:meth:`env` without ``LIMNER_PLUGINS=limner.testing`` (the built-in providers only), and limner.toml without
        its ``[providers.fake]`` section, which names no known provider then (a configuration error)."""
        lines, kept, skipping = self.config.read_text(encoding="utf-8").splitlines(keepends=True), [], False
        for line in lines:
            if line.lstrip().startswith("["):
                skipping = line.strip() == "[providers.fake]"
            if not skipping:
                kept.append(line)
        self.config.write_text("".join(kept), encoding="utf-8")
        return {k: v for k, v in self.env().items() if k != "LIMNER_PLUGINS"}

    def run(self, *args: str, check: bool = False, timeout: float = 120, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
        proc = subprocess.run(
            [sys.executable, "-m", "limner", "--config", str(self.config), *args],
            cwd=self.root, capture_output=True, text=True, timeout=timeout, env=env or self.env(),
        )
        if check and proc.returncode != 0:
            raise AssertionError(f"limner {' '.join(args)} exited {proc.returncode}\nstdout:\n{proc.stdout}\nstderr:\n{proc.stderr}")
        return proc

    def run_json(self, *args: str, **kw: Any) -> Any:
        proc = self.run(*args, "--json", **kw)
        try:
            return json.loads(proc.stdout)
        except ValueError:
            raise AssertionError(f"stdout is not JSON (exit {proc.returncode}):\n{proc.stdout}\nstderr:\n{proc.stderr}") from None


class FailingWrites:
    """Wraps a project's storage: writes of keys under ``prefix`` raise ``error``; everything else passes."""

    def __init__(self, real: Any, prefix: str, error: Exception) -> None:
        self._real, self._prefix, self._error = real, prefix, error

    def __getattr__(self, name: str) -> Any:
        return getattr(self._real, name)

    def put_if_absent(self, key: str, data: bytes, *, content_type: str) -> bool:
        if key.startswith(self._prefix):
            raise self._error
        return self._real.put_if_absent(key, data, content_type=content_type)


def clean_limner_env(monkeypatch: Any, tmp_path: Path) -> None:
    """No LIMNER_* variable from the developer's shell, and no limner.toml from the current folder. Modules
    that read settings use it as their autouse fixture: ``clean_env = pytest.fixture(autouse=True)(clean_limner_env)``."""
    for name in list(os.environ):
        if name.upper().startswith("LIMNER_"):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)


def git(root: Path, *args: str) -> str:
    """``git -C root ARGS`` with a fixed identity and no system or user configuration; its stdout."""
    env = {**os.environ, "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@example.org", "GIT_COMMITTER_NAME": "t",
           "GIT_COMMITTER_EMAIL": "t@example.org", "GIT_CONFIG_NOSYSTEM": "1", "HOME": str(root.parent)}
    proc = subprocess.run(["git", "-C", str(root), *args], capture_output=True, text=True, env=env, timeout=60)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def app_copy(published: Path, tmp_path: Path) -> Path:
    """A fresh copy of a published project (the app that uses Limner), in a new git repository, nothing committed."""
    import shutil

    root = tmp_path / "app"
    shutil.copytree(published, root, symlinks=True)
    git(root, "init", "-q")
    return root
