"""The storage contract. Keys are relative POSIX paths; content-addressed keys never change.

A backend implements the abstract methods (``put``, ``get``, ``exists``, ``size``, ``delete``,
``list``, ``url``). Every other operation is declared here with a default built on those, in the
manner of fsspec; a backend overrides one where it can do better (a server-side copy, sizes from
the listing, a sha256 from metadata). Callers (``limner upload``, ``limner gc``, aliases) use only
what is declared here, never probe a backend for extra methods.
"""

from __future__ import annotations

import mimetypes
from abc import ABC, abstractmethod
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar

from limner.errors import ConfigError, LimnerError
from limner.keys import content_key
from limner.urls import unsendable_secret

if TYPE_CHECKING:
    from limner.config.settings import Settings

__all__ = ["EXTENSIONS", "MIME_TYPES", "ObjectInfo", "Storage", "StorageError", "UnsupportedOperation", "content_key",
           "content_type_for",
           "refuse_unsendable_credentials"]

MIME_TYPES = {"png": "image/png", "jpeg": "image/jpeg", "jpg": "image/jpeg", "webp": "image/webp", "avif": "image/avif", "gif": "image/gif"}
EXTENSIONS = {"png": "png", "jpeg": "jpg", "webp": "webp", "avif": "avif", "gif": "gif"}


class StorageError(LimnerError):
    """A storage operation failed. ``retryable`` is true for transient faults."""

    def __init__(self, message: str, *, retryable: bool = False) -> None:
        super().__init__(message)
        self.retryable = retryable


class ObjectMissing(StorageError):
    """The object does not exist (``get`` of a key nothing is stored under). Only this says an object is
    gone: any other :class:`StorageError` on a read (a store that cannot be reached, credentials that may
    write but not read) says nothing about whether it is there."""


class UnsupportedOperation(StorageError):
    """The storage cannot do this at all (e.g. sign URLs for a local folder); retrying will not help."""


@dataclass(frozen=True)
class ObjectInfo:
    """What a storage knows about an object without downloading it."""

    size: int
    #: hex sha256 of the bytes, where the storage can tell it cheaply (S3 metadata, a local file); else None
    sha256: str | None = None


def refuse_unsendable_credentials(storage: str, credentials: dict[str, str | None]) -> None:
    """A ``ConfigError`` naming each credential (variable name -> value) that cannot go into a request: a line
    break, a tab or another control character in it (:func:`limner.urls.unsendable_secret`). Called when a
    storage is opened, before any request: otherwise the HTTP library refuses the header and the store reads
    as unreachable (a retryable fault, tried again and again), or its error shows the value."""
    problems = [problem for name, value in credentials.items() if (problem := unsendable_secret(name, value))]
    if problems:
        raise ConfigError(f"cannot use the credentials for {storage}: " + "; ".join(problems))


def content_type_for(key: str) -> str:
    """The MIME type for a key, from its extension (``application/octet-stream`` when unknown)."""
    name = key.rsplit("/", 1)[-1]
    ext = name.rsplit(".", 1)[-1].lower() if "." in name else ""
    return MIME_TYPES.get(ext) or mimetypes.guess_type(name)[0] or "application/octet-stream"


class Storage(ABC):
    """Where masters, variants and placeholders live."""

    scheme: ClassVar[str] = ""
    #: ``put`` checks the stored object (size, and a hash where it can) before it returns, so callers
    #: need not read it back
    verifies_writes: ClassVar[bool] = False
    #: ``list_sizes`` takes the sizes from the listing itself, not one request per object
    sizes_in_listing: ClassVar[bool] = False

    @classmethod
    def from_settings(cls, settings: Settings) -> Storage:
        """Build the storage from ``[storage]`` settings (backends reached by URL scheme implement this)."""
        raise NotImplementedError(f"{cls.__name__} cannot be built from settings")

    # ------------------------------------------------------------------ required
    @abstractmethod
    def put(self, key: str, data: bytes, *, content_type: str) -> None:
        """Write ``data`` at ``key`` atomically: readers see the old object or the whole new one."""

    @abstractmethod
    def get(self, key: str) -> bytes:
        """Read an object; :class:`ObjectMissing` when it does not exist, another ``StorageError`` when it
        cannot be read."""

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

    # ------------------------------------------------------------------ optional, with defaults
    def check(self) -> None:
        """Fail fast, before any paid work, when the store cannot be written (missing bucket, bad
        credentials). Default: nothing to check."""

    def check_readable(self) -> None:
        """Fail (``StorageError``, naming the place) when there is no store to read from at all, where a listing
        would find nothing rather than fail: a folder that does not exist, or is a file. Changes nothing. Called
        on the source of a copy (``limner upload``), so that a mistyped source is an error, not zero objects
        copied. Default: nothing to check (a missing bucket fails its first listing)."""

    def put_if_absent(self, key: str, data: bytes, *, content_type: str) -> bool:
        """Write unless an object of the same size already sits at a content-addressed key.
        Returns whether it wrote. Backends that can compare hashes cheaply override it."""
        if self.size(key) == len(data):
            return False
        self.put(key, data, content_type=content_type)
        return True

    def list_sizes(self, prefix: str = "") -> Iterator[tuple[str, int]]:
        """``(key, size in bytes)`` of every object under ``prefix``.

        Default: ``list`` then ``size`` per key (objects deleted in between are left out). Backends
        whose listing carries sizes override it and set ``sizes_in_listing``."""
        for key in self.list(prefix):
            size = self.size(key)
            if size is not None:
                yield key, size

    def object_info(self, key: str) -> ObjectInfo | None:
        """Size (and sha256 where known without a download) of an object; None when it is missing.

        Default: ``size`` only. Backends that keep a hash (S3 metadata) or can compute one cheaply
        (a local file) override it."""
        size = self.size(key)
        return None if size is None else ObjectInfo(size)

    def copy(self, src_key: str, dst_key: str, *, cache_control: str | None = None) -> None:
        """Make ``dst_key`` hold the bytes of ``src_key``, replacing it in one step (readers of
        ``dst_key`` see the old object or the whole new one); ``StorageError`` when ``src_key`` is missing.

        ``cache_control`` is the copy's ``Cache-Control`` header, for backends that serve objects with
        HTTP headers. Default: ``get`` then ``put`` (atomic), with the content type from the key's
        extension; it sets no headers. Backends with a server-side copy override it."""
        data = self.get(src_key)
        self.put(dst_key, data, content_type=content_type_for(src_key))

    @property
    def location(self) -> str:
        """A short, secret-free description of where the objects are (a folder, ``s3://bucket/prefix``),
        for messages and JSON. Default: ``repr(self)``."""
        return repr(self)

    def overlaps(self, other: Storage) -> bool:
        """Whether ``other`` may hold the same objects (the same place, or one inside the other), so
        copying between the two is refused. Default: the same class at the same ``location``."""
        return type(self) is type(other) and self.location == other.location

    def signed_url(self, key: str, expires_in: int = 3600) -> str:
        """A URL that reads the object for ``expires_in`` seconds without credentials (private buckets).

        Default: ``UnsupportedOperation``; backends that can sign URLs override it."""
        raise UnsupportedOperation(f"{self.location} cannot make signed URLs")

    def partial_writes(self, older_than_s: float) -> Iterator[tuple[str, int]]:
        """What interrupted writes left behind, as ``(name, size)``: never an object, never in :meth:`list`
        (a folder's ``.tmp-`` files a killed process did not rename). Only those untouched for ``older_than_s``
        seconds: a live process may be writing the newer ones. Default: none (a store whose writes leave
        nothing half-done)."""
        return iter(())

    def delete_partial_write(self, name: str) -> None:
        """Remove one name :meth:`partial_writes` gave. Default: ``UnsupportedOperation`` (it gives none)."""
        raise UnsupportedOperation(f"{self.location} keeps no partial writes")

    def close(self) -> None:
        """Release connections and other resources. Default: nothing to release. Safe to call twice."""

    def __repr__(self) -> str:
        return f"<{type(self).__name__}>"
