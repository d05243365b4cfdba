"""End to end on moto's S3 server (loopback): generate into s3://, `limner upload`, `limner gc`, and faults.

The CLI runs in subprocesses, as users run it. ``upload`` and ``gc`` are registered by a small
runner script, so these tests do not depend on the order commands are added to the app.
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))  # for s3_server, memory_storage and conftest, whatever pytest's import mode

import pytest  # noqa: E402
import requests  # noqa: E402
from memory_storage import MemoryStorage  # noqa: E402
from projects import ProjectDir  # noqa: E402
from s3_server import AWS_ENV, AWS_ENV_EXTRA, AWS_ENV_UNSET, FaultyProxy, client, make_public, moto_endpoint, new_bucket, objects  # noqa: E402

from limner.db.models import EntryState  # noqa: E402
from limner.errors import ConfigError  # noqa: E402
from limner.storage.local import LocalStorage  # noqa: E402
from limner.storage.transfer import copy_objects, describe, list_with_sizes  # noqa: E402
from limner.sync.gc import plan_gc, run_gc  # noqa: E402

RUNNER = (
    "from limner.cli.app import app\n"
    "from limner.cli.commands import gc, upload\n"
    "names = {c.name for c in app.registered_commands}\n"
    "for name, module in (('upload', upload), ('gc', gc)):\n"
    "    if name not in names:\n"
    "        module.register(app)\n"
    "app(prog_name='limner')\n"
)
CONTENT_TYPES = {"png": "image/png", "jpg": "image/jpeg", "webp": "image/webp", "avif": "image/avif"}


def s3_env(p: ProjectDir, **extra: str) -> dict[str, str]:
    env = p.env(**AWS_ENV, **AWS_ENV_EXTRA, **extra)
    for name in AWS_ENV_UNSET:
        env.pop(name, None)
    return env


def limner(p: ProjectDir, *args: str, env: dict[str, str], check: bool = True, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """Run the CLI (with upload and gc registered) in a subprocess."""
    env = {k: v for k, v in env.items() if k != "LIMNER_PLUGINS"}  # upload and gc never call a provider: start faster
    proc = subprocess.run([sys.executable, "-c", RUNNER, "--config", str(p.config), *args], cwd=p.root, capture_output=True,
                          text=True, timeout=timeout, env=env)
    if check and proc.returncode != 0:
        raise AssertionError(f"limner {' '.join(args)} exited {proc.returncode}\nstdout:\n{proc.stdout}\nstderr:\n{proc.stderr}")
    return proc


def limner_json(p: ProjectDir, *args: str, env: dict[str, str], check: bool = True) -> Any:
    proc = limner(p, *args, "--json", env=env, check=check)
    try:
        return json.loads(proc.stdout)
    except ValueError:
        raise AssertionError(f"stdout is not JSON (exit {proc.returncode}):\n{proc.stdout}\nstderr:\n{proc.stderr}") from None


def storage_config(endpoint: str, public_base_url: str | None = None) -> str:
    public = f'public_base_url = "{public_base_url}"\n' if public_base_url else ""
    return f'[storage]\nendpoint_url = "{endpoint}"\nregion = "us-east-1"\n{public}'


def row_keys(p: ProjectDir) -> dict[str, str]:
    """Every object key a render or variant row references -> its sha256 (placeholders: from the name)."""
    project = p.project()
    try:
        digests = project.repo.object_digests()
        keys = project.repo.all_object_keys()
    finally:
        project.close()
    return {k: digests.get(k) or k.rsplit("/", 1)[-1].split(".")[0] for k in keys}


def bucket_sha256(bucket: str, key: str) -> str:
    return hashlib.sha256(client().get_object(Bucket=bucket, Key=key)["Body"].read()).hexdigest()


@pytest.fixture(autouse=True)
def _aws(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in AWS_ENV_UNSET:
        monkeypatch.delenv(name, raising=False)
    for name, value in {**AWS_ENV, **AWS_ENV_EXTRA}.items():
        monkeypatch.setenv(name, value)


# ----------------------------------------------------------------------------------------- (a)
def test_generate_into_s3_and_every_manifest_url_serves_its_image(make_project_dir: Callable[..., ProjectDir]) -> None:
    endpoint, bucket = moto_endpoint(), new_bucket()
    make_public(bucket)
    p = make_project_dir(4, extra=storage_config(endpoint, f"{endpoint}/{bucket}/site/media"))
    env = s3_env(p, LIMNER_STORAGE_URL=f"s3://{bucket}/site/media")
    summary = json.loads(p.run("generate", "--json", "--no-progress", env=env, check=True).stdout)
    assert (summary["generated"], summary["failed"]) == (4, 0)
    p.run("sync", env=env, check=True)

    keys = row_keys(p)
    assert set(objects(bucket)) == {f"site/media/{k}" for k in keys}  # everything under the prefix, nothing else
    manifest = json.loads((p.root / "frontend/src/data/limner-manifest.json").read_text())
    assert len(manifest["entries"]) == 4
    prefix = f"{endpoint}/{bucket}/site/media/"
    assert manifest["base"] == prefix
    urls = set()
    for entry in manifest["entries"].values():
        urls |= {prefix + entry["master_key"], prefix + entry["image_key"]}
        urls |= {prefix + key for keys in entry["variants"].values() for key in keys.values()}
    session = requests.Session()
    for url in sorted(urls):
        assert url.startswith(prefix), url
        key = url[len(prefix):]
        response = session.get(url, timeout=10)
        assert response.status_code == 200, url
        assert response.headers["Content-Type"] == CONTENT_TYPES[key.rsplit(".", 1)[-1]]
        assert response.headers["Cache-Control"] == "public, max-age=31536000, immutable"
        assert hashlib.sha256(response.content).hexdigest() == keys[key]


def test_generate_into_a_missing_bucket_stops_before_any_paid_call(make_project_dir: Callable[..., ProjectDir]) -> None:
    p = make_project_dir(2, extra=storage_config(moto_endpoint()))
    proc = p.run("generate", "--no-progress", env=s3_env(p, LIMNER_STORAGE_URL="s3://no-such-bucket-limner/media"))
    assert proc.returncode == 1
    assert "no-such-bucket-limner" in proc.stderr and "does not exist" in proc.stderr
    assert p.calls() == []


# ----------------------------------------------------------------------------------------- upload
def test_upload_copies_referenced_objects_then_all_and_the_project_switches(make_project_dir: Callable[..., ProjectDir]) -> None:
    endpoint, bucket = moto_endpoint(), new_bucket()
    make_public(bucket)
    p = make_project_dir(3, extra=storage_config(endpoint, f"{endpoint}/{bucket}/media"))
    env = s3_env(p)
    p.run("generate", "--no-progress", env=env, check=True)  # into the default local folder
    local = LocalStorage(p.root / ".limner/media")
    local.put("masters/zz/stray.png", b"not referenced", content_type="image/png")
    keys = row_keys(p)
    target = f"s3://{bucket}/media"

    first = limner_json(p, "upload", "--to", target, env=env)
    assert (first["copied"], first["skipped"], first["failed"]) == (len(keys), 0, 0)
    assert first["objects"] == len(keys) and first["bytes"] == sum(local.size(k) or 0 for k in keys)
    assert first["to"] == target and first["from"] == str(local.root)
    assert set(objects(bucket)) == {f"media/{k}" for k in keys}  # the stray object stayed behind
    for key in keys:
        head = client().head_object(Bucket=bucket, Key=f"media/{key}")
        assert head["Metadata"]["sha256"] == keys[key]
        assert head["ContentType"] == CONTENT_TYPES[key.rsplit(".", 1)[-1]]

    everything = limner(p, "upload", "--all", "--to", target, "--no-progress", env=env)
    assert f"Copied 1 objects (14 bytes), skipped {len(keys)} already there, 0 failed" in everything.stdout
    assert f'url = "{target}"' in everything.stdout  # the next step
    assert "media/masters/zz/stray.png" in objects(bucket)

    # point the project at the bucket: sync writes URLs that serve the same bytes
    switched = {**env, "LIMNER_STORAGE_URL": target}
    p.run("sync", env=switched, check=True)
    manifest = json.loads((p.root / "frontend/src/data/limner-manifest.json").read_text())
    assert len(manifest["entries"]) == 3
    for entry in manifest["entries"].values():
        for url in (manifest["base"] + entry["image_key"], manifest["base"] + entry["master_key"]):
            response = requests.get(url, timeout=10)
            assert response.status_code == 200
            assert hashlib.sha256(response.content).hexdigest() == keys[url.split("/media/", 1)[1]]


def test_upload_errors_are_clear(make_project_dir: Callable[..., ProjectDir]) -> None:
    endpoint = moto_endpoint()
    p = make_project_dir(1, extra=storage_config(endpoint))
    env = s3_env(p)
    LocalStorage(p.root / ".limner/media").put("masters/aa/x.png", b"x", content_type="image/png")
    missing = limner(p, "upload", "--all", "--to", "s3://no-such-bucket-here/media", env=env, check=False)
    assert missing.returncode == 1
    assert "no-such-bucket-here" in missing.stdout + missing.stderr and "does not exist" in missing.stdout + missing.stderr
    same = limner(p, "upload", "--all", "--to", ".limner/media/copy", env=env, check=False)
    assert same.returncode == 2 and "overlap" in same.stderr


@pytest.mark.slow
def test_upload_killed_midway_resumes_without_reuploading(make_project_dir: Callable[..., ProjectDir]) -> None:
    bucket = new_bucket()
    n = 60
    with FaultyProxy(put_delay_s=0.04) as proxy:  # slow writes, so the kill lands mid-way
        p = make_project_dir(1, extra=storage_config(proxy.url))
        env = s3_env(p)
        local = LocalStorage(p.root / ".limner/media")
        for i in range(n):
            data = os.urandom(2000 + 97 * i)
            kind, ext = ("masters", "png") if i % 3 else ("placeholders", "webp")
            sha = hashlib.sha256(data).hexdigest()
            local.put(f"{kind}/{sha[:2]}/{sha}.{ext}", data, content_type="image/png")
        expected = {k: hashlib.sha256(local.get(k)).hexdigest() for k in local.list()}
        target = f"s3://{bucket}/media"

        run = subprocess.Popen([sys.executable, "-c", RUNNER, "--config", str(p.config), "upload", "--all", "--to", target,
                                "--jobs", "2", "--no-progress"], cwd=p.root, env=env, stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 60
        while len(proxy.put_counts(bucket)) < n // 3 and time.monotonic() < deadline and run.poll() is None:
            time.sleep(0.02)
        os.kill(run.pid, signal.SIGKILL)
        run.wait(timeout=10)
        time.sleep(0.1)
        proxy.wait_idle()  # writes the proxy had already taken in have landed; from here the bucket is still
        after_kill = {k[len("media/"):] for k in objects(bucket)}
        assert 0 < len(after_kill) < n, len(after_kill)

        proxy.reset_log()
        resumed = limner_json(p, "upload", "--all", "--to", target, "--jobs", "4", env=env)
        assert resumed["failed"] == 0
        assert resumed["skipped"] == len(after_kill)
        assert resumed["copied"] == n - len(after_kill)
        puts = {k[len("media/"):]: c for k, c in proxy.put_counts(bucket).items()}
        assert not set(puts) & after_kill  # no completed object went up again
        assert set(puts) == set(expected) - after_kill and set(puts.values()) == {1}

        proxy.reset_log()
        again = limner_json(p, "upload", "--all", "--to", target, env=env)
        assert (again["copied"], again["skipped"]) == (0, n)
        assert proxy.put_counts(bucket) == {}

    assert objects(bucket) == {f"media/{k}": local.size(k) for k in expected}
    for key, sha in expected.items():
        assert bucket_sha256(bucket, f"media/{key}") == sha
        assert client().head_object(Bucket=bucket, Key=f"media/{key}")["Metadata"]["sha256"] == sha


# ----------------------------------------------------------------------------------------- (c)
def test_generate_through_a_20_percent_failing_endpoint_publishes_everything(make_project_dir: Callable[..., ProjectDir]) -> None:
    bucket = new_bucket()
    with FaultyProxy(failure_rate=0.2, seed=4) as proxy:
        p = make_project_dir(5, extra=storage_config(proxy.url))
        env = s3_env(p, LIMNER_STORAGE_URL=f"s3://{bucket}/media")
        summary = json.loads(p.run("generate", "--json", "--no-progress", env=env, check=True).stdout)
        p.run("sync", env=env, check=True)
        assert proxy.faults_injected() >= 5
    assert (summary["generated"], summary["failed"]) == (5, 0)
    project = p.project()
    try:
        assert project.repo.counts_by_state() == {EntryState.published.value: 5}
    finally:
        project.close()
    stored = objects(bucket)
    keys = row_keys(p)
    for key, sha in keys.items():  # no row references a missing or partial object
        assert f"media/{key}" in stored, key
        assert bucket_sha256(bucket, f"media/{key}") == sha
    assert len(json.loads((p.root / "frontend/src/data/limner-manifest.json").read_text())["entries"]) == 5


# ----------------------------------------------------------------------------------------- (d)
def test_gc_collects_only_unreferenced_objects_and_optionally_superseded_ones(make_project_dir: Callable[..., ProjectDir]) -> None:
    endpoint, bucket = moto_endpoint(), new_bucket()
    p = make_project_dir(4, extra=storage_config(endpoint))
    env = s3_env(p, LIMNER_STORAGE_URL=f"s3://{bucket}/media")
    p.run("generate", "--no-progress", env=env, check=True)
    p.run("sync", env=env, check=True)
    s3 = client()
    s3.put_object(Bucket=bucket, Key="media/masters/zz/orphan.png", Body=b"o" * 1234)
    s3.put_object(Bucket=bucket, Key="media/notes/keep.txt", Body=b"outside the gc prefixes")

    # regenerate half the entries: their old renders are superseded (rows kept)
    entries = p.entries()
    for e in entries[:2]:
        e["description"] += " Retold."
    p.write_catalog(entries)
    summary = json.loads(p.run("generate", "--json", "--no-progress", env=env, check=True).stdout)
    assert summary["generated"] == 2

    project = p.project()
    try:
        by_render = project.repo.object_keys_by_render()
        published_ids = project.repo.published_render_ids()
        ledger_before = project.repo.spend_by()
    finally:
        project.close()
    published = set().union(*(keys for rid, (_s, keys) in by_render.items() if rid in published_ids))
    superseded_ids = {rid for rid, (status, _k) in by_render.items() if status == "superseded"}
    assert len(superseded_ids) == 2 and len(published_ids) == 4
    superseded_only = set().union(*(by_render[r][1] for r in superseded_ids)) - published
    assert superseded_only

    # default: only the object no row references
    dry = limner_json(p, "gc", env=env)
    assert dry["dry_run"] and [o["key"] for o in dry["objects"]] == ["masters/zz/orphan.png"]
    assert dry["bytes"] == 1234 and dry["deleted"] == 0
    assert "media/masters/zz/orphan.png" in objects(bucket)

    # --superseded before a sync: the deployed manifest still shows the old images, so they stay
    held = limner_json(p, "gc", "--superseded", env=env)
    assert [o["key"] for o in held["objects"]] == ["masters/zz/orphan.png"]
    assert held["renders"] == 0 and held["kept_for_manifest"]

    deleted = limner(p, "gc", "--delete", env=env)
    assert "masters/zz/orphan.png\t1234" in deleted.stdout and "Deleted 1 objects (1,234 bytes)" in deleted.stdout
    stored = set(objects(bucket))
    assert "media/masters/zz/orphan.png" not in stored
    assert {f"media/{k}" for k in published | superseded_only} <= stored  # superseded objects are still referenced

    p.run("sync", env=env, check=True)  # the manifest now names the new images only
    collected = limner_json(p, "gc", "--superseded", "--delete", env=env)
    assert {o["key"] for o in collected["objects"]} == superseded_only
    assert collected["renders"] == 2 and not collected["kept_for_manifest"]
    assert collected["deleted"] == len(superseded_only) and collected["renders_forgotten"] == 2
    remaining = set(objects(bucket))
    assert remaining == (stored - {f"media/{k}" for k in superseded_only})
    assert "media/notes/keep.txt" in remaining
    assert {f"media/{k}" for k in published} <= remaining  # published objects untouched

    project = p.project()
    try:
        after = project.repo.object_keys_by_render()
        assert set(after) == published_ids  # the superseded rows went with their objects
        assert project.repo.spend_by() == ledger_before  # the ledger keeps every call
        assert project.repo.counts_by_state() == {EntryState.published.value: 4}
        for _status, keys in after.values():  # no row references a missing object
            assert {f"media/{k}" for k in keys} <= remaining
        project.repo.set_state(entries[0]["id"], EntryState.generating)
    finally:
        project.close()

    # an entry being generated (a run in progress?) stops --delete unless forced
    refused = limner(p, "gc", "--delete", env=env, check=False)
    assert refused.returncode == 1 and "being generated" in refused.stderr and "--force" in refused.stderr


# ----------------------------------------------------------------------------------------- any storage plugin
# upload and gc reach a storage only through the operations the Storage contract declares: a plugin
# that implements nothing but the abstract methods (MemoryStorage) works on either side.
def sha_key(kind: str, data: bytes, ext: str) -> str:
    sha = hashlib.sha256(data).hexdigest()
    return f"{kind}/{sha[:2]}/{sha}.{ext}"


def test_upload_between_a_minimal_plugin_storage_and_a_folder(tmp_path: Path) -> None:
    src = MemoryStorage()
    good = sha_key("masters", b"master bytes", "png")
    src.put(good, b"master bytes", content_type="image/png")
    src.put("notes/readme.txt", b"hello", content_type="text/plain")
    damaged = f"masters/ab/{'ab' * 32}.png"  # its bytes are not what its name says
    src.put(damaged, b"not the named content", content_type="image/png")
    items = list(list_with_sizes(src))
    assert sorted(items) == sorted((k, None) for k in src.objects)  # no size() per object before one is needed

    dst = LocalStorage(tmp_path / "copy")
    first = copy_objects(src, dst, items, jobs=2)
    assert (first.copied, first.skipped, first.failed) == (2, 0, 1)
    assert first.failures[0]["key"] == damaged and "does not match its sha256" in first.failures[0]["error"]
    assert dst.get(good) == b"master bytes" and dst.get("notes/readme.txt") == b"hello" and not dst.exists(damaged)
    again = copy_objects(src, dst, list_with_sizes(src))
    assert (again.copied, again.skipped, again.failed) == (0, 2, 1)

    back = MemoryStorage()  # into a plugin that cannot hash: each write is read back (size) by the copier
    returned = copy_objects(dst, back, list_with_sizes(dst))
    assert (returned.copied, returned.failed) == (2, 0)
    assert back.objects == {good: b"master bytes", "notes/readme.txt": b"hello"}
    assert copy_objects(dst, back, list_with_sizes(dst)).skipped == 2

    assert describe(src) == repr(src) and describe(dst) == str(dst.root)
    with pytest.raises(ConfigError, match="overlap"):
        copy_objects(src, src, items)
    with pytest.raises(ConfigError, match="overlap"):
        copy_objects(dst, LocalStorage(tmp_path / "copy" / "inner"), [])


class ShortWrites(MemoryStorage):
    """Loses the last byte of every write, and does not say so."""

    def put(self, key: str, data: bytes, *, content_type: str) -> None:
        super().put(key, data[:-1], content_type=content_type)


class ShortWritesVerified(ShortWrites):
    """The same, but claims its put checks itself: the copier then trusts it."""

    verifies_writes = True


def test_upload_reads_back_writes_unless_the_destination_verifies_them(tmp_path: Path) -> None:
    src = LocalStorage(tmp_path / "src")
    key = sha_key("placeholders", b"placeholder", "webp")
    src.put(key, b"placeholder", content_type="image/webp")
    checked = copy_objects(src, ShortWrites(), list_with_sizes(src))
    assert checked.failed == 1 and "destination holds 10, not 11 bytes" in checked.failures[0]["error"]
    trusted = copy_objects(src, ShortWritesVerified(), list_with_sizes(src))
    assert (trusted.copied, trusted.failed) == (1, 0)


def test_gc_collects_from_a_minimal_plugin_storage(make_project_dir: Callable[..., ProjectDir]) -> None:
    p = make_project_dir(1)
    project = p.project()
    try:
        store = MemoryStorage()
        store.put("masters/zz/orphan.png", b"o" * 10, content_type="image/png")
        store.put("notes/keep.txt", b"outside the gc prefixes", content_type="text/plain")
        plan = plan_gc(store, project.repo)
        assert plan.objects == [("masters/zz/orphan.png", None)] and plan.scanned == 1  # sizes unknown: no size() each
        result = run_gc(store, project.repo, plan)
        assert result.deleted == ["masters/zz/orphan.png"] and result.failed == []
        assert set(store.objects) == {"notes/keep.txt"}
    finally:
        project.close()



def test_gc_collects_the_temp_files_a_killed_run_left_in_a_local_folder(make_project_dir: Callable[..., ProjectDir]) -> None:
    """A run killed while it stored a master left masters/xx/.tmp-... for good: the listing hides it, so gc
    reported nothing and deleted nothing. Those untouched for an hour are now listed and deleted; newer ones (a
    put going on) are not."""
    p = make_project_dir(1)
    p.run("generate", "--no-progress", check=True)
    media = p.root / ".limner/media"
    stored = sorted(path for path in media.rglob("*") if path.is_file())
    left = media / "masters" / "ab" / ".tmp-killed01"
    left.parent.mkdir(parents=True, exist_ok=True)
    left.write_bytes(b"x" * 8144)
    os.utime(left, (time.time() - 7200, time.time() - 7200))
    going_on = media / "variants" / ".tmp-writing"
    going_on.write_bytes(b"y" * 10)
    dry = limner_json(p, "gc", env=p.env())
    assert dry["partial_writes"] == [{"name": "masters/ab/.tmp-killed01", "bytes": 8144}] and dry["count"] == 0
    assert left.exists()
    text = limner(p, "gc", env=p.env()).stdout
    assert "1 partial writes interrupted runs left (over an hour old), 8,144 bytes: masters/ab/.tmp-killed01" in text
    done = limner_json(p, "gc", "--delete", env=p.env())
    assert done["partial_deleted"] == 1 and done["deleted_bytes"] == 8144 and done["failed"] == []
    assert not left.exists() and going_on.exists()
    assert sorted(path for path in media.rglob("*") if path.is_file() and path != going_on) == stored


def test_upload_with_a_referenced_object_missing_exits_1_and_does_not_suggest_the_switch(
        make_project_dir: Callable[..., ProjectDir]) -> None:
    p = make_project_dir(2)
    p.run("generate", "--no-progress", check=True)
    local = LocalStorage(p.root / ".limner/media")
    lost = sorted(k for k in row_keys(p) if k.startswith("masters/"))[0]
    local.delete(lost)
    proc = p.run("upload", "--to", "elsewhere", "--json", "--no-progress")
    assert proc.returncode == 1, proc.stderr
    assert json.loads(proc.stdout)["missing"] == [lost] and json.loads(proc.stdout)["failed"] == 0
    text = p.run("upload", "--to", "elsewhere", "--no-progress")
    assert text.returncode == 1 and "url =" not in text.stdout and "missing from the source" in text.stdout
