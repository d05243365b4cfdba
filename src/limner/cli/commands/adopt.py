"""``limner adopt-placeholders``: publish existing hand-made images as "legacy" entries until real ones replace them."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from limner.cli.commands._selection import JsonOpt
from limner.cli.context import err, friendly, get_project, out, print_json
from limner.errors import EXIT_FAILURES


def register(app: typer.Typer) -> None:
    @app.command("adopt-placeholders")
    @friendly
    def adopt_cmd(
        ctx: typer.Context,
        directory: Annotated[Path, typer.Argument(help="Folder of images named <entry id>.jpg|jpeg|png|webp|avif.",
                                                  show_default=False)],
        dry_run: Annotated[bool, typer.Option("--dry-run", help="Report what would be adopted; store and record nothing.")] = False,
        as_json: JsonOpt = False,
    ) -> None:
        """Adopt existing images (file name = entry id) as published legacy entries; `generate` replaces them later."""
        from limner.sync.adopt import adopt_placeholders

        project = get_project(ctx, read_only=dry_run)
        try:
            result = adopt_placeholders(project, directory.expanduser().resolve(), dry_run=dry_run)  # relative to the cwd
        finally:
            project.close()
        if as_json:
            print_json(result.to_dict())
        else:
            verb = "Would adopt" if dry_run else "Adopted"
            out.print(f"{verb} {len(result.adopted)} of {result.files} files in {result.directory}.", highlight=False)
            skipped = [s for s in result.skipped if s["reason"] != "duplicate"]
            if skipped:
                out.print(f"  {len(skipped)} skipped (already published or adopted): "
                          + ", ".join(sorted({s['id'] for s in skipped})[:10]), highlight=False, markup=False)
            duplicates = [s for s in result.skipped if s["reason"] == "duplicate"]
            if duplicates:
                out.print(f"  {len(duplicates)} smaller duplicates ignored: " + ", ".join(s["file"] for s in duplicates[:10]),
                          highlight=False, markup=False)
            if result.unknown:
                err.print(f"{len(result.unknown)} files name no catalogue entry and were skipped: "
                          + ", ".join(result.unknown[:20]), highlight=False, markup=False)
            for f in result.failed:
                err.print(f"failed {f['id']} ({f['file']}): {f['error']}", highlight=False, markup=False)
        if result.failed:
            raise typer.Exit(EXIT_FAILURES)
