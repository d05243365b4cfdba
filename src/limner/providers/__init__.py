"""Providers turn a prompt into image bytes. See :mod:`limner.providers.base`."""

from limner.providers.base import (
    Capabilities,
    GenerationRequest,
    GenerationResult,
    KnownCall,
    Price,
    Provider,
    release_slot,
    report_call_id,
    time_left,
)
from limner.providers.errors import (
    AnswerLost,
    AuthFailed,
    ContentRefused,
    HostUnreachable,
    ModelUnavailable,
    SettingsRejected,
    InvalidRequest,
    OutOfCredit,
    OutputExpired,
    ProviderError,
    RateLimited,
    Transient,
)

DEFAULT_PROVIDER = "sketch"

__all__ = [
    "AnswerLost",
    "DEFAULT_PROVIDER",
    "AuthFailed",
    "Capabilities",
    "ContentRefused",
    "GenerationRequest",
    "GenerationResult",
    "HostUnreachable",
    "ModelUnavailable",
    "SettingsRejected",
    "InvalidRequest",
    "KnownCall",
    "OutOfCredit",
    "OutputExpired",
    "Price",
    "Provider",
    "ProviderError",
    "RateLimited",
    "Transient",
    "release_slot",
    "report_call_id",
    "time_left",
]
