"""The texts of the problems that more than one part of the catalogue reading reports (the format readers, the
checks shared by all formats, the loader)."""

from __future__ import annotations

import sys

from limner.catalog.limits import MAX_DEPTH

EMPTY = "catalogue is empty"
TOO_DEEP = f"lists and mappings nest more than {MAX_DEPTH} levels deep (the entry itself is level 1)"


def long_number(digits: int) -> str:
    return (f"a number of {digits:,} digits: more than the {sys.get_int_max_str_digits():,} digits an integer may "
            "have; write it as text, in quotes")


def duplicate_field(first: int | None) -> str:
    where = f" (first given at line {first})" if first is not None else ""
    return f"duplicate field{where}: only one value would count; give each field once"


def duplicate_key(key: str, first: int | None) -> str:
    where = f" (first given at line {first})" if first is not None else ""
    return f"key {key!r} given twice in one mapping{where}: only one value would count; give each key once"


def duplicate_entries(first: int) -> str:
    return f"given twice (first at line {first}): only one list would count; give one list of entries"


def typo_message(name: str, known: str) -> str:
    return (f"unknown field {name!r}: did you mean {known!r}? "
            f"(to keep {name!r} as an extra field, list it in the project.allow_fields setting)")
