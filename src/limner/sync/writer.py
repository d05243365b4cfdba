"""``limner sync``: write placeholders and the manifest, remove what left the catalogue.

Files are written only when their bytes change, atomically, so the app's repo
sees a diff only when an image really changed.
"""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from limner.project import Project
from limner.sync.manifest import MANIFEST_SCHEMA, PLACEHOLDER_EXT, build_manifest, manifest_entry


@dataclass
class SyncResult:
    published: int = 0
    written: list[str] = field(default_factory=list)
    unchanged: int = 0
    removed: list[str] = field(default_factory=list)
    manifest: str = ""
    schema: str = ""
    manifest_changed: bool = False


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


def _json_bytes(doc: Any) -> bytes:
    return (json.dumps(doc, ensure_ascii=False, indent=2, sort_keys=False) + "\n").encode("utf-8")


def sync_project(project: Project) -> SyncResult:
    s = project.settings
    catalog = project.catalog.by_id()
    storage = project.storage
    result = SyncResult()
    out_dir = s.path(s.sync.placeholder_dir)
    manifest_path = s.path(s.sync.manifest)
    schema_path = manifest_path.with_name(manifest_path.stem + ".schema.json")
    ext = PLACEHOLDER_EXT[s.sync.placeholder_format]
    prefix = s.sync.placeholder_url_prefix.rstrip("/")

    previous_ids: set[str] = set()
    try:
        previous_ids = set(json.loads(manifest_path.read_text(encoding="utf-8")).get("entries", {}))
    except (OSError, ValueError, AttributeError):
        pass

    entries: dict[str, dict[str, Any]] = {}
    for render in project.repo.published_renders():
        entry = catalog.get(render.entry_id)
        if entry is None or not render.placeholder_key:
            continue
        target = out_dir / f"{entry.id}.{ext}"
        if write_if_changed(target, storage.get(render.placeholder_key)):
            result.written.append(str(target))
        else:
            result.unchanged += 1
        entries[entry.id] = manifest_entry(entry, render, storage=storage, cdn_base=s.storage.cdn_base_url,
                                           placeholder_url=f"{prefix}/{entry.id}.{ext}")
    result.published = len(entries)

    # placeholders of entries that left the catalogue, and of the other format
    known_ids = previous_ids | set(project.repo.entry_statuses())
    for entry_id in sorted(known_ids):
        for other_ext in set(PLACEHOLDER_EXT.values()):
            if entry_id in catalog and other_ext == ext:
                continue
            path = out_dir / f"{entry_id}.{other_ext}"
            if path.is_file():
                path.unlink()
                result.removed.append(str(path))

    schema_ref = os.path.relpath(schema_path, manifest_path.parent)
    result.manifest_changed = write_if_changed(manifest_path, _json_bytes(build_manifest(entries, "./" + schema_ref)))
    write_if_changed(schema_path, _json_bytes(MANIFEST_SCHEMA))
    result.manifest = str(manifest_path)
    result.schema = str(schema_path)
    return result
