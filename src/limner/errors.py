"""Errors that end a command, each with its documented exit code (see docs/cli.md)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

EXIT_OK = 0
EXIT_FAILURES = 1  # some entries failed, or check-missing found missing entries
EXIT_BAD_INPUT = 2  # catalogue, configuration, style or usage error; nothing changed
EXIT_AUTH = 3  # a provider rejected the credentials; the run stopped
EXIT_BUDGET = 4  # the budget stopped the run before every planned entry ran
EXIT_INTERRUPTED = 130  # Ctrl-C; re-run to resume


def did_you_mean(name: str, known: Iterable[str]) -> str:
    """`` (did you mean 'a', 'b'?)`` naming the (at most three) names of ``known`` closest to a mistyped
    ``name``, or ``""`` when none is close: the tail of an error message about ``name``."""
    from difflib import get_close_matches

    close = get_close_matches(name, list(known), n=3, cutoff=0.6)
    return f" (did you mean {', '.join(map(repr, close))}?)" if close else ""


class LimnerError(Exception):
    """An error with a message meant for the user and an exit code."""

    exit_code = EXIT_FAILURES

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return self.message


class ConfigError(LimnerError):
    exit_code = EXIT_BAD_INPUT


class StyleError(LimnerError):
    exit_code = EXIT_BAD_INPUT


class PluginError(LimnerError):
    exit_code = EXIT_BAD_INPUT


@dataclass(frozen=True)
class Problem:
    """One problem in an input file: where it is and what is wrong."""

    file: str
    line: int | None
    entry: str | None
    field: str | None
    message: str
    #: "line" for text files, "row" for CSV
    unit: str = "line"

    def __str__(self) -> str:
        where = self.file
        if self.line is not None:
            where += f":{self.line}" if self.unit == "line" else f": row {self.line}"
        parts = [where]
        if self.entry:
            parts.append(f"entry {self.entry!r}")
        if self.field:
            parts.append(f"field {self.field!r}")
        return ": ".join(parts) + f": {self.message}"


class CatalogError(LimnerError):
    exit_code = EXIT_BAD_INPUT

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = problems
        shown = "\n".join(f"  {p}" for p in problems[:50])
        more = f"\n  ... and {len(problems) - 50} more" if len(problems) > 50 else ""
        n = len(problems)
        super().__init__(f"catalogue has {n} error{'s' if n != 1 else ''}; nothing was changed:\n{shown}{more}")
