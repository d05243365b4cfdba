"""``limner styles``: the styles a project can use."""

from __future__ import annotations

from typing import Annotated, Optional

import typer

from limner.cli.commands._selection import JsonOpt
from limner.cli.context import friendly, get_project, out, print_json
from limner.errors import ConfigError


def register(app: typer.Typer) -> None:
    @app.command("styles")
    @friendly
    def styles_cmd(
        ctx: typer.Context,
        name: Annotated[Optional[str], typer.Argument(help="Show this style's templates in full.")] = None,
        as_json: JsonOpt = False,
    ) -> None:
        """List styles (built-in and the project's), or show one."""
        project = get_project(ctx)
        styles = project.styles
        default = project.settings.project.default_style
        if name is not None:
            if name not in styles:
                raise ConfigError(f"unknown style {name!r}; known styles: {', '.join(sorted(styles))}")
            style = styles[name]
            if as_json:
                print_json(style.model_dump())
            else:
                for key, value in style.model_dump().items():
                    out.print(f"{key}: {value}", markup=False, highlight=False)
            return
        if as_json:
            print_json([{**s.model_dump(), "default": s.name == default} for s in styles.values()])
            return
        from rich.table import Table

        table = Table("style", "version", "source", "description", show_edge=False)
        for s in styles.values():
            table.add_row(s.name + (" (default)" if s.name == default else ""), s.version, s.source, s.description)
        out.print(table)
