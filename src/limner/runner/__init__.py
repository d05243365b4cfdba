"""The runner: plan what needs images, then run one idempotent unit of work per entry."""

from limner.runner.plan import Plan, PlanItem, Selection, build_plan
from limner.runner.run import RunOptions, RunSummary, run_plan

__all__ = ["Plan", "PlanItem", "RunOptions", "RunSummary", "Selection", "build_plan", "run_plan"]
