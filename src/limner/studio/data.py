"""What the pages and the API show: the catalogue (cached, reloaded when its file changes), one page of
entries with their cards, and one entry with its renders, decisions, override and manifest preview.

The grid reads the states of every entry in two plain queries and the cards of one page only
(:meth:`limner.db.review.Reviews.cards`), so 10,000 entries stay fast. Which published entries are stale
(their spec changed since) needs a plan of the whole catalogue: it is cached and recomputed when the
catalogue changed, after the studio's own actions, and at most every ``STALE_TTL_S`` otherwise."""

from __future__ import annotations

import dataclasses
import logging
import threading
import time
from typing import TYPE_CHECKING, Any

from limner.db.models import EntryState, ReviewState

if TYPE_CHECKING:
    from limner.catalog import Catalog, Entry
    from limner.db.models import Render
    from limner.project import Project

log = logging.getLogger(__name__)

STALE_TTL_S = 10.0
PER_PAGE = 60
MAX_PER_PAGE = 500
#: what the filters' ``state`` accepts (``stale``: published, but its spec changed since)
STATES = [s.value for s in EntryState]


@dataclasses.dataclass
class CatalogView:
    catalog: Catalog
    entries: list[Entry]
    by_id: dict[str, Entry]
    #: lower-cased "id title" per entry, for the text search
    haystack: list[str]
    styles: list[str]
    #: the style each entry is made with (its own, its era's, or the default)
    style_of: dict[str, str]
    eras: list[str]
    tags: list[str]
    stamp: tuple[int, int]


@dataclasses.dataclass
class Filters:
    state: str | None = None
    style: str | None = None
    era: str | None = None
    tag: str | None = None
    failed: bool = False
    awaiting: bool = False
    q: str | None = None
    page: int = 1
    per_page: int = PER_PAGE

    def query(self, **changes: Any) -> dict[str, Any]:
        """The non-default filters as query parameters (for links), with ``changes`` applied."""
        data = {**dataclasses.asdict(self), **changes}
        out: dict[str, Any] = {}
        for key, value in data.items():
            if value in (None, "", False) or (key == "page" and value == 1) or (key == "per_page" and value == PER_PAGE):
                continue
            out[key] = "1" if value is True else value
        return out


class StudioData:
    def __init__(self, project: Project) -> None:
        self.project = project
        self._lock = threading.Lock()
        self._view: CatalogView | None = None
        self._stale: set[str] = set()
        self._stale_at = 0.0
        self._stale_for: tuple[int, int] | None = None
        self._stale_lock = threading.Lock()
        #: why the catalogue file could not be read again (the previous one is shown meanwhile)
        self.catalog_error: str | None = None

    # ------------------------------------------------------------------ the catalogue
    def catalog(self) -> CatalogView:
        path = self.project.settings.catalog_path
        st = path.stat()
        stamp = (st.st_mtime_ns, st.st_size)
        view = self._view
        if view is not None and view.stamp == stamp:
            return view
        with self._lock:
            if self._view is not None and self._view.stamp == stamp:
                return self._view
            from limner.catalog import load_catalog

            from limner.errors import LimnerError

            settings = self.project.settings
            try:
                catalog = load_catalog(path, known_styles=self.project.styles.keys(),
                                       allow_fields=settings.project.allow_fields)
            except LimnerError as exc:
                if self._view is None:
                    raise
                # a file being edited: keep showing the last good catalogue, and say why
                self.catalog_error = exc.message
                log.warning("keeping the previous catalogue: %s", exc.message)
                self._view.stamp = stamp
                return self._view
            self.catalog_error = None
            self.project.__dict__["catalog"] = catalog  # the project's cached catalogue: the plan reads it
            entries = list(catalog)
            style_of = {e.id: self.project.style_for(e).name for e in entries}
            self._view = CatalogView(
                catalog=catalog, entries=entries, by_id={e.id: e for e in entries},
                haystack=[f"{e.id} {e.title}".lower() for e in entries],
                styles=sorted(self.project.styles), style_of=style_of,
                eras=sorted({e.era for e in entries if e.era}), tags=sorted({t for e in entries for t in e.tags}),
                stamp=stamp)
            self._stale_for = None
            return self._view

    def stale_ids(self) -> set[str]:
        view = self.catalog()
        if self._stale_for == view.stamp and time.monotonic() - self._stale_at < STALE_TTL_S:
            return self._stale
        with self._stale_lock:
            if self._stale_for == view.stamp and time.monotonic() - self._stale_at < STALE_TTL_S:
                return self._stale
            from limner.errors import LimnerError
            from limner.runner import Selection, build_plan

            try:
                stale = set(build_plan(self.project, Selection()).stale_ids)
            except LimnerError as exc:  # a style or provider setting that does not plan: no stale badges
                log.warning("cannot tell which entries are stale: %s", exc.message)
                stale = set()
            self._stale, self._stale_at, self._stale_for = stale, time.monotonic(), view.stamp
            return self._stale

    def invalidate(self) -> None:
        """Something changed in the database (a decision, a finished job): recompute what is stale."""
        self._stale_for = None

    # ------------------------------------------------------------------ the grid
    def states(self) -> tuple[dict[str, str], set[str], set[str]]:
        """(state per entry id with ``stale`` computed, ids awaiting review, stale ids)."""
        reviews = self.project.reviews
        states = reviews.states()
        stale = self.stale_ids()
        for entry_id in stale:
            if states.get(entry_id) == EntryState.published.value:
                states[entry_id] = EntryState.stale.value
        return states, reviews.awaiting_ids(), stale

    def list_entries(self, f: Filters) -> dict[str, Any]:
        view = self.catalog()
        states, awaiting, stale = self.states()
        missing = EntryState.missing.value
        needle = (f.q or "").strip().lower()
        matched: list[Entry] = []
        for entry, hay in zip(view.entries, view.haystack, strict=True):
            state = states.get(entry.id, missing)
            if f.state and state != f.state:
                continue
            if f.failed and state != EntryState.failed.value:
                continue
            if f.awaiting and entry.id not in awaiting:
                continue
            if f.style and view.style_of[entry.id] != f.style:
                continue
            if f.era and entry.era != f.era:
                continue
            if f.tag and f.tag not in entry.tags:
                continue
            if needle and needle not in hay:
                continue
            matched.append(entry)
        per_page = max(1, min(f.per_page, MAX_PER_PAGE))
        pages = max(1, -(-len(matched) // per_page))
        page = max(1, min(f.page, pages))
        shown = matched[(page - 1) * per_page: page * per_page]
        cards = self.project.reviews.cards([e.id for e in shown])
        items = [self.card(e, cards[e.id], states.get(e.id, missing), e.id in awaiting, e.id in stale, view) for e in shown]
        return {"total": len(matched), "catalogue": len(view.entries), "page": page, "per_page": per_page,
                "pages": pages, "items": items}

    @staticmethod
    def card(entry: Entry, card: dict[str, Any], state: str, awaiting: bool, stale: bool, view: CatalogView) -> dict[str, Any]:
        stale = stale or state == EntryState.stale.value
        return {
            "id": entry.id, "title": entry.title, "year": entry.year, "date": entry.year_label or None, "era": entry.era,
            "tags": list(entry.tags), "style": view.style_of.get(entry.id),
            "state": state, "error": card["error"] if state == EntryState.failed.value else None,
            "pinned": card["pinned"], "awaiting_review": awaiting, "stale": stale,
            "published_render_id": card["published_render_id"],
            "render_id": card["render_id"], "review": card["review"],
            "thumb": media_url(card["thumb"]), "near_duplicate_of": card["near_duplicate_of"],
            "color": card["dominant_color"], "width": card["width"], "height": card["height"],
            "badges": badges(state, pinned=card["pinned"], awaiting=awaiting, stale=stale,
                             published_render_id=card["published_render_id"], render_id=card["render_id"],
                             near_duplicate_of=card["near_duplicate_of"]),
        }

    def entry_card(self, entry_id: str) -> dict[str, Any] | None:
        view = self.catalog()
        entry = view.by_id.get(entry_id)
        if entry is None:
            return None
        reviews = self.project.reviews
        card = reviews.cards([entry_id])[entry_id]
        stale = entry_id in self.stale_ids()
        state = card["state"]
        if stale and state == EntryState.published.value:
            state = EntryState.stale.value
        # as in the grid: the card shows the newest render awaiting review, if any (Reviews.cards)
        awaiting = card["review"] == ReviewState.awaiting.value
        return self.card(entry, card, state, awaiting, stale, view)

    # ------------------------------------------------------------------ one entry
    def entry_detail(self, entry_id: str) -> dict[str, Any] | None:
        view = self.catalog()
        entry = view.by_id.get(entry_id)
        if entry is None:
            return None
        reviews = self.project.reviews
        row = reviews.entry(entry_id)
        renders = reviews.renders(entry_id)
        published_id = row.published_render_id if row else None
        override = reviews.override(entry_id)
        card = self.entry_card(entry_id)
        assert card is not None
        return {
            **card,
            "entry": _entry_fields(entry),
            "last_error": row.last_error if row else None,
            "attempts": row.attempts if row else 0,
            "published_render_id": published_id,
            "spend_usd": round(reviews.spend(entry_id), 6),
            "override": None if override is None else {
                "prompt": override.prompt, "negative_extra": override.negative_extra, "seed": override.seed,
                "style": override.style, "updated_at": _iso(override.updated_at)},
            "renders": [render_dict(r, published_id) for r in renders],
            "decisions": [decision_dict(d) for d in reviews.decisions(entry_id)],
            "manifest_preview": self.manifest_preview(entry, next((r for r in renders if r.id == published_id), None)),
        }

    def manifest_preview(self, entry: Entry, render: Render | None) -> dict[str, Any] | None:
        """The manifest entry ``limner sync`` writes for the published render (None: not published)."""
        if render is None or not render.variants:
            return None
        from limner.sync.manifest import PLACEHOLDER_EXT, manifest_entry

        s = self.project.settings.sync
        view = self.catalog()
        order = next(i for i, e in enumerate(view.entries) if e.id == entry.id)
        ext = PLACEHOLDER_EXT[s.placeholder_format]
        doc = manifest_entry(entry, render, order=order,
                             placeholder_url=f"{s.placeholder_url_prefix.rstrip('/')}/{entry.id}.{ext}")
        return {"entry": doc, "placeholder": media_url(render.placeholder_key)}


#: entry states a pinned entry can be in while a newer render awaits review (its pinned image is published)
_PINNED_STATES = (EntryState.published.value, EntryState.awaiting_review.value)


def badges(state: str, *, pinned: bool, awaiting: bool, stale: bool, published_render_id: int | None,
           render_id: int | None, near_duplicate_of: str | None) -> list[dict[str, str]]:
    """The badges of an entry's card and page, in order: ``kind`` (its CSS class), ``label``, ``title``.
    One place decides them, so that they never contradict each other: a pinned entry whose newer render
    awaits review shows one badge, *pinned · newer render awaiting review* (the pinned image stays
    published; the card shows the newer render; approving it publishes it in place of the pinned one),
    instead of *pinned* next to *awaiting review*."""
    out: list[dict[str, str]] = []
    awaiting = awaiting or state == EntryState.awaiting_review.value
    if pinned and awaiting and state in _PINNED_STATES:
        newer = f"render {render_id}" if render_id else "a newer render"
        out.append({"kind": "pinned awaiting", "label": "pinned · newer render awaiting review",
                    "title": f"render {published_render_id} is pinned and stays published; {newer} awaits review "
                             "(approve it to publish it instead, reject it to keep the pinned one)"})
    else:
        out.append({"kind": f"state-{state}", "label": state.replace("_", " "), "title": f"state: {state}"})
        if awaiting and state != EntryState.awaiting_review.value:
            out.append({"kind": "awaiting", "label": "awaiting review",
                        "title": f"render {render_id} awaits review" if render_id else "a render awaits review"})
        if pinned:
            out.append({"kind": "pinned", "label": "pinned",
                        "title": f"render {published_render_id} is pinned: it stays published until a person "
                                 "regenerates the entry"})
    if stale and state != EntryState.stale.value:  # a stale state says it already
        out.append({"kind": "stale", "label": "stale", "title": "its spec changed since it was published"})
    if near_duplicate_of:
        out.append({"kind": "dup", "label": "near duplicate", "title": f"near duplicate of {near_duplicate_of}"})
    return out


def media_url(key: str | None) -> str | None:
    return f"/media/{key}" if key else None


def _iso(value: Any) -> str | None:
    return value.isoformat(timespec="seconds") + "Z" if value is not None else None


def _entry_fields(entry: Entry) -> dict[str, Any]:
    data = entry.model_dump(exclude_none=True)
    data.update(entry.extras)
    return data


def pick_variant(render: Render, width: int) -> str | None:
    options = sorted(render.variants, key=lambda v: (v.width < width, abs(v.width - width), v.format != "webp"))
    return options[0].key if options else None


def render_dict(r: Render, published_id: int | None = None) -> dict[str, Any]:
    meta = dict(r.provider_metadata or {})
    return {
        "id": r.id, "entry_id": r.entry_id, "status": r.status, "review": r.review,
        "published": r.id == published_id, "created_at": _iso(r.created_at), "published_at": _iso(r.published_at),
        "provider": r.provider, "model": r.model, "seed": r.seed, "prompt": r.prompt, "negative_prompt": r.negative_prompt,
        "style": r.style, "style_version": r.style_version, "parameters": dict(r.parameters or {}),
        "cost_usd": r.cost_usd, "latency_ms": r.latency_ms, "attempts": r.attempts, "error": r.error,
        "width": r.width, "height": r.height, "color": r.dominant_color,
        "validation": {"phash": r.phash, "near_duplicate_of": r.near_duplicate_of},
        "provenance": {"fingerprint": r.fingerprint, "template_sha": r.template_sha, "master_sha256": r.master_sha256,
                       "master_key": r.master_key, "master_format": r.master_format, "master_bytes": r.master_bytes,
                       "provider_metadata": meta},
        "image": media_url(pick_variant(r, 480)), "thumb": media_url(pick_variant(r, 240)),
        "placeholder": media_url(r.placeholder_key),
        "variants": [{"width": v.width, "height": v.height, "format": v.format, "bytes": v.bytes, "url": media_url(v.key)}
                     for v in r.variants],
    }


def decision_dict(d: Any) -> dict[str, Any]:
    return {"id": d.id, "entry_id": d.entry_id, "render_id": d.render_id, "decision": d.decision, "note": d.note,
            "actor": d.actor, "created_at": _iso(d.created_at)}


__all__ = ["PER_PAGE", "STATES", "CatalogView", "Filters", "StudioData", "badges", "decision_dict", "media_url", "render_dict"]
