"""Read a CSV catalogue: a header row naming the fields, one entry a row; ``tags`` split on ``;`` (or ``,``)."""

from __future__ import annotations

import csv
import io
from typing import Any

from limner.catalog.fields import near_miss
from limner.catalog.messages import typo_message
from limner.catalog.reading import Raw, Reading

_INT_FIELDS = ("year", "seed")


def read_csv(text: str, ctx: Reading) -> list[Raw]:
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
            ctx.add(1, None, name, typo_message(name, known), "row")
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
            raws.append(Raw(data, row_no, {}, names_checked=True))
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
