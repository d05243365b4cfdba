"""The paid-call journal: one entry's provider calls, each written to the ledger before it goes out.

Money is never spent without a trace. Before a provider call a ledger line is written at the list price
(``pending``); the provider's id for the call (:func:`limner.providers.report_call_id`) is written as soon as
it is known; the answer settles the line (``answered``, then ``recorded`` with its render, or ``failed``
with what was billed). A line that stays open (a failed download, a timeout, a killed process) is
settled by asking the provider about that id (:meth:`limner.providers.Provider.fetch_known`) before any
new paid call for the same image, in this run or the next. Spend is the sum of the ledger, open lines
included at their estimate, so a summary read from the ledger never misses a call.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from limner.db.repository import ClaimLost
from limner.db.tables import CallStatus, utcnow

if TYPE_CHECKING:
    from limner.db.models import LedgerRow
    from limner.db.repository import Repository
    from limner.runner.offloop import Batched, OffLoop

log = logging.getLogger("limner.runner")


class OverBudget(Exception):
    """A further call for the entry would pass the spend cap (its first call's price was reserved; one that
    was lost or billed without an image spent it): no call goes out, and the entry stays queued."""


class Allowance:
    """What one entry's calls may spend under a cap: the price reserved before its unit of work started, and
    more only as the cap allows. A call lost to a timeout costs its list price (it may still run and bill), so
    the attempt after it needs a reservation of its own; without one, ``max_attempts`` lost calls per entry
    would pass the cap that many times over. The caller settles ``reserved`` with what the entry cost."""

    def __init__(self, reserve: Callable[[float], Awaitable[bool]], reserved: float) -> None:
        self._reserve, self.reserved = reserve, reserved
        #: what earlier journals of the same unit of work spent (an image downloaded again after a damaged
        #: download goes through a journal of its own)
        self.earlier_usd = 0.0

    async def cover(self, journal_usd: float) -> bool:
        """Make the reservation cover ``journal_usd`` (the spend of a journal with its next call) after what
        earlier journals of the entry spent; False when the cap has no room for it."""
        total_usd = self.earlier_usd + journal_usd
        if total_usd <= self.reserved + 1e-9:
            return True
        if not await self._reserve(total_usd - self.reserved):
            return False
        self.reserved = total_usd
        return True


@dataclass
class Call:
    """The in-memory twin of one ledger line."""

    id: int
    cost_usd: float
    external_id: str | None = None
    status: str = CallStatus.pending.value
    #: written by this run (counted in its outcome); False for an open line of an earlier run
    this_run: bool = True
    #: when the line was written, just before the call went out (UTC)
    sent_at: dt.datetime | None = None

    @property
    def open(self) -> bool:
        return self.status in (CallStatus.pending.value, CallStatus.answered.value)


class CallJournal:
    """The ledger lines of one entry's calls, written through the run's database thread."""

    def __init__(self, repo: Repository | None, off: OffLoop | None, *, entry_id: str = "", fingerprint: str = "",
                 run_id: str = "", provider: str = "", model: str = "", estimate_usd: float = 0.0,
                 earlier: list[LedgerRow] | None = None, lines: Batched[dict[str, Any], int | None] | None = None,
                 allowance: Allowance | None = None) -> None:
        """``repo=None``: a journal kept in memory only (a provider tried outside a run, in tests). ``lines``: the
        run's group commit of new lines (:meth:`Repository.open_call_lines` through
        :class:`~limner.runner.offloop.Batched`; else each line is its own transaction). ``allowance``: the
        entry's share of a spend cap (None: no cap)."""
        self.repo, self.off, self.lines, self.allowance = repo, off, lines, allowance
        self.entry_id, self.fingerprint, self.run_id = entry_id, fingerprint, run_id
        self.provider, self.model, self.estimate_usd = provider, model, estimate_usd
        self.calls: list[Call] = [Call(r.id, r.cost_usd, r.external_id, r.status, this_run=False, sent_at=r.created_at)
                                  for r in earlier or ()]
        self._id_writes: list[asyncio.Future[None]] = []

    # -- reading ---------------------------------------------------------------------------
    def to_ask_about(self) -> Call | None:
        """The oldest open call with a provider id: ask the provider about it before paying again."""
        return next((c for c in self.calls if c.open and c.external_id), None)

    def unanswerable(self) -> list[Call]:
        """Open calls of an earlier run without a provider id: nobody can ask about them."""
        return [c for c in self.calls if c.open and not c.external_id and not c.this_run]

    async def claim_id(self, call: Call, external_id: str) -> bool:
        """Give ``call`` (an earlier run's line without an id) the provider's id of the call it made, unless
        another line has it (atomically, across runs: :meth:`Repository.claim_external_id`). True: given."""
        if any(c.external_id == external_id for c in self.calls):
            return False
        if self.repo is not None and self.off is not None:
            if not await self.off.db(self.repo.claim_external_id, call.id, external_id):
                return False
        call.external_id = external_id
        return True

    async def unknown_ids(self, external_ids: list[str]) -> list[str]:
        """Those of ``external_ids`` that no ledger line has (in order): calls nobody has claimed as theirs."""
        mine = {c.external_id for c in self.calls if c.external_id}
        fresh = [i for i in external_ids if i not in mine]
        if fresh and self.repo is not None and self.off is not None:
            known = await self.off.db(self.repo.external_ids_in_ledger, fresh)
            fresh = [i for i in fresh if i not in known]
        return fresh

    @property
    def cost_usd(self) -> float:
        """What this run's calls for the entry cost (open ones at their estimate)."""
        return sum(c.cost_usd for c in self.calls if c.this_run)

    @property
    def calls_made(self) -> int:
        return sum(1 for c in self.calls if c.this_run)

    # -- writing ---------------------------------------------------------------------------
    async def open(self) -> Call:
        """Write the line of a call about to go out (before any money can be spent). Raises
        :class:`OverBudget` when the entry's allowance cannot cover it, and
        :class:`~limner.db.repository.ClaimLost` when the run no longer holds the entry."""
        if self.allowance is not None and not await self.allowance.cover(self.cost_usd + self.estimate_usd):
            raise OverBudget(f"{self.entry_id}: another call would pass the spend cap "
                             f"(this entry's calls cost {self.cost_usd:.4f} USD so far)")
        if self.repo is None or self.off is None:
            call_id = -len(self.calls) - 1
        else:
            line = dict(entry_id=self.entry_id, fingerprint=self.fingerprint, run_id=self.run_id,
                        provider=self.provider, model=self.model, estimate_usd=self.estimate_usd)
            if self.lines is not None:
                written = await self.lines(line)
                if written is None:
                    raise ClaimLost(f"{self.entry_id}: run {self.run_id} no longer holds it")
                call_id = written
            else:
                call_id = await self.off.db_urgent(self.repo.open_call, **line)
        call = Call(call_id, self.estimate_usd, sent_at=utcnow())
        self.calls.append(call)
        return call

    def id_sink(self, call: Call) -> Callable[[str], None]:
        """The callback behind ``report_call_id`` while ``call`` is out: note the id, write it at once."""
        def sink(external_id: str) -> None:
            if call.external_id == external_id:
                return
            call.external_id = external_id
            if self.repo is None or self.off is None:
                return
            self._id_writes.append(asyncio.ensure_future(self.off.db_soon(self.repo.note_external_id, call.id, external_id)))
        return sink

    async def settle(self, call: Call, status: CallStatus, *, cost_usd: float | None = None,
                     outcome: str | None = None) -> None:
        await self.flush()
        if cost_usd is not None:
            call.cost_usd = cost_usd
        call.status = status.value
        if self.repo is None or self.off is None:
            return
        await self.off.db_soon(self.repo.settle_call, call.id, status, cost_usd=cost_usd, outcome=outcome,
                               run_id=self.run_id)

    async def flush(self) -> None:
        """Wait until every reported id is written. A failed write is logged, not raised: the line itself is
        in the ledger already, and the answer in hand must still be kept (a database that fails for good
        fails the next write of the unit of work, which keeps the image in the recovery folder)."""
        writes, self._id_writes = self._id_writes, []
        for write in writes:
            try:
                await write
            except Exception as exc:  # noqa: BLE001 - see above
                log.error("entry %s: could not write the provider's id for its call: %s", self.entry_id, exc)

    def recorded(self, call: Call, cost_usd: float) -> None:
        """The render of ``call`` was recorded (the database closed its line in the same commit)."""
        call.status, call.cost_usd = CallStatus.recorded.value, cost_usd
