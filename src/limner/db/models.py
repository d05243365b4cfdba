"""The ORM classes that map the tables of :mod:`limner.db.tables`, for the code that works with rows as
objects: review, sync, the studio, and a unit of work resuming a paid render. A run's hot path, ``plan``
and ``status`` use the Core tables and never import this module before the first call is out.

The states (:class:`EntryState`, :class:`RenderStatus`, ...) and :func:`utcnow` are defined with the
tables and re-exported here.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy.orm import DeclarativeBase, Mapped, configure_mappers, relationship

from limner.db import tables
from limner.db.tables import OPEN_CALLS, CallStatus, EntryState, RenderStatus, ReviewState, utcnow

__all__ = [
    "OPEN_CALLS", "Base", "CallStart", "CallStatus", "Decision", "EntryRow", "EntryState", "LedgerRow", "Override",
    "Render", "RenderStatus", "ReviewState", "RunRow", "SpendCap", "SpendHold", "Template", "Variant", "utcnow",
]


class Base(DeclarativeBase):
    metadata = tables.metadata


class EntryRow(Base):
    __table__ = tables.entries

    id: Mapped[str]
    title: Mapped[str]
    style: Mapped[str | None]
    state: Mapped[str]
    fingerprint: Mapped[str | None]
    published_fingerprint: Mapped[str | None]
    input_digest: Mapped[str | None]
    published_render_id: Mapped[int | None]
    attempts: Mapped[int]
    retryable: Mapped[bool]
    last_error: Mapped[str | None]
    created_at: Mapped[dt.datetime]
    updated_at: Mapped[dt.datetime]
    claimed_by: Mapped[str | None]
    claimed_at: Mapped[dt.datetime | None]
    pinned: Mapped[bool]

    published_render: Mapped[Render | None] = relationship(
        foreign_keys=[tables.entries.c.published_render_id], post_update=True)


class RunRow(Base):
    __table__ = tables.runs

    id: Mapped[str]
    host: Mapped[str]
    pid: Mapped[int]
    started_at: Mapped[dt.datetime]
    heartbeat_at: Mapped[dt.datetime]
    finished_at: Mapped[dt.datetime | None]
    kind: Mapped[str | None]
    scope: Mapped[str | None]
    process_start: Mapped[int | None]


class SpendCap(Base):
    __table__ = tables.spend_caps

    id: Mapped[str]
    cap_usd: Mapped[float]
    reserved_usd: Mapped[float]
    spent_usd: Mapped[float]
    created_at: Mapped[dt.datetime]


class SpendHold(Base):
    __table__ = tables.spend_holds

    cap_id: Mapped[str]
    run_id: Mapped[str]
    reserved_usd: Mapped[float]


class CallStart(Base):
    __table__ = tables.call_starts

    id: Mapped[int]
    provider: Mapped[str]
    started_at: Mapped[dt.datetime]


class KeptImage(Base):
    __table__ = tables.kept_images

    id: Mapped[int]
    entry_id: Mapped[str]
    fingerprint: Mapped[str]
    call_id: Mapped[int | None]
    sha256: Mapped[str]
    record: Mapped[dict]
    data: Mapped[bytes]
    host: Mapped[str]
    created_at: Mapped[dt.datetime]


class Template(Base):
    __table__ = tables.templates

    sha256: Mapped[str]
    style: Mapped[str]
    version: Mapped[str]
    positive: Mapped[str]
    negative: Mapped[str]
    params: Mapped[dict[str, Any]]
    created_at: Mapped[dt.datetime]


class Render(Base):
    __table__ = tables.renders

    id: Mapped[int]
    entry_id: Mapped[str]
    fingerprint: Mapped[str]
    status: Mapped[str]
    provider: Mapped[str]
    model: Mapped[str]
    seed: Mapped[int]
    prompt: Mapped[str]
    negative_prompt: Mapped[str]
    parameters: Mapped[dict[str, Any]]
    style: Mapped[str]
    style_version: Mapped[str]
    template_sha: Mapped[str]
    cost_usd: Mapped[float]
    latency_ms: Mapped[int]
    attempts: Mapped[int]
    error: Mapped[str | None]
    provider_metadata: Mapped[dict[str, Any]]
    master_sha256: Mapped[str]
    master_key: Mapped[str]
    master_format: Mapped[str]
    master_bytes: Mapped[int]
    width: Mapped[int | None]
    height: Mapped[int | None]
    phash: Mapped[str | None]
    near_duplicate_of: Mapped[str | None]
    blurhash: Mapped[str | None]
    thumbhash: Mapped[str | None]
    dominant_color: Mapped[str | None]
    placeholder_key: Mapped[str | None]
    placeholder_width: Mapped[int | None]
    placeholder_height: Mapped[int | None]
    created_at: Mapped[dt.datetime]
    published_at: Mapped[dt.datetime | None]
    review: Mapped[str | None]

    variants: Mapped[list[Variant]] = relationship(back_populates="render", cascade="all, delete-orphan", order_by="Variant.width")


class Variant(Base):
    __table__ = tables.variants

    id: Mapped[int]
    render_id: Mapped[int]
    width: Mapped[int]
    height: Mapped[int]
    format: Mapped[str]
    key: Mapped[str]
    sha256: Mapped[str]
    bytes: Mapped[int]

    render: Mapped[Render] = relationship(back_populates="variants")


class LedgerRow(Base):
    __table__ = tables.ledger

    id: Mapped[int]
    entry_id: Mapped[str]
    render_id: Mapped[int | None]
    provider: Mapped[str]
    model: Mapped[str]
    cost_usd: Mapped[float]
    outcome: Mapped[str]
    created_at: Mapped[dt.datetime]
    status: Mapped[str]
    run_id: Mapped[str | None]
    fingerprint: Mapped[str | None]
    external_id: Mapped[str | None]
    updated_at: Mapped[dt.datetime | None]
    adjusts: Mapped[int | None]


class Decision(Base):
    __table__ = tables.decisions

    id: Mapped[int]
    entry_id: Mapped[str]
    render_id: Mapped[int]
    decision: Mapped[str]
    note: Mapped[str | None]
    actor: Mapped[str | None]
    created_at: Mapped[dt.datetime]


class Override(Base):
    __table__ = tables.overrides

    entry_id: Mapped[str]
    prompt: Mapped[str | None]
    negative_extra: Mapped[str | None]
    seed: Mapped[int | None]
    style: Mapped[str | None]
    updated_at: Mapped[dt.datetime]


# Configured here, by whoever imports this module, rather than by the first object made: a run imports it on a
# thread while its first calls are out (runner/run.py), and the first Render made on its event loop, when the
# first answer is in, found the mappers unconfigured and configured them there (7 ms with every unit waiting).
configure_mappers()
