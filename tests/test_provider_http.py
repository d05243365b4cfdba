"""The shared HTTP layer (limner.providers.http): errors decided by status and by the network
exception's type, never by message text; against loopback sockets and httpx's MockTransport."""

from __future__ import annotations

import json

import httpx
import pytest
from fake_network import RawServer, closed_port_url

from limner.providers import AnswerLost, AuthFailed, HostUnreachable, InvalidRequest, OutOfCredit, ProviderError, RateLimited, Transient
from limner.providers.http import USER_AGENT, ProviderHTTP, Redactor, error_for_status


@pytest.fixture(autouse=True)
def allow_loopback(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LIMNER_ALLOW_HTTP_HOSTS", "127.0.0.1,nowhere.invalid")


def answer(status: int, body: str = "nope", headers: dict[str, str] | None = None) -> httpx.Response:
    return httpx.Response(status, text=body, headers=headers, request=httpx.Request("GET", "https://api.example/x"))


@pytest.mark.parametrize(("status", "kind"), [
    (401, AuthFailed), (403, AuthFailed), (402, OutOfCredit), (429, RateLimited), (408, Transient), (425, Transient),
    (500, Transient), (503, Transient), (400, InvalidRequest), (404, InvalidRequest), (422, InvalidRequest),
])
def test_status_mapping(status: int, kind: type[ProviderError]) -> None:
    error = error_for_status("demo", answer(status, "out of credit, connection refused"), Redactor())
    assert type(error) is kind  # the text of the body never decides


def test_out_of_credit_stops_like_auth_and_says_to_add_credit() -> None:
    error = error_for_status("demo", answer(402, '{"title": "Insufficient credit"}'), Redactor(),
                             credit_hint="add credit at https://example.test/billing")
    assert isinstance(error, AuthFailed) and not error.retryable
    assert "HTTP 402" in str(error) and "add credit at https://example.test/billing" in str(error)
    assert "add credit to the account" in str(error_for_status("demo", answer(402), Redactor()))


def test_retry_after_is_read_from_the_header() -> None:
    error = error_for_status("demo", answer(429, headers={"Retry-After": "7"}), Redactor())
    assert isinstance(error, RateLimited) and error.retry_after == 7


async def test_connection_refused_is_host_unreachable() -> None:
    url = closed_port_url()
    http = ProviderHTTP("demo", base_url=url, timeout_s=2)
    try:
        with pytest.raises(HostUnreachable) as info:
            await http.request("GET", "/x")
        assert isinstance(info.value, Transient) and info.value.retryable
        assert url.removeprefix("http://") in str(info.value)
        with pytest.raises(HostUnreachable):
            await http.download(f"{url}/image.png")
    finally:
        await http.aclose()


async def test_dns_failure_is_host_unreachable() -> None:
    http = ProviderHTTP("demo", base_url="http://nowhere.invalid", timeout_s=5)  # .invalid never resolves
    try:
        with pytest.raises(HostUnreachable, match="nowhere.invalid"):
            await http.request("GET", "/x")
    finally:
        await http.aclose()


@pytest.mark.parametrize(("raised", "kind"), [
    (httpx.ConnectTimeout("timed out while connecting"), HostUnreachable),
    (httpx.ConnectError("[Errno 111] Connection refused"), HostUnreachable),
    # the request went out, its answer never came: counted at the list price (the service may have billed it)
    (httpx.ReadTimeout("connection refused"), AnswerLost),  # the text says "refused": the type decides
    (httpx.RemoteProtocolError("Server disconnected without sending a response."), AnswerLost),
    (httpx.ReadError("host unreachable"), AnswerLost),
    (httpx.WriteError("broken pipe"), Transient),  # the request did not go out whole
])
async def test_network_errors_are_decided_by_exception_type(raised: Exception, kind: type[ProviderError]) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        raise raised

    http = ProviderHTTP("demo", base_url="https://api.example", transport=httpx.MockTransport(handler))
    try:
        with pytest.raises(Transient) as info:
            await http.request("POST", "/v1/x", json={})
        assert type(info.value) is kind
        with pytest.raises(kind):
            await http.download("https://cdn.example/x.png")
    finally:
        await http.aclose()


async def test_a_slow_host_is_transient_not_unreachable() -> None:
    server = RawServer("silent").start()
    http = ProviderHTTP("demo", base_url=server.url, timeout_s=0.3)
    try:
        with pytest.raises(AnswerLost, match="no answer within 0.3s") as info:
            await http.request("GET", "/x")
        assert not isinstance(info.value, HostUnreachable)
        assert server.connections == 1
    finally:
        await http.aclose()
        server.stop()


async def test_a_host_that_hangs_up_is_transient_not_unreachable() -> None:
    server = RawServer("hang_up").start()
    http = ProviderHTTP("demo", base_url=server.url, timeout_s=2)
    try:
        with pytest.raises(Transient) as info:
            await http.request("GET", "/x")
        assert not isinstance(info.value, HostUnreachable)
    finally:
        await http.aclose()
        server.stop()


async def test_describe_gives_the_message_and_on_error_may_replace_the_mapping() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        status = int(request.url.path.strip("/"))
        return httpx.Response(status, json={"detail": [{"msg": "steps must be an integer"}]})

    async def on_error(response: httpx.Response) -> None:
        if response.status_code == 409:
            raise RateLimited("demo: busy", retry_after=3)

    http = ProviderHTTP("demo", base_url="https://api.example", transport=httpx.MockTransport(handler),
                        on_error=on_error, describe=lambda r: r.json()["detail"][0]["msg"])
    try:
        with pytest.raises(InvalidRequest, match=r"HTTP 422: steps must be an integer$"):
            await http.request("GET", "/422")
        with pytest.raises(RateLimited) as info:
            await http.request("GET", "/409")
        assert info.value.retry_after == 3
        response = await http.send("GET", "/422")  # send hands error answers back, unmapped
        assert response.status_code == 422
    finally:
        await http.aclose()


async def test_every_request_names_limner_as_its_user_agent() -> None:
    seen: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request.headers["user-agent"])
        return httpx.Response(200, content=b"\x89PNG\r\n\x1a\n")

    http = ProviderHTTP("demo", base_url="https://api.example", transport=httpx.MockTransport(handler))
    try:
        await http.request("GET", "/x")
        await http.download("https://cdn.example/x.png")
    finally:
        await http.aclose()
    assert seen == [USER_AGENT, USER_AGENT]


async def test_a_redirect_to_another_origin_drops_every_credential_header() -> None:
    """Two loopback servers on different ports (different origins): the second never sees a credential."""
    from pytest_httpserver import HTTPServer
    from werkzeug import Response

    first, second = HTTPServer(host="127.0.0.1"), HTTPServer(host="127.0.0.1")
    first.start()
    second.start()
    seen: dict[str, dict[str, str]] = {}

    def record(name: str, answer: Response):
        def handler(req):
            seen[name] = {k.lower(): v for k, v in req.headers.items()}
            return answer
        return handler

    try:
        first.expect_request("/out").respond_with_handler(
            record("same", Response(status=302, headers={"Location": "/moved"})))
        first.expect_request("/moved").respond_with_handler(
            record("moved", Response(status=302, headers={"Location": second.url_for("/img")})))
        second.expect_request("/img").respond_with_handler(record("other", Response(b"\x89PNG\r\n\x1a\nbytes")))
        http = ProviderHTTP("demo", base_url=first.url_for("/").rstrip("/"), secrets=["s3cr3t-value"],
                            headers={"Authorization": "Bearer s3cr3t-value", "X-Workspace": "s3cr3t-value"})
        http.client.cookies.set("session", "c00kie")
        try:
            data = await http.download(first.url_for("/out"), headers={"x-key": "k3y", "api-key": "k3y", "Accept": "image/*"})
        finally:
            await http.aclose()
        assert data.startswith(b"\x89PNG")
        assert seen["moved"]["authorization"] == "Bearer s3cr3t-value" and seen["moved"]["x-key"] == "k3y"  # same origin
        other = seen["other"]
        for name in ("authorization", "x-key", "api-key", "cookie", "x-workspace"):
            assert name not in other, name
        assert other["accept"] == "image/*" and other["user-agent"] == USER_AGENT
    finally:
        first.stop()
        second.stop()


async def test_an_api_answer_over_the_cap_is_refused_without_reading_it_whole() -> None:
    from pytest_httpserver import HTTPServer
    from werkzeug import Response

    server = HTTPServer(host="127.0.0.1")
    server.start()
    sent = []

    def chunks():  # no Content-Length: the cap is enforced while reading
        for _ in range(1000):
            sent.append(1)
            yield b'{"x": "' + b"a" * 10_000 + b'"},'

    try:
        server.expect_request("/big").respond_with_handler(lambda req: Response(chunks(), content_type="application/json"))
        server.expect_request("/small").respond_with_json({"ok": True})
        http = ProviderHTTP("demo", base_url=server.url_for("/").rstrip("/"), max_json_bytes=50_000)
        try:
            with pytest.raises(InvalidRequest, match="over the 50,000-byte cap"):
                await http.json("GET", "/big")
            assert await http.json("GET", "/small") == {"ok": True}
        finally:
            await http.aclose()
        assert len(sent) < 1000
    finally:
        server.stop()


async def test_every_provider_error_and_metadata_string_is_redacted() -> None:
    """Any Provider subclass (a plugin's too): what generate raises or reports passes through its redactor,
    whatever text the remote answer echoed."""
    from limner.providers import GenerationRequest, GenerationResult, Provider

    secret = "plugin-secret-0123456789"

    class Echo(Provider):
        name = "echo"
        required_env = ("ECHO_KEY",)

        async def generate(self, request: GenerationRequest) -> GenerationResult:
            echoed = f"server said: key {secret} rejected"
            if request.prompt == "fail":
                raise InvalidRequest(echoed)
            return GenerationResult(data=b"x", seed=1, model=f"m-{secret}",
                                    metadata={"note": echoed, "nested": [{"a": echoed}], "n": 3})

    provider = Echo(settings={"_secret": {"ECHO_KEY": secret}.get})
    req = GenerationRequest(prompt="ok", negative_prompt="", width=64, height=64, seed=1, model="m")
    result = await provider.generate(req)
    assert secret not in repr(result.metadata) and secret not in result.model
    assert result.metadata["note"] == "server said: key [redacted] rejected" and result.metadata["n"] == 3
    with pytest.raises(InvalidRequest) as info:
        await provider.generate(GenerationRequest(prompt="fail", negative_prompt="", width=64, height=64, seed=1, model="m"))
    assert secret not in str(info.value) and secret not in repr(info.value) and "[redacted]" in str(info.value)


def test_every_client_shares_one_tls_context_built_once(monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:
    """Loading the CA bundle costs ~20 ms: it is done once per process (limner.providers.tls), with httpx's
    own rules (SSL_CERT_FILE when set, else certifi's bundle)."""
    import ssl

    import certifi

    from limner.providers import tls

    made: list[dict] = []
    real = ssl.create_default_context

    def counting(*args, **kwargs):
        made.append(kwargs)
        return real(*args, **kwargs)

    monkeypatch.setattr(tls, "_context", None)
    monkeypatch.setattr(ssl, "create_default_context", counting)
    monkeypatch.delenv("SSL_CERT_DIR", raising=False)
    monkeypatch.delenv("SSL_CERT_FILE", raising=False)
    clients = [ProviderHTTP("demo", base_url="https://api.example") for _ in range(3)]
    assert made == [{"cafile": certifi.where()}] and tls.tls_context() is tls.tls_context()

    bundle = tmp_path / "ca.pem"
    bundle.write_bytes(open(certifi.where(), "rb").read())
    monkeypatch.setattr(tls, "_context", None)
    monkeypatch.setenv("SSL_CERT_FILE", str(bundle))
    tls.tls_context()
    assert made[-1] == {"cafile": str(bundle)}

    monkeypatch.setattr(tls, "_context", None)  # a bundle that cannot be read: a clear error that names it
    monkeypatch.setenv("SSL_CERT_FILE", str(tmp_path / "missing.pem"))
    with pytest.raises(InvalidRequest, match=r"cannot load the CA certificates for TLS from SSL_CERT_FILE=.*missing\.pem"):
        tls.tls_context()
    import asyncio

    for client in clients:
        asyncio.run(client.client.aclose())


async def test_a_done_answer_that_is_not_json_carries_the_calls_price() -> None:
    """A 200 whose body cannot be read (an HTML page) was a call answered as done: its error carries what the
    caller says the call costs, so the ledger counts it; an error status never does."""
    def handler(request: httpx.Request) -> httpx.Response:
        status = 200 if request.url.path == "/done" else 503
        return httpx.Response(status, text="<html>oops</html>")

    http = ProviderHTTP("demo", base_url="https://api.example", transport=httpx.MockTransport(handler))
    try:
        with pytest.raises(Transient, match="not JSON") as done:
            await http.json("POST", "/done", billed_usd=0.042)
        assert done.value.billed_usd == 0.042
        with pytest.raises(Transient) as failed:
            await http.json("POST", "/busy", billed_usd=0.042)
        assert failed.value.billed_usd == 0.0
    finally:
        await http.aclose()


BROKEN_SECRETS = ["sk-proj-AAAABBBBCCCCDDDD1234\n", "sk-proj-AAAA\nBBBBCCCCDDDD1234", "sk-proj-AAAABBBBCCCCDDDD1234\r\n",
                  "sk-proj-AAAABBBBCCCCDDDD1234\t", "sk-proj-AAAA\x00BBBBCCCCDDDD1234", "sk-proj-ÅÅÅÅBBBBCCCCDDDD\n"]


@pytest.mark.parametrize("secret", BROKEN_SECRETS)
def test_the_redactor_knows_a_secret_escaped_and_in_pieces(secret: str) -> None:
    """h11 shows an illegal header value escaped (``b'Bearer sk-...\\n'``); repr, JSON and logs escape too; a
    secret with a line break in the middle may be printed a line at a time."""
    redact = Redactor([secret])
    pieces = [p for p in secret.replace("\x00", " ").split() if len(p) >= 8]
    shown = [secret, repr(secret), repr(secret.encode()), secret.encode("unicode_escape").decode(),
             json.dumps(secret), json.dumps(secret, ensure_ascii=False), "\n".join(pieces),
             f"LocalProtocolError: Illegal header value {('Bearer ' + secret).encode()!r}"]
    for text in shown:
        out = redact(text)
        assert not any(piece in out for piece in pieces), (text, out)
        assert "[redacted]" in out
    assert redact("sk-proj is a prefix, BBBB too") == "sk-proj is a prefix, BBBB too"  # short pieces stay


@pytest.mark.parametrize("secret", BROKEN_SECRETS[:3])
async def test_an_illegal_header_value_is_redacted_from_the_network_error(secret: str) -> None:
    server = RawServer("hang_up").start()
    http = ProviderHTTP("demo", base_url=server.url, timeout_s=2, secrets=[secret],
                        headers={"Authorization": f"Bearer {secret}"})
    try:
        with pytest.raises(ProviderError) as info:
            await http.request("GET", "/x")
    finally:
        await http.aclose()
        server.stop()
    text = str(info.value) + repr(info.value)
    assert "Illegal header value" in text and "[redacted]" in text
    assert not any(piece in text for piece in secret.split() if len(piece) >= 8), text
