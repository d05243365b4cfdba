"""Plan: compare the catalogue with the state database and decide what to run.

Reasons an entry is planned:

* ``missing``  - never generated
* ``stale``    - published, but its fingerprint (prompt, style, provider, model, seed, ...) changed
* ``retry``    - failed with a retryable error
* ``changed``  - failed permanently, but its spec changed since
* ``resume``   - a previous run stopped while it was queued or in progress
* ``forced``   - asked for by ``--id`` or ``--all``

Planning reads only; ``generate`` commits the plan before it starts.

``up_to_date`` counts the entries not planned that need no work, whatever the selection: with ``--id``
the entries left out are looked at too, by their recorded inputs only (pinned, or published with the input
digest they have now; no prompt is rendered for them), so the count is that of ``plan`` without ``--id``
less the named entries planned, and less any entry whose inputs changed without changing its prompt.

Speed: an entry's prompt is rendered only when the plan needs its fingerprint.
A missing entry needs none to be planned, and a published entry whose *input
digest* (its catalogue data + style digest + provider, model and size settings)
is the one recorded at publish time is up to date without rendering anything.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from limner.catalog import Entry
from limner.db.tables import EntryState
from limner.db.repository import EntryOverride, EntryStatus
from limner.errors import CatalogError, ConfigError, LimnerError, Problem, StyleError, did_you_mean
from limner.gcpause import gc_paused
from limner.project import Project
from limner.registry import UNKNOWN_PROVIDER_HINT, unknown_provider
from limner.runner.lanes import Lane, resolve_lane
from limner.styles import RenderSpec, Style, build_spec
from limner.styles.spec import FINGERPRINT_VERSION, size_for_aspect
from limner.styles.templates import PromptRenderer

log = logging.getLogger("limner.runner")


@dataclass(frozen=True)
class Selection:
    missing: bool = True
    stale: bool = True
    all: bool = False
    ids: tuple[str, ...] = ()
    provider: str | None = None
    limit: int | None = None


class SpecContext:
    """Everything besides the entry that shapes a spec: one per (style, provider lane) in a plan."""

    __slots__ = ("style", "lane", "provider", "model", "multiple", "long_side", "aspect", "renderer",
                 "provider_settings", "key", "_prices")

    def __init__(self, style: Style, lane: Lane, long_side: int, aspect: str, renderer: PromptRenderer) -> None:
        self.style, self.lane = style, lane
        self.provider, self.model = lane.name, lane.model
        self._prices: dict[str, float] = {}
        self.multiple, self.long_side, self.aspect, self.renderer = lane.size_multiple, long_side, aspect, renderer
        self.provider_settings = lane.image_settings
        self.key = json.dumps([FINGERPRINT_VERSION, style.name, style.template_sha, self.provider, self.model,
                               self.multiple, long_side, aspect, self.provider_settings], sort_keys=True, default=str)

    def price_usd(self, entry: Entry) -> float:
        """What one image of ``entry`` reserves under a cap: the lane's estimate at the entry's size (from its
        aspect, without building its prompt), once per aspect."""
        aspect = entry.aspect or self.style.aspect or self.aspect
        price = self._prices.get(aspect)
        if price is None:
            width, height = size_for_aspect(aspect, self.long_side, self.multiple)
            price = self._prices[aspect] = self.lane.estimate_usd(self.style.params, width, height)
        return price

    def digest(self, entry: Entry, override: EntryOverride | None = None) -> str:
        extra = json.dumps([override.prompt, override.negative_extra]) if override else ""
        return hashlib.sha256((self.key + entry.model_dump_json() + extra).encode("utf-8")).hexdigest()

    def spec(self, entry: Entry, override: EntryOverride | None = None) -> RenderSpec:
        spec = build_spec(entry, self.style, self.renderer, provider=self.provider, model=self.model,
                          long_side=self.long_side, default_aspect=self.aspect, size_multiple=self.multiple,
                          provider_settings=self.provider_settings)
        return apply_override(spec, override) if override else spec


def apply_override(spec: RenderSpec, override: EntryOverride) -> RenderSpec:
    """A person's prompt in place of the style's, and extra negative terms after the style's."""
    prompt = override.prompt.strip() if override.prompt and override.prompt.strip() else spec.prompt
    negative = spec.negative_prompt
    if override.negative_extra and override.negative_extra.strip():
        negative = ", ".join(p for p in (negative.strip(), override.negative_extra.strip()) if p)
    return dataclasses.replace(spec, prompt=prompt, negative_prompt=negative)


def with_override(entry: Entry, override: EntryOverride | None) -> Entry:
    """The entry as a person changed it: another style, another seed."""
    if override is None or (override.style is None and override.seed is None):
        return entry
    update: dict[str, object] = {}
    if override.style is not None:
        update["style"] = override.style
    if override.seed is not None:
        update["seed"] = override.seed
    return entry.model_copy(update=update)


class PlanItem:
    """One entry to run. Its spec (and fingerprint) are computed when first asked for."""

    __slots__ = ("entry", "ctx", "reason", "override", "published_seen", "_digest", "_spec", "_fingerprint")

    def __init__(self, entry: Entry, ctx: SpecContext, reason: str, digest: str | None = None,
                 spec: RenderSpec | None = None, fingerprint: str | None = None,
                 override: EntryOverride | None = None, published_seen: str | None = None) -> None:
        self.entry, self.ctx, self.reason, self.override = entry, ctx, reason, override
        #: the fingerprint of the entry's published image when this was planned (None: none was): a run claims
        #: the entry only while that is still so (another run or a person's regeneration published since)
        self.published_seen = published_seen
        self._digest, self._spec, self._fingerprint = digest, spec, fingerprint

    @property
    def digest(self) -> str:
        if self._digest is None:
            self._digest = self.ctx.digest(self.entry, self.override)
        return self._digest

    @property
    def style(self) -> Style:
        return self.ctx.style

    @property
    def price_usd(self) -> float:
        return self.ctx.price_usd(self.entry)

    @property
    def spec(self) -> RenderSpec:
        if self._spec is None:
            self._spec = self.ctx.spec(self.entry, self.override)
        return self._spec

    @property
    def fingerprint(self) -> str:
        if self._fingerprint is None:
            self._fingerprint = self.spec.fingerprint
        return self._fingerprint

    @property
    def provider(self) -> str:
        return self.ctx.provider

    @property
    def lane(self) -> Lane:
        return self.ctx.lane

    def __repr__(self) -> str:
        return f"<PlanItem {self.entry.id} {self.reason}>"


@dataclass
class Plan:
    items: list[PlanItem]
    total: int
    #: entries not planned that need no work: published (or awaiting review) with the fingerprint the
    #: catalogue, styles and provider give now, or pinned. Entries that ``--id`` leaves out count when their
    #: recorded inputs say so (see the module's doc); entries planned (``forced`` ones included) never do
    up_to_date: int
    reasons: Counter[str] = field(default_factory=Counter)
    #: failed permanently and unchanged: skipped unless asked for by id
    held_back: list[str] = field(default_factory=list)
    #: stale entries not selected (e.g. with --missing)
    stale_not_selected: list[str] = field(default_factory=list)
    stale_ids: list[str] = field(default_factory=list)
    #: every provider the plan's entries use, resolved once
    lanes: dict[str, Lane] = field(default_factory=dict)

    @property
    def estimated_cost(self) -> float:
        return round(sum(i.price_usd for i in self.items), 6)

    def by_provider(self) -> Counter[str]:
        return Counter(i.provider for i in self.items)


_RESUMABLE = {EntryState.queued.value, EntryState.generating.value, EntryState.generated.value}
_PUBLISHED = {EntryState.published.value, EntryState.stale.value}
#: the states of a pinned entry that keep it up to date whatever its spec: the pin holds until a person regenerates
#: it or a run forces it, also while a newer render (made before the pin, or by a run working then) awaits review
_PINNED_UP_TO_DATE = _PUBLISHED | {EntryState.awaiting_review.value}


def _reason(status: EntryStatus, fingerprint: str) -> str | None:
    """Why an entry with a state row needs work (None: it does not)."""
    if status.state == EntryState.missing.value:
        return "missing"
    if status.state == EntryState.awaiting_review.value:  # waits for a person, unless its spec changed since
        if status.fingerprint == fingerprint:
            return None
        return "stale" if status.published_fingerprint else "changed"
    if status.state in _PUBLISHED:
        return None if status.published_fingerprint == fingerprint else "stale"
    if status.state in _RESUMABLE:
        if status.fingerprint == fingerprint:
            return "resume"
        if status.published_fingerprint == fingerprint:
            return None
        return "stale" if status.published_fingerprint else "missing"
    if status.state == EntryState.failed.value:
        if status.published_fingerprint == fingerprint:
            return None  # a newer attempt failed, but the published image already matches
        if status.fingerprint != fingerprint:
            return "changed"
        return "retry" if status.retryable else "held"
    return "missing"


#: what a template may read from every entry besides its fields (``Entry.template_vars``)
_ENTRY_VARIABLES = frozenset(Entry.model_fields) | {"year_label", "alt", "entry"}


def check_template_variables(project: Project, styles: Iterable[Style]) -> None:
    """A template that reads a name no entry has renders it as empty text, silently: ``{{ descripton }}``
    dropped every description from the prompts that were paid for. Such a name one edit away from a field
    that entries do have is a :class:`StyleError` (exit 2) before anything runs; any other is a warning."""
    renderer = project.renderer
    suspects = [(style, which, name) for style in styles
                for which, names in renderer.variables(style.name).items() for name in sorted(names - _ENTRY_VARIABLES)]
    if not suspects:
        return
    extras: set[str] = set()
    for entry in project.catalog:  # the fields the catalogue's entries have besides the standard ones
        if entry.__pydantic_extra__:
            extras.update(entry.__pydantic_extra__)
    for style, which, name in suspects:
        if name in extras:
            continue
        said = f"{style.source}: style {style.name!r}: the {which} template reads {name!r}, which no entry of the catalogue has"
        typo = sorted(known for known in _ENTRY_VARIABLES | extras if _one_edit(name, known))
        if typo:
            raise StyleError(f"{said} (did you mean {', '.join(map(repr, typo[:3]))}?): it would render as empty text",
                             hint="fix the name in the template; a field only some future entries will have needs "
                                  "at least one entry that has it")
        log.warning("%s%s: it renders as empty text", said, did_you_mean(name, _ENTRY_VARIABLES | extras))


def _one_edit(a: str, b: str) -> bool:
    """Whether ``a`` and ``b`` differ by one letter inserted, left out, changed, or two neighbours swapped."""
    if a == b or abs(len(a) - len(b)) > 1:
        return False
    if len(a) == len(b):
        diff = [i for i in range(len(a)) if a[i] != b[i]]
        return len(diff) == 1 or (len(diff) == 2 and diff[1] == diff[0] + 1 and a[diff[0]] == b[diff[1]]
                                  and a[diff[1]] == b[diff[0]])
    short, long_ = (a, b) if len(a) < len(b) else (b, a)
    return any(long_[:i] + long_[i + 1:] == short for i in range(len(long_)))


def _check_provider_name(project: Project, selection: Selection, entry: Entry, style: Style, name: str) -> None:
    """An unknown provider name is an error that says where the name was given: the ``--provider`` option,
    the catalogue (every entry of the selection that names an unknown one, by file, line and entry), the
    style, or the ``provider`` setting (its environment variable, .env or limner.toml line)."""
    message = unknown_provider(name)
    if message is None:
        return
    settings = project.settings
    if selection.provider:
        raise ConfigError(f"option --provider: {message}", hint=UNKNOWN_PROVIDER_HINT)
    if entry.provider:
        catalog = project.catalog
        wanted = set(selection.ids)
        unknown: dict[str, str] = {}
        verdicts: dict[str, str | None] = {}  # one look-up per provider name, not per entry
        for other in catalog:
            if other.provider and (not wanted or other.id in wanted):
                if other.provider not in verdicts:
                    verdicts[other.provider] = unknown_provider(other.provider)
                found = verdicts[other.provider]
                if found is not None:
                    unknown[other.id] = found
        lines = catalog.field_lines(unknown, "provider")  # the file read once for all of them
        raise CatalogError([Problem(str(catalog.path), lines[entry_id], entry_id, "provider", found, catalog.unit)
                            for entry_id, found in unknown.items()])
    if style.provider:
        raise StyleError(f"{_style_source(project, style)}: style {style.name!r}: field 'provider': {message}",
                         hint=UNKNOWN_PROVIDER_HINT)
    if settings.provider:
        raise ConfigError(f"{settings.source_of('provider')}: setting 'provider': {message}", hint=UNKNOWN_PROVIDER_HINT)
    raise ConfigError(f"the default provider: {message}", hint=UNKNOWN_PROVIDER_HINT)  # pragma: no cover - built in


def _style_source(project: Project, style: Style) -> str:
    """Where a style is defined: its limner.toml table (or the variable that gave it), or its file and line."""
    settings = project.settings
    if style.name in settings.styles:  # [styles.NAME], which wins over a file of the same name
        return settings.source_of("styles", style.name, "provider")
    path = settings.path(style.source) if style.source != "builtin" else None
    if path is not None and path.is_file():
        try:
            lines = path.read_text(encoding="utf-8").splitlines()
        except (OSError, UnicodeDecodeError):
            return str(path)
        for number, line in enumerate(lines, 1):
            if line.strip().startswith("["):
                break  # a table: the style's own provider is a top-level key
            if line.split("=", 1)[0].strip().strip('"') == "provider" and "=" in line:
                return f"{path}:{number}"
        return str(path)
    return style.source


def _current_reason(ctx: SpecContext, entry: Entry, status: EntryStatus,
                    override: EntryOverride | None) -> tuple[str | None, str | None, RenderSpec | None]:
    """Why an entry with a state row needs work (``None``: it is up to date), with the input digest and
    spec computed on the way (``None`` when not needed)."""
    if status.pinned and status.state in _PINNED_UP_TO_DATE:
        return None, None, None  # a person pinned its image (a newer render awaiting review waits for a decision)
    digest = None
    if status.state in _PUBLISHED and status.input_digest == (digest := ctx.digest(entry, override)):
        return None, digest, None  # same inputs as when it was published: no need to render the prompt
    spec = ctx.spec(entry, override)
    return _reason(status, spec.fingerprint), digest, spec


def _unnamed_up_to_date(project: Project, selection: Selection, entry: Entry, status: EntryStatus,
                        override: EntryOverride | None, lanes: dict[str, Lane],
                        context_for: Callable[[Entry], SpecContext]) -> bool:
    """Whether an entry that ``--id`` leaves out is up to date, as the whole plan would judge it: a published
    one by its recorded inputs only (pinned, or published with the input digest it has now: no prompt is
    rendered, and one whose digest changed is not counted, as it may be stale); one in another state with a
    row (awaiting review, failed or interrupted after an image was published) by its spec, which those few
    render. Nothing about it is an error: an entry whose provider cannot be resolved is not up to date, and is
    reported once asked for."""
    if status.state == EntryState.missing.value:
        return False
    if status.pinned and status.state in _PINNED_UP_TO_DATE:
        return True
    try:
        style = project.style_for(entry)
        name = project.provider_name_for(entry, style, selection.provider)
        if name not in lanes and unknown_provider(name) is not None:
            return False
        if status.state in _PUBLISHED:
            return status.input_digest == context_for(entry).digest(entry, override)
        return _current_reason(context_for(entry), entry, status, override)[0] is None
    except (LimnerError, KeyError):
        return False


def build_plan(project: Project, selection: Selection, statuses: dict[str, EntryStatus] | None = None,
               overrides: dict[str, EntryOverride] | None = None) -> Plan:
    with gc_paused():
        return _build_plan(project, selection, statuses, overrides)


def _build_plan(project: Project, selection: Selection, statuses: dict[str, EntryStatus] | None,
                overrides: dict[str, EntryOverride] | None) -> Plan:
    settings = project.settings
    catalog = project.catalog
    if statuses is None:
        statuses = project.repo.entry_statuses()
    if overrides is None:
        overrides = project.repo.overrides()
    wanted_ids = set(selection.ids)
    if wanted_ids:
        known = catalog.by_id()
        unknown = wanted_ids - set(known)
        if unknown:
            parts = [repr(name) + did_you_mean(name, known) for name in sorted(unknown)]
            raise ConfigError(f"--id names entries not in the catalogue {settings.catalog}: {', '.join(parts)}")

    gen = settings.generate
    contexts: dict[tuple[str | None, str | None, str | None], SpecContext] = {}
    lanes: dict[str, Lane] = {}

    def context_for(entry: Entry) -> SpecContext:
        key = (entry.style, entry.era, entry.provider)
        ctx = contexts.get(key)
        if ctx is None:
            style = project.style_for(entry)
            name = project.provider_name_for(entry, style, selection.provider)
            lane = lanes.get(name)
            if lane is None:
                _check_provider_name(project, selection, entry, style, name)
                lane = lanes[name] = resolve_lane(project, name)
            ctx = contexts[key] = SpecContext(style, lane, gen.size, gen.aspect, project.renderer)
        return ctx

    items: list[PlanItem] = []
    reasons: Counter[str] = Counter()
    held_back: list[str] = []
    stale_not_selected: list[str] = []
    stale_ids: list[str] = []
    up_to_date = 0
    forcing = bool(wanted_ids) or selection.all
    for entry in catalog:
        named = not wanted_ids or entry.id in wanted_ids
        status = statuses.get(entry.id)
        if not named and status is None:
            continue  # never generated: not up to date, and not asked for
        override = overrides.get(entry.id) if overrides else None
        entry = with_override(entry, override)
        if not named:  # left out by --id: counted when up to date, and never an error
            if _unnamed_up_to_date(project, selection, entry, status, override, lanes, context_for):
                up_to_date += 1
            continue
        ctx = context_for(entry)
        spec: RenderSpec | None = None
        fp: str | None = None
        digest: str | None = None
        reason: str | None
        if status is None:
            reason = "missing"
        else:
            reason, digest, spec = _current_reason(ctx, entry, status, override)
            fp = spec.fingerprint if spec is not None else None
        if reason == "stale":
            stale_ids.append(entry.id)
        up = reason is None
        if forcing:
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
            if up:  # not planned (past --limit), and up to date
                up_to_date += 1
            continue
        reasons[reason] += 1
        items.append(PlanItem(entry, ctx, reason, digest, spec, fp, override,
                              published_seen=status.published_fingerprint if status is not None else None))
    check_template_variables(project, {item.style.name: item.style for item in items}.values())
    used = {item.provider for item in items}
    return Plan(items=items, total=len(catalog), up_to_date=up_to_date, reasons=reasons, held_back=held_back,
                stale_not_selected=stale_not_selected, stale_ids=stale_ids,
                lanes={name: lane for name, lane in lanes.items() if name in used})
