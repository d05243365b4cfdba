"""Local generation speed: images/s and peak memory for a model at a size, single vs batched vs compiled.

    python bench/gpu.py                                   # FLUX.1 architecture, full size, random weights, 1024 px
    python bench/gpu.py --arch sd --size 512              # Stable Diffusion 2.1 / SD-Turbo architecture
    python bench/gpu.py --model models/FLUX.1-schnell     # a real model folder (or a hub id already cached)
    python bench/gpu.py --scale tiny --size 64 --steps 2  # tiny random pipelines: checks the script on a CPU

Without ``--model`` the pipeline is built from the architecture's config with random weights
(:mod:`limner.testing.tiny_diffusers`): nothing is downloaded, and the speed is that of the real model, as
it does not depend on the weights' values (the images are noise). The same calls as the ``diffusers``
provider: one ``torch.Generator`` per image, a batch as one pipeline call, ``torch.compile`` on the
denoiser. Peak memory is ``torch.cuda.max_memory_allocated`` on CUDA; on the CPU it is the process's peak
resident memory (which includes Python and the libraries), and the output says so.

Needs ``pip install 'limner[gpu]'``. Results go in docs/benchmarks.md only when measured on the named card.
"""

from __future__ import annotations

import argparse
import gc
import os
import resource
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import machine, table  # noqa: E402

DEFAULT_STEPS = {"flux": 4, "sd": 1}  # FLUX.1-schnell and SD-Turbo's step counts
DEFAULT_GUIDANCE = {"flux": 0.0, "sd": 0.0}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", help="a diffusers model folder or cached hub id (default: random weights of --arch)")
    ap.add_argument("--arch", choices=("flux", "sd"), default="flux", help="architecture built when --model is not given")
    ap.add_argument("--scale", choices=("full", "tiny"), default="full", help="the released model's sizes, or tiny ones")
    ap.add_argument("--size", type=int, default=1024, help="image side in pixels (square)")
    ap.add_argument("--steps", type=int, help="denoising steps (default: 4 for flux, 1 for sd)")
    ap.add_argument("--guidance", type=float, help="guidance scale (default 0)")
    ap.add_argument("--batch", type=int, default=4, help="images per pipeline call in the batched modes")
    ap.add_argument("--images", type=int, default=8, help="images timed per mode (a multiple of --batch)")
    ap.add_argument("--device", default="auto", help="auto, cuda, cuda:N, mps or cpu")
    ap.add_argument("--dtype", default="auto", help="auto (bf16/fp16 on CUDA, bf16 on MPS, fp32 on CPU), bfloat16, float16, float32")
    ap.add_argument("--compile", action="store_true", help="also time torch.compile on the denoiser (first call compiles)")
    ap.add_argument("--compile-mode", default=None, help="torch.compile mode (default, max-autotune, ...)")
    ap.add_argument("--compiled-only", action="store_true", help="with --compile, time only the compiled modes")
    ap.add_argument("--memory", default="", help="memory modes, comma-separated (cpu_offload, vae_tiling, ...), as the provider's setting")
    return ap.parse_args(argv)


def resolve(args: argparse.Namespace) -> tuple[Any, Any]:
    """The device and dtype, resolved as the ``diffusers`` provider resolves its settings."""
    from limner.providers.diffusers_local import DiffusersProvider

    provider = DiffusersProvider(settings={"dtype": args.dtype})
    device = provider.resolve_device(args.device)
    return device, provider.resolve_dtype(device)


def build(args: argparse.Namespace, device: str, dtype: Any) -> tuple[Any, str]:
    """The pipeline on ``device`` and a line saying what it is."""
    import torch

    from limner.providers.diffusers_local import MEMORY_MODES

    modes = [m.strip() for m in args.memory.split(",") if m.strip()]
    unknown = [m for m in modes if m not in MEMORY_MODES]
    if unknown:
        raise SystemExit(f"--memory: unknown mode(s) {', '.join(unknown)}; known: {', '.join(MEMORY_MODES)}")

    if args.model:
        from diffusers import DiffusionPipeline

        pipe = DiffusionPipeline.from_pretrained(args.model, torch_dtype=dtype)
        what = f"{args.model} ({type(pipe).__name__})"
    else:
        from limner.testing.tiny_diffusers import make_pipeline

        # created on the device in its dtype directly: a 12B model never passes through float32 on the CPU
        previous = torch.get_default_dtype()
        try:
            torch.set_default_dtype(dtype)
            with torch.device("cpu" if any(m.endswith("cpu_offload") for m in modes) else device):
                pipe = make_pipeline(args.arch, args.scale)
        finally:
            torch.set_default_dtype(previous)
        what = f"{args.arch} architecture, {args.scale} size, random weights ({type(pipe).__name__})"
    params = sum(p.numel() for name in ("transformer", "unet") if getattr(pipe, name, None) is not None
                 for p in getattr(pipe, name).parameters())
    offload = "sequential_cpu_offload" if "sequential_cpu_offload" in modes else "cpu_offload" if "cpu_offload" in modes else None
    if offload and not device.startswith("cpu"):
        getattr(pipe, f"enable_{'sequential' if offload.startswith('seq') else 'model'}_cpu_offload")(device=device)
    else:
        pipe.to(device)
    if "attention_slicing" in modes:
        pipe.enable_attention_slicing()
    if "vae_tiling" in modes:
        pipe.vae.enable_tiling()
    if "vae_slicing" in modes:
        pipe.vae.enable_slicing()
    pipe.set_progress_bar_config(disable=True)
    count = f"{params / 1e9:.2f}B" if params >= 1e8 else f"{params / 1e6:.2f}M"
    return pipe, f"{what}; denoiser {count} parameters"


def reset_peak(device: str) -> None:
    import torch

    gc.collect()
    if device.startswith("cuda"):
        torch.cuda.synchronize(device)
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)


def peak(device: str) -> str:
    import torch

    if device.startswith("cuda"):
        return f"{torch.cuda.max_memory_allocated(device) / 2**30:.2f} GiB GPU"
    rss_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
    return f"{rss_kib / 2**20:.2f} GiB RSS (process)"


def run(pipe: Any, args: argparse.Namespace, device: str, batch: int, seed0: int) -> None:
    import torch

    steps = args.steps or DEFAULT_STEPS[args.arch]
    guidance = DEFAULT_GUIDANCE[args.arch] if args.guidance is None else args.guidance
    prompts = [f"a lighthouse on a cliff at dusk, number {seed0 + i}" for i in range(batch)]
    with torch.inference_mode():
        pipe(prompt=prompts, num_inference_steps=steps, guidance_scale=guidance, height=args.size, width=args.size,
             generator=[torch.Generator("cpu").manual_seed(seed0 + i) for i in range(batch)], output_type="pil")
    if device.startswith("cuda"):
        torch.cuda.synchronize(device)


def timed(pipe: Any, args: argparse.Namespace, device: str, batch: int, label: str) -> list[str]:
    run(pipe, args, device, batch, 10_000)  # warm-up (kernels chosen, caches filled; compiles when compiled)
    reset_peak(device)
    calls = max(1, args.images // batch)
    started = time.perf_counter()
    for i in range(calls):
        run(pipe, args, device, batch, i * batch)
    seconds = time.perf_counter() - started
    n = calls * batch
    return [label, str(batch), str(n), f"{seconds:.2f}", f"{n / seconds:.3f}", f"{seconds / n:.3f}", peak(device)]


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    import torch

    device, dtype = resolve(args)
    started = time.perf_counter()
    pipe, what = build(args, device, dtype)
    load_s = time.perf_counter() - started
    steps = args.steps or DEFAULT_STEPS[args.arch]
    print(f"machine: {machine()}")
    gpu = torch.cuda.get_device_name(device) if device.startswith("cuda") else None
    print(f"device: {device}{f' ({gpu})' if gpu else ''}, dtype {str(dtype).replace('torch.', '')}, torch {torch.__version__}")
    if not device.startswith("cuda"):
        print("NOTE: no CUDA device here: these are CPU numbers" + (" of a tiny configuration, for checking the script,"
              " not a measure of any real model" if args.scale == "tiny" and not args.model else ""))
    print(f"model: {what}; built/loaded in {load_s:.1f}s")
    print(f"{args.size}x{args.size}, {steps} steps, memory modes: {args.memory or 'none'}\n")
    rows: list[list[str]] = []

    def measure(batch: int, label: str) -> None:  # each row printed as it is measured: a cut-off run keeps it
        rows.append(timed(pipe, args, device, batch, label))
        print("measured: " + " | ".join(rows[-1]), flush=True)

    if not (args.compile and args.compiled_only):
        measure(1, "single")
        if args.batch > 1:
            measure(args.batch, "batched")
    if args.compile:
        denoiser = "transformer" if getattr(pipe, "transformer", None) is not None else "unet"
        setattr(pipe, denoiser, torch.compile(getattr(pipe, denoiser), mode=args.compile_mode))
        t0 = time.perf_counter()
        run(pipe, args, device, 1, 20_000)
        print(f"compile ({args.compile_mode or 'default'} mode) + first call: {time.perf_counter() - t0:.1f}s", flush=True)
        measure(1, "compiled")
        if args.batch > 1:
            measure(args.batch, "compiled+batched")
    print(table("Local generation", ["mode", "batch", "images", "seconds", "images/s", "s/image", "peak memory"], rows))
    return 0


if __name__ == "__main__":
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    sys.exit(main())
