"""Write each published image's URLs back to the app's own events table.

The seed's schema::

    ALTER TABLE timeline_events
      ADD COLUMN image_url TEXT,
      ADD COLUMN image_cdn_url TEXT,
      ADD COLUMN image_generated_at TIMESTAMP;

``[sync] events_database_url`` (any SQLAlchemy URL: Postgres/Supabase, SQLite, ...;
best given as ``LIMNER_SYNC_EVENTS_DATABASE_URL`` in the environment or ``.env``
since it may hold a password), ``events_table`` and ``events_id_column`` say where.
Only rows whose values change are written, in one transaction.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import MetaData, Table, create_engine, select, update
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, NoSuchModuleError, NoSuchTableError, SQLAlchemyError

from limner.errors import ConfigError, LimnerError

COLUMNS = ("image_url", "image_cdn_url", "image_generated_at")


@dataclass
class WriteBackResult:
    updated: int = 0
    unchanged: int = 0
    not_found: list[str] = field(default_factory=list)


def _when(value: str | None) -> dt.datetime | None:
    if not value:
        return None
    return dt.datetime.fromisoformat(value.replace("Z", "+00:00")).replace(tzinfo=None)


def write_back(url: str, table_name: str, id_column: str, entries: dict[str, dict[str, Any]]) -> WriteBackResult:
    """Set image_url, image_cdn_url and image_generated_at for every entry found in the table (``entries``: id ->
    ``{"image_url", "cdn_url", "generated_at"}``, absolute URLs)."""
    try:
        safe_url = make_url(url).render_as_string(hide_password=True)
        engine = create_engine(url)
    except (ArgumentError, NoSuchModuleError, ImportError) as exc:
        raise ConfigError(f"[sync] events_database_url is not a usable database URL: {type(exc).__name__}") from None
    result = WriteBackResult()
    try:
        try:
            table = Table(table_name, MetaData(), autoload_with=engine)
        except NoSuchTableError:
            raise ConfigError(f"events table {table_name!r} not found in {safe_url} ([sync] events_table)") from None
        missing = [c for c in (id_column, *COLUMNS) if c not in table.c]
        if missing:
            raise ConfigError(
                f"events table {table_name!r} lacks column(s) {', '.join(missing)}; add them, e.g. "
                f"ALTER TABLE {table_name} ADD COLUMN image_url TEXT, ADD COLUMN image_cdn_url TEXT, "
                "ADD COLUMN image_generated_at TIMESTAMP"
            )
        key = table.c[id_column]
        with engine.begin() as conn:
            current = {
                str(row[0]): tuple(row[1:])
                for row in conn.execute(select(key, *(table.c[c] for c in COLUMNS)).where(key.in_(list(entries))))
            }
            for entry_id, entry in sorted(entries.items()):
                if entry_id not in current:
                    result.not_found.append(entry_id)
                    continue
                values = (entry["image_url"], entry["cdn_url"], _when(entry.get("generated_at")))
                if current[entry_id] == values:
                    result.unchanged += 1
                    continue
                conn.execute(update(table).where(key == entry_id).values(dict(zip(COLUMNS, values))))
                result.updated += 1
    except LimnerError:
        raise
    except SQLAlchemyError as exc:
        raise LimnerError(f"cannot write back to {safe_url} table {table_name!r}: {type(exc).__name__}: {exc.orig if hasattr(exc, 'orig') else exc}") from None
    finally:
        engine.dispose()
    return result


__all__ = ["COLUMNS", "WriteBackResult", "write_back"]
