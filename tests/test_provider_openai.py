"""OpenAI images (GPT Image models) adapter against a loopback fake of /v1/images/generations."""

from __future__ import annotations

import pytest
from fake_hosted_apis import CreditChecks, HostedChecks, OpenAIFake, provider_factory, start_fake

from limner.imaging import validate_image
from limner.providers import ContentRefused, InvalidRequest
from limner.providers.openai import OpenAIProvider
from limner.testing.provider_suite import ProviderSuite, request


@pytest.fixture
def fake():
    yield from start_fake(OpenAIFake)


@pytest.fixture
def make_provider(fake, monkeypatch):
    return provider_factory(monkeypatch, OpenAIProvider, fake, key_env="OPENAI_API_KEY", base_env="OPENAI_BASE_URL",
                            base_path="/v1")


class TestOpenAI(ProviderSuite, HostedChecks, CreditChecks):
    credit_mode = "no_quota"
    key_env = "OPENAI_API_KEY"
    base_env = "OPENAI_BASE_URL"
    base_path = "/v1"
    online_check = True

    @pytest.mark.parametrize(("width", "height", "size"), [
        (1024, 688, "1536x1024"), (688, 1024, "1024x1536"), (1024, 1024, "1024x1024"),
        (1000, 900, "1024x1024"), (1792, 1024, "1536x1024"), (512, 2048, "1024x1536"),
    ])
    async def test_sizes_snap_to_the_three_allowed(self, fake, make_provider, width, height, size) -> None:
        result = await self._generate(make_provider(), width=width, height=height)
        assert fake.last_input["size"] == size and result.metadata["size"] == size

    async def test_sends_the_documented_body_without_seed(self, fake, make_provider) -> None:
        await self._generate(make_provider())
        assert fake.log[0][:2] == ("POST", "/v1/images/generations")
        assert fake.last_input == {"model": "gpt-image-1", "prompt": request().prompt, "size": "1536x1024",
                                   "quality": "medium", "n": 1, "output_format": "png"}

    async def test_seed_is_echoed_but_not_honoured(self, fake, make_provider) -> None:
        provider = make_provider()
        assert provider.capabilities.supports_seed is False
        result = await self._generate(provider, seed=99)
        assert result.seed == 99 and result.metadata["seed_honoured"] is False
        assert 99 not in fake.last_input.values()

    async def test_moderation_blocked_is_a_refusal_with_its_reason(self, fake, make_provider) -> None:
        fake.mode("refuse")
        with pytest.raises(ContentRefused, match=r"moderation_blocked.*rejected by the safety system") as info:
            await self._generate(make_provider())
        assert not info.value.retryable

    async def test_other_400s_stay_invalid_requests(self, fake, make_provider) -> None:
        provider = make_provider()
        http = provider._connect()  # a body the adapter never sends: the API refuses "seed"
        try:
            with pytest.raises(InvalidRequest, match="Unknown parameter: 'seed'"):
                await http.json("POST", "/images/generations", headers=provider._auth,
                                json={"model": "gpt-image-1", "prompt": "x", "size": "1024x1024", "seed": 1})
        finally:
            await provider.aclose()

    async def test_quality_from_settings_and_params_sets_the_cost(self, fake, make_provider) -> None:
        low = await self._generate(make_provider(quality="low"), width=1024, height=1024)
        assert fake.last_input["quality"] == "low" and low.cost_usd == pytest.approx(0.011)
        high = await self._generate(make_provider(quality="low"), params={"quality": "high"})
        assert fake.last_input["quality"] == "high" and high.cost_usd == pytest.approx(0.25)
        with pytest.raises(InvalidRequest, match="quality"):
            await self._generate(make_provider(quality="ultra"))
        assert OpenAIProvider.price_for("gpt-image-1") == pytest.approx(0.042)

    async def test_auto_quality_is_priced_at_the_quality_the_answer_names(self, fake, make_provider) -> None:
        """With quality "auto" OpenAI picks the quality and names it in the answer (low/medium/high, never auto:
        openai-python types/images_response.py); the call costs that, not the medium price."""
        fake.mode("ok", auto_quality="high")
        result = await self._generate(make_provider(quality="auto"), width=1024, height=1024)
        assert fake.last_input["quality"] == "auto"
        assert result.metadata["quality"] == "high" and result.cost_usd == pytest.approx(0.167)

    async def test_supported_params_pass_through(self, fake, make_provider) -> None:
        result = await self._generate(make_provider(), params={"background": "opaque", "moderation": "low", "steps": 4})
        validate_image(result.data)
        assert fake.last_input["background"] == "opaque" and fake.last_input["moderation"] == "low"
        assert "steps" not in fake.last_input
        assert result.metadata["usage"]["total_tokens"] == 1106

    async def test_doctor_checks_model_access(self, fake, make_provider) -> None:
        provider = make_provider()
        assert "gpt-image-1 available" in await provider.check()
        provider.model = "dall-e-9"
        with pytest.raises(InvalidRequest, match="does not exist"):
            await provider.check()
        await provider.aclose()


@pytest.mark.parametrize(("quality", "where"), [(None, "default"), ("high", "settings"), ("auto", "settings")])
def test_a_plan_reserves_at_least_what_each_call_will_cost(make_project_dir, quality, where) -> None:
    """Every entry was priced as a square image at medium quality ($0.042), while a 3:2 entry costs $0.063 and
    at high quality $0.25: `--budget` let spend run past the cap. The plan now prices each entry at the size it
    snaps to and the quality the settings or the style ask for (`auto`: the dearest)."""
    from limner.providers.openai import SIZES, image_cost
    from limner.providers.options import snap_aspect
    from limner.runner import Selection, build_plan

    extra = ""
    if where == "settings":
        extra = f'\n[providers.openai]\nquality = "{quality}"\n'
    p = make_project_dir(3, provider="openai", extra=extra)
    p.write_catalog([{"id": "sq", "title": "Square", "aspect": "1:1"}, {"id": "wide", "title": "Wide", "aspect": "3:2"},
                     {"id": "tall", "title": "Tall", "aspect": "2:3"}])
    project = p.project()
    try:
        plan = build_plan(project, Selection())
        for item in plan.items:
            size = SIZES[snap_aspect(item.spec.width, item.spec.height, list(SIZES))]
            asked = quality or "medium"
            worst = max(image_cost("gpt-image-1", q, size) for q in
                        ([asked] if asked in ("low", "medium", "high") else ["low", "medium", "high"]))
            assert item.price_usd == pytest.approx(worst), (item.spec.width, item.spec.height, item.price_usd, worst)
    finally:
        project.close()
