"""``limner costs``: spend from the ledger by provider, model and day."""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from typing import Annotated, Optional

import typer

from limner.cli.commands._selection import JsonOpt
from limner.cli.context import friendly, get_project, out, print_json


def register(app: typer.Typer) -> None:
    @app.command("costs")
    @friendly
    def costs_cmd(
        ctx: typer.Context,
        days: Annotated[Optional[int], typer.Option("--days", min=1, help="Only the last N days.")] = None,
        as_json: JsonOpt = False,
    ) -> None:
        """Spend by provider, model and day, from the ledger of every paid (or billed) call."""
        project = get_project(ctx, read_only=True)
        since = _since(days)
        try:
            rows = project.repo.spend_by(since=since)
        finally:
            project.close()
        by_provider: dict[str, float] = defaultdict(float)
        by_model: dict[str, float] = defaultdict(float)
        for _day, provider, model, _n, usd in rows:
            by_provider[provider] += usd
            by_model[f"{provider}/{model}"] += usd
        total = round(sum(r[4] for r in rows), 6)
        if as_json:
            print_json({
                "total_usd": total,
                "by_provider": {k: round(v, 6) for k, v in sorted(by_provider.items())},
                "by_model": {k: round(v, 6) for k, v in sorted(by_model.items())},
                "by_day": [{"day": d, "provider": p, "model": m, "calls": n, "usd": round(c, 6)} for d, p, m, n, c in rows],
            })
            return
        from rich.table import Table

        from limner.cli.commands.status import print_table

        table = Table(show_edge=False)
        table.add_column("day", no_wrap=True)
        table.add_column("provider", no_wrap=True)
        table.add_column("model", no_wrap=True)  # whole: a model id cut short names another model
        table.add_column("calls", no_wrap=True, justify="right")
        table.add_column("USD", no_wrap=True, justify="right")
        for day, provider, model, n, usd in rows:
            table.add_row(day, provider, model, str(n), f"${usd:.4f}")
        print_table(table)
        for provider, usd in sorted(by_provider.items()):
            out.print(f"{provider}: ${usd:.4f}", highlight=False)
        out.print(f"Total: ${total:.4f}", highlight=False)


def _since(days: int | None) -> dt.date | None:
    """The first day of the last ``days`` days (today included); None for every day, also when ``days`` reaches
    past the calendar's first day (``--days 99999999999`` ended in an OverflowError traceback)."""
    if not days:
        return None
    try:
        return dt.date.today() - dt.timedelta(days=days - 1)
    except OverflowError:
        return None
