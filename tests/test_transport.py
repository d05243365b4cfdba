"""The provider clients' transport: httpcore's pool on an asyncio network backend (providers/transport.py).

Checked against real loopback servers (plain and TLS, certificates from ``trustme``): requests and
answers, keep-alive, a connection the server closed, flow control on a large answer, timeouts and
refused connections mapped to httpx's errors, and the reason it exists: a request goes out in one
write."""

from __future__ import annotations

import asyncio
import ssl

import httpx
import pytest
import trustme

from limner.providers.transport import AsyncioTransport, transport_for


class Server:
    """A tiny HTTP/1.1 server on asyncio: records what arrives in each read and each connection."""

    def __init__(self, *, close_after: int = 0, body: bytes = b"hello", hang: bool = False) -> None:
        self.chunks: list[bytes] = []
        self.connections = 0
        self.close_after = close_after  # close each connection after this many answers (0: keep it)
        self.body = body
        self.hang = hang
        self.server: asyncio.AbstractServer | None = None

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        answered = 0
        buffer = b""
        try:
            while True:
                chunk = await reader.read(65536)
                if not chunk:
                    return
                self.chunks.append(chunk)
                buffer += chunk
                while b"\r\n\r\n" in buffer:
                    head, _, rest = buffer.partition(b"\r\n\r\n")
                    length = next((int(line.split(b":", 1)[1]) for line in head.split(b"\r\n")
                                   if line.lower().startswith(b"content-length:")), 0)
                    if len(rest) < length:
                        break
                    body, buffer = rest[:length], rest[length:]
                    if self.hang:
                        await asyncio.sleep(3600)
                    answer = self.body if not body else b"echo:" + body
                    writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(answer), answer))
                    await writer.drain()
                    answered += 1
                    if self.close_after and answered >= self.close_after:
                        writer.close()
                        return
        finally:
            writer.close()

    async def start(self, ssl_context: ssl.SSLContext | None = None) -> str:
        self.server = await asyncio.start_server(self.handle, "127.0.0.1", 0, ssl=ssl_context)
        port = self.server.sockets[0].getsockname()[1]
        return f"{'https' if ssl_context else 'http'}://127.0.0.1:{port}"

    async def stop(self) -> None:
        assert self.server is not None
        self.server.close()


def client(ssl_context: ssl.SSLContext | None = None, **kwargs) -> httpx.AsyncClient:  # type: ignore[no-untyped-def]
    return httpx.AsyncClient(transport=AsyncioTransport(ssl_context or ssl.create_default_context()), **kwargs)


async def test_get_and_post_keep_one_connection_and_each_request_is_one_write():
    server = Server()
    url = await server.start()
    try:
        async with client() as http:
            got = await http.get(f"{url}/a")
            posted = await http.post(f"{url}/b", content=b'{"input": {"prompt": "a boat"}}',
                                     headers={"Content-Type": "application/json"})
    finally:
        await server.stop()
    assert got.status_code == 200 and got.content == b"hello"
    assert posted.content == b'echo:{"input": {"prompt": "a boat"}}'
    assert server.connections == 1  # kept alive
    post = next(c for c in server.chunks if c.startswith(b"POST"))
    assert post.endswith(b'{"input": {"prompt": "a boat"}}')  # headers and body arrived in one read


async def test_a_connection_the_server_closed_is_not_reused():
    server = Server(close_after=1)
    url = await server.start()
    try:
        async with client() as http:
            first = await http.get(f"{url}/1")
            await asyncio.sleep(0.1)  # the server's close reaches the idle connection
            second = await http.get(f"{url}/2")
    finally:
        await server.stop()
    assert first.status_code == second.status_code == 200
    assert server.connections == 2


async def test_a_large_answer_is_read_whole_through_flow_control():
    body = bytes(range(256)) * 8192  # 2 MB: reading pauses and resumes several times
    server = Server(body=body)
    url = await server.start()
    try:
        async with client() as http:
            got = await http.get(f"{url}/big")
            streamed = b""
            async with http.stream("GET", f"{url}/big") as response:
                async for part in response.aiter_bytes():
                    streamed += part
                    await asyncio.sleep(0)  # a slow reader
    finally:
        await server.stop()
    assert got.content == body and streamed == body


async def test_timeouts_and_refused_connections_are_httpx_errors():
    server = Server(hang=True)
    url = await server.start()
    try:
        async with client(timeout=httpx.Timeout(0.2)) as http:
            with pytest.raises(httpx.ReadTimeout):
                await http.get(f"{url}/slow")
    finally:
        await server.stop()
    async with client(timeout=httpx.Timeout(2.0)) as http:
        with pytest.raises(httpx.ConnectError):
            await http.get(url)  # the server is gone: connection refused


async def test_tls_with_a_trusted_and_an_untrusted_certificate():
    ca = trustme.CA()
    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("localhost").configure_cert(server_context)
    server = Server()
    url = (await server.start(server_context)).replace("127.0.0.1", "localhost")
    trusting = ssl.create_default_context()
    ca.configure_trust(trusting)
    untrusting = ssl.create_default_context()
    trustme.CA().configure_trust(untrusting)  # trusts another CA only
    try:
        async with client(trusting) as http:
            got = await http.get(f"{url}/secure")
        assert got.content == b"hello"
        async with client(untrusting) as http:
            with pytest.raises(httpx.ConnectError):
                await http.get(f"{url}/secure")
    finally:
        await server.stop()


def test_a_proxy_in_the_environment_keeps_httpx_s_own_transport(monkeypatch):
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy"):
        monkeypatch.delenv(name, raising=False)
    assert isinstance(transport_for(ssl.create_default_context()), AsyncioTransport)
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.example:3128")
    assert transport_for(ssl.create_default_context()) is None
