"""Hugging Face Inference Providers (router, hf-inference) adapter against a loopback fake."""

from __future__ import annotations

import pytest
from fake_hosted_apis import CreditChecks, HostedChecks, HuggingFaceFake, png, provider_factory, start_fake

from limner.providers import ContentRefused, RateLimited, Transient
from limner.providers.huggingface import HuggingFaceProvider
from limner.testing.provider_suite import ProviderSuite, call_through_gate, request


@pytest.fixture
def fake():
    yield from start_fake(HuggingFaceFake)


@pytest.fixture
def make_provider(fake, monkeypatch):
    return provider_factory(monkeypatch, HuggingFaceProvider, fake, key_env="HF_TOKEN", base_env="HF_BASE_URL")


class TestHuggingFace(ProviderSuite, HostedChecks, CreditChecks):
    credit_mode = "no_credit"
    key_env = "HF_TOKEN"
    base_env = "HF_BASE_URL"

    async def test_posts_inputs_and_parameters_and_gets_the_bytes(self, fake, make_provider) -> None:
        result = await self._generate(make_provider(), params={"steps": 4, "guidance": 0.0})
        method, path, headers = fake.log[0]
        assert (method, path) == ("POST", "/hf-inference/models/black-forest-labs/FLUX.1-schnell")
        assert headers.get("Accept") == "image/png"
        assert fake.last_input == {"inputs": request().prompt, "width": 1024, "height": 688, "seed": 12345,
                                   "negative_prompt": "blurry, text", "num_inference_steps": 4, "guidance_scale": 0.0}
        assert result.data == png(1024, 688, 12345)
        assert result.metadata["content_type"] == "image/png"

    async def test_loading_model_is_rate_limited_with_the_estimated_time(self, fake, make_provider) -> None:
        fake.mode("loading")
        with pytest.raises(RateLimited, match="currently loading") as info:
            await self._generate(make_provider())
        assert info.value.retry_after == 20.0 and info.value.retryable

    async def test_loading_then_loaded_through_the_retry_policy(self, fake, make_provider) -> None:
        fake.mode("loading_once", estimated_time=0.5)
        result, stats = await call_through_gate(make_provider())
        assert stats.attempts == 2 and result.data

    async def test_json_with_status_200_is_transient(self, fake, make_provider) -> None:
        fake.mode("json_200")
        with pytest.raises(Transient, match="expected an image") as info:
            await self._generate(make_provider())
        assert info.value.billed_usd > 0  # a 200 answer: a paid call, counted as such

    async def test_refusal_keeps_its_reason(self, fake, make_provider) -> None:
        fake.mode("refuse")
        with pytest.raises(ContentRefused, match="NSFW"):
            await self._generate(make_provider())

    async def test_custom_model_path(self, fake, make_provider) -> None:
        provider = make_provider()
        provider.model = "stabilityai/stable-diffusion-xl-base-1.0"
        await self._generate(provider)
        assert fake.log[0][1] == "/hf-inference/models/stabilityai/stable-diffusion-xl-base-1.0"
