"""Hostile style templates: every render's work is bounded, and a broken bound is a style error (exit 2).

Each attack is reproduced at its real size: on an unbounded sandbox these hang or take gigabytes;
here each is refused within milliseconds, naming the style's file and the template.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from limner.catalog.models import Entry
from limner.errors import EXIT_BAD_INPUT, StyleError
from limner.styles import PromptRenderer, Style, load_styles
from limner.styles import sandbox

SOURCE = "/app/styles/t.toml"
ENTRY = Entry(id="exodus", title="The Exodus", year=-1250, tags=["bible", "egypt"], description="d" * 1_000)


def render(positive: str, entry: Entry = ENTRY, negative: str = "") -> tuple[str, str]:
    style = Style(name="t", positive=positive, negative=negative, source=SOURCE)
    return PromptRenderer({"t": style}).render(style, entry)


def refused(positive: str, entry: Entry = ENTRY, negative: str = "") -> str:
    started = time.monotonic()
    with pytest.raises(StyleError) as info:
        render(positive, entry, negative)
    assert time.monotonic() - started < 2, "a refused template must fail fast"
    assert info.value.exit_code == EXIT_BAD_INPUT == 2
    message = str(info.value)
    assert message.startswith(f"{SOURCE}: style 't': cannot render the ")
    return message


HOSTILE = {
    # found in the attack: nested loops hang every command, a repeated title grows to gigabytes
    "nested ranges": "{% for i in range(99999) %}{% for j in range(99999) %}{{ title }}{% endfor %}{% endfor %}",
    "nested small ranges": "{% for i in range(1000) %}{% for j in range(1000) %}{% for k in range(1000) %}{% endfor %}{% endfor %}{% endfor %}",
    "repeated title": "{{ title * 10**8 }}",
    "repeated list": "{{ (range(1000)|list) * 100000 }}",
    "huge power": "{{ 7 ** 1000000 }}",
    "squared big number": "{% set x = 3 ** 2500 %}{{ x * x }}",
    "center method": "{{ title.center(10**9) }}",
    "ljust method": "{{ title.ljust(10**9, '-') }}",
    "zfill method": "{{ title.zfill(10**9) }}",
    "expandtabs": "{{ ('\t' * 1000).expandtabs(10**6) }}",
    "str.replace": "{{ description.replace('d', description * 100) }}",
    "str.join": "{{ (description * 100).join(range(1000)|map('string')) }}",
    "to_bytes": "{{ (1).to_bytes(10**9, 'big') }}",
    "center filter": "{{ title|center(1000000000) }}",
    "indent filter": "{{ 'x'|indent(1000000000, true) }}",
    "batch filter": "{{ tags|batch(10**9, 'x')|list }}",
    "slice filter": "{{ tags|slice(10**9)|list }}",
    "join filter": "{{ range(1000)|join(description * 1000) }}",
    "map to center": "{{ tags|map('center', 10**9)|list }}",
    "wordwrap filter": "{{ title|wordwrap(1, wrapstring=description * 1000) }}",
    "tojson indent": "{{ entry|tojson(10**6) }}",
    "format method width": "{{ '{:>1000000000}'.format(title) }}",
    "format method nested width": "{{ '{:{}}'.format(title, 10**9) }}",
    "format precision": "{{ '{:.1000000000f}'.format(1.5) }}",
    "percent width": "{{ '%1000000000s' % title }}",
    "percent star width": "{{ '%*s' % (10**9, title) }}",
    "format filter": "{{ '%1000000000s'|format(title) }}",
    "lipsum": "{{ lipsum(10**6) }}",
    "doubling by ~ in a namespace": "{% set ns = namespace(s=title) %}{% for i in range(100) %}{% set ns.s = ns.s ~ ns.s %}{% endfor %}{{ ns.s|length }}",
    "doubling by + in a namespace": "{% set ns = namespace(s=title) %}{% for i in range(100) %}{% set ns.s = ns.s + ns.s %}{% endfor %}{{ ns.s|length }}",
    "doubling macro": "{% macro f(s, n) %}{% if n %}{{ f(s ~ s, n - 1) }}{% else %}{{ s|length }}{% endif %}{% endmacro %}{{ f(title, 60) }}",
    "captured block": "{% set x %}{% for i in range(1000) %}{{ description * 1000 }}{% endfor %}{% endset %}{{ x|length }}",
    "captured references": "{% set d = description * 900 %}{% set x %}{% for i in range(1000) %}{{ d }}{% endfor %}{% endset %}{{ x|length }}",
    "long output": "{% for i in range(1000) %}{{ description }}{% endfor %}",
    "recursive loop": "{% for x in range(1000) recursive %}{% if loop.depth < 5 %}{{ loop(range(1000)) }}{% endif %}{% endfor %}",
    "endless recursion": "{% macro f() %}{{ f() }}{% endmacro %}{{ f() }}",
}


@pytest.mark.parametrize("name", sorted(HOSTILE))
def test_hostile_templates_are_refused_fast(name: str) -> None:
    message = refused(HOSTILE[name])
    assert "over a limit" in message or "recursed too deeply" in message


@pytest.mark.parametrize("name", ["nested ranges", "repeated title", "doubling macro", "endless recursion"])
def test_hostile_templates_are_refused_when_styles_load(tmp_path: Path, name: str) -> None:
    # styles are compiled and tried when loaded, so a template that cannot render for any entry
    # stops every command before it reads the database or calls a provider
    d = tmp_path / "styles"
    d.mkdir()
    (d / "t.toml").write_text(f"positive = '''{HOSTILE[name]}'''\n", encoding="utf-8")
    started = time.monotonic()
    with pytest.raises(StyleError) as info:
        load_styles(d)
    assert time.monotonic() - started < 2
    assert info.value.exit_code == 2
    assert str(info.value).startswith(f"{d / 't.toml'}: style 't': cannot render the positive template")


def test_constant_templates_are_refused_when_styles_load() -> None:
    with pytest.raises(StyleError, match="cannot render the negative template: over a limit: loops ran more than"):
        load_styles(None, {"t": {"positive": "ok", "negative": "{% for i in range(999) %}{% for j in range(999) %}x{% endfor %}{% endfor %}"}})


def test_the_template_is_named_for_negative_prompts() -> None:
    assert "cannot render the negative template for entry 'exodus': over a limit" in refused("ok {{ title }}", negative="{{ description * 10**4 }}")


def test_limits_that_depend_on_the_entry_name_it() -> None:
    # a 1,000-character description is fine for the probe entry, too long here for this template
    message = refused("{{ description * 200 }}")
    assert "positive template for entry 'exodus': over a limit: the rendered text is longer than 100,000 characters" in message


def test_render_time_is_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    style = Style(name="t", positive="{% for t in tags %}{{ t.upper() }}{% endfor %}", source=SOURCE)
    renderer = PromptRenderer({"t": style})
    monkeypatch.setattr(sandbox, "MAX_RENDER_SECONDS", -1.0)
    with pytest.raises(StyleError, match="over a limit: rendering took longer than"):
        renderer.render(style, ENTRY)


class _Exhausting:
    """An entry value whose text cannot be built: stands in for a render that runs out of memory."""

    def __str__(self) -> str:
        raise MemoryError


def test_memory_and_recursion_errors_are_style_errors() -> None:
    entry = Entry(id="a", title="T", blob=_Exhausting())  # type: ignore[call-arg]
    assert "for entry 'a': ran out of memory" in refused("{{ blob }}", entry)
    assert "recursed too deeply" in refused("{% macro f(n) %}{{ f(n + 1) }}{% endmacro %}{{ f(title|length) }}")


def test_errors_leave_no_budget_behind() -> None:
    refused(HOSTILE["nested small ranges"])
    assert sandbox._BUDGET.get() is None
    assert render("{% for t in tags %}{{ t }} {% endfor %}")[0] == "bible egypt"


GOOD = [
    ("{% for t in tags %}{{ loop.index }}:{{ t }}{% if not loop.last %}, {% endif %}{% endfor %}", "1:bible, 2:egypt"),
    ("{{ tags|join(', ') }} / {{ tags|map('upper')|join(' ') }}", "bible, egypt / BIBLE EGYPT"),
    ("{{ title ~ ' (' ~ year ~ ')' }}", "The Exodus (-1250)"),
    ("{{ '%05d' % 42 }} {{ '{:>12}'.format(title) }} {{ '%s|%s'|format(title, year) }}", "00042 The Exodus The Exodus|-1250"),
    ("{{ title|center(14) }}|{{ title.ljust(12, '.') }}|{{ 'a\nb'|indent(2, true) }}", "The Exodus |The Exodus..| a b"),
    ("{{ title|replace('Exodus', 'Way Out') }} {{ title|wordwrap(40) }} {{ title|truncate(5, true, '', 0) }}", "The Way Out The Exodus The E"),
    ("{{ range(3)|list }} {{ tags|batch(1)|list }} {{ tags|slice(2)|list }}", "[0, 1, 2] [['bible'], ['egypt']] [['bible'], ['egypt']]"),
    ("{{ {'a': [1, 2]}|tojson(2) }}", '{ "a": [ 1, 2 ] }'),
    ("{{ 2 ** 10 }} {{ 3 * 4 }} {{ 'ab' * 3 }} {{ [1] + [2] }} {{ 10 % 3 }}", "1024 12 ababab [1, 2] 1"),
    ("{% macro f(n) %}{% if n %}{{ n }}{{ f(n - 1) }}{% endif %}{% endmacro %}{{ f(3) }}", "321"),
    ("{% for x in [[1, [2]], 3] recursive %}{% if x is iterable %}{{ loop(x) }}{% else %}{{ x }}{% endif %}{% endfor %}", "123"),
    ("{% set ns = namespace(n=0) %}{% for i in range(100) %}{% set ns.n = ns.n + i %}{% endfor %}{{ ns.n }}", "4950"),
    ("{% set s %}{{ title }}!{% endset %}{{ s }}", "The Exodus!"),
]


@pytest.mark.parametrize(("template", "expected"), GOOD)
def test_ordinary_templates_still_render(template: str, expected: str) -> None:
    assert render(template)[0] == expected


def test_a_loop_budget_big_enough_for_real_templates() -> None:
    entry = Entry(id="a", title="T", tags=[f"t{i}" for i in range(500)])
    positive, _ = render("{% for a in tags[:90] %}{% for b in tags[:100] %}{% endfor %}{% endfor %}{{ tags|length }}", entry)
    assert positive == "500"


def test_cli_hostile_style_exits_2_before_anything_runs(project_dir) -> None:
    styles = project_dir.root / "styles"
    styles.mkdir()
    for name, template in (("loops", HOSTILE["nested ranges"]), ("grow", HOSTILE["repeated title"])):
        (styles / "house.toml").write_text(f"positive = '''{template}'''\n", encoding="utf-8")
        project_dir.catalog.write_text("entries:\n  - id: a\n    title: A\n    style: house\n")
        for command in ("plan", "generate"):
            started = time.monotonic()
            proc = project_dir.run(command, timeout=60)
            assert time.monotonic() - started < 30, name
            assert proc.returncode == 2, (name, proc.stderr)
            assert f"{styles / 'house.toml'}: style 'house': cannot render the positive template" in proc.stderr
            assert "over a limit" in proc.stderr and "Traceback" not in proc.stderr
    assert not (project_dir.root / ".limner").exists() and project_dir.calls() == []
