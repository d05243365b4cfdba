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
import hashlib
import logging
from concurrent.futures import Executor
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Literal, NamedTuple

from sqlalchemy.exc import SQLAlchemyError

from limner.db.repository import Claim, ClaimLost, Repository
from limner.db.tables import CallStatus, RenderStatus, utcnow
from limner.imaging.errors import ImageRejected
from limner.providers import AuthFailed, GenerationRequest, GenerationResult, ProviderError
from limner.runner.imaging_task import DeriveOptions, Processed, Provenance, process_master
from limner.runner.claims import RunIdentity
from limner.runner.neardup import NearDuplicateIndex
from limner.runner.plan import PlanItem
from limner.runner.pool import ImagingPool
from limner.runner.journal import Allowance, Call, CallJournal, OverBudget
from limner.runner.offloop import URGENT, Batched, OffLoop
from limner.runner.recovery import Kept, RecoveryFolder
from limner.runner.retry import Answer, CallStats, ProviderGate, RunStopped
from limner.storage import ObjectMissing, Storage, content_key
from limner.storage.base import EXTENSIONS, MIME_TYPES

if TYPE_CHECKING:
    from limner.db.models import Render

log = logging.getLogger("limner.runner")

#: formats whose masters get their XMP packet by inserting a chunk or segment, never by decoding
EMBEDS_WITHOUT_DECODING = frozenset({"jpeg", "png", "webp"})

Status = Literal["published", "failed", "not_started", "stopped", "elsewhere", "over_budget"]


class StoredMaster(NamedTuple):
    """A paid image as stored: with its XMP packet, its format, its content-addressed key and its SHA-256."""

    data: bytes
    format: str
    key: str
    sha256: str


class PaidButNotKept(Exception):
    """Storing or recording a paid image failed: it is kept in the database or the recovery folder (or, if even
    that failed, only the provider has it); the run must start no new paid call."""


@dataclass
class Outcome:
    """What one unit of work did. ``cost_usd`` is everything it spent: the image and billed failed attempts."""

    entry_id: str
    #: ``published``; ``failed`` (recorded on the entry); ``not_started`` (the run was stopping before any
    #: provider call: the entry stays queued); ``stopped`` (the provider refused the credentials or the
    #: account: the whole run must stop, ``stop_reason`` says why); ``elsewhere`` (another run holds the
    #: entry, or has just published this very image: left to it, nothing paid); ``over_budget`` (a further
    #: call, after one lost or billed without an image, would pass the spend cap: the entry stays queued)
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
    #: why the run must stop (with ``status == "stopped"``): the provider refused the ``credentials`` (or
    #: the account), or a ``fault`` (storage or database) after a paid answer
    stop_cause: Literal["credentials", "fault"] | None = None
    #: its paid image could be neither stored nor recorded, and waits in the database (or the recovery folder)
    kept_locally: bool = False
    #: with ``stop_cause == "credentials"``: what a person must do before a run can succeed
    stop_fix: str | None = None


class UnitOfWork:
    def __init__(self, *, repo: Repository, storage: Storage, pool: ImagingPool | Executor,
                 options: DeriveOptions, near_duplicates: NearDuplicateIndex, off: OffLoop,
                 run: RunIdentity, recovery: RecoveryFolder, review_required: bool = False) -> None:
        self.repo = repo
        self.run_identity = run
        self.storage = storage
        #: the process pool (an ``ImagingPool`` starts when the first unit needs it, if the run has not
        #: started it already; the first provider calls never wait for it)
        self._pool = pool
        self.options = options
        self.near_duplicates = near_duplicates
        self.off = off
        self.recovery = recovery
        #: ``[review] required``: a new render waits for a person's approval instead of being published
        self.review_required = review_required
        self._templates: set[str] = set()
        #: the ledger lines of the calls about to go out together, in one transaction (a group commit, see
        #: runner/offloop.py), first in the database thread's queue: a provider slot waits on them
        self.lines: Batched[dict, int | None] = Batched(off, repo.open_call_lines, URGENT)

    async def run(self, item: PlanItem, gate: ProviderGate, allowance: Allowance | None = None) -> Outcome:
        """Run one entry to publication. Returns its outcome; raises only ``CancelledError``. ``allowance``: the
        entry's share of a spend cap, its price reserved already (None: no cap)."""
        outcome = Outcome(item.entry.id)
        try:
            await self._run(item, gate, outcome, allowance)
        except RunStopped:  # never reached the provider: it stays queued for the next run
            outcome.status = "not_started"
        except OverBudget:  # its calls so far are counted (and in the ledger); it stays queued
            outcome.status = "over_budget"
        except ClaimLost:  # another run took the entry over (this one was judged gone): it is that run's now
            outcome.status = "elsewhere"
        except AuthFailed as exc:  # OutOfCredit too: no entry can succeed, so the run stops
            outcome.status, outcome.stop_cause = "stopped", "credentials"
            outcome.stop_reason = f"provider {item.provider!r} {exc.refusal}: {exc}"
            outcome.stop_fix = exc.fix
            if outcome.provider_calls:  # entries that never reached the provider stay queued
                await self._fail(outcome, f"{type(exc).__name__}: {exc}", retryable=True)
        except PaidButNotKept as exc:
            outcome.status, outcome.stop_cause, outcome.stop_reason = "stopped", "fault", str(exc)
        except SQLAlchemyError as exc:  # a database that cannot be written cannot journal a paid call
            log.error("entry %s: database error: %s", item.entry.id, exc)
            outcome.status, outcome.stop_cause = "stopped", "fault"
            outcome.stop_reason = f"the database failed ({type(exc).__name__}: {str(exc).splitlines()[0][:300]})"
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
        try:
            await self.off.db(self.repo.mark_failed, outcome.entry_id, message, retryable=retryable,
                              attempts=max(1, outcome.provider_calls), run_id=self.run_identity.id)
        except SQLAlchemyError as exc:  # the entry stays as it was in the database; the run stops
            log.error("entry %s: could not record its failure: %s", outcome.entry_id, exc)
            outcome.status, outcome.stop_cause = "stopped", "fault"
            outcome.stop_reason = f"the database failed ({type(exc).__name__}: {str(exc).splitlines()[0][:300]})"

    def _claim(self, item: PlanItem) -> Claim:
        """Take the entry for this run (in the database thread: one hop for the claim, the check of a
        holder's liveness and the look-up of a render to resume from). One transaction per entry: claims
        grouped in one transaction took as long each (their statements, not their commits, cost) and
        made every unit wait for the last of them."""
        me, force = self.run_identity, item.reason == "forced"
        seen = item.published_seen
        claim = self.repo.claim(item.entry.id, item.fingerprint, me.id, force=force, published_seen=seen)
        if claim.status == "held" and me.holder_is_gone(claim.holder, utcnow()):
            if claim.holder is not None:  # a dead run: free its entries, then try again
                self.repo.end_run(claim.holder.id)
            claim = self.repo.claim(item.entry.id, item.fingerprint, me.id, force=force, published_seen=seen)
        return claim

    async def _run(self, item: PlanItem, gate: ProviderGate, outcome: Outcome, allowance: Allowance | None) -> None:
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
            adopted = await self._adopt_kept(item, provenance, bool(claim.open_calls))
            if adopted is not None:
                (render, master), outcome.resumed = adopted, True
            else:
                render, master = await self._generate(item, gate, provenance, outcome, claim.open_calls, allowance)

        # shielded: a cancelled run never cancels a pool future itself (the pool's own shutdown does that
        # safely); the worker's answer is simply dropped
        pool = self._pool if isinstance(self._pool, Executor) else await self._started(self._pool)
        downloaded_again = False
        while True:
            future = pool.submit(process_master, master, provenance, self.options)
            try:
                processed: Processed = await asyncio.shield(asyncio.wrap_future(future))
                break
            except ImageRejected as exc:
                # damaged bytes (a truncated body, an error page with a 200) of an image the provider named:
                # download it again once (no new payment) rather than pay for a new one, here or in a later run
                refetch = exc.download_may_be_at_fault and not downloaded_again
                reopened = await self.off.db(self.repo.reject_render, render.id, f"{exc.code}: {exc.reason}",
                                             refetch=refetch)
                if not reopened:
                    raise
                log.warning("entry %s: its image was rejected (%s); downloading it again", entry.id, exc)
                downloaded_again = True
                render, master = await self._download_again(item, gate, provenance, outcome, reopened, allowance)
        outcome.near_duplicate_of = self.near_duplicates.check_and_add(entry.id, processed.validated.phash)
        if outcome.near_duplicate_of:
            log.warning("%s looks like a near-duplicate of %s", entry.id, outcome.near_duplicate_of)
        await self._store_derived(render, processed, item.digest, outcome.near_duplicate_of,
                                  forced=item.reason == "forced")
        outcome.status = "published"

    async def _download_again(self, item: PlanItem, gate: ProviderGate, provenance: Provenance, outcome: Outcome,
                              open_calls: list, allowance: Allowance | None) -> tuple[Render, bytes]:
        """:meth:`_generate` once more for the calls opened again: it asks the provider about them first. Its
        journal counts only its own new calls, added to those this unit made before."""
        calls, cost, billed = outcome.provider_calls, outcome.cost_usd, outcome.billed_failures_usd
        if allowance is not None:
            allowance.earlier_usd += cost
        try:
            return await self._generate(item, gate, provenance, outcome, tuple(open_calls), allowance)
        finally:
            outcome.provider_calls += calls
            outcome.cost_usd += cost
            outcome.billed_failures_usd += billed

    @staticmethod
    async def _started(pool: ImagingPool) -> Executor:
        pool.begin()  # started already, unless this unit is the first to need it (an image to resume from)
        return await asyncio.shield(asyncio.wrap_future(pool.ready))

    # ------------------------------------------------------------------ stages
    async def _generate(self, item: PlanItem, gate: ProviderGate, provenance: Provenance, outcome: Outcome,
                        open_calls: tuple = (), allowance: Allowance | None = None) -> tuple[Render, bytes]:
        """Call the provider through the paid-call journal (every call is in the ledger before it goes
        out), then store and record the master at once. A paid image that cannot be stored or recorded is
        kept (:meth:`_keep`) and stops the run's new paid calls."""
        entry, spec = item.entry, item.spec
        stats = CallStats()
        journal = CallJournal(self.repo, self.off, entry_id=entry.id, fingerprint=item.fingerprint,
                              run_id=self.run_identity.id, provider=spec.provider, model=spec.model,
                              estimate_usd=item.price_usd, earlier=list(open_calls), lines=self.lines,
                              allowance=allowance)
        request = GenerationRequest(prompt=spec.prompt, negative_prompt=spec.negative_prompt, width=spec.width,
                                    height=spec.height, seed=spec.seed, model=spec.model, params=spec.params,
                                    context={**entry.context(), "style": spec.style})
        answer: Answer | None = None
        try:
            answer = await gate.call(request, stats, journal)
        finally:
            self._count(outcome, journal, answer)
        result, call = answer.result, answer.call
        try:
            return await self._store_master(item, provenance, result.data, result.cost_usd, stats, result.seed,
                                            result.model or spec.model, result.metadata,
                                            call_id=call.id if call.id > 0 else None)
        except Exception as exc:  # paid for, but not kept: stop paying at once (the run stops the other gates when
            # this unit returns), then keep it: keeping it waits on the database, while other units' calls would start
            gate.stopping = True
            outcome.kept_locally, where = await self._keep(item, result, call, journal, exc)
            journal.recorded(call, result.cost_usd)  # counted as paid in this run's outcome either way
            self._count(outcome, journal, answer)
            raise PaidButNotKept(
                f"could not keep the paid image of {entry.id!r} ({type(exc).__name__}: {str(exc)[:300]}); {where}; "
                "no new paid call was started") from exc

    async def _keep(self, item: PlanItem, result: GenerationResult, call: Call, journal: CallJournal,
                    exc: BaseException) -> tuple[bool, str]:
        """Keep a paid image (see :mod:`limner.runner.recovery`): in the database, with its ledger line noted
        ``answered``, where a run on any host finds it; else (the database failed too) in this host's recovery
        folder. Returns (kept, what to tell the user)."""
        sha = hashlib.sha256(result.data).hexdigest()
        kept = Kept(entry_id=item.entry.id, fingerprint=item.fingerprint, provider=item.spec.provider,
                    model=result.model or item.spec.model, seed=result.seed, cost_usd=result.cost_usd, sha256=sha,
                    call_id=call.id if call.id > 0 else None, external_id=call.external_id,
                    metadata=result.metadata)
        log.error("entry %s: storing or recording its paid image failed: %s", item.entry.id, exc)
        try:
            await journal.flush()  # the provider's id for the call first: the line is complete when it is answered
            await self.off.db(self.repo.keep_image, asdict(kept), result.data, host=self.run_identity.host,
                              run_id=self.run_identity.id)
        except Exception as db_exc:  # noqa: BLE001 - the database may be what failed: keep it on this host's disk
            log.error("entry %s: could not keep its paid image in the database (%s); keeping it on local disk",
                      item.entry.id, db_exc)
        else:
            return True, "it is kept in the database and the next run, on any host, records it without paying again"
        try:
            await journal.settle(call, CallStatus.answered, cost_usd=result.cost_usd, outcome="kept_locally")
        except Exception as again:  # noqa: BLE001 - the database may be what failed
            log.error("entry %s: could not note the kept image in the ledger: %s", item.entry.id, again)
        try:
            path = await self.off.io(self.recovery.keep, result.data, kept)
        except OSError as disk:
            log.critical("entry %s: the paid image could not be kept on local disk either (%s)%s", item.entry.id,
                         disk, f"; the provider still has it as call {call.external_id}" if call.external_id else "")
            return False, ("it could not be kept on local disk either" +
                           (f"; the next run asks the provider for call {call.external_id} again" if call.external_id else ""))
        return True, f"it is kept in {path} and the next run on this host records it without paying again"

    async def _adopt_kept(self, item: PlanItem, provenance: Provenance, open_calls: bool) -> tuple[Render, bytes] | None:
        """Record the image an earlier run paid for but could not store (see :mod:`limner.runner.recovery`), if one
        is kept for this entry and spec: in the database (kept on any host; its ledger line is open, answered), or
        in this host's recovery folder. None: there is none."""
        entry_id, fingerprint = item.entry.id, item.fingerprint
        if open_calls:
            found = await self.off.db(self.repo.kept_image, entry_id, fingerprint)
            if found is not None:
                kept = Kept.from_record(found.record)
                if hashlib.sha256(found.data).hexdigest() == kept.sha256:
                    return await self._adopt(item, provenance, kept, found.data, kept_id=found.id)
                log.warning("entry %s: the image kept in the database does not match its hash; not used", entry_id)
        # an open call may be one another run on this host kept the image of after this run read the folder
        kept = (await self.off.io(self.recovery.find, entry_id, fingerprint, fresh=True) if open_calls
                else self.recovery.find(entry_id, fingerprint) if len(self.recovery) else None)
        data = await self.off.io(self.recovery.read, kept) if kept is not None else None
        return await self._adopt(item, provenance, kept, data) if kept is not None and data is not None else None

    async def _adopt(self, item: PlanItem, provenance: Provenance, kept: Kept, data: bytes, *,
                     kept_id: int | None = None) -> tuple[Render, bytes]:
        """Store and record a kept image as the entry's render; ``kept_id``: its row in the database (removed with
        the record), else its files in the recovery folder (removed after it)."""
        where = "the database" if kept_id is not None else str(self.recovery.path)
        try:
            stored = await self._store_master(item, provenance, data, kept.cost_usd, CallStats(), kept.seed, kept.model,
                                              kept.metadata, call_id=kept.call_id, kept_id=kept_id)
        except Exception as exc:
            raise PaidButNotKept(f"could not record the kept image of {item.entry.id!r} "
                                 f"({type(exc).__name__}: {str(exc)[:300]}); it stays in {where}") from exc
        if kept_id is None:
            await self.off.io(self.recovery.adopted, kept)
        log.info("entry %s: recorded the image kept in %s (no new call)", item.entry.id, where)
        return stored

    @staticmethod
    def _count(outcome: Outcome, journal: CallJournal, answer: Answer | None) -> None:
        outcome.provider_calls = journal.calls_made
        outcome.cost_usd = journal.cost_usd
        image = answer.call.cost_usd if answer is not None and answer.call.this_run else 0.0
        outcome.billed_failures_usd = max(0.0, outcome.cost_usd - image)

    def _load_master(self, render: Render) -> bytes | None:
        """The stored master of a render to resume, or None when it is gone (missing, or not the bytes
        recorded): then a new image is fair. Any other read error raises: the entry fails (retryable when
        the store says so) and is resumed later, without paying for its image again."""
        try:
            data = self.storage.get(render.master_key)
        except ObjectMissing:
            log.warning("master of %s is missing from storage; regenerating", render.entry_id)
            return None
        if hashlib.sha256(data).hexdigest() != render.master_sha256:
            log.warning("master of %s does not match its sha256; regenerating", render.entry_id)
            return None
        return data

    def _embed_and_put(self, data: bytes, provenance: Provenance) -> StoredMaster:
        """Store the master with its XMP packet; hashed here, in a storage thread, not on the loop."""
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
        return StoredMaster(master, fmt, key, sha)

    async def _store_master(self, item: PlanItem, provenance: Provenance, data: bytes, cost: float, stats: CallStats,
                            seed: int, model: str, metadata: dict, *, call_id: int | None = None,
                            kept_id: int | None = None) -> tuple[Render, bytes]:
        stored = await self.off.io(self._embed_and_put, data, provenance)
        spec = item.spec
        if spec.template_sha not in self._templates:
            await self.off.db(self.repo.ensure_template, spec.template_sha, style=item.style.name,
                              version=item.style.version, positive=item.style.positive, negative=item.style.negative,
                              params=item.style.params)
            self._templates.add(spec.template_sha)
        from limner.db.models import Render  # imported while the first calls were out (runner/run.py)

        render = Render(
            entry_id=spec.entry_id, fingerprint=item.fingerprint, status=RenderStatus.generated.value,
            provider=spec.provider, model=model, seed=seed, prompt=spec.prompt, negative_prompt=spec.negative_prompt,
            parameters={**spec.params, "width": spec.width, "height": spec.height}, style=spec.style,
            style_version=spec.style_version, template_sha=spec.template_sha, cost_usd=cost,
            latency_ms=stats.latency_ms, attempts=stats.attempts, provider_metadata=metadata,
            master_sha256=stored.sha256, master_key=stored.key, master_format=stored.format,
            master_bytes=len(stored.data),
        )
        return await self.off.db(self.repo.record_render, render, call_id=call_id, kept_id=kept_id,
                                 run_id=self.run_identity.id), stored.data

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
                             near_duplicate_of: str | None, *, forced: bool) -> None:
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
            publish=not self.review_required,
            await_review=self.review_required,
            input_digest=input_digest,
            forced=forced,
        )
