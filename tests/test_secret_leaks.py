"""Secrets never reach the terminal, the database or a committed file, even when they are malformed.

A key with a line break in it (``OPENAI_API_KEY="sk-...\\n"`` in .env) used to reach h11, whose error shows the
header value escaped (``\\n`` as two characters), past the exact-text redaction: into the terminal, the
entries table, ``limner status`` and ``limner doctor``. Now such a key is refused before any call, as a
credential problem naming the variable, and the redaction also knows the escaped forms of every secret.
"""

from __future__ import annotations

import sqlite3

import httpx

import pytest
from fake_hosted_apis import OpenAIFake, start_fake

from limner.errors import EXIT_AUTH
from projects import ProjectDir

KEY = "sk-proj-AAAABBBBCCCCDDDD1234"
#: what a .env line holds, and the pieces of the key that must never be shown
BROKEN_KEYS = {
    "trailing newline": ('"' + KEY + '\\n"', [KEY]),
    "newline inside": ('"sk-proj-AAAA\\nBBBBCCCCDDDD1234"', ["sk-proj-AAAA", "BBBBCCCCDDDD1234"]),
    "carriage return": ('"' + KEY + '\\r\\n"', [KEY]),
}


@pytest.fixture
def fake():
    yield from start_fake(OpenAIFake)


def _dump(db) -> str:  # type: ignore[no-untyped-def]
    con = sqlite3.connect(db)
    try:
        tables = [r[0] for r in con.execute("select name from sqlite_master where type = 'table'")]
        return "\n".join(repr(row) for t in tables for row in con.execute(f'select * from "{t}"'))
    finally:
        con.close()


@pytest.mark.parametrize("case", sorted(BROKEN_KEYS))
def test_a_key_with_a_line_break_is_refused_and_never_shown(make_project_dir, fake, case) -> None:
    value, pieces = BROKEN_KEYS[case]
    p: ProjectDir = make_project_dir(2, provider="openai")
    (p.root / ".env").write_text(f"OPENAI_API_KEY={value}\nOPENAI_BASE_URL={fake.url}/v1\n", encoding="utf-8")
    env = p.env(LIMNER_ALLOW_HTTP_HOSTS="127.0.0.1")
    env.pop("OPENAI_API_KEY", None)
    env.pop("OPENAI_BASE_URL", None)

    generate = p.run("generate", env=env)
    assert generate.returncode == EXIT_AUTH, generate.stdout + generate.stderr
    said = generate.stdout + generate.stderr
    assert "OPENAI_API_KEY" in said and "line break" in said and ".env" in said
    assert "cannot use OPENAI_API_KEY (it contains a line break" in said and "needs" not in said  # it is set
    assert fake.create_calls == 0 and not fake.log  # no call went out

    outputs = [said]
    for args in (("status",), ("status", "--json"), ("doctor",), ("doctor", "--json"), ("providers",),
                 ("providers", "--json")):
        proc = p.run(*args, env=env)
        outputs.append(proc.stdout + proc.stderr)
    doctor = p.run("doctor", "--provider", "openai", env=env)
    assert doctor.returncode == EXIT_AUTH and "OPENAI_API_KEY" in doctor.stdout and "line break" in doctor.stdout
    outputs.append(doctor.stdout + doctor.stderr)
    db = p.root / ".limner" / "limner.db"
    if db.exists():
        outputs.append(_dump(db))
        con = sqlite3.connect(db)
        try:
            assert con.execute("select count(*) from ledger").fetchone()[0] == 0  # nothing was paid for
        finally:
            con.close()
    text = "\n".join(outputs)
    for piece in pieces:
        assert piece not in text
    assert fake.create_calls == 0 and not fake.log


def _builtin_providers() -> list[str]:
    from limner.registry import provider_specs

    return sorted(provider_specs())


@pytest.mark.parametrize("name", _builtin_providers())
def test_every_credential_a_provider_reads_is_checked_for_line_breaks(name: str) -> None:
    """A secret a provider redacts (``_secret_values``) is one it sends: each must be checked before a call."""
    from limner.errors import LimnerError
    from limner.registry import provider_class

    try:
        cls = provider_class(name)
    except LimnerError:
        pytest.skip(f"{name} is not installed")
    values = {}

    def lookup(variable: str) -> str:
        return values.setdefault(variable, f"value-of-{variable}-0123456789\n")

    provider = cls(settings={"_secret": lookup})
    secrets = {s for s in provider._secret_values() if s}
    read = {variable for variable, value in values.items() if value in secrets}
    assert read <= set(provider.credential_names()), read
    reported = " ".join(provider.missing_env())
    for variable in provider.credential_names():
        assert f"{variable} (it contains a line break" in reported
        assert values[variable] not in reported and values[variable].strip() not in reported


# -- error bodies: redacted first, then cut ---------------------------------------------------------------------

ECHOED = "sk-proj-AAAABBBBCCCCDDDDEEEEFFFFGGGG1234"


def _leaks(text: str) -> list[str]:
    """The parts of ECHOED (8 characters or more) in ``text``."""
    return [ECHOED[i:i + 8] for i in range(len(ECHOED) - 7) if ECHOED[i:i + 8] in text]


def _near(limit: int) -> list[str]:
    """Texts that put the key across a cut at ``limit`` characters (give or take a prefix of up to 60)."""
    return ["x" * (limit - len(ECHOED) + shift) + ECHOED + " tail" for shift in range(-60, len(ECHOED) + 1, 3)]


def _provider(cls, key_env: str):  # type: ignore[no-untyped-def]
    return cls(settings={"_secret": {key_env: ECHOED}.get})


def test_an_error_body_is_redacted_before_it_is_cut() -> None:
    from limner.providers.http import error_for_status
    from limner.urls import Redactor

    redact = Redactor([ECHOED])
    for body in _near(300):
        assert not _leaks(str(error_for_status("openai", httpx.Response(500, text=body), redact)))
        assert not _leaks(str(error_for_status("openai", httpx.Response(500, text="x"), redact, detail=body)))
    assert redact.clip("ab " + ECHOED, 9) == "ab [redac"


@pytest.mark.parametrize("code", ["insufficient_quota", "moderation_blocked"])
async def test_openai_error_messages_are_redacted_before_they_are_cut(code: str) -> None:
    from limner.providers import ProviderError
    from limner.providers.openai import OpenAIProvider

    provider = _provider(OpenAIProvider, "OPENAI_API_KEY")
    for message in _near(300):
        answer = httpx.Response(400, json={"error": {"code": code, "message": message}})
        with pytest.raises(ProviderError) as info:
            await provider.error_hook(answer)
        assert not _leaks(str(info.value)), str(info.value)
    await provider.aclose()


async def test_huggingface_and_together_refusals_are_redacted_before_they_are_cut() -> None:
    from limner.providers import ProviderError
    from limner.providers.huggingface import HuggingFaceProvider
    from limner.providers.together import TogetherProvider

    hf = _provider(HuggingFaceProvider, "HF_TOKEN")
    together = _provider(TogetherProvider, "TOGETHER_API_KEY")
    for text in _near(300) + _near(400):
        for provider, answer in ((hf, httpx.Response(400, json={"error": "nsfw " + text})),
                                 (hf, httpx.Response(503, json={"error": text, "estimated_time": 3})),
                                 (together, httpx.Response(400, json={"error": {"code": "nsfw", "message": text}}))):
            with pytest.raises(ProviderError) as info:
                await provider.error_hook(answer)
            assert not _leaks(str(info.value)), str(info.value)
    await hf.aclose()
    await together.aclose()


def test_replicate_failures_and_local_load_errors_are_redacted_before_they_are_cut() -> None:
    from limner.providers.replicate import ReplicateProvider
    from limner.providers.weights import classify_load_error
    from limner.urls import Redactor

    replicate = _provider(ReplicateProvider, "REPLICATE_API_TOKEN")
    for text in _near(500):
        assert not _leaks(str(replicate._failure("p1", text)))
    for text in _near(300):
        for exc in (RuntimeError(text), FileNotFoundError(text)):
            assert not _leaks(str(classify_load_error(exc, "some/model", redact=Redactor([ECHOED]))))


def test_self_hosted_error_descriptions_are_redacted_before_they_are_cut() -> None:
    from limner.providers.automatic1111 import Automatic1111Provider
    from limner.providers.comfyui import ComfyUIProvider

    a1111 = Automatic1111Provider(settings={"_secret": {"A1111_AUTH": f"limner:{ECHOED}"}.get})
    comfy = ComfyUIProvider(settings={"_secret": {"COMFYUI_TOKEN": ECHOED}.get})
    for text in _near(300) + _near(500) + _near(900):
        answers = [httpx.Response(500, text=text), httpx.Response(422, json={"detail": text}),
                   httpx.Response(422, json={"detail": [{"loc": ["body", "steps"], "msg": text}]}),
                   httpx.Response(500, json={"other": text})]
        for answer in answers:
            assert not _leaks(a1111.describe_error(answer) or "")
        for answer in (httpx.Response(400, text=text), httpx.Response(400, json={"error": {"message": text}}),
                       httpx.Response(400, json={"node_errors": {"3": {"class_type": "K", "errors": [{"message": text}]}}})):
            assert not _leaks(comfy.describe_error(answer) or "")


def test_a_supabase_error_body_is_redacted_before_it_is_cut() -> None:
    from limner.storage.supabase import _Failure
    from limner.urls import Redactor

    for text in _near(200):
        assert not _leaks(Redactor([ECHOED])(_Failure(httpx.Response(500, text=text)).detail))


# ------------------------------------------------------------------ a storage URL with a password in it
STORAGE_PASSWORD = "pw-Secr3t-9f2k"
#: storage URLs holding the password: as user:password@ (one with a / in it, which ends a netloc early), or as
#: a query value
SECRET_STORAGE_URLS = {
    "supabase userinfo": f"supabase://editor:{STORAGE_PASSWORD}@my-bucket/media",
    "supabase password with a slash": "supabase://editor:pw-Secr3t/9f2k-more@my-bucket/media",
    "supabase query": f"supabase://my-bucket/media?public={STORAGE_PASSWORD}",
    "s3 userinfo": f"s3://AKIAEXAMPLE:{STORAGE_PASSWORD}@my-bucket/media",
    "s3 query": f"s3://my-bucket/media?X-Amz-Signature={STORAGE_PASSWORD}",
}


@pytest.mark.parametrize("case", sorted(SECRET_STORAGE_URLS))
def test_a_storage_url_password_is_never_shown_by_any_command(make_project_dir, tmp_path, case) -> None:
    """A supabase:// URL with user:password@ was accepted (the bucket named 'editor:<password>@my-bucket') and
    echoed in every error about it (`storage 'supabase://editor:<password>@…' needs …`, `Supabase bucket
    'editor:<password>@my-bucket': list failed`); so was an s3:// URL with a query, and any storage URL by
    `limner media serve`. No command that opens or names the storage shows the password now (every command for
    the URL whose password ends its netloc early; the others through the two ways in, as the project's storage
    and as upload's destination)."""
    url = SECRET_STORAGE_URLS[case]
    p: ProjectDir = make_project_dir(2)
    env = p.env(LIMNER_STORAGE_URL=url, SUPABASE_URL="http://127.0.0.1:9", SUPABASE_SERVICE_ROLE_KEY="service-role",
                AWS_ACCESS_KEY_ID="AKIAEXAMPLE", AWS_SECRET_ACCESS_KEY="aws-secret", AWS_MAX_ATTEMPTS="1")
    copy = str(tmp_path / "copy")
    commands = [("generate",), ("upload", "--from", str(p.root), "--to", url, "--all")]
    if case == "supabase password with a slash":
        commands += [("status",), ("check",), ("doctor",), ("sync",), ("gc",), ("media", "serve", "--port", "0"),
                     ("upload", "--to", copy), ("upload", "--from", url, "--to", copy)]
    for args in commands:
        proc = p.run(*args, env=env, timeout=60)
        said = proc.stdout + proc.stderr
        assert proc.returncode != 0 or args[0] in ("status", "check", "doctor"), (args, said)
        for piece in ("Secr3t", "9f2k"):
            assert piece not in said, (args, said)
    kept = "".join(f.read_text(errors="replace") for f in p.root.rglob("*") if f.is_file() and f.suffix != ".db")
    assert "Secr3t" not in kept


def test_a_storage_plugin_error_quoting_its_url_shows_no_password(monkeypatch, tmp_path) -> None:
    """A plugin storage whose error quotes the URL it was given shows it as `shown_url` does."""
    from limner.config import load_settings
    from limner.errors import ConfigError
    from limner.storage import factory
    from limner.urls import shown_url

    class Quoting:
        @classmethod
        def from_settings(cls, settings):  # type: ignore[no-untyped-def]
            raise ConfigError(f"cannot reach {settings.storage.url}", hint=f"check {settings.storage.url!r}")

    monkeypatch.setattr(factory, "storage_class", lambda scheme: Quoting)
    (tmp_path / "limner.toml").write_text('[storage]\nurl = "sftp://me:pw-Secr3t/9f2k@host/media?key=k-Secr3t"\n')
    with pytest.raises(ConfigError) as info:
        factory.open_storage(load_settings(tmp_path / "limner.toml"))
    assert info.value.message == "cannot reach sftp://***@host/media?key=***" and str(info.value) == info.value.message
    assert info.value.hint == "check 'sftp://***@host/media?key=***'"
    assert shown_url("s3://bucket/media") == "s3://bucket/media" and shown_url(".limner/media") == ".limner/media"
    assert shown_url("supabase://b/p?public=true#frag") == "supabase://b/p?public=***#***"
