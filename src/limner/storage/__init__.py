"""Storage for masters and variants: a contract, a local folder backend, and a factory."""

from limner.storage.base import ObjectInfo, ObjectMissing, Storage, StorageError, UnsupportedOperation, content_key
from limner.storage.factory import open_storage

__all__ = ["ObjectInfo", "ObjectMissing", "Storage", "StorageError", "UnsupportedOperation", "content_key", "open_storage"]
