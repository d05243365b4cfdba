"""One unit of work: generate -> validate -> store master -> derive -> store variants -> record -> publish.

Each stage commits before the next starts. The master is stored (content
addressed) and recorded right after the provider answers, so a crash later
never pays for that generation again: the next run finds the render and
resumes from the stored master.

:meth:`UnitOfWork.run` returns an :class:`Outcome` for every path (published,
failed, not started, run stopped); it raises nothing but cancellation. Every
blocking call (database, storage) goes through :class:`OffLoop`, so the event
loop never waits on a write or a lock.
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
import logging
from collections.abc import Callable
from concurrent.futures import Executor, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Literal, TypeVar

from limner.db.models import Render, RenderStatus, utcnow
from limner.db.repository import Claim, Repository
from limner.imaging.errors import ImageRejected
from limner.providers import AuthFailed, GenerationRequest, OutOfCredit, ProviderError
from limner.runner.imaging_task import DeriveOptions, Processed, Provenance, process_master
from limner.runner.claims import RunIdentity
from limner.runner.neardup import NearDuplicateIndex
from limner.runner.plan import PlanItem
from limner.runner.retry import CallStats, ProviderGate, RunStopped
from limner.storage import Storage, StorageError, content_key
from limner.storage.base import EXTENSIONS, MIME_TYPES

log = logging.getLogger("limner.runner")

T = TypeVar("T")

#: formats whose masters get their XMP packet by inserting a chunk or segment, never by decoding
EMBEDS_WITHOUT_DECODING = frozenset({"jpeg", "png", "webp"})

Status = Literal["published", "failed", "not_started", "stopped", "elsewhere"]


@dataclass
class Outcome:
    """What one unit of work did. ``cost_usd`` is everything it spent: the image and billed failed attempts."""

    entry_id: str
    #: ``published``; ``failed`` (recorded on the entry); ``not_started`` (the run was stopping before any
    #: provider call: the entry stays queued); ``stopped`` (the provider refused the credentials or the
    #: account: the whole run must stop, ``stop_reason`` says why); ``elsewhere`` (another run holds the
    #: entry, or has just published this very image: left to it, nothing paid)
    status: Status = "failed"
    provider_calls: int = 0
    cost_usd: float = 0.0
    #: part of ``cost_usd`` billed for attempts that gave no image (kept in the ledger too)
    billed_failures_usd: float = 0.0
    error: str | None = None
    retryable: bool = True
    resumed: bool = False
    near_duplicate_of: str | None = None
    stop_reason: str | None = None


class OffLoop:
    """Runs blocking calls in worker threads so the event loop never waits on them.

    Database calls go to one thread (SQLite takes one writer at a time: several writer threads would
    only wait on each other's locks), storage calls to a few others."""

    def __init__(self, *, db_threads: int = 1, io_threads: int = 8) -> None:
        self._db = ThreadPoolExecutor(db_threads, thread_name_prefix="limner-db")
        self._io = ThreadPoolExecutor(io_threads, thread_name_prefix="limner-io")

    async def db(self, fn: Callable[..., T], /, *args: object, **kwargs: object) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._db, functools.partial(fn, *args, **kwargs))

    async def io(self, fn: Callable[..., T], /, *args: object, **kwargs: object) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._io, functools.partial(fn, *args, **kwargs))

    def shutdown(self) -> None:
        self._db.shutdown(wait=True)
        self._io.shutdown(wait=True)


class UnitOfWork:
    def __init__(self, *, repo: Repository, storage: Storage, pool: asyncio.Future[Executor] | Executor,
                 options: DeriveOptions, near_duplicates: NearDuplicateIndex, off: OffLoop,
                 run: RunIdentity) -> None:
        self.repo = repo
        self.run_identity = run
        self.storage = storage
        #: the process pool, or a future of it while it starts (the first provider calls do not wait for it)
        self._pool = pool
        self.options = options
        self.near_duplicates = near_duplicates
        self.off = off
        self._templates: set[str] = set()

    async def run(self, item: PlanItem, gate: ProviderGate) -> Outcome:
        """Run one entry to publication. Returns its outcome; raises only ``CancelledError``."""
        outcome = Outcome(item.entry.id)
        try:
            await self._run(item, gate, outcome)
        except RunStopped:  # never reached the provider: it stays queued for the next run
            outcome.status = "not_started"
        except AuthFailed as exc:  # OutOfCredit too: no entry can succeed, so the run stops
            outcome.status = "stopped"
            refused = "has no credit left" if isinstance(exc, OutOfCredit) else "rejected the credentials"
            outcome.stop_reason = f"provider {item.provider!r} {refused}: {exc}"
            if outcome.provider_calls:  # entries that never reached the provider stay queued
                await self._fail(outcome, f"{type(exc).__name__}: {exc}", retryable=True)
        except ProviderError as exc:
            await self._fail(outcome, f"{type(exc).__name__}: {exc}", retryable=exc.retryable)
        except ImageRejected as exc:
            await self._fail(outcome, f"image rejected ({exc.code}): {exc.reason}", retryable=exc.retryable)
        except Exception as exc:  # storage faults, bugs: the entry fails, the run goes on
            log.exception("entry %s failed", item.entry.id)
            await self._fail(outcome, f"{type(exc).__name__}: {exc}", retryable=True)
        return outcome

    async def _fail(self, outcome: Outcome, message: str, *, retryable: bool) -> None:
        outcome.status, outcome.error, outcome.retryable = "failed", message, retryable
        await self.off.db(self.repo.mark_failed, outcome.entry_id, message, retryable=retryable,
                          attempts=max(1, outcome.provider_calls))

    def _claim(self, item: PlanItem) -> Claim:
        """Take the entry for this run (in the database thread: one hop for the claim, the check of a
        holder's liveness and the look-up of a render to resume from)."""
        me, force = self.run_identity, item.reason == "forced"
        claim = self.repo.claim(item.entry.id, item.fingerprint, me.id, force=force)
        if claim.status == "held" and me.holder_is_gone(claim.holder, utcnow()):
            if claim.holder is not None:  # a dead run: free its entries, then try again
                self.repo.end_run(claim.holder.id)
            claim = self.repo.claim(item.entry.id, item.fingerprint, me.id, force=force)
        return claim

    async def _run(self, item: PlanItem, gate: ProviderGate, outcome: Outcome) -> None:
        entry, spec = item.entry, item.spec
        claim = await self.off.db(self._claim, item)
        if claim.status != "claimed":  # another live run holds it, or has just published this image
            outcome.status = "elsewhere"
            return
        provenance = Provenance(entry_id=entry.id, title=entry.title, prompt=spec.prompt, model=spec.model,
                                provider=spec.provider, seed=spec.seed, alt=entry.alt_text,
                                source_type=item.lane.cls.digital_source_type, fingerprint=item.fingerprint)
        render = claim.resumable
        master: bytes | None = None
        if render is not None:
            master = await self.off.io(self._load_master, render)
            outcome.resumed = master is not None
        if render is None or master is None:
            render, master = await self._generate(item, gate, provenance, outcome)

        # shielded: a cancelled run never cancels a pool future itself (the pool's own shutdown does that
        # safely); the worker's answer is simply dropped
        pool = self._pool if isinstance(self._pool, Executor) else await asyncio.shield(self._pool)
        future = pool.submit(process_master, master, provenance, self.options)
        try:
            processed: Processed = await asyncio.shield(asyncio.wrap_future(future))
        except ImageRejected as exc:
            await self.off.db(self.repo.reject_render, render.id, f"{exc.code}: {exc.reason}")
            raise
        outcome.near_duplicate_of = self.near_duplicates.check_and_add(entry.id, processed.validated.phash)
        if outcome.near_duplicate_of:
            log.warning("%s looks like a near-duplicate of %s", entry.id, outcome.near_duplicate_of)
        await self._store_derived(render, processed, item.digest, outcome.near_duplicate_of)
        outcome.status = "published"

    # ------------------------------------------------------------------ stages
    async def _generate(self, item: PlanItem, gate: ProviderGate, provenance: Provenance,
                        outcome: Outcome) -> tuple[Render, bytes]:
        """Call the provider, then store and record the master at once. Every cent is in the outcome
        and the ledger, whatever happens after the call."""
        entry, spec = item.entry, item.spec
        stats = CallStats()
        request = GenerationRequest(prompt=spec.prompt, negative_prompt=spec.negative_prompt, width=spec.width,
                                    height=spec.height, seed=spec.seed, model=spec.model, params=spec.params,
                                    context={**entry.context(), "style": spec.style})
        try:
            result = await gate.call(request, stats)
        except ProviderError as exc:
            billed = stats.billed_failures_usd + (0.0 if exc.retryable else exc.billed_usd)
            self._count(outcome, stats, billed_failures=billed)
            if billed:
                await self.off.db(self.repo.record_billed_failure, entry.id, spec.provider, spec.model, billed,
                                  type(exc).__name__)
            raise
        self._count(outcome, stats, billed_failures=stats.billed_failures_usd, image=result.cost_usd)
        if stats.billed_failures_usd:
            await self.off.db(self.repo.record_billed_failure, entry.id, spec.provider, spec.model,
                              stats.billed_failures_usd, "retried")
        try:
            return await self._store_master(item, provenance, result.data, result.cost_usd, stats, result.seed,
                                            result.model or spec.model, result.metadata)
        except Exception:  # paid for, but not kept: the ledger and the budget must still see it
            await self.off.db(self.repo.record_billed_failure, entry.id, spec.provider, spec.model, result.cost_usd,
                              "store_failed")
            raise

    @staticmethod
    def _count(outcome: Outcome, stats: CallStats, *, billed_failures: float, image: float = 0.0) -> None:
        outcome.provider_calls = stats.attempts
        outcome.billed_failures_usd = billed_failures
        outcome.cost_usd = billed_failures + image

    def _load_master(self, render: Render) -> bytes | None:
        try:
            data = self.storage.get(render.master_key)
        except StorageError:
            return None
        if hashlib.sha256(data).hexdigest() != render.master_sha256:
            log.warning("master of %s does not match its sha256; regenerating", render.entry_id)
            return None
        return data

    def _embed_and_put(self, data: bytes, provenance: Provenance) -> tuple[bytes, str, str]:
        # imported here, in a storage thread, once the first answer is in: Pillow is not needed to start calls
        from limner.imaging.provenance import embed_xmp, xmp_packet
        from limner.imaging.decode import sniff_format

        fmt = sniff_format(data) or "bin"
        try:
            # XMP goes in without touching pixels for JPEG, PNG and WebP; any other answer (AVIF) is kept
            # exactly as it came: re-encoding it here would decode it in this process before the pool
            # has checked its size (its provenance is in the database and in every variant)
            master = embed_xmp(data, xmp_packet(provenance)) if fmt in EMBEDS_WITHOUT_DECODING else data
        except Exception:  # an undecodable answer is kept as is; validation rejects it
            master = data
        fmt = sniff_format(master) or fmt
        sha = hashlib.sha256(master).hexdigest()
        key = content_key("masters", sha, EXTENSIONS.get(fmt, "bin"))
        self.storage.put_if_absent(key, master, content_type=MIME_TYPES.get(fmt, "application/octet-stream"))
        return master, fmt, key

    async def _store_master(self, item: PlanItem, provenance: Provenance, data: bytes, cost: float, stats: CallStats,
                            seed: int, model: str, metadata: dict) -> tuple[Render, bytes]:
        master, fmt, key = await self.off.io(self._embed_and_put, data, provenance)
        spec = item.spec
        if spec.template_sha not in self._templates:
            await self.off.db(self.repo.ensure_template, spec.template_sha, style=item.style.name,
                              version=item.style.version, positive=item.style.positive, negative=item.style.negative,
                              params=item.style.params)
            self._templates.add(spec.template_sha)
        render = Render(
            entry_id=spec.entry_id, fingerprint=item.fingerprint, status=RenderStatus.generated.value,
            provider=spec.provider, model=model, seed=seed, prompt=spec.prompt, negative_prompt=spec.negative_prompt,
            parameters={**spec.params, "width": spec.width, "height": spec.height}, style=spec.style,
            style_version=spec.style_version, template_sha=spec.template_sha, cost_usd=cost,
            latency_ms=stats.latency_ms, attempts=stats.attempts, provider_metadata=metadata,
            master_sha256=hashlib.sha256(master).hexdigest(), master_key=key, master_format=fmt,
            master_bytes=len(master),
        )
        return await self.off.db(self.repo.record_render, render), master

    def _put_derived(self, processed: Processed) -> tuple[list[dict], str]:
        d = processed.derived
        variants = []
        for v in d.variants:
            key = f"variants/{v.name}"
            self.storage.put_if_absent(key, v.data, content_type=v.mime)
            variants.append({"width": v.width, "height": v.height, "format": v.format, "key": key, "sha256": v.sha256,
                             "bytes": len(v.data)})
        ph = d.placeholder
        ph_key = content_key("placeholders", hashlib.sha256(ph.data).hexdigest(), EXTENSIONS[ph.format])
        self.storage.put_if_absent(ph_key, ph.data, content_type=MIME_TYPES[ph.format])
        return variants, ph_key

    async def _store_derived(self, render: Render, processed: Processed, input_digest: str,
                             near_duplicate_of: str | None) -> None:
        variants, ph_key = await self.off.io(self._put_derived, processed)
        d, ph = processed.derived, processed.derived.placeholder
        await self.off.db(
            self.repo.record_derived,
            render.id,
            fields={"width": d.width, "height": d.height, "phash": processed.validated.phash,
                    "near_duplicate_of": near_duplicate_of, "blurhash": d.blurhash, "thumbhash": d.thumbhash,
                    "dominant_color": d.dominant_color, "placeholder_key": ph_key, "placeholder_width": ph.width,
                    "placeholder_height": ph.height},
            variants=variants,
            publish=True,
            input_digest=input_digest,
        )
