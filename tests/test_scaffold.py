"""`limner init`'s scaffold: the files it writes, idempotence, and the managed .gitignore block."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from limner.catalog import load_catalog
from limner.config import load_settings
from limner.config import scaffold as scaffold_mod
from limner.config.scaffold import GITIGNORE_BEGIN, GITIGNORE_END, env_example, gitignore_block, scaffold
from limner.errors import ConfigError
from limner.styles import PromptRenderer, build_spec, load_styles
from projects import clean_limner_env

FILES = ["limner.toml", ".env.example", "styles/house-style.toml", "catalog.yaml", ".gitignore"]


clean_env = pytest.fixture(autouse=True)(clean_limner_env)


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


# --- a crafted --placeholder-dir can neither inject settings nor break limner.toml or .gitignore ---

INJECTION = 'x"\n[providers.replicate]\napi_token = "r8_stolen"\n#'


def test_placeholder_dir_with_a_newline_is_refused_and_nothing_is_written(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        scaffold(tmp_path / "site", placeholder_dir=INJECTION)
    assert info.value.exit_code == 2 and "--placeholder-dir" in info.value.message
    assert not (tmp_path / "site").exists()


@pytest.mark.parametrize("value", ["", "/", "a\rb", "a\tb", "a\x00b"])
def test_placeholder_dir_that_names_no_single_line_folder_is_refused(tmp_path: Path, value: str) -> None:
    with pytest.raises(ConfigError, match="--placeholder-dir"):
        scaffold(tmp_path, placeholder_dir=value)
    assert list(tmp_path.iterdir()) == []


def test_limner_toml_is_written_by_a_toml_library() -> None:
    """Even past the check, the value stays one string: quotes and line breaks are escaped, no table appears."""
    doc = tomllib.loads(scaffold_mod.limner_toml(INJECTION))
    assert doc["sync"]["placeholder_dir"] == INJECTION
    assert "providers" not in doc
    assert scaffold_mod.limner_toml("frontend/public/images/events") == scaffold_mod.LIMNER_TOML  # comments kept


@pytest.mark.parametrize("value", ["C:\\site\\img", "web\\", 'we"ird/dir', "it's/[draft]*?", "#hash", "!bang", "folder with spaces/ü"])
def test_odd_placeholder_dirs_round_trip(tmp_path: Path, value: str) -> None:
    """A backslash made limner.toml unparsable; quotes, wildcards and a leading # or ! must not change the rules."""
    scaffold(tmp_path, placeholder_dir=value)
    settings = load_settings(tmp_path / "limner.toml")
    assert settings.sync.placeholder_dir == value
    assert "providers" not in tomllib.loads((tmp_path / "limner.toml").read_text(encoding="utf-8"))
    block = (tmp_path / ".gitignore").read_text(encoding="utf-8").split(GITIGNORE_BEGIN)[1].split(GITIGNORE_END)[0]
    rules = [ln for ln in block.splitlines() if ln and not ln.startswith("#")]
    assert rules == [".limner/", ".env", "*.limner-master.*", "!" + scaffold_mod.gitignore_literal(value.rstrip("/")) + "/"]


@pytest.mark.parametrize(("value", "pattern"), [
    ("web/static/img", "web/static/img"),
    ("a*b", "a\\*b"),
    ("web/[abc]", "web/\\[abc]"),
    ("a?b", "a\\?b"),
    ("C:\\site", "C:\\\\site"),
    ("#x", "\\#x"),
    ("!x", "\\!x"),
    ("**", "\\*\\*"),
])
def test_gitignore_patterns_match_only_the_literal_folder(value: str, pattern: str) -> None:
    """Wildcards, brackets, backslashes and a leading # or ! are escaped (git reads them so: see the next test)."""
    assert scaffold_mod.gitignore_literal(value) == pattern
    assert f"!{pattern}/" in gitignore_block(value + "/").splitlines()


@pytest.mark.skipif(shutil.which("git") is None, reason="git is not installed")
def test_git_reads_the_escaped_rule_as_the_literal_folder(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    repo.mkdir()
    subprocess.run(["git", "init", "-q", str(repo)], check=True, capture_output=True)
    folders = ["a*b", "ab", "aXb", "web/[abc]", "web/a", "#x", "x"]
    for folder in folders:
        (repo / folder).mkdir(parents=True, exist_ok=True)
    for value in ("a*b", "web/[abc]", "#x"):
        (repo / ".gitignore").write_text(scaffold_mod.gitignore_literal(value) + "/\n", encoding="utf-8")
        proc = subprocess.run(["git", "-C", str(repo), "check-ignore", "--no-index", *folders], capture_output=True, text=True)
        assert proc.stdout.splitlines() == [value], (value, proc.stdout, proc.stderr)


def test_init_refuses_an_injected_placeholder_dir_with_exit_2(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LIMNER_")}
    proc = subprocess.run([sys.executable, "-m", "limner", "init", str(tmp_path / "app"), "--placeholder-dir", INJECTION],
                          capture_output=True, text=True, timeout=60, env=env)
    assert proc.returncode == 2, proc.stderr
    assert "--placeholder-dir" in proc.stderr and "Traceback" not in proc.stderr
    assert not (tmp_path / "app").exists()


@pytest.mark.parametrize(("folder", "prefix"), [
    ("frontend/public/images/events", "/images/events"),
    ("public/img/timeline", "/img/timeline"),
    ("web/static/ph", "/ph"),
    ("public", "/"),
])
def test_the_url_prefix_follows_the_placeholder_folder(tmp_path: Path, folder: str, prefix: str) -> None:
    """``limner init --placeholder-dir public/img/timeline`` kept ``placeholder_url_prefix = "/images/events"``:
    the manifest pointed at URLs the app does not serve, and `limner check` said all was well. The prefix is
    now the path after the folder the app serves at its root (``public/``, ``static/``)."""
    result = scaffold(tmp_path, placeholder_dir=folder)
    sync = tomllib.loads((tmp_path / "limner.toml").read_text())["sync"]
    assert sync["placeholder_dir"] == folder and sync["placeholder_url_prefix"] == prefix
    assert result.notes == []


def test_a_placeholder_folder_served_at_an_unknown_path_gets_a_note(tmp_path: Path) -> None:
    result = scaffold(tmp_path, placeholder_dir="assets/ph")
    assert len(result.notes) == 1 and "placeholder_url_prefix" in result.notes[0] and "assets/ph" in result.notes[0]
    again = scaffold(tmp_path, placeholder_dir="assets/ph")  # limner.toml kept: nothing new to say
    assert again.notes == []
