"""One unit of work: generate -> validate -> store master -> derive -> store variants -> record -> publish.

Each stage commits before the next starts. The master is stored (content
addressed) and recorded right after the provider answers, so a crash later
never pays for that generation again: the next run finds the render and
resumes from the stored master.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from concurrent.futures import Executor
from dataclasses import dataclass

from limner.db.models import EntryState, Render, RenderStatus
from limner.db.repository import Repository
from limner.imaging import ImageRejected, Provenance, embed_xmp, sniff_format, xmp_packet
from limner.imaging.validate import NEAR_DUPLICATE_DISTANCE
from limner.providers import GenerationRequest, ProviderError
from limner.runner.imaging_task import DeriveOptions, Processed, process_master
from limner.runner.plan import PlanItem
from limner.runner.retry import CallStats, ProviderGate
from limner.storage import Storage, StorageError, content_key
from limner.storage.base import EXTENSIONS, MIME_TYPES

log = logging.getLogger("limner.runner")


@dataclass
class Outcome:
    entry_id: str
    status: str  # "published" | "failed"
    provider_calls: int = 0
    cost_usd: float = 0.0
    error: str | None = None
    resumed: bool = False


class UnitOfWork:
    def __init__(self, *, repo: Repository, storage: Storage, pool: Executor, options: DeriveOptions,
                 phashes: dict[str, str]) -> None:
        self.repo = repo
        self.storage = storage
        self.pool = pool
        self.options = options
        #: entry id -> perceptual hash as an int, for near-duplicate checks
        self.phashes = {k: int(v, 16) for k, v in phashes.items()}
        self._templates: set[str] = set()

    async def run(self, item: PlanItem, gate: ProviderGate) -> Outcome:
        entry, spec = item.entry, item.spec
        # database writes run in threads so the event loop keeps provider timings exact
        await asyncio.to_thread(self.repo.set_state, entry.id, EntryState.generating, fingerprint=item.fingerprint)
        provenance = Provenance(entry_id=entry.id, title=entry.title, prompt=spec.prompt, model=spec.model,
                                provider=spec.provider, seed=spec.seed, alt=entry.alt_text)
        outcome = Outcome(entry.id, "failed")

        # an entry never generated before has nothing to resume: skip the lookup
        render = None if item.fresh else await asyncio.to_thread(self.repo.find_resumable, entry.id, item.fingerprint)
        master: bytes | None = None
        if render is not None:
            master = await asyncio.to_thread(self._load_master, render)
            outcome.resumed = master is not None
        if master is None:
            stats = CallStats()
            request = GenerationRequest(prompt=spec.prompt, negative_prompt=spec.negative_prompt, width=spec.width,
                                        height=spec.height, seed=spec.seed, model=spec.model, params=spec.params,
                                        context={**entry.context(), "style": spec.style})
            try:
                result = await gate.call(request, stats)
            except ProviderError as exc:
                billed = stats.billed_failures_usd + (0.0 if exc.retryable else exc.billed_usd)
                if billed:
                    self.repo.record_billed_failure(entry.id, spec.provider, spec.model, billed, type(exc).__name__)
                exc.attempts = stats.attempts  # type: ignore[attr-defined]
                exc.billed_total = billed  # type: ignore[attr-defined]
                raise
            if stats.billed_failures_usd:
                self.repo.record_billed_failure(entry.id, spec.provider, spec.model, stats.billed_failures_usd, "retried")
                outcome.cost_usd += stats.billed_failures_usd
            outcome.provider_calls = stats.attempts
            outcome.cost_usd += result.cost_usd
            try:
                render, master = await self._store_master(item, provenance, result.data, result.cost_usd, stats,
                                                          result.seed, result.model or spec.model, result.metadata)
            except Exception as exc:  # paid for, but not kept: the ledger and the budget must still see it
                await asyncio.to_thread(self.repo.record_billed_failure, entry.id, spec.provider, spec.model,
                                        result.cost_usd, "store_failed")
                exc.attempts = stats.attempts  # type: ignore[attr-defined]
                exc.billed_total = outcome.cost_usd  # type: ignore[attr-defined]
                raise

        # shielded: a cancelled run never cancels a pool future itself (the pool's own shutdown does that
        # safely); the worker's answer is simply dropped
        future = self.pool.submit(process_master, master, provenance, self.options)
        try:
            processed: Processed = await asyncio.shield(asyncio.wrap_future(future))
        except ImageRejected as exc:
            await asyncio.to_thread(self.repo.reject_render, render.id, f"{exc.code}: {exc.reason}")
            await asyncio.to_thread(self.repo.mark_failed, entry.id, f"image rejected ({exc.code}): {exc.reason}",
                                    retryable=exc.retryable, attempts=1)
            outcome.error = f"image rejected ({exc.code}): {exc.reason}"
            return outcome

        await asyncio.to_thread(self._store_derived, render, processed, item.digest)
        outcome.status = "published"
        return outcome

    # ------------------------------------------------------------------ stages
    def _load_master(self, render: Render) -> bytes | None:
        try:
            data = self.storage.get(render.master_key)
        except StorageError:
            return None
        if hashlib.sha256(data).hexdigest() != render.master_sha256:
            log.warning("master of %s does not match its sha256; regenerating", render.entry_id)
            return None
        return data

    async def _store_master(self, item: PlanItem, provenance: Provenance, data: bytes, cost: float, stats: CallStats,
                            seed: int, model: str, metadata: dict) -> tuple[Render, bytes]:
        fmt = sniff_format(data) or "bin"
        try:
            master = await asyncio.to_thread(embed_xmp, data, xmp_packet(provenance)) if fmt != "bin" else data
        except Exception:  # an undecodable answer is kept as is; validation rejects it
            master = data
        fmt = sniff_format(master) or fmt
        sha = hashlib.sha256(master).hexdigest()
        key = content_key("masters", sha, EXTENSIONS.get(fmt, "bin"))
        await asyncio.to_thread(self.storage.put_if_absent, key, master, content_type=MIME_TYPES.get(fmt, "application/octet-stream"))
        spec = item.spec
        if spec.template_sha not in self._templates:
            self.repo.ensure_template(spec.template_sha, style=item.style.name, version=item.style.version,
                                      positive=item.style.positive, negative=item.style.negative, params=item.style.params)
            self._templates.add(spec.template_sha)
        render = Render(
            entry_id=spec.entry_id, fingerprint=item.fingerprint, status=RenderStatus.generated.value,
            provider=spec.provider, model=model, seed=seed, prompt=spec.prompt, negative_prompt=spec.negative_prompt,
            parameters={**spec.params, "width": spec.width, "height": spec.height}, style=spec.style,
            style_version=spec.style_version, template_sha=spec.template_sha, cost_usd=cost,
            latency_ms=stats.latency_ms, attempts=stats.attempts, provider_metadata=metadata,
            master_sha256=sha, master_key=key, master_format=fmt, master_bytes=len(master),
        )
        return await asyncio.to_thread(self.repo.record_render, render), master

    def _store_derived(self, render: Render, processed: Processed, input_digest: str) -> None:
        d = processed.derived
        variants = []
        for v in d.variants:
            key = f"variants/{v.name}"
            self.storage.put_if_absent(key, v.data, content_type=v.mime)
            variants.append({"width": v.width, "height": v.height, "format": v.format, "key": key, "sha256": v.sha256,
                             "bytes": len(v.data)})
        ph = d.placeholder
        ph_sha = hashlib.sha256(ph.data).hexdigest()
        ph_key = content_key("placeholders", ph_sha, EXTENSIONS[ph.format])
        self.storage.put_if_absent(ph_key, ph.data, content_type=MIME_TYPES[ph.format])
        near = None
        phash = processed.validated.phash
        if phash:
            value = int(phash, 16)
            for other_id, other in self.phashes.items():
                if other_id != render.entry_id and (value ^ other).bit_count() <= NEAR_DUPLICATE_DISTANCE:
                    near = other_id
                    log.warning("%s looks like a near-duplicate of %s", render.entry_id, other_id)
                    break
            self.phashes[render.entry_id] = value
        self.repo.record_derived(
            render.id,
            fields={"width": d.width, "height": d.height, "phash": phash, "near_duplicate_of": near,
                    "blurhash": d.blurhash, "thumbhash": d.thumbhash, "dominant_color": d.dominant_color,
                    "placeholder_key": ph_key, "placeholder_width": ph.width, "placeholder_height": ph.height},
            variants=variants,
            publish=True,
            input_digest=input_digest,
        )
