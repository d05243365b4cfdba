"""Run a plan: a pool of async workers, one unit of work per entry, bounded per provider.

* provider calls: per-provider concurrency slots, rate limit, timeout and retries (:mod:`.retry`)
* CPU work (validation, derivation): a process pool, off the event loop
* budget: a call starts only if spend (done + in flight) plus its price stays within the budget
* ``AuthFailed`` stops the whole run at once; Ctrl-C stops cleanly, and a re-run resumes
"""

from __future__ import annotations

import asyncio
import logging
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.exc import SQLAlchemyError

from limner.errors import EXIT_AUTH, EXIT_BUDGET, EXIT_FAILURES, EXIT_INTERRUPTED, EXIT_OK, ConfigError
from limner.gcpause import startup_over
from limner.project import Project
from limner.runner.claims import HEARTBEAT_S, LEASE_S, RunIdentity
from limner.runner.imaging_task import DeriveOptions
from limner.runner.journal import Allowance
from limner.runner.neardup import NearDuplicateIndex
from limner.runner.offloop import OffLoop, responsive_loop
from limner.runner.plan import Plan, PlanItem
from limner.runner.pool import ImagingPool
from limner.runner.progress import RunProgress
from limner.runner.recovery import RecoveryFolder
from limner.runner.retry import ProviderGate
from limner.runner.unit import Outcome, UnitOfWork

log = logging.getLogger("limner.runner")

#: the imaging pool starts this long after a run's first call went out, so that the first round's requests
#: are written first: starting the forkserver holds the event loop for about 10 ms (its workers then take
#: 0.3-0.4 s to import the imaging stack, well within a provider's latency)
POOL_START_DELAY_S = 0.02


@dataclass
class RunOptions:
    budget_usd: float | None = None
    progress: bool = True


@dataclass
class RunSummary:
    planned: int = 0
    generated: int = 0
    resumed: int = 0
    skipped: int = 0
    failed: int = 0
    provider_calls: int = 0
    spend_usd: float = 0.0
    #: the part of ``spend_usd`` that corrects what earlier runs' summaries counted for calls this run settled
    #: (asked the provider about, and learned another cost): adjustment lines of the ledger, not calls
    adjustments_usd: float = 0.0
    not_started: int = 0
    #: entries another run was working on (or had just published): left to it, nothing paid here
    elsewhere: int = 0
    interrupted: bool = False
    budget_stopped: bool = False
    auth_error: str | None = None
    #: what to do about ``auth_error`` (the provider's error says: credentials, credit, weights, memory)
    auth_fix: str | None = None
    #: why the run stopped starting paid calls after a storage or database fault (None: it did not)
    halted: str | None = None
    #: paid images kept in the recovery folder by this run (the next run records them)
    kept_locally: int = 0
    elapsed_s: float = 0.0
    failures: list[dict[str, str]] = field(default_factory=list)
    #: when each phase of the run was reached (epoch seconds): see docs/cli.md, ``generate --json``
    timeline: dict[str, float] = field(default_factory=dict)

    def mark(self, phase: str, when: float | None = None) -> None:
        """Note when ``phase`` was first reached."""
        self.timeline.setdefault(phase, time.time() if when is None else when)

    @property
    def exit_code(self) -> int:
        if self.interrupted:
            return EXIT_INTERRUPTED
        if self.auth_error:
            return EXIT_AUTH
        if self.failed or self.halted:
            return EXIT_FAILURES
        if self.budget_stopped:
            return EXIT_BUDGET
        return EXIT_OK

    def record(self, outcome: Outcome) -> None:
        """Count one unit of work's outcome: the one place the summary learns what happened."""
        self.provider_calls += outcome.provider_calls
        if outcome.status == "published":
            self.mark("first_published")
            self.timeline["last_published"] = time.time()
            self.generated += 1
            self.resumed += int(outcome.resumed)
        elif outcome.status == "failed":
            self.failed += 1
            self.failures.append({"id": outcome.entry_id, "error": outcome.error or "failed"})
        elif outcome.status == "not_started":
            self.not_started += 1
        elif outcome.status == "over_budget":  # its calls are counted above; the entry stays queued
            self.not_started += 1
            self.budget_stopped = True
        elif outcome.status == "elsewhere":
            self.elsewhere += 1
        elif outcome.status == "stopped" and outcome.stop_cause == "fault":
            self.kept_locally += int(outcome.kept_locally)
            self.halted = self.halted or outcome.stop_reason
            self.failures.append({"id": outcome.entry_id, "error": outcome.stop_reason or "stopped"})
        elif outcome.status == "stopped" and self.auth_error is None:
            self.auth_error, self.auth_fix = outcome.stop_reason, outcome.stop_fix

    def to_dict(self) -> dict[str, Any]:
        return {
            "planned": self.planned, "generated": self.generated, "resumed": self.resumed, "skipped": self.skipped,
            "failed": self.failed, "provider_calls": self.provider_calls, "spend_usd": round(self.spend_usd, 6),
            "adjustments_usd": round(self.adjustments_usd, 6), "not_started": self.not_started, "elsewhere": self.elsewhere, "interrupted": self.interrupted, "budget_stopped": self.budget_stopped,
            "auth_error": self.auth_error, "halted": self.halted, "kept_locally": self.kept_locally, "elapsed_s": round(self.elapsed_s, 3), "failures": self.failures,
            "timeline": {k: round(v, 4) for k, v in sorted(self.timeline.items(), key=lambda kv: kv[1])},
        }


class Budget:
    """Reserve a call's price before it starts; never let done + in flight pass the cap."""

    def __init__(self, cap: float | None) -> None:
        self.cap = cap
        self.spent = 0.0
        self.in_flight = 0.0
        self._settled = asyncio.Event()  # set whenever a reservation is settled

    def reserve(self, price: float) -> bool:
        if self.cap is not None and self.spent + self.in_flight + price > self.cap + 1e-9:
            return False
        self.in_flight += price
        return True

    async def wait_to_reserve(self, price: float) -> bool:
        """Reserve ``price`` for an entry about to start, waiting while the cap is held only by reservations
        still in flight: one that settles below its price (a refused call costs nothing) makes room. False
        once what is spent leaves no room for it. (An entry's further calls, :meth:`allowance`, never wait:
        two entries each waiting for the other's reservation would wait for ever.)"""
        while not self.reserve(price):
            if self.cap is None or self.in_flight <= 1e-12 or self.spent + price > self.cap + 1e-9:
                return False
            self._settled.clear()
            await self._settled.wait()
        return True

    def settle(self, reserved: float, actual: float) -> None:
        self.in_flight -= reserved
        self.spent += actual
        self._settled.set()

    def allowance(self, price: float) -> Allowance | None:
        """An entry's share of the cap, ``price`` reserved already (None without a cap)."""
        if self.cap is None:
            return None

        async def reserve(extra: float) -> bool:
            return self.reserve(extra)

        return Allowance(reserve, price)


def derive_options(project: Project) -> DeriveOptions:
    g, s = project.settings.generate, project.settings.sync
    return DeriveOptions(widths=tuple(g.widths), formats=tuple(g.formats), placeholder_width=s.placeholder_width,
                         placeholder_format=s.placeholder_format, placeholder_max_bytes=s.placeholder_max_bytes,
                         max_bytes=g.max_image_bytes, max_pixels=g.max_image_pixels,
                         variant_provenance=g.variant_provenance)


async def open_unit(project: Project, pool: ImagingPool, run: RunIdentity) -> tuple[UnitOfWork, OffLoop]:
    """The unit of work every entry of a run goes through (and its database and storage threads): shared
    by :func:`run_plan` and by a queue worker (:mod:`limner.queue`), so both run the same code."""
    off = OffLoop(db_threads=1 if project.db.engine.dialect.name == "sqlite" else 4)
    phashes = await off.db(project.repo.phashes)
    near = NearDuplicateIndex(project.settings.generate.near_duplicate_distance,
                              ((entry_id, int(value, 16)) for entry_id, value in phashes.items()))
    unit = UnitOfWork(repo=project.repo, storage=project.storage, pool=pool,
                      options=derive_options(project), near_duplicates=near, off=off, run=run,
                      recovery=RecoveryFolder(project.settings.state_dir / "recovery"),
                      review_required=project.settings.review.required)
    return unit, off


async def beat(off: OffLoop, repo: Any, run: RunIdentity, every_s: float = HEARTBEAT_S,
               on_ended: Callable[[], None] | None = None) -> None:
    """The run's heartbeat: its claims hold while this beats (see runner/claims.py). When another run has
    ended this one meanwhile (judged gone: its heartbeat stalled past the lease, seen from another host), its
    claims are gone: ``on_ended`` stops it starting paid calls, and the beat ends."""
    while True:
        await asyncio.sleep(every_s)
        try:
            alive = await off.db(repo.heartbeat, run.id)
        except SQLAlchemyError as exc:  # a lost connection: try again at the next beat
            log.warning("heartbeat of run %s failed: %s", run.id, exc)
            continue
        if not alive:
            log.error("run %s was ended by another run, which judged it gone (no heartbeat for %gs); it starts "
                      "no more paid calls", run.id, LEASE_S)
            if on_ended is not None:
                on_ended()
            return


async def _execute(project: Project, plan: Plan, options: RunOptions, summary: RunSummary, pool: ImagingPool,
                   run: RunIdentity) -> None:
    repo = project.repo
    loop = asyncio.get_running_loop()
    gates: dict[str, ProviderGate] = {name: lane.gate(project.settings.generate) for name, lane in plan.lanes.items()}
    for gate in gates.values():  # the pool starts once the first calls are out (see runner/pool.py)
        gate.on_first_call = lambda: loop.call_later(POOL_START_DELAY_S, pool.begin)
    pool.ready.add_done_callback(lambda f: None if f.cancelled() or f.exception() else summary.mark("pool_ready"))
    unit, off = await open_unit(project, pool, run)
    budget = Budget(options.budget_usd)
    queue: asyncio.Queue[PlanItem] = asyncio.Queue()
    for item in plan.items:
        queue.put_nowait(item)
    stop = asyncio.Event()
    n_workers = min(len(plan.items), sum(g.concurrency for g in gates.values()) * 2 + pool.workers)

    main_task = asyncio.current_task()

    def on_sigint() -> None:
        """First Ctrl-C: finish (and store) the calls in flight, start nothing new. Second: stop now."""
        if stop.is_set():
            assert main_task is not None
            main_task.cancel()
            return
        summary.interrupted = True
        stop.set()
        for gate in gates.values():
            gate.stopping = True
        bar.say("Stopping: finishing the calls in flight (they are paid for); Ctrl-C again to stop now.")

    with RunProgress(len(plan.items), enabled=options.progress) as bar:
        try:
            loop.add_signal_handler(signal.SIGINT, on_sigint)
        except (NotImplementedError, RuntimeError):  # pragma: no cover - not the main thread, or no signals here
            pass

        async def worker() -> None:
            while not stop.is_set():
                try:
                    item = queue.get_nowait()
                except asyncio.QueueEmpty:
                    return
                price = item.price_usd
                if not await budget.wait_to_reserve(price):
                    summary.budget_stopped = True
                    summary.not_started += 1
                    continue
                outcome: Outcome | None = None
                allowance = budget.allowance(price)
                try:
                    outcome = await unit.run(item, gates[item.provider], allowance)
                finally:  # a cancelled unit (second Ctrl-C) releases its reservation too
                    budget.settle(allowance.reserved if allowance else price, outcome.cost_usd if outcome else 0.0)
                summary.record(outcome)
                summary.spend_usd = budget.spent
                if outcome.status == "over_budget":  # cheaper entries may still fit under the cap
                    continue
                if outcome.status == "not_started":
                    return
                if outcome.status == "stopped":
                    stop.set()
                    if outcome.stop_cause == "fault":  # calls in flight finish and are kept; none starts
                        for gate in gates.values():
                            gate.stopping = True
                    return
                bar.advance(spend=budget.spent, failed=summary.failed)

        def on_ended() -> None:
            """Another run ended this one and may hold its entries: stop as after a fault (the calls in flight
            finish and are kept; none starts), or an entry could be paid for by both."""
            summary.halted = summary.halted or (
                f"another run judged this one gone (no heartbeat for {LEASE_S:g}s) and freed its entries; "
                "stopped starting paid calls so that none is paid twice: run generate again")
            stop.set()
            for gate in gates.values():
                gate.stopping = True

        beating = asyncio.create_task(beat(off, repo, run, HEARTBEAT_S, on_ended=on_ended))
        # once the first calls are out, the loop waits: import what storing a master needs (the ORM class
        # of a render, Pillow for its XMP) in the meantime rather than when the first answer is in
        warming = asyncio.create_task(_import_later(off, "limner.db.models", "limner.imaging.xmp_embed"))
        try:
            async with asyncio.TaskGroup() as tg:
                for _ in range(max(1, n_workers)):
                    tg.create_task(worker())
        except asyncio.CancelledError:
            # Ctrl-C: drop queued imaging work and let running items finish while the loop can still take
            # their answers; in-flight entries stay "generating" and the next run resumes them
            await asyncio.to_thread(pool.shutdown, wait=True)
            raise
        finally:
            beating.cancel()
            warming.cancel()
            try:
                loop.remove_signal_handler(signal.SIGINT)
            except (NotImplementedError, RuntimeError):  # pragma: no cover
                pass
            await asyncio.to_thread(off.shutdown)
    summary.not_started += queue.qsize()
    if pool.started_at is not None:
        summary.mark("pool_started", pool.started_at)
    for gate in gates.values():
        if gate.first_call_at is not None:
            summary.mark("first_call", gate.first_call_at)
        await gate.provider.aclose()


async def _import_later(off: OffLoop, *modules: str, delay_s: float = 0.05) -> None:
    import importlib

    await asyncio.sleep(delay_s)
    for module in modules:
        await off.io(importlib.import_module, module)


def run_plan(project: Project, plan: Plan, options: RunOptions | None = None) -> RunSummary:
    """Commit the plan, then run it. Returns a summary; never raises for per-entry failures."""
    options = options or RunOptions()
    summary = RunSummary(planned=len(plan.items), skipped=plan.up_to_date + len(plan.held_back))
    summary.mark("run_started")
    started = time.perf_counter()
    # checks before anything is written or paid for (the state database of a new project not created either):
    # the providers can run here, their credentials, the store
    for name, lane in plan.lanes.items():
        reason = lane.unavailable()
        if reason is not None and any(i.provider == name for i in plan.items):
            raise ConfigError(f"provider {name!r} cannot run on this machine: {reason}")
    for name, lane in plan.lanes.items():
        missing = lane.missing_env()
        if missing:  # same exit as a rejected credential
            unset = [m for m in missing if " (" not in m]  # set to a value that cannot be sent: "NAME (why)"
            unsendable = [m for m in missing if " (" in m]
            said = ([f"needs {', '.join(unset)}: set it in the environment or in .env"] if unset else []) + \
                   ([f"cannot use {', '.join(unsendable)}"] if unsendable else [])
            summary.auth_error = f"provider {name!r} {'; '.join(said)} (see `limner providers`)"
            summary.not_started = len(plan.items)
            return summary
    for name, lane in plan.lanes.items():  # a setting its slots depend on (batch_size, devices, hosts) that cannot work
        if any(i.provider == name for i in plan.items):
            _ = lane.concurrency  # raises ConfigError naming it
    if plan.items:
        project.storage.check()  # a store that cannot be written must not cost a single paid generation
    repo = project.repo
    repo.sync_entries(((i.entry.id, i.entry.title, i.style.name, i.fingerprint) for i in plan.items),
                      published_seen={i.entry.id: i.published_seen for i in plan.items})
    repo.mark_stale(plan.stale_not_selected)
    summary.mark("checked")
    if not plan.items:
        return summary
    # the pool starts in the background once the first call is out: its workers import the imaging stack meanwhile
    pool = ImagingPool.later(derive_options(project), project.settings.generate.workers)
    run = RunIdentity()
    repo.start_run(run.id, run.host, run.pid, scope=run.scope, process_start=run.process_start)
    startup_over()  # imported and planned: the garbage collector is back on for the run (see gcpause.py)
    try:
        with responsive_loop():
            asyncio.run(_execute(project, plan, options, summary, pool, run))
    except (KeyboardInterrupt, asyncio.CancelledError):  # a second Ctrl-C: stopped at once
        summary.interrupted = True
    finally:
        try:
            repo.end_run(run.id)  # entries still claimed (stopped, not started) are free for the next run
        except SQLAlchemyError as exc:  # their claims lapse when this process is gone (see runner/claims.py)
            log.error("could not end the run in the database: %s", exc)
        pool.shutdown(wait=not summary.interrupted)
        summary.elapsed_s = time.perf_counter() - started
        summary.mark("finished")
    _spend_from_ledger(repo, run, summary)
    return summary


def _spend_from_ledger(repo: Any, run: RunIdentity, summary: RunSummary) -> None:
    """The summary's calls and spend are the ledger's lines of this run (written before each call, and the
    adjustments it wrote for calls of earlier runs it settled), so the two always agree, and an earlier run's
    summary stays true; the in-memory count stays only when the database cannot be read."""
    try:
        summary.provider_calls, summary.spend_usd, summary.adjustments_usd = repo.run_spend(run.id)
    except SQLAlchemyError as exc:
        log.error("could not read this run's spend from the ledger (%s); the summary counts what it saw", exc)
