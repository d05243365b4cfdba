"""The storage contract itself: every optional operation ``Storage`` declares has a working default,
the shared suite (``limner.testing.storage_suite``) exercises each one (default and override), and
the suite fails a backend whose override disagrees with the default."""

from __future__ import annotations

import inspect
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))  # for memory_storage, whatever pytest's import mode

import pytest  # noqa: E402

pytest.register_assert_rewrite("limner.testing.storage_suite")

from memory_storage import MemoryStorage  # noqa: E402

from limner.storage import ObjectInfo, Storage, StorageError, UnsupportedOperation  # noqa: E402
from limner.storage.base import content_type_for  # noqa: E402
from limner.testing.storage_suite import BLOB, OPTIONAL_OPERATIONS, PNG, StorageSuite  # noqa: E402


class TestDefaults(StorageSuite):
    """The whole suite against a backend that overrides nothing optional."""

    @pytest.fixture
    def storage(self) -> MemoryStorage:
        return MemoryStorage()


def test_memory_storage_overrides_nothing_optional() -> None:
    for name in OPTIONAL_OPERATIONS:
        assert getattr(MemoryStorage, name) is getattr(Storage, name), name


# ------------------------------------------------------------------------- what is declared, and covered
def declared_optional_operations() -> set[str]:
    public = {name for name in vars(Storage) if not name.startswith("_")}
    return public - set(Storage.__abstractmethods__) - {"from_settings", "scheme"}


def test_every_optional_operation_is_listed() -> None:
    assert declared_optional_operations() == set(OPTIONAL_OPERATIONS)
    assert set(Storage.__abstractmethods__) == {"put", "get", "exists", "size", "delete", "list", "url"}


@pytest.mark.parametrize("name", OPTIONAL_OPERATIONS)
def test_the_suite_exercises_the_override_and_the_default(name: str) -> None:
    source = inspect.getsource(StorageSuite)
    assert re.search(rf"\bstorage\)?\.{name}\b", source), f"the suite never calls the backend's {name}"
    assert re.search(rf"\bStorage\.{name}\b", source), f"the suite never runs Storage's default {name} against the backend"


def test_defaults() -> None:
    s = MemoryStorage()
    s.put("masters/aa/x.png", BLOB, content_type=PNG)
    s.put("variants/aa/y.webp", b"y", content_type="image/webp")
    assert list(s.list_sizes()) == [("masters/aa/x.png", len(BLOB)), ("variants/aa/y.webp", 1)]
    assert s.object_info("masters/aa/x.png") == ObjectInfo(len(BLOB), None)
    assert s.object_info("nope") is None
    s.copy("variants/aa/y.webp", "events/y.webp", cache_control="max-age=300")
    assert s.get("events/y.webp") == b"y"
    assert s.location == repr(s)
    assert s.overlaps(s) and not s.overlaps(MemoryStorage())
    with pytest.raises(UnsupportedOperation) as info:
        s.signed_url("masters/aa/x.png")
    assert isinstance(info.value, StorageError) and "cannot make signed URLs" in str(info.value)
    assert not s.verifies_writes and not s.sizes_in_listing
    s.check()
    s.check_readable()
    s.close()


def test_content_type_for() -> None:
    assert content_type_for("events/x.jpg") == "image/jpeg"
    assert content_type_for("variants/aa/x.AVIF") == "image/avif"
    assert content_type_for("notes/readme.txt") == "text/plain"
    assert content_type_for("a.b/no-extension") == "application/octet-stream"


# ------------------------------------------------------------------------- the suite fails a wrong override
class WrongSizes(MemoryStorage):
    sizes_in_listing = True

    def list_sizes(self, prefix: str = "") -> Iterator[tuple[str, int]]:
        for key in self.list(prefix):
            yield key, 0


class WrongHash(MemoryStorage):
    def object_info(self, key: str) -> ObjectInfo | None:
        size = self.size(key)
        return None if size is None else ObjectInfo(size, "0" * 64)


class CopyMissesNothing(MemoryStorage):
    def copy(self, src_key: str, dst_key: str, *, cache_control: str | None = None) -> None:
        if self.exists(src_key):
            super().copy(src_key, dst_key)
        else:  # a wrong override: an empty object instead of an error
            self.put(dst_key, b"", content_type=PNG)


class DefaultListingClaimsSizes(MemoryStorage):
    sizes_in_listing = True


class NeverOverlaps(MemoryStorage):
    def overlaps(self, other: Storage) -> bool:
        return False


class SignsWithAnyError(MemoryStorage):
    def signed_url(self, key: str, expires_in: int = 3600) -> str:
        raise NotImplementedError


@pytest.mark.parametrize(("cls", "test"), [
    (WrongSizes, "test_list_sizes_agrees_with_the_default"),
    (WrongHash, "test_object_info"),
    (CopyMissesNothing, "test_copy_of_a_missing_object_fails_and_leaves_the_target"),
    (DefaultListingClaimsSizes, "test_sizes_in_listing_is_declared"),
    (NeverOverlaps, "test_overlaps"),
    (SignsWithAnyError, "test_signed_url"),
])
def test_the_suite_fails_a_wrong_override(cls: type[MemoryStorage], test: str, tmp_path: Path) -> None:
    method = getattr(StorageSuite(), test)
    kwargs = {"tmp_path": tmp_path} if "tmp_path" in inspect.signature(method).parameters else {}
    method(MemoryStorage(), **kwargs)  # the same test passes on the defaults
    with pytest.raises((AssertionError, NotImplementedError, pytest.fail.Exception)):  # the last: "DID NOT RAISE"
        method(cls(), **kwargs)


def test_importing_limner_testing_does_not_need_pytest() -> None:
    code = ("import sys; sys.modules['pytest'] = None; sys.modules['_pytest'] = None\n"
            "import limner.testing, limner.testing.fake_provider\n"
            "assert 'limner.testing.storage_suite' not in sys.modules\n"
            "try:\n    import limner.testing.storage_suite\nexcept ImportError:\n    print('suite needs pytest')\n")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "suite needs pytest"
