"""Enqueue a plan: one job per entry, deduplicated by entry and fingerprint.

The job's ``queueing_lock`` is its entry id, so the engine keeps at most one *queued* job per entry. A
second enqueue of an unchanged entry finds that job (same fingerprint) and adds nothing; a changed entry
cancels the queued job of its old fingerprint and queues its own. An enqueue with a budget (``cap_id``) replaces
a queued job of the same fingerprint that has no cap or another one: every job it reports runs under its cap. Each job goes to the queue named after
its provider (``limner worker --queues replicate`` serves only those).

A *forced* job (``generate --enqueue --id/--all`` of a published entry) regenerates its image. It carries
``replaces``, the id of the render published when it was enqueued: a worker regenerates only while that
render is still the published one (:meth:`limner.db.repository.Repository.claim_to_replace`), so a second
forced job for the same image, or the same job run twice, pays nothing. A queued forced job covers an
unforced one for the same fingerprint; an unforced job is replaced by a forced one; a job that replaces a forced
one of the same fingerprint (under another budget, or in :mod:`.engine` when the forced one comes back) is forced
too (:func:`keep_forced`).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from limner.queue.engine import TASK

if TYPE_CHECKING:
    import procrastinate

    from limner.project import Project
    from limner.runner.plan import Plan


@dataclass
class EnqueueResult:
    enqueued: int = 0
    already_queued: int = 0
    replaced: int = 0
    cap_id: str | None = None
    queues: dict[str, int] = field(default_factory=dict)

    def to_dict(self) -> dict:
        return {"enqueued": self.enqueued, "already_queued": self.already_queued, "replaced": self.replaced,
                "budget_id": self.cap_id, "queues": self.queues}


def _covers(queued: dict, fingerprint: str, force: bool, cap_id: str | None) -> bool:
    """Whether a queued job's arguments already do what a job for (fingerprint, force, cap_id) would. An enqueue
    with a budget covers only jobs under its own cap: a job queued without one, or under another enqueue's, would
    spend outside the cap this enqueue reports."""
    return (queued.get("fingerprint") == fingerprint and (bool(queued.get("force")) or not force)
            and (cap_id is None or queued.get("cap_id") == cap_id))


def keep_forced(args: dict, replaced: dict) -> dict:
    """The arguments of a job that takes the place of ``replaced`` for its entry: a forced request of the same
    fingerprint is carried over (the unforced job alone would find the image published and do nothing)."""
    if replaced.get("force") and not args.get("force") and replaced.get("fingerprint") == args.get("fingerprint"):
        return {**args, "force": True, "replaces": replaced.get("replaces")}
    return args


async def enqueue_plan(app: procrastinate.App, plan: Plan, *, cap_id: str | None = None,
                       replaces: dict[str, int] | None = None) -> EnqueueResult:
    """One job per plan item. ``replaces``: entry id -> its published render id, for the items planned as
    ``forced`` (see the module's docstring)."""
    import procrastinate

    result = EnqueueResult(cap_id=cap_id)
    task = app.tasks[TASK]
    replaces = replaces or {}
    for item in plan.items:
        force = item.reason == "forced"
        args = {"entry_id": item.entry.id, "fingerprint": item.fingerprint, "cap_id": cap_id}
        if force:
            args.update(force=True, replaces=replaces.get(item.entry.id))
        job = task.configure(queueing_lock=item.entry.id, queue=item.provider)
        for attempt in range(3):
            try:
                await job.defer_async(**args)
                break
            except procrastinate.exceptions.AlreadyEnqueued:
                queued = [j for j in await app.job_manager.list_jobs_async(task=TASK, status="todo",
                                                                             queueing_lock=item.entry.id)]
                if any(_covers(j.task_kwargs, item.fingerprint, force, cap_id) for j in queued):
                    result.already_queued += 1
                    break
                for old in queued:  # another fingerprint (the entry changed since), forced now, or another budget:
                    # the old job goes (a forced request of the same fingerprint stays with the new one)
                    if await app.job_manager.cancel_job_by_id_async(old.id):
                        result.replaced += 1
                        args = keep_forced(args, old.task_kwargs)
        else:  # pragma: no cover - a worker kept taking and requeueing the job meanwhile
            raise RuntimeError(f"could not enqueue {item.entry.id}")
        result.queues[item.provider] = result.queues.get(item.provider, 0) + 1
    result.enqueued = len(plan.items) - result.already_queued
    return result


def new_cap_id() -> str:
    return str(uuid.uuid4())


def commit_plan(project: Project, plan: Plan, budget_usd: float | None) -> str | None:
    """Record the plan's entries (as ``limner generate`` does before it runs) and open a spend cap shared
    by the workers when there is a budget. Returns the cap's id."""
    repo = project.repo
    repo.sync_entries(((i.entry.id, i.entry.title, i.style.name, i.fingerprint) for i in plan.items))
    repo.mark_stale(plan.stale_not_selected)
    if budget_usd is None or not plan.items:
        return None
    cap_id = new_cap_id()
    repo.open_spend_cap(cap_id, budget_usd)
    return cap_id


def replaced_renders(project: Project, plan: Plan) -> dict[str, int]:
    """entry id -> its published render, for the plan's ``forced`` items (what their jobs replace)."""
    forced = [i.entry.id for i in plan.items if i.reason == "forced"]
    return project.repo.published_render_ids_of(forced) if forced else {}
