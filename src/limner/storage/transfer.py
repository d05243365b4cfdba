"""Copy objects from one storage to another (``limner upload``): resumable, idempotent, verified.

Keys are the same on both sides, so the state database stays valid: after a copy, point
``[storage] url`` at the new store. An object already at the destination with the same size
and the same sha256 (where the destination can tell it cheaply: ``Storage.object_info``) is
skipped, so a run killed at any moment and started again copies only what is not there yet.
Every write is checked afterwards (size, and sha256 where known) unless the destination
``verifies_writes`` itself; a source object whose bytes do not match the sha256 its key or the
database records is reported, never copied. Only operations the ``Storage`` contract declares
are used, so any storage plugin works on either side.
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from limner.errors import ConfigError
from limner.keys import content_sha256
from limner.storage.base import Storage, StorageError, content_type_for

if TYPE_CHECKING:
    from limner.config.settings import Settings



@dataclass
class TransferResult:
    objects: int = 0
    copied: int = 0
    skipped: int = 0
    failed: int = 0
    bytes: int = 0
    failures: list[dict[str, str]] = field(default_factory=list)

    def to_dict(self) -> dict[str, object]:
        return {"objects": self.objects, "copied": self.copied, "skipped": self.skipped, "failed": self.failed,
                "bytes": self.bytes, "failures": self.failures}


def open_storage_at(settings: Settings, url: str, *, endpoint_url: str | None = None, region: str | None = None) -> Storage:
    """The storage at ``url`` (a folder, ``file://`` or ``s3://...``), with the project's other ``[storage]``
    settings (endpoint, region) unless overridden. Relative folders are relative to the project."""
    from limner.storage.factory import open_storage

    if not url:
        raise ConfigError("empty storage URL")
    update: dict[str, object] = {"url": url}
    if endpoint_url is not None:
        update["endpoint_url"] = endpoint_url or None
    if region is not None:
        update["region"] = region or None
    storage_settings = settings.storage.model_copy(update=update)
    return open_storage(settings.model_copy(update={"storage": storage_settings}))


def expected_sha256(key: str, recorded: Mapping[str, str] | None = None) -> str | None:
    """The sha256 an object must have: recorded in the database, or its content-addressed name."""
    if recorded and key in recorded:
        return recorded[key]
    return content_sha256(key)


def cheap_sha256(storage: Storage, key: str) -> str | None:
    """An object's sha256 when the storage can tell it without a download (``Storage.object_info``)."""
    info = storage.object_info(key)
    return info.sha256 if info else None


def same_place(a: Storage, b: Storage) -> bool:
    """Whether the two storages may share objects (``Storage.overlaps``, asked both ways)."""
    return a.overlaps(b) or b.overlaps(a)


def refuse_overlap(src: Storage, dst: Storage) -> None:
    """A ``ConfigError`` when a copy from ``src`` to ``dst`` could read what it writes (:func:`same_place`)."""
    if same_place(src, dst):
        raise ConfigError(f"the source and the destination overlap: {src!r} and {dst!r}")


def list_with_sizes(storage: Storage, prefix: str = "") -> Iterable[tuple[str, int | None]]:
    """``(key, size)`` pairs: the sizes where the listing carries them (``sizes_in_listing``), else
    ``(key, None)``: one request per object only when an object is actually needed."""
    if storage.sizes_in_listing:
        yield from storage.list_sizes(prefix)
        return
    for key in storage.list(prefix):
        yield key, None


ProgressFn = Callable[[str, str, int], None]  # (key, "copied" | "skipped" | "failed", bytes)


_UNKNOWN = -1


def copy_object(src: Storage, dst: Storage, key: str, *, size: int | None = None, recorded: Mapping[str, str] | None = None,
                dst_size: int | None = _UNKNOWN) -> tuple[str, int]:
    """Copy one object unless the destination already holds it. Returns ("copied" | "skipped", bytes copied).

    ``dst_size`` is the destination's size from a listing made beforehand (None: absent), to spare a request."""
    if size is None:
        size = src.size(key)
        if size is None:
            raise StorageError(f"{key!r} is missing from the source")
    want = expected_sha256(key, recorded)
    if dst_size is None or (dst_size != _UNKNOWN and dst_size != size):
        have = None
    else:
        have = dst.object_info(key)
    if have is not None and have.size == size:
        if have.sha256 is None:
            return "skipped", 0  # same size and nothing cheaper to compare: trusted, as put_if_absent does
        if want is None:
            want = cheap_sha256(src, key)
        if want is None or have.sha256 == want:
            return "skipped", 0
    data = src.get(key)
    sha = hashlib.sha256(data).hexdigest()
    if want is not None and sha != want:
        raise StorageError(f"source object {key!r} does not match its sha256 (expected {want[:12]}..., read {sha[:12]}...); "
                           "not copied")
    dst.put(key, data, content_type=content_type_for(key))
    if not dst.verifies_writes:  # e.g. S3Storage.put checks size and hashes itself
        after = dst.object_info(key)
        if after is None or after.size != len(data):
            raise StorageError(f"{key!r} was written but the destination holds {after.size if after else 'nothing'}, "
                               f"not {len(data)} bytes")
        if after.sha256 is not None and after.sha256 != sha:
            raise StorageError(f"{key!r} was written but the destination's copy has another sha256")
    return "copied", len(data)


def copy_objects(src: Storage, dst: Storage, items: Iterable[tuple[str, int | None]], *, recorded: Mapping[str, str] | None = None,
                 jobs: int = 8, on_progress: ProgressFn | None = None, stop: threading.Event | None = None) -> TransferResult:
    """Copy ``(key, size)`` items with ``jobs`` threads; failures are collected, never raised."""
    refuse_overlap(src, dst)
    items = list(items)
    result = TransferResult(objects=len(items))
    # one listing of the destination spares a request per object that is not there yet
    listed: dict[str, int | None] | None = None
    if dst.sizes_in_listing and items:
        listed = dict(dst.list_sizes())
    lock = threading.Lock()

    def one(item: tuple[str, int | None]) -> None:
        key, size = item
        if stop is not None and stop.is_set():
            return
        try:
            known = _UNKNOWN if listed is None else listed.get(key)
            outcome, n = copy_object(src, dst, key, size=size, recorded=recorded, dst_size=known)
        except Exception as exc:  # noqa: BLE001 - one object's failure never stops the others
            outcome, n = "failed", 0
            message = str(exc) if isinstance(exc, StorageError) else f"{type(exc).__name__}: {exc}"
            with lock:
                result.failures.append({"key": key, "error": message})
        with lock:
            setattr(result, outcome, getattr(result, outcome) + 1)
            result.bytes += n
        if on_progress is not None:
            on_progress(key, outcome, n)

    stop = stop or threading.Event()
    pool = ThreadPoolExecutor(max_workers=max(1, jobs), thread_name_prefix="limner-upload")
    try:
        for future in [pool.submit(one, item) for item in items]:
            future.result()
    except BaseException:  # Ctrl-C: finish the objects in flight (each is atomic), start no more
        stop.set()
        pool.shutdown(wait=True, cancel_futures=True)
        raise
    pool.shutdown(wait=True)
    result.failures.sort(key=lambda f: f["key"])
    return result


def describe(storage: Storage) -> str:
    """A short, secret-free name for messages and JSON (``Storage.location``)."""
    return storage.location

