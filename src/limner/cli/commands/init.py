"""``limner init``: scaffold limner.toml, .env.example, a sample style and catalogue, and a .gitignore block;
with ``--ci``, the CI workflow that fills missing images."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from limner.cli.context import friendly, out


DEFAULT_PLACEHOLDER_DIR = "frontend/public/images/events"


def configured_placeholder_dir(root: Path, given: str | None) -> str:
    """``sync.placeholder_dir`` of the project in ``root`` (its limner.toml, .env and environment, as every
    command reads them); a ``--placeholder-dir`` that names another folder is refused (exit 2): init keeps
    the existing limner.toml, so the .gitignore block would disagree with it."""
    import posixpath

    from limner.config import load_settings
    from limner.errors import ConfigError

    configured = load_settings(root / "limner.toml").sync.placeholder_dir
    if given is not None and posixpath.normpath(given) != posixpath.normpath(configured):
        raise ConfigError(f"--placeholder-dir {given!r} differs from sync.placeholder_dir {configured!r} of "
                          f"{root / 'limner.toml'}, which init keeps; nothing was changed",
                          hint="change sync.placeholder_dir in limner.toml and run `limner init` without "
                               "--placeholder-dir to rewrite the .gitignore block")
    return configured


def register(app: typer.Typer) -> None:
    @app.command("init")
    @friendly
    def init_cmd(
        ctx: typer.Context,
        directory: Annotated[Path, typer.Argument(help="Project directory (default: current).")] = Path("."),
        placeholder_dir: Annotated[Optional[str], typer.Option(
            help="Where the app keeps committed placeholders, relative to the project (default: the "
                 "existing limner.toml's sync.placeholder_dir, else frontend/public/images/events).")] = None,
        ci: Annotated[Optional[str], typer.Option("--ci", help="Also write a CI workflow: github or gitlab. In a folder "
                                                  "that already has limner.toml, only the workflow is written.")] = None,
        ci_commit: Annotated[bool, typer.Option("--ci-commit", help="The workflow commits to the branch instead of "
                                                "opening a pull (merge) request.")] = False,
        ci_budget: Annotated[float, typer.Option("--ci-budget", min=0, help="The workflow's spend cap per run, in USD.")] = 5.0,
        ci_install: Annotated[Optional[str], typer.Option("--ci-install", help="What the workflow pip-installs "
                                                          "(default: this Limner's git URL, else limner[all]).")] = None,
        force: Annotated[bool, typer.Option("--force", help="Replace an existing CI workflow.")] = False,
    ) -> None:
        """Create limner.toml, .env.example, a sample style and catalogue; add Limner's block to .gitignore. Safe to re-run."""
        from limner.config.scaffold import ScaffoldResult, check_placeholder_dir, scaffold

        root = directory.resolve()
        if placeholder_dir is not None:
            check_placeholder_dir(placeholder_dir)  # before anything is written
        if ci is not None:
            from limner.ci.workflow import CI_KINDS, CiOptions, write_ci
            from limner.errors import ConfigError

            if ci not in CI_KINDS:
                raise ConfigError(f"--ci {ci!r}: expected one of {', '.join(CI_KINDS)}")
            options = CiOptions(budget=ci_budget, commit=ci_commit, pip_spec=ci_install)
            options.validate()  # before anything is written
        initialised = (root / "limner.toml").is_file()
        if ci and initialised:
            result = ScaffoldResult()
        elif initialised:  # the .gitignore block follows the project's settings, as `limner check` reads them
            configured = configured_placeholder_dir(root, placeholder_dir)
            result = scaffold(root, placeholder_dir=configured, configured=True)
        else:
            result = scaffold(root, placeholder_dir=placeholder_dir or DEFAULT_PLACEHOLDER_DIR)
        notes: list[str] = []
        if ci is not None:
            ci_result = write_ci(root, ci, options, force=force)
            result.created += ci_result.created
            result.updated += ci_result.updated
            result.kept += ci_result.kept
            notes = ci_result.notes
        for name in result.created:
            out.print(f"created  {name}", highlight=False, markup=False)
        for name in result.updated:
            out.print(f"updated  {name}", highlight=False, markup=False)
        for name in result.kept:
            out.print(f"kept     {name}", highlight=False, markup=False)
        for note in notes:
            out.print(f"note: {note}", highlight=False, markup=False)
        if ci is not None:
            out.print("Next: set the secrets LIMNER_DATABASE_URL, LIMNER_STORAGE_URL and your provider's token "
                      "(see docs/ci.md), then commit the workflow.", highlight=False)
        else:
            out.print("Next: edit catalog.yaml, then `limner plan` and `limner generate`.", highlight=False)
