"""``limner generate``: plan, then run one unit of work per entry."""

from __future__ import annotations

from typing import Annotated, Optional

import typer

from limner.cli.commands._selection import AllOpt, IdOpt, JsonOpt, LimitOpt, MissingOpt, ProviderOpt, StaleOpt, selection
from limner.cli.commands.plan import plan_dict, print_plan, usd
from limner.cli.context import err, finite_number, friendly, get_project, out, print_json


def register(app: typer.Typer) -> None:
    @app.command("generate")
    @friendly
    def generate_cmd(
        ctx: typer.Context,
        missing: MissingOpt = False,
        all_: AllOpt = False,
        ids: IdOpt = None,
        stale: StaleOpt = False,
        provider: ProviderOpt = None,
        limit: LimitOpt = None,
        dry_run: Annotated[bool, typer.Option("--dry-run", help="Plan only; call nothing, change nothing.")] = False,
        budget: Annotated[Optional[float], typer.Option("--budget", min=0, callback=finite_number("leave --budget out for generate.budget_usd, or both for no cap"), help="Stop starting calls that would take spend (done + in flight) over this many USD.")] = None,
        as_json: JsonOpt = False,
        enqueue: Annotated[bool, typer.Option("--enqueue", help="Put one job per planned entry on the PostgreSQL queue for `limner worker` instead of running here.")] = False,
        progress: Annotated[bool, typer.Option("--progress/--no-progress", help="Progress bar on stderr.")] = True,
    ) -> None:
        """Generate images for entries that need them (missing and stale by default)."""
        import threading
        import time

        command_started = time.time()
        if not dry_run and not enqueue:  # the imaging pool starts once the first call is out (runner/pool.py)
            threading.Thread(target=_warm_tls, name="limner-warm-tls", daemon=True).start()
        from limner.runner import RunOptions, build_plan, run_plan

        # planned read-only: a plan that refuses (an unknown provider or id, a template that fails) creates no
        # state database in a new project
        project = get_project(ctx, read_only=True)
        try:
            plan = build_plan(project, selection(missing, stale, all_, ids, provider, limit))
            planned_at = time.time()
            if not dry_run:
                project.allow_writes()
            cap = budget if budget is not None else project.settings.generate.budget_usd
            if dry_run:
                if as_json:
                    print_json({**plan_dict(plan, cap), "dry_run": True})
                else:
                    print_plan(project, plan)
                    out.print("Dry run: nothing was generated.")
                return
            if enqueue:  # the workers run it (see docs/scaling.md)
                from limner.cli.commands.queue import enqueue_plan_cmd

                enqueue_plan_cmd(project, plan, budget=budget, forcing=bool(ids) or all_, as_json=as_json)
                return
            if project.provider_is_default and not provider and any(i.provider == "sketch" for i in plan.items):
                err.print("No provider configured: using the offline 'sketch' provider (set LIMNER_PROVIDER or `provider` in limner.toml).",
                          highlight=False)
            summary = run_plan(project, plan, RunOptions(budget_usd=cap, progress=progress))
            summary.mark("command_started", command_started)
            summary.mark("planned", planned_at)
        finally:
            project.close()

        if as_json:
            print_json(summary.to_dict())
        else:
            out.print(f"Generated {summary.generated} of {summary.planned} planned ({summary.resumed} resumed), "
                      f"{summary.skipped} up to date, {summary.failed} failed; {summary.provider_calls} provider calls, "
                      f"spend {usd(summary.spend_usd)}, {summary.elapsed_s:.1f}s.", highlight=False)
            for failure in summary.failures[:20]:
                out.print(f"  failed {failure['id']}: {failure['error']}", highlight=False, markup=False)
            if summary.elsewhere:
                out.print(f"{summary.elsewhere} entries were held by another run, a queue worker or a `limner gc "
                          "--delete`, and left to it; run `limner generate` again once it is done.",
                          highlight=False, markup=False)
        if summary.auth_error:
            fix = summary.auth_fix or "fix the credentials or the account (see `limner doctor`)"
            err.print(f"error: {summary.auth_error}. The run stopped; {fix} and re-run.",
                      highlight=False, markup=False)
        if summary.halted:
            err.print(f"error: {summary.halted}. The run started no new paid call after this; fix storage or the "
                      f"database and re-run: {summary.kept_locally} paid image(s) kept (in the database, or in "
                      ".limner/recovery/ when the database failed too) are recorded then, without paying again.",
                      highlight=False, markup=False)
        if summary.budget_stopped:
            err.print(f"Budget of {usd(cap or 0, exact=True)} reached: {summary.not_started} entries not started. Raise --budget and re-run to continue.",
                      highlight=False)
        if summary.interrupted:
            err.print(f"Interrupted: {summary.generated} published this run. Run `limner generate` again to resume; "
                      "nothing already paid for is lost.", highlight=False)
        raise typer.Exit(summary.exit_code)


def _warm_tls() -> None:
    """The providers' TLS context, made while this process plans (see providers/tls.py)."""
    from limner.providers.tls import tls_context

    try:
        tls_context()
    except Exception:  # noqa: BLE001 - no certifi (an offline provider needs none), or a bad SSL_CERT_FILE:
        pass  # the provider's client asks again when it is made, and that error is the one the user sees
