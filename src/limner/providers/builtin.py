"""Built-in providers, registered through the same hook as any plugin.

Each target is imported only when the provider is used; ``extra`` names the pip
extra that brings its dependencies (``pip install 'limner[replicate]'``).
"""

from limner.plugins.hookspecs import hookimpl
from limner.registry import ProviderSpec

BUILTIN_PROVIDERS = (
    ProviderSpec("sketch", "limner.providers.sketch:SketchProvider",
                 "Offline deterministic draft illustrations (no network, no GPU). The default."),
    ProviderSpec("replicate", "limner.providers.replicate:ReplicateProvider",
                 "Replicate: Flux schnell/dev/1.1-pro and any model version.", extra="replicate", env=("REPLICATE_API_TOKEN", "REPLICATE_BASE_URL")),
    ProviderSpec("fal", "limner.providers.fal:FalProvider", "fal.ai queue API (Flux and others).", extra="fal", env=("FAL_KEY", "FAL_BASE_URL")),
    ProviderSpec("together", "limner.providers.together:TogetherProvider", "Together AI image generations.", extra="together", env=("TOGETHER_API_KEY", "TOGETHER_BASE_URL")),
    ProviderSpec("openai", "limner.providers.openai:OpenAIProvider", "OpenAI images (gpt-image models).", extra="openai", env=("OPENAI_API_KEY", "OPENAI_BASE_URL")),
    ProviderSpec("bfl", "limner.providers.bfl:BFLProvider", "Black Forest Labs API (submit, then poll).", extra="bfl", env=("BFL_API_KEY", "BFL_BASE_URL")),
    ProviderSpec("huggingface", "limner.providers.huggingface:HuggingFaceProvider",
                 "Hugging Face Inference Providers (router).", extra="huggingface", env=("HF_TOKEN", "HF_BASE_URL")),
    ProviderSpec("comfyui", "limner.providers.comfyui:ComfyUIProvider",
                 "Self-hosted ComfyUI servers (API-format workflows).", extra="comfyui", env=("COMFYUI_HOSTS", "COMFYUI_TOKEN")),
    ProviderSpec("automatic1111", "limner.providers.automatic1111:Automatic1111Provider",
                 "Self-hosted AUTOMATIC1111 / Forge (txt2img API).", extra="automatic1111", env=("A1111_BASE_URL", "A1111_AUTH")),
    ProviderSpec("diffusers", "limner.providers.diffusers_local:DiffusersProvider",
                 "Local generation with Hugging Face diffusers (Flux, SD 3.5, SDXL; CUDA, MPS or CPU).",
                 extra="gpu", env=("HF_TOKEN",)),
    ProviderSpec("mflux", "limner.providers.mflux_local:MfluxProvider",
                 "FLUX.1 on Apple silicon with mflux (MLX); Macs only.", extra="mlx", env=("HF_TOKEN",)),
)


@hookimpl
def register_providers(register):  # type: ignore[no-untyped-def]
    for spec in BUILTIN_PROVIDERS:
        register(spec)
