"""The Replicate provider against a loopback fake of its API (tests/fake_replicate.py)."""

from __future__ import annotations

import datetime as dt
import logging

import pytest
from fake_network import closed_port_url
from fake_replicate import NSFW_ERROR, ReplicateFake, start_fake, stop_fake

from limner.imaging import sniff_format, validate_image
from limner.providers import AuthFailed, ContentRefused, HostUnreachable, InvalidRequest, OutOfCredit, ProviderError, Transient
from limner.providers.hosted import HostedProvider
from limner.providers.replicate import FLUX_ASPECTS, PRICES, ReplicateProvider, is_nsfw, split_model
from limner.runner.retry import CallStats, ProviderGate
from limner.testing.provider_suite import SECRET_TOKEN, ProviderSuite, call_through_gate, request

VERSION = "5599ed30703defd1d160a25a63321b4dec97101d98b4674bcc56e41f62f35637"


@pytest.fixture(scope="module")
def replicate_api():
    server, api = start_fake(SECRET_TOKEN)  # one server per module: stopping one takes ~0.5 s
    try:
        yield api
    finally:
        stop_fake(server, api)


@pytest.fixture
def fake(replicate_api: ReplicateFake, monkeypatch: pytest.MonkeyPatch) -> ReplicateFake:
    monkeypatch.setenv("LIMNER_ALLOW_HTTP_HOSTS", "127.0.0.1,localhost")
    for name in ("REPLICATE_API_TOKEN", "REPLICATE_BASE_URL"):
        monkeypatch.delenv(name, raising=False)
    replicate_api.reset()
    return replicate_api


@pytest.fixture
def make_provider(fake: ReplicateFake):
    def factory(model: str | None = None, token: str | None = SECRET_TOKEN, **settings):
        secrets = {"REPLICATE_API_TOKEN": token, "REPLICATE_BASE_URL": fake.url}
        settings = {"poll_interval_s": 0.05, "timeout_s": 10, "max_download_bytes": 1_000_000,
                    "_secret": secrets.get, **settings}
        return ReplicateProvider(model=model, settings=settings)

    return factory


async def generate(provider: ReplicateProvider, **overrides):
    try:
        return await provider.generate(request(model=provider.model, **overrides))
    finally:
        await provider.aclose()


class TestReplicate(ProviderSuite):
    names_its_calls = True


# ---------------------------------------------------------------- request mapping
async def test_official_model_call_shape(fake: ReplicateFake, make_provider) -> None:
    result = await generate(make_provider(), params={"steps": 4, "go_fast": True, "megapixels": "1"})
    assert fake.last_path == "/v1/models/black-forest-labs/flux-schnell/predictions"
    assert fake.last_prefer == "wait=5"  # half of timeout_s, so the hold ends well inside the read timeout
    assert set(fake.last_body) == {"input"}
    assert fake.last_input == {
        "prompt": request().prompt, "aspect_ratio": "3:2", "seed": 12345, "output_format": "png", "num_outputs": 1,
        "num_inference_steps": 4, "go_fast": True, "megapixels": "1",
    }
    assert sniff_format(result.data) == "png"
    assert result.cost_usd == pytest.approx(0.003)
    assert result.seed == 12345
    assert result.model == "black-forest-labs/flux-schnell"
    assert result.metadata["prediction_id"].startswith("fake")
    assert "predict_time_s" in result.metadata
    assert fake.files_with_auth == 0  # the token never goes to output hosts
    assert fake.poll_calls == 0


async def test_prefer_wait_is_capped_at_60(fake: ReplicateFake, make_provider) -> None:
    await generate(make_provider(timeout_s=300))
    assert fake.last_prefer == "wait=60"


async def test_prefer_wait_stays_inside_the_call_s_deadline(fake: ReplicateFake, make_provider) -> None:
    """The hold was sized from the provider's own timeout_s (120 s: wait=60) while the runner cut the call at
    ``generate.call_timeout_s``: with 30 s, every held call was cut before its prediction was named, counted
    lost and paid for again (until found by listing). The hold now ends within half the time left."""
    from limner.providers.base import call_deadline_in

    with call_deadline_in(30):
        await generate(make_provider(timeout_s=120))
    assert fake.last_prefer in ("wait=14", "wait=15")  # half of what is left when the hold is asked
    await generate(make_provider(timeout_s=120))  # outside a run: as before
    assert fake.last_prefer == "wait=60"


async def test_polls_while_processing(fake: ReplicateFake, make_provider) -> None:
    fake.mode("ok", pending_polls=3)
    result = await generate(make_provider())
    validate_image(result.data)
    assert fake.poll_calls == 4  # three "processing" answers, then "succeeded"
    assert fake.create_calls == 1


async def test_polls_after_the_prefer_wait_window(fake: ReplicateFake, make_provider) -> None:
    fake.mode("ok", latency=1.3)  # longer than Prefer: wait=1: the create answer is still "processing"
    result = await generate(make_provider(timeout_s=3))
    assert fake.last_prefer == "wait=1"
    validate_image(result.data)
    assert fake.poll_calls >= 1 and fake.create_calls == 1


async def test_poll_deadline_cancels_the_prediction(fake: ReplicateFake, make_provider) -> None:
    fake.mode("ok", pending_polls=1000)
    with pytest.raises(Transient, match="not finished"):
        await generate(make_provider(timeout_s=0.5))
    assert fake.cancel_calls == 1
    assert fake.paid == 0


async def test_version_pinned_model_uses_predictions_endpoint(fake: ReplicateFake, make_provider) -> None:
    provider = make_provider(model=f"black-forest-labs/flux-schnell:{VERSION}")
    result = await generate(provider, params={"steps": 2})
    assert fake.last_path == "/v1/predictions"
    assert fake.last_body["version"] == VERSION
    assert fake.last_input["num_inference_steps"] == 2 and fake.last_input["aspect_ratio"] == "3:2"
    assert fake.last_prefer and fake.last_prefer.startswith("wait")
    assert result.metadata["version"] == VERSION
    assert result.cost_usd == pytest.approx(0.003)


async def test_unknown_version_passes_the_request_through(fake: ReplicateFake, make_provider) -> None:
    provider = make_provider(model=f"someone/sdxl-lora:{VERSION}")
    await generate(provider, params={"steps": 30, "lora_scale": 0.8})
    assert fake.last_path == "/v1/predictions"
    assert fake.last_input["width"] == 1024 and fake.last_input["height"] == 688
    assert fake.last_input["negative_prompt"] == "blurry, text"
    assert fake.last_input["num_inference_steps"] == 30 and fake.last_input["lora_scale"] == 0.8


async def test_pro_model_single_url_output(fake: ReplicateFake, make_provider) -> None:
    provider = make_provider(model="black-forest-labs/flux-1.1-pro")
    result = await generate(provider, params={"steps": 20, "safety_tolerance": 2})
    assert fake.last_path == "/v1/models/black-forest-labs/flux-1.1-pro/predictions"
    assert "num_outputs" not in fake.last_input and "num_inference_steps" not in fake.last_input
    assert fake.last_input["safety_tolerance"] == 2
    assert fake.predictions[result.metadata["prediction_id"]]["output"].startswith("http")  # one URL, not a list
    validate_image(result.data)
    assert result.cost_usd == pytest.approx(0.04)


@pytest.mark.parametrize(("size", "ratio"), [((1024, 432), "16:9"), ((432, 1024), "9:16"), ((1024, 688), "3:2")])
async def test_pro_model_snaps_to_the_aspects_it_accepts(fake: ReplicateFake, make_provider, size, ratio) -> None:
    """FLUX1.1 [pro] on Replicate has no 21:9 / 9:21 (its schema's enum); the schnell/dev set would be a 422."""
    result = await generate(make_provider(model="black-forest-labs/flux-1.1-pro"), width=size[0], height=size[1])
    assert fake.last_input["aspect_ratio"] == ratio
    validate_image(result.data)


async def test_dev_model_steps_and_guidance(fake: ReplicateFake, make_provider) -> None:
    await generate(make_provider(model="black-forest-labs/flux-dev"), params={"steps": 80, "guidance": 3.5})
    assert fake.last_input["num_inference_steps"] == 50
    assert fake.last_input["guidance"] == 3.5 and fake.last_input["num_outputs"] == 1


async def test_schnell_steps_are_clamped(fake: ReplicateFake, make_provider, caplog) -> None:
    with caplog.at_level(logging.INFO, logger="limner.providers"):
        await generate(make_provider(), params={"steps": 28})
    assert fake.last_input["num_inference_steps"] == 4
    assert "1..4 steps" in caplog.text


@pytest.mark.parametrize(("size", "ratio"), [((1024, 688), "3:2"), ((1024, 1024), "1:1"), ((688, 1024), "2:3"),
                                             ((1920, 1080), "16:9"), ((1024, 432), "21:9"), ((800, 1000), "4:5")])
async def test_aspect_snapping(fake: ReplicateFake, make_provider, size, ratio) -> None:
    await generate(make_provider(), width=size[0], height=size[1])
    assert fake.last_input["aspect_ratio"] == ratio
    assert ratio in FLUX_ASPECTS


async def test_negative_prompt_is_dropped_with_a_log_line(fake: ReplicateFake, make_provider, caplog) -> None:
    with caplog.at_level(logging.INFO, logger="limner.providers"):
        await generate(make_provider())
    assert "negative_prompt" not in fake.last_input and "blurry, text" not in str(fake.last_input)
    assert "no negative prompt" in caplog.text


@pytest.mark.parametrize("fmt", ["webp", "jpg", "jpeg"])
async def test_output_formats(fake: ReplicateFake, make_provider, fmt) -> None:
    result = await generate(make_provider(output_format=fmt))
    assert fake.last_input["output_format"] == ("jpg" if fmt == "jpeg" else fmt)
    assert sniff_format(result.data) == ("jpeg" if fmt in ("jpg", "jpeg") else fmt)


async def test_bad_output_format_is_invalid(fake: ReplicateFake, make_provider) -> None:
    with pytest.raises(InvalidRequest):
        await generate(make_provider(), params={"output_format": "gif"})
    assert fake.create_calls == 0


async def test_data_uri_output(fake: ReplicateFake, make_provider) -> None:
    fake.mode("ok", data_uri=True)
    result = await generate(make_provider())
    validate_image(result.data)
    assert fake.file_calls == 0


# ---------------------------------------------------------------- failures
async def test_nsfw_refusal_keeps_replicate_reason(fake: ReplicateFake, make_provider) -> None:
    fake.mode("refuse")
    with pytest.raises(ContentRefused) as info:
        await generate(make_provider())
    assert NSFW_ERROR in str(info.value)
    assert info.value.billed_usd == 0


async def test_nsfw_refusal_found_by_polling(fake: ReplicateFake, make_provider) -> None:
    fake.mode("refuse", pending_polls=2)
    with pytest.raises(ContentRefused):
        await generate(make_provider())
    assert fake.poll_calls == 3


@pytest.mark.parametrize(("error", "kind"), [
    ("CUDA out of memory. Tried to allocate 2.00 GiB", Transient),
    ("Prediction interrupted; please retry (code: PA)", Transient),
    ("Prediction failed for an unknown reason.", InvalidRequest),
    ("The input or output was flagged as sensitive. Please try again with different inputs. (E005)", ContentRefused),
])
async def test_failed_predictions_are_classified(fake: ReplicateFake, make_provider, error, kind) -> None:
    fake.mode("failed", error=error)
    with pytest.raises(kind) as info:
        await generate(make_provider())
    assert type(info.value) is kind
    assert error in str(info.value)


async def test_failed_prediction_error_text_is_redacted(fake: ReplicateFake, make_provider, caplog) -> None:
    """A failed prediction's ``error`` may echo the token: the raised message (what ends up in
    ``entries.last_error``, ``limner status --json`` and stdout) never shows it."""
    fake.mode("failed", error=f"Invalid input: header Authorization: Bearer {SECRET_TOKEN} was rejected")
    with caplog.at_level(logging.DEBUG), pytest.raises(InvalidRequest) as info:
        await generate(make_provider())
    assert SECRET_TOKEN not in str(info.value) and SECRET_TOKEN not in repr(info.value)
    assert SECRET_TOKEN not in caplog.text
    assert "[redacted]" in str(info.value) and "was rejected" in str(info.value)


@pytest.mark.parametrize("mode", ["canceled", "aborted"])
async def test_canceled_is_transient(fake: ReplicateFake, make_provider, mode: str) -> None:
    """``aborted`` (https://replicate.com/docs/topics/predictions/lifecycle: terminated before it started, by a
    deadline) ends a prediction like ``canceled``; it used to read as an unexpected status."""
    fake.mode(mode)
    with pytest.raises(Transient, match=mode):
        await generate(make_provider())


async def test_rate_limit_then_success_through_the_gate(fake: ReplicateFake, make_provider) -> None:
    fake.mode("rate_limit_once")
    result, stats = await call_through_gate(make_provider())
    assert stats.attempts == 2 and fake.create_calls == 2 and fake.paid == 1
    validate_image(result.data)


async def test_missing_token_is_auth_failed_before_any_call(fake: ReplicateFake, make_provider) -> None:
    provider = make_provider(token=None)
    assert provider.missing_env() == ["REPLICATE_API_TOKEN"]
    with pytest.raises(AuthFailed, match="REPLICATE_API_TOKEN"):
        await generate(provider)
    assert fake.create_calls == 0


async def test_wrong_token_is_auth_failed(fake: ReplicateFake, make_provider) -> None:
    with pytest.raises(AuthFailed) as info:
        await generate(make_provider(token="r8_wrong_token_value_000"))
    assert "r8_wrong_token_value_000" not in str(info.value)
    assert "Unauthenticated" in str(info.value)


async def test_plain_http_download_refused_without_the_allow_list(fake: ReplicateFake, make_provider, monkeypatch) -> None:
    monkeypatch.setenv("LIMNER_ALLOW_HTTP_HOSTS", "127.0.0.1")  # the API host only; outputs come from "localhost"
    fake.mode("ok", output_host="localhost")
    with pytest.raises(InvalidRequest, match="refusing to fetch http://localhost"):
        await generate(make_provider())
    assert fake.file_calls == 0 and fake.paid == 1


async def test_plain_http_api_refused_without_the_allow_list(fake: ReplicateFake, make_provider, monkeypatch) -> None:
    monkeypatch.delenv("LIMNER_ALLOW_HTTP_HOSTS")
    with pytest.raises(InvalidRequest, match="refusing"):
        await generate(make_provider())
    assert fake.create_calls == 0


async def test_redirect_to_http_is_refused(fake: ReplicateFake, make_provider) -> None:
    fake.mode("ok", redirect_to="http://cdn.example.invalid/out.png")
    with pytest.raises(InvalidRequest, match="refusing to fetch http://cdn.example.invalid"):
        await generate(make_provider())
    assert fake.file_calls == 1


async def test_expired_output_is_transient(fake: ReplicateFake, make_provider) -> None:
    fake.mode("ok", redirect_to="/files/gone.png")
    with pytest.raises(Transient) as info:
        await generate(make_provider())
    assert "404" in str(info.value)


async def test_a_failed_download_is_fetched_again_never_paid_again(fake: ReplicateFake, make_provider) -> None:
    """Issue #8 (b): a failed download after a successful prediction made a new paid prediction on every
    retry. Through the runner's gate, the retry asks about the known prediction and downloads it again."""
    fake.mode("ok", download_failures=2)
    gate = ProviderGate(make_provider(), concurrency=1, rate_per_minute=None, timeout_s=30, max_attempts=4,
                        backoff_initial_s=0.01, backoff_max_s=0.02)
    stats = CallStats()
    answer = await gate.call(request(), stats)
    await gate.provider.aclose()
    validate_image(answer.result.data)
    assert fake.create_calls == 1 and fake.paid == 1  # one prediction, paid once
    assert stats.attempts == 1 and stats.fetches == 2
    assert fake.file_calls == 5  # two redirected downloads (each to a 404: 2 requests), then the image
    assert answer.call.external_id and answer.call.cost_usd == pytest.approx(0.003)


@pytest.mark.parametrize(("mode", "state", "billed"), [("failed", "failed", 0.0), ("canceled", "gone", 0.0),
                                                        ("aborted", "gone", 0.0)])
async def test_fetch_known_reports_how_a_prediction_ended(fake: ReplicateFake, make_provider, mode, state, billed) -> None:
    fake.mode(mode, error="CUDA out of memory")
    provider = make_provider()
    with pytest.raises(ProviderError):
        await generate(provider)
    pid = next(iter(fake.predictions))
    known = await provider.fetch_known(pid, request(model=provider.model))
    await provider.aclose()
    assert known.state == state and known.billed_usd == billed and known.result is None
    if state == "failed":
        assert isinstance(known.error, Transient) and "CUDA out of memory" in str(known.error)


async def test_fetch_known_downloads_a_finished_prediction_and_forgets_an_unknown_one(fake: ReplicateFake,
                                                                                    make_provider) -> None:
    provider = make_provider()
    first = await generate(provider)
    pid = first.metadata["prediction_id"]
    known = await provider.fetch_known(pid, request(model=provider.model))
    assert known.state == "done" and known.result.data == first.data and fake.create_calls == 1
    gone = await provider.fetch_known("no-such-prediction", request(model=provider.model))
    await provider.aclose()
    assert gone.state == "gone" and gone.billed_usd is None


@pytest.mark.parametrize(("hours_ago", "gone"), [(0.0, False), (7.0, True)])
async def test_a_known_output_that_keeps_answering_404_is_given_up_long_after_the_hour(
        fake: ReplicateFake, make_provider, hours_ago: float, gone: bool) -> None:
    """A prediction the API says still has its output (``data_removed`` false) while the file answers 404 was
    asked about on every attempt of every run without end, and its entry never generated. Within the hour
    Replicate keeps outputs the 404 is passing (asked again); hours after the prediction completed it is gone,
    and a new call is fair."""
    provider = make_provider()
    first = await generate(provider)
    pid = first.metadata["prediction_id"]
    ended = dt.datetime.now(dt.UTC) - dt.timedelta(hours=hours_ago)
    fake.predictions[pid]["completed_at"] = ended.isoformat().replace("+00:00", "Z")
    fake.predictions[pid]["output"] = [f"{fake.url}/files/gone.png"]  # its URL now answers 404
    try:
        if gone:
            known = await provider.fetch_known(pid, request(model=provider.model))
            assert known.state == "gone" and known.billed_usd is None and known.result is None
        else:
            with pytest.raises(Transient, match="404"):
                await provider.fetch_known(pid, request(model=provider.model))
    finally:
        await provider.aclose()
    assert fake.create_calls == 1


async def test_token_never_in_repr_errors_or_logs(fake: ReplicateFake, make_provider, caplog) -> None:
    provider = make_provider()
    assert SECRET_TOKEN not in repr(provider) and SECRET_TOKEN not in str(vars(provider).get("_http"))
    with caplog.at_level(logging.DEBUG):
        for mode, kw in [("ok", {}), ("auth", {}), ("refuse", {}), ("failed", {"error": "boom"}),
                         ("server_error_once", {}), ("rate_limit_once", {}), ("ok", {"pending_polls": 1000})]:
            fake.mode(mode, **kw)
            provider = make_provider(timeout_s=0.3)
            try:
                await generate(provider)
            except Exception as exc:  # noqa: BLE001
                assert SECRET_TOKEN not in str(exc) and SECRET_TOKEN not in repr(exc)
            assert SECRET_TOKEN not in repr(provider)
    assert SECRET_TOKEN not in caplog.text
    assert fake.token_seen > 0


async def test_client_is_lazy_kept_alive_and_closed(fake: ReplicateFake, make_provider) -> None:
    provider = make_provider()
    assert provider._http is None
    await provider.generate(request(model=provider.model))
    client = provider._http
    assert client is not None and not client.client.is_closed
    await provider.generate(request(model=provider.model, seed=2))
    assert provider._http is client  # one client (and its pooled connections) for every call
    await provider.aclose()
    assert provider._http is None and client.client.is_closed


def test_a_new_event_loop_gets_a_new_client(fake: ReplicateFake, make_provider) -> None:
    """A client belongs to the loop that made it: a second ``asyncio.run`` (another command) connects again."""
    import asyncio

    provider = make_provider()
    first = asyncio.run(provider.generate(request(model=provider.model)))
    client = provider._http
    second = asyncio.run(provider.generate(request(model=provider.model, seed=3)))
    assert provider._http is not client
    validate_image(first.data)
    validate_image(second.data)
    assert fake.create_calls == 2


async def test_out_of_credit_stops_the_run_without_a_retry(fake: ReplicateFake, make_provider) -> None:
    fake.mode("no_credit")
    gate = ProviderGate(make_provider(), concurrency=1, rate_per_minute=None, timeout_s=30, max_attempts=3,
                        backoff_initial_s=0.01, backoff_max_s=0.05)
    stats = CallStats()
    with pytest.raises(OutOfCredit) as info:
        await gate.call(request(), stats)
    await gate.provider.aclose()
    assert isinstance(info.value, AuthFailed) and not info.value.retryable
    assert "HTTP 402" in str(info.value) and "add credit at https://replicate.com/account/billing" in str(info.value)
    assert stats.attempts == 1 and fake.create_calls == 1
    assert isinstance(gate.auth_failure, OutOfCredit)  # the gate starts no further call
    assert SECRET_TOKEN not in str(info.value)


async def test_host_down_is_host_unreachable_and_retried(fake: ReplicateFake, make_provider) -> None:
    gate = ProviderGate(make_provider(base_url=closed_port_url()), concurrency=1, rate_per_minute=None, timeout_s=30,
                        max_attempts=2, backoff_initial_s=0.01, backoff_max_s=0.02)
    stats = CallStats()
    try:
        with pytest.raises(HostUnreachable) as info:
            await gate.call(request(), stats)
    finally:
        await gate.provider.aclose()
    assert info.value.retryable and stats.attempts == 2  # a Transient: retried, then the entry fails as retryable
    assert fake.create_calls == 0


async def test_doctor_check_uses_the_account_endpoint(fake: ReplicateFake, make_provider) -> None:
    provider = make_provider()
    try:
        assert "limner-test" in await provider.check()
    finally:
        await provider.aclose()
    assert fake.create_calls == 0
    fake.mode("auth")
    with pytest.raises(AuthFailed):
        await make_provider().check()


# ---------------------------------------------------------------- pure helpers
def test_price_table() -> None:
    assert ReplicateProvider.price_for(None) == pytest.approx(0.003)
    assert ReplicateProvider.price_for("black-forest-labs/flux-dev") == pytest.approx(0.025)
    assert ReplicateProvider.price_for("black-forest-labs/flux-1.1-pro") == pytest.approx(0.04)
    assert ReplicateProvider.price_for(f"black-forest-labs/flux-schnell:{VERSION}") == pytest.approx(0.003)
    assert ReplicateProvider.price_for("someone/else") == 0.0
    for price in PRICES.values():
        assert price.as_of == "2026-11" and price.source.startswith("https://replicate.com/black-forest-labs/")


def test_capabilities_and_env() -> None:
    caps = ReplicateProvider.capabilities
    assert caps.supports_seed and not caps.supports_negative_prompt
    assert caps.max_concurrency == 5 and caps.size_multiple == 16
    assert ReplicateProvider.required_env == ("REPLICATE_API_TOKEN",)
    assert ReplicateProvider.default_model == "black-forest-labs/flux-schnell"


def test_split_model_and_nsfw() -> None:
    assert split_model("a/b") == ("a/b", None)
    assert split_model(f"a/b:{VERSION}") == ("a/b", VERSION)
    assert split_model(VERSION) == ("", VERSION)
    assert is_nsfw(NSFW_ERROR)
    assert not is_nsfw("CUDA out of memory")


def test_base_url_precedence_is_that_of_every_hosted_provider() -> None:
    """``providers.replicate.base_url``, else ``REPLICATE_BASE_URL``, else the default (as fal, BFL, ...)."""
    assert issubclass(ReplicateProvider, HostedProvider)
    env = {"REPLICATE_BASE_URL": "https://env.example/"}.get
    assert ReplicateProvider(settings={"_secret": {}.get}).base_url() == "https://api.replicate.com"
    assert ReplicateProvider(settings={"_secret": env}).base_url() == "https://env.example"
    assert ReplicateProvider(settings={"_secret": env, "base_url": "https://proxy.example/"}).base_url() == "https://proxy.example"


async def test_base_url_setting_wins_over_the_environment(fake: ReplicateFake) -> None:
    secrets = {"REPLICATE_API_TOKEN": SECRET_TOKEN, "REPLICATE_BASE_URL": "https://nowhere.invalid"}.get
    provider = ReplicateProvider(settings={"_secret": secrets, "base_url": fake.url, "poll_interval_s": 0.05})
    result = await generate(provider)
    validate_image(result.data)
    assert fake.create_calls == 1


@pytest.mark.asyncio
async def test_a_prediction_whose_id_never_reached_the_ledger_is_found_by_its_input(fake: ReplicateFake,
                                                                                    make_provider) -> None:
    """A run killed while the create call was held (``Prefer: wait``) never learnt its prediction's id: the list
    of predictions, filtered by time and matched by model and input, finds it (across pages), and no other."""
    provider = make_provider()
    fake.mode("ok", list_page_size=1)
    try:
        sent = dt.datetime.now(dt.UTC).replace(tzinfo=None)
        ours = request(model=provider.model, seed=777)
        await provider.generate(ours)
        await provider.generate(request(model=provider.model, seed=778))  # a newer one, for another image
        await provider.generate(request(model="black-forest-labs/flux-dev", seed=777))  # same input, other model
        window = dt.timedelta(seconds=60)
        found = await provider.find_unnamed(ours, sent - window, sent + window)
        assert len(found) == 1 and found[0] in fake.predictions
        assert fake.predictions[found[0]]["input"]["seed"] == 777 and fake.predictions[found[0]]["model"] == provider.model
        assert fake.list_calls == 3  # one page per prediction, following `next`
        assert await provider.find_unnamed(ours, sent - 2 * window, sent - window) == []  # outside the window
    finally:
        await provider.aclose()
    assert fake.create_calls == 3
