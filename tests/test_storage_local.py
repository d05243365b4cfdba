"""LocalStorage: the shared storage contract, plus what only a local folder can show."""

from __future__ import annotations

import hashlib
import os
import stat
from pathlib import Path
from urllib.parse import unquote, urlsplit

import pytest

pytest.register_assert_rewrite("limner.testing.storage_suite")

from limner.storage import ObjectInfo, Storage, StorageError, open_storage  # noqa: E402
from limner.storage.local import LocalStorage  # noqa: E402
from limner.testing.storage_suite import PNG, StorageSuite  # noqa: E402

PUBLIC = "https://images.example.org/media"


class TestLocalStorage(StorageSuite):
    @pytest.fixture
    def storage(self, tmp_path: Path) -> LocalStorage:
        return LocalStorage(tmp_path / "media", public_base_url=PUBLIC)


class TestLocalStorageFileUrls(StorageSuite):
    """The same contract without a public base URL (file:// URLs)."""

    @pytest.fixture
    def storage(self, tmp_path: Path) -> LocalStorage:
        return LocalStorage(str(tmp_path / "media"))


# ------------------------------------------------------------------------- local only
@pytest.fixture
def local(tmp_path: Path) -> LocalStorage:
    return LocalStorage(tmp_path / "media")


def files_under(root: Path) -> list[str]:
    return sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file())


def test_objects_are_plain_files_under_the_root(local: LocalStorage, tmp_path: Path) -> None:
    local.put("masters/ab/x.png", b"png", content_type=PNG)
    assert (tmp_path / "media" / "masters" / "ab" / "x.png").read_bytes() == b"png"
    assert local.root == (tmp_path / "media").resolve()
    assert str(local.root) in repr(local)


def test_files_are_world_readable_0644(local: LocalStorage, tmp_path: Path) -> None:
    old = os.umask(0o077)  # even under a strict umask: the files are meant to be served
    try:
        local.put("a/b.png", b"x", content_type=PNG)
        local.put("a/b.png", b"y", content_type=PNG)  # and after an overwrite
    finally:
        os.umask(old)
    mode = stat.S_IMODE((tmp_path / "media" / "a" / "b.png").stat().st_mode)
    assert mode == 0o644


def test_no_temp_files_are_left_behind(local: LocalStorage, tmp_path: Path) -> None:
    for i in range(5):
        local.put("v/x.webp", bytes([i]) * 100, content_type="image/webp")
    assert files_under(tmp_path / "media") == ["v/x.webp"]


def test_stray_temp_files_are_not_listed(local: LocalStorage, tmp_path: Path) -> None:
    local.put("masters/aa/x.png", b"x", content_type=PNG)
    (tmp_path / "media" / "masters" / "aa" / ".tmp-crashed123").write_bytes(b"half")
    assert list(local.list()) == ["masters/aa/x.png"]


def test_partial_writes_are_the_old_temp_files_and_can_be_removed(local: LocalStorage, tmp_path: Path) -> None:
    """A process killed during put leaves its .tmp- file for good (the listing hides it, so gc never saw it)."""
    import time

    local.put("masters/aa/x.png", b"x", content_type=PNG)
    old = tmp_path / "media" / "masters" / "aa" / ".tmp-killed1"
    old.write_bytes(b"half an image")
    os.utime(old, (time.time() - 7200, time.time() - 7200))
    (tmp_path / "media" / "masters" / "aa" / ".tmp-writing").write_bytes(b"a live put")  # new: a put going on
    assert list(local.partial_writes(3600)) == [("masters/aa/.tmp-killed1", 13)]
    assert len(list(local.partial_writes(0))) == 2
    for name in ("masters/aa/x.png", "../outside/.tmp-x", "/etc/.tmp-x"):
        with pytest.raises(StorageError):
            local.delete_partial_write(name)
    local.delete_partial_write("masters/aa/.tmp-killed1")
    local.delete_partial_write("masters/aa/.tmp-killed1")  # gone already: fine
    assert not old.exists() and local.get("masters/aa/x.png") == b"x"
    assert list(local.partial_writes(3600)) == []


def test_public_base_url(tmp_path: Path) -> None:
    s = LocalStorage(tmp_path / "m", public_base_url="https://cdn.example.org/img/")
    assert s.url("masters/ab/x.png") == "https://cdn.example.org/img/masters/ab/x.png"  # no double slash
    s2 = LocalStorage(tmp_path / "m", public_base_url="https://cdn.example.org")
    assert s2.url("a.png") == "https://cdn.example.org/a.png"


def test_file_urls_point_at_the_file(local: LocalStorage, tmp_path: Path) -> None:
    local.put("masters/ab/x.png", b"x", content_type=PNG)
    url = local.url("masters/ab/x.png")
    parts = urlsplit(url)
    assert parts.scheme == "file"
    assert Path(unquote(parts.path)) == (tmp_path / "media" / "masters" / "ab" / "x.png").resolve()
    assert Path(unquote(parts.path)).read_bytes() == b"x"


def test_url_of_an_invalid_key_is_rejected(local: LocalStorage) -> None:
    with pytest.raises(StorageError):
        local.url("../outside.png")


@pytest.mark.parametrize("key", ["../escape.png", "a/../../escape.png", "/tmp/escape.png", ".", "./"])
def test_invalid_keys_never_touch_the_disk(tmp_path: Path, key: str) -> None:
    s = LocalStorage(tmp_path / "deep" / "media")
    with pytest.raises(StorageError):
        s.put(key, b"x", content_type=PNG)
    with pytest.raises(StorageError):
        s.exists(key)
    with pytest.raises(StorageError):
        s.size(key)
    assert files_under(tmp_path) == []


def test_list_of_a_missing_root_is_empty(tmp_path: Path) -> None:
    assert list(LocalStorage(tmp_path / "never-created").list()) == []


def test_write_below_a_file_is_a_storage_error(local: LocalStorage) -> None:
    local.put("blocker", b"i am a file", content_type=PNG)
    with pytest.raises(StorageError) as info:
        local.put("blocker/child.png", b"x", content_type=PNG)
    assert "blocker/child.png" in str(info.value)
    with pytest.raises(StorageError):
        local.put_if_absent("blocker/child.png", b"x", content_type=PNG)
    assert local.get("blocker") == b"i am a file"


@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() == 0, reason="root ignores directory permissions")
def test_write_to_a_read_only_dir_is_a_storage_error(tmp_path: Path) -> None:
    root = tmp_path / "ro"
    root.mkdir()
    s = LocalStorage(root)
    s.put("old.png", b"old", content_type=PNG)
    root.chmod(0o555)
    try:
        with pytest.raises(StorageError) as info:
            s.put("old.png", b"new", content_type=PNG)
        assert "old.png" in str(info.value)
        with pytest.raises(StorageError):
            s.put("sub/new.png", b"new", content_type=PNG)
    finally:
        root.chmod(0o755)
    assert s.get("old.png") == b"old"
    assert files_under(root) == ["old.png"]


def test_unwritable_dir_is_a_storage_error_even_as_root(local: LocalStorage, monkeypatch: pytest.MonkeyPatch) -> None:
    """What a read-only folder does to a write, for runs where the test above is skipped (root)."""
    import tempfile

    local.put("old.png", b"old", content_type=PNG)

    def denied(*args, **kwargs):  # type: ignore[no-untyped-def]
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(tempfile, "mkstemp", denied)
    with pytest.raises(StorageError) as info:
        local.put("old.png", b"new", content_type=PNG)
    monkeypatch.undo()
    assert "old.png" in str(info.value) and "Permission denied" in str(info.value)
    assert not info.value.retryable
    assert local.get("old.png") == b"old"


def test_failed_rename_keeps_the_old_object_and_cleans_up(local: LocalStorage, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    local.put("k/x.png", b"old", content_type=PNG)

    def failing_replace(src, dst):  # type: ignore[no-untyped-def]
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(os, "replace", failing_replace)
    with pytest.raises(StorageError) as info:
        local.put("k/x.png", b"new", content_type=PNG)
    monkeypatch.undo()
    assert "Permission denied" in str(info.value)
    assert local.get("k/x.png") == b"old"
    assert files_under(tmp_path / "media") == ["k/x.png"]  # the temp file was removed


def test_directory_key_errors_are_storage_errors(local: LocalStorage) -> None:
    local.put("dir/x.png", b"x", content_type=PNG)
    with pytest.raises(StorageError):
        local.delete("dir")
    with pytest.raises(StorageError):
        local.put("dir", b"x", content_type=PNG)
    assert local.get("dir/x.png") == b"x"


def test_open_storage_from_settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from limner.config import load_settings

    for name in list(os.environ):
        if name.upper().startswith("LIMNER_"):
            monkeypatch.delenv(name)
    (tmp_path / "limner.toml").write_text('[storage]\nurl = "out/media"\npublic_base_url = "https://x.test/m"\n')
    s = open_storage(load_settings(tmp_path / "limner.toml"))
    assert isinstance(s, LocalStorage)
    assert s.root == (tmp_path / "out" / "media").resolve()
    assert s.url("a.png") == "https://x.test/m/a.png"

    monkeypatch.setenv("LIMNER_STORAGE_URL", f"file://{tmp_path / 'abs'}")
    s = open_storage(load_settings(tmp_path / "limner.toml"))
    assert isinstance(s, LocalStorage) and s.root == (tmp_path / "abs").resolve()


# ------------------------------------------------------------------------- optional operations, a folder's way
def test_object_info_hashes_the_file(local: LocalStorage) -> None:
    local.put("masters/aa/x.png", b"png bytes", content_type=PNG)
    assert local.object_info("masters/aa/x.png") == ObjectInfo(9, hashlib.sha256(b"png bytes").hexdigest())
    assert local.object_info("masters/aa/none.png") is None
    assert local.object_info("masters/aa") is None  # a folder is not an object
    assert local.object_info("masters/aa/x.png/below") is None


def test_list_sizes_skip_temp_files(local: LocalStorage, tmp_path: Path) -> None:
    local.put("variants/aa/x.webp", b"12345", content_type="image/webp")
    (tmp_path / "media" / "variants" / "aa" / ".tmp-abc").write_bytes(b"partial")
    assert list(local.list_sizes()) == [("variants/aa/x.webp", 5)]
    assert LocalStorage.sizes_in_listing


def test_location_and_overlaps(tmp_path: Path) -> None:
    media = LocalStorage(tmp_path / "media")
    assert media.location == str((tmp_path / "media").resolve())
    assert media.overlaps(LocalStorage(tmp_path / "media" / "copy"))
    assert LocalStorage(tmp_path / "media" / "copy").overlaps(media)
    assert media.overlaps(LocalStorage(tmp_path))
    assert media.overlaps(LocalStorage(str(tmp_path / "other" / ".." / "media")))
    assert not media.overlaps(LocalStorage(tmp_path / "media2"))


def test_declared_capabilities() -> None:
    assert not LocalStorage.verifies_writes  # put does not read back; transfer checks the copy itself
    for name in ("list_sizes", "object_info", "location", "overlaps", "check", "put_if_absent"):
        assert getattr(LocalStorage, name) is not getattr(Storage, name), name
    for name in ("copy", "signed_url", "close"):  # get + put is already atomic; a folder signs nothing
        assert getattr(LocalStorage, name) is getattr(Storage, name), name



def test_check_readable_refuses_a_folder_that_is_not_there_or_is_a_file(tmp_path: Path) -> None:
    (tmp_path / "a-file").write_text("x")
    for root, said in ((tmp_path / "missing", f"the folder {tmp_path / 'missing'} does not exist"),
                       (tmp_path / "a-file", f"{tmp_path / 'a-file'} is not a folder")):
        with pytest.raises(StorageError, match=said):
            LocalStorage(root).check_readable()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a-file"]  # nothing made
    (tmp_path / "empty").mkdir()
    LocalStorage(tmp_path / "empty").check_readable()  # there, though empty
