"""Black Forest Labs API adapter against a loopback fake (submit, poll polling_url, download the sample)."""

from __future__ import annotations

import pytest
from fake_hosted_apis import BFLFake, CreditChecks, HostedChecks, provider_factory, start_fake

from limner.imaging import validate_image
from limner.providers import ContentRefused, InvalidRequest, RateLimited, Transient
from limner.providers.bfl import BFLProvider
from limner.testing.provider_suite import SECRET_TOKEN, ProviderSuite, request


@pytest.fixture
def fake():
    yield from start_fake(BFLFake)


@pytest.fixture
def make_provider(fake, monkeypatch):
    return provider_factory(monkeypatch, BFLProvider, fake, key_env="BFL_API_KEY", base_env="BFL_BASE_URL",
                            polls=True)


class TestBFL(ProviderSuite, HostedChecks, CreditChecks):
    names_its_calls = True
    credit_mode = "no_credits"
    key_env = "BFL_API_KEY"
    base_env = "BFL_BASE_URL"
    online_check = True

    async def test_polls_pending_until_ready(self, fake, make_provider) -> None:
        fake.mode("ok", polls=3)
        result = await self._generate(make_provider())
        assert fake.statuses == ["Pending", "Pending", "Pending", "Ready"]
        validate_image(result.data)
        assert result.metadata["id"] == "bfl-req-0001" and result.seed == 12345

    async def test_submits_the_documented_body_with_sizes_in_multiples_of_32(self, fake, make_provider) -> None:
        await self._generate(make_provider(safety_tolerance=2), params={"steps": 30})
        assert fake.log[0][:2] == ("POST", "/v1/flux-pro-1.1")
        assert fake.last_input == {"prompt": request().prompt, "seed": 12345, "output_format": "png",
                                   "safety_tolerance": 2, "width": 1024, "height": 704, "steps": 30}

    @pytest.mark.parametrize(("mode", "status"), [("refuse", "Request Moderated"), ("content_moderated", "Content Moderated")])
    async def test_both_moderation_statuses_are_refusals(self, fake, make_provider, mode, status) -> None:
        fake.mode(mode)
        with pytest.raises(ContentRefused, match=status) as info:
            await self._generate(make_provider())
        assert "Moderation Reasons" in str(info.value) and not info.value.retryable

    @pytest.mark.parametrize("mode", ["refuse", "content_moderated"])
    async def test_a_moderated_task_is_settled_as_not_charged(self, fake, make_provider, mode) -> None:
        """BFL does not charge a Request Moderated / Content Moderated task
        (https://help.bfl.ai/articles/2916279050-why-did-my-request-fail): the ledger must not keep the estimate."""
        provider = make_provider()
        await self._generate(provider)  # a task the fake knows
        fake.mode(mode)
        known = await provider.fetch_known(f"{fake.url}/v1/get_result?id=bfl-req-0001", request(model=provider.model))
        await provider.aclose()
        assert known.state == "failed" and isinstance(known.error, ContentRefused)
        assert known.billed_usd == 0.0

    @pytest.mark.parametrize(("mode", "match"), [("error", "failed"), ("not_found", "not found"), ("expired", "404")])
    async def test_errors_and_expired_samples_are_transient(self, fake, make_provider, mode, match) -> None:
        fake.mode(mode)
        with pytest.raises(Transient, match=match):
            await self._generate(make_provider())

    async def test_key_goes_with_polls_but_not_to_the_sample(self, fake, make_provider) -> None:
        await self._generate(make_provider())
        polls = fake.headers_sent_to("/v1/get_result")
        assert polls and all(h.get("X-Key") == SECRET_TOKEN for h in polls)
        assert all("X-Key" not in h for h in fake.headers_sent_to("/files/"))

    async def test_gives_up_after_max_wait(self, fake, make_provider) -> None:
        fake.mode("ok", polls=10_000)
        with pytest.raises(Transient, match="still Pending"):
            await self._generate(make_provider(max_wait_s=0.2))

    async def test_ultra_takes_an_aspect_ratio(self, fake, make_provider) -> None:
        provider = make_provider()
        provider.model = "flux-pro-1.1-ultra"
        result = await self._generate(provider, width=1600, height=900)
        assert fake.log[0][1] == "/v1/flux-pro-1.1-ultra"
        assert fake.last_input["aspect_ratio"] == "16:9" and "width" not in fake.last_input
        assert result.cost_usd == pytest.approx(0.06)

    async def test_sizes_over_the_limit_are_refused(self, fake, make_provider) -> None:
        with pytest.raises(InvalidRequest, match="1440"):
            await self._generate(make_provider(), width=2048, height=1024)
        assert fake.create_calls == 0

    async def test_polling_url_on_a_foreign_host_gets_no_key(self, fake, make_provider) -> None:
        provider = make_provider()
        provider._connect()
        assert provider._auth_for(fake.url + "/v1/get_result?id=x")
        with pytest.raises(InvalidRequest, match="unexpected host"):
            provider._auth_for("https://evil.example/v1/get_result?id=x")
        provider._http.base_url = "https://api.eu.bfl.ai"
        assert provider._auth_for("https://api.eu1.bfl.ai/v1/get_result?id=x")
        assert provider._auth_for("https://api.bfl.ai/v1/get_result?id=x")
        with pytest.raises(InvalidRequest):
            provider._auth_for("https://bfl.ai.evil.example/v1/get_result")
        await provider.aclose()

    async def test_too_many_active_tasks_waits_for_the_body_retry_after(self, fake, make_provider) -> None:
        fake.mode("busy")
        with pytest.raises(RateLimited) as info:
            await self._generate(make_provider())
        assert info.value.retry_after == 5

    async def test_doctor_reports_the_credits(self, fake, make_provider) -> None:
        provider = make_provider()
        assert "1234.5 credits" in await provider.check()
        await provider.aclose()
        assert fake.log[0][:2] == ("GET", "/v1/credits")
