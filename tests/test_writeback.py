"""limner sync writes image_url, image_cdn_url and image_generated_at back to the app's events table."""

from __future__ import annotations

import datetime as dt
import json
import sqlite3
import uuid

import pytest


def make_events_db(path, ids, *, with_columns=True):
    con = sqlite3.connect(path)
    extra = ", image_url TEXT, image_cdn_url TEXT, image_generated_at TIMESTAMP" if with_columns else ""
    con.execute(f"CREATE TABLE timeline_events (id TEXT PRIMARY KEY, title TEXT{extra})")
    con.executemany("INSERT INTO timeline_events (id, title) VALUES (?, ?)", [(i, i.upper()) for i in ids])
    con.commit()
    con.close()


@pytest.fixture
def project_dir(project_dir):
    """The tests' project, its storage served at a public URL (write-back refuses file:// URLs)."""
    project_dir.config.write_text(project_dir.config.read_text() + '\n[storage]\npublic_base_url = "https://img.example.org"\n')
    return project_dir


def test_sync_writes_urls_back_to_the_events_table(project_dir, tmp_path):
    db = tmp_path / "app.db"
    ids = [e["id"] for e in project_dir.entries()]
    make_events_db(db, ids[:5] + ["not-in-catalogue"])
    project_dir.config.write_text(project_dir.config.read_text().replace(
        "[storage]\n", '[storage]\ncdn_base_url = "https://cdn.example.org"\n'))
    project_dir.run("generate", check=True)
    env = project_dir.env(LIMNER_SYNC_EVENTS_DATABASE_URL=f"sqlite:///{db}")
    result = project_dir.run_json("sync", env=env)
    assert result["written_back"] == 5 and result["not_in_events_table"] == [ids[5]]
    con = sqlite3.connect(db)
    rows = {r[0]: r[1:] for r in con.execute("select id, image_url, image_cdn_url, image_generated_at from timeline_events")}
    con.close()
    assert rows["not-in-catalogue"] == (None, None, None)
    for entry_id in ids[:5]:
        url, cdn, when = rows[entry_id]
        assert url.startswith("https://img.example.org/variants/") and url.endswith(".jpg")
        assert cdn.startswith("https://cdn.example.org/variants/") and when
    again = project_dir.run_json("sync", env=env)
    assert again["written_back"] == 0


def test_missing_columns_are_a_clear_error(project_dir, tmp_path):
    db = tmp_path / "app.db"
    make_events_db(db, ["event-000"], with_columns=False)
    project_dir.run("generate", check=True)
    env = project_dir.env(LIMNER_SYNC_EVENTS_DATABASE_URL=f"sqlite:///{db}")
    proc = project_dir.run("sync", env=env)
    assert proc.returncode == 2 and "ALTER TABLE timeline_events ADD COLUMN image_url" in proc.stderr
    suggested = proc.stderr.split("e.g. ", 1)[1].split("\nhint", 1)[0].replace("\n", " ")
    with sqlite3.connect(db) as con:  # the SQL it suggests runs on this database as given
        con.executescript(suggested)
    assert project_dir.run_json("sync", env=env)["written_back"] == 1


def test_an_events_table_keyed_by_another_column_names_the_setting(project_dir, tmp_path):
    """A table whose catalogue ids are in ``slug``: the error said to run ``ALTER TABLE ... ADD COLUMN <the id
    column>``, not to set ``sync.events_id_column``."""
    db = tmp_path / "app.db"
    with sqlite3.connect(db) as con:
        con.execute("CREATE TABLE timeline_events (slug TEXT PRIMARY KEY, image_url TEXT, image_cdn_url TEXT, "
                    "image_generated_at TIMESTAMP)")
        con.execute("INSERT INTO timeline_events (slug) VALUES ('event-000')")
    project_dir.run("generate", check=True)
    env = project_dir.env(LIMNER_SYNC_EVENTS_DATABASE_URL=f"sqlite:///{db}")
    proc = project_dir.run("sync", env=env)
    assert proc.returncode == 2 and "has no column 'id'" in proc.stderr and "slug" in proc.stderr, proc.stderr
    assert "sync.events_id_column" in proc.stderr and "ADD COLUMN" not in proc.stderr
    assert app_files(project_dir) == {}
    env["LIMNER_SYNC_EVENTS_ID_COLUMN"] = "slug"
    assert project_dir.run_json("sync", env=env)["written_back"] == 1


def test_an_events_table_in_another_schema(project_dir, app_pg):
    url = pg_events(app_pg, "event-000", table="app.timeline_events")
    project_dir.run("generate", check=True)
    env = project_dir.env(LIMNER_SYNC_EVENTS_DATABASE_URL=url,
                          LIMNER_SYNC_EVENTS_TABLE="app.timeline_events")
    assert project_dir.run_json("sync", env=env)["written_back"] == 1


@pytest.fixture
def app_pg():
    """A PostgreSQL database of its own for the app's events table: its psycopg URL (dropped after the test)."""
    psycopg = pytest.importorskip("psycopg")
    try:
        admin = psycopg.connect("postgresql://postgres@127.0.0.1:5432/postgres", autocommit=True, connect_timeout=3)
    except psycopg.OperationalError as exc:
        pytest.skip(f"PostgreSQL not reachable: {exc}")
    name = f"limner_app_{uuid.uuid4().hex[:8]}"
    admin.execute(f'CREATE DATABASE "{name}"')
    try:
        yield f"postgresql://postgres@127.0.0.1:5432/{name}"
    finally:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.close()


def pg_events(app_pg: str, *ids: str, table: str = "timeline_events", image_url: str = "TEXT",
              generated_at: str = "TIMESTAMP", timezone: str | None = None) -> str:
    """The app's events table in the test's PostgreSQL database, with rows for ``ids``; its URL for Limner."""
    import psycopg

    with psycopg.connect(app_pg, autocommit=True) as con:
        if "." in table:
            con.execute(f"CREATE SCHEMA {table.split('.')[0]}")
        con.execute(f"CREATE TABLE {table} (id TEXT PRIMARY KEY, image_url {image_url}, image_cdn_url TEXT, "
                    f"image_generated_at {generated_at})")
        con.cursor().executemany(f"INSERT INTO {table} (id) VALUES (%s)", [(i,) for i in ids])
        if timezone:  # the zone of the sessions Limner opens
            con.execute(f'ALTER DATABASE "{app_pg.rsplit("/", 1)[1]}" SET timezone TO \'{timezone}\'')
    return app_pg.replace("postgresql://", "postgresql+psycopg://")


def test_write_back_on_postgres(project_dir, app_pg):
    import psycopg

    url = pg_events(app_pg, "event-000", "event-001")
    project_dir.run("generate", check=True)
    result = project_dir.run_json("sync", env=project_dir.env(LIMNER_SYNC_EVENTS_DATABASE_URL=url))
    assert result["written_back"] == 2
    with psycopg.connect(app_pg) as con:
        rows = con.execute("select image_url, image_generated_at from timeline_events").fetchall()
    assert all(u and t for u, t in rows)


def test_write_back_of_more_entries_than_postgresql_takes_parameters(app_pg):
    """The rows were looked up with one ``IN`` list of every id: past 65,535 entries PostgreSQL refused the
    statement, and every sync of such a catalogue failed at write-back."""
    import psycopg

    from limner.sync.writeback import EventsTable

    url = pg_events(app_pg, "e-1", "e-69999")
    events = EventsTable(url, "timeline_events", "id")
    try:
        urls = {f"e-{i}": {"image_url": f"https://img.example.org/v/{i}.jpg", "cdn_url": f"https://cdn.example.org/{i}.jpg",
                           "generated_at": "2024-01-01T00:00:00Z"} for i in range(70_000)}
        result = events.write(urls)
    finally:
        events.close()
    assert result.updated == 2 and len(result.not_found) == 69_998
    with psycopg.connect(app_pg) as con:
        rows = dict(con.execute("select id, image_url from timeline_events").fetchall())
    assert rows == {"e-1": "https://img.example.org/v/1.jpg", "e-69999": "https://img.example.org/v/69999.jpg"}


def app_files(p):
    """Every file the app's repo gets from sync, with its bytes."""
    root = p.root / "frontend"
    return {f.relative_to(root): f.read_bytes() for f in root.rglob("*") if f.is_file()} if root.exists() else {}


@pytest.mark.parametrize("url, error", [
    ("sqlite:///{db}", "events table 'timeline_events' not found"),
    ("postgresql://app:s3cret-pw@db.example.org:54x2/app", "not a usable database URL"),
])
def test_a_bad_events_table_or_url_changes_no_file(project_dir, tmp_path, url, error):
    """The events table is checked before the first placeholder is written: a wrong table or a malformed URL
    is exit 2 and the app's files are as they were (none here), and no password is printed."""
    db = tmp_path / "empty.db"
    sqlite3.connect(db).close()
    project_dir.run("generate", check=True)
    proc = project_dir.run("sync", env=project_dir.env(LIMNER_SYNC_EVENTS_DATABASE_URL=url.format(db=db)))
    assert proc.returncode == 2 and error in proc.stderr and "Traceback" not in proc.stderr, proc.stderr
    assert "s3cret-pw" not in proc.stderr + proc.stdout
    assert app_files(project_dir) == {}


@pytest.mark.parametrize("relative", [False, True])
def test_an_events_database_file_that_does_not_exist_is_not_created(project_dir, tmp_path, relative):
    """A mistyped SQLite path was opened as it was: SQLite created an empty database there (in the app's folder,
    for a relative path, where `git add -A` picked it up), and the error that followed said the table was missing."""
    project_dir.run("generate", check=True)
    missing = project_dir.root / "typo-events.db" if relative else tmp_path / "typo-events.db"
    url = "sqlite:///typo-events.db" if relative else f"sqlite:///{missing}"
    proc = project_dir.run("sync", env=project_dir.env(LIMNER_SYNC_EVENTS_DATABASE_URL=url))
    assert proc.returncode == 2 and f"SQLite file {missing}, which does not exist" in proc.stderr, proc.stderr
    assert not missing.exists() and app_files(project_dir) == {}


def test_a_relative_sqlite_events_url_is_read_from_the_project_folder(project_dir, tmp_path):
    """``sqlite:///app.db`` is the project's app.db wherever sync runs (as ``database.url`` is); it was read from the
    folder the command ran in, so `limner --config app/limner.toml sync` from the repository's root missed it."""
    import subprocess
    import sys

    make_events_db(project_dir.root / "app.db", ["event-000"])
    project_dir.run("generate", check=True)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    proc = subprocess.run([sys.executable, "-m", "limner", "--config", str(project_dir.config), "sync"], cwd=elsewhere,
                          capture_output=True, text=True, timeout=120,
                          env=project_dir.env(LIMNER_SYNC_EVENTS_DATABASE_URL="sqlite:///app.db"))
    assert proc.returncode == 0, proc.stderr
    assert not (elsewhere / "app.db").exists()
    with sqlite3.connect(project_dir.root / "app.db") as con:
        (url,) = con.execute("SELECT image_url FROM timeline_events WHERE id = 'event-000'").fetchone()
    assert url and url.startswith("https://img.example.org/")


def test_write_back_to_a_timestamptz_column_is_the_right_instant_and_unchanged_the_second_time(project_dir, app_pg):
    import psycopg

    url = pg_events(app_pg, "event-000", generated_at="TIMESTAMPTZ", timezone="America/New_York")
    project_dir.run("generate", check=True)
    env = project_dir.env(LIMNER_SYNC_EVENTS_DATABASE_URL=url)
    first = project_dir.run_json("sync", env=env)
    again = project_dir.run_json("sync", env=env)
    assert (first["written_back"], again["written_back"], again["written_back_unchanged"]) == (1, 0, 1)
    manifest = json.loads((project_dir.root / "frontend/src/data/limner-manifest.json").read_text())
    generated_at = dt.datetime.fromisoformat(manifest["entries"]["event-000"]["generated_at"].replace("Z", "+00:00"))
    with psycopg.connect(app_pg) as con:
        (stored,) = con.execute("select image_generated_at from timeline_events").fetchone()
    assert stored == generated_at  # the same instant, whatever the session's time zone


@pytest.mark.parametrize("column", ["TEXT", "DATETIME"])
def test_a_time_column_that_keeps_text_or_whole_seconds_is_unchanged_the_second_time(project_dir, tmp_path, column):
    """A column that does not read back the microseconds written (SQLite ``TEXT``, the driver's text; a
    whole-second type) compared unequal on every sync, so every row was rewritten every time."""
    db = tmp_path / "app.db"
    with sqlite3.connect(db) as con:
        con.execute("CREATE TABLE timeline_events (id TEXT PRIMARY KEY, image_url TEXT, image_cdn_url TEXT, "
                    f"image_generated_at {column})")
        con.execute("INSERT INTO timeline_events (id) VALUES ('event-000')")
        if column == "DATETIME":  # the whole seconds a MySQL DATETIME or a TIMESTAMP(0) keeps
            con.execute("CREATE TRIGGER whole AFTER UPDATE OF image_generated_at ON timeline_events BEGIN UPDATE "
                        "timeline_events SET image_generated_at = substr(NEW.image_generated_at, 1, 19) WHERE id = NEW.id; END")
    project_dir.run("generate", check=True)
    env = project_dir.env(LIMNER_SYNC_EVENTS_DATABASE_URL=f"sqlite:///{db}")
    first = project_dir.run_json("sync", env=env)
    again = project_dir.run_json("sync", env=env)
    assert (first["written_back"], again["written_back"], again["written_back_unchanged"]) == (1, 0, 1)


def test_a_timestamp_0_column_on_postgres_is_unchanged_the_second_time(project_dir, app_pg):
    url = pg_events(app_pg, "event-000", generated_at="TIMESTAMP(0)")
    project_dir.run("generate", check=True)
    env = project_dir.env(LIMNER_SYNC_EVENTS_DATABASE_URL=url)
    first = project_dir.run_json("sync", env=env)
    again = project_dir.run_json("sync", env=env)
    assert (first["written_back"], again["written_back"], again["written_back_unchanged"]) == (1, 0, 1)


def test_a_cdn_base_url_without_a_scheme_changes_no_file_and_no_row(project_dir, tmp_path):
    """``cdn_base_url = "cdn.example.org"`` was synced as it was: a manifest its own schema refuses, and
    ``cdn.example.org/variants/...`` written into the app's events table."""
    db = tmp_path / "app.db"
    make_events_db(db, ["event-000"])
    project_dir.run("generate", check=True)
    env = project_dir.env(LIMNER_SYNC_EVENTS_DATABASE_URL=f"sqlite:///{db}", LIMNER_STORAGE_CDN_BASE_URL="cdn.example.org")
    proc = project_dir.run("sync", env=env)
    assert proc.returncode == 2 and "setting 'storage.cdn_base_url'" in proc.stderr, proc.stderr
    assert "https://cdn.example.org" in proc.stderr and "Traceback" not in proc.stderr
    assert app_files(project_dir) == {}
    with sqlite3.connect(db) as con:
        assert con.execute("select image_url, image_cdn_url from timeline_events").fetchall() == [(None, None)]


def test_write_back_refuses_a_storage_without_a_public_url(make_project_dir, tmp_path):
    """A local folder without public_base_url has only file:// URLs of this machine: never written into the app's
    table (a browser cannot load them), and nothing else is changed either."""
    p = make_project_dir(2)
    db = tmp_path / "app.db"
    make_events_db(db, ["event-000"])
    p.run("generate", check=True)
    proc = p.run("sync", env=p.env(LIMNER_SYNC_EVENTS_DATABASE_URL=f"sqlite:///{db}"))
    assert proc.returncode == 2 and "no public http(s) URL" in proc.stderr and "public_base_url" in proc.stderr
    assert app_files(p) == {}
    with sqlite3.connect(db) as con:
        assert con.execute("select image_url from timeline_events").fetchall() == [(None,)]


def test_an_image_taken_down_leaves_the_app_placeholder_alias_and_events_row(project_dir, tmp_path):
    """A published image rejected in review is published no more: the next sync removes its placeholder, its
    stable alias and its URLs in the events table (the app's own files of never-published entries stay)."""
    db = tmp_path / "app.db"
    make_events_db(db, ["event-000", "event-001"])
    project_dir.config.write_text(project_dir.config.read_text().replace(
        "[storage]\n", '[storage]\nalias_pattern = "events/{id}.jpg"\n'))
    folder = project_dir.root / "frontend" / "public" / "images" / "events"
    folder.mkdir(parents=True)
    (folder / "event-005.jpg").write_bytes(b"the app's own hand-made placeholder")  # never published by Limner
    project_dir.write_catalog(project_dir.entries()[:2] + [{"id": "event-005", "title": "Later", "year": 5}])
    project_dir.run("generate", "--id", "event-000", "--id", "event-001", check=True)
    env = project_dir.env(LIMNER_SYNC_EVENTS_DATABASE_URL=f"sqlite:///{db}")
    first = project_dir.run_json("sync", env=env)
    assert first["aliases"] == 2 and first["withdrawn"] == []
    project = project_dir.project()
    try:
        render = project.repo.published_renders(["event-000"])[0].id
        storage = project.storage
    finally:
        project.close()
    project_dir.run("review", "reject", str(render), "--note", "inaccurate", check=True)
    second = project_dir.run_json("sync", env=env)
    assert second["withdrawn"] == ["event-000"] and second["aliases_removed"] == ["events/event-000.jpg"]
    assert not (folder / "event-000.webp").exists() and (folder / "event-001.webp").exists()
    assert (folder / "event-005.jpg").read_bytes() == b"the app's own hand-made placeholder"
    assert not storage.exists("events/event-000.jpg") and storage.exists("events/event-001.jpg")
    with sqlite3.connect(db) as con:
        rows = dict(con.execute("select id, image_url from timeline_events").fetchall())
    assert rows["event-000"] is None and rows["event-001"].startswith("https://img.example.org/")
    assert project_dir.run_json("sync", env=env)["withdrawn"] == []  # once


def test_the_withdrawal_message_names_only_what_was_removed(project_dir):
    """Without stable aliases or an events table, a withdrawal removes the placeholder only, and says so."""
    project_dir.run("generate", "--id", "event-000", check=True)
    project_dir.run("sync", check=True)
    project = project_dir.project()
    try:
        render = project.repo.published_renders(["event-000"])[0].id
    finally:
        project.close()
    project_dir.run("review", "reject", str(render), "--note", "inaccurate", check=True)
    proc = project_dir.run("sync", check=True)
    assert "Withdrawn (published no more): event-000; their placeholders are removed." in proc.stdout
    assert "alias" not in proc.stdout and "events-table" not in proc.stdout


def test_a_url_column_too_short_is_refused_before_any_file_is_written(project_dir, app_pg):
    url = pg_events(app_pg, "event-000", image_url="VARCHAR(40)")
    project_dir.run("generate", check=True)
    env = project_dir.env(LIMNER_SYNC_EVENTS_DATABASE_URL=url)
    proc = project_dir.run("sync", env=env)
    assert proc.returncode == 2 and "column image_url holds 40 characters" in proc.stderr, proc.stderr
    assert app_files(project_dir) == {}


def test_a_withdrawal_a_failed_sync_left_half_done_is_finished_by_the_next(project_dir, tmp_path):
    """An image taken down in review: sync wrote the manifest without it, then the write-back failed (a locked
    table, a trigger, a kill). What was withdrawn was worked out from the previous manifest only, so every
    later sync said ``withdrawn: []`` and the events row kept the URL of the image taken down for ever."""
    db = tmp_path / "app.db"
    make_events_db(db, ["event-000", "event-001"])
    project_dir.run("generate", "--id", "event-000", "--id", "event-001", check=True)
    env = project_dir.env(LIMNER_SYNC_EVENTS_DATABASE_URL=f"sqlite:///{db}")
    project_dir.run_json("sync", env=env)
    project = project_dir.project()
    try:
        render_id = project.repo.published_renders(["event-000"])[0].id
    finally:
        project.close()
    project_dir.run("review", "reject", str(render_id), "--note", "wrong century", check=True)
    with sqlite3.connect(db) as con:
        con.execute("CREATE TRIGGER no_writes BEFORE UPDATE ON timeline_events BEGIN SELECT RAISE(ABORT, 'busy'); END")
    failed = project_dir.run("sync", env=env)
    assert failed.returncode != 0
    manifest = json.loads((project_dir.root / "frontend/src/data/limner-manifest.json").read_text())
    assert "event-000" not in manifest["entries"]  # the manifest was written before the write-back failed
    with sqlite3.connect(db) as con:
        con.execute("DROP TRIGGER no_writes")
    again = project_dir.run_json("sync", env=env)
    assert again["withdrawn"] == ["event-000"]
    with sqlite3.connect(db) as con:
        urls = dict(con.execute("SELECT id, image_url FROM timeline_events"))
    assert urls["event-000"] is None and urls["event-001"].startswith("https://img.example.org/")
    assert not (project_dir.root / ".limner" / "sync-withdrawals.json").exists()
    assert project_dir.run_json("sync", env=env)["withdrawn"] == []  # done: said once more, then no more


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_an_events_table_with_integer_ids(project_dir, tmp_path, request, backend):
    """An app whose events are keyed by an integer (``id SERIAL``, ``INTEGER PRIMARY KEY``) and a catalogue whose
    ids are those numbers: on PostgreSQL every write-back failed (``integer = character varying``), after the
    placeholders and the manifest were written; on SQLite ``'007'`` matched the row 7 in the look-up and was then
    reported missing. Ids are matched as the column holds them: ``42`` is row 42; ``007`` and ``event-a``, which
    no integer column holds, are not in the table."""
    entries = [{"id": i, "title": f"Event {i}", "year": 1900} for i in ("1", "42", "007", "event-a")]
    project_dir.write_catalog(entries)
    if backend == "sqlite":
        db = tmp_path / "app.db"
        with sqlite3.connect(db) as con:
            con.execute("CREATE TABLE timeline_events (id INTEGER PRIMARY KEY, title TEXT, image_url TEXT, "
                        "image_cdn_url TEXT, image_generated_at TIMESTAMP)")
            con.executemany("INSERT INTO timeline_events (id) VALUES (?)", [(1,), (7,), (42,)])
        url = f"sqlite:///{db}"

        def rows():
            with sqlite3.connect(db) as con:
                return dict(con.execute("SELECT id, image_url FROM timeline_events").fetchall())
    else:
        import psycopg

        app_pg = request.getfixturevalue("app_pg")
        with psycopg.connect(app_pg, autocommit=True) as con:
            con.execute("CREATE TABLE timeline_events (id INTEGER PRIMARY KEY, image_url TEXT, image_cdn_url TEXT, "
                        "image_generated_at TIMESTAMP)")
            con.execute("INSERT INTO timeline_events (id) VALUES (1), (7), (42)")
        url = app_pg.replace("postgresql://", "postgresql+psycopg://")

        def rows():
            with psycopg.connect(app_pg) as con:
                return dict(con.execute("SELECT id, image_url FROM timeline_events").fetchall())
    project_dir.run("generate", check=True)
    env = project_dir.env(LIMNER_SYNC_EVENTS_DATABASE_URL=url)
    result = project_dir.run_json("sync", env=env)
    assert result["written_back"] == 2 and result["not_in_events_table"] == ["007", "event-a"], result
    written = rows()
    assert written[1] and written[42] and written[7] is None, written
    again = project_dir.run_json("sync", env=env)
    assert again["written_back"] == 0 and again["written_back_unchanged"] == 2, again


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_an_events_view_that_cannot_be_updated_is_refused_before_any_file_is_written(project_dir, tmp_path, request,
                                                                                      backend):
    """``events_table`` naming a view the database cannot update (a SQLite view, a PostgreSQL view over a join)
    failed only at the very end, after the placeholders and the manifest were written; it is now exit 2, with
    nothing written, like a missing table. A view the database can update (PostgreSQL's simple views) is
    written through."""
    ddl = ["CREATE TABLE ev (id TEXT PRIMARY KEY, image_url TEXT, image_cdn_url TEXT, image_generated_at TIMESTAMP)",
           "INSERT INTO ev (id) VALUES ('event-000')",
           "CREATE VIEW timeline_events AS SELECT e.* FROM ev e JOIN ev f ON e.id = f.id",
           "CREATE VIEW simple_events AS SELECT * FROM ev"]
    if backend == "sqlite":
        db = tmp_path / "app.db"
        with sqlite3.connect(db) as con:
            for statement in ddl:
                con.execute(statement)
        url = f"sqlite:///{db}"
    else:
        import psycopg

        app_pg = request.getfixturevalue("app_pg")
        with psycopg.connect(app_pg, autocommit=True) as con:
            for statement in ddl:
                con.execute(statement)
        url = app_pg.replace("postgresql://", "postgresql+psycopg://")
    project_dir.run("generate", check=True)
    proc = project_dir.run("sync", env=project_dir.env(LIMNER_SYNC_EVENTS_DATABASE_URL=url))
    assert proc.returncode == 2 and "timeline_events" in proc.stderr and "Traceback" not in proc.stderr, proc.stderr
    assert "cannot be updated" in proc.stderr, proc.stderr
    assert app_files(project_dir) == {}
    if backend == "postgresql":
        env = project_dir.env(LIMNER_SYNC_EVENTS_DATABASE_URL=url, LIMNER_SYNC_EVENTS_TABLE="simple_events")
        assert project_dir.run_json("sync", env=env)["written_back"] == 1


def test_an_events_table_keyed_by_a_char_column_on_postgres(project_dir, app_pg):
    """``id CHAR(12)``: PostgreSQL matches ``'event-000'`` and reads the row back padded with spaces, so every
    row found was reported missing and none was written."""
    import psycopg

    with psycopg.connect(app_pg, autocommit=True) as con:
        con.execute("CREATE TABLE timeline_events (id CHAR(12) PRIMARY KEY, image_url TEXT, image_cdn_url TEXT, "
                    "image_generated_at TIMESTAMP)")
        con.execute("INSERT INTO timeline_events (id) VALUES ('event-000'), ('event-001')")
    project_dir.run("generate", check=True)
    env = project_dir.env(LIMNER_SYNC_EVENTS_DATABASE_URL=app_pg.replace("postgresql://", "postgresql+psycopg://"))
    result = project_dir.run_json("sync", env=env)
    assert result["written_back"] == 2 and "event-000" not in result["not_in_events_table"], result
    assert project_dir.run_json("sync", env=env)["written_back_unchanged"] == 2


def test_an_events_table_keyed_by_uuid_on_postgres(project_dir, app_pg):
    """``id UUID`` (a Supabase table's usual key) and a catalogue whose ids are those UUIDs: every write-back failed
    (``invalid input syntax for type uuid`` for the first id that is not one), after the files were written. An id
    that is a UUID in its usual lower-case form is now matched, and the others are not in the table."""
    import psycopg

    row = "3f2a6c1e-8d4b-4c7a-9e2f-1a2b3c4d5e6f"
    project_dir.write_catalog([{"id": i, "title": i, "year": 1900} for i in (row, "event-a", "42")])
    with psycopg.connect(app_pg, autocommit=True) as con:
        con.execute("CREATE TABLE timeline_events (id UUID PRIMARY KEY, image_url TEXT, image_cdn_url TEXT, "
                    "image_generated_at TIMESTAMPTZ)")
        con.execute("INSERT INTO timeline_events (id) VALUES (%s)", (row,))
    project_dir.run("generate", check=True)
    env = project_dir.env(LIMNER_SYNC_EVENTS_DATABASE_URL=app_pg.replace("postgresql://", "postgresql+psycopg://"))
    result = project_dir.run_json("sync", env=env)
    assert result["written_back"] == 1 and result["not_in_events_table"] == ["42", "event-a"], result
    assert project_dir.run_json("sync", env=env)["written_back_unchanged"] == 1


def test_an_events_table_keyed_by_snowflake_ids(project_dir, tmp_path):
    """A BIGINT key of 19 digits (snowflake ids, up to 9223372036854775807) is matched as the integer it is; one
    past what a 64-bit column holds is not in the table."""
    big, past = "1234567890123456789", "9223372036854775808"
    project_dir.write_catalog([{"id": i, "title": f"Event {i}", "year": 1900} for i in (big, past)])
    db = tmp_path / "app.db"
    with sqlite3.connect(db) as con:
        con.execute("CREATE TABLE timeline_events (id INTEGER PRIMARY KEY, image_url TEXT, image_cdn_url TEXT, "
                    "image_generated_at TIMESTAMP)")
        con.execute("INSERT INTO timeline_events (id) VALUES (?)", (int(big),))
    project_dir.run("generate", check=True)
    result = project_dir.run_json("sync", env=project_dir.env(LIMNER_SYNC_EVENTS_DATABASE_URL=f"sqlite:///{db}"))
    assert result["written_back"] == 1 and result["not_in_events_table"] == [past], result
