"""The job: one entry through the same unit of work as ``limner generate`` (:mod:`limner.runner.unit`).

A worker process holds one :class:`WorkerRuntime`: its run identity and heartbeat (claims of a dead
worker are taken over like those of a dead ``generate``: :mod:`limner.runner.claims`), the imaging pool,
the unit of work and one :class:`~limner.runner.retry.ProviderGate` per provider whose slots are shared
by every worker (:mod:`.limits`). A job plans its entry against the database when it runs (from its own
row: :meth:`~limner.db.repository.Repository.entry_status`), so an entry published meanwhile costs
nothing, and a job for an older fingerprint than the catalogue's is dropped (the catalogue and the style files
are read again when they change: :meth:`WorkerRuntime._reread_inputs`).

A *forced* job (``generate --enqueue --id/--all``) regenerates a published entry once: it claims the entry
only while the render it was enqueued to replace is still the published one. A fault after a paid answer
pauses the worker (:meth:`WorkerRuntime._halt`, :meth:`WorkerRuntime.recover`; see :mod:`.worker`).
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from limner.queue.engine import SCHEDULE_TASK, TASK

if TYPE_CHECKING:
    import procrastinate

    from limner.project import Project
    from limner.queue.limits import SlotConnection
    from limner.runner.lanes import Lane
    from limner.runner.offloop import OffLoop
    from limner.runner.pool import ImagingPool
    from limner.runner.unit import UnitOfWork
    from limner.runner.plan import PlanItem
    from limner.runner.retry import ProviderGate

log = logging.getLogger("limner.queue")


class HeldElsewhere(Exception):
    """Another live run holds the entry: the job comes back later, for as long as that lasts (the engine's
    retry, :mod:`limner.queue.retrying`)."""


class NotRunnableHere(HeldElsewhere):
    """The entry's provider cannot run on this worker's machine: the job comes back for a worker that can."""


class InputsUnreadable(HeldElsewhere):
    """The catalogue or a style file changed and cannot be read now (an edit under way, a broken file): the
    job comes back, planned once the files read again (the log line names the problem)."""


class BudgetHeld(HeldElsewhere):
    """The enqueue's shared cap has no room now, but workers hold entries whose calls may settle below their
    reservation: the job comes back, a bounded number of times (:data:`limner.queue.retrying.BUDGET_TRIES`; a
    reservation a killed worker left is never settled), then fails as the budget being spent."""


#: the held outcomes that come back a bounded number of times (:func:`limner.queue.retrying.gives_up`)
BOUNDED: tuple[type[BaseException], ...] = (BudgetHeld,)


class CredentialsRefused(HeldElsewhere):
    """The entry's provider refused this worker's credentials (a wrong or revoked key, an account out of credit):
    the job comes back, without a call, until the credentials change (read again from the environment and the
    project's .env at each job) or :data:`CREDENTIALS_RECHECK_S` pass, when one job tries them again
    (:meth:`WorkerRuntime._may_call`)."""


#: after a provider refused this worker's credentials, how long its jobs wait before one tries the same credentials
#: again (seconds; credit topped up, a key unrevoked), doubling after each refusal up to CREDENTIALS_RECHECK_MAX_S.
#: Credentials that changed are tried by the next job at once
CREDENTIALS_RECHECK_S = 30.0
CREDENTIALS_RECHECK_MAX_S = 600.0


@dataclass
class Refusal:
    """A provider's refusal of this worker's credentials (:class:`CredentialsRefused`)."""

    reason: str
    #: sha256 of the credentials refused (their variables' values, never kept themselves)
    digest: str
    wait_s: float
    #: when a job may try the same credentials again (``time.monotonic()``)
    retry_at: float
    #: a job is trying them now: the others wait for its answer
    trying: bool = False


class Paused(Exception):
    """This worker stopped taking paid work after a storage or database fault: the job goes back on the
    queue (the engine's retry) and runs once a worker can keep what it pays for."""


class EntryFailed(Exception):
    """The unit of work failed the entry (recorded on it, with its reason): the job fails too."""


class WorkerRuntime:
    """What every job of one worker process shares."""

    def __init__(self, project: Project, dsn: str, metrics: Any = None) -> None:
        self.project, self.dsn = project, dsn
        #: :class:`limner.queue.metrics.WorkerMetrics` with ``--metrics-port``, else None
        self.metrics = metrics
        self.gates: dict[str, ProviderGate] = {}
        self.current: set[str] = set()
        self.done = self.failed = 0
        self._beating: asyncio.Task[None] | None = None
        #: database sessions of the shared rate limits (one per rate-limited provider)
        self._sessions: list = []
        #: why this worker takes no paid work (a storage or database fault after a paid answer); None: it does
        self.halted: str | None = None
        #: entries of the jobs a fault stopped (entry id -> fingerprint): this run keeps their claims, and
        #: :meth:`recover` records their kept images before the worker takes jobs again
        self.faulted: dict[str, str] = {}
        #: called with the reason on the first fault: the supervisor stops taking jobs (:mod:`.worker`)
        self.on_halt: Callable[[str], None] | None = None
        #: kept images this worker recorded after a fault; times its engine was started again
        self.recovered = self.restarts = 0
        from limner.runner.claims import RunIdentity

        #: this worker's identity as a run (its claims, its heartbeat), for the life of the process
        self.run = RunIdentity()
        self._run_started = False
        #: made by :meth:`start` (the pool once; the rest at every start after a lost database); None before
        self.pool: ImagingPool | None = None
        self.off: OffLoop = None  # type: ignore[assignment]  # set by start(), before any job runs
        self.unit: UnitOfWork = None  # type: ignore[assignment]  # set by start(), before any job runs
        self.slots: SlotConnection | None = None
        #: the catalogue's and the style files' (path, mtime, size) when the project last read them; the lock: jobs
        #: plan in several database threads at once, and one reads the files while the others wait for it
        self._inputs_read: tuple | None = None
        self._inputs_lock = threading.Lock()
        #: providers whose credentials were refused (name -> refusal): their jobs come back without a call
        self.refusals: dict[str, Refusal] = {}
        #: provider instances replaced after a refusal (:meth:`_renew_provider`), closed with the worker
        self._retired: list = []

    def _inputs_stamp(self) -> tuple:
        """What says the catalogue or a style file changed: each one's path, mtime and size (a few ``stat`` calls:
        cheap, unlike reading 100,000 entries again for every job)."""
        s = self.project.settings
        styles_dir = s.path(s.project.styles_dir)
        paths = [s.catalog_path, *(sorted(styles_dir.glob("*.toml")) if styles_dir.is_dir() else [])]
        stamp = []
        for path in paths:
            try:
                st = path.stat()
                stamp.append((str(path), st.st_mtime_ns, st.st_size))
            except OSError:
                stamp.append((str(path), None, None))
        return tuple(stamp)

    def _reread_inputs(self, *, always: bool = False) -> None:
        """Forget the project's catalogue and styles when their files changed since it read them (``always``:
        in any case), so that a job plans with the files as they are now: a worker running for weeks must neither
        pay for a spec that was edited since nor drop the jobs of the new one. Raises :class:`InputsUnreadable`
        when they changed and do not read."""
        from limner.errors import LimnerError

        p = self.project
        with self._inputs_lock:
            stamp = self._inputs_stamp()
            if always or stamp != self._inputs_read:
                p.__dict__.pop("catalog", None)
                p.__dict__.pop("_styles_and_renderer", None)
                self._inputs_read = stamp
            try:
                p.catalog  # noqa: B018 - read now: a file that does not read fails here, not half-way through a plan
            except LimnerError as exc:
                self._inputs_read = None  # read again by the next job
                raise InputsUnreadable(f"the catalogue or a style cannot be read ({exc}); the job is retried "
                                       "later") from exc

    async def start(self) -> None:
        from limner.queue.limits import SlotConnection
        from limner.runner.claims import HEARTBEAT_S
        from limner.runner.pool import ImagingPool
        from limner.runner.run import derive_options, open_unit

        p = self.project
        p.storage.check()  # a store that cannot be written must not cost a paid generation
        if not self._run_started:
            p.repo.start_run(self.run.id, self.run.host, self.run.pid, kind="worker", scope=self.run.scope,
                            process_start=self.run.process_start)
            self._run_started = True
        if self.pool is None:  # started once, even when a lost database makes the worker start again
            self.pool = ImagingPool.start(derive_options(p), p.settings.generate.workers)
        self.unit, self.off = await open_unit(p, self.pool, self.run)
        self.slots = SlotConnection(self.dsn) if p.settings.queue.global_limits else None
        self._beating = asyncio.create_task(self._beat(min(HEARTBEAT_S, p.settings.queue.heartbeat_s)))

    async def _beat(self, every_s: float) -> None:
        """The run's heartbeat (its claims hold while it beats: :mod:`limner.runner.claims`). A beat that finds the
        run ended (another run judged this worker gone: its heartbeat was over a minute old, after a lost database
        or a stalled machine, and took its entries over) stops paid work as a fault does: every entry this worker
        claimed from then on would look free to any other run at once. :meth:`recover` goes on as a new run."""
        from sqlalchemy.exc import SQLAlchemyError

        while True:
            await asyncio.sleep(every_s)
            try:
                alive = await self.off.db(self.project.repo.heartbeat, self.run.id)
            except SQLAlchemyError as exc:  # a lost connection: try again at the next beat
                log.warning("heartbeat of run %s failed: %s", self.run.id, exc)
                continue
            if not alive:
                self._stop_paid_work(f"the run of this worker ({self.run.id}) was ended by another run, which judged "
                                     "it gone (its heartbeat came over a minute late); it goes on as a new run")

    async def _new_run(self) -> None:
        """Go on as a new run (this one was ended by another): the unit of work's claims are the new run's."""
        from limner.runner.claims import RunIdentity

        fresh = RunIdentity()
        await self.off.db(self.project.repo.start_run, fresh.id, fresh.host, fresh.pid, kind="worker",
                          scope=fresh.scope, process_start=fresh.process_start)
        log.warning("run %s of this worker was ended by another run; it goes on as run %s", self.run.id, fresh.id)
        self.run = self.unit.run_identity = fresh

    async def close(self) -> None:
        """Everything :meth:`start` opened (also after a start that failed half-way)."""
        if self._beating is not None:
            self._beating.cancel()
        for provider in [*self._retired, *(gate.provider for gate in self.gates.values())]:
            await provider.aclose()
        for session in [self.slots, *self._sessions]:
            if session is not None:
                await session.close()
        try:
            if self.off is not None:
                await self.off.db(self.project.repo.end_run, self.run.id)
        finally:
            if self.off is not None:
                await asyncio.to_thread(self.off.shutdown)
            if self.pool is not None:
                await asyncio.to_thread(self.pool.shutdown, wait=True)

    def gate_for(self, lane: Lane) -> ProviderGate:
        gate = self.gates.get(lane.name)
        if gate is None:  # the project's instance, which may be newer than the lane's (renewed after a refusal)
            gate = self.gates[lane.name] = lane.gate(self.project.settings.generate, self.project.provider(lane.name))
            gate.stopping = self.halted is not None  # a gate made while paused starts no paid call either
            if self.metrics is not None:
                self.metrics.time_calls(gate.provider)
            if self.slots is not None and not lane.cls.concurrency_is_per_machine:  # a local GPU's slots are its own
                from limner.queue.limits import GlobalRate, GlobalSlots, SlotConnection

                gate.slots = GlobalSlots(self.slots, lane.name, gate.concurrency)  # type: ignore[assignment]
                if gate.limiter is not None and lane.rate_limit_per_minute:
                    session = SlotConnection(self.dsn)
                    self._sessions.append(session)
                    gate.limiter = GlobalRate(session, lane.name, lane.rate_limit_per_minute)  # type: ignore[assignment]
        return gate

    async def enqueue_due(self, app: procrastinate.App, timestamp: int) -> str:
        """The periodic run: plan what is missing or stale now and enqueue it (``[generate] budget_usd``
        is its shared cap)."""
        from limner.queue.enqueue import commit_plan, enqueue_plan
        from limner.runner.plan import Selection, build_plan

        p = self.project

        def plan_now():  # type: ignore[no-untyped-def]
            self._reread_inputs(always=True)  # the catalogue and styles as they are now
            plan = build_plan(p, Selection())
            return plan, commit_plan(p, plan, p.settings.generate.budget_usd)

        plan, cap_id = await self.off.db(plan_now)
        result = await enqueue_plan(app, plan, cap_id=cap_id)
        log.info("schedule tick %s: %s", timestamp, result.to_dict())
        return f"enqueued {result.enqueued}"

    # -------------------------------------------------------------------------------------- one job
    def _plan_one(self, entry_id: str, fingerprint: str, force: bool = False) -> PlanItem | str:
        """The entry's plan item, planned now from its own row (never every entry's status); or why there is
        nothing to do (``up_to_date``, ``superseded``: the catalogue has another fingerprint,
        ``not_in_catalogue``). A published entry is planned again only when the job is ``force``d
        (``generate --enqueue --id/--all``): its item's reason is then ``forced``."""
        from limner.runner.plan import Selection, build_plan

        p = self.project
        for attempt in range(2):
            # the catalogue or styles may have changed since this worker read them (again in any case when the job's
            # fingerprint is not the one planned: an edit within the file system's mtime resolution)
            self._reread_inputs(always=bool(attempt))
            if entry_id not in p.catalog.by_id():
                continue
            status = p.repo.entry_status(entry_id)
            override = p.repo.entry_override(entry_id)
            plan = build_plan(p, Selection(ids=(entry_id,)), statuses={entry_id: status} if status else {},
                              overrides={entry_id: override} if override else {})
            item = plan.items[0]
            if item.fingerprint != fingerprint:
                continue
            if item.reason == "forced" and not force:  # published with this fingerprint (or failed for good)
                return "up_to_date"
            p.repo.sync_entries([(entry_id, item.entry.title, item.style.name, item.fingerprint)])
            return item
        return "superseded" if entry_id in p.catalog.by_id() else "not_in_catalogue"

    def _claim_to_replace(self, entry_id: str, replaces: int | None) -> str:
        """A forced job's claim (see :meth:`limner.db.repository.Repository.claim_to_replace`): ``claimed``,
        ``published`` (replaced since the job was enqueued: nothing to pay for) or ``held``."""
        from limner.db.models import utcnow

        repo = self.project.repo
        claim = repo.claim_to_replace(entry_id, self.run.id, replaces)
        if claim.status == "held" and self.run.holder_is_gone(claim.holder, utcnow()):
            if claim.holder is not None:  # a dead run: free its entries, then try again
                repo.end_run(claim.holder.id)
            claim = repo.claim_to_replace(entry_id, self.run.id, replaces)
        return claim.status

    def _count(self, provider: str, outcome: Any) -> None:
        """What a unit of work spent (``limner_spend_usd_total``)."""
        if self.metrics is not None:
            self.metrics.spend.labels(provider).inc(outcome.cost_usd)

    def _job_ended(self, outcome: str) -> None:
        """One job of this worker ended: ``published``, ``up_to_date``, ``retried`` (back on the queue) or
        ``failed`` (``limner_jobs_total``; ``failed`` also counts in the worker's ``--json``)."""
        if outcome == "failed":
            self.failed += 1
        if self.metrics is not None:
            self.metrics.jobs.labels(outcome).inc()

    def _halt(self, entry_id: str, fingerprint: str, reason: str) -> None:
        """A fault after a paid answer (storage or database): no new paid call in this worker (calls in flight
        finish and are kept) until :meth:`recover` finds the store and the database working again."""
        self.faulted[entry_id] = fingerprint
        self._stop_paid_work(reason, "storage or database fault: this worker takes no new job until both work again")

    def _stop_paid_work(self, reason: str, what: str = "this worker takes no new job") -> None:
        """No new paid call in this worker, and no new job, until :meth:`recover` (see :meth:`_halt`); logs ``what``
        with the reason."""
        if self.halted is not None:
            return
        self.halted = reason
        for gate in self.gates.values():
            gate.stopping = True
        log.error("%s (%s)", what, reason)
        if self.on_halt is not None:
            self.on_halt(reason)

    async def run_entry(self, entry_id: str, fingerprint: str, cap_id: str | None = None, force: bool = False,
                        replaces: int | None = None, attempts: int = 0) -> str:
        """One job (``attempts``: its tries before this one); every way it ends is counted once
        (:meth:`_job_ended`): a held job the engine gives up on (a budget held past its tries) as failed."""
        from limner.queue.retrying import gives_up

        try:
            result = await self._run_job(entry_id, fingerprint, cap_id, force, replaces)
        except (HeldElsewhere, Paused) as exc:
            self._job_ended("failed" if gives_up(exc, attempts, BOUNDED) else "retried")
            raise
        except Exception:  # EntryFailed, or an error the engine does not retry: the job fails
            self._job_ended("failed")
            raise
        self._job_ended("published" if result == "published" else "up_to_date")
        return result

    async def _run_job(self, entry_id: str, fingerprint: str, cap_id: str | None, force: bool,
                       replaces: int | None) -> str:
        if self.halted is not None:  # taken just as the worker paused
            raise Paused(f"{entry_id}: this worker is paused ({self.halted}); back on the queue")
        if entry_id in self.current:  # a second job for the entry while this worker runs one: its claims are
            # this run's, so only this check keeps the two from both paying
            raise HeldElsewhere(f"{entry_id}: this worker is running it; retried later")
        self.current.add(entry_id)  # before any await: two jobs started together see each other
        try:
            found = await self.off.db(self._plan_one, entry_id, fingerprint, force)
            if isinstance(found, str):
                log.info("job %s: %s, nothing to do", entry_id, found)
                return found
            reason = found.lane.unavailable()
            if reason is not None:  # named with --queues on a machine it cannot run on: left for one that can
                raise NotRunnableHere(f"{entry_id}: provider {found.provider!r} cannot run on this worker's machine "
                                      f"({reason}); retried later, for a worker that can")
            trying = self._may_call(found)
            try:
                return await self._run_item(found, entry_id, fingerprint, cap_id, replaces, trying)
            finally:
                if trying is not None:  # its answer is in (a refusal renewed it): the others may try again later
                    trying.trying = False
        finally:
            self.current.discard(entry_id)

    # -------------------------------------------------------------------------------------- refused credentials
    def _credentials_digest(self, name: str) -> str:
        """A digest of provider ``name``'s credentials as they are now (environment, then the project's .env)."""
        provider = self.project.provider(name)
        values = [provider.secret(var) or "" for var in provider.credential_names()]
        return hashlib.sha256("\0".join(values).encode()).hexdigest()

    def _may_call(self, item: PlanItem) -> Refusal | None:
        """Whether this job may call the entry's provider after it refused this worker's credentials: raises
        :class:`CredentialsRefused` while they are the ones refused and the back-off lasts, or another job is
        trying them; else this job tries them, with a new provider instance that reads them again, and the refusal
        it tries is returned (None: there was none)."""
        name = item.lane.name
        refusal = self.refusals.get(name)
        if refusal is None:
            return None
        changed = self._credentials_digest(name) != refusal.digest
        if refusal.trying or (not changed and time.monotonic() < refusal.retry_at):
            wait = max(0.0, refusal.retry_at - time.monotonic())
            raise CredentialsRefused(f"{item.entry.id}: {refusal.reason}; the job comes back once the credentials "
                                     f"change (the next job reads them again) or, with the same ones, in {wait:.0f}s")
        refusal.trying = True
        self._renew_provider(name)
        log.info("provider %r: trying its credentials again (%s)", name,
                 "they changed" if changed else f"{refusal.wait_s:.0f}s after the refusal")
        return refusal

    def _renew_provider(self, name: str) -> None:
        """A new instance of the provider for the next calls, which reads the credentials again (the old one keeps
        the refused key in its client); calls in flight finish on the old one, closed with the worker."""
        fresh = self.project.reload_provider(name)
        gate = self.gates.get(name)
        if gate is not None:
            if self.metrics is not None:
                self.metrics.time_calls(fresh)
            self._retired.append(gate.renew(fresh))

    def _refused(self, item: PlanItem, outcome: Any, tried: Refusal | None) -> CredentialsRefused:
        """A provider refused the credentials (``outcome`` stopped for them): its jobs come back without a call
        until they change or a back-off passes, doubling when the job that tried them again (``tried``) was
        refused too. Returns the job's outcome."""
        name = item.lane.name
        reason = outcome.stop_reason or f"provider {name!r} refused the credentials"
        current = self.refusals.get(name)
        if current is None or current is tried:
            wait = CREDENTIALS_RECHECK_S if current is None else min(CREDENTIALS_RECHECK_MAX_S, current.wait_s * 2)
            self.refusals[name] = Refusal(reason, self._credentials_digest(name), wait, time.monotonic() + wait)
            fix = f" ({outcome.stop_fix})" if outcome.stop_fix else ""
            log.error("%s%s: its jobs come back without a call until the credentials change (read again from the "
                      "environment and .env at each job; an environment variable needs a restart) or, with the same "
                      "ones, for one try in %.0fs", reason, fix, wait)
        return CredentialsRefused(f"{item.entry.id}: {reason}; the job comes back once the credentials change")

    def _accepted(self, item: PlanItem, tried: Refusal | None) -> None:
        """The job that tried the credentials again got past them: the provider's jobs run again."""
        if tried is not None and self.refusals.get(item.lane.name) is tried:
            del self.refusals[item.lane.name]
            log.warning("provider %r takes this worker's credentials again: its jobs run", item.lane.name)

    async def _run_item(self, item: PlanItem, entry_id: str, fingerprint: str, cap_id: str | None,
                        replaces: int | None, tried: Refusal | None = None) -> str:
        """Run the planned entry; ``tried``: the refusal of its provider's credentials this job tries again."""
        from limner.queue.limits import SharedBudget
        from limner.runner.journal import Allowance

        repo = self.project.repo
        if item.reason == "forced":  # replace the published image once, however often the job runs
            claimed = await self.off.db(self._claim_to_replace, entry_id, replaces)
            if claimed == "published":
                log.info("job %s: its image was replaced since it was enqueued, nothing to do", entry_id)
                return "up_to_date"
            if claimed == "held":
                raise HeldElsewhere(f"{entry_id}: another run holds it; retried later")
        budget = SharedBudget(repo, cap_id, self.run.id)
        price = item.price_usd
        if not await self.off.db(budget.reserve, price):
            if item.reason == "forced":
                await self.off.db(repo.release_claim, entry_id, self.run.id)
            if await self.off.db(budget.held_in_flight, price):  # room may come back: a call may cost nothing
                raise BudgetHeld(f"{entry_id}: the budget of this enqueue is held by calls in flight; retried once "
                                 "they are settled, and failed if it is still held after a while: `limner generate "
                                 "--enqueue --budget N` then enqueues the entries left with a new budget")
            raise EntryFailed(f"{entry_id}: the budget of this enqueue is spent; `limner generate --enqueue --budget N` "
                              "enqueues the entries left with a new budget")
        outcome = None
        allowance = None if cap_id is None else Allowance(lambda extra: self.off.db(budget.reserve, extra), price)
        try:
            outcome = await self.unit.run(item, self.gate_for(item.lane), allowance)
        finally:
            reserved = allowance.reserved if allowance is not None else price
            await asyncio.shield(self.off.db(budget.settle, reserved, outcome.cost_usd if outcome else 0.0))
        self._count(item.provider, outcome)
        if outcome.stop_cause == "credentials":  # stopped, or failed (retryable) after the refused call: free it,
            # and the job comes back once they change
            await self.off.db(repo.release_claim, entry_id, self.run.id)
            raise self._refused(item, outcome, tried)
        if outcome.provider_calls or outcome.status == "published":
            self._accepted(item, tried)
        if outcome.status == "over_budget":  # calls lost or billed without an image spent its share
            await self.off.db(repo.release_claim, entry_id, self.run.id)
            raise EntryFailed(f"{entry_id}: the budget of this enqueue is spent (by calls that gave no image); "
                              "`limner generate --enqueue --budget N` enqueues the entries left with a new budget")
        if outcome.status == "published":
            self.done += 1
            return "published"
        if outcome.status == "stopped" and outcome.stop_cause == "fault":
            # the claim stays with this run: its paid image is kept (in the database, or in this host's recovery
            # folder when the database failed too), and recover() records it before this worker takes another job
            self._halt(entry_id, item.fingerprint, outcome.stop_reason or "a storage or database fault")
            raise Paused(f"{entry_id}: {outcome.stop_reason}; back on the queue")
        if outcome.status == "not_started":
            await self.off.db(repo.release_claim, entry_id, self.run.id)
            if self.halted is not None:
                raise Paused(f"{entry_id}: not started, this worker is paused ({self.halted}); back on the queue")
        if outcome.status in ("elsewhere", "not_started"):
            st = await self.off.db(repo.entry_status, entry_id)
            if st is not None and st.published_fingerprint == fingerprint and st.state == "published" \
                    and item.reason != "forced":
                return "up_to_date"
            raise HeldElsewhere(f"{entry_id}: another run holds it; retried later")
        raise EntryFailed(f"{entry_id}: {outcome.error or outcome.stop_reason or outcome.status}")

    async def recover(self) -> bool:
        """After a fault: once the store and the database take writes again, record the images this worker
        kept (no provider call: the gates stay stopped meanwhile), and free the other
        entries the fault stopped. True when the worker may take jobs again; False: still broken, try later."""
        p = self.project
        try:
            await self.off.io(p.storage.check)
            alive = await self.off.db(p.repo.heartbeat, self.run.id)  # a write: the database takes them again
            if not alive:  # another run ended this one (judged it gone) and freed its entries
                await self._new_run()
        except Exception as exc:  # noqa: BLE001 - whatever the store or database raises: still down
            log.warning("still paused: the store or the database fails (%s: %s)", type(exc).__name__, str(exc)[:300])
            return False
        for entry_id, fingerprint in list(self.faulted.items()):
            try:
                found = await self.off.db(self._plan_one, entry_id, fingerprint, True)
            except InputsUnreadable as exc:  # an edit under way: the kept images are recorded once they read
                log.warning("still paused: %s", exc)
                return False
            if isinstance(found, str):  # its catalogue entry changed meanwhile: the kept image is not what it needs
                await self.off.db(p.repo.release_claim, entry_id, self.run.id)
                del self.faulted[entry_id]
                continue
            gate = self.gate_for(found.lane)
            gate.stopping = True  # recording a kept image must never start a paid call
            outcome = await self.unit.run(found, gate)
            self._count(found.provider, outcome)
            if outcome.status == "stopped" and outcome.stop_cause == "fault":
                log.warning("still paused: recording the kept image of %s failed (%s)", entry_id, outcome.stop_reason)
                return False
            if outcome.status == "published":  # its job went back on the queue (retried), and finds it published
                self.done += 1
                self.recovered += 1
                if self.metrics is not None:
                    self.metrics.jobs.labels("published").inc()
                log.info("entry %s: recorded its kept image after the fault (no new call)", entry_id)
            elif outcome.status == "not_started":  # nothing kept to record: its job, retried, generates it
                await self.off.db(p.repo.release_claim, entry_id, self.run.id)
            del self.faulted[entry_id]
        log.warning("the store and the database work again: this worker takes jobs again (was: %s)", self.halted)
        self.halted = None
        for gate in self.gates.values():
            gate.stopping = False
        return True


def register(app: procrastinate.App, *, schedule: str | None = None) -> None:
    from limner.queue.retrying import HeldRetry, TickRetry

    if schedule:
        @app.periodic(cron=schedule, periodic_id="missing-or-stale")
        @app.task(name=SCHEDULE_TASK, queue="schedule", pass_context=True, retry=TickRetry(schedule))
        async def scheduled_enqueue(context: Any, timestamp: int) -> str:
            runtime: WorkerRuntime = context.additional_context["limner"]
            return await runtime.enqueue_due(context.app, timestamp)

    @app.task(name=TASK, pass_context=True,
              retry=HeldRetry(held=(HeldElsewhere, Paused), bounded=BOUNDED))
    async def generate_entry(context: Any, entry_id: str, fingerprint: str, cap_id: str | None = None,
                             force: bool = False, replaces: int | None = None) -> str:
        runtime: WorkerRuntime = context.additional_context["limner"]
        return await runtime.run_entry(entry_id, fingerprint, cap_id, force, replaces, attempts=context.job.attempts)
