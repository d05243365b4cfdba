"""The manifest (version 2): keys relative to a base, so it is byte-identical wherever the project lives;
catalogue order and dates; one variant list per format; small enough for a 200-entry timeline; and
``limner media serve`` for local development."""

from __future__ import annotations

import hashlib
import http.client
import json
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import jsonschema
import pytest
import yaml

from limner.storage.serve import MediaServer, resolve_request_path
from limner.sync.manifest import MANIFEST_SCHEMA, MANIFEST_VERSION
from limner.sync.writer import _json_bytes
from projects import ProjectDir

ROOT = Path(__file__).resolve().parent.parent
DEMO_CATALOG = ROOT / "examples" / "jewish-timeline" / "catalog.yaml"
MANIFEST = "frontend/src/data/limner-manifest.json"


def validate(doc: dict) -> None:
    jsonschema.Draft202012Validator(MANIFEST_SCHEMA, format_checker=jsonschema.FormatChecker()).validate(doc)


def test_a_copied_project_writes_a_byte_identical_manifest(make_project_dir, tmp_path):
    p = make_project_dir(4)
    p.run("generate", check=True)
    p.run("sync", check=True)
    first = (p.root / MANIFEST).read_bytes()
    assert str(tmp_path).encode() not in first and b"file:" not in first

    moved = ProjectDir(tmp_path / "elsewhere" / "deeper" / "copy")
    shutil.copytree(p.root, moved.root)
    (moved.root / MANIFEST).unlink()
    (moved.root / MANIFEST).with_name("limner-manifest.schema.json").unlink()
    synced = moved.run_json("sync")
    assert synced["manifest_changed"] is True and synced["published"] == 4
    assert (moved.root / MANIFEST).read_bytes() == first  # the same bytes from another folder

    doc = json.loads(first)
    validate(doc)
    assert doc["version"] == MANIFEST_VERSION == 2
    assert doc["base"] is None and doc["cdn_base"] is None
    assert doc["sizes"] == "(min-width: 96px) 96px, 100vw"  # the fake provider's 96-pixel images
    for i, (entry_id, entry) in enumerate(sorted(doc["entries"].items())):
        assert entry["order"] == int(entry_id.split("-")[1]) and entry["year"] == -1000 + i * 10
        assert entry["era"] in {"patriarchs", "medieval", "modern"}
        assert (p.root / ".limner/media" / entry["image_key"]).is_file()
        assert (p.root / ".limner/media" / entry["master_key"]).is_file()
        assert entry["image_key"] == max(entry["variants"]["jpeg"].items(), key=lambda kv: int(kv[0]))[1]


def test_bases_come_from_the_settings_and_end_in_a_slash(project_dir):
    project_dir.config.write_text(project_dir.config.read_text() + textwrap.dedent("""
        [storage]
        public_base_url = "https://img.example.org/media"
        cdn_base_url = "https://cdn.example.org"
        alias_pattern = "events/{id}.jpg"
        [sync]
        sizes = "(min-width: 800px) 50vw, 100vw"
        """))
    project_dir.write_catalog(project_dir.entries()[:2])
    project_dir.run("generate", check=True)
    project_dir.run("sync", check=True)
    text = (project_dir.root / MANIFEST).read_text(encoding="utf-8")
    doc = json.loads(text)
    validate(doc)
    assert (doc["base"], doc["cdn_base"]) == ("https://img.example.org/media/", "https://cdn.example.org/")
    assert doc["sizes"] == "(min-width: 800px) 50vw, 100vw"
    entry = doc["entries"]["event-000"]
    assert entry["alias_key"] == "events/event-000.jpg"
    assert "https://" not in json.dumps(doc["entries"])  # keys only: the bases are said once
    assert "srcset" not in entry and "sources" not in entry  # the helper derives them from `variants`


def test_the_schema_refuses_urls_and_parent_paths_as_keys(project_dir):
    project_dir.write_catalog(project_dir.entries()[:1])
    project_dir.run("generate", check=True)
    project_dir.run("sync", check=True)
    doc = json.loads((project_dir.root / MANIFEST).read_text())
    validate(doc)
    for bad in ("file:///tmp/x.jpg", "../x.jpg", "/abs/x.jpg", "a/../../x.jpg"):
        broken = json.loads(json.dumps(doc))
        broken["entries"]["event-000"]["image_key"] = bad
        with pytest.raises(jsonschema.ValidationError):
            validate(broken)


def test_a_demo_sized_manifest_stays_under_400_kb(tmp_path):
    """The demo's 202 entries with the demo's settings (1024 px, 3:2, four widths × three formats): two real
    sketch renders give the shape, the demo catalogue gives ids, titles, dates and eras."""
    p = ProjectDir(tmp_path / "demo")
    p.root.mkdir()
    catalogue = yaml.safe_load(DEMO_CATALOG.read_text(encoding="utf-8"))["entries"]
    assert len(catalogue) == 202
    p.write_catalog(catalogue[:2])
    p.config.write_text(textwrap.dedent("""\
        catalog = "catalog.yaml"
        provider = "sketch"
        [generate]
        size = 1024
        aspect = "3:2"
        workers = 2
        """), encoding="utf-8")
    p.run("generate", check=True, timeout=180)
    p.run("sync", check=True)
    real = json.loads((p.root / MANIFEST).read_text(encoding="utf-8"))
    template = next(iter(real["entries"].values()))
    assert sum(len(v) for v in template["variants"].values()) == 12  # 240, 480, 768, 1024 × avif, webp, jpeg

    def fake_hex(text: str, n: int) -> str:
        return (hashlib.sha256(text.encode()).hexdigest() * 2)[:n]

    entries = {}
    for order, item in enumerate(catalogue):
        e = json.loads(json.dumps(template))
        e.update(id=item["id"], order=order, title=item["title"], year=item["year"],
                 placeholder=f"/images/events/{item['id']}.webp",
                 alt=f"Illustration: {item['title']} ({item.get('date') or item['year']})")
        for name in ("date", "era"):
            e.pop(name, None)
            if item.get(name):
                e[name] = item[name]
        for fmt, keys in e["variants"].items():
            e["variants"][fmt] = {w: f"variants/{fake_hex(item['id'] + fmt + w, 16)}-{w}.{k.rsplit('.', 1)[1]}"
                                  for w, k in keys.items()}
        e["image_key"] = e["variants"]["jpeg"]["1024"]
        e["master_key"] = f"masters/{fake_hex(item['id'], 2)}/{fake_hex(item['id'], 64)}.png"
        e["fingerprint"] = fake_hex(item["id"] + "fp", 64)
        entries[item["id"]] = e
    doc = {**real, "entries": dict(sorted(entries.items()))}
    validate(doc)
    size = len(_json_bytes(doc))
    assert size <= 400_000, f"a 202-entry manifest is {size} bytes"


# ------------------------------------------------------------------------------------- media serve
@pytest.fixture
def media(tmp_path):
    root = tmp_path / "media"
    (root / "variants").mkdir(parents=True)
    (root / "variants" / "abc-240.avif").write_bytes(b"AVIF" * 100)
    (root / ".hidden").write_bytes(b"no")
    (tmp_path / "secret.txt").write_text("outside")
    (root / "variants" / "escape.jpg").symlink_to(tmp_path / "secret.txt")
    return root


def raw_get(base: str, path: str, method: str = "GET") -> tuple[int, bytes, dict[str, str]]:
    host, port = base.removeprefix("http://").rstrip("/").rsplit(":", 1)
    conn = http.client.HTTPConnection(host, int(port), timeout=10)
    conn.putrequest(method, path, skip_accept_encoding=True)  # the path goes out exactly as written
    conn.endheaders()
    resp = conn.getresponse()
    body = resp.read()
    conn.close()
    return resp.status, body, {k.lower(): v for k, v in resp.getheaders()}


@pytest.mark.parametrize("path", ["/../secret.txt", "/variants/../../secret.txt", "/%2e%2e/secret.txt",
                                  "/variants%2f..%2f..%2fsecret.txt", "/variants/escape.jpg", "/.hidden", "/",
                                  "/variants", "//etc/passwd", "/variants/..\\..\\secret.txt", "/nope.avif"])
def test_resolve_refuses_anything_outside_the_folder(media, path):
    assert resolve_request_path(media, path) is None


def test_media_server_serves_files_and_refuses_traversal_and_writes(media):
    server = MediaServer(media, "127.0.0.1", 0)
    server.start()
    try:
        status, body, headers = raw_get(server.base_url, "/variants/abc-240.avif?v=1")
        assert status == 200 and body == b"AVIF" * 100
        assert headers["content-type"] == "image/avif" and "immutable" in headers["cache-control"]
        for path in ("/../secret.txt", "/%2e%2e/secret.txt", "/variants/../../secret.txt", "/variants/escape.jpg"):
            status, body, _ = raw_get(server.base_url, path)
            assert status == 404 and b"outside" not in body, path
        assert raw_get(server.base_url, "/variants/abc-240.avif", "PUT")[0] == 405
        assert raw_get(server.base_url, "/variants/abc-240.avif", "DELETE")[0] == 405
        assert (media / "variants" / "abc-240.avif").read_bytes() == b"AVIF" * 100
    finally:
        server.shutdown()
        server.server_close()


def test_limner_media_serve_serves_the_projects_store(project_dir):
    project_dir.write_catalog(project_dir.entries()[:1])
    project_dir.run("generate", check=True)
    project_dir.run("sync", check=True)
    entry = json.loads((project_dir.root / MANIFEST).read_text())["entries"]["event-000"]
    proc = subprocess.Popen([sys.executable, "-m", "limner", "--config", str(project_dir.config), "media", "serve", "--port", "0"],
                            cwd=project_dir.root, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=project_dir.env())
    try:
        line = proc.stdout.readline()
        assert line.startswith("Serving ") and "http://127.0.0.1:" in line, (line, proc.stderr.read() if proc.poll() is not None else "")
        base = line.split(" at ", 1)[1].strip()
        status, body, headers = raw_get(base, "/" + entry["image_key"])
        assert status == 200 and headers["content-type"] == "image/jpeg"
        assert body == (project_dir.root / ".limner/media" / entry["image_key"]).read_bytes()
        assert raw_get(base, "/../limner.toml")[0] == 404
        assert raw_get(base, "/%2e%2e/limner.toml")[0] == 404
    finally:
        proc.terminate()
        proc.wait(timeout=10)
        proc.stdout.close()
        proc.stderr.close()


def test_media_serve_refuses_a_remote_store(project_dir):
    proc = project_dir.run("media", "serve", env=project_dir.env(LIMNER_STORAGE_URL="s3://bucket/prefix"))
    assert proc.returncode == 2 and "not a local folder" in proc.stderr


def test_media_serve_and_the_review_studio_default_to_different_ports():
    """The usual development setup runs both at once (`limner serve`, then `limner media serve`)."""
    import inspect

    from limner.cli.commands import media
    from limner.config.settings import ReviewSettings

    studio = ReviewSettings().port
    assert inspect.signature(MediaServer.__init__).parameters["port"].default != studio
    assert f"= {studio}," not in inspect.getsource(media)
