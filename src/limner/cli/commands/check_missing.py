"""``limner check-missing``: exit 1 and list entries without a published image."""

from __future__ import annotations

import typer

from limner.cli.commands._selection import JsonOpt
from limner.cli.commands.status import catalogue_states, entries_with_image
from limner.cli.context import friendly, get_project, out, print_json
from limner.errors import EXIT_FAILURES


def register(app: typer.Typer) -> None:
    @app.command("check-missing")
    @friendly
    def check_missing_cmd(ctx: typer.Context, as_json: JsonOpt = False) -> None:
        """List entries without a published image; exit 1 if there are any (for CI)."""
        from limner.config.project_folder import not_a_project

        project = get_project(ctx, read_only=True)
        try:
            error = not_a_project(project.settings, "check-missing")
            if error is not None:  # says where the project is, rather than "catalogue file not found"
                raise error
            states = catalogue_states(project)
            with_image = entries_with_image(project)
        finally:
            project.close()
        missing = sorted(i for i in states if i not in with_image)
        if as_json:
            print_json({"entries": len(states), "missing": missing})
        else:
            for entry_id in missing:
                out.print(f"{entry_id}\t{states[entry_id]}", highlight=False, markup=False)
            out.print(f"{len(missing)} of {len(states)} entries have no published image.", highlight=False)
        if missing:
            raise typer.Exit(EXIT_FAILURES)
