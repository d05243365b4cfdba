"""The JSON API under ``/api/``: everything the pages do (entries, renders, decisions, actions, jobs).
Described by the generated OpenAPI document at ``/api/openapi.json``. State-changing requests need the CSRF
token (``X-CSRF-Token``, from ``GET /api/session``) or ``Authorization: Bearer <token>``."""

from __future__ import annotations

import secrets
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Body, HTTPException, Path, Query, Request
from fastapi.concurrency import run_in_threadpool
from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from limner.catalog.models import SLUG_PATTERN
from limner.db.review import ReviewError, ReviewErrorKind
from limner.db.tables import EntryState
from limner.studio.data import PER_PAGE, Filters, decision_dict, render_dict

router = APIRouter(prefix="/api", tags=["review"])

SEED_MAX = 2**32 - 1
#: the largest id a database row can have (a 64-bit integer): a larger one is a 422, never a 500
ID_MAX = 2**63 - 1
RenderId = Annotated[int, Path(ge=1, le=ID_MAX, description="a render's id")]


def _plain_text(value: str) -> str:
    if "\x00" in value:  # PostgreSQL cannot store it (a 500 there), and it has no place in a note or a prompt
        raise ValueError("a NUL character is not allowed")
    try:  # JSON may escape half of a UTF-16 pair ("\ud800"): no database, file or provider takes it
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError("a lone surrogate (half of a UTF-16 pair) is not text") from None
    return value


#: a note or a prompt: any text but NUL and lone surrogates
Text = Annotated[str, AfterValidator(_plain_text)]


class StrictBody(BaseModel):
    """A request body: its fields of their own type (``true`` is no render id nor seed, ``"7"`` no seed), and
    no other field (a misspelled one, such as ``negative`` for ``negative_extra``, was dropped silently and the
    regeneration paid for without it)."""

    model_config = ConfigDict(strict=True, extra="forbid")


class NoteBody(StrictBody):
    note: Text | None = Field(None, max_length=2000, description="why (optional for approve and pin)")


class RejectBody(StrictBody):
    note: Text = Field(..., min_length=1, max_length=2000, description="the reason (required)")


class BulkApproveBody(StrictBody):
    ids: list[Annotated[int, Field(ge=1, le=ID_MAX)]] = Field(..., min_length=1, max_length=1000, description="render ids")
    note: Text | None = Field(None, max_length=2000)


class OverrideBody(StrictBody):
    prompt: Text | None = Field(None, max_length=8000, description="a prompt used in place of the style's")
    negative_extra: Text | None = Field(None, max_length=2000, description="terms added to the style's negative prompt")
    seed: int | None = Field(None, ge=0, le=SEED_MAX)
    style: Text | None = Field(None, max_length=128)


def studio(request: Request) -> Any:
    return request.app.state.studio


def actor(request: Request) -> str:
    return "studio (token)" if request.scope.get("state", {}).get("limner_authenticated_by") == "bearer" else "studio"


#: the HTTP status of each kind of refused review action
STATUS_OF = {ReviewErrorKind.not_found: 404, ReviewErrorKind.conflict: 409, ReviewErrorKind.invalid: 422}


def _review_error(exc: ReviewError) -> HTTPException:
    return HTTPException(STATUS_OF[exc.kind], exc.message)


def _decided(request: Request, render: Any) -> dict[str, Any]:
    st = studio(request)
    st.data.invalidate()
    row = st.project.reviews.entry(render.entry_id)
    return {"render": {"id": render.id, "entry_id": render.entry_id, "review": render.review, "status": render.status},
            "entry": {"id": render.entry_id, "state": row.state if row else None,
                      "published_render_id": row.published_render_id if row else None,
                      "pinned": bool(row.pinned) if row else False}}


@router.get("/session", summary="The CSRF token for state-changing requests, and whether a token is required")
def get_session(request: Request) -> dict[str, Any]:
    st = studio(request)
    return {"csrf_token": st.guard.csrf_token, "token_required": st.guard.required,
            "review_required": st.project.settings.review.required}


@router.get("/entries", summary="Catalogue entries with their current image, filtered and paged")
def list_entries(request: Request,
                 state: Annotated[EntryState | Literal[""] | None,
                                  Query(description="entry state (stale: published but out of date); empty: any")] = None,
                 style: Annotated[str | None, Query(max_length=128)] = None, era: str | None = None, tag: str | None = None,
                 failed: bool = False, awaiting: Annotated[bool, Query(description="only entries awaiting review")] = False,
                 q: Annotated[str | None, Query(max_length=200, description="text in the id or title")] = None,
                 page: Annotated[int, Query(ge=1)] = 1,
                 per_page: Annotated[int, Query(ge=1, le=500)] = PER_PAGE) -> dict[str, Any]:
    if style:  # an unknown one is a 422 naming the styles, not an empty page
        st = studio(request)
        try:
            from limner.review import check_style

            check_style(st.project, style)
        except ReviewError as exc:
            raise _review_error(exc) from None
    return studio(request).data.list_entries(Filters(state=state.value if state else None, style=style or None, era=era or None,
                                                     tag=tag or None, failed=failed, awaiting=awaiting, q=q,
                                                     page=page, per_page=per_page))


@router.get("/entries/{entry_id}", summary="One entry: catalogue fields, state, renders, decisions, override, manifest preview")
def get_entry(request: Request, entry_id: str) -> dict[str, Any]:
    detail = studio(request).data.entry_detail(entry_id)
    if detail is None:
        raise HTTPException(404, f"no entry {entry_id!r} in the catalogue")
    return detail


@router.get("/entries/{entry_id}/renders", summary="Every render of an entry, newest first")
def get_renders(request: Request, entry_id: str) -> dict[str, Any]:
    st = studio(request)
    if entry_id not in st.data.catalog().by_id:
        raise HTTPException(404, f"no entry {entry_id!r} in the catalogue")
    row = st.project.reviews.entry(entry_id)
    published = row.published_render_id if row else None
    return {"entry_id": entry_id, "published_render_id": published,
            "renders": [render_dict(r, published) for r in st.project.reviews.renders(entry_id)]}


@router.post("/renders/approve", summary="Approve several renders (bulk)")
def bulk_approve(request: Request, body: BulkApproveBody) -> dict[str, Any]:
    reviews = studio(request).project.reviews
    done, errors = [], []
    for render_id in dict.fromkeys(body.ids):
        try:
            done.append(_decided(request, reviews.approve(render_id, note=body.note, actor=actor(request))))
        except ReviewError as exc:
            errors.append({"id": render_id, "error": exc.message})
    return {"approved": done, "errors": errors}


@router.post("/renders/{render_id}/approve", summary="Approve a render (the render the entry waits on is published)")
def approve(request: Request, render_id: RenderId, body: Annotated[NoteBody | None, Body()] = None) -> dict[str, Any]:
    try:
        render = studio(request).project.reviews.approve(render_id, note=body.note if body else None, actor=actor(request))
    except ReviewError as exc:
        raise _review_error(exc) from None
    return _decided(request, render)


@router.post("/renders/{render_id}/reject", summary="Reject a render with a reason")
def reject(request: Request, render_id: RenderId, body: RejectBody) -> dict[str, Any]:
    try:
        render = studio(request).project.reviews.reject(render_id, note=body.note, actor=actor(request))
    except ReviewError as exc:
        raise _review_error(exc) from None
    return _decided(request, render)


@router.post("/renders/{render_id}/pin", summary="Publish this render and keep it")
def pin(request: Request, render_id: RenderId, body: Annotated[NoteBody | None, Body()] = None) -> dict[str, Any]:
    try:
        render = studio(request).project.reviews.pin(render_id, note=body.note if body else None, actor=actor(request))
    except ReviewError as exc:
        raise _review_error(exc) from None
    return _decided(request, render)


@router.post("/entries/{entry_id}/override",
             summary="Store a prompt, extra negative terms, seed or style for the entry (also one never generated)")
def set_override(request: Request, entry_id: str, body: OverrideBody) -> dict[str, Any]:
    from limner.review import set_override as store

    st = studio(request)
    st.data.catalog()  # the catalogue as the studio shows it (reloaded when its file changed)
    try:
        store(st.project, entry_id, prompt=body.prompt, negative_extra=body.negative_extra, seed=body.seed,
              style=body.style, keep=False)
    except ReviewError as exc:
        raise _review_error(exc) from None
    st.data.invalidate()
    row = st.project.reviews.override(entry_id)
    return {"entry_id": entry_id, "override": None if row is None else {
        "prompt": row.prompt, "negative_extra": row.negative_extra, "seed": row.seed, "style": row.style}}


@router.post("/entries/{entry_id}/override/clear", summary="Remove the entry's override")
def clear_override(request: Request, entry_id: str) -> dict[str, Any]:
    st = studio(request)
    _check_entry(st, entry_id)
    cleared = st.project.reviews.clear_override(entry_id)
    st.data.invalidate()
    return {"entry_id": entry_id, "cleared": cleared}


@router.post("/entries/{entry_id}/regenerate", status_code=202,
             summary="Generate the entry (again) now, in the background (a paid call); returns a job id")
async def regenerate(request: Request, entry_id: str, body: Annotated[OverrideBody | None, Body()] = None) -> dict[str, Any]:
    st = studio(request)
    body = body or OverrideBody()
    await run_in_threadpool(_check_entry, st, entry_id, body.style)
    job = st.jobs.submit(entry_id, new_seed=lambda: secrets.randbelow(SEED_MAX + 1), **body.model_dump())
    return {"job": job.id, "status": job.status, "entry_id": entry_id, "params": job.params,
            "poll": f"/api/jobs/{job.id}"}


@router.get("/jobs/{job_id}", summary="A regeneration job: queued, running, done or failed, with the run's summary")
def get_job(request: Request, job_id: str) -> dict[str, Any]:
    job = studio(request).jobs.get(job_id)
    if job is None:
        raise HTTPException(404, "no such job (jobs live as long as the server)")
    return job.to_dict()


@router.get("/decisions", summary="Review decisions, newest first (an entry's, or the latest 200)")
def get_decisions(request: Request, entry_id: Annotated[str | None, Query(max_length=128, pattern=f"{SLUG_PATTERN}|^$", description="an entry id")] = None) -> dict[str, Any]:
    reviews = studio(request).project.reviews
    rows = reviews.decisions(entry_id) if entry_id else reviews.recent_decisions()
    return {"decisions": [decision_dict(d) for d in rows]}


def _check_entry(st: Any, entry_id: str, style: str | None = None) -> None:
    """404 for an id not in the catalogue, 422 for an unknown style. An entry that was never planned is fine:
    an override or a regeneration gives it its database row (:func:`limner.review.ensure_entry`)."""
    from limner.review import check_entry, check_style

    st.data.catalog()  # the catalogue as the studio shows it (reloaded when its file changed)
    try:
        check_entry(st.project, entry_id)
        check_style(st.project, style)
    except ReviewError as exc:
        raise _review_error(exc) from None


__all__ = ["router"]
