"""The ``limner`` Typer application. Commands live in ``limner.cli.commands``."""

from __future__ import annotations

import atexit
import os
import sys
from pathlib import Path
from typing import Annotated, Optional

import typer

from limner import __version__
from limner.cli.commands import (
    adopt,
    check,
    check_missing,
    costs,
    doctor,
    gc,
    generate,
    init,
    media,
    plan,
    providers,
    queue,
    review,
    serve,
    status,
    styles,
    sync,
    upload,
)
from limner.cli.context import setup_logging

app = typer.Typer(
    name="limner",
    help="Give a content catalogue its images: plan, generate, derive, store and publish.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    # plain click help: rich's help renderer costs more start-up than the rest of the CLI together
    rich_markup_mode=None,
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"limner {__version__}")
        raise typer.Exit()


@app.callback()
def root(
    ctx: typer.Context,
    config: Annotated[Optional[Path], typer.Option("--config", "-c", help="Path to limner.toml (default: ./limner.toml).", envvar="LIMNER_CONFIG")] = None,
    verbose: Annotated[int, typer.Option("--verbose", "-v", count=True, help="More logging on stderr (-vv for debug).")] = 0,
    version: Annotated[bool, typer.Option("--version", callback=_version, is_eager=True, help="Show the version and exit.")] = False,
) -> None:
    obj = ctx.ensure_object(dict)
    obj["config"] = config
    # a LIMNER_CONFIG left in the shell is named when the file it gives cannot be used (no --config was typed)
    source = ctx.get_parameter_source("config")  # click's ParameterSource (typer carries its own click)
    obj["config_from_env"] = config is not None and getattr(source, "name", None) == "ENVIRONMENT"
    setup_logging(verbose)


for module in (init, plan, generate, status, sync, check_missing, providers, styles, costs, doctor, adopt, upload, gc, media, check, review, serve, queue):
    module.register(app)


def main() -> None:
    """The ``limner`` command. It leaves without tearing the interpreter down: exit handlers run and the
    streams are flushed, then the process ends at once (unloading SQLAlchemy, pydantic and the rest
    object by object cost a short command about 0.15 s). ``LIMNER_SLOW_EXIT=1`` exits the usual way."""
    try:
        app(prog_name="limner")
        code = 0
    except SystemExit as exc:
        code = exit_code(exc)
    if os.environ.get("LIMNER_SLOW_EXIT"):
        sys.exit(code)
    atexit._run_exitfuncs()  # logging, multiprocessing, temporary files: everything registered
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):  # a closed pipe: nothing more to say
            pass
    os._exit(code)


def exit_code(exc: SystemExit) -> int:
    """The process exit status ``sys.exit`` would give for ``exc``."""
    if exc.code is None:
        return 0
    if isinstance(exc.code, int):
        return exc.code
    print(exc.code, file=sys.stderr)
    return 1
