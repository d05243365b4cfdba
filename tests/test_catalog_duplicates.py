"""Data given twice in a catalogue (a field, a key, a CSV column, the list of entries) is an error, never
"the last one wins"; and a CSV quote that is never closed is named at the row where it opens."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from limner.catalog import load_catalog
from limner.errors import EXIT_BAD_INPUT, CatalogError, Problem


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def problems_of(path: Path) -> list[Problem]:
    with pytest.raises(CatalogError) as info:
        load_catalog(path)
    assert info.value.exit_code == EXIT_BAD_INPUT
    return info.value.problems


def only(problems: list[Problem]) -> Problem:
    assert len(problems) == 1, problems
    return problems[0]


# ------------------------------------------------------------------------- YAML
def test_yaml_id_given_twice_names_file_line_entry_and_field(tmp_path: Path) -> None:
    path = write(tmp_path, "c.yaml", "- id: alpha\n  title: A\n  id: beta\n")
    p = only(problems_of(path))
    assert (p.line, p.entry, p.field) == (3, "alpha", "id")
    assert "duplicate field (first given at line 1)" in p.message
    assert str(p).startswith(f"{path}:3: entry 'alpha': field 'id': ")


def test_yaml_every_field_given_twice_is_reported(tmp_path: Path) -> None:
    text = "entries:\n  - id: a\n    title: A\n    era: x\n    title: B\n    era: y\n  - id: b\n    title: B\n"
    problems = problems_of(write(tmp_path, "c.yaml", text))
    assert [(p.line, p.entry, p.field) for p in problems] == [(5, "a", "title"), (6, "a", "era")]


def test_yaml_key_given_twice_inside_a_field(tmp_path: Path) -> None:
    text = "- id: a\n  title: A\n  meta:\n    source: one\n    source: two\n"
    p = only(problems_of(write(tmp_path, "c.yaml", text)))
    assert (p.line, p.entry, p.field) == (5, "a", "meta")
    assert "key 'source' given twice in one mapping (first given at line 4)" in p.message


def test_yaml_entries_given_twice(tmp_path: Path) -> None:
    text = "entries:\n  - id: a\n    title: A\nentries:\n  - id: b\n    title: B\n"
    p = only(problems_of(write(tmp_path, "c.yaml", text)))
    assert (p.line, p.field) == (4, "entries") and "first at line 1" in p.message


def test_yaml_merge_keys_may_still_be_overridden(tmp_path: Path) -> None:
    text = ("defaults: &d {era: modern, title: Untitled}\n"
            "entries:\n  - <<: *d\n    id: a\n    title: Given\n  - <<: *d\n    id: b\n")
    by_id = load_catalog(write(tmp_path, "c.yaml", text)).by_id()
    assert by_id["a"].title == "Given" and by_id["b"].title == "Untitled" and by_id["a"].era == "modern"


# ------------------------------------------------------------------------- JSON and JSONL
def test_json_field_given_twice(tmp_path: Path) -> None:
    text = '[\n {"id": "a", "title": "A"},\n {"id": "b",\n  "title": "A",\n  "title": "B"}\n]'
    p = only(problems_of(write(tmp_path, "c.json", text)))
    assert (p.line, p.entry, p.field) == (5, "b", "title") and "first given at line 4" in p.message


def test_json_field_given_twice_one_line_and_with_spaces_before_colons(tmp_path: Path) -> None:
    for text in ('[{"id":"a","title":"A","title":"B"}]', '[{"id" : "a", "title" : "A", "title"\t: "B"}]'):
        p = only(problems_of(write(tmp_path, "c.json", text)))
        assert (p.line, p.entry, p.field) == (1, "a", "title")


def test_json_key_given_twice_inside_a_field(tmp_path: Path) -> None:
    text = json.dumps([{"id": "a", "title": "A", "meta": {"k": 1}}], indent=1).replace('"k": 1', '"k": 1, "k": 2')
    p = only(problems_of(write(tmp_path, "c.json", text)))
    assert (p.entry, p.field) == ("a", "meta") and "key 'k' given twice" in p.message


def test_json_text_that_looks_like_keys_is_no_duplicate(tmp_path: Path) -> None:
    entries = [{"id": "a", "title": 'He said "title": twice', "description": '"title": "title":',
                "meta": {"title": 1, "id": 2}}]
    (entry,) = load_catalog(write(tmp_path, "c.json", json.dumps(entries, indent=2))).entries
    assert entry.title == 'He said "title": twice'
    (entry,) = load_catalog(write(tmp_path, "c.jsonl", json.dumps(entries[0]))).entries
    assert entry.extras["meta"] == {"title": 1, "id": 2}


@pytest.mark.parametrize("line", ['{"id": "a", "title": "A", "title": "B"}', '{"id": "a", "title": "A", "title" : "B"}',
                                  '{"id": "a", "title": "A", "year": "x", "year": 3}'])
def test_jsonl_field_given_twice(tmp_path: Path, line: str) -> None:
    path = write(tmp_path, "c.jsonl", '{"id": "ok", "title": "Fine"}\n' + line + "\n")
    p = only(problems_of(path))
    assert (p.line, p.entry) == (2, "a") and p.field in ("title", "year") and "duplicate field" in p.message


# ------------------------------------------------------------------------- CSV
def test_csv_column_given_twice_is_an_error_at_the_header(tmp_path: Path) -> None:
    path = write(tmp_path, "c.csv", "id,title,id\nexodus,The Exodus,foo\n")
    p = only(problems_of(path))
    assert (p.line, p.field) == (1, "id") and "columns 1 and 3" in p.message
    assert str(p).startswith(f"{path}: row 1: field 'id': duplicate column")


def test_csv_unclosed_quote_is_named_where_it_opens(tmp_path: Path) -> None:
    path = write(tmp_path, "c.csv", 'id,title\nok,Fine\n"exodus,The Exodus\nfoo,bar\nbaz,qux\n')
    p = only(problems_of(path))
    assert (p.line, p.field) == (3, "id") and "never closed" in p.message
    assert "foo" not in str(p)  # not the lines that were swallowed into the cell
    p = only(problems_of(write(tmp_path, "d.csv", 'id,title\nok,"Fine\nfoo,bar\n')))
    assert (p.line, p.entry, p.field) == (2, "ok", "title") and "never closed" in p.message


def test_csv_cells_over_several_lines_still_load_and_start_where_they_start(tmp_path: Path) -> None:
    cat = load_catalog(write(tmp_path, "c.csv", 'id,title,description\na,A,"one\ntwo"\n\nb,"B ""quoted"""\n'))
    assert cat.by_id()["a"].description == "one\ntwo" and cat.by_id()["b"].title == 'B "quoted"'
    assert cat.lines == {"a": 2, "b": 5}


# ------------------------------------------------------------------------- from the command line
@pytest.mark.parametrize(("name", "text", "where"), [
    ("catalog.csv", "id,title,id\nexodus,The Exodus,foo\n", "catalog.csv: row 1: field 'id'"),
    ("catalog.yaml", "- id: alpha\n  title: A\n  id: beta\n", "catalog.yaml:3: entry 'alpha': field 'id'"),
    ("catalog.json", '[{"id": "a", "title": "A", "title": "B"}]', "catalog.json:1: entry 'a': field 'title'"),
])
def test_cli_plan_refuses_data_given_twice(project_dir, name: str, text: str, where: str) -> None:
    (project_dir.root / name).write_text(text, encoding="utf-8")
    proc = project_dir.run("plan", env=project_dir.env(LIMNER_CATALOG=name))
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert where in proc.stderr and proc.stdout == ""
