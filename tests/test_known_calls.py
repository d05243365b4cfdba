"""A call the provider named, whose output expired: asked about once more, then counted lost and made again.

``fetch_known`` used to let the download's 404 escape as a plain ``Transient``: the line stayed open with its
id, every attempt and every later run asked about the same call again, and the entry was never generated
(BFL's sample URLs live 10 minutes, Replicate's outputs an hour)."""

from __future__ import annotations

from typing import Any

import pytest
from fake_hosted_apis import BFLFake, FalFake, provider_factory, start_fake
from werkzeug import Response

from limner.providers.bfl import BFLProvider
from limner.providers.fal import FalProvider
from limner.runner.journal import CallJournal
from limner.runner.retry import CallStats, ProviderGate
from limner.testing.provider_suite import request

CASES = {"fal": (FalFake, FalProvider, "FAL_KEY", "FAL_BASE_URL"),
         "bfl": (BFLFake, BFLProvider, "BFL_API_KEY", "BFL_BASE_URL")}


@pytest.fixture(params=sorted(CASES))
def case(request: pytest.FixtureRequest) -> Any:
    fake_cls, provider_cls, key_env, base_env = CASES[request.param]
    for fake in start_fake(fake_cls):
        yield fake, provider_cls, key_env, base_env


@pytest.mark.asyncio
async def test_a_known_call_whose_output_expired_is_made_again_once(case: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    fake, provider_cls, key_env, base_env = case
    served = fake.serve_file
    first_file = "req-0001."
    fake.serve_file = lambda r: (Response("<Error><Code>BlobNotFound</Code></Error>", 404) if first_file in r.path
                                 else served(r))
    provider = provider_factory(monkeypatch, provider_cls, fake, key_env=key_env, base_env=base_env)()
    gate = ProviderGate(provider, concurrency=1, rate_per_minute=None, timeout_s=30, max_attempts=4,
                        backoff_initial_s=0.01, backoff_max_s=0.05)
    journal = CallJournal(None, None, provider=provider.name, estimate_usd=0.01)
    stats = CallStats()
    try:
        answer = await gate.call(request(model=provider.model), stats, journal)
    finally:
        await provider.aclose()
    assert answer.result.data and fake.create_calls == 2  # the expired one asked about once, then made again
    assert stats.fetches == 1 and [c.status for c in journal.calls] == ["lost", "pending"]


@pytest.mark.asyncio
async def test_a_replicate_prediction_whose_output_expired_is_gone(monkeypatch: pytest.MonkeyPatch) -> None:
    from fake_replicate import start_fake as start_replicate
    from fake_replicate import stop_fake

    from limner.providers.base import call_ids_to
    from limner.providers.replicate import ReplicateProvider
    from limner.testing.provider_suite import SECRET_TOKEN

    server, fake = start_replicate(SECRET_TOKEN)
    monkeypatch.setenv("LIMNER_ALLOW_HTTP_HOSTS", "127.0.0.1,localhost")
    secrets = {"REPLICATE_API_TOKEN": SECRET_TOKEN, "REPLICATE_BASE_URL": fake.url}
    provider = ReplicateProvider(settings={"_secret": secrets.get, "poll_interval_s": 0.05, "timeout_s": 10})
    try:
        ids: list[str] = []
        with call_ids_to(ids.append):
            await provider.generate(request(model=provider.model))
        fake.predictions[ids[0]]["_download_failures"] = 5  # its output URL answers 404 from now on
        known = await provider.fetch_known(ids[0], request(model=provider.model))
        assert known.state == "gone" and fake.create_calls == 1
    finally:
        await provider.aclose()
        stop_fake(server, fake)
