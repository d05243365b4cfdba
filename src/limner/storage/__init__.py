"""Storage for masters and variants: a contract, a local folder backend, and a factory."""

from limner.storage.base import Storage, StorageError, content_key
from limner.storage.factory import open_storage

__all__ = ["Storage", "StorageError", "content_key", "open_storage"]
