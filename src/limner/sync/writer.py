"""``limner sync``: write placeholders and the manifest, remove what left the catalogue.

Files are written only when their bytes change, atomically, so the app's repo
sees a diff only when an image really changed. A placeholder is read from the
storage only when the app's file does not hold it already: its key names its
sha256, so a sync with nothing new reads no placeholder (no GET per entry on S3).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from limner.catalog.models import SLUG_PATTERN
from limner.db.models import Render
from limner.errors import ConfigError, LimnerError
from limner.project import Project
from limner.storage import content_key
from limner.storage.base import EXTENSIONS, MIME_TYPES
from limner.keys import alias_format, alias_key, content_sha256
from limner.sync.aliases import alias_source, configured_pattern, remove_aliases, write_aliases
from limner.sync.manifest import MANIFEST_SCHEMA, PLACEHOLDER_EXT, build_manifest, cdn_base, check_base, manifest_entry, storage_base


if TYPE_CHECKING:
    from limner.sync.writeback import EventsTable

log = logging.getLogger("limner.sync")

_ENTRY_ID = re.compile(SLUG_PATTERN)


def _file_in(folder: Path, entry_id: str, ext: str) -> Path | None:
    """``folder/<id>.<ext>``, or None when the id could name anything outside ``folder`` (an id read from
    the app's manifest or the database is not trusted: ``../x``, an absolute path, a separator)."""
    if not _ENTRY_ID.match(entry_id):
        return None
    path = folder / f"{entry_id}.{ext}"
    return path if path.parent == folder and path.name == f"{entry_id}.{ext}" else None


@dataclass
class SyncResult:
    published: int = 0
    written: list[str] = field(default_factory=list)
    unchanged: int = 0
    removed: list[str] = field(default_factory=list)
    manifest: str = ""
    schema: str = ""
    manifest_changed: bool = False
    aliases: list[str] = field(default_factory=list)
    #: entries the previous manifest published that are published no more (taken down, or gone from the catalogue)
    withdrawn: list[str] = field(default_factory=list)
    #: alias objects of those entries deleted from the storage
    aliases_removed: list[str] = field(default_factory=list)
    written_back: int = 0
    written_back_unchanged: int = 0
    not_in_events_table: list[str] = field(default_factory=list)


def write_if_changed(path: Path, data: bytes) -> bool:
    try:
        if path.read_bytes() == data:
            return False
    except FileNotFoundError:
        pass
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return True


def _write_step(path: Path, fn: Any, *args: Any) -> Any:
    """Run one file operation of sync. The folders were checked first (:func:`_check_writable`), so a failure
    here (a full disk, a folder where a file goes) comes after other files may have changed: an error that
    names the path (exit 1), not a traceback; the next ``limner sync`` writes what is left."""
    try:
        return fn(*args)
    except OSError as exc:
        raise LimnerError(f"sync stopped: cannot write {path}: {exc.strerror or exc}",
                          hint="fix the cause and run `limner sync` again: it writes only what differs") from None


def _check_writable(*folders: Path) -> None:
    """Each folder sync writes into exists and can be written, or can be created: else a configuration error
    (exit 2) before anything changed."""
    for folder in folders:
        existing = folder
        while not existing.exists() and existing.parent != existing:
            existing = existing.parent
        if not existing.is_dir():
            raise ConfigError(f"sync cannot write into {folder}: {existing} is not a folder",
                              hint="check sync.placeholder_dir and sync.manifest in limner.toml")
        if not os.access(existing, os.W_OK | os.X_OK):
            raise ConfigError(f"sync cannot write into {folder}: {existing} is not writable (or on a read-only file system)",
                              hint="check sync.placeholder_dir and sync.manifest in limner.toml, and the folder's permissions")


def _json_bytes(doc: Any) -> bytes:
    return (json.dumps(doc, ensure_ascii=False, indent=2, sort_keys=False) + "\n").encode("utf-8")


class _PendingWithdrawals:
    """The ids of a withdrawal a sync has begun (the manifest no longer names them) and not yet finished (their
    aliases and events rows): ``.limner/sync-withdrawals.json``, there only between the two."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def ids(self) -> set[str]:
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return set()
        return {str(i) for i in data} if isinstance(data, list) else set()

    def keep(self, withdrawn: list[str]) -> None:
        if withdrawn:
            _write_step(self.path, write_if_changed, self.path, _json_bytes(withdrawn))
        else:
            self.done()

    def done(self) -> None:
        _write_step(self.path, self.path.unlink, True)


def _read_if_file(path: Path) -> bytes | None:
    """The bytes of the file at ``path``; None when there is none (or it cannot be read: it is then written)."""
    try:
        return path.read_bytes() if path.is_file() and not path.is_symlink() else None
    except OSError:
        return None


def _placeholder_for(project: Project, render: Render, have: bytes | None = None) -> tuple[str, bytes]:
    """The render's placeholder (key, bytes) in the configured format, width and size limit, re-encoded from
    the master if one of those changed. ``have``: the bytes of the app's placeholder file, returned as they are
    (no read from the storage) when they are the stored placeholder's: its key names their sha256."""
    s = project.settings.sync
    storage = project.storage
    want_width = min(s.placeholder_width, render.width or s.placeholder_width)
    key = render.placeholder_key or ""
    if key.endswith("." + PLACEHOLDER_EXT[s.placeholder_format]) and render.placeholder_width == want_width:
        if (have is not None and len(have) <= s.placeholder_max_bytes and content_sha256(key) is not None
                and hashlib.sha256(have).hexdigest() == content_sha256(key)):
            return key, have  # the app has it already: a sync with nothing new reads nothing from the storage
        data = storage.get(key)
        if len(data) <= s.placeholder_max_bytes:
            return key, data
    from limner.imaging import make_placeholder, safe_open
    from limner.imaging.normalize import to_rgb

    g = project.settings.generate
    image = safe_open(storage.get(render.master_key), max_bytes=g.max_image_bytes, max_pixels=g.max_image_pixels)
    # as the derive stage does: upright, 16-bit scaled to 8, transparency on white (a plain convert("RGB")
    # made a 16-bit gray master white and a transparent one black)
    ph = make_placeholder(to_rgb(image), width=want_width, fmt=s.placeholder_format, max_bytes=s.placeholder_max_bytes)
    new_key = content_key("placeholders", hashlib.sha256(ph.data).hexdigest(), EXTENSIONS[ph.format])
    storage.put_if_absent(new_key, ph.data, content_type=MIME_TYPES[ph.format])
    project.repo.set_placeholder(render.id, new_key, ph.width, ph.height)
    render.placeholder_key, render.placeholder_width, render.placeholder_height = new_key, ph.width, ph.height
    return new_key, ph.data


def sync_project(project: Project) -> SyncResult:
    s = project.settings
    catalog = project.catalog.by_id()
    result = SyncResult()
    out_dir = s.path(s.sync.placeholder_dir)
    manifest_path = s.path(s.sync.manifest)
    schema_path = manifest_path.with_name(manifest_path.stem + ".schema.json")

    previous_ids: set[str] = set()
    try:
        previous = json.loads(manifest_path.read_text(encoding="utf-8"))
    except (OSError, ValueError):  # none yet, or not JSON: it is rewritten whole
        previous = None
    if isinstance(previous, dict) and isinstance(previous.get("entries"), dict):  # else not a manifest of ours
        previous_ids = {str(entry_id) for entry_id in previous["entries"]}

    # everything that can refuse is asked before the first file changes: the folders written into, the app's
    # events table (a wrong URL, table or column then changed nothing)
    _check_writable(out_dir, manifest_path.parent, schema_path.parent)
    check_base("storage.public_base_url" if s.storage.public_base_url else "the storage's public URL",
               storage_base(project.storage))
    check_base("storage.cdn_base_url", cdn_base(s.storage.cdn_base_url))
    events = None
    if s.sync.events_database_url:
        from limner.sync.writeback import EventsTable

        if storage_base(project.storage) is None:  # its URLs would be file:// paths of this machine
            raise ConfigError("sync.events_database_url is set, but the storage has no public http(s) URL to write back "
                              "(a local folder's file:// paths are not URLs a browser can load)",
                              hint="set storage.public_base_url (a local folder served by `limner media serve`, a "
                                   "bucket's public URL), or unset sync.events_database_url")

        events = EventsTable(s.events_database_url or "", s.sync.events_table, s.sync.events_id_column)
        try:  # the longest URL a variant can have: a content key of the widest width and longest extension
            sample = "variants/" + "0" * 16 + "-99999.avif"
            cdn = cdn_base(s.storage.cdn_base_url)
            url = len(project.storage.url(sample))
            events.check_fits({"image_url": url, "image_cdn_url": len(cdn + sample) if cdn else url})
        except BaseException:
            events.close()
            raise
    try:
        _write_all(project, result, catalog, previous_ids, out_dir, manifest_path, schema_path, events)
    finally:
        if events is not None:
            events.close()
    return result


def _write_all(project: Project, result: SyncResult, catalog: dict[str, Any], previous_ids: set[str], out_dir: Path,
               manifest_path: Path, schema_path: Path, events: EventsTable | None) -> None:
    s, storage = project.settings, project.storage
    ext = PLACEHOLDER_EXT[s.sync.placeholder_format]
    prefix = s.sync.placeholder_url_prefix.rstrip("/")

    entries: dict[str, dict[str, Any]] = {}
    renders = project.repo.published_renders()
    alias_pattern = configured_pattern(project)
    order = {entry_id: i for i, entry_id in enumerate(catalog)}
    for render in renders:
        entry = catalog.get(render.entry_id)
        if entry is None or not render.placeholder_key:
            continue
        target = out_dir / f"{entry.id}.{ext}"
        have = _read_if_file(target)
        _placeholder_key, placeholder = _placeholder_for(project, render, have)
        if placeholder is not have and _write_step(target, write_if_changed, target, placeholder):
            result.written.append(str(target))
        else:
            result.unchanged += 1
        alias = (alias_key(alias_pattern, entry.id)
                 if alias_pattern and alias_source(render, alias_format(alias_pattern)) is not None else None)
        entries[entry.id] = manifest_entry(entry, render, order=order[entry.id], placeholder_url=f"{prefix}/{entry.id}.{ext}",
                                           alias_key=alias)
    result.published = len(entries)

    # entries the last manifest published that are published no more (taken down: rejected in review; or
    # gone from the catalogue): their placeholders, aliases and events rows go too. The manifest is written
    # before the aliases and the events table, so a sync that failed after it left the withdrawal half done:
    # the ids are kept in the state folder until the whole of it is, and the next sync finishes it
    pending = _PendingWithdrawals(s.state_dir / "sync-withdrawals.json")
    before = previous_ids | pending.ids()
    withdrawn = sorted(i for i in before - set(entries) if _ENTRY_ID.match(i))
    result.withdrawn = withdrawn
    # placeholders of withdrawn entries, of entries that left the catalogue, and of the other format; only
    # plain entry ids, only inside the placeholder folder, only files (never links)
    known_ids = before | set(project.repo.entry_statuses())
    for entry_id in sorted(known_ids):
        for other_ext in set(PLACEHOLDER_EXT.values()):
            if entry_id in entries and other_ext == ext:
                continue  # its current placeholder
            if entry_id in catalog and entry_id not in entries and entry_id not in before:
                continue  # never published by Limner: the app's own file stays until a placeholder replaces it
            path = _file_in(out_dir, str(entry_id), other_ext)
            if path is None:
                log.warning("ignoring %r in %s: not an entry id", entry_id, manifest_path)
                continue
            if path.is_file() and not path.is_symlink():
                _write_step(path, path.unlink)
                result.removed.append(str(path))

    schema_ref = Path(os.path.relpath(schema_path, manifest_path.parent)).as_posix()
    cdn = cdn_base(s.storage.cdn_base_url)
    manifest = build_manifest(entries, "./" + schema_ref, base=storage_base(storage), cdn=cdn, sizes=s.sync.sizes)
    pending.keep(withdrawn)  # from here until the events table is written, the manifest no longer names them
    result.manifest_changed = _write_step(manifest_path, write_if_changed, manifest_path, _json_bytes(manifest))
    _write_step(schema_path, write_if_changed, schema_path, _json_bytes(MANIFEST_SCHEMA))
    # remote aliases last: a storage failure cannot leave the app's files half-written
    result.aliases = write_aliases(project, [r for r in renders if r.entry_id in entries])
    result.aliases_removed = remove_aliases(project, withdrawn)
    if events is not None:
        urls: dict[str, dict[str, Any] | None] = {
            entry_id: {"image_url": storage.url(e["image_key"]),
                       "cdn_url": cdn + e["image_key"] if cdn else storage.url(e["image_key"]),
                       "generated_at": e["generated_at"]} for entry_id, e in entries.items()}
        urls.update({entry_id: None for entry_id in withdrawn})  # their rows lose the URLs of an image taken down
        wb = events.write(urls)
        result.written_back, result.written_back_unchanged, result.not_in_events_table = wb.updated, wb.unchanged, wb.not_found
    pending.done()
    result.manifest = str(manifest_path)
    result.schema = str(schema_path)
