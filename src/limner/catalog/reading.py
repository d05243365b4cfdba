"""What every catalogue reader produces and shares: the entries before validation (:class:`Raw`), and the
reading context that collects the problems found (:class:`Reading`)."""

from __future__ import annotations

import json
import re
from typing import Any

from limner.errors import Problem


class Raw:
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
            self._field_lines = json_field_lines(self._span, self.data, self.line) if self._span else {}
        return self._field_lines.get(name, self.line)


class Reading:
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


def json_field_lines(span: tuple[str, int, int] | None, item: Any, line: int | None) -> dict[str, int]:
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
