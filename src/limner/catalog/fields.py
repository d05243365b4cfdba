"""Tell a typo of a known entry field (``styel:``) from a real extra field (``location:``).

Extra fields are a feature, so only names that are plausibly a slip of a known
field are flagged:

* the same name in another case or with ``_``/``-``/spaces (``Title``, ``TAGS``);
* for fields of five letters or more, one edit away (a letter added, dropped,
  changed, or two neighbours swapped: ``styel``, ``titel``, ``promt``,
  ``styles``); for ``provider`` and ``description``, two edits (``decsription``);
* for the four-letter fields (``year``, ``date``, ``tags``, ``seed``), two
  neighbours swapped or a letter dropped (``yaer``, ``tag``); for the
  three-letter ones (``era``, ``alt``), two neighbours swapped (``rea``).

Short names are held to the stricter rule because many real words are one
letter away from them (``data``, ``area``, ``art``, ``speed``).
"""

from __future__ import annotations

from functools import lru_cache

from limner.catalog.models import Entry

KNOWN_FIELDS: tuple[str, ...] = tuple(Entry.model_fields)


def near_miss(name: str, allowed: frozenset[str] = frozenset()) -> str | None:
    """The known field ``name`` is probably a typo of, or ``None`` for a fine extra field."""
    if name in allowed:
        return None
    return _near_miss(name)


@lru_cache(maxsize=4096)
def _near_miss(name: str) -> str | None:
    if name in KNOWN_FIELDS:
        return None
    lower = name.casefold()
    folded = "".join(c for c in lower if c not in "_- ")
    if folded in KNOWN_FIELDS:
        return folded
    best: tuple[int, str] | None = None
    for known in KNOWN_FIELDS:
        d = _distance_if_near(lower, known)
        if d is not None and (best is None or d < best[0]):
            best = (d, known)
    return best[1] if best else None


def _distance_if_near(name: str, known: str) -> int | None:
    n = len(known)
    if n >= 5:
        limit = 2 if n >= 8 else 1
        if abs(len(name) - n) > limit:
            return None
        d = osa_distance(name, known)
        return d if d <= limit else None
    if n >= 3 and len(name) == n and _one_swap(name, known):
        return 1
    if n == 4 and len(name) == 3 and any(known[:i] + known[i + 1:] == name for i in range(n)):
        return 1
    return None


def _one_swap(a: str, b: str) -> bool:
    diff = [i for i in range(len(a)) if a[i] != b[i]]
    return len(diff) == 2 and diff[1] == diff[0] + 1 and a[diff[0]] == b[diff[1]] and a[diff[1]] == b[diff[0]]


def osa_distance(a: str, b: str) -> int:
    """Edit distance counting insertions, deletions, substitutions and swaps of neighbours (each 1)."""
    prev2: list[int] = []
    prev = list(range(len(b) + 1))
    for i in range(1, len(a) + 1):
        cur = [i] + [0] * len(b)
        for j in range(1, len(b) + 1):
            cost = 0 if a[i - 1] == b[j - 1] else 1
            cur[j] = min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + cost)
            if i > 1 and j > 1 and a[i - 1] == b[j - 2] and a[i - 2] == b[j - 1]:
                cur[j] = min(cur[j], prev2[j - 2] + 1)
        prev2, prev = prev, cur
    return prev[len(b)]
