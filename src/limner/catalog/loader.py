"""Read a catalogue file into validated entries, or fail naming file, line, entry and field.

Formats, chosen by extension:

* ``.yaml`` / ``.yml`` / ``.json``: a list of entries, or a mapping with ``entries:``
* ``.jsonl`` / ``.ndjson``: one JSON object per line
* ``.csv``: a header row; ``tags`` split on ``;`` (or ``,``)

Loading never writes anything: a bad catalogue changes nothing. Problems are
reported sorted by line. Extra fields whose names look like typos of known
fields are problems (:mod:`limner.catalog.fields`), and so are catalogues that
ask for unbounded work: deep nesting, YAML alias bombs (:mod:`limner.catalog.limits`).
Every format is read in time proportional to its size.
"""

from __future__ import annotations

import datetime as dt

import csv
import io
import json
import math
import re
import sys
from collections.abc import Iterable, Iterator, KeysView
from dataclasses import dataclass, field
from json.scanner import make_scanner
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from limner.catalog.fields import near_miss
from limner.catalog.limits import (
    MAX_ALIAS_REPEATS,
    MAX_DEPTH,
    DuplicateKey,
    NodeMeter,
    Recursive,
    TooDeep,
    deep_json_line,
    too_deep,
)
from limner.catalog.models import Entry
from limner.errors import CatalogError, Problem
from limner.gcpause import gc_paused

try:  # libyaml is much faster when the wheel carries it
    _BaseLoader: Any = yaml.CSafeLoader
except AttributeError:  # pragma: no cover
    _BaseLoader = yaml.SafeLoader


class _YamlLoader(_BaseLoader):  # type: ignore[misc,valid-type]
    """The safe loader, but an impossible unquoted date (``2023-02-30``) stays the text as written: YAML's own
    conversion raised a bare ``ValueError`` that names no line. Possible ones are converted as before, and
    :func:`_validate` turns them back into ISO text where a field is text (``date``, ``title``, ...)."""


def _timestamp(loader: Any, node: yaml.Node) -> Any:
    try:
        return yaml.constructor.SafeConstructor.construct_yaml_timestamp(loader, node)
    except ValueError:
        return loader.construct_scalar(node)


_YamlLoader.add_constructor("tag:yaml.org,2002:timestamp", _timestamp)


class _LongYamlNumber(Exception):
    """An integer longer than Python reads from text (``sys.get_int_max_str_digits()``), at ``node``."""

    def __init__(self, node: yaml.Node) -> None:
        self.node = node


def _int(loader: Any, node: yaml.Node) -> Any:
    try:
        return yaml.constructor.SafeConstructor.construct_yaml_int(loader, node)
    except ValueError:  # a bare ValueError naming no line, from int()
        raise _LongYamlNumber(node) from None


_YamlLoader.add_constructor("tag:yaml.org,2002:int", _int)
#: the entry fields that are text: an unquoted date given for one is read back as its ISO text
_TEXT_FIELDS = frozenset(name for name, f in Entry.model_fields.items() if f.annotation in (str, "str", str | None,
                                                                                          "str | None"))
#: the entry fields that are lists of text (``tags``): an unquoted date in one is read back the same way
_TEXT_LIST_FIELDS = frozenset(name for name, f in Entry.model_fields.items() if f.annotation in (list[str], "list[str]"))

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

    @property
    def unit(self) -> str:
        """What :attr:`lines` count: ``"row"`` in a CSV file, ``"line"`` elsewhere (see :class:`Problem`)."""
        return "row" if FORMATS.get(self.path.suffix.lower()) == "csv" else "line"

    def field_line(self, entry_id: str, name: str) -> int | None:
        """The line (or CSV row) where an entry gives a field, else where the entry starts."""
        return self.field_lines([entry_id], name).get(entry_id)

    def field_lines(self, entry_ids: Iterable[str], name: str) -> dict[str, int | None]:
        """Entry id -> the line (or CSV row) where the entry gives field ``name``, else where it starts.

        For reporting problems found after loading (unknown providers): the file is read again, once for all
        the entries asked about, so a valid catalogue costs nothing for it."""
        starts = {entry_id: self.lines.get(entry_id) for entry_id in entry_ids}
        found: dict[str, int | None] = dict(starts)
        try:
            text = self.path.read_text(encoding="utf-8-sig")
        except (OSError, UnicodeDecodeError):
            return found
        fmt = FORMATS.get(self.path.suffix.lower())
        if fmt is None:
            return found
        wanted = {line: entry_id for entry_id, line in starts.items() if line is not None}
        reader = {"yaml": _read_yaml, "json": _read_json, "jsonl": _read_jsonl, "csv": _read_csv}[fmt]
        for raw in reader(text, _Reading(str(self.path), frozenset())):
            entry_id = wanted.get(raw.line)
            if entry_id is None:
                continue
            if raw.json_text is not None:  # JSONL: the whole entry is on its line
                continue
            data = raw.data
            if isinstance(data, dict) and data.get("id") == entry_id:
                found[entry_id] = raw.field_line(name)
        return found


class _Raw:
    """One entry before validation: its data, where it starts, and where each field is."""

    __slots__ = ("data", "line", "json_text", "hints", "names_checked", "check_depth", "check_values", "_field_lines",
                 "_span")

    def __init__(self, data: Any, line: int | None, field_lines: dict[str, int] | None = None, *,
                 json_text: str | None = None, hints: dict[str, str] | None = None, names_checked: bool = False,
                 check_depth: bool = False, check_values: bool = False,
                 span: tuple[str, int, int] | None = None) -> None:
        self.data = data
        self.line = line
        #: the entry's JSON text (JSONL): validated straight from JSON, which is much faster
        self.json_text = json_text
        #: field -> the text YAML read a value from, when it read it as something else (``16:9`` as 969)
        self.hints = hints or {}
        #: field names were checked for typos already (CSV: once, in the header)
        self.names_checked = names_checked
        #: data parsed from JSON: lists and mappings are checked for depth here (YAML's are checked as nodes)
        self.check_depth = check_depth
        #: data built by YAML, which has types JSON has not (``!!binary``, ``!!set``): extra values are checked
        self.check_values = check_values
        self._field_lines = field_lines
        #: (text, start, end) of the entry in a JSON file, to find its fields' lines only when reporting
        self._span = span

    def field_line(self, name: str | None) -> int | None:
        if name is None:
            return self.line
        if self._field_lines is None:
            self._field_lines = _json_field_lines(self._span, self.data, self.line) if self._span else {}
        return self._field_lines.get(name, self.line)


class _Reading:
    """What every reader needs: the file name as shown, the problems found, the names allowed on purpose."""

    __slots__ = ("shown", "problems", "allowed", "fine_extras", "header_meant")

    def __init__(self, shown: str, allowed: frozenset[str]) -> None:
        self.shown = shown
        self.problems: list[Problem] = []
        self.allowed = allowed
        #: sets of extra field names already found free of typos (most entries share one)
        self.fine_extras: set[tuple[str, ...]] = set()
        #: known fields that typos in a CSV header stand for
        self.header_meant: set[str] = set()

    def add(self, line: int | None, entry: str | None, fld: str | None, message: str, unit: str = "line") -> None:
        self.problems.append(Problem(self.shown, line, entry, fld, message, unit))


def load_catalog(path: str | Path, *, known_styles: Iterable[str] | None = None,
                 allow_fields: Iterable[str] = ()) -> Catalog:
    """Load and validate a catalogue. Raises :class:`CatalogError` listing every problem, sorted by line.

    ``allow_fields`` names extra fields that are kept even though they look like a typo of a
    known field (the ``project.allow_fields`` setting).
    """
    with gc_paused():
        return _load_catalog(Path(path), known_styles, frozenset(allow_fields))


def _load_catalog(path: Path, known_styles: Iterable[str] | None, allowed: frozenset[str]) -> Catalog:
    shown = str(path)
    fmt = FORMATS.get(path.suffix.lower())
    if fmt is None:
        raise CatalogError([Problem(shown, None, None, None, f"unknown catalogue format {path.suffix!r}; use one of {', '.join(sorted(FORMATS))}")])
    try:
        text = path.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise CatalogError([Problem(shown, None, None, None, "catalogue file not found")]) from None
    except UnicodeDecodeError as exc:
        raise CatalogError([_not_utf8(path, exc)]) from None
    except OSError as exc:
        raise CatalogError([Problem(shown, None, None, None, f"cannot read: {exc.strerror}")]) from None

    ctx = _Reading(shown, allowed)
    reader = {"yaml": _read_yaml, "json": _read_json, "jsonl": _read_jsonl, "csv": _read_csv}[fmt]
    raws = reader(text, ctx)
    unit = "row" if fmt == "csv" else "line"
    styles = set(known_styles) if known_styles is not None else None

    entries: list[Entry] = []
    lines: dict[str, int] = {}
    seen = 0
    for raw in raws:
        seen += 1
        entry = _validate(raw, ctx, unit)
        if entry is None:
            continue
        if entry.id in lines:
            ctx.add(raw.line, entry.id, "id", f"duplicate id (first defined at {unit} {lines[entry.id]})", unit)
            continue
        if styles is not None and entry.style is not None and entry.style not in styles:
            ctx.add(raw.field_line("style"), entry.id, "style",
                    f"unknown style {entry.style!r}; known styles: {', '.join(sorted(styles))}", unit)
            continue
        lines[entry.id] = raw.line or 0
        entries.append(entry)
    if not seen and not ctx.problems:
        # an empty catalogue is a mistake, not zero entries: `sync` would withdraw every published image. In
        # every format alike: an empty file, `entries: []`, `[]`, a CSV header without rows, blank JSONL.
        ctx.add(None, None, None, _EMPTY)
    if ctx.problems:
        # by line; problems about the whole file (no line) first. The sort is stable, so one line's keep their order.
        ctx.problems.sort(key=lambda p: (p.line is not None, p.line or 0))
        raise CatalogError(ctx.problems)
    return Catalog(path=path, entries=entries, lines=lines)


def _not_utf8(path: Path, exc: UnicodeDecodeError) -> Problem:
    """The problem of a catalogue that is not UTF-8, at the line (CSV: row) of the first byte that is not."""
    start, line = exc.start, None
    try:  # where in the file: the offset of the decoder's error may not count a byte-order mark
        data = path.read_bytes()
        data.decode("utf-8")
    except UnicodeDecodeError as again:
        start, line = again.start, data.count(b"\n", 0, again.start) + 1
    except OSError:
        pass
    unit = "row" if FORMATS.get(path.suffix.lower()) == "csv" else "line"
    return Problem(str(path), line, None, None, f"not UTF-8 text ({exc.reason} at byte {start}); save it as UTF-8", unit)


# ----------------------------------------------------------------------------- checks shared by all formats
_KNOWN = frozenset(Entry.model_fields)
_CONTAINERS = (list, dict)
_EMPTY = "catalogue is empty"


def _long_number(digits: int) -> str:
    return (f"a number of {digits:,} digits: more than the {sys.get_int_max_str_digits():,} digits an integer may "
            "have; write it as text, in quotes")
_TOO_DEEP = f"lists and mappings nest more than {MAX_DEPTH} levels deep (the entry itself is level 1)"


def _duplicate_field(first: int | None) -> str:
    where = f" (first given at line {first})" if first is not None else ""
    return f"duplicate field{where}: only one value would count; give each field once"


def _duplicate_key(key: str, first: int | None) -> str:
    where = f" (first given at line {first})" if first is not None else ""
    return f"key {key!r} given twice in one mapping{where}: only one value would count; give each key once"


def _duplicate_entries(first: int) -> str:
    return f"given twice (first at line {first}): only one list would count; give one list of entries"


def _typo_message(name: str, known: str) -> str:
    return (f"unknown field {name!r}: did you mean {known!r}? "
            f"(to keep {name!r} as an extra field, list it in the project.allow_fields setting)")


def _check_names(names: KeysView[str], raw: _Raw, entry_id: str | None, ctx: _Reading, unit: str) -> set[str]:
    """Report extra field names that look like typos of known fields; return the known fields they stand for."""
    meant: set[str] = set()
    for name in sorted(names - _KNOWN):
        known = near_miss(name, ctx.allowed)
        if known is not None:
            ctx.add(raw.field_line(name), entry_id, name, _typo_message(name, known), unit)
            meant.add(known)
    return meant


def _check_depth(values: dict[str, Any], raw: _Raw, entry_id: str | None, ctx: _Reading, unit: str) -> bool:
    ok = True
    for name, value in values.items():
        kind = type(value)
        if kind is list:
            if not any(isinstance(x, _CONTAINERS) for x in value):
                continue
        elif kind is not dict:
            continue
        if too_deep(value, MAX_DEPTH - 1):
            ctx.add(raw.field_line(name), entry_id, name, _TOO_DEEP, unit)
            ok = False
    return ok


#: what a value of an extra field may be, besides lists and mappings: what JSON can hold, and the dates YAML makes
_PLAIN = (str, int, float, bool, type(None), dt.date)  # dt.datetime is a dt.date
_PLAIN_TYPES = frozenset({str, int, float, bool, type(None), dt.date, dt.datetime})
#: types YAML makes that JSON has not, as the user wrote them
_YAML_KINDS = {bytes: "binary data (YAML !!binary)", set: "a set (YAML !!set)",
               tuple: "a list of pairs (YAML !!omap or !!pairs)"}
_PLAIN_VALUES = ("extra fields hold text, numbers, true/false, null, dates, and lists and mappings of them "
                 "(what JSON can hold)")


def _unplain(value: Any, path: str) -> tuple[str, Any] | None:
    """Where in ``value`` something is that JSON cannot hold, and that thing; ``None`` when all is plain.
    (YAML values nest at most :data:`MAX_DEPTH` levels: checked before they are built.)"""
    kind = type(value)
    if kind is list:
        for i, item in enumerate(value):
            if type(item) in _PLAIN_TYPES:
                continue
            if type(item) is tuple:  # a pair of an !!omap or !!pairs: the list is what was written
                return path, item
            found = _unplain(item, f"{path}[{i}]")
            if found:
                return found
        return None
    if kind is dict:
        for key, item in value.items():
            if not isinstance(key, _PLAIN):
                return f"{path} (a key)", key
            if type(item) in _PLAIN_TYPES:
                continue
            found = _unplain(item, f"{path}.{key}")
            if found:
                return found
        return None
    return None if isinstance(value, _PLAIN) else (path, value)


def _check_values(values: dict[str, Any], raw: _Raw, entry_id: str | None, ctx: _Reading, unit: str) -> bool:
    """Report extra fields holding what JSON cannot (YAML's ``!!binary``, ``!!set``...): the entry could not be
    recorded, and a run would fail only after paying for its image."""
    ok = True
    for name, value in values.items():
        if type(value) in _PLAIN_TYPES:
            continue
        found = _unplain(value, str(name))
        if found is None:
            continue
        where, bad = found
        kind = _YAML_KINDS.get(type(bad), f"a {type(bad).__name__}")
        inside = f" at {where}" if where != name else ""
        ctx.add(raw.field_line(name), entry_id, str(name), f"cannot hold {kind}{inside}: {_PLAIN_VALUES}", unit)
        ok = False
    return ok


def _validate(raw: _Raw, ctx: _Reading, unit: str) -> Entry | None:
    """The entry, or ``None`` after reporting its problems. Valid entries take the short way."""
    if raw.json_text is not None:
        try:
            entry = Entry.model_validate_json(raw.json_text)
        except ValidationError as exc:
            bad_json = [e for e in exc.errors() if e["type"] == "json_invalid"]
            if bad_json:
                error = str(bad_json[0]["ctx"].get("error", bad_json[0]["msg"]))
                if "number out of range" in error and _report_long(ctx, _decoded(raw.json_text), raw.line, None):
                    return None
                ctx.add(raw.line, None, None, _TOO_DEEP if "recursion limit" in error else f"invalid JSON: {error}")
                return None
            # valid JSON, invalid entry: report it field by field (or the fields it gives twice)
            data, twice = _keys_given_twice(raw.json_text)
            if twice:
                _report_twice(ctx, data, twice, raw.json_text, raw.line, same_line=True)
                return None
            return _report(_Raw(data, raw.line, {}, check_depth=True), ctx, unit)
        if _may_repeat_keys(raw.json_text, 0, len(raw.json_text), len(entry.model_fields_set)):
            data, twice = _keys_given_twice(raw.json_text)
            if twice:
                _report_twice(ctx, data, twice, raw.json_text, raw.line, same_line=True)
                return None
        return _checked(entry, raw, ctx, unit)
    data = raw.data
    if type(data) is not dict or (not raw.check_depth and not all(isinstance(k, str) for k in data)):
        return _report(raw, ctx, unit)
    dated = [k for k, v in data.items() if k in _TEXT_FIELDS and isinstance(v, (dt.date, dt.datetime))]
    if dated:  # YAML turns 1948-05-14 into a date: back into its ISO text, as the entry's text
        data = raw.data = {**data, **{k: data[k].isoformat() for k in dated}}
    listed = [k for k, v in data.items() if k in _TEXT_LIST_FIELDS and type(v) is list
              and any(isinstance(item, (dt.date, dt.datetime)) for item in v)]
    if listed:  # the same inside a list of text: tags: [1948-05-14]
        data = raw.data = {**data, **{k: [item.isoformat() if isinstance(item, (dt.date, dt.datetime)) else item
                                          for item in data[k]] for k in listed}}
    try:
        entry = Entry.model_validate(data)
    except ValidationError:
        return _report(raw, ctx, unit)
    return _checked(entry, raw, ctx, unit)


def _checked(entry: Entry, raw: _Raw, ctx: _Reading, unit: str) -> Entry | None:
    """A valid entry whose extra fields are no typos and (from JSON) not nested too deep."""
    extras = entry.__pydantic_extra__
    if not extras:
        return entry
    typos: set[str] = set()
    if not raw.names_checked:
        names = tuple(extras)
        if names not in ctx.fine_extras:
            typos = _check_names(extras.keys(), raw, entry.id, ctx, unit)
            if not typos:
                ctx.fine_extras.add(names)
    deep_ok = not raw.check_depth or _check_depth(extras, raw, entry.id, ctx, unit)
    values_ok = not raw.check_values or _check_values(extras, raw, entry.id, ctx, unit)
    finite_ok = _check_finite(extras, raw, entry.id, ctx, unit)
    return entry if deep_ok and values_ok and finite_ok and not typos else None


def _not_finite(value: Any, path: str) -> tuple[str, float] | None:
    """Where in ``value`` a NaN or an infinity is (YAML ``.nan``/``.inf``, JSON's non-standard ``NaN``)."""
    kind = type(value)
    if kind is float:
        return None if math.isfinite(value) else (path, value)
    if kind is list:
        for i, item in enumerate(value):
            found = _not_finite(item, f"{path}[{i}]") if type(item) in (float, list, dict) else None
            if found:
                return found
    elif kind is dict:
        for key, item in value.items():
            found = _not_finite(item, f"{path}.{key}") if type(item) in (float, list, dict) else None
            if found:
                return found
    return None


def _check_finite(values: dict[str, Any], raw: _Raw, entry_id: str | None, ctx: _Reading, unit: str) -> bool:
    """Report extra fields holding NaN or an infinity: JSON has neither (the manifest and the database wrote
    ``null`` for it), and a template given one could hang (``wordwrap(nan)``)."""
    ok = True
    for name, value in values.items():
        if type(value) not in (float, list, dict):
            continue
        found = _not_finite(value, str(name))
        if found is None:
            continue
        where, bad = found
        inside = f" at {where}" if where != name else ""
        ctx.add(raw.field_line(name), entry_id, str(name), f"{bad} is not a number JSON can hold{inside}: give a "
                "finite number, or quote it for text", unit)
        ok = False
    return ok


def _report(raw: _Raw, ctx: _Reading, unit: str) -> None:
    """Report every problem of an entry that failed validation, field by field."""
    data = raw.data
    if not isinstance(data, dict):
        ctx.add(raw.line, None, None, f"an entry must be a mapping of fields, got {type(data).__name__}", unit)
        return None
    entry_id = data.get("id") if isinstance(data.get("id"), str) else None
    bad_keys = [k for k in data if not isinstance(k, str)]
    if bad_keys:
        ctx.add(raw.line, entry_id, str(bad_keys[0]), "field names must be text", unit)
        return None
    meant = ctx.header_meant if raw.names_checked else _check_names(data.keys(), raw, entry_id, ctx, unit)
    if raw.check_depth and not _check_depth(data, raw, entry_id, ctx, unit):
        return None  # validating it would only repeat deep values in its messages
    if raw.check_values:
        _check_values({k: v for k, v in data.items() if k not in _KNOWN}, raw, entry_id, ctx, unit)
    try:
        Entry.model_validate(data)
    except ValidationError as exc:
        for err in exc.errors():
            fld = str(err["loc"][0]) if err["loc"] else None
            got = err.get("input")
            msg = err["msg"]
            if err["type"] == "missing":
                if fld in meant:  # "title is required" when the entry has "titel": the typo says it all
                    continue
                msg = "is required"
            elif fld == "title" and isinstance(got, str) and not got.strip():
                msg = "must not be empty"
            elif fld == "id" and err["type"] == "string_pattern_mismatch":
                msg = f"{got!r} is not a valid id: use lowercase letters, digits and '-' (pattern ^[a-z0-9][a-z0-9-]{{0,127}}$)"
            elif fld is not None and fld in raw.hints:
                written = raw.hints[fld]
                msg = f"YAML reads the unquoted {written} as the number {got!r}; quote it: {fld}: '{written}'"
            elif got is not None and not isinstance(got, dict):
                shown_got = repr(got)
                msg = f"{msg} (got {shown_got[:60] + '...' if len(shown_got) > 60 else shown_got})"
            ctx.add(raw.field_line(fld), entry_id, fld, msg, unit)
    return None


# ----------------------------------------------------------------------------- YAML
_NUMBER_TAGS = ("tag:yaml.org,2002:int", "tag:yaml.org,2002:float")
_MERGE_TAG = "tag:yaml.org,2002:merge"
_MappingNode, _ScalarNode = yaml.MappingNode, yaml.ScalarNode
#: fields whose value is text that YAML 1.1 reads as a number when it has a colon (``16:9`` is 16*60+9)
_SEXAGESIMAL_HINT = frozenset({"aspect", "date", "title", "era", "description", "prompt", "style", "provider", "alt"})


def _read_yaml(text: str, ctx: _Reading) -> list[_Raw]:
    loader = _YamlLoader(text)
    try:
        try:
            root = loader.get_single_node()
        except yaml.MarkedYAMLError as exc:
            mark = exc.problem_mark or exc.context_mark
            problem = exc.problem or exc.context or ""
            if "nesting depth" in problem:
                problem = f"{problem}: {_TOO_DEEP}"
            ctx.add(mark.line + 1 if mark else None, None, None, f"invalid YAML: {problem}")
            return []
        except yaml.YAMLError as exc:
            ctx.add(None, None, None, f"invalid YAML: {exc}")
            return []
        except RecursionError:  # the pure-Python composer, without libyaml's own depth limit
            ctx.add(None, None, None, f"invalid YAML: {_TOO_DEEP}")
            return []
        items = _entries_node(root, ctx)
        meter = NodeMeter()
        raws = []
        for node in items:
            line = node.start_mark.line + 1
            checked = _measure_entry(node, line, meter, ctx)
            if checked is None:
                if meter.over_budget:
                    break  # the budget is spent for good: further entries would only repeat the problem
                continue
            field_lines, hints = checked
            try:
                data = loader.construct_object(node, deep=True)
            except yaml.YAMLError as exc:
                ctx.add(line, None, None, f"invalid YAML: {exc}")
                continue
            except _LongYamlNumber as exc:
                # construction stopped half way: forget it, so a later alias of these nodes is built afresh
                loader.recursive_objects.clear()
                loader.state_generators = []
                ctx.add(exc.node.start_mark.line + 1, _node_id(node), _field_holding(node, exc.node),
                        _long_number(len(exc.node.value.lstrip("+-").replace("_", ""))))
                continue
            raws.append(_Raw(data, line, field_lines, hints=hints, check_values=True))
        return raws
    finally:
        loader.dispose()


def _measure_entry(node: yaml.Node, line: int, meter: NodeMeter,
                   ctx: _Reading) -> tuple[dict[str, int], dict[str, str]] | None:
    """Field lines and hints of an entry node, or ``None`` after reporting a nesting or alias problem.

    Runs before the entry is constructed, so an alias bomb is never expanded.
    """
    if type(node) is not _MappingNode:
        return ({}, {}) if _measured(node, line, node, None, meter, ctx, MAX_DEPTH) else None
    field_lines: dict[str, int] = {}
    hints: dict[str, str] = {}
    pairs = node.value
    own = 1
    given_twice = False
    for key, value in pairs:
        if type(key) is _ScalarNode:
            name = key.value
            first = field_lines.get(name)
            if first is not None and key.tag != _MERGE_TAG:  # YAML would keep the last value without a word
                ctx.add(key.start_mark.line + 1, _node_id(node), name, _duplicate_field(first))
                given_twice = True
            else:
                field_lines[name] = key.start_mark.line + 1
        else:
            name = None
            if not _measured(key, key.start_mark.line + 1, node, None, meter, ctx, MAX_DEPTH - 1):
                return None
        if type(value) is _ScalarNode:
            own += 2
            if name in _SEXAGESIMAL_HINT and not value.style and value.tag in _NUMBER_TAGS and ":" in value.value:
                hints[name] = value.value
            continue
        own += 1
        if not _measured(value, key.start_mark.line + 1, node, name, meter, ctx, MAX_DEPTH - 1):
            return None
    meter.own += own
    return None if given_twice else (field_lines, hints)


def _measured(node: yaml.Node, line: int, entry: yaml.Node, name: str | None, meter: NodeMeter,
              ctx: _Reading, levels: int) -> bool:
    """Measure one value of an entry; report (and return False) when it is too deep or too repetitive."""
    problem = None
    try:
        meter.measure(node, levels)
    except TooDeep:
        problem = _TOO_DEEP
    except Recursive:
        problem = "a YAML alias refers to the anchor it is inside (a recursive structure)"
    except DuplicateKey as exc:
        line, problem = exc.line, _duplicate_key(exc.key, exc.first)
    else:
        if meter.over_budget:
            problem = (f"YAML aliases repeat more than {max(MAX_ALIAS_REPEATS, meter.own):,} values "
                       f"(aliases of aliases, as in a 'billion laughs' document); write the values out")
    if problem is None:
        return True
    ctx.add(line, _node_id(entry), name, problem)
    return False


def _field_holding(entry: yaml.Node, target: yaml.Node) -> str | None:
    """The field of an entry node whose value holds ``target`` (a problem was found there), if any."""
    if type(entry) is not _MappingNode:
        return None
    for key, value in entry.value:
        if type(key) is not _ScalarNode:
            continue
        seen: set[int] = set()
        stack = [value]
        while stack:
            node = stack.pop()
            if node is target:
                return str(key.value)
            if id(node) in seen:
                continue
            seen.add(id(node))
            if type(node) is _MappingNode:
                stack.extend(part for pair in node.value for part in pair)
            elif type(node) is yaml.SequenceNode:
                stack.extend(node.value)
    return None


def _node_id(node: yaml.Node) -> str | None:
    if type(node) is _MappingNode:
        for key, value in node.value:
            if type(key) is _ScalarNode and key.value == "id" and type(value) is _ScalarNode:
                return str(value.value)
    return None


def _entries_node(root: Any, ctx: _Reading) -> list[Any]:
    if root is None:
        ctx.add(None, None, None, _EMPTY)
        return []
    if isinstance(root, yaml.SequenceNode):
        return list(root.value)
    if isinstance(root, yaml.MappingNode):
        found = [(key, value) for key, value in root.value if isinstance(key, yaml.ScalarNode) and key.value == "entries"]
        if len(found) > 1:  # which list was meant? YAML would take the last one without a word
            ctx.add(found[1][0].start_mark.line + 1, None, "entries", _duplicate_entries(found[0][0].start_mark.line + 1))
            return []
        if found:
            value = found[0][1]
            if isinstance(value, yaml.SequenceNode):
                return list(value.value)
            ctx.add(value.start_mark.line + 1, None, "entries", "must be a list of entries")
            return []
    ctx.add(root.start_mark.line + 1, None, None, "expected a list of entries or a mapping with 'entries:'")
    return []


# ----------------------------------------------------------------------------- JSON
_WS = re.compile(r"[ \t\n\r]*")
_SCAN = make_scanner(json.JSONDecoder())


class _LongNumber:
    """In place of an integer longer than Python reads from text: its entry is reported, not a ``ValueError``."""

    __slots__ = ("digits",)

    def __init__(self, digits: int) -> None:
        self.digits = digits


def _parse_int(text: str) -> int | _LongNumber:
    try:
        return int(text)
    except ValueError:
        return _LongNumber(len(text.lstrip("-")))


#: the JSON reader once a number too long to read is found: slower, and used only then
_LONG_DECODER = json.JSONDecoder(parse_int=_parse_int)
_SCAN_LONG = make_scanner(_LONG_DECODER)
_NOT_A_LIST = "must be a list of entries"
_NO_ENTRIES = "expected a list of entries or an object with \"entries\""


class _Unreadable(Exception):
    """JSON the one-pass reader does not follow: ``json.loads`` reports it with its own message."""


class _EntriesNotAList:
    def __init__(self, pos: int) -> None:
        self.pos = pos


class _EntriesTwice:
    def __init__(self, first: int, again: int) -> None:
        self.first, self.again = first, again


def _read_json(text: str, ctx: _Reading) -> list[_Raw]:
    """One pass over the text: each entry is decoded once, and its line counted from the previous entry's."""
    scan = _SCAN
    try:
        try:
            found = _walk_json(text, scan)
        except json.JSONDecodeError:
            raise
        except ValueError:  # an integer too long to read: again, keeping such numbers to report them
            scan = _SCAN_LONG
            found = _walk_json(text, scan)
    except RecursionError:
        _report_deep_json(text, ctx)
        return []
    except (_Unreadable, StopIteration, IndexError, json.JSONDecodeError):
        try:
            _LONG_DECODER.decode(text)
        except json.JSONDecodeError as exc:
            ctx.add(exc.lineno, None, None, f"invalid JSON: {exc.msg} (column {exc.colno})")
        except RecursionError:
            _report_deep_json(text, ctx)
        else:  # pragma: no cover - the walk follows the same grammar as json.loads
            raise AssertionError("the JSON reader refused JSON that json.loads accepts")
        return []
    if isinstance(found, _EntriesNotAList):
        ctx.add(text.count("\n", 0, found.pos) + 1, None, "entries", _NOT_A_LIST)
        return []
    if isinstance(found, _EntriesTwice):
        ctx.add(text.count("\n", 0, found.again) + 1, None, "entries",
                _duplicate_entries(text.count("\n", 0, found.first) + 1))
        return []
    if found is None:
        ctx.add(1, None, None, _NO_ENTRIES)
        return []
    raws: list[_Raw] = []
    line, prev = 1, 0
    for item, start, end in found:
        line += text.count("\n", prev, start)
        prev = start
        if scan is _SCAN_LONG and _report_long(ctx, item, line, (text, start, end)):
            continue
        if type(item) is dict and _may_repeat_keys(text, start, end, len(item)):
            data, twice = _keys_given_twice(text[start:end])
            if twice:
                _report_twice(ctx, data, twice, text[start:end], line)
                continue
        raws.append(_Raw(item, line, None, check_depth=True, span=(text, start, end)))
    return raws


def _report_long(ctx: _Reading, item: Any, line: int | None, span: tuple[str, int, int] | None) -> bool:
    """Report the integers of a JSON entry too long to read, if any, at their fields."""
    found = False
    fields = item.items() if type(item) is dict else [(None, item)]
    field_lines: dict[str, int] | None = None
    for name, value in fields:
        long = _first_long(value)
        if long is None:
            continue
        if field_lines is None:
            field_lines = _json_field_lines(span, item, line)
        entry_id = item.get("id") if type(item) is dict and isinstance(item.get("id"), str) else None
        ctx.add(field_lines.get(name, line) if name else line, entry_id, name, _long_number(long.digits))
        found = True
    return found


def _decoded(text: str) -> Any:
    """JSON text decoded, integers too long to read kept as :class:`_LongNumber`; ``None`` when it is no JSON."""
    try:
        return _LONG_DECODER.decode(text)
    except (ValueError, RecursionError):
        return None


def _first_long(value: Any) -> _LongNumber | None:
    stack = [value]
    while stack:
        item = stack.pop()
        if type(item) is _LongNumber:
            return item
        if type(item) is dict:
            stack.extend(item.values())
        elif type(item) is list:
            stack.extend(item)
    return None


#: a key's closing quote, then space before its colon
_SPACED_KEY_END = re.compile(r'"[ \t\r\n]+:')


def _may_repeat_keys(text: str, start: int, end: int, keys: int) -> bool:
    """Whether the JSON object ``text[start:end]``, read as ``keys`` distinct keys, may give a key twice.

    Every key ends with a quote and a colon. With no space between the two anywhere, the object holds
    at least as many ``":`` as it gives keys (more when it nests objects, or a string holds one), so
    as many as its distinct keys means none is given twice: the common case is decided without
    parsing again. Otherwise :func:`_keys_given_twice` decides.
    """
    return text.count('":', start, end) != keys or _SPACED_KEY_END.search(text, start, end) is not None


def _keys_given_twice(chunk: str) -> tuple[Any, list[tuple[str, str | None]]]:
    """A JSON value (each mapping keeping the first value of a key) and the keys given twice in it.

    Each is ``(field, None)`` for a field of the entry given twice, or ``(field, key)`` for a key given
    twice in a mapping inside that field.
    """
    again: list[tuple[dict[str, Any], str]] = []

    def pairs_hook(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
        obj: dict[str, Any] = {}
        for key, value in pairs:
            if key in obj:
                again.append((obj, key))
            else:
                obj[key] = value
        return obj

    try:
        data = json.loads(chunk, object_pairs_hook=pairs_hook)
    except (ValueError, RecursionError):  # pragma: no cover - the chunk was read as JSON already
        return None, []
    twice: list[tuple[str, str | None]] = []
    for obj, key in again:
        if obj is data:
            twice.append((key, None))
        elif isinstance(data, dict):
            field_name = next((name for name, value in data.items() if _holds(value, obj)), None)
            if field_name is not None:
                twice.append((field_name, key))
    return data, twice


def _holds(value: Any, target: dict[str, Any]) -> bool:
    stack = [value]
    while stack:
        item = stack.pop()
        if item is target:
            return True
        if isinstance(item, dict):
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return False


def _report_twice(ctx: _Reading, data: Any, twice: list[tuple[str, str | None]], chunk: str, line: int | None,
                  *, same_line: bool = False) -> None:
    """Report the keys a JSON entry gives twice, at the line of the second one (JSONL: the entry's line)."""
    entry_id = data.get("id") if isinstance(data, dict) and isinstance(data.get("id"), str) else None
    for field_name, key in twice:
        first = again = None
        if not same_line and line is not None:
            # where the field's key is written (followed by its colon, so a value equal to it is not taken)
            found = [m.start() for m in re.finditer(re.escape(json.dumps(key or field_name, ensure_ascii=False)) + r"\s*:", chunk)]
            if key is None and len(found) >= 2:
                first, again = (line + chunk.count("\n", 0, pos) for pos in found[:2])
            elif found:
                again = line + chunk.count("\n", 0, found[-1])
        where = again if again is not None else line
        if key is None:
            ctx.add(where, entry_id, field_name, _duplicate_field(first))
        else:
            ctx.add(where, entry_id, field_name, _duplicate_key(key, None))


def _walk_json(text: str, scan: Any = _SCAN) -> list[tuple[Any, int, int]] | _EntriesNotAList | None:
    """The entries with their spans; ``None`` for JSON without a list of entries."""
    ws = _WS.match
    pos = ws(text, 0).end()
    first = text[pos]
    result: list[tuple[Any, int, int]] | _EntriesNotAList | None = None
    if first == "[":
        result, pos = _walk_array(text, pos, scan)
    elif first == "{":
        pos = ws(text, pos + 1).end()
        entries_at: list[int] = []
        if text[pos] == "}":
            pos += 1
        else:
            while True:
                if text[pos] != '"':
                    raise _Unreadable
                key_pos = pos
                key, pos = scan(text, pos)
                pos = ws(text, pos).end()
                if text[pos] != ":":
                    raise _Unreadable
                pos = ws(text, pos + 1).end()
                if key == "entries":
                    entries_at.append(key_pos)
                if key == "entries" and text[pos] == "[":
                    result, pos = _walk_array(text, pos, scan)
                else:
                    _, pos = scan(text, pos)
                    if key == "entries":
                        result = _EntriesNotAList(key_pos)
                pos = ws(text, pos).end()
                if text[pos] == ",":
                    pos = ws(text, pos + 1).end()
                    continue
                if text[pos] == "}":
                    pos += 1
                    break
                raise _Unreadable
        if len(entries_at) > 1:  # which list was meant? json.loads would take the last one without a word
            result = _EntriesTwice(entries_at[0], entries_at[1])
    else:
        _, pos = scan(text, pos)
    if ws(text, pos).end() != len(text):
        raise _Unreadable
    return result


def _walk_array(text: str, pos: int, scan: Any = _SCAN) -> tuple[list[tuple[Any, int, int]], int]:
    ws = _WS.match
    items: list[tuple[Any, int, int]] = []
    pos = ws(text, pos + 1).end()
    if text[pos] == "]":
        return items, pos + 1
    while True:
        start = pos
        item, pos = scan(text, pos)
        items.append((item, start, pos))
        pos = ws(text, pos).end()
        c = text[pos]
        if c == ",":
            pos = ws(text, pos + 1).end()
        elif c == "]":
            return items, pos + 1
        else:
            raise _Unreadable


def _report_deep_json(text: str, ctx: _Reading) -> None:
    # the entries sit one level (a list) or two (an object holding a list) below the top
    first = text.lstrip(" \t\r\n")[:1]
    ctx.add(deep_json_line(text, MAX_DEPTH + (1 if first == "[" else 2)), None, None, _TOO_DEEP)


def _json_field_lines(span: tuple[str, int, int] | None, item: Any, line: int | None) -> dict[str, int]:
    """Where each field of a JSON entry is: looked up only when a problem is reported."""
    if span is None or line is None or not isinstance(item, dict):
        return {}
    text, start, end = span
    chunk = text[start:end]
    field_lines: dict[str, int] = {}
    for key in item:
        if not isinstance(key, str):
            continue
        # the key followed by its colon, so a value that happens to equal a key is not taken for it
        found = re.search(re.escape(json.dumps(key, ensure_ascii=False)) + r"\s*:", chunk)
        if found:
            field_lines[key] = line + chunk.count("\n", 0, found.start())
    return field_lines


def _read_jsonl(text: str, ctx: _Reading) -> Iterator[_Raw]:
    """One entry per line, streamed: each line is validated straight from its JSON text."""
    for n, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        if not line.lstrip().startswith("{"):
            try:
                value = _LONG_DECODER.decode(line)
            except json.JSONDecodeError as exc:
                ctx.add(n, None, None, f"invalid JSON: {exc.msg} (column {exc.colno})")
                continue
            except RecursionError:
                ctx.add(n, None, None, _TOO_DEEP)
                continue
            long = _first_long(value)
            if long is not None:
                ctx.add(n, None, None, _long_number(long.digits))
                continue
            yield _Raw(value, n, {}, check_depth=True)
            continue
        yield _Raw(None, n, {}, json_text=line, check_depth=True)


# ----------------------------------------------------------------------------- CSV
_INT_FIELDS = ("year", "seed")


def _read_csv(text: str, ctx: _Reading) -> list[_Raw]:
    reader = csv.reader(io.StringIO(text, newline=""))
    try:
        header = next(reader, None)
    except csv.Error as exc:
        ctx.add(reader.line_num, None, None, f"invalid CSV: {exc}", "row")
        return []
    if not header:
        ctx.add(1, None, None, "CSV has no header row", "row")
        return []
    names = [name.strip() for name in header]
    columns: dict[str, int] = {}  # name -> its (first) column
    for i, name in enumerate(names):
        if name and name in columns:  # said once, at the header: every row's value would be dropped but one
            ctx.add(1, None, name, f"duplicate column (columns {columns[name] + 1} and {i + 1} are both {name!r}): "
                    "only one value would count; name each field once", "row")
            continue
        columns.setdefault(name, i)
        if (known := near_miss(name, ctx.allowed)) is not None:  # a typo in the header: said once, not once per row
            ctx.add(1, None, name, _typo_message(name, known), "row")
            ctx.header_meant.add(known)
    used = sorted(columns.items(), key=lambda item: item[1])
    width = len(header)
    raws = []
    ended = reader.line_num  # the line the previous record ended on: the next starts after it
    row_no = ended
    try:
        for row in reader:
            row_no, ended = ended + 1, reader.line_num
            if not row:
                continue  # a blank line
            id_cell = row[columns["id"]].strip() if "id" in columns and columns["id"] < len(row) else None
            if len(row) > width:
                ctx.add(row_no, id_cell, None, "row has more cells than the header", "row")
                continue
            data: dict[str, Any] = {}
            for key, i in used:
                if i >= len(row):
                    break
                value = row[i].strip()
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
            raws.append(_Raw(data, row_no, {}, names_checked=True))
    except csv.Error as exc:
        ctx.add(reader.line_num, None, None, f"invalid CSV: {exc}", "row")
        return raws
    if ended > row_no and _unclosed_quote(text, row_no):
        # the last record ran over several lines to the end of the file: a quote opened in it never closed,
        # and every row after it was read into one cell. Say so where it starts, not what that cell holds.
        if raws and raws[-1].line == row_no:
            raws.pop()
        ctx.problems = [p for p in ctx.problems if p.line != row_no]
        row = next(csv.reader(io.StringIO(_lines_from(text, row_no), newline="")))
        cell = len(row) - 1
        name = names[cell] if cell < width else None
        id_cell = row[columns["id"]].strip() if "id" in columns and columns["id"] < cell else None
        ctx.add(row_no, id_cell or None, name or None,
                f"invalid CSV: a quoted cell opened in this row is never closed, so every line after it to the end "
                f"of the file ({ended - row_no} more) was read into that cell; close the quote", "row")
    return raws


def _lines_from(text: str, line: int) -> str:
    """The text from (1-based) ``line`` on, lines counted as the csv module counts them."""
    lines = io.StringIO(text, newline="")
    for _ in range(line - 1):
        lines.readline()
    return lines.read()


def _unclosed_quote(text: str, line: int) -> bool:
    """Whether the CSV record starting at ``line`` opens a quote it never closes (read only on suspicion)."""
    try:
        for _ in csv.reader(io.StringIO(_lines_from(text, line), newline=""), strict=True):
            pass
    except csv.Error as exc:
        return "unexpected end of data" in str(exc)
    return False
