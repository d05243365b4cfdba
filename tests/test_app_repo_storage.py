"""`limner check` and a local storage folder inside the app (`[storage] url = "media-store"`, the documented way to
`limner media serve`): its files git does not ignore, tracked or not, are one problem that `limner init` fixes, and
a committed store is one line, not one per file."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest

from limner.config.scaffold import gitignore_block, update_gitignore
from projects import ProjectDir, app_copy, git, make_entries

pytestmark = pytest.mark.skipif(shutil.which("git") is None, reason="git is not installed")

PLACEHOLDERS = "frontend/public/images/events"




@pytest.fixture(scope="module")
def published(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Three entries published into the store `media-store/` inside the app, with the .gitignore block `limner init`
    wrote before it knew of local stores (it ignores .limner/ only); not a git repository yet."""
    p = ProjectDir(tmp_path_factory.mktemp("store") / "app")
    p.root.mkdir()
    p.write_config('\n[storage]\nurl = "media-store"\n')
    p.write_catalog(make_entries(3))
    p.run("generate", "--no-progress", check=True)
    p.run("sync", check=True)
    update_gitignore(p.root / ".gitignore", gitignore_block(PLACEHOLDERS))
    assert len(list((p.root / "media-store").rglob("*.png"))) == 3
    return p.root


@pytest.fixture
def app(published: Path, tmp_path: Path) -> ProjectDir:
    return ProjectDir(app_copy(published, tmp_path))


def check(app: ProjectDir) -> tuple[int, list[str], dict]:
    proc = app.run("check")
    data = app.run_json("check")
    assert proc.returncode == (0 if data["ok"] else 1), proc.stdout + proc.stderr
    assert "Traceback" not in proc.stderr
    return proc.returncode, proc.stdout.splitlines(), data


def store_files(app: ProjectDir) -> int:
    return sum(1 for p in (app.root / "media-store").rglob("*") if p.is_file())


def follow_the_advice(app: ProjectDir, lines: list[str]) -> None:
    """Run the commands the problems name: `git rm -r -q --cached FOLDER`, then `limner init`."""
    for line in lines:
        m = re.search(r"(git rm -r -q --cached \S+)", line)
        if m:
            git(app.root, *m.group(1).split()[1:])
    assert any("run `limner init`" in line for line in lines), lines
    proc = app.run("init")
    assert proc.returncode == 0, proc.stderr


def test_an_untracked_store_git_does_not_ignore_is_one_problem_that_init_fixes(app: ProjectDir) -> None:
    assert "?? media-store/" in git(app.root, "status", "--porcelain")
    code, lines, data = check(app)
    assert code == 1
    assert [(p["kind"], p["file"]) for p in data["problems"]] == [("gitignore", ".gitignore")], lines
    message = data["problems"][0]["message"]
    assert "media-store/" in message and f"{store_files(app):,} files" in message and "`limner init`" in message
    assert len(lines) == 2, lines  # the problem and the count
    follow_the_advice(app, lines)
    code, lines, data = check(app)
    assert code == 0 and data["problems"] == [], lines
    assert "media-store" not in git(app.root, "status", "--porcelain", "--untracked-files=all")
    git(app.root, "add", "-A")
    assert not [f for f in git(app.root, "ls-files").splitlines() if f.startswith("media-store/")]
    assert f"{PLACEHOLDERS}/event-000.webp" in git(app.root, "ls-files")


def test_a_committed_store_is_one_line_with_the_command_that_untracks_it(app: ProjectDir) -> None:
    """`git add -A` before the fix tracked the whole store: one line for it (and one for .gitignore), not one per file."""
    git(app.root, "add", "-A")
    tracked = [f for f in git(app.root, "ls-files").splitlines() if f.startswith("media-store/")]
    assert len(tracked) == store_files(app) > 3
    code, lines, data = check(app)
    assert code == 1 and len(lines) == 3, lines
    problems = {p["kind"]: p for p in data["problems"]}
    assert set(problems) == {"tracked-media", "gitignore"}, data["problems"]
    assert problems["tracked-media"]["file"] == "media-store/"
    assert f"{len(tracked):,} files" in problems["tracked-media"]["message"]
    assert "git rm -r -q --cached media-store" in problems["tracked-media"]["message"]
    assert "media-store/" in problems["gitignore"]["message"] and "limner init" in problems["gitignore"]["message"]
    follow_the_advice(app, lines)
    code, lines, data = check(app)
    assert code == 0 and data["problems"] == [], lines
    assert not [f for f in git(app.root, "ls-files").splitlines() if f.startswith("media-store/")]


def test_a_few_tracked_store_files_are_still_named_one_by_one(app: ProjectDir) -> None:
    master = next((app.root / "media-store" / "masters").rglob("*.png")).relative_to(app.root).as_posix()
    app.run("init", check=True)
    git(app.root, "add", "-f", master)
    _, lines, data = check(app)
    assert [(p["kind"], p["file"]) for p in data["problems"]] == [("tracked-media", master)], lines


def test_a_rule_after_the_block_that_unignores_the_store_is_named(app: ProjectDir) -> None:
    app.run("init", check=True)
    gi = app.root / ".gitignore"
    gi.write_text(gi.read_text() + "!/media-store/\n")
    code, lines, data = check(app)
    assert code == 1 and [p["kind"] for p in data["problems"]] == ["gitignore"], lines
    assert "un-ignored by a rule after Limner's block" in data["problems"][0]["message"]


def test_the_store_rule_is_judged_by_git_not_by_the_text_of_the_block(app: ProjectDir) -> None:
    """A store set in .env here and in limner.toml on the CI runner: a block with a rule for a folder that is not
    the store now, or without the rule where git ignores the store anyway, is not "out of date"."""
    app.run("init", check=True)
    env = app.env(LIMNER_STORAGE_URL="s3://bucket/limner")  # the block ignores media-store/, not the store now
    proc = app.run("check", env=env)
    assert proc.returncode == 0, proc.stdout
    update_gitignore(app.root / ".gitignore", gitignore_block(PLACEHOLDERS))  # no rule for the store...
    (app.root / ".gitignore").write_text((app.root / ".gitignore").read_text() + "media-store/\n")  # ...ignored anyway
    code, lines, _ = check(app)
    assert code == 0, lines


def test_other_tracked_media_past_twenty_are_counted(app: ProjectDir) -> None:
    app.run("init", check=True)
    backup = app.root / "backup" / "variants"
    backup.mkdir(parents=True)
    for i in range(25):  # variant names copied out of a store
        (backup / f"{i:016x}-480.webp").write_bytes(b"variant")
    git(app.root, "add", "-f", "backup")
    _, lines, data = check(app)
    assert len(data["problems"]) == 21, lines
    assert data["problems"][-1]["file"] == "backup/variants" and "and 5 more" in data["problems"][-1]["message"]
