"""The queries Limner runs. Every write commits at once: each stage of a unit of work is durable.

What a plan, a unit of work and ``limner status`` run is written against the Core tables
(:mod:`limner.db.tables`); the methods that return rows as objects (a render to resume, a run holding a
claim, the renders a manifest lists) import the ORM classes (:mod:`limner.db.models`) when first called.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from types import EllipsisType
from typing import TYPE_CHECKING, Any, NamedTuple

from sqlalchemy import case, delete, exists, func, insert, or_, select, text, true, update

from limner.db.engine import Database
from limner.db.statements import held_on, hot, params, row_values
from limner.db.tables import (
    GC_KIND,
    OPEN_CALLS,
    CallStatus,
    EntryState,
    RenderStatus,
    entries,
    kept_images,
    ledger,
    overrides,
    renders,
    runs,
    spend_caps,
    spend_holds,
    templates,
    utcnow,
    variants,
)

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

    from limner.db.models import LedgerRow, Render, RunRow, SpendCap

E, R, V, L, K = entries.c, renders.c, variants.c, ledger.c, kept_images.c
STATUS_COLUMNS = (E.id, E.state, E.fingerprint, E.published_fingerprint, E.retryable, E.attempts, E.last_error,
                  E.input_digest, E.pinned)


def insert_ignoring_duplicates(db: Database, table: Any, key: str) -> Any:
    """An insert into ``table`` that skips rows whose ``key`` is there already (another run or process
    inserting the same row at the same moment: the first one wins), in the database's own dialect."""
    dialect = db.engine.dialect.name
    if dialect == "sqlite":
        from sqlalchemy.dialects.sqlite import insert as dialect_insert
    elif dialect == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as dialect_insert
    else:  # pragma: no cover - other databases: a plain insert (a duplicate raises)
        return insert(table)
    return dialect_insert(table).on_conflict_do_nothing(index_elements=[key])


def _unfinished_back(*where: Any) -> Any:
    """The entries ``where`` selects that a claim left ``generating``: back to ``queued`` when they show no
    image, back to ``published`` when they still show one and nothing paid for their spec is left open.

    An entry with paid work open for the spec it was claimed for (a ledger line still open: a call killed in
    flight, an answer kept in the recovery folder; or a render paid for and not yet published) stays
    ``generating``: as ``published`` (of an older image of the same fingerprint, for a forced run) the next
    run's claim would leave it alone and the paid image would never be fetched."""
    open_call = (select(L.id).where(L.entry_id == E.id, L.fingerprint == E.fingerprint, L.status.in_(OPEN_CALLS))
                 .exists())
    unpublished = (select(R.id).where(R.entry_id == E.id, R.fingerprint == E.fingerprint,
                                      R.status.in_([RenderStatus.generated.value, RenderStatus.derived.value])).exists())
    return (update(entries)
            .where(*where, E.state == EntryState.generating.value,
                   or_(E.published_render_id.is_(None), ~or_(open_call, unpublished)))
            .values(state=case((E.published_render_id.is_not(None), EntryState.published.value),
                               else_=EntryState.queued.value)))


def _calls() -> Any:
    """How many of the ledger lines selected are calls (an adjustment line is not one)."""
    return func.coalesce(func.sum(case((L.status == CallStatus.adjustment.value, 0), else_=1)), 0)


def _objects(db: Database) -> Session:
    """A read-only session for the methods that return ORM objects (imports the ORM at the first)."""
    from sqlalchemy.orm import Session

    return Session(db.engine, expire_on_commit=False)


class ClaimLost(Exception):
    """A run's paid call for an entry it no longer holds (another run took it over): no line is written, and
    the call must not go out."""


class EntryStatus(NamedTuple):
    id: str
    state: str
    fingerprint: str | None
    published_fingerprint: str | None
    retryable: bool
    attempts: int
    last_error: str | None
    input_digest: str | None = None
    pinned: bool = False


class EntryOverride(NamedTuple):
    """A person's change to one entry's generation (see :class:`limner.db.models.Override`)."""

    prompt: str | None = None
    negative_extra: str | None = None
    seed: int | None = None
    style: str | None = None


class KeptImage(NamedTuple):
    """A paid image kept in the database after a fault (``kept_images``): its row, what records it, its bytes."""

    id: int
    record: dict[str, Any]
    data: bytes


class RunSpend(NamedTuple):
    """What one run's ledger lines add up to (:meth:`Repository.run_spend`)."""

    #: its provider calls (its adjustment lines are none)
    calls: int
    #: everything it spent, its adjustments included
    usd: float
    #: the part of ``usd`` that corrects calls of other runs this run settled (:attr:`CallStatus.adjustment`)
    adjustments_usd: float


class Claim(NamedTuple):
    """The answer to :meth:`Repository.claim`: ``claimed`` (with the render of this spec that was paid for
    but not published yet, if any: resume from it); ``published`` (another run published this very image
    meanwhile, or failed its spec for good); or ``held`` by the run ``holder``."""

    status: str
    holder: RunRow | None = None
    resumable: Render | None = None
    #: calls for this image that were made (maybe paid) and never closed: asked about before paying again
    open_calls: tuple[LedgerRow, ...] = ()


class Repository:
    def __init__(self, db: Database) -> None:
        self.db = db

    # ------------------------------------------------------------------ runs and claims
    def start_run(self, run_id: str, host: str, pid: int, *, kind: str | None = None, scope: str | None = None,
                  process_start: int | None = None) -> None:
        now = utcnow()
        with self.db.write() as conn:
            conn.execute(insert(runs).values(id=run_id, host=host, pid=pid, started_at=now, heartbeat_at=now, kind=kind,
                                             scope=scope, process_start=process_start))

    def release_claim(self, entry_id: str, run_id: str) -> None:
        """Give one entry back (a queue worker whose job stopped before the entry was done)."""
        with self.db.write() as conn:
            conn.execute(_unfinished_back(E.id == entry_id, E.claimed_by == run_id))
            conn.execute(update(entries).where(E.id == entry_id, E.claimed_by == run_id)
                         .values(claimed_by=None, claimed_at=None))

    def live_runs(self, *, kind: str | None = None) -> list[tuple[RunRow, list[str]]]:
        """Runs not finished (of ``kind``, if given), oldest first, each with the entries it holds."""
        from limner.db.models import RunRow

        with _objects(self.db) as s:
            q = select(RunRow).where(RunRow.finished_at.is_(None))
            if kind is not None:
                q = q.where(RunRow.kind == kind)
            found = list(s.scalars(q.order_by(RunRow.started_at)))
            held: dict[str, list[str]] = {}
            for entry_id, run_id in s.execute(select(E.id, E.claimed_by).where(
                    E.claimed_by.in_([r.id for r in found])).order_by(E.id)):
                held.setdefault(run_id, []).append(entry_id)
            return [(r, held.get(r.id, [])) for r in found]

    # ------------------------------------------------------------------ spend caps shared by queue workers
    def open_spend_cap(self, cap_id: str, cap_usd: float) -> None:
        c = spend_caps.c
        with self.db.write() as conn:
            if conn.execute(update(spend_caps).where(c.id == cap_id).values(cap_usd=cap_usd)).rowcount == 0:
                conn.execute(insert(spend_caps).values(id=cap_id, cap_usd=cap_usd, reserved_usd=0.0, spent_usd=0.0,
                                                       created_at=utcnow()))

    def reserve_spend(self, cap_id: str, price_usd: float, run_id: str | None = None) -> bool:
        """Reserve ``price_usd`` under the cap, atomically across processes: False when spent + reserved +
        price would pass it. With ``run_id``, the reservation is also recorded as that run's share
        (``spend_holds``), which :meth:`reclaim_spend` counts as spent once the run is gone."""
        c, h = spend_caps.c, spend_holds.c
        with self.db.write() as conn:
            done = conn.execute(update(spend_caps).where(
                c.id == cap_id, c.spent_usd + c.reserved_usd + price_usd <= c.cap_usd + 1e-9,
            ).values(reserved_usd=c.reserved_usd + price_usd))  # the cap's row stays locked to the commit
            if done.rowcount != 1:
                return False
            if run_id is not None and not conn.execute(update(spend_holds).where(h.cap_id == cap_id, h.run_id == run_id)
                                                       .values(reserved_usd=h.reserved_usd + price_usd)).rowcount:
                conn.execute(insert(spend_holds).values(cap_id=cap_id, run_id=run_id, reserved_usd=price_usd))
            return True

    def settle_spend(self, cap_id: str, reserved_usd: float, actual_usd: float, run_id: str | None = None) -> None:
        """A reservation is over: ``actual_usd`` is spent and ``reserved_usd`` is no longer held. The part of it
        :meth:`reclaim_spend` already counted as spent (the run was judged gone, and was not) is not counted twice."""
        c, h = spend_caps.c, spend_holds.c
        with self.db.write() as conn:
            conn.execute(select(c.id).where(c.id == cap_id).with_for_update())  # the order reserve takes them in
            released, reclaimed = reserved_usd, 0.0
            if run_id is not None:
                held = conn.execute(select(h.reserved_usd).where(h.cap_id == cap_id, h.run_id == run_id)).scalar()
                released = min(reserved_usd, held or 0.0)
                reclaimed = reserved_usd - released
                if held is not None and held - released > 1e-12:
                    conn.execute(update(spend_holds).where(h.cap_id == cap_id, h.run_id == run_id)
                                 .values(reserved_usd=held - released))
                elif held is not None:
                    conn.execute(delete(spend_holds).where(h.cap_id == cap_id, h.run_id == run_id))
            conn.execute(update(spend_caps).where(c.id == cap_id).values(
                reserved_usd=c.reserved_usd - released, spent_usd=c.spent_usd + actual_usd - reclaimed))

    def reclaim_spend(self, cap_id: str, live_run_ids: set[str]) -> float:
        """The shares of the cap reserved by runs not in ``live_run_ids`` (workers that died between a reservation
        and its settling) are counted as spent (their calls may have been paid) and no longer held. Returns the
        amount moved."""
        c, h = spend_caps.c, spend_holds.c
        with self.db.write() as conn:
            conn.execute(select(c.id).where(c.id == cap_id).with_for_update())
            dead = [(run_id, amount) for run_id, amount in
                    conn.execute(select(h.run_id, h.reserved_usd).where(h.cap_id == cap_id)) if run_id not in live_run_ids]
            if not dead:
                return 0.0
            moved = sum(amount for _run_id, amount in dead)
            conn.execute(delete(spend_holds).where(h.cap_id == cap_id, h.run_id.in_([run_id for run_id, _ in dead])))
            conn.execute(update(spend_caps).where(c.id == cap_id).values(
                reserved_usd=c.reserved_usd - moved, spent_usd=c.spent_usd + moved))
            return moved

    def spend_cap(self, cap_id: str) -> SpendCap | None:
        from limner.db.models import SpendCap

        with _objects(self.db) as s:
            return s.get(SpendCap, cap_id)

    def heartbeat(self, run_id: str) -> bool:
        """The run beats; False when its row was ended meanwhile (another run judged it gone)."""
        with self.db.write() as conn:
            return bool(conn.execute(update(runs).where(runs.c.id == run_id, runs.c.finished_at.is_(None))
                                     .values(heartbeat_at=utcnow())).rowcount)

    def end_run(self, run_id: str) -> None:
        """The run is over (or found dead): its claims are released, and the entries it left ``generating``
        (stopped before an image was recorded) are back where they were: ``published`` when they still show
        an image, ``queued`` otherwise."""
        with self.db.write() as conn:
            conn.execute(_unfinished_back(E.claimed_by == run_id))
            conn.execute(update(entries).where(E.claimed_by == run_id).values(claimed_by=None, claimed_at=None))
            conn.execute(update(runs).where(runs.c.id == run_id, runs.c.finished_at.is_(None)).values(finished_at=utcnow()))

    def claim(self, entry_id: str, fingerprint: str, run_id: str, *, force: bool = False,
              published_seen: str | None | EllipsisType = ...) -> Claim:
        """Take an entry for this run before any provider call, atomically: it succeeds only when no other
        run holds the entry and (unless ``force``) the image for ``fingerprint`` is not published yet; with
        ``published_seen`` (the fingerprint of the image published when the run planned the entry, None for
        none), only while that is still the one published."""
        st = hot()
        key = {"p_id": entry_id, "p_fp": fingerprint}
        seen = {"p_any": published_seen is ..., "p_seen": None if published_seen is ... else published_seen}
        with self.db.write() as conn:
            self._gc_lock(conn, shared=True)
            done = conn.execute(st.claim_forced if force else st.claim,
                                {**key, **seen, "p_run": run_id, "p_now": utcnow()})
            if done.rowcount == 1:  # always looked up: another run may have paid for this image and died
                resumable = conn.execute(st.resumable_id, key).first()
                open_calls = conn.execute(st.open_call_ids, key).first() if resumable is None else None
                if resumable is None and open_calls is None:  # the usual answer: a new image to generate
                    return Claim("claimed")
                from sqlalchemy.orm import Session

                from limner.db.models import Render

                with Session(bind=conn, expire_on_commit=False) as s:  # rows to resume from: as objects
                    if resumable is not None:
                        return Claim("claimed", resumable=s.get(Render, resumable[0]))
                    return Claim("claimed", open_calls=tuple(self._open_calls(s, entry_id, fingerprint)))
            return self._not_claimed(conn, entry_id, run_id)

    def _gc_lock(self, conn: Any, *, shared: bool) -> None:
        """On PostgreSQL, order a claim (``shared``) against a ``limner gc --delete`` starting (exclusive): a
        claim that read "no gc" has committed before gc looks for runs at work, or waits for gc's row. SQLite's
        write lock orders them already."""
        if self.db.engine.dialect.name == "postgresql":
            lock = "pg_advisory_xact_lock_shared" if shared else "pg_advisory_xact_lock"
            conn.execute(text(f"SELECT {lock}(hashtextextended('limner:gc', 0))"))

    @staticmethod
    def _not_claimed(conn: Any, entry_id: str, run_id: str) -> Claim:
        """Why a claim's update changed no row: ``held`` by a live ``limner gc --delete`` or by another run (as
        an object), or ``published``."""
        from sqlalchemy.orm import Session

        from limner.db.models import RunRow

        with Session(bind=conn, expire_on_commit=False) as s:
            gc = s.scalars(select(RunRow).where(RunRow.kind == GC_KIND, RunRow.finished_at.is_(None))
                           .order_by(RunRow.started_at).limit(1)).first()
            if gc is not None:
                return Claim("held", gc)
            holder = conn.execute(select(E.claimed_by).where(E.id == entry_id)).scalar()
            if holder in (None, run_id):
                return Claim("published")
            return Claim("held", s.get(RunRow, holder))

    def start_gc(self, run_id: str, host: str, pid: int, *, scope: str | None = None,
                 process_start: int | None = None) -> None:
        """Record a ``limner gc --delete`` as a live run of kind ``gc``: from the commit on, no run claims an
        entry until it ends (:meth:`end_run`), or is found gone. Runs that hold entries already are for the
        caller to look for next (:func:`limner.sync.gc.busy`)."""
        now = utcnow()
        with self.db.write() as conn:
            self._gc_lock(conn, shared=False)
            conn.execute(insert(runs).values(id=run_id, host=host, pid=pid, started_at=now, heartbeat_at=now,
                                             kind=GC_KIND, scope=scope, process_start=process_start))

    # ------------------------------------------------------------------ reads
    def entry_statuses(self) -> dict[str, EntryStatus]:
        with self.db.engine.connect() as conn:  # plain rows: this query reads every entry
            return {r[0]: EntryStatus(*r) for r in conn.execute(select(*STATUS_COLUMNS))}

    def entry_status(self, entry_id: str) -> EntryStatus | None:
        """One entry's status (None: no row yet), by its primary key: what a queue job plans its entry
        with, instead of reading every entry's status."""
        query = select(*STATUS_COLUMNS).where(E.id == entry_id)
        with self.db.engine.connect() as conn:
            row = conn.execute(query).first()
        return EntryStatus(*row) if row is not None else None

    def entry_override(self, entry_id: str) -> EntryOverride | None:
        """A person's override of one entry's generation (None: there is none)."""
        o = overrides.c
        query = select(o.prompt, o.negative_extra, o.seed, o.style).where(o.entry_id == entry_id)
        with self.db.engine.connect() as conn:
            row = conn.execute(query).first()
        return EntryOverride(*row) if row is not None else None

    def published_render_ids_of(self, ids: Iterable[str]) -> dict[str, int]:
        """entry id -> id of its published render, for these entries (those with none are left out)."""
        ids = list(ids)
        found: dict[str, int] = {}
        with self.db.engine.connect() as conn:
            for i in range(0, len(ids), 5000):
                found.update(conn.execute(select(E.id, E.published_render_id).where(
                    E.id.in_(ids[i:i + 5000]), E.published_render_id.is_not(None))).all())
        return found

    def claim_to_replace(self, entry_id: str, run_id: str, replaces: int | None) -> Claim:
        """Take an entry for this run to replace its published image (a forced queue job), atomically: only
        while no other run holds it and its published render is still ``replaces`` (the one published when
        the job was enqueued). ``published``: another image was published since, so the job is done;
        ``held``: another run holds it. The unit of work's own claim then finds it held by this run."""
        now = utcnow()
        same = E.published_render_id.is_(None) if replaces is None else E.published_render_id == replaces
        no_gc = ~exists(select(runs.c.id).where(runs.c.kind == GC_KIND, runs.c.finished_at.is_(None)))
        with self.db.write() as conn:
            self._gc_lock(conn, shared=True)
            done = conn.execute(update(entries).where(
                E.id == entry_id, or_(E.claimed_by.is_(None), E.claimed_by == run_id), same, no_gc,
            ).values(claimed_by=run_id, claimed_at=now))
            if done.rowcount == 1:
                return Claim("claimed")
            return self._not_claimed(conn, entry_id, run_id)

    def overrides(self) -> dict[str, EntryOverride]:
        """entry id -> a person's override of its generation (usually none: one small query per plan)."""
        o = overrides.c
        with self.db.engine.connect() as conn:
            return {r[0]: EntryOverride(*r[1:]) for r in conn.execute(select(
                o.entry_id, o.prompt, o.negative_extra, o.seed, o.style))}

    def published_renders(self, ids: Iterable[str] | None = None) -> list[Render]:
        from sqlalchemy.orm import selectinload

        from limner.db.models import Render

        with _objects(self.db) as s:
            q = (
                select(Render)
                .join(entries, E.published_render_id == Render.id)
                .options(selectinload(Render.variants))
                .order_by(Render.entry_id)
            )
            if ids is not None:
                q = q.where(Render.entry_id.in_(list(ids)))
            return list(s.scalars(q).all())

    def phashes(self) -> dict[str, str]:
        """entry id -> perceptual hash of its published image."""
        with self.db.engine.connect() as conn:
            rows = conn.execute(select(R.entry_id, R.phash).join(entries, E.published_render_id == R.id)).all()
        return {e: p for e, p in rows if p}

    def counts_by_state(self) -> dict[str, int]:
        with self.db.engine.connect() as conn:
            return dict(conn.execute(select(E.state, func.count()).group_by(E.state)).all())  # type: ignore[arg-type]

    def spend(self) -> float:
        with self.db.engine.connect() as conn:
            return float(conn.scalar(select(func.coalesce(func.sum(L.cost_usd), 0.0))) or 0.0)

    def spend_by(self, *, since: dt.date | None = None) -> list[tuple[str, str, str, int, float]]:
        """(day, provider, model, calls, USD) from the ledger, oldest first (an adjustment line counts in USD, on
        the day it was written, and is no call)."""
        day = func.date(L.created_at)
        query = select(day, L.provider, L.model, _calls(), func.sum(L.cost_usd))
        if since is not None:
            query = query.where(L.created_at >= dt.datetime.combine(since, dt.time()))
        query = query.group_by(day, L.provider, L.model).order_by(day, L.provider, L.model)
        with self.db.engine.connect() as conn:
            return [(str(d), p, m, int(n or 0), float(c or 0)) for d, p, m, n, c in conn.execute(query).all()]

    def failures(self) -> list[tuple[str, str | None, int, bool]]:
        with self.db.engine.connect() as conn:
            return [tuple(r) for r in conn.execute(  # type: ignore[misc]
                select(E.id, E.last_error, E.attempts, E.retryable)
                .where(E.state == EntryState.failed.value)
                .order_by(E.id)
            ).all()]

    def all_object_keys(self) -> set[str]:
        with self.db.engine.connect() as conn:
            keys = set(conn.scalars(select(R.master_key)).all())
            keys |= {k for k in conn.scalars(select(R.placeholder_key)).all() if k}
            keys |= set(conn.scalars(select(V.key)).all())
        return keys

    def renders_for(self, entry_id: str) -> list[Render]:
        from limner.db.models import Render

        with _objects(self.db) as s:
            return list(s.scalars(select(Render).where(Render.entry_id == entry_id).order_by(Render.id)).all())

    # ------------------------------------------------------------------ writes
    def sync_entries(self, items: Iterable[tuple[str, str, str | None, str]], *, stale_ids: Iterable[str] = (),
                     published_seen: dict[str, str | None] | None = None) -> None:
        """Queue entries: (id, title, style, fingerprint). Creates missing rows; marks stale ones. With
        ``published_seen`` (entry id -> the fingerprint of the image published when it was planned), an entry
        whose published image changed since is left as it is (its claim is refused: see :meth:`claim`)."""
        seen = published_seen or {}
        now = utcnow()
        items = list(items)
        with self.db.write() as conn:
            existing = set(conn.scalars(select(E.id).where(E.id.in_([i[0] for i in items]))).all()) if len(items) < 30000 else set(conn.scalars(select(E.id)).all())
            new_rows: list[dict[str, Any]] = []
            for entry_id, title, style, fingerprint in items:
                if entry_id in existing:
                    conn.execute(  # an entry another run is working on, has just published as planned, or has
                        update(entries)  # failed for good on this spec (a forced item's claim takes it all the same)
                        .where(E.id == entry_id, E.claimed_by.is_(None),
                               or_(E.state != EntryState.published.value, E.published_fingerprint.is_(None),
                                   E.published_fingerprint != fingerprint),
                               ~held_on(fingerprint),
                               E.published_fingerprint.is_not_distinct_from(seen[entry_id]) if entry_id in seen else true())
                        .values(title=title, style=style, fingerprint=fingerprint, state=EntryState.queued.value, updated_at=now)
                    )
                else:
                    new_rows.append({"id": entry_id, "title": title, "style": style, "fingerprint": fingerprint,
                                     "state": EntryState.queued.value, "attempts": 0, "retryable": True,
                                     "created_at": now, "updated_at": now})
            if new_rows:  # another run may be queuing the same new entries right now: first one wins
                conn.execute(insert_ignoring_duplicates(self.db, entries, "id"), new_rows)
            stale = list(stale_ids)
            if stale:
                conn.execute(update(entries).where(E.id.in_(stale), E.state == EntryState.published.value)
                             .values(state=EntryState.stale.value, updated_at=now))

    def ensure_entry(self, entry_id: str, title: str, style: str | None) -> None:
        """The entry's row, created (``missing``) when it was never planned; an existing row is left as it is."""
        now = utcnow()
        with self.db.write() as conn:
            conn.execute(insert_ignoring_duplicates(self.db, entries, "id"),
                         [{"id": entry_id, "title": title, "style": style, "state": EntryState.missing.value,
                           "attempts": 0, "retryable": True, "created_at": now, "updated_at": now}])

    def mark_stale(self, ids: Iterable[str]) -> None:
        ids = list(ids)
        if not ids:
            return
        with self.db.write() as conn:
            conn.execute(update(entries).where(E.id.in_(ids), E.state == EntryState.published.value)
                         .values(state=EntryState.stale.value, updated_at=utcnow()))

    def set_state(self, entry_id: str, state: EntryState, **values: Any) -> None:
        with self.db.write() as conn:
            conn.execute(update(entries).where(E.id == entry_id).values(state=state.value, updated_at=utcnow(), **values))

    def mark_failed(self, entry_id: str, error: str, *, retryable: bool, attempts: int, run_id: str | None = None) -> None:
        """Record an entry's failure and release its claim. With ``run_id``, only while that run holds the entry:
        a run judged gone (its heartbeat stalled on another host) whose entry another run took over leaves it
        to that run (clearing its claim let a third run pay for the entry while that run's call was out)."""
        with self.db.write() as conn:
            conn.execute(
                update(entries)
                .where(E.id == entry_id, true() if run_id is None else E.claimed_by == run_id)
                .values(state=EntryState.failed.value, last_error=error[:2000], retryable=retryable,
                        attempts=E.attempts + attempts, updated_at=utcnow(), claimed_by=None, claimed_at=None)
            )

    def ensure_template(self, sha: str, *, style: str, version: str, positive: str, negative: str, params: dict[str, Any]) -> None:
        """Record a template version once (another run recording the same one at the same moment is fine)."""
        with self.db.write() as conn:
            conn.execute(insert_ignoring_duplicates(self.db, templates, "sha256").values(
                sha256=sha, style=style, version=version, positive=positive, negative=negative, params=params,
                created_at=utcnow()))

    def record_render(self, render: Render, *, call_id: int | None = None, ledger_outcome: str = "generated",
                      kept_id: int | None = None, run_id: str | None = None) -> Render:
        """Record a paid generation (master already stored) and close its ledger line, in one commit: the
        journal's row ``call_id`` when the call was journaled, else a new line. ``kept_id``: the image came from
        ``kept_images`` (see :meth:`keep_image`), whose row goes in the same commit. ``run_id``: the run recording
        it; a line another run wrote keeps its cost, and the difference is an adjustment line of ``run_id``
        (see :meth:`_adjust`). Without one, the line takes the render's cost."""
        from sqlalchemy.orm import make_transient_to_detached

        st, now = hot(), utcnow()
        values = row_values(render, renders)
        with self.db.write() as conn:
            render_id = conn.execute(st.insert_render, values).scalar_one()
            closed = None
            if call_id is not None:
                closed = conn.execute(st.close_line, {"p_id": call_id, "p_render": render_id, "p_cost": render.cost_usd,
                                                      "p_outcome": ledger_outcome, "p_status": CallStatus.recorded.value,
                                                      "p_now": now, "p_run": run_id}).first()
            if closed is not None:
                self._adjust(conn, closed, entry_id=render.entry_id, cost_usd=render.cost_usd, run_id=run_id,
                             render_id=render_id, now=now)
            else:
                conn.execute(st.insert_line, {
                    "entry_id": render.entry_id, "render_id": render_id, "provider": render.provider,
                    "model": render.model, "cost_usd": render.cost_usd, "outcome": ledger_outcome,
                    "status": CallStatus.recorded.value, "fingerprint": render.fingerprint, "created_at": now,
                    "updated_at": now, "run_id": None, "external_id": None})
            conn.execute(st.entry_generated, {"p_id": render.entry_id, "p_now": now})
            if kept_id is not None:
                conn.execute(delete(kept_images).where(K.id == kept_id))
        # the object now holds what was written, as a flush would have left it: a row of the database
        for name, value in values.items():
            setattr(render, name, value)
        render.id = render_id
        make_transient_to_detached(render)
        return render

    # ------------------------------------------------------------------ the paid-call journal (the ledger)
    def open_call(self, *, entry_id: str, fingerprint: str, run_id: str, provider: str, model: str,
                  estimate_usd: float) -> int:
        """Write a paid call's line before the call goes out, at the list price: if the process dies while
        the call is out, spend still counts it and the next run knows it was made."""
        [call_id] = self.open_call_lines([dict(entry_id=entry_id, fingerprint=fingerprint, run_id=run_id,
                                               provider=provider, model=model, estimate_usd=estimate_usd)])
        if call_id is None:
            raise ClaimLost(f"{entry_id}: run {run_id} no longer holds it")
        return call_id

    def open_call_lines(self, lines: list[dict[str, Any]]) -> list[int | None]:
        """:meth:`open_call` for several calls in one transaction (the runner's group commit); ids in order.
        A line is written only while its run holds the entry (None in its place otherwise: the call must not go
        out). A run judged gone (its heartbeat stalled past the lease on another host) may resume after another
        run took its entries over; checked here, in the same transaction, it starts no call for them."""
        now = utcnow()
        with self.db.write() as conn:
            held = dict(conn.execute(hot().holders, {"p_ids": sorted({line["entry_id"] for line in lines})}).all())
            mine = [line for line in lines if held.get(line["entry_id"]) == line["run_id"]]
            rows = [{"entry_id": line["entry_id"], "fingerprint": line["fingerprint"], "run_id": line["run_id"],
                     "provider": line["provider"], "model": line["model"], "cost_usd": line["estimate_usd"],
                     "outcome": "pending", "status": CallStatus.pending.value, "created_at": now, "updated_at": now,
                     "render_id": None, "external_id": None} for line in mine]
            ids = iter([int(i) for i in conn.execute(hot().insert_lines, rows).scalars()] if rows else [])
        return [next(ids) if held.get(line["entry_id"]) == line["run_id"] else None for line in lines]

    def keep_image(self, record: dict[str, Any], data: bytes, *, host: str, run_id: str | None = None) -> int:
        """Keep a paid image that could not be stored or recorded (the store failed after the provider answered),
        and note its ledger line (``record["call_id"]``) ``answered`` at ``record["cost_usd"]``, in one
        transaction: the line never says answered without the image, on any host that shares the database.
        ``record``: what records it as a render (:class:`limner.runner.recovery.Kept`'s fields). ``run_id``: the run
        keeping it (the line of another run's call keeps its cost: see :meth:`settle_call`). Returns its id;
        :meth:`record_render` with ``kept_id`` removes it."""
        now = utcnow()
        with self.db.write() as conn:
            kept_id = conn.execute(insert(kept_images).returning(K.id).values(
                entry_id=record["entry_id"], fingerprint=record["fingerprint"], call_id=record.get("call_id"),
                sha256=record["sha256"], record=record, data=data, host=host[:255], created_at=now)).scalar_one()
            if record.get("call_id") is not None:
                self._settle(conn, record["call_id"], {"status": CallStatus.answered.value, "outcome": "kept",
                                                       "updated_at": now}, cost_usd=record["cost_usd"], run_id=run_id,
                             now=now)
        return int(kept_id)

    def kept_image(self, entry_id: str, fingerprint: str) -> KeptImage | None:
        """The oldest image kept in the database for this entry and spec (see :meth:`keep_image`), or None."""
        with self.db.engine.connect() as conn:
            row = conn.execute(select(K.id, K.record, K.data).where(K.entry_id == entry_id, K.fingerprint == fingerprint)
                               .order_by(K.id).limit(1)).first()
        return KeptImage(int(row[0]), dict(row[1]), bytes(row[2])) if row is not None else None

    def claim_external_id(self, call_id: int, external_id: str) -> bool:
        """Give the line ``call_id`` (which has none) the provider's id ``external_id``, unless another line has
        it already: one transaction, serialised per id (SQLite's write lock; on PostgreSQL an advisory lock on
        the id), so two runs looking for their unnamed calls at once never both take one call. True: given."""
        with self.db.write() as conn:
            if self.db.engine.dialect.name == "postgresql":
                conn.execute(text("SELECT pg_advisory_xact_lock(hashtextextended(:k, 0))"), {"k": f"ledger:{external_id}"})
            if conn.execute(select(L.id).where(L.external_id == external_id).limit(1)).first() is not None:
                return False
            return bool(conn.execute(update(ledger).where(L.id == call_id, L.external_id.is_(None))
                                     .values(external_id=external_id[:256], updated_at=utcnow())).rowcount)

    def external_ids_in_ledger(self, external_ids: list[str]) -> set[str]:
        """Those of ``external_ids`` some ledger line holds."""
        with self.db.engine.connect() as conn:
            return {i for (i,) in conn.execute(select(L.external_id).where(L.external_id.in_(external_ids)))}

    def note_external_id(self, call_id: int, external_id: str) -> None:
        with self.db.write() as conn:
            conn.execute(hot().note_external_id, {"p_id": call_id, "p_external_id": external_id[:256], "p_now": utcnow()})

    def settle_call(self, call_id: int, status: CallStatus, *, cost_usd: float | None = None,
                    outcome: str | None = None, run_id: str | None = None) -> None:
        """Move a journaled call on: ``answered`` (image in hand), ``failed`` (``cost_usd`` billed), ``lost``.
        ``run_id``: the run settling it; a line another run wrote keeps its cost, and the difference is an
        adjustment line of ``run_id``, in the same transaction (see :meth:`_adjust`). Without one, the line takes
        ``cost_usd``."""
        now = utcnow()
        values: dict[str, Any] = {"status": status.value, "updated_at": now}
        if outcome is not None:
            values["outcome"] = outcome[:32]
        with self.db.write() as conn:
            self._settle(conn, call_id, values, cost_usd=cost_usd, run_id=run_id, now=now)

    def _settle(self, conn: Any, call_id: int, values: dict[str, Any], *, cost_usd: float | None, run_id: str | None,
                now: dt.datetime) -> None:
        """:meth:`settle_call` in the transaction ``conn``: ``values`` (status, outcome, updated_at), and the cost."""
        if cost_usd is not None:
            line = conn.execute(select(L.id, L.run_id, L.cost_usd, L.provider, L.model, L.fingerprint, L.entry_id)
                                .where(L.id == call_id)).first()
            if line is None or line.run_id is None or run_id is None or line.run_id == run_id:
                values = {**values, "cost_usd": cost_usd - (conn.execute(select(hot().adjusted(call_id))).scalar() or 0.0)}
            else:
                self._adjust(conn, line, entry_id=line.entry_id, cost_usd=cost_usd, run_id=run_id, now=now)
        conn.execute(hot().settle(tuple(values)), {"p_id": call_id, **params(values)})

    @staticmethod
    def _adjust(conn: Any, line: Any, *, entry_id: str, cost_usd: float, run_id: str | None, now: dt.datetime,
                render_id: int | None = None) -> None:
        """``line`` (its ``id``, ``run_id``, ``cost_usd``, ``provider``, ``model``, ``fingerprint``, as left) is settled
        at ``cost_usd`` by the run ``run_id``. A line another run wrote keeps the cost that run counted in its
        summary; what the call cost beyond that and its earlier adjustments (a line settled again: its image
        downloaded again after a damaged download) is written as an adjustment line of ``run_id`` (not a call:
        :attr:`CallStatus.adjustment`), so that every run's summary stays its own lines, and they add up to the
        ledger."""
        if line.run_id is None or run_id is None or line.run_id == run_id:
            return
        difference = cost_usd - line.cost_usd - (conn.execute(select(hot().adjusted(line.id))).scalar() or 0.0)
        if abs(difference) <= 1e-12:
            return
        conn.execute(insert(ledger).values(
            entry_id=entry_id, render_id=render_id, provider=line.provider, model=line.model, cost_usd=difference,
            outcome="adjustment", status=CallStatus.adjustment.value, run_id=run_id, fingerprint=line.fingerprint,
            external_id=None, created_at=now, updated_at=now, adjusts=line.id))

    def open_calls(self, entry_id: str, fingerprint: str) -> list[LedgerRow]:
        """Calls for this exact spec that were made (and maybe paid) but never closed, oldest first."""
        with _objects(self.db) as s:
            return self._open_calls(s, entry_id, fingerprint)

    @staticmethod
    def _open_calls(s: Any, entry_id: str, fingerprint: str) -> list[LedgerRow]:
        from limner.db.models import LedgerRow

        return list(s.scalars(select(LedgerRow).where(
            LedgerRow.entry_id == entry_id, LedgerRow.fingerprint == fingerprint,
            LedgerRow.status.in_(OPEN_CALLS)).order_by(LedgerRow.id)).all())

    def call(self, call_id: int) -> LedgerRow | None:
        from limner.db.models import LedgerRow

        with _objects(self.db) as s:
            return s.get(LedgerRow, call_id)

    def run_spend(self, run_id: str) -> RunSpend:
        """What the ledger lines a run wrote add up to: its summary is read from here."""
        adjusted = func.coalesce(func.sum(case((L.status == CallStatus.adjustment.value, L.cost_usd), else_=0.0)), 0.0)
        with self.db.engine.connect() as conn:
            n, usd, adjustments = conn.execute(select(_calls(), func.coalesce(func.sum(L.cost_usd), 0.0), adjusted)
                                               .where(L.run_id == run_id)).one()
        return RunSpend(int(n or 0), float(usd or 0.0), float(adjustments or 0.0))

    def set_placeholder(self, render_id: int, key: str, width: int, height: int) -> None:
        with self.db.write() as conn:
            conn.execute(update(renders).where(R.id == render_id)
                         .values(placeholder_key=key, placeholder_width=width, placeholder_height=height))

    def reject_render(self, render_id: int, error: str, *, refetch: bool = False) -> list[LedgerRow]:
        """Mark a render's image rejected. With ``refetch`` (its bytes may have been damaged in the download),
        the ledger lines that paid for it and carry the provider's id are opened again in the same
        transaction, so that the image is downloaded again (``fetch_known``) rather than paid for again.
        Returns the open lines of the render's spec (empty without ``refetch``, or when none has an id)."""
        with self.db.session(write=True) as s:
            s.execute(update(renders).where(R.id == render_id).values(status=RenderStatus.rejected.value,
                                                                     error=error[:2000]))
            if not refetch:
                return []
            found = s.execute(select(R.entry_id, R.fingerprint).where(R.id == render_id)).first()
            reopened = s.execute(update(ledger).where(
                L.render_id == render_id, L.external_id.is_not(None), L.status == CallStatus.recorded.value,
            ).values(status=CallStatus.answered.value, render_id=None, outcome="refetch", updated_at=utcnow())).rowcount
            if not reopened or found is None:
                return []
            return self._open_calls(s, found.entry_id, found.fingerprint)

    def record_derived(self, render_id: int, *, fields: dict[str, Any], variants: list[dict[str, Any]], publish: bool = False,
                       input_digest: str | None = None, await_review: bool = False, forced: bool = False) -> None:
        """Record the variants (already stored); with ``publish``, publish in the same transaction; with
        ``await_review``, leave the render waiting for a person's decision instead (the entry keeps its
        published image until a new one is approved). An image a person pinned while the run worked stays
        published, unless the run was ``forced``: the render then waits for a decision, as with the gate."""
        st, now = hot(), utcnow()
        with self.db.write() as conn:
            found = conn.execute(st.render_of, {"p_id": render_id}).first()
            assert found is not None, f"no render {render_id}"
            entry_id, fingerprint = found
            conn.execute(st.derive_render(tuple(fields)), {"p_id": render_id, **params(fields)})
            have = {(w, f) for w, f in conn.execute(st.variant_shapes, {"p_id": render_id})}
            new = [{**v, "render_id": render_id} for v in variants if (v["width"], v["format"]) not in have]
            if new:
                conn.execute(st.insert_variants, new)
            if publish and not forced:
                pinned, published = conn.execute(st.pin_of, {"p_id": entry_id}).one()
                await_review = bool(pinned) and published not in (None, render_id)
            if await_review:
                conn.execute(st.await_render, {"p_id": render_id})
                conn.execute(st.entry_awaits_review, {"p_id": entry_id, "p_fp": fingerprint, "p_now": now})
            elif publish:
                previous = conn.execute(st.published_render_of, {"p_id": entry_id}).scalar()
                if previous and previous != render_id:
                    conn.execute(st.supersede, {"p_id": previous})
                conn.execute(st.publish_render, {"p_id": render_id, "p_now": now})
                conn.execute(st.publish_entry, {"p_id": entry_id, "p_render": render_id, "p_fp": fingerprint,
                                                "p_digest": input_digest, "p_now": now})

    # ------------------------------------------------------------------ adopted (legacy) images
    def adopt_render(self, render: Render, *, title: str, style: str | None, template: dict[str, Any]) -> Render:
        """Record an adopted image (a hand-made placeholder, master already stored), in one commit.

        Creates the entry row when the entry was never planned, and the template row the render points
        at. Writes no ledger line: nothing was paid for. Publish it with ``record_derived(publish=True)``.
        """
        from limner.db.models import EntryRow, Template

        now = utcnow()
        with self.db.session(write=True) as s:
            if s.get(Template, render.template_sha) is None:
                s.add(Template(sha256=render.template_sha, **template))
            entry = s.get(EntryRow, render.entry_id)
            if entry is None:
                s.add(EntryRow(id=render.entry_id, title=title, style=style, state=EntryState.generated.value,
                               attempts=0, retryable=True, created_at=now, updated_at=now))
            else:
                entry.state = EntryState.generated.value
                entry.updated_at = now
            s.add(render)
            s.flush()
        return render

    def adopted_render_for(self, entry_id: str, fingerprint: str, master_sha256: str) -> Render | None:
        """An adopted render of these bytes that was recorded but not yet published (an interrupted adopt)."""
        from limner.db.models import Render

        with _objects(self.db) as s:
            return s.scalars(
                select(Render)
                .where(Render.entry_id == entry_id, Render.fingerprint == fingerprint, Render.master_sha256 == master_sha256,
                       Render.status.in_([RenderStatus.generated.value, RenderStatus.derived.value]))
                .order_by(Render.id.desc())
                .limit(1)
            ).first()

    def published_providers(self, ids: Iterable[str] | None = None) -> dict[str, str]:
        """entry id -> provider of its published render."""
        query = select(R.entry_id, R.provider).join(entries, E.published_render_id == R.id)
        if ids is not None:
            query = query.where(R.entry_id.in_(list(ids)))
        with self.db.engine.connect() as conn:
            return {e: p for e, p in conn.execute(query).all()}

    # ------------------------------------------------------------------ storage maintenance (upload, gc)
    def object_digests(self) -> dict[str, str]:
        """key -> sha256 of every master and variant a row records (placeholders are named by their sha256)."""
        with self.db.engine.connect() as conn:
            digests = {k: sha for k, sha in conn.execute(select(R.master_key, R.master_sha256)).all()}
            digests.update({k: sha for k, sha in conn.execute(select(V.key, V.sha256)).all()})
        return digests

    def object_keys_by_render(self) -> dict[int, tuple[str, set[str]]]:
        """render id -> (status, every object key it references: master, placeholder, variants)."""
        with self.db.engine.connect() as conn:
            found: dict[int, tuple[str, set[str]]] = {
                rid: (status, {k for k in (master, placeholder) if k})
                for rid, status, master, placeholder in conn.execute(
                    select(R.id, R.status, R.master_key, R.placeholder_key)).all()
            }
            for rid, key in conn.execute(select(V.render_id, V.key)).all():
                if rid in found:
                    found[rid][1].add(key)
        return found

    def published_render_ids(self) -> set[int]:
        with self.db.engine.connect() as conn:
            return set(conn.scalars(select(E.published_render_id).where(E.published_render_id.is_not(None))).all())

    def forget_renders(self, render_ids: Iterable[int]) -> int:
        """Delete superseded or rejected render rows and their variant rows; never a published or live one.

        Their ledger lines stay (spend is history), with ``render_id`` cleared. Returns the rows deleted."""

        ids = sorted(set(render_ids))
        dead = (RenderStatus.superseded.value, RenderStatus.rejected.value)
        deleted = 0
        with self.db.write() as conn:
            published = set(conn.scalars(select(E.published_render_id).where(E.published_render_id.is_not(None))).all())
            for i in range(0, len(ids), 500):
                chunk = [r for r in ids[i:i + 500] if r not in published]
                chunk = list(conn.scalars(select(R.id).where(R.id.in_(chunk), R.status.in_(dead))).all()) if chunk else []
                if not chunk:
                    continue
                conn.execute(update(ledger).where(L.render_id.in_(chunk)).values(render_id=None))
                conn.execute(delete(variants).where(V.render_id.in_(chunk)))
                deleted += conn.execute(delete(renders).where(R.id.in_(chunk))).rowcount or 0
        return deleted

def as_utc_iso(value: dt.datetime | None) -> str | None:
    if value is None:
        return None
    return value.replace(tzinfo=dt.UTC).isoformat().replace("+00:00", "Z")


def publish_in_session(s: Any, render: Render, input_digest: str | None) -> None:
    """Publish ``render`` in the ORM session ``s``, superseding the entry's previous image (a person's approval,
    :mod:`limner.db.review`); a run publishes through the same statements in :meth:`Repository.record_derived`."""
    from limner.db.models import EntryRow

    st = hot()
    entry = s.get(EntryRow, render.entry_id)
    assert entry is not None
    if entry.published_render_id and entry.published_render_id != render.id:
        s.execute(st.supersede, {"p_id": entry.published_render_id})
    now = utcnow()
    render.status = RenderStatus.published.value
    render.published_at = now
    entry.published_render_id = render.id
    entry.published_fingerprint = render.fingerprint
    entry.input_digest = input_digest
    entry.updated_at = now
    if entry.claimed_by is not None:
        # a run that holds the entry keeps it, with the spec it works on and its state: a person's decision is
        # not the end of its work (releasing its claim let another run take the entry and pay for the same spec
        # again; taking its fingerprint recorded the run's failure against the approved render's spec)
        entry.pinned = False
        return
    entry.fingerprint = render.fingerprint
    entry.state = EntryState.published.value
    entry.last_error = None
    entry.retryable = True
    entry.pinned = False
