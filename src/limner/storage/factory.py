"""Open the configured storage from its URL (a path, ``file://``, or a plugin scheme)."""

from __future__ import annotations

from urllib.parse import urlsplit

from limner.config.settings import Settings
from limner.errors import LimnerError
from limner.registry import storage_class
from limner.storage.base import Storage
from limner.urls import Redactor, shown_url


def open_storage(settings: Settings) -> Storage:
    url = settings.storage.url
    parts = urlsplit(url)
    scheme = parts.scheme if len(parts.scheme) > 1 else "file"  # "C:\\" is a path, not a scheme
    cls = storage_class(scheme)
    if scheme == "file":
        path = url[len("file://"):] if url.startswith("file://") else url
        return cls(settings.path(path), public_base_url=settings.storage.public_base_url)
    try:
        return cls.from_settings(settings)
    except LimnerError as exc:  # a plugin's error that quotes its URL shows no password in it
        hide_url_secrets(exc, url)
        raise


def url_secrets(url: str) -> list[str]:
    """What of a storage URL must never be shown (see :func:`limner.urls.shown_url`): its ``user:password``, the
    password alone, each query value and the fragment."""
    scheme, sep, rest = url.partition("://")
    if not sep:
        return []
    rest, _, fragment = rest.partition("#")
    rest, _, query = rest.partition("?")
    userinfo = rest.rpartition("@")[0] if "@" in rest else ""
    values = [p.partition("=")[2] for p in query.split("&")] if query else []
    return [userinfo, userinfo.partition(":")[2], *values, fragment]


def hide_url_secrets(exc: LimnerError, url: str) -> None:
    """Rewrite ``exc``'s message and hint so that they show ``url`` as :func:`limner.urls.shown_url` does and
    nothing of its secrets."""
    shown = shown_url(url)
    if shown == url:
        return
    redact = Redactor(url_secrets(url))
    exc.message = redact(exc.message.replace(url, shown))
    exc.args = (exc.message,)
    if exc.hint:
        exc.hint = redact(exc.hint.replace(url, shown))
