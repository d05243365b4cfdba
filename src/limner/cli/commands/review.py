"""``limner review``: the review decisions for scripts (list, approve, reject, pin, override, regenerate).
The review studio (``limner serve``) takes the same decisions through the same queries."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Annotated, Any, Optional

import typer

from limner.cli.commands._selection import JsonOpt
from limner.cli.context import err, friendly, get_project, out, print_json

if TYPE_CHECKING:
    from limner.db.models import Render

NoteOpt = Annotated[Optional[str], typer.Option("--note", help="Why (kept with the decision).")]
ActorOpt = Annotated[Optional[str], typer.Option("--actor", help="Who decides (default: $LIMNER_ACTOR, else the login name).")]
RenderIds = Annotated[list[int], typer.Argument(metavar="RENDER_ID...", help="Render ids (see `limner review list`).")]
PromptOpt = Annotated[Optional[str], typer.Option("--prompt", help="A prompt of your own, used in place of the style's.")]
NegativeOpt = Annotated[Optional[str], typer.Option("--negative", help="Extra negative terms, added after the style's.")]
SeedOpt = Annotated[Optional[int], typer.Option("--seed", min=0, max=2**32 - 1, help="Another seed.")]
StyleOpt = Annotated[Optional[str], typer.Option("--style", help="Another style.")]


def _actor(actor: str | None) -> str | None:
    if actor:
        return actor
    if os.environ.get("LIMNER_ACTOR"):
        return os.environ["LIMNER_ACTOR"]
    try:
        import getpass

        return getpass.getuser()
    except (OSError, KeyError):  # no login name (a container without a passwd entry)
        return None


def render_json(render: Render) -> dict[str, Any]:
    return {"render_id": render.id, "entry_id": render.entry_id, "status": render.status, "review": render.review,
            "provider": render.provider, "model": render.model, "seed": render.seed, "prompt": render.prompt,
            "cost_usd": render.cost_usd,
            "created_at": render.created_at.isoformat(timespec="seconds") + "Z" if render.created_at else None}


def register(app: typer.Typer) -> None:
    review = typer.Typer(help="Approve, reject, pin and regenerate renders (see docs/review.md).",
                         no_args_is_help=True, rich_markup_mode=None)
    app.add_typer(review, name="review")

    @review.command("list")
    @friendly
    def list_cmd(ctx: typer.Context,
                 entry: Annotated[Optional[str], typer.Option("--entry", help="Every render of this entry instead.")] = None,
                 as_json: JsonOpt = False) -> None:
        """Renders awaiting review, oldest first (or every render of one entry, newest first)."""
        project = get_project(ctx, read_only=True)
        try:
            if entry and project.reviews.entry(entry) is None:  # (an entry since removed from the catalogue
                from limner.review import check_entry  # still lists the renders it has)

                check_entry(project, entry)
            renders = project.reviews.renders(entry) if entry else project.reviews.awaiting()
        finally:
            project.close()
        rows = [render_json(r) for r in renders]
        if as_json:
            print_json({"renders": rows})
            return
        for r in rows:
            out.print(f"{r['render_id']}\t{r['entry_id']}\t{r['review'] or '-'}\t{r['status']}\tseed {r['seed']}\t"
                      f"{r['prompt'][:80]}", highlight=False, markup=False)
        what = f"render(s) of {entry}" if entry else "render(s) awaiting review"
        out.print(f"{len(rows)} {what}.", highlight=False)

    def decide(ctx: typer.Context, action: str, ids: list[int], note: str | None, actor: str | None,
               as_json: bool) -> None:
        project = get_project(ctx, read_only=True)  # a render id of a project with no state database is none
        done = []
        try:
            reviews = project.reviews
            # one transaction: a render id that does not exist (or refuses the action) changes nothing
            for render in reviews.decide_all(action, ids, note=note, actor=_actor(actor)):
                entry = reviews.entry(render.entry_id)
                done.append({"render_id": render.id, "entry_id": render.entry_id, "decision": action,
                             "entry_state": entry.state if entry else None,
                             "published_render_id": entry.published_render_id if entry else None})
        finally:
            project.close()
        if as_json:
            print_json({"decisions": done})
        else:
            for d in done:
                out.print(f"{d['decision']} render {d['render_id']} of {d['entry_id']}: entry {d['entry_state']}, "
                          f"published render {d['published_render_id'] or 'none'}", highlight=False, markup=False)

    @review.command("approve")
    @friendly
    def approve_cmd(ctx: typer.Context, ids: RenderIds, note: NoteOpt = None, actor: ActorOpt = None,
                    as_json: JsonOpt = False) -> None:
        """Approve renders; the one an entry waits on is published."""
        decide(ctx, "approve", ids, note, actor, as_json)

    @review.command("reject")
    @friendly
    def reject_cmd(ctx: typer.Context, ids: RenderIds,
                   note: Annotated[str, typer.Option("--note", help="Why (required).")],
                   actor: ActorOpt = None, as_json: JsonOpt = False) -> None:
        """Reject renders with a reason; the entry is held until a person regenerates it."""
        decide(ctx, "reject", ids, note, actor, as_json)

    @review.command("pin")
    @friendly
    def pin_cmd(ctx: typer.Context, ids: RenderIds, note: NoteOpt = None, actor: ActorOpt = None,
                as_json: JsonOpt = False) -> None:
        """Publish an earlier render and keep it (up to date until regenerated or forced)."""
        decide(ctx, "pin", ids, note, actor, as_json)

    @review.command("override")
    @friendly
    def override_cmd(ctx: typer.Context, entry_id: Annotated[str, typer.Argument(metavar="ENTRY_ID")],
                     prompt: PromptOpt = None, negative: NegativeOpt = None, seed: SeedOpt = None,
                     style: StyleOpt = None,
                     clear: Annotated[bool, typer.Option("--clear", help="Remove the entry's override.")] = False,
                     as_json: JsonOpt = False) -> None:
        """Store a change to one entry's generation (part of its fingerprint: the next run makes it again).
        Any catalogue entry, also one never generated."""
        from limner.review import check_entry, check_style, set_override

        # an unknown entry or style creates no state database; clearing where there is none clears nothing
        project = get_project(ctx, read_only=True)
        try:
            if clear:
                if project.reviews.entry(entry_id) is None:  # (an entry since removed from the catalogue may clear its own)
                    check_entry(project, entry_id)
                project.reviews.clear_override(entry_id)
            else:
                check_entry(project, entry_id)
                check_style(project, style)
                project.allow_writes()
                set_override(project, entry_id, prompt=prompt, negative_extra=negative, seed=seed, style=style)
            row = project.reviews.override(entry_id)
        finally:
            project.close()
        value = ({"prompt": row.prompt, "negative_extra": row.negative_extra, "seed": row.seed, "style": row.style}
                 if row is not None else None)
        if as_json:
            print_json({"entry_id": entry_id, "override": value})
        else:
            out.print(f"{entry_id}: {value if value else 'no override'}", highlight=False, markup=False)

    @review.command("regenerate")
    @friendly
    def regenerate_cmd(ctx: typer.Context, entry_id: Annotated[str, typer.Argument(metavar="ENTRY_ID")],
                       prompt: PromptOpt = None, negative: NegativeOpt = None, seed: SeedOpt = None,
                       new_seed: Annotated[bool, typer.Option("--new-seed", help="A random new seed.")] = False,
                       style: StyleOpt = None, as_json: JsonOpt = False) -> None:
        """Store the change and generate the entry now, also one never generated (a paid call; with the gate,
        it waits for approval). With no change asked, an entry that has an image gets a new random seed, as the
        studio's "again": the same seed would pay for the same image."""
        import secrets

        from limner.review import check_entry, check_style, regenerate

        unchanged = all(value is None for value in (prompt, negative, seed, style))
        project = get_project(ctx, read_only=True)  # an unknown entry or style creates no state database
        try:
            check_entry(project, entry_id)
            check_style(project, style)
            project.allow_writes()
            before = {r.id for r in project.reviews.renders(entry_id)} if unchanged and not new_seed else set()
            if (new_seed or (unchanged and before)) and seed is None:
                seed = secrets.randbelow(2**31)
            summary = regenerate(project, entry_id, prompt=prompt, negative_extra=negative, seed=seed, style=style)
            renders = project.reviews.renders(entry_id)
        finally:
            project.close()
        # the render this run made (none when it made none: never an older one, which a script would then approve)
        newest = render_json(renders[0]) if renders and summary.generated + summary.resumed > 0 else None
        if as_json:
            print_json({"summary": summary.to_dict(), "render": newest})
        else:
            out.print(f"{entry_id}: {summary.generated} generated, {summary.failed} failed, "
                      f"${summary.spend_usd:.4f}; newest render {newest['render_id'] if newest else 'none'}",
                      highlight=False, markup=False)
        if summary.elsewhere:
            err.print(f"note: another run is generating {entry_id} right now, so this one made nothing; the change is "
                      "stored: the next `limner generate` makes it, or run this command again once that run has ended",
                      highlight=False, markup=False)
        if summary.exit_code:
            raise typer.Exit(summary.exit_code)
