"""limner sync writes image_url, image_cdn_url and image_generated_at back to the app's events table."""

from __future__ import annotations

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


def test_sync_writes_urls_back_to_the_events_table(project_dir, tmp_path):
    db = tmp_path / "app.db"
    ids = [e["id"] for e in project_dir.entries()]
    make_events_db(db, ids[:5] + ["not-in-catalogue"])
    project_dir.config.write_text(project_dir.config.read_text()
                                  + '\n[storage]\ncdn_base_url = "https://cdn.example.org"\npublic_base_url = "https://img.example.org"\n')
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
    proc = project_dir.run("sync", env=project_dir.env(LIMNER_SYNC_EVENTS_DATABASE_URL=f"sqlite:///{db}"))
    assert proc.returncode == 2 and "ALTER TABLE timeline_events ADD COLUMN image_url" in proc.stderr


def test_write_back_on_postgres(project_dir):
    psycopg = pytest.importorskip("psycopg")
    try:
        admin = psycopg.connect("postgresql://postgres@127.0.0.1:5432/postgres", autocommit=True, connect_timeout=3)
    except psycopg.OperationalError as exc:
        pytest.skip(f"PostgreSQL not reachable: {exc}")
    name = f"limner_app_{uuid.uuid4().hex[:8]}"
    admin.execute(f'CREATE DATABASE "{name}"')
    try:
        with psycopg.connect(f"postgresql://postgres@127.0.0.1:5432/{name}", autocommit=True) as con:
            con.execute("CREATE TABLE timeline_events (id TEXT PRIMARY KEY, image_url TEXT, image_cdn_url TEXT, "
                        "image_generated_at TIMESTAMP)")
            con.execute("INSERT INTO timeline_events (id) VALUES ('event-000'), ('event-001')")
        project_dir.run("generate", check=True)
        url = f"postgresql+psycopg://postgres@127.0.0.1:5432/{name}"
        result = project_dir.run_json("sync", env=project_dir.env(LIMNER_SYNC_EVENTS_DATABASE_URL=url))
        assert result["written_back"] == 2
        with psycopg.connect(f"postgresql://postgres@127.0.0.1:5432/{name}") as con:
            rows = con.execute("select image_url, image_generated_at from timeline_events").fetchall()
        assert all(u and t for u, t in rows)
    finally:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.close()
