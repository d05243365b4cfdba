"""The statements a unit of work runs for every entry, built once as Core statements with bound parameters.

A run writes about a dozen rows per entry (its claim, the ledger line and its notes, the render, twelve
variants, the publication) from one database thread that shares the interpreter with the event loop.
Through the ORM (a session, a unit-of-work flush, a statement built and its cache key computed at each
call) that cost 14 ms of CPU per entry on a slow 2-core machine, held while the loop waited to send the
next call; these statements are built once (their cache keys are memoised) and run on a plain
connection, for 2.8 ms (``python bench/bench_db.py``).

Statements whose set of columns varies (a settle with or without a cost, the fields a derivation
records) are built once per shape and kept.
"""

from __future__ import annotations

import functools
from typing import Any

from sqlalchemy import Boolean, String, Table, bindparam, case, exists, func, insert, or_, select, update
from sqlalchemy.sql import Executable

from limner.db.tables import (
    GC_KIND,
    OPEN_CALLS,
    EntryState,
    RenderStatus,
    ReviewState,
    entries,
    ledger,
    renders,
    runs,
    variants,
)


def held_on(fingerprint: Any) -> Any:
    """The entry failed for good on ``fingerprint`` (not retried by itself: refused, or rejected in review)."""
    e = entries.c
    return (e.state == EntryState.failed.value) & e.retryable.is_(False) & (e.fingerprint == fingerprint)


class Statements:
    """The hot statements; parameters are named ``p_*`` (a bound name must not be a column's)."""

    def __init__(self) -> None:
        e, r, v, led = entries.c, renders.c, variants.c, ledger.c
        #: no other run holds the entry, and no ``limner gc --delete`` is deleting objects (a run that stores or
        #: adopts an image whose bytes gc is about to delete would record a render pointing at nothing)
        free = (or_(e.claimed_by.is_(None), e.claimed_by == bindparam("p_run"))
                & ~exists(select(runs.c.id).where(runs.c.kind == GC_KIND, runs.c.finished_at.is_(None))))
        #: the image published is still the one the run's plan saw (``p_seen``; ``p_any``: not checked): an image
        #: published since (another run's, a person's regeneration) makes the plan's spec for the entry out of date
        unchanged = or_(bindparam("p_any", type_=Boolean), e.published_fingerprint.is_not_distinct_from(
            bindparam("p_seen", type_=String)))
        claim_values = dict(claimed_by=bindparam("p_run"), claimed_at=bindparam("p_now"),
                            state=EntryState.generating.value, fingerprint=bindparam("p_fp"), updated_at=bindparam("p_now"))
        #: take an entry unless another run holds it, the image for this fingerprint is published already, or
        #: another run failed this fingerprint for good meanwhile (refused, or rejected in review: a plan made
        #: now holds it back, so a run that planned it before must not pay for it again)
        self.claim = update(entries).where(
            e.id == bindparam("p_id"), free,
            or_(e.published_fingerprint.is_(None), e.published_fingerprint != bindparam("p_fp"),
                e.state != EntryState.published.value),
            ~held_on(bindparam("p_fp")), unchanged,
        ).values(**claim_values)
        #: the same for a forced entry: a published image of the same fingerprint is replaced
        self.claim_forced = update(entries).where(e.id == bindparam("p_id"), free, unchanged).values(**claim_values)
        #: the newest render of this spec that was paid for and not published (a run to resume); never one a
        #: person rejected in review (resuming it set it back to awaiting review, or published it without the gate)
        self.resumable_id = (select(r.id).where(
            r.entry_id == bindparam("p_id"), r.fingerprint == bindparam("p_fp"),
            r.status.in_([RenderStatus.generated.value, RenderStatus.derived.value]),
            or_(r.review.is_(None), r.review != ReviewState.rejected.value),
        ).order_by(r.id.desc()).limit(1))
        #: calls for this spec that were made and never closed
        self.open_call_ids = select(led.id).where(
            led.entry_id == bindparam("p_id"), led.fingerprint == bindparam("p_fp"), led.status.in_(OPEN_CALLS),
        ).order_by(led.id)
        self.insert_lines = insert(ledger).returning(led.id, sort_by_parameter_order=True)
        #: who holds these entries, read in the transaction that writes their calls' lines (on PostgreSQL the
        #: rows are share-locked until it commits: a run taking them over waits for it)
        self.holders = select(e.id, e.claimed_by).where(e.id.in_(bindparam("p_ids", expanding=True))).with_for_update(
            read=True)
        self.note_external_id = update(ledger).where(led.id == bindparam("p_id")).values(
            external_id=bindparam("p_external_id"), updated_at=bindparam("p_now"))
        self.insert_render = insert(renders).returning(r.id)
        #: close a call's line with its render, at the answer's cost (less what adjustment lines of other runs
        #: added to it already: usually nothing); a line another run wrote (``p_run``: the run recording it; NULL:
        #: none) keeps the cost that run counted (:meth:`Repository.record_render` writes the difference as this
        #: run's adjustment). Returns the line's run and its cost as left
        mine = or_(led.run_id.is_(None), led.run_id == func.coalesce(bindparam("p_run"), led.run_id))
        self.close_line = update(ledger).where(led.id == bindparam("p_id")).values(
            render_id=bindparam("p_render"),
            cost_usd=case((mine, bindparam("p_cost") - self.adjusted(led.id)), else_=led.cost_usd),
            outcome=bindparam("p_outcome"), status=bindparam("p_status"), updated_at=bindparam("p_now"),
        ).returning(led.id, led.run_id, led.cost_usd, led.provider, led.model, led.fingerprint)
        self.insert_line = insert(ledger)
        self.entry_generated = update(entries).where(e.id == bindparam("p_id")).values(
            state=EntryState.generated.value, updated_at=bindparam("p_now"))
        self.render_of = select(r.entry_id, r.fingerprint).where(r.id == bindparam("p_id"))
        self.variant_shapes = select(v.width, v.format).where(v.render_id == bindparam("p_id"))
        self.insert_variants = insert(variants)
        self.published_render_of = select(e.published_render_id).where(e.id == bindparam("p_id"))
        #: the entry's pin and published image, locked until the run's publication commits (a pin made meanwhile
        #: waits for it, or is seen)
        self.pin_of = select(e.pinned, e.published_render_id).where(e.id == bindparam("p_id")).with_for_update()
        self.supersede = update(renders).where(r.id == bindparam("p_id")).values(status=RenderStatus.superseded.value)
        self.publish_render = update(renders).where(r.id == bindparam("p_id")).values(
            status=RenderStatus.published.value, published_at=bindparam("p_now"))
        self.await_render = update(renders).where(r.id == bindparam("p_id")).values(review=ReviewState.awaiting.value)
        self.publish_entry = update(entries).where(e.id == bindparam("p_id")).values(
            published_render_id=bindparam("p_render"), published_fingerprint=bindparam("p_fp"),
            input_digest=bindparam("p_digest"), fingerprint=bindparam("p_fp"), state=EntryState.published.value,
            last_error=None, retryable=True, updated_at=bindparam("p_now"), claimed_by=None, claimed_at=None,
            pinned=False)
        self.entry_awaits_review = update(entries).where(e.id == bindparam("p_id")).values(
            fingerprint=bindparam("p_fp"), state=EntryState.awaiting_review.value, last_error=None, retryable=True,
            updated_at=bindparam("p_now"), claimed_by=None, claimed_at=None)

    @staticmethod
    def adjusted(line_id: Any) -> Any:
        """What the adjustment lines of the ledger line ``line_id`` add to its cost (a scalar subquery; 0 for none)."""
        adjustment = ledger.alias("adjustment")
        return (select(func.coalesce(func.sum(adjustment.c.cost_usd), 0.0))
                .where(adjustment.c.adjusts == line_id).scalar_subquery())

    @functools.lru_cache(maxsize=64)  # noqa: B019 - one instance for the process (``hot()``)
    def settle(self, columns: tuple[str, ...]) -> Executable:
        """Update a ledger line's ``columns`` (parameters ``p_<column>``) by ``p_id``."""
        return update(ledger).where(ledger.c.id == bindparam("p_id")).values(
            {name: bindparam(f"p_{name}") for name in columns})

    @functools.lru_cache(maxsize=64)  # noqa: B019
    def derive_render(self, columns: tuple[str, ...]) -> Executable:
        """Record a derivation's ``columns`` on a render (parameters ``p_<column>``), its status ``derived``."""
        return update(renders).where(renders.c.id == bindparam("p_id")).values(
            {**{name: bindparam(f"p_{name}") for name in columns}, "status": RenderStatus.derived.value})


@functools.cache
def hot() -> Statements:
    """The statements, built at the first write (not when ``limner status`` imports the repository)."""
    return Statements()


def params(prefix_free: dict[str, Any]) -> dict[str, Any]:
    """``{"a": 1}`` -> ``{"p_a": 1}``: values for the statements built by :meth:`Statements.settle` and
    :meth:`Statements.derive_render`."""
    return {f"p_{k}": v for k, v in prefix_free.items()}


def row_values(row: Any, table: Table) -> dict[str, Any]:
    """Every column of a new ORM row, its Python-side default filled in where it was not set: what a
    Core insert needs, and what the object then holds (as a flush would have set it)."""
    state = row.__dict__
    values: dict[str, Any] = {}
    for column in table.columns:
        if column.key in state:
            values[column.key] = state[column.key]
        elif column.default is not None and column.default.is_scalar:
            values[column.key] = column.default.arg
        elif column.default is not None and column.default.is_callable:
            values[column.key] = column.default.arg(None)  # type: ignore[attr-defined]
    return values
