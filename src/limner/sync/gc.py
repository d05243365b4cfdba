"""Garbage collection of stored objects (``limner gc``).

What is garbage, precisely:

* Only objects under ``masters/``, ``variants/`` and ``placeholders/`` are considered.
* **Unreferenced** (the default): objects whose key is in no render row and no variant row of the
  state database, whatever the render's status. Superseded renders still have rows, so their
  objects are kept: they are the history (prompt, seed, cost) of what was shown before, and an
  app still serving an older manifest may point at them.
* With ``superseded=True``: also the objects referenced *only* by superseded or rejected renders.
  Those render rows (and their variant rows) are deleted in the same step, before the objects,
  so no row ever references a missing object; their ledger lines keep the spend with
  ``render_id`` cleared. Renders that are generated or derived but not yet published are live
  (a re-run resumes them), so their objects are kept.

Never collected: any object of a published render (checked explicitly, whatever the rows say),
and any object whose key appears in the current manifest file (``[sync] manifest``): a
superseded image the deployed app still shows stays until the next ``limner sync``. A render
whose objects the manifest still names keeps its row too.

Rows go first, then objects: a crash in between leaves unreferenced objects, which the next
``limner gc --delete`` removes, never a row pointing at nothing.

Never while a run works: a unit of work stores an image's variants and placeholder a moment before it
records their rows, so for that moment they look like garbage. ``limner gc --delete`` refuses (unless
``--force``) while :func:`busy` names a reason: a live run or queue worker holding entries, or entries
left ``generating``. It asks before it lists the storage and again right before the first delete.

And no run starts working while it deletes: ``limner gc --delete`` is recorded as a live run of kind ``gc``
first (:func:`holding_off_runs`), and while it is live no run or worker claims an entry (it finds the
entry held, and leaves it for a later run). Without that, a run started mid-delete could store (or adopt
from the recovery folder) an image whose identical bytes gc had listed, find the object there, record it,
and lose it to the delete a moment later.

Also collected: what interrupted writes left in the storage (a folder's ``.tmp-`` files a killed process
did not rename: ``Storage.partial_writes``), once untouched for an hour (:data:`PARTIAL_WRITE_AGE_S`).

The storage is reached only through the ``Storage`` contract (``list_sizes`` or ``list``, ``delete``,
``partial_writes``, ``delete_partial_write``), so any storage plugin can be collected.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

from limner.db.models import RenderStatus
from limner.db.repository import Repository
from limner.errors import LimnerError
from limner.keys import CONTENT_PREFIXES
from limner.storage.base import Storage, StorageError
from limner.storage.transfer import list_with_sizes

#: only content-addressed objects are ever collected
GC_PREFIXES = CONTENT_PREFIXES
#: a partial write (a temp file a killed process left) untouched this long is collected; a live write
#: finishes in moments, and a slow one on a busy machine in minutes
PARTIAL_WRITE_AGE_S = 3600.0
_DEAD = {RenderStatus.superseded.value, RenderStatus.rejected.value}


@dataclass
class GcPlan:
    #: (key, size in bytes or None when the storage cannot tell cheaply), sorted by key
    objects: list[tuple[str, int | None]] = field(default_factory=list)
    #: objects looked at under the gc prefixes
    scanned: int = 0
    #: superseded or rejected render rows that go with their objects (``superseded`` mode only)
    renders: list[int] = field(default_factory=list)
    #: unreferenced (or superseded-only) objects kept because the manifest names them
    kept_for_manifest: list[str] = field(default_factory=list)
    superseded: bool = False
    #: (name, size) of what interrupted writes left (``Storage.partial_writes``), older than an hour
    partial: list[tuple[str, int]] = field(default_factory=list)

    @property
    def bytes(self) -> int:
        return sum(size or 0 for _key, size in self.objects)


@dataclass
class GcResult:
    deleted: list[str] = field(default_factory=list)
    failed: list[dict[str, str]] = field(default_factory=list)
    renders_forgotten: int = 0
    bytes: int = 0
    #: partial writes removed (their bytes are in ``bytes``)
    partial_deleted: int = 0


def busy(repo: Repository) -> str | None:
    """Why deleting now could take a run's fresh objects for garbage (a sentence), or None when no run works."""
    from limner.db.tables import utcnow
    from limner.runner.claims import RunIdentity

    me, now = RunIdentity(), utcnow()
    working = [(run, held) for run, held in repo.live_runs() if held and not me.holder_is_gone(run, now)]
    if working:
        entries = sum(len(held) for _run, held in working)
        runs = ", ".join(f"{run.kind or 'generate'} {run.host}:{run.pid}" for run, _held in working[:3])
        return (f"{len(working)} run(s) hold {entries} entries ({runs}): a run stores an image's variants a moment "
                "before it records them, and gc would take them for garbage")
    generating = repo.counts_by_state().get("generating", 0)
    if generating:
        return (f"{generating} entries are being generated: a running `limner generate` may have stored objects it has "
                "not recorded yet, and gc would take them for garbage")
    return None


#: how often a ``limner gc --delete`` beats (a run on another host judges it by its beat: ``LEASE_S``)
GC_BEAT_S = 10.0


class GcEnded(LimnerError):
    """This ``limner gc --delete`` was judged gone by a run (its beat was late): runs may claim entries again,
    so it must delete nothing more."""


@contextlib.contextmanager
def holding_off_runs(repo: Repository, *, beat_s: float = GC_BEAT_S) -> Iterator[Callable[[], None]]:
    """Record this ``limner gc --delete`` as a live run of kind ``gc`` until the block ends: no run claims an
    entry meanwhile. A thread beats every ``beat_s`` for the whole block (listing a big bucket takes minutes,
    and a run elsewhere ends a run whose beat is a minute late). Yields a check to call before each delete:
    it raises :class:`GcEnded` once the row was ended all the same."""
    from limner.runner.claims import RunIdentity

    me = RunIdentity()
    repo.start_gc(me.id, me.host, me.pid, scope=me.scope, process_start=me.process_start)
    done, ended = threading.Event(), threading.Event()

    def beating() -> None:
        while not done.wait(beat_s):
            try:
                if not repo.heartbeat(me.id):
                    ended.set()
                    return
            except Exception:  # noqa: BLE001 - a lost connection: the next beat tries again
                continue

    beater = threading.Thread(target=beating, name="limner-gc-beat", daemon=True)
    beater.start()

    def still_held() -> None:
        if ended.is_set():
            raise GcEnded("gc stopped deleting: a run judged it gone (its heartbeat was late) and may be working "
                          "now; nothing it had not deleted yet was deleted",
                          hint="run `limner gc --delete` again")

    try:
        yield still_held
    finally:
        done.set()
        beater.join()
        repo.end_run(me.id)


def plan_gc(storage: Storage, repo: Repository, *, superseded: bool = False, manifest_text: str = "") -> GcPlan:
    """Which objects ``limner gc`` would delete (and, with ``superseded``, which render rows)."""
    plan = GcPlan(superseded=superseded)
    by_render = repo.object_keys_by_render()
    published_ids = repo.published_render_ids()
    published_keys: set[str] = set()
    for rid in published_ids:
        if rid in by_render:
            published_keys |= by_render[rid][1]

    def in_manifest(key: str) -> bool:
        return bool(manifest_text) and key in manifest_text

    if superseded:
        live: set[str] = set()
        dead: dict[int, set[str]] = {}
        for rid, (status, keys) in by_render.items():
            if status in _DEAD and rid not in published_ids:
                dead[rid] = keys
            else:
                live |= keys
        for rid, keys in sorted(dead.items()):
            named = sorted(k for k in keys - live if in_manifest(k))
            if named:  # the deployed app may still show it: keep the render, rows and objects, for now
                plan.kept_for_manifest.extend(named)
                live |= keys
            else:
                plan.renders.append(rid)
        referenced = live
    else:
        referenced = set()
        for _status, keys in by_render.values():
            referenced |= keys

    for prefix in GC_PREFIXES:
        for key, size in list_with_sizes(storage, prefix):
            plan.scanned += 1
            if key in referenced or key in published_keys:
                continue
            if in_manifest(key):
                plan.kept_for_manifest.append(key)
                continue
            plan.objects.append((key, size))
    plan.objects.sort()
    plan.partial = sorted(storage.partial_writes(PARTIAL_WRITE_AGE_S))
    plan.kept_for_manifest = sorted(set(plan.kept_for_manifest))
    assert not published_keys & {k for k, _ in plan.objects}, "gc must never select a published object"
    return plan


def run_gc(storage: Storage, repo: Repository, plan: GcPlan, *, on_delete: Callable[[str], None] | None = None,
           still_held: Callable[[], None] | None = None) -> GcResult:
    """Delete what ``plan`` selected: the render rows first, then the objects. Run it inside
    :func:`holding_off_runs` (``still_held`` its check, called before each delete), so that no run records a render
    meanwhile."""
    result = GcResult()
    if still_held is not None:
        still_held()
    if plan.renders:
        result.renders_forgotten = repo.forget_renders(plan.renders)
    # re-check against the rows as they are now: a render recorded since the plan keeps its objects
    still_referenced: set[str] = set()
    for _status, keys in repo.object_keys_by_render().values():
        still_referenced |= keys
    for key, size in plan.objects:
        if key in still_referenced:
            continue
        if still_held is not None:
            still_held()
        try:
            storage.delete(key)
        except StorageError as exc:
            result.failed.append({"key": key, "error": str(exc)})
            continue
        result.deleted.append(key)
        result.bytes += size or 0
        if on_delete is not None:
            on_delete(key)
    for name, size in plan.partial:
        try:
            storage.delete_partial_write(name)
        except StorageError as exc:
            result.failed.append({"key": name, "error": str(exc)})
            continue
        result.partial_deleted += 1
        result.bytes += size
    return result
