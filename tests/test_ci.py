"""`limner init --ci github|gitlab`: the workflow passes actionlint (with shellcheck) and GitHub's workflow schema,
pins its actions, keeps secrets and inputs out of scripts; the job summary reads what the commands really print."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from limner.ci.summary import render
from limner.ci.workflow import CiOptions, fill, render_github
from limner.errors import ConfigError
from projects import ProjectDir, make_entries

WORKFLOW = Path(".github/workflows/limner-images.yml")
BIN = Path(sys.executable).parent


def tool(name: str) -> str | None:
    """A dev tool: next to this Python (the venv's bin) or on PATH."""
    local = BIN / name
    return str(local) if local.is_file() else shutil.which(name)


def limner(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "limner", *args], cwd=cwd, capture_output=True, text=True, timeout=120)


def actionlint(path: Path) -> subprocess.CompletedProcess[str]:
    exe = tool("actionlint")
    if exe is None:
        pytest.skip("actionlint is not installed (pip install -e '.[dev]' brings it)")
    args = [exe, "-no-color"]
    shellcheck = tool("shellcheck")
    args += [f"-shellcheck={shellcheck}"] if shellcheck else ["-shellcheck="]
    return subprocess.run([*args, str(path)], capture_output=True, text=True, timeout=120, cwd=path.parent)


def schema_check(path: Path) -> subprocess.CompletedProcess[str]:
    exe = tool("check-jsonschema")
    if exe is None:
        pytest.skip("check-jsonschema is not installed (pip install -e '.[dev]' brings it)")
    return subprocess.run([exe, "--builtin-schema", "vendor.github-workflows", str(path)], capture_output=True,
                          text=True, timeout=120)


def init_git(root: Path) -> None:
    root.mkdir(parents=True, exist_ok=True)
    subprocess.run(["git", "init", "-q", str(root)], check=True, timeout=60)


def steps(doc: dict) -> list[dict]:
    return doc["jobs"]["images"]["steps"]


@pytest.mark.parametrize("variant", ["pull-request", "commit", "subfolder-with-providers"])
def test_the_workflow_passes_actionlint_and_the_schema(tmp_path: Path, variant: str) -> None:
    repo = tmp_path / "repo"
    init_git(repo)
    app = repo
    args = ["init", "--ci", "github"]
    if variant == "commit":
        args += ["--ci-commit", "--ci-budget", "2.5"]
    if variant == "subfolder-with-providers":
        app = repo / "apps" / "site"
        app.mkdir(parents=True)
        (app / "limner.toml").write_text('provider = "replicate"\n[providers.fal]\nmodel = "fal-ai/flux/schnell"\n')
    proc = limner(app, *args)
    assert proc.returncode == 0, proc.stderr
    path = repo / WORKFLOW
    assert path.is_file(), proc.stdout
    lint = actionlint(path)
    assert lint.returncode == 0, lint.stdout + lint.stderr
    schema = schema_check(path)
    assert schema.returncode == 0, schema.stdout + schema.stderr

    text = path.read_text()
    doc = yaml.safe_load(text)
    triggers = doc[True]  # YAML 1.1 reads the key `on` as true
    assert re.fullmatch(r"\S+ \S+ \* \* \d", triggers["schedule"][0]["cron"])  # weekly
    assert set(triggers["workflow_dispatch"]["inputs"]) == {"budget", "ids"}
    assert doc["concurrency"]["group"] and doc["concurrency"]["cancel-in-progress"] is False
    assert doc["permissions"] == {"contents": "read"}

    # every action is pinned to a full commit SHA, with its version in a comment
    uses = re.findall(r"uses: (\S+)@(\S+)(.*)", text)
    assert {u[0] for u in uses} >= {"actions/checkout", "actions/setup-python"}
    for action, ref, comment in uses:
        assert re.fullmatch(r"[0-9a-f]{40}", ref), (action, ref)
        assert re.fullmatch(r" # v\d+\.\d+\.\d+", comment), (action, comment)

    # no expression inside a script: secrets and inputs reach them through env only
    all_steps = steps(doc)
    for step in all_steps:
        assert "${{" not in step.get("run", ""), step["name"]
        for name, value in (step.get("env") or {}).items():
            if "secrets." in str(value):
                assert value == f"${{{{ secrets.{name} }}}}", (name, value)
    assert "secrets." not in json.dumps(doc["jobs"]["images"].get("env", {}))

    # the order of the job: check-missing -> generate --budget -> sync -> publish, with a summary
    runs = [step.get("run", "") for step in all_steps]
    order = [next(i for i, r in enumerate(runs) if re.search(pattern, r, re.M))
             for pattern in (r"limner check-missing", r"limner generate", r"limner sync", r"^limner check$")]
    assert order == sorted(order), order
    generate = next(s for s in all_steps if "limner generate" in s.get("run", ""))
    assert "--budget" in generate["run"] and generate["env"]["BUDGET"].startswith("${{ inputs.budget ||")
    assert generate["env"]["IDS"] == "${{ inputs.ids }}"
    summary = next(s for s in all_steps if "GITHUB_STEP_SUMMARY" in s.get("run", ""))
    assert "limner status --json" in summary["run"] and "python -m limner.ci.summary" in summary["run"]
    last = all_steps[-1]
    if variant == "commit":
        assert "git push" in last["run"] and "default: \"2.5\"" in text
        assert all_steps[0]["with"]["persist-credentials"] is True
    else:
        assert last["uses"].startswith("peter-evans/create-pull-request@")
        assert last["with"]["body-path"].endswith("/limner/summary.md")
        assert all_steps[0]["with"]["persist-credentials"] is False
    if variant == "subfolder-with-providers":
        assert doc["jobs"]["images"]["defaults"]["run"]["working-directory"] == "apps/site"
        assert last["with"]["add-paths"].strip() == "apps/site"
        assert {"REPLICATE_API_TOKEN", "FAL_KEY"} <= set(generate["env"])
        assert "REPLICATE_API_TOKEN" not in json.dumps([s.get("env") for s in all_steps if s is not generate])
        assert not (app / "catalog.yaml").exists()  # an initialised app gets the workflow only


def test_actionlint_really_lints(tmp_path: Path) -> None:
    """The check above would pass vacuously if actionlint accepted anything."""
    repo = tmp_path / "repo"
    init_git(repo)
    assert limner(repo, "init", "--ci", "github").returncode == 0
    path = repo / WORKFLOW
    text = path.read_text()
    path.write_text(text.replace("runs-on: ubuntu-latest", "runs-on: ${{ matrix.os }}"))
    assert actionlint(path).returncode != 0
    path.write_text(text.replace('args=(--budget "$BUDGET"', 'args=(--budget $BUDGET'))
    assert actionlint(path).returncode != 0  # shellcheck: unquoted variable
    path.write_text(text.replace("concurrency:\n", "concurrency:\n  cancel-in-progres: false\n"))
    assert schema_check(path).returncode != 0


def test_an_existing_workflow_is_kept_unless_forced(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    init_git(repo)
    assert limner(repo, "init").returncode == 0
    toml = (repo / "limner.toml").read_bytes()
    (repo / "catalog.yaml").unlink()
    proc = limner(repo, "init", "--ci", "github")
    assert proc.returncode == 0 and f"created  {WORKFLOW.as_posix()}" in proc.stdout, proc.stdout
    assert not (repo / "catalog.yaml").exists() and (repo / "limner.toml").read_bytes() == toml
    path = repo / WORKFLOW
    path.write_text("# mine\n")
    proc = limner(repo, "init", "--ci", "github", "--ci-commit")
    assert proc.returncode == 0 and "--force" in proc.stdout and path.read_text() == "# mine\n"
    proc = limner(repo, "init", "--ci", "github", "--ci-commit", "--force")
    assert proc.returncode == 0 and f"updated  {WORKFLOW.as_posix()}" in proc.stdout
    assert "git push" in path.read_text()


def test_the_install_note_comes_only_with_a_workflow_written(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The note that the default install spec is not on PyPI was repeated by every `init --ci` that kept the
    existing workflow as it was, though that workflow installs whatever it already named."""
    from limner.ci import workflow

    monkeypatch.setattr(workflow, "default_pip_spec", lambda: workflow.FALLBACK_PIP_SPEC)
    init_git(tmp_path)
    first = workflow.write_ci(tmp_path, "github", CiOptions())
    assert first.created and any("PyPI does not have it" in note for note in first.notes)
    again = workflow.write_ci(tmp_path, "github", CiOptions())
    assert again.kept and not any("PyPI does not have it" in note for note in again.notes)
    given = workflow.write_ci(tmp_path, "github", CiOptions(pip_spec="limner[all] @ git+https://example.org/l.git@v1"),
                              force=True)
    assert given.updated and not any("PyPI does not have it" in note for note in given.notes)


def _install_script(kind: str, text: str) -> tuple[str, dict[str, str]]:
    """The install step's script and the variables the workflow gives it."""
    doc = yaml.safe_load(text)
    if kind == "github":
        step = next(s for s in steps(doc) if s["name"] == "Install Limner")
        return step["run"].split("limner --version")[0], {k: v for k, v in step["env"].items() if "${{" not in str(v)}
    job = next(v for v in doc.values() if isinstance(v, dict) and "script" in v)
    script = next(line for line in job["script"] if "pip install" in line)
    return script.split("limner --version")[0], {k: str(v) for k, v in job["variables"].items()}


@pytest.mark.parametrize("kind", ["github", "gitlab"])
def test_a_workflow_without_a_known_install_spec_installs_nothing_from_pypi(tmp_path: Path, kind: str) -> None:
    """With no spec known (Limner installed neither from git nor from a clone with an origin), the workflow ran
    `pip install limner[all]` from PyPI, which has no Limner: the first person to publish that name there would
    have run their code in a job holding every secret. It now stops before pip, saying which variable to set."""
    from limner.ci import workflow

    init_git(tmp_path)
    fake = tmp_path / "bin"
    fake.mkdir()
    (fake / "python").write_text(f"#!/bin/sh\necho \"$@\" >> {tmp_path / 'pip-args'}\n", encoding="utf-8")
    (fake / "python").chmod(0o755)
    render = {"github": workflow.render_github, "gitlab": workflow.render_gitlab}[kind]
    options = CiOptions(pip_spec=workflow.FALLBACK_PIP_SPEC)
    script, variables = _install_script(kind, render(tmp_path, tmp_path, options))
    (tmp_path / ".git" / "info").mkdir(parents=True, exist_ok=True)
    env = {"PATH": f"{fake}{os.pathsep}{os.environ['PATH']}", "CI_PROJECT_DIR": str(tmp_path), **variables}
    proc = subprocess.run(["bash", "--noprofile", "--norc", "-eo", "pipefail", "-c", script], env=env,
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 1 and not (tmp_path / "pip-args").exists(), proc.stdout + proc.stderr
    assert "LIMNER_PIP_SPEC" in proc.stdout + proc.stderr
    assert ("repository variable" if kind == "github" else "CI/CD variable") in proc.stdout + proc.stderr
    chosen = "limner[all] @ git+https://example.org/limner.git@v1"
    proc = subprocess.run(["bash", "--noprofile", "--norc", "-eo", "pipefail", "-c", script],
                          env={**env, "LIMNER_PIP_SPEC": chosen}, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0 and chosen in (tmp_path / "pip-args").read_text(), proc.stdout + proc.stderr
    note = next(n for n in workflow.write_ci(tmp_path, kind, CiOptions()).notes if "PyPI" in n) \
        if workflow.default_pip_spec() == workflow.FALLBACK_PIP_SPEC else None
    if note is not None:
        assert ("repository variable" if kind == "github" else "CI/CD variable") in note


@pytest.mark.parametrize("args", [["--ci", "jenkins"], ["--ci", "github", "--ci-budget", "-1"],
                                  ["--ci", "github", "--ci-install", "limner\nrm -rf /"],
                                  # a workflow option without --ci was ignored, the project made without a workflow
                                  ["--ci-commit"], ["--ci-budget", "2"], ["--ci-install", "limner[all] @ git+https://x/l"],
                                  ["--force"]])
def test_bad_ci_options_write_nothing(tmp_path: Path, args: list[str]) -> None:
    proc = limner(tmp_path, "init", "site", *args)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert not (tmp_path / "site").exists()


def test_the_install_spec_is_quoted_for_yaml_and_shell(tmp_path: Path) -> None:
    spec = 'limner[all] @ git+https://example.org/limner.git@v1 # "x" $(id)'
    init_git(tmp_path)
    text = render_github(tmp_path, tmp_path, CiOptions(pip_spec=spec))
    install = next(s for s in steps(yaml.safe_load(text)) if s["name"] == "Install Limner")
    assert install["env"]["DEFAULT_PIP_SPEC"] == spec
    assert '"${LIMNER_PIP_SPEC:-${LIMNER_PIP_SPEC_VARIABLE:-$DEFAULT_PIP_SPEC}}"' in install["run"]


def test_fill_refuses_unknown_tokens() -> None:
    assert fill("a: @@X@@\n  @@B@@\n", {"X": "1"}, {"B": ["b: 2", "c: 3"]}) == "a: 1\n  b: 2\n  c: 3\n"
    with pytest.raises(AssertionError):
        fill("a: @@Y@@\n", {"X": "1"}, {})


def test_gitlab_job(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    init_git(repo)
    proc = limner(repo, "init", "--ci", "gitlab")
    assert proc.returncode == 0, proc.stderr
    assert yaml.safe_load((repo / ".gitlab-ci.yml").read_text()) == {"include": [{"local": ".gitlab/limner-images.yml"}]}
    job = yaml.safe_load((repo / ".gitlab" / "limner-images.yml").read_text())["limner-images"]
    assert job["variables"]["LIMNER_BUDGET"] == "5" and job["variables"]["LIMNER_PUBLISH"] == "merge-request"
    assert job["resource_group"] and "schedule" in job["rules"][0]["if"]
    script = "\n".join(job["script"])
    for needle in ("limner check-missing", "limner generate", "limner sync", "limner check\n", "merge_request.create"):
        assert needle in script, needle
    assert subprocess.run(["sh", "-n"], input=script, text=True, timeout=30).returncode == 0
    shellcheck = tool("shellcheck")
    if shellcheck:
        lint = subprocess.run([shellcheck, "-s", "sh", "-"], input=script, capture_output=True, text=True, timeout=60)
        assert lint.returncode == 0, lint.stdout
    # an app with its own .gitlab-ci.yml: left alone, with a note on the include to add
    other = tmp_path / "other"
    init_git(other)
    (other / ".gitlab-ci.yml").write_text("test:\n  script: [make test]\n")
    proc = limner(other, "init", "--ci", "gitlab")
    assert proc.returncode == 0 and "local: .gitlab/limner-images.yml" in proc.stdout
    assert (other / ".gitlab-ci.yml").read_text() == "test:\n  script: [make test]\n"


def test_the_summary_reads_what_the_commands_print(make_project_dir) -> None:  # type: ignore[no-untyped-def]
    """The workflow's sequence on a real project: two entries published, one refused, spend recorded."""
    p: ProjectDir = make_project_dir(n=4, extra='price_usd = 0.01\nrefuse_ids = ["event-003"]\n')
    p.write_catalog(make_entries(2))
    p.run("generate", "--no-progress", check=True)
    p.write_catalog(make_entries(4))
    out = p.root / "ci-out"
    out.mkdir()

    def save(name: str, *args: str) -> None:
        proc = p.run(*args, "--json")
        assert proc.returncode in (0, 1), proc.stderr
        (out / name).write_text(proc.stdout)

    save("missing-before.json", "check-missing")
    save("generate.json", "generate", "--budget", "5", "--no-progress")
    save("sync.json", "sync")
    save("status.json", "status")
    save("missing-after.json", "check-missing")
    proc = subprocess.run([sys.executable, "-m", "limner.ci.summary", str(out)], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    text = proc.stdout
    assert text == render(out)
    assert "Generated **1** of 2 planned entries for **$0.01**" in text, text
    assert "**New images (1):** `event-002`" in text
    assert "Still without an image: 1 of 4 entries (`event-003`)" in text
    assert "| `event-003` | ContentRefused" in text
    assert "published 3" in text and "failed 1" in text
    assert "Sync: 3 entries in the manifest, 3 placeholders written, 0 removed, manifest changed." in text, text


def test_the_summary_of_a_run_that_did_not_finish(tmp_path: Path) -> None:
    (tmp_path / "missing-before.json").write_text('{"entries": 3, "missing": ["a", "b"]}')
    (tmp_path / "generate.json").write_text("")  # the step died before printing
    text = render(tmp_path)
    assert "did not finish" in text and "New images" not in text


# --- the workflow's own scripts, run step by step as a runner would, on a real project and git remote ----------

def _git(cwd: Path, *args: str) -> str:
    proc = subprocess.run(["git", "-C", str(cwd), *args], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def _expression(expr: str, secrets: dict[str, str], inputs: dict[str, str], temp: Path) -> str:
    """The few expression forms the workflow uses: secrets.X, vars.X, inputs.X, inputs.X || 'default', runner.temp."""
    m = re.fullmatch(r"(secrets|vars|inputs)\.([A-Za-z_][A-Za-z0-9_]*)(?:\s*\|\|\s*'([^']*)')?", expr)
    if m:
        source = {"secrets": secrets, "vars": {}, "inputs": inputs}[m.group(1)]
        return source.get(m.group(2), "") or (m.group(3) or "")
    if expr == "runner.temp":
        return str(temp)
    raise AssertionError(f"the simulation does not know the expression {expr!r}")


def run_workflow(doc: dict, checkout: Path, secrets: dict[str, str], inputs: dict[str, str], temp: Path,
                 env: dict[str, str]) -> dict[str, subprocess.CompletedProcess[str] | None]:
    """Each `run:` step in order with GitHub's bash flags (`-eo pipefail`); after a failure only `!cancelled()`
    steps run. `uses:` steps and the pip install are left out (the checkout and this Limner stand in for them)."""
    job = doc["jobs"]["images"]
    workdir = checkout / job["defaults"]["run"]["working-directory"]
    temp.mkdir(parents=True, exist_ok=True)
    (temp / "limner").mkdir(exist_ok=True)
    results: dict[str, subprocess.CompletedProcess[str] | None] = {}
    failed = False
    for step in job["steps"]:
        if (failed and step.get("if") != "${{ !cancelled() }}") or "run" not in step or step["name"] == "Install Limner":
            results[step["name"]] = None
            continue
        step_env = {**env, "RUNNER_TEMP": str(temp)}
        for name, value in (step.get("env") or {}).items():
            step_env[name] = re.sub(r"\$\{\{\s*(.+?)\s*\}\}", lambda m: _expression(m.group(1), secrets, inputs, temp), str(value))
        proc = subprocess.run(["bash", "--noprofile", "--norc", "-eo", "pipefail", "-c", step["run"]], cwd=workdir,
                              env=step_env, capture_output=True, text=True, timeout=300)
        results[step["name"]] = proc
        failed = failed or proc.returncode != 0
    return results


def test_the_workflow_scripts_run_end_to_end(tmp_path: Path) -> None:
    """Schedule run: generate (one entry refused: a warning, not a failure), sync, check, summary, commit and push;
    a manual run for one id with nothing new commits nothing. The state database and the store live outside the
    checkout, as the secrets LIMNER_DATABASE_URL and LIMNER_STORAGE_URL make them on a runner."""
    from limner.config.scaffold import gitignore_block, update_gitignore

    origin = tmp_path / "origin.git"
    subprocess.run(["git", "init", "-q", "--bare", "--initial-branch=main", str(origin)], check=True, timeout=60)
    src = ProjectDir(tmp_path / "src")
    src.root.mkdir()
    src.write_config('price_usd = 0.01\nrefuse_ids = ["event-003"]\n')
    src.write_catalog(make_entries(4))
    update_gitignore(src.root / ".gitignore", gitignore_block("frontend/public/images/events"))
    assert limner(src.root, "init", "--ci", "github", "--ci-commit").returncode == 0
    ident = ["-c", "user.name=dev", "-c", "user.email=dev@example.org"]
    subprocess.run(["git", "init", "-q", "--initial-branch=main", str(src.root)], check=True, timeout=60)
    _git(src.root, "add", "-A")
    _git(src.root, *ident, "commit", "-q", "-m", "app")
    _git(src.root, "remote", "add", "origin", str(origin))
    _git(src.root, "push", "-q", "-u", "origin", "main")
    checkout = tmp_path / "checkout"
    subprocess.run(["git", "clone", "-q", str(origin), str(checkout)], check=True, timeout=60)
    doc = yaml.safe_load((checkout / WORKFLOW).read_text())

    secrets = {"LIMNER_DATABASE_URL": f"sqlite:///{tmp_path / 'shared' / 'limner.db'}",
               "LIMNER_STORAGE_URL": str(tmp_path / "shared" / "media")}
    outputs, summary = tmp_path / "github_output", tmp_path / "step_summary"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LIMNER_", "GIT_"))}
    env.update(PATH=f"{BIN}{os.pathsep}{env.get('PATH', '')}", LIMNER_PLUGINS="limner.testing", NO_COLOR="1",
               HOME=str(tmp_path), GITHUB_OUTPUT=str(outputs), GITHUB_STEP_SUMMARY=str(summary))

    results = run_workflow(doc, checkout, secrets, {}, tmp_path / "temp1", env)
    ran = {name: proc.returncode for name, proc in results.items() if proc is not None}
    assert set(ran.values()) == {0}, {n: (p.stdout + p.stderr)[-2000:] for n, p in results.items() if p and p.returncode}
    assert "Generate" in ran and "Commit the new placeholders and manifest" in ran
    assert "exit-code=1" in outputs.read_text()  # one entry refused: reported, not fatal
    assert "::warning::some entries failed" in results["Generate"].stdout  # type: ignore[union-attr]
    text = summary.read_text()
    assert "**New images (3):** `event-000`, `event-001`, `event-002`" in text and "| `event-003` |" in text, text

    log = _git(origin, "log", "--format=%s%n%b", "main")
    assert log.startswith("Limner: placeholders and manifest for new images") and "New images (3)" in log
    committed = set(_git(origin, "show", "--name-only", "--format=", "main").split())
    assert committed == {*(f"frontend/public/images/events/event-00{i}.webp" for i in range(3)),
                         "frontend/src/data/limner-manifest.json", "frontend/src/data/limner-manifest.schema.json"}

    # a manual run for one id: nothing new, so no commit; the ids input became --id
    head = _git(origin, "rev-parse", "main")
    results = run_workflow(doc, checkout, secrets, {"ids": "event-003", "budget": "1"}, tmp_path / "temp2", env)
    assert all(p.returncode == 0 for p in results.values() if p is not None)
    generated = json.loads((tmp_path / "temp2" / "limner" / "generate.json").read_text())
    assert generated["planned"] == 1 and generated["failures"][0]["id"] == "event-003"
    assert "nothing to commit" in results["Commit the new placeholders and manifest"].stdout  # type: ignore[union-attr]
    assert _git(origin, "rev-parse", "main") == head

    # without the secrets the job stops at once, and the summary still runs
    results = run_workflow(doc, checkout, {}, {}, tmp_path / "temp3", env)
    check = results["Check the secrets"]
    assert check is not None and check.returncode == 1 and "LIMNER_DATABASE_URL LIMNER_STORAGE_URL" in check.stdout
    assert results["Generate"] is None and results["Summary"] is not None and results["Summary"].returncode == 0


def test_the_default_install_spec_of_a_clone(tmp_path: Path) -> None:
    """Installed editable from a clone, the workflow installs that clone's origin at its HEAD commit; a token in
    an https remote is never copied into the workflow."""
    from limner.ci.workflow import _clone_spec, _https_remote

    assert _https_remote("git@github.com:me/limner.git") == "https://github.com/me/limner.git"
    assert _https_remote("https://github.com/me/limner.git") == "https://github.com/me/limner.git"
    assert _https_remote("https://token@github.com/me/limner.git") is None
    assert _https_remote("/srv/git/limner") is None
    clone = tmp_path / "limner"
    init_git(clone)
    (clone / "pyproject.toml").write_text("[project]\nname = 'limner'\n")
    assert _clone_spec(clone) is None  # no commit, no origin
    _git(clone, "add", "-A")
    _git(clone, "-c", "user.name=t", "-c", "user.email=t@example.org", "commit", "-q", "-m", "x")
    _git(clone, "remote", "add", "origin", "git@github.com:me/limner.git")
    head = _git(clone, "rev-parse", "HEAD").strip()
    assert _clone_spec(clone) == f"limner[all] @ git+https://github.com/me/limner.git@{head}"


# --- the write-back to the app's events table (sync.events_database_url) reaches the job ---------------------------

def _events_db(path: Path, ids: list[str]) -> None:
    import sqlite3

    con = sqlite3.connect(path)
    con.execute("CREATE TABLE timeline_events (id TEXT PRIMARY KEY, image_url TEXT, image_cdn_url TEXT, "
                "image_generated_at TIMESTAMP)")
    con.executemany("INSERT INTO timeline_events (id) VALUES (?)", [(i,) for i in ids])
    con.commit()
    con.close()


def _image_urls(path: Path) -> dict[str, str | None]:
    import sqlite3

    con = sqlite3.connect(path)
    try:
        return dict(con.execute("SELECT id, image_url FROM timeline_events").fetchall())
    finally:
        con.close()


def test_init_ci_names_the_dotenv_settings_the_job_will_not_have(tmp_path: Path) -> None:
    """A public URL or a CDN base kept in .env (never committed) is missing on the runner: `init --ci` names
    those settings, by name only (never a value), and not the ones the workflow passes as secrets."""
    app = ProjectDir(tmp_path / "app")
    app.root.mkdir()
    app.write_config("")
    app.write_catalog(make_entries(1))
    (app.root / ".env").write_text("LIMNER_STORAGE_URL=s3://bucket/x\nLIMNER_STORAGE_CDN_BASE_URL=https://cdn.example.org\n"
                                   "LIMNER_STORAGE_PUBLIC_BASE_URL=https://img.example.org\nREPLICATE_API_TOKEN=r8_sekrit\n")
    proc = limner(app.root, "init", "--ci", "gitlab")
    assert proc.returncode == 0, proc.stderr
    note = next(line for line in proc.stdout.splitlines() if line.startswith("note: .env sets"))
    assert note.startswith("note: .env sets LIMNER_STORAGE_CDN_BASE_URL, LIMNER_STORAGE_PUBLIC_BASE_URL, which the CI job")
    assert "limner.toml" in note and "CI/CD variables" in note
    assert "example.org" not in proc.stdout and "sekrit" not in proc.stdout and "LIMNER_STORAGE_URL," not in note
    (app.root / ".env").write_text("LIMNER_STORAGE_URL=s3://bucket/x\n")
    proc = limner(app.root, "init", "--ci", "gitlab", "--force")
    assert proc.returncode == 0 and "note: .env sets" not in proc.stdout, proc.stdout


def test_the_sync_step_writes_back_to_the_events_table(tmp_path: Path) -> None:
    """The docs put LIMNER_SYNC_EVENTS_DATABASE_URL in .env, which is never committed: the Sync step gets it from a
    secret. An unset secret (an empty variable on a runner) leaves write-back off without failing the job, and does
    not hide a sync.events_database_url that limner.toml gives."""
    app = ProjectDir(tmp_path / "app")
    app.root.mkdir()
    app.write_config('\n[storage]\npublic_base_url = "https://img.example.org"\n')
    app.write_catalog(make_entries(2))
    assert limner(app.root, "init").returncode == 0  # the .gitignore block, for the `limner check` step
    # the URL in .env (as the docs advise), which the runner never sees: init says to set the secret
    (app.root / ".env").write_text("LIMNER_SYNC_EVENTS_DATABASE_URL=sqlite:///app.db\n")
    proc = limner(app.root, "init", "--ci", "github")
    assert proc.returncode == 0, proc.stderr
    assert "note: LIMNER_SYNC_EVENTS_DATABASE_URL is set here" in proc.stdout and "repository secret" in proc.stdout
    (app.root / ".env").unlink()
    proc = limner(app.root, "init", "--ci", "github", "--force")
    assert proc.returncode == 0 and "note: LIMNER_SYNC_EVENTS_DATABASE_URL" not in proc.stdout, proc.stdout
    assert "LIMNER_SYNC_EVENTS_DATABASE_URL" in proc.stdout  # the next steps name the secret
    doc = yaml.safe_load((app.root / WORKFLOW).read_text())
    by_name = {s["name"]: s for s in steps(doc)}
    secret = "${{ secrets.LIMNER_SYNC_EVENTS_DATABASE_URL }}"
    assert by_name["Sync placeholders and manifest"]["env"]["LIMNER_SYNC_EVENTS_DATABASE_URL"] == secret
    assert [n for n, s in by_name.items() if "LIMNER_SYNC_EVENTS_DATABASE_URL" in (s.get("env") or {})] == [
        "Sync placeholders and manifest"]  # only the step that writes back sees the app's database

    shared = tmp_path / "shared"
    secrets = {"LIMNER_DATABASE_URL": f"sqlite:///{shared / 'limner.db'}", "LIMNER_STORAGE_URL": str(shared / "media")}
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LIMNER_", "GIT_"))}
    env.update(PATH=f"{BIN}{os.pathsep}{env.get('PATH', '')}", LIMNER_PLUGINS="limner.testing", NO_COLOR="1",
               HOME=str(tmp_path), GITHUB_OUTPUT=str(tmp_path / "out"), GITHUB_STEP_SUMMARY=str(tmp_path / "summary"),
               GIT_CEILING_DIRECTORIES=str(tmp_path))

    def run(name: str, with_secrets: dict[str, str]) -> dict:
        results = run_workflow(doc, app.root, with_secrets, {}, tmp_path / name, env)
        failed = {n: (p.stdout + p.stderr)[-2000:] for n, p in results.items() if p is not None and p.returncode}
        assert not failed, failed
        assert results["Sync placeholders and manifest"] is not None
        return json.loads((tmp_path / name / "limner" / "sync.json").read_text())

    # the secret set: the weekly job writes the new images' URLs into the app's table
    events = tmp_path / "app-events.db"
    _events_db(events, ["event-000", "event-001"])
    result = run("with-secret", {**secrets, "LIMNER_SYNC_EVENTS_DATABASE_URL": f"sqlite:///{events}"})
    assert result["written_back"] == 2, result
    assert "Events table: 2 rows updated, 0 already up to date." in render(tmp_path / "with-secret" / "limner")
    assert all(url and url.startswith("https://img.example.org/") for url in _image_urls(events).values())

    # no secret: sync succeeds and writes nothing back
    result = run("without-secret", secrets)
    assert result["written_back"] == 0 and result["not_in_events_table"] == [], result
    assert "Events table" not in render(tmp_path / "without-secret" / "limner")

    # no secret, but limner.toml names the app's database (no password in it): the empty variable does not hide it
    committed = tmp_path / "committed-events.db"
    _events_db(committed, ["event-000", "event-001"])
    app.config.write_text(app.config.read_text().replace(
        "[storage]\n", f'[sync]\nevents_database_url = "sqlite:///{committed}"\n\n[storage]\n'))
    result = run("from-toml", secrets)
    assert result["written_back"] == 2, result
    assert all(_image_urls(committed).values())


def test_the_gitlab_job_passes_the_events_database(tmp_path: Path) -> None:
    """GitLab hands CI/CD variables to the whole script: a set LIMNER_SYNC_EVENTS_DATABASE_URL reaches `limner sync`;
    one defined empty is dropped before it, so it neither breaks the job nor hides limner.toml's setting."""
    repo = tmp_path / "repo"
    init_git(repo)
    assert limner(repo, "init", "--ci", "gitlab").returncode == 0
    text = (repo / ".gitlab" / "limner-images.yml").read_text()
    header = text.split("\nlimner-images:", 1)[0]
    assert "LIMNER_SYNC_EVENTS_DATABASE_URL" in header  # the variables to set, listed at the top
    script = "\n".join(yaml.safe_load(text)["limner-images"]["script"])
    before_sync = script.split("limner sync", 1)[0]
    drop = 'if [ -z "${LIMNER_SYNC_EVENTS_DATABASE_URL:-}" ]; then unset LIMNER_SYNC_EVENTS_DATABASE_URL; fi'
    assert drop in before_sync
    for value, expected in (("", "unset"), ("sqlite:///app.db", "sqlite:///app.db")):
        proc = subprocess.run(["sh", "-c", drop + '\necho "${LIMNER_SYNC_EVENTS_DATABASE_URL-unset}"'], capture_output=True,
                              text=True, timeout=30, env={**os.environ, "LIMNER_SYNC_EVENTS_DATABASE_URL": value})
        assert proc.stdout.strip() == expected


def test_every_secret_the_workflow_reads_is_in_the_docs(tmp_path: Path) -> None:
    """docs/ci.md 'Secrets to set' lists every secret a written workflow reads (the provider's, by example)."""
    init_git(tmp_path)
    (tmp_path / "limner.toml").write_text('provider = "replicate"\n')
    text = render_github(tmp_path, tmp_path, CiOptions(pip_spec="limner[all]"))
    names = set(re.findall(r"\$\{\{ secrets\.([A-Z0-9_]+) \}\}", text)) - {"REPLICATE_API_TOKEN", "REPLICATE_BASE_URL"}
    docs = (Path(__file__).resolve().parent.parent / "docs" / "ci.md").read_text(encoding="utf-8")
    secrets_section = docs.split("## Secrets to set", 1)[1].split("\n## ", 1)[0]
    assert "LIMNER_SYNC_EVENTS_DATABASE_URL" in names
    assert not sorted(n for n in names if f"`{n}`" not in secrets_section)


TOKEN = "ghp_AAAABBBBCCCCDDDDEEEEFFFF0123456789"


@pytest.mark.parametrize("kind", ["github", "gitlab"])
@pytest.mark.parametrize("spec", [f"limner @ git+https://x-access-token:{TOKEN}@github.com/o/limner",
                                  f"limner[all] @ git+https://{TOKEN}@github.com/o/limner@v1",
                                  f"limner @ https://user:{TOKEN}@pypi.example.org/limner-1.0.tar.gz",
                                  f"limner @ git+ssh://git:{TOKEN}@github.com/o/limner"])
def test_an_install_spec_with_a_credential_is_refused_and_never_written(tmp_path: Path, kind: str, spec: str) -> None:
    """The workflow is committed: a token in --ci-install would be published. Refused (exit 2), nothing written or
    replaced, the token never echoed; the message says to keep the spec in the LIMNER_PIP_SPEC secret."""
    repo = tmp_path / "repo"
    init_git(repo)
    (repo / "limner.toml").write_text('provider = "replicate"\n')
    assert limner(repo, "init", "--ci", kind).returncode == 0
    before = {p: p.read_bytes() for p in repo.rglob("*") if p.is_file() and ".git/" not in p.as_posix()}
    proc = limner(repo, "init", "--ci", kind, "--force", "--ci-install", spec)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert TOKEN not in proc.stdout + proc.stderr
    assert "LIMNER_PIP_SPEC" in proc.stderr and "secret" in proc.stderr
    after = {p: p.read_bytes() for p in repo.rglob("*") if p.is_file() and ".git/" not in p.as_posix()}
    assert after == before
    assert not any(TOKEN.encode() in data for data in after.values())
    with pytest.raises(ConfigError, match="credential") as info:
        CiOptions(pip_spec=spec).validate()
    assert "LIMNER_PIP_SPEC" in (info.value.hint or "") and TOKEN not in str(info.value) + (info.value.hint or "")
    assert limner(tmp_path, "init", "fresh", "--ci", kind, "--ci-install", spec).returncode == 2
    assert not (tmp_path / "fresh").exists()


@pytest.mark.parametrize("spec", ["limner[all] @ git+https://github.com/o/limner@v1.2",
                                  "limner @ git+ssh://git@github.com/o/limner@main",
                                  "limner[all] @ git+https://github.com/o/limner.git@refs/heads/a@b"])
def test_an_install_spec_without_credentials_is_written(tmp_path: Path, spec: str) -> None:
    init_git(tmp_path)
    CiOptions(pip_spec=spec).validate()
    text = render_github(tmp_path, tmp_path, CiOptions(pip_spec=spec))
    install = next(s for s in steps(yaml.safe_load(text)) if s["name"] == "Install Limner")
    assert install["env"]["DEFAULT_PIP_SPEC"] == spec
    assert install["env"]["LIMNER_PIP_SPEC"] == "${{ secrets.LIMNER_PIP_SPEC }}"  # a secret may hold a spec with a token
    assert install["env"]["LIMNER_PIP_SPEC_VARIABLE"] == "${{ vars.LIMNER_PIP_SPEC }}"


def test_init_help_says_what_the_workflow_installs_by_default(tmp_path):
    """--ci-install's help names the default the workflow gets: none when this Limner's git URL is unknown (PyPI
    has no limner, so the workflow stops until LIMNER_PIP_SPEC is set), never limner[all] from PyPI."""
    out = subprocess.run([sys.executable, "-m", "limner", "init", "--help"], capture_output=True, text=True,
                         cwd=tmp_path, env={**os.environ, "COLUMNS": "400"}, check=True).stdout
    said = " ".join(out.split())
    assert "else limner[all]" not in said and "LIMNER_PIP_SPEC" in said, said
