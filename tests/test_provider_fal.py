"""fal.ai queue API adapter against a loopback fake of the queue (submit, status, response, CDN)."""

from __future__ import annotations

import pytest
from fake_hosted_apis import FalFake, HostedChecks, provider_factory, start_fake

from limner.imaging import validate_image
from limner.providers import ContentRefused, InvalidRequest, Transient
from limner.providers.fal import FalProvider
from limner.testing.provider_suite import SECRET_TOKEN, ProviderSuite, request


@pytest.fixture
def fake():
    yield from start_fake(FalFake)


@pytest.fixture
def make_provider(fake, monkeypatch):
    return provider_factory(monkeypatch, FalProvider, fake, key_env="FAL_KEY", base_env="FAL_BASE_URL", polls=True)


class TestFal(ProviderSuite, HostedChecks):
    names_its_calls = True
    key_env = "FAL_KEY"
    base_env = "FAL_BASE_URL"

    async def test_polls_from_in_queue_through_in_progress_to_completed(self, fake, make_provider) -> None:
        fake.mode("ok", polls=4)
        result = await self._generate(make_provider())
        assert fake.statuses == ["IN_QUEUE", "IN_QUEUE", "IN_PROGRESS", "IN_PROGRESS", "COMPLETED"]
        validate_image(result.data)
        assert result.metadata["request_id"] == "req-0001"
        assert result.metadata["timings"] == {"inference": 0.31}

    async def test_submits_the_documented_input(self, fake, make_provider) -> None:
        provider = make_provider()
        result = await self._generate(provider, params={"steps": 8, "guidance": 3.5})
        assert fake.log[0][:2] == ("POST", "/fal-ai/flux/schnell")
        assert fake.last_input == {
            "prompt": request().prompt, "image_size": {"width": 1024, "height": 688}, "seed": 12345, "num_images": 1,
            "output_format": "png", "enable_safety_checker": True, "num_inference_steps": 8, "guidance_scale": 3.5,
        }
        assert "negative_prompt" not in fake.last_input  # FLUX has none
        assert result.seed == 12345 and result.model == "fal-ai/flux/schnell"

    async def test_safety_tolerance_is_sent_as_fal_s_string_enum(self, fake, make_provider) -> None:
        """fal takes safety_tolerance as "1".."6" (a string enum); a style's integer (as BFL and Replicate take it)
        would be a 422."""
        provider = make_provider()
        provider.model = "fal-ai/flux-pro/v1.1"
        await self._generate(provider, params={"safety_tolerance": 5})
        assert fake.last_input["safety_tolerance"] == "5"

    async def test_cost_is_per_megapixel_of_the_output(self, fake, make_provider) -> None:
        result = await self._generate(make_provider())
        # fal bills whole megapixels, rounding up, a megapixel being what 1024 x 1024 holds
        assert result.cost_usd == pytest.approx(0.003, abs=1e-9)  # 1024 x 688: one
        assert FalProvider.price_for("fal-ai/flux/schnell", 1024, 1024) == pytest.approx(0.003, abs=1e-9)
        assert FalProvider.price_for("fal-ai/flux/schnell", 512, 512) == pytest.approx(0.003, abs=1e-9)
        assert FalProvider.price_for("fal-ai/flux/schnell", 1024, 1040) == pytest.approx(0.006, abs=1e-9)
        assert FalProvider.price_for("fal-ai/flux/dev", 2048, 2048) == pytest.approx(0.1, abs=1e-9)

    async def test_has_nsfw_concepts_is_refused_and_billed(self, fake, make_provider) -> None:
        fake.mode("refuse")
        with pytest.raises(ContentRefused, match="has_nsfw_concepts") as info:
            await self._generate(make_provider())
        assert info.value.billed_usd > 0
        assert not fake.headers_sent_to("/files/")  # the blacked-out image is not downloaded

    async def test_content_policy_violation_422_is_refused(self, fake, make_provider) -> None:
        fake.mode("refuse_422")
        with pytest.raises(ContentRefused, match=r"prompt \(violence\)"):
            await self._generate(make_provider())

    async def test_gives_up_and_cancels_after_max_wait(self, fake, make_provider) -> None:
        fake.mode("ok", polls=10_000)
        with pytest.raises(Transient, match="cancelled"):
            await self._generate(make_provider(max_wait_s=0.2))
        assert any(method == "PUT" and path.endswith("/cancel") for method, path, _ in fake.log)

    async def test_oversized_sides_are_refused_before_a_call(self, fake, make_provider) -> None:
        with pytest.raises(InvalidRequest, match="2048"):
            await self._generate(make_provider(), width=3000, height=2000)
        assert fake.create_calls == 0

    async def test_key_goes_to_the_queue_origin_only(self, fake, make_provider) -> None:
        await self._generate(make_provider())
        sent = {path: headers.get("Authorization") for _, path, headers in fake.log}
        assert all(value == f"Key {SECRET_TOKEN}" for path, value in sent.items()
                   if not path.startswith("/files/"))
        assert all(value is None for path, value in sent.items() if path.startswith("/files/"))
