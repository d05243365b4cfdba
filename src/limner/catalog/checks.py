"""The checks shared by all formats: an entry read by any reader is validated here, and each of its problems
is reported naming its line and field (typos of known fields, nesting, values JSON cannot hold, NaN)."""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import KeysView
from typing import Any

from pydantic import ValidationError

from limner.catalog.fields import near_miss
from limner.catalog.json_format import decoded, keys_given_twice, may_repeat_keys, report_long, report_twice
from limner.catalog.limits import MAX_DEPTH, too_deep
from limner.catalog.messages import TOO_DEEP, typo_message
from limner.catalog.models import Entry
from limner.catalog.reading import Raw, Reading

#: the entry fields that are text: an unquoted date given for one is read back as its ISO text
_TEXT_FIELDS = frozenset(name for name, f in Entry.model_fields.items() if f.annotation in (str, "str", str | None,
                                                                                          "str | None"))
#: the entry fields that are lists of text (``tags``): an unquoted date in one is read back the same way
_TEXT_LIST_FIELDS = frozenset(name for name, f in Entry.model_fields.items() if f.annotation in (list[str], "list[str]"))
_KNOWN = frozenset(Entry.model_fields)
_CONTAINERS = (list, dict)


def _check_names(names: KeysView[str], raw: Raw, entry_id: str | None, ctx: Reading, unit: str) -> set[str]:
    """Report extra field names that look like typos of known fields; return the known fields they stand for."""
    meant: set[str] = set()
    for name in sorted(names - _KNOWN):
        known = near_miss(name, ctx.allowed)
        if known is not None:
            ctx.add(raw.field_line(name), entry_id, name, typo_message(name, known), unit)
            meant.add(known)
    return meant


def _check_depth(values: dict[str, Any], raw: Raw, entry_id: str | None, ctx: Reading, unit: str) -> bool:
    ok = True
    for name, value in values.items():
        kind = type(value)
        if kind is list:
            if not any(isinstance(x, _CONTAINERS) for x in value):
                continue
        elif kind is not dict:
            continue
        if too_deep(value, MAX_DEPTH - 1):
            ctx.add(raw.field_line(name), entry_id, name, TOO_DEEP, unit)
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


def _check_values(values: dict[str, Any], raw: Raw, entry_id: str | None, ctx: Reading, unit: str) -> bool:
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


def validate(raw: Raw, ctx: Reading, unit: str) -> Entry | None:
    """The entry, or ``None`` after reporting its problems. Valid entries take the short way."""
    if raw.json_text is not None:
        try:
            entry = Entry.model_validate_json(raw.json_text)
        except ValidationError as exc:
            bad_json = [e for e in exc.errors() if e["type"] == "json_invalid"]
            if bad_json:
                error = str(bad_json[0]["ctx"].get("error", bad_json[0]["msg"]))
                if "number out of range" in error and report_long(ctx, decoded(raw.json_text), raw.line, None):
                    return None
                ctx.add(raw.line, None, None, TOO_DEEP if "recursion limit" in error else f"invalid JSON: {error}")
                return None
            # valid JSON, invalid entry: report it field by field (or the fields it gives twice)
            data, twice = keys_given_twice(raw.json_text)
            if twice:
                report_twice(ctx, data, twice, raw.json_text, raw.line, same_line=True)
                return None
            return _report(Raw(data, raw.line, {}, check_depth=True), ctx, unit)
        if may_repeat_keys(raw.json_text, 0, len(raw.json_text), len(entry.model_fields_set)):
            data, twice = keys_given_twice(raw.json_text)
            if twice:
                report_twice(ctx, data, twice, raw.json_text, raw.line, same_line=True)
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


def _checked(entry: Entry, raw: Raw, ctx: Reading, unit: str) -> Entry | None:
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


def _check_finite(values: dict[str, Any], raw: Raw, entry_id: str | None, ctx: Reading, unit: str) -> bool:
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


def _report(raw: Raw, ctx: Reading, unit: str) -> None:
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
