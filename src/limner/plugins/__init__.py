"""Plugins: a tiny hookspec (like ``llm``'s) and the plugin manager.

Built-in providers and storages register through the same hooks as third-party
ones: ``limner.providers.builtin`` and ``limner.storage.builtin`` are plugins.
Third-party packages add an entry point in the ``limner`` group; extra modules
can be loaded with ``LIMNER_PLUGINS=module.a,module.b``.
"""

from limner.plugins.hookspecs import hookimpl, hookspec
from limner.plugins.manager import get_plugin_manager, load_plugins

__all__ = ["get_plugin_manager", "hookimpl", "hookspec", "load_plugins"]
