"""``limner providers``: each provider, whether it is configured, its model and price."""

from __future__ import annotations

import typer

from limner.cli.commands._selection import JsonOpt
from limner.cli.context import friendly, get_project, print_json
from limner.errors import LimnerError
from limner.providers import DEFAULT_PROVIDER
from limner.registry import provider_class, provider_specs


def register(app: typer.Typer) -> None:
    @app.command("providers")
    @friendly
    def providers_cmd(ctx: typer.Context, as_json: JsonOpt = False) -> None:
        """List providers: configured (credentials present), model, price, default."""
        project = get_project(ctx, anywhere=True)
        settings = project.settings
        default = settings.provider or DEFAULT_PROVIDER
        rows = []
        for name, spec in sorted(provider_specs().items()):
            row = {"name": name, "description": spec.description, "default": name == default}
            try:
                cls = provider_class(name)
            except LimnerError as exc:
                row.update(installed=False, configured=False, model=None, price_usd=None, missing=[], unavailable=None,
                           hint=exc.hint)
                rows.append(row)
                continue
            # as a run asks it: a self-hosted server's plain-http host needs LIMNER_ALLOW_HTTP_HOSTS too
            missing = project.provider(name).missing_env()
            conf = settings.provider_settings(name)
            unavailable = cls.unavailable()
            row.update(installed=True, configured=not missing and unavailable is None, missing=missing,
                       unavailable=unavailable, model=conf.model or cls.default_model, price_usd=project.provider_price(name))
            rows.append(row)
        if as_json:
            print_json(rows)
            return
        from rich.table import Table

        from limner.cli.commands.status import print_table

        table = Table(show_edge=False)
        table.add_column("provider", no_wrap=True)
        table.add_column("configured", overflow="fold")
        table.add_column("model", overflow="fold")
        table.add_column("price/image", no_wrap=True, justify="right")
        table.add_column("", overflow="fold")
        for r in rows:
            configured = ("yes" if r["configured"] else "not installed" if not r["installed"]
                          else "not on this machine" if r["unavailable"] else "missing " + ", ".join(r["missing"]))
            table.add_row(r["name"] + (" (default)" if r["default"] else ""), configured, r["model"] or "-",
                          "-" if r["price_usd"] is None else f"${r['price_usd']:.4f}", r["description"])
        print_table(table)
