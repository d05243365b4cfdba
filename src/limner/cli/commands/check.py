"""``limner check``: the app repository's hygiene (tracked masters, big placeholders, manifest, .gitignore)."""

from __future__ import annotations

import typer

from limner.cli.commands._selection import JsonOpt
from limner.cli.context import friendly, out, print_json
from limner.errors import EXIT_FAILURES


def register(app: typer.Typer) -> None:
    @app.command("check")
    @friendly
    def check_cmd(ctx: typer.Context, as_json: JsonOpt = False) -> None:
        """Check the app's repo: no masters or variants in git, small placeholders, a valid manifest, the .gitignore block. Exit 1 on problems."""
        from limner.ci.check import check_app
        from limner.config.project_folder import not_a_project
        from limner.config import load_settings
        from limner.providers.sections import check_provider_sections

        settings = load_settings(ctx.ensure_object(dict).get("config"))
        error = not_a_project(settings, "check")
        if error is not None:  # not the app's folder: checking built-in defaults would advise a nested project
            raise error
        # limner.toml's provider sections, as a run reads them (exit 2)
        check_provider_sections(settings, settings.providers, installed_only=True)
        report = check_app(settings)
        if as_json:
            print_json(report.as_dict())
        else:
            for problem in report.problems:
                out.print(f"{problem.file}: {problem.message} [{problem.kind}]", highlight=False, markup=False)
            for note in report.skipped:
                out.print(f"skipped: {note}", highlight=False, markup=False)
            if report.ok:
                out.print("ok: the app's repository is clean.", highlight=False, markup=False)
            else:
                n = len(report.problems)
                out.print(f"{n} problem{'s' if n != 1 else ''} found.", highlight=False, markup=False)
        if not report.ok:
            raise typer.Exit(EXIT_FAILURES)
