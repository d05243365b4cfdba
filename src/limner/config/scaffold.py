"""``limner init``: scaffold a project. Idempotent: existing files are kept, the .gitignore block is rewritten."""

from __future__ import annotations

import posixpath
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from limner.errors import ConfigError, LimnerError
from limner.registry import provider_specs

GITIGNORE_BEGIN = "# >>> limner (managed by `limner init`; edits inside are replaced) >>>"
GITIGNORE_END = "# <<< limner <<<"

LIMNER_TOML = """\
# Limner configuration. Every setting is documented in docs/configuration.md.
# Environment variables override this file: LIMNER_CATALOG, LIMNER_PROVIDER,
# LIMNER_DATABASE_URL, LIMNER_STORAGE_URL, ... Secrets go in .env, never here.

catalog = "catalog.yaml"
# provider = "sketch"          # offline default; see `limner providers`

[project]
default_style = "house-style"
# era_styles = { medieval = "illuminated-manuscript", modern = "documentary-photo" }

[generate]
size = 1024                    # long side in pixels
aspect = "3:2"
concurrency = 4
max_attempts = 4
# budget_usd = 5.0

[database]
url = "sqlite:///.limner/limner.db"

[storage]
url = ".limner/media"          # masters and variants (never committed)
# public_base_url = "https://images.example.org"
# cdn_base_url = "https://cdn.example.org"

[sync]
placeholder_dir = "frontend/public/images/events"
placeholder_url_prefix = "/images/events"
placeholder_format = "webp"
manifest = "frontend/src/data/limner-manifest.json"
"""

SAMPLE_STYLE = """\
# A project style. Templates are sandboxed Jinja2; entry fields are variables:
# {{ title }}, {{ year }}, {{ year_label }}, {{ date }}, {{ era }}, {{ description }},
# {{ tags }}, and any extra field of the entry. Bump `version` when you change the look.
version = "1"
description = "The house look: a warm, detailed history illustration."
positive = \"\"\"Detailed history illustration of {{ title }}{% if year_label %}, {{ year_label }}{% endif %}.
{% if description %}{{ description }}{% endif %} Warm natural light, rich texture, historically accurate.\"\"\"
negative = "text, watermark, signature, blurry, deformed hands"
aspect = "3:2"
"""

SAMPLE_CATALOG = """\
# Each entry becomes one image. See docs/catalogue.md for every field.
entries:
  - id: first-entry
    title: The first entry
    year: 1948
    description: A short factual description the prompt template can use.
    tags: [example]
"""


@dataclass
class ScaffoldResult:
    created: list[str] = field(default_factory=list)
    kept: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def secret_names() -> list[str]:
    """Every environment variable a registered provider reads (from its spec, so uninstalled ones count too)."""
    names: set[str] = set()
    for spec in provider_specs().values():
        names.update(spec.env)
    return sorted(names)


def env_example() -> str:
    lines = ["# Secrets for Limner: copy to .env and fill in. Never commit .env.", "# Only names are listed here, never values."]
    names = secret_names()
    lines += [f"{n}=" for n in names] or ["# (the installed providers need no secrets)"]
    return "\n".join(lines) + "\n"


#: characters with a meaning in a .gitignore pattern (git's wildmatch): escaped with a backslash
GITIGNORE_SPECIAL = frozenset("\\*?[")


def check_placeholder_dir(placeholder_dir: str, *, name: str = "--placeholder-dir", inside: bool = True) -> str:
    """The ``--placeholder-dir`` value (``name``: what the message calls it), refused (exit 2) when it cannot
    be written as one path, or (``inside``) when it is not a folder inside the project.

    A line break would end the TOML string and the .gitignore rule and start new ones (a
    ``[providers.…]`` table, a ``!.env`` rule), so control characters are refused outright. An absolute
    path, one under ``~`` or one that leaves the project with ``..`` cannot be un-ignored by the project's
    .gitignore (``!/etc/foo/`` would name the project's own ``etc/foo``).
    """
    bad = sorted({c for c in placeholder_dir if ord(c) < 32 or ord(c) == 127})
    if bad:
        raise ConfigError(f"{name} {placeholder_dir!r} contains control characters ({', '.join(repr(c) for c in bad)})",
                          hint="give a folder path on one line, such as frontend/public/images/events")
    if not placeholder_dir.strip().rstrip("/"):
        raise ConfigError(f"{name} {placeholder_dir!r} names no folder",
                          hint="give a folder relative to the project, such as frontend/public/images/events")
    if inside and not is_inside_project(placeholder_dir):
        raise ConfigError(f"{name} {placeholder_dir!r} is not a folder inside the project: the placeholder folder "
                          "is relative to the project directory",
                          hint="give a folder relative to the project, such as frontend/public/images/events")
    return placeholder_dir


def is_inside_project(placeholder_dir: str) -> bool:
    """Whether ``placeholder_dir`` names a folder below the project directory (what ``settings.path`` makes
    of it): not absolute, not under ``~``, not leaving the project with ``..``, not the project itself."""
    if placeholder_dir.startswith("~") or PurePosixPath(placeholder_dir).is_absolute():
        return False
    normal = posixpath.normpath(placeholder_dir)
    return normal != "." and normal != ".." and not normal.startswith("../")


def gitignore_literal(path: str) -> str:
    """``path`` as a .gitignore pattern that matches exactly that path: wildcards, backslashes and a
    leading ``#`` or ``!`` are escaped, so the value can neither widen the rule nor turn it into
    a comment or a negation. (Line breaks cannot be escaped: :func:`check_placeholder_dir` refuses them.)"""
    escaped = "".join("\\" + c if c in GITIGNORE_SPECIAL else c for c in path)
    return "\\" + escaped if escaped[:1] in ("#", "!") else escaped


#: the folders web frameworks serve at the site's root (Vite, Next.js, Create React App: ``public/``;
#: SvelteKit, Hugo, Gatsby: ``static/``)
SERVED_ROOTS = ("public", "static")
DEFAULT_URL_PREFIX = "/images/events"


def served_url_prefix(placeholder_dir: str) -> str | None:
    """The URL path at which the app serves ``placeholder_dir``: what follows its ``public/`` or ``static/``
    folder (``frontend/public/img/timeline`` -> ``/img/timeline``); None when it has neither."""
    parts = [p for p in posixpath.normpath(placeholder_dir.replace("\\", "/")).split("/") if p not in ("", ".")]
    for i, part in enumerate(parts):
        if part in SERVED_ROOTS:
            return "/" + "/".join(parts[i + 1:])
    return None


def limner_toml(placeholder_dir: str, notes: list[str] | None = None) -> str:
    """The commented ``limner.toml``, with ``sync.placeholder_dir`` written by a TOML library (quoted and escaped),
    and ``sync.placeholder_url_prefix`` the URL path that folder is served at (a note in ``notes`` when that
    cannot be told)."""
    import tomlkit

    doc = tomlkit.parse(LIMNER_TOML)
    doc["sync"]["placeholder_dir"] = placeholder_dir  # type: ignore[index]
    prefix = served_url_prefix(placeholder_dir)
    if prefix is not None:
        doc["sync"]["placeholder_url_prefix"] = prefix  # type: ignore[index]
    elif notes is not None:
        notes.append(f"the manifest points at placeholders under {DEFAULT_URL_PREFIX}/; set sync.placeholder_url_prefix "
                     f"in limner.toml to the URL path at which your app serves {placeholder_dir}")
    return tomlkit.dumps(doc)


#: the comment above the rule of a local storage folder outside ``.limner/`` in Limner's .gitignore block
STORE_COMMENT = "# the local storage folder (storage.url): masters and variants"


def local_store_dir(storage_url: str, project_dir: Path) -> str | None:
    """The local storage folder of ``storage_url`` (a folder path or ``file://`` URL, resolved against
    ``project_dir`` as the storage itself resolves it) relative to the project, as a POSIX path; None for a
    remote store (``s3://``, ``supabase://``, ...), a folder outside the project, or the project itself."""
    from urllib.parse import urlsplit

    scheme = urlsplit(storage_url).scheme
    if len(scheme) > 1 and scheme != "file":  # "C:\\" is a path, not a scheme
        return None
    raw = storage_url[len("file://"):] if storage_url.startswith("file://") else storage_url
    if not raw.strip() or any(ord(c) < 32 or ord(c) == 127 for c in raw):
        return None
    root = project_dir.resolve()
    path = Path(raw).expanduser()
    try:
        rel = (path if path.is_absolute() else root / path).resolve().relative_to(root).as_posix()
    except (ValueError, OSError, RuntimeError):  # outside the project, or an unresolvable link loop
        return None
    return None if rel in ("", ".") else rel


def store_rule(placeholder_dir: str, store_dir: str | None) -> list[str]:
    """The lines of Limner's block that ignore the local storage folder ``store_dir`` (relative to the
    project, from :func:`local_store_dir`): none when there is none, when it is inside ``.limner/`` (ignored
    already), or when it holds the placeholder folder (git cannot un-ignore a folder inside an ignored one)."""
    if not store_dir:
        return []
    store = posixpath.normpath(store_dir)
    if store in (".", "..") or store.startswith("../") or store == ".limner" or store.startswith(".limner/"):
        return []
    placeholders = posixpath.normpath(placeholder_dir)
    if placeholders == store or placeholders.startswith(store + "/"):
        return []
    return [STORE_COMMENT, f"/{gitignore_literal(store)}/"]


def gitignore_block(placeholder_dir: str, store_dir: str | None = None) -> str:
    """Limner's .gitignore block for a project whose placeholders go to ``placeholder_dir``: the folder is
    un-ignored when it is inside the project (a .gitignore has no say over a folder outside it); a local
    storage folder ``store_dir`` inside the project but outside ``.limner/`` is ignored (:func:`store_rule`)."""
    check_placeholder_dir(placeholder_dir, name="sync.placeholder_dir", inside=False)
    keep = []
    if is_inside_project(placeholder_dir):
        keep = ["# keep the small git placeholders", f"!{gitignore_literal(posixpath.normpath(placeholder_dir))}/"]
    return "\n".join([
        GITIGNORE_BEGIN,
        "# Limner's local state, cache and full-resolution masters: never commit them",
        ".limner/",
        ".env",
        "*.limner-master.*",
        *store_rule(placeholder_dir, store_dir),
        *keep,
        GITIGNORE_END,
    ]) + "\n"


def update_gitignore(path: Path, block: str) -> bool:
    """Put ``block`` in the .gitignore at ``path`` in place of Limner's block (appended when there is none);
    True when the file changed. A block whose end marker was deleted is replaced up to its last line of
    Limner's rules, so a re-run leaves one block."""
    text = path.read_text(encoding="utf-8") if path.exists() else ""
    start = text.find(GITIGNORE_BEGIN)
    if start >= 0:
        end = text.find(GITIGNORE_END, start)
        if end >= 0:
            end += len(GITIGNORE_END)
        else:  # not closed: the block's own lines (any version's) end it
            end = start + len(GITIGNORE_BEGIN)
            for line in text[end:].split("\n")[1:]:
                if not (line.startswith("# ") or line in (".limner/", ".env", "*.limner-master.*")
                        or (line.startswith(("!", "/")) and line.endswith("/"))):
                    break
                end += 1 + len(line)
        rest = text[end:]
        new = text[:start] + block.rstrip("\n") + (rest if rest.startswith("\n") else "\n" + rest)
    else:
        new = text + ("" if not text or text.endswith("\n") else "\n") + ("\n" if text else "") + block
    if new == text:
        return False
    path.write_text(new, encoding="utf-8")
    return True


def _refuse_unwritable(root: Path, paths: list[Path]) -> None:
    """Refuse (exit 2, before anything is written) a project folder that is a file, or a file of the
    scaffold whose place is taken by a folder (or whose folder is a file)."""
    if root.exists() and not root.is_dir():
        raise ConfigError(f"{root}: not a folder, so no project can be made in it",
                          hint="give `limner init` a folder (it is created when it does not exist)")
    nearest = next((p for p in [root, *root.parents] if p.exists()), None)
    if nearest is not None and not nearest.is_dir():
        raise ConfigError(f"{root}: cannot create the project folder: {nearest} is not a folder",
                          hint="give `limner init` a folder (it is created when it does not exist)")
    for path in paths:
        if path.exists() and not path.is_file():
            raise ConfigError(f"{path}: not a file, so `limner init` cannot write it; nothing was changed",
                              hint="move it out of the way and re-run `limner init`")
        if path.parent.exists() and not path.parent.is_dir():
            raise ConfigError(f"{path.parent}: not a folder, so `limner init` cannot write {path.name} in it; "
                              "nothing was changed", hint="move it out of the way and re-run `limner init`")


def scaffold(root: Path, *, placeholder_dir: str = "frontend/public/images/events",
             configured: bool = False, store_dir: str | None = None) -> ScaffoldResult:
    """Write the project's files into ``root`` (created when needed), keeping the existing ones; Limner's
    block of .gitignore follows ``placeholder_dir``: the ``--placeholder-dir`` given, a folder inside the
    project, or (``configured``) the ``sync.placeholder_dir`` of the project's existing limner.toml, as
    ``limner check`` expects it; and ignores ``store_dir``, the local storage folder (relative to ``root``,
    see :func:`local_store_dir`) when it is not inside ``.limner/``. A folder that cannot be written is an
    error naming it: exit 2 when nothing was written yet."""
    # before anything is written
    check_placeholder_dir(placeholder_dir, **({"name": "sync.placeholder_dir", "inside": False} if configured else {}))
    block = gitignore_block(placeholder_dir, store_dir)
    result = ScaffoldResult()
    toml_notes: list[str] = []
    files = {
        root / "limner.toml": limner_toml(placeholder_dir, toml_notes),
        root / ".env.example": env_example(),
        root / "styles" / "house-style.toml": SAMPLE_STYLE,
        root / "catalog.yaml": SAMPLE_CATALOG,
    }
    gi = root / ".gitignore"
    _refuse_unwritable(root, [*files, gi])
    try:
        root.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigError(f"{root}: cannot create the project folder: {exc.strerror or exc}",
                          hint="give `limner init` a folder you can write to") from None
    try:
        for path, content in files.items():
            rel = str(path.relative_to(root))
            if path.exists():
                result.kept.append(rel)
                continue
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(content, encoding="utf-8")
            result.created.append(rel)
            if rel == "limner.toml":
                result.notes += toml_notes
        existed = gi.exists()
        if update_gitignore(gi, block):
            (result.updated if existed else result.created).append(".gitignore")
        else:
            result.kept.append(".gitignore")
    except (OSError, UnicodeDecodeError) as exc:
        where = getattr(exc, "filename", None) or root
        done = ", ".join(result.created + result.updated)
        error = ConfigError if not done else LimnerError
        raise error(f"{where}: cannot write the project's files: {getattr(exc, 'strerror', None) or exc}"
                    + (f" (already written: {done})" if done else "; nothing was changed"),
                    hint="give `limner init` a folder you can write to") from None
    return result
