"""The ``mflux`` provider (Apple silicon only).

Off a Mac, it must stop a run with one clear message. mflux itself cannot run here (MLX needs Apple
silicon), so the adapter's own code (parameters, seed, size, quantisation, PNG encoding, loading once) is
checked against a recording stand-in for mflux's ``Flux1`` class and ``ModelConfig``, with the platform
check told it is on a Mac; that shows what Limner passes to mflux, not that mflux works.
"""

from __future__ import annotations

import asyncio
import io
import sys
import types
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from limner.providers import AuthFailed, GenerationRequest, InvalidRequest
from limner.providers import mflux_local
from limner.providers.mflux_local import MfluxProvider, PlatformUnsupported


def request(**params: Any) -> GenerationRequest:
    return GenerationRequest(prompt="a lighthouse at dusk", negative_prompt="blurry", width=96, height=64, seed=42,
                             model="", params=params)


@pytest.mark.skipif(mflux_local.apple_silicon(), reason="checks the message given off Apple silicon")
def test_off_apple_silicon_the_provider_says_it_cannot_run_here() -> None:
    assert "Apple silicon" in (MfluxProvider.unavailable() or "")
    for call in (MfluxProvider().prepare(), MfluxProvider().generate(request()), MfluxProvider().check()):
        with pytest.raises(PlatformUnsupported) as info:
            asyncio.run(call)
        assert isinstance(info.value, InvalidRequest) and not isinstance(info.value, AuthFailed)
        assert not info.value.retryable and "Apple silicon" in str(info.value) and "diffusers" in str(info.value)


@pytest.mark.skipif(mflux_local.apple_silicon(), reason="checks the message given off Apple silicon")
def test_limner_generate_with_mflux_off_a_mac_exits_2_and_records_nothing(make_project_dir: Any) -> None:
    """Not a rejected credential (exit 3), and no call: a usage error before anything is written."""
    p = make_project_dir(2, provider="mflux")
    proc = p.run("generate", "--no-progress")
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "cannot run on this machine" in proc.stderr and "Apple silicon Macs only" in proc.stderr
    assert "credentials" not in proc.stderr
    costs = p.run_json("costs")
    assert costs["by_provider"] == {} and costs["total_usd"] == 0, costs  # no ledger line
    status = p.run_json("status")
    assert status["by_state"].get("generating", 0) == 0 and status["spend_usd"] == 0
    listed = {r["name"]: r for r in p.run_json("providers")}["mflux"]
    assert listed["installed"] and not listed["configured"] and "Apple silicon" in listed["unavailable"]


class _Generated:
    def __init__(self, image: Image.Image) -> None:
        self.image = image


class _Flux1:
    """Records what the provider asks of mflux's ``Flux1``; draws a seeded noise image."""

    made: list[dict[str, Any]] = []
    calls: list[dict[str, Any]] = []

    def __init__(self, **kwargs: Any) -> None:
        _Flux1.made.append(kwargs)

    def generate_image(self, **kwargs: Any) -> _Generated:
        import numpy as np

        _Flux1.calls.append(kwargs)
        rng = np.random.default_rng(kwargs["seed"])
        pixels = rng.integers(0, 256, (kwargs["height"], kwargs["width"], 3), dtype=np.uint8)
        return _Generated(Image.fromarray(pixels))


class _ModelConfig:
    @staticmethod
    def from_name(model_name: str) -> str:
        if model_name not in ("schnell", "dev"):
            raise ValueError(f"unknown model {model_name}")
        return f"config:{model_name}"


@pytest.fixture
def stand_in(monkeypatch: pytest.MonkeyPatch) -> None:
    _Flux1.made, _Flux1.calls = [], []
    modules = {
        "mflux": types.ModuleType("mflux"),
        "mflux.models.common.config.model_config": types.ModuleType("mflux.models.common.config.model_config"),
        "mflux.models.flux.variants.txt2img.flux": types.ModuleType("mflux.models.flux.variants.txt2img.flux"),
    }
    modules["mflux.models.common.config.model_config"].ModelConfig = _ModelConfig  # type: ignore[attr-defined]
    modules["mflux.models.flux.variants.txt2img.flux"].Flux1 = _Flux1  # type: ignore[attr-defined]
    for name, module in modules.items():
        monkeypatch.setitem(sys.modules, name, module)
    monkeypatch.setattr(mflux_local, "apple_silicon", lambda: True)


def test_the_adapter_passes_seed_size_steps_and_quantisation(stand_in: None, tmp_path: Path) -> None:
    provider = MfluxProvider(settings={"quantize": 8, "model_path": str(tmp_path)})
    first = asyncio.run(provider.generate(request()))
    second = asyncio.run(provider.generate(request(steps=2, guidance_scale=5.0, sampler="x")))
    assert _Flux1.made == [{"quantize": 8, "model_path": str(tmp_path), "model_config": "config:schnell"}]  # loaded once
    assert _Flux1.calls == [
        {"seed": 42, "prompt": "a lighthouse at dusk", "width": 96, "height": 64, "num_inference_steps": 4, "guidance": 3.5},
        {"seed": 42, "prompt": "a lighthouse at dusk", "width": 96, "height": 64, "num_inference_steps": 2, "guidance": 5.0},
    ]
    image = Image.open(io.BytesIO(first.data))
    assert (image.format, image.size) == ("PNG", (96, 64)) and first.seed == 42 and first.model == "schnell"
    assert second.metadata["num_inference_steps"] == 2 and second.metadata["quantize"] == 8


def test_every_setting_it_reads_is_declared(stand_in: None, tmp_path: Path) -> None:
    """A key of ``[providers.mflux]`` it does not declare is refused as a typo: each key it reads must be
    declared, or a correct one would be refused."""
    from limner.testing.provider_suite import settings_read, undeclared_settings

    given = MfluxProvider(settings={"quantize": 8, "model_path": str(tmp_path), "cost_per_hour_usd": 1.0})
    read = asyncio.run(settings_read(given, request()))
    assert {"steps", "guidance"} <= read
    assert undeclared_settings(MfluxProvider, read) == set()


def test_dev_defaults_and_bad_settings(stand_in: None) -> None:
    asyncio.run(MfluxProvider(model="dev").generate(request()))
    assert _Flux1.calls[-1]["num_inference_steps"] == 25
    with pytest.raises(InvalidRequest, match="quantize"):
        asyncio.run(MfluxProvider(settings={"quantize": 7}).generate(request()))
    with pytest.raises(InvalidRequest, match="unknown model"):
        asyncio.run(MfluxProvider(model="no-such-model").generate(request()))
    with pytest.raises(InvalidRequest, match="multiples of 16"):
        asyncio.run(MfluxProvider().generate(GenerationRequest(prompt="x", negative_prompt="", width=100, height=64,
                                                               seed=1, model="")))


def test_settings_that_cannot_work_stop_the_run_in_prepare(stand_in: None) -> None:
    """A ``quantize`` of 7, a model name mflux does not know or steps that are not a number were found only by
    each call (after its ledger line), each entry failing for good, the model tried again for every one. Now
    ``prepare`` refuses them before any call, naming the setting, and the run stops."""
    from limner.providers import SettingsRejected

    for kwargs, named in (({"settings": {"quantize": 7}}, "quantize"), ({"settings": {"quantize": "x"}}, "quantize"),
                          ({"model": "no-such-model"}, "unknown model"), ({"settings": {"steps": "four"}}, "steps")):
        with pytest.raises(SettingsRejected, match=named) as info:
            asyncio.run(MfluxProvider(**kwargs).prepare())
        assert "(in [providers.mflux] of limner.toml)" in str(info.value)
    asyncio.run(MfluxProvider(model="dev", settings={"quantize": 4, "steps": 8}).prepare())
    assert _Flux1.made == []  # checked without loading the model
