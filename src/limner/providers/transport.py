"""The HTTP transport of the provider clients: httpcore's connection pool on an asyncio network backend.

httpx runs httpcore on asyncio through anyio's streams. For a runner that keeps 16 or more calls in flight
on one event loop, two costs of that path showed up in profiles of ``limner generate`` (2-core machine,
``py-spy``, 1,000 entries against the loopback fake): the ``send`` calls were 29% of the event loop's time,
the readability checks 9%:

* a request with a body (every create call) went out in two ``send`` system calls (its headers, then its
  body), three per entry with the download: the stream here holds
  what httpcore writes and sends it in one call when httpcore turns to read the answer;
* httpcore asks each idle connection of the pool, at every request, whether its socket is readable
  (a server that closed it); through anyio that builds a dictionary of socket attributes and makes two
  system calls per connection. Here the stream answers from its own buffer, with no system call (and
  rightly: asyncio reads the socket as data arrives, so the socket itself rarely looks readable).

What stays httpx and httpcore: the pool (limits, keep-alive), HTTP/1.1 (h11), TLS settings, the
request and response models; this module only implements httpcore's documented network-backend
interface (``httpcore.AsyncNetworkBackend``) and a transport that hands httpx's requests to that pool.

A proxy configured in the environment (``HTTPS_PROXY`` and the like) is httpx's job: the provider
client then keeps httpx's own transport (:func:`transport_for`).
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import ssl
from collections.abc import AsyncIterator, Iterable, Iterator
from typing import Any

import httpcore
import httpx


def _import_anyio_backend() -> None:
    """httpcore's locks on asyncio are anyio's, and the first one made imports anyio's asyncio backend
    (about 18 ms; 40 on a busy 2-core machine). Imported with this module, while the command plans, rather
    than on the event loop in the middle of the first request, where it held back every other call of
    a run's first round. Nothing is lost if anyio moves it: the first lock imports what it needs."""
    import importlib

    try:
        importlib.import_module("anyio._backends._asyncio")
    except ImportError:  # pragma: no cover - another anyio layout
        pass


_import_anyio_backend()

#: how much of an answer is buffered before the socket stops being read (the pool reads it as it goes)
READ_BUFFER_LIMIT = 256 * 1024
#: writes held until httpcore reads (or this many bytes are waiting): a request's headers and body go
#: out together
WRITE_COMBINE_LIMIT = 64 * 1024


@contextlib.contextmanager
def _mapped(timeout_exc: type[Exception], error_exc: type[Exception]) -> Iterator[None]:
    try:
        yield
    except TimeoutError as exc:
        raise timeout_exc(str(exc) or "timed out") from exc
    except (OSError, ssl.SSLError, EOFError) as exc:
        raise error_exc(str(exc) or type(exc).__name__) from exc


class _Protocol(asyncio.Protocol):
    """Bytes received (and the end of the stream) for :class:`AsyncioStream`, with flow control."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.buffer = bytearray()
        self.eof = False
        self.error: BaseException | None = None
        self._reader: asyncio.Future[None] | None = None
        self._writer: asyncio.Future[None] | None = None
        self._reading_paused = False
        self._writing_paused = False

    # -- asyncio's callbacks ----------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        if len(self.buffer) > READ_BUFFER_LIMIT and not self._reading_paused and self.transport is not None:
            self.transport.pause_reading()
            self._reading_paused = True
        self._wake_reader()

    def eof_received(self) -> bool:
        self.eof = True
        self._wake_reader()
        return False  # close the transport

    def connection_lost(self, exc: Exception | None) -> None:
        self.eof = True
        self.error = exc
        self._wake_reader()
        self._writing_paused = False
        self._wake_writer()

    def pause_writing(self) -> None:
        self._writing_paused = True

    def resume_writing(self) -> None:
        self._writing_paused = False
        self._wake_writer()

    # -- for the stream -----------------------------------------------------------------------
    def take(self, max_bytes: int) -> bytes:
        data = bytes(self.buffer[:max_bytes])
        del self.buffer[:max_bytes]
        if self._reading_paused and len(self.buffer) <= READ_BUFFER_LIMIT // 2 and self.transport is not None:
            self.transport.resume_reading()
            self._reading_paused = False
        return data

    async def readable(self) -> None:
        """Wait until bytes or the end of the stream are there."""
        if self.buffer or self.eof:
            return
        self._reader = asyncio.get_running_loop().create_future()
        try:
            await self._reader
        finally:
            self._reader = None

    async def drained(self) -> None:
        """Wait until the transport takes writes again (its buffer is under its high-water mark)."""
        if not self._writing_paused:
            return
        self._writer = asyncio.get_running_loop().create_future()
        try:
            await self._writer
        finally:
            self._writer = None

    def _wake_reader(self) -> None:
        if self._reader is not None and not self._reader.done():
            self._reader.set_result(None)

    def _wake_writer(self) -> None:
        if self._writer is not None and not self._writer.done():
            self._writer.set_result(None)


class AsyncioStream(httpcore.AsyncNetworkStream):
    """One connection: reads from :class:`_Protocol`'s buffer; writes are combined until the next read."""

    def __init__(self, protocol: _Protocol) -> None:
        self._protocol = protocol
        self._pending = bytearray()

    @property
    def _transport(self) -> asyncio.Transport:
        assert self._protocol.transport is not None
        return self._protocol.transport

    async def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        await self._flush(timeout)
        protocol = self._protocol
        with _mapped(httpcore.ReadTimeout, httpcore.ReadError):
            async with asyncio.timeout(timeout):
                await protocol.readable()
            if protocol.buffer:
                return protocol.take(max_bytes)
            if protocol.error is not None:
                raise protocol.error
            return b""  # the peer closed the connection

    async def write(self, buffer: bytes, timeout: float | None = None) -> None:
        if not buffer:
            return
        self._pending += buffer
        if len(self._pending) >= WRITE_COMBINE_LIMIT:
            await self._flush(timeout)

    async def _flush(self, timeout: float | None) -> None:
        if not self._pending:
            return
        data = bytes(self._pending)
        self._pending.clear()
        with _mapped(httpcore.WriteTimeout, httpcore.WriteError):
            if self._transport.is_closing():
                raise self._protocol.error or ConnectionResetError("the connection is closed")
            self._transport.write(data)
            async with asyncio.timeout(timeout):
                await self._protocol.drained()

    async def aclose(self) -> None:
        self._pending.clear()
        transport = self._protocol.transport
        if transport is not None and not transport.is_closing():
            transport.close()

    async def start_tls(self, ssl_context: ssl.SSLContext, server_hostname: str | None = None,
                        timeout: float | None = None) -> httpcore.AsyncNetworkStream:
        await self._flush(timeout)
        loop = asyncio.get_running_loop()
        with _mapped(httpcore.ConnectTimeout, httpcore.ConnectError):
            try:
                transport = await loop.start_tls(self._transport, self._protocol, ssl_context,
                                                 server_hostname=server_hostname, ssl_handshake_timeout=timeout)
            except BaseException:
                await self.aclose()
                raise
        if transport is None:  # pragma: no cover - asyncio returns None only for a closed transport
            raise httpcore.ConnectError("the connection closed during the TLS handshake")
        self._protocol.transport = transport  # type: ignore[assignment]
        return self

    def get_extra_info(self, info: str) -> Any:
        transport = self._protocol.transport
        if info == "is_readable":  # idle and readable: the server closed it (or sent what it should not)
            return bool(self._protocol.buffer) or self._protocol.eof
        if transport is None:
            return None
        if info == "ssl_object":
            return transport.get_extra_info("ssl_object")
        if info == "client_addr":
            return transport.get_extra_info("sockname")
        if info == "server_addr":
            return transport.get_extra_info("peername")
        if info == "socket":
            return transport.get_extra_info("socket")
        return None


class AsyncioBackend(httpcore.AsyncNetworkBackend):
    """httpcore's network backend on asyncio's own transports."""

    async def connect_tcp(self, host: str, port: int, timeout: float | None = None, local_address: str | None = None,
                          socket_options: Iterable[Any] | None = None) -> httpcore.AsyncNetworkStream:
        loop = asyncio.get_running_loop()
        protocol = _Protocol()
        with _mapped(httpcore.ConnectTimeout, httpcore.ConnectError):
            async with asyncio.timeout(timeout):
                await loop.create_connection(lambda: protocol, host, port,
                                             local_addr=(local_address, 0) if local_address else None)
        return self._configured(protocol, socket_options)

    async def connect_unix_socket(self, path: str, timeout: float | None = None,
                                  socket_options: Iterable[Any] | None = None) -> httpcore.AsyncNetworkStream:
        loop = asyncio.get_running_loop()
        protocol = _Protocol()
        with _mapped(httpcore.ConnectTimeout, httpcore.ConnectError):
            async with asyncio.timeout(timeout):
                await loop.create_unix_connection(lambda: protocol, path)
        return self._configured(protocol, socket_options)

    @staticmethod
    def _configured(protocol: _Protocol, socket_options: Iterable[Any] | None) -> AsyncioStream:
        stream = AsyncioStream(protocol)
        sock: socket.socket | None = stream.get_extra_info("socket")
        for option in socket_options or ():
            if sock is not None:
                sock.setsockopt(*option)
        return stream

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)


# -- the transport httpx is given ----------------------------------------------------------------

#: httpcore's exceptions as httpx's (as httpx's own transport maps them); looked up along the MRO, so
#: the most specific class wins
_EXCEPTIONS: dict[type[Exception], type[httpx.HTTPError]] = {
    httpcore.TimeoutException: httpx.TimeoutException,
    httpcore.ConnectTimeout: httpx.ConnectTimeout,
    httpcore.ReadTimeout: httpx.ReadTimeout,
    httpcore.WriteTimeout: httpx.WriteTimeout,
    httpcore.PoolTimeout: httpx.PoolTimeout,
    httpcore.NetworkError: httpx.NetworkError,
    httpcore.ConnectError: httpx.ConnectError,
    httpcore.ReadError: httpx.ReadError,
    httpcore.WriteError: httpx.WriteError,
    httpcore.ProxyError: httpx.ProxyError,
    httpcore.UnsupportedProtocol: httpx.UnsupportedProtocol,
    httpcore.ProtocolError: httpx.ProtocolError,
    httpcore.LocalProtocolError: httpx.LocalProtocolError,
    httpcore.RemoteProtocolError: httpx.RemoteProtocolError,
}


@contextlib.contextmanager
def _as_httpx_errors() -> Iterator[None]:
    try:
        yield
    except Exception as exc:
        for cls in type(exc).__mro__:
            if cls in _EXCEPTIONS:
                raise _EXCEPTIONS[cls](str(exc)) from exc
        raise


class _ResponseStream(httpx.AsyncByteStream):
    def __init__(self, stream: Any) -> None:
        self._stream = stream

    async def __aiter__(self) -> AsyncIterator[bytes]:
        with _as_httpx_errors():
            async for part in self._stream:
                yield part

    async def aclose(self) -> None:
        with _as_httpx_errors():
            await self._stream.aclose()


class AsyncioTransport(httpx.AsyncBaseTransport):
    """An httpx transport over an ``httpcore.AsyncConnectionPool`` on :class:`AsyncioBackend`, with httpx's
    default limits (100 connections, 20 kept alive for 5 s) and the given TLS context."""

    def __init__(self, ssl_context: ssl.SSLContext, *, limits: httpx.Limits = httpx.Limits(
            max_connections=100, max_keepalive_connections=20, keepalive_expiry=5.0)) -> None:
        self._pool = httpcore.AsyncConnectionPool(
            ssl_context=ssl_context, max_connections=limits.max_connections,
            max_keepalive_connections=limits.max_keepalive_connections, keepalive_expiry=limits.keepalive_expiry,
            network_backend=AsyncioBackend())

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        assert isinstance(request.stream, httpx.AsyncByteStream)
        core = httpcore.Request(
            method=request.method,
            url=httpcore.URL(scheme=request.url.raw_scheme, host=request.url.raw_host, port=request.url.port,
                             target=request.url.raw_path),
            headers=request.headers.raw, content=request.stream, extensions=request.extensions)
        with _as_httpx_errors():
            response = await self._pool.handle_async_request(core)
        return httpx.Response(status_code=response.status, headers=response.headers,
                              stream=_ResponseStream(response.stream), extensions=response.extensions)

    async def aclose(self) -> None:
        await self._pool.aclose()


def transport_for(ssl_context: ssl.SSLContext) -> httpx.AsyncBaseTransport | None:
    """The transport of a provider client: :class:`AsyncioTransport`, or None (httpx's own, which honours
    it) when the environment names a proxy, as httpx reads it (``urllib.request.getproxies``)."""
    from urllib.request import getproxies

    if any(getproxies().get(scheme) for scheme in ("http", "https", "all")):
        return None
    return AsyncioTransport(ssl_context)
