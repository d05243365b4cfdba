"""SupabaseStorage against a loopback fake of the Storage REST API: the shared contract, then what only Supabase has."""

from __future__ import annotations

import itertools
import os
import sys
from collections.abc import Iterator
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))  # for fake_supabase

import httpx  # noqa: E402
import pytest  # noqa: E402

pytest.register_assert_rewrite("limner.testing.storage_suite")

from fake_supabase import ANON_KEY, SERVICE_KEY, FakeSupabase  # noqa: E402

import limner.storage.supabase as supabase_module  # noqa: E402
from limner.config import load_settings  # noqa: E402
from limner.errors import EXIT_AUTH, ConfigError  # noqa: E402
from limner.storage import Storage, StorageError, open_storage  # noqa: E402
from limner.storage.supabase import StorageAuthError, SupabaseStorage  # noqa: E402
from limner.testing.storage_suite import PNG, StorageSuite  # noqa: E402

_names = itertools.count()
FAST = {"backoff_initial_s": 0.001, "backoff_max_s": 0.01}


def new_storage(fake: FakeSupabase, key: str = SERVICE_KEY, *, bucket: str | None = None, prefix: str = "limner",
                **kw: object) -> SupabaseStorage:
    options = {**FAST, **kw}
    return SupabaseStorage(fake.url, key, bucket or f"bucket-{os.getpid()}-{next(_names)}", prefix, **options)  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def fake() -> Iterator[FakeSupabase]:
    with FakeSupabase() as server:
        yield server


@pytest.fixture(scope="module")
def modern_fake() -> Iterator[FakeSupabase]:
    with FakeSupabase(legacy_status=False) as server:
        yield server


class TestSupabaseStorage(StorageSuite):
    """The contract, against a bucket that does not exist yet (the first write creates it)."""

    @pytest.fixture
    def storage(self, fake: FakeSupabase) -> Iterator[SupabaseStorage]:
        s = new_storage(fake)
        yield s
        s.close()


class TestSupabaseStorageHttpStatuses(StorageSuite):
    """The same contract where errors carry their own HTTP status (404, 409, 403) instead of 400."""

    @pytest.fixture
    def storage(self, modern_fake: FakeSupabase) -> Iterator[SupabaseStorage]:
        s = new_storage(modern_fake, prefix="")
        yield s
        s.close()


# ------------------------------------------------------------------------- buckets and URLs
def test_bucket_is_created_public_with_immutable_uploads(fake: FakeSupabase) -> None:
    s = new_storage(fake, bucket="auto-public")
    assert "auto-public" not in fake.buckets
    s.put("variants/ab/x.webp", b"webp-bytes", content_type="image/webp")
    assert fake.buckets["auto-public"].public is True
    upload = fake.uploads[-1]
    assert upload["name"] == "limner/variants/ab/x.webp"
    assert upload["x-upsert"] == "true" and upload["cache-control"] == "max-age=31536000"
    assert upload["content-type"] == "image/webp"
    url = s.url("variants/ab/x.webp")
    assert url == f"{fake.url}/storage/v1/object/public/auto-public/limner/variants/ab/x.webp"
    r = httpx.get(url)  # no key: a public URL
    assert r.status_code == 200 and r.content == b"webp-bytes"
    assert r.headers["content-type"] == "image/webp" and r.headers["cache-control"] == "max-age=31536000"


def test_private_bucket_and_signed_urls(fake: FakeSupabase) -> None:
    s = new_storage(fake, bucket="auto-private", public=False)
    s.put("masters/aa/m.png", b"png-bytes", content_type=PNG)
    assert fake.buckets["auto-private"].public is False
    assert httpx.get(s.url("masters/aa/m.png")).status_code in (400, 404)  # not public
    signed = s.signed_url("masters/aa/m.png", expires_in=60)
    assert signed.startswith(f"{fake.url}/storage/v1/object/sign/auto-private/limner/masters/aa/m.png?token=")
    r = httpx.get(signed)
    assert r.status_code == 200 and r.content == b"png-bytes" and r.headers["content-type"] == PNG
    with pytest.raises(StorageError) as info:
        s.signed_url("masters/aa/missing.png")
    assert "masters/aa/missing.png" in str(info.value) and "auto-private" in str(info.value)


def test_existing_bucket_is_used_as_is(fake: FakeSupabase, monkeypatch: pytest.MonkeyPatch) -> None:
    fake.add_bucket("pre-made", public=False)
    warnings: list[str] = []
    monkeypatch.setattr(supabase_module.log, "warning", lambda msg, *args: warnings.append(msg % args))
    s = new_storage(fake, bucket="pre-made")  # configured public: a warning, no change
    s.put("a.png", b"x", content_type=PNG)
    s.put("b.png", b"x", content_type=PNG)
    assert fake.buckets["pre-made"].public is False
    assert len(warnings) == 1 and "private" in warnings[0] and "pre-made" in warnings[0]


def test_public_base_url(fake: FakeSupabase) -> None:
    s = new_storage(fake, public_base_url="https://cdn.example.org/img/")
    assert s.url("variants/ab/x.webp") == "https://cdn.example.org/img/variants/ab/x.webp"


def test_upsert_overwrites_and_verifies(fake: FakeSupabase) -> None:
    s = new_storage(fake, bucket="upsert")
    s.put("k.bin", b"first", content_type=PNG)
    s.put("k.bin", b"second, longer", content_type=PNG)
    assert s.get("k.bin") == b"second, longer"
    assert fake.object("upsert", "limner/k.bin").data == b"second, longer"  # type: ignore[union-attr]
    assert all(u["x-upsert"] == "true" for u in fake.uploads if u["name"] == "limner/k.bin")


def test_a_short_write_is_detected(fake: FakeSupabase) -> None:
    s = new_storage(fake, bucket="short")
    fake.truncate_uploads = True
    try:
        with pytest.raises(StorageError) as info:
            s.put("k.bin", b"0123456789", content_type=PNG)
    finally:
        fake.truncate_uploads = False
    assert info.value.retryable and "k.bin" in str(info.value) and "9 bytes" in str(info.value)


def test_list_pages_and_skips_folder_placeholders(fake: FakeSupabase, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(supabase_module, "LIST_PAGE", 3)
    s = new_storage(fake, bucket="pages")
    keys = [f"variants/{i:02d}.webp" for i in range(8)] + ["variants/sub/a.webp", "masters/aa/m.png"]
    for key in keys:
        s.put(key, b"v", content_type="image/webp")
    bucket = fake.buckets["pages"]
    bucket.objects["limner/variants/.emptyFolderPlaceholder"] = bucket.objects["limner/masters/aa/m.png"]
    assert sorted(s.list()) == sorted(keys)
    assert sorted(s.list("variants/")) == sorted(k for k in keys if k.startswith("variants/"))
    assert list(s.list("variants/0")) == [f"variants/{i:02d}.webp" for i in range(8)]


def test_server_side_copy(fake: FakeSupabase) -> None:
    s = new_storage(fake, bucket="copies")
    s.put("variants/a.jpg", b"A" * 10, content_type="image/jpeg")
    s.put("variants/b.jpg", b"B" * 12, content_type="image/jpeg")
    s.copy("variants/a.jpg", "events/e.jpg", cache_control="max-age=300")
    s.copy("variants/b.jpg", "events/e.jpg", cache_control="max-age=300")  # replaces in one step
    obj = fake.object("copies", "limner/events/e.jpg")
    assert obj is not None and obj.data == b"B" * 12
    assert obj.cache_control == "max-age=300" and obj.content_type == "image/jpeg"


def test_list_sizes_come_from_the_listing(fake: FakeSupabase) -> None:
    s = new_storage(fake, bucket="sizes")
    keys = {f"masters/{i:02d}/m.png": b"m" * i for i in range(6)} | {"variants/v.webp": b"v" * 99}
    for key, data in keys.items():
        s.put(key, data, content_type="image/png")
    before = fake.calls.copy()
    assert dict(s.list_sizes()) == {k: len(v) for k, v in keys.items()}
    made = fake.calls - before
    assert made["HEAD object/sizes"] == 0 and made["GET object/info"] == 0  # no request per object
    assert made["POST object/list"] >= 1
    assert SupabaseStorage.sizes_in_listing


def test_location_and_overlaps(fake: FakeSupabase, modern_fake: FakeSupabase) -> None:
    s = new_storage(fake, bucket="places", prefix="site/media")
    assert s.location == "supabase://places/site/media"
    assert new_storage(fake, bucket="places", prefix="").location == "supabase://places"
    assert s.overlaps(new_storage(fake, bucket="places", prefix="site"))
    assert s.overlaps(new_storage(fake, bucket="places", prefix="site/media/copy"))
    assert not s.overlaps(new_storage(fake, bucket="places", prefix="site/media2"))
    assert not s.overlaps(new_storage(fake, bucket="elsewhere", prefix="site/media"))
    assert not s.overlaps(new_storage(modern_fake, bucket="places", prefix="site/media"))  # another project


def test_declared_capabilities() -> None:
    assert not SupabaseStorage.verifies_writes  # put reads back the size only; callers check hashes themselves
    for name in ("list_sizes", "copy", "location", "overlaps", "signed_url", "close", "check"):
        assert getattr(SupabaseStorage, name) is not getattr(Storage, name), name
    for name in ("object_info", "put_if_absent"):  # nothing better than a size: the defaults
        assert getattr(SupabaseStorage, name) is getattr(Storage, name), name


def test_copy_on_a_server_without_upsert_falls_back(fake: FakeSupabase) -> None:
    s = new_storage(fake, bucket="old-copies")
    s.put("variants/a.jpg", b"A" * 10, content_type="image/jpeg")
    s.put("events/e.jpg", b"old", content_type="image/jpeg")
    fake.copy_upsert = False
    try:
        s.copy("variants/a.jpg", "events/e.jpg", cache_control="max-age=300")
    finally:
        fake.copy_upsert = True
    obj = fake.object("old-copies", "limner/events/e.jpg")
    assert obj is not None and obj.data == b"A" * 10 and obj.cache_control == "max-age=300"


# ------------------------------------------------------------------------- errors
def test_reading_a_missing_bucket_names_bucket_and_key(fake: FakeSupabase) -> None:
    s = new_storage(fake, bucket="never-made")
    with pytest.raises(StorageError) as info:
        s.get("masters/aa/x.png")
    assert "never-made" in str(info.value) and "masters/aa/x.png" in str(info.value)
    assert not info.value.retryable
    assert list(s.list()) == [] and s.size("x.png") is None
    s.delete("x.png")  # nothing to delete is fine
    assert "never-made" not in fake.buckets  # reads never create it


def test_bucket_creation_failure(fake: FakeSupabase) -> None:
    s = new_storage(fake, bucket="cannot-create")
    fake.create_bucket_error = (400, "Invalid Input", "Bucket name invalid")
    try:
        with pytest.raises(StorageError) as info:
            s.put("a.png", b"x", content_type=PNG)
    finally:
        fake.create_bucket_error = None
    message = str(info.value)
    assert "cannot-create" in message and "creating it failed" in message and "Bucket name invalid" in message
    assert info.value.hint and "dashboard" in info.value.hint
    assert SERVICE_KEY not in message


@pytest.mark.parametrize(("gateway", "key", "expected"), [
    (True, "sb-totally-wrong-key-1234", "Invalid API key"),
    (False, "eyJhbGciOiJIUzI1NiJ9.eyJyb2xlIjoic2VydmljZV9yb2xlIn0.forged-signature", "invalid signature"),
    (False, "not-a-jwt-at-all-5678", "Invalid Compact JWS"),
])
def test_wrong_key(gateway: bool, key: str, expected: str) -> None:
    with FakeSupabase(gateway=gateway, echo_key=True) as server:
        s = new_storage(server, key, bucket="media")
        with pytest.raises(StorageAuthError) as info:
            s.put("a.png", b"x", content_type=PNG)
        with pytest.raises(StorageAuthError) as read_info:
            s.get("a.png")
    for exc in (info.value, read_info.value):
        message = str(exc) + (exc.hint or "")
        assert expected in message and "'media'" in message
        assert key not in message and key[:12] not in repr(s)
        assert "SUPABASE_SERVICE_ROLE_KEY" in message
        assert exc.exit_code == EXIT_AUTH and not exc.retryable


def test_row_level_security_denial(fake: FakeSupabase) -> None:
    fake.add_bucket("rls", public=True)
    s = new_storage(fake, ANON_KEY, bucket="rls")
    with pytest.raises(StorageAuthError) as info:
        s.put("a.png", b"x", content_type=PNG)
    message = str(info.value) + (info.value.hint or "")
    assert "row-level security" in message and "'rls'" in message and "service_role" in message
    assert ANON_KEY not in message
    assert fake.names("rls") == []


def test_repr_has_no_secret(fake: FakeSupabase) -> None:
    s = new_storage(fake, bucket="shown")
    assert SERVICE_KEY not in repr(s) and "shown" in repr(s) and fake.url in repr(s)


def test_plain_http_is_for_local_supabase_only() -> None:
    with pytest.raises(ConfigError):
        SupabaseStorage("http://project.example.org", SERVICE_KEY, "b")
    SupabaseStorage("http://localhost:54321", SERVICE_KEY, "b").close()
    s = SupabaseStorage("https://abc.supabase.co/storage/v1/", SERVICE_KEY, "b", "/p/")
    assert s.url("k.png") == "https://abc.supabase.co/storage/v1/object/public/b/p/k.png"


# ------------------------------------------------------------------------- faults
def test_twenty_percent_faults_still_succeed() -> None:
    with FakeSupabase(fault_rate=0.2, seed=20) as server:
        s = new_storage(server, bucket="flaky", max_attempts=8)
        blobs = {f"variants/{i:02d}/{i}.webp": bytes([i]) * (100 + i) for i in range(30)}
        for key, data in blobs.items():
            s.put(key, data, content_type="image/webp")
        assert sorted(s.list()) == sorted(blobs)
        for key, data in blobs.items():
            assert s.get(key) == data and s.size(key) == len(data)
        for key in list(blobs)[:10]:
            s.delete(key)
        assert sorted(s.list()) == sorted(blobs)[10:]
        s.copy("variants/29/29.webp", "events/x.webp")
        assert s.get("events/x.webp") == blobs["variants/29/29.webp"]
        assert sum(server.faults.values()) >= 20
        assert server.faults["drop"] + server.faults["drop_after"] > 0 and server.faults["500"] > 0


def test_persistent_faults_give_a_retryable_error() -> None:
    with FakeSupabase(fault_rate=1.0, seed=1) as server:
        s = new_storage(server, bucket="down", max_attempts=3)
        with pytest.raises(StorageError) as info:
            s.get("a.png")
    assert info.value.retryable and "3 attempts" in str(info.value) and "'down'" in str(info.value)
    assert SERVICE_KEY not in str(info.value)


# ------------------------------------------------------------------------- settings
def _settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, url: str, env: dict[str, str], dotenv: str = ""):  # type: ignore[no-untyped-def]
    for name in list(os.environ):
        if name.upper().startswith(("LIMNER_", "SUPABASE_")):
            monkeypatch.delenv(name)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    (tmp_path / "limner.toml").write_text(f'[storage]\nurl = "{url}"\n', encoding="utf-8")
    if dotenv:
        (tmp_path / ".env").write_text(dotenv, encoding="utf-8")
    return load_settings(tmp_path / "limner.toml")


def test_open_storage_from_settings(fake: FakeSupabase, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    settings = _settings(tmp_path, monkeypatch, "supabase://timeline-images/site",
                         {}, dotenv=f"SUPABASE_URL={fake.url}\nSUPABASE_SERVICE_ROLE_KEY={SERVICE_KEY}\n")
    s = open_storage(settings)
    assert isinstance(s, SupabaseStorage)
    assert (s.bucket, s.prefix, s.public) == ("timeline-images", "site", True)
    s.put("events/a.jpg", b"jpg", content_type="image/jpeg")
    assert fake.object("timeline-images", "site/events/a.jpg") is not None

    settings = _settings(tmp_path, monkeypatch, "supabase://private-one?public=false",
                         {"SUPABASE_URL": fake.url, "SUPABASE_SERVICE_ROLE_KEY": SERVICE_KEY})
    s = open_storage(settings)
    assert (s.bucket, s.prefix, s.public) == ("private-one", "", False)

    settings = _settings(tmp_path, monkeypatch, "supabase://private-two",
                         {"SUPABASE_URL": fake.url, "SUPABASE_SERVICE_ROLE_KEY": SERVICE_KEY, "SUPABASE_BUCKET_PUBLIC": "false"})
    assert open_storage(settings).public is False


def test_missing_or_misplaced_settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    settings = _settings(tmp_path, monkeypatch, "supabase://media", {"SUPABASE_SERVICE_ROLE_KEY": SERVICE_KEY})
    with pytest.raises(ConfigError) as info:
        open_storage(settings)
    assert "SUPABASE_URL" in str(info.value) and SERVICE_KEY not in str(info.value)
    settings = _settings(tmp_path, monkeypatch, "supabase://media?cache=1",
                         {"SUPABASE_URL": "https://x.supabase.co", "SUPABASE_SERVICE_ROLE_KEY": SERVICE_KEY})
    with pytest.raises(ConfigError):
        open_storage(settings)


def test_an_error_page_makes_a_message_of_bounded_length(fake: FakeSupabase) -> None:
    """The error body is kept whole so that it is redacted before any cut; a proxy's HTML error page then made
    a storage error of tens of kilobytes. Messages are cut after redaction."""
    import httpx

    from limner.storage import StorageError
    from limner.storage.supabase import MAX_ERROR_CHARS

    storage = new_storage(fake)
    page = "<html><body>" + "Service Temporarily Unavailable " * 2000 + SERVICE_KEY + "</body></html>"
    with pytest.raises(StorageError) as info:
        storage._fail(httpx.Response(418, text=page), "upload", "masters/ab/x.png")
    assert len(str(info.value)) <= MAX_ERROR_CHARS and "masters/ab/x.png" in str(info.value)
    assert SERVICE_KEY not in str(info.value)


def test_a_service_key_with_a_line_break_is_refused_when_the_storage_opens(fake: FakeSupabase, tmp_path: Path,
                                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    """A key pasted with its newline used to read as "network error ... after 5 attempts" (retryable); it is now
    a configuration error naming the variable, never the value, before any request."""
    settings = _settings(tmp_path, monkeypatch, "supabase://media", {},
                         dotenv=f'SUPABASE_URL={fake.url}\nSUPABASE_SERVICE_ROLE_KEY="{SERVICE_KEY}\\n"\n')
    with pytest.raises(ConfigError) as info:
        open_storage(settings)
    assert "SUPABASE_SERVICE_ROLE_KEY contains a line break" in str(info.value)
    assert SERVICE_KEY not in str(info.value)
    assert "media" not in fake.buckets  # nothing was asked of the server
