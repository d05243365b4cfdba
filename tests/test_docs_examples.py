"""The examples in README.md and docs/ work when pasted: every `limner ...` command line parses with the real
command-line parser, every `limner.toml` snippet loads with the real settings loader (and its styles with the
style loader), what the docs say `limner init` writes is what it writes, and every relative link resolves.

tests/test_docs.py checks the other direction (everything the code has is documented); this file checks that
what the docs show exists. Everything here runs in-process, without a provider or a subprocess."""

from __future__ import annotations

import contextlib
import functools
import io
import re
import shlex
import tomllib
import typing
from pathlib import Path

import pytest
import typer
import typer.main

from limner.cli.app import app
from test_docs import anchors

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
PAGES = [ROOT / "README.md", *sorted(DOCS.rglob("*.md"))]
SHELL_BLOCKS = ("bash", "sh", "shell", "console", "ini")  # ini: a systemd unit's ExecStart=
OPERATORS = {"&&", "||", "|", ";", "&"}


def page_id(path: Path) -> str:
    return str(path.relative_to(ROOT))


def fenced(text: str, languages: tuple[str, ...]) -> list[tuple[int, str, str]]:
    """(line of the block's first line, language, body) of each fenced block in one of ``languages``."""
    found = []
    for m in re.finditer(r"^```([\w-]*)[^\n]*\n(.*?)^```", text, re.M | re.S):
        if m.group(1) in languages:
            found.append((text[:m.start()].count("\n") + 2, m.group(1), m.group(2)))
    return found


def without_blocks(text: str) -> str:
    """The prose: fenced blocks blanked out (line numbers kept)."""
    return re.sub(r"^```.*?^```", lambda m: "\n" * m.group(0).count("\n"), text, flags=re.M | re.S)


def limner_argvs(line: str) -> list[list[str]]:
    """The arguments of each `limner` command in one shell line (pipes, `&&`, `||`, `;`, `&`, a leading
    `NAME=value`, a `$ ` prompt, a trailing `# comment` and a path to the executable allowed)."""
    line = re.sub(r"^\s*ExecStart=", "", line)
    found, segment = [], []
    for token in [*shlex.split(line, comments=True), ";"]:
        if token not in OPERATORS:
            segment.append(token)
            continue
        while segment and (segment[0] == "$" or re.match(r"^[A-Za-z_][A-Za-z0-9_]*=", segment[0])):  # a prompt
            segment = segment[1:]
        if segment and (segment[0] == "limner" or segment[0].endswith("/limner")):
            found.append(segment[1:])
        segment = []
    return found


@functools.cache
def cli() -> typing.Any:
    return typer.main.get_command(app)


def parse_error(argv: list[str]) -> tuple[str, str] | None:
    """``(kind, message)`` when the real parser refuses ``limner ARGV``, else None. Nothing is run: each
    command's context is made (options parsed and converted), its callback is not called."""
    command = cli()
    try:
        with contextlib.redirect_stdout(io.StringIO()):  # --version and --help print
            ctx = command.make_context("limner", list(argv))
            while hasattr(command, "resolve_command"):  # a group: go down to the subcommand
                rest = [*ctx._protected_args, *ctx.args]
                if not rest:
                    break
                name, sub, rest = command.resolve_command(ctx, rest)
                if sub is None:
                    return "NoSuchCommand", f"no command {name!r}"
                command = sub
                ctx = command.make_context(name or "", rest, parent=ctx)
            if ctx.args:
                return "UnexpectedExtraArgument", f"unexpected extra arguments {ctx.args}"
    except typer.Exit:
        return None
    except Exception as exc:  # click's usage errors (typer vendors click, so match by shape)
        if not hasattr(exc, "format_message"):
            raise
        return type(exc).__name__, exc.format_message()
    return None


def block_commands(page: Path) -> list[tuple[int, list[str]]]:
    found = []
    for start, _lang, body in fenced(page.read_text(encoding="utf-8"), SHELL_BLOCKS):
        for offset, line in enumerate(body.replace("\\\n", " ").splitlines()):  # a continued line is one
            try:
                argvs = limner_argvs(line)
            except ValueError:  # not shell (an unbalanced quote in a unit file's comment, say)
                continue
            found += [(start + offset, argv) for argv in argvs]
    return found


def inline_commands(page: Path) -> list[tuple[int, str, list[str]]]:
    prose = without_blocks(page.read_text(encoding="utf-8"))
    found = []
    for m in re.finditer(r"(?<!`)`(limner [^`]+)`(?!`)", prose):
        span = " ".join(m.group(1).split())
        try:
            argvs = limner_argvs(span)
        except ValueError:
            continue
        found += [(prose[:m.start()].count("\n") + 1, span, argv) for argv in argvs]
    return found


def test_there_are_command_lines_to_check() -> None:
    assert sum(len(block_commands(p)) for p in PAGES) > 50
    assert sum(len(inline_commands(p)) for p in PAGES) > 100


def test_the_parser_check_refuses_what_the_cli_refuses() -> None:
    assert parse_error(["plan", "--stale", "--json"]) is None
    assert parse_error(["--config", "site/limner.toml", "review", "approve", "12", "15", "--note", "ok"]) is None
    assert parse_error(["--version"]) is None
    assert parse_error(["plan", "--bogus"])[0] == "NoSuchOption"  # type: ignore[index]
    assert parse_error(["plan", "--limit", "N"])[0] == "BadParameter"  # type: ignore[index]
    assert parse_error(["review", "aprove", "1"])[0] in ("NoSuchCommand", "UsageError")  # type: ignore[index]
    assert parse_error(["review", "reject", "1"])[0] == "MissingParameter"  # type: ignore[index]
    assert parse_error(["status", "extra"])[0] in ("UnexpectedExtraArgument", "UsageError")  # type: ignore[index]


@pytest.mark.parametrize("page", PAGES, ids=page_id)
def test_command_lines_in_code_blocks_parse(page: Path) -> None:
    """A command in a shell block is meant to be pasted: it must parse exactly (options, values, arguments)."""
    bad = [f"{page_id(page)}:{line}: limner {shlex.join(argv)}: {error[1]}"
           for line, argv in block_commands(page) if (error := parse_error(argv))]
    assert not bad, "\n".join(bad)


#: in prose, `limner generate --budget` names an option without its value, `limner init DIR` a placeholder:
#: only a command or an option that does not exist is wrong there
INLINE_ERRORS = {"NoSuchOption", "NoSuchCommand"}
#: spans that show a mistake on purpose
WRONG_ON_PURPOSE = {"limner plan --config ..."}  # cli.md: global options come before the command


@pytest.mark.parametrize("page", PAGES, ids=page_id)
def test_commands_in_prose_exist(page: Path) -> None:
    bad = []
    for line, span, argv in inline_commands(page):
        if span in WRONG_ON_PURPOSE or not argv or not re.fullmatch(r"[a-z][a-z-]*|-.*", argv[0]):  # `limner COMMAND --help`, `limner <version>`
            continue
        error = parse_error(argv)
        if error and error[0] in INLINE_ERRORS:
            bad.append(f"{page_id(page)}:{line}: `{span}`: {error[1]}")
    assert not bad, "\n".join(bad)


# --- TOML snippets ---


def toml_blocks(page: Path) -> list[tuple[int, str]]:
    return [(line, body) for line, _lang, body in fenced(page.read_text(encoding="utf-8"), ("toml",))]


def snippet_kind(data: dict) -> str:  # type: ignore[type-arg]
    if "build-system" in data or "entry-points" in data.get("project", {}):
        return "pyproject"
    if "positive" in data:
        return "style"
    return "settings"


TOML_SNIPPETS = [(page, line, body) for page in PAGES for line, body in toml_blocks(page)]


def test_there_are_toml_snippets_to_check() -> None:
    kinds = {snippet_kind(tomllib.loads(body)) for _page, _line, body in TOML_SNIPPETS}
    assert kinds == {"pyproject", "style", "settings"}


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    import os

    for name in list(os.environ):
        if name.upper().startswith("LIMNER_"):
            monkeypatch.delenv(name)


@pytest.mark.parametrize(("page", "line", "body"), TOML_SNIPPETS, ids=[f"{page_id(p)}:{n}" for p, n, _ in TOML_SNIPPETS])
def test_toml_snippets_load(page: Path, line: int, body: str, tmp_path: Path, clean_env: None) -> None:
    """A `limner.toml` snippet loads with the settings loader (no unknown key, no wrong type), and the styles it
    or a style-file snippet defines compile."""
    from limner.config import load_settings
    from limner.styles.loader import load_styles

    data = tomllib.loads(body)
    kind = snippet_kind(data)
    where = f"{page_id(page)}:{line}"
    if kind == "pyproject":
        assert "limner" in data["project"]["entry-points"], f"{where}: plugins register under the entry-point group `limner`"
        return
    if kind == "style":
        (tmp_path / "styles").mkdir()
        (tmp_path / "styles" / "snippet.toml").write_text(body, encoding="utf-8")
        assert "snippet" in load_styles(tmp_path / "styles"), where
        return
    config = tmp_path / "limner.toml"
    config.write_text(body, encoding="utf-8")
    try:
        settings = load_settings(config)
        load_styles(tmp_path / "styles", settings.styles)
    except Exception as exc:
        raise AssertionError(f"{where}: the snippet does not load:\n{exc}") from None


def test_the_documented_scaffold_is_what_init_writes(tmp_path: Path) -> None:
    """configuration.md shows "the `limner.toml` init writes", styles.md its `styles/house-style.toml`."""
    from limner.config.scaffold import scaffold

    scaffold(tmp_path)
    shown = {(page.name, line): body for page, line, body in TOML_SNIPPETS if page.parent == DOCS}

    def shown_after(page: str, phrase: str) -> str:
        text = (DOCS / page).read_text(encoding="utf-8")
        at = text.index(phrase)
        line = text[:at].count("\n") + 1
        return min(((n, body) for (p, n), body in shown.items() if p == page and n > line))[1]

    def body(path: Path) -> str:  # leading comment lines (what the file is, where settings come from) aside
        lines = path.read_text(encoding="utf-8").splitlines()
        while lines and (lines[0].startswith("#") or not lines[0].strip()):
            lines.pop(0)
        return "\n".join(lines)

    assert shown_after("configuration.md", "`limner init` writes this `limner.toml`").strip() == body(tmp_path / "limner.toml").strip()
    assert shown_after("styles.md", "as written by `limner init`").strip() == body(tmp_path / "styles" / "house-style.toml").strip()


# --- links ---


@pytest.mark.parametrize("page", PAGES, ids=page_id)
def test_relative_links_resolve(page: Path) -> None:
    """Every relative link of every page (README.md, docs/ and docs/decisions/ included) names a file or folder
    that exists, and a `#anchor` into a Markdown file names one of its headings."""
    bad = []
    prose = re.sub(r"`[^`]*`", "", without_blocks(page.read_text(encoding="utf-8")))  # code is no link
    for target in re.findall(r"\]\(([^)\s]+)\)", prose):
        if re.match(r"^[a-z][a-z0-9+.-]*:", target):  # https:, mailto:
            continue
        path, _, anchor = target.partition("#")
        dest = page.parent / path if path else page
        if not dest.exists():
            bad.append(f"{target}: no such file")
        elif anchor and dest.suffix == ".md" and anchor not in anchors(dest.read_text(encoding="utf-8")):
            bad.append(f"{target}: no such heading")
    assert not bad, f"{page_id(page)}: " + "; ".join(bad)


# --- environment variables ---

#: names the docs show on purpose as ones that do not work (configuration.md)
NOT_VARIABLES_ON_PURPOSE = {"LIMNER_FOO", "LIMNER_GENERATE_FOO", "LIMNER_PROVIDERS_FAKE_MODEL"}
CODE_SUFFIXES = {".py", ".yml", ".yaml", ".js", ".mjs", ".ts", ".tsx", ".astro", ".sh", ""}


def setting_variables() -> set[str]:
    from test_docs import setting_keys

    return {"LIMNER_" + key.replace(".", "_").upper() for key in setting_keys() if "<" not in key}


def code_text() -> str:
    """The text of the repository's code and scripts (no docs, no installed packages)."""
    import os

    texts = []
    for folder in ("src", "tests", "scripts", "bench", "clients", "examples", ".ci"):
        for dirpath, dirnames, filenames in os.walk(ROOT / folder):
            dirnames[:] = [d for d in dirnames if d not in ("node_modules", ".venv", "dist", ".limner", "__pycache__")]
            for name in filenames:
                path = Path(dirpath) / name
                if path.suffix in CODE_SUFFIXES and path.stat().st_size < 1_000_000:
                    texts.append(path.read_text(encoding="utf-8", errors="replace"))
    return "\n".join(texts)


def test_environment_variables_in_the_docs_exist() -> None:
    """Every `LIMNER_...` name the docs show is a setting's variable or one the code reads."""
    shown = {name for page in PAGES for name in re.findall(r"\bLIMNER_[A-Z0-9_]*[A-Z0-9]\b", page.read_text(encoding="utf-8"))}
    assert "LIMNER_DATABASE_URL" in shown
    in_code = set(re.findall(r"\bLIMNER_[A-Z0-9_]*[A-Z0-9]\b", code_text()))
    unknown = sorted(shown - setting_variables() - NOT_VARIABLES_ON_PURPOSE - in_code)
    assert not unknown, f"the docs name environment variables that nothing reads: {unknown}"


def test_environment_variables_the_code_reads_are_documented() -> None:
    """Every `"LIMNER_..."` name in Limner's code (a variable it reads, or writes into a CI job) is in the docs."""
    code = {path: path.read_text(encoding="utf-8") for path in (ROOT / "src" / "limner").rglob("*.py")}
    constants = {name for text in code.values() for name in re.findall(r"^(LIMNER_[A-Z0-9_]+) = ", text, re.M)}
    names = {name for text in code.values()
             for name in re.findall(r"[\"'](LIMNER_[A-Z0-9_]*[A-Z0-9])[\"']", text)} - constants  # not `__all__`
    assert {"LIMNER_PLUGINS", "LIMNER_ALLOW_HTTP_HOSTS"} <= names
    docs = "\n".join(page.read_text(encoding="utf-8") for page in PAGES)
    missing = sorted(name for name in names if not re.search(rf"`\$?{name}[`=]", docs))
    assert not missing, f"README.md and docs/ do not document the environment variables {missing}"


# --- example data ---


def test_catalogue_examples_load() -> None:
    """The YAML, JSONL and CSV examples of catalogue.md's 'Formats' load with the catalogue loader."""
    from test_docs import section

    from limner.catalog import load_catalog
    from limner.styles.builtin import BUILTIN_STYLES

    text = section((DOCS / "catalogue.md").read_text(encoding="utf-8"), "## Formats")
    blocks = {lang: body for _line, lang, body in fenced(text, ("yaml", "json", "csv"))}
    assert set(blocks) == {"yaml", "json", "csv"}
    suffix = {"yaml": ".yaml", "json": ".jsonl", "csv": ".csv"}
    import tempfile

    with tempfile.TemporaryDirectory() as folder:
        for lang, body in blocks.items():
            path = Path(folder) / f"catalog{suffix[lang]}"
            path.write_text(body, encoding="utf-8")
            catalog = load_catalog(path, known_styles=[s.name for s in BUILTIN_STYLES])
            assert len(catalog.entries) == 2, lang


def test_manifest_example_validates_against_the_schema_sync_writes() -> None:
    import json

    import jsonschema

    from limner.sync.manifest import MANIFEST_SCHEMA

    text = section_text("manifest.md", "## Example")
    (example,) = [json.loads(body) for _line, _lang, body in fenced(text, ("json",))]
    jsonschema.validate(example, MANIFEST_SCHEMA)
    assert example["entries"]


def section_text(page: str, heading: str) -> str:
    from test_docs import section

    return section((DOCS / page).read_text(encoding="utf-8"), heading)


# --- files of this repository the docs name ---

SOURCE_SUFFIXES = (".py", ".mjs", ".js", ".ts", ".tsx", ".sh", ".md")
#: files of the reader's app, not of this repository
APP_FILES = {"frontend/src/lib/images.ts",  # migration.md: the app's own URL code, replaced in phase 4
             ".eleventy.js"}  # frontend.md: an Eleventy site's configuration


@functools.cache
def repo_files() -> tuple[str, ...]:
    import os

    found = []
    for dirpath, dirnames, filenames in os.walk(ROOT):
        dirnames[:] = [d for d in dirnames if d not in ("node_modules", ".venv", ".git", "dist", ".limner", "__pycache__")]
        found += [(Path(dirpath) / name).relative_to(ROOT).as_posix() for name in filenames]
    return tuple(found)


@pytest.mark.parametrize("page", PAGES, ids=page_id)
def test_repository_files_the_docs_name_exist(page: Path) -> None:
    """A source file the docs point at (`src/limner/keys.py`, `runner/unit.py` from the package,
    `bench/bench_queue.py`, `scripts/ensure-lib.mjs` of the example app, `gcpause.py`) is there."""
    paths = re.findall(r"`([A-Za-z0-9_.-]+(?:/[A-Za-z0-9_.-]+)*)`", page.read_text(encoding="utf-8"))
    files = repo_files()
    missing = sorted({p for p in paths if p.endswith(SOURCE_SUFFIXES) and ".." not in p and p not in APP_FILES
                      and not any(f == p or f.endswith("/" + p) for f in files)})
    assert not missing, f"{page_id(page)} names files that do not exist: {missing}"


def test_manifest_fields_are_the_schema_s() -> None:
    """manifest.md's 'Fields' tables list the schema's keys, and 'JSON Schema' names the optional ones."""
    from limner.sync.manifest import MANIFEST_SCHEMA

    fields = section_text("manifest.md", "## Fields")
    top, per_entry = fields.split("Per entry:")

    def keys(table: str) -> set[str]:
        return {k for row in re.findall(r"^\| (`[^|]+) \|", table, re.M) for k in re.findall(r"`([^`]+)`", row)}

    entry = MANIFEST_SCHEMA["$defs"]["entry"]
    assert keys(top) == set(MANIFEST_SCHEMA["properties"]), "top-level keys"
    assert keys(per_entry) == set(entry["properties"]), "per-entry keys"
    said = section_text("manifest.md", "## JSON Schema")
    optional = re.search(r"except (.*?), forbids", said, re.S).group(1)  # type: ignore[union-attr]
    assert set(re.findall(r"`([^`]+)`", optional)) == set(entry["properties"]) - set(entry["required"])


def test_storage_contract_table_is_the_storage_class() -> None:
    """storage.md's contract: the seven required operations are Storage's abstract methods, and every operation of
    its table is declared on Storage with the parameters shown."""
    import inspect

    from limner.storage import Storage

    text = section_text("storage.md", "## The storage contract")
    required = re.search(r"operations are required: (.*?)\.", text, re.S).group(1)  # type: ignore[union-attr]
    assert set(re.findall(r"`([a-z_]+)`", required)) == set(Storage.__abstractmethods__)
    rows = re.findall(r"^\| `([a-z_]+)(?:\(([^)]*)\))?` \|", text, re.M)
    assert len(rows) >= 10
    for name, shown in rows:
        member = inspect.getattr_static(Storage, name)
        if isinstance(member, property):
            assert not shown, name
            continue
        params = list(inspect.signature(member).parameters.values())[1:]
        parts = []
        star = False
        for p in params:
            if p.kind is p.KEYWORD_ONLY and not star:
                parts.append("*")
                star = True
            parts.append(p.name if p.default is p.empty else f"{p.name}={p.default!r}".replace("'", '"'))
        code = ", ".join(parts)
        assert shown == code, f"storage.md shows {name}({shown}); Storage has {name}({code})"


def test_package_extras_the_docs_install_exist() -> None:
    """`pip install 'limner[x]'` in README.md, docs/ and the code's hints names an extra of pyproject.toml, and so
    does every built-in provider's `extra` (the hint `limner providers` prints)."""
    from limner.providers.builtin import BUILTIN_PROVIDERS

    extras = set(tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]["optional-dependencies"])
    texts = [page.read_text(encoding="utf-8") for page in PAGES]
    texts += [path.read_text(encoding="utf-8") for path in (ROOT / "src" / "limner").rglob("*.py")]
    named = {x.strip() for text in texts for group in re.findall(r"limner\[([a-z0-9_, -]+)\]", text) for x in group.split(",")}
    named |= {spec.extra for spec in BUILTIN_PROVIDERS if spec.extra}
    assert {"all", "replicate", "serve"} <= named
    assert not named - extras, f"extras that pyproject.toml does not define: {sorted(named - extras)}"


def test_python_names_the_docs_give_exist() -> None:
    """A dotted name such as `limner.sync.MANIFEST_SCHEMA` or `limner.testing.provider_suite` imports."""
    import importlib

    def resolves(name: str) -> bool:
        parts = name.split(".")
        for i in range(len(parts), 0, -1):
            try:
                obj = importlib.import_module(".".join(parts[:i]))
            except ImportError:
                continue
            for attr in parts[i:]:
                if not hasattr(obj, attr):
                    return False
                obj = getattr(obj, attr)
            return True
        return False

    names = {name for page in PAGES for name in re.findall(r"`(limner(?:\.[A-Za-z_]\w*)+)", page.read_text(encoding="utf-8"))}
    names = {n for n in names if n not in ("limner.toml", "limner.db") and "__main__" not in n}  # files; `python -m`
    assert len(names) > 10
    unknown = sorted(n for n in names if not resolves(n))
    assert not unknown, f"the docs name Python objects that do not exist: {unknown}"


# --- defaults ---


def setting_field(key: str):  # type: ignore[no-untyped-def]
    from limner.config.settings import ProviderSettings, Settings

    parts = key.split(".")
    if parts[0] == "providers" and len(parts) == 3:
        return ProviderSettings.model_fields[parts[2]]
    field = Settings.model_fields[parts[0]]
    return field.annotation.model_fields[parts[1]] if len(parts) == 2 else field  # type: ignore[union-attr]


def shown_default(cell: str) -> typing.Any:
    """The value a Default cell gives: a backticked TOML value (`"3:2"`, `1.0`, `[]`), a bare word in backticks
    (`compact`), or "unset" (None); ``...`` (Ellipsis) when the cell describes it in words."""
    cell = cell.strip()
    if cell.startswith("unset"):
        return None
    m = re.fullmatch(r"`([^`]+)`(?: \(.*\))?", cell)
    if not m:
        return ...
    try:
        return tomllib.loads(f"v = {m.group(1)}")["v"]
    except tomllib.TOMLDecodeError:
        return m.group(1)


def test_documented_defaults_and_variables_are_the_code_s() -> None:
    """Every row of configuration.md's settings tables shows the setting's real default and, where it has the
    column, its real environment variable."""
    import enum

    rows = re.findall(r"^\| `([a-z_<>.]+)` \| [^|]* \| ([^|]*) \|(?: ([^|]*) \|)?", (DOCS / "configuration.md").read_text(encoding="utf-8"), re.M)
    checked, bad = 0, []
    for key, default_cell, env_cell in rows:
        if key in ("styles.<name>",):
            continue
        field = setting_field(key)
        default = field.default_factory() if field.default_factory is not None else field.default  # type: ignore[call-arg]
        if isinstance(default, enum.Enum):
            default = default.value
        shown = shown_default(default_cell)
        if shown is not ... and shown != default:
            bad.append(f"{key}: documented default {default_cell.strip()}, the code's is {default!r}")
        checked += shown is not ...
        if env_cell and env_cell.strip().startswith("`LIMNER_"):
            variable = re.match(r"`([A-Z_]+)`", env_cell.strip()).group(1)  # type: ignore[union-attr]
            if variable != "LIMNER_" + key.replace(".", "_").upper():
                bad.append(f"{key}: documented variable {variable}")
    assert checked > 40
    assert not bad, "\n".join(bad)


def test_every_provider_setting_the_code_reads_is_documented() -> None:
    """A key a built-in provider reads from its `[providers.<name>]` table (`settings.get("max_wait_s")`,
    `number_setting(..., "poll_interval_s", ...)`), or the test provider `fake` reads, is named in providers.md
    (local-models.md; plugins.md for `fake` and the test hooks of `sketch`)."""
    read_key = re.compile(r"""(?:settings|\bs)(?:\.get)?\s*[(\[]\s*["']([a-z_0-9]+)["']"""
                          r"""|number_setting\([^,]+,\s*[^,]+,\s*["']([a-z_0-9]+)["']""")
    docs = "\n".join((DOCS / name).read_text(encoding="utf-8") for name in ("providers.md", "local-models.md", "configuration.md", "plugins.md"))
    read = {path.name: {a or b for a, b in read_key.findall(path.read_text(encoding="utf-8"))} - {"_secret"}
            for path in [*(ROOT / "src" / "limner" / "providers").glob("*.py"),
                         ROOT / "src" / "limner" / "testing" / "fake_provider.py"]}
    assert {"poll_interval_s", "hosts"} <= set().union(*read.values())
    missing = sorted(f"{module}: {key}" for module, keys in read.items() for key in keys if f"`{key}`" not in docs)
    assert not missing, f"provider settings read by the code but documented nowhere: {missing}"


def test_class_members_the_docs_give_exist() -> None:
    """`Project.style_for`, `Entry.template_vars()`, `Storage.partial_writes`: a member of one of Limner's classes
    (a method, a field, or an attribute its methods set on `self`) that the docs name is there."""
    import dataclasses
    import importlib
    import inspect

    defined: dict[str, list[str]] = {}
    for path in (ROOT / "src" / "limner").rglob("*.py"):
        module = ".".join(path.relative_to(ROOT / "src").with_suffix("").parts)
        for name in re.findall(r"^class ([A-Z]\w*)", path.read_text(encoding="utf-8"), re.M):
            defined.setdefault(name, []).append(module)

    def has(cls: type, attr: str) -> bool:
        if hasattr(cls, attr) or attr in getattr(cls, "model_fields", {}):
            return True
        if dataclasses.is_dataclass(cls) and attr in {f.name for f in dataclasses.fields(cls)}:
            return True
        return any(attr in getattr(k, "__annotations__", {}) or re.search(rf"\bself\.{attr}\s*[:=]", inspect.getsource(k))
                   for k in cls.__mro__ if k.__module__.startswith("limner"))

    named = {(c, a) for page in PAGES
             for c, a in re.findall(r"`([A-Z][A-Za-z0-9]+)\.([a-z_][a-z_0-9]*)(?:\(\))?`", page.read_text(encoding="utf-8"))}
    checked = [(c, a) for c, a in named if c in defined]  # not a third party's (procrastinate's SchemaManager)
    assert len(checked) > 10
    missing = sorted(f"{c}.{a}" for c, a in checked
                     if not any(has(getattr(importlib.import_module(m), c), a) for m in defined[c]))
    assert not missing, f"the docs name class members that do not exist: {missing}"


def test_documented_ranges_are_the_code_s() -> None:
    """The bounds in configuration.md's Type column (`integer, 1–256`, `float ≥ 0`, `number > 0`) are the
    setting's validation bounds, and a bounded setting shows its bounds there."""
    rows = re.findall(r"^\| `([a-z_<>.]+)` \| ([^|]*) \|", (DOCS / "configuration.md").read_text(encoding="utf-8"), re.M)
    checked, bad = 0, []
    for key, type_cell in rows:
        if key == "styles.<name>":
            continue
        shown: dict[str, float] = {}
        if m := re.search(r"(-?\d+)–(-?\d+)", type_cell):
            shown = {"ge": float(m.group(1)), "le": float(m.group(2))}
        elif m := re.search(r"(≥|>) (-?\d+)", type_cell):
            shown = {"ge" if m.group(1) == "≥" else "gt": float(m.group(2))}
        code = {a: float(getattr(c, a)) for c in setting_field(key).metadata for a in ("ge", "gt", "le", "lt") if hasattr(c, a)}
        checked += bool(shown)
        if shown != code:
            bad.append(f"{key}: documented {type_cell.strip()!r}, validated {code}")
    assert checked > 20
    assert not bad, "\n".join(bad)


def test_template_variables_table_is_what_templates_get() -> None:
    """styles.md's 'Template variables' table names every variable `Entry.template_vars()` gives (besides the
    entry's extra fields), and no other."""
    from limner.catalog.models import Entry

    table = section_text("styles.md", "## Template variables")
    shown = {name for row in re.findall(r"^\| (`[^|]+) \|", table, re.M) for name in re.findall(r"`([a-z_]+)`", row)}
    given = set(Entry.model_validate({"id": "x", "title": "T", "location": "Jerusalem"}).template_vars()) - {"location"}
    assert shown == given, f"styles.md lists {sorted(shown - given)} that templates do not get; lacks {sorted(given - shown)}"


def test_image_settings_in_the_fingerprint_are_listed() -> None:
    """styles.md lists, per provider, the settings its `image_settings` puts in the fingerprint."""
    text = section_text("styles.md", "## Fingerprint and staleness")
    listed = {label.lower(): set(re.findall(r"`([a-z_]+)`", names))
              for label, names in re.findall(r"([A-Za-z0-9]+)\s+((?:`[a-z_]+`/?)+)", text.split("image_settings", 1)[1].split(")", 1)[0])}
    declared = {path.stem.removesuffix("_local"): set(re.findall(r"\"([a-z_]+)\"", m.group(1)))
                for path in (ROOT / "src" / "limner" / "providers").glob("*.py")
                if (m := re.search(r"^    image_settings = \(([^)]*)\)", path.read_text(encoding="utf-8"), re.M))}
    assert len(declared) >= 6
    assert listed == declared, f"styles.md lists {listed}; the providers declare {declared}"


def test_catalogue_error_example_is_what_plan_prints(tmp_path: Path) -> None:
    """catalogue.md's 'Errors' example: its `catalog.yaml` gives exactly the report shown (with /app for the
    project folder)."""
    from limner.catalog import load_catalog
    from limner.errors import CatalogError
    from limner.styles.builtin import BUILTIN_STYLES

    text = section_text("catalogue.md", "## Errors")
    catalog = text[text.index("For this `catalog.yaml`"):]
    body = fenced(catalog, ("yaml",))[0][2]
    report = re.search(r"`limner plan` reports:\n\n```\n(.*?)```", text, re.S).group(1)  # type: ignore[union-attr]
    path = tmp_path / "catalog.yaml"
    path.write_text(body, encoding="utf-8")
    with pytest.raises(CatalogError) as caught:
        load_catalog(path, known_styles=[*(s.name for s in BUILTIN_STYLES), "house-style"])  # init's project
    assert f"error: {caught.value}\n".replace(str(tmp_path), "/app") == report


def test_configuration_error_example_is_what_a_command_prints(tmp_path: Path, clean_env: None) -> None:
    """configuration.md's example: `concurrency = 0` in the `limner.toml` init writes gives the report shown."""
    from limner.config import load_settings
    from limner.config.scaffold import scaffold
    from limner.errors import ConfigError

    text = (DOCS / "configuration.md").read_text(encoding="utf-8")
    shown = re.search(r"for `concurrency = 0` in the `limner.toml` that `limner init`\nwrites:\n\n```\n(.*?)```", text, re.S)
    assert shown, "configuration.md: the example of an invalid value"
    scaffold(tmp_path)
    config = tmp_path / "limner.toml"
    config.write_text(config.read_text(encoding="utf-8").replace("concurrency = 4\n", "concurrency = 0\n"), encoding="utf-8")
    with pytest.raises(ConfigError) as caught:
        load_settings(config)
    assert f"error: {caught.value}\n".replace(str(tmp_path), "/app") == shown.group(1)
