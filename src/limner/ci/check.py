"""``limner check``: the app repository's hygiene, for CI and pre-commit.

Problems it finds, each naming the file:

* ``tracked-media``: a master, variant or other stored object tracked by git (a file under the local
  storage folder, a content-addressed ``masters/ab/<sha256>.<ext>`` / ``variants/...`` name anywhere
  in the app, a ``*.limner-master.*`` file);
* ``tracked-state``: Limner's state folder (``.limner/``: the database, the local store) tracked by git;
* ``tracked-secret``: the app's ``.env`` tracked by git;
* ``placeholder-size``: a placeholder over ``sync.placeholder_max_bytes`` (100 KB by default);
* ``manifest``: a manifest that is not JSON or does not validate against the JSON Schema written next
  to it; ``manifest-schema``: that schema file is missing or unreadable;
* ``manifest-placeholder``: a manifest entry whose ``placeholder`` is not on disk;
* ``gitignore``: the ``.gitignore`` block ``limner init`` writes is missing or out of date.

Outside a git repository the git checks are skipped (and said so). Only the standard library, the
settings and ``jsonschema`` are used: no database, no storage, no network.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from dataclasses import asdict, dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

from limner.config.scaffold import GITIGNORE_BEGIN, GITIGNORE_END, gitignore_block
from limner.config.settings import STATE_DIRNAME, Settings

#: a content-addressed stored object: ``masters/ab/<sha256>.png`` (``limner.keys.content_key``) or a variant,
#: ``variants/<16 hex>-<width>.webp`` (``limner.imaging.derive.variant_name``)
CONTENT_NAME = re.compile(r"(?:^|/)(masters|variants|placeholders)/(?:[0-9a-f]{2}/)?[0-9a-f]{16,64}(?:-[0-9]{1,5})?\.[A-Za-z0-9]+$")
MASTER_COPY = re.compile(r"\.limner-master\.[^/]*$")
IMAGE_SUFFIXES = frozenset({".webp", ".jpg", ".jpeg", ".png", ".avif", ".gif"})
#: at most this many schema errors are listed (the first ones by position in the document)
MAX_SCHEMA_ERRORS = 20
KIND_OF_PREFIX = {"masters": "master", "variants": "variant", "placeholders": "stored placeholder"}


@dataclass
class Problem:
    kind: str
    file: str
    message: str


@dataclass
class CheckReport:
    project: str
    git: bool = False
    problems: list[Problem] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    def as_dict(self) -> dict[str, Any]:
        return {"ok": self.ok, "project": self.project, "git": self.git,
                "problems": [asdict(p) for p in self.problems], "skipped": self.skipped}


def _rel(path: Path, root: Path) -> str:
    try:
        return path.resolve().relative_to(root).as_posix()
    except ValueError:
        return str(path)


# ------------------------------------------------------------------------------------------ git
def tracked_files(project_dir: Path) -> list[str] | str:
    """Files git tracks under ``project_dir`` (relative to it), or why they cannot be listed."""
    git = shutil.which("git")
    if git is None:
        return "git is not installed"
    proc = subprocess.run([git, "-C", str(project_dir), "ls-files", "-z"], capture_output=True, timeout=60)
    if proc.returncode != 0:
        message = proc.stderr.decode("utf-8", "replace").strip().splitlines()
        if any("not a git repository" in line for line in message):
            return "not a git repository"
        return "git ls-files failed: " + (message[-1] if message else f"exit {proc.returncode}")
    return [p for p in proc.stdout.decode("utf-8", "surrogateescape").split("\0") if p]


def _local_store(settings: Settings) -> Path | None:
    url = settings.storage.url
    if "://" in url and not url.startswith("file://"):
        return None
    return settings.path(url.removeprefix("file://")).resolve()


def check_tracked(settings: Settings, root: Path, files: list[str]) -> list[Problem]:
    store = _local_store(settings)
    store_rel = None
    if store is not None:
        try:
            store_rel = store.relative_to(root).as_posix()
        except ValueError:
            store_rel = None  # the store is outside the app: git cannot track it from here
    problems = []
    for name in files:
        m = CONTENT_NAME.search(name)
        if m:
            what = KIND_OF_PREFIX[m.group(1)]
            problems.append(Problem("tracked-media", name, f"{what} tracked by git: masters and variants belong in "
                                                            f"the storage (git rm --cached {name})"))
        elif store_rel and (name + "/").startswith(store_rel.rstrip("/") + "/"):
            problems.append(Problem("tracked-media", name, "file of the local storage folder tracked by git "
                                                           f"(git rm --cached {name})"))
        elif MASTER_COPY.search(name):
            problems.append(Problem("tracked-media", name, f"master copy tracked by git (git rm --cached {name})"))
        elif name == STATE_DIRNAME or name.startswith(STATE_DIRNAME + "/"):
            problems.append(Problem("tracked-state", name, "Limner's state (database, cache, local store) tracked by git "
                                                           f"(git rm --cached {name})"))
        elif PurePosixPath(name).name == ".env" and "/" not in name:
            problems.append(Problem("tracked-secret", name, "the secrets file .env is tracked by git: remove it "
                                                            "(git rm --cached .env) and rotate the keys it held"))
    return problems


# --------------------------------------------------------------------------------- placeholders
def check_placeholders(settings: Settings, root: Path) -> list[Problem]:
    folder = settings.path(settings.sync.placeholder_dir)
    limit = settings.sync.placeholder_max_bytes
    if not folder.is_dir():
        return []
    problems = []
    for path in sorted(folder.rglob("*")):
        if path.suffix.lower() in IMAGE_SUFFIXES and path.is_file() and not path.is_symlink():
            size = path.stat().st_size
            if size > limit:
                problems.append(Problem("placeholder-size", _rel(path, root),
                                        f"placeholder of {size:,} bytes, over the limit of {limit:,} "
                                        "(sync.placeholder_max_bytes): keep big images in the storage"))
    return problems


# ------------------------------------------------------------------------------------- manifest
def _schema_path(manifest_path: Path, manifest: Any) -> Path:
    ref = manifest.get("$schema") if isinstance(manifest, dict) else None
    if isinstance(ref, str) and "://" not in ref and ref.strip():
        return (manifest_path.parent / ref).resolve()
    return manifest_path.with_name(manifest_path.stem + ".schema.json")


def _error_location(error: Any) -> str:
    return "/".join(str(p) for p in error.absolute_path) or "(top level)"


def _placeholder_candidates(settings: Settings, manifest_path: Path, value: str) -> list[Path] | None:
    """Where the placeholder a manifest entry names should be on disk; None for a full URL (not checked)."""
    if re.match(r"^[A-Za-z][A-Za-z0-9+.-]*://", value) or value.startswith("data:"):
        return None
    folder = settings.path(settings.sync.placeholder_dir)
    prefix = settings.sync.placeholder_url_prefix.rstrip("/")
    if prefix and value.startswith(prefix + "/"):
        return [folder / value[len(prefix) + 1:]]
    if value.startswith("/"):
        return [folder / PurePosixPath(value).name]
    return [manifest_path.parent / value, folder / value, folder / PurePosixPath(value).name]


def check_manifest(settings: Settings, root: Path, report: CheckReport) -> list[Problem]:
    path = settings.path(settings.sync.manifest)
    rel = _rel(path, root)
    if not path.is_file():
        report.skipped.append(f"manifest: {rel} not written yet (`limner sync` writes it)")
        return []
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        return [Problem("manifest", rel, f"not valid JSON: {exc}")]
    problems = []
    schema_path = _schema_path(path, manifest)
    try:
        schema = json.loads(schema_path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        problems.append(Problem("manifest-schema", _rel(schema_path, root),
                                f"the JSON Schema of {rel} is missing (`limner sync` writes it next to the manifest)"))
        schema = None
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        problems.append(Problem("manifest-schema", _rel(schema_path, root), f"not a readable JSON Schema: {exc}"))
        schema = None
    if schema is not None:
        from jsonschema import exceptions, validators

        try:
            cls = validators.validator_for(schema)
            cls.check_schema(schema)
            errors = sorted(cls(schema).iter_errors(manifest), key=lambda e: [str(p) for p in e.absolute_path])
        except exceptions.SchemaError as exc:
            problems.append(Problem("manifest-schema", _rel(schema_path, root), f"not a valid JSON Schema: {exc.message}"))
            errors = []
        for error in errors[:MAX_SCHEMA_ERRORS]:
            problems.append(Problem("manifest", rel, f"does not match its schema at {_error_location(error)}: {error.message}"))
        if len(errors) > MAX_SCHEMA_ERRORS:
            problems.append(Problem("manifest", rel, f"... and {len(errors) - MAX_SCHEMA_ERRORS} more schema errors"))
    entries = manifest.get("entries") if isinstance(manifest, dict) else None
    items = entries.items() if isinstance(entries, dict) else (
        ((e.get("id", str(i)) if isinstance(e, dict) else str(i)), e) for i, e in enumerate(entries or []))
    for entry_id, entry in items:
        value = entry.get("placeholder") if isinstance(entry, dict) else None
        if not isinstance(value, str) or not value:
            continue
        candidates = _placeholder_candidates(settings, path, value)
        if candidates is not None and not any(c.is_file() for c in candidates):
            problems.append(Problem("manifest-placeholder", rel, f"entry {entry_id!r} names the placeholder {value!r}, "
                                                                 f"which is not on disk (looked for {_rel(candidates[0], root)})"))
    return problems


# ------------------------------------------------------------------------------------ gitignore
def init_command(root: Path) -> str:
    """The command that writes Limner's .gitignore block of the project in ``root`` for its current
    settings, as typed in the current directory: ``limner init`` reads the project's limner.toml."""
    import os
    import shlex

    try:
        here = Path.cwd().resolve()
    except OSError:  # the current directory was removed
        here = None
    if here == root:
        return "limner init"
    where = os.path.relpath(root, here) if here is not None else str(root)
    return f"limner init {shlex.quote(where if not where.startswith('-') else './' + where)}"


def check_gitignore(settings: Settings, root: Path) -> list[Problem]:
    path = root / ".gitignore"
    init = init_command(root)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return [Problem("gitignore", ".gitignore", f"missing: `{init}` writes it with Limner's block "
                                                   "(ignoring .limner/, .env and master copies)")]
    except (OSError, UnicodeDecodeError) as exc:
        return [Problem("gitignore", ".gitignore", f"cannot read it: {exc}")]
    start = text.find(GITIGNORE_BEGIN)
    if start < 0:
        return [Problem("gitignore", ".gitignore", f"Limner's block is missing: run `{init}` to add it "
                                                   "(it ignores .limner/, .env and master copies)")]
    end = text.find(GITIGNORE_END, start)
    if end < 0:
        return [Problem("gitignore", ".gitignore", f"Limner's block is not closed: run `{init}` to rewrite it")]
    block = text[start:end + len(GITIGNORE_END)]
    try:
        expected = gitignore_block(settings.sync.placeholder_dir).rstrip("\n")
    except Exception:  # noqa: BLE001 - an unusable placeholder_dir is reported by the commands that use it
        return []
    if block != expected:
        return [Problem("gitignore", ".gitignore", "Limner's block is out of date (placeholder folder "
                                                   f"{settings.sync.placeholder_dir!r} or rules changed): "
                                                   f"run `{init}` to rewrite it")]
    return []


def check_app(settings: Settings) -> CheckReport:
    root = settings.project_dir.resolve()
    report = CheckReport(project=str(root))
    files = tracked_files(root)
    if isinstance(files, str):
        report.skipped.append(f"git: {files}; tracked masters and variants not checked")
    else:
        report.git = True
        report.problems += check_tracked(settings, root, files)
    report.problems += check_placeholders(settings, root)
    report.problems += check_manifest(settings, root, report)
    report.problems += check_gitignore(settings, root)
    return report
