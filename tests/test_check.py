"""`limner check`: the app repo's hygiene, on a real project published by `limner sync` in a real git repo."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from limner.config.scaffold import GITIGNORE_BEGIN, GITIGNORE_END, update_gitignore, gitignore_block
from projects import ProjectDir, app_copy, git

PLACEHOLDERS = Path("frontend/public/images/events")
MANIFEST = Path("frontend/src/data/limner-manifest.json")




@pytest.fixture(scope="module")
def published(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A project with three published entries, synced, with Limner's .gitignore block; not a git repo yet."""
    p = ProjectDir(tmp_path_factory.mktemp("check") / "app")
    p.root.mkdir()
    p.write_config()
    from projects import make_entries

    p.write_catalog(make_entries(3))
    p.run("generate", "--no-progress", check=True)
    p.run("sync", check=True)
    update_gitignore(p.root / ".gitignore", gitignore_block(str(PLACEHOLDERS)))
    return p.root


@pytest.fixture
def app(published: Path, tmp_path: Path) -> ProjectDir:
    """A fresh copy of the published project, committed to a new git repository."""
    root = app_copy(published, tmp_path)
    git(root, "add", "-A")
    git(root, "commit", "-q", "-m", "app")
    return ProjectDir(root)


def check(app: ProjectDir) -> tuple[int, str, dict]:
    text = app.run("check")
    data = app.run_json("check")
    assert text.returncode == (0 if data["ok"] else 1), (text.stdout, text.stderr)
    return text.returncode, text.stdout, data


def test_a_clean_app_passes(app: ProjectDir) -> None:
    code, out, data = check(app)
    assert code == 0 and "ok" in out, out
    assert data["git"] is True and data["problems"] == []
    # nothing of the store was committed: the .gitignore block kept .limner/ out
    assert not [f for f in git(app.root, "ls-files").splitlines() if f.startswith(".limner/")]


def test_a_master_tracked_by_git_fails_until_it_is_removed(app: ProjectDir) -> None:
    master = next((app.root / ".limner" / "media" / "masters").rglob("*.png"))
    rel = master.relative_to(app.root).as_posix()
    git(app.root, "add", "-f", rel)
    code, out, data = check(app)
    assert code == 1
    assert rel in out and "master tracked by git" in out
    assert [(p["kind"], p["file"]) for p in data["problems"]] == [("tracked-media", rel)]
    git(app.root, "rm", "-q", "--cached", rel)
    code, out, data = check(app)
    assert code == 0 and data["problems"] == [], out


def test_variants_copied_anywhere_in_the_app_are_found(app: ProjectDir) -> None:
    variant = next((app.root / ".limner" / "media" / "variants").rglob("*.avif"))
    copy = app.root / "backup" / "variants" / variant.name
    copy.parent.mkdir(parents=True)
    copy.write_bytes(variant.read_bytes())
    (app.root / "notes.limner-master.png").write_bytes(b"x")
    git(app.root, "add", "-f", "backup", "notes.limner-master.png")
    _, out, data = check(app)
    files = {p["file"]: p["kind"] for p in data["problems"]}
    assert files == {f"backup/variants/{variant.name}": "tracked-media", "notes.limner-master.png": "tracked-media"}, out


def test_the_state_folder_and_env_tracked_by_git_fail(app: ProjectDir) -> None:
    (app.root / ".env").write_text("REPLICATE_API_TOKEN=r8_x\n")
    git(app.root, "add", "-f", ".env", ".limner/limner.db")
    _, out, data = check(app)
    kinds = {p["file"]: p["kind"] for p in data["problems"]}
    assert kinds == {".env": "tracked-secret", ".limner/limner.db": "tracked-state"}, out


def test_an_oversized_placeholder_fails(app: ProjectDir) -> None:
    big = app.root / PLACEHOLDERS / "event-001.webp"
    big.write_bytes(os.urandom(150_000))
    code, out, data = check(app)
    assert code == 1
    rel = (PLACEHOLDERS / "event-001.webp").as_posix()
    assert rel in out and "150,000 bytes" in out and "100,000" in out
    assert [(p["kind"], p["file"]) for p in data["problems"]] == [("placeholder-size", rel)]


def test_a_manifest_naming_a_missing_placeholder_fails(app: ProjectDir) -> None:
    manifest = json.loads((app.root / MANIFEST).read_text())
    entry = manifest["entries"]["event-002"]
    on_disk = app.root / PLACEHOLDERS / Path(entry["placeholder"]).name
    on_disk.unlink()
    code, out, data = check(app)
    assert code == 1
    assert MANIFEST.as_posix() in out and entry["placeholder"] in out and "event-002" in out
    assert [(p["kind"], p["file"]) for p in data["problems"]] == [("manifest-placeholder", MANIFEST.as_posix())]


def test_placeholders_the_app_s_own_gitignore_ignores_fail(app: ProjectDir) -> None:
    """An app's own rule (``frontend/public/images/``) ignores the placeholders' parent folder, which Limner's
    ``!frontend/public/images/events/`` cannot re-include: `git add -A` (and the CI job's pull request) left them
    out, and the check said the repository was clean."""
    gi = app.root / ".gitignore"
    gi.write_text("frontend/public/images/\n" + gi.read_text())
    git(app.root, "rm", "-r", "-q", "--cached", PLACEHOLDERS.as_posix())
    git(app.root, "add", "-A")
    assert not git(app.root, "ls-files", PLACEHOLDERS.as_posix())  # what `git add -A` made of them
    code, out, data = check(app)
    assert code == 1 and "3 files the manifest names are ignored by git" in out and "git check-ignore -v" in out, out
    assert [(p["kind"], p["file"]) for p in data["problems"]] == [("ignored-placeholder", PLACEHOLDERS.as_posix())]
    gi.write_text(gi.read_text().replace("frontend/public/images/\n", "", 1))
    git(app.root, "add", "-A")
    code, out, data = check(app)
    assert code == 0 and data["problems"] == [], out


def test_a_manifest_that_does_not_match_its_schema_fails(app: ProjectDir) -> None:
    path = app.root / MANIFEST
    manifest = json.loads(path.read_text())
    manifest["entries"]["event-000"]["width"] = "wide"
    path.write_text(json.dumps(manifest))
    code, out, data = check(app)
    assert code == 1
    problems = [p for p in data["problems"] if p["kind"] == "manifest"]
    assert len(problems) == 1 and "entries/event-000/width" in problems[0]["message"], data
    path.write_text("{not json")
    _, out, data = check(app)
    assert [p["kind"] for p in data["problems"]] == ["manifest"] and "not valid JSON" in out


def test_a_missing_schema_file_fails(app: ProjectDir) -> None:
    schema = app.root / MANIFEST.with_name("limner-manifest.schema.json")
    schema.unlink()
    _, out, data = check(app)
    assert [(p["kind"], p["file"]) for p in data["problems"]] == [("manifest-schema", schema.relative_to(app.root).as_posix())]


def test_a_missing_or_outdated_gitignore_block_fails(app: ProjectDir) -> None:
    gi = app.root / ".gitignore"
    text = gi.read_text()
    start, end = text.index(GITIGNORE_BEGIN), text.index(GITIGNORE_END) + len(GITIGNORE_END)
    gi.write_text(text[:start] + "node_modules/\n" + text[end:])
    code, out, data = check(app)
    assert code == 1 and ".gitignore" in out and "limner init" in out
    assert [(p["kind"], p["file"]) for p in data["problems"]] == [("gitignore", ".gitignore")]
    gi.write_text(text.replace("!frontend/public/images/events/", "!public/"))
    _, out, data = check(app)
    assert [p["kind"] for p in data["problems"]] == ["gitignore"] and "out of date" in out
    gi.unlink()
    _, out, data = check(app)
    assert [p["kind"] for p in data["problems"]] == ["gitignore"] and "missing" in out


def test_outside_git_the_git_checks_are_skipped(published: Path, tmp_path: Path) -> None:
    import shutil

    root = tmp_path / "plain"
    shutil.copytree(published, root, symlinks=True)
    app = ProjectDir(root)
    env = {**app.env(), "GIT_CEILING_DIRECTORIES": str(tmp_path)}
    proc = app.run("check", env=env)
    assert proc.returncode == 0 and "not a git repository" in proc.stdout, proc.stdout
    data = json.loads(app.run("check", "--json", env=env).stdout)
    assert data["git"] is False and data["ok"] is True
    assert any("not a git repository" in s for s in data["skipped"])
    # the other checks still run
    (root / PLACEHOLDERS / "event-000.webp").write_bytes(b"\0" * 120_000)
    assert app.run("check", env=env).returncode == 1


def test_the_pre_commit_hook_runs_limner_check(app: ProjectDir) -> None:
    """`.pre-commit-hooks.yaml` runs `limner check` (the console script pyproject installs), once per commit,
    on git's index: a master staged with `git add -f` fails the commit."""
    import sys
    import tomllib

    import yaml

    repo = Path(__file__).resolve().parent.parent
    hooks = yaml.safe_load((repo / ".pre-commit-hooks.yaml").read_text(encoding="utf-8"))
    hook = next(h for h in hooks if h["id"] == "limner-check")
    assert hook["language"] == "python" and hook["pass_filenames"] is False and hook["always_run"] is True
    scripts = tomllib.loads((repo / "pyproject.toml").read_text(encoding="utf-8"))["project"]["scripts"]
    assert hook["entry"] in scripts
    command = [sys.executable, "-m", "limner", *hook.get("args", [])]

    def run() -> subprocess.CompletedProcess[str]:
        return subprocess.run(command, cwd=app.root, capture_output=True, text=True, env=app.env(), timeout=120)

    assert run().returncode == 0
    master = next((app.root / ".limner" / "media" / "masters").rglob("*.png")).relative_to(app.root).as_posix()
    git(app.root, "add", "-f", master)
    proc = run()
    assert proc.returncode == 1 and master in proc.stdout


def test_the_example_app_passes_as_its_own_repository(tmp_path: Path) -> None:
    """examples/jewish-timeline as the first user meets it: copied into the app's own repository, generated
    offline with the demo's sketch provider and synced, committed with `git add -A`. `limner check` (which the
    CI job runs after sync) found no .gitignore block there: the example had none, so it failed at once."""
    import shutil

    example = Path(__file__).resolve().parent.parent / "examples" / "jewish-timeline"
    root = tmp_path / "timeline"
    shutil.copytree(example, root, ignore=shutil.ignore_patterns(".limner", "node_modules", "dist", "public", "data", ".env"))
    git(root, "init", "-q")
    app = ProjectDir(root)
    env = app.env(LIMNER_GENERATE_SIZE="256")
    app.run("generate", "--no-progress", "--limit", "3", check=True, timeout=240, env=env)
    app.run("sync", check=True, env=env)
    git(root, "add", "-A")
    git(root, "commit", "-q", "-m", "timeline")
    tracked = git(root, "ls-files").splitlines()
    assert len([f for f in tracked if f.startswith("frontend/public/images/events/")]) == 3, tracked
    assert MANIFEST.as_posix() in tracked, tracked
    assert not [f for f in tracked if f.startswith(".limner/")], tracked  # the database and the masters stay out
    proc = app.run("check", env=env)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_a_manifest_the_app_s_own_gitignore_ignores_fails(app: ProjectDir) -> None:
    """An app's rule that ignores the manifest's folder (``frontend/src/data/``): `git add -A` leaves the manifest and
    its schema out, so the app's repository cannot build, and the check said it was clean."""
    gi = app.root / ".gitignore"
    gi.write_text("frontend/src/data/\n" + gi.read_text())
    git(app.root, "rm", "-r", "-q", "--cached", MANIFEST.parent.as_posix())
    git(app.root, "add", "-A")
    assert not git(app.root, "ls-files", MANIFEST.parent.as_posix())  # what `git add -A` made of them
    code, out, data = check(app)
    assert code == 1 and "git check-ignore -v" in out, out
    assert [(p["kind"], p["file"]) for p in data["problems"]] == [
        ("ignored-manifest", MANIFEST.as_posix()),
        ("ignored-manifest", MANIFEST.with_name("limner-manifest.schema.json").as_posix())], data
    gi.write_text(gi.read_text().replace("frontend/src/data/\n", "", 1))
    git(app.root, "add", "-A")
    code, out, data = check(app)
    assert code == 0 and data["problems"] == [], out
