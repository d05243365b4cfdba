"""The review studio's JSON API, pages and guard (``limner serve``), through FastAPI's test client on real
SQLite and PostgreSQL, with the fake provider: the publish gate end to end, tokens, CSRF, the Host check,
media keys, escaping."""

from __future__ import annotations

import json
import re

import pytest

pytest.importorskip("fastapi", reason="the review studio needs the serve extra (pip install -e '.[serve]')")

from fastapi.testclient import TestClient  # noqa: E402

from limner.runner import RunOptions, Selection, build_plan, run_plan  # noqa: E402
from limner.studio import create_app  # noqa: E402
from limner.studio.security import Guard, allowed_hosts, is_loopback, resolve_token  # noqa: E402
from test_db_postgres import pg_url  # noqa: E402,F401  (fixture)

BASE = "http://127.0.0.1:8765"
GATE = "\n[review]\nrequired = true\n"
TOKEN = "s3cret-token-for-the-studio-tests"


def generate(p) -> None:
    project = p.project()
    try:
        summary = run_plan(project, build_plan(project, Selection()), RunOptions(progress=False))
    finally:
        project.close()
    assert summary.failed == 0 or summary.generated > 0


def client_for(p, token: str | None = None) -> TestClient:
    return TestClient(create_app(p.project(), token=token), base_url=BASE)


def csrf(client: TestClient) -> dict[str, str]:
    return {"X-CSRF-Token": client.get("/api/session").json()["csrf_token"]}


def raw_get(app, path: str) -> tuple[int, bytes]:
    """GET ``path`` exactly as written (no client-side normalisation), straight through the ASGI app."""
    import asyncio

    sent: list[dict] = []

    async def receive():
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message):
        sent.append(message)

    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "GET", "scheme": "http",
             "path": path, "raw_path": path.encode(), "root_path": "", "query_string": b"",
             "headers": [(b"host", b"127.0.0.1:8765")], "client": ("127.0.0.1", 5000), "server": ("127.0.0.1", 8765)}
    asyncio.run(app(scope, receive, send))
    start = next(m for m in sent if m["type"] == "http.response.start")
    return start["status"], b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")


def newest_render(client: TestClient, entry_id: str) -> int:
    return client.get(f"/api/entries/{entry_id}/renders").json()["renders"][0]["id"]


@pytest.fixture(params=["sqlite", "postgres"])
def gated(request, make_project_dir):
    """A 5-entry project with the publish gate on, generated (every render awaits review)."""
    extra = GATE
    if request.param == "postgres":
        url = request.getfixturevalue("pg_url")
        extra += f'\n[database]\nurl = "{url}"\n'
    p = make_project_dir(5, extra=extra)
    generate(p)
    return p


def test_the_gate_end_to_end_approve_two_through_the_api_and_sync_publishes_exactly_those(gated):
    p = gated
    assert p.run_json("sync")["published"] == 0  # nothing approved yet
    with client_for(p) as client:
        listing = client.get("/api/entries").json()
        assert listing["total"] == 5 and [e["id"] for e in listing["items"]] == [f"event-{i:03d}" for i in range(5)]
        assert all(e["state"] == "awaiting_review" and e["awaiting_review"] and e["thumb"] for e in listing["items"])
        headers = csrf(client)
        for entry_id in ("event-001", "event-003"):
            res = client.post(f"/api/renders/{newest_render(client, entry_id)}/approve", json={"note": "ok"}, headers=headers)
            assert res.status_code == 200, res.text
            assert res.json()["entry"]["state"] == "published"
        assert client.get("/api/entries", params={"state": "published"}).json()["total"] == 2
        assert client.get("/api/entries", params={"awaiting": True}).json()["total"] == 3
        decisions = client.get("/api/decisions").json()["decisions"]
        assert sorted((d["entry_id"], d["decision"], d["note"]) for d in decisions) == [
            ("event-001", "approved", "ok"), ("event-003", "approved", "ok")]
    synced = p.run_json("sync")
    assert synced["published"] == 2
    manifest = json.loads((p.root / "frontend/src/data/limner-manifest.json").read_text())
    assert sorted(manifest["entries"]) == ["event-001", "event-003"]


def test_reject_needs_a_reason_pin_and_bulk_approve(gated):
    p = gated
    with client_for(p) as client:
        headers = csrf(client)
        r0 = newest_render(client, "event-000")
        assert client.post(f"/api/renders/{r0}/reject", json={}, headers=headers).status_code == 422
        assert client.post(f"/api/renders/{r0}/reject", json={"note": "  "}, headers=headers).status_code == 422
        res = client.post(f"/api/renders/{r0}/reject", json={"note": "garbled text"}, headers=headers)
        assert res.status_code == 200 and res.json()["render"]["review"] == "rejected"
        entry = client.get("/api/entries/event-000").json()
        assert entry["state"] == "failed" and "garbled text" in entry["error"]
        assert entry["decisions"][0]["decision"] == "rejected" and entry["decisions"][0]["note"] == "garbled text"
        assert client.get("/api/entries", params={"failed": True}).json()["total"] == 1
        assert client.post(f"/api/renders/{r0}/pin", headers=headers).status_code == 409  # rejected: approve first

        ids = [newest_render(client, e) for e in ("event-001", "event-002")]
        res = client.post("/api/renders/approve", json={"ids": [*ids, 999_999]}, headers=headers).json()
        assert [a["render"]["id"] for a in res["approved"]] == ids
        assert res["errors"] == [{"id": 999_999, "error": "no render 999999"}]
        assert client.post("/api/renders/999999/approve", headers=headers).status_code == 404

        r4 = newest_render(client, "event-004")
        res = client.post(f"/api/renders/{r4}/pin", json={"note": "keep"}, headers=headers).json()
        assert res["entry"]["pinned"] and res["entry"]["published_render_id"] == r4
    p.run("sync", check=True)
    manifest = json.loads((p.root / "frontend/src/data/limner-manifest.json").read_text())
    assert sorted(manifest["entries"]) == ["event-001", "event-002", "event-004"]


def test_regenerate_returns_a_job_at_once_and_the_new_render_lands(make_project_dir):
    p = make_project_dir(2, extra=GATE)
    generate(p)
    with client_for(p) as client:
        headers = csrf(client)
        before = client.get("/api/entries/event-001/renders").json()["renders"]
        res = client.post("/api/entries/event-001/regenerate", json={"seed": 4242, "negative_extra": "text"}, headers=headers)
        assert res.status_code == 202
        job_id = res.json()["job"]
        assert res.json()["status"] in ("queued", "running")
        job = client.app.state.studio.jobs.wait(job_id, timeout=120)
        assert job.status == "done", job
        polled = client.get(f"/api/jobs/{job_id}").json()
        assert polled["status"] == "done" and polled["summary"]["generated"] == 1
        after = client.get("/api/entries/event-001/renders").json()["renders"]
        assert len(after) == len(before) + 1 and after[0]["id"] == polled["render_id"]
        assert after[0]["seed"] == 4242 and after[0]["negative_prompt"].endswith("text")
        assert after[0]["review"] == "awaiting"
        entry = client.get("/api/entries/event-001").json()
        assert entry["override"]["seed"] == 4242 and entry["override"]["negative_extra"] == "text"
        used = dict(client.app.state.studio.jobs._providers)

        # no parameters: a new random seed
        res = client.post("/api/entries/event-000/regenerate", headers=headers)
        assert res.status_code == 202 and isinstance(res.json()["params"]["seed"], int)
        assert client.app.state.studio.jobs.wait(res.json()["job"], timeout=120).status == "done"
        # the same provider instance for every job: a local model is loaded once, not once per regeneration
        assert list(used) == ["fake"] and client.app.state.studio.jobs._providers == used

        assert client.post("/api/entries/nope/regenerate", headers=headers).status_code == 404
        assert client.post("/api/entries/event-000/regenerate", json={"style": "nope"}, headers=headers).status_code == 422
        assert client.get("/api/jobs/unknown").status_code == 404
    assert p.calls()[-2]["seed"] == 4242 and len(p.calls()) == 4


def test_filters_search_and_paging(make_project_dir):
    p = make_project_dir(25)
    # the fake provider refuses one entry (its settings sit in [providers.fake] already)
    p.config.write_text(p.config.read_text().replace("size = 96\n", 'size = 96\nrefuse_ids = ["event-007"]\n'))
    generate(p)
    with client_for(p) as client:
        page2 = client.get("/api/entries", params={"per_page": 10, "page": 2}).json()
        assert page2["total"] == 25 and page2["pages"] == 3 and page2["items"][0]["id"] == "event-010"
        failed = client.get("/api/entries", params={"failed": True}).json()
        assert [e["id"] for e in failed["items"]] == ["event-007"] and "refused" in failed["items"][0]["error"]
        assert client.get("/api/entries", params={"q": "EVENT 12"}).json()["total"] == 1
        assert client.get("/api/entries", params={"q": "event-01"}).json()["total"] == 10
        eras = client.get("/api/entries", params={"era": "medieval"}).json()
        assert eras["total"] == 8 and all(e["era"] == "medieval" for e in eras["items"])
        # a filter naming no style or state is an error saying so, not an empty page
        unknown_style = client.get("/api/entries", params={"style": "nope"})
        assert unknown_style.status_code == 422 and "nope" in unknown_style.text
        unknown_state = client.get("/api/entries", params={"state": "publshed"})
        assert unknown_state.status_code == 422 and "state" in unknown_state.text
        # an empty filter is no filter, for the state as for the others (the grid's form sends "any state" so)
        unfiltered = client.get("/api/entries?state=&style=&era=&tag=&q=")
        assert unfiltered.status_code == 200 and unfiltered.json()["total"] == 25, unfiltered.text
        html = client.get("/", params={"failed": "1"}).text
        assert html.count('class="card"') == 1 and "event-007" in html
        grid = client.get("/", params={"per_page": 10}).text
        assert grid.count('class="card"') == 10 and 'rel="next"' in grid

        # a stale entry: an override changed its spec
        client.post("/api/entries/event-003/override", json={"negative_extra": "modern"}, headers=csrf(client))
        stale = client.get("/api/entries", params={"state": "stale"}).json()
        assert [e["id"] for e in stale["items"]] == ["event-003"] and stale["items"][0]["stale"]


def test_the_entry_page_shows_renders_decisions_compare_and_the_manifest_preview(make_project_dir):
    p = make_project_dir(1)
    generate(p)
    with client_for(p) as client:
        headers = csrf(client)
        first = newest_render(client, "event-000")
        job = client.post("/api/entries/event-000/regenerate", json={"seed": 7}, headers=headers).json()
        assert client.app.state.studio.jobs.wait(job["job"], timeout=120).status == "done"
        second = newest_render(client, "event-000")
        client.post(f"/api/renders/{second}/reject", json={"note": "wrong century"}, headers=headers)
        detail = client.get("/api/entries/event-000").json()
        assert [r["id"] for r in detail["renders"]] == [second, first]  # newest first
        r = detail["renders"][1]
        assert r["published"] and r["provider"] == "fake" and r["seed"] is not None and r["prompt"]
        assert set(r["validation"]) == {"phash", "near_duplicate_of"} and r["provenance"]["fingerprint"]
        preview = detail["manifest_preview"]
        assert preview["entry"]["id"] == "event-000" and preview["entry"]["seed"] == r["seed"]
        assert preview["entry"]["placeholder"] == "/images/events/event-000.webp"

        html = client.get("/entries/event-000", params={"compare": f"{second},{first}"}).text
        assert 'id="compare"' in html and f"render {second}" in html and "wrong century" in html
        assert "Manifest preview" in html and 'id="override-form"' in html
        assert client.get("/entries/nope").status_code == 404
        fragment = client.get("/fragments/renders/event-000").text
        assert fragment.count('<li class="render') == 2
        card = client.get("/fragments/card/event-000").text
        assert 'data-entry="event-000"' in card and f'data-render="{first}"' in card


def test_media_only_for_recorded_keys_with_the_right_type_and_no_traversal(make_project_dir):
    p = make_project_dir(1)
    generate(p)
    (p.root / ".limner" / "secret.txt").write_text("do not serve")
    with client_for(p) as client:
        render = client.get("/api/entries/event-000/renders").json()["renders"][0]
        webp = next(v["url"] for v in render["variants"] if v["format"] == "webp")
        res = client.get(webp)
        assert res.status_code == 200 and res.headers["content-type"] == "image/webp" and res.content[:4] == b"RIFF"
        avif = next(v["url"] for v in render["variants"] if v["format"] == "avif")
        assert client.get(avif).headers["content-type"] == "image/avif"
        for bad in ("/media/../secret.txt", "/media/..%2Fsecret.txt", "/media/%2e%2e/secret.txt", "/media//etc/passwd",
                    "/media/masters/../../secret.txt", "/media/secret.txt", "/media/limner.toml"):
            res = client.get(bad)
            assert res.status_code == 404, (bad, res.status_code)
            assert b"do not serve" not in res.content
        # the client normalises dot segments; a raw request reaches the app with them as sent
        key = webp.removeprefix("/media/")
        for raw in ("/media/../.limner/secret.txt", "/media/" + key.replace("/", "/./", 1), "/media/" + key.replace("/", "//", 1),
                    "/media/variants/../" + key, "/media/" + key.replace("/", "\\", 1)):
            status, body = raw_get(client.app, raw)
            assert status == 404 and b"do not serve" not in body, (raw, status)
        assert raw_get(client.app, webp)[0] == 200


def test_an_xss_title_is_text_everywhere(make_project_dir):
    p = make_project_dir(2)
    entries = p.entries()
    entries[0]["title"] = "<script>alert(1)</script>"
    p.write_catalog(entries)
    generate(p)
    with client_for(p) as client:
        headers = csrf(client)
        client.post(f"/api/renders/{newest_render(client, 'event-000')}/reject",
                    json={"note": '"><img src=x onerror=alert(2)>'}, headers=headers)
        for url in ("/", "/entries/event-000", "/fragments/card/event-000", "/fragments/renders/event-000",
                    "/?q=%3Cscript%3E"):
            html = client.get(url).text
            assert "<script>alert(1)</script>" not in html and "<img src=x" not in html, url
        page = client.get("/entries/event-000")
        assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page.text
        assert "&#34;&gt;&lt;img src=x onerror=alert(2)&gt;" in page.text
        assert "script-src 'self'" in page.headers["content-security-policy"]
        assert client.get("/api/entries/event-000").json()["title"] == "<script>alert(1)</script>"


def test_every_post_needs_the_csrf_token_and_a_foreign_origin_is_refused(gated):
    p = gated
    with client_for(p) as client:
        render = newest_render(client, "event-000")
        assert client.post(f"/api/renders/{render}/approve").status_code == 403
        assert client.post(f"/api/renders/{render}/approve", headers={"X-CSRF-Token": "wrong"}).status_code == 403
        assert client.post("/api/entries/event-000/regenerate").status_code == 403
        headers = csrf(client)
        assert client.post(f"/api/renders/{render}/approve", headers={**headers, "Origin": "https://evil.example"}).status_code == 403
        assert client.post(f"/api/renders/{render}/approve", headers={**headers, "Origin": "null"}).status_code == 403
        assert client.get("/api/entries/event-000").json()["state"] == "awaiting_review"  # nothing changed
        assert client.get("/api/decisions").json()["decisions"] == []
        assert client.post(f"/api/renders/{render}/approve", headers={**headers, "Origin": BASE}).status_code == 200
        # pages embed the token for their script
        assert re.search(r'<meta name="csrf-token" content="([^"]+)">', client.get("/").text).group(1) == headers["X-CSRF-Token"]


def test_a_request_body_past_the_cap_is_a_413_unread_and_changes_nothing(make_project_dir):
    """A body is a note, a prompt or a thousand ids (a few KiB): one of megabytes (valid JSON padded with
    spaces, sent with its length or in chunks) was read whole into memory (a 300 MB one took 900 MB) and
    acted on; now it is a 413 before it is read."""
    p = make_project_dir(2, extra=GATE)
    generate(p)
    with client_for(p) as client:
        headers = {**csrf(client), "Content-Type": "application/json"}
        r0, r1 = newest_render(client, "event-000"), newest_render(client, "event-001")
        padded = b'{"note": "ok"' + b" " * 5_000_000 + b"}"
        res = client.post(f"/api/renders/{r0}/reject", content=padded, headers=headers)
        assert res.status_code == 413 and "too large" in res.json()["detail"], res.text[:200]

        def chunks():
            yield b'{"ids": [' + str(r1).encode()
            for _ in range(50):
                yield b" " * 100_000
            yield b"]}"

        res = client.post("/api/renders/approve", content=chunks(), headers=headers)
        assert res.status_code == 413, res.text[:200]
        assert client.get("/api/decisions").json()["decisions"] == []
        assert {client.get(f"/api/entries/{e}").json()["state"] for e in ("event-000", "event-001")} == {"awaiting_review"}
        # a body within the cap, also sent in chunks, is read as before
        res = client.post("/api/renders/approve", content=iter([b'{"ids": [', str(r1).encode(), b"]}"]), headers=headers)
        assert res.status_code == 200 and res.json()["approved"][0]["render"]["id"] == r1, res.text[:200]


def test_ids_no_database_holds_are_a_422_or_404_never_a_500(gated):
    p = gated
    with client_for(p) as client:
        headers = {**csrf(client), "Content-Type": "application/json"}
        huge = "99999999999999999999999"
        answers = [
            client.post("/api/renders/approve", content=f'{{"ids": [{huge}]}}', headers=headers),
            client.post(f"/api/renders/{huge}/approve", headers=headers),
            client.post(f"/api/renders/{huge}/pin", headers=headers),
            client.post(f"/api/renders/{huge}/reject", content='{"note": "x"}', headers=headers),
            client.post("/api/renders/approve", content='{"ids": [1e309]}', headers=headers),
            client.post("/api/renders/0/approve", headers=headers),
        ]
        assert [a.status_code for a in answers] == [422] * 6, [(a.status_code, a.text[:200]) for a in answers]
        assert all(a.json()["detail"][0]["loc"] for a in answers)
        assert client.post("/api/renders/999999/approve", headers=headers).status_code == 404
        assert client.get("/api/decisions").json()["decisions"] == []


def test_token_mode_refuses_everything_without_it_and_changes_nothing(make_project_dir):
    p = make_project_dir(2, extra=GATE)
    generate(p)
    app = create_app(p.project(), token=TOKEN)
    with TestClient(app, base_url=BASE) as anon:
        render = app.state.studio.project.reviews.renders("event-000")[0].id
        for method, url in (("GET", "/"), ("GET", "/api/entries"), ("GET", "/api/session"), ("GET", "/entries/event-000"),
                            ("POST", f"/api/renders/{render}/approve"), ("POST", "/api/entries/event-000/regenerate"),
                            ("GET", "/api/openapi.json")):
            res = anon.request(method, url, headers={"X-CSRF-Token": app.state.studio.guard.csrf_token})
            assert res.status_code == 401, (method, url, res.status_code)
        assert anon.get("/static/studio.js").status_code == 200  # public: a script and a stylesheet
        assert anon.get("/login", params={"token": "wrong"}, follow_redirects=False).status_code == 401
        assert anon.post(f"/api/renders/{render}/approve", headers={"Authorization": "Bearer wrong"}).status_code == 401
        forged = {"limner_session": Guard("another-token-entirely-123").new_session()}
        anon.cookies.update(forged)
        assert anon.get("/api/entries").status_code == 401
        anon.cookies.clear()
    assert app.state.studio.project.reviews.entry("event-000").state == "awaiting_review"
    assert app.state.studio.project.reviews.recent_decisions() == []

    # an API client: the Bearer header, no CSRF token needed
    with TestClient(create_app(p.project(), token=TOKEN), base_url=BASE) as api:
        bearer = {"Authorization": f"Bearer {TOKEN}"}
        res = api.post(f"/api/renders/{render}/approve", headers=bearer)
        assert res.status_code == 200 and res.json()["entry"]["state"] == "published"
        assert api.get("/api/decisions", headers=bearer).json()["decisions"][0]["actor"] == "studio (token)"

    # a browser: log in once, then the session cookie (HttpOnly, SameSite=Strict) and the CSRF token
    with TestClient(create_app(p.project(), token=TOKEN), base_url=BASE) as browser:
        res = browser.get("/login", params={"token": TOKEN}, follow_redirects=False)
        # not a redirect: a log-in reached from another site (`serve --open`'s file:// page) is a cross-site
        # navigation, on whose redirect Chromium sent no SameSite=Strict cookie (401); the page moves on itself
        assert res.status_code == 200 and '<meta http-equiv="refresh" content="0;url=/">' in res.text
        cookie = res.headers["set-cookie"]
        assert "HttpOnly" in cookie and "SameSite=Strict" in cookie and TOKEN not in cookie
        assert browser.get("/").status_code == 200
        other = browser.app.state.studio.project.reviews.renders("event-001")[0].id
        assert browser.post(f"/api/renders/{other}/approve").status_code == 403  # a session still needs CSRF
        assert browser.post(f"/api/renders/{other}/approve", headers=csrf(browser)).status_code == 200


def test_the_host_header_is_checked_against_dns_rebinding(make_project_dir):
    p = make_project_dir(1)
    with TestClient(create_app(p.project()), base_url="http://attacker.example:8765") as client:
        assert client.get("/api/entries").status_code == 400
    with TestClient(create_app(p.project()), base_url="http://localhost:8765") as client:
        assert client.get("/api/entries").status_code == 200


def test_the_openapi_document_describes_the_api(make_project_dir):
    p = make_project_dir(1)
    with client_for(p) as client:
        doc = client.get("/api/openapi.json").json()
    paths = doc["paths"]
    for path, method in (("/api/entries", "get"), ("/api/entries/{entry_id}", "get"), ("/api/entries/{entry_id}/renders", "get"),
                         ("/api/renders/{render_id}/approve", "post"), ("/api/renders/{render_id}/reject", "post"),
                         ("/api/renders/{render_id}/pin", "post"), ("/api/renders/approve", "post"),
                         ("/api/entries/{entry_id}/regenerate", "post"), ("/api/jobs/{job_id}", "get"),
                         ("/api/decisions", "get")):
        assert method in paths[path], path
    assert "/media/{key}" not in paths and "/" not in paths


def test_binding_beyond_loopback_needs_a_token():
    from limner.errors import ConfigError

    env = {}
    assert is_loopback("127.0.0.1") and is_loopback("::1") and is_loopback("localhost") and not is_loopback("0.0.0.0")
    assert resolve_token(env.get, "127.0.0.1", None) == (None, False)
    token, generated = resolve_token(env.get, "0.0.0.0", None)
    assert generated and len(token) >= 24
    with pytest.raises(ConfigError, match="needs a token"):
        resolve_token(env.get, "192.168.1.5", False)
    env["LIMNER_SERVE_TOKEN"] = TOKEN
    assert resolve_token(env.get, "127.0.0.1", None) == (TOKEN, False)
    assert resolve_token(env.get, "127.0.0.1", False) == (None, False)
    env["LIMNER_SERVE_TOKEN"] = "short"
    with pytest.raises(ConfigError, match="too short"):
        resolve_token(env.get, "0.0.0.0", True)
    assert "192.168.1.5" in allowed_hosts("192.168.1.5") and "evil.example" not in allowed_hosts("0.0.0.0")


def test_the_catalogue_is_reloaded_when_its_file_changes(make_project_dir):
    import os

    p = make_project_dir(2)
    generate(p)
    with client_for(p) as client:
        assert client.get("/api/entries").json()["total"] == 2
        entries = p.entries()
        entries[1]["title"] = "Renamed"
        p.write_catalog(entries)
        st = os.stat(p.catalog)
        os.utime(p.catalog, ns=(st.st_atime_ns, st.st_mtime_ns + 2_000_000_000))
        items = client.get("/api/entries").json()["items"]
        assert [e["title"] for e in items] == ["Event 0", "Renamed"]


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _serve(p, *args: str, env: dict[str, str] | None = None):
    """``limner serve`` in a subprocess; (process, its port) once it answers."""
    import subprocess
    import sys
    import time

    import httpx

    port = _free_port()
    proc = subprocess.Popen([sys.executable, "-m", "limner", "--config", str(p.config), "serve", "--port", str(port), *args],
                            cwd=p.root, env=p.env(PYTHONUNBUFFERED="1", **(env or {})), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"limner serve exited {proc.returncode}: {proc.stderr.read()}")
        try:
            httpx.get(f"http://127.0.0.1:{port}/static/studio.css", timeout=1)
            break
        except httpx.HTTPError:
            time.sleep(0.1)
    return proc, port


def test_limner_serve_answers_on_loopback_and_lists_every_entry(make_project_dir):
    import httpx

    p = make_project_dir(3)
    generate(p)
    proc, port = _serve(p)
    try:
        base = f"http://127.0.0.1:{port}"
        listing = httpx.get(f"{base}/api/entries").json()
        assert [e["id"] for e in listing["items"]] == ["event-000", "event-001", "event-002"]
        html = httpx.get(f"{base}/").text
        assert html.count('class="card"') == 3
        assert httpx.post(f"{base}/api/renders/1/approve").status_code == 403  # no CSRF token
    finally:
        proc.terminate()
        out, _ = proc.communicate(timeout=20)
    assert f"http://127.0.0.1:{port}/" in out and "token" not in out


def test_limner_serve_beyond_loopback_generates_a_token_and_refuses_requests_without_it(make_project_dir):
    import httpx

    p = make_project_dir(1)
    generate(p)
    proc, port = _serve(p, "--host", "0.0.0.0")
    try:
        base = f"http://127.0.0.1:{port}"
        first = proc.stdout.readline()
        token = re.search(r"login\?token=([A-Za-z0-9_\-]+)", first).group(1)
        assert len(token) >= 24
        assert httpx.get(f"{base}/api/entries").status_code == 401
        assert httpx.post(f"{base}/api/renders/1/approve").status_code == 401
        with httpx.Client(base_url=base, follow_redirects=True) as browser:
            assert browser.get("/login", params={"token": token}).status_code == 200  # redirected to the grid
            assert browser.get("/api/entries").json()["total"] == 1
        assert httpx.get(f"{base}/api/entries", headers={"Authorization": f"Bearer {token}"}).status_code == 200
    finally:
        proc.terminate()
        out, err = proc.communicate(timeout=20)
    assert "warning" in err and "/login?token=[hidden]" in out + err
    assert token not in out + err  # printed once (the first line), hidden in the access log
    refused = p.run("serve", "--host", "0.0.0.0", "--no-token")
    assert refused.returncode == 2 and "needs a token" in refused.stderr


def test_serve_open_never_puts_the_token_on_a_command_line(make_project_dir, tmp_path):
    """``--open`` gave the browser ``/login?token=...`` as an argument, which ``ps`` shows every user of the
    machine. The browser now opens a file only this user can read, which forwards to the log-in address
    (Jupyter's way); the file goes with the server."""
    import stat
    import sys
    import time
    from pathlib import Path

    p = make_project_dir(1)
    generate(p)
    seen = tmp_path / "browser-argv.txt"
    browser = tmp_path / "browser.py"
    browser.write_text(f"import sys\nopen({str(seen)!r}, 'w').write(sys.argv[1])\n", encoding="utf-8")
    token = "Tk" + "x9" * 16
    proc, _ = _serve(p, "--token", "--open", env={"BROWSER": f"{sys.executable} {browser} %s", "LIMNER_SERVE_TOKEN": token})
    try:
        deadline = time.monotonic() + 20
        while not seen.exists() and time.monotonic() < deadline:
            time.sleep(0.1)
        argv = seen.read_text(encoding="utf-8")
        assert token not in argv
        assert argv.startswith("file://")
        page = Path(argv.removeprefix("file://"))
        assert f"login?token={token}" in page.read_text(encoding="utf-8")
        assert stat.S_IMODE(page.stat().st_mode) == 0o600
        assert stat.S_IMODE(page.parent.stat().st_mode) == 0o700
    finally:
        proc.terminate()
        out, err = proc.communicate(timeout=20)
    assert token not in out + err
    assert not page.exists()


def test_a_broken_catalogue_edit_keeps_the_last_good_one_and_says_why(make_project_dir):
    import os

    p = make_project_dir(2)
    generate(p)
    with client_for(p) as client:
        assert client.get("/api/entries").json()["total"] == 2
        p.catalog.write_text("entries:\n  - id: Not A Slug\n    title: x\n", encoding="utf-8")
        st = os.stat(p.catalog)
        os.utime(p.catalog, ns=(st.st_atime_ns, st.st_mtime_ns + 2_000_000_000))
        assert client.get("/api/entries").json()["total"] == 2
        html = client.get("/").text
        assert 'role="alert"' in html and "last good version" in html


def test_a_failed_regeneration_is_a_failed_job_with_its_reason_and_a_new_entry_shows_as_missing(make_project_dir):
    p = make_project_dir(2)
    p.config.write_text(p.config.read_text().replace("size = 96\n", 'size = 96\nrefuse_ids = ["event-000"]\n'))
    project = p.project()
    try:  # plan and generate only event-000: event-001 stays missing (never in the database)
        run_plan(project, build_plan(project, Selection(ids=("event-000",))), RunOptions(progress=False))
    finally:
        project.close()
    with client_for(p) as client:
        res = client.post("/api/entries/event-000/regenerate", json={"seed": 1}, headers=csrf(client))
        job = client.app.state.studio.jobs.wait(res.json()["job"], timeout=120)
        assert job.status == "failed" and "refused" in job.error, job
        assert client.get(f"/api/jobs/{job.id}").json()["summary"]["failed"] == 1
        missing = client.get("/api/entries/event-001").json()
        assert missing["state"] == "missing" and missing["renders"] == [] and missing["manifest_preview"] is None
        assert "No render yet." in client.get("/entries/event-001").text
        # an entry never generated is generated for the first time (its database row is created)
        res = client.post("/api/entries/event-001/regenerate", headers=csrf(client))
        assert res.status_code == 202, res.text
        assert client.app.state.studio.jobs.wait(res.json()["job"], timeout=120).status == "done"
        assert client.get("/api/entries/event-001").json()["state"] == "published"


# ---------------------------------------------------------------------- entries never generated


@pytest.fixture(params=["sqlite", "postgres"])
def partly_generated(request, make_project_dir):
    """A 3-entry project with the publish gate on where only event-000 was ever planned and generated:
    event-001 and event-002 have no database row."""
    extra = GATE
    if request.param == "postgres":
        url = request.getfixturevalue("pg_url")
        extra += f'\n[database]\nurl = "{url}"\n'
    p = make_project_dir(3, extra=extra)
    project = p.project()
    try:
        run_plan(project, build_plan(project, Selection(ids=("event-000",))), RunOptions(progress=False))
        assert project.reviews.entry("event-001") is None and project.reviews.entry("event-002") is None
    finally:
        project.close()
    return p


def test_an_entry_never_generated_can_be_overridden_and_regenerated_from_the_studio(partly_generated):
    p = partly_generated
    with client_for(p) as client:
        headers = csrf(client)
        assert client.get("/api/entries/event-001").json()["state"] == "missing"

        # an override alone: the row is created from the catalogue, the entry stays missing (nothing queued)
        res = client.post("/api/entries/event-001/override", json={"seed": 11, "negative_extra": "modern dress"},
                          headers=headers)
        assert res.status_code == 200, res.text
        assert res.json()["override"] == {"prompt": None, "negative_extra": "modern dress", "seed": 11, "style": None}
        row = client.app.state.studio.project.reviews.entry("event-001")
        style = client.app.state.studio.data.catalog().style_of["event-001"]  # the catalogue's (its era's)
        assert (row.title, row.style, row.state) == ("Event 1", style, "missing")
        detail = client.get("/api/entries/event-001").json()
        assert detail["state"] == "missing" and detail["override"]["seed"] == 11 and detail["renders"] == []
        assert "seed 11" in client.get("/entries/event-001").text
        plan = build_plan(client.app.state.studio.project, Selection())
        assert [(i.entry.id, i.reason) for i in plan.items] == [("event-001", "missing"), ("event-002", "missing")]
        assert plan.items[0].spec.seed == 11 and plan.items[0].spec.negative_prompt.endswith("modern dress")

        # a regeneration of an entry without a row, with a seed: generated now, awaiting review (the gate)
        res = client.post("/api/entries/event-002/regenerate", json={"seed": 5}, headers=headers)
        assert res.status_code == 202, res.text
        job = client.app.state.studio.jobs.wait(res.json()["job"], timeout=120)
        assert job.status == "done" and job.summary["generated"] == 1, job
        renders = client.get("/api/entries/event-002/renders").json()["renders"]
        assert [(r["id"], r["seed"], r["review"]) for r in renders] == [(job.render_id, 5, "awaiting")]
        assert client.get("/api/entries/event-002").json()["state"] == "awaiting_review"

        # and the entry whose row the override created: regenerated with a new seed, the negative terms kept
        res = client.post("/api/entries/event-001/regenerate", headers=headers)
        assert res.status_code == 202
        job = client.app.state.studio.jobs.wait(res.json()["job"], timeout=120)
        assert job.status == "done", job
        newest = client.get("/api/entries/event-001/renders").json()["renders"][0]
        assert newest["negative_prompt"].endswith("modern dress") and newest["seed"] == res.json()["params"]["seed"]

        # an id that is not in the catalogue stays a 404 that names it, and changes nothing
        for url, body in (("/api/entries/nope/override", {"seed": 1}), ("/api/entries/nope/regenerate", None),
                          ("/api/entries/nope/override/clear", None), ("/api/entries/event-01/override", {"seed": 1})):
            res = client.post(url, json=body, headers=headers)
            assert res.status_code == 404, (url, res.status_code, res.text)
            assert "in the catalogue" in res.json()["detail"] and url.split("/")[3] in res.json()["detail"]
        assert "did you mean" in client.post("/api/entries/event-01/regenerate", headers=headers).json()["detail"]
        assert client.app.state.studio.project.reviews.entry("nope") is None
    assert [c["id"] for c in p.calls()] == ["event-000", "event-002", "event-001"]


# ---------------------------------------------------------------------- refusals: status by kind


def test_each_refused_action_answers_the_status_of_its_kind(gated):
    from sqlalchemy import update

    from limner.db.models import Render

    p = gated
    with client_for(p) as client:
        headers = csrf(client)
        st = client.app.state.studio
        r0, r1 = newest_render(client, "event-000"), newest_render(client, "event-001")
        cases = [
            # not found: 404
            ("/api/renders/999999/approve", None, 404, "no render 999999"),
            ("/api/renders/999999/reject", {"note": "x"}, 404, "no render 999999"),
            ("/api/renders/999999/pin", None, 404, "no render 999999"),
            ("/api/entries/nope/override", {"seed": 1}, 404, "no entry 'nope' in the catalogue"),
            ("/api/entries/nope/regenerate", None, 404, "no entry 'nope' in the catalogue"),
            # invalid: 422
            (f"/api/renders/{r0}/reject", {"note": "   "}, 422, "needs a reason"),
            ("/api/entries/event-000/override", {"style": "nope"}, 422, "no style 'nope'"),
            ("/api/entries/event-000/regenerate", {"style": "nope"}, 422, "no style 'nope'"),
        ]
        for url, body, status, words in cases:
            res = client.post(url, json=body, headers=headers)
            assert (res.status_code, words in res.json()["detail"]) == (status, True), (url, res.status_code, res.text)

        # conflict: 409 (the render exists; its state does not allow it)
        assert client.post(f"/api/renders/{r0}/reject", json={"note": "wrong"}, headers=headers).status_code == 200
        res = client.post(f"/api/renders/{r0}/pin", headers=headers)
        assert res.status_code == 409 and "was rejected" in res.json()["detail"]
        with st.project.db.session(write=True) as s:  # a render whose variants were never stored
            s.execute(update(Render).where(Render.id == r1).values(status="generated"))
        res = client.post(f"/api/renders/{r1}/pin", headers=headers)
        assert res.status_code == 409 and "has no stored variants" in res.json()["detail"]
        bulk = client.post("/api/renders/approve", json={"ids": [999_999]}, headers=headers).json()
        assert bulk == {"approved": [], "errors": [{"id": 999_999, "error": "no render 999999"}]}


def test_the_status_follows_the_kind_never_the_message():
    from limner.db.review import ReviewConflict, ReviewError, ReviewInvalid, ReviewNotFound
    from limner.studio.api import _review_error

    # messages that would mislead a mapping by text
    assert _review_error(ReviewConflict("no render can be pinned while it is rejected")).status_code == 409
    assert _review_error(ReviewNotFound("render 7 is gone")).status_code == 404
    assert _review_error(ReviewInvalid("no entry would take a blank reason")).status_code == 422
    with pytest.raises(TypeError, match="has no kind"):
        ReviewError("a refusal without a kind")


# ---------------------------------------------------------------------- pinned, with a newer render awaiting review

PINNED_AWAITING = "pinned · newer render awaiting review"


def _labels(item: dict) -> list[str]:
    return [b["label"] for b in item["badges"]]


def _card_badges(html: str) -> list[str]:
    return re.findall(r'<span class="badge [^"]*" title="[^"]*">([^<]*)</span>', html)


def test_a_pinned_entry_with_a_newer_render_awaiting_review_says_so_once(make_project_dir):
    p = make_project_dir(1, extra=GATE)
    generate(p)
    with client_for(p) as client:
        headers = csrf(client)
        first = newest_render(client, "event-000")
        assert client.post(f"/api/renders/{first}/approve", headers=headers).json()["entry"]["state"] == "published"
        job = client.post("/api/entries/event-000/regenerate", json={"seed": 7}, headers=headers).json()["job"]
        assert client.app.state.studio.jobs.wait(job, timeout=120).status == "done"
        second = newest_render(client, "event-000")
        assert second != first
        # the reviewer pins the first: it stays published while the second still awaits a decision
        pinned = client.post(f"/api/renders/{first}/pin", headers=headers).json()["entry"]
        assert pinned == {"id": "event-000", "state": "published", "published_render_id": first, "pinned": True}

        item = client.get("/api/entries").json()["items"][0]
        assert item["pinned"] and item["awaiting_review"] and item["render_id"] == second
        assert _labels(item) == [PINNED_AWAITING]
        assert f"render {first} is pinned and stays published; render {second} awaits review" in item["badges"][0]["title"]
        assert _labels(client.get("/api/entries/event-000").json()) == [PINNED_AWAITING]
        for url in ("/", "/fragments/card/event-000", "/entries/event-000", "/fragments/renders/event-000"):
            assert _card_badges(client.get(url).text) == [PINNED_AWAITING], url
        assert "published · pinned" in client.get("/fragments/renders/event-000").text
        assert client.get("/api/entries", params={"awaiting": True}).json()["total"] == 1

        # approving the newer render publishes it in place of the pinned one (as the badge says)
        done = client.post(f"/api/renders/{second}/approve", headers=headers).json()["entry"]
        assert done == {"id": "event-000", "state": "published", "published_render_id": second, "pinned": False}
        item = client.get("/api/entries").json()["items"][0]
        assert _labels(item) == ["published"] and item["render_id"] == second
        assert _card_badges(client.get("/fragments/card/event-000").text) == ["published"]

        # rejecting the newer render instead keeps the pin: the pinned image stays, nothing is held or planned
        job = client.post("/api/entries/event-000/regenerate", json={"seed": 8}, headers=headers).json()["job"]
        assert client.app.state.studio.jobs.wait(job, timeout=120).status == "done"
        third = newest_render(client, "event-000")
        client.post(f"/api/renders/{second}/pin", headers=headers)
        assert _labels(client.get("/api/entries").json()["items"][0]) == [PINNED_AWAITING]
        done = client.post(f"/api/renders/{third}/reject", json={"note": "worse"}, headers=headers).json()["entry"]
        assert done == {"id": "event-000", "state": "published", "published_render_id": second, "pinned": True}
        item = client.get("/api/entries").json()["items"][0]
        assert _labels(item) == ["published", "pinned"] and item["render_id"] == second
        assert build_plan(client.app.state.studio.project, Selection()).items == []
    assert len(p.calls()) == 3


def test_a_forced_run_on_a_pinned_entry_shows_one_badge_and_approving_publishes_it(make_project_dir):
    p = make_project_dir(1, extra=GATE)
    generate(p)
    with client_for(p) as client:
        headers = csrf(client)
        first = newest_render(client, "event-000")
        client.post(f"/api/renders/{first}/pin", headers=headers)
        project = p.project()
        try:  # `limner generate --id event-000`: a run forces the pinned entry
            summary = run_plan(project, build_plan(project, Selection(ids=("event-000",))), RunOptions(progress=False))
        finally:
            project.close()
        assert summary.generated == 1
        second = newest_render(client, "event-000")
        item = client.get("/api/entries").json()["items"][0]
        assert item["state"] == "awaiting_review" and item["pinned"] and item["render_id"] == second
        assert _labels(item) == [PINNED_AWAITING]
        assert _card_badges(client.get("/").text) == [PINNED_AWAITING]
        done = client.post(f"/api/renders/{second}/approve", headers=headers).json()["entry"]
        assert done["published_render_id"] == second and not done["pinned"] and done["state"] == "published"


def test_the_same_regeneration_asked_twice_while_it_waits_is_one_job(make_project_dir):
    """A double click on "regenerate" sent the same request twice: two jobs, two paid calls for one image."""
    import threading
    import time

    from limner.studio.jobs import Jobs

    p = make_project_dir(2, extra=GATE)
    project = p.project()
    release = threading.Event()
    jobs = Jobs(project.settings)
    ran: list[str] = []
    jobs._run = lambda job: (release.wait(10), ran.append(job.id))  # type: ignore[method-assign]  # a busy worker
    try:
        first = jobs.submit("event-001", seed=4242)
        assert jobs.submit("event-001", seed=4242) is first  # queued: the same job
        other = jobs.submit("event-001", seed=7)  # another request: a job of its own
        assert other is not first and jobs.submit("event-000", seed=4242) is not first
        again = jobs.submit("event-000", new_seed=lambda: 5)  # "again" (no parameters): a new seed, drawn once
        assert jobs.submit("event-000", new_seed=lambda: 6) is again and again.params == {"seed": 5}
        release.set()
        deadline = time.monotonic() + 10
        while len(ran) < 4 and time.monotonic() < deadline:
            time.sleep(0.01)
    finally:
        jobs.shutdown()
        project.close()
    assert len(ran) == 4 and ran[:2] == [first.id, other.id]


def test_a_nul_in_a_note_prompt_or_id_is_a_422_on_every_database_and_changes_nothing(gated):
    """PostgreSQL refuses NUL in text: a note, a prompt or a decisions filter holding one was a 500 there (and
    SQLite stored it, or sent it to the provider in a paid prompt). It is a wrong request: 422, nothing changed."""
    p = gated
    with client_for(p) as client:
        headers = csrf(client)
        r0 = newest_render(client, "event-000")
        answers = [
            client.post(f"/api/renders/{r0}/reject", json={"note": "wrong\x00century"}, headers=headers),
            client.post(f"/api/renders/{r0}/approve", json={"note": "\x00"}, headers=headers),
            client.post(f"/api/renders/{r0}/pin", json={"note": "ok\x00"}, headers=headers),
            client.post("/api/renders/approve", json={"ids": [r0], "note": "\x00"}, headers=headers),
            client.post("/api/entries/event-000/override", json={"prompt": "a harbour\x00"}, headers=headers),
            client.post("/api/entries/event-000/override", json={"negative_extra": "\x00"}, headers=headers),
            client.post("/api/entries/event-000/regenerate", json={"prompt": "a\x00b"}, headers=headers),
            client.get("/api/decisions", params={"entry_id": "event\x00000"}),
        ]
        assert [a.status_code for a in answers] == [422] * len(answers), [(a.status_code, a.text[:200]) for a in answers]
        assert all(a.json()["detail"][0]["loc"] and "\x00" not in a.text for a in answers)
        assert client.get("/api/decisions").json()["decisions"] == []
        entry = client.get("/api/entries/event-000").json()
        assert entry["override"] is None and entry["state"] == "awaiting_review"
        assert client.app.state.studio.jobs.all() == []


def test_a_compare_value_that_is_not_a_plain_number_is_ignored_never_a_500(make_project_dir):
    """``'²'.isdigit()`` is true and ``int('²')`` raises; so does ``int`` of 5,000 digits: the entry page was a 500."""
    p = make_project_dir(1)
    generate(p)
    with client_for(p) as client:
        render = newest_render(client, "event-000")
        for compare in ("²", f"{render},²", "9" * 5000, "١٢", f"{render},{'9' * 5000}"):
            res = client.get("/entries/event-000", params={"compare": compare})
            assert res.status_code == 200, (compare[:20], res.status_code)
            assert 'id="compare"' not in res.text or f"render {render}" in res.text


def test_a_lone_surrogate_in_a_note_or_a_prompt_is_a_422_and_changes_nothing(gated):
    """JSON may escape half of a UTF-16 pair ("\\ud800"), which no database or provider can take: approving with
    such a note, storing such a prompt or regenerating with it was a 500 (the regeneration's job was queued)."""
    p = gated
    with client_for(p) as client:
        headers = {**csrf(client), "Content-Type": "application/json"}
        r0 = newest_render(client, "event-000")
        answers = [
            client.post(f"/api/renders/{r0}/approve", content='{"note": "ok \\ud800"}', headers=headers),
            client.post(f"/api/renders/{r0}/reject", content='{"note": "\\udfff wrong"}', headers=headers),
            client.post("/api/renders/approve", content=f'{{"ids": [{r0}], "note": "\\ud800"}}', headers=headers),
            client.post("/api/entries/event-000/override", content='{"prompt": "a harbour \\ud800"}', headers=headers),
            client.post("/api/entries/event-000/regenerate", content='{"negative_extra": "\\ud83d"}', headers=headers),
        ]
        assert [a.status_code for a in answers] == [422] * len(answers), [(a.status_code, a.text[:200]) for a in answers]
        assert client.get("/api/decisions").json()["decisions"] == []
        entry = client.get("/api/entries/event-000").json()
        assert entry["override"] is None and entry["state"] == "awaiting_review"
        assert client.app.state.studio.jobs.all() == []
        hebrew = client.post(f"/api/renders/{r0}/approve", json={"note": "\u202eשלום 👍"}, headers=headers)
        assert hebrew.status_code == 200
        assert client.get("/api/decisions").json()["decisions"][0]["note"] == "\u202eשלום 👍"


def test_a_field_of_the_wrong_type_or_an_unknown_field_is_a_422_and_changes_nothing(gated):
    """`{"ids": [true]}` approved render 1, `{"seed": true}` regenerated with seed 1, and a misspelled field
    (`negative` for `negative_extra`) was dropped: the regeneration was paid for with a random seed instead."""
    p = gated
    with client_for(p) as client:
        headers = csrf(client)
        r0 = newest_render(client, "event-000")
        answers = [
            client.post("/api/renders/approve", json={"ids": [True]}, headers=headers),
            client.post("/api/renders/approve", json={"ids": [f"{r0}"]}, headers=headers),
            client.post(f"/api/renders/{r0}/approve", json={"notes": "a typo"}, headers=headers),
            client.post(f"/api/renders/{r0}/reject", json={"note": "wrong century", "pin": True}, headers=headers),
            client.post("/api/entries/event-000/override", json={"seed": True}, headers=headers),
            client.post("/api/entries/event-000/override", json={"seed": "7"}, headers=headers),
            client.post("/api/entries/event-000/regenerate", json={"negative": "modern clothing"}, headers=headers),
            client.post("/api/entries/event-000/regenerate", json={"seed": True}, headers=headers),
        ]
        assert [a.status_code for a in answers] == [422] * len(answers), [(a.status_code, a.text[:200]) for a in answers]
        assert client.get("/api/decisions").json()["decisions"] == []
        entry = client.get("/api/entries/event-000").json()
        assert entry["override"] is None and entry["state"] == "awaiting_review"
        assert client.app.state.studio.jobs.all() == []
        # what the pages send is still taken
        assert client.post("/api/entries/event-000/override", json={"prompt": None, "negative_extra": "modern dress",
                                                                     "style": None, "seed": 7}, headers=headers).status_code == 200


def test_a_failed_regeneration_names_no_render_and_a_done_one_names_its_own(make_project_dir):
    """A job answered the entry's newest render as its `render_id` whether or not it made one: a failed
    regeneration of a rejected entry named the rejected render, which a script polling the job then approved."""
    p = make_project_dir(1, extra=GATE)
    generate(p)
    with client_for(p) as client:
        headers = csrf(client)
        first = newest_render(client, "event-000")
        client.post(f"/api/renders/{first}/reject", json={"note": "wrong century"}, headers=headers)
    p.config.write_text(p.config.read_text().replace("size = 96\n", 'size = 96\nrefuse_ids = ["event-000"]\n'))
    with client_for(p) as client:
        res = client.post("/api/entries/event-000/regenerate", json={"seed": 3}, headers=csrf(client))
        job = client.app.state.studio.jobs.wait(res.json()["job"], timeout=120)
        assert job.status == "failed" and job.render_id is None, job
        assert client.get(f"/api/jobs/{job.id}").json()["render_id"] is None
    p.config.write_text(p.config.read_text().replace('refuse_ids = ["event-000"]\n', ""))
    with client_for(p) as client:
        res = client.post("/api/entries/event-000/regenerate", json={"seed": 4}, headers=csrf(client))
        job = client.app.state.studio.jobs.wait(res.json()["job"], timeout=120)
        assert job.status == "done" and job.render_id == newest_render(client, "event-000") != first
