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
import re
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import DateTime, Integer, MetaData, String, Table, Uuid, create_engine, false, select, update
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, NoSuchModuleError, NoSuchTableError, SQLAlchemyError

from limner.errors import ConfigError, LimnerError

COLUMNS = ("image_url", "image_cdn_url", "image_generated_at")
#: ids looked up per query (PostgreSQL takes at most 65,535 parameters in one statement; SQLite 32,766 or more)
LOOKUP_SLICE = 5000


@dataclass
class WriteBackResult:
    updated: int = 0
    unchanged: int = 0
    not_found: list[str] = field(default_factory=list)


def _when(value: str | None, *, aware: bool) -> dt.datetime | None:
    """The manifest's ``generated_at`` (ISO 8601, UTC) as the column takes it: aware (UTC) for a
    ``TIMESTAMP WITH TIME ZONE`` column, naive UTC for a plain ``TIMESTAMP``."""
    if not value:
        return None
    when = dt.datetime.fromisoformat(value.replace("Z", "+00:00")).astimezone(dt.UTC)
    return when if aware else when.replace(tzinfo=None)


def _naive_utc(value: Any) -> Any:
    """A datetime as naive UTC; a column's text that is an ISO 8601 time (what the driver wrote into a ``TEXT``
    column) as that datetime; anything else as it is."""
    if isinstance(value, str):
        try:
            value = dt.datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
        except ValueError:
            return value
    if isinstance(value, dt.datetime) and value.tzinfo:
        return value.astimezone(dt.UTC).replace(tzinfo=None)
    return value


def _same_instant(current: Any, new: Any) -> bool:
    """Whether a column's ``current`` value already holds ``new``: a datetime compared as the instant the column
    keeps of it (a ``timestamptz`` reads back in the session's time zone; ``TIMESTAMP(0)`` or ``DATETIME`` keep
    whole seconds, rounded; ``TEXT`` keeps the driver's text; ``DATE`` the day), anything else by equality."""
    if isinstance(new, dt.datetime):
        current, new = _naive_utc(current), _naive_utc(new)
        if isinstance(current, dt.datetime):
            return abs(current - new) < dt.timedelta(seconds=1)
        if isinstance(current, dt.date):
            return current == new.date()
        return False
    return bool(current == new)


_COLUMN_TYPES = {"image_url": "TEXT", "image_cdn_url": "TEXT", "image_generated_at": "TIMESTAMP"}


def _add_columns(dialect: str, table: str, columns: list[str]) -> str:
    """The SQL that adds ``columns``: one ALTER TABLE with several ADD COLUMN where the database takes it,
    one statement per column on SQLite (which takes one per ALTER TABLE)."""
    adds = [f"ADD COLUMN {c} {_COLUMN_TYPES[c]}" for c in columns]
    if dialect == "sqlite":
        return " ".join(f"ALTER TABLE {table} {add};" for add in adds)
    return f"ALTER TABLE {table} " + ", ".join(adds) + ";"


def _missing_sqlite_file(url: Any) -> Path | None:
    """The absolute path of the file a SQLite URL names when there is no such file (SQLite would create it, empty, on
    connecting), else None: another database, an in-memory one, or a ``file:`` URI (its own options decide)."""
    if url.get_backend_name() != "sqlite" or not url.database or url.database == ":memory:":
        return None
    if url.database.startswith("file:") or str(url.query.get("uri", "")).lower() in ("true", "1"):
        return None
    path = Path(url.database)
    return None if path.exists() else path.absolute()


class EventsTable:
    """The app's events table, opened and checked before ``limner sync`` writes anything (a wrong URL, table
    or column is then an error that changed nothing); :meth:`write` sets the URLs at the end."""

    def __init__(self, url: str, table_name: str, id_column: str) -> None:
        try:
            parsed = make_url(url)
            self.safe_url = parsed.render_as_string(hide_password=True)
            missing_file = _missing_sqlite_file(parsed)
            if missing_file is None:
                self.engine = create_engine(url)
        except (ArgumentError, NoSuchModuleError, ImportError, ValueError) as exc:  # ValueError: a bad port
            raise ConfigError(f"[sync] events_database_url is not a usable database URL: {type(exc).__name__}") from None
        if missing_file is not None:  # connecting would create an empty database there
            raise ConfigError(f"[sync] events_database_url names the SQLite file {missing_file}, which does not exist",
                              hint="give the path of the app's database (sqlite:////abs/path.db; a relative path is read "
                                   "from the project folder); sync writes into its existing events table and creates none")
        self.table_name, self.id_column = table_name, id_column
        schema, _, name = table_name.rpartition(".")  # "app.timeline_events": a table in another schema
        try:
            try:
                self.table = Table(name, MetaData(), schema=schema or None, autoload_with=self.engine)
            except NoSuchTableError:
                raise ConfigError(f"events table {table_name!r} not found in {self.safe_url} ([sync] events_table"
                                  "; a table in another schema is written schema.table)") from None
            if id_column not in self.table.c:  # the setting names another column: adding one would not help
                raise ConfigError(f"events table {table_name!r} has no column {id_column!r} to find the catalogue ids in "
                                  f"(its columns: {', '.join(self.table.c.keys())})",
                                  hint="set sync.events_id_column (LIMNER_SYNC_EVENTS_ID_COLUMN) to the column that "
                                       "holds the catalogue ids")
            missing = [c for c in COLUMNS if c not in self.table.c]
            if missing:
                raise ConfigError(f"events table {table_name!r} lacks column(s) {', '.join(missing)}; add them, e.g. "
                                  + _add_columns(self.engine.dialect.name, table_name, missing))
            self._check_updatable()
        except LimnerError:
            self.close()
            raise
        except SQLAlchemyError as exc:
            self.close()
            raise self._error(exc) from None

    def _check_updatable(self) -> None:
        """An UPDATE of the three columns that matches no row, rolled back: a view the database cannot update, or a
        role without the UPDATE privilege, is then a configuration error before any file is written."""
        statement = update(self.table).where(false()).values({c: self.table.c[c] for c in COLUMNS})
        try:
            with self.engine.connect() as conn, conn.begin() as tx:
                conn.execute(statement)
                tx.rollback()
        except SQLAlchemyError as exc:
            reason = str(exc.orig if hasattr(exc, "orig") else exc).strip().splitlines()
            raise ConfigError(f"events table {self.table_name!r} in {self.safe_url} cannot be updated: "
                              f"{type(exc).__name__}: {reason[0] if reason else ''}",
                              hint="name a table, or a view the database can update (one with an INSTEAD OF UPDATE "
                                   "trigger), in sync.events_table, and give the URL's role the UPDATE privilege") from None

    def _key_of(self, entry_id: str) -> Any:
        """A catalogue id as the id column holds it, or None when the column cannot hold it: an integer column
        holds ``42`` for ``"42"``, and nothing for ``"007"`` or ``"event-a"`` (comparing them as text failed on
        PostgreSQL, and ``'007'`` matched the row 7 on SQLite); a UUID column only ids that are UUIDs."""
        column_type = self.table.c[self.id_column].type
        if isinstance(column_type, Integer):
            number = int(entry_id) if re.fullmatch(r"0|[1-9][0-9]{0,18}", entry_id) else None
            return number if number is not None and number < 2**63 else None  # a BIGINT's 19 digits included
        if isinstance(column_type, Uuid):  # a UUID column holds an id that is one, in its usual lower-case form
            if not re.fullmatch(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}", entry_id):
                return None
            return uuid.UUID(entry_id) if column_type.as_uuid else entry_id
        return entry_id

    def check_fits(self, longest: dict[str, int]) -> None:
        """A column too short for the longest value sync may write (``longest``: column -> characters) is a
        configuration error now, before any file is written, not a failed update after."""
        for column, length in longest.items():
            column_type = self.table.c[column].type
            if isinstance(column_type, String) and column_type.length and column_type.length < length:
                raise ConfigError(f"events table {self.table_name!r}: column {column} holds {column_type.length} "
                                  f"characters, and its URLs take up to {length}",
                                  hint=f"widen it (TEXT, or VARCHAR of {length} or more)")

    def _error(self, exc: SQLAlchemyError) -> LimnerError:
        return LimnerError(f"cannot write back to {self.safe_url} table {self.table_name!r}: {type(exc).__name__}: "
                           f"{exc.orig if hasattr(exc, 'orig') else exc}")

    def write(self, entries: dict[str, dict[str, Any] | None]) -> WriteBackResult:
        """Set image_url, image_cdn_url and image_generated_at for every entry found in the table (``entries``: id ->
        ``{"image_url", "cdn_url", "generated_at"}``, absolute URLs; ``None``: the entry's image was taken down,
        its three columns are cleared), in one transaction; rows already holding those values are not written."""
        result = WriteBackResult()
        table, key = self.table, self.table.c[self.id_column]
        column_type = table.c.image_generated_at.type
        aware = isinstance(column_type, DateTime) and bool(column_type.timezone)  # TIMESTAMP WITH TIME ZONE
        try:
            with self.engine.begin() as conn:
                keys = {entry_id: self._key_of(entry_id) for entry_id in entries}
                ids, current = [k for k in keys.values() if k is not None], {}
                # read in slices: one IN list of every id passed PostgreSQL's 65,535 parameters past that many
                for i in range(0, len(ids), LOOKUP_SLICE):
                    # rstrip: a CHAR(n) column reads back padded with spaces (no catalogue id ends in one)
                    current.update((str(row[0]).rstrip(" "), tuple(row[1:])) for row in conn.execute(
                        select(key, *(table.c[c] for c in COLUMNS)).where(key.in_(ids[i:i + LOOKUP_SLICE]))))
                for entry_id, entry in sorted(entries.items()):
                    if entry_id not in current:
                        if entry is not None:  # a withdrawn entry without a row: nothing to clear
                            result.not_found.append(entry_id)
                        continue
                    values = ((None, None, None) if entry is None else
                              (entry["image_url"], entry["cdn_url"], _when(entry.get("generated_at"), aware=aware)))
                    if all(_same_instant(a, b) for a, b in zip(current[entry_id], values, strict=True)):
                        result.unchanged += 1
                        continue
                    conn.execute(update(table).where(key == keys[entry_id]).values(dict(zip(COLUMNS, values))))
                    result.updated += 1
        except SQLAlchemyError as exc:
            raise self._error(exc) from None
        return result

    def close(self) -> None:
        self.engine.dispose()


def write_back(url: str, table_name: str, id_column: str, entries: dict[str, dict[str, Any] | None]) -> WriteBackResult:
    """Open the events table, write ``entries`` (see :meth:`EventsTable.write`) and close it."""
    events = EventsTable(url, table_name, id_column)
    try:
        return events.write(entries)
    finally:
        events.close()


__all__ = ["COLUMNS", "EventsTable", "WriteBackResult", "write_back"]
