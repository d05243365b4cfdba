"""Diffusers pipelines built from configs with random weights, saved with ``save_pretrained``: no download.

Used by the ``diffusers`` provider's tests (``tiny`` sizes: a pipeline of a few hundred kilobytes that
renders a 64-pixel image in a fraction of a second on a CPU) and by ``bench/gpu.py`` (``full`` sizes: the
real architecture of a model, for speed and memory, where its weights cannot be downloaded; speed does
not depend on the weights' values). torch, diffusers, transformers and tokenizers are imported inside
the functions, so importing this module costs nothing.

The tokenizers are made here too: a byte-level BPE trained in a few milliseconds on a small built-in
text, wrapped as a ``PreTrainedTokenizerFast``, so different prompts give different token ids (and so
different images) without any vocabulary file from a hub.

    from limner.testing.tiny_diffusers import build_pipeline
    path = build_pipeline("sd", tmp_path / "tiny-sd")      # or "flux"; scale="full" for the real sizes
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

FAMILIES = ("sd", "flux")

#: a small text the tokenizers are trained on (common words of image prompts)
_CORPUS = """
a an the of in on at with and or by from to for as is are painting illustration photograph drawing sketch
watercolour oil engraving portrait landscape city temple river mountain desert sea ship king queen prophet
scroll book fire light dark night day sky cloud sun moon star tree garden wall gate tower house street market
people crowd soldier priest child woman man old new ancient medieval modern century year event history
detailed soft warm cold colour color red blue green gold black white grey brown style lighting cinematic
"""

_SPECIAL = ["<|pad|>", "<|startoftext|>", "<|endoftext|>", "<unk>"]


def _tokenizer(model_max_length: int, vocab_size: int) -> Any:
    """A byte-level BPE tokenizer trained on :data:`_CORPUS`, as a transformers fast tokenizer."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE(unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=_SPECIAL,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    tok.train_from_iterator([_CORPUS] * 4, trainer=trainer)
    return PreTrainedTokenizerFast(tokenizer_object=tok, model_max_length=model_max_length, pad_token="<|pad|>",
                                   bos_token="<|startoftext|>", eos_token="<|endoftext|>", unk_token="<unk>")


#: sizes per family and scale; "full" is the released model's architecture
SIZES: dict[str, dict[str, dict[str, Any]]] = {
    "sd": {
        "tiny": {"unet": {"block_out_channels": (32, 64), "layers_per_block": 1, "cross_attention_dim": 32,
                          "attention_head_dim": 8, "norm_num_groups": 32,
                          "down_block_types": ("DownBlock2D", "CrossAttnDownBlock2D"),
                          "up_block_types": ("CrossAttnUpBlock2D", "UpBlock2D")},
                 "vae": {"block_out_channels": (32, 64), "layers_per_block": 1, "norm_num_groups": 32,
                         "down_block_types": ("DownEncoderBlock2D",) * 2, "up_block_types": ("UpDecoderBlock2D",) * 2},
                 "clip": {"hidden_size": 32, "intermediate_size": 64, "num_attention_heads": 4, "num_hidden_layers": 2,
                          "vocab_size": 1000, "projection_dim": 32}},
        # Stable Diffusion 2.1 / SD-Turbo (865M-parameter UNet, OpenCLIP ViT-H text encoder)
        "full": {"unet": {"block_out_channels": (320, 640, 1280, 1280), "layers_per_block": 2, "cross_attention_dim": 1024,
                          "attention_head_dim": (5, 10, 20, 20), "use_linear_projection": True,
                          "down_block_types": ("CrossAttnDownBlock2D",) * 3 + ("DownBlock2D",),
                          "up_block_types": ("UpBlock2D",) + ("CrossAttnUpBlock2D",) * 3},
                 "vae": {"block_out_channels": (128, 256, 512, 512), "layers_per_block": 2,
                         "down_block_types": ("DownEncoderBlock2D",) * 4, "up_block_types": ("UpDecoderBlock2D",) * 4},
                 "clip": {"hidden_size": 1024, "intermediate_size": 4096, "num_attention_heads": 16,
                          "num_hidden_layers": 23, "vocab_size": 49408, "projection_dim": 1024, "hidden_act": "gelu"}},
    },
    "flux": {
        "tiny": {"transformer": {"patch_size": 1, "in_channels": 4, "num_layers": 1, "num_single_layers": 1,
                                 "attention_head_dim": 16, "num_attention_heads": 2, "joint_attention_dim": 32,
                                 "pooled_projection_dim": 32, "axes_dims_rope": (4, 4, 8)},
                 "vae": {"block_out_channels": (4,), "layers_per_block": 1, "latent_channels": 1, "norm_num_groups": 1,
                         "use_quant_conv": False, "use_post_quant_conv": False, "shift_factor": 0.0609,
                         "scaling_factor": 1.5035, "down_block_types": ("DownEncoderBlock2D",),
                         "up_block_types": ("UpDecoderBlock2D",)},
                 "clip": {"hidden_size": 32, "intermediate_size": 37, "num_attention_heads": 4, "num_hidden_layers": 2,
                          "vocab_size": 1000, "projection_dim": 32},
                 "t5": {"d_model": 32, "d_kv": 8, "d_ff": 37, "num_layers": 2, "num_heads": 4, "vocab_size": 1000,
                        "relative_attention_num_buckets": 8},
                 "max_sequence_length": 32},
        # FLUX.1 [schnell]/[dev]: 12B transformer, CLIP-L and T5-XXL encoders, 16-channel VAE
        "full": {"transformer": {"patch_size": 1, "in_channels": 64, "num_layers": 19, "num_single_layers": 38,
                                 "attention_head_dim": 128, "num_attention_heads": 24, "joint_attention_dim": 4096,
                                 "pooled_projection_dim": 768, "axes_dims_rope": (16, 56, 56)},
                 "vae": {"block_out_channels": (128, 256, 512, 512), "layers_per_block": 2, "latent_channels": 16,
                         "use_quant_conv": False, "use_post_quant_conv": False, "shift_factor": 0.1159,
                         "scaling_factor": 0.3611, "down_block_types": ("DownEncoderBlock2D",) * 4,
                         "up_block_types": ("UpDecoderBlock2D",) * 4},
                 "clip": {"hidden_size": 768, "intermediate_size": 3072, "num_attention_heads": 12,
                          "num_hidden_layers": 12, "vocab_size": 49408, "projection_dim": 768, "hidden_act": "quick_gelu"},
                 "t5": {"d_model": 4096, "d_kv": 64, "d_ff": 10240, "num_layers": 24, "num_heads": 64,
                        "vocab_size": 32128, "feed_forward_proj": "gated-gelu", "relative_attention_num_buckets": 32},
                 "max_sequence_length": 512},
    },
}


def _clip(spec: dict[str, Any], *, with_projection: bool = False) -> Any:
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection

    config = CLIPTextConfig(bos_token_id=1, eos_token_id=2, pad_token_id=0, max_position_embeddings=77,
                            layer_norm_eps=1e-05, **spec)
    return (CLIPTextModelWithProjection if with_projection else CLIPTextModel)(config)


def _build_sd(scale: str, dtype: Any) -> Any:
    from diffusers import AutoencoderKL, EulerDiscreteScheduler, StableDiffusionPipeline, UNet2DConditionModel

    s = SIZES["sd"][scale]
    unet = UNet2DConditionModel(sample_size=32 if scale == "tiny" else 96, in_channels=4, out_channels=4, **s["unet"])
    vae = AutoencoderKL(in_channels=3, out_channels=3, latent_channels=4, **s["vae"])
    scheduler = EulerDiscreteScheduler(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear",
                                       timestep_spacing="trailing", steps_offset=1)
    text_encoder = _clip(s["clip"])
    tokenizer = _tokenizer(77, min(s["clip"]["vocab_size"], 1000))
    pipe = StableDiffusionPipeline(vae=vae, text_encoder=text_encoder, tokenizer=tokenizer, unet=unet,
                                   scheduler=scheduler, safety_checker=None, feature_extractor=None,
                                   requires_safety_checker=False)
    return pipe.to(dtype=dtype) if dtype is not None else pipe


def _build_flux(scale: str, dtype: Any) -> Any:
    from diffusers import AutoencoderKL, FlowMatchEulerDiscreteScheduler, FluxPipeline, FluxTransformer2DModel
    from transformers import T5Config, T5EncoderModel

    s = SIZES["flux"][scale]
    transformer = FluxTransformer2DModel(**s["transformer"])
    vae = AutoencoderKL(in_channels=3, out_channels=3, sample_size=32, **s["vae"])
    scheduler = FlowMatchEulerDiscreteScheduler(shift=1.0, use_dynamic_shifting=False)
    text_encoder = _clip(s["clip"])
    text_encoder_2 = T5EncoderModel(T5Config(decoder_start_token_id=0, pad_token_id=0, eos_token_id=2, **s["t5"]))
    tokenizer = _tokenizer(77, min(s["clip"]["vocab_size"], 1000))
    tokenizer_2 = _tokenizer(s["max_sequence_length"], min(s["t5"]["vocab_size"], 1000))
    pipe = FluxPipeline(scheduler=scheduler, vae=vae, text_encoder=text_encoder, tokenizer=tokenizer,
                        text_encoder_2=text_encoder_2, tokenizer_2=tokenizer_2, transformer=transformer)
    return pipe.to(dtype=dtype) if dtype is not None else pipe


def make_pipeline(family: str, scale: str = "tiny", dtype: Any = None) -> Any:
    """A pipeline of ``family`` (``sd`` or ``flux``) at ``scale`` (``tiny`` or ``full``), random weights,
    seeded so the same call builds the same weights."""
    import torch

    if family not in SIZES:
        raise ValueError(f"unknown family {family!r}; one of {', '.join(SIZES)}")
    if scale not in SIZES[family]:
        raise ValueError(f"unknown scale {scale!r}; one of {', '.join(SIZES[family])}")
    torch.manual_seed(0)
    return (_build_sd if family == "sd" else _build_flux)(scale, dtype)


def build_pipeline(family: str, path: str | Path, scale: str = "tiny") -> Path:
    """Build a pipeline (see :func:`make_pipeline`) and ``save_pretrained`` it to ``path``: a model folder
    that ``DiffusionPipeline.from_pretrained(path)`` and the ``diffusers`` provider's ``model`` setting load."""
    path = Path(path)
    make_pipeline(family, scale).save_pretrained(path)
    return path
