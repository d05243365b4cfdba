"""Small URL and secret helpers shared by providers and storages (no HTTP library here)."""

from __future__ import annotations

import ipaddress
import os
from collections.abc import Iterable

#: hosts that may be reached over plain http (comma-separated); everything else must be https
ALLOW_HTTP_ENV = "LIMNER_ALLOW_HTTP_HOSTS"


def allowed_http_hosts() -> set[str]:
    return {h.strip().lower() for h in os.environ.get(ALLOW_HTTP_ENV, "").split(",") if h.strip()}


class Redactor:
    """Removes secret values from text before it reaches a message or a log."""

    def __init__(self, secrets: Iterable[str | None] = ()) -> None:
        self.secrets = sorted({s for s in secrets if s and len(s) >= 4}, key=len, reverse=True)

    def __call__(self, text: str) -> str:
        for secret in self.secrets:
            text = text.replace(secret, "[redacted]")
        return text


def is_loopback(host: str) -> bool:
    """True for localhost and loopback addresses (127.0.0.0/8, ::1)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
