"""Storage keys: the content-addressed layout and alias patterns.

Pure functions on strings, below both ``limner.config`` (which validates ``[storage] alias_pattern``)
and ``limner.storage``; this module imports nothing of Limner but its errors.
"""

from __future__ import annotations

import re
import string
from pathlib import PurePosixPath

from limner.errors import ConfigError

#: prefixes of content-addressed objects: their keys never change their bytes
CONTENT_PREFIXES = ("masters/", "variants/", "placeholders/")

DEFAULT_ALIAS_PATTERN = "events/{id}.jpg"
#: alias extension -> the variant format it serves
ALIAS_FORMATS = {"jpg": "jpeg", "jpeg": "jpeg", "webp": "webp", "avif": "avif"}
#: what ``{id}`` matches in a key (entry ids are lower-case slugs)
_ID = "[a-z0-9][a-z0-9-]{0,127}"


def content_key(kind: str, sha256: str, ext: str) -> str:
    """Content-addressed key, fanned out by the first two hex digits: ``masters/ab/abcdef....png``."""
    return f"{kind}/{sha256[:2]}/{sha256}.{ext}"


#: ``masters/ab/<sha256>.png``, ``placeholders/ab/<sha256>.webp``: the name is the content's hash
_CONTENT_NAME = re.compile(r"^(?:masters|placeholders)/[0-9a-f]{2}/([0-9a-f]{64})\.[A-Za-z0-9]+$")


def content_sha256(key: str) -> str | None:
    """The sha256 a content-addressed key names (:func:`content_key` of a master or a placeholder); None for any
    other key."""
    m = _CONTENT_NAME.match(key)
    return m.group(1) if m else None


def validate_pattern(pattern: str) -> str:
    """Check an alias pattern: ``{id}`` once or more, no other field, a known image extension, a safe key."""
    try:
        fields = [(name, spec, conversion) for _, name, spec, conversion in string.Formatter().parse(pattern)
                  if name is not None]
    except ValueError as exc:
        raise ConfigError(f"storage.alias_pattern {pattern!r}: {exc}") from None
    if not fields or any(field != ("id", "", None) for field in fields):  # no format spec ({id:.3}), no {id!r}
        raise ConfigError(f"storage.alias_pattern {pattern!r}: use {{id}} (the entry id, as it is) and no other field",
                          hint=f"for example {DEFAULT_ALIAS_PATTERN!r}")
    sample = pattern.format(id="x")
    parts = sample.split("/")
    if sample.startswith("/") or any(part in ("", ".", "..") for part in parts) or sample != sample.strip():
        raise ConfigError(f"storage.alias_pattern {pattern!r}: must be a relative key without empty, '.' or '..' "
                          f"segments, such as {DEFAULT_ALIAS_PATTERN!r}")
    pure = PurePosixPath(sample)
    if sample.startswith(CONTENT_PREFIXES):
        raise ConfigError(f"storage.alias_pattern {pattern!r}: {', '.join(CONTENT_PREFIXES)} hold content-addressed "
                          "objects; choose another folder")
    if pure.suffix.lstrip(".").lower() not in ALIAS_FORMATS:
        raise ConfigError(f"storage.alias_pattern {pattern!r}: end it in .jpg, .webp or .avif (the variant format served)")
    return pattern


def alias_key(pattern: str, entry_id: str) -> str:
    """The alias of one entry: ``events/{id}.jpg`` -> ``events/exodus.jpg``."""
    return pattern.format(id=entry_id)


def alias_format(pattern: str) -> str:
    """The variant format an alias pattern serves (``jpeg``, ``webp`` or ``avif``)."""
    return ALIAS_FORMATS[PurePosixPath(pattern.format(id="x")).suffix.lstrip(".").lower()]


def is_alias_key(pattern: str, key: str) -> bool:
    """Whether ``key`` is one the pattern produces (for a garbage collector that must keep aliases)."""
    parts = [re.escape(literal) + (_ID if name == "id" else "") for literal, name, _, _ in string.Formatter().parse(pattern)]
    return re.fullmatch("".join(parts), key) is not None
