"""The job: one entry through the same unit of work as ``limner generate`` (:mod:`limner.runner.unit`).

A worker process holds one :class:`WorkerRuntime`: its run identity and heartbeat (claims of a dead
worker are taken over like those of a dead ``generate``: :mod:`limner.runner.claims`), the imaging pool,
the unit of work and one :class:`~limner.runner.retry.ProviderGate` per provider whose slots are shared
by every worker (:mod:`.limits`). A job plans its entry against the database when it runs, so an entry
published meanwhile costs nothing, and a job for an older fingerprint than the catalogue's is dropped.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING, Any

from limner.queue.engine import SCHEDULE_TASK, TASK

if TYPE_CHECKING:
    import procrastinate

    from limner.project import Project
    from limner.runner.lanes import Lane
    from limner.runner.plan import PlanItem
    from limner.runner.retry import ProviderGate

log = logging.getLogger("limner.queue")

#: a job whose entry another live run holds (a worker on another host, within its lease) comes back
HELD_RETRY_WAIT_S = 5
HELD_RETRY_ATTEMPTS = 30


class HeldElsewhere(Exception):
    """Another live run holds the entry: the job is retried later (the engine's retry)."""


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

    async def start(self) -> None:
        from limner.queue.limits import SlotConnection
        from limner.runner.claims import HEARTBEAT_S, RunIdentity
        from limner.runner.pool import ImagingPool
        from limner.runner.run import beat, derive_options, open_unit

        p = self.project
        self.run = RunIdentity()
        p.storage.check()  # a store that cannot be written must not cost a paid generation
        p.repo.start_run(self.run.id, self.run.host, self.run.pid, kind="worker")
        self.pool = ImagingPool.start(derive_options(p), p.settings.generate.workers)
        self.unit, self.off = await open_unit(p, self.pool, self.run)
        self.slots = SlotConnection(self.dsn) if p.settings.queue.global_limits else None
        self._beating = asyncio.create_task(beat(self.off, p.repo, self.run, min(HEARTBEAT_S, p.settings.queue.heartbeat_s)))

    async def close(self) -> None:
        if self._beating is not None:
            self._beating.cancel()
        for gate in self.gates.values():
            await gate.provider.aclose()
        for session in [self.slots, *self._sessions]:
            if session is not None:
                await session.close()
        try:
            await self.off.db(self.project.repo.end_run, self.run.id)
        finally:
            await asyncio.to_thread(self.off.shutdown)
            await asyncio.to_thread(self.pool.shutdown, wait=True)

    def gate_for(self, lane: Lane) -> ProviderGate:
        gate = self.gates.get(lane.name)
        if gate is None:
            gate = self.gates[lane.name] = lane.gate(self.project.settings.generate)
            if self.metrics is not None:
                self.metrics.time_calls(gate.provider)
            if self.slots is not None:
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
            p.__dict__.pop("catalog", None)  # the catalogue as it is now
            plan = build_plan(p, Selection())
            return plan, commit_plan(p, plan, p.settings.generate.budget_usd)

        plan, cap_id = await self.off.db(plan_now)
        result = await enqueue_plan(app, plan, cap_id=cap_id)
        log.info("schedule tick %s: %s", timestamp, result.to_dict())
        return f"enqueued {result.enqueued}"

    # -------------------------------------------------------------------------------------- one job
    def _plan_one(self, entry_id: str, fingerprint: str) -> PlanItem | str:
        """The entry's plan item, planned now; or why there is nothing to do (``up_to_date``,
        ``superseded``: the catalogue has another fingerprint, ``not_in_catalogue``)."""
        from limner.runner.plan import Selection, build_plan

        p = self.project
        for attempt in range(2):
            if attempt:  # the catalogue may have changed since this worker read it
                p.__dict__.pop("catalog", None)
            if entry_id not in p.catalog.by_id():
                continue
            status = p.repo.entry_statuses().get(entry_id)
            plan = build_plan(p, Selection(ids=(entry_id,)), statuses={entry_id: status} if status else {})
            item = plan.items[0]
            if item.fingerprint != fingerprint:
                continue
            if item.reason == "forced":  # published with this fingerprint (or failed for good, unchanged)
                return "up_to_date"
            p.repo.sync_entries([(entry_id, item.entry.title, item.style.name, item.fingerprint)])
            return item
        return "superseded" if entry_id in p.catalog.by_id() else "not_in_catalogue"

    def _count(self, provider: str, outcome: Any) -> None:
        if self.metrics is None:
            return
        self.metrics.spend.labels(provider).inc(outcome.cost_usd)
        label = {"published": "published", "elsewhere": "retried", "not_started": "retried"}.get(outcome.status, "failed")
        self.metrics.jobs.labels(label).inc()

    async def run_entry(self, entry_id: str, fingerprint: str, cap_id: str | None = None) -> str:
        from limner.queue.limits import SharedBudget

        found = await self.off.db(self._plan_one, entry_id, fingerprint)
        if isinstance(found, str):
            if self.metrics is not None:
                self.metrics.jobs.labels("up_to_date").inc()
            log.info("job %s: %s, nothing to do", entry_id, found)
            return found
        item = found
        budget = SharedBudget(self.project.repo, cap_id)
        price = item.price_usd
        if not await self.off.db(budget.reserve, price):
            raise EntryFailed(f"{entry_id}: the budget of this enqueue is spent; `limner generate --enqueue --budget N` "
                              "enqueues the entries left with a new budget")
        self.current.add(entry_id)
        outcome = None
        try:
            outcome = await self.unit.run(item, self.gate_for(item.lane))
        finally:
            self.current.discard(entry_id)
            await asyncio.shield(self.off.db(budget.settle, price, outcome.cost_usd if outcome else 0.0))
        self._count(item.provider, outcome)
        if outcome.status == "published":
            self.done += 1
            return "published"
        if outcome.status == "not_started":
            await self.off.db(self.project.repo.release_claim, entry_id, self.run.id)
        if outcome.status in ("elsewhere", "not_started"):
            statuses = await self.off.db(self.project.repo.entry_statuses)
            st = statuses.get(entry_id)
            if st is not None and st.published_fingerprint == fingerprint and st.state == "published":
                return "up_to_date"
            raise HeldElsewhere(f"{entry_id}: another run holds it; retried in {HELD_RETRY_WAIT_S}s")
        if outcome.status == "stopped" and outcome.stop_cause != "fault":  # credentials: free it for later
            await self.off.db(self.project.repo.release_claim, entry_id, self.run.id)
        # a fault after a paid answer keeps the claim: the image is in this host's recovery folder, and the
        # entry stays with this worker (its next job for the entry, or the next run here, records it)
        self.failed += 1
        raise EntryFailed(f"{entry_id}: {outcome.error or outcome.stop_reason or outcome.status}")


def register(app: procrastinate.App, *, schedule: str | None = None) -> None:
    import procrastinate

    if schedule:
        @app.periodic(cron=schedule, periodic_id="missing-or-stale")
        @app.task(name=SCHEDULE_TASK, queue="schedule", pass_context=True)
        async def scheduled_enqueue(context: Any, timestamp: int) -> str:
            runtime: WorkerRuntime = context.additional_context["limner"]
            return await runtime.enqueue_due(context.app, timestamp)

    @app.task(name=TASK, pass_context=True,
              retry=procrastinate.RetryStrategy(max_attempts=HELD_RETRY_ATTEMPTS, wait=HELD_RETRY_WAIT_S,
                                                retry_exceptions={HeldElsewhere}))
    async def generate_entry(context: Any, entry_id: str, fingerprint: str, cap_id: str | None = None) -> str:
        runtime: WorkerRuntime = context.additional_context["limner"]
        return await runtime.run_entry(entry_id, fingerprint, cap_id)
