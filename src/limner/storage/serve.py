"""Serve a local storage folder read-only over http on the loopback interface (``limner media serve``).

For local development: the manifest names objects by key relative to ``base`` (null for a local folder),
and a page served over http cannot load ``file://`` URLs. This server answers ``GET``/``HEAD`` for files
inside the folder only: a path with ``..``, a backslash, a NUL, an encoded separator or a link that
leads outside is refused (404), and nothing can be written. Standard library only.
"""

from __future__ import annotations

import posixpath
import threading
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import unquote, urlsplit

from limner.storage.base import content_type_for
from limner.keys import CONTENT_PREFIXES

__all__ = ["MediaServer", "resolve_request_path"]

_CHUNK = 1 << 16


def resolve_request_path(root: Path, request_path: str) -> Path | None:
    """The file ``request_path`` (the path of an http request) names inside ``root``, or None when it names
    nothing there: a ``..`` segment, an absolute or encoded-separator trick, a hidden file, or a symlink
    whose target lies outside ``root``."""
    raw = urlsplit(request_path).path
    if "\\" in raw or "%2f" in raw.lower() or "%5c" in raw.lower():
        return None
    path = unquote(raw)
    if "\x00" in path or not path.startswith("/"):
        return None
    parts = path.split("/")[1:]
    if not parts or any(p in ("", ".", "..") or p.startswith(".") for p in parts):
        return None
    if posixpath.normpath(path) != path:
        return None
    root = root.resolve()
    candidate = root.joinpath(*parts)
    try:
        real = candidate.resolve(strict=True)
    except (OSError, RuntimeError):
        return None
    if root not in real.parents or not real.is_file():
        return None
    return real


class _Handler(BaseHTTPRequestHandler):
    server: MediaServer
    server_version = "limner-media"
    sys_version = ""

    def version_string(self) -> str:
        return self.server_version

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - the base class's name
        if self.server.verbose:
            super().log_message(format, *args)

    def _refuse(self, status: HTTPStatus) -> None:
        body = f"{status.value} {status.phrase}\n".encode()
        self.send_response(status)
        self.send_header("Content-Type", "text/plain; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _serve(self, body: bool) -> None:
        path = resolve_request_path(self.server.root, self.path)
        if path is None:
            self._refuse(HTTPStatus.NOT_FOUND)
            return
        key = path.relative_to(self.server.root.resolve()).as_posix()
        size = path.stat().st_size
        self.send_response(HTTPStatus.OK)
        self.send_header("Content-Type", content_type_for(key))
        self.send_header("Content-Length", str(size))
        self.send_header("Access-Control-Allow-Origin", "*")
        self.send_header("Cache-Control", "public, max-age=31536000, immutable" if key.startswith(CONTENT_PREFIXES)
                         else "no-cache")
        self.end_headers()
        if not body:
            return
        with path.open("rb") as fh:
            while chunk := fh.read(_CHUNK):
                self.wfile.write(chunk)

    def do_GET(self) -> None:  # noqa: N802 - http.server's naming
        self._serve(True)

    def do_HEAD(self) -> None:  # noqa: N802
        self._serve(False)

    def _read_only(self) -> None:
        self._refuse(HTTPStatus.METHOD_NOT_ALLOWED)

    do_POST = do_PUT = do_DELETE = do_PATCH = _read_only  # noqa: N815


class MediaServer(ThreadingHTTPServer):
    """``MediaServer(root, host, port)``: ``serve_forever()`` in the foreground, or ``start()`` in a thread."""

    daemon_threads = True

    def __init__(self, root: str | Path, host: str = "127.0.0.1", port: int = 8766, *, verbose: bool = False) -> None:
        self.root = Path(root)
        self.verbose = verbose
        if not self.root.is_dir():
            raise FileNotFoundError(f"no such folder: {self.root}")
        super().__init__((host, port), _Handler)

    @property
    def base_url(self) -> str:
        host, port = self.server_address[:2]
        host = host if isinstance(host, str) else host.decode()
        return f"http://{f'[{host}]' if ':' in host else host}:{port}/"

    def start(self) -> threading.Thread:
        thread = threading.Thread(target=self.serve_forever, name="limner-media", daemon=True)
        thread.start()
        return thread


