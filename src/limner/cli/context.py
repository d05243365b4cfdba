"""Shared CLI plumbing: consoles, the project from ``--config``, and error handling."""

from __future__ import annotations

import functools
import json
import logging
from collections.abc import Callable
from typing import Any, TypeVar

import typer
from rich.console import Console
from rich.logging import RichHandler

from limner.config import load_settings
from limner.errors import LimnerError
from limner.project import Project

out = Console(soft_wrap=True)
err = Console(stderr=True, soft_wrap=True)

F = TypeVar("F", bound=Callable[..., Any])


def setup_logging(verbose: int) -> None:
    level = logging.WARNING if verbose == 0 else logging.INFO if verbose == 1 else logging.DEBUG
    root = logging.getLogger("limner")
    root.handlers[:] = [RichHandler(console=err, show_path=False, show_time=False, markup=False)]
    root.setLevel(level)
    root.propagate = False


def get_project(ctx: typer.Context, **overrides: Any) -> Project:
    obj = ctx.ensure_object(dict)
    settings = load_settings(obj.get("config"), overrides={k: v for k, v in overrides.items() if v is not None})
    return Project(settings)


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
