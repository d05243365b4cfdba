"""Shared CLI plumbing: consoles, the project from ``--config``, and error handling.

Everything here is cheap to import: the CLI must start in a blink, so rich's console,
the settings and the project are imported only when a command first uses them.
"""

from __future__ import annotations

import functools
import json
import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Optional, TypeVar

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


def get_project(ctx: typer.Context, *, read_only: bool = False, anywhere: bool = False, **overrides: Any) -> Project:
    """The project of ``--config``, with ``overrides`` of its settings. ``read_only``: the command changes
    nothing (``status``, ``plan``, a dry run), so a state database that does not exist yet is not created.
    Run where there is no project (no limner.toml, no catalogue: a subfolder of the app, say), a usage error
    that names the project's folder when a parent has one: `costs` said $0 and `gc` found nothing there.
    ``anywhere``: a command that is not about one project's state (`providers`, `doctor`) runs wherever."""
    from limner.config import load_settings
    from limner.config.project_folder import not_a_project
    from limner.project import Project

    from limner.errors import ConfigError

    obj = ctx.ensure_object(dict)
    config = obj.get("config")
    try:
        settings = load_settings(config, overrides={k: v for k, v in overrides.items() if v is not None})
    except ConfigError as exc:
        if obj.get("config_from_env") and exc.message.startswith(f"{config}:"):  # not found, a folder
            raise ConfigError(f"environment variable LIMNER_CONFIG: {exc.message}", hint=exc.hint) from None
        raise
    error = None if anywhere else not_a_project(settings, ctx.command_path.partition(" ")[2] or "COMMAND")
    if error is not None:
        raise error
    return Project(settings, read_only=read_only)


def finite_number(left_out: str) -> Callable[[Optional[float]], Optional[float]]:
    """A typer callback that refuses ``inf`` and ``nan`` for a number option, saying ``left_out`` (what to do
    instead): click reads both as floats and its range lets them pass (inf is at least 0; nan compares false
    with any bound), so ``--budget inf`` ran without a cap."""

    def check(value: Optional[float]) -> Optional[float]:
        import math

        if value is not None and not math.isfinite(value):
            raise typer.BadParameter(f"must be a finite number, got {value}; {left_out}")
        return value

    return check


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
