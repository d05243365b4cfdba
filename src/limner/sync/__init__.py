"""Sync with the app: placeholders into the frontend folder, a manifest JSON and its schema."""

from limner.sync.manifest import MANIFEST_SCHEMA, build_manifest
from limner.sync.writer import SyncResult, sync_project

__all__ = ["MANIFEST_SCHEMA", "SyncResult", "build_manifest", "sync_project"]
