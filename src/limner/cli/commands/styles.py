"""``limner styles``: the styles a project can use."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Optional

import typer

from limner.cli.commands._selection import JsonOpt
from limner.cli.context import friendly, get_project, out, print_json
from limner.errors import ConfigError

if TYPE_CHECKING:
    from limner.project import Project
    from limner.styles.models import Style


def style_lines(style: Style, project: Project) -> dict[str, str]:
    """A style's fields as text: unset ones say what applies instead (never ``None``)."""
    import json

    from limner.providers import DEFAULT_PROVIDER

    settings = project.settings
    shown: dict[str, str] = {}
    for key, value in style.model_dump().items():
        if key == "provider" and value is None:
            value = f"(default: {settings.provider or DEFAULT_PROVIDER}, unless an entry names one)"
        elif key == "aspect" and value is None:
            value = f"(default: {settings.generate.aspect}, unless an entry gives one)"
        elif key == "params":
            value = json.dumps(value, ensure_ascii=False) if value else "(none)"
        elif value is None or value == "":
            value = "(none)"
        shown[key] = str(value)
    return shown


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
                for key, value in style_lines(style, project).items():
                    out.print(f"{key}: {value}", markup=False, highlight=False)
            return
        if as_json:
            print_json([{**s.model_dump(), "default": s.name == default} for s in styles.values()])
            return
        from rich.table import Table

        from limner.cli.commands.status import print_table

        table = Table(show_edge=False)
        table.add_column("style", no_wrap=True)
        table.add_column("version", no_wrap=True)
        table.add_column("source", overflow="fold")
        table.add_column("description", overflow="fold")
        for s in styles.values():
            table.add_row(s.name + (" (default)" if s.name == default else ""), s.version, s.source, s.description)
        print_table(table)
