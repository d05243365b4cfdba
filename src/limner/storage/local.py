"""Local folder storage: atomic writes (temp file + fsync + rename), file:// or configured public URLs."""

from __future__ import annotations

import hashlib
import os
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path, PurePosixPath

from limner.storage.base import ObjectInfo, ObjectMissing, Storage, StorageError

#: a file being written: renamed into place when whole (never an object, never listed)
TMP_PREFIX = ".tmp-"


class LocalStorage(Storage):
    scheme = "file"
    #: a listing is a directory walk; each size is a stat, no request
    sizes_in_listing = True

    def __init__(self, root: str | Path, *, public_base_url: str | None = None) -> None:
        self.root = Path(root).resolve()
        self.public_base_url = public_base_url.rstrip("/") if public_base_url else None

    def _path(self, key: str) -> Path:
        pure = PurePosixPath(key)
        if pure.is_absolute() or ".." in pure.parts or not pure.parts:  # "", "." and "./" name the root itself
            raise StorageError(f"invalid storage key {key!r}")
        return self.root.joinpath(*pure.parts)

    def put(self, key: str, data: bytes, *, content_type: str) -> None:
        path = self._path(key)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(prefix=TMP_PREFIX, dir=path.parent)
            try:
                with os.fdopen(fd, "wb") as fh:
                    fh.write(data)
                    fh.flush()
                    os.fsync(fh.fileno())
                os.chmod(tmp, 0o644)
                os.replace(tmp, path)
                _fsync_dir(path.parent)  # the rename itself survives a power loss
            except BaseException:
                Path(tmp).unlink(missing_ok=True)
                raise
        except OSError as exc:
            raise StorageError(f"cannot write {key!r} under {self.root}: {exc.strerror}", retryable=False) from None

    def check(self) -> None:
        """The folder exists (or can be made) and takes a write."""
        probe = ".limner-write-check"
        self.put(probe, b"ok", content_type="text/plain")
        self.delete(probe)

    def check_readable(self) -> None:
        """The folder exists and is a folder (a missing one would list as empty)."""
        if not self.root.is_dir():
            what = f"{self.root} is not a folder" if self.root.exists() else f"the folder {self.root} does not exist"
            raise StorageError(what, retryable=False)

    def put_if_absent(self, key: str, data: bytes, *, content_type: str) -> bool:
        """Skip only when the same bytes are already there (a damaged file of the same size is rewritten)."""
        try:
            if self._path(key).read_bytes() == data:
                return False
        except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
            pass
        self.put(key, data, content_type=content_type)
        return True

    def get(self, key: str) -> bytes:
        try:
            return self._path(key).read_bytes()
        except (FileNotFoundError, IsADirectoryError, NotADirectoryError):  # a prefix, or below an object
            raise ObjectMissing(f"object {key!r} not found in {self.root}") from None
        except OSError as exc:
            raise StorageError(f"cannot read {key!r}: {exc.strerror}") from None

    def exists(self, key: str) -> bool:
        return self._path(key).is_file()

    def size(self, key: str) -> int | None:
        path = self._path(key)
        try:
            return path.stat().st_size if path.is_file() else None
        except (FileNotFoundError, NotADirectoryError):  # "a/b" where "a" is an object is missing too
            return None
        except OSError as exc:
            raise StorageError(f"cannot stat {key!r}: {exc.strerror}") from None

    def delete(self, key: str) -> None:
        try:
            self._path(key).unlink(missing_ok=True)
        except NotADirectoryError:
            return
        except OSError as exc:
            raise StorageError(f"cannot delete {key!r} under {self.root}: {exc.strerror}") from None

    def list(self, prefix: str = "") -> Iterator[str]:
        for key, _path in self._walk(prefix):
            yield key

    def _walk(self, prefix: str) -> Iterator[tuple[str, Path]]:
        base = self.root
        if not base.is_dir():
            return
        for dirpath, _dirs, files in os.walk(base):
            for name in files:
                if name.startswith(TMP_PREFIX):
                    continue
                path = Path(dirpath, name)
                key = path.relative_to(base).as_posix()
                if key.startswith(prefix):
                    yield key, path

    # ------------------------------------------------------------------ optional operations
    def partial_writes(self, older_than_s: float) -> Iterator[tuple[str, int]]:
        """The ``.tmp-`` files a process killed during ``put`` left beside their objects, untouched for
        ``older_than_s`` seconds (a live ``put`` renames its file within moments)."""
        base = self.root
        if not base.is_dir():
            return
        cutoff = time.time() - older_than_s
        for dirpath, _dirs, files in os.walk(base):
            for name in files:
                if not name.startswith(TMP_PREFIX):
                    continue
                path = Path(dirpath, name)
                try:
                    stat = path.stat()
                except FileNotFoundError:  # renamed or removed meanwhile
                    continue
                if stat.st_mtime <= cutoff:
                    yield path.relative_to(base).as_posix(), stat.st_size

    def delete_partial_write(self, name: str) -> None:
        path = Path(self.root, name)
        if not path.name.startswith(TMP_PREFIX) or ".." in Path(name).parts or Path(name).is_absolute():
            raise StorageError(f"not a partial write under {self.root}: {name!r}")
        try:
            path.unlink()
        except FileNotFoundError:
            return
        except OSError as exc:
            raise StorageError(f"cannot delete {name!r} under {self.root}: {exc.strerror}") from None

    def list_sizes(self, prefix: str = "") -> Iterator[tuple[str, int]]:
        """One walk, one ``stat`` per file (a file removed meanwhile is left out)."""
        for key, path in self._walk(prefix):
            try:
                yield key, path.stat().st_size
            except FileNotFoundError:
                continue
            except OSError as exc:
                raise StorageError(f"cannot stat {key!r}: {exc.strerror}") from None

    def object_info(self, key: str) -> ObjectInfo | None:
        """Size and sha256, read from the file (a local read is cheap)."""
        try:
            data = self.get(key)
        except ObjectMissing:
            return None
        return ObjectInfo(len(data), hashlib.sha256(data).hexdigest())

    @property
    def location(self) -> str:
        return str(self.root)

    def overlaps(self, other: Storage) -> bool:
        """The same folder, or one inside the other."""
        if not isinstance(other, LocalStorage):
            return False
        a, b = self.root, other.root
        return a == b or a in b.parents or b in a.parents

    def url(self, key: str) -> str:
        if self.public_base_url:
            return f"{self.public_base_url}/{key}"
        return self._path(key).as_uri()

    def __repr__(self) -> str:
        return f"<LocalStorage root={str(self.root)!r}>"


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:  # pragma: no cover - platforms without directory fds
        return
    try:
        os.fsync(fd)
    except OSError:  # pragma: no cover
        pass
    finally:
        os.close(fd)
