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

Where things are: one reader per format (:mod:`limner.catalog.yaml_format`,
:mod:`limner.catalog.json_format` for JSON and JSONL, :mod:`limner.catalog.csv_format`),
each turning the text into :class:`~limner.catalog.reading.Raw` entries; the checks
shared by all formats (:mod:`limner.catalog.checks`); the problem texts several of them
report (:mod:`limner.catalog.messages`). This module picks the reader and collects the
valid entries into a :class:`Catalog`.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from limner.catalog.checks import validate
from limner.catalog.csv_format import read_csv
from limner.catalog.json_format import read_json, read_jsonl
from limner.catalog.messages import EMPTY
from limner.catalog.models import Entry
from limner.catalog.reading import Reading
from limner.catalog.yaml_format import read_yaml
from limner.errors import CatalogError, Problem
from limner.gcpause import gc_paused

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
        reader = {"yaml": read_yaml, "json": read_json, "jsonl": read_jsonl, "csv": read_csv}[fmt]
        for raw in reader(text, Reading(str(self.path), frozenset())):
            entry_id = wanted.get(raw.line)
            if entry_id is None:
                continue
            if raw.json_text is not None:  # JSONL: the whole entry is on its line
                continue
            data = raw.data
            if isinstance(data, dict) and data.get("id") == entry_id:
                found[entry_id] = raw.field_line(name)
        return found


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

    ctx = Reading(shown, allowed)
    reader = {"yaml": read_yaml, "json": read_json, "jsonl": read_jsonl, "csv": read_csv}[fmt]
    raws = reader(text, ctx)
    unit = "row" if fmt == "csv" else "line"
    styles = set(known_styles) if known_styles is not None else None

    entries: list[Entry] = []
    lines: dict[str, int] = {}
    seen = 0
    for raw in raws:
        seen += 1
        entry = validate(raw, ctx, unit)
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
        ctx.add(None, None, None, EMPTY)
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
