"""The ``limner`` Typer application. Commands live in ``limner.cli.commands``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from limner import __version__
from limner.cli.commands import (
    adopt,
    check_missing,
    costs,
    doctor,
    gc,
    generate,
    init,
    plan,
    providers,
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
    ctx.ensure_object(dict)["config"] = config
    setup_logging(verbose)


for module in (init, plan, generate, status, sync, check_missing, providers, styles, costs, doctor, adopt, upload, gc):
    module.register(app)


def main() -> None:
    app(prog_name="limner")
