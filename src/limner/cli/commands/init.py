"""``limner init``: scaffold limner.toml, .env.example, a sample style and catalogue, and a .gitignore block;
with ``--ci``, the CI workflow that fills missing images."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from limner.cli.context import finite_number, friendly, out


DEFAULT_PLACEHOLDER_DIR = "frontend/public/images/events"


def configured_folders(root: Path, given: str | None) -> tuple[str, str | None]:
    """``sync.placeholder_dir`` of the project in ``root`` and its local storage folder (``storage.url`` when it
    is a folder inside the project, relative to it; else None), from its limner.toml, .env and environment, as
    every command reads them. A ``--placeholder-dir`` that names another folder is refused (exit 2): init keeps
    the existing limner.toml, so the .gitignore block would disagree with it."""
    import posixpath

    from limner.config import load_settings
    from limner.config.scaffold import local_store_dir
    from limner.errors import ConfigError

    settings = load_settings(root / "limner.toml")
    configured = settings.sync.placeholder_dir
    if given is not None and posixpath.normpath(given) != posixpath.normpath(configured):
        raise ConfigError(f"--placeholder-dir {given!r} differs from sync.placeholder_dir {configured!r} of "
                          f"{root / 'limner.toml'}, which init keeps; nothing was changed",
                          hint="change sync.placeholder_dir in limner.toml and run `limner init` without "
                               "--placeholder-dir to rewrite the .gitignore block")
    return configured, local_store_dir(settings.storage.url, root)


def new_project_store_dir(root: Path) -> str | None:
    """The local storage folder a new project in ``root`` gets (the scaffold's default, unless the environment or
    an existing ``.env`` there sets ``LIMNER_STORAGE_URL``); None when it is not a folder inside the project or
    the settings cannot be read (then the scaffold's default, inside ``.limner/``, applies)."""
    from limner.config import load_settings
    from limner.config.scaffold import local_store_dir
    from limner.errors import LimnerError

    try:
        settings = load_settings(project_dir=root)
    except LimnerError:
        return None
    return local_store_dir(settings.storage.url, root)


def events_write_back_note(root: Path, kind: str) -> str | None:
    """A note for ``init --ci`` when this project writes image URLs back to the app's events table with a URL
    the CI job will not have: one from the environment or ``.env`` (never committed), not from limner.toml."""
    from limner.config import load_settings
    from limner.errors import LimnerError

    name = "LIMNER_SYNC_EVENTS_DATABASE_URL"
    try:
        settings = load_settings(project_dir=root)
    except LimnerError:
        return None
    if not settings.sync.events_database_url or not settings.secret(name):
        return None
    where = "a repository secret" if kind == "github" else "a CI/CD variable"
    return (f"{name} is set here (environment or .env), which the CI job does not read: set it as {where} too, "
            "or the job leaves the app's events table without the new image URLs")


def local_settings_note(root: Path, kind: str) -> str | None:
    """A note for ``init --ci`` naming the ``LIMNER_*`` settings this project takes from its ``.env`` that the
    workflow does not pass (it passes only the state database, the storage and the events table's URL, as
    secrets): the CI job runs without them. Names only, never values."""
    from limner.ci.workflow import CI_SETTINGS
    from limner.config.settings import project_dotenv

    names = sorted(k for k in project_dotenv(root) if k.startswith("LIMNER_") and k not in CI_SETTINGS)
    if not names:
        return None
    where = "repository variables or secrets" if kind == "github" else "CI/CD variables"
    return (f".env sets {', '.join(names)}, which the CI job does not read: move the settings that are not secret "
            f"to limner.toml (committed), and pass the others to the workflow's steps as {where}")


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
        ci_budget: Annotated[float, typer.Option("--ci-budget", min=0, callback=finite_number("the workflow needs a cap; leave --ci-budget out for 5"), help="The workflow's spend cap per run, in USD.")] = 5.0,
        ci_install: Annotated[Optional[str], typer.Option("--ci-install", help="What the workflow pip-installs "
                                                          "(default: this Limner's git URL, else none: the workflow stops until "
                                                          "the variable LIMNER_PIP_SPEC is set).")] = None,
        force: Annotated[bool, typer.Option("--force", help="Replace an existing CI workflow.")] = False,
    ) -> None:
        """Create limner.toml, .env.example, a sample style and catalogue; add Limner's block to .gitignore. Safe to re-run."""
        from limner.config.scaffold import ScaffoldResult, check_placeholder_dir, scaffold

        root = directory.resolve()
        if ci is None:  # a workflow option alone would be ignored, the project made without the workflow asked for
            from limner.errors import ConfigError

            # typer carries its own click: its ParameterSource is compared by name
            given = [flag for flag, name in (("--ci-commit", "ci_commit"), ("--ci-budget", "ci_budget"),
                                             ("--ci-install", "ci_install"), ("--force", "force"))
                     if getattr(ctx.get_parameter_source(name), "name", "DEFAULT") == "COMMANDLINE"]
            if given:
                raise ConfigError(f"{' and '.join(given)} only {'applies' if len(given) == 1 else 'apply'} with --ci",
                                  hint="add --ci github or --ci gitlab")
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
            configured, store = configured_folders(root, placeholder_dir)
            result = scaffold(root, placeholder_dir=configured, configured=True, store_dir=store)
        else:
            result = scaffold(root, placeholder_dir=placeholder_dir or DEFAULT_PLACEHOLDER_DIR,
                              store_dir=new_project_store_dir(root))
        notes: list[str] = list(result.notes)
        if ci is not None:
            ci_result = write_ci(root, ci, options, force=force)
            result.created += ci_result.created
            result.updated += ci_result.updated
            result.kept += ci_result.kept
            notes += ci_result.notes
            notes += [n for n in (events_write_back_note(root, ci), local_settings_note(root, ci)) if n]
        for name in result.created:
            out.print(f"created  {name}", highlight=False, markup=False)
        for name in result.updated:
            out.print(f"updated  {name}", highlight=False, markup=False)
        for name in result.kept:
            out.print(f"kept     {name}", highlight=False, markup=False)
        for note in notes:
            out.print(f"note: {note}", highlight=False, markup=False)
        if ci is not None:
            out.print("Next: set the secrets LIMNER_DATABASE_URL, LIMNER_STORAGE_URL, your provider's token and, to "
                      "write image URLs back to the app's events table, LIMNER_SYNC_EVENTS_DATABASE_URL (see "
                      "docs/ci.md), then commit the workflow.", highlight=False)
        else:
            out.print("Next: edit catalog.yaml, then `limner plan` and `limner generate`.", highlight=False)
