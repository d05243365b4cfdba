"""The manifest the app reads: per entry id, its size, catalogue fields, variant keys and inline placeholders.

The output is deterministic (sorted, no run timestamp) and holds no machine path: objects are named by
their storage key, relative to the top-level ``base`` (the public URL of the storage, ``null`` for a
local folder without ``storage.public_base_url``) and ``cdn_base`` (``storage.cdn_base_url``). So
re-syncing with nothing changed, on any machine and from any folder, leaves the file (and the app's
git diff) untouched. The frontend helper (``clients/js``, npm ``limner-images``) joins base and key,
and derives ``srcset`` strings from the variant lists.
"""

from __future__ import annotations

from typing import Any

from limner.catalog import Entry
from limner.db.models import Render
from limner.db.repository import as_utc_iso
from limner.errors import ConfigError
from limner.storage import Storage
from limner.sync.aliases import alias_source

MANIFEST_VERSION = 2
FORMAT_ORDER = ("avif", "webp", "jpeg")
PLACEHOLDER_EXT = {"webp": "webp", "jpeg": "jpg"}
#: a storage key: relative, no scheme, no ``..``
_KEY_PATTERN = r"^(?!/)(?!(?:.*/)?\.\.(?:/|$))[^\s:?#]+$"
_KEY = {"type": "string", "pattern": _KEY_PATTERN}
_BASE = {"type": ["string", "null"], "pattern": "^[a-zA-Z][a-zA-Z0-9+.-]*://\\S*/$"}
_PROBE = "limner-base-probe"

MANIFEST_SCHEMA: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "$id": f"https://limner.dev/schema/manifest-{MANIFEST_VERSION}.json",
    "title": "LimnerManifest",
    "description": "Limner image manifest: what an app needs to show each catalogue entry's image.",
    "type": "object",
    "required": ["version", "base", "cdn_base", "sizes", "entries"],
    "additionalProperties": False,
    "properties": {
        "$schema": {"type": "string"},
        "version": {"const": MANIFEST_VERSION},
        "base": {**_BASE, "description": "Public URL of the storage (ends in /); keys are relative to it. "
                                          "null: a local folder with no public URL (serve it with `limner media serve`)."},
        "cdn_base": {**_BASE, "description": "storage.cdn_base_url (ends in /), or null when no CDN is set."},
        "sizes": {"type": "string", "minLength": 1, "description": "Recommended `sizes` attribute."},
        "entries": {
            "type": "object",
            "propertyNames": {"pattern": "^[a-z0-9][a-z0-9-]{0,127}$"},
            "additionalProperties": {"$ref": "#/$defs/entry"},
        },
    },
    "$defs": {
        "widths": {
            "title": "LimnerWidthKeys",
            "description": "Variant key by width in pixels (a decimal string), widths ascending.",
            "type": "object",
            "minProperties": 1,
            "propertyNames": {"pattern": "^[1-9][0-9]{0,4}$"},
            "additionalProperties": _KEY,
        },
        "entry": {
            "title": "LimnerEntry",
            "type": "object",
            "additionalProperties": False,
            "required": ["id", "order", "width", "height", "alt", "placeholder", "variants", "image_key", "master_key",
                         "blurhash", "thumbhash", "color", "generated_at", "provider", "model"],
            "properties": {
                "id": {"type": "string"},
                "order": {"type": "integer", "minimum": 0, "description": "Position of the entry in the catalogue (0-based)."},
                "title": {"type": "string"},
                "year": {"type": "integer", "description": "The catalogue's year (negative: BCE)."},
                "date": {"type": "string", "description": "The catalogue's date label."},
                "era": {"type": "string"},
                "width": {"type": "integer", "minimum": 1},
                "height": {"type": "integer", "minimum": 1},
                "alt": {"type": "string"},
                "placeholder": {"type": "string", "description": "URL path of the committed git placeholder"},
                "placeholder_width": {"type": "integer", "minimum": 1},
                "placeholder_height": {"type": "integer", "minimum": 1},
                "variants": {
                    "title": "LimnerVariants",
                    "type": "object",
                    "description": "Per format (avif, webp, jpeg), the variant keys by width in pixels, widths ascending.",
                    "additionalProperties": False,
                    "minProperties": 1,
                    "properties": {fmt: {"$ref": "#/$defs/widths"} for fmt in FORMAT_ORDER},
                },
                "image_key": {**_KEY, "description": "Key of the largest JPEG variant (else WebP, else any): a single fallback src."},
                "master_key": {**_KEY, "description": "Key of the full-resolution master."},
                "alias_key": {**_KEY, "description": "Stable key of the entry's image (storage.alias_pattern)."},
                "blurhash": {"type": "string", "minLength": 6},
                "thumbhash": {"type": "string", "minLength": 4},
                "color": {"type": "string", "pattern": "^#[0-9a-f]{6}$"},
                "generated_at": {"type": "string", "format": "date-time"},
                "provider": {"type": "string"},
                "model": {"type": "string"},
                "seed": {"type": "integer"},
                "fingerprint": {"type": "string", "pattern": "^[0-9a-f]{64}$"},
            },
        },
    },
}


def storage_base(storage: Storage) -> str | None:
    """The public URL every key of ``storage`` is relative to (ending in ``/``), or None when the storage
    has no http(s) URL (a local folder without ``public_base_url``: its URLs would be ``file://`` paths)."""
    probe = storage.url(_PROBE)
    if not probe.endswith(_PROBE) or not probe.startswith(("http://", "https://")):
        return None
    return probe[: -len(_PROBE)]


def cdn_base(url: str | None) -> str | None:
    return url.rstrip("/") + "/" if url else None


def check_base(setting: str, base: str | None) -> None:
    """Refuse a base the manifest (committed, bundled into the app) must not carry: a ``user:password@`` or a
    query or fragment (a signature, a token; ``base + key`` would also put the key inside it). The message
    names the setting, never the URL."""
    if base is None:
        return
    from urllib.parse import urlsplit

    parts = urlsplit(base)
    what = ("a user name or password" if parts.username is not None or parts.password is not None
            else "a query string" if parts.query or "?" in base else "a fragment" if parts.fragment or "#" in base else None)
    if what:
        raise ConfigError(f"{setting} holds {what}: the manifest, which the app commits and ships, would carry it, "
                          "and keys are appended to the base",
                          hint=f"set {setting} to the plain public URL the keys are relative to (scheme, host, path); "
                               "serve private images through a URL that needs no credentials in it")


def default_sizes(entries: dict[str, dict[str, Any]]) -> str:
    """``sizes`` for the largest variant: full viewport width on small screens, that width above."""
    widest = max((int(w) for e in entries.values() for keys in e["variants"].values() for w in keys), default=0)
    return f"(min-width: {widest}px) {widest}px, 100vw" if widest else "100vw"


def manifest_entry(entry: Entry, render: Render, *, order: int, placeholder_url: str,
                   alias_key: str | None = None) -> dict[str, Any]:
    variants: dict[str, dict[str, str]] = {}
    for fmt in FORMAT_ORDER:
        matching = sorted((v for v in render.variants if v.format == fmt), key=lambda v: v.width)
        if matching:
            variants[fmt] = {str(v.width): v.key for v in matching}
    best = alias_source(render, "jpeg") or alias_source(render, "webp") or max(render.variants, key=lambda v: v.width)
    doc: dict[str, Any] = {"id": entry.id, "order": order, "title": entry.title}
    for name in ("year", "date", "era"):
        value = getattr(entry, name)
        if value is not None:
            doc[name] = value
    doc.update({
        "width": render.width,
        "height": render.height,
        "alt": entry.alt_text,
        "placeholder": placeholder_url,
        "placeholder_width": render.placeholder_width,
        "placeholder_height": render.placeholder_height,
        "variants": variants,
        "image_key": best.key,
        "master_key": render.master_key,
    })
    if alias_key:
        doc["alias_key"] = alias_key
    doc.update({
        "blurhash": render.blurhash,
        "thumbhash": render.thumbhash,
        "color": render.dominant_color,
        "generated_at": as_utc_iso(render.published_at or render.created_at),
        "provider": render.provider,
        "model": render.model,
        "seed": render.seed,
        "fingerprint": render.fingerprint,
    })
    return doc


def build_manifest(entries: dict[str, dict[str, Any]], schema_ref: str | None = None, *, base: str | None = None,
                   cdn: str | None = None, sizes: str | None = None) -> dict[str, Any]:
    doc: dict[str, Any] = {}
    if schema_ref:
        doc["$schema"] = schema_ref
    doc["version"] = MANIFEST_VERSION
    doc["base"] = base
    doc["cdn_base"] = cdn
    doc["sizes"] = sizes or default_sizes(entries)
    doc["entries"] = {k: entries[k] for k in sorted(entries)}
    return doc


def schema_text() -> str:
    """The schema file's text, as ``limner sync`` writes it (and as ``clients/js/manifest.schema.json`` holds it:
    ``python -c "from limner.sync.manifest import schema_text; print(schema_text(), end='')" > clients/js/manifest.schema.json``)."""
    import json

    return json.dumps(MANIFEST_SCHEMA, ensure_ascii=False, indent=2) + "\n"
