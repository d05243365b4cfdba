"""Read a YAML catalogue: a list of entries, or a mapping with ``entries:``.

Each entry is measured as YAML nodes before it is built, so deep nesting, duplicate keys and alias bombs are
refused without expanding anything (:mod:`limner.catalog.limits`)."""

from __future__ import annotations

from typing import Any

import yaml

from limner.catalog.limits import MAX_ALIAS_REPEATS, MAX_DEPTH, DuplicateKey, NodeMeter, Recursive, TooDeep
from limner.catalog.messages import EMPTY, TOO_DEEP, duplicate_entries, duplicate_field, duplicate_key, long_number
from limner.catalog.reading import Raw, Reading

try:  # libyaml is much faster when the wheel carries it
    _BaseLoader: Any = yaml.CSafeLoader
except AttributeError:  # pragma: no cover
    _BaseLoader = yaml.SafeLoader


class _YamlLoader(_BaseLoader):  # type: ignore[misc,valid-type]
    """The safe loader, but an impossible unquoted date (``2023-02-30``) stays the text as written: YAML's own
    conversion raised a bare ``ValueError`` that names no line. Possible ones are converted as before, and
    :func:`limner.catalog.checks.validate` turns them back into ISO text where a field is text (``date``, ``title``, ...)."""


def _timestamp(loader: Any, node: yaml.Node) -> Any:
    try:
        return yaml.constructor.SafeConstructor.construct_yaml_timestamp(loader, node)
    except ValueError:
        return loader.construct_scalar(node)


_YamlLoader.add_constructor("tag:yaml.org,2002:timestamp", _timestamp)


class _LongYamlNumber(Exception):
    """An integer longer than Python reads from text (``sys.get_int_max_str_digits()``), at ``node``."""

    def __init__(self, node: yaml.Node) -> None:
        self.node = node


def _int(loader: Any, node: yaml.Node) -> Any:
    try:
        return yaml.constructor.SafeConstructor.construct_yaml_int(loader, node)
    except ValueError:  # a bare ValueError naming no line, from int()
        raise _LongYamlNumber(node) from None


_YamlLoader.add_constructor("tag:yaml.org,2002:int", _int)


_NUMBER_TAGS = ("tag:yaml.org,2002:int", "tag:yaml.org,2002:float")
_MERGE_TAG = "tag:yaml.org,2002:merge"
_MappingNode, _ScalarNode = yaml.MappingNode, yaml.ScalarNode
#: fields whose value is text that YAML 1.1 reads as a number when it has a colon (``16:9`` is 16*60+9)
_SEXAGESIMAL_HINT = frozenset({"aspect", "date", "title", "era", "description", "prompt", "style", "provider", "alt"})


def read_yaml(text: str, ctx: Reading) -> list[Raw]:
    loader = _YamlLoader(text)
    try:
        try:
            root = loader.get_single_node()
        except yaml.MarkedYAMLError as exc:
            mark = exc.problem_mark or exc.context_mark
            problem = exc.problem or exc.context or ""
            if "nesting depth" in problem:
                problem = f"{problem}: {TOO_DEEP}"
            ctx.add(mark.line + 1 if mark else None, None, None, f"invalid YAML: {problem}")
            return []
        except yaml.YAMLError as exc:
            ctx.add(None, None, None, f"invalid YAML: {exc}")
            return []
        except RecursionError:  # the pure-Python composer, without libyaml's own depth limit
            ctx.add(None, None, None, f"invalid YAML: {TOO_DEEP}")
            return []
        items = _entries_node(root, ctx)
        meter = NodeMeter()
        raws = []
        for node in items:
            line = node.start_mark.line + 1
            checked = _measure_entry(node, line, meter, ctx)
            if checked is None:
                if meter.over_budget:
                    break  # the budget is spent for good: further entries would only repeat the problem
                continue
            field_lines, hints = checked
            try:
                data = loader.construct_object(node, deep=True)
            except yaml.YAMLError as exc:
                ctx.add(line, None, None, f"invalid YAML: {exc}")
                continue
            except _LongYamlNumber as exc:
                # construction stopped half way: forget it, so a later alias of these nodes is built afresh
                loader.recursive_objects.clear()
                loader.state_generators = []
                ctx.add(exc.node.start_mark.line + 1, _node_id(node), _field_holding(node, exc.node),
                        long_number(len(exc.node.value.lstrip("+-").replace("_", ""))))
                continue
            raws.append(Raw(data, line, field_lines, hints=hints, check_values=True))
        return raws
    finally:
        loader.dispose()


def _measure_entry(node: yaml.Node, line: int, meter: NodeMeter,
                   ctx: Reading) -> tuple[dict[str, int], dict[str, str]] | None:
    """Field lines and hints of an entry node, or ``None`` after reporting a nesting or alias problem.

    Runs before the entry is constructed, so an alias bomb is never expanded.
    """
    if type(node) is not _MappingNode:
        return ({}, {}) if _measured(node, line, node, None, meter, ctx, MAX_DEPTH) else None
    field_lines: dict[str, int] = {}
    hints: dict[str, str] = {}
    pairs = node.value
    own = 1
    given_twice = False
    for key, value in pairs:
        if type(key) is _ScalarNode:
            name = key.value
            first = field_lines.get(name)
            if first is not None and key.tag != _MERGE_TAG:  # YAML would keep the last value without a word
                ctx.add(key.start_mark.line + 1, _node_id(node), name, duplicate_field(first))
                given_twice = True
            else:
                field_lines[name] = key.start_mark.line + 1
        else:
            name = None
            if not _measured(key, key.start_mark.line + 1, node, None, meter, ctx, MAX_DEPTH - 1):
                return None
        if type(value) is _ScalarNode:
            own += 2
            if name in _SEXAGESIMAL_HINT and not value.style and value.tag in _NUMBER_TAGS and ":" in value.value:
                hints[name] = value.value
            continue
        own += 1
        if not _measured(value, key.start_mark.line + 1, node, name, meter, ctx, MAX_DEPTH - 1):
            return None
    meter.own += own
    return None if given_twice else (field_lines, hints)


def _measured(node: yaml.Node, line: int, entry: yaml.Node, name: str | None, meter: NodeMeter,
              ctx: Reading, levels: int) -> bool:
    """Measure one value of an entry; report (and return False) when it is too deep or too repetitive."""
    problem = None
    try:
        meter.measure(node, levels)
    except TooDeep:
        problem = TOO_DEEP
    except Recursive:
        problem = "a YAML alias refers to the anchor it is inside (a recursive structure)"
    except DuplicateKey as exc:
        line, problem = exc.line, duplicate_key(exc.key, exc.first)
    else:
        if meter.over_budget:
            problem = (f"YAML aliases repeat more than {max(MAX_ALIAS_REPEATS, meter.own):,} values "
                       f"(aliases of aliases, as in a 'billion laughs' document); write the values out")
    if problem is None:
        return True
    ctx.add(line, _node_id(entry), name, problem)
    return False


def _field_holding(entry: yaml.Node, target: yaml.Node) -> str | None:
    """The field of an entry node whose value holds ``target`` (a problem was found there), if any."""
    if type(entry) is not _MappingNode:
        return None
    for key, value in entry.value:
        if type(key) is not _ScalarNode:
            continue
        seen: set[int] = set()
        stack = [value]
        while stack:
            node = stack.pop()
            if node is target:
                return str(key.value)
            if id(node) in seen:
                continue
            seen.add(id(node))
            if type(node) is _MappingNode:
                stack.extend(part for pair in node.value for part in pair)
            elif type(node) is yaml.SequenceNode:
                stack.extend(node.value)
    return None


def _node_id(node: yaml.Node) -> str | None:
    if type(node) is _MappingNode:
        for key, value in node.value:
            if type(key) is _ScalarNode and key.value == "id" and type(value) is _ScalarNode:
                return str(value.value)
    return None


def _entries_node(root: Any, ctx: Reading) -> list[Any]:
    if root is None:
        ctx.add(None, None, None, EMPTY)
        return []
    if isinstance(root, yaml.SequenceNode):
        return list(root.value)
    if isinstance(root, yaml.MappingNode):
        found = [(key, value) for key, value in root.value if isinstance(key, yaml.ScalarNode) and key.value == "entries"]
        if len(found) > 1:  # which list was meant? YAML would take the last one without a word
            ctx.add(found[1][0].start_mark.line + 1, None, "entries", duplicate_entries(found[0][0].start_mark.line + 1))
            return []
        if found:
            value = found[0][1]
            if isinstance(value, yaml.SequenceNode):
                return list(value.value)
            ctx.add(value.start_mark.line + 1, None, "entries", "must be a list of entries")
            return []
    ctx.add(root.start_mark.line + 1, None, None, "expected a list of entries or a mapping with 'entries:'")
    return []
