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
* ``ignored-manifest``: the manifest or its schema ignored by git and not tracked (never committed);
* ``ignored-placeholder``: placeholders the manifest names ignored by git and not tracked;
* ``gitignore``: the ``.gitignore`` block ``limner init`` writes is missing or out of date, or the local
  storage folder (``storage.url``, a folder inside the project) has files git neither tracks nor ignores
  (``git add -A`` would commit them): one problem, whatever the number of files.

Long lists are summarised: past :data:`MAX_LISTED` files of one kind, one line gives the count. Outside a
git repository the git checks are skipped (and said so). Only the standard library, the settings and
``jsonschema`` are used: no database, no storage, no network.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from dataclasses import asdict, dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

from limner.config.scaffold import GITIGNORE_BEGIN, GITIGNORE_END, STORE_COMMENT, gitignore_block, local_store_dir
from limner.config.settings import STATE_DIRNAME, Settings

#: a content-addressed stored object: ``masters/ab/<sha256>.png`` (``limner.keys.content_key``) or a variant,
#: ``variants/<16 hex>-<width>.webp`` (``limner.imaging.derive.variant_name``)
CONTENT_NAME = re.compile(r"(?:^|/)(masters|variants|placeholders)/(?:[0-9a-f]{2}/)?[0-9a-f]{16,64}(?:-[0-9]{1,5})?\.[A-Za-z0-9]+$")
MASTER_COPY = re.compile(r"\.limner-master\.[^/]*$")
IMAGE_SUFFIXES = frozenset({".webp", ".jpg", ".jpeg", ".png", ".avif", ".gif"})
#: at most this many schema errors are listed (the first ones by position in the document)
MAX_SCHEMA_ERRORS = 20
#: at most this many tracked files of one kind are listed one per line; past it, one line gives the count
MAX_LISTED = 20
#: past this many tracked files of the local storage folder, one line names the folder (and `git rm -r --cached` it)
MAX_LISTED_IN_STORE = 3
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
def _git_files(project_dir: Path, *args: str) -> list[str] | str:
    """``git ls-files -z ARGS`` under ``project_dir`` (paths relative to it), or why they cannot be listed."""
    git = shutil.which("git")
    if git is None:
        return "git is not installed"
    proc = subprocess.run([git, "-C", str(project_dir), "--literal-pathspecs", "ls-files", "-z", *args],
                          capture_output=True, timeout=120)
    if proc.returncode != 0:
        message = proc.stderr.decode("utf-8", "replace").strip().splitlines()
        if any("not a git repository" in line for line in message):
            return "not a git repository"
        return "git ls-files failed: " + (message[-1] if message else f"exit {proc.returncode}")
    return [p for p in proc.stdout.decode("utf-8", "surrogateescape").split("\0") if p]


def tracked_files(project_dir: Path) -> list[str] | str:
    """Files git tracks under ``project_dir`` (relative to it), or why they cannot be listed."""
    return _git_files(project_dir)


def unignored_count(project_dir: Path, folder: str, tracked: list[str]) -> int:
    """How many files under ``folder`` (relative to ``project_dir``) git's ignore rules do not ignore: untracked
    ones (``git add -A`` would commit them) and tracked ones (``tracked``: every tracked file) alike."""
    untracked = _git_files(project_dir, "--others", "--exclude-standard", "--", folder)
    in_folder = [name for name in tracked if _under(name, folder)]
    ignored = _git_files(project_dir, "--cached", "--ignored", "--exclude-standard", "--", folder) if in_folder else []
    return ((len(untracked) if isinstance(untracked, list) else 0)
            + len(in_folder) - (len(ignored) if isinstance(ignored, list) else len(in_folder)))


def _store_dir(settings: Settings, root: Path) -> str | None:
    """The local storage folder relative to the project (POSIX), when ``storage.url`` is a folder inside it."""
    return local_store_dir(settings.storage.url, root)


def _under(name: str, folder: str | None) -> bool:
    return bool(folder) and (name + "/").startswith(folder.rstrip("/") + "/")  # type: ignore[union-attr]


def _files(n: int) -> str:
    return f"{n:,} file{'s' if n != 1 else ''}"


def check_tracked(settings: Settings, root: Path, files: list[str]) -> list[Problem]:
    """One problem per tracked file that does not belong in git, in git's order; past
    :data:`MAX_LISTED_IN_STORE`, the local storage folder's files are one line (with the command that untracks
    them all), and other files of one kind are listed up to :data:`MAX_LISTED`, then counted."""
    import os
    import shlex

    store_rel = _store_dir(settings, root)
    found: list[tuple[str, Problem]] = []  # (group, problem): "store", or the problem's kind
    for name in files:
        m = CONTENT_NAME.search(name)
        in_store = _under(name, store_rel)
        if m:
            what = KIND_OF_PREFIX[m.group(1)]
            problem = Problem("tracked-media", name, f"{what} tracked by git: masters and variants belong in "
                                                     f"the storage (git rm --cached {name})")
        elif in_store:
            problem = Problem("tracked-media", name, f"file of the local storage folder tracked by git (git rm --cached {name})")
        elif MASTER_COPY.search(name):
            problem = Problem("tracked-media", name, f"master copy tracked by git (git rm --cached {name})")
        elif name == STATE_DIRNAME or name.startswith(STATE_DIRNAME + "/"):
            problem = Problem("tracked-state", name, "Limner's state (database, cache, local store) tracked by git "
                                                     f"(git rm --cached {name})")
        elif PurePosixPath(name).name == ".env" and "/" not in name:
            problem = Problem("tracked-secret", name, "the secrets file .env is tracked by git: remove it "
                                                      "(git rm --cached .env) and rotate the keys it held")
        else:
            continue
        found.append(("store" if in_store else problem.kind, problem))

    in_store_count = sum(group == "store" for group, _ in found)
    problems: list[Problem] = []
    listed: dict[str, int] = {}
    rest: dict[str, list[str]] = {}
    for group, problem in found:
        if group == "store" and in_store_count > MAX_LISTED_IN_STORE:  # a whole store committed: one line
            if "store" not in listed:
                listed["store"] = in_store_count
                folder = str(store_rel).rstrip("/")
                problems.append(Problem("tracked-media", folder + "/",
                                        f"{_files(in_store_count)} of the local storage folder (masters and variants) "
                                        f"tracked by git: git rm -r -q --cached {shlex.quote(folder)}"))
            continue
        listed[group] = listed.get(group, 0) + 1
        if listed[group] > MAX_LISTED:
            rest.setdefault(problem.kind, []).append(problem.file)
            continue
        problems.append(problem)
    for kind, names in rest.items():
        where = (os.path.commonpath(names) if len(names) > 1 else names[0]) or "."
        problems.append(Problem(kind, where, f"and {len(names):,} more tracked by git, like the ones above "
                                             f"(git ls-files {shlex.quote(where)} lists them)"))
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


def check_placeholders_ignored(settings: Settings, root: Path) -> list[Problem]:
    """One problem when git ignores placeholders the manifest names and does not track: ``git add`` (and the CI
    job's pull request) leaves them out, so the app's repository has a manifest without its placeholders. Limner's
    ``!<placeholder_dir>/`` rule cannot re-include a folder whose parent an app's own rule ignores."""
    manifest_path = settings.path(settings.sync.manifest)
    try:
        manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError):
        return []  # reported by check_manifest
    entries = manifest.get("entries") if isinstance(manifest, dict) else None
    if not isinstance(entries, dict):
        return []
    named: set[str] = set()
    for entry in entries.values():
        value = entry.get("placeholder") if isinstance(entry, dict) else None
        if isinstance(value, str) and value:
            named.update(_rel(c, root) for c in _placeholder_candidates(settings, manifest_path, value) or [])
    folder = settings.path(settings.sync.placeholder_dir)
    if not named or not folder.is_dir():
        return []
    ignored = _git_files(root, "--others", "--ignored", "--exclude-standard", "--", _rel(folder, root))
    hits = [name for name in ignored if name in named] if isinstance(ignored, list) else []
    if not hits:
        return []
    many = len(hits) > 1
    return [Problem("ignored-placeholder", _rel(folder, root),
                    f"{_files(len(hits))} the manifest names {'are' if many else 'is'} ignored by git (like {hits[0]}), "
                    f"so {'they are' if many else 'it is'} never committed and the app's repository lacks "
                    f"{'them' if many else 'it'}: remove the rule that ignores {'them' if many else 'it'} from "
                    f"the app's .gitignore (`git check-ignore -v {hits[0]}` names it)")]


def check_manifest_ignored(settings: Settings, root: Path) -> list[Problem]:
    """One problem for the manifest, and one for its schema, when git ignores it and does not track it: ``git add``
    (and the CI job's pull request) leaves it out, so the app's repository cannot build the images in."""
    manifest_path = settings.path(settings.sync.manifest)
    if not manifest_path.is_file():
        return []
    try:
        manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError):
        manifest = None
    schema_path = _schema_path(manifest_path, manifest)
    files = [_rel(p, root) for p in (manifest_path, schema_path) if p.is_file()]
    files = [f for f in files if not PurePosixPath(f).is_absolute()]  # a file outside the project: not its repository's
    ignored = _git_files(root, "--others", "--ignored", "--exclude-standard", "--", *files) if files else []
    hits = set(ignored) if isinstance(ignored, list) else set()
    return [Problem("ignored-manifest", name, f"ignored by git, so it is never committed and the app's repository "
                                              "lacks it: remove the rule that ignores it from the app's .gitignore "
                                              f"(`git check-ignore -v {name}` names it)")
            for name in files if name in hits]


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


def _without_store_rule(block: str) -> str:
    """The block less its local storage folder rule: that rule is checked by what git does (:func:`check_app`),
    so a store configured differently here (``.env``) than on a CI runner (limner.toml alone) is no error."""
    lines = block.split("\n")
    return "\n".join(line for line in lines if line != STORE_COMMENT and not (line.startswith("/") and line.endswith("/")))


def check_gitignore(settings: Settings, root: Path, unignored: int = 0) -> list[Problem]:
    """The ``.gitignore`` block; ``unignored``: how many files of the local storage folder git neither tracks
    nor ignores (``git add -A`` would commit them), said in the one problem reported."""
    path = root / ".gitignore"
    init = init_command(root)
    store = _store_dir(settings, root)
    try:
        expected = gitignore_block(settings.sync.placeholder_dir, store).rstrip("\n")
    except Exception:  # noqa: BLE001 - an unusable placeholder_dir is reported by the commands that use it
        expected = None
    rule = next((line for line in (expected or "").split("\n") if line.startswith("/") and line.endswith("/")), None)
    ignores = (".limner/, .env, master copies and the local storage folder " + f"{store}/" if rule
               else ".limner/, .env and master copies")
    also = f" ({_files(unignored)} of the local storage folder {store}/ not ignored by git)" if unignored else ""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return [Problem("gitignore", ".gitignore", f"missing{also}: `{init}` writes it with Limner's block "
                                                   f"(ignoring {ignores})")]
    except (OSError, UnicodeDecodeError) as exc:
        return [Problem("gitignore", ".gitignore", f"cannot read it: {exc}")]
    start = text.find(GITIGNORE_BEGIN)
    if start < 0:
        return [Problem("gitignore", ".gitignore", f"Limner's block is missing{also}: run `{init}` to add it "
                                                   f"(it ignores {ignores})")]
    end = text.find(GITIGNORE_END, start)
    if end < 0:
        return [Problem("gitignore", ".gitignore", f"Limner's block is not closed{also}: run `{init}` to rewrite it")]
    block = text[start:end + len(GITIGNORE_END)]
    if expected is None:
        return []
    if _without_store_rule(block) != _without_store_rule(expected):
        return [Problem("gitignore", ".gitignore", "Limner's block is out of date (placeholder folder "
                                                   f"{settings.sync.placeholder_dir!r} or rules changed){also}: "
                                                   f"run `{init}` to rewrite it")]
    if not unignored:
        return []
    loose = f"{_files(unignored)} there {'are' if unignored != 1 else 'is'} not ignored by git"
    in_state = store == STATE_DIRNAME or str(store).startswith(STATE_DIRNAME + "/")
    if in_state or (rule is not None and rule in block.split("\n")):  # the block ignores it: a later rule un-ignores it
        return [Problem("gitignore", ".gitignore", f"the local storage folder {store}/ is un-ignored by a rule after "
                                                   f"Limner's block ({loose}): remove that rule (`git check-ignore -v "
                                                   "--no-index FILE` names it)")]
    if rule is None:  # a store that holds the placeholder folder: git cannot ignore one and keep the other
        return [Problem("gitignore", ".gitignore", f"the local storage folder {store}/ holds the placeholder folder "
                                                   f"{settings.sync.placeholder_dir!r} ({loose}): point storage.url at "
                                                   "a folder of its own (`limner upload --to FOLDER`, then set it)")]
    return [Problem("gitignore", ".gitignore", f"Limner's block does not ignore the local storage folder {store}/ "
                                               f"({loose}): run `{init}` to add it")]


def check_app(settings: Settings) -> CheckReport:
    """Every check on the project of ``settings``; :func:`limner.config.project_folder.not_a_project` is the caller's to ask first."""
    root = settings.project_dir.resolve()
    report = CheckReport(project=str(root))
    files = tracked_files(root)
    unignored = 0
    if isinstance(files, str):
        report.skipped.append(f"git: {files}; tracked masters and variants not checked")
    else:
        report.git = True
        report.problems += check_tracked(settings, root, files)
        store = _store_dir(settings, root)
        if store is not None and (root / store).is_dir():
            unignored = unignored_count(root, store, files)
    report.problems += check_placeholders(settings, root)
    report.problems += check_manifest(settings, root, report)
    if report.git:
        report.problems += check_manifest_ignored(settings, root)
        report.problems += check_placeholders_ignored(settings, root)
    report.problems += check_gitignore(settings, root, unignored)
    return report
