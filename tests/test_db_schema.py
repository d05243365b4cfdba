"""A new SQLite database is created from the models and stamped at the head revision; that must equal
running every migration (a new PostgreSQL database runs the migrations), and Alembic's head must be
``SCHEMA_HEAD``."""

from __future__ import annotations

import pytest
from sqlalchemy import inspect
from test_db_postgres import pg_url  # noqa: F401  (fixture)

from limner.db.engine import SCHEMA_HEAD, Database, alembic_config, create_db_engine


def schema(db: Database) -> dict:
    insp = inspect(db.engine)
    out = {}
    for table in sorted(insp.get_table_names()):
        out[table] = {
            "columns": [(c["name"], str(c["type"]).split("(")[0], c["nullable"]) for c in insp.get_columns(table)],
            "pk": sorted(insp.get_pk_constraint(table)["constrained_columns"]),
            "fks": sorted((tuple(f["constrained_columns"]), f["referred_table"], tuple(f["referred_columns"]))
                          for f in insp.get_foreign_keys(table)),
            "indexes": sorted((tuple(i["column_names"]), bool(i["unique"])) for i in insp.get_indexes(table)),
            "uniques": sorted(tuple(u["column_names"]) for u in insp.get_unique_constraints(table)),
        }
    return out


def test_schema_head_is_alembics_head():
    from alembic.script import ScriptDirectory

    db = Database(create_db_engine("sqlite://"))
    assert ScriptDirectory.from_config(alembic_config(db.engine)).get_current_head() == SCHEMA_HEAD


@pytest.fixture(params=["sqlite", "postgres"])
def two_urls(request, tmp_path):
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'a.db'}", f"sqlite:///{tmp_path / 'b.db'}"
    url = request.getfixturevalue("pg_url")
    import psycopg

    base, name = url.rsplit("/", 1)
    admin = psycopg.connect("postgresql://postgres@127.0.0.1:5432/postgres", autocommit=True)
    admin.execute(f'CREATE DATABASE "{name}_b"')
    request.addfinalizer(lambda: (admin.execute(f'DROP DATABASE IF EXISTS "{name}_b" WITH (FORCE)'), admin.close()))
    return url, f"{base}/{name}_b"


def test_a_new_database_created_at_head_equals_every_migration_run(two_urls):
    fast, migrated = (Database(create_db_engine(u)) for u in two_urls)
    try:
        fast.migrate()  # empty: created from the models and stamped
        assert fast.schema_revision() == SCHEMA_HEAD
        migrated._upgrade()  # every migration, through Alembic
        assert migrated.schema_revision() == SCHEMA_HEAD
        a, b = schema(fast), schema(migrated)
        assert a.keys() == b.keys()
        for table in a:
            assert a[table] == b[table], table
        fast.migrate()  # at head: nothing to do, no error
    finally:
        fast.close()
        migrated.close()


def test_a_database_that_is_not_empty_goes_through_the_migrations(tmp_path):
    from sqlalchemy import text

    db = Database(create_db_engine(f"sqlite:///{tmp_path / 'x.db'}"))
    with db.engine.begin() as conn:
        conn.execute(text("CREATE TABLE unrelated (id INTEGER PRIMARY KEY)"))
    assert db._create_at_head() is False
    db.migrate()
    assert db.schema_revision() == SCHEMA_HEAD
    assert {"entries", "renders", "unrelated"} <= set(inspect(db.engine).get_table_names())
    db.close()


KILLED_WHILE_CREATING = """
import os, sys
from sqlalchemy import Table
from limner.db.engine import open_database

made, create = [0], Table.create
def create_then_die(self, bind=None, checkfirst=False):
    create(self, bind, checkfirst)
    made[0] += 1
    if made[0] == 3:  # a kill -9 while the first command of a new project creates its tables
        os._exit(9)
Table.create = create_then_die
open_database("sqlite:///" + sys.argv[1])
"""


def test_a_process_killed_while_creating_a_new_database_leaves_one_the_next_command_opens(tmp_path):
    """The tables of a new SQLite database were created one autocommitted statement at a time (pysqlite begins
    no transaction before DDL): a first command killed half-way left some tables and no revision, and every
    later command failed with "table ... already exists". The creation is one transaction now."""
    import subprocess
    import sys

    from limner.db.engine import open_database

    path = tmp_path / "limner.db"
    proc = subprocess.run([sys.executable, "-c", KILLED_WHILE_CREATING, str(path)], capture_output=True, text=True,
                          timeout=60)
    assert proc.returncode == 9, proc.stderr
    db = open_database(f"sqlite:///{path}")
    try:
        assert db.schema_revision() == SCHEMA_HEAD
        assert {"entries", "renders", "ledger", "runs"} <= set(inspect(db.engine).get_table_names())
    finally:
        db.close()


def left_by_an_earlier_version(path, *, rows: bool = False) -> None:
    """What a first command of an earlier version, killed while it created its tables one autocommitted
    statement at a time, left; and the empty ``alembic_version`` its next command's failed upgrade added."""
    import sqlite3

    from sqlalchemy import text

    from limner.db.tables import metadata

    engine = create_db_engine(f"sqlite:///{path}")
    with engine.connect() as conn:
        for table in metadata.sorted_tables[:3]:
            table.create(conn)
        conn.execute(text("CREATE TABLE alembic_version (version_num VARCHAR(32) NOT NULL PRIMARY KEY)"))
        conn.commit()
    engine.dispose()
    if rows:  # with plain sqlite3, whose foreign keys are off: renders was never created
        with sqlite3.connect(path) as conn:
            conn.execute("INSERT INTO entries (id, title, state, attempts, retryable, created_at, updated_at) "
                         "VALUES ('e1', 'Event', 'missing', 0, 1, '2026-01-01', '2026-01-01')")


def test_a_database_an_earlier_version_left_half_created_is_created_again(tmp_path):
    """Versions before the one-transaction creation left such databases, and every command on them failed
    with "table entries already exists", with no advice. Empty tables that are exactly Limner's are made again."""
    from limner.db.engine import open_database

    path = tmp_path / "limner.db"
    left_by_an_earlier_version(path)
    db = open_database(f"sqlite:///{path}")
    try:
        assert db.schema_revision() == SCHEMA_HEAD
        assert schema(db) == schema(open_database(f"sqlite:///{tmp_path / 'new.db'}"))
    finally:
        db.close()


def test_an_unversioned_database_holding_rows_or_other_tables_is_never_dropped(tmp_path):
    """Only an empty leftover of Limner's own tables is made again: a row, or a table of another program
    with one of Limner's names, is kept, and the database is refused as before."""
    from sqlalchemy import text

    from limner.db.engine import open_database
    from limner.errors import LimnerError

    with_rows, foreign = tmp_path / "rows.db", tmp_path / "app.db"
    left_by_an_earlier_version(with_rows, rows=True)
    engine = create_db_engine(f"sqlite:///{foreign}")
    with engine.begin() as conn:
        conn.execute(text("CREATE TABLE entries (id INTEGER PRIMARY KEY, headline TEXT)"))
    engine.dispose()
    for path in (with_rows, foreign):
        with pytest.raises(LimnerError, match="already exists"):
            open_database(f"sqlite:///{path}")
        engine = create_db_engine(f"sqlite:///{path}")
        with engine.connect() as conn:
            assert conn.execute(text("SELECT count(*) FROM entries")).scalar() == (1 if path == with_rows else 0)
        engine.dispose()


def test_every_table_is_mapped_and_every_column_typed_on_its_class():
    """The schema is defined once, as Core tables (db/tables.py); the ORM classes (db/models.py) map them and
    declare each column's Python type for readers and type checkers: none left out."""
    from limner.db import models, tables

    mapped = {cls.__table__.name: cls for cls in models.Base.__subclasses__()}
    assert set(mapped) == set(tables.metadata.tables)
    for name, table in tables.metadata.tables.items():
        annotated = set(mapped[name].__annotations__)
        assert {c.key for c in table.columns} <= annotated, (name, {c.key for c in table.columns} - annotated)


def test_migration_0008_removes_keys_that_earlier_versions_left_in_error_texts(tmp_path):
    """A key pasted with a line break was shown escaped by h11 (``b'Bearer r8_...\\n'``), which the exact-text
    redaction of versions up to 0007 missed; such texts were stored in entries.last_error and renders.error.
    Upgrading removes whatever is shaped like a credential, and keeps hashes, ids and the rest of the text."""
    from alembic import command
    from sqlalchemy import text

    db = Database(create_db_engine(f"sqlite:///{tmp_path / 'old.db'}"))
    command.upgrade(alembic_config(db.engine), "0007")
    token, jwt = "r8_Ab3dEfGh1jKlMn0pQrStUv", "eyJhbGciOiJIUzI1NiJ9.eyJyb2xlIjoic2VydmljZV9yb2xlIn0.c2lnbmF0dXJl"
    opaque, digest = "Zq8VnR2xLmT4wYpB7sKdHc9eUjFg3aNo", "9f" * 32
    leaked = (f"replicate: Illegal header value b'Bearer {token}\\\\n' (render of model {digest}); "
              f"supabase said apikey={jwt}; db postgresql://limner:hunter2pass@db.example.org/x; secret {opaque}")
    with db.engine.begin() as conn:
        conn.execute(text("INSERT INTO entries (id, title, state, attempts, retryable, last_error, created_at, updated_at) "
                          "VALUES ('e1', 'Event', 'failed', 1, 1, :e, '2026-01-01', '2026-01-01'), "
                          "('e2', 'Other', 'failed', 1, 1, 'provider said 503 (prediction abc123)', '2026-01-01', '2026-01-01')"),
                     {"e": leaked})
        conn.execute(text("INSERT INTO templates (sha256, style, version, positive, negative, params, created_at) "
                          "VALUES ('t', 's', '1', 'p', '', '{}', '2026-01-01')"))
        conn.execute(text("INSERT INTO renders (entry_id, fingerprint, status, provider, model, seed, prompt, negative_prompt, "
                          "parameters, style, style_version, template_sha, cost_usd, latency_ms, attempts, error, "
                          "provider_metadata, master_sha256, master_key, master_format, master_bytes, created_at) VALUES "
                          "('e1', 'f', 'failed', 'replicate', 'm', 1, 'p', '', '{}', 's', '1', 't', 0, 0, 1, :e, '{}', "
                          "'', '', 'png', 0, '2026-01-01')"), {"e": leaked})
    db.migrate()
    assert db.schema_revision() == SCHEMA_HEAD
    with db.engine.connect() as conn:
        errors = dict(conn.execute(text("SELECT id, last_error FROM entries")).all())
        render_error = conn.execute(text("SELECT error FROM renders")).scalar_one()
    db.close()
    for cleaned in (errors["e1"], render_error):
        for secret in (token, jwt, "hunter2pass", opaque):
            assert secret not in cleaned
        assert cleaned.startswith("replicate: Illegal header value b'Bearer [redacted]")
        assert digest in cleaned and "postgresql://limner:[redacted]@db.example.org/x" in cleaned
    assert errors["e2"] == "provider said 503 (prediction abc123)"


def test_migration_0008_keeps_catalogue_ids_and_words_that_begin_like_a_key():
    """``sk-`` and ``key-`` begin entry ids and words as well as keys (``key-west-sunset-1950``, a slug, all lower
    case): a person's note or an entry id in an error text is kept; an OpenAI key (mixed case) is still removed."""
    import importlib.util

    from limner.db.engine import MIGRATIONS

    spec = importlib.util.spec_from_file_location("m0008", f"{MIGRATIONS}/versions/0008_scrub_leaked_secrets.py")
    assert spec is not None and spec.loader is not None
    migration = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(migration)
    for kept in ("rejected in review: key-west-sunset-1950 is blurry", "sk-1990-harbour-strike: refused",
                 "event-000: api-key-configuration-missing"):
        assert migration.scrub(kept) == kept
    key = "sk-proj-Ab3dEfGh1jKlMn0pQrStUvWx"
    assert migration.scrub(f"openai: Bearer-less {key} refused") == "openai: Bearer-less [redacted] refused"
