"""S3Storage on moto's server (loopback, no network): the shared storage contract, plus what only S3 can show."""

from __future__ import annotations

import hashlib
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))  # for s3_server, whatever pytest's import mode

import pytest  # noqa: E402

pytest.register_assert_rewrite("limner.testing.storage_suite")

import requests  # noqa: E402
from s3_server import AWS_ENV, AWS_ENV_EXTRA, AWS_ENV_UNSET, FaultyProxy, client, make_public, moto_auth, moto_endpoint, new_bucket, objects  # noqa: E402

from limner.errors import ConfigError  # noqa: E402
from limner.storage import Storage, StorageError, content_key, open_storage  # noqa: E402
from limner.storage.s3 import IMMUTABLE_CACHE_CONTROL, S3Storage, parse_s3_url  # noqa: E402
from limner.testing.storage_suite import BLOB, PNG, StorageSuite  # noqa: E402

MiB = 1024 * 1024


@pytest.fixture(autouse=True)
def aws_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in AWS_ENV_UNSET:
        monkeypatch.delenv(name, raising=False)
    for name, value in {**AWS_ENV, **AWS_ENV_EXTRA}.items():
        monkeypatch.setenv(name, value)


@pytest.fixture
def endpoint() -> str:
    return moto_endpoint()


@pytest.fixture
def bucket(endpoint: str) -> str:
    return new_bucket()


def make(bucket: str, endpoint: str, prefix: str = "media", **kw) -> S3Storage:  # type: ignore[no-untyped-def]
    return S3Storage(bucket, prefix, endpoint_url=endpoint, region="us-east-1", **kw)


class TestS3Storage(StorageSuite):
    @pytest.fixture
    def storage(self, bucket: str, endpoint: str) -> S3Storage:
        return make(bucket, endpoint)


class TestS3StorageAtTheBucketRoot(StorageSuite):
    """No key prefix, and a public base URL."""

    @pytest.fixture
    def storage(self, bucket: str, endpoint: str) -> S3Storage:
        return S3Storage(bucket, endpoint_url=endpoint, public_base_url="https://img.example.org/")


class TestS3StorageThroughAFlakyEndpoint(StorageSuite):
    """The whole contract with 20% of requests answered 500 or dropped: retries hide every fault."""

    @pytest.fixture
    def storage(self, bucket: str) -> S3Storage:
        proxy = FaultyProxy(failure_rate=0.2, seed=20).start()
        yield make(bucket, proxy.url, max_attempts=12)
        proxy.stop()


# ------------------------------------------------------------------------------ S3 only
def test_objects_live_under_the_prefix_with_headers(bucket: str, endpoint: str) -> None:
    s = make(bucket, endpoint, prefix="site/media")
    sha = hashlib.sha256(BLOB).hexdigest()
    key = content_key("masters", sha, "png")
    s.put(key, BLOB, content_type=PNG)
    s.put("notes/readme.txt", b"hello", content_type="text/plain")
    assert objects(bucket) == {f"site/media/{key}": len(BLOB), "site/media/notes/readme.txt": 5}
    head = client().head_object(Bucket=bucket, Key=f"site/media/{key}")
    assert head["ContentType"] == PNG
    assert head["CacheControl"] == IMMUTABLE_CACHE_CONTROL == "public, max-age=31536000, immutable"
    assert head["Metadata"]["sha256"] == sha
    other = client().head_object(Bucket=bucket, Key="site/media/notes/readme.txt")
    assert other["ContentType"] == "text/plain"
    assert "CacheControl" not in other  # only content-addressed keys are immutable
    assert sorted(s.list()) == sorted([key, "notes/readme.txt"])


def test_multipart_upload_above_the_threshold(bucket: str, endpoint: str) -> None:
    s = make(bucket, endpoint, multipart_threshold=1 * MiB, multipart_chunksize=5 * MiB)
    big = os.urandom(6 * MiB + 123)  # two parts: S3's smallest part is 5 MiB
    sha = hashlib.sha256(big).hexdigest()
    key = content_key("masters", sha, "png")
    s.put(key, big, content_type=PNG)
    head = client().head_object(Bucket=bucket, Key=f"media/{key}")
    assert head["ETag"].strip('"').endswith("-2")  # it went up in parts
    assert head["ContentLength"] == len(big)
    assert head["Metadata"]["sha256"] == sha
    assert head["CacheControl"] == IMMUTABLE_CACHE_CONTROL and head["ContentType"] == PNG
    assert s.get(key) == big
    assert s.put_if_absent(key, big, content_type=PNG) is False  # the multipart ETag checks out too


def test_multipart_upload_through_a_flaky_endpoint(bucket: str, endpoint: str) -> None:
    """Parts, completion and the check afterwards are retried; a completion whose answer was lost is verified."""
    big = os.urandom(6 * MiB)
    with FaultyProxy(failure_rate=0.3, seed=3) as proxy:
        s = make(bucket, proxy.url, multipart_threshold=1 * MiB, multipart_chunksize=5 * MiB, max_attempts=12)
        s.put("masters/bb/big.png", big, content_type=PNG)
    assert make(bucket, endpoint).get("masters/bb/big.png") == big


def test_small_objects_go_up_in_one_part(bucket: str, endpoint: str) -> None:
    s = make(bucket, endpoint, multipart_threshold=1 * MiB)
    data = os.urandom(MiB - 1)
    s.put("masters/aa/small.png", data, content_type=PNG)
    etag = client().head_object(Bucket=bucket, Key="media/masters/aa/small.png")["ETag"].strip('"')
    assert etag == hashlib.md5(data).hexdigest()


def test_put_if_absent_skips_an_identical_object(bucket: str) -> None:
    with FaultyProxy() as proxy:
        s = make(bucket, proxy.url)
        key = content_key("variants", hashlib.sha256(BLOB).hexdigest(), "webp")
        assert s.put_if_absent(key, BLOB, content_type="image/webp") is True
        assert s.put_if_absent(key, BLOB, content_type="image/webp") is False
        assert proxy.put_counts(bucket) == {f"media/{key}": 1}


def test_put_if_absent_rewrites_same_size_different_bytes(bucket: str, endpoint: str) -> None:
    s = make(bucket, endpoint)
    other = bytes(reversed(BLOB))
    s.put("masters/aa/x.png", other, content_type=PNG)
    assert s.put_if_absent("masters/aa/x.png", BLOB, content_type=PNG) is True
    assert s.get("masters/aa/x.png") == BLOB


def test_put_if_absent_without_metadata_uses_the_md5_etag(bucket: str, endpoint: str) -> None:
    s = make(bucket, endpoint)
    client().put_object(Bucket=bucket, Key="media/masters/aa/y.png", Body=BLOB)  # written by another tool
    assert s.put_if_absent("masters/aa/y.png", BLOB, content_type=PNG) is False
    assert s.put_if_absent("masters/aa/y.png", bytes(reversed(BLOB)), content_type=PNG) is True
    assert s.stored_sha256("masters/aa/y.png") == hashlib.sha256(bytes(reversed(BLOB))).hexdigest()


def test_missing_bucket_is_a_clear_error(endpoint: str) -> None:
    s = make("no-such-bucket-limner", endpoint)
    for call in (lambda: s.put("a.png", b"x", content_type=PNG), lambda: s.get("a.png"), lambda: s.size("a.png"),
                 lambda: s.exists("a.png"), lambda: list(s.list())):
        with pytest.raises(StorageError) as info:
            call()
        assert "no-such-bucket-limner" in str(info.value)
        assert "does not exist" in str(info.value)
        assert not info.value.retryable


def test_bad_credentials_are_a_clear_error_without_the_secret(bucket: str, endpoint: str, monkeypatch: pytest.MonkeyPatch) -> None:
    secret = "wJalrXUtnFEMI-K7MDENG-bPxRfiCYSECRETKEY"
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIAWRONGWRONGWRONG1")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", secret)
    s = make(bucket, endpoint)
    assert secret not in repr(s)
    with moto_auth():
        for call in (lambda: s.put("masters/aa/a.png", b"x", content_type=PNG), lambda: s.get("masters/aa/a.png"),
                     lambda: s.size("masters/aa/a.png"), lambda: list(s.list())):
            with pytest.raises(StorageError) as info:
                call()
            message = str(info.value) + str(info.value.hint or "")
            assert bucket in message
            assert secret not in message
            assert any(w in message for w in ("credentials", "denied")), message
            assert not info.value.retryable
        with pytest.raises(StorageError) as info:
            s.put("masters/aa/a.png", b"x", content_type=PNG)
        assert "InvalidAccessKeyId" in str(info.value)
        assert "AWS_ACCESS_KEY_ID" in (info.value.hint or "")


def test_no_permission_is_a_clear_error(bucket: str) -> None:
    # moto would need IAM users and policies; AccessDenied is what S3 answers then, so the proxy sends it
    with FaultyProxy(fixed_error=(403, "AccessDenied")) as proxy:
        s = make(bucket, proxy.url)
        with pytest.raises(StorageError) as info:
            s.put("masters/aa/a.png", b"x", content_type=PNG)
        assert "denied" in str(info.value) and bucket in str(info.value) and "AccessDenied" in str(info.value)
        assert not info.value.retryable
        with pytest.raises(StorageError) as info:  # a HEAD's 403 has no body
            s.size("masters/aa/a.png")
        assert "denied" in str(info.value) and "s3:ListBucket" in (info.value.hint or "")


def test_check_proves_the_bucket_can_be_written(bucket: str, endpoint: str, monkeypatch: pytest.MonkeyPatch) -> None:
    s = make(bucket, endpoint)
    s.check()
    assert objects(bucket) == {}  # the probe was removed
    client().put_object(Bucket=bucket, Key="media/.limner-write-check", Body=b"left by a check without delete rights")
    assert list(s.list()) == []  # and is never listed
    with pytest.raises(StorageError) as info:
        make("no-such-bucket-limner", endpoint).check()
    assert "does not exist" in str(info.value)
    with FaultyProxy(fixed_error=(403, "AccessDenied")) as proxy:
        with pytest.raises(StorageError) as info:
            make(bucket, proxy.url).check()
        assert "denied" in str(info.value) and bucket in str(info.value)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIAWRONGWRONGWRONG1")
    with moto_auth():
        with pytest.raises(StorageError) as info:
            make(bucket, endpoint).check()
    assert "credentials" in str(info.value) and "InvalidAccessKeyId" in str(info.value)


def test_public_urls(bucket: str, endpoint: str) -> None:
    key = "variants/abcdef0123456789-480.webp"
    plain = make(bucket, endpoint, prefix="site/media")
    assert plain.url(key) == f"{endpoint}/{bucket}/site/media/{key}"  # path-style on a custom endpoint
    public = make(bucket, endpoint, prefix="site/media", public_base_url="https://img.example.org/media/")
    assert public.url(key) == f"https://img.example.org/media/{key}"
    aws = S3Storage("my-bucket", "p", region="eu-west-1", session=None)
    assert aws.url(key) == f"https://my-bucket.s3.eu-west-1.amazonaws.com/p/{key}"
    dotted = S3Storage("my.bucket", region="eu-west-1")
    assert dotted.url(key) == f"https://s3.eu-west-1.amazonaws.com/my.bucket/{key}"
    with pytest.raises(StorageError):
        plain.url("../outside.png")


def test_the_endpoint_url_serves_the_object(bucket: str, endpoint: str) -> None:
    s = make(bucket, endpoint)
    s.put("placeholders/aa/x.webp", b"RIFF....WEBP", content_type="image/webp")
    assert requests.get(s.url("placeholders/aa/x.webp"), timeout=10).status_code == 403  # private until a policy says otherwise
    make_public(bucket)
    response = requests.get(s.url("placeholders/aa/x.webp"), timeout=10)
    assert response.status_code == 200
    assert response.content == b"RIFF....WEBP"
    assert response.headers["Content-Type"] == "image/webp"


def test_repr_and_urls_never_show_credentials(bucket: str) -> None:
    s = S3Storage(bucket, "p", endpoint_url="https://user:hunter2@minio.example.org:9000")
    assert "hunter2" not in repr(s)
    assert "hunter2" not in s.url("a.png")
    assert repr(s) == f"<S3Storage s3://{bucket}/p endpoint='https://minio.example.org:9000'>"


def test_plain_http_endpoints_only_on_loopback_or_allowed_hosts(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("LIMNER_ALLOW_HTTP_HOSTS", raising=False)
    for ok in ("https://s3.example.org", "http://127.0.0.1:9000", "http://localhost:9000", "http://[::1]:9000"):
        S3Storage("b", endpoint_url=ok)
    with pytest.raises(ConfigError) as info:
        S3Storage("b", endpoint_url="http://minio.lan:9000")
    assert "LIMNER_ALLOW_HTTP_HOSTS" in (info.value.hint or "")
    monkeypatch.setenv("LIMNER_ALLOW_HTTP_HOSTS", "minio.lan")
    assert S3Storage("b", endpoint_url="http://minio.lan:9000").url("a.png") == "http://minio.lan:9000/b/a.png"
    with pytest.raises(ConfigError):
        S3Storage("b", endpoint_url="ftp://minio.lan")


def test_parse_s3_url() -> None:
    assert parse_s3_url("s3://bucket") == ("bucket", "")
    assert parse_s3_url("s3://bucket/a/b/") == ("bucket", "a/b")
    for bad in ("s3://", "s3:///prefix", "s3://key:secret@bucket/p", "s3://b/p?endpoint=x"):
        with pytest.raises(ConfigError):
            parse_s3_url(bad)


def test_open_storage_from_settings(tmp_path: Path, bucket: str, endpoint: str, monkeypatch: pytest.MonkeyPatch) -> None:
    from limner.config import load_settings

    for name in list(os.environ):
        if name.upper().startswith("LIMNER_"):
            monkeypatch.delenv(name)
    (tmp_path / "limner.toml").write_text(
        f'[storage]\nurl = "s3://{bucket}/media"\nendpoint_url = "{endpoint}"\nregion = "us-east-1"\n'
        'public_base_url = "https://img.example.org"\n')
    s = open_storage(load_settings(tmp_path / "limner.toml"))
    assert isinstance(s, S3Storage)
    assert (s.bucket, s.prefix, s.endpoint_url) == (bucket, "media", endpoint)
    s.put("a.png", b"x", content_type=PNG)
    assert objects(bucket) == {"media/a.png": 1}
    assert s.url("a.png") == "https://img.example.org/a.png"

    # credentials from the project's .env when the environment has none
    monkeypatch.delenv("AWS_ACCESS_KEY_ID")
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
    (tmp_path / ".env").write_text("AWS_ACCESS_KEY_ID=testing\nAWS_SECRET_ACCESS_KEY=testing\n")
    s = open_storage(load_settings(tmp_path / "limner.toml"))
    assert s.get("a.png") == b"x"


def test_no_credentials_is_a_clear_error(bucket: str, endpoint: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AWS_ACCESS_KEY_ID")
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
    s = make(bucket, endpoint)
    with pytest.raises(StorageError) as info:
        s.put("a.png", b"x", content_type=PNG)
    assert "credentials" in str(info.value) and "AWS_ACCESS_KEY_ID" in (info.value.hint or "")


def test_retries_hide_a_20_percent_failure_rate(bucket: str) -> None:
    with FaultyProxy(failure_rate=0.2, seed=7) as proxy:
        s = make(bucket, proxy.url, max_attempts=12)
        blobs = {content_key("masters", hashlib.sha256(bytes([i]) * 3000).hexdigest(), "png"): bytes([i]) * 3000
                 for i in range(25)}
        for key, data in blobs.items():
            assert s.put_if_absent(key, data, content_type=PNG) is True
        for key, data in blobs.items():
            assert s.get(key) == data
        assert sorted(s.list("masters/")) == sorted(blobs)
        assert proxy.faults_injected() > 5
    assert len(objects(bucket)) == 25


def test_without_retries_a_fault_is_a_retryable_error(bucket: str) -> None:
    with FaultyProxy(failure_rate=1.0, faults=("500",)) as proxy:
        s = make(bucket, proxy.url, max_attempts=2)
        with pytest.raises(StorageError) as info:
            s.put("masters/aa/x.png", b"x", content_type=PNG)
        assert info.value.retryable
        assert "InternalError" in str(info.value) and "2 attempts" in str(info.value)


def test_a_write_whose_answer_was_lost_is_verified_not_failed(bucket: str, endpoint: str) -> None:
    with FaultyProxy(failure_rate=1.0, faults=("drop-after",)) as proxy:
        s = make(bucket, proxy.url, max_attempts=1)
        proxy.failure_rate = 0.0
        # only the PUT's answer is dropped: the HEAD that follows sees the complete object
        original = proxy.decide
        proxy.decide = lambda method, path: "drop-after" if method == "PUT" else None  # type: ignore[method-assign]
        s.put("masters/aa/x.png", BLOB, content_type=PNG)
        proxy.decide = original  # type: ignore[method-assign]
    assert make(bucket, endpoint).get("masters/aa/x.png") == BLOB


# ------------------------------------------------------------------------------ optional operations, S3's way
def test_copy_is_server_side_and_keeps_type_and_hash(bucket: str, endpoint: str) -> None:
    sha = hashlib.sha256(BLOB).hexdigest()
    with FaultyProxy() as proxy:
        s = make(bucket, proxy.url)
        s.put("variants/aa/a.jpg", BLOB, content_type="image/jpeg")
        proxy.reset_log()
        s.copy("variants/aa/a.jpg", "events/e.jpg", cache_control="max-age=300")
        assert [e.method for e in proxy.log if e.method not in ("HEAD", "PUT")] == []  # the bytes never left the service
        assert [e.path for e in proxy.log if e.method == "PUT"] == [f"/{bucket}/media/events/e.jpg"]  # one CopyObject
    head = client().head_object(Bucket=bucket, Key="media/events/e.jpg")
    assert head["ContentType"] == "image/jpeg" and head["CacheControl"] == "max-age=300"
    assert head["Metadata"]["sha256"] == sha and head["ContentLength"] == len(BLOB)
    s = make(bucket, endpoint)
    s.copy("variants/aa/a.jpg", "variants/bb/b.jpg")  # a content-addressed target is immutable, as a put makes it
    assert client().head_object(Bucket=bucket, Key="media/variants/bb/b.jpg")["CacheControl"] == IMMUTABLE_CACHE_CONTROL
    assert s.object_info("variants/bb/b.jpg") == s.object_info("variants/aa/a.jpg")


def test_a_copy_whose_answer_was_lost_is_verified_not_failed(bucket: str, endpoint: str) -> None:
    make(bucket, endpoint).put("variants/aa/a.jpg", BLOB, content_type="image/jpeg")
    with FaultyProxy() as proxy:
        s = make(bucket, proxy.url, max_attempts=1)
        proxy.decide = lambda method, path: "drop-after" if method == "PUT" else None  # type: ignore[method-assign]
        s.copy("variants/aa/a.jpg", "events/e.jpg")
    assert make(bucket, endpoint).get("events/e.jpg") == BLOB


def test_signed_urls_read_a_private_object(bucket: str, endpoint: str) -> None:
    s = make(bucket, endpoint)
    s.put("masters/aa/private.png", b"private bytes", content_type=PNG)
    assert requests.get(s.url("masters/aa/private.png"), timeout=10).status_code == 403  # the bucket is private
    signed = s.signed_url("masters/aa/private.png", expires_in=60)
    assert signed.startswith(f"{endpoint}/{bucket}/media/masters/aa/private.png?") and "X-Amz-Expires=60" in signed
    response = requests.get(signed, timeout=10)
    assert response.status_code == 200 and response.content == b"private bytes"
    for bad in (0, 8 * 24 * 3600):
        with pytest.raises(StorageError):
            s.signed_url("masters/aa/private.png", expires_in=bad)


def test_overlaps_by_endpoint_bucket_and_prefix(bucket: str, endpoint: str) -> None:
    media = make(bucket, endpoint, prefix="media")
    assert media.location == f"s3://{bucket}/media"
    assert media.overlaps(make(bucket, endpoint, prefix="media/copy"))
    assert make(bucket, endpoint, prefix="media/copy").overlaps(media)
    assert media.overlaps(S3Storage(bucket, endpoint_url=endpoint))  # the bucket's root holds every prefix
    assert not media.overlaps(make(bucket, endpoint, prefix="media2"))
    assert not media.overlaps(make(new_bucket(), endpoint, prefix="media"))
    assert not media.overlaps(S3Storage(bucket, "media", endpoint_url="https://other.example.org"))


def test_declared_capabilities() -> None:
    assert S3Storage.verifies_writes and S3Storage.sizes_in_listing
    for name in ("list_sizes", "object_info", "copy", "location", "overlaps", "signed_url", "close", "put_if_absent", "check"):
        assert getattr(S3Storage, name) is not getattr(Storage, name), name  # S3 does each its own way


@pytest.mark.parametrize("name", ["AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"])
def test_a_credential_with_a_line_break_is_refused_when_the_storage_opens(
        tmp_path: Path, bucket: str, endpoint: str, monkeypatch: pytest.MonkeyPatch, name: str) -> None:
    """A key pasted with its newline (a quoted ``\\n`` in .env) used to make every request fail as "cannot reach
    S3 after 10 attempts", a retryable fault; it is now a configuration error naming the variable, never the value."""
    from limner.config import load_settings

    for var in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        monkeypatch.delenv(var)
    values = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", name: "Secret1234567890abcdefXYZ\\n"}
    (tmp_path / ".env").write_text("".join(f'{k}="{v}"\n' for k, v in values.items()))
    (tmp_path / "limner.toml").write_text(f'[storage]\nurl = "s3://{bucket}/media"\nendpoint_url = "{endpoint}"\n'
                                          'region = "us-east-1"\n')
    with pytest.raises(ConfigError) as info:
        open_storage(load_settings(tmp_path / "limner.toml"))
    assert f"{name} contains a line break" in str(info.value)
    assert "Secret1234567890" not in str(info.value)
    assert objects(bucket) == {}


def test_s3_error_messages_never_show_a_credential_from_dotenv(tmp_path: Path, bucket: str, endpoint: str,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    """What S3 says back is cleaned of every credential the storage was opened with, the .env ones included."""
    from botocore.exceptions import ClientError

    from limner.config import load_settings

    for var in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        monkeypatch.delenv(var)
    (tmp_path / ".env").write_text("AWS_ACCESS_KEY_ID=testing\nAWS_SECRET_ACCESS_KEY=Secret1234567890abcdefXYZ\n")
    (tmp_path / "limner.toml").write_text(f'[storage]\nurl = "s3://{bucket}/media"\nendpoint_url = "{endpoint}"\n'
                                          'region = "us-east-1"\n')
    s = open_storage(load_settings(tmp_path / "limner.toml"))
    assert isinstance(s, S3Storage)
    echoed = ClientError({"Error": {"Code": "InternalError", "Message": "signed with Secret1234567890abcdefXYZ"},
                          "ResponseMetadata": {"HTTPStatusCode": 500}}, "PutObject")
    message = str(s._fail(echoed, "write", "a.png"))
    assert "Secret1234567890abcdefXYZ" not in message and "[redacted]" in message


def test_unfinished_multipart_uploads_are_partial_writes_gc_can_abort(bucket: str, endpoint: str) -> None:
    """A process killed while it uploaded a large master leaves a multipart upload S3 keeps (and bills) until it is
    aborted; gc collects it through the storage contract's partial writes."""
    s3 = client()
    started = s3.create_multipart_upload(Bucket=bucket, Key="media/masters/ab/big.png")
    s3.upload_part(Bucket=bucket, Key="media/masters/ab/big.png", UploadId=started["UploadId"], PartNumber=1,
                   Body=b"p" * 1000)
    elsewhere = s3.create_multipart_upload(Bucket=bucket, Key="other/masters/ab/big.png")  # not under the prefix
    s = make(bucket, endpoint)
    s.put("masters/ab/kept.png", b"x", content_type=PNG)
    # only those started long enough ago (a newer one may be an upload going on); moto dates every upload alike
    import datetime as dt

    initiated = s3.list_multipart_uploads(Bucket=bucket, Prefix="media/")["Uploads"][0]["Initiated"]
    age = (dt.datetime.now(dt.UTC) - initiated).total_seconds()
    assert list(s.partial_writes(age + 600)) == []
    found = list(s.partial_writes(max(age - 600, 0)))
    assert found == [(f"masters/ab/big.png#upload={started['UploadId']}", 1000)]
    with pytest.raises(StorageError):
        s.delete_partial_write("masters/ab/kept.png")
    s.delete_partial_write(found[0][0])
    s.delete_partial_write(found[0][0])  # aborted already: fine
    assert list(s.partial_writes(0)) == [] and s.get("masters/ab/kept.png") == b"x"
    left = s3.list_multipart_uploads(Bucket=bucket).get("Uploads", [])
    assert [u["UploadId"] for u in left] == [elsewhere["UploadId"]]
