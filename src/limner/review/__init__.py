"""Review: a person's decisions on renders and requests for new ones, shared by ``limner review`` and the
review studio (``limner serve``). Decisions and overrides are database operations
(:class:`limner.db.review.Reviews`); a regeneration runs the same unit of work as ``limner generate``.

An override or a regeneration may name any entry of the catalogue, also one that was never planned or
generated: :func:`ensure_entry` gives it its database row first. An id that is not in the catalogue is
refused (:class:`limner.db.review.ReviewNotFound`, naming it)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from limner.errors import did_you_mean

if TYPE_CHECKING:
    from limner.project import Project
    from limner.runner.run import RunSummary


def check_entry(project: Project, entry_id: str) -> None:
    """Refuse an id that is not in the catalogue, naming it (and the closest ids, when some are close)."""
    known = project.catalog.by_id()
    if entry_id in known:
        return
    from limner.db.review import ReviewNotFound

    raise ReviewNotFound(f"no entry {entry_id!r} in the catalogue {project.settings.catalog}{did_you_mean(entry_id, known)}")


def check_style(project: Project, style: str | None) -> None:
    if style is not None and style not in project.styles:
        from limner.db.review import ReviewInvalid

        raise ReviewInvalid(f"no style {style!r} (styles: {', '.join(sorted(project.styles))})")


def ensure_entry(project: Project, entry_id: str) -> bool:
    """Give a catalogue entry its database row when it has none yet (never planned nor generated), as the
    runner would: its title and style from the plan of that one entry. The row is left in state ``missing``
    (nothing is queued for it). True when the row was created here; an id not in the catalogue is refused."""
    check_entry(project, entry_id)
    reviews = project.reviews
    if reviews.entry(entry_id) is not None:
        return False
    from limner.runner import Selection, build_plan

    # no row, hence no status and no override: plan the entry as missing without reading every entry's
    plan = build_plan(project, Selection(ids=(entry_id,)), statuses={}, overrides={})
    item = next(i for i in plan.items if i.entry.id == entry_id)
    return reviews.add_entry(entry_id, title=item.entry.title, style=item.style.name)


def set_override(project: Project, entry_id: str, *, prompt: str | None = None, negative_extra: str | None = None,
                 seed: int | None = None, style: str | None = None, keep: bool = True) -> None:
    """Store a person's change to the entry's generation (``keep``: merged with the stored one; else it
    replaces it), creating the entry's row first when it was never planned."""
    check_entry(project, entry_id)
    check_style(project, style)
    ensure_entry(project, entry_id)
    project.reviews.set_override(entry_id, prompt=prompt, negative_extra=negative_extra, seed=seed, style=style,
                                 keep=keep)


def regenerate(project: Project, entry_id: str, *, prompt: str | None = None, negative_extra: str | None = None,
               seed: int | None = None, style: str | None = None, progress: bool = False) -> RunSummary:
    """Store the person's changes to the entry (any of prompt, extra negative terms, seed, style; the others
    are kept), then generate it now through the runner (a paid call, within the project's settings, its spend
    cap ``[generate] budget_usd`` included: a regeneration is a run).
    With ``[review] required`` the new render waits for approval; else it is published. An entry that was
    never generated is generated for the first time."""
    from limner.runner import RunOptions, Selection, build_plan, run_plan

    set_override(project, entry_id, prompt=prompt, negative_extra=negative_extra, seed=seed, style=style)
    plan = build_plan(project, Selection(ids=(entry_id,)))
    return run_plan(project, plan, RunOptions(budget_usd=project.settings.generate.budget_usd, progress=progress))


__all__ = ["check_entry", "check_style", "ensure_entry", "regenerate", "set_override"]
