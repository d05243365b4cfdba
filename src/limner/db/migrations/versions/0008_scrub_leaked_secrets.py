"""Remove credentials that earlier versions could leave in error texts (``entries.last_error``,
``renders.error``): a key pasted with a line break was shown escaped by the HTTP library, and the
exact-text redaction of those versions missed it. This migration cannot know the keys; it replaces what
is shaped like one: an Authorization value, a token with a known provider prefix, a JWT, the password
of a URL, and long mixed-case letters-and-digits runs (not hexadecimal: hashes and version ids stay).
The patterns are frozen here, as a migration must not change when the code does.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-01
"""
from __future__ import annotations

import math
import re
from collections import Counter

from alembic import op
import sqlalchemy as sa


revision = '0008'
down_revision = '0007'
branch_labels = None
depends_on = None

REDACTED = "[redacted]"
_SCHEME = re.compile(r"\b(bearer|basic|token)(\s+)[A-Za-z0-9_\-.~+/=]{8,}", re.IGNORECASE)
# ``sk-`` and ``key-`` also begin catalogue ids and words (``key-west-sunset-1950``, all lower case): a token after
# them is taken for a key only when it has a capital letter, as OpenAI's keys have
_PREFIXED = re.compile(r"\b(?:r8_|sk_|pk_live_|rk_live_|hf_|ghp_|gho_|ghs_|github_pat_|xox[abprs]-|glpat-|"
                       r"AKIA|ASIA|AIza|fal_|(?:sk-|key-)(?=[a-z0-9_\-]*[A-Z]))[A-Za-z0-9_\-]{12,}")
_JWT = re.compile(r"\beyJ[A-Za-z0-9_\-]{8,}\.[A-Za-z0-9_\-]{8,}\.[A-Za-z0-9_\-]*")
_URL_PASSWORD = re.compile(r"(://[^/\s:@]*:)[^/\s@]+@")
_OPAQUE = re.compile(r"[A-Za-z0-9+/=_\-]{32,}")
_HEX = re.compile(r"[0-9a-fA-F\-]+")


def _entropy(text: str) -> float:
    counts = Counter(text)
    return -sum(n / len(text) * math.log2(n / len(text)) for n in counts.values())


def _opaque(match: re.Match[str]) -> str:
    run = match.group(0)
    if _HEX.fullmatch(run):
        return run
    mixed = any(c.isupper() for c in run) and any(c.islower() for c in run) and sum(c.isdigit() for c in run) >= 3
    return REDACTED if mixed and _entropy(run) >= 4.2 else run


def scrub(text: str) -> str:
    """``text`` with everything shaped like a credential replaced by ``[redacted]``."""
    text = _SCHEME.sub(lambda m: f"{m.group(1)}{m.group(2)}{REDACTED}", text)
    text = _PREFIXED.sub(REDACTED, text)
    text = _JWT.sub(REDACTED, text)
    text = _URL_PASSWORD.sub(lambda m: f"{m.group(1)}{REDACTED}@", text)
    return _OPAQUE.sub(_opaque, text)


def _scrub_column(table: str, column: str) -> None:
    bind = op.get_bind()
    rows = bind.execute(sa.text(f"SELECT id, {column} FROM {table} WHERE {column} IS NOT NULL")).all()
    changed = [{"id": row[0], "text": cleaned} for row in rows if (cleaned := scrub(row[1])) != row[1]]
    if changed:
        bind.execute(sa.text(f"UPDATE {table} SET {column} = :text WHERE id = :id"), changed)


def upgrade() -> None:
    _scrub_column("entries", "last_error")
    _scrub_column("renders", "error")


def downgrade() -> None:  # what was removed is not put back
    pass
