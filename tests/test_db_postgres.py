"""The schema and a whole run on PostgreSQL (the same migrations as SQLite)."""

from __future__ import annotations

import os
import uuid

import pytest

psycopg = pytest.importorskip("psycopg")

ADMIN_URL = "postgresql://postgres@127.0.0.1:5432/postgres"


@pytest.fixture
def pg_url():
    try:
        admin = psycopg.connect(ADMIN_URL, autocommit=True, connect_timeout=3)
    except psycopg.OperationalError as exc:  # .ci/run starts PostgreSQL; a laptop may not have it
        if os.environ.get("LIMNER_REQUIRE_POSTGRES"):  # set by .ci/run: there, a skip would hide a failure
            pytest.fail(f"PostgreSQL not reachable at 127.0.0.1:5432 (LIMNER_REQUIRE_POSTGRES is set): {exc}")
        pytest.skip(f"PostgreSQL not reachable at 127.0.0.1:5432: {exc}")
    name = f"limner_test_{uuid.uuid4().hex[:10]}"
    admin.execute(f'CREATE DATABASE "{name}"')
    try:
        yield f"postgresql+psycopg://postgres@127.0.0.1:5432/{name}"
    finally:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.close()


def test_migrations_and_a_run_on_postgres(project_dir, pg_url):
    from test_runner import assert_consistent

    from limner.runner import RunOptions, Selection, build_plan, run_plan

    project_dir.config.write_text(project_dir.config.read_text() + f'\n[database]\nurl = "{pg_url}"\n')
    project = project_dir.project()
    plan = build_plan(project, Selection())
    summary = run_plan(project, plan, RunOptions(progress=False))
    project.close()
    assert summary.generated == 6 and summary.failed == 0
    assert_consistent(project_dir)
    project = project_dir.project()
    assert project.repo.counts_by_state() == {"published": 6}
    assert build_plan(project, Selection()).items == []
    project.close()


def test_while_gc_deletes_on_postgres_no_run_claims_an_entry(project_dir, pg_url):
    """``limner gc --delete`` on PostgreSQL: its start (an exclusive advisory lock) and each claim (a shared one)
    are ordered, and while it is live a claim finds the entry held by it; `limner gc --delete` runs there."""
    import subprocess
    import sys

    from limner.sync.gc import holding_off_runs

    project_dir.config.write_text(project_dir.config.read_text() + f'\n[database]\nurl = "{pg_url}"\n')
    project = project_dir.project()
    try:
        repo = project.repo
        with holding_off_runs(repo):
            claim = repo.claim("event-000", "fp", "some-run")
            assert claim.status == "held" and claim.holder is not None and claim.holder.kind == "gc"
            gen = subprocess.run([sys.executable, "-m", "limner", "generate", "--no-progress"], cwd=project_dir.root,
                                 env=project_dir.env(), capture_output=True, text=True, timeout=120)
            assert "0 of 6" in gen.stdout or "Generated 0" in gen.stdout, gen.stdout + gen.stderr
        assert repo.claim("event-000", "fp", "some-run").status == "claimed"
        repo.release_claim("event-000", "some-run")
    finally:
        project.close()
    project_dir.run("generate", "--no-progress", check=True)
    gc = project_dir.run_json("gc", "--delete")
    assert gc["deleted"] == 0 and gc["failed"] == []


def test_a_role_that_cannot_upgrade_an_older_schema_gets_a_clear_error(project_dir, pg_url):
    """A database at an older revision, opened by a role that may only read: one error naming what is needed,
    no traceback, no password."""
    from alembic import command

    from limner.db.engine import Database, alembic_config, create_db_engine

    db = Database(create_db_engine(pg_url))
    cfg = alembic_config(db.engine)
    with db.engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "0005")
    db.close()
    role = f"reader_{uuid.uuid4().hex[:8]}"
    name = pg_url.rsplit("/", 1)[1]
    with psycopg.connect(ADMIN_URL, autocommit=True) as admin:
        admin.execute(f"CREATE ROLE {role} LOGIN PASSWORD 'se/cr#et'")
    try:
        with psycopg.connect(pg_url.replace("+psycopg", ""), autocommit=True) as owner:
            owner.execute(f"GRANT SELECT ON ALL TABLES IN SCHEMA public TO {role}")
        url = f"postgresql+psycopg://{role}:se%2Fcr%23et@127.0.0.1:5432/{name}"
        proc = project_dir.run("status", env=project_dir.env(LIMNER_DATABASE_URL=url))
        assert proc.returncode == 1 and "Traceback" not in proc.stderr, proc.stderr
        assert "cannot bring the state database" in proc.stderr and "as a role that may create and alter" in proc.stderr
        assert "se%2Fcr%23et" not in proc.stderr and "se/cr#et" not in proc.stderr
    finally:
        with psycopg.connect(ADMIN_URL, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            admin.execute(f"DROP ROLE IF EXISTS {role}")
