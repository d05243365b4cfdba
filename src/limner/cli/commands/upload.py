"""``limner upload``: copy stored images to another storage (e.g. a local folder to s3://...)."""

from __future__ import annotations

import threading
import time
from typing import Annotated, Optional

import typer

from limner.cli.commands._selection import JsonOpt
from limner.cli.context import err, friendly, get_project, out, print_json
from limner.errors import EXIT_FAILURES, EXIT_OK, ConfigError


def register(app: typer.Typer) -> None:
    @app.command("upload")
    @friendly
    def upload_cmd(
        ctx: typer.Context,
        to: Annotated[str, typer.Option("--to", metavar="URL", help="Destination storage: s3://BUCKET/PREFIX, a folder or file:// URL.")],
        from_: Annotated[Optional[str], typer.Option("--from", metavar="URL", help="Source storage (default: the configured [storage] url).")] = None,
        all_: Annotated[bool, typer.Option("--all", help="Every object in the source, not only those the state database references.")] = False,
        endpoint_url: Annotated[Optional[str], typer.Option("--endpoint-url", metavar="URL", help="S3 endpoint of the destination (default: [storage] endpoint_url).")] = None,
        region: Annotated[Optional[str], typer.Option("--region", help="S3 region of the destination (default: [storage] region).")] = None,
        jobs: Annotated[int, typer.Option("--jobs", "-j", min=1, max=64, help="Objects copied at once.")] = 8,
        as_json: JsonOpt = False,
        progress: Annotated[bool, typer.Option("--progress/--no-progress", help="Progress bar on stderr.")] = True,
    ) -> None:
        """Copy stored images to another storage; resumable: objects already there are skipped."""
        from limner.storage.base import StorageError
        from limner.storage.transfer import copy_objects, describe, list_with_sizes, open_storage_at, refuse_overlap
        from limner.sync.gc import GC_PREFIXES
        from limner.urls import shown_url

        project = get_project(ctx, read_only=True)  # the state database is only read: a new project's is not created
        started = time.perf_counter()
        try:
            settings = project.settings
            src = open_storage_at(settings, from_) if from_ else project.storage
            dst = open_storage_at(settings, to, endpoint_url=endpoint_url, region=region)
            refuse_overlap(src, dst)
            try:  # a mistyped source folder lists as empty: refused, not "copied 0 objects"
                src.check_readable()
            except StorageError as exc:
                source = settings.source_of("storage", "url")
                given = "--from" if from_ else "storage.url (its default)" if source == "settings" else f"storage.url ({source})"
                raise ConfigError(f"{given}: {exc}; nothing was copied",
                                  hint="check the path (a relative one is read from the project folder)" if from_
                                  else "run `limner generate` first, or pass --from") from None
            recorded = project.repo.object_digests()
            missing: list[str] = []
            if all_:
                items = list(list_with_sizes(src))
            else:  # what the rows reference (masters, variants, placeholders), at the sizes the source has
                wanted = project.repo.all_object_keys()
                items = [(k, s) for prefix in GC_PREFIXES for k, s in list_with_sizes(src, prefix) if k in wanted]
                missing = sorted(wanted - {k for k, _ in items})
                if missing:
                    err.print(f"warning: {len(missing)} referenced objects are missing from the source (first: {missing[0]}); "
                              "they are not copied", highlight=False, markup=False)
            items.sort()
            total_bytes = sum(s or 0 for _, s in items)
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

            bar = Progress(TextColumn("[bold]upload"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                           TextColumn("{task.fields[copied]} copied ({task.fields[mb]:.1f} MB), {task.fields[skipped]} skipped, "
                                      "{task.fields[failed]} failed"),
                           console=err.console, disable=not progress or not items)
            counts = {"copied": 0, "skipped": 0, "failed": 0, "bytes": 0}
            lock = threading.Lock()
            with bar:
                task = bar.add_task("upload", total=len(items), copied=0, skipped=0, failed=0, mb=0.0)

                def advance(key: str, outcome: str, n: int) -> None:
                    with lock:  # called from the copy threads
                        counts[outcome] += 1
                        counts["bytes"] += n
                        bar.update(task, advance=1, copied=counts["copied"], skipped=counts["skipped"], failed=counts["failed"],
                                   mb=counts["bytes"] / 1e6)

                result = copy_objects(src, dst, items, recorded=recorded, jobs=jobs, on_progress=advance)
        finally:
            project.close()
        elapsed = time.perf_counter() - started
        summary = {"from": describe(src), "to": describe(dst), **result.to_dict(), "bytes_total": total_bytes,
                   "missing": missing, "elapsed_s": round(elapsed, 3)}
        if as_json:
            print_json(summary)
        else:
            out.print(f"Copied {result.copied} objects ({result.bytes:,} bytes), skipped {result.skipped} already there, "
                      f"{result.failed} failed; {summary['from']} -> {summary['to']} in {elapsed:.1f}s.", highlight=False)
            for failure in result.failures[:20]:
                out.print(f"  failed {failure['key']}: {failure['error']}", highlight=False, markup=False)
            if result.failed:
                out.print("Re-run the same command to retry the failed objects; copied ones are skipped.", highlight=False)
            elif missing:  # the destination lacks what the rows name: switching to it would break those images
                out.print(f"{len(missing)} objects the database references are missing from the source, so from the "
                          "destination too; do not switch to it before they are restored (or their entries regenerated).",
                          highlight=False, markup=False)
            else:
                out.print(f"To use it, set [storage] url = \"{shown_url(to)}\" in limner.toml (or LIMNER_STORAGE_URL), then run `limner sync`.",
                          highlight=False, markup=False)
        raise typer.Exit(EXIT_FAILURES if result.failed or missing else EXIT_OK)

