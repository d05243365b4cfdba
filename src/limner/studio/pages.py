"""The HTML pages: the catalogue grid (``/``), an entry (``/entries/{id}``), and the fragments the script
swaps in after an action (a grid card, an entry's render list). Jinja2 with autoescape on: every title,
prompt and note is text, never markup."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import jinja2
from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import HTMLResponse
from fastapi.templating import Jinja2Templates

from limner import __version__
from limner.studio.data import PER_PAGE, STATES, Filters

router = APIRouter(include_in_schema=False)

_env = jinja2.Environment(loader=jinja2.FileSystemLoader(Path(__file__).resolve().parent / "templates"),
                          autoescape=True, trim_blocks=True, lstrip_blocks=True)
_env.filters["tojson_pretty"] = lambda value: json.dumps(value, ensure_ascii=False, indent=2)
_env.filters["usd"] = lambda value: f"${value:,.4f}" if value else "$0"
templates = Jinja2Templates(env=_env)


def _context(request: Request, **extra: Any) -> dict[str, Any]:
    st = request.app.state.studio
    return {"csrf_token": st.guard.csrf_token, "catalog_error": st.data.catalog_error, "token_required": st.guard.required, "version": __version__,
            "review_required": st.project.settings.review.required, **extra}


def _flag(value: str | None) -> bool:
    return value not in (None, "", "0", "false", "off")


@router.get("/", response_class=HTMLResponse)
def grid(request: Request) -> HTMLResponse:
    qp = request.query_params
    try:
        page = max(1, int(qp.get("page") or 1))
        per_page = max(1, min(500, int(qp.get("per_page") or PER_PAGE)))
    except ValueError:
        raise HTTPException(422, "page and per_page are numbers") from None
    f = Filters(state=qp.get("state") or None, style=qp.get("style") or None, era=qp.get("era") or None,
                tag=qp.get("tag") or None, failed=_flag(qp.get("failed")), awaiting=_flag(qp.get("awaiting")),
                q=(qp.get("q") or "")[:200] or None, page=page, per_page=per_page)
    st = request.app.state.studio
    result = st.data.list_entries(f)
    view = st.data.catalog()

    def page_link(n: int) -> str:
        return "/?" + urlencode(f.query(page=n))

    return templates.TemplateResponse(request, "grid.html", _context(
        request, result=result, filters=f, styles=view.styles, eras=view.eras, tags=view.tags, states=STATES,
        prev_link=page_link(result["page"] - 1) if result["page"] > 1 else None,
        next_link=page_link(result["page"] + 1) if result["page"] < result["pages"] else None))


@router.get("/entries/{entry_id}", response_class=HTMLResponse)
def entry_page(request: Request, entry_id: str, compare: str | None = None) -> HTMLResponse:
    st = request.app.state.studio
    detail = st.data.entry_detail(entry_id)
    if detail is None:
        raise HTTPException(404, f"no entry {entry_id!r} in the catalogue")
    side_by_side = []
    if compare:
        # plain ASCII digits only: "²".isdigit() is true and int("²") raises, as int() of 5,000 digits does
        wanted = [int(x) for x in compare.split(",")[:2] if re.fullmatch(r"[0-9]{1,19}", x.strip())]
        by_id = {r["id"]: r for r in detail["renders"]}
        side_by_side = [by_id[i] for i in wanted if i in by_id]
    return templates.TemplateResponse(request, "entry.html", _context(
        request, d=detail, compare=side_by_side, styles=sorted(st.project.styles)))


@router.get("/fragments/card/{entry_id}", response_class=HTMLResponse)
def card_fragment(request: Request, entry_id: str) -> HTMLResponse:
    card = request.app.state.studio.data.entry_card(entry_id)
    if card is None:
        raise HTTPException(404, f"no entry {entry_id!r} in the catalogue")
    return templates.TemplateResponse(request, "_card.html", _context(request, e=card))


@router.get("/fragments/renders/{entry_id}", response_class=HTMLResponse)
def renders_fragment(request: Request, entry_id: str) -> HTMLResponse:
    detail = request.app.state.studio.data.entry_detail(entry_id)
    if detail is None:
        raise HTTPException(404, f"no entry {entry_id!r} in the catalogue")
    return templates.TemplateResponse(request, "_entry_body.html", _context(request, d=detail))


__all__ = ["router"]
