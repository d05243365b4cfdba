"""``limner init --ci github|gitlab``: write the CI job that fills missing images every week.

The workflow is rendered from the templates in ``ci/templates/`` (package data): ``@@NAME@@`` tokens are
replaced by values quoted for YAML, and a line holding only a token is replaced by indented lines. An
existing workflow is kept unless ``force`` is set.
"""

from __future__ import annotations

import json
import math
import os
import re
import shutil
import subprocess
import tomllib
from dataclasses import dataclass, field, replace
from importlib import resources
from pathlib import Path
from typing import Any

from limner.errors import ConfigError

CI_KINDS = ("github", "gitlab")
GITHUB_WORKFLOW = Path(".github/workflows/limner-images.yml")
GITLAB_JOB = Path(".gitlab/limner-images.yml")
GITLAB_CI = Path(".gitlab-ci.yml")
#: weekly, Monday 04:17 UTC (off the hour, when scheduled jobs crowd the runners)
CRON = "17 4 * * 1"
PYTHON = "3.12"
#: storage credentials, passed to the steps that read or write the storage
STORAGE_SECRETS = ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "SUPABASE_URL", "SUPABASE_SERVICE_ROLE_KEY")
#: what ``limner sync`` alone reads besides the storage: the app's database, for the write-back to its events table
#: (``sync.events_database_url``; it may hold a password, so it lives in ``.env`` or a secret, never in git)
SYNC_SECRETS = ("LIMNER_SYNC_EVENTS_DATABASE_URL",)
#: the ``LIMNER_*`` settings the workflow passes to its steps (secrets, and the variable of what it installs)
CI_SETTINGS = ("LIMNER_DATABASE_URL", "LIMNER_STORAGE_URL", *SYNC_SECRETS, "LIMNER_PIP_SPEC")


@dataclass
class CiResult:
    created: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    kept: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def find_repo_root(start: Path) -> Path | None:
    """The folder of the git repository that holds ``start`` (the first parent with a ``.git``), else None."""
    for folder in (start, *start.parents):
        if (folder / ".git").exists():
            return folder
    return None


#: the spec written when nothing better is known: none. PyPI has no ``limner``, and whoever published that name
#: there would run their code in a job that holds every secret; the workflow stops until LIMNER_PIP_SPEC is set
FALLBACK_PIP_SPEC = ""


def _https_remote(url: str) -> str | None:
    """A git remote as an https URL pip can fetch anonymously (``git@host:owner/repo.git`` rewritten), else None."""
    m = re.fullmatch(r"(?:ssh://)?git@([\w.-]+)[:/](.+?)", url.strip())
    if m:
        return f"https://{m.group(1)}/{m.group(2)}"
    return url.strip() if url.strip().startswith("https://") and "@" not in url.split("//", 1)[1].split("/", 1)[0] else None


def _clone_spec(folder: Path) -> str | None:
    """``limner[all] @ git+<origin>@<HEAD>`` for a git clone Limner was installed from (editable), else None."""
    git = shutil.which("git")
    if git is None or not (folder / "pyproject.toml").is_file():
        return None
    try:
        remote = subprocess.run([git, "-C", str(folder), "remote", "get-url", "origin"], capture_output=True, text=True, timeout=30)
        head = subprocess.run([git, "-C", str(folder), "rev-parse", "HEAD"], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.SubprocessError):
        return None
    url = _https_remote(remote.stdout) if remote.returncode == 0 else None
    commit = head.stdout.strip() if head.returncode == 0 else ""
    if not url or not re.fullmatch(r"[0-9a-f]{40}", commit):
        return None
    return f"limner[all] @ git+{url}@{commit}"


def default_pip_spec() -> str:
    """What the CI installs: this Limner's git URL and commit when it was installed from git (``pip install
    git+https://...``) or from a clone with an https (or GitHub-style ssh) ``origin``; else none (``""``)."""
    from importlib.metadata import PackageNotFoundError, distribution
    from urllib.parse import unquote, urlparse

    try:
        raw = distribution("limner").read_text("direct_url.json")
        info = json.loads(raw) if raw else {}
    except (PackageNotFoundError, ValueError):
        info = {}
    if not isinstance(info, dict):
        return FALLBACK_PIP_SPEC
    url = str(info.get("url", ""))
    vcs = info.get("vcs_info")
    if isinstance(vcs, dict) and vcs.get("vcs") == "git" and url.startswith("https://"):
        url = re.sub(r"^https://[^/@]*@", "https://", url)  # never a token into the committed workflow
        ref = vcs.get("commit_id") or vcs.get("requested_revision")
        return f"limner[all] @ git+{url}" + (f"@{ref}" if ref else "")
    if url.startswith("file://"):
        return _clone_spec(Path(unquote(urlparse(url).path))) or FALLBACK_PIP_SPEC
    return FALLBACK_PIP_SPEC


def _one_line(value: str, what: str) -> str:
    bad = sorted({c for c in value if ord(c) < 32 or ord(c) == 127})
    if bad:
        raise ConfigError(f"{what} {value!r} contains control characters", hint="give it on one line")
    return value


#: ``scheme://userinfo@``: a URL that carries a user name and password, or a token, before its host
_USERINFO = re.compile(r"(?P<scheme>[A-Za-z][A-Za-z0-9+.-]*)://(?P<userinfo>[^/@\s?#]*)@")
#: where the workflow reads an install spec that must stay secret (it overrides the one written in the file)
PIP_SPEC_SECRET = "LIMNER_PIP_SPEC"


def _url_credentials(value: str) -> bool:
    """True when a URL in ``value`` carries credentials: ``user:password@`` or ``token@`` before its host (an
    ssh URL's bare user name, ``ssh://git@host``, is not one)."""
    for m in _USERINFO.finditer(value):
        if ":" in m.group("userinfo") or "ssh" not in m.group("scheme").lower():
            return True
    return False


def _no_credentials(value: str, what: str) -> str:
    """Refuse (exit 2) a value with URL credentials: the workflow file is committed, so they would be published."""
    if _url_credentials(value):
        raise ConfigError(
            f"{what} carries a credential in a URL (user:password@ or token@ before the host), which would be "
            "written into the workflow file and committed",
            hint=f"give {what} without it (git+https://github.com/owner/limner@tag) and keep the full spec, token "
                 f"included, in a secret instead: on GitHub a repository secret named {PIP_SPEC_SECRET} (Settings > "
                 "Secrets and variables > Actions), which the workflow installs in place of the written spec; on "
                 f"GitLab a masked CI/CD variable {PIP_SPEC_SECRET}")
    return value


def _budget_text(budget: float) -> str:
    if not math.isfinite(budget) or budget < 0:
        raise ConfigError(f"--ci-budget {budget!r}: give a spend cap in USD, 0 or more")
    return f"{budget:g}"


def _read_toml(project_dir: Path) -> dict[str, Any]:
    path = project_dir / "limner.toml"
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}
    except (OSError, tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read it ({exc})") from None


def provider_secrets(config: dict[str, Any]) -> list[str]:
    """The environment variables of the providers ``limner.toml`` names (``provider`` and ``[providers.*]``)."""
    from limner.registry import provider_specs

    names = set(config.get("providers") or {}) | ({config["provider"]} if isinstance(config.get("provider"), str) else set())
    specs = provider_specs()
    return sorted({env for name in names if name in specs for env in specs[name].env})


def _template(name: str) -> str:
    return resources.files("limner.ci").joinpath("templates", name).read_text(encoding="utf-8")


def fill(template: str, values: dict[str, str], blocks: dict[str, list[str]]) -> str:
    """Replace ``@@NAME@@``: a line that is only a block token becomes that block's lines at the token's
    indentation (no line when the block is empty); other tokens are replaced inline. Every token must be known."""
    lines: list[str] = []
    for line in template.splitlines():
        token = line.strip()
        if token.startswith("@@") and token.endswith("@@") and token[2:-2] in blocks:
            indent = line[: len(line) - len(line.lstrip())]
            lines += [indent + b if b else "" for b in blocks[token[2:-2]]]
            continue
        for key, value in values.items():
            line = line.replace(f"@@{key}@@", value)
        lines.append(line)
    text = "\n".join(lines).rstrip("\n") + "\n"
    if "@@" in text:
        start = text.index("@@")
        raise AssertionError(f"unfilled template token near {text[start:start + 40]!r}")
    return text


def _q(value: str) -> str:
    """A YAML double-quoted scalar (JSON's escapes are YAML's)."""
    return json.dumps(value, ensure_ascii=False)


@dataclass(frozen=True)
class CiOptions:
    budget: float = 5.0
    commit: bool = False
    pip_spec: str | None = None

    def validate(self) -> None:
        """Refuse (exit 2) a budget or install spec the workflow cannot hold."""
        _budget_text(self.budget)
        if self.pip_spec is not None:
            _one_line(_no_credentials(self.pip_spec, "--ci-install"), "--ci-install")  # never echo a token
            if not self.pip_spec.strip():
                raise ConfigError("--ci-install is empty", hint="give a pip requirement, such as 'limner[all] @ git+https://...'")


def render_github(project_dir: Path, repo_root: Path, options: CiOptions) -> str:
    config = _read_toml(project_dir)
    workdir = project_dir.relative_to(repo_root).as_posix() if project_dir != repo_root else "."
    _one_line(workdir, "the app's folder")
    secrets = provider_secrets(config)
    env_line = "{name}: ${{{{ secrets.{name} }}}}"
    values = {
        "CRON": CRON,
        "BUDGET": _budget_text(options.budget),
        "WORKDIR": _q(workdir),
        "PYTHON": PYTHON,
        "PIP_SPEC": _q(_one_line(_no_credentials(options.pip_spec or default_pip_spec(), "--ci-install"), "--ci-install")),
        "PERSIST_CREDENTIALS": "true" if options.commit else "false",
    }
    publish = fill(_template("github-publish-commit.yml" if options.commit else "github-publish-pr.yml"),
                   {}, {"ADD_PATHS": [workdir]})
    values["SECRET_LIST"] = (", ".join(secrets) + "  the provider's credentials" if secrets else
                             "your provider's token (for example REPLICATE_API_TOKEN), added to the Generate step's env")
    blocks = {
        "GENERATE_SECRETS": [env_line.format(name=n) for n in (*STORAGE_SECRETS, *secrets)],
        "SYNC_SECRETS": [env_line.format(name=n) for n in (*STORAGE_SECRETS, *SYNC_SECRETS)],
        "PUBLISH": publish.rstrip("\n").splitlines(),
    }
    return fill(_template("github.yml"), values, blocks)


def render_gitlab(project_dir: Path, repo_root: Path, options: CiOptions) -> str:
    config = _read_toml(project_dir)
    workdir = project_dir.relative_to(repo_root).as_posix() if project_dir != repo_root else "."
    _one_line(workdir, "the app's folder")
    secrets = provider_secrets(config)
    values = {
        "CRON": CRON,
        "BUDGET": _budget_text(options.budget),
        "WORKDIR": _q(workdir),
        "PYTHON": PYTHON,
        "PIP_SPEC": _q(_one_line(_no_credentials(options.pip_spec or default_pip_spec(), "--ci-install"), "--ci-install")),
        "PUBLISH_MODE": _q("commit" if options.commit else "merge-request"),
    }
    values["SECRET_LIST"] = (", ".join(secrets) + "  the provider's credentials" if secrets else
                             "your provider's token (for example REPLICATE_API_TOKEN)")
    values["STORAGE_SECRETS"] = ", ".join(STORAGE_SECRETS)
    return fill(_template("gitlab.yml"), values, {})


def _write(path: Path, text: str, rel: str, force: bool, result: CiResult) -> None:
    if path.exists():
        if not force:
            result.kept.append(rel)
            result.notes.append(f"{rel} exists: kept (use --force to replace it)")
            return
        if path.read_text(encoding="utf-8") == text:
            result.kept.append(rel)
            return
        path.write_text(text, encoding="utf-8")
        result.updated.append(rel)
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    result.created.append(rel)


def write_ci(project_dir: Path, kind: str, options: CiOptions, *, force: bool = False) -> CiResult:
    """Write the ``kind`` workflow for the app in ``project_dir``, at the root of its git repository (the
    folder itself when it is not in one). Paths in the result are relative to ``project_dir`` when inside it."""
    if kind not in CI_KINDS:
        raise ConfigError(f"--ci {kind!r}: expected one of {', '.join(CI_KINDS)}")
    project_dir = project_dir.resolve()
    repo_root = find_repo_root(project_dir) or project_dir
    result = CiResult()
    spec = options.pip_spec if options.pip_spec is not None else default_pip_spec()
    fallback = options.pip_spec is None and spec == FALLBACK_PIP_SPEC
    options = replace(options, pip_spec=spec)
    result = _write_workflow(project_dir, repo_root, kind, options, force, result)
    if fallback and (result.created or result.updated):  # a workflow kept as it was installs what it did
        variable = "the repository variable" if kind == "github" else "the CI/CD variable"
        result.notes.append("the workflow does not know where to install Limner from (PyPI does not have it) and "
                            "stops until told: re-run with --ci-install 'limner[all] @ git+https://<your clone of "
                            f"Limner>@<tag>' --force, or set {variable} LIMNER_PIP_SPEC")
    return result


def _write_workflow(project_dir: Path, repo_root: Path, kind: str, options: CiOptions, force: bool,
                    result: CiResult) -> CiResult:
    def rel(path: Path) -> str:
        return Path(os.path.relpath(path, project_dir)).as_posix()

    if kind == "github":
        text = render_github(project_dir, repo_root, options)
        path = repo_root / GITHUB_WORKFLOW
        _write(path, text, rel(path), force, result)
        return result
    text = render_gitlab(project_dir, repo_root, options)
    job = repo_root / GITLAB_JOB
    _write(job, text, rel(job), force, result)
    ci = repo_root / GITLAB_CI
    include = f"include:\n  - local: {GITLAB_JOB.as_posix()}\n"
    if not ci.exists():
        ci.write_text("# The app's GitLab CI. Limner's weekly image job lives in the included file.\n" + include, encoding="utf-8")
        result.created.append(rel(ci))
    elif GITLAB_JOB.as_posix() not in ci.read_text(encoding="utf-8"):
        result.kept.append(rel(ci))
        result.notes.append(f"add to {rel(ci)}:\n{include.rstrip()}")
    else:
        result.kept.append(rel(ci))
    return result
