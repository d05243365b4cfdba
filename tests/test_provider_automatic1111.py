"""The ``automatic1111`` provider against a loopback fake web UI (tests/fake_automatic1111.py)."""

from __future__ import annotations

import json
import logging

import pytest
from fake_automatic1111 import FakeAutomatic1111
from fake_network import closed_port_url

from limner.imaging import validate_image
from limner.providers import HostUnreachable, InvalidRequest, Transient
from limner.providers.automatic1111 import Automatic1111Provider
from limner.testing.provider_suite import SECRET_TOKEN, ProviderSuite, request

AUTH = f"limner:{SECRET_TOKEN}"


@pytest.fixture
def fake():
    server = FakeAutomatic1111().start()
    server.auth = AUTH
    yield server
    server.stop()


@pytest.fixture
def make_provider(fake, monkeypatch):
    monkeypatch.setenv("LIMNER_ALLOW_HTTP_HOSTS", "127.0.0.1,localhost")

    def factory(**settings) -> Automatic1111Provider:
        settings.setdefault("base_url", fake.url)
        settings.setdefault("_secret", {"A1111_AUTH": AUTH}.get)
        model = settings.pop("model", None)
        return Automatic1111Provider(model=model, settings=settings)

    return factory


async def _run(provider: Automatic1111Provider, **overrides):
    try:
        return await provider.generate(request(model=provider.model, **overrides))
    finally:
        await provider.aclose()


class TestAutomatic1111(ProviderSuite):
    async def test_content_refusal_is_permanent_with_its_reason(self, fake, make_provider) -> None:
        """A self-hosted web UI has no moderation, so ContentRefused cannot happen. Its permanent
        failure is a request the API refuses as invalid (FastAPI's 422 with ``detail``):
        InvalidRequest, not retryable, naming the field."""
        fake.mode("refuse")
        with pytest.raises(InvalidRequest) as info:
            await self._generate(make_provider())
        assert not info.value.retryable
        assert "steps: value is not a valid integer" in str(info.value)

    async def test_request_body(self, fake, make_provider) -> None:
        fake.mode("ok")
        result = await _run(make_provider(steps=12), params={"cfg": 5, "sampler": "DPM++ 2M", "clip_skip": 2})
        body = fake.last_input
        assert {k: body[k] for k in ("prompt", "negative_prompt", "seed", "width", "height", "steps", "cfg_scale",
                                     "sampler_name", "batch_size", "n_iter", "send_images", "save_images")} == {
            "prompt": request().prompt, "negative_prompt": "blurry, text", "seed": 12345, "width": 1024,
            "height": 688, "steps": 12, "cfg_scale": 5, "sampler_name": "DPM++ 2M", "batch_size": 1, "n_iter": 1,
            "send_images": True, "save_images": False}
        assert body["override_settings"] == {"CLIP_stop_at_last_layers": 2}
        assert fake.last_headers["Authorization"].startswith("Basic ")
        validate_image(result.data)
        assert result.model == "v1-5-pruned-emaonly" and result.metadata["sd_model_hash"] == "6ce0161689"
        assert SECRET_TOKEN not in json.dumps(result.metadata)

    async def test_seed_comes_from_info(self, fake, make_provider) -> None:
        fake.mode("ok", actual_seed=987654321)
        result = await _run(make_provider(), seed=5)
        assert fake.last_input["seed"] == 5 and result.seed == 987654321

    async def test_unparseable_info_keeps_the_requested_seed(self, fake, make_provider) -> None:
        fake.mode("ok", info="not json")
        assert (await _run(make_provider(), seed=31)).seed == 31

    async def test_model_is_an_override_kept_loaded(self, fake, make_provider) -> None:
        fake.mode("ok")
        result = await _run(make_provider(model="sd_xl_base_1.0.safetensors"))
        assert fake.last_input["override_settings"] == {"sd_model_checkpoint": "sd_xl_base_1.0.safetensors"}
        assert fake.last_input["override_settings_restore_afterwards"] is False
        assert result.model == "sd_xl_base_1.0"

    async def test_server_error_message_is_kept(self, fake, make_provider) -> None:
        fake.mode("server_error_once")
        with pytest.raises(Transient, match="HTTP 500: CUDA out of memory"):
            await _run(make_provider())

    async def test_size_is_snapped_to_multiples_of_8(self, fake, make_provider, caplog) -> None:
        fake.mode("ok")
        with caplog.at_level(logging.INFO, logger="limner.providers"):
            await _run(make_provider(), width=1001, height=603)
        assert (fake.last_input["width"], fake.last_input["height"]) == (1000, 600)
        assert "snapped" in caplog.text
        with pytest.raises(InvalidRequest, match="outside"):
            await _run(make_provider(), width=4096)

    async def test_cost_per_hour(self, fake, make_provider) -> None:
        fake.mode("ok")
        result = await _run(make_provider(cost_per_hour_usd=3600.0))
        assert result.cost_usd == pytest.approx(result.metadata["seconds"], abs=0.01) and result.cost_usd > 0

    async def test_wrong_credentials_are_auth_failed(self, fake, make_provider) -> None:
        from limner.providers import AuthFailed

        fake.mode("ok")
        with pytest.raises(AuthFailed, match="Incorrect username or password") as info:
            await _run(make_provider(_secret={"A1111_AUTH": "limner:wrong-password"}.get))
        assert "wrong-password" not in str(info.value)

    async def test_check(self, fake, make_provider) -> None:
        assert "checkpoint v1-5-pruned-emaonly" in await make_provider().check()

    async def test_plain_http_is_refused_without_the_allow_list(self, fake, monkeypatch) -> None:
        monkeypatch.delenv("LIMNER_ALLOW_HTTP_HOSTS", raising=False)
        provider = Automatic1111Provider(settings={"base_url": fake.url, "_secret": {}.get})
        assert any("LIMNER_ALLOW_HTTP_HOSTS" in m for m in provider.missing_env())
        with pytest.raises(InvalidRequest, match="plain http; list 127.0.0.1 in LIMNER_ALLOW_HTTP_HOSTS"):
            await _run(provider)
        assert fake.create_calls == 0


    async def test_server_down_is_host_unreachable(self, fake, make_provider) -> None:
        with pytest.raises(HostUnreachable) as info:
            await _run(make_provider(base_url=closed_port_url()))
        assert info.value.retryable and fake.create_calls == 0

    async def test_two_servers_one_call_each(self, fake, make_provider) -> None:
        other = FakeAutomatic1111().start()
        other.auth = AUTH
        try:
            provider = make_provider(hosts=[fake.url, other.url])
            assert provider.concurrency_hint() == 2
            try:
                results = [await provider.generate(request(seed=s)) for s in (1, 2)]
            finally:
                await provider.aclose()
        finally:
            other.stop()
        assert [r.metadata["host"] for r in results] == [fake.url, other.url]
        assert fake.create_calls == other.create_calls == 1


def test_hosts_from_settings_then_the_environment() -> None:
    env = {"A1111_BASE_URL": "gpu-box:7861/"}.get
    assert Automatic1111Provider(settings={"_secret": env}).hosts() == ["http://gpu-box:7861"]
    assert Automatic1111Provider(settings={"_secret": env, "base_url": "https://a.example"}).hosts() == ["https://a.example"]
    assert Automatic1111Provider(settings={"_secret": {}.get}).hosts() == ["http://127.0.0.1:7860"]
    several = Automatic1111Provider(settings={"_secret": {"A1111_BASE_URL": "gpu1:7860,gpu2:7860"}.get})
    assert several.hosts() == ["http://gpu1:7860", "http://gpu2:7860"]


def test_one_slot_per_server() -> None:
    assert Automatic1111Provider(settings={"_secret": {}.get}).concurrency_hint() == 1
    provider = Automatic1111Provider(settings={"_secret": {}.get, "hosts": ["a", "b"], "per_host_concurrency": 2})
    assert provider.concurrency_hint() == 4
