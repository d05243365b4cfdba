"""``limner init``: scaffold a project. Idempotent: existing files are kept, the .gitignore block is rewritten."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from limner.errors import ConfigError
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


def check_placeholder_dir(placeholder_dir: str) -> str:
    """The ``--placeholder-dir`` value, refused (exit 2) when it cannot be written as one path.

    A line break would end the TOML string and the .gitignore rule and start new ones (a
    ``[providers.…]`` table, a ``!.env`` rule), so control characters are refused outright.
    """
    bad = sorted({c for c in placeholder_dir if ord(c) < 32 or ord(c) == 127})
    if bad:
        raise ConfigError(f"--placeholder-dir {placeholder_dir!r} contains control characters ({', '.join(repr(c) for c in bad)})",
                          hint="give a folder path on one line, such as frontend/public/images/events")
    if not placeholder_dir.strip().rstrip("/"):
        raise ConfigError(f"--placeholder-dir {placeholder_dir!r} names no folder",
                          hint="give a folder relative to the project, such as frontend/public/images/events")
    return placeholder_dir


def gitignore_literal(path: str) -> str:
    """``path`` as a .gitignore pattern that matches exactly that path: wildcards, backslashes and a
    leading ``#`` or ``!`` are escaped, so the value can neither widen the rule nor turn it into
    a comment or a negation. (Line breaks cannot be escaped: :func:`check_placeholder_dir` refuses them.)"""
    escaped = "".join("\\" + c if c in GITIGNORE_SPECIAL else c for c in path)
    return "\\" + escaped if escaped[:1] in ("#", "!") else escaped


def limner_toml(placeholder_dir: str) -> str:
    """The commented ``limner.toml``, with ``sync.placeholder_dir`` written by a TOML library (quoted and escaped)."""
    import tomlkit

    doc = tomlkit.parse(LIMNER_TOML)
    doc["sync"]["placeholder_dir"] = placeholder_dir  # type: ignore[index]
    return tomlkit.dumps(doc)


def gitignore_block(placeholder_dir: str) -> str:
    check_placeholder_dir(placeholder_dir)
    return "\n".join([
        GITIGNORE_BEGIN,
        "# Limner's local state, cache and full-resolution masters: never commit them",
        ".limner/",
        ".env",
        "*.limner-master.*",
        "# keep the small git placeholders",
        f"!{gitignore_literal(placeholder_dir.rstrip('/'))}/",
        GITIGNORE_END,
    ]) + "\n"


def update_gitignore(path: Path, block: str) -> bool:
    text = path.read_text(encoding="utf-8") if path.exists() else ""
    if GITIGNORE_BEGIN in text and GITIGNORE_END in text:
        start = text.index(GITIGNORE_BEGIN)
        end = text.index(GITIGNORE_END, start) + len(GITIGNORE_END)
        rest = text[end:]
        new = text[:start] + block.rstrip("\n") + (rest if rest.startswith("\n") else "\n" + rest)
    else:
        new = text + ("" if not text or text.endswith("\n") else "\n") + ("\n" if text else "") + block
    if new == text:
        return False
    path.write_text(new, encoding="utf-8")
    return True


def scaffold(root: Path, *, placeholder_dir: str = "frontend/public/images/events") -> ScaffoldResult:
    check_placeholder_dir(placeholder_dir)  # before anything is written
    result = ScaffoldResult()
    root.mkdir(parents=True, exist_ok=True)
    files = {
        root / "limner.toml": limner_toml(placeholder_dir),
        root / ".env.example": env_example(),
        root / "styles" / "house-style.toml": SAMPLE_STYLE,
        root / "catalog.yaml": SAMPLE_CATALOG,
    }
    for path, content in files.items():
        rel = str(path.relative_to(root))
        if path.exists():
            result.kept.append(rel)
            continue
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(content, encoding="utf-8")
        result.created.append(rel)
    gi = root / ".gitignore"
    existed = gi.exists()
    if update_gitignore(gi, gitignore_block(placeholder_dir)):
        (result.updated if existed else result.created).append(".gitignore")
    else:
        result.kept.append(".gitignore")
    return result
