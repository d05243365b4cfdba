"""The CLI end to end, in subprocesses, as a user runs it."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import time
from pathlib import Path

import jsonschema
import pytest


def db_dump(p) -> list:
    path = p.root / ".limner" / "limner.db"
    if not path.exists():
        return []
    con = sqlite3.connect(path)
    try:
        return [tuple(r) for t in ("entries", "renders", "variants", "ledger") for r in con.execute(f"select * from {t} order by 1")]
    finally:
        con.close()


def test_generate_sync_status_check_missing(project_dir):
    p = project_dir
    missing = p.run("check-missing")
    assert missing.returncode == 1 and "event-000" in missing.stdout

    summary = p.run_json("generate")
    assert summary["planned"] == 6 and summary["generated"] == 6 and summary["failed"] == 0
    assert summary["provider_calls"] == 6 and summary["spend_usd"] == 0
    for key in ("planned", "generated", "skipped", "failed", "provider_calls", "spend_usd"):
        assert key in summary

    again = p.run_json("generate")
    assert again["planned"] == 0 and again["provider_calls"] == 0 and again["skipped"] == 6

    status = p.run_json("status")
    assert status["entries"] == 6 and status["by_state"]["published"] == 6 and status["by_state"]["missing"] == 0

    assert p.run("check-missing").returncode == 0
    sync = p.run_json("sync")
    assert sync["published"] == 6 and sync["written"] == 6
    manifest = json.loads((p.root / "frontend/src/data/limner-manifest.json").read_text())
    schema = json.loads((p.root / "frontend/src/data/limner-manifest.schema.json").read_text())
    jsonschema.validate(manifest, schema)
    assert set(manifest["entries"]) == {f"event-{i:03d}" for i in range(6)}
    for entry_id, entry in manifest["entries"].items():
        placeholder = p.root / "frontend/public/images/events" / f"{entry_id}.webp"
        assert placeholder.stat().st_size <= 100_000
        assert entry["placeholder"] == f"/images/events/{entry_id}.webp"
        assert set(entry["variants"]) == {"avif", "webp", "jpeg"}
        assert entry["order"] == int(entry_id.rsplit("-", 1)[1])  # the catalogue's order
        for keys in entry["variants"].values():
            for width, key in keys.items():
                assert (p.root / ".limner/media" / key).is_file() and key.endswith(f"-{width}" + Path(key).suffix)
    assert manifest["version"] == 2 and manifest["base"] is None and manifest["cdn_base"] is None  # no file:// paths
    assert "file:" not in (p.root / "frontend/src/data/limner-manifest.json").read_text()
    # re-sync: nothing changes on disk
    mtime = (p.root / "frontend/src/data/limner-manifest.json").stat().st_mtime_ns
    again = p.run_json("sync")
    assert again["written"] == 0 and again["manifest_changed"] is False
    assert (p.root / "frontend/src/data/limner-manifest.json").stat().st_mtime_ns == mtime

    # an entry leaves the catalogue: its placeholder goes, the manifest drops it
    p.write_catalog(p.entries()[1:])
    removed = p.run_json("sync")
    assert removed["removed"] == [str(p.root / "frontend/public/images/events/event-000.webp")]
    assert "event-000" not in json.loads((p.root / "frontend/src/data/limner-manifest.json").read_text())["entries"]


def test_json_output_is_only_json_and_text_output_reads_well(project_dir):
    proc = project_dir.run("generate", "--json")
    json.loads(proc.stdout)  # nothing else on stdout
    text = project_dir.run("status")
    assert text.returncode == 0 and "published" in text.stdout
    plan = project_dir.run("plan")
    assert "6 up to date" in plan.stdout


def test_plan_and_dry_run_change_nothing(project_dir):
    plan = project_dir.run_json("plan")
    assert plan["planned"] == 6 and plan["by_reason"] == {"missing": 6}
    dry = project_dir.run_json("generate", "--dry-run")
    assert dry["dry_run"] is True and dry["planned"] == 6
    assert project_dir.calls() == []
    assert db_dump(project_dir) == []


def test_default_provider_is_sketch_and_the_cli_says_so(project_dir):
    project_dir.write_config(provider="fake")
    text = project_dir.config.read_text().replace('provider = "fake"\n', "")
    project_dir.config.write_text(text)
    project_dir.write_catalog(project_dir.entries()[:1])
    proc = project_dir.run("plan")
    assert "using the offline 'sketch' provider" in proc.stderr
    assert "sketch" in proc.stdout


BAD_CATALOGUES = {
    "duplicate": ("entries:\n  - id: a\n    title: A\n  - id: a\n    title: B\n", ":4", "'id'"),
    "bad-slug": ("entries:\n  - id: ../x\n    title: A\n", ":2", "'id'"),
    "unknown-style": ("entries:\n  - id: a\n    title: A\n    style: nope\n", ":4", "'style'"),
    "missing-title": ("entries:\n  - id: a\n    year: 3\n", ":2", "'title'"),
    "empty-title": ("entries:\n  - id: a\n    title: ''\n", ":3", "'title'"),
    "wrong-type": ("entries:\n  - id: a\n    title: A\n    year: soon\n", ":4", "'year'"),
    "unparsable": ("entries:\n  - id: a\n    title: [unclosed\n", "catalog.yaml", "invalid YAML"),
}


@pytest.mark.parametrize("case", sorted(BAD_CATALOGUES))
def test_bad_catalogue_exits_2_names_the_place_and_changes_nothing(project_dir, case):
    project_dir.run("generate", check=True)
    before = db_dump(project_dir)
    text, where, field = BAD_CATALOGUES[case]
    project_dir.catalog.write_text(text)
    for command in ("generate", "plan", "status", "sync") if case == "duplicate" else ("generate",):
        proc = project_dir.run(command)
        assert proc.returncode == 2, (command, proc.stdout, proc.stderr)
        assert "catalog.yaml" in proc.stderr and where in proc.stderr and field in proc.stderr, proc.stderr
    assert db_dump(project_dir) == before


def test_bad_config_exits_2(project_dir):
    project_dir.config.write_text(project_dir.config.read_text() + "\n[generate]\nconcurrency = 'lots'\n")
    proc = project_dir.run("plan")
    assert proc.returncode == 2 and "limner.toml" in proc.stderr


def test_unknown_id_and_unknown_provider_exit_2(project_dir):
    assert project_dir.run("generate", "--id", "nope").returncode == 2
    proc = project_dir.run("plan", "--id", "event-00l")  # a typo of event-001
    assert proc.returncode == 2 and "'event-00l' (did you mean 'event-00" in proc.stderr
    proc = project_dir.run("generate", "--provider", "xyzzy")
    assert proc.returncode == 2 and "unknown provider 'xyzzy'; available:" in proc.stderr
    proc = project_dir.run("plan", "--provider", "replicat")
    assert proc.returncode == 2 and "unknown provider 'replicat' (did you mean 'replicate'?)" in proc.stderr


def test_providers_styles_init(tmp_path, project_dir):
    providers = project_dir.run_json("providers")
    names = {r["name"]: r for r in providers}
    assert names["sketch"]["configured"] and names["sketch"]["price_usd"] == 0
    # a self-hosted server on plain http is configured only as a run sees it: with LIMNER_ALLOW_HTTP_HOSTS
    assert not names["comfyui"]["configured"]
    assert any("LIMNER_ALLOW_HTTP_HOSTS" in m for m in names["comfyui"]["missing"])
    assert any("LIMNER_ALLOW_HTTP_HOSTS" in m for m in names["automatic1111"]["missing"])
    allowed = {r["name"]: r for r in project_dir.run_json("providers", env=project_dir.env(LIMNER_ALLOW_HTTP_HOSTS="127.0.0.1"))}
    assert allowed["comfyui"]["configured"] and allowed["comfyui"]["missing"] == []
    styles = project_dir.run_json("styles")
    assert {"illuminated-manuscript", "oil-painting", "documentary-photo"} <= {s["name"] for s in styles}
    root = tmp_path / "fresh"
    root.mkdir()
    env = project_dir.env()
    import subprocess
    import sys

    first = subprocess.run([sys.executable, "-m", "limner", "init", str(root)], capture_output=True, text=True, env=env)
    assert first.returncode == 0 and "created  limner.toml" in first.stdout
    snapshot = {f: f.read_bytes() for f in root.rglob("*") if f.is_file()}
    second = subprocess.run([sys.executable, "-m", "limner", "init", str(root)], capture_output=True, text=True, env=env)
    assert second.returncode == 0 and "created" not in second.stdout
    assert {f: f.read_bytes() for f in root.rglob("*") if f.is_file()} == snapshot
    plan = subprocess.run([sys.executable, "-m", "limner", "--config", str(root / "limner.toml"), "plan", "--json"],
                          capture_output=True, text=True, env={k: v for k, v in env.items() if k != "LIMNER_PLUGINS"})
    assert plan.returncode == 0, plan.stderr
    assert json.loads(plan.stdout)["planned"] == 1


def test_hebrew_emoji_quotes_and_braces_survive(project_dir):
    entries = project_dir.entries()[:2]
    entries[0]["title"] = 'חורבן בית שני "quoted" {{ braces }} 🕎'
    entries[0]["alt"] = "<b>alt</b> & 'apostrophe' שלום"
    project_dir.write_catalog(entries)
    project_dir.run("generate", check=True)
    project_dir.run("sync", check=True)
    manifest = json.loads((project_dir.root / "frontend/src/data/limner-manifest.json").read_text(encoding="utf-8"))
    entry = manifest["entries"]["event-000"]
    assert entry["title"] == entries[0]["title"] and entry["alt"] == entries[0]["alt"]
    project = project_dir.project()
    render = project.repo.renders_for("event-000")[0]
    assert entries[0]["title"] in render.prompt
    master = project.storage.get(render.master_key)
    project.close()
    assert "חורבן בית שני".encode() in master  # provenance XMP carries the prompt


@pytest.mark.slow
def test_kill_9_mid_run_then_rerun_loses_and_repeats_nothing(make_project_dir):
    p = make_project_dir(30, extra="latency_s = 0.15\n")
    proc = __import__("subprocess").Popen(
        [__import__("sys").executable, "-m", "limner", "--config", str(p.config), "generate", "--no-progress"],
        cwd=p.root, env=p.env(), stdout=__import__("subprocess").DEVNULL, stderr=__import__("subprocess").DEVNULL,
        start_new_session=True,
    )
    deadline = time.monotonic() + 60
    published = 0
    while time.monotonic() < deadline:
        time.sleep(0.1)
        try:
            con = sqlite3.connect(p.root / ".limner" / "limner.db", timeout=5)
            published = con.execute("select count(*) from entries where state='published'").fetchone()[0]
            con.close()
        except sqlite3.Error:
            continue
        if published >= 8:
            break
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    assert 8 <= published < 30
    summary = p.run_json("generate")
    assert summary["failed"] == 0
    status = p.run_json("status")
    assert status["by_state"]["published"] == 30
    con = sqlite3.connect(p.root / ".limner" / "limner.db")
    per_entry = con.execute("select entry_id, count(*) from renders group by entry_id having count(*) > 1").fetchall()
    con.close()
    assert per_entry == []
    # the provider was called again only for entries that had no recorded render
    from test_runner import assert_consistent

    assert_consistent(p)
    assert len(p.calls()) <= 30 + 16  # at most the in-flight calls (2 x concurrency workers) were repeated


def test_changing_the_placeholder_format_re_encodes_placeholders(project_dir):
    project_dir.run("generate", check=True)
    project_dir.run("sync", check=True)
    project_dir.config.write_text(project_dir.config.read_text() + '\n[sync]\nplaceholder_format = "jpeg"\nplaceholder_width = 64\n')
    result = project_dir.run_json("sync")
    events = project_dir.root / "frontend/public/images/events"
    assert sorted(p.name for p in events.iterdir()) == [f"event-{i:03d}.jpg" for i in range(6)]
    assert len(result["removed"]) == 6
    data = (events / "event-000.jpg").read_bytes()
    assert data[:3] == b"\xff\xd8\xff"  # really JPEG, not WebP bytes under a .jpg name
    from PIL import Image
    import io

    assert Image.open(io.BytesIO(data)).width == 64
    manifest = json.loads((project_dir.root / "frontend/src/data/limner-manifest.json").read_text())
    assert manifest["entries"]["event-000"]["placeholder"] == "/images/events/event-000.jpg"
    assert manifest["entries"]["event-000"]["placeholder_width"] == 64


@pytest.mark.parametrize("kind", ["gray16", "transparent", "rotated"])
def test_a_placeholder_re_encoded_by_sync_looks_like_the_one_derive_made(project_dir, tmp_path, kind):
    """Sync's re-encode (new placeholder width) used ``convert("RGB")``: a 16-bit gray master came out white, a
    transparent one on black, and one with an EXIF rotation lying on its side. It now brings the master to RGB
    the way the derive stage does."""
    import numpy as np
    from PIL import Image

    legacy = tmp_path / "legacy"
    legacy.mkdir()
    ramp = np.tile(np.linspace(0, 1, 600), (400, 1))  # dark on the left, light on the right
    if kind == "gray16":
        Image.fromarray((ramp * 65535).astype("uint16")).save(legacy / "event-000.png")
    elif kind == "transparent":  # the left half transparent (white once flattened), the right half a ramp
        rgba = np.zeros((400, 600, 4), "uint8")
        rgba[:, 300:, :3] = (ramp[:, 300:, None] * 255).astype("uint8")
        rgba[:, 300:, 3] = 255
        Image.fromarray(rgba, "RGBA").save(legacy / "event-000.png")
    else:  # 600x400 stored, 400x600 upright (EXIF orientation 6: rotate 90 degrees clockwise)
        exif = Image.Exif()
        exif[0x0112] = 6
        Image.fromarray((ramp * 255).astype("uint8")).convert("RGB").save(legacy / "event-000.jpg",
                                                                          exif=exif.tobytes())
    project_dir.run("adopt-placeholders", str(legacy), check=True)
    project_dir.run("sync", check=True)
    ph = project_dir.root / "frontend/public/images/events/event-000.webp"

    def looks() -> tuple[int, int, int]:  # width, height, the tone a tenth of the way across, half way down
        with Image.open(ph) as im:
            return im.width, im.height, im.convert("L").getpixel((im.width // 10, im.height // 2))

    before = looks()
    project_dir.config.write_text(project_dir.config.read_text() + "\n[sync]\nplaceholder_width = 40\n")
    project_dir.run("sync", check=True)
    after = looks()
    assert after[0] == 40 and after[0] / after[1] == pytest.approx(before[0] / before[1], rel=0.05)
    assert abs(after[2] - before[2]) <= 16, (before, after)  # the same tone at the same place
    if kind == "gray16":
        assert after[2] < 60
    elif kind == "transparent":
        assert after[2] > 240
    else:
        assert after[1] > after[0]  # upright: taller than wide


def test_lowering_the_placeholder_byte_limit_re_encodes_the_placeholders_over_it(make_project_dir):
    p = make_project_dir(2)
    p.config.write_text(p.config.read_text().replace("size = 96", "size = 512"))
    p.run("generate", check=True)
    p.run("sync", check=True)
    events = p.root / "frontend/public/images/events"
    sizes = {f.name: f.stat().st_size for f in events.iterdir()}
    limit = min(sizes.values()) // 2
    env = p.env(LIMNER_SYNC_PLACEHOLDER_MAX_BYTES=str(limit))
    result = p.run_json("sync", env=env)
    assert result["written"] == 2
    assert all(f.stat().st_size <= limit for f in events.iterdir()), {f.name: f.stat().st_size for f in events.iterdir()}
    assert p.run_json("sync", env=env)["written"] == 0  # byte-stable from then on


def test_check_missing_counts_an_entry_with_an_older_image_as_present(make_project_dir):
    p = make_project_dir(2)
    p.run("generate", check=True)
    entries = p.entries()
    entries[0]["description"] = "changed"
    p.write_catalog(entries)
    p.config.write_text(p.config.read_text() + 'refuse_ids = ["event-000"]\n')
    assert p.run("generate").returncode == 1
    assert p.run("check-missing").returncode == 0


@pytest.mark.slow
def test_ctrl_c_stops_cleanly_says_how_to_resume_and_the_rerun_finishes(make_project_dir):
    import subprocess
    import sys

    p = make_project_dir(24, extra="latency_s = 0.2\n")
    proc = subprocess.Popen([sys.executable, "-m", "limner", "--config", str(p.config), "generate", "--no-progress"],
                            cwd=p.root, env=p.env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and len(p.calls()) < 6:
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGINT)  # what a terminal's Ctrl-C does: the whole process group
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, (out, err)
    assert "Interrupted" in err and "limner generate" in err and "Traceback" not in err
    summary = p.run_json("generate")
    assert summary["failed"] == 0
    assert p.run_json("status")["by_state"]["published"] == 24
    con = sqlite3.connect(p.root / ".limner" / "limner.db")
    assert con.execute("select count(*) from renders").fetchone()[0] == 24
    con.close()
    # the calls in flight at Ctrl-C finished and were kept: nothing was paid for twice
    assert len(p.calls()) == 24


def test_costs_reports_spend_by_provider_model_and_day(make_project_dir):
    p = make_project_dir(3, extra="price_usd = 0.01\n")
    empty = p.run_json("costs")
    assert empty["total_usd"] == 0 and empty["by_day"] == []
    p.run("generate", check=True)
    costs = p.run_json("costs")
    assert costs["total_usd"] == 0.03
    assert costs["by_provider"] == {"fake": 0.03} and costs["by_model"] == {"fake/fake-1": 0.03}
    assert [(d["calls"], d["usd"]) for d in costs["by_day"]] == [(3, 0.03)]
    assert "Total: $0.0300" in p.run("costs").stdout


def test_doctor_checks_without_generating(project_dir):
    ok = project_dir.run_json("doctor")
    assert {r["provider"]: r["ok"] for r in ok} == {"fake": True}
    assert project_dir.calls() == []
    assert project_dir.run("doctor", "--provider", "sketch").returncode == 0


def test_doctor_names_a_missing_key_once(project_dir):
    env = {k: v for k, v in project_dir.env().items() if k != "REPLICATE_API_TOKEN"}
    proc = project_dir.run("doctor", "--provider", "replicate", env=env)
    assert proc.returncode == 3
    assert proc.stdout.strip() == "FAIL replicate: REPLICATE_API_TOKEN is not set (environment or .env)"


def test_a_secret_in_limner_toml_is_refused(project_dir):
    project_dir.config.write_text(project_dir.config.read_text() + 'api_token = "r8_FAKE_should_not_be_here_0123456789"\n')
    proc = project_dir.run("plan")
    assert proc.returncode == 2 and ".env" in proc.stderr
    assert "r8_FAKE_should_not_be_here" not in proc.stderr + proc.stdout


def test_sync_keeps_the_apps_own_placeholder_until_a_new_one_replaces_it(make_project_dir):
    p = make_project_dir(2, extra='refuse_ids = ["event-001"]\n')
    events = p.root / "frontend/public/images/events"
    events.mkdir(parents=True)
    for entry_id in ("event-000", "event-001"):
        (events / f"{entry_id}.jpg").write_bytes(b"hand-made")
    assert p.run("generate").returncode == 1  # event-001 is refused
    p.run("sync", check=True)
    assert (events / "event-000.webp").is_file() and not (events / "event-000.jpg").exists()
    assert (events / "event-001.jpg").read_bytes() == b"hand-made"
