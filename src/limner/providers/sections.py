"""The ``[providers.<name>]`` sections of the settings, checked against the providers Limner knows.

A section whose name no provider is registered under (``[providers.replicat]``) was passed over: the run
used ``replicate`` with none of the settings meant for it (its model, concurrency, price). It is an error
naming the file and line (or the variable) and the section, with the names that come closest and every
provider known, built in or registered by a plugin.

Provider names come from the registry (:func:`limner.registry.provider_specs`), which imports no provider
module. Plugins named by the ``plugins`` setting are loaded first, so that their providers are known.

Checked by ``limner check`` and by every command that builds a provider or plans a run with one
(:meth:`limner.project.Project.provider`, :func:`limner.runner.lanes.resolve_lane`, ``limner doctor``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from limner.errors import ConfigError, did_you_mean
from limner.registry import provider_specs

if TYPE_CHECKING:
    from limner.config.settings import Settings

#: the hint that goes with an unknown section
SECTIONS_HINT = ("a plugin's provider is known once its plugin is loaded (`plugins` in limner.toml, LIMNER_PLUGINS, "
                 "or an installed package); `limner providers` lists them")


def section_problems(settings: Settings) -> list[str]:
    """One message per ``[providers.<name>]`` section of ``settings`` that names no known provider."""
    if settings.plugins:
        from limner.plugins import load_plugins

        load_plugins(settings.plugins)
    specs = provider_specs()
    known = ", ".join(sorted(specs))
    return [f"{settings.source_of('providers', name)}: section [providers.{name}]: unknown provider {name!r}"
            f"{did_you_mean(name, specs)}; known providers: {known}"
            for name in settings.providers if name not in specs]


def check_provider_sections(settings: Settings) -> None:
    """Raise :class:`ConfigError` (exit 2) listing every problem :func:`section_problems` finds."""
    problems = section_problems(settings)
    if problems:
        raise ConfigError("invalid configuration; nothing was changed:\n  " + "\n  ".join(problems),
                          hint=SECTIONS_HINT)
