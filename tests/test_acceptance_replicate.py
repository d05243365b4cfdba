"""End to end: the `limner` CLI (subprocesses) on the replicate provider, against the loopback fake."""

from __future__ import annotations

import json
import re
import shutil
import sqlite3
import textwrap
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from projects import ProjectDir, make_entries
from fake_replicate import NSFW_ERROR, ReplicateFake, start_fake, stop_fake

pytestmark = pytest.mark.slow

TOKEN = "r8_ACCEPTANCE_fake_token_9f8e7d6c5b4a3210zz"  # a fake: never a real credential
EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "jewish-timeline"


@pytest.fixture
def fake():
    server, api = start_fake(TOKEN, image_size=96)
    try:
        yield api
    finally:
        stop_fake(server, api)


def configure(p: ProjectDir, *, token: str | None = TOKEN, extra: str = "") -> None:
    p.config.write_text(textwrap.dedent("""\
        catalog = "catalog.yaml"
        provider = "replicate"
        [generate]
        concurrency = 8
        workers = 1
        max_attempts = 10
        backoff_initial_s = 0.01
        backoff_max_s = 0.05
        [providers.replicate]
        poll_interval_s = 0.05
        concurrency = 8
        timeout_s = 30
        """) + textwrap.dedent(extra), encoding="utf-8")
    if token:
        (p.root / ".env").write_text(f"REPLICATE_API_TOKEN={token}\n", encoding="utf-8")


def env_for(p: ProjectDir, fake: ReplicateFake) -> dict[str, str]:
    env = {k: v for k, v in p.env().items() if not k.startswith("REPLICATE_")}
    env.update(LIMNER_PROVIDER="replicate", REPLICATE_BASE_URL=fake.url, LIMNER_ALLOW_HTTP_HOSTS="127.0.0.1")
    return env


@pytest.fixture
def replicate_project(make_project_dir: Callable[..., ProjectDir]) -> Callable[..., ProjectDir]:
    def factory(n: int, **kw) -> ProjectDir:
        p = make_project_dir(n, provider="replicate")
        configure(p, **kw)
        return p

    return factory


def status(p: ProjectDir, env: dict[str, str]) -> dict:
    return p.run_json("status", env=env)


def test_fifty_entries_all_published(fake: ReplicateFake, replicate_project) -> None:
    p = replicate_project(50)
    env = env_for(p, fake)
    proc = p.run("generate", "--no-progress", env=env)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    st = status(p, env)
    assert st["by_state"]["published"] == 50 and not st["failures"]
    assert fake.paid == 50 and fake.create_calls == 50
    assert max(fake.successes.values()) == 1
    assert all(pref and pref.startswith("wait") for pref in fake.prefer_headers)
    assert st["spend_usd"] == pytest.approx(50 * 0.003)
    assert fake.files_with_auth == 0


def test_faults_end_published_or_refused(fake: ReplicateFake, replicate_project) -> None:
    fake.faults(rate_limit=0.10, server_error=0.10, nsfw=0.05, pending=0.2, retry_after=1, seed=20261101)
    p = replicate_project(50)
    env = env_for(p, fake)
    proc = p.run("generate", "--no-progress", env=env)
    refused = sum(fake.refusals.values())
    assert proc.returncode == (1 if refused else 0), proc.stdout + proc.stderr
    st = status(p, env)
    assert st["by_state"]["published"] + st["by_state"]["failed"] == 50, st["by_state"]
    assert st["by_state"]["published"] == fake.paid == sum(fake.successes.values())
    assert len(st["failures"]) == st["by_state"]["failed"] == refused
    for failure in st["failures"]:
        assert NSFW_ERROR in failure["error"] and failure["error"].startswith("ContentRefused")
        assert failure["retryable"] is False
    assert max(fake.successes.values()) == 1  # no entry generated twice after success
    assert fake.create_rejected > 0 and fake.poll_calls > 0  # the faults did happen
    assert fake.create_calls <= 1.6 * 50, fake.create_calls
    assert st["spend_usd"] == pytest.approx(fake.paid * 0.003)

    calls = fake.create_calls  # a second run has nothing to do: published are up to date, refused held back
    proc = p.run("generate", "--no-progress", env=env)
    assert fake.create_calls == calls, proc.stdout + proc.stderr


def test_token_never_leaks(fake: ReplicateFake, replicate_project) -> None:
    fake.faults(rate_limit=0.15, server_error=0.15, nsfw=0.1, pending=0.3, seed=7)
    p = replicate_project(12)
    env = env_for(p, fake)
    outputs = []

    def run(*args: str) -> None:
        proc = p.run("-vv", *args, env=env)
        outputs.append(f"$ limner {' '.join(args)} -> {proc.returncode}\n{proc.stdout}\n{proc.stderr}")

    run("generate", "--no-progress")
    with ThreadPoolExecutor(4) as pool:  # read-only commands side by side
        list(pool.map(lambda args: run(*args), [("status",), ("providers",), ("costs",), ("doctor",)]))
    run("sync")
    fake.mode("auth")  # the server now rejects the token: messages about it are stored too
    run("generate", "--all", "--no-progress")
    assert fake.token_seen > 0, "\n".join(outputs)
    text = "\n".join(outputs)
    assert "DEBUG" in text and "prediction" in text  # -vv did log the provider's calls
    assert TOKEN not in text
    assert "Unauthenticated" in text  # the auth failure was reported...
    assert fake.files_with_auth == 0

    db = p.root / ".limner" / "limner.db"
    con = sqlite3.connect(db)
    try:
        tables = [r[0] for r in con.execute("select name from sqlite_master where type = 'table'")]
        dump = "\n".join(repr(row) for t in tables for row in con.execute(f'select * from "{t}"'))
    finally:
        con.close()
    assert tables and ("Unauthenticated" in dump or "AuthFailed" in dump)
    assert TOKEN not in dump

    manifest = p.root / "frontend" / "src" / "data" / "limner-manifest.json"
    assert manifest.is_file(), text
    assert TOKEN not in manifest.read_text(encoding="utf-8")
    json.loads(manifest.read_text(encoding="utf-8"))
    for path in p.root.rglob("*"):  # every file the project holds but .env: database (and WAL), media, manifest
        if path.is_file() and path.name != ".env":
            assert TOKEN.encode() not in path.read_bytes(), path


def estimated_cost(stdout: str) -> str:
    m = re.search(r"Estimated cost: \$([0-9.]+)", stdout)
    assert m, stdout
    return m.group(1)


def test_plan_costs_and_budget(fake: ReplicateFake, replicate_project, tmp_path: Path) -> None:
    # the example catalogue (202 entries), with provider = "replicate": 202 x $0.003
    ex = tmp_path / "example"
    shutil.copytree(EXAMPLE, ex, ignore=shutil.ignore_patterns(".limner", "frontend", ".env"))
    config = (ex / "limner.toml").read_text(encoding="utf-8")
    (ex / "limner.toml").write_text('provider = "replicate"\n' + config, encoding="utf-8")
    example = ProjectDir(ex)
    env = env_for(example, fake)
    proc = example.run("plan", env=env)
    n = sum(1 for line in (ex / "catalog.yaml").read_text(encoding="utf-8").splitlines() if line.startswith("  - id:"))
    assert n >= 120
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert estimated_cost(proc.stdout) == f"{n * 0.003:.2f}" == "0.61"
    assert f"replicate: {n}" in proc.stdout and "black-forest-labs/flux-schnell" in proc.stdout

    p = replicate_project(120)
    env = env_for(p, fake)
    assert estimated_cost(p.run("plan", env=env).stdout) == "0.36"

    p.write_catalog(make_entries(50))
    proc = p.run("generate", "--budget", "0.05", "--no-progress", env=env)
    assert proc.returncode == 4, proc.stdout + proc.stderr
    assert 0 < fake.paid <= 16
    assert fake.create_calls == fake.paid
    st = status(p, env)
    assert st["by_state"]["published"] == fake.paid
    assert st["spend_usd"] <= 0.05 + 1e-9


def test_a_client_that_cannot_be_made_leaves_no_line_in_the_ledger(fake: ReplicateFake, replicate_project) -> None:
    """A CA bundle that cannot be read (``SSL_CERT_FILE`` pointing nowhere) used to fail inside the call,
    after its ledger line was written: every entry left a ``pending`` line at the list price for a call that
    never went out, which the next run counted as spend. The client is now made first (``Provider.prepare``),
    so nothing is written or paid, and the message names the bundle."""
    p = replicate_project(3)
    env = {**env_for(p, fake), "SSL_CERT_FILE": str(p.root / "no-such-bundle.pem")}
    proc = p.run("generate", "--no-progress", env=env)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "cannot load the CA certificates for TLS from SSL_CERT_FILE=" in proc.stdout + proc.stderr
    assert "no-such-bundle.pem" in proc.stdout + proc.stderr
    assert fake.create_calls == 0
    with sqlite3.connect(p.root / ".limner" / "limner.db") as db:
        assert db.execute("select count(*) from ledger").fetchone()[0] == 0
    assert status(p, env)["spend_usd"] == 0
