"""Read a catalogue file into validated entries, or fail naming file, line, entry and field.

Formats, chosen by extension:

* ``.yaml`` / ``.yml`` / ``.json``: a list of entries, or a mapping with ``entries:``
* ``.jsonl`` / ``.ndjson``: one JSON object per line
* ``.csv``: a header row; ``tags`` split on ``;`` (or ``,``)

Loading never writes anything: a bad catalogue changes nothing.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from limner.catalog.models import Entry
from limner.errors import CatalogError, Problem
from limner.gcpause import gc_paused

try:  # libyaml is much faster when the wheel carries it
    _YamlLoader: Any = yaml.CSafeLoader
except AttributeError:  # pragma: no cover
    _YamlLoader = yaml.SafeLoader

FORMATS = {".yaml": "yaml", ".yml": "yaml", ".json": "json", ".jsonl": "jsonl", ".ndjson": "jsonl", ".csv": "csv"}


@dataclass
class Catalog:
    path: Path
    entries: list[Entry]
    #: id -> line (or CSV row) where the entry starts
    lines: dict[str, int] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.entries)

    def __iter__(self) -> Iterator[Entry]:
        return iter(self.entries)

    def by_id(self) -> dict[str, Entry]:
        return {e.id: e for e in self.entries}


@dataclass
class _Raw:
    """One entry before validation: its data, where it starts, and where each field is."""

    data: Any
    line: int | None
    field_lines: dict[str, int] = field(default_factory=dict)
    #: the entry's JSON text (JSONL): validated straight from JSON, which is much faster
    json_text: str | None = None


def load_catalog(path: str | Path, *, known_styles: Iterable[str] | None = None) -> Catalog:
    """Load and validate a catalogue. Raises :class:`CatalogError` listing every problem."""
    with gc_paused():
        return _load_catalog(Path(path), known_styles)


def _load_catalog(path: Path, known_styles: Iterable[str] | None) -> Catalog:
    path = Path(path)
    shown = str(path)
    fmt = FORMATS.get(path.suffix.lower())
    if fmt is None:
        raise CatalogError([Problem(shown, None, None, None, f"unknown catalogue format {path.suffix!r}; use one of {', '.join(sorted(FORMATS))}")])
    try:
        text = path.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise CatalogError([Problem(shown, None, None, None, "catalogue file not found")]) from None
    except UnicodeDecodeError as exc:
        raise CatalogError([Problem(shown, None, None, None, f"not UTF-8 text ({exc.reason} at byte {exc.start})")]) from None
    except OSError as exc:
        raise CatalogError([Problem(shown, None, None, None, f"cannot read: {exc.strerror}")]) from None

    problems: list[Problem] = []
    reader = {"yaml": _read_yaml, "json": _read_json, "jsonl": _read_jsonl, "csv": _read_csv}[fmt]
    raws = reader(text, shown, problems)
    unit = "row" if fmt == "csv" else "line"
    styles = set(known_styles) if known_styles is not None else None

    entries: list[Entry] = []
    lines: dict[str, int] = {}
    for raw in raws:
        entry = _validate(raw, shown, unit, problems)
        if entry is None:
            continue
        if entry.id in lines:
            problems.append(Problem(shown, raw.line, entry.id, "id", f"duplicate id (first defined at {unit} {lines[entry.id]})", unit))
            continue
        if styles is not None and entry.style is not None and entry.style not in styles:
            problems.append(
                Problem(shown, raw.field_lines.get("style", raw.line), entry.id, "style",
                        f"unknown style {entry.style!r}; known styles: {', '.join(sorted(styles))}", unit)
            )
            continue
        lines[entry.id] = raw.line or 0
        entries.append(entry)
    if problems:
        raise CatalogError(problems)
    return Catalog(path=path, entries=entries, lines=lines)


def _validate(raw: _Raw, shown: str, unit: str, problems: list[Problem]) -> Entry | None:
    if raw.json_text is not None:
        try:
            return Entry.model_validate_json(raw.json_text)
        except ValidationError as exc:
            bad_json = [e for e in exc.errors() if e["type"] == "json_invalid"]
            if bad_json:
                problems.append(Problem(shown, raw.line, None, None, f"invalid JSON: {bad_json[0]['ctx'].get('error', bad_json[0]['msg'])}"))
                return None
        raw = _Raw(json.loads(raw.json_text), raw.line)  # valid JSON, invalid entry: report it field by field
    data = raw.data
    if not isinstance(data, dict):
        problems.append(Problem(shown, raw.line, None, None, f"an entry must be a mapping of fields, got {type(data).__name__}", unit))
        return None
    entry_id = data.get("id") if isinstance(data.get("id"), str) else None
    bad_keys = [k for k in data if not isinstance(k, str)]
    if bad_keys:
        problems.append(Problem(shown, raw.line, entry_id, str(bad_keys[0]), "field names must be text", unit))
        return None
    if isinstance(data.get("date"), (dt.date, dt.datetime)):  # YAML turns 1948-05-14 into a date
        data = {**data, "date": data["date"].isoformat()}
    try:
        return Entry.model_validate(data)
    except ValidationError as exc:
        for err in exc.errors():
            fld = str(err["loc"][0]) if err["loc"] else None
            got = err.get("input")
            msg = err["msg"]
            if err["type"] == "missing":
                msg = "is required"
            elif fld == "title" and isinstance(got, str) and not got.strip():
                msg = "must not be empty"
            elif fld == "id" and err["type"] == "string_pattern_mismatch":
                msg = f"{got!r} is not a valid id: use lowercase letters, digits and '-' (pattern ^[a-z0-9][a-z0-9-]{{0,127}}$)"
            elif got is not None and not isinstance(got, dict):
                shown_got = repr(got)
                msg = f"{msg} (got {shown_got[:60] + '...' if len(shown_got) > 60 else shown_got})"
            line = raw.field_lines.get(fld, raw.line) if fld else raw.line
            problems.append(Problem(shown, line, entry_id, fld, msg, unit))
        return None


# ----------------------------------------------------------------------------- YAML
def _read_yaml(text: str, shown: str, problems: list[Problem]) -> list[_Raw]:
    loader = _YamlLoader(text)
    try:
        try:
            root = loader.get_single_node()
        except yaml.MarkedYAMLError as exc:
            mark = exc.problem_mark or exc.context_mark
            problems.append(Problem(shown, mark.line + 1 if mark else None, None, None, f"invalid YAML: {exc.problem or exc.context}"))
            return []
        except yaml.YAMLError as exc:
            problems.append(Problem(shown, None, None, None, f"invalid YAML: {exc}"))
            return []
        items = _entries_node(root, shown, problems)
        raws = []
        for node in items:
            line = node.start_mark.line + 1
            field_lines = {}
            if isinstance(node, yaml.MappingNode):
                for key, _value in node.value:
                    if isinstance(key, yaml.ScalarNode):
                        field_lines[key.value] = key.start_mark.line + 1
            try:
                data = loader.construct_object(node, deep=True)
            except yaml.YAMLError as exc:
                problems.append(Problem(shown, line, None, None, f"invalid YAML: {exc}"))
                continue
            raws.append(_Raw(data, line, field_lines))
        return raws
    finally:
        loader.dispose()


def _entries_node(root: Any, shown: str, problems: list[Problem]) -> list[Any]:
    if root is None:
        problems.append(Problem(shown, None, None, None, "catalogue is empty"))
        return []
    if isinstance(root, yaml.SequenceNode):
        return list(root.value)
    if isinstance(root, yaml.MappingNode):
        for key, value in root.value:
            if isinstance(key, yaml.ScalarNode) and key.value == "entries":
                if isinstance(value, yaml.SequenceNode):
                    return list(value.value)
                problems.append(Problem(shown, value.start_mark.line + 1, None, "entries", "must be a list of entries"))
                return []
    problems.append(Problem(shown, root.start_mark.line + 1, None, None, "expected a list of entries or a mapping with 'entries:'"))
    return []


# ----------------------------------------------------------------------------- JSON
def _line_of(text: str, pos: int) -> int:
    return text.count("\n", 0, pos) + 1


def _read_json(text: str, shown: str, problems: list[Problem]) -> list[_Raw]:
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as exc:
        problems.append(Problem(shown, exc.lineno, None, None, f"invalid JSON: {exc.msg} (column {exc.colno})"))
        return []
    if isinstance(doc, dict):
        if "entries" not in doc:
            problems.append(Problem(shown, 1, None, None, "expected a list of entries or an object with \"entries\""))
            return []
        items = doc["entries"]
        if not isinstance(items, list):
            problems.append(Problem(shown, _line_of(text, text.find('"entries"')), None, "entries", "must be a list of entries"))
            return []
        start = text.find("[", text.find('"entries"'))
    elif isinstance(doc, list):
        items = doc
        start = text.find("[")
    else:
        problems.append(Problem(shown, 1, None, None, "expected a list of entries or an object with \"entries\""))
        return []
    # Walk the array again to learn where each entry starts (json has no positions).
    decoder = json.JSONDecoder()
    raws: list[_Raw] = []
    pos = start + 1
    for item in items:
        while text[pos] in " \t\r\n,":
            pos += 1
        _, end = decoder.raw_decode(text, pos)
        line = _line_of(text, pos)
        field_lines: dict[str, int] = {}
        if isinstance(item, dict):
            chunk = text[pos:end]
            for key in item:
                # the key followed by its colon, so a value that happens to equal a key is not taken for it
                found = re.search(re.escape(json.dumps(key, ensure_ascii=False)) + r"\s*:", chunk)
                at = found.start() if found else -1
                if at >= 0:
                    field_lines[key] = line + chunk.count("\n", 0, at)
        raws.append(_Raw(item, line, field_lines))
        pos = end
    return raws


def _read_jsonl(text: str, shown: str, problems: list[Problem]) -> Iterator[_Raw]:
    """One entry per line, streamed: each line is validated straight from its JSON text."""
    seen = 0
    for n, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        seen += 1
        if not line.lstrip().startswith("{"):
            try:
                value = json.loads(line)
            except json.JSONDecodeError as exc:
                problems.append(Problem(shown, n, None, None, f"invalid JSON: {exc.msg} (column {exc.colno})"))
                continue
            yield _Raw(value, n)
            continue
        yield _Raw(None, n, json_text=line)
    if not seen and not problems:  # like an empty YAML file: an empty catalogue is a mistake, not zero entries
        problems.append(Problem(shown, None, None, None, "catalogue is empty"))


# ----------------------------------------------------------------------------- CSV
_INT_FIELDS = ("year", "seed")


def _read_csv(text: str, shown: str, problems: list[Problem]) -> list[_Raw]:
    reader = csv.DictReader(io.StringIO(text, newline=""))
    if not reader.fieldnames:
        problems.append(Problem(shown, 1, None, None, "CSV has no header row", "row"))
        return []
    raws = []
    try:
        for row in reader:
            row_no = reader.line_num
            data: dict[str, Any] = {}
            if None in row:
                problems.append(Problem(shown, row_no, row.get("id"), None, "row has more cells than the header", "row"))
                continue
            for key, value in row.items():
                if key is None:
                    continue
                key = key.strip()
                value = (value or "").strip()
                if value == "":
                    continue
                if key == "tags":
                    sep = ";" if ";" in value else ","
                    data[key] = [t.strip() for t in value.split(sep) if t.strip()]
                elif key in _INT_FIELDS:
                    try:
                        data[key] = int(value)
                    except ValueError:
                        data[key] = value  # validation reports it with the field named
                else:
                    data[key] = value
            raws.append(_Raw(data, row_no))
    except csv.Error as exc:
        problems.append(Problem(shown, reader.line_num, None, None, f"invalid CSV: {exc}", "row"))
    return raws
