"""The hooks a Limner plugin may implement. Each receives a ``register`` callback."""

from __future__ import annotations

import pluggy

hookspec = pluggy.HookspecMarker("limner")
hookimpl = pluggy.HookimplMarker("limner")


@hookspec
def register_providers(register):  # type: ignore[no-untyped-def]
    """Register providers: ``register(ProviderSpec(...))``."""


@hookspec
def register_storages(register):  # type: ignore[no-untyped-def]
    """Register storages: ``register(StorageSpec(...))``."""
