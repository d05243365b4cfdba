"""Open the configured storage from its URL (a path, ``file://``, or a plugin scheme)."""

from __future__ import annotations

from urllib.parse import urlsplit

from limner.config.settings import Settings
from limner.registry import storage_class
from limner.storage.base import Storage


def open_storage(settings: Settings) -> Storage:
    url = settings.storage.url
    parts = urlsplit(url)
    scheme = parts.scheme if len(parts.scheme) > 1 else "file"  # "C:\\" is a path, not a scheme
    cls = storage_class(scheme)
    if scheme == "file":
        path = url[len("file://"):] if url.startswith("file://") else url
        return cls(settings.path(path), public_base_url=settings.storage.public_base_url)
    return cls.from_settings(settings)
