"""Stable aliases, adopting hand-made placeholders, and the example timeline published to a (fake) Supabase."""

from __future__ import annotations

import hashlib
import io
import json
import shutil
import subprocess
import sys
import textwrap
import threading
from pathlib import Path
from types import SimpleNamespace
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))  # for fake_supabase

import httpx  # noqa: E402
import jsonschema  # noqa: E402
import pytest  # noqa: E402
import yaml  # noqa: E402
from fake_supabase import SERVICE_KEY, FakeSupabase  # noqa: E402
from PIL import Image  # noqa: E402
from projects import ProjectDir  # noqa: E402

from limner.cli.commands.status import entries_with_image  # noqa: E402
from limner.errors import ConfigError  # noqa: E402
from limner.imaging import sniff_format  # noqa: E402
from limner.keys import is_alias_key, validate_pattern  # noqa: E402
from limner.storage import StorageError  # noqa: E402
from limner.storage.base import MIME_TYPES  # noqa: E402
from limner.storage.local import LocalStorage  # noqa: E402
from limner.storage.supabase import SupabaseStorage  # noqa: E402
from limner.sync import sync_project  # noqa: E402
from limner.sync.adopt import LEGACY_FINGERPRINT, adopt_placeholders  # noqa: E402
from limner.sync.aliases import ALIAS_CACHE_CONTROL, alias_url, write_aliases  # noqa: E402
from limner.testing.fake_provider import noisy_png  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "examples" / "jewish-timeline"
PATTERN = "events/{id}.jpg"

#: the CLI with ``adopt-placeholders`` registered (until cli/app.py registers it itself)
RUNNER = textwrap.dedent("""\
    from limner.cli.app import app
    from limner.cli.commands import adopt
    if "adopt-placeholders" not in {c.name for c in app.registered_commands}:
        adopt.register(app)
    app(prog_name="limner")
""")


def cli(p: ProjectDir, *args: str, env: dict[str, str] | None = None, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", RUNNER, "--config", str(p.config), *args], cwd=p.root,
                          capture_output=True, text=True, timeout=timeout, env=env or p.env())


def cli_json(p: ProjectDir, *args: str, ok: tuple[int, ...] = (0,), **kw: Any) -> Any:
    proc = cli(p, *args, "--json", **kw)
    assert proc.returncode in ok, f"limner {' '.join(args)} exited {proc.returncode}\n{proc.stdout}\n{proc.stderr}"
    return json.loads(proc.stdout)


def image_bytes(fmt: str, width: int, height: int, seed: int) -> bytes:
    im = Image.open(io.BytesIO(noisy_png(width, height, seed))).convert("RGB")
    buf = io.BytesIO()
    im.save(buf, fmt, quality=85)
    return buf.getvalue()


# ------------------------------------------------------------------------- aliases, unit level
def variant(key: str, data: bytes, width: int, fmt: str = "jpeg") -> SimpleNamespace:
    return SimpleNamespace(key=key, width=width, height=width, format=fmt, sha256=hashlib.sha256(data).hexdigest(),
                           bytes=len(data))


def stand_in(tmp_path: Path, storage: Any, url: str) -> SimpleNamespace:
    """Just what write_aliases reads of a Project."""
    settings = SimpleNamespace(state_dir=tmp_path / ".limner", storage=SimpleNamespace(url=url, alias_pattern=None))
    return SimpleNamespace(settings=settings, storage=storage)


def publish(storage: Any, entry_id: str, seed: int, sizes: tuple[int, ...] = (48, 96)) -> SimpleNamespace:
    variants = []
    for width in sizes:
        for fmt in ("webp", "jpeg"):
            data = image_bytes("JPEG" if fmt == "jpeg" else "WEBP", width, width, seed)
            key = f"variants/{hashlib.sha256(data).hexdigest()[:16]}-{width}.{'jpg' if fmt == 'jpeg' else fmt}"
            storage.put(key, data, content_type=MIME_TYPES[fmt])
            variants.append(variant(key, data, width, fmt))
    return SimpleNamespace(entry_id=entry_id, variants=variants)


class Recording:
    """A storage wrapper that records the mutating calls."""

    def __init__(self, inner: Any) -> None:
        self.inner, self.calls = inner, []

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self.inner, name)
        if name in ("put", "delete", "copy"):
            def wrapped(*args: Any, **kw: Any) -> Any:
                self.calls.append((name, args[0] if name != "copy" else args[1]))
                return attr(*args, **kw)
            return wrapped
        return attr


def test_aliases_local_written_skipped_and_updated(tmp_path: Path) -> None:
    storage = Recording(LocalStorage(tmp_path / "media", public_base_url="https://img.example.org"))
    project = stand_in(tmp_path, storage, ".limner/media")
    renders = [publish(storage, "exodus", 1), publish(storage, "sinai", 2)]
    storage.calls.clear()
    assert write_aliases(project, renders, pattern=PATTERN) == ["events/exodus.jpg", "events/sinai.jpg"]
    largest = max((v for v in renders[0].variants if v.format == "jpeg"), key=lambda v: v.width)
    assert storage.get("events/exodus.jpg") == storage.get(largest.key)
    assert alias_url(storage, PATTERN, renders[0]) == "https://img.example.org/events/exodus.jpg"
    assert sorted(storage.calls) == [("copy", "events/exodus.jpg"), ("copy", "events/sinai.jpg")]  # never delete-then-write

    storage.calls.clear()
    assert write_aliases(project, renders, pattern=PATTERN) == []  # unchanged: nothing written
    assert storage.calls == []

    renders[1] = publish(storage, "sinai", 3)  # re-published with a new image
    storage.calls.clear()
    assert write_aliases(project, renders, pattern=PATTERN) == ["events/sinai.jpg"]
    assert storage.calls == [("copy", "events/sinai.jpg")]  # Storage.copy: for a folder, get + an atomic put
    new_largest = max((v for v in renders[1].variants if v.format == "jpeg"), key=lambda v: v.width)
    assert hashlib.sha256(storage.get("events/sinai.jpg")).hexdigest() == new_largest.sha256
    assert not list((tmp_path / "media" / "events").glob(".tmp-*"))


def test_alias_of_same_size_but_other_bytes_is_rewritten(tmp_path: Path) -> None:
    storage = LocalStorage(tmp_path / "media")
    project = stand_in(tmp_path, storage, "media")
    render = publish(storage, "exodus", 1)
    largest = max((v for v in render.variants if v.format == "jpeg"), key=lambda v: v.width)
    storage.put("events/exodus.jpg", b"\0" * largest.bytes, content_type="image/jpeg")  # hand-edited, same size
    assert write_aliases(project, [render], pattern=PATTERN) == ["events/exodus.jpg"]
    assert storage.get("events/exodus.jpg") == storage.get(largest.key)


def test_a_damaged_variant_is_not_copied_to_its_alias(tmp_path: Path) -> None:
    storage = LocalStorage(tmp_path / "media")
    project = stand_in(tmp_path, storage, "media")
    render = publish(storage, "exodus", 1)
    largest = max((v for v in render.variants if v.format == "jpeg"), key=lambda v: v.width)
    storage.put(largest.key, b"\xff" * largest.bytes, content_type="image/jpeg")  # same size, other bytes
    with pytest.raises(StorageError) as info:
        write_aliases(project, [render], pattern=PATTERN)
    assert largest.key in str(info.value) and "does not match" in str(info.value)
    assert not storage.exists("events/exodus.jpg")
    storage.delete(largest.key)
    with pytest.raises(StorageError) as info:
        write_aliases(project, [render], pattern=PATTERN)
    assert "missing" in str(info.value) and not storage.exists("events/exodus.jpg")


def test_aliases_on_supabase_use_server_side_copy_atomically(tmp_path: Path) -> None:
    with FakeSupabase() as fake:
        storage = Recording(SupabaseStorage(fake.url, SERVICE_KEY, "timeline-images", "site", backoff_initial_s=0.001))
        project = stand_in(tmp_path, storage, "supabase://timeline-images/site")
        old = publish(storage, "exodus", 1, sizes=(64, 160))
        storage.calls.clear()
        assert write_aliases(project, [old], pattern=PATTERN) == ["events/exodus.jpg"]
        assert storage.calls == [("copy", "events/exodus.jpg")]
        alias = fake.object("timeline-images", "site/events/exodus.jpg")
        assert alias is not None and alias.cache_control == ALIAS_CACHE_CONTROL and alias.content_type == "image/jpeg"
        old_bytes = alias.data

        new = publish(storage, "exodus", 2, sizes=(64, 160))
        new_bytes = storage.get(max((v for v in new.variants if v.format == "jpeg"), key=lambda v: v.width).key)
        seen: set[bytes] = set()
        problems: list[str] = []
        stop, reading = threading.Event(), threading.Event()
        url = storage.url("events/exodus.jpg")

        def reader() -> None:
            with httpx.Client() as client:
                while not stop.is_set():
                    r = client.get(url)
                    if r.status_code != 200 or r.content not in (old_bytes, new_bytes):
                        problems.append(f"HTTP {r.status_code}, {len(r.content)} bytes")
                        return
                    seen.add(r.content)
                    reading.set()

        t = threading.Thread(target=reader)
        t.start()
        try:
            assert reading.wait(10)
            storage.calls.clear()
            assert write_aliases(project, [new], pattern=PATTERN) == ["events/exodus.jpg"]
            assert write_aliases(project, [new], pattern=PATTERN) == []
        finally:
            stop.set()
            t.join(10)
        assert not problems and old_bytes in seen
        assert storage.calls == [("copy", "events/exodus.jpg")]  # no delete, no second copy
        assert fake.object("timeline-images", "site/events/exodus.jpg").data == new_bytes  # type: ignore[union-attr]


def test_alias_patterns() -> None:
    assert validate_pattern("events/{id}.jpg") == "events/{id}.jpg"
    assert validate_pattern("img/{id}/{id}-large.webp") == "img/{id}/{id}-large.webp"
    for bad in ("events/{slug}.jpg", "events/static.jpg", "../{id}.jpg", "/abs/{id}.jpg", "variants/{id}.jpg",
                "events/{id}.png", "events/{id}",
                # a format spec or conversion changes the id (every 'exo…' one alias; quotes), and a '.' or empty
                # segment puts the alias elsewhere (./masters/… is under masters/ on a folder store)
                "events/{id:.3}.jpg", "events/{id!r}.jpg", "events/{id:>20}.jpg", "./masters/{id}.jpg",
                "events//{id}.jpg", "events/./{id}.jpg", " events/{id}.jpg"):
        with pytest.raises(ConfigError):
            validate_pattern(bad)
    assert is_alias_key("events/{id}.jpg", "events/exodus-1.jpg")
    assert not is_alias_key("events/{id}.jpg", "events/sub/x.jpg")
    assert not is_alias_key("events/{id}.jpg", "variants/ab/x.jpg")


# ------------------------------------------------------------------------- adopt-placeholders, end to end
def test_adopt_placeholders_then_generate_replaces_them(make_project_dir: Any) -> None:
    p = make_project_dir(6)
    folder = p.root / "frontend" / "public" / "images" / "events"
    folder.mkdir(parents=True)
    (folder / "event-000.jpg").write_bytes(image_bytes("JPEG", 160, 107, 1))
    (folder / "event-001.webp").write_bytes(image_bytes("WEBP", 160, 107, 2))
    (folder / "event-001.jpg").write_bytes(image_bytes("JPEG", 80, 53, 2))  # a smaller copy: ignored
    (folder / "event-002.png").write_bytes(noisy_png(120, 80, 3))
    (folder / "not-in-catalogue.jpg").write_bytes(image_bytes("JPEG", 64, 64, 4))
    (folder / "README.txt").write_text("hand-made placeholders")
    adopted_ids = ["event-000", "event-001", "event-002"]

    first = cli_json(p, "adopt-placeholders", str(folder))
    assert first["adopted"] == adopted_ids and first["files"] == 5 and not first["failed"]
    assert first["unknown"] == ["not-in-catalogue.jpg"]
    assert first["skipped"] == [{"id": "event-001", "file": "event-001.jpg", "reason": "duplicate"}]

    project = p.project()
    try:
        again = adopt_placeholders(project, folder)  # idempotent
    finally:
        project.close()
    assert again.adopted == []
    assert {s["id"] for s in again.skipped if s["reason"] == "adopted"} == set(adopted_ids)

    plan = cli_json(p, "plan")
    reasons = {i["id"]: i["reason"] for i in plan["items"]}
    assert reasons == {**dict.fromkeys(adopted_ids, "stale"), **dict.fromkeys(["event-003", "event-004", "event-005"], "missing")}
    missing = cli_json(p, "check-missing", ok=(1,))
    assert missing["missing"] == ["event-003", "event-004", "event-005"]

    project = p.project()
    try:
        renders = {r.entry_id: r for r in project.repo.published_renders()}
        assert set(renders) == set(adopted_ids)
        for entry_id in adopted_ids:
            r = renders[entry_id]
            assert (r.provider, r.model, r.cost_usd, r.fingerprint) == ("legacy", "adopted", 0.0, LEGACY_FINGERPRINT)
            assert r.placeholder_key and r.blurhash and {v.format for v in r.variants} == {"avif", "webp", "jpeg"}
            assert project.storage.get(r.master_key) == (folder / first_file(first, entry_id, folder)).read_bytes()
        assert renders["event-001"].width == 160  # the larger of the two files
        assert project.repo.spend() == 0.0  # no ledger lines for adopted images
        synced = sync_project(project)
        manifest = json.loads(Path(synced.manifest).read_text())
        jsonschema.validate(manifest, json.loads(Path(synced.schema).read_text()))  # the legacy fingerprint fits the schema
        assert {e["provider"] for e in manifest["entries"].values()} == {"legacy"}
        assert {e["fingerprint"] for e in manifest["entries"].values()} == {LEGACY_FINGERPRINT}
    finally:
        project.close()


    run = cli_json(p, "generate", "--no-progress")
    assert run["generated"] == 6 and run["failed"] == 0, run
    assert sorted(c["id"] for c in p.calls()) == [f"event-{i:03d}" for i in range(6)]
    assert cli_json(p, "plan")["planned"] == 0
    project = p.project()
    try:
        assert {r.provider for r in project.repo.published_renders()} == {"fake"}
        assert [r.status for r in project.repo.renders_for("event-000")] == ["superseded", "published"]
        after = adopt_placeholders(project, folder)
        assert after.adopted == [] and {s["reason"] for s in after.skipped} == {"published"}
    finally:
        project.close()


def first_file(result: dict[str, Any], entry_id: str, folder: Path) -> str:
    ignored = {s["file"] for s in result["skipped"]}
    return next(f.name for f in sorted(folder.iterdir()) if f.stem == entry_id and f.name not in ignored)


@pytest.mark.parametrize("when", ["after_its_claim", "before_its_claim"])
def test_adopt_and_a_paid_generation_at_once_never_replace_the_paid_image(make_project_dir: Any, monkeypatch: Any,
                                                                          when: str) -> None:
    """``limner generate`` runs while adopt-placeholders is between reading the statuses and publishing: either
    the run finds the entry held (adopt publishes, nothing is paid) or adopt finds it published (and skips it).
    Never a paid image superseded by a hand-made one, to be planned stale and paid for again."""
    import limner.sync.adopt as adopt_mod

    p = make_project_dir(2)
    folder = p.root / "legacy"
    folder.mkdir()
    (folder / "event-000.jpg").write_bytes(image_bytes("JPEG", 160, 107, 1))
    runs: list[dict[str, Any]] = []
    hooked = "_adopt_one" if when == "after_its_claim" else "_take"
    real = getattr(adopt_mod, hooked)

    def racing(*args: Any) -> Any:
        runs.append(json.loads(p.run("generate", "--id", "event-000", "--json", "--no-progress").stdout))
        return real(*args)

    monkeypatch.setattr(adopt_mod, hooked, racing)
    project = p.project()
    try:
        result = adopt_placeholders(project, folder)
        published = project.repo.published_providers()
        superseded = [r for r in project.reviews.renders("event-000") if r.status == "superseded"]
    finally:
        project.close()
    assert len(runs) == 1
    if when == "after_its_claim":
        assert result.adopted == ["event-000"] and runs[0]["generated"] == 0 and runs[0]["provider_calls"] == 0
        assert published == {"event-000": "legacy"}
    else:
        assert result.adopted == [] and result.skipped == [{"id": "event-000", "file": "event-000.jpg", "reason": "published"}]
        assert runs[0]["generated"] == 1 and published == {"event-000": "fake"}
    assert not superseded
    plan = json.loads(p.run("plan", "--json").stdout)
    assert "event-000" not in {i["id"] for i in plan["items"]} or when == "after_its_claim"  # the paid one is up to date


def test_a_rejected_file_leaves_its_entry_as_it_was(make_project_dir: Any) -> None:
    """An entry that failed for good (held back) and a blank file for it: the file is rejected before the entry
    is claimed, so the entry stays failed and held back (never turned into a missing one to pay for)."""
    p = make_project_dir(2, extra='refuse_ids = ["event-000"]\n')
    p.run("generate", "--no-progress")
    before = json.loads(p.run("plan", "--json").stdout)
    folder = p.root / "legacy"
    folder.mkdir()
    buf = io.BytesIO()
    Image.new("RGB", (160, 107), (128, 128, 128)).save(buf, "JPEG")
    (folder / "event-000.jpg").write_bytes(buf.getvalue())
    proc = p.run("adopt-placeholders", str(folder), "--json")
    result = json.loads(proc.stdout)
    assert proc.returncode == 1 and result["adopted"] == [] and "blank" in result["failed"][0]["error"]
    project = p.project()
    try:
        status = project.repo.entry_status("event-000")
    finally:
        project.close()
    assert status.state == "failed"
    assert json.loads(p.run("plan", "--json").stdout)["planned"] == before["planned"] == 0


def test_adopt_dry_run_and_bad_images(make_project_dir: Any) -> None:
    p = make_project_dir(3)
    folder = p.root / "legacy"
    folder.mkdir()
    (folder / "event-000.jpg").write_bytes(image_bytes("JPEG", 96, 64, 1))
    (folder / "event-001.jpg").write_bytes(b"\xff\xd8\xff not really a jpeg")
    buf = io.BytesIO()
    Image.new("RGB", (96, 64), (200, 200, 200)).save(buf, "PNG")
    (folder / "event-002.png").write_bytes(buf.getvalue())  # blank: rejected like a blank generation

    dry = cli_json(p, "adopt-placeholders", str(folder), "--dry-run", ok=(1,))
    assert dry["dry_run"] and dry["adopted"] == ["event-000", "event-002"]
    assert [f["id"] for f in dry["failed"]] == ["event-001"]
    assert not (p.root / ".limner" / "media").exists()  # a dry run stores nothing

    project = p.project()
    try:
        real = adopt_placeholders(project, folder)
        assert real.adopted == ["event-000"]
        errors = {f["id"]: f["error"] for f in real.failed}
        assert set(errors) == {"event-001", "event-002"} and errors["event-002"].startswith("image rejected (blank)")
        assert entries_with_image(project) == {"event-000"}
        with pytest.raises(ConfigError, match="not a folder"):
            adopt_placeholders(project, p.root / "nowhere")
    finally:
        project.close()


# ------------------------------------------------------------------------- the example timeline on Supabase
def test_example_timeline_published_to_supabase(make_project_dir: Any) -> None:
    entries = yaml.safe_load((EXAMPLE / "catalog.yaml").read_text(encoding="utf-8"))["entries"][:8]
    p = make_project_dir(1, name="timeline")  # then made the example's, on the fake provider
    shutil.copytree(EXAMPLE / "styles", p.root / "styles")
    p.write_catalog(entries)
    config = (EXAMPLE / "limner.toml").read_text(encoding="utf-8")
    config = config.replace('catalog = "catalog.yaml"', 'catalog = "catalog.yaml"\nprovider = "fake"', 1)
    config = config.replace("concurrency = 8", "concurrency = 4\nworkers = 2\nbackoff_initial_s = 0.01", 1)
    p.config.write_text(config + '\n[providers.fake]\nsize = 96\n', encoding="utf-8")
    with FakeSupabase() as fake:
        (p.root / ".env").write_text(f"SUPABASE_URL={fake.url}\nSUPABASE_SERVICE_ROLE_KEY={SERVICE_KEY}\n", encoding="utf-8")
        env = p.env(LIMNER_STORAGE_URL="supabase://timeline-images/limner")
        run = cli_json(p, "generate", "--no-progress", env=env)
        assert run["generated"] == 8 and run["failed"] == 0, run
        synced = cli_json(p, "sync", env=env)
        assert synced["published"] == 8
        assert fake.buckets["timeline-images"].public
        manifest = json.loads(Path(synced["manifest"]).read_text(encoding="utf-8"))
        assert sorted(manifest["entries"]) == sorted(e["id"] for e in entries)

        project = p.project(storage={"url": "supabase://timeline-images/limner"})
        try:
            storage = project.storage
            renders = project.repo.published_renders()
            expected = {}  # url -> (mime, sha256)
            for r in renders:
                expected[storage.url(r.master_key)] = (MIME_TYPES[r.master_format], r.master_sha256)
                for v in r.variants:
                    expected[storage.url(v.key)] = (MIME_TYPES[v.format], v.sha256)
            aliases = write_aliases(project, renders, pattern=PATTERN)
            assert aliases == sorted(f"events/{e['id']}.jpg" for e in entries)
        finally:
            project.close()

        base = manifest["base"]
        assert base == f"{fake.url}/storage/v1/object/public/timeline-images/limner/"
        urls: set[str] = set()
        for entry in manifest["entries"].values():
            urls |= {base + entry["master_key"], base + entry["image_key"]}
            urls |= {base + key for keys in entry["variants"].values() for key in keys.values()}
        assert urls and all(u.startswith(f"{fake.url}/storage/v1/object/public/timeline-images/limner/") for u in urls)
        with httpx.Client() as client:  # no key: what a browser gets
            for url in sorted(urls):
                r = client.get(url)
                mime, sha = expected[url]
                assert r.status_code == 200, url
                assert r.headers["content-type"] == mime, url
                assert hashlib.sha256(r.content).hexdigest() == sha, url
                assert MIME_TYPES[sniff_format(r.content)] == mime
            for entry_id in manifest["entries"]:
                r = client.get(f"{fake.url}/storage/v1/object/public/timeline-images/limner/events/{entry_id}.jpg")
                assert r.status_code == 200 and r.headers["content-type"] == "image/jpeg"
                assert r.content == client.get(base + manifest["entries"][entry_id]["image_key"]).content


def test_the_alias_cache_is_kept_under_the_storage_url_without_its_password(tmp_path: Path) -> None:
    """The cache of written aliases (.limner/) was keyed by the storage URL as configured: a plugin's URL with a
    user:password@ put the password in a file on disk."""
    storage = LocalStorage(tmp_path / "media")
    project = stand_in(tmp_path, storage, "memory://editor:pw-Secr3t-9f2k@store/media")
    assert write_aliases(project, [publish(storage, "exodus", 1)], pattern=PATTERN) == ["events/exodus.jpg"]
    kept = "".join(p.read_text() for p in (tmp_path / ".limner").rglob("*") if p.is_file())
    assert "events/exodus.jpg" in kept and "memory://***@store/media" in kept and "Secr3t" not in kept
