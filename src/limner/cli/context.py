"""Shared CLI plumbing: consoles, the project from ``--config``, and error handling.

Everything here is cheap to import: the CLI must start in a blink, so rich's console,
the settings and the project are imported only when a command first uses them.
"""

from __future__ import annotations

import functools
import json
import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

import typer

from limner.errors import LimnerError

if TYPE_CHECKING:
    from rich.console import Console

    from limner.project import Project

F = TypeVar("F", bound=Callable[..., Any])


class LazyConsole:
    """A rich ``Console`` built on first use (``out.print(...)`` works as on a console)."""

    def __init__(self, *, stderr: bool) -> None:
        self._stderr = stderr
        self._console: Console | None = None

    @property
    def console(self) -> Console:
        if self._console is None:
            from rich.console import Console

            self._console = Console(stderr=self._stderr, soft_wrap=True)
        return self._console

    def __getattr__(self, name: str) -> Any:
        return getattr(self.console, name)


out = LazyConsole(stderr=False)
err = LazyConsole(stderr=True)


class _LazyRichHandler(logging.Handler):
    """Formats records with rich on stderr, importing rich only when something is logged."""

    def __init__(self) -> None:
        super().__init__()
        self._handler: logging.Handler | None = None

    def emit(self, record: logging.LogRecord) -> None:
        if self._handler is None:
            from rich.logging import RichHandler

            self._handler = RichHandler(console=err.console, show_path=False, show_time=False, markup=False)
            self._handler.setLevel(self.level)
        self._handler.handle(record)


def setup_logging(verbose: int) -> None:
    level = logging.WARNING if verbose == 0 else logging.INFO if verbose == 1 else logging.DEBUG
    root = logging.getLogger("limner")
    root.handlers[:] = [_LazyRichHandler()]
    root.setLevel(level)
    root.propagate = False


#: the commands that change nothing, by their path (``"review list"``), with the option that makes them so
#: (``None``: always): their project does not create a state database that does not exist yet, and reads
#: an empty state instead (:class:`limner.project.Project` ``read_only``)
READ_ONLY_COMMANDS: dict[str, tuple[str, bool] | None] = {
    "status": None,
    "plan": None,
    "costs": None,
    "check-missing": None,
    "review list": None,
    "generate": ("dry_run", True),
    "adopt-placeholders": ("dry_run", True),
    "gc": ("delete", False),
}


def command_path(ctx: typer.Context) -> str:
    """The command's name below the program, a subcommand with its group's: ``"review list"``."""
    names = []
    while ctx.parent is not None:
        names.append(ctx.info_name or "")
        ctx = ctx.parent
    return " ".join(reversed(names))


def reads_only(ctx: typer.Context) -> bool:
    """Whether the command of ``ctx``, with its options, changes nothing (:data:`READ_ONLY_COMMANDS`)."""
    path = command_path(ctx)
    if path not in READ_ONLY_COMMANDS:
        return False
    when = READ_ONLY_COMMANDS[path]
    return when is None or bool(ctx.params.get(when[0])) == when[1]


def get_project(ctx: typer.Context, *, read_only: bool | None = None, **overrides: Any) -> Project:
    """The project of ``--config``, with ``overrides`` of its settings. ``read_only`` (default: from the
    command, :func:`reads_only`): a state database that does not exist yet is not created."""
    from limner.config import load_settings
    from limner.project import Project

    obj = ctx.ensure_object(dict)
    settings = load_settings(obj.get("config"), overrides={k: v for k, v in overrides.items() if v is not None})
    return Project(settings, read_only=reads_only(ctx) if read_only is None else read_only)


def friendly(fn: F) -> F:
    """Turn a LimnerError into its message (and hint) on stderr and its exit code."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except LimnerError as exc:
            err.print("error: " + exc.message, style="bold red", markup=False, highlight=False)
            if exc.hint:
                err.print(f"hint: {exc.hint}", markup=False, highlight=False)
            raise typer.Exit(exc.exit_code) from None

    return wrapper  # type: ignore[return-value]


def print_json(data: Any) -> None:
    """JSON on stdout, nothing else."""
    typer.echo(json.dumps(data, ensure_ascii=False, indent=2))
