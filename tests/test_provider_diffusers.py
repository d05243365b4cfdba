"""The ``diffusers`` provider on tiny pipelines built locally from configs (no download), on the CPU.

The pipelines (a Stable Diffusion one: UNet with block_out_channels (32, 64), CLIP text encoder of hidden
size 32, two-block VAE; and a Flux one: a FluxTransformer2DModel with 1 layer, 2 heads of 16, joint
attention 32, CLIP and T5 encoders of hidden size 32, one-block VAE with one latent channel) are built once
per session by :mod:`limner.testing.tiny_diffusers` and saved with ``save_pretrained``; the provider loads
them through its real loading code (``from_pretrained``) and generates 64-pixel images in 2 steps.

The shared provider suite (:mod:`limner.testing.provider_suite`) is not rerun here: every one of its tests
scripts an HTTP API through a loopback fake (429 with Retry-After, 5xx, timeouts, moderation, auth
failures, corrupt or oversized downloads, redirects to another origin), and a local pipeline has no API,
no credentials, no moderation and no downloads. What applies of it (seed round trip, typed errors, the
image's size and format, an end-to-end run through the runner) is tested below on the real pipeline.
"""

from __future__ import annotations

import asyncio
import time
import dataclasses
import functools
import io
import json
import logging
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

torch = pytest.importorskip("torch", reason="the diffusers provider's tests need torch (pip install 'limner[gpu]')")
diffusers = pytest.importorskip("diffusers", reason="the diffusers provider's tests need diffusers (pip install 'limner[gpu]')")
pytest.importorskip("transformers", reason="the diffusers provider's tests need transformers (pip install 'limner[gpu]')")

import numpy as np  # noqa: E402
from diffusers import StableDiffusionPipeline  # noqa: E402
from PIL import Image  # noqa: E402

from limner.providers import AuthFailed, GenerationRequest, InvalidRequest  # noqa: E402
from limner.providers.diffusers_local import (  # noqa: E402
    DiffusersProvider, ModelUnavailable, OutOfMemory, classify_load_error)
from limner.testing.tiny_diffusers import build_pipeline  # noqa: E402

SPY = f"{__name__}:SpyPipeline"


@pytest.fixture(scope="session")
def tiny_sd(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_pipeline("sd", tmp_path_factory.mktemp("models") / "tiny-sd")


@pytest.fixture(scope="session")
def tiny_flux(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_pipeline("flux", tmp_path_factory.mktemp("models") / "tiny-flux")


@pytest.fixture(autouse=True)
def _reset_spy() -> None:
    SpyPipeline.loads = 0
    SpyPipeline.calls = []
    SpyPipeline.oom = None
    SpyPipeline.delay = 0.0
    SpyPipeline.refuse = None
    SpyPipeline.device_lost = None
    SpyPipeline.loading = SpyPipeline.most_loading = 0


class SpyPipeline(StableDiffusionPipeline):
    """The real Stable Diffusion pipeline, recording what the provider asks of it (and able to run out of
    memory on demand): ``oom = "batch"`` fails calls of more than one image, ``oom = "always"`` every call."""

    loads = 0
    calls: list[dict[str, Any]] = []
    oom: str | None = None
    #: seconds each call waits before it runs (a slow device)
    delay = 0.0
    #: a call with a prompt holding this text is refused, as a pipeline's check of its arguments would
    refuse: str | None = None
    #: a call with a prompt holding this text meets a device error the process cannot recover from
    device_lost: str | None = None

    #: loads under way now, and the most at once
    loading = most_loading = 0

    @classmethod
    def from_pretrained(cls, *args: Any, **kwargs: Any) -> Any:
        SpyPipeline.loads += 1
        SpyPipeline.loading += 1
        SpyPipeline.most_loading = max(SpyPipeline.most_loading, SpyPipeline.loading)
        try:
            time.sleep(SpyPipeline.delay)
            pipe = super().from_pretrained(*args, **kwargs)
        finally:
            SpyPipeline.loading -= 1
        pipe.enabled = []
        return pipe

    def enable_attention_slicing(self, *args: Any, **kwargs: Any) -> None:
        self.enabled.append("attention_slicing")
        super().enable_attention_slicing(*args, **kwargs)

    def enable_model_cpu_offload(self, *args: Any, **kwargs: Any) -> None:
        self.enabled.append("cpu_offload")
        super().enable_model_cpu_offload(*args, **kwargs)

    def enable_sequential_cpu_offload(self, *args: Any, **kwargs: Any) -> None:
        self.enabled.append("sequential_cpu_offload")
        super().enable_sequential_cpu_offload(*args, **kwargs)

    @functools.wraps(StableDiffusionPipeline.__call__)  # the provider reads which arguments the pipeline takes
    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        SpyPipeline.calls.append({k: v for k, v in kwargs.items() if k != "generator"} | {"n": len(kwargs["prompt"])})
        time.sleep(SpyPipeline.delay)
        if SpyPipeline.oom == "always" or (SpyPipeline.oom == "batch" and len(kwargs["prompt"]) > 1):
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
        if SpyPipeline.refuse and any(SpyPipeline.refuse in p for p in kwargs["prompt"]):
            raise ValueError(f"cannot handle the prompt {SpyPipeline.refuse!r}")
        if SpyPipeline.device_lost and any(SpyPipeline.device_lost in p for p in kwargs["prompt"]):
            raise torch.AcceleratorError("CUDA error: an illegal memory access was encountered")
        return super().__call__(*args, **kwargs)


def request(i: int = 0, *, seed: int | None = None, width: int = 64, height: int = 64, **params: Any) -> GenerationRequest:
    return GenerationRequest(prompt=f"an ancient temple by a river, number {i}", negative_prompt="blurry", width=width,
                             height=height, seed=100 + i if seed is None else seed, model="",
                             params={"steps": 2, **params}, context={"id": f"event-{i:03d}"})


def pixels(data: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(data)).convert("RGB")).astype(np.int16)


def provider(model: Path | str, **settings: Any) -> DiffusersProvider:
    return DiffusersProvider(model=str(model), settings={"device": "cpu", **settings})


async def gather(p: DiffusersProvider, requests: list[GenerationRequest]) -> list[Any]:
    return await asyncio.gather(*(p.generate(r) for r in requests))


# ---------------------------------------------------------------------------------------------- images
def test_image_size_format_and_metadata(tiny_sd: Path) -> None:
    result = asyncio.run(provider(tiny_sd).generate(request(width=96, height=64)))
    image = Image.open(io.BytesIO(result.data))
    assert image.format == "PNG" and image.size == (96, 64) and image.mode == "RGB"
    assert pixels(result.data).std() > 5, "a near-uniform image would be rejected as blank"
    assert result.seed == 100 and result.cost_usd == 0.0 and result.model == str(tiny_sd)
    assert result.metadata | {"batch_seconds": 0} == {
        "device": "cpu", "dtype": "float32", "pipeline": "StableDiffusionPipeline", "steps": 2,
        "guidance_scale": 7.5, "batch": 1, "batch_seconds": 0}


def test_seed_reproducibility(tiny_sd: Path) -> None:
    p = provider(tiny_sd)
    first, again, other = asyncio.run(_sequential(p, [request(1), request(1), request(1, seed=7)]))
    assert np.array_equal(pixels(first.data), pixels(again.data)), "the same seed gave another image"
    assert np.abs(pixels(first.data) - pixels(other.data)).mean() > 5, "another seed gave the same image"
    # a fresh provider (a new process's worth of state) gives the same image for the same seed
    fresh = asyncio.run(provider(tiny_sd).generate(request(1)))
    assert np.array_equal(pixels(first.data), pixels(fresh.data))


async def _sequential(p: DiffusersProvider, requests: list[GenerationRequest]) -> list[Any]:
    return [await p.generate(r) for r in requests]


@pytest.mark.parametrize(("family", "n"), [("sd", 8), ("flux", 4)])
def test_a_batch_gives_each_image_as_a_single_run_would(family: str, n: int, tiny_sd: Path, tiny_flux: Path) -> None:
    model = tiny_sd if family == "sd" else tiny_flux
    requests = [request(i) for i in range(n)]
    singles = asyncio.run(_sequential(provider(model), requests))
    batched = asyncio.run(gather(provider(model, batch_size=n, batch_window_ms=2000), requests))
    assert [r.metadata["batch"] for r in singles] == [1] * n
    assert [r.metadata["batch"] for r in batched] == [n] * n, "the calls were not gathered into one pipeline call"
    for i, (single, batch) in enumerate(zip(singles, batched)):
        diff = np.abs(pixels(single.data) - pixels(batch.data))
        assert diff.max() <= 3 and diff.mean() < 0.5, f"image {i} differs in a batch: max {diff.max()}, mean {diff.mean():.3f}"
        assert batch.seed == requests[i].seed
    # each image follows its own seed: neighbours in the batch differ
    assert np.abs(pixels(batched[0].data) - pixels(batched[1].data)).mean() > 5


def test_batches_gather_only_calls_with_the_same_size_and_parameters(tiny_sd: Path) -> None:
    p = provider(tiny_sd, batch_size=8, batch_window_ms=500, pipeline=SPY)
    requests = [request(0), request(1), request(2), request(3, width=48), request(4, width=48), request(5, steps=3),
                dataclasses.replace(request(6), negative_prompt="")]
    results = asyncio.run(gather(p, requests))
    assert [r.metadata["batch"] for r in results] == [3, 3, 3, 2, 2, 1, 1]
    assert sorted((c["n"], c["width"], c["num_inference_steps"]) for c in SpyPipeline.calls) == [
        (1, 64, 2), (1, 64, 3), (2, 48, 2), (3, 64, 2)]
    assert [Image.open(io.BytesIO(r.data)).size for r in results] == [(64, 64)] * 3 + [(48, 64)] * 2 + [(64, 64)] * 2


def test_a_full_batch_goes_at_once_without_waiting_for_the_window(tiny_sd: Path) -> None:
    p = provider(tiny_sd, batch_size=2, batch_window_ms=60_000, pipeline=SPY)
    results = asyncio.run(asyncio.wait_for(gather(p, [request(0), request(1)]), 30))
    assert [r.metadata["batch"] for r in results] == [2, 2]


def test_style_params_and_settings_reach_the_pipeline(tiny_sd: Path) -> None:
    p = provider(tiny_sd, pipeline=SPY, guidance_scale=3.0, steps=5)
    asyncio.run(p.generate(request(0, cfg_scale=2.0, sampler="euler")))  # the style's steps=2 and cfg win
    call = SpyPipeline.calls[-1]
    assert (call["num_inference_steps"], call["guidance_scale"]) == (2, 2.0)
    assert call["negative_prompt"] == ["blurry"] and call["prompt"] == [request(0).prompt]
    assert "sampler" not in call and "max_sequence_length" not in call  # dropped; SD takes no sequence length


def test_flux_gets_its_max_sequence_length_and_schnell_defaults(tiny_flux: Path) -> None:
    p = provider(tiny_flux, max_sequence_length=64)
    result = asyncio.run(p.generate(GenerationRequest(prompt="a ship", negative_prompt="", width=64, height=64,
                                                      seed=1, model="")))
    # the tiny transformer has no guidance embeddings, like schnell: 4 steps, guidance 0
    assert (result.metadata["steps"], result.metadata["guidance_scale"]) == (4, 0.0)
    assert result.metadata["pipeline"] == "FluxPipeline"


# ---------------------------------------------------------------------------------------------- loading
def test_the_pipeline_is_loaded_once_and_kept_warm(tiny_sd: Path) -> None:
    p = provider(tiny_sd, pipeline=SPY)
    asyncio.run(gather(p, [request(i) for i in range(3)]))  # concurrent first calls
    asyncio.run(p.generate(request(4)))
    asyncio.run(p.aclose())
    asyncio.run(p.generate(request(5)))  # still warm after aclose (a run's end), in another event loop
    assert SpyPipeline.loads == 1 and len(SpyPipeline.calls) == 5


def test_memory_modes_are_applied(tiny_sd: Path, caplog: pytest.LogCaptureFixture) -> None:
    p = provider(tiny_sd, pipeline=SPY, memory=["attention_slicing", "vae_tiling", "vae_slicing", "cpu_offload"])
    with caplog.at_level(logging.WARNING, logger="limner.providers"):
        result = asyncio.run(p.generate(request(0)))
    pipe = p._slots[0].pipeline
    assert pipe.enabled == ["attention_slicing"], "cpu_offload needs an accelerator: not applied on the CPU"
    assert pipe.vae.use_tiling and pipe.vae.use_slicing
    assert "cpu_offload needs an accelerator" in caplog.text
    assert Image.open(io.BytesIO(result.data)).size == (64, 64)
    plain = provider(tiny_sd, pipeline=SPY)
    asyncio.run(plain.generate(request(0)))
    assert plain._slots[0].pipeline.enabled == [] and not plain._slots[0].pipeline.vae.use_tiling


def test_unknown_settings_are_refused(tiny_sd: Path) -> None:
    with pytest.raises(InvalidRequest, match="unknown memory mode"):
        asyncio.run(provider(tiny_sd, memory="cpu_ofload").generate(request(0)))
    with pytest.raises(InvalidRequest, match="unknown dtype"):
        asyncio.run(provider(tiny_sd, dtype="fp8").generate(request(0)))
    with pytest.raises(InvalidRequest, match="multiples of 8"):
        asyncio.run(provider(tiny_sd).generate(request(0, width=60)))


def test_every_setting_it_reads_is_declared(tiny_sd: Path) -> None:
    """A key of ``[providers.diffusers]`` it does not declare is refused as a typo (``max_sequense_length``): each
    key it reads (built, planned, prepared, a call, ``check``) must be declared, or a correct one would be refused."""
    from limner.testing.provider_suite import settings_read, undeclared_settings

    given = provider(tiny_sd, pipeline=SPY, dtype="float32", memory=["attention_slicing"], batch_size=1,
                     batch_window_ms=1, steps=2, guidance_scale=1.0, local_files_only=True, cost_per_hour_usd=1.0)
    read = asyncio.run(settings_read(given, request(0)))
    assert {"devices", "variant", "compile", "max_sequence_length", "true_cfg_scale"} <= read  # looked up, unset
    assert undeclared_settings(DiffusersProvider, read) == set()


def test_concurrency_is_one_pipeline_call_per_device_filled_by_batch_size() -> None:
    assert DiffusersProvider(settings={}).concurrency_hint() == 1
    assert DiffusersProvider(settings={"batch_size": 4}).concurrency_hint() == 4
    assert DiffusersProvider(settings={"devices": ["cuda:0", "cuda:1"], "batch_size": 2}).concurrency_hint() == 4


# ---------------------------------------------------------------------------------------------- errors
def test_a_missing_local_folder_stops_the_run_with_a_hint(tmp_path: Path) -> None:
    with pytest.raises(ModelUnavailable, match="does not exist") as info:
        asyncio.run(provider(tmp_path / "nowhere").generate(request(0)))
    assert isinstance(info.value, AuthFailed) and not info.value.retryable and "huggingface-cli download" in str(info.value)
    (tmp_path / "empty").mkdir()
    with pytest.raises(ModelUnavailable, match="no model_index.json"):
        asyncio.run(provider(tmp_path / "empty").generate(request(0)))


def test_weights_not_on_this_machine_say_how_to_download(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))  # an empty cache
    p = provider("black-forest-labs/FLUX.1-schnell", local_files_only=True)
    with pytest.raises(ModelUnavailable) as info:
        asyncio.run(p.generate(request(0)))
    assert "huggingface-cli download black-forest-labs/FLUX.1-schnell --local-dir" in str(info.value)
    with pytest.raises(ModelUnavailable):  # the failure is kept: no second attempt at loading
        asyncio.run(p.generate(request(1)))
    with pytest.raises(ModelUnavailable, match="not on this machine"):
        asyncio.run(p.check())


def _hub_error(cls: type[Exception], status: int) -> Exception:
    """A huggingface_hub HTTP error as the hub client raises it, with a response of ``status``."""
    import huggingface_hub.errors as hub_errors

    http = sys.modules[hub_errors.Response.__module__.split(".")[0]]  # the hub client's HTTP library
    response = http.Response(status, request=http.Request("GET", "https://huggingface.co/api/models/x"))
    return cls(f"{status} Client Error", response=response)


def test_a_gated_model_names_the_token() -> None:
    from huggingface_hub.errors import GatedRepoError, RepositoryNotFoundError

    try:
        try:
            raise _hub_error(GatedRepoError, 401)
        except GatedRepoError as inner:
            raise OSError("cannot load model_index.json") from inner  # as diffusers wraps it
    except OSError as exc:
        error = classify_load_error(exc, "black-forest-labs/FLUX.1-dev")
    assert isinstance(error, ModelUnavailable) and "HF_TOKEN" in str(error) and "gated" in str(error)
    missing = classify_load_error(_hub_error(RepositoryNotFoundError, 404), "someone/typo")
    assert isinstance(missing, ModelUnavailable) and "HF_TOKEN" in str(missing) and "gated" not in str(missing)


def test_the_hf_token_is_redacted_from_messages(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    token = "hf_abcdefghijklmnopqrstuvwxyz123456"
    p = DiffusersProvider(model=str(tmp_path / "nowhere" / token), settings={"device": "cpu", "_secret": {"HF_TOKEN": token}.get})
    with pytest.raises(ModelUnavailable) as info:
        asyncio.run(p.generate(request(0)))
    assert token not in str(info.value) and "[redacted]" in str(info.value)


def test_out_of_memory_splits_a_batch_then_stops_the_run(tiny_sd: Path) -> None:
    SpyPipeline.oom = "batch"
    p = provider(tiny_sd, pipeline=SPY, batch_size=3, batch_window_ms=2000)
    results = asyncio.run(gather(p, [request(i) for i in range(3)]))
    assert [c["n"] for c in SpyPipeline.calls] == [3, 1, 1, 1]
    assert [r.metadata["batch"] for r in results] == [1, 1, 1]
    SpyPipeline.oom = "always"
    with pytest.raises(OutOfMemory) as info:
        asyncio.run(provider(tiny_sd, pipeline=SPY).generate(request(5)))
    assert not info.value.retryable and "cpu_offload" in str(info.value) and "vae_tiling" in str(info.value)


# ---------------------------------------------------------------------------------------------- the CLI
def _python(code: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)


def test_the_cli_starts_without_torch_and_hints_the_extra() -> None:
    proc = _python("""
import sys
from limner.cli.app import app
for args in (["--help"], ["providers", "--help"]):
    try:
        app(args, prog_name="limner")
    except SystemExit:
        pass
from limner.registry import provider_specs
assert provider_specs()["diffusers"].extra == "gpu"
print("HEAVY", sorted(m for m in ("torch", "diffusers", "transformers") if m in sys.modules), file=sys.stderr)
""")
    assert proc.returncode == 0, proc.stderr
    assert "HEAVY []" in proc.stderr
    # where torch is not installed, the provider answers with the extra to install
    proc = _python("""
import sys
sys.modules["torch"] = None  # as if torch were not installed
from limner.errors import LimnerError
from limner.registry import provider_class
try:
    provider_class("diffusers")
except LimnerError as exc:
    print(exc, "|", exc.hint)
""")
    assert "needs a package that is not installed (torch) | pip install 'limner[gpu]'" in proc.stdout, proc.stdout + proc.stderr


@pytest.mark.slow
def test_limner_generate_publishes_entries_with_a_local_model(tiny_sd: Path, make_project_dir: Any) -> None:
    p = make_project_dir(3, provider="diffusers", extra=f"""
        [providers.diffusers]
        model = "{tiny_sd}"
        device = "cpu"
        steps = 2
        batch_size = 3
        """)
    env = p.env(LIMNER_GENERATE_SIZE="64")
    proc = p.run("generate", "--json", "--no-progress", env=env, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    summary = json.loads(proc.stdout)
    assert (summary["generated"], summary["failed"], summary["provider_calls"], summary["spend_usd"]) == (3, 0, 3, 0)
    assert "[transformers]" not in proc.stderr, proc.stderr  # its advice on packages Limner does not use
    proc = p.run("sync", "--json", env=env)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    manifest = json.loads((p.root / "frontend" / "src" / "data" / "limner-manifest.json").read_text())
    entries = manifest["entries"]
    assert sorted(entries) == ["event-000", "event-001", "event-002"], manifest
    placeholders = sorted((p.root / "frontend" / "public" / "images" / "events").glob("*.webp"))
    assert [f.stem for f in placeholders] == ["event-000", "event-001", "event-002"]
    again = json.loads(p.run("generate", "--json", "--no-progress", env=env).stdout)
    assert again["provider_calls"] == 0 and again["skipped"] == 3  # nothing changed, nothing redone


@pytest.mark.slow
def test_a_setting_that_cannot_work_stops_the_run_before_any_call_and_leaves_the_entries(
        tiny_sd: Path, make_project_dir: Any) -> None:
    """A typo in a memory mode (or a pipeline class, a dtype, a device) failed every entry for good, after a load
    of the model each, and said the provider "rejected the credentials". Now it is found before any call: the run
    stops (exit 3) naming the setting, nothing is in the ledger, and the entries are still to do."""
    settings = f'[providers.diffusers]\nmodel = "{tiny_sd}"\ndevice = "cpu"\nsteps = 2\n'
    p = make_project_dir(2, provider="diffusers", extra=settings + 'memory = ["vae_tilling"]\n')
    env = p.env(LIMNER_GENERATE_SIZE="64")
    proc = p.run("generate", "--json", "--no-progress", env=env, timeout=300)
    assert proc.returncode == 3, proc.stdout + proc.stderr
    summary = json.loads(proc.stdout)
    assert summary["provider_calls"] == 0 and summary["failed"] == 0 and summary["generated"] == 0
    assert "cannot use its settings" in summary["auth_error"] and "vae_tilling" in summary["auth_error"]
    assert "credentials" not in proc.stderr and "fix the setting in limner.toml" in proc.stderr
    from limner.providers import SettingsRejected

    # the other settings the same way, through the check the run makes (a command each would import torch again)
    for bad, named in (({"pipeline": "StableDifusionPipeline"}, "StableDifusionPipeline"), ({"dtype": "bf32"}, "bf32"),
                       ({"device": "xpu:x"}, "xpu:x"), ({"steps": "four"}, "steps")):
        with pytest.raises(SettingsRejected) as info:  # the run says "cannot use its settings", as above
            asyncio.run(DiffusersProvider(model=str(tiny_sd), settings={"device": "cpu", "steps": 2, **bad}).prepare())
        assert named in str(info.value), bad
    p.config.write_text(p.config.read_text().split("[providers.diffusers]")[0] + settings + "batch_size = 0\n")
    proc = p.run("generate", "--no-progress", env=env, timeout=300)
    assert proc.returncode == 2 and "[providers.diffusers]" in proc.stderr and "batch_size" in proc.stderr
    assert "Traceback" not in proc.stderr
    p.config.write_text(p.config.read_text().split("[providers.diffusers]")[0] + settings)
    from limner.runner import Selection, build_plan

    project = p.project()  # the entries are still to do, and no call was recorded
    try:
        assert {s.state for s in project.repo.entry_statuses().values()} <= {"queued", "missing"}
        assert [i.entry.id for i in build_plan(project, Selection()).items] == ["event-000", "event-001"]
        assert project.repo.spend_by() == []  # no ledger line
    finally:
        project.close()


def test_a_batch_whose_callers_gave_up_while_it_waited_for_the_device_is_not_run(tiny_sd: Path) -> None:
    """A call timed out (or its run stopped) while its batch waited for the busy device: the batch used to run
    anyway when the device came free, its images thrown away, ahead of the calls still waiting."""
    p = provider(tiny_sd, pipeline=SPY, batch_size=1)

    async def scenario() -> None:
        SpyPipeline.delay = 1.0
        busy = asyncio.ensure_future(p.generate(request(0)))
        await asyncio.sleep(0.5)  # the device is busy with the first call
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(p.generate(request(1)), 0.2)
        await busy
        SpyPipeline.delay = 0.0
        await p.generate(request(2))

    asyncio.run(scenario())
    assert [c["prompt"][0][-1] for c in SpyPipeline.calls] == ["0", "2"]


def test_download_hints_tell_a_missing_folder_from_a_folder_missing_weights(tmp_path: Path,
                                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    from limner.providers.weights import download_hint

    monkeypatch.chdir(tmp_path)
    assert "there is none at " + str(tmp_path / "models" / "tiny-sd") in download_hint("models/tiny-sd")
    (tmp_path / "broken").mkdir()
    hint = download_hint(str(tmp_path / "broken"))
    assert "lacks some of its weights" in hint and "--local-dir models/" not in hint
    assert "[providers.mflux]" in download_hint("black-forest-labs/FLUX.1-schnell", "mflux")


def test_a_group_left_by_a_closed_event_loop_does_not_hold_the_next_call(tiny_sd: Path) -> None:
    """A run that ended inside the batch window left its group behind with a timer of its closed loop: the next
    run's call joined that group and was never answered."""
    p = provider(tiny_sd, pipeline=SPY, batch_size=4, batch_window_ms=200)

    async def leave_a_group() -> None:
        task = asyncio.ensure_future(p.generate(request(0)))
        await asyncio.sleep(0.01)
        task.cancel()

    asyncio.run(leave_a_group())

    async def next_run() -> Any:
        return await asyncio.wait_for(p.generate(request(1)), 30)

    assert asyncio.run(next_run()).data


@pytest.mark.parametrize("bad", ["batch_size = 0", "devices = []", "devices = 2"])
def test_a_setting_the_plan_cannot_use_is_refused_before_anything_is_written(bad: str, make_project_dir: Any) -> None:
    """``devices = []`` ended the command with a traceback (the provider refused it when it was made, which the
    checks before a run did not expect), and ``batch_size = 0`` was refused only once the run had written its
    entries and its run row. Now both are a configuration error naming the setting, before any write."""
    import sqlite3

    from limner.errors import ConfigError
    from limner.runner import Selection, build_plan, run_plan

    p = make_project_dir(2, provider="diffusers", extra=f'[providers.diffusers]\nmodel = "/models/x"\n{bad}\n')
    project = p.project()
    try:
        plan = build_plan(project, Selection())
        with pytest.raises(ConfigError, match=r"\[providers\.diffusers\] in limner\.toml: diffusers: " + bad.split()[0]):
            run_plan(project, plan)
    finally:
        project.close()
    db = p.root / ".limner" / "limner.db"
    if db.exists():
        with sqlite3.connect(db) as conn:
            assert conn.execute("select count(*) from entries").fetchone()[0] == 0
            assert conn.execute("select count(*) from runs").fetchone()[0] == 0


def test_weights_known_missing_stop_the_run_in_prepare_before_any_ledger_line(tmp_path: Path) -> None:
    """A model folder that does not exist, a folder that is not a diffusers model, and a hub id not in the cache
    with the hub off limits were found only by the first call's load: after its ledger line, so the run left a
    failed line and a failed entry. ``prepare`` (before the line) now finds them, without loading anything."""
    (tmp_path / "not-a-model").mkdir()
    token = "hf_abcdefghijklmnopqrstuvwxyz123456"
    for model, settings, said in ((tmp_path / "nowhere", {}, "does not exist"),
                                  (tmp_path / "not-a-model", {}, "no model_index.json"),
                                  (tmp_path / "nowhere" / token, {}, "does not exist"),
                                  ("black-forest-labs/FLUX.1-schnell", {"local_files_only": True}, "not on this machine")):
        p = DiffusersProvider(model=str(model), settings={"device": "cpu", "_secret": {"HF_TOKEN": token}.get, **settings})
        with pytest.raises(ModelUnavailable, match=said) as info:
            asyncio.run(p.prepare())
        assert "[providers.diffusers]" in str(info.value) and token not in str(info.value), str(info.value)


def test_an_entry_the_pipeline_refuses_does_not_fail_the_others_of_its_batch(tiny_sd: Path) -> None:
    """One prompt the pipeline could not handle failed every entry of its batch, for good (InvalidRequest). A
    batch that fails is now made again one image at a time: only that entry fails, the others get their images,
    the ones they would get alone."""
    SpyPipeline.refuse = "number 1"
    p = provider(tiny_sd, pipeline=SPY, batch_size=3, batch_window_ms=2000)

    async def scenario() -> list[Any]:
        return await asyncio.gather(*(p.generate(request(i)) for i in range(3)), return_exceptions=True)

    first, refused, third = asyncio.run(scenario())
    assert [c["n"] for c in SpyPipeline.calls] == [3, 1, 1, 1]
    assert isinstance(refused, InvalidRequest) and "cannot handle the prompt" in str(refused)
    assert (first.metadata["batch"], third.metadata["batch"]) == (1, 1)
    SpyPipeline.refuse = None
    alone = asyncio.run(provider(tiny_sd).generate(request(2)))
    assert np.abs(pixels(alone.data) - pixels(third.data)).max() <= 3


def test_a_device_error_the_process_cannot_recover_from_stops_the_run(tiny_sd: Path) -> None:
    """A CUDA error such as an illegal memory access leaves the device unusable for the rest of the process; it
    was an InvalidRequest, so that entry failed for good, its batch was made again on the broken device, and
    every later entry failed for good too. It now stops the run (an AuthFailed), naming the device; the entries
    are left for the next run."""
    SpyPipeline.device_lost = "number 1"
    p = provider(tiny_sd, pipeline=SPY, batch_size=3, batch_window_ms=2000)

    async def scenario() -> list[Any]:
        return await asyncio.gather(*(p.generate(request(i)) for i in range(3)), return_exceptions=True)

    outcomes = asyncio.run(scenario())
    assert [c["n"] for c in SpyPipeline.calls] == [3]  # not made again, one by one, on a broken device
    assert all(isinstance(o, AuthFailed) and not isinstance(o, InvalidRequest) for o in outcomes), outcomes
    assert "illegal memory access" in str(outcomes[0]) and "cpu" in str(outcomes[0])


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks a machine without CUDA")
def test_a_device_this_machine_lacks_is_a_setting_to_fix_naming_it() -> None:
    """``device = "cuda"`` on a machine without CUDA stopped the run as a model that "cannot load", telling the user
    to "make the model's weights available". It is a setting that cannot work here: the message names it and
    where it is."""
    from limner.providers import SettingsRejected

    for settings, named in (({"device": "cuda"}, "device 'cuda'"), ({"devices": ["cpu", "cuda:1"]}, "device 'cuda:1'")):
        p = DiffusersProvider(model="/models/x", settings=settings)
        with pytest.raises(SettingsRejected, match=named) as info:
            asyncio.run(p.prepare())
        assert "(in [providers.diffusers] of limner.toml)" in str(info.value)


def test_the_pipelines_of_several_devices_are_loaded_one_after_the_other(tiny_sd: Path) -> None:
    """With two devices, the first two calls loaded the model onto both at once, in two threads; accelerate's
    empty-weights loading patches torch.nn.Module for the whole process, so one load could get the other's
    meta tensors ("Cannot copy out of meta tensor") and stop the run. Loads now take turns."""
    SpyPipeline.delay = 0.3
    p = provider(tiny_sd, pipeline=SPY, devices=["cpu", "cpu"])
    results = asyncio.run(gather(p, [request(0), request(1)]))
    assert len(results) == 2 and SpyPipeline.loads == 2 and all(s.pipeline is not None for s in p._slots)
    assert SpyPipeline.most_loading == 1


def test_a_compile_mode_torch_does_not_know_is_refused_with_the_settings(tiny_sd: Path) -> None:
    """``compile = "max_autotune"`` (a typo) passed the settings check, so the model was loaded, then refused as
    a model that "cannot load" ("make the model's weights available"). It is now a setting that cannot work,
    found before any call."""
    from limner.providers import SettingsRejected

    with pytest.raises(SettingsRejected, match=r"compile.*max_autotune.*\(in \[providers\.diffusers\] of limner\.toml\)"):
        asyncio.run(provider(tiny_sd, compile="max_autotune").prepare())
    asyncio.run(provider(tiny_sd, compile="max-autotune").prepare())
    asyncio.run(provider(tiny_sd, compile=True).prepare())
