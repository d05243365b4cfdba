"""``limner gc``: find (and with ``--delete`` remove) stored objects no row references."""

from __future__ import annotations

import contextlib
from typing import Annotated

import typer

from limner.cli.commands._selection import JsonOpt
from limner.cli.context import err, friendly, get_project, out, print_json
from limner.errors import EXIT_FAILURES, EXIT_OK, LimnerError


def register(app: typer.Typer) -> None:
    @app.command("gc")
    @friendly
    def gc_cmd(
        ctx: typer.Context,
        delete: Annotated[bool, typer.Option("--delete", help="Delete the objects listed (default: a dry run that only lists them).")] = False,
        superseded: Annotated[bool, typer.Option("--superseded", help="Also collect the objects of superseded and rejected renders, "
                                                 "and forget those renders' rows.")] = False,
        force: Annotated[bool, typer.Option("--force", help="Delete even while runs or workers hold entries, or entries are being generated.")] = False,
        as_json: JsonOpt = False,
    ) -> None:
        """List stored objects that no render references (dry run); --delete removes them. Published images are never touched."""
        from limner.sync.gc import busy, holding_off_runs, plan_gc, run_gc

        def refuse_while_busy() -> None:
            reason = busy(project.repo) if delete and not force else None
            if reason:
                raise LimnerError(reason, hint="wait for the runs to end (or re-run `limner generate` to finish an "
                                               "interrupted one), or pass --force")

        project = get_project(ctx, read_only=not delete)
        try:
            settings = project.settings
            refuse_while_busy()
            # deleting: no run claims an entry from here on (one that did already is what busy() looks for)
            holding = holding_off_runs(project.repo) if delete else contextlib.nullcontext(None)
            with holding as still_held:
                refuse_while_busy()
                manifest_path = settings.path(settings.sync.manifest)
                try:
                    manifest_text = manifest_path.read_text(encoding="utf-8")
                except OSError:
                    manifest_text = ""
                storage = project.storage
                plan = plan_gc(storage, project.repo, superseded=superseded, manifest_text=manifest_text)
                refuse_while_busy()  # again: a run that claimed before gc was recorded may have stored since
                result = run_gc(storage, project.repo, plan, still_held=still_held) if delete else None
        finally:
            project.close()

        failed = result.failed if result else []
        if as_json:
            print_json({
                "dry_run": not delete,
                "superseded": superseded,
                "scanned": plan.scanned,
                "objects": [{"key": k, "bytes": s} for k, s in plan.objects],
                "count": len(plan.objects),
                "bytes": plan.bytes,
                "renders": len(plan.renders),
                "kept_for_manifest": plan.kept_for_manifest,
                "deleted": len(result.deleted) if result else 0,
                "deleted_bytes": result.bytes if result else 0,
                "renders_forgotten": result.renders_forgotten if result else 0,
                "partial_writes": [{"name": n, "bytes": b} for n, b in plan.partial],
                "partial_deleted": result.partial_deleted if result else 0,
                "failed": failed,
            })
        else:
            for key, size in plan.objects:
                typer.echo(f"{key}\t{size if size is not None else '?'}")
            what = "unreferenced" + (" or superseded" if superseded else "")
            out.print(f"{len(plan.objects)} {what} objects, {plan.bytes:,} bytes (of {plan.scanned} scanned)"
                      + (f"; {len(plan.renders)} superseded/rejected render rows" if superseded else "") + ".", highlight=False)
            if plan.partial:
                out.print(f"{len(plan.partial)} partial writes interrupted runs left (over an hour old), "
                          f"{sum(b for _n, b in plan.partial):,} bytes: {plan.partial[0][0]}"
                          + (" ..." if len(plan.partial) > 1 else ""), highlight=False, markup=False)
            if plan.kept_for_manifest:
                out.print(f"Kept {len(plan.kept_for_manifest)} objects the manifest still names; run `limner sync` first to release them.",
                          highlight=False)
            if result is None:
                out.print("Dry run: nothing was deleted. Pass --delete to remove them.", highlight=False)
            else:
                out.print(f"Deleted {len(result.deleted)} objects ({result.bytes:,} bytes)"
                          + (f", {result.partial_deleted} partial writes" if plan.partial else "")
                          + (f" and {result.renders_forgotten} render rows" if superseded else "") + ".", highlight=False)
                for failure in failed[:20]:
                    err.print(f"  failed {failure['key']}: {failure['error']}", highlight=False, markup=False)
        raise typer.Exit(EXIT_FAILURES if failed else EXIT_OK)
