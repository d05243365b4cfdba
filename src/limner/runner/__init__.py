"""The runner: plan what needs images, then run one idempotent unit of work per entry.

Submodules are imported lazily: planning must not pay for the imaging stack.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from limner.runner.plan import Plan, PlanItem, Selection, build_plan
    from limner.runner.run import RunOptions, RunSummary, run_plan

__all__ = ["Plan", "PlanItem", "RunOptions", "RunSummary", "Selection", "build_plan", "run_plan"]

_PLAN = {"Plan", "PlanItem", "Selection", "build_plan"}


def __getattr__(name: str) -> Any:
    if name in _PLAN:
        from limner.runner import plan

        return getattr(plan, name)
    if name in __all__:
        from limner.runner import run

        return getattr(run, name)
    raise AttributeError(name)
