"""``limner init``: scaffold limner.toml, .env.example, a sample style and catalogue, and a .gitignore block."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from limner.cli.context import friendly, out


def register(app: typer.Typer) -> None:
    @app.command("init")
    @friendly
    def init_cmd(
        ctx: typer.Context,
        directory: Annotated[Path, typer.Argument(help="Project directory (default: current).")] = Path("."),
        placeholder_dir: Annotated[str, typer.Option(help="Where the app keeps committed placeholders.")] = "frontend/public/images/events",
    ) -> None:
        """Create limner.toml, .env.example, a sample style and catalogue; add Limner's block to .gitignore. Safe to re-run."""
        from limner.config.scaffold import scaffold

        result = scaffold(directory.resolve(), placeholder_dir=placeholder_dir)
        for name in result.created:
            out.print(f"created  {name}", highlight=False)
        for name in result.updated:
            out.print(f"updated  {name}", highlight=False)
        for name in result.kept:
            out.print(f"kept     {name}", highlight=False)
        out.print("Next: edit catalog.yaml, then `limner plan` and `limner generate`.", highlight=False)
