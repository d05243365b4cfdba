"""Catalogue typos and hostile catalogues: near-miss field names, alias bombs, deep nesting, huge JSON files.

Each attack is reproduced at a small size: it must be refused while the catalogue is read (exit 2,
naming file, line, entry and field), before anything is written or paid for.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
import yaml

from limner.catalog import load_catalog
from limner.catalog.fields import near_miss, osa_distance
from limner.catalog.limits import MAX_ALIAS_REPEATS, MAX_DEPTH
from limner.config import load_settings
from limner.errors import EXIT_BAD_INPUT, CatalogError, Problem


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def problems_of(path: Path, **kw) -> list[Problem]:
    with pytest.raises(CatalogError) as info:
        load_catalog(path, **kw)
    assert info.value.exit_code == EXIT_BAD_INPUT == 2
    return info.value.problems


def only(problems: list[Problem]) -> Problem:
    assert len(problems) == 1, problems
    return problems[0]


# ------------------------------------------------------------------------- near misses of known fields
@pytest.mark.parametrize(
    ("name", "meant"),
    [
        ("styel", "style"), ("titel", "title"), ("decription", "description"), ("promt", "prompt"),
        ("tilte", "title"), ("stlye", "style"), ("styles", "style"), ("aspects", "aspect"), ("provder", "provider"),
        ("providers", "provider"), ("desciption", "description"), ("decsription", "description"),
        ("descripton", "description"), ("Title", "title"), ("STYLE", "style"), ("Id", "id"), ("ID", "id"),
        ("Tags", "tags"), ("des-cription", "description"), ("yaer", "year"), ("tag", "tags"), ("tgas", "tags"),
        ("sede", "seed"), ("dtae", "date"), ("rea", "era"), ("lat", "alt"),
    ],
)
def test_near_misses_are_flagged(name: str, meant: str) -> None:
    assert near_miss(name) == meant


@pytest.mark.parametrize(
    "name",
    [
        # real extra fields, including words one letter from a short field name
        "tags_extra", "wikipedia", "location", "people", "source_url", "notes", "name", "data", "dates", "years",
        "area", "art", "speed", "seen", "uid", "ids", "type", "kind", "image", "caption", "period", "region",
        "credit", "url", "topic", "place", "summary", "source", "subtitle", "title_he", "description_he",
        "alt_he", "era_name", "style_notes", "prompt_extra", "year_label", "artist", "date_end",
        # the known fields themselves
        "id", "title", "year", "date", "era", "description", "prompt", "style", "provider", "seed", "aspect", "alt", "tags",
    ],
)
def test_real_extra_fields_are_not_flagged(name: str) -> None:
    assert near_miss(name) is None


def test_allowed_names_are_not_flagged() -> None:
    assert near_miss("titel", frozenset({"titel"})) is None
    assert near_miss("styel", frozenset({"titel"})) == "style"


def test_osa_distance() -> None:
    assert osa_distance("styel", "style") == 1  # a swap counts once
    assert osa_distance("decription", "description") == 1
    assert osa_distance("kitten", "sitting") == 3
    assert osa_distance("", "abc") == 3


def test_yaml_typo_is_an_error_naming_line_entry_and_field(tmp_path: Path) -> None:
    path = write(tmp_path, "c.yaml", "entries:\n  - id: exodus\n    title: The Exodus\n    styel: oil-painting\n")
    p = only(problems_of(path, known_styles=["oil-painting"]))
    assert (p.file, p.line, p.entry, p.field) == (str(path), 4, "exodus", "styel")
    assert "did you mean 'style'?" in p.message and "project.allow_fields" in p.message
    assert str(p).startswith(f"{path}:4: entry 'exodus': field 'styel': ")


def test_typo_of_a_required_field_is_reported_once(tmp_path: Path) -> None:
    # without the hint, "titel" would also give "field 'title': is required"
    p = only(problems_of(write(tmp_path, "c.yaml", "- id: a\n  titel: A\n")))
    assert (p.line, p.field) == (2, "titel") and "did you mean 'title'?" in p.message


@pytest.mark.parametrize(
    ("name", "text", "line", "unit"),
    [
        ("c.json", '[\n  {"id": "a", "title": "A"},\n  {"id": "b",\n   "title": "B",\n   "promt": "x"}\n]\n', 5, "line"),
        ("c.jsonl", '{"id": "a", "title": "A"}\n{"id": "b", "title": "B", "promt": "x"}\n', 2, "line"),
    ],
)
def test_typo_in_json_formats(tmp_path: Path, name: str, text: str, line: int, unit: str) -> None:
    p = only(problems_of(write(tmp_path, name, text)))
    assert (p.line, p.entry, p.field, p.unit) == (line, "b", "promt", unit)
    assert "did you mean 'prompt'?" in p.message


def test_typo_in_a_csv_header_is_reported_once(tmp_path: Path) -> None:
    path = write(tmp_path, "c.csv", "id,titel,location\na,A,Haifa\nb,B,Acre\n")
    p = only(problems_of(path))
    assert (p.line, p.entry, p.field, p.unit) == (1, None, "titel", "row")
    assert str(p).startswith(f"{path}: row 1: field 'titel': unknown field 'titel': did you mean 'title'?")


def test_allow_fields_keeps_the_name_as_an_extra_field(tmp_path: Path) -> None:
    path = write(tmp_path, "c.yaml", "- id: a\n  title: A\n  titel: Der Auszug\n")
    assert problems_of(path)
    (entry,) = load_catalog(path, allow_fields=["titel"]).entries
    assert entry.extras == {"titel": "Der Auszug"}


def test_allow_fields_is_a_project_setting(tmp_path: Path) -> None:
    (tmp_path / "limner.toml").write_text('[project]\nallow_fields = ["titel", "styel"]\n', encoding="utf-8")
    assert load_settings(tmp_path / "limner.toml").project.allow_fields == ["titel", "styel"]


def test_real_extra_fields_still_load(tmp_path: Path) -> None:
    text = "- id: a\n  title: A\n  tags_extra: [x]\n  wikipedia: https://example.org\n  location: Haifa\n  data: 1\n"
    (entry,) = load_catalog(write(tmp_path, "c.yaml", text)).entries
    assert set(entry.extras) == {"tags_extra", "wikipedia", "location", "data"}


def test_errors_are_sorted_by_line(tmp_path: Path) -> None:
    # pydantic reports fields in model order (year before seed); the file has seed first
    text = ("- id: a\n  title: A\n- id: b\n  title: B\n  seed: -1\n  year: soon\n- id: c\n  title: C\n  styel: x\n"
            "- id: a\n  title: Again\n")
    problems = problems_of(write(tmp_path, "c.yaml", text))
    assert [(p.line, p.field) for p in problems] == [(5, "seed"), (6, "year"), (9, "styel"), (10, "id")]


def test_unquoted_aspect_gets_a_hint_to_quote_it(tmp_path: Path) -> None:
    p = only(problems_of(write(tmp_path, "c.yaml", "- id: a\n  title: A\n  aspect: 16:9\n")))
    assert (p.line, p.entry, p.field) == (3, "a", "aspect")
    assert "969" in p.message and "aspect: '16:9'" in p.message
    # quoted, it loads
    (entry,) = load_catalog(write(tmp_path, "d.yaml", "- id: a\n  title: A\n  aspect: '16:9'\n")).entries
    assert entry.aspect == "16:9"


# ------------------------------------------------------------------------- YAML aliases
LAUGHS = "".join(
    [' lol0: &l0 ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]\n']
    + [f" lol{i}: &l{i} [{', '.join([f'*l{i - 1}'] * 9)}]\n" for i in range(1, 10)]
)


@pytest.mark.parametrize("field", ["laughs", "tags"])
def test_alias_bomb_is_refused_without_expanding_it(tmp_path: Path, field: str) -> None:
    # 9**10 (3.5 billion) strings once expanded; refused after counting, in well under a second
    text = "x-defs:\n" + LAUGHS + f"entries:\n  - id: ok\n    title: OK\n  - id: bomb\n    title: B\n    {field}: *l9\n"
    started = time.monotonic()
    p = only(problems_of(write(tmp_path, "c.yaml", text)))
    assert time.monotonic() - started < 2
    assert (p.line, p.entry, p.field) == (17, "bomb", field)
    assert "aliases repeat more than" in p.message and "billion laughs" in p.message


def test_alias_bomb_inside_an_entry_is_refused(tmp_path: Path) -> None:
    text = "- id: bomb\n  title: B\n" + LAUGHS.replace(" lol", "  lol")
    p = only(problems_of(write(tmp_path, "c.yaml", text)))
    assert p.entry == "bomb" and "aliases repeat" in p.message


def test_recursive_alias_is_refused(tmp_path: Path) -> None:
    p = only(problems_of(write(tmp_path, "c.yaml", "- id: a\n  title: A\n  loop: &r [1, *r]\n")))
    assert (p.line, p.entry, p.field) == (3, "a", "loop") and "recursive" in p.message


def test_ordinary_aliases_still_work(tmp_path: Path) -> None:
    entries = "".join(f"  - id: e-{i}\n    title: E{i}\n    tags: *common\n    <<: *base\n" for i in range(300))
    text = "x-common: &common [bible, egypt]\nx-base: &base {era: modern, location: Haifa}\nentries:\n" + entries
    cat = load_catalog(write(tmp_path, "c.yaml", text))
    assert len(cat) == 300 and all(e.tags == ["bible", "egypt"] and e.era == "modern" for e in cat)


def test_alias_budget_scales_with_the_file(tmp_path: Path) -> None:
    # aliases may repeat as many values as the entries hold themselves: a big file that shares a
    # list in every entry is fine even past MAX_ALIAS_REPEATS values repeated
    n = MAX_ALIAS_REPEATS // 5 + 10
    common = "[" + ", ".join(f"t{i}" for i in range(4)) + "]"
    entries = "".join(f"- id: e-{i}\n  title: Entry number {i}\n  year: {i}\n  era: modern\n  tags: *c\n" for i in range(n))
    cat = load_catalog(write(tmp_path, "c.yaml", f"- &c0 {{id: first, title: F, tags: &c {common}}}\n" + entries))
    assert len(cat) == n + 1


# ------------------------------------------------------------------------- nesting depth
def nested(levels: int) -> str:
    return "[" * levels + "]" * levels


@pytest.mark.parametrize("fmt", ["yaml", "json", "jsonl"])
def test_nesting_up_to_the_limit_loads(tmp_path: Path, fmt: str) -> None:
    deepest = nested(MAX_DEPTH - 1)  # the entry is level 1
    body = {"yaml": f"- id: a\n  title: A\n  x: {deepest}\n", "json": f'[{{"id": "a", "title": "A", "x": {deepest}}}]',
            "jsonl": f'{{"id": "a", "title": "A", "x": {deepest}}}\n'}[fmt]
    (entry,) = load_catalog(write(tmp_path, f"c.{fmt}", body)).entries
    assert isinstance(entry.extras["x"], list)


@pytest.mark.parametrize("levels", [MAX_DEPTH, 900])
@pytest.mark.parametrize("fmt", ["yaml", "json", "jsonl"])
def test_nesting_past_the_limit_is_refused(tmp_path: Path, fmt: str, levels: int) -> None:
    body = {"yaml": f"- id: a\n  title: A\n  x: {nested(levels)}\n",
            "json": f'[\n{{"id": "a",\n "title": "A",\n "x": {nested(levels)}}}]',
            "jsonl": f'{{"id": "z", "title": "Z"}}\n{{"id": "a", "title": "A", "x": {nested(levels)}}}\n'}[fmt]
    p = only(problems_of(write(tmp_path, f"c.{fmt}", body)))
    assert f"more than {MAX_DEPTH} levels" in p.message
    assert p.line == {"yaml": 3, "json": 4, "jsonl": 2}[fmt]
    if p.entry is not None:  # JSONL past the JSON parser's own limit (~200) knows only the line
        assert (p.entry, p.field) == ("a", "x")


@pytest.mark.parametrize("levels", [1_000, 100_000])
def test_json_nested_beyond_the_parser_is_an_error_not_a_traceback(tmp_path: Path, levels: int) -> None:
    for name, body in (("c.json", '{"entries": [\n{"id": "a", "title": "A", "x": ' + nested(levels) + "}]}"),
                       ("c.jsonl", nested(levels) + "\n")):
        p = only(problems_of(write(tmp_path, name, body)))
        assert f"more than {MAX_DEPTH} levels" in p.message and p.line in (1, 2)


def test_deep_yaml_beyond_libyaml_is_an_error(tmp_path: Path) -> None:
    p = only(problems_of(write(tmp_path, "c.yaml", f"- id: a\n  title: A\n  x: {nested(5_000)}\n")))
    assert "invalid YAML" in p.message and p.line == 3


# ------------------------------------------------------------------------- JSON in linear time
def test_json_loads_in_linear_time_like_jsonl(tmp_path: Path) -> None:
    # the old reader counted lines from the top of the file for every entry: 10,000 entries took
    # seconds (and 40,000 almost two minutes); read in one pass, JSON is about as fast as JSONL
    entries = [{"id": f"e-{i}", "title": f"Entry {i}", "year": i, "tags": ["a", "b"], "location": "Haifa"} for i in range(10_000)]
    as_json = write(tmp_path, "c.json", json.dumps(entries, indent=2))
    as_jsonl = write(tmp_path, "c.jsonl", "\n".join(json.dumps(e) for e in entries))
    timings = {}
    for path in (as_jsonl, as_json, as_jsonl, as_json):
        started = time.perf_counter()
        cat = load_catalog(path)
        timings[path.suffix] = min(timings.get(path.suffix, 1e9), time.perf_counter() - started)
        assert len(cat) == 10_000
    assert timings[".json"] < 4 * timings[".jsonl"] + 0.5, timings
    # and every entry still knows its line
    assert cat.lines["e-0"] == 2 and cat.lines["e-9999"] == 2 + 9_999 * 10


def test_json_errors_still_name_the_line_of_a_late_entry(tmp_path: Path) -> None:
    entries = [{"id": f"e-{i}", "title": f"Entry {i}"} for i in range(2_000)]
    entries[1_500]["year"] = "soon"
    p = only(problems_of(write(tmp_path, "c.json", json.dumps({"entries": entries}, indent=1))))
    assert (p.entry, p.field) == ("e-1500", "year")
    text = (tmp_path / "c.json").read_text().splitlines()
    assert '"year": "soon"' in text[p.line - 1]


@pytest.mark.parametrize(
    ("text", "message", "line"),
    [
        ("", "Expecting value", 1),
        ('[{"id": "a", "title": "A"},\n]', "Expecting value", 2),
        ('[{"id": "a", "title": "A"}] x', "Extra data", 1),
        ('{"entries": [{"id": "a"}\n "x": 1}', "Expecting ',' delimiter", 2),
        ('{"entries": 3}', "must be a list of entries", 1),
        ('{"other": []}', "expected a list of entries", 1),
        ("3", "expected a list of entries", 1),
    ],
)
def test_json_syntax_and_shape_errors(tmp_path: Path, text: str, message: str, line: int) -> None:
    p = only(problems_of(write(tmp_path, "c.json", text)))
    assert message in p.message and p.line == line


def test_json_entries_key_given_twice_is_an_error(tmp_path: Path) -> None:
    # json.loads would keep the last list without a word; which one was meant is the user's to say
    text = '{"entries": [{"id": "a", "title": "A"}],\n "entries": [{"id": "b", "title": "B"}, {"id": "c", "title": "C"}]}'
    p = only(problems_of(write(tmp_path, "c.json", text)))
    assert (p.line, p.field) == (2, "entries") and "given twice (first at line 1)" in p.message


# ------------------------------------------------------------------------- from the command line
def test_cli_typo_exits_2_names_the_line_and_writes_nothing(project_dir) -> None:
    project_dir.catalog.write_text("entries:\n  - id: exodus\n    title: The Exodus\n    styel: oil-painting\n")
    for command in ("plan", "generate"):
        proc = project_dir.run(command)
        assert proc.returncode == 2, proc.stderr
        assert "catalog.yaml:4: entry 'exodus': field 'styel'" in proc.stderr and "did you mean 'style'?" in proc.stderr
        assert "Traceback" not in proc.stderr
    assert not (project_dir.root / ".limner").exists() and project_dir.calls() == []


@pytest.mark.parametrize("field", ["laughs", "tags"])
def test_cli_alias_bomb_exits_2_before_anything_runs(project_dir, field: str) -> None:
    project_dir.catalog.write_text("x-defs:\n" + LAUGHS + f"entries:\n  - id: bomb\n    title: B\n    {field}: *l9\n")
    started = time.monotonic()
    proc = project_dir.run("generate", timeout=60)
    assert proc.returncode == 2 and "billion laughs" in proc.stderr and "catalog.yaml:15" in proc.stderr, proc.stderr
    assert time.monotonic() - started < 30
    assert not (project_dir.root / ".limner").exists() and project_dir.calls() == []


@pytest.mark.parametrize("levels", [900, 1_000])
def test_cli_deep_json_exits_2_before_anything_runs(project_dir, levels: int) -> None:
    path = project_dir.root / "catalog.json"
    path.write_text('[{"id": "a", "title": "A", "x": ' + nested(levels) + "}]")
    proc = project_dir.run("generate", env=project_dir.env(LIMNER_CATALOG=str(path)))
    assert proc.returncode == 2 and f"more than {MAX_DEPTH} levels" in proc.stderr and "Traceback" not in proc.stderr, proc.stderr
    assert not (project_dir.root / ".limner").exists() and project_dir.calls() == []


def test_safe_dump_of_a_catalogue_with_aliases_round_trips(tmp_path: Path) -> None:
    # PyYAML writes shared values as anchors and aliases: such catalogues keep loading
    shared = ["a", "b"]
    text = yaml.safe_dump([{"id": f"e-{i}", "title": "T", "tags": shared} for i in range(50)])
    assert "*id" in text
    assert len(load_catalog(write(tmp_path, "c.yaml", text))) == 50


def test_cli_allow_fields(project_dir):
    project_dir.catalog.write_text("entries:\n  - id: a\n    title: A\n    titel: X\n")
    proc = project_dir.run("plan")
    assert proc.returncode == 2 and "did you mean 'title'" in proc.stderr
    project_dir.write_config("[project]\nallow_fields = ['titel']\n")
    assert project_dir.run("plan").returncode == 0
