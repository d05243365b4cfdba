"""Limner's .gitignore block also ignores a local storage folder inside the project (`storage.url = "media-store"`,
after `limner upload --to media-store`): masters and variants stay out of git wherever the store lives."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from projects import clean_limner_env

from limner.config.scaffold import (GITIGNORE_BEGIN, GITIGNORE_END, STORE_COMMENT, gitignore_block, local_store_dir,
                                    scaffold, update_gitignore)

PLACEHOLDERS = "frontend/public/images/events"
needs_git = pytest.mark.skipif(shutil.which("git") is None, reason="git is not installed")


clean_env = pytest.fixture(autouse=True)(clean_limner_env)


def limner(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LIMNER_")}
    return subprocess.run([sys.executable, "-m", "limner", *args], cwd=cwd, capture_output=True, text=True, timeout=120,
                          env={**env, "NO_COLOR": "1", "GIT_CEILING_DIRECTORIES": str(cwd.parent)})


def rules(block: str) -> list[str]:
    return [ln for ln in block.split(GITIGNORE_BEGIN)[1].split(GITIGNORE_END)[0].splitlines() if ln and not ln.startswith("#")]


@pytest.mark.parametrize(("url", "expected"), [
    ("media-store", "media-store"),
    ("./media-store/", "media-store"),
    ("file://media-store", "media-store"),
    ("assets//media/../store", "assets/store"),
    (".limner/media", ".limner/media"),
    ("s3://bucket/prefix", None),
    ("supabase://media/limner", None),
    ("../shared-media", None),
    (".", None),
    ("", None),
])
def test_the_local_storage_folder_relative_to_the_project(tmp_path: Path, url: str, expected: str | None) -> None:
    assert local_store_dir(url, tmp_path) == expected


def test_absolute_paths_and_file_urls_inside_the_project_count(tmp_path: Path) -> None:
    assert local_store_dir(str(tmp_path / "media-store"), tmp_path) == "media-store"
    assert local_store_dir(f"file://{tmp_path / 'a' / 'media'}", tmp_path) == "a/media"
    assert local_store_dir(str(tmp_path.parent / "elsewhere"), tmp_path) is None


def test_the_block_ignores_a_local_store_outside_the_state_folder() -> None:
    assert rules(gitignore_block(PLACEHOLDERS, "media-store")) == [
        ".limner/", ".env", "*.limner-master.*", "/media-store/", f"!{PLACEHOLDERS}/"]
    assert STORE_COMMENT in gitignore_block(PLACEHOLDERS, "media-store")
    # nothing to add: inside .limner/ (ignored already), no local store, or a store that holds the placeholders
    for store in (None, ".limner/media", ".limner", "frontend", PLACEHOLDERS):
        assert gitignore_block(PLACEHOLDERS, store) == gitignore_block(PLACEHOLDERS), store
    # odd names match only that folder, like the placeholder rule
    assert "/media\\*/" in gitignore_block(PLACEHOLDERS, "media*").splitlines()


def test_scaffold_writes_the_store_rule_and_an_unclosed_block_is_replaced_whole(tmp_path: Path) -> None:
    scaffold(tmp_path, store_dir="media-store")
    gi = tmp_path / ".gitignore"
    assert "/media-store/" in rules(gi.read_text())
    gi.write_text(gi.read_text().replace(GITIGNORE_END + "\n", "") + "dist/\n")  # the end marker deleted
    assert update_gitignore(gi, gitignore_block(PLACEHOLDERS, "media-store"))
    text = gi.read_text()
    assert text.count(GITIGNORE_BEGIN) == 1 and text.count("/media-store/") == 1 and text.endswith("dist/\n")


@needs_git
def test_init_in_a_project_with_a_local_store_makes_git_ignore_it(tmp_path: Path) -> None:
    """The reviewer's case: `[storage] url = "media-store"` (a folder inside the app, for `limner media serve`):
    `git status` listed `?? media-store/`; after `limner init` git ignores it and keeps the placeholders."""
    app = tmp_path / "app"
    app.mkdir()
    subprocess.run(["git", "init", "-q", str(app)], check=True, capture_output=True)
    assert limner(app, "init").returncode == 0
    toml = app / "limner.toml"
    toml.write_text(toml.read_text().replace('url = ".limner/media"', 'url = "media-store"'))
    (app / "media-store" / "masters" / "ab").mkdir(parents=True)
    (app / "media-store" / "masters" / "ab" / ("ab" * 32 + ".png")).write_bytes(b"master")
    (app / PLACEHOLDERS).mkdir(parents=True)
    (app / PLACEHOLDERS / "first-entry.webp").write_bytes(b"placeholder")
    proc = limner(app, "init")
    assert proc.returncode == 0 and "updated  .gitignore" in proc.stdout, proc.stdout + proc.stderr
    status = subprocess.run(["git", "-C", str(app), "status", "--porcelain", "--untracked-files=all"],
                            capture_output=True, text=True, check=True).stdout
    assert "media-store" not in status and f"{PLACEHOLDERS}/first-entry.webp" in status, status
    assert limner(app, "init").stdout.count("kept     .gitignore") == 1  # and a re-run changes nothing
