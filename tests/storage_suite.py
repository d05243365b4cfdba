"""The storage contract, as tests every backend reruns.

Use it like fsspec's abstract test classes: subclass it in a ``test_storage_*.py`` module and
provide a ``storage`` fixture that returns a fresh, empty :class:`limner.storage.Storage`::

    from storage_suite import StorageSuite

    class TestMyStorage(StorageSuite):
        @pytest.fixture
        def storage(self, tmp_path):
            return MyStorage(...)

The class name does not start with ``Test`` so pytest does not collect it on its own.
Keep every test here quick: remote backends run them against emulators.
"""

from __future__ import annotations

import hashlib
import threading

import pytest

from limner.errors import LimnerError
from limner.storage import Storage, StorageError, content_key

PNG = "image/png"
BLOB = bytes(range(256)) * 16  # every byte value, 4 KiB


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
        with pytest.raises(StorageError) as info:
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
        with pytest.raises(StorageError):
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
        with pytest.raises(StorageError):
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
