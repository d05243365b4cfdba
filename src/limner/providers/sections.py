"""The ``[providers.<name>]`` sections of the settings, checked against the providers Limner knows.

* A section whose name no provider is registered under (``[providers.replicat]``) was passed over: the run
  used ``replicate`` with none of the settings meant for it (its model, concurrency, price). It is an error
  naming the file and line (or the variable) and the section, with the names that come closest and every
  provider known, built in or registered by a plugin. Provider names come from the registry
  (:func:`limner.registry.provider_specs`), which imports no provider module. Plugins named by the
  ``plugins`` setting are loaded first, so that their providers are known.
* A key its provider does not read (``concurency = 4``, ``max_sequense_length`` for diffusers) was passed on
  and never read. Each provider declares the settings it reads (:attr:`Provider.accepted_settings`, besides
  :data:`~limner.providers.base.COMMON_SETTINGS`); any other key is an error naming its line, with a "did you
  mean" and the settings the provider takes. Checked for the providers a command builds (their module is
  imported then anyway); a provider that declares nothing (a plugin written before) takes any key.

Checked by ``limner check`` and by every command that builds a provider or plans a run with one
(:meth:`limner.project.Project.provider`, :func:`limner.runner.lanes.resolve_lane`, ``limner doctor``).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

from limner.errors import ConfigError, LimnerError, did_you_mean
from limner.providers.base import COMMON_SETTINGS
from limner.registry import provider_class, provider_specs

if TYPE_CHECKING:
    from limner.config.settings import Settings

#: the hints that go with an unknown section, and with an unknown setting
SECTIONS_HINT = ("a plugin's provider is known once its plugin is loaded (`plugins` in limner.toml, LIMNER_PLUGINS, "
                 "or an installed package); `limner providers` lists them")
SETTINGS_HINT = "docs/providers.md gives the settings of each built-in provider"


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


def setting_problems(settings: Settings, names: Iterable[str], *, installed_only: bool = False) -> list[str]:
    """One message per key of the sections of ``names`` (known providers) that its provider does not declare.
    ``installed_only``: a provider whose package is missing is passed over (the command that builds it says
    so), rather than raising its install hint."""
    specs = provider_specs()
    problems = []
    for name in dict.fromkeys(names):
        conf = settings.providers.get(name)
        if conf is None or not conf.model_extra or name not in specs:
            continue
        try:
            cls = provider_class(name)
        except LimnerError:
            if installed_only:
                continue
            raise
        if cls.accepted_settings is None:  # declares nothing: every key is passed on, as before
            continue
        takes = sorted(COMMON_SETTINGS | cls.accepted_settings)
        problems += [f"{settings.source_of('providers', name, key)}: setting 'providers.{name}.{key}': unknown setting "
                     f"of provider {name!r}{did_you_mean(key, takes)}; it takes {', '.join(takes)}"
                     for key in conf.model_extra if key not in takes]
    return problems


def check_provider_sections(settings: Settings, settings_of: Iterable[str] = (), *,
                            installed_only: bool = False) -> None:
    """Raise :class:`ConfigError` (exit 2) listing every section that names no known provider
    (:func:`section_problems`) and every key of the sections of ``settings_of`` that its provider does not
    take (:func:`setting_problems`)."""
    sections = section_problems(settings)
    keys = setting_problems(settings, settings_of, installed_only=installed_only)
    if sections or keys:
        hint = "; ".join(([SECTIONS_HINT] if sections else []) + ([SETTINGS_HINT] if keys else []))
        raise ConfigError("invalid configuration; nothing was changed:\n  " + "\n  ".join(sections + keys), hint=hint)
