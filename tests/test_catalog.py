"""Catalogue loading: every format, every kind of mistake, and the lines the errors point at."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from limner.catalog import Catalog, Entry, load_catalog
from limner.errors import EXIT_BAD_INPUT, CatalogError, Problem

STYLES = ["house", "oil-painting"]


def write(tmp_path: Path, name: str, text: str | bytes) -> Path:
    path = tmp_path / name
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text, encoding="utf-8")
    return path


def problems_of(path: Path, **kw) -> list[Problem]:
    with pytest.raises(CatalogError) as info:
        load_catalog(path, **kw)
    err = info.value
    assert err.exit_code == EXIT_BAD_INPUT == 2
    assert err.problems, "a CatalogError always lists at least one problem"
    # the message lists every problem
    for p in err.problems:
        assert str(p) in str(err)
    return err.problems


def only(problems: list[Problem]) -> Problem:
    assert len(problems) == 1, problems
    return problems[0]


def find(problems: list[Problem], *, field: str | None = None, entry: str | None = None) -> Problem:
    hits = [p for p in problems if (field is None or p.field == field) and (entry is None or p.entry == entry)]
    assert len(hits) == 1, (field, entry, problems)
    return hits[0]


# ------------------------------------------------------------------------- valid input, every format
YAML_LIST = """\
- id: exodus
  title: The Exodus
  year: -1250
  tags: [bible, egypt]
- id: independence
  title: Declaration of Independence
  year: 1948
  style: house
"""

YAML_MAPPING = """\
# a comment first
entries:
  - id: exodus
    title: The Exodus
    year: -1250
    tags: [bible, egypt]
  - id: independence
    title: Declaration of Independence
    year: 1948
    style: house
"""

JSON_LIST = json.dumps(
    [
        {"id": "exodus", "title": "The Exodus", "year": -1250, "tags": ["bible", "egypt"]},
        {"id": "independence", "title": "Declaration of Independence", "year": 1948, "style": "house"},
    ],
    indent=2,
)
JSON_MAPPING = json.dumps({"version": 1, "entries": json.loads(JSON_LIST)}, indent=2)
JSONL = "\n".join(json.dumps(e) for e in json.loads(JSON_LIST)) + "\n"
CSV = "id,title,year,tags,style\nexodus,The Exodus,-1250,bible;egypt,\nindependence,Declaration of Independence,1948,,house\n"


@pytest.mark.parametrize(
    ("name", "text"),
    [
        ("c.yaml", YAML_LIST),
        ("c.yml", YAML_MAPPING),
        ("c.json", JSON_LIST),
        ("c2.json", JSON_MAPPING),
        ("c.jsonl", JSONL),
        ("c.ndjson", JSONL),
        ("c.csv", CSV),
        ("C.YAML", YAML_LIST),  # extension case does not matter
    ],
)
def test_valid_catalogue_in_every_format(tmp_path: Path, name: str, text: str) -> None:
    cat = load_catalog(write(tmp_path, name, text), known_styles=STYLES)
    assert isinstance(cat, Catalog)
    assert len(cat) == 2
    assert [e.id for e in cat] == ["exodus", "independence"]
    exodus, independence = cat.entries
    assert exodus.title == "The Exodus"
    assert exodus.year == -1250
    assert exodus.tags == ["bible", "egypt"]
    assert exodus.style is None
    assert independence.year == 1948
    assert independence.style == "house"
    assert independence.tags == []
    assert set(cat.by_id()) == {"exodus", "independence"}
    assert cat.by_id()["exodus"] is exodus


def test_entry_start_lines_are_recorded(tmp_path: Path) -> None:
    assert load_catalog(write(tmp_path, "c.yaml", YAML_LIST)).lines == {"exodus": 1, "independence": 5}
    assert load_catalog(write(tmp_path, "m.yaml", YAML_MAPPING)).lines == {"exodus": 3, "independence": 7}
    assert load_catalog(write(tmp_path, "c.jsonl", JSONL)).lines == {"exodus": 1, "independence": 2}
    assert load_catalog(write(tmp_path, "c.csv", CSV)).lines == {"exodus": 2, "independence": 3}
    # indent=2 JSON: "[" on line 1, then each object starts at a line holding just "{"
    starts = [n for n, line in enumerate(JSON_LIST.splitlines(), 1) if line.strip() == "{"]
    assert starts[0] == 2
    assert load_catalog(write(tmp_path, "c.json", JSON_LIST)).lines == {"exodus": starts[0], "independence": starts[1]}


def test_utf8_bom_is_accepted(tmp_path: Path) -> None:
    cat = load_catalog(write(tmp_path, "c.csv", "\ufeff" + CSV))
    assert [e.id for e in cat] == ["exodus", "independence"]


def test_csv_tags_split_on_semicolon_or_comma(tmp_path: Path) -> None:
    text = 'id,title,tags\na,A, x ; y;;z \nb,B,"p, q"\nc,C,solo\n'
    cat = load_catalog(write(tmp_path, "c.csv", text)).by_id()
    assert cat["a"].tags == ["x", "y", "z"]
    assert cat["b"].tags == ["p", "q"]
    assert cat["c"].tags == ["solo"]


def test_csv_empty_cells_are_absent_and_numbers_are_ints(tmp_path: Path) -> None:
    text = "id,title,year,seed,description\na,A,,,\nb,B,70,42,The fall\n"
    cat = load_catalog(write(tmp_path, "c.csv", text)).by_id()
    assert cat["a"].year is None and cat["a"].seed is None and cat["a"].description is None
    assert cat["b"].year == 70 and cat["b"].seed == 42 and cat["b"].description == "The fall"




# ------------------------------------------------------------------------- text survives unchanged
TRICKY = {
    "hebrew": "הכרזת העצמאות",
    "rtl_mixed": "יום העצמאות 1948 — Independence Day",
    "emoji": "🕎 Hanukkah ✡️ 🇮🇱",
    "quotes": "He said \"Let my people go\" and 'it was so'",
    "jinja": "{{ title }} and {% raw %}{{ x }}{% endraw %} and {# c #}",
    "braces": "{{ ''.__class__ }} {% for x in y %}",
}


@pytest.mark.parametrize("fmt", ["yaml", "json", "jsonl", "csv"])
def test_unicode_quotes_and_template_syntax_survive_loading(tmp_path: Path, fmt: str) -> None:
    entries = [{"id": f"e-{i}", "title": text, "description": text} for i, text in enumerate(TRICKY.values())]
    if fmt == "yaml":
        import yaml

        body = yaml.safe_dump(entries, allow_unicode=True)
    elif fmt == "json":
        body = json.dumps(entries, ensure_ascii=False, indent=1)
    elif fmt == "jsonl":
        body = "\n".join(json.dumps(e, ensure_ascii=False) for e in entries)
    else:
        import csv
        import io

        buf = io.StringIO()
        w = csv.DictWriter(buf, fieldnames=["id", "title", "description"])
        w.writeheader()
        w.writerows(entries)
        body = buf.getvalue()
    cat = load_catalog(write(tmp_path, f"c.{fmt}", body))
    assert [(e.title, e.description) for e in cat] == [(t, t) for t in TRICKY.values()]


def test_yaml_rtl_and_braces_written_by_hand(tmp_path: Path) -> None:
    text = (
        "- id: a\n"
        '  title: "{{ x }}"\n'
        "  description: '{% raw %}not code{% endraw %}'\n"
        "  era: שלום\n"
    )
    (entry,) = load_catalog(write(tmp_path, "c.yaml", text)).entries
    assert entry.title == "{{ x }}"
    assert entry.description == "{% raw %}not code{% endraw %}"
    assert entry.era == "שלום"


def test_extra_fields_are_kept(tmp_path: Path) -> None:
    text = "- id: a\n  title: A\n  location: Jerusalem\n  people: [Ben-Gurion]\n  meta: {source: archive}\n"
    (entry,) = load_catalog(write(tmp_path, "c.yaml", text)).entries
    assert entry.extras == {"location": "Jerusalem", "people": ["Ben-Gurion"], "meta": {"source": "archive"}}
    assert entry.template_vars()["location"] == "Jerusalem"
    # a CSV's extra columns too
    (row,) = load_catalog(write(tmp_path, "c.csv", "id,title,location\na,A,Haifa\n")).entries
    assert row.extras == {"location": "Haifa"}


def test_yaml_dates_become_iso_strings(tmp_path: Path) -> None:
    text = "- id: a\n  title: A\n  date: 1948-05-14\n- id: b\n  title: B\n  date: '14 May 1948'\n"
    cat = load_catalog(write(tmp_path, "c.yaml", text)).by_id()
    assert cat["a"].date == "1948-05-14"
    assert isinstance(cat["a"].date, str)
    assert cat["a"].year_label == "1948-05-14"
    assert cat["b"].date == "14 May 1948"


def test_unquoted_dates_are_iso_text_in_text_fields_and_impossible_ones_stay_as_written(tmp_path: Path) -> None:
    """YAML's own timestamp conversion raised a bare ValueError (a traceback) on 2023-02-30; now an impossible
    date is the text as written, a possible one in a text field its ISO text (as ``date`` always was: the
    fingerprints of existing catalogues do not change), and a field that wants a number says so with its line."""
    import datetime as dt

    text = ("- id: a\n  title: A\n  date: 2023-02-30\n- id: b\n  title: 2023-02-03\n  date: 1969-07-20 20:17:00\n"
            "  description: 1948-05-14 10:00:00\n  location: 1948-05-14\n")
    cat = load_catalog(write(tmp_path, "c.yaml", text)).by_id()
    assert cat["a"].date == "2023-02-30" and cat["b"].title == "2023-02-03" and cat["b"].date == "1969-07-20T20:17:00"
    assert cat["b"].description == "1948-05-14T10:00:00" and cat["b"].extras == {"location": dt.date(1948, 5, 14)}
    with pytest.raises(CatalogError) as err:
        load_catalog(write(tmp_path, "d.yaml", "- id: a\n  title: A\n  year: 2001-02-30 25:61:00\n"))
    assert "d.yaml:3: entry 'a': field 'year'" in str(err.value) and "2001-02-30 25:61:00" in str(err.value)


def test_unquoted_dates_in_tags_are_iso_text(tmp_path: Path) -> None:
    """``tags: [1948-05-14]`` was a validation error ("Input should be a valid string") for text the user wrote
    as text: YAML had made it a date. A date in a list of text is now its ISO text, like a text field's."""
    text = "- id: a\n  title: A\n  tags: [1948-05-14, founding, 1969-07-20 20:17:00, 2023-02-30]\n"
    (entry,) = load_catalog(write(tmp_path, "c.yaml", text)).entries
    assert entry.tags == ["1948-05-14", "founding", "1969-07-20T20:17:00", "2023-02-30"]
    with pytest.raises(CatalogError) as err:  # a number in tags is still an error, with its place
        load_catalog(write(tmp_path, "d.yaml", "- id: a\n  title: A\n  tags: [1948-05-14, 12]\n"))
    assert "d.yaml:3: entry 'a': field 'tags" in str(err.value)


def test_titles_are_stripped(tmp_path: Path) -> None:
    (entry,) = load_catalog(write(tmp_path, "c.json", '[{"id": "a", "title": "  Spaced  "}]')).entries
    assert entry.title == "Spaced"


@pytest.mark.parametrize(
    ("year", "label"),
    [(-586, "586 BCE"), (-1, "1 BCE"), (70, "70 CE"), (1948, "1948 CE"), (None, "")],
)
def test_year_label(year: int | None, label: str) -> None:
    assert Entry(id="a", title="A", year=year).year_label == label


def test_alt_text_defaults_from_title_and_year() -> None:
    assert Entry(id="a", title="Fall of Jericho", year=-1400).alt_text == "Illustration: Fall of Jericho (1400 BCE)"
    assert Entry(id="a", title="T", alt="Given").alt_text == "Given"


@pytest.mark.parametrize(("aspect", "normal"), [("16:9", "16:9"), ("3:2", "3:2"), (" 4 : 3 ", "4:3"), ("16x9", "16:9"), ("1:4", "1:4")])
def test_valid_aspects(tmp_path: Path, aspect: str, normal: str) -> None:
    (entry,) = load_catalog(write(tmp_path, "c.json", json.dumps([{"id": "a", "title": "A", "aspect": aspect}]))).entries
    assert entry.aspect == normal


def test_bad_aspects_name_their_lines(tmp_path: Path) -> None:
    text = "- id: a\n  title: A\n  aspect: abc\n- id: b\n  title: B\n  aspect: '10:1'\n- id: c\n  title: C\n  aspect: '0:3'\n"
    problems = problems_of(write(tmp_path, "c.yaml", text))
    assert len(problems) == 3
    a, b, c = (find(problems, entry=x) for x in "abc")
    assert (a.line, a.field) == (3, "aspect") and "16:9" in a.message
    assert (b.line, b.field) == (6, "aspect") and "4:1" in b.message
    assert (c.line, c.field) == (9, "aspect")


# ------------------------------------------------------------------------- errors and their lines
def test_duplicate_id_reports_the_duplicate_line_yaml(tmp_path: Path) -> None:
    text = "- id: a\n  title: A\n- id: b\n  title: B\n- id: a\n  title: Again\n"
    p = only(problems_of(write(tmp_path, "c.yaml", text)))
    assert (p.line, p.entry, p.field, p.unit) == (5, "a", "id", "line")
    assert "duplicate" in p.message and "line 1" in p.message
    assert str(p).startswith(f"{tmp_path / 'c.yaml'}:5: entry 'a': field 'id': ")


def test_duplicate_id_json_jsonl_csv(tmp_path: Path) -> None:
    js = '[\n  {"id": "a", "title": "A"},\n  {"id": "b", "title": "B"},\n  {"id": "a", "title": "C"}\n]\n'
    p = only(problems_of(write(tmp_path, "c.json", js)))
    assert (p.line, p.entry, p.field) == (4, "a", "id") and "line 2" in p.message

    jl = '{"id": "a", "title": "A"}\n\n{"id": "a", "title": "C"}\n'
    p = only(problems_of(write(tmp_path, "c.jsonl", jl)))
    assert (p.line, p.entry) == (3, "a")

    csv_text = "id,title\na,A\nb,B\na,C\n"
    p = only(problems_of(write(tmp_path, "c.csv", csv_text)))
    assert (p.line, p.entry, p.field, p.unit) == (4, "a", "id", "row")
    assert "row 2" in p.message
    assert str(p).startswith(f"{tmp_path / 'c.csv'}: row 4: entry 'a'")


@pytest.mark.parametrize("bad", ["../x", "Upper", "-leading", "has space", "under_score", "a/b", ""])
def test_bad_ids(tmp_path: Path, bad: str) -> None:
    text = f"- id: ok\n  title: Fine\n- title: Bad\n  id: {json.dumps(bad)}\n"
    p = find(problems_of(write(tmp_path, "c.yaml", text)), field="id")
    assert p.line == 4  # the id's own line, not the entry's first line
    assert p.entry == bad


def test_bad_id_message_explains_the_pattern(tmp_path: Path) -> None:
    p = only(problems_of(write(tmp_path, "c.json", '[{"id": "../x", "title": "T"}]')))
    assert p.field == "id" and "'../x'" in p.message and "lowercase" in p.message


def test_unknown_style(tmp_path: Path) -> None:
    text = "- id: a\n  title: A\n  style: house\n- id: b\n  title: B\n  style: watercolour\n"
    p = only(problems_of(write(tmp_path, "c.yaml", text), known_styles=STYLES))
    assert (p.line, p.entry, p.field) == (6, "b", "style")
    assert "watercolour" in p.message and "house" in p.message  # names what is known
    # without known styles, any style is accepted
    assert len(load_catalog(tmp_path / "c.yaml")) == 2


def test_unknown_style_csv_points_at_the_row(tmp_path: Path) -> None:
    p = only(problems_of(write(tmp_path, "c.csv", "id,title,style\na,A,nope\n"), known_styles=STYLES))
    assert (p.line, p.unit, p.field) == (2, "row", "style")


def test_missing_and_empty_title(tmp_path: Path) -> None:
    text = "- id: a\n  year: 1\n- id: b\n  title: ''\n- id: c\n  title: '   '\n"
    problems = problems_of(write(tmp_path, "c.yaml", text))
    assert len(problems) == 3
    missing = find(problems, entry="a")
    assert (missing.field, missing.line, missing.message) == ("title", 1, "is required")
    for entry_id, line in (("b", 4), ("c", 6)):
        p = find(problems, entry=entry_id)
        assert (p.field, p.line, p.message) == ("title", line, "must not be empty")


def test_wrong_types_each_name_their_field_line_yaml(tmp_path: Path) -> None:
    text = (
        "- id: a\n"          # 1
        "  title: A\n"       # 2
        "  year: abc\n"      # 3
        "  seed: -1\n"       # 4
        "  tags: history\n"  # 5
        "- id: b\n"          # 6
        "  title: B\n"       # 7
        "  year: 1.5\n"      # 8
        "  seed: 4294967296\n"  # 9
    )
    problems = problems_of(write(tmp_path, "c.yaml", text))
    got = {(p.entry, p.field): p for p in problems}
    assert set(got) == {("a", "year"), ("a", "seed"), ("a", "tags"), ("b", "year"), ("b", "seed")}
    assert got["a", "year"].line == 3 and "'abc'" in got["a", "year"].message
    assert got["a", "seed"].line == 4 and "-1" in got["a", "seed"].message
    assert got["a", "tags"].line == 5 and "list" in got["a", "tags"].message
    assert got["b", "year"].line == 8
    assert got["b", "seed"].line == 9


def test_strings_are_not_coerced_to_ints(tmp_path: Path) -> None:
    # JSON "1948" is text: a typo'd quoted year should not pass silently as a number
    p = only(problems_of(write(tmp_path, "c.json", '[{"id": "a", "title": "A", "year": "1948"}]')))
    assert p.field == "year"


def test_wrong_types_json_field_lines(tmp_path: Path) -> None:
    text = (
        "[\n"                        # 1
        "  {\n"                      # 2
        '    "id": "a",\n'           # 3
        '    "title": "A",\n'        # 4
        '    "tags": ["seed"],\n'    # 5  the word "seed" as a value must not be taken for the key
        '    "seed": -1\n'           # 6
        "  },\n"                     # 7
        "  {\n"                      # 8
        '    "id": "b",\n'           # 9
        '    "title": "B",\n'        # 10
        '    "year": "abc",\n'       # 11
        '    "tags": "x"\n'          # 12
        "  }\n"
        "]\n"
    )
    problems = problems_of(write(tmp_path, "c.json", text))
    got = {(p.entry, p.field): p.line for p in problems}
    assert got == {("a", "seed"): 6, ("b", "year"): 11, ("b", "tags"): 12}


def test_wrong_types_json_entries_mapping(tmp_path: Path) -> None:
    text = '{\n  "entries": [\n    {"id": "a", "title": "A"},\n    {"id": "b",\n     "title": "B",\n     "seed": -5}\n  ]\n}\n'
    p = only(problems_of(write(tmp_path, "c.json", text)))
    assert (p.entry, p.field, p.line) == ("b", "seed", 6)


def test_wrong_types_jsonl_and_csv(tmp_path: Path) -> None:
    jl = '{"id": "a", "title": "A"}\n{"id": "b", "title": "B", "seed": -1}\n{"id": "c", "title": "C", "tags": "x"}\n'
    problems = problems_of(write(tmp_path, "c.jsonl", jl))
    assert {(p.entry, p.field, p.line) for p in problems} == {("b", "seed", 2), ("c", "tags", 3)}

    csv_text = "id,title,year,seed\na,A,abc,\nb,B,1,-1\nc,C,2,3\n"
    problems = problems_of(write(tmp_path, "c.csv", csv_text))
    assert {(p.entry, p.field, p.line, p.unit) for p in problems} == {("a", "year", 2, "row"), ("b", "seed", 3, "row")}


def test_entry_not_a_mapping(tmp_path: Path) -> None:
    p = only(problems_of(write(tmp_path, "c.yaml", "- id: a\n  title: A\n- just a string\n")))
    assert p.line == 3 and "mapping" in p.message


def test_every_problem_is_reported_at_once(tmp_path: Path) -> None:
    text = "- id: a\n  title: A\n- id: a\n  title: B\n- id: Bad\n  title: C\n- id: d\n"
    problems = problems_of(write(tmp_path, "c.yaml", text))
    assert len(problems) == 3
    assert "3 errors" in str(CatalogError(problems))


def test_many_problems_are_truncated_in_the_message() -> None:
    problems = [Problem("c.yaml", i, None, None, "bad") for i in range(60)]
    text = str(CatalogError(problems))
    assert "60 errors" in text and "and 10 more" in text
    assert "c.yaml:49: bad" in text and "c.yaml:50: bad" not in text


def test_problem_str_formats() -> None:
    assert str(Problem("f.yaml", 3, "a", "title", "is required")) == "f.yaml:3: entry 'a': field 'title': is required"
    assert str(Problem("f.csv", 7, None, None, "oops", "row")) == "f.csv: row 7: oops"
    assert str(Problem("f.json", None, None, None, "empty")) == "f.json: empty"
    assert str(CatalogError([Problem("f", None, None, None, "x")])).startswith("catalogue has 1 error;")


# ------------------------------------------------------------------------- unreadable files
def test_yaml_syntax_error_reports_its_line(tmp_path: Path) -> None:
    text = "- id: a\n  title: A\n- id: b\n  title: B\n   bad: indent\n- id: c\n  title: C\n"
    p = only(problems_of(write(tmp_path, "c.yaml", text)))
    assert p.line == 5
    assert p.message.startswith("invalid YAML")


def test_yaml_unclosed_flow_sequence(tmp_path: Path) -> None:
    text = "- id: a\n  title: A\n  tags: [one, two\n- id: b\n  title: B\n"
    p = only(problems_of(write(tmp_path, "c.yaml", text)))
    assert p.message.startswith("invalid YAML")
    assert p.line is not None and 3 <= p.line <= 5


def test_yaml_wrong_top_level(tmp_path: Path) -> None:
    p = only(problems_of(write(tmp_path, "c.yaml", "title: not a list\n")))
    assert "entries" in p.message
    p = only(problems_of(write(tmp_path, "d.yaml", "# comment\nentries:\n  id: a\n")))
    assert (p.field, p.line) == ("entries", 3)


def test_json_syntax_error_reports_its_line(tmp_path: Path) -> None:
    text = '[\n  {"id": "a", "title": "A"},\n  {"id": "b", "title": "B",}\n]\n'
    p = only(problems_of(write(tmp_path, "c.json", text)))
    assert p.line == 3
    assert p.message.startswith("invalid JSON") and "column" in p.message


def test_json_wrong_top_level(tmp_path: Path) -> None:
    assert "entries" in only(problems_of(write(tmp_path, "a.json", '{"items": []}'))).message
    assert "entries" in only(problems_of(write(tmp_path, "b.json", '"just text"'))).message
    p = only(problems_of(write(tmp_path, "c.json", '{\n  "entries": {"id": "a"}\n}')))
    assert (p.field, p.line) == ("entries", 2)


def test_jsonl_bad_line_is_reported_and_others_still_checked(tmp_path: Path) -> None:
    text = '{"id": "a", "title": "A"}\n{"id": "b", "title": \n{"id": "c"}\n'
    problems = problems_of(write(tmp_path, "c.jsonl", text))
    assert {(p.line, p.field) for p in problems} == {(2, None), (3, "title")}
    (syntax,) = [p for p in problems if p.field is None]
    assert syntax.message.startswith("invalid JSON")


def test_csv_row_with_extra_cells(tmp_path: Path) -> None:
    text = "id,title\na,A\nb,B,surplus\nc,C\n"
    p = only(problems_of(write(tmp_path, "c.csv", text)))
    assert (p.line, p.unit, p.entry) == (3, "row", "b")
    assert "more cells" in p.message


@pytest.mark.parametrize(("name", "text"), [("e.yaml", ""), ("e2.yaml", "# only a comment\n"), ("e.json", ""), ("e.jsonl", ""), ("e2.jsonl", "\n \n"), ("e.csv", "")])
def test_empty_file_is_an_error(tmp_path: Path, name: str, text: str) -> None:
    p = only(problems_of(write(tmp_path, name, text)))
    assert p.file == str(tmp_path / name)
    assert p.entry is None


@pytest.mark.parametrize(("name", "text"), [
    ("c.yaml", "entries: []\n"), ("c2.yaml", "[]\n"), ("c3.yaml", "title: x\nentries: []\n"),
    ("c.json", "[]"), ("c2.json", '{"entries": []}'), ("c.csv", "id,title,year\n"), ("c2.csv", "id,title\n\n\n"),
])
def test_a_catalogue_without_entries_is_an_error_in_every_format(tmp_path: Path, name: str, text: str) -> None:
    # as an empty file is: zero entries is a mistake, and `limner sync` would withdraw every published image
    p = only(problems_of(write(tmp_path, name, text)))
    assert (p.file, p.line, p.entry, p.field, p.message) == (str(tmp_path / name), None, None, None, "catalogue is empty")


def test_unknown_extension(tmp_path: Path) -> None:
    p = only(problems_of(write(tmp_path, "catalog.txt", "- id: a\n  title: A\n")))
    assert "'.txt'" in p.message and ".yaml" in p.message and ".csv" in p.message


def test_unknown_extension_reported_even_when_missing(tmp_path: Path) -> None:
    p = only(problems_of(tmp_path / "nothing.xlsx"))
    assert "format" in p.message


def test_non_utf8_bytes(tmp_path: Path) -> None:
    p = only(problems_of(write(tmp_path, "c.yaml", b"- id: a\n  title: caf\xe9\n")))
    assert "UTF-8" in p.message
    assert "byte 20" in p.message  # where the bad byte is: 8 + len("  title: caf")
    assert p.line == 2


@pytest.mark.parametrize(("name", "data", "where"), [
    ("c.json", b'\xef\xbb\xbf[{"id": "a",\n "title": "caf\xe9"}]', ":2: "),  # the byte-order mark counts
    ("c.jsonl", b'{"id": "a", "title": "A"}\n{"id": "b", "title": "caf\xe9"}\n', ":2: "),
    ("c.csv", b"id,title\na,A\nb,caf\xe9\n", ": row 3: "),
])
def test_non_utf8_bytes_name_line_and_byte_in_every_format(tmp_path: Path, name: str, data: bytes, where: str) -> None:
    p = only(problems_of(write(tmp_path, name, data)))
    assert str(p) == f"{tmp_path / name}{where}not UTF-8 text (invalid continuation byte at byte {data.index(0xE9)}); save it as UTF-8"


def test_file_not_found(tmp_path: Path) -> None:
    missing = tmp_path / "nope" / "catalog.yaml"
    p = only(problems_of(missing))
    assert p.file == str(missing)
    assert "not found" in p.message
    assert p.line is None


def test_directory_instead_of_file(tmp_path: Path) -> None:
    (tmp_path / "dir.yaml").mkdir()
    p = only(problems_of(tmp_path / "dir.yaml"))
    assert "cannot read" in p.message


def test_loading_accepts_str_paths(tmp_path: Path) -> None:
    path = write(tmp_path, "c.yaml", YAML_LIST)
    cat = load_catalog(str(path))
    assert cat.path == path and len(cat) == 2


# ------------------------------------------------------------------------- extra values JSON cannot hold
@pytest.mark.parametrize(("value", "kind"), [
    ('!!binary "/w=="', "binary data (YAML !!binary)"),
    ("!!set {x, y}", "a set (YAML !!set)"),
    ("!!omap [{a: 1}, {b: 2}]", "a list of pairs (YAML !!omap or !!pairs)"),
    ("!!pairs [{a: 1}]", "a list of pairs (YAML !!omap or !!pairs)"),
])
def test_yaml_extra_value_json_cannot_hold_is_refused(tmp_path: Path, value: str, kind: str) -> None:
    # it loaded, then failed inside a run after the provider was paid (recording the entry needs JSON)
    text = f"- id: ok\n  title: OK\n- id: a\n  title: A\n  blob: {value}\n"
    p = only(problems_of(write(tmp_path, "c.yaml", text)))
    assert (p.line, p.entry, p.field) == (5, "a", "blob")
    assert p.message.startswith(f"cannot hold {kind}:")
    assert "what JSON can hold" in p.message


def test_yaml_extra_value_json_cannot_hold_nested_names_where(tmp_path: Path) -> None:
    text = "- id: a\n  title: ''\n  meta:\n    when: 2020-01-01\n    parts: [1, {raw: !!binary \"/w==\"}]\n"
    problems = problems_of(write(tmp_path, "c.yaml", text))
    assert find(problems, field="title").line == 2  # the entry's other problems are reported too
    p = find(problems, field="meta")
    assert (p.line, p.entry) == (3, "a")
    assert "binary data (YAML !!binary) at meta.parts[1].raw:" in p.message


def test_yaml_extra_values_json_can_hold_load(tmp_path: Path) -> None:
    text = ("- id: a\n  title: A\n  meta: {n: 1, f: 1.5, ok: true, none: null, when: 2020-01-01, "
            "at: 2020-01-01 10:00:00, 1948: year, list: [a, [b, {c: d}]]}\n")
    entry = load_catalog(write(tmp_path, "c.yaml", text)).entries[0]
    entry.model_dump_json()  # what a run records
    assert entry.extras["meta"]["list"] == ["a", ["b", {"c": "d"}]]


def test_binary_extra_value_is_refused_before_any_call(project_dir) -> None:
    project_dir.catalog.write_text("entries:\n  - id: a\n    title: A\n    blob: !!binary \"/w==\"\n", encoding="utf-8")
    before = sorted(project_dir.root.rglob("*"))
    for command in ("plan", "generate"):
        proc = project_dir.run(command)
        assert proc.returncode == 2, proc.stderr
        assert "catalog.yaml:4: entry 'a': field 'blob': cannot hold binary data" in proc.stderr
        assert "Traceback" not in proc.stderr
    assert project_dir.calls() == []
    assert sorted(project_dir.root.rglob("*")) == before  # nothing written: no .limner, no media


def test_sync_with_an_empty_catalogue_withdraws_nothing(project_dir) -> None:
    project_dir.run("generate", check=True)
    project_dir.run("sync", check=True)
    before = {p: p.read_bytes() for p in project_dir.root.rglob("*") if p.is_file() and p.suffix != ".db"}
    db = (project_dir.root / ".limner" / "limner.db").read_bytes()
    for text in ("entries: []\n", "[]\n"):
        project_dir.catalog.write_text(text, encoding="utf-8")
        for command in ("sync", "generate", "plan"):
            proc = project_dir.run(command)
            assert proc.returncode == 2, (command, proc.stdout, proc.stderr)
            assert "catalog.yaml: catalogue is empty" in proc.stderr
    after = {p: p.read_bytes() for p in project_dir.root.rglob("*") if p.is_file() and p.suffix != ".db"}
    assert after.keys() == before.keys() | {project_dir.catalog}
    assert all(after[p] == data for p, data in before.items() if p != project_dir.catalog)
    assert (project_dir.root / ".limner" / "limner.db").read_bytes() == db


# ------------------------------------------------------------------------- integers longer than Python reads
LONG = "9" * 5000  # over sys.get_int_max_str_digits() (4300): int() of it is a bare ValueError


@pytest.mark.parametrize(("name", "text", "expected"), [
    ("c.yaml", f"- id: ok\n  title: OK\n- id: a\n  title: A\n  n: {LONG}\n", [(5, "a", "n")]),
    ("c2.yaml", f"- id: a\n  title: A\n  meta:\n    deep: [1, -{LONG}]\n- id: b\n  title: B\n  year: {LONG}\n",
     [(4, "a", "meta"), (7, "b", "year")]),
    ("c.json", f'[{{"id": "ok", "title": "OK"}},\n {{"id": "a", "title": "A",\n  "n": {LONG}}}]', [(3, "a", "n")]),
    ("c2.json", f'{{"entries": [{{"id": "a", "title": "A", "m": {{"x": [-{LONG}]}}}},\n {LONG}]}}',
     [(1, "a", "m"), (2, None, None)]),
    ("c.jsonl", f'{{"id": "ok", "title": "OK"}}\n{{"id": "a", "title": "A", "n": {LONG}}}\n[{LONG}]\n',
     [(2, "a", "n"), (3, None, None)]),
])
def test_an_integer_too_long_to_read_is_a_problem(tmp_path: Path, name: str, text: str, expected: list) -> None:
    problems = problems_of(write(tmp_path, name, text))
    assert [(p.line, p.entry, p.field) for p in problems] == expected
    for p in problems:
        assert p.message == ("a number of 5,000 digits: more than the 4,300 digits an integer may have; "
                             "write it as text, in quotes")


def test_an_integer_too_long_to_read_beside_a_syntax_error(tmp_path: Path) -> None:
    p = only(problems_of(write(tmp_path, "c.json", f'[{{"id": "a", "title": "A", "n": {LONG}}},\n {{"id": "b",]')))
    assert p.line == 2 and p.message.startswith("invalid JSON:")


def test_yaml_anchor_after_an_integer_too_long_to_read(tmp_path: Path) -> None:
    # construction stopped half way through the first entry; its anchor is built afresh for the second, whose
    # problem is where the number is written
    text = f"- id: a\n  title: A\n  meta: &m {{x: 1, n: {LONG}}}\n- id: b\n  title: B\n  meta: *m\n"
    problems = problems_of(write(tmp_path, "c.yaml", text))
    assert [(p.line, p.entry, p.field) for p in problems] == [(3, "a", "meta"), (3, "b", "meta")]
    assert all("a number of 5,000 digits" in p.message for p in problems)


def test_an_integer_too_long_to_read_exits_2_and_changes_nothing(project_dir) -> None:
    project_dir.catalog.write_text(f"entries:\n  - id: a\n    title: A\n    n: {LONG}\n", encoding="utf-8")
    before = sorted(project_dir.root.rglob("*"))
    proc = project_dir.run("generate")
    assert proc.returncode == 2 and "catalog.yaml:4: entry 'a': field 'n': a number of 5,000 digits" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert project_dir.calls() == [] and sorted(project_dir.root.rglob("*")) == before


@pytest.mark.parametrize(("name", "text", "where"), [
    ("c.yaml", "- id: a\n  title: A\n  v: .nan\n", "field 'v': nan is not a number JSON can hold"),
    ("c.yaml", "- id: a\n  title: A\n  m: {x: [1, .inf]}\n", "field 'm': inf is not a number JSON can hold at m.x[1]"),
    ("c.json", '[{"id": "a", "title": "A", "v": NaN}]', "field 'v': nan is not a number JSON can hold"),
    ("c.jsonl", '{"id": "a", "title": "A", "v": -Infinity}\n', "field 'v': -inf is not a number JSON can hold"),
])
def test_nan_and_infinity_in_an_extra_field_are_refused(tmp_path: Path, name: str, text: str, where: str) -> None:
    """YAML's ``.nan``/``.inf`` and JSON's non-standard ``NaN`` loaded, were recorded as ``null``, and a template
    given one could hang (``wordwrap(nan)``). They are now a catalogue error naming the field."""
    with pytest.raises(CatalogError) as err:
        load_catalog(write(tmp_path, name, text))
    assert f"{name}:" in str(err.value) and "entry 'a': " + where in str(err.value)
    assert load_catalog(write(tmp_path, "ok.yaml", "- id: a\n  title: A\n  v: 1.5\n  t: '.nan'\n")).entries[0].extras == \
        {"v": 1.5, "t": ".nan"}
