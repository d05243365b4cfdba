"""Reviewed defects: tracebacks for a bad database URL or init folder, `check`'s .gitignore advice that did
not work, --placeholder-dir outside the project, `review list --entry` with an unknown id, read-only
commands that created the state database, and docs/cli.md's status and init sections."""

from __future__ import annotations

import errno
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from limner.config import load_settings
from limner.config.scaffold import GITIGNORE_BEGIN, GITIGNORE_END, gitignore_block, scaffold, update_gitignore
from limner.db.engine import open_database
from limner.db.tables import EntryState
from limner.errors import ConfigError, LimnerError
from limner.project import Project
from projects import ProjectDir

DOCS = Path(__file__).resolve().parent.parent / "docs"


def limner(*args: str, cwd: Path, **env: str) -> subprocess.CompletedProcess[str]:
    """The CLI in a subprocess, in ``cwd``, with no LIMNER_ variable but ``env``."""
    environ = {k: v for k, v in os.environ.items() if not k.startswith("LIMNER_")}
    environ.update({"NO_COLOR": "1", "COLUMNS": "200", "LIMNER_PLUGINS": "limner.testing", **env})
    return subprocess.run([sys.executable, "-m", "limner", *args], cwd=cwd, capture_output=True, text=True,
                          timeout=120, env=environ)


def no_traceback(proc: subprocess.CompletedProcess[str]) -> None:
    assert "Traceback" not in proc.stderr and "Traceback" not in proc.stdout, proc.stderr


def tree(root: Path) -> dict[str, bytes | None]:
    return {str(p.relative_to(root)): (p.read_bytes() if p.is_file() else None) for p in sorted(root.rglob("*"))}


# ------------------------------------------------------------------ 1. a bad database URL or init folder


@pytest.mark.parametrize(("url", "named"), [
    ("foo://bar", "foo"),
    ("postgres://limner:hunter2@db.example.org/limner", "postgres"),
    ("not a url at all", "not a url at all"),
    ("postgresql+psycopg://limner:hunter2@db.example.org:notaport/limner", "not a database URL"),
])
@pytest.mark.parametrize("command", [("plan",), ("generate",)])
def test_a_bad_database_url_is_a_config_error_without_traceback_or_password(
        project_dir: ProjectDir, url: str, named: str, command: tuple[str, ...]) -> None:
    before = tree(project_dir.root)
    proc = project_dir.run(*command, env=project_dir.env(LIMNER_DATABASE_URL=url))
    assert proc.returncode == 2, proc.stderr
    no_traceback(proc)
    assert "database.url" in proc.stderr and "LIMNER_DATABASE_URL" in proc.stderr and named in proc.stderr
    assert "hunter2" not in proc.stderr + proc.stdout
    assert tree(project_dir.root) == before


@pytest.mark.parametrize("command", [("plan",), ("status",), ("generate",)])
def test_a_sqlite_database_under_a_file_is_a_config_error(project_dir: ProjectDir, command: tuple[str, ...]) -> None:
    before = tree(project_dir.root)
    proc = project_dir.run(*command, env=project_dir.env(LIMNER_DATABASE_URL="sqlite:///catalog.yaml/x.db"))
    assert proc.returncode == 2, proc.stderr
    no_traceback(proc)
    assert "database.url" in proc.stderr and "catalog.yaml" in proc.stderr and "not a folder" in proc.stderr
    assert tree(project_dir.root) == before


def test_a_database_that_cannot_be_reached_is_named_without_its_password(project_dir: ProjectDir) -> None:
    proc = project_dir.run("generate", env=project_dir.env(
        LIMNER_DATABASE_URL="postgresql+psycopg://limner:hunter2@127.0.0.1:1/limner?connect_timeout=2"))
    assert proc.returncode == 1, proc.stderr
    no_traceback(proc)
    assert "cannot open database" in proc.stderr and "hunter2" not in proc.stderr


@pytest.mark.parametrize(("url", "masked"), [
    ("postgresql+psycopg://u:hunter2@h/db", "postgresql+psycopg://u:***@h/db"),
    ("postgresql://u:hun@ter2@h/db", "postgresql://u:***@h/db"),
    ("u:hunter2@h/db", "u:***@h/db"),
    ("postgresql://h/db?sslpassword=hunter2&user=y", "postgresql://h/db?sslpassword=***&user=y"),
    ("sqlite:////tmp/a:b/c.db", "sqlite:////tmp/a:b/c.db"),
    # a password with the characters that end a URL's parts elsewhere (found by review)
    ("postgresql+psycopg://postgres:se/cret@127.0.0.1:5432/nodb", "postgresql+psycopg://postgres:***@127.0.0.1:5432/nodb"),
    ("postgresql://u:s#cr?et@h/db", "postgresql://u:***@h/db"),
    ("u:se/c#ret@h/db", "u:***@h/db"),
])
def test_mask_url_hides_passwords(url: str, masked: str) -> None:
    from limner.db.engine import mask_url

    assert mask_url(url) == masked


def test_init_into_an_existing_file_is_refused(tmp_path: Path) -> None:
    (tmp_path / "afile").write_text("mine\n")
    for target in ("afile", "afile/sub"):
        proc = limner("init", target, cwd=tmp_path)
        assert proc.returncode == 2, proc.stderr
        no_traceback(proc)
        assert "afile" in proc.stderr and "not a folder" in proc.stderr
    assert tree(tmp_path) == {"afile": b"mine\n"}


def test_init_where_a_file_of_the_scaffold_is_a_folder_is_refused_before_writing(tmp_path: Path) -> None:
    (tmp_path / ".gitignore").mkdir()
    proc = limner("init", ".", cwd=tmp_path)
    assert proc.returncode == 2, proc.stderr
    no_traceback(proc)
    assert ".gitignore" in proc.stderr
    assert tree(tmp_path) == {".gitignore": None}


def test_init_on_a_read_only_file_system_is_a_config_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def read_only(self: Path, *args: object, **kwargs: object) -> None:
        raise OSError(errno.EROFS, "Read-only file system", str(self))

    monkeypatch.setattr(Path, "mkdir", read_only)
    with pytest.raises(ConfigError) as info:
        scaffold(tmp_path / "ro" / "x")
    assert info.value.exit_code == 2
    assert str(tmp_path / "ro" / "x") in info.value.message and "Read-only file system" in info.value.message


def test_init_that_fails_part_way_names_what_was_written(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    real = Path.write_text

    def full_disk(self: Path, *args: object, **kwargs: object) -> int:
        if self.name == "catalog.yaml":
            raise OSError(errno.ENOSPC, "No space left on device", str(self))
        return real(self, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(Path, "write_text", full_disk)
    with pytest.raises(LimnerError) as info:
        scaffold(tmp_path)
    assert "catalog.yaml" in info.value.message and "No space left" in info.value.message
    assert "limner.toml" in info.value.message  # already written, and said so


# ------------------------------------------------------------- 2. check's .gitignore advice works


def _advice(proc: subprocess.CompletedProcess[str]) -> list[str]:
    line = next(ln for ln in proc.stdout.splitlines() if ln.startswith(".gitignore:"))
    return re.search(r"run `(limner init[^`]*)`", line).group(1).split()[2:]  # type: ignore[union-attr]


@pytest.mark.skipif(shutil.which("git") is None, reason="git is not installed")
@pytest.mark.parametrize("elsewhere", [False, True])
def test_check_gitignore_advice_round_trip(tmp_path: Path, elsewhere: bool) -> None:
    app = tmp_path / "site"
    app.mkdir()
    subprocess.run(["git", "init", "-q", str(app)], check=True, capture_output=True)
    assert limner("init", cwd=app).returncode == 0
    assert limner("check", cwd=app).returncode == 0
    toml = app / "limner.toml"
    toml.write_text(toml.read_text().replace('placeholder_dir = "frontend/public/images/events"',
                                             'placeholder_dir = "web/static/img"'))
    cwd, config = (tmp_path, ["--config", "site/limner.toml"]) if elsewhere else (app, [])
    proc = limner(*config, "check", cwd=cwd)
    assert proc.returncode == 1 and "out of date" in proc.stdout, proc.stdout
    advice = _advice(proc)
    assert advice == (["site"] if elsewhere else [])
    fixed = limner("init", *advice, cwd=cwd)
    assert fixed.returncode == 0, fixed.stderr
    assert "updated  .gitignore" in fixed.stdout
    assert toml.read_text().count("web/static/img") == 1  # limner.toml kept as it is
    assert "!web/static/img/" in (app / ".gitignore").read_text()
    proc = limner(*config, "check", cwd=cwd)
    assert proc.returncode == 0, proc.stdout
    # a --placeholder-dir that disagrees with the kept limner.toml is refused, changing nothing
    before = tree(app)
    proc = limner("init", "--placeholder-dir", "elsewhere/img", cwd=app)
    assert proc.returncode == 2 and "sync.placeholder_dir" in proc.stderr, proc.stderr
    assert tree(app) == before
    assert limner("init", "--placeholder-dir", "web/static/img/", cwd=app).returncode == 0


@pytest.mark.skipif(shutil.which("git") is None, reason="git is not installed")
def test_check_advice_for_a_missing_or_unclosed_block_works_in_one_run(tmp_path: Path) -> None:
    subprocess.run(["git", "init", "-q", str(tmp_path)], check=True, capture_output=True)
    assert limner("init", "--placeholder-dir", "pics", cwd=tmp_path).returncode == 0
    gi = tmp_path / ".gitignore"
    gi.write_text("node_modules/\n" + gi.read_text().replace(GITIGNORE_END + "\n", "") + "dist/\n")
    proc = limner("check", cwd=tmp_path)
    assert proc.returncode == 1
    assert limner("init", *_advice(proc), cwd=tmp_path).returncode == 0
    assert limner("check", cwd=tmp_path).returncode == 0
    text = gi.read_text()
    assert text.count(GITIGNORE_BEGIN) == 1 and text.startswith("node_modules/\n") and text.endswith("dist/\n")


def test_update_gitignore_with_an_end_marker_before_the_block(tmp_path: Path) -> None:
    gi = tmp_path / ".gitignore"
    gi.write_text(GITIGNORE_END + "\n" + GITIGNORE_BEGIN + "\n.limner/\n")
    assert update_gitignore(gi, gitignore_block("pics"))
    text = gi.read_text()
    assert text.count(GITIGNORE_BEGIN) == 1 and text.endswith(gitignore_block("pics"))


# ------------------------------------------------------------- 3. --placeholder-dir inside the project


@pytest.mark.parametrize("value", ["/etc/foo", "../../outside", "..", "a/../../b", "~/pics", "."])
def test_init_refuses_a_placeholder_dir_outside_the_project(tmp_path: Path, value: str) -> None:
    proc = limner("init", "app", "--placeholder-dir", value, cwd=tmp_path)
    assert proc.returncode == 2, proc.stderr
    no_traceback(proc)
    assert "--placeholder-dir" in proc.stderr and "inside the project" in proc.stderr
    assert list(tmp_path.iterdir()) == []


@pytest.mark.skipif(shutil.which("git") is None, reason="git is not installed")
def test_a_configured_placeholder_dir_outside_the_project_is_left_out_of_the_block(tmp_path: Path) -> None:
    app = tmp_path / "site"
    app.mkdir()
    subprocess.run(["git", "init", "-q", str(tmp_path)], check=True, capture_output=True)
    (app / "limner.toml").write_text('[sync]\nplaceholder_dir = "../web/img"\n')
    proc = limner("init", cwd=app)
    assert proc.returncode == 0, proc.stderr
    rules = (app / ".gitignore").read_text().split(GITIGNORE_BEGIN)[1].split(GITIGNORE_END)[0]
    assert not [ln for ln in rules.splitlines() if ln.startswith("!")]
    assert limner("check", cwd=app).returncode == 0


def test_the_gitignore_rule_is_the_normalised_folder() -> None:
    assert "!web/img/" in gitignore_block("./web//img/").splitlines()


# ------------------------------------------------------------------ 4. review list --entry


def test_review_list_of_an_unknown_entry_exits_2_with_the_closest_ids(project_dir: ProjectDir) -> None:
    proc = project_dir.run("review", "list", "--entry", "event-00")
    assert proc.returncode == 2, proc.stdout + proc.stderr
    no_traceback(proc)
    assert "'event-00'" in proc.stderr and "did you mean 'event-00" in proc.stderr
    proc = project_dir.run("review", "list", "--entry", "nope")
    assert proc.returncode == 2 and "'nope'" in proc.stderr
    proc = project_dir.run("review", "list", "--entry", "event-001")
    assert proc.returncode == 0 and "0 render(s) of event-001." in proc.stdout


def test_review_list_still_lists_an_entry_removed_from_the_catalogue(project_dir: ProjectDir) -> None:
    project_dir.run("generate", "--id", "event-001", check=True)
    project_dir.write_catalog([e for e in project_dir.entries() if e["id"] != "event-001"])
    proc = project_dir.run("review", "list", "--entry", "event-001")
    assert proc.returncode == 0, proc.stderr
    assert "1 render(s) of event-001." in proc.stdout


# --------------------------------------------------- 5. read-only commands create no state database


READ_ONLY = [("status",), ("plan",), ("generate", "--dry-run"), ("generate", "--dry-run", "--json"), ("costs",),
             ("check-missing",), ("review", "list"), ("review", "list", "--entry", "event-001"), ("gc",),
             ("adopt-placeholders", "--dry-run", ".")]


@pytest.mark.parametrize("command", READ_ONLY, ids=" ".join)
def test_read_only_commands_do_not_create_the_state_database(project_dir: ProjectDir, command: tuple[str, ...]) -> None:
    before = tree(project_dir.root)
    proc = project_dir.run(*command)
    assert proc.returncode in (0, 1), proc.stderr  # check-missing exits 1: every entry is missing
    no_traceback(proc)
    assert not (project_dir.root / ".limner").exists()
    assert tree(project_dir.root) == before


def test_status_reads_an_empty_state_and_generate_still_creates_the_database(project_dir: ProjectDir) -> None:
    data = project_dir.run_json("status")
    assert data["entries"] == 6 and data["by_state"]["missing"] == 6 and data["spend_usd"] == 0
    assert not (project_dir.root / ".limner").exists()
    project_dir.run("generate", "--limit", "2", check=True)
    assert (project_dir.root / ".limner" / "limner.db").is_file()
    data = project_dir.run_json("status")
    assert data["by_state"]["published"] == 2 and data["by_state"]["missing"] == 4


def test_status_without_a_catalogue_changes_nothing(tmp_path: Path) -> None:
    proc = limner("status", cwd=tmp_path)
    assert proc.returncode == 2 and "not a Limner project's folder" in proc.stderr, proc.stderr
    assert "limner init" in proc.stderr
    no_traceback(proc)
    assert list(tmp_path.iterdir()) == []


def test_a_read_only_project_reads_an_empty_database_in_memory(project_dir: ProjectDir) -> None:
    settings = load_settings(project_dir.config)
    project = Project(settings, read_only=True)
    try:
        assert project.repo.entry_statuses() == {}
        assert project.repo.spend() == 0
    finally:
        project.close()
    assert not (project_dir.root / ".limner").exists()
    # a database that exists is read, not replaced
    writer = Project(settings)
    writer.db.close()
    assert (project_dir.root / ".limner" / "limner.db").is_file()
    with pytest.raises(ConfigError, match="not a folder"):
        open_database(f"sqlite:///{project_dir.catalog}/x.db", create=False)


# -------------------------------------------------------------------------------------- 6. docs


def _section(text: str, heading: str) -> str:
    start = text.index(heading + "\n")
    nxt = re.search(r"^#{1,%d} " % heading.count("#", 0, heading.index(" ")), text[start + len(heading):], re.M)
    return text[start:start + len(heading) + (nxt.start() if nxt else len(text))]


def test_status_docs_name_every_state() -> None:
    text = (DOCS / "cli.md").read_text(encoding="utf-8")
    words = {2: "two", 3: "three", 4: "four", 5: "five", 6: "six", 7: "seven", 8: "eight", 9: "nine", 10: "ten"}
    states = [s.value for s in EntryState]
    json_section = _section(text, "### status --json")
    assert f"`by_state` always has all {words[len(states)]} states" in json_section
    for state in states:
        assert f'"{state}":' in json_section, state
        assert f"`{state}`" in _section(text, "## limner status"), state


def test_init_options_are_one_table() -> None:
    section = _section((DOCS / "cli.md").read_text(encoding="utf-8"), "## limner init")
    lines = section.splitlines()
    start = lines.index("| Option / argument | What it does |")
    end = next((i for i in range(start, len(lines)) if not lines[i].startswith("|")), len(lines))
    table = "\n".join(lines[start:end])
    for flag in ("DIRECTORY", "--placeholder-dir", "--ci ", "--ci-commit", "--ci-budget", "--ci-install", "--force"):
        assert f"| `{flag}" in table, flag


@pytest.mark.parametrize("command", [["costs"], ["review", "list"], ["gc"], ["sync"], ["plan"]])
def test_a_project_command_run_in_a_subfolder_of_the_app_names_the_project(tmp_path: Path, command: list[str]) -> None:
    """From the app's ``frontend/`` folder, ``costs`` said $0 (the project had spent $0.16), ``review list`` and
    ``gc`` found nothing, all with exit 0, and ``plan``/``sync`` said "catalogue file not found" with no word of
    the project one folder up. Every project command now refuses (exit 2) and names it, as ``check`` did."""
    assert limner("init", cwd=tmp_path).returncode == 0
    sub = tmp_path / "frontend"
    sub.mkdir(exist_ok=True)
    before = tree(tmp_path)
    proc = limner(*command, cwd=sub)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "not a Limner project's folder" in proc.stderr and f"the project is in {tmp_path}" in proc.stderr
    assert f"limner --config ../limner.toml {' '.join(command)}" in proc.stderr
    no_traceback(proc)
    assert tree(tmp_path) == before


@pytest.mark.parametrize("args", [["--provider", "nope"], ["--id", "nonexistent"]])
def test_generate_that_refuses_in_a_new_project_creates_no_state(tmp_path: Path, args: list[str]) -> None:
    """`generate` opened the state database for writing before it planned: a plan that refused (exit 2) left a
    new project with `.limner/limner.db`, its lock and a media folder. It now plans first, read-only."""
    assert limner("init", cwd=tmp_path).returncode == 0
    before = tree(tmp_path)
    proc = limner("generate", *args, cwd=tmp_path)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    no_traceback(proc)
    assert tree(tmp_path) == before and not (tmp_path / ".limner").exists()
    ok = limner("generate", "--no-progress", cwd=tmp_path)  # and a plan that goes ahead still creates it
    assert ok.returncode == 0, ok.stderr
    assert (tmp_path / ".limner" / "limner.db").is_file()


def test_commands_about_no_project_or_a_shared_database_run_anywhere(tmp_path: Path) -> None:
    """The guard against a project command run outside the project refused `providers` and `doctor` (about no
    project's state) and `costs`/`workers`/`queue` given the shared state database by LIMNER_DATABASE_URL."""
    for command in (["providers"], ["doctor"]):
        proc = limner(*command, cwd=tmp_path)
        assert proc.returncode == 0, (command, proc.stdout, proc.stderr)
    db = tmp_path / "elsewhere" / "state.db"
    proc = limner("costs", cwd=tmp_path, LIMNER_DATABASE_URL=f"sqlite:///{db}")
    assert proc.returncode == 0 and "Total: $0.0000" in proc.stdout, proc.stderr
    assert limner("costs", cwd=tmp_path).returncode == 2  # the project folder's own state: refused
