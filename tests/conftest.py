"""Shared fixtures: a throwaway project on the fake provider (helpers live in projects.py)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from limner.plugins import load_plugins
from projects import ProjectDir, make_entries

load_plugins(["limner.testing"])

__all__ = ["ProjectDir", "make_entries"]


@pytest.fixture
def project_dir(tmp_path: Path) -> ProjectDir:
    p = ProjectDir(tmp_path / "proj")
    p.root.mkdir()
    p.write_config()
    p.write_catalog(make_entries(6))
    return p


@pytest.fixture
def make_project_dir(tmp_path: Path) -> Callable[..., ProjectDir]:
    def factory(n: int = 6, extra: str = "", provider: str = "fake", name: str = "proj") -> ProjectDir:
        p = ProjectDir(tmp_path / name)
        p.root.mkdir()
        p.write_config(extra, provider)
        p.write_catalog(make_entries(n))
        return p

    return factory
