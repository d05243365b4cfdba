"""The storage contract. Keys are relative POSIX paths; content-addressed keys never change."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterator
from typing import TYPE_CHECKING

from limner.errors import LimnerError

if TYPE_CHECKING:
    from limner.config.settings import Settings

MIME_TYPES = {"png": "image/png", "jpeg": "image/jpeg", "jpg": "image/jpeg", "webp": "image/webp", "avif": "image/avif", "gif": "image/gif"}
EXTENSIONS = {"png": "png", "jpeg": "jpg", "webp": "webp", "avif": "avif", "gif": "gif"}


class StorageError(LimnerError):
    """A storage operation failed. ``retryable`` is true for transient faults."""

    def __init__(self, message: str, *, retryable: bool = False) -> None:
        super().__init__(message)
        self.retryable = retryable


def content_key(kind: str, sha256: str, ext: str) -> str:
    """Content-addressed key, fanned out by the first two hex digits: ``masters/ab/abcdef....png``."""
    return f"{kind}/{sha256[:2]}/{sha256}.{ext}"


class Storage(ABC):
    """Where masters, variants and placeholders live."""

    scheme: str = ""

    @classmethod
    def from_settings(cls, settings: Settings) -> Storage:
        """Build the storage from ``[storage]`` settings (backends reached by URL scheme implement this)."""
        raise NotImplementedError(f"{cls.__name__} cannot be built from settings")

    def check(self) -> None:
        """Fail fast, before any paid work, when the store cannot be written (missing bucket, bad
        credentials). Backends override it; the folder storage needs nothing."""

    @abstractmethod
    def put(self, key: str, data: bytes, *, content_type: str) -> None:
        """Write ``data`` at ``key`` atomically: readers see the old object or the whole new one."""

    @abstractmethod
    def get(self, key: str) -> bytes:
        """Read an object; ``StorageError`` when it is missing."""

    @abstractmethod
    def exists(self, key: str) -> bool: ...

    @abstractmethod
    def size(self, key: str) -> int | None:
        """Size in bytes, or None when the object is missing."""

    @abstractmethod
    def delete(self, key: str) -> None:
        """Delete an object; deleting a missing one is not an error."""

    @abstractmethod
    def list(self, prefix: str = "") -> Iterator[str]:
        """Keys under ``prefix``."""

    @abstractmethod
    def url(self, key: str) -> str:
        """The public URL of an object."""

    def put_if_absent(self, key: str, data: bytes, *, content_type: str) -> bool:
        """Write unless an object of the same size already sits at a content-addressed key."""
        if self.size(key) == len(data):
            return False
        self.put(key, data, content_type=content_type)
        return True

    def __repr__(self) -> str:
        return f"<{type(self).__name__}>"
