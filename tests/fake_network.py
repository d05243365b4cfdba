"""Loopback network failures for the provider tests: a port nobody listens on, a server that accepts
connections and never answers, one that hangs up without answering.

They are real sockets on 127.0.0.1, so httpx raises what it raises against a real host that is down
(``ConnectError``: connection refused), slow (``ReadTimeout``) or broken (``RemoteProtocolError``).
"""

from __future__ import annotations

import socket
import threading


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
