"""Loopback network failures for the provider tests: a port nobody listens on, a server that accepts
connections and never answers, one that hangs up without answering, and the fakes' server, which can
redirect every request to another origin.

They are real sockets on 127.0.0.1, so httpx raises what it raises against a real host that is down
(``ConnectError``: connection refused), slow (``ReadTimeout``) or broken (``RemoteProtocolError``).
"""

from __future__ import annotations

import socket
import threading
from typing import Any

from pytest_httpserver import HTTPServer
from werkzeug import Request, Response


def closed_port_url() -> str:
    """``http://127.0.0.1:<port>`` where nothing listens (the port was bound, then released)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}"


class RawServer:
    """A TCP server on 127.0.0.1 that reads each request and then either says nothing (``silent``) or
    closes the connection at once (``hang_up``)."""

    def __init__(self, behaviour: str) -> None:
        assert behaviour in ("silent", "hang_up"), behaviour
        self.behaviour = behaviour
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.sock.settimeout(0.1)
        self.connections = 0
        self._stop = threading.Event()
        self._open: list[socket.socket] = []
        self._thread = threading.Thread(target=self._serve, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.sock.getsockname()[1]}"

    def start(self) -> RawServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(2)
        for conn in self._open:
            conn.close()
        self.sock.close()

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            self.connections += 1
            conn.settimeout(1.0)
            try:
                conn.recv(65536)
            except OSError:
                pass
            if self.behaviour == "hang_up":
                conn.close()
            else:
                self._open.append(conn)  # keep it open, answer nothing


class RedirectingServer(HTTPServer):
    """pytest-httpserver with a 10 ms shutdown poll and the suite's ``redirect_elsewhere`` mode.

    With ``redirect_elsewhere`` set, every request to ``127.0.0.1`` (after the first ``redirect_after``) is answered ``307`` to the same path on
    ``http://localhost:<port>``: another origin (another host name), which records the headers it receives
    in ``elsewhere`` and answers 404. No provider may carry its credentials there."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.redirect_elsewhere = False
        #: requests served normally before the redirects start (``redirect_elsewhere`` with ``after=N``)
        self.redirect_after = 0
        self.redirected = 0
        self.elsewhere: list[dict[str, str]] = []

    def thread_target(self) -> None:
        assert self.server is not None
        self.server.serve_forever(poll_interval=0.01)

    def dispatch(self, request: Request) -> Response:
        if request.host.rsplit(":", 1)[0] == "localhost":
            self.elsewhere.append(dict(request.headers))
            return Response("not here", status=404, content_type="text/plain")
        if self.redirect_elsewhere and self.redirect_after > 0:
            self.redirect_after -= 1
        elif self.redirect_elsewhere:
            self.redirected += 1
            return Response("", status=307, headers={"Location": f"http://localhost:{self.port}{request.full_path}"})
        return super().dispatch(request)


class RedirectMode:
    """For a fake served by a :class:`RedirectingServer` (``self.server``): the suite's ``redirect_elsewhere``
    mode and what it saw. Call :meth:`script_redirect` from the fake's ``mode()``."""

    server: RedirectingServer

    def script_redirect(self, name: str, options: dict[str, Any]) -> None:
        self.server.redirect_elsewhere = name == "redirect_elsewhere"
        self.server.redirect_after = int(options.get("after", 0))

    @property
    def elsewhere(self) -> list[dict[str, str]]:
        """Headers of the requests that reached the other origin (``redirect_elsewhere``)."""
        return self.server.elsewhere

    @property
    def redirected(self) -> int:
        return self.server.redirected
