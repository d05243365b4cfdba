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
from limner.providers.builtin import BUILTIN_PROVIDERS

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
    """Every command by name; a group's subcommands as ``"group sub"`` (documented in ``## limner group``)."""
    found = {}
    for name, command in typer.main.get_command(app).commands.items():  # type: ignore[attr-defined]
        found[name] = command
        for sub, subcommand in getattr(command, "commands", {}).items():
            found[f"{name} {sub}"] = subcommand
    return found


def command_section(text: str, name: str) -> str:
    """The part of docs/cli.md documenting command ``name`` (a subcommand: its group's section)."""
    return section(text, f"## limner {name.split()[0]}")


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
    body = command_section(text, name)
    if " " in name:
        assert f"limner {name}" in body, f"docs/cli.md '## limner {name.split()[0]}' does not show `limner {name}`"
    missing = [flag for flag in long_flags(commands()[name]) if f"`{flag}" not in body]
    assert not missing, f"docs/cli.md '## limner {name.split()[0]}' does not mention {missing} (of `limner {name}`)"


def test_global_options_are_documented() -> None:
    body = section(read("cli.md"), "## Global options")
    root = typer.main.get_command(app)
    missing = [flag for flag in long_flags(root) if f"`{flag}" not in body]
    assert not missing, f"docs/cli.md '## Global options' does not mention {missing}"


def test_json_output_shapes_are_documented() -> None:
    text = read("cli.md")
    for heading in ("### plan --json", "### generate --json", "### status --json"):
        assert "```json" in section(text, heading), heading


# --- every key a `--json` command prints is documented in that command's section of docs/cli.md ---

#: per command with --json: the runs (arguments after the command) the fixture below makes, and the
#: sections of docs/cli.md that document their output ("## limner X" and "### X --json" when present)
JSON_RUNS: dict[str, list[tuple[str, ...]]] = {
    "plan": [()],
    "generate": [("--dry-run",), ("--no-progress",)],
    "status": [()],
    "sync": [()],
    "check-missing": [()],
    "providers": [()],
    "styles": [(), ("oil-painting",)],
    "costs": [()],
    "doctor": [()],
    "gc": [()],
    "upload": [("--to", "copy", "--no-progress")],
    "adopt-placeholders": [("frontend/public/images/events", "--dry-run")],
    "check": [()],
    "review list": [(), ("--entry", "event-000")],
    "review approve": [("1", "--note", "ok")],
    "review reject": [("2", "--note", "wrong century")],
    "review pin": [("1",)],
    "review override": [("event-001", "--seed", "5")],
    "review regenerate": [("event-001",)],
}
#: commands that need PostgreSQL (the queue): their JSON keys are checked by tests/test_queue.py
CHECKED_ON_POSTGRES = {"worker", "workers", "queue", "retry"}
#: a dry run prints the plan: its keys are documented under plan
ALSO_DOCUMENTED_UNDER = {("generate", "--dry-run"): ["plan"]}


def json_commands() -> set[str]:
    return {name for name, command in commands().items() if "--json" in long_flags(command)}


def test_every_json_command_is_run_by_the_key_check() -> None:
    assert set(JSON_RUNS) | CHECKED_ON_POSTGRES == json_commands(), "add the command to JSON_RUNS (and its keys to docs/cli.md)"


def json_keys(data: typing.Any) -> set[str]:
    """Top-level keys of an object (of each object, for a list), and the keys of objects in list values."""
    keys: set[str] = set()
    for obj in data if isinstance(data, list) else [data]:
        assert isinstance(obj, dict), obj
        keys |= set(obj)
        for value in obj.values():
            if isinstance(value, list):
                for item in value:
                    if isinstance(item, dict):
                        keys |= set(item)
    return keys


def json_docs(name: str) -> str:
    text = read("cli.md")
    body = command_section(text, name)
    if re.search(rf"^### {re.escape(name)} --json$", text, re.M):
        body += "\n" + section(text, f"### {name} --json")
    return body


def documented(key: str, docs: str) -> bool:
    return any(form in docs for form in (f"`{key}`", f"`{key}[]`", f'"{key}"'))


@pytest.fixture(scope="module")
def json_outputs(tmp_path_factory: pytest.TempPathFactory) -> dict[tuple[str, ...], typing.Any]:
    """Each run of JSON_RUNS on a small project with the fake provider: published entries, a paid call,
    a failure, a placeholder folder to adopt from, and a stray stored object for gc."""
    from projects import ProjectDir, make_entries

    p = ProjectDir(tmp_path_factory.mktemp("json-keys") / "proj")
    p.root.mkdir()
    p.write_config('price_usd = 0.01\nrefuse_ids = ["event-003"]\n')  # under [providers.fake], written last
    p.write_catalog(make_entries(4))
    outputs: dict[tuple[str, ...], typing.Any] = {}

    def run(name: str, *args: str) -> None:
        outputs[(name, *args)] = p.run_json(*name.split(), *args)

    run("plan")
    run("generate", "--dry-run")
    run("generate", "--no-progress")
    for name in ("status", "sync", "check-missing", "providers", "styles", "costs", "doctor"):
        run(name)
    run("styles", "oil-painting")
    stray = p.root / ".limner" / "media" / "masters" / "stray.png"
    stray.parent.mkdir(parents=True, exist_ok=True)
    stray.write_bytes(b"not referenced by any render")
    run("gc")
    run("upload", "--to", "copy", "--no-progress")
    app_dir = p.root / "frontend" / "public" / "images" / "events"
    (app_dir / "not-an-entry.webp").write_bytes((app_dir / "event-000.webp").read_bytes())
    (app_dir / "event-003.jpg").write_bytes(b"not an image")
    run("adopt-placeholders", "frontend/public/images/events", "--dry-run")
    run("check")  # no .gitignore here: a problem, so the keys of `problems[]` are checked too
    for name in ("review list", "review approve", "review reject", "review pin", "review override",
                 "review regenerate"):  # decisions on the renders above (ids 1 and 2), then one more call
        for args in JSON_RUNS[name]:
            run(name, *args)
    assert set(outputs) == {(name, *args) for name, runs in JSON_RUNS.items() for args in runs}
    return outputs


@pytest.mark.parametrize("run", [(name, *args) for name, runs in JSON_RUNS.items() for args in runs], ids=" ".join)
def test_every_json_key_is_documented(json_outputs: dict[tuple[str, ...], typing.Any], run: tuple[str, ...]) -> None:
    name = run[0]
    keys = json_keys(json_outputs[run])
    assert keys, f"`limner {' '.join(run)} --json` printed no keys to check"
    docs = "\n".join(json_docs(n) for n in [name, *ALSO_DOCUMENTED_UNDER.get(run, [])])
    missing = sorted(k for k in keys if not documented(k, docs))
    assert not missing, f"`limner {' '.join(run)} --json` prints keys that docs/cli.md '## limner {name}' does not list: {missing}"


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


@pytest.mark.parametrize("name", [spec.name for spec in BUILTIN_PROVIDERS])
def test_every_setting_a_built_in_provider_takes_is_documented(name: str) -> None:
    """A key of ``[providers.<name>]`` the provider does not declare is an error: every one it takes is
    documented in its section of docs/providers.md (or, for those every hosted or self-hosted one takes, under
    Common rules)."""
    from limner.registry import provider_class

    text = read("providers.md")
    heading = next((line for line in text.splitlines() if re.match(rf"## {re.escape(name)}( |$)", line)), None)
    assert heading, f"docs/providers.md has no section for {name}"
    where = section(text, heading) + section(text, "## Common rules")
    missing = sorted(key for key in provider_class(name).accepted_settings if f"`{key}`" not in where)
    assert not missing, f"docs/providers.md does not document the settings {missing} of {name}"


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
             "supabase.md", "providers.md", "architecture.md", "benchmarks.md", "ci.md", "migration.md", "frontend.md",
             "local-models.md", "scaling.md")


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


def test_docs_point_the_app_at_the_ports_the_servers_use() -> None:
    """`limner media serve` and `limner serve` default to different ports; an example that points the app's
    media base at the studio's port loads every image from the wrong server."""
    import inspect

    from limner.storage.serve import MediaServer

    media_port = inspect.signature(MediaServer.__init__).parameters["port"].default
    found = [(p.name, int(port)) for p in DOCS.glob("*.md")
             for port in re.findall(r"LIMNER_MEDIA_BASE=https?://(?:127\.0\.0\.1|localhost):(\d+)", p.read_text())]
    assert found and all(port == media_port for _, port in found), found


#: the example of each "### X --json" section of docs/cli.md, and the run of JSON_RUNS whose output it shows
JSON_EXAMPLES = {"plan": ("plan",), "generate": ("generate", "--no-progress"), "status": ("status",)}


@pytest.mark.parametrize("name", sorted(JSON_EXAMPLES))
def test_json_examples_have_the_shape_of_the_output(json_outputs: dict[tuple[str, ...], typing.Any], name: str) -> None:
    """The example object has the keys the command prints (no more, no fewer), and so do the objects in its
    lists; `by_state` has every state and `timeline` only phases a run reaches."""
    import json

    body = section(read("cli.md"), f"### {name} --json")
    example = json.loads(re.search(r"^```json\n(.*?)^```", body, re.M | re.S).group(1))  # type: ignore[union-attr]
    real = json_outputs[JSON_EXAMPLES[name]]
    assert sorted(example) == sorted(real), f"docs/cli.md '### {name} --json': the example's keys differ from the output's"
    for key, value in example.items():
        if isinstance(value, list) and value and isinstance(value[0], dict):
            shown = {k for item in value for k in item}
            printed = {k for item in real[key] for k in item}
            assert shown == printed, f"docs/cli.md '### {name} --json': keys of {key}[] differ: {shown} vs {printed}"
    if "by_state" in example:
        assert sorted(example["by_state"]) == sorted(real["by_state"])
    if "timeline" in example:
        assert set(real["timeline"]) <= set(example["timeline"]), "a timeline phase the example lacks"


@pytest.mark.parametrize("name", sorted(commands()))
def test_every_argument_and_short_option_is_documented(name: str) -> None:
    """A positional argument under the name `--help` shows, upper-cased (`DIRECTORY`, `RENDER_ID`), and each
    short option (`-p`, `-j`) with its long one."""
    body = command_section(read("cli.md"), name)
    missing = []
    for param in commands()[name].params:
        if param.param_type_name == "argument":
            shown = (param.metavar or param.name or "").upper().rstrip(".")
            if f"`{shown}" not in body and f" {shown}" not in body:
                missing.append(shown)
        for opt in [*param.opts, *getattr(param, "secondary_opts", [])]:
            if re.fullmatch(r"-[a-zA-Z]", opt) and f"`{opt}" not in body:
                missing.append(opt)
    assert not missing, f"docs/cli.md '## limner {name.split()[0]}' does not mention {missing} (of `limner {name}`)"


def shape_keys(row: str) -> set[str]:
    """The quoted keys at the top of the first `{...}` shape in a table row (`{"ok", "problems": [{"kind"}]}` gives
    ok and problems)."""
    start = row.find("{")
    if start < 0:
        return set()
    keys, depth, i = set(), 0, start
    while i < len(row):
        ch = row[i]
        if ch in "{[":
            depth += 1
        elif ch in "}]":
            depth -= 1
            if depth == 0:
                break
        elif ch == '"' and depth == 1:
            end = row.index('"', i + 1)
            keys.add(row[i + 1:end])
            i = end
        i += 1
    return keys


@pytest.mark.parametrize("run", [(name, *args) for name, runs in JSON_RUNS.items() for args in runs], ids=" ".join)
def test_documented_json_shapes_name_only_printed_keys(json_outputs: dict[tuple[str, ...], typing.Any], run: tuple[str, ...]) -> None:
    """The `{"a", "b": ...}` shape a `--json` row of docs/cli.md gives names no key the command does not print."""
    name = run[0]
    rows = [line for line in command_section(read("cli.md"), name).splitlines() if line.startswith("| `--json`")]
    shown = set().union(*(shape_keys(row) for row in rows)) if rows else set()
    if name.startswith("review ") and rows:  # one row for the group: the keys of this subcommand's part of it
        return
    printed = json_keys(json_outputs[run])
    assert not shown - printed, f"docs/cli.md '## limner {name}' shows keys `limner {' '.join(run)} --json` does not print: {sorted(shown - printed)}"
