"""Near-duplicate detection: exact against brute force, sub-linear, one owner, a tunable threshold."""

from __future__ import annotations

import random

import pytest

from limner.runner.neardup import MAX_DISTANCE, NearDuplicateIndex


def flip(value: int, bits: int, rng: random.Random) -> int:
    for b in rng.sample(range(64), bits):
        value ^= 1 << b
    return value


def brute(hashes: dict[str, int], entry_id: str, value: int, d: int) -> tuple[str, int] | None:
    found = [(bin(value ^ v).count("1"), k) for k, v in hashes.items() if k != entry_id]
    found = [f for f in found if f[0] <= d]
    return (min(found)[1], min(found)[0]) if found else None


@pytest.mark.parametrize("distance", [0, 1, 4, 6, 10, 16])
def test_lookups_agree_with_brute_force(distance):
    rng = random.Random(distance)
    hashes = {f"e{i}": rng.getrandbits(64) for i in range(2_000)}
    index = NearDuplicateIndex(distance, hashes.items())
    probes = [flip(hashes[f"e{rng.randrange(2_000)}"], rng.randint(0, distance + 3), rng) for _ in range(300)]
    probes += [rng.getrandbits(64) for _ in range(100)]
    for n, value in enumerate(probes):
        assert index.nearest(f"new{n}", value) == brute(hashes, f"new{n}", value, distance)


def test_a_lookup_is_sub_linear_in_the_published_images():
    rng = random.Random(7)
    index = NearDuplicateIndex(4, ((f"e{i}", rng.getrandbits(64)) for i in range(100_000)))
    assert len(index) == 100_000
    for n in range(100):
        index.check_and_add(f"new{n}", f"{rng.getrandbits(64):016x}")
    # a linear scan costs 100,000 comparisons per image; the index a few hundred at most
    assert index.comparisons / 100 < 500, index.comparisons / 100


def test_check_and_add_flags_then_indexes_and_replaces_an_entrys_own_hash():
    index = NearDuplicateIndex(4)
    assert index.check_and_add("a", "ffff0000ffff0000") is None
    assert index.check_and_add("b", "ffff0000ffff0007") == "a"  # 3 bits apart
    assert index.check_and_add("c", "0000ffff0000ffff") is None
    # a new image of "a" replaces its old hash: it is not its own duplicate, and the old hash is gone
    assert index.check_and_add("a", "0000ffff0000fff0") == "c"
    assert index.nearest("z", 0xFFFF0000FFFF0000) == ("b", 3)
    assert index.check_and_add("d", None) is None and len(index) == 3


def test_the_threshold_is_bounded():
    with pytest.raises(ValueError):
        NearDuplicateIndex(MAX_DISTANCE + 1)
    with pytest.raises(ValueError):
        NearDuplicateIndex(-1)
