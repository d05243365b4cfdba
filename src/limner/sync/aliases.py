"""Stable, human-readable keys ("aliases") beside the content-addressed ones.

Content-addressed keys (``variants/3f9c...-1536.jpg``) change whenever an image changes, which is what
caches want. Code that cannot read the manifest (an older app, an e-mail, a social card) wants a URL
that stays put: with ``[storage] alias_pattern = "events/{id}.jpg"`` every published entry also has its
image at ``events/<id>.jpg``, the largest variant in the pattern's format (``.jpg``/``.jpeg``: JPEG,
``.webp``, ``.avif``), rewritten whenever the entry is (re-)published.

Writes replace the object in one step, never delete-then-write: ``Storage.copy`` (a server-side copy on
S3 and Supabase; elsewhere a download of the variant and a ``put`` of the complete bytes, atomic in
every backend). The variant is checked against its recorded size and SHA-256 before it is copied
(where the storage knows the hash without a download, ``Storage.object_info``), and the alias after.
Aliases whose object already holds the same bytes (same size, and the same SHA-256: remembered in
``.limner/aliases.json``, or checked by reading the object back) are skipped.

This is a service over a project and its renders; the key rules themselves (``validate_pattern``,
``alias_key``, ``is_alias_key``) are pure functions in :mod:`limner.keys`.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import tempfile
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Any

from limner.keys import alias_format, alias_key, validate_pattern
from limner.storage.base import Storage, StorageError
from limner.urls import shown_url

if TYPE_CHECKING:
    from limner.db.models import Render, Variant
    from limner.project import Project

log = logging.getLogger("limner.sync.aliases")

#: aliases change on re-publish: browsers and CDNs may keep them for a few minutes only
ALIAS_CACHE_CONTROL = "max-age=300"
CACHE_FILE = "aliases.json"
_WORKERS = 8


def alias_source(render: Render, fmt: str) -> Variant | None:
    """The render's largest variant in ``fmt``."""
    matching = [v for v in render.variants if v.format == fmt]
    return max(matching, key=lambda v: v.width) if matching else None


def alias_url(storage: Storage, pattern: str | None, render: Render) -> str | None:
    """The alias URL (the manifest carries its key, ``alias_key``), or None without a pattern or a variant to serve."""
    if not pattern or alias_source(render, alias_format(pattern)) is None:
        return None
    return storage.url(alias_key(pattern, render.entry_id))


def configured_pattern(project: Project) -> str | None:
    """``[storage] alias_pattern``, checked; None when aliases are off."""
    pattern = project.settings.storage.alias_pattern
    return validate_pattern(pattern) if pattern else None


# ---------------------------------------------------------------------- cache of what was written
def _cache_path(project: Project) -> Path:
    return project.settings.state_dir / CACHE_FILE


def _load_cache(path: Path, storage_id: str) -> dict[str, str]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        section = data.get(storage_id, {}) if isinstance(data, dict) else {}
        return {str(k): str(v) for k, v in section.items()} if isinstance(section, dict) else {}
    except (OSError, ValueError):
        return {}


def _save_cache(path: Path, storage_id: str, entries: dict[str, str]) -> None:
    try:
        data: dict[str, Any] = json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}
        if not isinstance(data, dict):
            data = {}
    except (OSError, ValueError):
        data = {}
    data[storage_id] = dict(sorted(entries.items()))
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump(data, fh, indent=1, sort_keys=True)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


# ---------------------------------------------------------------------- writing
def _same_bytes(storage: Storage, key: str, source: Variant, cached_sha: str | None) -> bool:
    if storage.size(key) != source.bytes:
        return False
    if cached_sha == source.sha256:  # this alias was written from this variant: no need to read it
        return True
    info = storage.object_info(key)  # a hash without a download where the storage has one
    if info is not None and info.sha256 is not None:
        return info.size == source.bytes and info.sha256 == source.sha256
    try:
        return hashlib.sha256(storage.get(key)).hexdigest() == source.sha256
    except StorageError:
        return False


def _write_one(storage: Storage, key: str, source: Variant) -> None:
    variant = storage.object_info(source.key)
    if variant is None:
        raise StorageError(f"alias {key!r}: variant {source.key!r} is missing from the storage")
    if variant.size != source.bytes or (variant.sha256 is not None and variant.sha256 != source.sha256):
        raise StorageError(f"alias {key!r}: variant {source.key!r} does not match its recorded size and sha256; not copied")
    storage.copy(source.key, key, cache_control=ALIAS_CACHE_CONTROL)
    alias = storage.object_info(key)
    if alias is None or alias.size != source.bytes or (alias.sha256 is not None and alias.sha256 != source.sha256):
        held = "nothing" if alias is None else f"{alias.size} bytes" + (", another sha256" if alias.size == source.bytes else "")
        raise StorageError(f"alias {key!r}: copied {source.key!r} ({source.bytes} bytes) but the alias holds {held}",
                           retryable=True)


def write_aliases(project: Project, renders: Iterable[Render], *, pattern: str | None = None,
                  storage: Storage | None = None) -> list[str]:
    """Point each render's alias (``pattern``, default ``[storage] alias_pattern``) at its largest variant.

    ``renders`` are the published renders to alias (with their variants loaded, as
    ``Repository.published_renders`` gives them). Returns the alias keys written, sorted; aliases
    already holding the right bytes are left alone. Without a pattern it does nothing.
    """
    pattern = validate_pattern(pattern) if pattern else configured_pattern(project)
    if not pattern:
        return []
    storage = storage or project.storage
    fmt = alias_format(pattern)
    jobs: dict[str, Variant] = {}
    for render in renders:
        source = alias_source(render, fmt)
        if source is None:
            log.warning("%s has no %s variant: no alias written (add %r to generate.formats)", render.entry_id, fmt, fmt)
            continue
        jobs[alias_key(pattern, render.entry_id)] = source
    if not jobs:
        return []
    cache_path = _cache_path(project)
    storage_id = shown_url(project.settings.storage.url)  # the cache's key: never a password
    cache = _load_cache(cache_path, storage_id)

    def run(item: tuple[str, Variant]) -> str | None:
        key, source = item
        if _same_bytes(storage, key, source, cache.get(key)):
            return None
        _write_one(storage, key, source)
        return key

    written: list[str] = []
    errors: list[str] = []
    with ThreadPoolExecutor(max_workers=min(_WORKERS, len(jobs))) as pool:
        for (key, source), future in zip(jobs.items(), [pool.submit(run, item) for item in jobs.items()], strict=True):
            try:
                if future.result() is not None:
                    written.append(key)
                cache[key] = source.sha256
            except StorageError as exc:
                errors.append(str(exc))
    _save_cache(cache_path, storage_id, cache)
    if errors:
        raise StorageError(f"{len(errors)} alias(es) could not be written: " + "; ".join(errors[:5]), retryable=True)
    return sorted(written)


def remove_aliases(project: Project, entry_ids: Iterable[str], *, pattern: str | None = None,
                   storage: Storage | None = None) -> list[str]:
    """Delete the aliases of entries published no more (an image taken down keeps no stable URL). Returns the
    keys deleted, sorted; an alias that is not there is skipped. Without a pattern it does nothing."""
    pattern = validate_pattern(pattern) if pattern else configured_pattern(project)
    if not pattern:
        return []
    storage = storage or project.storage
    cache_path = _cache_path(project)
    storage_id = shown_url(project.settings.storage.url)  # the cache's key: never a password
    cache = _load_cache(cache_path, storage_id)
    removed = []
    for entry_id in entry_ids:
        key = alias_key(pattern, entry_id)
        if storage.exists(key):
            storage.delete(key)
            removed.append(key)
        cache.pop(key, None)
    _save_cache(cache_path, storage_id, cache)
    return sorted(removed)
