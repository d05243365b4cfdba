"""A storage plugin in miniature: objects in a dict, only the abstract methods of ``Storage``.

Every optional operation (``list_sizes``, ``object_info``, ``copy``, ``location``, ``overlaps`` ...)
is the contract's default, so tests that use it show that a plugin which implements the bare
minimum works everywhere (upload, gc, aliases).
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import PurePosixPath

from limner.storage import ObjectMissing, Storage, StorageError


class MemoryStorage(Storage):
    """Only the abstract methods: every optional operation is ``Storage``'s default."""

    scheme = "memory"

    def __init__(self) -> None:
        self.objects: dict[str, bytes] = {}
        self.lock = threading.Lock()

    @staticmethod
    def _check(key: str) -> str:
        pure = PurePosixPath(key)
        if not key or pure.is_absolute() or ".." in pure.parts or key.endswith("/"):
            raise StorageError(f"invalid storage key {key!r}")
        return key

    def put(self, key: str, data: bytes, *, content_type: str) -> None:
        with self.lock:
            self.objects[self._check(key)] = bytes(data)

    def get(self, key: str) -> bytes:
        with self.lock:
            try:
                return self.objects[self._check(key)]
            except KeyError:
                raise ObjectMissing(f"object {key!r} not found") from None

    def exists(self, key: str) -> bool:
        return self.size(key) is not None

    def size(self, key: str) -> int | None:
        with self.lock:
            data = self.objects.get(self._check(key))
        return None if data is None else len(data)

    def delete(self, key: str) -> None:
        with self.lock:
            self.objects.pop(self._check(key), None)

    def list(self, prefix: str = "") -> Iterator[str]:
        with self.lock:
            keys = sorted(self.objects)
        yield from (k for k in keys if k.startswith(prefix))

    def url(self, key: str) -> str:
        return f"memory://store/{self._check(key)}"

    def __repr__(self) -> str:
        return f"<MemoryStorage at {id(self):#x}>"
