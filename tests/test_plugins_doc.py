"""docs/plugins.md, provider parts: every python example runs (or is marked ``<!-- doc-test: skip (why) -->``
on the line before its fence), the ``limner_dots`` plugin it builds generates images through the CLI, and
the tables say what the code does. The storage sections are left to the storage tests."""

from __future__ import annotations

import ast
import asyncio
import contextlib
import inspect
import io
import json
import os
import re
import shlex
from dataclasses import dataclass, fields
from pathlib import Path

import pytest
from fake_network import closed_port_url
from projects import ProjectDir, make_entries

import limner.providers.errors as errors_module
from limner.providers import (
    AuthFailed,
    Capabilities,
    ContentRefused,
    HostUnreachable,
    InvalidRequest,
    OutOfCredit,
    Provider,
    ProviderError,
    RateLimited,
    Transient,
)
from limner.testing import FakeProvider
from limner.testing.provider_suite import request as suite_request

DOC = Path(__file__).resolve().parent.parent / "docs" / "plugins.md"
SKIP = re.compile(r"<!--\s*doc-test:\s*skip\s*\((?P<reason>[^)]+)\)\s*-->")
FILE_HEADER = re.compile(r"^# (?P<path>[\w/]+\.py)\s*$")


@dataclass(frozen=True)
class Block:
    lang: str
    code: str
    line: int
    headings: tuple[str, ...]
    skip: str | None

    @property
    def path(self) -> str | None:
        """``limner_dots/provider.py`` for a block whose first line is ``# limner_dots/provider.py``."""
        m = FILE_HEADER.match(self.code.splitlines()[0]) if self.code else None
        return m.group("path") if m else None

    @property
    def about_storage(self) -> bool:
        return any("storage" in h.lower() for h in self.headings)


def doc_blocks() -> list[Block]:
    lines = DOC.read_text(encoding="utf-8").splitlines()
    found: list[Block] = []
    path: list[tuple[int, str]] = []
    i = 0
    while i < len(lines):
        line = lines[i]
        heading = re.match(r"^(#+)\s+(.*)$", line)
        if heading:
            level = len(heading.group(1))
            path = [(lvl, text) for lvl, text in path if lvl < level] + [(level, heading.group(2).strip())]
        fence = re.match(r"^```(\w*)\s*$", line)
        if fence:
            start = i
            body = []
            i += 1
            while not lines[i].startswith("```"):
                body.append(lines[i])
                i += 1
            before = next((lines[j] for j in range(start - 1, -1, -1) if lines[j].strip()), "")
            marker = SKIP.search(before)
            found.append(Block(fence.group(1), "\n".join(body) + "\n", start + 1, tuple(t for _, t in path),
                               marker.group("reason").strip() if marker else None))
        i += 1
    return found


def provider_python_blocks() -> list[Block]:
    return [b for b in doc_blocks() if b.lang == "python" and not b.about_storage]


def snippets() -> list[Block]:
    return [b for b in provider_python_blocks() if b.skip is None and b.path is None]


def section(heading: str) -> str:
    text = DOC.read_text(encoding="utf-8")
    level = len(heading) - len(heading.lstrip("#"))
    start = text.index(f"\n{heading}\n")
    rest = text[start + len(heading) + 2:]
    end = re.search(rf"^#{{1,{level}}} ", rest, re.M)
    return rest[: end.start()] if end else rest


def table_rows(text: str) -> list[list[str]]:
    """The cells of the body rows of the first Markdown table in ``text`` (``\\|`` inside a cell is kept)."""
    lines = text.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("| ---"))
    rows = []
    for line in lines[start + 1:]:
        if not line.startswith("| "):
            break
        rows.append([c.strip() for c in re.split(r"(?<!\\)\|", line.strip())[1:-1]])
    return rows


def test_the_provider_examples_are_all_run_or_marked() -> None:
    blocks = provider_python_blocks()
    assert {b.path for b in blocks if b.path and b.skip is None} == {"limner_dots/__init__.py", "limner_dots/provider.py"}
    assert len(snippets()) >= 2
    for block in blocks:
        assert block.skip is None or len(block.skip) > 20, f"docs/plugins.md:{block.line}: say why it is not run"
        ast.parse(block.code)  # even a skipped example must be valid Python


@pytest.mark.parametrize("block", snippets(), ids=lambda b: f"line{b.line}")
def test_each_snippet_runs(block: Block) -> None:
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        exec(compile(block.code, f"docs/plugins.md:{block.line}", "exec"), {"__name__": "doc_example"})


def test_the_fake_provider_example_refuses_what_it_is_told_to() -> None:
    block = next(b for b in snippets() if "FakeProvider(" in b.code)
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        exec(compile(block.code, f"docs/plugins.md:{block.line}", "exec"), {"__name__": "doc_example"})
    assert out.getvalue().startswith("refused: fake: content refused")


@pytest.fixture
def error_example() -> dict:
    block = next(b for b in snippets() if "def raise_for_status" in b.code)
    namespace: dict = {"__name__": "doc_example"}
    exec(compile(block.code, f"docs/plugins.md:{block.line}", "exec"), namespace)
    return namespace


@pytest.mark.parametrize(("status", "body", "kind"), [
    (401, {}, AuthFailed), (403, {}, AuthFailed), (402, {"error": {"code": "refused"}}, OutOfCredit),
    (429, {}, RateLimited), (500, {}, Transient), (503, {"error": {"code": "out_of_credit"}}, Transient),
    (400, {"error": {"code": "content_policy"}}, ContentRefused), (400, {"error": {"code": "nsfw"}}, InvalidRequest),
    (422, {"error": {"message": "safety filter"}}, InvalidRequest),
])
def test_the_error_mapping_example_decides_by_status_and_code(error_example, status, body, kind) -> None:
    with pytest.raises(ProviderError) as info:
        error_example["raise_for_status"](status, body, "2")
    assert type(info.value) is kind
    if kind is RateLimited:
        assert info.value.retry_after == 2
    if kind is OutOfCredit:
        assert "add credit" in str(info.value)
    error_example["raise_for_status"](200, {})  # no error


async def test_the_error_mapping_example_over_the_network(error_example, httpserver, monkeypatch) -> None:
    import httpx

    post = error_example["post"]
    httpserver.expect_request("/refuse").respond_with_json({"error": {"code": "content_policy"}}, status=400)
    httpserver.expect_request("/ok").respond_with_json({"data": []})
    async with httpx.AsyncClient(timeout=5) as client:
        with pytest.raises(HostUnreachable):
            await post(client, closed_port_url() + "/x", {})
        with pytest.raises(ContentRefused):
            await post(client, httpserver.url_for("/refuse"), {})
        assert (await post(client, httpserver.url_for("/ok"), {})).status_code == 200


@pytest.mark.slow
def test_the_plugin_in_the_docs_generates_images(tmp_path: Path) -> None:
    """The hookimpl and the provider blocks, as files; then the documented command, in a project."""
    plugin_dir = tmp_path / "plugin"
    for block in provider_python_blocks():
        if block.path:
            target = plugin_dir / block.path
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(block.code, encoding="utf-8")
    command = next(b for b in doc_blocks() if b.lang == "bash" and "LIMNER_PROVIDER=dots" in b.code).code.strip()
    words = shlex.split(command)
    env_words = [w for w in words[: words.index("limner")] if "=" in w]
    args = words[words.index("limner") + 1:]
    assert dict(w.split("=", 1) for w in env_words) == {"LIMNER_PLUGINS": "limner_dots", "LIMNER_PROVIDER": "dots"}

    project = ProjectDir(tmp_path / "proj")
    project.root.mkdir()
    project.write_config(provider="sketch")  # the environment picks dots, as in the docs
    project.write_catalog(make_entries(3))
    # without the test plugin (the command loads limner_dots alone): no [providers.fake] section, which would name
    # no known provider; the plugin, and the limner under test (a PYTHONPATH to a checkout's src/), on the path
    env = {**project.env_without_the_test_plugin(), **dict(w.split("=", 1) for w in env_words),
           "PYTHONPATH": os.pathsep.join([str(plugin_dir), *filter(None, [os.environ.get("PYTHONPATH")])])}
    proc = project.run(*args, "--json", env=env)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    summary = json.loads(proc.stdout)
    assert summary["generated"] == 3 and summary["failed"] == 0 and summary["provider_calls"] == 3
    assert not project.calls()  # the fake provider was not used

    listed = project.run("providers", "--json", env=env)
    assert listed.returncode == 0 and "dots" in listed.stdout


def test_the_class_attribute_table_matches_provider() -> None:
    rows = table_rows(section("### Class attributes"))
    documented = {cells[0].strip("`"): cells[1] for cells in rows}
    assert documented.pop("name") == "required"
    for attr, default in documented.items():
        value = eval(default.strip("`"), {"Capabilities": Capabilities})  # noqa: S307 - our own docs
        assert getattr(Provider, attr) == value, f"docs/plugins.md: {attr} defaults to {getattr(Provider, attr)!r}"


def test_the_capabilities_table_matches_the_dataclass() -> None:
    rows = table_rows(section("### Class attributes").split("`Capabilities` (a frozen dataclass):", 1)[1])
    documented = {cells[0].strip("`"): ast.literal_eval(cells[1].strip("`")) for cells in rows}
    assert documented == {f.name: f.default for f in fields(Capabilities)}


def test_the_methods_table_lists_every_method_limner_calls() -> None:
    rows = table_rows(section("### Methods"))
    documented = {re.match(r"`(?:async )?(\w+)", cells[0]).group(1) for cells in rows}
    public = {name for name, value in inspect.getmembers(Provider) if not name.startswith("_")
              and (inspect.isfunction(value) or inspect.ismethod(value))}
    assert documented == public
    assert "abstract" in dict((re.match(r"`(?:async )?(\w+)", c[0]).group(1), c[1]) for c in rows)["generate"]


def test_concurrency_hint_defaults_to_max_concurrency() -> None:
    class Four(FakeProvider):
        capabilities = Capabilities(max_concurrency=4)

    assert Four().concurrency_hint() == 4
    assert FakeProvider().concurrency_hint() is None


def test_the_errors_table_lists_every_error() -> None:
    text = section("### Errors")
    errors = {name for name, value in vars(errors_module).items()
              if isinstance(value, type) and issubclass(value, ProviderError) and value is not ProviderError}
    assert errors == {"RateLimited", "Transient", "HostUnreachable", "ContentRefused", "InvalidRequest", "AuthFailed",
                      "OutOfCredit", "SettingsRejected", "ModelUnavailable", "OutputExpired", "AnswerLost"}
    for name in errors:
        assert re.search(rf"^\| `{name}\(", text, re.M), f"docs/plugins.md: the errors table lacks {name}"


def test_what_the_docs_say_of_the_fake_provider() -> None:
    text = section("## Testing with the fake provider")
    assert "Its model is\n`fake-1`, its default price `0.0`, and it sets no `max_concurrency`" in text
    assert FakeProvider.default_model == "fake-1" and FakeProvider.price_usd == 0.0
    assert FakeProvider.capabilities.max_concurrency is None
    source = inspect.getsource(inspect.getmodule(FakeProvider))
    keys = [cells[0].strip("`") for cells in table_rows(text.split("Settings, in `[providers.fake]`", 1)[1])]
    assert len(keys) >= 10
    for key in keys:
        assert f'"{key}"' in source, f"docs/plugins.md documents a fake setting {key!r} the fake does not read"
    assert asyncio.run(FakeProvider(settings={"size": 16}).generate(suite_request())).data.startswith(b"\x89PNG")
