"""A rich progress bar on stderr: done/total, rate, ETA, spend and failures."""

from __future__ import annotations

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskProgressColumn, TextColumn, TimeElapsedColumn, TimeRemainingColumn


class RunProgress:
    def __init__(self, total: int, *, enabled: bool = True, console: Console | None = None) -> None:
        self.console = console or Console(stderr=True)
        self.enabled = enabled and total > 0
        self.progress = Progress(
            TextColumn("[bold]generate"),
            BarColumn(),
            MofNCompleteColumn(),
            TaskProgressColumn(),
            TextColumn("{task.fields[rate]}/s"),
            TimeElapsedColumn(),
            TextColumn("ETA"),
            TimeRemainingColumn(),
            TextColumn("${task.fields[spend]:.4f}"),
            TextColumn("[red]{task.fields[failed]} failed"),
            console=self.console,
            transient=False,
            disable=not self.enabled,
        )
        self.task = self.progress.add_task("generate", total=total, spend=0.0, failed=0, rate="0.0")

    def __enter__(self) -> RunProgress:
        self.progress.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        self.progress.__exit__(*exc)  # type: ignore[arg-type]

    def advance(self, *, spend: float, failed: int) -> None:
        task = self.progress.tasks[0]
        elapsed = task.elapsed or 0.0
        rate = (task.completed + 1) / elapsed if elapsed > 0 else 0.0
        self.progress.update(self.task, advance=1, spend=spend, failed=failed, rate=f"{rate:.1f}")
