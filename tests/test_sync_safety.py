"""``limner sync`` under attack: ids from the app's manifest cannot reach outside the placeholder folder,
and a folder that cannot be written is exit 2 with its path, not a traceback."""

from __future__ import annotations

import json

import pytest


@pytest.fixture
def synced(make_project_dir):
    p = make_project_dir(2)
    p.run("generate", check=True)
    p.run("sync", check=True)
    return p


def test_a_manifest_key_with_dots_or_an_absolute_path_deletes_nothing_outside(synced, tmp_path):
    p = synced
    folder = p.root / "frontend" / "public" / "images" / "events"
    manifest = p.root / "frontend" / "src" / "data" / "limner-manifest.json"
    victims = [folder.parent / "victim.webp", folder.parent.parent / "victim.webp", p.root / "victim.webp",
               tmp_path / "abs-victim.webp", folder.parent.parent / "images.webp"]
    for v in victims:
        v.write_bytes(b"keep me")
    (folder / "innocent").mkdir()
    link = folder / "linked.webp"
    link.symlink_to(victims[1])
    doc = json.loads(manifest.read_text())
    for key in ["../victim", "../../victim", "../../../../victim", str(tmp_path / "abs-victim"), "../../images",
                "innocent/..", "linked", "x/../../victim", "..", ""]:
        doc["entries"][key] = doc["entries"]["event-000"]
    manifest.write_text(json.dumps(doc))
    proc = p.run("sync")
    assert proc.returncode == 0, proc.stderr
    assert all(v.read_bytes() == b"keep me" for v in victims)
    assert link.is_symlink() and (folder / "innocent").is_dir()
    assert (folder / "event-000.webp").is_file() and (folder / "event-001.webp").is_file()


def test_a_folder_that_cannot_be_written_is_exit_2_with_the_path(synced):
    p = synced
    (p.root / "blocker").write_text("a file where a folder should be")
    p.config.write_text(p.config.read_text() + '\n[sync]\nplaceholder_dir = "blocker/events"\n')
    proc = p.run("sync")
    assert proc.returncode == 2
    assert "blocker/events" in proc.stderr and "Traceback" not in proc.stderr


def test_a_manifest_folder_that_cannot_be_written_changes_no_placeholder(make_project_dir):
    """The folders sync writes into are checked before the first file changes (exit 2 then means nothing
    changed): a manifest whose folder cannot be made (a file is in the way) leaves the placeholders unwritten."""
    p = make_project_dir(2)
    p.run("generate", check=True)
    (p.root / "blocker").write_text("a file where the manifest's folder should be")
    proc = p.run("sync", env=p.env(LIMNER_SYNC_MANIFEST=str(p.root / "blocker" / "data" / "m.json")))
    assert proc.returncode == 2 and "blocker" in proc.stderr and "Traceback" not in proc.stderr, proc.stderr
    assert not (p.root / "frontend").exists()


@pytest.mark.parametrize("entries", [[{"id": "event-000"}], None, "x"])
def test_a_manifest_whose_entries_are_not_an_object_is_rewritten(synced, entries):
    manifest = synced.root / "frontend" / "src" / "data" / "limner-manifest.json"
    doc = json.loads(manifest.read_text())
    manifest.write_text(json.dumps({**doc, "entries": entries}))
    proc = synced.run("sync")
    assert proc.returncode == 0, proc.stderr
    assert set(json.loads(manifest.read_text())["entries"]) == {"event-000", "event-001"}


@pytest.mark.parametrize(("setting", "value"), [
    ("LIMNER_STORAGE_PUBLIC_BASE_URL", "https://limner:s3cr3t-pass@images.example.org/media"),
    ("LIMNER_STORAGE_CDN_BASE_URL", "https://cdn.example.org/media?sig=AbCdEf123456GhIjKl7890MnOpQrSt"),
    ("LIMNER_STORAGE_CDN_BASE_URL", "https://cdn.example.org/media#token=abc"),
])
def test_a_base_url_with_a_password_query_or_fragment_never_reaches_the_manifest(make_project_dir, setting, value):
    """The manifest is committed and bundled into the app: a password in `public_base_url`, or a signature in
    `cdn_base_url`'s query, was written into `base`/`cdn_base` as it was (and `base + key` put the key inside the
    query). sync now refuses it (exit 2) before any file is written, naming the setting and not the secret."""
    p = make_project_dir(1)
    p.run("generate", check=True)
    proc = p.run("sync", env=p.env(**{setting: value}))
    assert proc.returncode == 2, proc.stdout + proc.stderr
    name = setting.removeprefix("LIMNER_STORAGE_").lower()
    assert f"storage.{name}" in proc.stderr and "Traceback" not in proc.stderr, proc.stderr
    for secret in ("s3cr3t-pass", "AbCdEf123456", "token=abc"):
        assert secret not in proc.stderr + proc.stdout
    assert not (p.root / "frontend").exists()


class CountingGets:
    """Wraps a project's storage and records the key of every ``get``."""

    def __init__(self, real) -> None:  # type: ignore[no-untyped-def]
        self._real, self.gets = real, []

    def get(self, key: str) -> bytes:
        self.gets.append(key)
        return self._real.get(key)

    def __getattr__(self, name: str):  # type: ignore[no-untyped-def]
        return getattr(self._real, name)


def test_a_sync_with_nothing_new_reads_no_placeholder_from_the_storage(project_dir):
    """Every `limner sync` read every published placeholder back from the storage, though the app's folder held
    the same bytes: thousands of GETs on S3 for a big catalogue, at each sync. A placeholder's key names its
    sha256, so only the placeholders the app's folder lacks or holds other bytes for are read now; a new render's
    placeholder, and one edited in the app's folder, still land."""
    from limner.sync import sync_project

    p = project_dir
    p.run("generate", check=True)

    def sync() -> tuple:  # type: ignore[type-arg]
        project = p.project()
        counting = project.__dict__["storage"] = CountingGets(project.storage)
        try:
            result = sync_project(project)
            gets = sorted(counting.gets)
            folder = project.settings.path(project.settings.sync.placeholder_dir)
            renders = {r.entry_id: r for r in project.repo.published_renders()}
            stored = {f.stem: counting._real.get(renders[f.stem].placeholder_key) == f.read_bytes()
                      for f in folder.iterdir()}
        finally:
            project.close()
        return result, gets, stored

    first, gets, stored = sync()
    assert len(first.written) == 6 and len(gets) == 6 and all(k.startswith("placeholders/") for k in gets), gets
    assert all(stored.values()) and len(stored) == 6
    second, gets, _ = sync()
    assert gets == [] and (second.unchanged, second.written) == (6, [])  # nothing new: nothing read

    folder = p.root / "frontend/public/images/events"
    (folder / "event-000.webp").write_bytes(b"edited by hand")
    p.run("review", "override", "event-001", "--seed", "3", check=True)
    p.run("generate", check=True)  # event-001 published again, from another seed: a new placeholder
    third, gets, stored = sync()
    assert len(gets) == 2 and sorted(third.written) == [str(folder / "event-000.webp"), str(folder / "event-001.webp")]
    assert all(stored.values()) and len(stored) == 6  # both hold the stored placeholder's bytes again
