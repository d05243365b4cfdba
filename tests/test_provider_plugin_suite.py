"""The shipped provider contract suite (limner.testing.provider_suite) works for a plugin written outside
this repository: a tiny package with a ``register_providers`` hookimpl and a test file subclassing the
suite, run by pytest in a subprocess (strict asyncio mode, no conftest of ours). A deliberately broken
plugin fails it."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

PLUGIN_INIT = '''
from limner.plugins import hookimpl
from limner.registry import ProviderSpec


@hookimpl
def register_providers(register):
    register(ProviderSpec(name="echo", target="limner_echo.provider:EchoProvider",
                          description="An HTTP image API, for the contract suite."))
'''

PROVIDER = '''
import httpx

from limner.providers import Capabilities, ContentRefused, GenerationRequest, GenerationResult
from limner.providers.hosted import HOSTED_SETTINGS, HostedProvider


class EchoProvider(HostedProvider):
    name = "echo"
    accepted_settings = HOSTED_SETTINGS  # base_url, max_download_bytes, max_json_bytes; and the common ones
    default_model = "echo-1"
    capabilities = Capabilities(supports_negative_prompt=False, max_concurrency=2, size_multiple=16)
    price_usd = 0.001
    required_env = ("ECHO_API_KEY",)
    key_env, base_env, default_base_url = "ECHO_API_KEY", "ECHO_BASE_URL", "https://echo.example"
    supported_params = ("steps",)

    async def error_hook(self, response: httpx.Response) -> None:
        __ERROR_HOOK__

    async def generate(self, request: GenerationRequest) -> GenerationResult:
        width, height = self.fit_size(request)
        body = {"prompt": request.prompt, "seed": request.seed, "width": width, "height": height,
                **self.api_params(request.params)}
        answer = await self.http.json("POST", "/v1/images", json=body, headers=self.auth_headers())
        return GenerationResult(data=self.b64_json_image(answer), seed=request.seed, cost_usd=self.price_usd,
                                model=self.model)
'''

#: the error body's structure decides a refusal
GOOD_HOOK = '''if response.status_code == 400:
            error = response.json().get("error") or {}
            if error.get("code") == "content_policy":
                raise ContentRefused(f"echo: refused: {error.get('message')}")'''
#: a plugin that lets its backend's failures out untyped
BROKEN_HOOK = '''raise RuntimeError(f"echo: HTTP {response.status_code}")'''

FAKE = '''
import base64
import io
import json
import random
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from PIL import Image

from limner.testing.provider_suite import SECRET_TOKEN, FakeAPI


def png(width, height, seed):
    rng = random.Random(seed)
    im = Image.frombytes("RGB", (width, height), rng.randbytes(width * height * 3))
    buf = io.BytesIO()
    im.save(buf, "PNG")
    return buf.getvalue()


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request, client_address):  # a client that timed out and left: not an error here
        pass


class EchoFake(FakeAPI):
    """POST /v1/images -> {"data": [{"b64_json"}]}, with the suite's modes."""

    def __init__(self):
        fake = self
        self.create_calls, self.last_input = 0, None
        self.redirected, self.elsewhere = 0, []
        self._mode, self._options, self._once = "ok", {}, False
        self.lock, self.stopping = threading.Lock(), threading.Event()

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_POST(self):
                fake.create(self)

        self.server = _Server(("127.0.0.1", 0), Handler)

    @property
    def url(self):
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def start(self):
        threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True).start()
        return self

    def stop(self):
        self.stopping.set()
        self.server.shutdown()
        self.server.server_close()

    def mode(self, name, **options):
        with self.lock:
            self._mode, self._options, self._once = name, options, False

    @staticmethod
    def send(handler, status, body, headers=None):
        data = json.dumps(body).encode()
        handler.send_response(status)
        for key, value in {"Content-Type": "application/json", "Content-Length": str(len(data)), **(headers or {})}.items():
            handler.send_header(key, value)
        handler.end_headers()
        handler.wfile.write(data)

    def create(self, handler):
        body = json.loads(handler.rfile.read(int(handler.headers.get("Content-Length") or 0)) or b"{}")
        host = handler.headers.get("Host", "")
        if host.startswith("localhost"):  # the other origin of redirect_elsewhere
            self.elsewhere.append(dict(handler.headers))
            return self.send(handler, 404, {"error": "not here"})
        if self._mode == "redirect_elsewhere" and self._options.get("after", 0) == 0:
            self.redirected += 1
            port = self.server.server_address[1]
            return self.send(handler, 307, {}, {"Location": f"http://localhost:{port}{handler.path}"})
        with self.lock:
            self.create_calls += 1
            self.last_input = body
            mode, options, first = self._mode, dict(self._options), not self._once
            self._once = True
        if mode == "auth" or handler.headers.get("Authorization") != f"Bearer {SECRET_TOKEN}":
            return self.send(handler, 401, {"error": {"code": "invalid_key", "message": "invalid API key"}})
        if mode == "rate_limit_once" and first:
            return self.send(handler, 429, {"error": {"code": "rate_limited"}}, {"Retry-After": "1"})
        if mode == "server_error_once" and first:
            return self.send(handler, 500, {"error": {"code": "internal"}})
        if mode == "slow":
            self.stopping.wait(float(options.get("delay", 3)))
        if mode == "refuse":
            return self.send(handler, 400, {"error": {"code": "content_policy", "message": "refused by the content policy"}})
        if mode == "corrupt":
            data = b"\\x89PNG\\r\\n\\x1a\\n" + b"garbage" * 40
        elif mode == "oversized":
            data = png(700, 700, 1)  # noise: about 1.5 MB, over the suite's 1 MB cap
        else:
            scale = 128 / max(body["width"], body["height"])
            data = png(round(body["width"] * scale), round(body["height"] * scale), body["seed"])
        self.send(handler, 200, {"data": [{"b64_json": base64.b64encode(data).decode()}]})
'''

TEST_FILE = '''
import pytest
from fake_echo import EchoFake

from limner.plugins import load_plugins
from limner.registry import provider_class
from limner.testing.provider_suite import SECRET_TOKEN, ProviderSuite

load_plugins(["limner_echo"])


@pytest.fixture
def fake():
    server = EchoFake().start()
    yield server
    server.stop()


@pytest.fixture
def make_provider(fake, monkeypatch):
    monkeypatch.setenv("LIMNER_ALLOW_HTTP_HOSTS", "127.0.0.1")
    cls = provider_class("echo")  # through the plugin's hook, as limner finds it

    def make(**settings):
        secrets = {"ECHO_API_KEY": SECRET_TOKEN, "ECHO_BASE_URL": fake.url}
        return cls(settings={"_secret": secrets.get, **settings})

    return make


class TestEcho(ProviderSuite):
    pass
'''


def write_plugin(root: Path, error_hook: str) -> Path:
    (root / "limner_echo").mkdir(parents=True)
    (root / "tests").mkdir()
    (root / "limner_echo" / "__init__.py").write_text(textwrap.dedent(PLUGIN_INIT), encoding="utf-8")
    (root / "limner_echo" / "provider.py").write_text(PROVIDER.replace("__ERROR_HOOK__", error_hook), encoding="utf-8")
    (root / "tests" / "fake_echo.py").write_text(FAKE, encoding="utf-8")
    (root / "tests" / "test_echo.py").write_text(TEST_FILE, encoding="utf-8")
    (root / "pytest.ini").write_text("[pytest]\nasyncio_mode = strict\nasyncio_default_fixture_loop_scope = function\n",
                                     encoding="utf-8")
    return root


def run_pytest(root: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LIMNER_", "PYTEST_"))}
    # the plugin, and the limner under test (a PYTHONPATH pointing at a checkout's src/), not an installed one
    env["PYTHONPATH"] = os.pathsep.join([str(root), *filter(None, [os.environ.get("PYTHONPATH")])])
    return subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "no:xdist", "tests"],
                          cwd=root, env=env, capture_output=True, text=True, timeout=300)


@pytest.mark.slow
def test_a_plugin_outside_the_repository_passes_the_shipped_suite(tmp_path: Path) -> None:
    proc = run_pytest(write_plugin(tmp_path / "limner-echo", GOOD_HOOK))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    from limner.testing.provider_suite import ProviderSuite

    contract = sum(1 for name in dir(ProviderSuite) if name.startswith("test_"))  # every test of the contract ran
    assert contract >= 13 and f"{contract} passed" in proc.stdout, proc.stdout


@pytest.mark.slow
def test_a_broken_plugin_fails_the_shipped_suite(tmp_path: Path) -> None:
    proc = run_pytest(write_plugin(tmp_path / "limner-echo-broken", BROKEN_HOOK))
    assert proc.returncode == 1, proc.stdout + proc.stderr
    failed = {line.split("::")[-1].split()[0] for line in proc.stdout.splitlines() if line.startswith("FAILED")}
    assert {"test_429_raises_rate_limited_with_retry_after", "test_5xx_then_success_through_the_retry_policy",
            "test_content_refusal_is_permanent_with_its_reason", "test_auth_failure_names_no_secret"} <= failed, proc.stdout
    assert "test_success_returns_an_image" not in failed


def test_limner_testing_imports_without_pytest() -> None:
    """Only provider_suite needs pytest: the fake provider plugin loads where pytest is not installed."""
    code = textwrap.dedent("""\
        import sys
        sys.modules["pytest"] = None  # import pytest now raises ImportError
        import limner.testing
        from limner.testing import FakeProvider
        assert FakeProvider.name == "fake"
        try:
            import limner.testing.provider_suite
        except ImportError:
            print("suite needs pytest")
        """)
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "suite needs pytest"
