"""``limner status``: counts per state, spend, and failures with their reasons."""

from __future__ import annotations

from collections import Counter
from typing import TYPE_CHECKING, Any

import typer

from limner.cli.commands._selection import JsonOpt
from limner.cli.context import friendly, get_project, out, print_json

if TYPE_CHECKING:
    from rich.table import Table

    from limner.project import Project


#: the narrowest a wrapping (``overflow="fold"``) column is made before a table is widened past the terminal,
#: and the width such a column gets in a table that was widened anyway (its lines are long already)
FOLDED_WIDTH, WIDENED_FOLDED_WIDTH = 12, 30


def print_table(table: Table) -> None:
    """Print ``table`` on stdout without cutting a cell.

    Columns added with ``no_wrap=True`` (ids, names, models) keep each cell whole on one line;
    the others should use ``overflow="fold"`` so they wrap instead of ending in "…". When even
    that does not fit the terminal (a 128-character id in 80 columns), the table is printed
    wider than the terminal rather than cutting an id.
    """
    from rich.measure import Measurement

    console = out.console
    unbounded = console.options.update_width(1_000_000)
    for column in table.columns:
        if column.no_wrap:
            widest = max(Measurement.get(console, unbounded, cell).maximum for cell in [column.header, *column.cells])
            column.min_width = max(column.min_width or 0, widest)

    def measure(folded: int) -> Measurement:
        """The table's width range with its wrapping columns at most ``folded`` characters wide."""
        saved = [(column, column.max_width) for column in table.columns if not column.no_wrap]
        for column, max_width in saved:
            column.max_width = min(max_width or folded, folded)
        try:
            return Measurement.get(console, unbounded, table)
        finally:
            for column, max_width in saved:
                column.max_width = max_width

    if measure(FOLDED_WIDTH).minimum > console.width:
        table.width = measure(WIDENED_FOLDED_WIDTH).maximum
    out.print(table)


def entries_with_image(project: Project) -> set[str]:
    """Catalogue entries that have a published image (even if a newer attempt failed or is stale)."""
    statuses = project.repo.entry_statuses()
    return {e.id for e in project.catalog if (st := statuses.get(e.id)) is not None and st.published_fingerprint}


def catalogue_states(project: Project) -> dict[str, str]:
    """State of every catalogue entry, with ``stale`` computed against the current catalogue and styles."""
    from limner.db.tables import EntryState
    from limner.runner import Selection, build_plan

    project.catalog  # a bad catalogue is reported before the state database is opened
    statuses = project.repo.entry_statuses()
    plan = build_plan(project, Selection(), statuses)
    stale = set(plan.stale_ids)
    states = {}
    for entry in project.catalog:
        st = statuses.get(entry.id)
        state = st.state if st else EntryState.missing.value
        if entry.id in stale and state == EntryState.published.value:
            state = EntryState.stale.value
        states[entry.id] = state
    return states


def status_dict(project: Project) -> dict[str, Any]:
    from limner.db.tables import EntryState

    states = catalogue_states(project)
    counts = Counter(states.values())
    failures = [
        {"id": i, "error": e, "attempts": a, "retryable": r}
        for i, e, a, r in project.repo.failures() if i in states
    ]
    return {
        "entries": len(states),
        "by_state": {s.value: counts.get(s.value, 0) for s in EntryState},
        "spend_usd": round(project.repo.spend(), 6),
        "failures": failures,
    }


def register(app: typer.Typer) -> None:
    @app.command("status")
    @friendly
    def status_cmd(ctx: typer.Context, as_json: JsonOpt = False) -> None:
        """Counts per state, spend so far, and failures with reasons."""
        project = get_project(ctx, read_only=True)
        try:
            data = status_dict(project)
        finally:
            project.close()
        if as_json:
            print_json(data)
            return
        from rich.table import Table

        table = Table("state", "entries", show_edge=False)
        for state, n in data["by_state"].items():
            table.add_row(state, str(n))
        print_table(table)
        out.print(f"{data['entries']} entries; spend ${data['spend_usd']:.4f}", highlight=False)
        for f in data["failures"][:50]:
            kind = "retryable" if f["retryable"] else "permanent"
            out.print(f"  failed {f['id']} ({kind}, {f['attempts']} attempts): {f['error']}", highlight=False, markup=False)
