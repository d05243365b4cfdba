"""Plan: compare the catalogue with the state database and decide what to run.

Reasons an entry is planned:

* ``missing``  - never generated
* ``stale``    - published, but its fingerprint (prompt, style, provider, model, seed, ...) changed
* ``retry``    - failed with a retryable error
* ``changed``  - failed permanently, but its spec changed since
* ``resume``   - a previous run stopped while it was queued or in progress
* ``forced``   - asked for by ``--id`` or ``--all``

Planning reads only; ``generate`` commits the plan before it starts.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from limner.catalog import Entry
from limner.db.models import EntryState
from limner.db.repository import EntryStatus
from limner.project import Project
from limner.styles import RenderSpec, Style, build_spec
from limner.registry import provider_class


@dataclass(frozen=True)
class Selection:
    missing: bool = True
    stale: bool = True
    all: bool = False
    ids: tuple[str, ...] = ()
    provider: str | None = None
    limit: int | None = None


@dataclass(frozen=True)
class PlanItem:
    entry: Entry
    style: Style
    spec: RenderSpec
    fingerprint: str
    reason: str
    price_usd: float


@dataclass
class Plan:
    items: list[PlanItem]
    total: int
    up_to_date: int
    reasons: Counter[str] = field(default_factory=Counter)
    #: failed permanently and unchanged: skipped unless asked for by id
    held_back: list[str] = field(default_factory=list)
    #: stale entries not selected (e.g. with --missing)
    stale_not_selected: list[str] = field(default_factory=list)
    stale_ids: list[str] = field(default_factory=list)

    @property
    def estimated_cost(self) -> float:
        return round(sum(i.price_usd for i in self.items), 6)

    def by_provider(self) -> Counter[str]:
        return Counter(i.spec.provider for i in self.items)


_RESUMABLE = {EntryState.queued.value, EntryState.generating.value, EntryState.generated.value}


def _reason(status: EntryStatus | None, fingerprint: str) -> str | None:
    if status is None or status.state == EntryState.missing.value:
        return "missing"
    if status.state in (EntryState.published.value, EntryState.stale.value):
        return None if status.published_fingerprint == fingerprint else "stale"
    if status.state in _RESUMABLE:
        if status.fingerprint == fingerprint:
            return "resume"
        if status.published_fingerprint == fingerprint:
            return None
        return "stale" if status.published_fingerprint else "missing"
    if status.state == EntryState.failed.value:
        if status.fingerprint != fingerprint:
            return "changed"
        return "retry" if status.retryable else "held"
    return "missing"


def build_plan(project: Project, selection: Selection, statuses: dict[str, EntryStatus] | None = None) -> Plan:
    settings = project.settings
    catalog = project.catalog
    if statuses is None:
        statuses = project.repo.entry_statuses()
    wanted_ids = set(selection.ids)
    unknown = wanted_ids - set(catalog.by_id()) if wanted_ids else set()
    if unknown:
        from limner.errors import ConfigError

        raise ConfigError(f"--id names entries not in the catalogue {settings.catalog}: {', '.join(sorted(unknown))}")

    gen = settings.generate
    providers: dict[str, tuple[str, float, int]] = {}

    def provider_info(name: str) -> tuple[str, float, int]:
        if name not in providers:
            cls = provider_class(name)
            conf = settings.provider_settings(name)
            model = conf.model or cls.default_model
            providers[name] = (model, project.provider_price(name), cls.capabilities.size_multiple)
        return providers[name]

    items: list[PlanItem] = []
    reasons: Counter[str] = Counter()
    held_back: list[str] = []
    stale_not_selected: list[str] = []
    stale_ids: list[str] = []
    up_to_date = 0
    for entry in catalog:
        if wanted_ids and entry.id not in wanted_ids:
            continue
        style = project.style_for(entry)
        provider = project.provider_name_for(entry, style, selection.provider)
        model, price, multiple = provider_info(provider)
        spec = build_spec(entry, style, project.renderer, provider=provider, model=model,
                          long_side=gen.size, default_aspect=gen.aspect, size_multiple=multiple)
        fp = spec.fingerprint
        status = statuses.get(entry.id)
        reason = _reason(status, fp)
        if reason == "stale":
            stale_ids.append(entry.id)
        if wanted_ids or selection.all:
            reason = reason if reason not in (None, "held") else "forced"
        elif reason is None:
            up_to_date += 1
            continue
        elif reason == "held":
            held_back.append(entry.id)
            continue
        elif reason == "stale" and not selection.stale:
            stale_not_selected.append(entry.id)
            continue
        elif reason != "stale" and not selection.missing:
            continue
        if selection.limit is not None and len(items) >= selection.limit:
            continue
        reasons[reason] += 1
        items.append(PlanItem(entry=entry, style=style, spec=spec, fingerprint=fp, reason=reason, price_usd=price))
    return Plan(items=items, total=len(catalog), up_to_date=up_to_date, reasons=reasons, held_back=held_back,
                stale_not_selected=stale_not_selected, stale_ids=stale_ids)
