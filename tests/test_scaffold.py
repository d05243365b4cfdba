"""`limner init`'s scaffold: the files it writes, idempotence, and the managed .gitignore block."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

from limner.catalog import load_catalog
from limner.config import load_settings
from limner.config import scaffold as scaffold_mod
from limner.config.scaffold import GITIGNORE_BEGIN, GITIGNORE_END, env_example, gitignore_block, scaffold
from limner.styles import PromptRenderer, build_spec, load_styles

FILES = ["limner.toml", ".env.example", "styles/house-style.toml", "catalog.yaml", ".gitignore"]


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in list(os.environ):
        if name.upper().startswith("LIMNER_"):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)


def snapshot(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_creates_every_file(tmp_path: Path) -> None:
    root = tmp_path / "site"
    result = scaffold(root)
    assert sorted(result.created) == sorted(FILES)
    assert result.kept == [] and result.updated == []
    assert sorted(snapshot(root)) == sorted(FILES)
    gi = (root / ".gitignore").read_text()
    assert gi.count(GITIGNORE_BEGIN) == 1 and gi.count(GITIGNORE_END) == 1
    for line in (".limner/", ".env", "!frontend/public/images/events/"):
        assert line in gi.splitlines()
    assert "house-style" in (root / "limner.toml").read_text()


def test_env_example_lists_names_only(tmp_path: Path) -> None:
    scaffold(tmp_path)
    text = (tmp_path / ".env.example").read_text()
    for line in text.splitlines():
        assert line == "" or line.startswith("#") or re.fullmatch(r"[A-Z][A-Z0-9_]*=", line), line
    assert ".env" in text  # tells the reader where the real values go


def test_env_example_with_secrets(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(scaffold_mod, "secret_names", lambda: ["OPENAI_API_KEY", "REPLICATE_API_TOKEN"])
    lines = env_example().splitlines()
    assert "OPENAI_API_KEY=" in lines and "REPLICATE_API_TOKEN=" in lines
    assert [ln for ln in lines if not ln.startswith("#")] == ["OPENAI_API_KEY=", "REPLICATE_API_TOKEN="]


def test_secret_names_come_from_providers() -> None:
    names = scaffold_mod.secret_names()
    assert names == sorted(set(names))
    assert all(re.fullmatch(r"[A-Z][A-Z0-9_]*", n) for n in names)


def test_running_twice_changes_nothing(tmp_path: Path) -> None:
    scaffold(tmp_path)
    before = snapshot(tmp_path)
    result = scaffold(tmp_path)
    assert result.created == [] and result.updated == []
    assert sorted(result.kept) == sorted(FILES)
    assert snapshot(tmp_path) == before


def test_existing_files_are_kept(tmp_path: Path) -> None:
    (tmp_path / "limner.toml").write_text('catalog = "mine.csv"\n')
    (tmp_path / "styles").mkdir()
    (tmp_path / "styles" / "house-style.toml").write_text('positive = "mine"\n')
    result = scaffold(tmp_path)
    assert "limner.toml" in result.kept and "styles/house-style.toml" in result.kept
    assert (tmp_path / "limner.toml").read_text() == 'catalog = "mine.csv"\n'
    assert (tmp_path / "styles" / "house-style.toml").read_text() == 'positive = "mine"\n'
    assert "catalog.yaml" in result.created


@pytest.mark.parametrize("user", ["node_modules/\n*.pyc\n", "node_modules/\n*.pyc"])  # with and without final newline
def test_existing_gitignore_keeps_user_content_and_gets_one_block(tmp_path: Path, user: str) -> None:
    (tmp_path / ".gitignore").write_text(user)
    result = scaffold(tmp_path)
    assert result.updated == [".gitignore"]
    text = (tmp_path / ".gitignore").read_text()
    assert text.startswith("node_modules/\n*.pyc\n")
    assert text.count(GITIGNORE_BEGIN) == 1 and text.count(GITIGNORE_END) == 1
    assert text.endswith(GITIGNORE_END + "\n")
    again = scaffold(tmp_path)
    assert ".gitignore" in again.kept
    assert (tmp_path / ".gitignore").read_text() == text


def test_modified_block_is_replaced_and_surroundings_kept(tmp_path: Path) -> None:
    scaffold(tmp_path)
    gi = tmp_path / ".gitignore"
    pristine = gi.read_text()
    edited = "top-rule\n" + pristine.replace(".limner/\n", ".limner/\nmy-own-line\n").replace(".env\n", "") + "bottom-rule\n"
    gi.write_text(edited)
    result = scaffold(tmp_path)
    assert result.updated == [".gitignore"]
    text = gi.read_text()
    assert "my-own-line" not in text
    assert text.count(GITIGNORE_BEGIN) == 1
    assert text == "top-rule\n" + pristine + "bottom-rule\n"


def test_placeholder_dir_is_used(tmp_path: Path) -> None:
    scaffold(tmp_path, placeholder_dir="web/static/img/")
    assert 'placeholder_dir = "web/static/img/"' in (tmp_path / "limner.toml").read_text()
    assert "!web/static/img/" in (tmp_path / ".gitignore").read_text().splitlines()
    assert gitignore_block("a/b/").count("!a/b/\n") == 1


def test_scaffolded_project_loads_cleanly(tmp_path: Path) -> None:
    root = tmp_path / "new"
    scaffold(root)
    settings = load_settings(root / "limner.toml")
    assert settings.project.default_style == "house-style"
    assert settings.catalog_path == root.resolve() / "catalog.yaml"
    assert settings.database_url.startswith(f"sqlite:///{root.resolve()}")
    assert settings.sync.placeholder_dir == "frontend/public/images/events"

    styles = load_styles(settings.path(settings.project.styles_dir), settings.styles)
    house = styles["house-style"]
    assert house.source == str(root.resolve() / "styles" / "house-style.toml")
    assert house.aspect == "3:2"

    catalog = load_catalog(settings.catalog_path, known_styles=styles)
    assert [e.id for e in catalog] == ["first-entry"]

    spec = build_spec(
        catalog.entries[0],
        house,
        PromptRenderer(styles),
        provider="sketch",
        model="",
        long_side=settings.generate.size,
        default_aspect=settings.generate.aspect,
    )
    assert spec.prompt.startswith("Detailed history illustration of The first entry, 1948 CE.")
    assert "{" not in spec.prompt
    assert (spec.width, spec.height) == (1024, 688)
