"""Built-in storages, registered through the same hook as any plugin."""

from limner.plugins.hookspecs import hookimpl
from limner.registry import StorageSpec


@hookimpl
def register_storages(register):  # type: ignore[no-untyped-def]
    register(StorageSpec(scheme="file", target="limner.storage.local:LocalStorage", description="A local folder."))
