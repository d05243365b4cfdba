"""``limner plan``: what would run, and what it would cost. Changes nothing."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

import typer

from limner.cli.commands._selection import AllOpt, IdOpt, JsonOpt, LimitOpt, MissingOpt, ProviderOpt, StaleOpt, selection
from limner.cli.context import err, friendly, get_project, out, print_json

if TYPE_CHECKING:
    from limner.project import Project
    from limner.runner import Plan


def usd(amount: float, *, exact: bool = False) -> str:
    """Dollars for people, never misleading about small amounts.

    An estimate, price or spend: cents from $0.10 up, two significant digits below ($0.0030, $0.025,
    $0.61, $12.35), so a non-zero amount never reads as $0.00. ``exact`` (a budget, a limit the user
    set): every decimal it has, up to six, at least two, so a cap is never shown rounded up ($0.025,
    $5.00, $1.005).
    """
    if amount == 0:
        return "$0.00"
    sign, size = ("-" if amount < 0 else ""), abs(amount)
    if exact:
        whole, _, decimals = f"{size:.6f}".partition(".")
        decimals = decimals.rstrip("0").ljust(2, "0")
        if whole == "0" and decimals.strip("0") == "":
            return sign + usd(size)  # below a millionth: say how small, not $0.00
        return f"{sign}${whole}.{decimals}"
    if size >= 0.1:
        return f"{sign}${size:.2f}"
    digits = 1 - math.floor(math.log10(size))  # two significant digits
    return f"{sign}${size:.{digits}f}"


def plan_dict(plan: Plan, budget: float | None = None) -> dict[str, Any]:
    return {
        "total": plan.total,
        "planned": len(plan.items),
        "up_to_date": plan.up_to_date,
        "by_reason": dict(plan.reasons),
        "by_provider": dict(plan.by_provider()),
        "held_back": plan.held_back,
        "stale_not_selected": len(plan.stale_not_selected),
        "estimated_cost_usd": plan.estimated_cost,
        "budget_usd": budget,
        "items": [
            {"id": i.entry.id, "reason": i.reason, "style": i.style.name, "provider": i.spec.provider, "model": i.spec.model,
             "seed": i.spec.seed, "width": i.spec.width, "height": i.spec.height, "price_usd": i.price_usd,
             "fingerprint": i.fingerprint}
            for i in plan.items
        ],
    }


def render_shown(plan: Plan, show_items: int = 20) -> None:
    """Render the prompts that the text output shows, and one of each style and provider in the plan, before
    anything is printed: a template that cannot render is an error (exit 2) with no half-printed plan
    before it. (``--json`` renders every planned entry's prompt before it prints; so does ``generate``.)"""
    contexts: set[int] = set()
    for n, item in enumerate(plan.items):
        if n < show_items or id(item.ctx) not in contexts:
            contexts.add(id(item.ctx))
            _ = item.spec  # rendered now, or its StyleError raised now


def print_plan(project: Project, plan: Plan, *, show_items: int = 20) -> None:
    render_shown(plan, show_items)
    if project.provider_is_default and any(i.provider == "sketch" for i in plan.items):
        err.print("No provider configured: using the offline 'sketch' provider (set LIMNER_PROVIDER or `provider` in limner.toml).",
                  highlight=False)
    out.print(f"{plan.total} entries in the catalogue: {len(plan.items)} to generate, {plan.up_to_date} up to date.", highlight=False)
    if plan.reasons:
        out.print("  " + ", ".join(f"{n} {r}" for r, n in sorted(plan.reasons.items())), highlight=False)
    if plan.held_back:
        out.print(f"  {len(plan.held_back)} failed permanently and are held back (use --id to retry): {', '.join(plan.held_back[:10])}", highlight=False)
    if plan.stale_not_selected:
        out.print(f"  {len(plan.stale_not_selected)} stale entries not selected (drop --missing to include them)", highlight=False)
    if plan.items:
        from rich.table import Table

        from limner.cli.commands.status import print_table

        table = Table(show_edge=False)
        table.add_column("id", no_wrap=True)  # ids are printed whole, whatever the terminal's width
        table.add_column("reason", no_wrap=True)
        table.add_column("style", overflow="fold")
        table.add_column("provider", no_wrap=True)
        table.add_column("model", overflow="fold")
        table.add_column("size", no_wrap=True)
        table.add_column("price", no_wrap=True)
        for item in plan.items[:show_items]:
            table.add_row(item.entry.id, item.reason, item.style.name, item.spec.provider, item.spec.model,
                          f"{item.spec.width}x{item.spec.height}", usd(item.price_usd))
        print_table(table)
        if len(plan.items) > show_items:
            out.print(f"  ... and {len(plan.items) - show_items} more", highlight=False)
        by_provider = ", ".join(f"{p}: {n}" for p, n in plan.by_provider().items())
        out.print(f"Estimated cost: {usd(plan.estimated_cost)} ({by_provider})", highlight=False)


def register(app: typer.Typer) -> None:
    @app.command("plan")
    @friendly
    def plan_cmd(
        ctx: typer.Context,
        missing: MissingOpt = False,
        all_: AllOpt = False,
        ids: IdOpt = None,
        stale: StaleOpt = False,
        provider: ProviderOpt = None,
        limit: LimitOpt = None,
        as_json: JsonOpt = False,
    ) -> None:
        """Show what `generate` would run and its estimated cost. Changes nothing."""
        from limner.runner import build_plan

        project = get_project(ctx, read_only=True)
        try:
            plan = build_plan(project, selection(missing, stale, all_, ids, provider, limit))
        finally:
            project.close()
        if as_json:
            print_json(plan_dict(plan))
        else:
            print_plan(project, plan)
