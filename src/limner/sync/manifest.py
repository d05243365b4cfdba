"""The manifest the app reads: per entry id, its sizes, URLs, srcsets and inline placeholders.

The output is deterministic (sorted, no run timestamp), so re-syncing with
nothing changed leaves the file, and the app's git diff, untouched.
"""

from __future__ import annotations

from typing import Any

from limner.catalog import Entry
from limner.db.models import Render
from limner.db.repository import as_utc_iso
from limner.storage import Storage
from limner.sync.aliases import alias_url

MANIFEST_VERSION = 1
FORMAT_ORDER = ("avif", "webp", "jpeg")
PLACEHOLDER_EXT = {"webp": "webp", "jpeg": "jpg"}

_SOURCE = {
    "type": "object",
    "required": ["url", "width", "height"],
    "additionalProperties": False,
    "properties": {"url": {"type": "string"}, "width": {"type": "integer", "minimum": 1}, "height": {"type": "integer", "minimum": 1}},
}

MANIFEST_SCHEMA: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "$id": "https://limner.dev/schema/manifest-1.json",
    "title": "Limner image manifest",
    "type": "object",
    "required": ["version", "entries"],
    "additionalProperties": False,
    "properties": {
        "$schema": {"type": "string"},
        "version": {"const": MANIFEST_VERSION},
        "entries": {
            "type": "object",
            "propertyNames": {"pattern": "^[a-z0-9][a-z0-9-]{0,127}$"},
            "additionalProperties": {
                "type": "object",
                "additionalProperties": False,
                "required": ["id", "width", "height", "alt", "placeholder", "srcset", "sources", "master_url", "image_url",
                             "cdn_url", "blurhash", "thumbhash", "color", "generated_at", "provider", "model"],
                "properties": {
                    "id": {"type": "string"},
                    "title": {"type": "string"},
                    "width": {"type": "integer", "minimum": 1},
                    "height": {"type": "integer", "minimum": 1},
                    "alt": {"type": "string"},
                    "placeholder": {"type": "string", "description": "URL path of the committed git placeholder"},
                    "placeholder_width": {"type": "integer", "minimum": 1},
                    "placeholder_height": {"type": "integer", "minimum": 1},
                    "srcset": {
                        "type": "object",
                        "propertyNames": {"enum": list(FORMAT_ORDER)},
                        "additionalProperties": {"type": "string", "pattern": "^\\S+ \\d+w(, \\S+ \\d+w)*$"},
                    },
                    "sources": {"type": "object", "propertyNames": {"enum": list(FORMAT_ORDER)},
                                "additionalProperties": {"type": "array", "minItems": 1, "items": _SOURCE}},
                    "master_url": {"type": "string"},
                    "image_url": {"type": "string", "description": "largest JPEG variant at the public base URL"},
                    "cdn_url": {"type": "string", "description": "the same through the CDN (image_url when no CDN is set)"},
                    "alias_url": {"type": "string", "description": "stable URL of the entry's image (storage.alias_pattern)"},
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
    },
}


def _cdn(storage: Storage, cdn_base: str | None, key: str) -> str:
    return f"{cdn_base.rstrip('/')}/{key}" if cdn_base else storage.url(key)


def manifest_entry(entry: Entry, render: Render, *, storage: Storage, cdn_base: str | None, placeholder_url: str,
                   alias_pattern: str | None = None) -> dict[str, Any]:
    by_format: dict[str, list[dict[str, Any]]] = {}
    for v in sorted(render.variants, key=lambda v: (v.format, v.width)):
        by_format.setdefault(v.format, []).append({"url": storage.url(v.key), "width": v.width, "height": v.height, "_key": v.key})
    sources = {f: [{k: s[k] for k in ("url", "width", "height")} for s in by_format[f]] for f in FORMAT_ORDER if f in by_format}
    srcset = {f: ", ".join(f"{s['url']} {s['width']}w" for s in items) for f, items in sources.items()}
    best = (by_format.get("jpeg") or by_format.get("webp") or next(iter(by_format.values())))[-1]
    doc = {
        "id": entry.id,
        "title": entry.title,
        "width": render.width,
        "height": render.height,
        "alt": entry.alt_text,
        "placeholder": placeholder_url,
        "placeholder_width": render.placeholder_width,
        "placeholder_height": render.placeholder_height,
        "srcset": srcset,
        "sources": sources,
        "master_url": storage.url(render.master_key),
        "image_url": best["url"],
        "cdn_url": _cdn(storage, cdn_base, best["_key"]),
        "blurhash": render.blurhash,
        "thumbhash": render.thumbhash,
        "color": render.dominant_color,
        "generated_at": as_utc_iso(render.published_at or render.created_at),
        "provider": render.provider,
        "model": render.model,
        "seed": render.seed,
        "fingerprint": render.fingerprint,
    }
    alias = alias_url(storage, alias_pattern, render)
    if alias:
        doc["alias_url"] = alias
    return doc


def build_manifest(entries: dict[str, dict[str, Any]], schema_ref: str | None = None) -> dict[str, Any]:
    doc: dict[str, Any] = {}
    if schema_ref:
        doc["$schema"] = schema_ref
    doc["version"] = MANIFEST_VERSION
    doc["entries"] = {k: entries[k] for k in sorted(entries)}
    return doc
