"""Read a JSON catalogue (a list of entries, or an object with ``"entries"``) or a JSONL one (one JSON object
per line), and the JSON helpers the shared checks use on a JSONL entry that fails validation."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from json.scanner import make_scanner
from typing import Any

from limner.catalog.limits import MAX_DEPTH, deep_json_line
from limner.catalog.messages import TOO_DEEP, duplicate_entries, duplicate_field, duplicate_key, long_number
from limner.catalog.reading import Raw, Reading, json_field_lines

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


def read_json(text: str, ctx: Reading) -> list[Raw]:
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
                duplicate_entries(text.count("\n", 0, found.first) + 1))
        return []
    if found is None:
        ctx.add(1, None, None, _NO_ENTRIES)
        return []
    raws: list[Raw] = []
    line, prev = 1, 0
    for item, start, end in found:
        line += text.count("\n", prev, start)
        prev = start
        if scan is _SCAN_LONG and report_long(ctx, item, line, (text, start, end)):
            continue
        if type(item) is dict and may_repeat_keys(text, start, end, len(item)):
            data, twice = keys_given_twice(text[start:end])
            if twice:
                report_twice(ctx, data, twice, text[start:end], line)
                continue
        raws.append(Raw(item, line, None, check_depth=True, span=(text, start, end)))
    return raws


def report_long(ctx: Reading, item: Any, line: int | None, span: tuple[str, int, int] | None) -> bool:
    """Report the integers of a JSON entry too long to read, if any, at their fields."""
    found = False
    fields = item.items() if type(item) is dict else [(None, item)]
    field_lines: dict[str, int] | None = None
    for name, value in fields:
        long = _first_long(value)
        if long is None:
            continue
        if field_lines is None:
            field_lines = json_field_lines(span, item, line)
        entry_id = item.get("id") if type(item) is dict and isinstance(item.get("id"), str) else None
        ctx.add(field_lines.get(name, line) if name else line, entry_id, name, long_number(long.digits))
        found = True
    return found


def decoded(text: str) -> Any:
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


def may_repeat_keys(text: str, start: int, end: int, keys: int) -> bool:
    """Whether the JSON object ``text[start:end]``, read as ``keys`` distinct keys, may give a key twice.

    Every key ends with a quote and a colon. With no space between the two anywhere, the object holds
    at least as many ``":`` as it gives keys (more when it nests objects, or a string holds one), so
    as many as its distinct keys means none is given twice: the common case is decided without
    parsing again. Otherwise :func:`keys_given_twice` decides.
    """
    return text.count('":', start, end) != keys or _SPACED_KEY_END.search(text, start, end) is not None


def keys_given_twice(chunk: str) -> tuple[Any, list[tuple[str, str | None]]]:
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


def report_twice(ctx: Reading, data: Any, twice: list[tuple[str, str | None]], chunk: str, line: int | None,
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
            ctx.add(where, entry_id, field_name, duplicate_field(first))
        else:
            ctx.add(where, entry_id, field_name, duplicate_key(key, None))


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


def _report_deep_json(text: str, ctx: Reading) -> None:
    # the entries sit one level (a list) or two (an object holding a list) below the top
    first = text.lstrip(" \t\r\n")[:1]
    ctx.add(deep_json_line(text, MAX_DEPTH + (1 if first == "[" else 2)), None, None, TOO_DEEP)


def read_jsonl(text: str, ctx: Reading) -> Iterator[Raw]:
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
                ctx.add(n, None, None, TOO_DEEP)
                continue
            long = _first_long(value)
            if long is not None:
                ctx.add(n, None, None, long_number(long.digits))
                continue
            yield Raw(value, n, {}, check_depth=True)
            continue
        yield Raw(None, n, {}, json_text=line, check_depth=True)
