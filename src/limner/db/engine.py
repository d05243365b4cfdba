"""Open the database, apply migrations, and hand out sessions.

SQLite is opened in WAL mode with foreign keys on and a busy timeout, so a
``limner status`` can read while ``limner generate`` writes.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import Connection, Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.exc import OperationalError

from limner.errors import LimnerError

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

MIGRATIONS = str(Path(__file__).with_name("migrations"))
#: the newest migration's revision (a test checks it is Alembic's head): a database already at it is
#: opened without importing Alembic, which would cost more than the rest of a ``limner status``
SCHEMA_HEAD = "0005"


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
            if inspect(conn).get_table_names():
                return False
        version = Table("alembic_version", MetaData(), Column("version_num", String(32), nullable=False),
                        PrimaryKeyConstraint("version_num", name="alembic_version_pkc"))
        try:
            with self.engine.begin() as conn:
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


def create_db_engine(url: str) -> Engine:
    sa_url = make_url(url)
    if sa_url.get_backend_name() == "sqlite":
        db = sa_url.database
        if db and db != ":memory:":
            Path(db).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(sa_url, connect_args={"timeout": 30})
        event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    return create_engine(sa_url, pool_pre_ping=True)


def open_database(url: str, *, migrate: bool = True) -> Database:
    try:
        database = Database(create_db_engine(url))
        if migrate:
            database.migrate()
    except OperationalError as exc:
        safe = make_url(url).render_as_string(hide_password=True)
        raise LimnerError(f"cannot open database {safe}: {exc.orig}") from None
    return database
