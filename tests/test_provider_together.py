"""Together AI image generations adapter against a loopback fake (base64 answers)."""

from __future__ import annotations

import pytest
from fake_hosted_apis import CreditChecks, HostedChecks, TogetherFake, png, provider_factory, start_fake

from limner.providers import ContentRefused, InvalidRequest, Transient
from limner.providers.together import TogetherProvider
from limner.testing.provider_suite import ProviderSuite, request


@pytest.fixture
def fake():
    yield from start_fake(TogetherFake)


@pytest.fixture
def make_provider(fake, monkeypatch):
    return provider_factory(monkeypatch, TogetherProvider, fake, key_env="TOGETHER_API_KEY", base_env="TOGETHER_BASE_URL")


class TestTogether(ProviderSuite, HostedChecks, CreditChecks):
    credit_mode = "no_credit"
    key_env = "TOGETHER_API_KEY"
    base_env = "TOGETHER_BASE_URL"
    online_check = True

    async def test_decodes_the_base64_image(self, fake, make_provider) -> None:
        result = await self._generate(make_provider())
        assert result.data == png(1024, 688, 12345)
        assert result.metadata["id"].startswith("tg-")

    async def test_sends_the_documented_body(self, fake, make_provider) -> None:
        await self._generate(make_provider())
        assert fake.log[0][:2] == ("POST", "/v1/images/generations")
        assert fake.last_input == {
            "model": "black-forest-labs/FLUX.1-schnell", "prompt": request().prompt, "width": 1024, "height": 688,
            "steps": 4, "n": 1, "seed": 12345, "negative_prompt": "blurry, text", "response_format": "base64",
        }

    async def test_style_params_and_aliases(self, fake, make_provider) -> None:
        await self._generate(make_provider(), negative_prompt="", params={"num_inference_steps": 2, "guidance": 3.0})
        assert fake.last_input["steps"] == 2 and fake.last_input["guidance_scale"] == 3.0
        assert "negative_prompt" not in fake.last_input

    async def test_invalid_base64_is_transient(self, fake, make_provider) -> None:
        fake.mode("bad_base64")
        with pytest.raises(Transient, match="base64") as info:
            await self._generate(make_provider())
        assert info.value.billed_usd == pytest.approx(0.0027 * 1024 * 688 / 1e6, abs=1e-6)  # a 200: paid for

    async def test_refusal_keeps_its_reason(self, fake, make_provider) -> None:
        fake.mode("refuse")
        with pytest.raises(ContentRefused, match="NSFW"):
            await self._generate(make_provider())

    async def test_cost_per_megapixel(self, fake, make_provider) -> None:
        result = await self._generate(make_provider())
        assert result.cost_usd == pytest.approx(0.0027 * 1024 * 688 / 1e6, abs=1e-6)

    async def test_sizes_are_checked_and_snapped(self, fake, make_provider) -> None:
        with pytest.raises(InvalidRequest):
            await self._generate(make_provider(), width=4096, height=1024)
        await self._generate(make_provider(), width=1000, height=750)
        assert (fake.last_input["width"], fake.last_input["height"]) == (992, 752)  # 62.5 x 16 rounds to even

    async def test_doctor_looks_for_the_model(self, fake, make_provider) -> None:
        provider = make_provider()
        assert "FLUX.1-schnell available" in await provider.check()
        provider.model = "someone/unknown-model"
        assert "not in the model list" in await provider.check()
        await provider.aclose()
