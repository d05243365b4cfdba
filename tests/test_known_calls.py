"""A call the provider named, whose output expired: asked about once more, then counted lost and made again.

``fetch_known`` used to let the download's 404 escape as a plain ``Transient``: the line stayed open with its
id, every attempt and every later run asked about the same call again, and the entry was never generated
(BFL's sample URLs live 10 minutes). Replicate says itself when an output is gone (``data_removed``): while
it says the output is there, a 404 on it is passing, and the call is asked about again
(tests/test_provider_replicate.py)."""

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
    provider = provider_factory(monkeypatch, provider_cls, fake, key_env=key_env, base_env=base_env, polls=True)()
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
@pytest.mark.parametrize("fault", ["answer_lost", "unreadable"])
async def test_a_call_sent_but_unanswered_or_unreadable_counts_at_its_price(fault: str) -> None:
    """A read timeout after the request went out (the HTTP client's, below the call deadline) was settled
    ``failed`` at $0, and the next attempt went out without reserving anything: spend ran past a cap. Such a
    call, and one answered 200 with an image that cannot be read, count at the price."""
    from limner.providers import AnswerLost, GenerationResult, Provider, Transient
    from limner.runner.journal import Allowance, OverBudget

    class Flaky(Provider):
        name = "flaky"

        async def generate(self, req: Any) -> GenerationResult:
            if fault == "answer_lost":
                raise AnswerLost("flaky: no answer within 60s (POST /v1/x)")
            raise Transient("flaky: the image is not valid base64", billed_usd=0.04)

    reserved: list[float] = []

    async def reserve(extra: float) -> bool:
        reserved.append(extra)
        return sum(reserved) <= 0.04 + 1e-9  # the cap has room for the first price only

    gate = ProviderGate(Flaky(), concurrency=1, rate_per_minute=None, timeout_s=30, max_attempts=3,
                        backoff_initial_s=0.01, backoff_max_s=0.02)
    journal = CallJournal(None, None, provider="flaky", estimate_usd=0.04, allowance=Allowance(reserve, 0.0))
    with pytest.raises(OverBudget):
        await gate.call(request(), CallStats(), journal)
    assert len(journal.calls) == 1 and journal.calls[0].cost_usd == pytest.approx(0.04)
    assert journal.calls[0].status == ("lost" if fault == "answer_lost" else "failed")


@pytest.mark.asyncio
async def test_credentials_refused_while_looking_for_an_unnamed_call_leave_it_open() -> None:
    """A run killed while the provider held its call left a line without an id; the next run, with a bad token,
    settled that line lost without finding the call, and the run after it (token fixed) paid again."""
    import datetime as dt
    from types import SimpleNamespace

    from limner.providers import AuthFailed, GenerationResult, Provider

    class Refusing(Provider):
        name = "refusing"

        async def generate(self, req: Any) -> GenerationResult:  # pragma: no cover - never reached
            raise AssertionError("no new call")

        async def find_unnamed(self, req: Any, after: dt.datetime, before: dt.datetime) -> list[str]:
            raise AuthFailed("refusing: HTTP 401")

    earlier = SimpleNamespace(id=7, cost_usd=0.003, external_id=None, status="pending",
                              created_at=dt.datetime.now(dt.UTC).replace(tzinfo=None))
    journal = CallJournal(None, None, provider="refusing", estimate_usd=0.003, earlier=[earlier])
    gate = ProviderGate(Refusing(), concurrency=1, rate_per_minute=None, timeout_s=30, max_attempts=2,
                        backoff_initial_s=0.01, backoff_max_s=0.02)
    with pytest.raises(AuthFailed):
        await gate.call(request(), CallStats(), journal)
    assert [c.status for c in journal.calls] == ["pending"]  # still open: looked for again next time


@pytest.mark.asyncio
async def test_a_call_past_its_deadline_before_the_provider_named_it_is_found_by_its_input_not_paid_again() -> None:
    """A call cut by its deadline while the service still held its answer (Replicate's ``Prefer: wait`` longer
    than ``call_timeout_s``) has no id: it was settled lost at once and the next attempt paid for a new one, while
    the first ran on at the provider and billed too; a run killed at that moment would have found it by its input
    (``find_unnamed``) instead. Now the run looks for it by its input at once, and the next attempt asks about it."""
    import asyncio
    import datetime as dt

    from limner.providers import GenerationResult, KnownCall, Provider

    class Holding(Provider):
        name = "holding"
        generated = 0
        windows: list = []

        async def generate(self, req: Any) -> GenerationResult:
            Holding.generated += 1
            await asyncio.sleep(5)  # the service holds its answer past the deadline
            raise AssertionError("cut by the deadline")  # pragma: no cover

        async def find_unnamed(self, req: Any, after: dt.datetime, before: dt.datetime) -> list[str]:
            Holding.windows.append((after, before))
            return ["pred-1"]

        async def fetch_known(self, external_id: str, req: Any) -> KnownCall:
            assert external_id == "pred-1"
            return KnownCall("done", result=GenerationResult(data=b"png", seed=1, cost_usd=0.003))

    gate = ProviderGate(Holding(), concurrency=1, rate_per_minute=None, timeout_s=0.05, max_attempts=3,
                        backoff_initial_s=0.01, backoff_max_s=0.02)
    journal = CallJournal(None, None, provider="holding", estimate_usd=0.003)
    stats = CallStats()
    answer = await gate.call(request(), stats, journal)
    assert answer.result.data == b"png" and Holding.generated == 1 and stats.fetches == 1  # paid once
    assert [(c.external_id, c.status) for c in journal.calls] == [("pred-1", "pending")]  # closed with its render
    (after, before), = Holding.windows
    assert after < dt.datetime.now(dt.UTC).replace(tzinfo=None) < before
