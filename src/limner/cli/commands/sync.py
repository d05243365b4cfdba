"""``limner sync``: placeholders into the app, the manifest and its schema."""

from __future__ import annotations

import typer

from limner.cli.commands._selection import JsonOpt
from limner.cli.context import friendly, get_project, out, print_json


def register(app: typer.Typer) -> None:
    @app.command("sync")
    @friendly
    def sync_cmd(ctx: typer.Context, as_json: JsonOpt = False) -> None:
        """Write placeholders and the manifest for published entries; remove those no longer in the catalogue."""
        from limner.sync import sync_project

        project = get_project(ctx)
        try:
            result = sync_project(project)
        finally:
            project.close()
        if as_json:
            print_json({"published": result.published, "written": len(result.written), "unchanged": result.unchanged,
                        "removed": result.removed, "manifest": result.manifest, "schema": result.schema,
                        "manifest_changed": result.manifest_changed, "aliases": len(result.aliases),
                        "withdrawn": result.withdrawn, "aliases_removed": result.aliases_removed,
                        "written_back": result.written_back, "written_back_unchanged": result.written_back_unchanged,
                        "not_in_events_table": result.not_in_events_table})
            return
        out.print(f"Synced {result.published} entries: {len(result.written)} placeholders written, {result.unchanged} unchanged, "
                  f"{len(result.removed)} removed.", highlight=False)
        out.print(f"Manifest: {result.manifest}{'' if result.manifest_changed else ' (unchanged)'}", highlight=False)
        if result.withdrawn:
            out.print(f"Withdrawn (published no more): {', '.join(result.withdrawn[:10])}"
                      + (f" and {len(result.withdrawn) - 10} more" if len(result.withdrawn) > 10 else "")
                      + "; their placeholders are removed"
                      + (f", {len(result.aliases_removed)} alias object(s) deleted" if result.aliases_removed else "")
                      + (", their events-table URLs cleared" if project.settings.sync.events_database_url else "")
                      + ".", highlight=False, markup=False)
        if result.written_back or result.written_back_unchanged or result.not_in_events_table:
            out.print(f"Events table: {result.written_back} rows updated, {result.written_back_unchanged} unchanged, "
                      f"{len(result.not_in_events_table)} ids not in the table.", highlight=False)
