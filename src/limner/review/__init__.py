"""Review: a person's decisions on renders and requests for new ones, shared by ``limner review`` and the
review studio (``limner serve``). Decisions and overrides are database operations
(:class:`limner.db.review.Reviews`); a regeneration runs the same unit of work as ``limner generate``."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from limner.project import Project
    from limner.runner.run import RunSummary


def regenerate(project: Project, entry_id: str, *, prompt: str | None = None, negative_extra: str | None = None,
               seed: int | None = None, style: str | None = None, progress: bool = False) -> RunSummary:
    """Store the person's changes to the entry (any of prompt, extra negative terms, seed, style; the others
    are kept), then generate it now through the runner (a paid call, within the project's settings).
    With ``[review] required`` the new render waits for approval; else it is published."""
    from limner.runner import RunOptions, Selection, build_plan, run_plan

    if style is not None and style not in project.styles:
        from limner.db.review import ReviewError

        raise ReviewError(f"no style {style!r} (styles: {', '.join(sorted(project.styles))})")
    project.reviews.set_override(entry_id, prompt=prompt, negative_extra=negative_extra, seed=seed, style=style)
    plan = build_plan(project, Selection(ids=(entry_id,)))
    return run_plan(project, plan, RunOptions(progress=progress))
