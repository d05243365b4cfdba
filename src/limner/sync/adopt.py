"""Adopt hand-made images (``frontend/public/images/events/<id>.jpg`` and the like) as published "legacy" renders.

Until real images replace them, an app keeps what it had: each file whose name (without extension) is a
catalogue id is stored as a content-addressed master, run through the normal validation and derivation
(variants, placeholder, blurhash, ...), recorded as a render with ``provider="legacy"``, ``model="adopted"``,
cost 0 (no ledger line: nothing was paid), and published.

Adopted entries are *stale* for the planner, so the next ``limner generate`` replaces them: their
published fingerprint is :data:`LEGACY_FINGERPRINT`, 64 zeros (the manifest schema wants 64 hex digits),
which no spec ever hashes to, and no input digest is recorded, so ``plan`` always compares fingerprints
and finds them changed. ``check-missing`` counts them as present (they have a published image).

Adopting is idempotent: entries already published (adopted or generated) are skipped; an adopt stopped
half-way resumes from the render it recorded.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from limner.db.models import Render, RenderStatus
from limner.errors import ConfigError
from limner.imaging import ImageRejected, Provenance, inspect_image, sniff_format
from limner.storage import content_key
from limner.storage.base import EXTENSIONS, MIME_TYPES

if TYPE_CHECKING:
    from limner.catalog import Entry
    from limner.project import Project
    from limner.runner.imaging_task import Processed

log = logging.getLogger("limner.adopt")

LEGACY_PROVIDER = "legacy"
LEGACY_MODEL = "adopted"
#: the fingerprint of every adopted render: shaped like a real one, equal to none
LEGACY_FINGERPRINT = "0" * 64
LEGACY_STYLE_VERSION = "legacy"
LEGACY_TEMPLATE = {"style": "legacy", "version": "1", "positive": "", "negative": "", "params": {}}
LEGACY_TEMPLATE_SHA = hashlib.sha256(b"limner:legacy-template:1").hexdigest()
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".webp", ".avif")


@dataclass
class AdoptResult:
    directory: str
    dry_run: bool = False
    #: image files looked at
    files: int = 0
    #: ids adopted (or, with dry_run, that would be)
    adopted: list[str] = field(default_factory=list)
    #: {"id", "file", "reason"}: "published" (has a generated image), "adopted" (adopted before),
    #: "held" (a live run is generating it), "duplicate" (another file with the same id was larger and used instead)
    skipped: list[dict[str, str]] = field(default_factory=list)
    #: files whose name is not a catalogue id
    unknown: list[str] = field(default_factory=list)
    #: {"id", "file", "error"}: unreadable or rejected images
    failed: list[dict[str, str]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {"directory": self.directory, "dry_run": self.dry_run, "files": self.files, "adopted": self.adopted,
                "skipped": self.skipped, "unknown": self.unknown, "failed": self.failed}


def _candidates(directory: Path) -> dict[str, list[Path]]:
    found: dict[str, list[Path]] = {}
    for path in sorted(directory.iterdir()):
        if path.name.startswith(".") or not path.is_file() or path.suffix.lower() not in IMAGE_SUFFIXES:
            continue
        found.setdefault(path.stem, []).append(path)
    return found


def _pick(paths: list[Path], max_bytes: int, max_pixels: int) -> tuple[Path | None, list[Path], str | None]:
    """The largest decodable image (most pixels, then most bytes); the others; an error if none decodes."""
    sized: list[tuple[int, int, Path]] = []
    error = None
    for path in paths:
        try:
            data = path.read_bytes()
            info = inspect_image(data, max_bytes=max_bytes, max_pixels=max_pixels)
        except ImageRejected as exc:
            error = f"{path.name}: {exc.reason}"
            continue
        except OSError as exc:
            error = f"{path.name}: {exc.strerror}"
            continue
        sized.append((info.width * info.height, len(data), path))
    if not sized:
        return None, [], error or "no readable image"
    sized.sort(key=lambda t: (t[0], t[1]), reverse=True)
    best = sized[0][2]
    return best, [p for p in paths if p != best], None


def adopt_placeholders(project: Project, directory: str | Path, *, dry_run: bool = False) -> AdoptResult:
    """Adopt every image in ``directory`` named after a catalogue entry that has no published image yet."""
    folder = project.settings.path(directory)
    if not folder.is_dir():
        raise ConfigError(f"{folder}: not a folder of images")
    result = AdoptResult(directory=str(folder), dry_run=dry_run)
    candidates = _candidates(folder)
    result.files = sum(len(v) for v in candidates.values())
    catalog = project.catalog.by_id()
    repo = project.repo
    statuses = repo.entry_statuses()
    providers = repo.published_providers()
    g = project.settings.generate
    todo: list[tuple[Entry, Path]] = []
    for entry_id, paths in sorted(candidates.items()):
        if entry_id not in catalog:
            result.unknown.extend(p.name for p in paths)
            continue
        status = statuses.get(entry_id)
        if status is not None and status.published_fingerprint:
            reason = "adopted" if providers.get(entry_id) == LEGACY_PROVIDER else "published"
            result.skipped.extend({"id": entry_id, "file": p.name, "reason": reason} for p in paths)
            continue
        best, others, error = _pick(paths, g.max_image_bytes, g.max_image_pixels)
        result.skipped.extend({"id": entry_id, "file": p.name, "reason": "duplicate"} for p in others)
        if best is None:
            result.failed.append({"id": entry_id, "file": ", ".join(p.name for p in paths), "error": error or ""})
            continue
        todo.append((catalog[entry_id], best))

    if dry_run:
        result.adopted = [entry.id for entry, _ in todo]
        return result
    if not todo:
        return result

    from limner.runner.claims import RunIdentity
    from limner.runner.run import derive_options

    options = derive_options(project)
    me = RunIdentity()  # adopting is a run: it claims each entry as a unit of work does, so no run pays for
    repo.start_run(me.id, me.host, me.pid, kind="adopt", scope=me.scope, process_start=me.process_start)  # one it is adopting, nor it the reverse
    try:
        for entry, path in todo:
            try:  # checked before the entry is claimed: a rejected image leaves the entry as it was
                data, processed = _process(entry, path, options)
            except ImageRejected as exc:
                result.failed.append({"id": entry.id, "file": path.name, "error": f"image rejected ({exc.code}): {exc.reason}"})
                continue
            taken = _take(project, me, entry)
            if taken is not None:  # a run holds it, or published an image since the statuses were read
                result.skipped.append({"id": entry.id, "file": path.name, "reason": taken})
                continue
            _adopt_one(project, entry, path, data, processed)
            result.adopted.append(entry.id)
            log.info("adopted %s from %s", entry.id, path.name)
    finally:
        repo.end_run(me.id)  # what it claimed and did not publish goes back (Repository.end_run)
    return result


def _take(project: Project, me: Any, entry: Entry) -> str | None:
    """Claim ``entry`` for the adopting run; None when taken and still without a published image, else why
    not: ``held`` (a live run is generating it) or ``published`` (an image was published meanwhile)."""
    from limner.db.tables import utcnow

    repo = project.repo
    repo.ensure_entry(entry.id, entry.title, project.style_for(entry).name)
    claim = repo.claim(entry.id, LEGACY_FINGERPRINT, me.id)
    if claim.status == "held" and me.holder_is_gone(claim.holder, utcnow()):
        if claim.holder is not None:  # a dead run: free its entries, then try again
            repo.end_run(claim.holder.id)
        claim = repo.claim(entry.id, LEGACY_FINGERPRINT, me.id)
    if claim.status != "claimed":
        return claim.status
    status = repo.entry_status(entry.id)
    if status is not None and status.published_fingerprint:  # claimed after a run published it: leave it
        repo.release_claim(entry.id, me.id)
        return "published"
    return None


def _process(entry: Entry, path: Path, options: Any) -> tuple[bytes, Processed]:
    """The file's bytes, validated and derived as a generated image's (raises ``ImageRejected``)."""
    from limner.runner.imaging_task import process_master

    data = path.read_bytes()
    provenance = Provenance(entry_id=entry.id, title=entry.title, prompt="", model=LEGACY_MODEL, provider=LEGACY_PROVIDER,
                            seed=0, alt=entry.alt_text)
    return data, process_master(data, provenance, options)


def _adopt_one(project: Project, entry: Entry, path: Path, data: bytes, processed: Processed) -> None:
    fmt = sniff_format(data) or "bin"
    storage, repo = project.storage, project.repo
    sha = hashlib.sha256(data).hexdigest()
    master_key = content_key("masters", sha, EXTENSIONS.get(fmt, "bin"))
    storage.put_if_absent(master_key, data, content_type=MIME_TYPES.get(fmt, "application/octet-stream"))

    render = repo.adopted_render_for(entry.id, LEGACY_FINGERPRINT, sha)
    if render is None:
        d = processed.derived
        render = repo.adopt_render(
            Render(entry_id=entry.id, fingerprint=LEGACY_FINGERPRINT, status=RenderStatus.generated.value,
                   provider=LEGACY_PROVIDER, model=LEGACY_MODEL, seed=0, prompt="", negative_prompt="",
                   parameters={"width": d.width, "height": d.height}, style=project.style_for(entry).name,
                   style_version=LEGACY_STYLE_VERSION, template_sha=LEGACY_TEMPLATE_SHA, cost_usd=0.0, latency_ms=0,
                   attempts=0, provider_metadata={"adopted_from": path.name, "source_bytes": len(data)},
                   master_sha256=sha, master_key=master_key, master_format=fmt, master_bytes=len(data)),
            title=entry.title, style=project.style_for(entry).name, template=LEGACY_TEMPLATE,
        )
    _store_derived(project, render, processed)


def _store_derived(project: Project, render: Render, processed: Processed) -> None:
    """Store variants and placeholder (content addressed, as a generated render's) and publish, in one commit."""
    storage = project.storage
    d = processed.derived
    variants = []
    for v in d.variants:
        key = f"variants/{v.name}"
        storage.put_if_absent(key, v.data, content_type=v.mime)
        variants.append({"width": v.width, "height": v.height, "format": v.format, "key": key, "sha256": v.sha256,
                         "bytes": len(v.data)})
    ph = d.placeholder
    ph_key = content_key("placeholders", hashlib.sha256(ph.data).hexdigest(), EXTENSIONS[ph.format])
    storage.put_if_absent(ph_key, ph.data, content_type=MIME_TYPES[ph.format])
    project.repo.record_derived(
        render.id,
        fields={"width": d.width, "height": d.height, "phash": processed.validated.phash, "near_duplicate_of": None,
                "blurhash": d.blurhash, "thumbhash": d.thumbhash, "dominant_color": d.dominant_color,
                "placeholder_key": ph_key, "placeholder_width": ph.width, "placeholder_height": ph.height},
        variants=variants,
        publish=True,
        forced=True,  # a person's own image, asked for by name: it replaces a pin, as before
        input_digest=None,  # never equal to a plan's digest: the planner compares fingerprints, and finds it stale
    )
