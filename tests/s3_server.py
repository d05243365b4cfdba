"""S3 for tests, on loopback only: moto's server, and a fault-injecting proxy in front of it.

* :func:`moto_endpoint` starts one ``ThreadedMotoServer`` per test process (moto keeps its state
  per process, so tests use a bucket each: :func:`new_bucket`).
* :class:`FaultyProxy` forwards HTTP to moto; for a seeded fraction of requests it answers
  ``500 InternalError`` or drops the connection (before or after forwarding), and it can slow
  writes down. It logs every request, so tests can count the PUTs of each key.
* :func:`moto_auth` turns moto's credential checks on (``InvalidAccessKeyId`` for unknown keys).
"""

from __future__ import annotations

import atexit
import contextlib
import http.client
import json
import logging
import random
import socket
import struct
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit

import boto3
import requests
from botocore.config import Config

AWS_ENV = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
}
#: environment variables that could send boto3 elsewhere than the test's endpoint
AWS_ENV_UNSET = ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN", "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3",
                 "AWS_REGION", "AWS_MAX_ATTEMPTS", "AWS_RETRY_MODE", "AWS_WEB_IDENTITY_TOKEN_FILE",
                 "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI", "AWS_CONTAINER_CREDENTIALS_FULL_URI", "HTTP_PROXY", "HTTPS_PROXY",
                 "http_proxy", "https_proxy", "ALL_PROXY", "all_proxy")
AWS_ENV_EXTRA = {"AWS_EC2_METADATA_DISABLED": "true", "AWS_CONFIG_FILE": "/nonexistent/aws-config",
                 "AWS_SHARED_CREDENTIALS_FILE": "/nonexistent/aws-credentials", "NO_PROXY": "127.0.0.1,localhost",
                 "no_proxy": "127.0.0.1,localhost"}

_server: Any = None
_lock = threading.Lock()


def moto_endpoint() -> str:
    """``http://127.0.0.1:PORT`` of this process's moto server (started on first use)."""
    global _server
    with _lock:
        if _server is None:
            from moto.server import ThreadedMotoServer

            logging.getLogger("werkzeug").setLevel(logging.WARNING)  # one line per request otherwise
            server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
            server.start()
            atexit.register(server.stop)
            _server = server
        host, port = _server.get_host_and_port()
    return f"http://{host}:{port}"


def client(endpoint: str | None = None, **config: Any) -> Any:
    """A plain boto3 client on the moto server (path-style), for setting up and checking."""
    return boto3.client(
        "s3", endpoint_url=endpoint or moto_endpoint(), region_name="us-east-1", aws_access_key_id="testing",
        aws_secret_access_key="testing", config=Config(s3={"addressing_style": "path"}, **config),
    )


def new_bucket(prefix: str = "limner") -> str:
    name = f"{prefix}-{uuid.uuid4().hex[:16]}"
    client().create_bucket(Bucket=name)
    return name


def make_public(bucket: str) -> None:
    """Let anyone GET the bucket's objects (a bucket policy, as a public site's bucket has)."""
    policy = {"Version": "2012-10-17", "Statement": [{"Sid": "PublicRead", "Effect": "Allow", "Principal": "*",
                                                      "Action": "s3:GetObject", "Resource": f"arn:aws:s3:::{bucket}/*"}]}
    client().put_bucket_policy(Bucket=bucket, Policy=json.dumps(policy))


def objects(bucket: str, prefix: str = "") -> dict[str, int]:
    """key -> size of every object in a bucket (under ``prefix``)."""
    found: dict[str, int] = {}
    for page in client().get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        for item in page.get("Contents", ()):
            found[item["Key"]] = item["Size"]
    return found


@contextlib.contextmanager
def moto_auth() -> Iterator[None]:
    """Make moto check credentials (only IAM-known access keys pass) for the duration."""
    url = f"{moto_endpoint()}/moto-api/reset-auth"
    previous = requests.post(url, data=b"0", timeout=10).json()["PREVIOUS_INITIAL_NO_AUTH_ACTION_COUNT"]
    try:
        yield
    finally:
        requests.post(url, data=str(previous).encode(), timeout=10)


# ---------------------------------------------------------------------------------- fault-injecting proxy
@dataclass
class Logged:
    method: str
    path: str  # without the query
    query: str
    outcome: str  # "ok", "500", "drop" (never forwarded), "drop-after" (forwarded, answer dropped)
    status: int | None = None

    @property
    def is_object_put(self) -> bool:
        """A PutObject or an UploadPart (not a bucket creation or a copy)."""
        return self.method == "PUT" and self.path.count("/") >= 2


_HOP = {"connection", "keep-alive", "proxy-connection", "transfer-encoding", "te", "trailer", "upgrade", "content-length"}


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # headers and body go out as separate writes: no 40 ms delayed-ACK stalls
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:  # quiet
        pass

    def do_GET(self) -> None:
        self._proxy()

    do_PUT = do_POST = do_DELETE = do_HEAD = do_GET

    def _read_body(self) -> bytes:
        if "chunked" in (self.headers.get("Transfer-Encoding") or "").lower():
            chunks = []
            while True:
                line = self.rfile.readline()
                if not line:
                    raise ConnectionAbortedError("request body cut short")
                size = int(line.split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    break
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
            return b"".join(chunks)
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        if len(body) < length:  # the client went away mid-body: like S3, store nothing
            raise ConnectionAbortedError("request body cut short")
        return body

    def _drop(self) -> None:
        self.close_connection = True
        with contextlib.suppress(OSError):  # a reset, as a crashed or overloaded server would give
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        with contextlib.suppress(OSError):
            self.connection.close()

    def _proxy(self) -> None:
        proxy = self.server.proxy
        with proxy._lock:
            proxy.in_flight += 1
        try:
            self._forward(proxy)
        except ConnectionAbortedError:
            self.close_connection = True
        finally:
            with proxy._lock:
                proxy.in_flight -= 1

    def _forward(self, proxy: FaultyProxy) -> None:
        body = self._read_body()
        path, _, query = self.path.partition("?")
        fault = proxy.decide(self.command, path)
        entry = Logged(self.command, path, query, fault or "ok")
        proxy.record(entry)
        if fault == "500" or proxy.fixed_error:
            status, code = proxy.fixed_error or (500, "InternalError")
            payload = b"" if self.command == "HEAD" else (
                f'<?xml version="1.0" encoding="UTF-8"?><Error><Code>{code}</Code>'
                "<Message>injected fault</Message></Error>").encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/xml")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)
            entry.status = status
            return
        if fault == "drop":
            self._drop()
            return
        if proxy.put_delay_s and self.command in ("PUT", "POST"):
            time.sleep(proxy.put_delay_s)
        upstream = http.client.HTTPConnection(proxy.target_host, proxy.target_port, timeout=60)
        try:
            upstream.putrequest(self.command, self.path, skip_host=True, skip_accept_encoding=True)
            for name, value in self.headers.items():
                if name.lower() not in _HOP:
                    upstream.putheader(name, value)
            upstream.putheader("Content-Length", str(len(body)))
            upstream.endheaders(body)
            response = upstream.getresponse()
            payload = response.read()
            headers = response.getheaders()
            status, reason = response.status, response.reason
        finally:
            upstream.close()
        entry.status = status
        if fault == "drop-after":
            self._drop()
            return
        self.send_response(status, reason)
        for name, value in headers:
            if name.lower() not in _HOP:
                self.send_header(name, value)
            elif name.lower() == "content-length" and self.command == "HEAD":
                self.send_header(name, value)  # a HEAD's length is the object's size
        if self.command != "HEAD":
            self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(payload)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    proxy: FaultyProxy


class FaultyProxy:
    """An HTTP proxy on loopback in front of ``target`` (moto) that fails a seeded fraction of requests."""

    def __init__(self, target: str | None = None, *, failure_rate: float = 0.0, seed: int = 1234,
                 faults: tuple[str, ...] = ("500", "drop", "drop-after"), put_delay_s: float = 0.0,
                 fixed_error: tuple[int, str] | None = None) -> None:
        parts = urlsplit(target or moto_endpoint())
        self.target_host = parts.hostname or "127.0.0.1"
        self.target_port = parts.port or 80
        self.failure_rate = failure_rate
        self.faults = faults
        self.put_delay_s = put_delay_s
        #: answer every request with this (status, S3 error code), e.g. (403, "AccessDenied")
        self.fixed_error = fixed_error
        self._rng = random.Random(seed)
        self._lock = threading.Lock()
        self.log: list[Logged] = []
        #: requests being handled now (a client killed mid-request leaves its request to finish here)
        self.in_flight = 0
        self._server = _Server(("127.0.0.1", 0), _Handler)
        self._server.proxy = self
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def decide(self, method: str, path: str) -> str | None:
        if path.startswith("/moto-api"):
            return None
        with self._lock:
            if self.failure_rate and self._rng.random() < self.failure_rate:
                return self._rng.choice(self.faults)
        return None

    def record(self, entry: Logged) -> None:
        with self._lock:
            self.log.append(entry)

    def reset_log(self) -> None:
        with self._lock:
            self.log = []

    def put_counts(self, bucket: str) -> dict[str, int]:
        """Object key -> number of PUTs that reached moto (forwarded, whatever the client then saw)."""
        counts: dict[str, int] = {}
        with self._lock:
            log = list(self.log)
        for e in log:
            if e.is_object_put and e.outcome in ("ok", "drop-after") and e.path.startswith(f"/{bucket}/"):
                key = e.path[len(bucket) + 2:]
                counts[key] = counts.get(key, 0) + 1
        return counts

    def wait_idle(self, timeout: float = 30.0) -> None:
        """Wait until no request is being handled (the writes already taken in have landed)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self._lock:
                if self.in_flight == 0:
                    return
            time.sleep(0.01)
        raise TimeoutError(f"{self.in_flight} requests still in flight after {timeout}s")

    def faults_injected(self) -> int:
        with self._lock:
            return sum(1 for e in self.log if e.outcome != "ok")

    def start(self) -> FaultyProxy:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def __enter__(self) -> FaultyProxy:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
