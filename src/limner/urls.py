"""Small URL and secret helpers shared by providers and storages (no HTTP library here)."""

from __future__ import annotations

import ipaddress
import json
import os
import re
from collections.abc import Iterable

#: hosts that may be reached over plain http (comma-separated); everything else must be https
ALLOW_HTTP_ENV = "LIMNER_ALLOW_HTTP_HOSTS"


def allowed_http_hosts() -> set[str]:
    return {h.strip().lower() for h in os.environ.get(ALLOW_HTTP_ENV, "").split(",") if h.strip()}


#: a piece of a secret split at whitespace or a control character is redacted on its own from this length on
MIN_SECRET_PIECE = 8
_BREAKS = re.compile(r"[\s\x00-\x1f\x7f]+")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def escaped_forms(secret: str) -> set[str]:
    """``secret`` as it may appear in a message: itself, and escaped the ways Python and JSON write text and
    bytes (``repr``, ``unicode_escape``, ``repr(bytes)``, JSON), where a line break shows as ``\\n``."""
    forms = {secret, repr(secret)[1:-1], secret.encode("unicode_escape").decode("ascii"),
             json.dumps(secret)[1:-1], json.dumps(secret, ensure_ascii=False)[1:-1]}
    raw = secret.encode("utf-8", "surrogatepass")
    forms.update({repr(raw)[2:-1], raw.decode("latin-1").encode("unicode_escape").decode("ascii")})
    return forms


def secret_forms(secret: str) -> set[str]:
    """Every text to remove for one secret: its :func:`escaped_forms`, and those of each piece of it between
    whitespace or control characters that is long enough to be a secret (:data:`MIN_SECRET_PIECE`): a key with
    a line break in it may be shown in parts."""
    forms = escaped_forms(secret)
    pieces = [piece for piece in _BREAKS.split(secret) if len(piece) >= MIN_SECRET_PIECE]
    if pieces != [secret]:
        for piece in pieces:
            forms |= escaped_forms(piece)
    return forms


def control_characters(value: str | None) -> str | None:
    """What makes ``value`` unfit for an HTTP header, in words: ``"a line break"``, ``"a tab"`` or ``"a control
    character"``; None when it has none of them."""
    if not value or not _CONTROL.search(value):
        return None
    return "a line break" if "\n" in value or "\r" in value else "a tab" if "\t" in value else "a control character"


def unsendable_secret(name: str, value: str | None) -> str | None:
    """Why the credential in ``name`` cannot be used, as a sentence naming the variable (never the value), or
    None: a line break, a tab or another control character in the value (a quoted .env value ending in
    ``\\n``, a key pasted with its newline) cannot go into an HTTP header, and the error that says so would
    show the key."""
    what = control_characters(value)
    if what is None:
        return None
    hint = " (in .env, a \\n inside double quotes is a line break)" if what == "a line break" else ""
    return f"{name} contains {what}; fix it in .env or the environment{hint}"


class Redactor:
    """Removes secret values from text before it reaches a message or a log: each secret as it is, escaped
    (``\\n`` for a line break, as ``repr`` and h11 show a header value), and each long enough piece of a
    secret that holds whitespace or control characters (see :func:`secret_forms`)."""

    def __init__(self, secrets: Iterable[str | None] = ()) -> None:
        #: the secrets as given (at least 4 characters)
        self.secrets = sorted({s for s in secrets if s and len(s) >= 4}, key=len, reverse=True)
        #: what is replaced, longest first
        self.forms = sorted({f for s in self.secrets for f in secret_forms(s) if len(f) >= 4}, key=len, reverse=True)

    def __call__(self, text: str) -> str:
        for form in self.forms:
            text = text.replace(form, "[redacted]")
        return text

    def clip(self, text: str, limit: int) -> str:
        """``text`` redacted, then cut to ``limit`` characters. Never the other way round: a cut first could
        keep most of a secret that ends past it, which the redaction then no longer recognises."""
        return self(text)[:limit]


def shown_url(url: str) -> str:
    """``url`` as a message, a log line or a repr may show it: a user name and password as ``***@``, each query
    value as ``***`` (a signature, a token) and a fragment as ``#***``; the scheme, host, path and query names
    stay, so the user still knows which URL is meant. A path (no ``scheme://``) comes back as it is. Split by
    hand, not by ``urlsplit``: a password holding ``/`` or ``?`` would end its netloc early and show the rest."""
    scheme, sep, rest = url.partition("://")
    if not sep:
        return url
    rest, hashed, fragment = rest.partition("#")
    rest, asked, query = rest.partition("?")
    if "@" in rest:  # everything up to the last @ may be user:password (a password may hold @ / ? #)
        rest = "***@" + rest.rpartition("@")[2]
    if asked:
        rest += "?" + "&".join(f"{name}=***" if eq else name for name, eq, _ in (p.partition("=") for p in query.split("&")))
    return f"{scheme}://{rest}" + ("#***" if hashed else "")


def is_loopback(host: str) -> bool:
    """True for localhost and loopback addresses (127.0.0.0/8, ::1)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
