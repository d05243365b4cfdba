"""The schema as SQLAlchemy Core tables, and the states its rows move through. Runs on SQLite (default)
and PostgreSQL.

Per entry, a state machine::

    missing -> queued -> generating -> generated -> published
                  \\-> failed (reason, attempts, retryable)
    published -> stale (fingerprint changed) -> queued ...

These are plain Core tables so that what runs for every entry (a plan, a unit of work's statements in
:mod:`limner.db.statements`, ``limner status``) imports no ORM: ``sqlalchemy.orm`` and the mapped classes
cost about 80 ms of a command's start-up (``python -X importtime``). The ORM classes that map these
tables, for the code that works with rows as objects (review, sync, resuming a paid render), are in
:mod:`limner.db.models`.
"""

from __future__ import annotations

import datetime as dt
import enum

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
)


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC).replace(tzinfo=None)


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


class CallStatus(str, enum.Enum):
    """Where a paid call stands (the ledger's ``status``). Open: ``pending`` (written before the call went
    out; ``external_id`` once the provider named it), ``answered`` (the image is in hand, not yet recorded as a
    render: it may be kept in ``kept_images`` or a recovery folder). Closed: ``recorded`` (its render is recorded), ``failed`` (it
    ended without an image; ``cost_usd`` is what was billed), ``lost`` (no answer will come and the provider
    cannot be asked: the estimate stays in ``cost_usd``). Rows written before the journal existed: ``recorded``.

    Not a call: ``adjustment``, a line a run writes when it settles another run's open line (a call left open by
    an earlier run, asked about now) and learns another cost than the one that line counts: that line keeps its
    cost (the earlier run's summary counted it so), and the difference (``cost_usd``, negative for a refund) is
    this run's (``adjusts`` names the line). Counted in every sum of spend, never in a count of calls."""

    pending = "pending"
    answered = "answered"
    recorded = "recorded"
    failed = "failed"
    lost = "lost"
    adjustment = "adjustment"


OPEN_CALLS = (CallStatus.pending.value, CallStatus.answered.value)

metadata = MetaData()

entries = Table(
    "entries", metadata,
    Column("id", String(128), primary_key=True),
    Column("title", Text, nullable=False),
    Column("style", String(128)),
    Column("state", String(16), nullable=False, default=EntryState.missing.value, index=True),
    #: fingerprint of the job queued or running now
    Column("fingerprint", String(64)),
    Column("published_fingerprint", String(64)),
    #: digest of the inputs (catalogue data, style, provider settings) of the published render;
    #: lets ``plan`` skip rendering prompts for entries that did not change
    Column("input_digest", String(64)),
    Column("published_render_id", Integer, ForeignKey("renders.id", use_alter=True, name="fk_entries_published_render")),
    Column("attempts", Integer, nullable=False, default=0),
    Column("retryable", Boolean, nullable=False, default=True),
    Column("last_error", Text),
    Column("created_at", DateTime, nullable=False, default=utcnow),
    Column("updated_at", DateTime, nullable=False, default=utcnow, onupdate=utcnow),
    #: the run working on this entry now (``runs.id``): no other run calls a provider for it meanwhile
    Column("claimed_by", String(36), index=True),
    Column("claimed_at", DateTime),
    #: a person pinned the published render: the entry is up to date until regenerated or forced
    Column("pinned", Boolean, nullable=False, default=False, server_default="0"),
)

#: ``runs.kind`` of a ``limner gc --delete``: while one is live, no run claims an entry
GC_KIND = "gc"

#: a ``limner generate`` run (or a queue worker): who it is and whether it is alive (its claims on entries
#: hold while it is)
runs = Table(
    "runs", metadata,
    Column("id", String(36), primary_key=True),
    Column("host", String(255), nullable=False),
    Column("pid", Integer, nullable=False),
    Column("started_at", DateTime, nullable=False, default=utcnow),
    Column("heartbeat_at", DateTime, nullable=False, default=utcnow),
    Column("finished_at", DateTime),
    #: ``worker`` for a queue worker (``limner worker``), ``gc`` for a ``limner gc --delete`` (no entry can be
    #: claimed while one is live), ``adopt`` for ``limner adopt-placeholders``; None for a ``limner generate`` run
    Column("kind", String(16)),
    #: the process table ``pid`` belongs to (:func:`limner.runner.claims.process_table`): only a run of the same
    #: one is judged by its pid; NULL for runs recorded before it was kept (judged by ``host``)
    Column("scope", String(255)),
    #: when the run's process started, in clock ticks since boot (``/proc/<pid>/stat``); None where unknown
    Column("process_start", BigInteger),
)

#: a budget shared by queue workers (``limner generate --enqueue --budget``): a worker reserves a call's
#: price here before the call goes out, and settles it with what the call cost
spend_caps = Table(
    "spend_caps", metadata,
    Column("id", String(36), primary_key=True),
    Column("cap_usd", Float, nullable=False),
    Column("reserved_usd", Float, nullable=False, default=0.0),
    Column("spent_usd", Float, nullable=False, default=0.0),
    Column("created_at", DateTime, nullable=False, default=utcnow),
)

#: what each queue worker has reserved under a cap and not settled yet (its share of ``spend_caps.reserved_usd``):
#: when the worker is gone, its share is counted as spent (its calls may have been paid) instead of held for good
spend_holds = Table(
    "spend_holds", metadata,
    Column("cap_id", String(36), ForeignKey("spend_caps.id", ondelete="CASCADE"), primary_key=True),
    Column("run_id", String(36), primary_key=True),
    Column("reserved_usd", Float, nullable=False, default=0.0),
)

#: when a provider call started, for a rate limit shared by queue workers (``limner worker``): a worker
#: counts the starts of the last minute before it starts one; older rows are deleted as workers go
call_starts = Table(
    "call_starts", metadata,
    Column("id", Integer, primary_key=True),
    Column("provider", String(64), nullable=False),
    Column("started_at", DateTime(timezone=True), nullable=False),
    Index("ix_call_starts_provider_started_at", "provider", "started_at"),
)

#: every style template version ever used, by digest
templates = Table(
    "templates", metadata,
    Column("sha256", String(64), primary_key=True),
    Column("style", String(128), nullable=False),
    Column("version", String(64), nullable=False),
    Column("positive", Text, nullable=False),
    Column("negative", Text, nullable=False),
    Column("params", JSON, nullable=False, default=dict),
    Column("created_at", DateTime, nullable=False, default=utcnow),
)

#: one generated image: what was asked, what it cost, where the master is
renders = Table(
    "renders", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("entry_id", String(128), ForeignKey("entries.id", ondelete="CASCADE"), nullable=False, index=True),
    Column("fingerprint", String(64), nullable=False),
    Column("status", String(16), nullable=False, default=RenderStatus.generated.value),
    Column("provider", String(64), nullable=False),
    Column("model", String(256), nullable=False),
    Column("seed", BigInteger, nullable=False),
    Column("prompt", Text, nullable=False),
    Column("negative_prompt", Text, nullable=False, default=""),
    Column("parameters", JSON, nullable=False, default=dict),
    Column("style", String(128), nullable=False),
    Column("style_version", String(64), nullable=False),
    Column("template_sha", String(64), ForeignKey("templates.sha256"), nullable=False),
    Column("cost_usd", Float, nullable=False, default=0.0),
    Column("latency_ms", Integer, nullable=False, default=0),
    Column("attempts", Integer, nullable=False, default=1),
    Column("error", Text),
    Column("provider_metadata", JSON, nullable=False, default=dict),
    Column("master_sha256", String(64), nullable=False),
    Column("master_key", Text, nullable=False),
    Column("master_format", String(8), nullable=False),
    Column("master_bytes", Integer, nullable=False),
    Column("width", Integer),
    Column("height", Integer),
    Column("phash", String(64)),
    Column("near_duplicate_of", String(128)),
    Column("blurhash", String(128)),
    Column("thumbhash", String(128)),
    Column("dominant_color", String(7)),
    Column("placeholder_key", Text),
    Column("placeholder_width", Integer),
    Column("placeholder_height", Integer),
    Column("created_at", DateTime, nullable=False, default=utcnow),
    Column("published_at", DateTime),
    #: a person's decision (see :class:`ReviewState`)
    Column("review", String(16), index=True),
    Index("ix_renders_entry_fingerprint", "entry_id", "fingerprint"),
)

variants = Table(
    "variants", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("render_id", Integer, ForeignKey("renders.id", ondelete="CASCADE"), nullable=False, index=True),
    Column("width", Integer, nullable=False),
    Column("height", Integer, nullable=False),
    Column("format", String(8), nullable=False),
    Column("key", Text, nullable=False),
    Column("sha256", String(64), nullable=False),
    Column("bytes", Integer, nullable=False),
    UniqueConstraint("render_id", "width", "format", name="uq_variants_render_width_format"),
)

#: every paid (or billed) provider call, written before the call goes out (the paid-call journal): its
#: ``cost_usd`` is the list price until the answer says otherwise, so spend never misses a call
ledger = Table(
    "ledger", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("entry_id", String(128), nullable=False, index=True),
    Column("render_id", Integer, ForeignKey("renders.id", ondelete="SET NULL")),
    Column("provider", String(64), nullable=False),
    Column("model", String(256), nullable=False),
    Column("cost_usd", Float, nullable=False, default=0.0),
    Column("outcome", String(32), nullable=False),
    Column("created_at", DateTime, nullable=False, default=utcnow),
    Column("status", String(16), nullable=False, default=CallStatus.recorded.value, server_default="recorded"),
    #: the run that made the call, and the spec it was for (None on rows from before the journal)
    Column("run_id", String(36), index=True),
    Column("fingerprint", String(64)),
    #: the provider's own id for the call (a prediction id), as soon as it is known
    Column("external_id", String(256)),
    Column("updated_at", DateTime),
    #: on an ``adjustment`` line: the line of the call it adjusts (a call's cost is its line's plus its adjustments)
    Column("adjusts", Integer, index=True),
    Index("ix_ledger_entry_fingerprint", "entry_id", "fingerprint"),
)

#: a paid image that could not be stored or recorded (the store, or a write of the database, failed after the
#: provider answered), with what is needed to record it: every host sharing the database records it without paying
#: again (a run's recovery folder is seen by its own host only). Written in the transaction that notes its ledger
#: line ``answered``; deleted in the one that records its render (:meth:`limner.db.repository.Repository.record_render`)
kept_images = Table(
    "kept_images", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("entry_id", String(128), nullable=False),
    Column("fingerprint", String(64), nullable=False),
    #: the ledger line of the call that paid for it (None: a call without one)
    Column("call_id", Integer),
    Column("sha256", String(64), nullable=False),
    #: what records it as a render (:class:`limner.runner.recovery.Kept`'s fields)
    Column("record", JSON, nullable=False),
    #: the bytes exactly as the provider sent them
    Column("data", LargeBinary, nullable=False),
    #: the host whose run kept it
    Column("host", String(255), nullable=False),
    Column("created_at", DateTime, nullable=False, default=utcnow),
    Index("ix_kept_images_entry_fingerprint", "entry_id", "fingerprint"),
)

#: every review decision: approve, reject (with its reason), pin; who and when
decisions = Table(
    "decisions", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("entry_id", String(128), ForeignKey("entries.id", ondelete="CASCADE"), nullable=False, index=True),
    Column("render_id", Integer, ForeignKey("renders.id", ondelete="CASCADE"), nullable=False, index=True),
    Column("decision", String(16), nullable=False),
    Column("note", Text),
    Column("actor", String(128)),
    Column("created_at", DateTime, nullable=False, default=utcnow),
)

#: a person's change to one entry's generation: a prompt in place of the style's, extra negative terms, a
#: seed, a style. Part of the entry's fingerprint, so setting one makes the entry stale
overrides = Table(
    "overrides", metadata,
    Column("entry_id", String(128), ForeignKey("entries.id", ondelete="CASCADE"), primary_key=True),
    Column("prompt", Text),
    Column("negative_extra", Text),
    Column("seed", BigInteger),
    Column("style", String(128)),
    Column("updated_at", DateTime, nullable=False, default=utcnow),
)
