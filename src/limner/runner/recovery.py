"""Paid images that could not be stored or recorded: what records them (:class:`Kept`), and the recovery folder.

When storing a master or recording its render fails after the provider answered (storage full or
unreachable, database disk full), the image is not thrown away, and the run stops starting new paid calls.
Its bytes and what is needed to record it (entry, fingerprint, cost, seed, model, ledger line) go to the
database first (``kept_images``, written with its ledger line: :meth:`limner.db.repository.Repository.keep_image`),
where a run on any host sharing the database finds them. Only when the database cannot take them either (its
disk is full, it is gone) do they go to this host's ``.limner/recovery/``, which only runs on this host read.
The next run that claims the entry records the kept image as if it had just come from the provider, and removes
it (the database's row in the commit that records the render; the folder's files after it): that image is
never paid for again.

Files: ``<entry id>.<sha256>.img`` (the bytes exactly as the provider sent them) and ``<entry id>.<sha256>.json``
(what to record), written with a temporary name and renamed, so a half-written pair is never adopted. The
entry is part of the name: two entries given the same bytes keep a pair each.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

log = logging.getLogger("limner.runner")


@dataclass(frozen=True)
class Kept:
    """What is needed to record a kept image as the render of its entry."""

    entry_id: str
    fingerprint: str
    provider: str
    model: str
    seed: int
    cost_usd: float
    sha256: str
    call_id: int | None = None
    external_id: str | None = None
    metadata: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_record(cls, record: dict[str, Any]) -> Kept:
        """From what :func:`dataclasses.asdict` made of one (a field it does not know is left out)."""
        return cls(**{f.name: record[f.name] for f in fields(cls) if f.name in record})

    @property
    def stem(self) -> str:
        """The name of its pair of files, without the suffix."""
        return f"{self.entry_id}.{self.sha256}"


class RecoveryFolder:
    def __init__(self, path: Path) -> None:
        self.path = path
        self._index: dict[tuple[str, str], Kept] | None = None

    def keep(self, data: bytes, kept: Kept) -> Path:
        """Write the image and its record (raises ``OSError`` when even the local disk refuses)."""
        self.path.mkdir(parents=True, exist_ok=True)
        image = self.path / f"{kept.stem}.img"
        record = self.path / f"{kept.stem}.json"
        for target, payload in ((image, data), (record, json.dumps(asdict(kept), sort_keys=True).encode())):
            tmp = target.with_suffix(target.suffix + ".tmp")
            with open(tmp, "wb") as fh:
                fh.write(payload)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, target)
        if self._index is not None:
            self._index[(kept.entry_id, kept.fingerprint)] = kept
        return image

    def _load(self) -> dict[tuple[str, str], Kept]:
        if self._index is None:
            self._index = {}
            self._read("")
        return self._index

    def _read(self, prefix: str) -> None:
        """Add the pairs whose names start with ``prefix`` to the index."""
        assert self._index is not None
        if not self.path.is_dir():
            return
        for record in sorted(self.path.glob("*.json")):
            if not record.name.startswith(prefix):
                continue
            try:
                kept = Kept(**json.loads(record.read_text()))
            except (OSError, ValueError, TypeError) as exc:
                log.warning("recovery: cannot read %s (%s); left in place", record, exc)
                continue
            if (self.path / f"{kept.stem}.img").is_file():
                self._index[(kept.entry_id, kept.fingerprint)] = kept

    def __len__(self) -> int:
        return len(self._load())

    def find(self, entry_id: str, fingerprint: str, *, fresh: bool = False) -> Kept | None:
        """The image kept for this entry and spec. ``fresh``: read the folder again for this entry first (the
        folder is read once per run; another run on this host may have kept it since: an entry it left with a
        paid call open)."""
        if fresh:
            self._load()
            self._read(f"{entry_id}.")
        return self._load().get((entry_id, fingerprint))

    def read(self, kept: Kept) -> bytes | None:
        """The kept bytes, or None if they are missing or do not match their hash."""
        try:
            data = (self.path / f"{kept.stem}.img").read_bytes()
        except OSError:
            return None
        return data if hashlib.sha256(data).hexdigest() == kept.sha256 else None

    def adopted(self, kept: Kept) -> None:
        """The image is stored and recorded: forget it."""
        self._load().pop((kept.entry_id, kept.fingerprint), None)
        for suffix in (".json", ".img"):
            try:
                (self.path / f"{kept.stem}{suffix}").unlink()
            except FileNotFoundError:
                pass
