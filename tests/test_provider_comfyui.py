"""The ``comfyui`` provider against a loopback fake ComfyUI (tests/fake_comfyui.py)."""

from __future__ import annotations

import asyncio
import json
import logging

import pytest
from fake_comfyui import FakeComfyUI
from fake_network import RawServer, closed_port_url

from limner.imaging import validate_image
from limner.providers import HostUnreachable, InvalidRequest, Transient
from limner.providers.comfyui import BUILTIN_WORKFLOWS, ComfyUIProvider, discover_slots, load_workflow
from limner.providers.selfhosted import HostPool
from limner.testing.provider_suite import SECRET_TOKEN, ProviderSuite, request


@pytest.fixture
def allow_loopback(monkeypatch) -> None:
    monkeypatch.setenv("LIMNER_ALLOW_HTTP_HOSTS", "127.0.0.1,localhost")


@pytest.fixture
def fake():
    server = FakeComfyUI().start()
    server.token = SECRET_TOKEN
    yield server
    server.stop()


def _secrets(extra: dict[str, str] | None = None):
    values = {"COMFYUI_TOKEN": SECRET_TOKEN, **(extra or {})}
    return values.get


@pytest.fixture
def make_provider(fake, allow_loopback):
    def factory(**settings) -> ComfyUIProvider:
        settings.setdefault("hosts", [fake.url])
        settings.setdefault("poll_interval_s", 0.01)
        settings.setdefault("timeout_s", 5)
        settings.setdefault("_secret", _secrets())
        model = settings.pop("model", None)
        return ComfyUIProvider(model=model, settings=settings)

    return factory


async def _run(provider: ComfyUIProvider, **overrides):
    try:
        return await provider.generate(request(model=provider.model, **overrides))
    finally:
        await provider.aclose()


class TestComfyUI(ProviderSuite):
    async def test_content_refusal_is_permanent_with_its_reason(self, fake, make_provider) -> None:
        """A self-hosted ComfyUI has no moderation, so ContentRefused cannot happen. Its permanent
        failure is a workflow the server rejects (``node_errors``, here a model file it does not have):
        InvalidRequest, not retryable, carrying the node's message."""
        fake.mode("refuse")
        with pytest.raises(InvalidRequest) as info:
            await self._generate(make_provider())
        assert not info.value.retryable
        assert "Value not in list" in str(info.value) and "CheckpointLoaderSimple" in str(info.value)
        assert fake.create_calls == 1

    async def test_fills_every_slot(self, fake, make_provider) -> None:
        fake.mode("ok")
        result = await _run(make_provider(workflow="sd15"), seed=77, params={"steps": 9, "cfg_scale": 4.5})
        assert fake.last_input == {"prompt": request().prompt, "negative": "blurry, text", "seed": 77, "width": 1024,
                                   "height": 688, "steps": 9, "cfg": 4.5, "sampler_name": "euler",
                                   "scheduler": "normal", "model": "v1-5-pruned-emaonly.safetensors"}
        assert fake.last_body["client_id"]
        assert result.model == "v1-5-pruned-emaonly.safetensors"
        assert result.cost_usd == 0 and result.metadata["workflow"] == "sd15"
        assert SECRET_TOKEN not in json.dumps(result.metadata)

    async def test_model_setting_goes_in_the_loader(self, fake, make_provider) -> None:
        fake.mode("ok")
        result = await _run(make_provider(model="flux1-schnell.safetensors", workflow="flux"), params={"steps": 4})
        assert fake.last_input["model"] == "flux1-schnell.safetensors" and fake.last_input["steps"] == 4
        assert result.model == "flux1-schnell.safetensors"

    async def test_history_empty_then_done(self, fake, make_provider) -> None:
        fake.pending_polls = 3
        fake.mode("ok")
        result = await _run(make_provider())
        validate_image(result.data)
        assert fake.history_calls == 4  # three {} answers, then the finished prompt
        assert fake.view_calls == 1

    async def test_unknown_prompt_past_the_deadline_is_transient(self, fake, make_provider) -> None:
        fake.mode("never")
        with pytest.raises(Transient, match="not finished within 0.3s"):
            await _run(make_provider(timeout_s=0.3, poll_interval_s=0.02))
        assert fake.history_calls >= 2
        assert len(fake.deleted) == 1  # given up on: taken out of the queue

    async def test_missing_model_is_invalid_request_with_the_node_message(self, fake, make_provider) -> None:
        fake.mode("ok")
        with pytest.raises(InvalidRequest) as info:
            await _run(make_provider(model="nope.safetensors"))
        text = str(info.value)
        assert "node 4 (CheckpointLoaderSimple)" in text and "Value not in list" in text
        assert "'nope.safetensors' not in" in text and not info.value.retryable

    async def test_execution_error_is_transient_with_the_exception(self, fake, make_provider) -> None:
        fake.mode("exec_error")
        with pytest.raises(Transient, match="OutOfMemoryError: CUDA out of memory"):
            await _run(make_provider())

    async def test_validation_error_in_history_is_invalid_request(self, fake, make_provider) -> None:
        fake.mode("exec_error", exception_type="ValueError", message="Value not in list: scheduler 'x'")
        with pytest.raises(InvalidRequest, match="Value not in list"):
            await _run(make_provider())

    async def test_two_hosts_share_the_work_one_call_each(self, allow_loopback) -> None:
        fakes = [FakeComfyUI().start(), FakeComfyUI().start()]
        try:
            for f in fakes:
                f.pending_polls = 4
            provider = ComfyUIProvider(settings={"hosts": [f.url for f in fakes], "poll_interval_s": 0.02,
                                                 "timeout_s": 10})
            assert provider.concurrency_hint() == 2
            try:
                results = await asyncio.gather(*(provider.generate(request(seed=s)) for s in range(4)))
            finally:
                await provider.aclose()
            assert [r.seed for r in results] == [0, 1, 2, 3]
            assert [f.create_calls for f in fakes] == [2, 2]
            assert all(f.max_in_flight == 1 for f in fakes)
            assert {r.metadata["host"] for r in results} == {f.url for f in fakes}
        finally:
            for f in fakes:
                f.stop()

    async def test_per_host_concurrency_and_hosts_from_the_environment(self) -> None:
        provider = ComfyUIProvider(settings={"per_host_concurrency": 3,
                                             "_secret": {"COMFYUI_HOSTS": "gpu1:8188, https://gpu2.example"}.get})
        assert provider.hosts() == ["http://gpu1:8188", "https://gpu2.example"]
        assert provider.concurrency_hint() == 6
        assert ComfyUIProvider(settings={"_secret": {}.get}).hosts() == ["http://127.0.0.1:8188"]

    async def test_a_host_that_is_down_is_passed_over(self, fake, make_provider) -> None:
        """Decided from the exception's type (HostUnreachable), not from its message."""
        dead = closed_port_url()
        provider = make_provider(hosts=[dead, fake.url])
        try:
            with pytest.raises(HostUnreachable) as info:  # round robin starts with the dead host
                await provider.generate(request(seed=1))
            assert info.value.retryable and dead.removeprefix("http://") in str(info.value)
            hosts = [(await provider.generate(request(seed=s))).metadata["host"] for s in (2, 3)]
        finally:
            await provider.aclose()
        assert hosts == [fake.url, fake.url]  # without the cooldown, the third call would go back to the dead host
        assert fake.create_calls == 2

    async def test_a_slow_host_is_not_marked_down(self, fake, make_provider) -> None:
        """A read timeout is a Transient, not HostUnreachable: the host stays in the rotation."""
        slow = RawServer("silent").start()
        provider = make_provider(hosts=[slow.url, fake.url], http_timeout_s=0.3)
        try:
            with pytest.raises(Transient) as info:
                await provider.generate(request(seed=1))
            assert not isinstance(info.value, HostUnreachable)
            second = await provider.generate(request(seed=2))
            with pytest.raises(Transient):
                await provider.generate(request(seed=3))  # back to the slow host: it was not passed over
        finally:
            await provider.aclose()
            slow.stop()
        assert second.metadata["host"] == fake.url and slow.connections == 2

    async def test_host_pool_waits_for_any_host(self) -> None:
        pool = HostPool(["a", "b"], 1)
        first, second = await pool.acquire(), await pool.acquire()
        assert {first, second} == {"a", "b"}
        waiting = asyncio.create_task(pool.acquire())
        await asyncio.sleep(0.01)
        assert not waiting.done()
        pool.release("b")
        assert await asyncio.wait_for(waiting, 1) == "b"

    async def test_flux_drops_the_negative_prompt_with_a_log_line(self, fake, make_provider, caplog) -> None:
        fake.mode("ok")
        with caplog.at_level(logging.INFO, logger="limner.providers"):
            await _run(make_provider(workflow="flux"), params={"guidance": 2.5})
        assert "no negative prompt slot" in caplog.text
        assert "negative" not in fake.last_input and "blurry" not in json.dumps(fake.last_body)
        assert fake.last_input["guidance"] == 2.5 and fake.last_input["seed"] == 12345

    async def test_plain_http_is_refused_without_the_allow_list(self, fake, monkeypatch) -> None:
        monkeypatch.delenv("LIMNER_ALLOW_HTTP_HOSTS", raising=False)
        provider = ComfyUIProvider(settings={"hosts": [fake.url], "_secret": _secrets()})
        assert any("LIMNER_ALLOW_HTTP_HOSTS" in m for m in provider.missing_env())
        with pytest.raises(InvalidRequest, match="plain http; list 127.0.0.1 in LIMNER_ALLOW_HTTP_HOSTS"):
            await _run(provider)
        assert fake.create_calls == 0

    async def test_check_reports_the_hosts(self, fake, make_provider) -> None:
        assert "Fake GPU" in await make_provider().check()

    async def test_cost_per_hour(self, fake, make_provider) -> None:
        fake.mode("ok")
        result = await _run(make_provider(cost_per_hour_usd=3600.0))
        assert result.cost_usd == pytest.approx(result.metadata["seconds"], abs=0.01) and result.cost_usd > 0


@pytest.mark.parametrize("name", BUILTIN_WORKFLOWS)
def test_default_workflows_load_with_every_slot(name: str) -> None:
    label, workflow = load_workflow(name)
    slots = discover_slots(workflow, None, label)
    expected = {"prompt", "seed", "width", "height", "steps", "model", "output"} | ({"negative"} if name != "flux" else set())
    assert expected <= set(slots)
    assert ("negative" in slots) is (name != "flux")
    classes = {n["class_type"] for n in workflow.values()}
    assert {"VAEDecode", "SaveImage"} <= classes
    if name == "flux":
        assert {"UNETLoader", "DualCLIPLoader", "VAELoader", "FluxGuidance", "SamplerCustomAdvanced"} <= classes
    else:
        assert {"CheckpointLoaderSimple", "CLIPTextEncode", "EmptyLatentImage", "KSampler"} <= classes


def test_slots_setting_and_workflow_file(tmp_path) -> None:
    workflow = json.loads(json.dumps(load_workflow("sd15")[1]))
    for node in workflow.values():
        node.pop("_meta", None)
    path = tmp_path / "mine.json"
    path.write_text(json.dumps(workflow))
    slots = {"prompt": "6.text", "negative": ["7.text"], "seed": "3.seed", "width": "5.width", "height": "5.height"}
    provider = ComfyUIProvider(settings={"workflow": str(path), "slots": slots})
    filled, values = provider.fill(request(seed=5))
    assert filled["6"]["inputs"]["text"] == request().prompt and filled["3"]["inputs"]["seed"] == 5
    assert filled["4"]["inputs"]["ckpt_name"] == "v1-5-pruned-emaonly.safetensors"  # the only loader
    with pytest.raises(InvalidRequest, match="no prompt, seed"):
        ComfyUIProvider(settings={"workflow": str(path)}).fill(request())
    path.write_text(json.dumps({"nodes": [], "links": []}))
    with pytest.raises(InvalidRequest, match="UI format"):
        ComfyUIProvider(settings={"workflow": str(path)}).fill(request())
    with pytest.raises(InvalidRequest, match="neither"):
        ComfyUIProvider(settings={"workflow": "sd99"}).fill(request())


async def test_a_redirect_to_another_origin_never_carries_the_token(fake, make_provider) -> None:
    """The output URL redirects to another origin (another port): the token stays with the ComfyUI host."""
    other = FakeComfyUI().start()  # a second loopback server: same host, another port, so another origin
    seen: list[str | None] = []
    try:
        def record(req):
            from werkzeug import Response
            seen.append(req.headers.get("Authorization"))
            return Response(b"<html>elsewhere</html>", content_type="text/html")

        other.server.expect_request("/elsewhere.png").respond_with_handler(record)
        fake.mode("ok", view_redirect=f"{other.url}/elsewhere.png")
        with pytest.raises(Transient):  # the other server's page is not an image
            await _run(make_provider())
        assert seen == [None]
        assert fake.view_calls == 1
    finally:
        other.stop()


async def test_execution_error_text_is_redacted(fake, make_provider) -> None:
    """ComfyUI's error text may echo the token (a node that prints its inputs): it never reaches the message."""
    fake.mode("exec_error", message=f"upstream said: bad header Bearer {SECRET_TOKEN}")
    with pytest.raises(Transient) as info:
        await _run(make_provider())
    assert SECRET_TOKEN not in str(info.value) and SECRET_TOKEN not in repr(info.value)
    assert "[redacted]" in str(info.value)


async def test_a_json_answer_over_the_cap_is_not_read_whole(fake, make_provider) -> None:
    fake.mode("ok", history_padding=300_000)
    with pytest.raises(InvalidRequest, match="over the 100,000-byte cap"):
        await _run(make_provider(max_json_bytes=100_000))
