"""Open the database, apply migrations, and hand out sessions.

SQLite is opened in WAL mode with foreign keys on and a busy timeout, so a
``limner status`` can read while ``limner generate`` writes.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import Connection, Engine, create_engine, event
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import OperationalError, SQLAlchemyError, StatementError

from limner.errors import ConfigError, LimnerError

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

MIGRATIONS = str(Path(__file__).with_name("migrations"))
#: the newest migration's revision (a test checks it is Alembic's head): a database already at it is
#: opened without importing Alembic, which would cost more than the rest of a ``limner status``
SCHEMA_HEAD = "0011"


def _sqlite_pragmas(dbapi_connection, _record) -> None:  # type: ignore[no-untyped-def]
    cur = dbapi_connection.cursor()
    cur.execute("PRAGMA busy_timeout=30000")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.execute("PRAGMA synchronous=NORMAL")
    _use_wal(cur)
    cur.close()


def _use_wal(cur, wait_s: float = 30.0) -> None:  # type: ignore[no-untyped-def]
    """Switch the database to WAL (it stays so: every later connection finds it set). The switch takes an
    exclusive lock and SQLite answers "database is locked" at once, without its busy handler, when
    another process opens the same new database at that moment: wait for it, like any other lock."""
    import sqlite3
    import time

    deadline = time.monotonic() + wait_s
    delay = 0.005
    while True:
        try:
            if cur.execute("PRAGMA journal_mode").fetchone()[0].lower() == "wal":
                return
            cur.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() > deadline:
                raise
            time.sleep(delay)
            delay = min(delay * 2, 0.1)


def alembic_config(engine: Engine):  # type: ignore[no-untyped-def]
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", MIGRATIONS)
    cfg.set_main_option("sqlalchemy.url", engine.url.render_as_string(hide_password=False).replace("%", "%%"))
    return cfg


class Database:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    @contextmanager
    def session(self, *, write: bool = False) -> Iterator[Session]:
        """A session that commits on success and rolls back on error.

        ``write=True`` on SQLite takes the write lock at once (``BEGIN IMMEDIATE``): a transaction that
        reads first and writes later would otherwise fail with "database is locked", without waiting,
        whenever another process (a second run) committed in between.

        Sessions are for the code that works with rows as objects; the ORM is imported at the first
        (a run's statements and ``limner status`` need none: :mod:`limner.db.tables`)."""
        from sqlalchemy.orm import Session

        with Session(self.engine, expire_on_commit=False) as s:
            try:
                if write and self.engine.dialect.name == "sqlite":
                    s.connection().exec_driver_sql("BEGIN IMMEDIATE")
                yield s
                s.commit()
            except BaseException:
                s.rollback()
                raise

    @contextmanager
    def write(self) -> Iterator[Connection]:
        """A plain connection in a write transaction (``BEGIN IMMEDIATE`` on SQLite, as :meth:`session`
        with ``write=True``) that commits on success and rolls back on error: for the statements of
        :mod:`limner.db.statements`, which need no session."""
        with self.engine.connect() as conn:
            try:
                if self.engine.dialect.name == "sqlite":
                    conn.exec_driver_sql("BEGIN IMMEDIATE")
                yield conn
                conn.commit()
            except BaseException:
                conn.rollback()
                raise

    def schema_revision(self) -> str | None:
        """The revision recorded in ``alembic_version`` (None: a new or unversioned database)."""
        from sqlalchemy import inspect, text

        with self.engine.connect() as conn:
            if not inspect(conn).has_table("alembic_version"):
                return None
            return conn.execute(text("SELECT version_num FROM alembic_version")).scalar()

    def migrate(self) -> None:
        if self.schema_revision() == SCHEMA_HEAD:
            return
        with self._migration_lock():  # two processes opening a new database at once: one migrates
            revision = self.schema_revision()
            if revision == SCHEMA_HEAD:
                return
            # a new SQLite database (every new project's first command) is created without Alembic;
            # PostgreSQL goes through the migrations: creating it from the models would make SQLAlchemy
            # mark the cycle-breaking foreign key as "add later" for the rest of the process
            if revision is None and self.engine.dialect.name == "sqlite" and self._create_at_head():
                return
            self._upgrade()

    @contextmanager
    def _migration_lock(self) -> Iterator[None]:
        """Serialise migrations across processes: a lock file beside a SQLite database, an advisory
        lock on PostgreSQL (SQLite runs DDL outside transactions, so two creators would interleave)."""
        url = self.engine.url
        if url.get_backend_name() == "sqlite" and url.database and url.database != ":memory:":
            try:
                import fcntl
            except ImportError:  # pragma: no cover - not POSIX: no cross-process lock
                yield
                return
            with open(f"{url.database}.migrate-lock", "a+b") as fh:
                fcntl.flock(fh, fcntl.LOCK_EX)
                try:
                    yield
                finally:
                    fcntl.flock(fh, fcntl.LOCK_UN)
        elif url.get_backend_name() == "postgresql":
            from sqlalchemy import text

            with self.engine.connect() as conn:
                conn.execute(text("SELECT pg_advisory_lock(4242001)"))
                try:
                    yield
                finally:
                    conn.execute(text("SELECT pg_advisory_unlock(4242001)"))
                    conn.commit()
        else:
            yield

    def _create_at_head(self) -> bool:
        """A new, empty database: create the tables from the models and stamp them at the head revision
        in one transaction (Alembic's recommended way to start a database; a test checks that the result
        equals running every migration). False when the database is not empty, or another process
        created it meanwhile."""
        from sqlalchemy import Column, MetaData, PrimaryKeyConstraint, String, Table, inspect
        from sqlalchemy.exc import DatabaseError

        from limner.db.tables import metadata

        with self.engine.connect() as conn:
            existing = inspect(conn).get_table_names()
            leftover = existing and _left_by_a_killed_creation(conn, existing)
            if existing and not leftover:
                return False
        version = Table("alembic_version", MetaData(), Column("version_num", String(32), nullable=False),
                        PrimaryKeyConstraint("version_num", name="alembic_version_pkc"))
        try:
            # self.write(): an explicit BEGIN on SQLite, whose driver (pysqlite) begins no transaction before
            # DDL and would commit each CREATE TABLE on its own: a process killed half-way left tables
            # without a revision, which no later command could open ("table ... already exists")
            with self.write() as conn:
                # tables an earlier version (which created them one autocommitted statement at a time) left
                # when its first command was killed: empty, and exactly ours; made again below
                for table in [*reversed(metadata.sorted_tables), version]:
                    if table.name in (leftover or ()):
                        table.drop(conn)
                # one table at a time, every foreign key inline: create_all would leave out the constraint
                # that breaks the entries <-> renders cycle (use_alter), since SQLite has no ALTER ... ADD
                # CONSTRAINT; SQLite accepts a reference to a table created later
                for table in metadata.sorted_tables:
                    table.create(conn)
                version.create(conn)
                conn.execute(version.insert().values(version_num=SCHEMA_HEAD))
        except DatabaseError:  # created by another process at the same moment: check what it left
            return self.schema_revision() == SCHEMA_HEAD
        return True

    def _upgrade(self) -> None:
        from alembic import command
        from alembic.runtime.migration import MigrationContext
        from alembic.script import ScriptDirectory

        cfg = alembic_config(self.engine)
        head = ScriptDirectory.from_config(cfg).get_current_head()
        with self.engine.connect() as conn:
            current = MigrationContext.configure(conn).get_current_revision()
        if current == head:
            return
        with self.engine.begin() as conn:
            cfg.attributes["connection"] = conn
            command.upgrade(cfg, "head")

    def close(self) -> None:
        self.engine.dispose()

    def __repr__(self) -> str:
        return f"<Database {self.engine.url.render_as_string(hide_password=True)}>"


#: the setting a database URL comes from, as error messages name it
SETTING = "database.url (LIMNER_DATABASE_URL)"
#: query parameters of a URL that may hold a secret (``?password=...``, ``?sslkey=...``): masked in messages
_SECRET_QUERY = re.compile(r"(?i)([?&][^=&#]*(?:pass|secret|token|key|auth)[^=&#]*=)[^&#]*")
_USERINFO = re.compile(r"^((?:[^:/?#]*://)?[^:@/?#]*:).*@")


def _left_by_a_killed_creation(conn, names: list[str]) -> list[str]:  # type: ignore[no-untyped-def]
    """The tables of an unversioned database when they are what a first command killed while creating them
    left (earlier versions committed each CREATE TABLE on its own): only Limner's tables, with Limner's
    columns, all empty. Anything else (another program's tables, any row) is left alone: []."""
    from sqlalchemy import func, inspect, select

    from limner.db.tables import metadata

    insp = inspect(conn)
    for name in names:
        if name == "alembic_version":  # empty (the caller found no revision): left by a failed upgrade
            continue
        table = metadata.tables.get(name)
        if table is None or {c["name"] for c in insp.get_columns(name)} != {c.name for c in table.columns}:
            return []
        if conn.execute(select(func.count()).select_from(table)).scalar():
            return []
    return names


def mask_url(url: str) -> str:
    """``url`` fit for a message: the password of ``user:password@`` and the values of query parameters
    that may hold a secret are replaced by ``***``. The password runs to the last ``@`` (it may hold ``/``,
    ``?``, ``#`` or ``@``, which SQLAlchemy's own parser cuts or leaks), whether SQLAlchemy can parse the
    URL or not."""
    masked = _USERINFO.sub(r"\1***@", url.strip())
    return _SECRET_QUERY.sub(r"\1***", masked)


def parse_url(url: str) -> URL:
    """``url`` parsed; one SQLAlchemy cannot parse is a :class:`ConfigError` naming the setting."""
    from sqlalchemy.exc import ArgumentError

    try:
        return make_url(url)
    except (ArgumentError, ValueError):
        raise ConfigError(f"{SETTING}: {mask_url(url)!r} is not a database URL",
                          hint="use sqlite:///path/to/limner.db or postgresql+psycopg://user@host/db "
                               "(see docs/configuration.md)") from None


def _sqlite_file(sa_url: URL) -> Path | None:
    """The file of a SQLite URL (None: in memory, or not SQLite)."""
    db = sa_url.database
    if sa_url.get_backend_name() != "sqlite" or not db or db == ":memory:" or db.startswith("file:"):
        return None
    return Path(db)


def _check_folder(url: str, file: Path, *, create: bool) -> None:
    """Create the folder of the SQLite ``file`` (``create``), or check that it could be created (the nearest
    existing ancestor is a folder): a :class:`ConfigError` naming the setting when it cannot be."""
    import errno

    problem: OSError | None = None
    try:
        nearest = next((p for p in file.parents if p.exists()), None)
        if nearest is not None and not nearest.is_dir():
            problem = NotADirectoryError(errno.ENOTDIR, "not a folder", str(nearest))
        elif create:
            file.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        problem = exc
    if problem is not None:
        where = f" ({problem.filename})" if problem.filename else ""
        raise ConfigError(f"{SETTING} {mask_url(url)!r}: cannot create the folder of the database: "
                          f"{problem.strerror or problem}{where}",
                          hint="point database.url at a file in a folder you can write to")


def create_db_engine(url: str) -> Engine:
    """The engine of ``url`` (a SQLite file's folder is created); a bad URL, an unknown kind of database or
    a SQLite file whose folder cannot be created is a :class:`ConfigError` naming the setting (the URL masked)."""
    from sqlalchemy.exc import NoSuchModuleError

    sa_url = parse_url(url)
    file = _sqlite_file(sa_url)
    if file is not None:
        _check_folder(url, file, create=True)
    try:
        if sa_url.get_backend_name() == "sqlite":
            engine = create_engine(sa_url, connect_args={"timeout": 30})
            event.listen(engine, "connect", _sqlite_pragmas)
            return engine
        return create_engine(sa_url, pool_pre_ping=True)
    except NoSuchModuleError:
        raise ConfigError(f"{SETTING}: {mask_url(url)!r} names an unknown kind of database "
                          f"{sa_url.drivername!r}",
                          hint="Limner keeps its state in SQLite (sqlite:///path/to/limner.db) or PostgreSQL "
                               "(postgresql+psycopg://user@host/db)") from None
    except ImportError as exc:
        raise LimnerError(f"{SETTING}: the database driver for {sa_url.drivername!r} is not installed ({exc.name or exc})",
                          hint="for PostgreSQL use postgresql+psycopg://user@host/db and pip install 'limner[postgres]'"
                          if sa_url.get_backend_name() == "postgresql" else
                          "Limner keeps its state in SQLite (sqlite:///path/to/limner.db) or PostgreSQL "
                          "(postgresql+psycopg://user@host/db)") from None


def empty_database() -> Database:
    """An empty state database in memory, at the head revision: what a read-only command reads when the
    project's SQLite file does not exist yet (so that it creates neither the file nor its folder)."""
    from sqlalchemy.pool import StaticPool

    # one connection shared by every thread (a database thread reads too): an in-memory database is per connection
    engine = create_engine("sqlite://", poolclass=StaticPool, connect_args={"check_same_thread": False})
    database = Database(engine)
    database._create_at_head()
    return database


def open_database(url: str, *, migrate: bool = True, create: bool = True) -> Database:
    """The state database of ``url``, migrated to the head (``migrate``).

    ``create=False`` (a command that changes nothing): a SQLite file that does not exist is neither created
    nor given its folder; an empty database in memory stands in for it."""
    if not create:
        file = _sqlite_file(parse_url(url))
        if file is not None and not file.exists():
            _check_folder(url, file, create=False)  # a path that could never be created is still an error
            return empty_database()
    try:
        database = Database(create_db_engine(url))
    except OperationalError as exc:
        raise LimnerError(f"cannot open database {mask_url(url)}: {exc.orig}") from None
    if migrate:
        try:
            database.migrate()
        except OperationalError as exc:
            raise LimnerError(f"cannot open database {mask_url(url)}: {exc.orig}") from None
        except SQLAlchemyError as exc:  # a role that may read but not alter the tables, an older schema
            cause = exc.orig if isinstance(exc, StatementError) and exc.orig is not None else exc
            raise LimnerError(f"cannot bring the state database {mask_url(url)} up to this version of Limner's schema "
                              f"(revision {SCHEMA_HEAD}): {type(cause).__name__}: {str(cause).splitlines()[0]}",
                              hint="run any limner command once as a role that may create and alter its tables "
                                   "(the upgrade is done once, then read-only roles work again)") from None
    return database
