"""A rich progress bar on stderr: done/total, rate, ETA, spend and failures.

Rich (its console and progress modules, about 17 ms to import) is imported only when the bar is shown:
``--no-progress`` and ``--json`` runs, the way scripts and CI call ``generate``, start without it.
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from rich.console import Console


class RunProgress:
    def __init__(self, total: int, *, enabled: bool = True, console: Console | None = None) -> None:
        self.enabled = enabled and total > 0
        self.progress: Any = None
        self.console: Console | None = console
        if not self.enabled:
            return
        from rich.console import Console
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TaskProgressColumn,
            TextColumn,
            TimeElapsedColumn,
            TimeRemainingColumn,
        )

        self.console = console or Console(stderr=True)
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
        )
        self.task = self.progress.add_task("generate", total=total, spend=0.0, failed=0, rate="0.0")

    def __enter__(self) -> RunProgress:
        if self.progress is not None:
            self.progress.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        if self.progress is not None:
            self.progress.__exit__(*exc)  # type: ignore[arg-type]

    def say(self, message: str) -> None:
        """A line for the person at the terminal, above the bar (or on stderr when there is none)."""
        if self.console is not None:
            self.console.print(message, highlight=False, markup=False)
        else:
            print(message, file=sys.stderr, flush=True)

    def advance(self, *, spend: float, failed: int) -> None:
        if self.progress is None:
            return
        task = self.progress.tasks[0]
        elapsed = task.elapsed or 0.0
        rate = (task.completed + 1) / elapsed if elapsed > 0 else 0.0
        self.progress.update(self.task, advance=1, spend=spend, failed=failed, rate=f"{rate:.1f}")
