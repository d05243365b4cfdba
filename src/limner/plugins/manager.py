"""Create the plugin manager: built-ins first, then entry points, then ``LIMNER_PLUGINS``."""

from __future__ import annotations

import importlib
import os
from collections.abc import Iterable

import pluggy

from limner.errors import PluginError
from limner.plugins import hookspecs

BUILTIN_PLUGINS = ("limner.providers.builtin", "limner.storage.builtin")

_pm: pluggy.PluginManager | None = None


def get_plugin_manager() -> pluggy.PluginManager:
    global _pm
    if _pm is None:
        pm = pluggy.PluginManager("limner")
        pm.add_hookspecs(hookspecs)
        for name in BUILTIN_PLUGINS:
            pm.register(importlib.import_module(name), name=name.rsplit(".", 2)[-2] + "_builtin")
        _load_entry_points(pm)
        _pm = pm
        load_plugins(p for p in os.environ.get("LIMNER_PLUGINS", "").split(",") if p.strip())
    return _pm


def _load_entry_points(pm: pluggy.PluginManager) -> None:
    """Third-party plugins from the ``limner`` entry-point group."""
    from importlib.metadata import entry_points

    for ep in entry_points(group="limner"):
        if pm.has_plugin(ep.name) or pm.is_blocked(ep.name):
            continue
        try:
            plugin = ep.load()
            if not pm.is_registered(plugin):
                pm.register(plugin, name=ep.name)
        except Exception as exc:  # noqa: BLE001 - whatever a plugin raises, the user is told which plugin and why
            _forget(pm, ep.name)
            raise PluginError(f"cannot load plugin {ep.name!r} ({ep.value}): {_why(exc)}") from None


def load_plugins(modules: Iterable[str]) -> None:
    """Load extra plugin modules by import path (idempotent)."""
    pm = get_plugin_manager()
    for module_name in modules:
        module_name = module_name.strip()
        if pm.has_plugin(module_name):
            continue
        try:
            module = importlib.import_module(module_name)
            pm.register(module, name=module_name)
        except Exception as exc:  # noqa: BLE001 - whatever a plugin raises, the user is told which plugin and why
            _forget(pm, module_name)
            raise PluginError(f"cannot load plugin {module_name!r}: {_why(exc)}") from None
    from limner.registry import reset_caches

    reset_caches()


def _why(exc: Exception) -> str:
    """Why a plugin did not load: an ImportError's own message (``No module named 'x'``); any other error (the
    module raised on import, a hook implementation pluggy refuses) with its type, and a syntax error's place."""
    if isinstance(exc, SyntaxError):  # also IndentationError
        where = f"{exc.filename}:{exc.lineno}: " if exc.filename and exc.lineno else ""
        return f"{where}{type(exc).__name__}: {exc.msg}"
    if isinstance(exc, ImportError):
        return str(exc)
    return f"{type(exc).__name__}: " + "; ".join(line.strip() for line in str(exc).splitlines() if line.strip())


def _forget(pm: pluggy.PluginManager, name: str) -> None:
    """Leave no half-registered plugin behind (older pluggy registers the name before checking its hooks), so
    loading it again reports it again rather than taking it as loaded."""
    if pm.has_plugin(name):
        pm.unregister(name=name)
