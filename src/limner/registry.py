"""Registries of providers and storages, filled by plugin hooks and imported lazily.

A spec names its implementation as ``"module:Class"`` so optional dependencies
are imported only when the backend is used; a missing one gives an install hint
such as ``pip install 'limner[replicate]'``.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Any

from limner.errors import ConfigError, LimnerError, did_you_mean


@dataclass(frozen=True)
class ProviderSpec:
    name: str
    target: str  # "module:Class"
    description: str = ""
    #: the pip extra that brings its dependencies, for the install hint
    extra: str | None = None
    #: names of the environment variables (secrets, endpoints) it reads; listed in .env.example
    env: tuple[str, ...] = ()


@dataclass(frozen=True)
class StorageSpec:
    scheme: str
    target: str
    description: str = ""
    extra: str | None = None


_providers: dict[str, ProviderSpec] | None = None
_storages: dict[str, StorageSpec] | None = None


def reset_caches() -> None:
    global _providers, _storages
    _providers = None
    _storages = None


def _collect(hook_name: str, key: str) -> dict[str, Any]:
    from limner.plugins import get_plugin_manager

    found: dict[str, Any] = {}

    def register(spec: Any) -> None:
        found[getattr(spec, key)] = spec

    getattr(get_plugin_manager().hook, hook_name)(register=register)
    return found


def provider_specs() -> dict[str, ProviderSpec]:
    global _providers
    if _providers is None:
        _providers = _collect("register_providers", "name")
    return _providers


def storage_specs() -> dict[str, StorageSpec]:
    global _storages
    if _storages is None:
        _storages = _collect("register_storages", "scheme")
    return _storages


def load_target(target: str, *, what: str, name: str, extra: str | None) -> Any:
    module_name, _, attr = target.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        hint = f"pip install 'limner[{extra}]'" if extra else None
        raise LimnerError(f"{what} {name!r} needs a package that is not installed ({exc.name})", hint=hint) from None
    return getattr(module, attr)


#: the hint that goes with :func:`unknown_provider`'s message
UNKNOWN_PROVIDER_HINT = "run `limner providers` to list them"


def unknown_provider(name: str) -> str | None:
    """The message for a provider name that no plugin registers (``unknown provider 'x' (did you mean
    ...?); available: ...``), or ``None`` for a known name. Callers that know where the name came from
    (a catalogue entry, a style, a setting, an option) put that in front of it."""
    specs = provider_specs()
    if name in specs:
        return None
    return f"unknown provider {name!r}{did_you_mean(name, specs)}; available: {', '.join(sorted(specs))}"


def provider_class(name: str) -> Any:
    message = unknown_provider(name)
    if message is not None:
        raise ConfigError(message, hint=UNKNOWN_PROVIDER_HINT)
    spec = provider_specs()[name]
    return load_target(spec.target, what="provider", name=name, extra=spec.extra)


def storage_class(scheme: str) -> Any:
    specs = storage_specs()
    if scheme not in specs:
        raise ConfigError(f"unknown storage scheme {scheme + '://'!r}{did_you_mean(scheme, specs)}; "
                          f"available: {', '.join(s + '://' for s in sorted(specs))}")
    spec = specs[scheme]
    return load_target(spec.target, what="storage", name=scheme, extra=spec.extra)
