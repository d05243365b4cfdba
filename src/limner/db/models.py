"""Tables. The schema runs on SQLite (default) and Postgres.

Per entry, a state machine::

    missing -> queued -> generating -> generated -> published
                  \\-> failed (reason, attempts, retryable)
    published -> stale (fingerprint changed) -> queued ...
"""

from __future__ import annotations

import datetime as dt
import enum
from typing import Any

from sqlalchemy import JSON, BigInteger, Boolean, DateTime, Float, ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC).replace(tzinfo=None)


class Base(DeclarativeBase):
    pass


class EntryState(str, enum.Enum):
    missing = "missing"
    queued = "queued"
    generating = "generating"
    generated = "generated"
    published = "published"
    failed = "failed"
    stale = "stale"
    #: its newest render waits for a person's decision (``[review] required``); the entry keeps its
    #: previously approved image until then
    awaiting_review = "awaiting_review"


class ReviewState(str, enum.Enum):
    """A person's decision on a render (``renders.review``; NULL: nobody looked, and none was asked for)."""

    awaiting = "awaiting"
    approved = "approved"
    rejected = "rejected"


class RenderStatus(str, enum.Enum):
    generated = "generated"  # master stored and recorded; paid for
    derived = "derived"  # variants stored
    published = "published"  # the entry's current image
    superseded = "superseded"  # was published, replaced by a newer render
    rejected = "rejected"  # failed validation (blank, corrupt)


class EntryRow(Base):
    __tablename__ = "entries"

    id: Mapped[str] = mapped_column(String(128), primary_key=True)
    title: Mapped[str] = mapped_column(Text)
    style: Mapped[str | None] = mapped_column(String(128))
    state: Mapped[str] = mapped_column(String(16), default=EntryState.missing.value, index=True)
    #: fingerprint of the job queued or running now
    fingerprint: Mapped[str | None] = mapped_column(String(64))
    published_fingerprint: Mapped[str | None] = mapped_column(String(64))
    #: digest of the inputs (catalogue data, style, provider settings) of the published render;
    #: lets ``plan`` skip rendering prompts for entries that did not change
    input_digest: Mapped[str | None] = mapped_column(String(64))
    published_render_id: Mapped[int | None] = mapped_column(ForeignKey("renders.id", use_alter=True, name="fk_entries_published_render"))
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    retryable: Mapped[bool] = mapped_column(Boolean, default=True)
    last_error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow, onupdate=utcnow)
    #: the run working on this entry now (``runs.id``): no other run calls a provider for it meanwhile
    claimed_by: Mapped[str | None] = mapped_column(String(36), index=True)
    claimed_at: Mapped[dt.datetime | None] = mapped_column(DateTime)
    #: a person pinned the published render: the entry is up to date until regenerated or forced
    pinned: Mapped[bool] = mapped_column(Boolean, default=False, server_default="0")

    published_render: Mapped[Render | None] = relationship(foreign_keys=[published_render_id], post_update=True)


class RunRow(Base):
    """A ``limner generate`` run: who it is and whether it is alive (its claims on entries hold while it is)."""

    __tablename__ = "runs"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    host: Mapped[str] = mapped_column(String(255))
    pid: Mapped[int] = mapped_column(Integer)
    started_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)
    heartbeat_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)
    finished_at: Mapped[dt.datetime | None] = mapped_column(DateTime)
    #: ``worker`` for a queue worker (``limner worker``); None for a ``limner generate`` run
    kind: Mapped[str | None] = mapped_column(String(16))


class SpendCap(Base):
    """A budget shared by queue workers (``limner generate --enqueue --budget``): a worker reserves a
    call's price here before the call goes out, and settles it with what the call cost."""

    __tablename__ = "spend_caps"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    cap_usd: Mapped[float] = mapped_column(Float)
    reserved_usd: Mapped[float] = mapped_column(Float, default=0.0)
    spent_usd: Mapped[float] = mapped_column(Float, default=0.0)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)


class CallStart(Base):
    """When a provider call started, for a rate limit shared by queue workers (``limner worker``): a
    worker counts the starts of the last minute before it starts one. Rows older than a minute are
    deleted as workers go."""

    __tablename__ = "call_starts"
    __table_args__ = (Index("ix_call_starts_provider_started_at", "provider", "started_at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    provider: Mapped[str] = mapped_column(String(64))
    started_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))


class Template(Base):
    """Every style template version ever used, by digest."""

    __tablename__ = "templates"

    sha256: Mapped[str] = mapped_column(String(64), primary_key=True)
    style: Mapped[str] = mapped_column(String(128))
    version: Mapped[str] = mapped_column(String(64))
    positive: Mapped[str] = mapped_column(Text)
    negative: Mapped[str] = mapped_column(Text)
    params: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)


class Render(Base):
    """One generated image: what was asked, what it cost, where the master is."""

    __tablename__ = "renders"
    __table_args__ = (Index("ix_renders_entry_fingerprint", "entry_id", "fingerprint"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    entry_id: Mapped[str] = mapped_column(ForeignKey("entries.id", ondelete="CASCADE"), index=True)
    fingerprint: Mapped[str] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(16), default=RenderStatus.generated.value)
    provider: Mapped[str] = mapped_column(String(64))
    model: Mapped[str] = mapped_column(String(256))
    seed: Mapped[int] = mapped_column(BigInteger)
    prompt: Mapped[str] = mapped_column(Text)
    negative_prompt: Mapped[str] = mapped_column(Text, default="")
    parameters: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    style: Mapped[str] = mapped_column(String(128))
    style_version: Mapped[str] = mapped_column(String(64))
    template_sha: Mapped[str] = mapped_column(ForeignKey("templates.sha256"))
    cost_usd: Mapped[float] = mapped_column(Float, default=0.0)
    latency_ms: Mapped[int] = mapped_column(Integer, default=0)
    attempts: Mapped[int] = mapped_column(Integer, default=1)
    error: Mapped[str | None] = mapped_column(Text)
    provider_metadata: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    master_sha256: Mapped[str] = mapped_column(String(64))
    master_key: Mapped[str] = mapped_column(Text)
    master_format: Mapped[str] = mapped_column(String(8))
    master_bytes: Mapped[int] = mapped_column(Integer)
    width: Mapped[int | None] = mapped_column(Integer)
    height: Mapped[int | None] = mapped_column(Integer)
    phash: Mapped[str | None] = mapped_column(String(64))
    near_duplicate_of: Mapped[str | None] = mapped_column(String(128))
    blurhash: Mapped[str | None] = mapped_column(String(128))
    thumbhash: Mapped[str | None] = mapped_column(String(128))
    dominant_color: Mapped[str | None] = mapped_column(String(7))
    placeholder_key: Mapped[str | None] = mapped_column(Text)
    placeholder_width: Mapped[int | None] = mapped_column(Integer)
    placeholder_height: Mapped[int | None] = mapped_column(Integer)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)
    published_at: Mapped[dt.datetime | None] = mapped_column(DateTime)
    #: a person's decision (see :class:`ReviewState`)
    review: Mapped[str | None] = mapped_column(String(16), index=True)

    variants: Mapped[list[Variant]] = relationship(back_populates="render", cascade="all, delete-orphan", order_by="Variant.width")


class Variant(Base):
    __tablename__ = "variants"
    __table_args__ = (UniqueConstraint("render_id", "width", "format", name="uq_variants_render_width_format"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    render_id: Mapped[int] = mapped_column(ForeignKey("renders.id", ondelete="CASCADE"), index=True)
    width: Mapped[int] = mapped_column(Integer)
    height: Mapped[int] = mapped_column(Integer)
    format: Mapped[str] = mapped_column(String(8))
    key: Mapped[str] = mapped_column(Text)
    sha256: Mapped[str] = mapped_column(String(64))
    bytes: Mapped[int] = mapped_column(Integer)

    render: Mapped[Render] = relationship(back_populates="variants")


class CallStatus(str, enum.Enum):
    """Where a paid call stands (the ledger's ``status``). Open: ``pending`` (written before the call went
    out; ``external_id`` once the provider named it), ``answered`` (the image is in hand, not yet recorded as a
    render: it may be in the recovery folder). Closed: ``recorded`` (its render is recorded), ``failed`` (it
    ended without an image; ``cost_usd`` is what was billed), ``lost`` (no answer will come and the provider
    cannot be asked: the estimate stays in ``cost_usd``). Rows written before the journal existed: ``recorded``."""

    pending = "pending"
    answered = "answered"
    recorded = "recorded"
    failed = "failed"
    lost = "lost"


OPEN_CALLS = (CallStatus.pending.value, CallStatus.answered.value)


class LedgerRow(Base):
    """Every paid (or billed) provider call, written before the call goes out (the paid-call journal):
    its ``cost_usd`` is the list price until the answer says otherwise, so spend never misses a call."""

    __tablename__ = "ledger"
    __table_args__ = (Index("ix_ledger_entry_fingerprint", "entry_id", "fingerprint"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    entry_id: Mapped[str] = mapped_column(String(128), index=True)
    render_id: Mapped[int | None] = mapped_column(ForeignKey("renders.id", ondelete="SET NULL"))
    provider: Mapped[str] = mapped_column(String(64))
    model: Mapped[str] = mapped_column(String(256))
    cost_usd: Mapped[float] = mapped_column(Float, default=0.0)
    outcome: Mapped[str] = mapped_column(String(32))
    created_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)
    status: Mapped[str] = mapped_column(String(16), default=CallStatus.recorded.value, server_default="recorded")
    #: the run that made the call, and the spec it was for (None on rows from before the journal)
    run_id: Mapped[str | None] = mapped_column(String(36), index=True)
    fingerprint: Mapped[str | None] = mapped_column(String(64))
    #: the provider's own id for the call (a prediction id), as soon as it is known
    external_id: Mapped[str | None] = mapped_column(String(256))
    updated_at: Mapped[dt.datetime | None] = mapped_column(DateTime)


class Decision(Base):
    """Every review decision: approve, reject (with its reason), pin; who and when."""

    __tablename__ = "decisions"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    entry_id: Mapped[str] = mapped_column(ForeignKey("entries.id", ondelete="CASCADE"), index=True)
    render_id: Mapped[int] = mapped_column(ForeignKey("renders.id", ondelete="CASCADE"), index=True)
    decision: Mapped[str] = mapped_column(String(16))
    note: Mapped[str | None] = mapped_column(Text)
    actor: Mapped[str | None] = mapped_column(String(128))
    created_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)


class Override(Base):
    """A person's change to one entry's generation: a prompt in place of the style's, extra negative terms,
    a seed, a style. Part of the entry's fingerprint, so setting one makes the entry stale."""

    __tablename__ = "overrides"

    entry_id: Mapped[str] = mapped_column(ForeignKey("entries.id", ondelete="CASCADE"), primary_key=True)
    prompt: Mapped[str | None] = mapped_column(Text)
    negative_extra: Mapped[str | None] = mapped_column(Text)
    seed: Mapped[int | None] = mapped_column(BigInteger)
    style: Mapped[str | None] = mapped_column(String(128))
    updated_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)
