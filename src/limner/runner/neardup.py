"""Near-duplicate detection over perceptual hashes, sub-linear in the number of published images.

A 64-bit perceptual hash of a new image is compared with those already published:
two images whose hashes differ in at most ``max_distance`` bits are near
duplicates. Comparing with every published hash costs one comparison per image
(100,000 for a 100,000-image catalogue); this index uses *multi-index hashing*
instead: the 64 bits are cut into ``max_distance + 1`` bands, and by the
pigeonhole principle two hashes within ``max_distance`` bits agree exactly on at
least one band. A lookup therefore only compares with the hashes that share a
band value with the new one: about ``bands * n / 2**band_bits`` candidates.

The index belongs to the run's event loop: it is read and written in one place
(:meth:`NearDuplicateIndex.check_and_add`), never from worker threads.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable

HASH_BITS = 64
#: the largest threshold the index accepts: past it, bands get so narrow that most hashes collide
MAX_DISTANCE = 16


class NearDuplicateIndex:
    """Perceptual hashes of published images by entry id, with exact Hamming-radius lookups."""

    def __init__(self, max_distance: int, hashes: Iterable[tuple[str, int]] = ()) -> None:
        if not 0 <= max_distance <= MAX_DISTANCE:
            raise ValueError(f"near-duplicate distance must be between 0 and {MAX_DISTANCE}, not {max_distance}")
        self.max_distance = max_distance
        n_bands = max_distance + 1
        # bands of (almost) equal width covering all 64 bits
        edges = [round(i * HASH_BITS / n_bands) for i in range(n_bands + 1)]
        self._bands = [(lo, (1 << (hi - lo)) - 1) for lo, hi in zip(edges, edges[1:])]
        self._tables: list[defaultdict[int, set[str]]] = [defaultdict(set) for _ in self._bands]
        self._hashes: dict[str, int] = {}
        #: hash comparisons made by lookups so far (for tests and benchmarks)
        self.comparisons = 0
        for entry_id, value in hashes:
            self.add(entry_id, value)

    def __len__(self) -> int:
        return len(self._hashes)

    def _keys(self, value: int) -> list[int]:
        return [(value >> lo) & mask for lo, mask in self._bands]

    def add(self, entry_id: str, value: int) -> None:
        """Record (or replace) the hash of an entry's published image."""
        old = self._hashes.get(entry_id)
        if old is not None:
            for table, key in zip(self._tables, self._keys(old)):
                bucket = table.get(key)
                if bucket is not None:
                    bucket.discard(entry_id)
                    if not bucket:
                        del table[key]
        self._hashes[entry_id] = value
        for table, key in zip(self._tables, self._keys(value)):
            table[key].add(entry_id)

    def nearest(self, entry_id: str, value: int) -> tuple[str, int] | None:
        """The closest other entry within ``max_distance`` bits (ties: the smallest id), or None."""
        seen: set[str] = set()
        best: tuple[int, str] | None = None
        for table, key in zip(self._tables, self._keys(value)):
            for other_id in table.get(key, ()):
                if other_id == entry_id or other_id in seen:
                    continue
                seen.add(other_id)
                self.comparisons += 1
                distance = (value ^ self._hashes[other_id]).bit_count()
                if distance <= self.max_distance and (best is None or (distance, other_id) < best):
                    best = (distance, other_id)
        return None if best is None else (best[1], best[0])

    def check_and_add(self, entry_id: str, phash_hex: str | None) -> str | None:
        """The entry id this new image nearly duplicates (or None); then index the new image."""
        if not phash_hex:
            return None
        value = int(phash_hex, 16)
        near = self.nearest(entry_id, value)
        self.add(entry_id, value)
        return near[0] if near else None
