"""The storage contract, as tests any storage backend can rerun (Limner's own and plugins').

Use it like fsspec's abstract test classes: subclass :class:`StorageSuite` in a test module and
provide a ``storage`` fixture that returns a fresh, empty :class:`limner.storage.Storage`::

    import pytest

    pytest.register_assert_rewrite("limner.testing.storage_suite")  # detailed assert messages; optional

    from limner.testing.storage_suite import StorageSuite


    class TestMyStorage(StorageSuite):
        @pytest.fixture
        def storage(self, tmp_path):
            s = MyStorage(...)
            yield s
            s.close()

The class name does not start with ``Test`` so pytest does not collect it on its own. Every
operation of the contract is exercised: the required ones, and each optional one both as the
backend has it (its override, if any) and as ``Storage`` defines it by default, so an override
must agree with the generic definition. Keep every test quick: remote backends run them against
emulators. This module needs pytest; ``import limner.testing`` does not import it.
"""

from __future__ import annotations

import hashlib
import threading
from pathlib import Path

import pytest

from limner.errors import LimnerError
from limner.storage import ObjectInfo, ObjectMissing, Storage, StorageError, UnsupportedOperation, content_key
from limner.storage.local import LocalStorage

__all__ = ["BLOB", "OPTIONAL_OPERATIONS", "PNG", "StorageSuite"]

PNG = "image/png"
BLOB = bytes(range(256)) * 16  # every byte value, 4 KiB

#: the operations ``Storage`` declares with a default; the suite tests each, default and override
OPTIONAL_OPERATIONS = ("check", "check_readable", "put_if_absent", "list_sizes", "object_info", "copy", "location", "overlaps", "signed_url",
                       "partial_writes", "delete_partial_write", "close", "verifies_writes", "sizes_in_listing")


class StorageSuite:
    """Contract tests for :class:`limner.storage.Storage`. Subclasses provide the ``storage`` fixture."""

    # ------------------------------------------------------------------ round trips
    def test_is_a_storage(self, storage: Storage) -> None:
        assert isinstance(storage, Storage)
        assert isinstance(repr(storage), str)

    def test_put_get_round_trip(self, storage: Storage) -> None:
        storage.put("masters/ab/blob.bin", BLOB, content_type="application/octet-stream")
        assert storage.get("masters/ab/blob.bin") == BLOB
        assert storage.exists("masters/ab/blob.bin")
        assert storage.size("masters/ab/blob.bin") == len(BLOB)

    def test_empty_object(self, storage: Storage) -> None:
        storage.put("empty.bin", b"", content_type="application/octet-stream")
        assert storage.exists("empty.bin")
        assert storage.get("empty.bin") == b""
        assert storage.size("empty.bin") == 0

    def test_nested_keys(self, storage: Storage) -> None:
        keys = ["a.png", "a/b.png", "a/b/c.png", "a/b/c/d/e/f.png"]
        for i, key in enumerate(keys):
            storage.put(key, f"data-{i}".encode(), content_type=PNG)
        for i, key in enumerate(keys):
            assert storage.get(key) == f"data-{i}".encode()
        assert sorted(storage.list()) == sorted(keys)

    def test_keys_are_distinct(self, storage: Storage) -> None:
        storage.put("x/one.webp", b"1", content_type="image/webp")
        storage.put("x/one.png", b"2", content_type=PNG)
        storage.put("x/one", b"3", content_type=PNG)
        assert storage.get("x/one.webp") == b"1"
        assert storage.get("x/one.png") == b"2"
        assert storage.get("x/one") == b"3"
        assert sorted(storage.list("x/")) == ["x/one", "x/one.png", "x/one.webp"]

    # ------------------------------------------------------------------ overwrite
    def test_overwrite_replaces_content(self, storage: Storage) -> None:
        storage.put("k/obj.bin", b"first version, longer than the second", content_type=PNG)
        storage.put("k/obj.bin", b"second", content_type=PNG)
        assert storage.get("k/obj.bin") == b"second"
        assert storage.size("k/obj.bin") == len(b"second")
        assert list(storage.list()) == ["k/obj.bin"]  # no temporary objects are visible

    def test_overwrite_is_atomic_for_readers(self, storage: Storage) -> None:
        key = "atomic/obj.bin"
        a, b = b"A" * 65536, b"B" * 131072
        storage.put(key, a, content_type=PNG)
        stop = threading.Event()
        errors: list[str] = []
        seen: set[bytes] = set()

        def reader() -> None:
            while not stop.is_set():
                try:
                    data = storage.get(key)
                except StorageError as exc:  # the object must never be missing mid-overwrite
                    errors.append(f"missing during overwrite: {exc}")
                    return
                if data not in (a, b):
                    errors.append(f"partial read: {len(data)} bytes")
                    return
                seen.add(data[:1])

        t = threading.Thread(target=reader)
        t.start()
        try:
            for i in range(30):
                storage.put(key, b if i % 2 == 0 else a, content_type=PNG)
        finally:
            stop.set()
            t.join(timeout=10)
        assert not errors, errors
        assert seen  # the reader did read
        assert storage.get(key) == a  # the last write wins
        assert list(storage.list("atomic/")) == [key]

    # ------------------------------------------------------------------ exists / size / delete
    def test_missing_object(self, storage: Storage) -> None:
        assert not storage.exists("nope/x.png")
        assert storage.size("nope/x.png") is None
        with pytest.raises(ObjectMissing) as info:  # missing, and said so: not any read error
            storage.get("nope/x.png")
        assert isinstance(info.value, LimnerError)
        assert not info.value.retryable
        assert "nope/x.png" in str(info.value)

    def test_delete(self, storage: Storage) -> None:
        storage.put("d/x.png", b"x", content_type=PNG)
        storage.put("d/y.png", b"y", content_type=PNG)
        storage.delete("d/x.png")
        assert not storage.exists("d/x.png")
        assert storage.size("d/x.png") is None
        with pytest.raises(ObjectMissing):
            storage.get("d/x.png")
        assert storage.get("d/y.png") == b"y"
        assert list(storage.list()) == ["d/y.png"]

    def test_delete_missing_is_fine(self, storage: Storage) -> None:
        storage.delete("never/was.png")
        storage.put("once.png", b"1", content_type=PNG)
        storage.delete("once.png")
        storage.delete("once.png")
        assert not storage.exists("once.png")

    def test_a_prefix_is_not_an_object(self, storage: Storage) -> None:
        storage.put("dir/sub/file.png", b"x", content_type=PNG)
        assert not storage.exists("dir")
        assert not storage.exists("dir/sub")
        assert storage.size("dir/sub") is None
        with pytest.raises(ObjectMissing):
            storage.get("dir/sub")

    def test_below_an_object_is_missing(self, storage: Storage) -> None:
        storage.put("leaf.png", b"x", content_type=PNG)
        assert not storage.exists("leaf.png/child.png")
        assert storage.size("leaf.png/child.png") is None
        storage.delete("leaf.png/child.png")
        assert storage.get("leaf.png") == b"x"

    # ------------------------------------------------------------------ list
    def test_list_empty(self, storage: Storage) -> None:
        assert list(storage.list()) == []
        assert list(storage.list("masters/")) == []

    def test_list_with_prefix(self, storage: Storage) -> None:
        keys = ["masters/aa/1.png", "masters/bb/2.png", "variants/aa/1-480.webp", "manifest.json", "masters-old/3.png"]
        for key in keys:
            storage.put(key, key.encode(), content_type=PNG)
        assert sorted(storage.list()) == sorted(keys)
        assert sorted(storage.list("")) == sorted(keys)
        assert sorted(storage.list("masters/")) == ["masters/aa/1.png", "masters/bb/2.png"]
        assert sorted(storage.list("masters")) == ["masters-old/3.png", "masters/aa/1.png", "masters/bb/2.png"]
        assert list(storage.list("variants/aa/")) == ["variants/aa/1-480.webp"]
        assert list(storage.list("manifest")) == ["manifest.json"]
        assert list(storage.list("nothing/")) == []

    def test_list_gives_keys_not_paths(self, storage: Storage) -> None:
        storage.put("p/q/r.png", b"x", content_type=PNG)
        (key,) = list(storage.list())
        assert key == "p/q/r.png"
        assert storage.get(key) == b"x"

    # ------------------------------------------------------------------ keys
    @pytest.mark.parametrize("key", ["../x.png", "a/../../x.png", "a/../b.png", "/etc/passwd", "/abs/x.png", "", ".."])
    def test_invalid_keys_are_rejected(self, storage: Storage, key: str) -> None:
        with pytest.raises(StorageError):
            storage.put(key, b"x", content_type=PNG)
        with pytest.raises(StorageError):
            storage.get(key)
        with pytest.raises(StorageError):
            storage.delete(key)
        assert list(storage.list()) == []

    def test_content_key_layout(self, storage: Storage) -> None:
        sha = hashlib.sha256(b"image").hexdigest()
        key = content_key("masters", sha, "png")
        assert key == f"masters/{sha[:2]}/{sha}.png"
        assert content_key("variants", sha, "webp").startswith(f"variants/{sha[:2]}/")
        storage.put(key, b"image", content_type=PNG)
        assert list(storage.list(f"masters/{sha[:2]}/")) == [key]

    # ------------------------------------------------------------------ put_if_absent
    def test_put_if_absent(self, storage: Storage) -> None:
        sha = hashlib.sha256(BLOB).hexdigest()
        key = content_key("masters", sha, "png")
        assert storage.put_if_absent(key, BLOB, content_type=PNG) is True
        assert storage.put_if_absent(key, BLOB, content_type=PNG) is False
        assert storage.get(key) == BLOB
        assert list(storage.list()) == [key]

    def test_put_if_absent_repairs_a_truncated_object(self, storage: Storage) -> None:
        storage.put("masters/aa/x.png", BLOB[:10], content_type=PNG)
        assert storage.put_if_absent("masters/aa/x.png", BLOB, content_type=PNG) is True
        assert storage.get("masters/aa/x.png") == BLOB

    # ------------------------------------------------------------------ urls
    def test_url_contains_the_key(self, storage: Storage) -> None:
        sha = "ab" + "0" * 62
        key = content_key("variants", sha, "webp")
        storage.put(key, b"x", content_type="image/webp")
        url = storage.url(key)
        assert isinstance(url, str)
        assert url.endswith(key)
        assert "://" in url
        assert storage.url("masters/aa/a.png") != storage.url("masters/aa/b.png")

    # ------------------------------------------------------------------ check
    def test_check(self, storage: Storage) -> None:
        storage.check()  # an empty, writable store passes, and the check leaves nothing behind
        storage.check()
        assert list(storage.list()) == []
        Storage.check(storage)  # the default checks nothing

    def test_check_readable(self, storage: Storage) -> None:
        storage.put("masters/ab/blob.bin", BLOB, content_type="application/octet-stream")
        storage.check_readable()  # a store that holds objects can be read from; the check writes nothing
        assert list(storage.list()) == ["masters/ab/blob.bin"]
        Storage.check_readable(storage)  # the default checks nothing

    def test_put_if_absent_default(self, storage: Storage) -> None:
        key = content_key("masters", hashlib.sha256(BLOB).hexdigest(), "png")
        assert Storage.put_if_absent(storage, key, BLOB, content_type=PNG) is True
        assert Storage.put_if_absent(storage, key, BLOB, content_type=PNG) is False
        assert storage.put_if_absent(key, BLOB, content_type=PNG) is False  # the override agrees
        assert storage.get(key) == BLOB

    # ------------------------------------------------------------------ list_sizes
    def test_list_sizes(self, storage: Storage) -> None:
        objects = {"masters/aa/1.png": b"1", "masters/bb/2.png": b"22" * 100, "variants/aa/x.webp": b"", "manifest.json": b"{}"}
        for key, data in objects.items():
            storage.put(key, data, content_type=PNG)
        sizes = dict(storage.list_sizes())
        assert sizes == {k: len(v) for k, v in objects.items()}
        assert dict(storage.list_sizes("")) == sizes
        assert dict(storage.list_sizes("masters/")) == {"masters/aa/1.png": 1, "masters/bb/2.png": 200}
        assert list(storage.list_sizes("nothing/")) == []
        assert all(isinstance(size, int) for size in sizes.values())
        assert sorted(sizes) == sorted(storage.list())  # the same keys as list()

    def test_list_sizes_agrees_with_the_default(self, storage: Storage) -> None:
        for i in range(5):
            storage.put(f"placeholders/a{i}/x.webp", b"p" * (i * 37), content_type="image/webp")
        storage.put("notes.txt", b"n", content_type="text/plain")
        for prefix in ("", "placeholders/", "placeholders/a3", "notes"):
            assert sorted(storage.list_sizes(prefix)) == sorted(Storage.list_sizes(storage, prefix)), prefix

    def test_sizes_in_listing_is_declared(self, storage: Storage) -> None:
        assert isinstance(type(storage).sizes_in_listing, bool)
        assert Storage.sizes_in_listing is False  # the default list_sizes asks size() per object
        if type(storage).list_sizes is Storage.list_sizes:
            assert not storage.sizes_in_listing, "the default list_sizes makes one size() call per object"

    # ------------------------------------------------------------------ object_info
    def test_object_info(self, storage: Storage) -> None:
        assert storage.object_info("nope/x.png") is None
        storage.put("masters/aa/x.png", BLOB, content_type=PNG)
        info = storage.object_info("masters/aa/x.png")
        assert isinstance(info, ObjectInfo)
        assert info.size == len(BLOB)
        assert info.sha256 in (None, hashlib.sha256(BLOB).hexdigest())  # a hash, when given, is the right one
        storage.put("masters/aa/x.png", b"short", content_type=PNG)
        after = storage.object_info("masters/aa/x.png")
        assert after is not None and after.size == 5
        assert after.sha256 in (None, hashlib.sha256(b"short").hexdigest())
        storage.put("dir/sub/file.png", b"x", content_type=PNG)
        assert storage.object_info("dir/sub") is None  # a prefix is not an object

    def test_object_info_agrees_with_the_default(self, storage: Storage) -> None:
        assert Storage.object_info(storage, "nope/x.png") is None
        storage.put("variants/aa/y.webp", BLOB, content_type="image/webp")
        default = Storage.object_info(storage, "variants/aa/y.webp")
        assert default == ObjectInfo(len(BLOB))
        override = storage.object_info("variants/aa/y.webp")
        assert override is not None and override.size == default.size

    # ------------------------------------------------------------------ copy
    def test_copy(self, storage: Storage) -> None:
        storage.put("variants/aa/a.jpg", BLOB, content_type="image/jpeg")
        storage.copy("variants/aa/a.jpg", "events/e.jpg")
        assert storage.get("events/e.jpg") == BLOB
        assert storage.get("variants/aa/a.jpg") == BLOB  # the source stays
        storage.put("variants/bb/b.jpg", b"second image", content_type="image/jpeg")
        storage.copy("variants/bb/b.jpg", "events/e.jpg", cache_control="max-age=300")  # replaces the copy
        assert storage.get("events/e.jpg") == b"second image"
        assert storage.size("events/e.jpg") == len(b"second image")
        assert sorted(storage.list("events/")) == ["events/e.jpg"]  # no temporary objects are visible

    def test_copy_of_a_missing_object_fails_and_leaves_the_target(self, storage: Storage) -> None:
        storage.put("events/e.jpg", b"old", content_type="image/jpeg")
        for copy in (storage.copy, lambda src, dst: Storage.copy(storage, src, dst)):
            with pytest.raises(StorageError):
                copy("variants/none.jpg", "events/e.jpg")
            assert storage.get("events/e.jpg") == b"old"

    def test_copy_agrees_with_the_default(self, storage: Storage) -> None:
        storage.put("variants/aa/a.webp", BLOB, content_type="image/webp")
        Storage.copy(storage, "variants/aa/a.webp", "events/default.webp", cache_control="max-age=300")
        storage.copy("variants/aa/a.webp", "events/override.webp", cache_control="max-age=300")
        assert storage.get("events/default.webp") == storage.get("events/override.webp") == BLOB

    def test_copy_is_atomic_for_readers(self, storage: Storage) -> None:
        a, b = b"A" * 65536, b"B" * 131072
        storage.put("variants/a.jpg", a, content_type="image/jpeg")
        storage.put("variants/b.jpg", b, content_type="image/jpeg")
        storage.copy("variants/a.jpg", "events/x.jpg")
        stop = threading.Event()
        errors: list[str] = []

        def reader() -> None:
            while not stop.is_set():
                try:
                    data = storage.get("events/x.jpg")
                except StorageError as exc:  # the alias must never be missing mid-copy
                    errors.append(f"missing during copy: {exc}")
                    return
                if data not in (a, b):
                    errors.append(f"partial read: {len(data)} bytes")
                    return

        t = threading.Thread(target=reader)
        t.start()
        try:
            for i in range(10):
                storage.copy("variants/b.jpg" if i % 2 == 0 else "variants/a.jpg", "events/x.jpg")
        finally:
            stop.set()
            t.join(timeout=10)
        assert not errors, errors
        assert storage.get("events/x.jpg") == a  # the last copy wins

    # ------------------------------------------------------------------ location and overlaps
    def test_location(self, storage: Storage) -> None:
        where = storage.location
        assert isinstance(where, str) and where
        assert where == storage.location  # stable
        assert isinstance(Storage.location.fget(storage), str)  # type: ignore[attr-defined]

    def test_overlaps(self, storage: Storage, tmp_path: Path) -> None:
        assert storage.overlaps(storage)
        assert Storage.overlaps(storage, storage)
        elsewhere = LocalStorage(tmp_path / "limner-suite-elsewhere")
        assert not storage.overlaps(elsewhere)
        assert not elsewhere.overlaps(storage)
        assert not Storage.overlaps(storage, elsewhere)

    # ------------------------------------------------------------------ signed URLs
    def test_signed_url(self, storage: Storage) -> None:
        storage.put("masters/aa/private.png", b"x", content_type=PNG)
        with pytest.raises(UnsupportedOperation):
            Storage.signed_url(storage, "masters/aa/private.png")
        if type(storage).signed_url is Storage.signed_url:
            with pytest.raises(UnsupportedOperation) as info:
                storage.signed_url("masters/aa/private.png", expires_in=60)
            assert isinstance(info.value, StorageError) and not info.value.retryable
            return
        url = storage.signed_url("masters/aa/private.png", expires_in=60)
        assert isinstance(url, str) and "://" in url
        with pytest.raises(StorageError):
            storage.signed_url("masters/aa/private.png", expires_in=0)

    # ------------------------------------------------------------------ flags and close
    def test_verifies_writes_is_declared(self, storage: Storage) -> None:
        assert isinstance(type(storage).verifies_writes, bool)
        assert Storage.verifies_writes is False

    def test_partial_writes_never_name_an_object(self, storage: Storage) -> None:
        storage.put("masters/aa/x.png", BLOB, content_type=PNG)
        storage.put("variants/x-640.webp", b"v", content_type="image/webp")
        found = list(storage.partial_writes(0))
        assert all(isinstance(name, str) and isinstance(size, int) for name, size in found)
        assert not {name for name, _size in found} & set(storage.list())
        assert list(Storage.partial_writes(storage, 0)) == []  # the default: none
        with pytest.raises(StorageError):
            Storage.delete_partial_write(storage, "masters/aa/x.png")
        with pytest.raises(StorageError):  # an object is never a partial write
            storage.delete_partial_write("masters/aa/x.png")
        assert storage.get("masters/aa/x.png") == BLOB

    def test_close_can_be_called_twice(self, storage: Storage) -> None:
        Storage.close(storage)  # the default releases nothing
        storage.close()
        storage.close()
