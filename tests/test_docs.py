"""The reference docs cover everything they claim to: commands, options, settings, entry fields, exit codes."""

from __future__ import annotations

import re
import typing
from pathlib import Path

import pytest
import typer.main
from pydantic import BaseModel

import limner.errors
from limner.catalog.models import Entry
from limner.cli.app import app
from limner.config.settings import ProviderSettings, Settings

DOCS = Path(__file__).resolve().parent.parent / "docs"
NOT_SETTINGS = {"project_dir", "config_file"}


def read(name: str) -> str:
    return (DOCS / name).read_text(encoding="utf-8")


def section(text: str, heading: str) -> str:
    """The text under ``heading`` (a whole Markdown heading line) up to the next heading of the same or a higher level."""
    lines = text.splitlines()
    level = len(heading) - len(heading.lstrip("#"))
    try:
        start = next(i for i, line in enumerate(lines) if line.strip() == heading)
    except StopIteration:
        raise AssertionError(f"no heading {heading!r}") from None
    end = len(lines)
    for i in range(start + 1, len(lines)):
        m = re.match(r"^(#+)\s", lines[i])
        if m and len(m.group(1)) <= level:
            end = i
            break
    return "\n".join(lines[start + 1:end])


def commands() -> dict:
    return typer.main.get_command(app).commands  # type: ignore[attr-defined]


def long_flags(command) -> list[str]:  # type: ignore[no-untyped-def]
    flags = []
    for param in command.params:
        for opt in [*param.opts, *getattr(param, "secondary_opts", [])]:
            if opt.startswith("--") and opt != "--help":
                flags.append(opt)
    return flags


def model_of(annotation: typing.Any) -> type[BaseModel] | None:
    return annotation if isinstance(annotation, type) and issubclass(annotation, BaseModel) else None


def setting_keys() -> list[str]:
    keys = []
    for name, field in Settings.model_fields.items():
        if name in NOT_SETTINGS:
            continue
        if name == "providers":
            keys += [f"providers.<name>.{f}" for f in ProviderSettings.model_fields]
            continue
        sub = model_of(field.annotation)
        if sub is None:
            keys.append(name)
        else:
            keys += [f"{name}.{f}" for f in sub.model_fields]
    return keys


def test_there_are_commands_to_check() -> None:
    assert {"init", "plan", "generate", "status", "sync", "check-missing", "providers", "styles"} <= set(commands())


@pytest.mark.parametrize("name", sorted(commands()))
def test_every_command_and_option_is_documented(name: str) -> None:
    text = read("cli.md")
    body = section(text, f"## limner {name}")
    missing = [flag for flag in long_flags(commands()[name]) if f"`{flag}" not in body]
    assert not missing, f"docs/cli.md '## limner {name}' does not mention {missing}"


def test_global_options_are_documented() -> None:
    body = section(read("cli.md"), "## Global options")
    root = typer.main.get_command(app)
    missing = [flag for flag in long_flags(root) if f"`{flag}" not in body]
    assert not missing, f"docs/cli.md '## Global options' does not mention {missing}"


def test_json_output_shapes_are_documented() -> None:
    text = read("cli.md")
    for heading in ("### plan --json", "### generate --json", "### status --json"):
        assert "```json" in section(text, heading), heading


def test_there_are_settings_to_check() -> None:
    keys = setting_keys()
    assert {"catalog", "provider", "plugins", "generate.concurrency", "sync.placeholder_dir", "providers.<name>.model"} <= set(keys)


@pytest.mark.parametrize("key", setting_keys())
def test_every_setting_is_documented(key: str) -> None:
    assert f"`{key}`" in read("configuration.md"), f"docs/configuration.md does not document `{key}`"


def test_documented_setting_keys_exist() -> None:
    """Every `section.field` key in a configuration table names a real setting (no stale docs)."""
    known = set(setting_keys()) | {"providers", "styles", "styles.<name>"}
    rows = re.findall(r"^\| `([a-z_<>.]+)` \|", read("configuration.md"), re.M)
    assert rows
    unknown = sorted(set(rows) - known)
    assert not unknown, f"docs/configuration.md documents unknown settings {unknown}"


@pytest.mark.parametrize("field", sorted(Entry.model_fields))
def test_every_entry_field_is_documented(field: str) -> None:
    assert f"`{field}`" in read("catalogue.md"), f"docs/catalogue.md does not document the entry field `{field}`"


def exit_codes() -> dict[str, int]:
    return {name: value for name, value in vars(limner.errors).items() if name.startswith("EXIT_")}


def test_there_are_exit_codes_to_check() -> None:
    assert set(exit_codes().values()) == {0, 1, 2, 3, 4, 130}


@pytest.mark.parametrize("name", sorted(exit_codes()))
def test_every_exit_code_is_documented(name: str) -> None:
    value = exit_codes()[name]
    body = section(read("cli.md"), "## Exit codes")
    assert re.search(rf"^\| {value} \| `{name}` \|", body, re.M), f"docs/cli.md 'Exit codes' lacks a row for {value} ({name})"


def test_every_style_field_is_documented() -> None:
    from limner.styles.models import Style

    text = read("styles.md")
    missing = [f for f in Style.model_fields if f"`{f}`" not in text]
    assert not missing, f"docs/styles.md does not document style fields {missing}"


def anchors(text: str) -> set[str]:
    """GitHub's anchors for a Markdown file's headings."""
    found = set()
    text = re.sub(r"^```.*?^```", "", text, flags=re.M | re.S)  # "# comments" in code blocks are not headings
    for heading in re.findall(r"^#+\s+(.+)$", text, re.M):
        heading = heading.replace("&lt;", "").replace("&gt;", "")
        slug = re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")
        found.add(slug)
    return found


DOC_FILES = ("cli.md", "configuration.md", "catalogue.md", "styles.md", "plugins.md", "manifest.md", "storage.md",
             "supabase.md", "providers.md", "architecture.md", "benchmarks.md")


@pytest.mark.parametrize("name", DOC_FILES)
def test_links_between_docs_resolve(name: str) -> None:
    text = read(name)
    for target, anchor in re.findall(r"\]\(([a-z-]+\.md)?(?:#([a-z0-9-]+))?\)", text):
        if not target and not anchor:
            continue
        path = DOCS / (target or name)
        assert path.is_file(), f"{name} links to missing {target}"
        if anchor:
            assert anchor in anchors(path.read_text(encoding="utf-8")), f"{name} links to missing anchor {target or name}#{anchor}"
