"""Bounds on the work a catalogue can ask for, checked while it is read and before anything runs.

* Nesting: lists and mappings inside an entry may be at most :data:`MAX_DEPTH`
  levels deep, the entry itself being level 1 (a ``tags`` list is level 2).
* YAML aliases: an alias (``*name``) repeats what its anchor holds. The values
  that aliases repeat, counted over the entries read so far, may not exceed
  :data:`MAX_ALIAS_REPEATS` or the number of values the entries hold themselves,
  whichever is larger. A "billion laughs" document (aliases of aliases) is
  refused after a few hundred values are counted, without expanding anything.
  An alias inside its own anchor (a recursive structure) is refused.
* Duplicate keys: a YAML mapping that gives a key twice is refused (YAML would keep
  the last value and drop the first silently); see :func:`duplicate_keys`.
"""

from __future__ import annotations

import re
from itertools import chain
from typing import Any

import yaml

MAX_DEPTH = 32
MAX_ALIAS_REPEATS = 100_000

_ON_PATH = (-1, -1)


class TooDeep(Exception):
    pass


class Recursive(Exception):
    pass


class DuplicateKey(Exception):
    """A mapping gives one key twice: YAML would keep the last value and drop the first without a word."""

    def __init__(self, key: str, line: int, first: int) -> None:
        super().__init__(key)
        #: the key, the (1-based) line of its second occurrence, and of its first
        self.key, self.line, self.first = key, line, first


_MERGE_TAG = "tag:yaml.org,2002:merge"


def duplicate_keys(node: yaml.MappingNode) -> list[tuple[yaml.ScalarNode, int]]:
    """The scalar keys a mapping node gives again, each with the line of its first occurrence.

    Merge keys (``<<``) are left out: a value merged in may be given again on purpose (that is what
    merging is for), and merged mappings are not this node's own keys.
    """
    seen: dict[str, int] = {}
    again: list[tuple[yaml.ScalarNode, int]] = []
    for key, _ in node.value:
        if type(key) is not yaml.ScalarNode or key.tag == _MERGE_TAG:
            continue
        first = seen.get(key.value)
        if first is None:
            seen[key.value] = key.start_mark.line + 1
        else:
            again.append((key, first))
    return again


def _check_keys(node: yaml.Node) -> None:
    if type(node) is yaml.MappingNode:
        again = duplicate_keys(node)
        if again:
            key, first = again[0]
            raise DuplicateKey(key.value, key.start_mark.line + 1, first)


class NodeMeter:
    """Measures composed YAML nodes without expanding aliases: each collection node is walked once."""

    def __init__(self) -> None:
        self._memo: dict[int, tuple[int, int]] = {}
        #: values (nodes) the walked entries hold themselves
        self.own = 0
        #: values repeated by aliases
        self.repeated = 0

    @property
    def over_budget(self) -> bool:
        return self.repeated > max(MAX_ALIAS_REPEATS, self.own)

    def measure(self, root: yaml.Node, levels: int = MAX_DEPTH - 1) -> tuple[int, int]:
        """``(values, depth)`` of a node as if its aliases were expanded; a scalar is ``(1, 0)``.

        Raises :class:`TooDeep` when lists and mappings nest more than ``levels`` deep,
        :class:`Recursive` for an alias inside its own anchor, and :class:`DuplicateKey` for a mapping
        that gives a key twice.
        """
        if type(root) is yaml.ScalarNode:
            self.own += 1
            return 1, 0
        memo = self._memo
        got = memo.get(id(root))
        if got is not None:
            if got is _ON_PATH:
                raise Recursive
            if got[1] > levels:
                raise TooDeep
            self.repeated += got[0]
            return got
        _check_keys(root)
        memo[id(root)] = _ON_PATH
        self.own += 1
        # [node, iterator over its children, values so far, deepest child so far]
        frames: list[list[Any]] = [[root, _children(root), 1, 0]]
        result = (1, 1)
        try:
            while frames:
                frame = frames[-1]
                for child in frame[1]:
                    if type(child) is yaml.ScalarNode:
                        self.own += 1
                        frame[2] += 1
                        continue
                    got = memo.get(id(child))
                    if got is None:
                        if len(frames) >= levels:
                            raise TooDeep
                        _check_keys(child)
                        memo[id(child)] = _ON_PATH
                        self.own += 1
                        frames.append([child, _children(child), 1, 0])
                        break
                    if got is _ON_PATH:
                        raise Recursive
                    if len(frames) + got[1] > levels:
                        raise TooDeep
                    self.repeated += got[0]
                    frame[2] += got[0]
                    frame[3] = max(frame[3], got[1])
                else:
                    frames.pop()
                    result = (frame[2], frame[3] + 1)
                    memo[id(frame[0])] = result
                    if frames:
                        parent = frames[-1]
                        parent[2] += result[0]
                        parent[3] = max(parent[3], result[1])
        except (TooDeep, Recursive, DuplicateKey):
            for frame in frames:  # not measured: forget them, so a later alias to them is not taken for recursion
                memo.pop(id(frame[0]), None)
            raise
        return result


def _children(node: yaml.Node) -> Any:
    if isinstance(node, yaml.MappingNode):
        return chain.from_iterable(node.value)
    return iter(node.value)


def too_deep(value: Any, levels: int = MAX_DEPTH - 1) -> bool:
    """Whether lists and mappings in ``value`` (a parsed JSON value) nest more than ``levels`` deep."""
    if not isinstance(value, (list, dict)):
        return False
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if depth > levels:
            return True
        for child in item.values() if isinstance(item, dict) else item:
            if isinstance(child, (list, dict)):
                stack.append((child, depth + 1))
    return False


_JSON_TOKEN = re.compile(r'"(?:[^"\\]|\\.)*"|[\[\]{}]', re.DOTALL)


def deep_json_line(text: str, levels: int) -> int | None:
    """The line where brackets in JSON text first nest more than ``levels`` deep (only called on an error)."""
    depth = 0
    for m in _JSON_TOKEN.finditer(text):
        ch = m.group()[0]
        if ch in "[{":
            depth += 1
            if depth > levels:
                return text.count("\n", 0, m.start()) + 1
        elif ch in "]}":
            depth -= 1
    return None
