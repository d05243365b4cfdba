"""Run a plan: a pool of async workers, one unit of work per entry, bounded per provider.

* provider calls: per-provider concurrency slots, rate limit, timeout and retries (:mod:`.retry`)
* CPU work (validation, derivation): a process pool, off the event loop
* budget: a call starts only if spend (done + in flight) plus its price stays within the budget
* ``AuthFailed`` stops the whole run at once; Ctrl-C stops cleanly, and a re-run resumes
"""

from __future__ import annotations

import asyncio
import logging
import multiprocessing
import os
import signal
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from limner.errors import EXIT_AUTH, EXIT_BUDGET, EXIT_FAILURES, EXIT_INTERRUPTED, EXIT_OK
from limner.providers import AuthFailed, ProviderError
from limner.project import Project
from limner.runner.imaging_task import DeriveOptions
from limner.runner.plan import Plan, PlanItem
from limner.runner.progress import RunProgress
from limner.runner.retry import ProviderGate, RunStopped
from limner.runner.unit import UnitOfWork

log = logging.getLogger("limner.runner")


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
    not_started: int = 0
    interrupted: bool = False
    budget_stopped: bool = False
    auth_error: str | None = None
    elapsed_s: float = 0.0
    failures: list[dict[str, str]] = field(default_factory=list)

    @property
    def exit_code(self) -> int:
        if self.interrupted:
            return EXIT_INTERRUPTED
        if self.auth_error:
            return EXIT_AUTH
        if self.failed:
            return EXIT_FAILURES
        if self.budget_stopped:
            return EXIT_BUDGET
        return EXIT_OK

    def to_dict(self) -> dict[str, Any]:
        return {
            "planned": self.planned, "generated": self.generated, "resumed": self.resumed, "skipped": self.skipped,
            "failed": self.failed, "provider_calls": self.provider_calls, "spend_usd": round(self.spend_usd, 6),
            "not_started": self.not_started, "interrupted": self.interrupted, "budget_stopped": self.budget_stopped,
            "auth_error": self.auth_error, "elapsed_s": round(self.elapsed_s, 3), "failures": self.failures,
        }


class Budget:
    """Reserve a call's price before it starts; never let done + in flight pass the cap."""

    def __init__(self, cap: float | None) -> None:
        self.cap = cap
        self.spent = 0.0
        self.in_flight = 0.0

    def reserve(self, price: float) -> bool:
        if self.cap is not None and self.spent + self.in_flight + price > self.cap + 1e-9:
            return False
        self.in_flight += price
        return True

    def settle(self, reserved: float, actual: float) -> None:
        self.in_flight -= reserved
        self.spent += actual


def init_worker() -> None:
    """Pool workers leave Ctrl-C to the main process, which stops the run and shuts the pool down,
    and run at a lower priority: the event loop's provider timings matter more than a few ms of
    derivation (throughput is the same; the work just yields to the loop)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        os.nice(5)
    except OSError:  # pragma: no cover - not permitted here: run at normal priority
        pass


def warm_up() -> None:
    import limner.runner.imaging_task  # noqa: F401  (imports Pillow, codecs, imagehash)


def derive_options(project: Project) -> DeriveOptions:
    g, s = project.settings.generate, project.settings.sync
    return DeriveOptions(widths=tuple(g.widths), formats=tuple(g.formats), placeholder_width=s.placeholder_width,
                         placeholder_format=s.placeholder_format, placeholder_max_bytes=s.placeholder_max_bytes,
                         max_bytes=g.max_image_bytes, max_pixels=g.max_image_pixels)


def _gates(project: Project, plan: Plan) -> dict[str, ProviderGate]:
    g = project.settings.generate
    gates = {}
    for name in plan.by_provider():
        conf = project.settings.provider_settings(name)
        provider = project.provider(name)
        gates[name] = ProviderGate(
            provider, concurrency=project.provider_concurrency(name),
            rate_per_minute=conf.rate_limit_per_minute or provider.capabilities.rate_limit_per_minute,
            timeout_s=conf.timeout_s, max_attempts=g.max_attempts, backoff_initial_s=g.backoff_initial_s,
            backoff_max_s=g.backoff_max_s,
        )
    return gates


async def _execute(project: Project, plan: Plan, options: RunOptions, summary: RunSummary, pool: ProcessPoolExecutor) -> None:
    repo = project.repo
    gates = _gates(project, plan)
    unit = UnitOfWork(repo=repo, storage=project.storage, pool=pool, options=derive_options(project), phashes=repo.phashes())
    budget = Budget(options.budget_usd)
    queue: asyncio.Queue[PlanItem] = asyncio.Queue()
    for item in plan.items:
        queue.put_nowait(item)
    stop = asyncio.Event()
    n_workers = min(len(plan.items), sum(g.concurrency for g in gates.values()) * 2 + (pool._max_workers or 1))

    main_task = asyncio.current_task()
    loop = asyncio.get_running_loop()

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
        bar.console.print("Stopping: finishing the calls in flight (they are paid for); Ctrl-C again to stop now.")

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
                if not budget.reserve(price):
                    summary.budget_stopped = True
                    summary.not_started += 1
                    continue
                actual = 0.0
                try:
                    outcome = await unit.run(item, gates[item.provider])
                    actual = outcome.cost_usd
                    summary.provider_calls += outcome.provider_calls
                    if outcome.status == "published":
                        summary.generated += 1
                        summary.resumed += int(outcome.resumed)
                    else:
                        summary.failed += 1
                        summary.failures.append({"id": item.entry.id, "error": outcome.error or "failed"})
                except RunStopped:  # never reached the provider: it stays queued for the next run
                    summary.not_started += 1
                    return
                except AuthFailed as exc:
                    summary.provider_calls += getattr(exc, "attempts", 1)
                    actual = getattr(exc, "billed_total", 0.0)
                    summary.auth_error = f"provider {item.provider!r} rejected the credentials: {exc}"
                    if getattr(exc, "attempts", 0):  # entries that never reached the provider stay queued
                        repo.mark_failed(item.entry.id, f"AuthFailed: {exc}", retryable=True, attempts=exc.attempts)
                    stop.set()
                    return
                except ProviderError as exc:
                    summary.provider_calls += getattr(exc, "attempts", 1)
                    actual = getattr(exc, "billed_total", 0.0)
                    summary.failed += 1
                    message = f"{type(exc).__name__}: {exc}"
                    summary.failures.append({"id": item.entry.id, "error": message})
                    repo.mark_failed(item.entry.id, message, retryable=exc.retryable, attempts=getattr(exc, "attempts", 1))
                except Exception as exc:  # storage faults, bugs: the entry fails, the run goes on
                    log.exception("entry %s failed", item.entry.id)
                    summary.provider_calls += getattr(exc, "attempts", 0)
                    actual = getattr(exc, "billed_total", 0.0)
                    summary.failed += 1
                    message = f"{type(exc).__name__}: {exc}"
                    summary.failures.append({"id": item.entry.id, "error": message})
                    repo.mark_failed(item.entry.id, message, retryable=True, attempts=1)
                finally:
                    budget.settle(price, actual)
                    summary.spend_usd = budget.spent
                bar.advance(spend=budget.spent, failed=summary.failed)

        try:
            async with asyncio.TaskGroup() as tg:
                for _ in range(max(1, n_workers)):
                    tg.create_task(worker())
        except asyncio.CancelledError:
            # Ctrl-C: drop queued imaging work and let running items finish while the loop can still take
            # their answers; in-flight entries stay "generating" and the next run resumes them
            await asyncio.to_thread(pool.shutdown, wait=True, cancel_futures=True)
            raise
        finally:
            try:
                loop.remove_signal_handler(signal.SIGINT)
            except (NotImplementedError, RuntimeError):  # pragma: no cover
                pass
    summary.not_started += queue.qsize()
    for gate in gates.values():
        await gate.provider.aclose()


def run_plan(project: Project, plan: Plan, options: RunOptions | None = None) -> RunSummary:
    """Commit the plan, then run it. Returns a summary; never raises for per-entry failures."""
    options = options or RunOptions()
    summary = RunSummary(planned=len(plan.items), skipped=plan.up_to_date + len(plan.held_back))
    started = time.perf_counter()
    repo = project.repo
    # checks before anything is written or paid for: credentials, then the store
    for name in plan.by_provider():
        missing = project.provider(name).missing_env()
        if missing:  # same exit as a rejected credential
            summary.auth_error = (f"provider {name!r} needs {', '.join(missing)}: set it in the environment or in .env "
                                  "(see `limner providers`)")
            summary.not_started = len(plan.items)
            return summary
    if plan.items:
        project.storage.check()  # a store that cannot be written must not cost a single paid generation
    repo.sync_entries(((i.entry.id, i.entry.title, i.style.name, i.fingerprint) for i in plan.items))
    repo.mark_stale(plan.stale_not_selected)
    if not plan.items:
        return summary
    workers = project.settings.generate.workers or os.cpu_count() or 1
    # the fork server and its workers are born ignoring Ctrl-C (a terminal sends it to the whole process
    # group); the main process stops the run and shuts the pool down
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        pool = ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context("forkserver"),
                                   initializer=init_worker)
        for _ in range(workers):  # start the workers (and their imaging imports) while the first calls are in flight
            pool.submit(warm_up)
    finally:
        signal.signal(signal.SIGINT, previous)
    try:
        asyncio.run(_execute(project, plan, options, summary, pool))
    except (KeyboardInterrupt, asyncio.CancelledError):  # a second Ctrl-C: stopped at once
        summary.interrupted = True
    finally:
        pool.shutdown(wait=not summary.interrupted, cancel_futures=True)
        summary.elapsed_s = time.perf_counter() - started
    return summary
