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
