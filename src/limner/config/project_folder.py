"""Where the project is: the usage error for a project command run outside the app's folder."""

from __future__ import annotations

from limner.config.settings import CONFIG_FILENAME, Settings
from limner.errors import ConfigError


def not_a_project(settings: Settings, command: str) -> ConfigError | None:
    """The usage error (exit 2) for ``command`` run where there is no project: no ``--config``, no limner.toml
    in the current folder, and no catalogue either (a project on built-in defaults has its catalogue). The
    config is looked for here only, as every command does; a limner.toml in a parent folder is named in the hint."""
    import os
    import shlex

    if settings.config_file is not None or settings.catalog_path.is_file():
        return None
    if settings.database.url != type(settings.database)().url:  # a state database named elsewhere (a shared
        return None  # PostgreSQL for `workers`, `queue`, `costs`): not the project folder's own file
    here = settings.project_dir.resolve()
    parent = next((folder for folder in here.parents if (folder / CONFIG_FILENAME).is_file()), None)
    if parent is not None:
        rel = os.path.relpath(parent / CONFIG_FILENAME, here)
        hint = (f"the project is in {parent}: run it there (cd {shlex.quote(os.path.relpath(parent, here))}), or "
                f"`limner --config {shlex.quote(rel)} {command}`")
    else:
        hint = (f"run it in the app's folder (where {CONFIG_FILENAME} is), or give `limner --config "
                f"PATH/{CONFIG_FILENAME} {command}`; `limner init` makes a new project")
    return ConfigError(f"no {CONFIG_FILENAME} (nor {settings.catalog}) in {here}: not a Limner project's folder",
                       hint=hint)
