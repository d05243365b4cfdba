"""Model weights of the local providers (diffusers, mflux): a local folder or a hub id, and what a failed load
means, decided by the exception types of huggingface_hub and the network (no torch here)."""

from __future__ import annotations

import os
from collections.abc import Callable

from .errors import InvalidRequest, ModelUnavailable, ProviderError


def is_local(model: str) -> bool:
    """A folder path rather than a hub id (``owner/name``): it exists, or it is written as a path."""
    if os.path.exists(os.path.expanduser(model)):
        return True
    return (model.startswith(("/", "./", "../", "~", "\\")) or model.count("/") > 1
            or (len(model) > 1 and model[1] == ":") or os.sep != "/" and os.sep in model)


def download_hint(model: str, provider: str = "diffusers") -> str:
    """How to get ``model``'s weights onto this machine."""
    folder = os.path.expanduser(model)
    if is_local(model) and os.path.isdir(folder):
        return (f"the folder {model} lacks some of its weights: download the whole repository into it "
                f"(`huggingface-cli download <model id> --local-dir {model}`)")
    hint = (f"download it once with `huggingface-cli download {model} --local-dir models/{model.split('/')[-1]}` "
            f"(or `hf download`), then set [providers.{provider}] model to that folder")
    if model.count("/") == 1 and not is_local(model):  # owner/name, or a relative folder that is not here
        hint += f"; if {model} is meant as a folder, there is none at {os.path.abspath(folder)}"
    return hint


def classify_load_error(exc: BaseException, model: str, provider: str = "diffusers",
                        redact: Callable[[str], str] = str) -> ProviderError:
    """The provider error for an exception raised while loading ``model``, decided by the exception types
    in its chain (huggingface_hub's gated/not found/not cached errors, network errors), never by wording.
    ``redact`` (the provider's) is applied to an exception's text before it is cut short."""
    try:
        from huggingface_hub import errors as hub_errors
    except ImportError:  # pragma: no cover - diffusers depends on huggingface_hub
        hub_errors = None
    chain: list[BaseException] = []
    seen: BaseException | None = exc
    while seen is not None and seen not in chain and len(chain) < 20:
        chain.append(seen)
        seen = seen.__cause__ or seen.__context__
    if hub_errors is not None:
        for e in chain:
            if isinstance(e, hub_errors.GatedRepoError):
                return ModelUnavailable(
                    f"{provider}: {model} is a gated model: accept its licence on its page of the Hugging Face hub "
                    "with your account, then set HF_TOKEN (a token of that account with read access) in the "
                    "environment or .env; or point model at a local folder holding its weights")
        for e in chain:
            if isinstance(e, hub_errors.RepositoryNotFoundError):
                return ModelUnavailable(
                    f"{provider}: the hub has no model {model} that this token may read (a typo, or a private "
                    "model: set HF_TOKEN in the environment or .env); or point model at a local folder")
            if isinstance(e, (hub_errors.LocalEntryNotFoundError, hub_errors.EntryNotFoundError)):
                return ModelUnavailable(f"{provider}: the weights of {model} are not on this machine and could "
                                        f"not be downloaded: {download_hint(model, provider)}")
    for e in chain:
        if isinstance(e, (ConnectionError, TimeoutError)) or type(e).__module__.split(".")[0] in ("httpx", "httpx2", "requests", "urllib3"):
            return ModelUnavailable(f"{provider}: the hub could not be reached to download {model}: {download_hint(model, provider)}")
    for e in chain:
        if isinstance(e, (FileNotFoundError, EnvironmentError)):
            return ModelUnavailable(f"{provider}: {model} could not be loaded ({type(e).__name__}: "
                                    f"{redact(str(e))[:300]}); {download_hint(model, provider)}")
    return InvalidRequest(f"{provider}: loading {model} failed: {type(exc).__name__}: {redact(str(exc))[:300]}")
