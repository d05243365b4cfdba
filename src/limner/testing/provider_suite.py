"""The contract test suite every provider must pass (an fsspec-style fixtures mixin). Needs pytest and
pytest-asyncio; nothing else in :mod:`limner.testing` imports pytest.

A provider's test module subclasses :class:`ProviderSuite` and provides two fixtures (in the module, a
``conftest.py``, or the class itself)::

    from limner.testing.provider_suite import SECRET_TOKEN, ProviderSuite

    @pytest.fixture
    def fake():                      # a loopback fake of the provider's API, started
        server = MyFake().start()
        yield server
        server.stop()

    @pytest.fixture
    def make_provider(fake):         # make_provider(**settings) -> Provider, pointed at the fake
        def make(**settings):
            secrets = {"MY_API_KEY": SECRET_TOKEN, "MY_BASE_URL": fake.url}
            return MyProvider(settings={"_secret": secrets.get, **settings})
        return make

    class TestMyProvider(ProviderSuite):
        pass

``make_provider`` passes the suite's settings on: the provider must honour ``timeout_s`` (seconds for
one call) and should honour ``max_download_bytes`` (a cap on the image it accepts); its credential
must be :data:`SECRET_TOKEN`, which must never appear in an error, a log line or a ``repr``. The suite also
hands the provider :data:`SECRET_TOKEN` with a line break in it (as a quoted .env value ending in ``\\n``
gives it): the provider must refuse it with ``AuthFailed`` naming the variable, before any call, in
``missing_env()`` and in ``check()`` too; a provider whose ``make_provider`` does not pass the secrets as
the ``_secret`` setting skips that test.

The fake (a :class:`FakeAPI`) is scripted with ``fake.mode(name, **options)`` before a call. Modes
every fake supports:

``ok``                  a normal generation (the default)
``rate_limit_once``     the first create call answers 429 with ``Retry-After: 1``; later ones are ok
``server_error_once``   the first create call answers 500; later ones are ok
``slow``                the create call waits ``options["delay"]`` seconds before answering
``refuse``              the provider refuses the content (its documented NSFW / moderation shape)
``auth``                401 (or the provider's documented auth failure)
``corrupt``             the image bytes are not an image
``oversized``           the image is larger than the provider's download cap in the test (1 MB)
``redirect_elsewhere``  every request to the fake's URL (``http://127.0.0.1:<port>``) answers ``307`` to the
                        same path on another origin, ``http://localhost:<port>``, which answers 404; with
                        ``after=N``, the first N requests are served normally (the create call), then
                        every later one (polls, downloads) is redirected

and it records ``fake.create_calls`` (generation requests received), ``fake.last_input``
(the provider-specific input parameters of the last create call, as a dict), ``fake.redirected``
(requests answered with the redirect) and ``fake.elsewhere`` (the headers of each request that reached
the other origin).

The suite also runs the provider with settings that note every key it reads (:func:`recording`): each must be
declared in its ``accepted_settings`` (or be one of the common settings), since any other key of its
``[providers.<name>]`` section is refused as a typo. A provider that declares nothing skips that test.

A test that cannot apply to a backend (a self-hosted server has no moderation, so no refusal) is
overridden in the subclass with the backend's nearest equivalent, and a comment saying why.
"""

from __future__ import annotations

import logging
import re
from typing import Any

import pytest

from limner.imaging import ImageRejected, sniff_format, validate_image
from limner.providers import (
    AuthFailed,
    ContentRefused,
    GenerationRequest,
    GenerationResult,
    HostUnreachable,
    InvalidRequest,
    Provider,
    ProviderError,
    RateLimited,
    Transient,
)
from limner.providers.base import COMMON_SETTINGS, call_ids_to
from limner.runner.retry import CallStats, ProviderGate

__all__ = ["SECRET_TOKEN", "FakeAPI", "ProviderSuite", "ReadKeys", "call_through_gate", "recording", "request",
           "settings_read", "undeclared_settings"]

SECRET_TOKEN = "r8_FAKE_test_token_0123456789abcdefXYZ"  # a fake: never a real credential
#: the suite's token as a .env line with a stray line break, tab or NUL gives it
BROKEN_TOKENS = {"trailing newline": SECRET_TOKEN + "\n", "newline inside": SECRET_TOKEN[:12] + "\n" + SECRET_TOKEN[12:],
                 "carriage return": SECRET_TOKEN + "\r\n", "tab": SECRET_TOKEN + "\t",
                 "nul": SECRET_TOKEN[:12] + "\x00" + SECRET_TOKEN[12:]}
#: headers that carry credentials, for the suite's cross-origin check (lower case)
CREDENTIAL_HEADERS = frozenset({"authorization", "proxy-authorization", "cookie", "x-key", "x-api-key", "api-key"})


def request(**overrides: Any) -> GenerationRequest:
    """The suite's request: a prompt with quotes, braces and Hebrew, a negative prompt, a 3:2-ish size."""
    base = dict(prompt="Oil painting of the Exodus, \"the sea parts\" {braces} שלום", negative_prompt="blurry, text",
                width=1024, height=688, seed=12345, model="", params={}, context={"id": "exodus", "title": "Exodus"})
    base.update(overrides)
    return GenerationRequest(**base)


async def call_through_gate(provider: Provider, **overrides: Any) -> tuple[GenerationResult, CallStats]:
    """One call through the runner's retry policy (3 attempts, tiny backoff); closes the provider."""
    gate = ProviderGate(provider, concurrency=1, rate_per_minute=None, timeout_s=30, max_attempts=3,
                        backoff_initial_s=0.01, backoff_max_s=0.05)
    stats = CallStats()
    try:
        answer = await gate.call(request(model=provider.model, **overrides), stats)
        return answer.result, stats
    finally:
        await provider.aclose()


class ReadKeys(dict):  # type: ignore[type-arg]
    """A provider's settings that note in ``read`` every key looked up (``get``, ``[key]``, ``in``)."""

    def __init__(self, data: Any, read: set[str]) -> None:
        super().__init__(data)
        self.read = read

    def get(self, key: Any, default: Any = None) -> Any:
        self.read.add(key)
        return super().get(key, default)

    def __getitem__(self, key: Any) -> Any:
        self.read.add(key)
        return super().__getitem__(key)

    def __contains__(self, key: object) -> bool:
        self.read.add(str(key))
        return super().__contains__(key)


def recording(provider: Provider) -> tuple[Provider, set[str]]:
    """A new provider of ``provider``'s class, model and settings, whose settings note every key it reads from
    its constructor on (:class:`ReadKeys`); and the set of those keys."""
    read: set[str] = set()

    class Recording(type(provider)):  # type: ignore[misc, valid-type]
        @property  # type: ignore[override]
        def settings(self) -> ReadKeys:
            return self.__dict__["_recorded_settings"]

        @settings.setter
        def settings(self, value: Any) -> None:  # Provider.__init__ sets it
            self.__dict__["_recorded_settings"] = ReadKeys(value, read)

    Recording.__name__ = Recording.__qualname__ = type(provider).__name__
    return Recording(model=provider.model, settings=dict(provider.settings)), read


async def settings_read(provider: Provider, call: GenerationRequest) -> set[str]:
    """The keys a :func:`recording` copy of ``provider`` reads from its settings, with those it was given: built,
    estimated for a plan, asked its concurrency and missing variables, prepared, making ``call``, fetching that call
    again by the id it reports (if it does), and checked by ``check`` (whose provider error is passed over)."""
    copy, read = recording(provider)
    type(provider).estimate_usd(copy.model, call.width, call.height, params=call.params,
                                settings=ReadKeys(provider.settings, read))
    copy.concurrency_hint()
    copy.missing_env()
    ids: list[str] = []
    try:
        await copy.prepare()
        with call_ids_to(ids.append):
            await copy.generate(call)
        if ids:
            await copy.fetch_known(ids[0], call)
        try:
            await copy.check()
        except ProviderError:
            pass  # a fake that does not answer the check: what it read is noted all the same
    finally:
        await copy.aclose()
    return read | set(provider.settings)


def undeclared_settings(cls: type[Provider], keys: Any) -> set[str]:
    """The keys of ``keys`` (settings read or given) that ``cls`` neither declares in ``accepted_settings`` nor
    takes as a common setting (``_secret``, Limner's own secret look-up, aside)."""
    return set(keys) - {"_secret"} - COMMON_SETTINGS - set(cls.accepted_settings or ())


class FakeAPI:
    """What the suite needs from a provider's fake (subclasses implement the API itself)."""

    create_calls: int = 0
    last_input: dict[str, Any] | None = None
    #: requests answered with the ``redirect_elsewhere`` redirect, and the headers that reached the other origin
    redirected: int = 0
    elsewhere: list[dict[str, str]] = []

    def mode(self, name: str, **options: Any) -> None:  # pragma: no cover - interface
        raise NotImplementedError


class ProviderSuite:
    """The contract. Subclass it in a test module that provides the ``fake`` and ``make_provider`` fixtures."""

    #: the maximum bytes the provider under test may download (make_provider receives it as max_download_bytes)
    max_download_bytes = 1_000_000

    async def _generate(self, provider: Provider, **overrides: Any) -> GenerationResult:
        try:
            return await provider.generate(request(model=provider.model, **overrides))
        finally:
            await provider.aclose()

    @pytest.mark.asyncio
    async def test_success_returns_an_image(self, fake: FakeAPI, make_provider) -> None:
        fake.mode("ok")
        result = await self._generate(make_provider())
        assert sniff_format(result.data) in {"png", "jpeg", "webp"}
        validate_image(result.data)
        assert fake.create_calls == 1
        assert result.cost_usd >= 0

    #: whether the API gives a call an id before its image is ready (a queue, a prediction): then the provider
    #: must report it (``report_call_id``) and fetch a reported call's image again without a new call
    #: (``fetch_known``), so that a timeout, a failed download or a killed run never pays twice
    names_its_calls = False

    @pytest.mark.asyncio
    async def test_a_reported_call_is_fetched_again_without_a_new_call(self, fake: FakeAPI, make_provider) -> None:
        from limner.providers.base import call_ids_to

        fake.mode("ok")
        provider = make_provider()
        ids: list[str] = []
        try:
            with call_ids_to(ids.append):
                first = await provider.generate(request(model=provider.model))
            if not self.names_its_calls:
                assert ids == [] or all(ids), ids
                return
            assert len(ids) == 1 and ids[0], ids
            known = await provider.fetch_known(ids[0], request(model=provider.model))
        finally:
            await provider.aclose()
        assert known.state == "done" and known.result is not None, known
        assert fake.create_calls == 1  # fetched again, never made again
        assert validate_image(known.result.data).info.width == validate_image(first.data).info.width
        assert known.result.cost_usd == pytest.approx(first.cost_usd)
        gone = await provider.fetch_known(ids[0] + "x", request(model=provider.model))
        await provider.aclose()
        assert gone.state == "gone" and fake.create_calls == 1

    @pytest.mark.asyncio
    async def test_prepare_makes_no_request_and_the_call_still_works(self, fake: FakeAPI, make_provider) -> None:
        """``prepare()`` runs before every call's ledger line: it must not call the service (that would be a
        request with no line), and repeating it changes nothing."""
        fake.mode("ok")
        provider = make_provider()
        await provider.prepare()
        await provider.prepare()
        assert fake.create_calls == 0
        result = await self._generate(provider)
        assert sniff_format(result.data) in {"png", "jpeg", "webp"} and fake.create_calls == 1

    @pytest.mark.asyncio
    async def test_every_setting_it_reads_is_declared(self, fake: FakeAPI, make_provider) -> None:
        """A key of ``[providers.<name>]`` that the provider does not declare is refused as a typo: each key it
        reads must be declared, or a correct setting would be refused. So must each key ``make_provider`` gives."""
        given = make_provider()
        cls = type(given)
        if cls.accepted_settings is None:
            pytest.skip(f"{cls.__name__} declares no accepted_settings: every key of its section is passed on")
        fake.mode("ok")
        missing = undeclared_settings(cls, await settings_read(given, request(model=given.model)))
        assert not missing, f"{cls.__name__} reads settings it does not declare in accepted_settings: {sorted(missing)}"

    @pytest.mark.asyncio
    async def test_seed_round_trip(self, fake: FakeAPI, make_provider) -> None:
        provider = make_provider()
        fake.mode("ok")
        result = await self._generate(provider, seed=424242)
        if provider.capabilities.supports_seed:
            assert result.seed == 424242
            assert 424242 in [v for v in (fake.last_input or {}).values() if isinstance(v, int)]

    @pytest.mark.asyncio
    async def test_429_raises_rate_limited_with_retry_after(self, fake: FakeAPI, make_provider) -> None:
        fake.mode("rate_limit_once")
        with pytest.raises(RateLimited) as info:
            await self._generate(make_provider())
        assert info.value.retry_after == pytest.approx(1, abs=0.5)

    @pytest.mark.asyncio
    async def test_5xx_then_success_through_the_retry_policy(self, fake: FakeAPI, make_provider) -> None:
        fake.mode("server_error_once")
        result, stats = await call_through_gate(make_provider())
        assert stats.attempts == 2
        validate_image(result.data)

    @pytest.mark.asyncio
    async def test_timeout_is_transient(self, fake: FakeAPI, make_provider) -> None:
        fake.mode("slow", delay=3)
        with pytest.raises(Transient) as info:
            await self._generate(make_provider(timeout_s=0.5))
        assert not isinstance(info.value, HostUnreachable)  # the host answered the connection: it is slow, not down

    @pytest.mark.asyncio
    async def test_content_refusal_is_permanent_with_its_reason(self, fake: FakeAPI, make_provider) -> None:
        fake.mode("refuse")
        with pytest.raises(ContentRefused) as info:
            await self._generate(make_provider())
        assert str(info.value) and not info.value.retryable

    @pytest.mark.asyncio
    async def test_auth_failure_names_no_secret(self, fake: FakeAPI, make_provider) -> None:
        fake.mode("auth")
        provider = make_provider()
        with pytest.raises(AuthFailed) as info:
            await self._generate(provider)
        assert SECRET_TOKEN not in str(info.value) and SECRET_TOKEN not in repr(info.value)
        assert SECRET_TOKEN not in repr(provider)

    @pytest.mark.asyncio
    async def test_corrupt_bytes_never_pass_as_an_image(self, fake: FakeAPI, make_provider) -> None:
        fake.mode("corrupt")
        try:
            result = await self._generate(make_provider())
        except (Transient, InvalidRequest):
            return
        with pytest.raises(ImageRejected):
            validate_image(result.data)

    @pytest.mark.asyncio
    async def test_oversized_output_is_refused(self, fake: FakeAPI, make_provider) -> None:
        fake.mode("oversized")
        with pytest.raises((InvalidRequest, ImageRejected)):
            result = await self._generate(make_provider(max_download_bytes=self.max_download_bytes))
            validate_image(result.data, max_bytes=self.max_download_bytes)

    @pytest.mark.asyncio
    async def test_unsupported_option_is_dropped_with_a_log_line(self, fake: FakeAPI, make_provider, caplog) -> None:
        fake.mode("ok")
        with caplog.at_level(logging.INFO, logger="limner.providers"):
            await self._generate(make_provider(), params={"no_such_option_xyz": 7})
        assert "no_such_option_xyz" not in str(fake.last_input)
        assert "no_such_option_xyz" in caplog.text

    @pytest.mark.asyncio
    async def test_no_credentials_across_origins_on_a_redirect(self, fake: FakeAPI, make_provider, monkeypatch) -> None:
        """A redirect to another origin gets neither the credential nor any authorization header (whether the
        provider follows it or not). Plain http to both hosts is allowed here, so the redirect is tried."""
        monkeypatch.setenv("LIMNER_ALLOW_HTTP_HOSTS", "127.0.0.1,localhost")
        for after in (0, 1):  # from the first request on; then after the create call (polls, downloads)
            fake.mode("redirect_elsewhere", after=after)
            try:
                await self._generate(make_provider(timeout_s=5))
            except ProviderError:
                pass
            if after == 0:
                assert fake.redirected >= 1  # the provider did reach the redirect
        for headers in fake.elsewhere:
            names = {name.lower() for name in headers}
            assert not names & CREDENTIAL_HEADERS, headers
            assert not any(SECRET_TOKEN in value for value in headers.values()), headers

    @pytest.mark.asyncio
    async def test_secret_never_in_logs(self, fake: FakeAPI, make_provider, caplog) -> None:
        with caplog.at_level(logging.DEBUG):
            for mode in ("ok", "auth", "server_error_once"):
                fake.mode(mode)
                try:
                    await self._generate(make_provider())
                except Exception as exc:  # noqa: BLE001 - only the text matters here
                    assert SECRET_TOKEN not in str(exc)
        assert SECRET_TOKEN not in caplog.text

    @pytest.mark.asyncio
    async def test_a_credential_with_a_line_break_is_refused_before_any_call(self, fake: FakeAPI, make_provider) -> None:
        """A key with a line break in it (``KEY="sk-...\\n"`` in .env) cannot go into a header: the HTTP library's
        error would show it escaped, past the redaction. It is refused as a credential problem naming the
        variable, before any call, and no part of it is shown."""
        lookup = make_provider().settings.get("_secret")
        if not callable(lookup):
            pytest.skip("make_provider does not pass the secrets as the _secret setting")
        for value in BROKEN_TOKENS.values():
            asked: list[str] = []

            def broken_lookup(name: str, value: str = value, asked: list[str] = asked) -> Any:
                found = lookup(name)  # the token, or a value holding it (user:token), broken
                if isinstance(found, str) and SECRET_TOKEN in found:
                    asked.append(name)
                    return found.replace(SECRET_TOKEN, value)
                return found

            provider = make_provider(_secret=broken_lookup)
            missing = provider.missing_env()
            if not asked:
                pytest.skip("the provider reads no credential")
            name = asked[0]
            pieces = [piece for piece in re.split(r"[\s\x00]+", value) if len(piece) >= 8]
            assert any(entry.startswith(name) and "contains" in entry for entry in missing), missing
            shown = [" ".join(missing)]
            for attempt in (self._generate, lambda p: p.check()):
                with pytest.raises(AuthFailed) as info:
                    await attempt(provider)
                await provider.aclose()
                assert name in str(info.value) and "contains" in str(info.value) and ".env" in str(info.value)
                shown += [str(info.value), repr(info.value)]
            shown.append(repr(provider))
            assert fake.create_calls == 0, value
            for text in shown:
                assert not any(piece in text for piece in pieces), (value, text)
