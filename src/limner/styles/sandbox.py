"""A Jinja2 sandbox that bounds the work a style template can do.

Jinja's :class:`~jinja2.sandbox.ImmutableSandboxedEnvironment` keeps templates
away from Python's internals and from changing values; it does not bound work.
Styles are rendered when they are loaded and for every entry, so a template
with nested loops or ``{{ title * 10**8 }}`` would stall or exhaust every
command. Each render here has a budget:

* ``range()`` gives at most :data:`MAX_RANGE` numbers;
* all ``for`` loops of one render run at most :data:`MAX_LOOP_ITERATIONS`
  times together (recursive loops included);
* no value a template builds (by ``*``, ``+``, ``~``, ``%``, a filter, a
  method or a macro) may exceed :data:`MAX_VALUE` characters or items, and
  together they may not exceed :data:`MAX_BUILT`; numbers may not grow past
  :data:`MAX_INT_BITS` bits; size arguments (``center(width)``,
  ``indent(width)``, ``'{:>9999999}'``, ``'%9999999s'``...) are checked
  before the value is built;
* the rendered text may not exceed :data:`MAX_OUTPUT` characters;
* a render may not take longer than :data:`MAX_RENDER_SECONDS`.

Breaking a limit raises :class:`TemplateLimitError`; the renderer turns it into a
:class:`~limner.errors.StyleError` (exit 2).
"""

from __future__ import annotations

import functools
import math
import re
import string
import time
from collections.abc import Callable, Iterable, Iterator
from contextvars import ContextVar
from itertools import islice
from typing import Any

from jinja2 import nodes
from jinja2.compiler import CodeGenerator, Frame
from jinja2.exceptions import SecurityError
from jinja2.runtime import Context, LoopContext
from jinja2.sandbox import ImmutableSandboxedEnvironment
from jinja2.utils import _PassArg, generate_lorem_ipsum

MAX_RANGE = 1_000
MAX_LOOP_ITERATIONS = 10_000
MAX_VALUE = 1_000_000
MAX_BUILT = 10_000_000
MAX_INT_BITS = 4_096
MAX_OUTPUT = 100_000
MAX_RENDER_SECONDS = 2.0
#: widths and precisions in format strings (``'%9999999s'``, ``'{:>9999999}'``)
MAX_FORMAT_WIDTH = MAX_OUTPUT
#: ``tojson(indent=...)``
MAX_JSON_INDENT = 16
#: ``lipsum(n, html, min, max)``: paragraphs and words per paragraph
MAX_LIPSUM = (20, 1_000)

_SIZED = (str, bytes, list, tuple, dict, set, frozenset)


class TemplateLimitError(SecurityError):
    """A template asked for more work than a render may do."""


class _Deferred(Exception):
    """Raised by bounded filters while Jinja folds constants at compile time: they run at render time."""


class _Budget:
    __slots__ = ("deadline", "iterations", "built")

    def __init__(self) -> None:
        self.deadline = time.monotonic() + MAX_RENDER_SECONDS
        self.iterations = 0
        self.built = 0

    def check_time(self) -> None:
        if time.monotonic() > self.deadline:
            raise TemplateLimitError(f"rendering took longer than {MAX_RENDER_SECONDS:g} seconds")

    def charge(self, value: Any) -> Any:
        if isinstance(value, _SIZED):
            size = len(value)
            _check_size(size)
            self.built += size
            if self.built > MAX_BUILT:
                raise TemplateLimitError(f"the template built more than {MAX_BUILT:,} characters or items in all")
        return value

    def counted(self, iterable: Iterable[Any]) -> Iterator[Any]:
        for item in iterable:
            self.iterations += 1
            if self.iterations > MAX_LOOP_ITERATIONS:
                raise TemplateLimitError(f"loops ran more than {MAX_LOOP_ITERATIONS:,} times")
            if not self.iterations & 63:
                self.check_time()
            yield item


_BUDGET: ContextVar[_Budget | None] = ContextVar("limner_template_budget", default=None)


def _budget() -> _Budget:
    budget = _BUDGET.get()
    if budget is None:
        raise _Deferred
    return budget


def _check_size(size: int, what: str = "a value") -> None:
    if size > MAX_VALUE:
        raise TemplateLimitError(f"{what} would have {size:,} characters or items; the limit is {MAX_VALUE:,}")


def render_bounded(chunks: Callable[[], Iterable[str]]) -> str:
    """Run a template's render function under a fresh budget and join its output, up to :data:`MAX_OUTPUT`."""
    budget = _Budget()
    token = _BUDGET.set(budget)
    try:
        parts: list[str] = []
        append = parts.append
        size = 0
        for chunk in chunks():
            size += len(chunk)
            if size > MAX_OUTPUT:
                raise TemplateLimitError(f"the rendered text is longer than {MAX_OUTPUT:,} characters")
            append(chunk)
            if not len(parts) & 15:
                budget.check_time()
        return "".join(parts)
    finally:
        _BUDGET.reset(token)


# ----------------------------------------------------------------------------- checks before building a value
_PERCENT_SPEC = re.compile(r"%(?:\([^)]*\))?[#0\- +]*(\*|\d+)?(?:\.(\*|\d+))?")
_FORMATTER = string.Formatter()


def _check_width(n: Any, what: str) -> None:
    if isinstance(n, int) and n > MAX_FORMAT_WIDTH:
        raise TemplateLimitError(f"{what} {n:,} is over the limit of {MAX_FORMAT_WIDTH:,}")


def _check_percent_format(text: str | bytes) -> None:
    if isinstance(text, bytes):
        text = text.decode("latin-1")
    for m in _PERCENT_SPEC.finditer(text):
        for part in m.groups():
            if part == "*":
                raise TemplateLimitError("'*' widths in %-formatting are not allowed")
            if part is not None:
                _check_width(int(part), "a %-format width")


def _check_format_string(text: str) -> None:
    for _literal, _field, spec, _conversion in _FORMATTER.parse(text):
        if not spec:
            continue
        if "{" in spec:
            raise TemplateLimitError("nested fields in a format spec are not allowed")
        for digits in re.findall(r"\d+", spec):
            _check_width(int(digits), "a format width")


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _check_binop(operator: str, left: Any, right: Any) -> None:
    if operator == "*":
        for seq, times in ((left, right), (right, left)):
            if isinstance(seq, _SIZED) and isinstance(times, int):
                _check_size(len(seq) * max(times, 0), "a repeated value")
        if _is_int(left) and _is_int(right) and left.bit_length() + right.bit_length() > MAX_INT_BITS:
            raise TemplateLimitError(f"a product of more than {MAX_INT_BITS:,} bits")
    elif operator == "**":
        if _is_int(left) and _is_int(right) and right > 0 and abs(left) > 1 and right * math.log2(abs(left)) > MAX_INT_BITS:
            raise TemplateLimitError(f"a power of more than {MAX_INT_BITS:,} bits")
    elif operator == "+":
        if isinstance(left, _SIZED) and isinstance(right, _SIZED):
            _check_size(len(left) + len(right), "a sum")
    elif operator == "%" and isinstance(left, (str, bytes)):
        _check_percent_format(left)


def _arg(args: tuple[Any, ...], kwargs: dict[str, Any], index: int, name: str, default: Any = None) -> Any:
    if len(args) > index:
        return args[index]
    return kwargs.get(name, default)


def _check_text_method(text: str | bytes, name: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
    """Methods of str and bytes whose result can be far larger than their inputs."""
    if name in ("center", "ljust", "rjust", "zfill"):
        _check_width(_arg(args, kwargs, 0, "width"), f"{name}() width")
    elif name == "expandtabs":
        tabsize = _arg(args, kwargs, 0, "tabsize", 8)
        if isinstance(tabsize, int):
            tab = "\t" if isinstance(text, str) else b"\t"
            _check_size(len(text) + text.count(tab) * max(tabsize, 0), "expandtabs()")  # type: ignore[arg-type]
    elif name == "replace" and len(args) >= 2 and isinstance(args[0], type(text)) and isinstance(args[1], type(text)):
        _check_size(_replaced_size(text, args[0], args[1], _arg(args, kwargs, 2, "count", -1)), "replace()")
    elif name == "join" and args:
        seq = args[0]
        if isinstance(seq, _SIZED):
            _check_size(len(seq) * len(text), "join()")
    elif name in ("translate", "maketrans"):
        raise TemplateLimitError(f"{name}() is not allowed in templates")


def _replaced_size(text: Any, old: Any, new: Any, count: Any) -> int:
    hits = text.count(old) if old else len(text) + 1
    if isinstance(count, int) and count >= 0:
        hits = min(hits, count)
    return len(text) + hits * max(len(new) - len(old), 0)


# ----------------------------------------------------------------------------- filters
#: a filter's check gets the arguments the template gave (the filtered value first; not the context
#: argument Jinja adds for some filters) and may return replacements for them
_Check = Callable[[tuple[Any, ...], dict[str, Any]], "tuple[tuple[Any, ...], dict[str, Any]] | None"]


def _bounded_filter(func: Callable[..., Any], check: _Check | None) -> Callable[..., Any]:
    skip = 0 if _PassArg.from_obj(func) is None else 1  # Jinja passes a context, eval context or environment first

    @functools.wraps(func)  # keeps Jinja's pass_context / pass_eval_context marker
    def bounded(*args: Any, **kwargs: Any) -> Any:
        budget = _budget()
        if check is not None:
            replaced = check(args[skip:], kwargs)
            if replaced is not None:
                args, kwargs = (*args[:skip], *replaced[0]), replaced[1]
        return budget.charge(func(*args, **kwargs))

    return bounded


def _check_center(args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:  # center(value, width=80)
    _check_width(_arg(args, kwargs, 1, "width"), "center width")


def _check_indent(args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:  # indent(s, width=4, first, blank)
    text, width = str(_arg(args, kwargs, 0, "s", "")), _arg(args, kwargs, 1, "width", 4)
    lines = text.count("\n") + 1
    if isinstance(width, int):
        _check_size(len(text) + lines * max(width, 0), "indent()")
    elif isinstance(width, str):
        _check_size(len(text) + lines * len(width), "indent()")


def _check_batch(args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:  # batch(value, linecount, fill_with)
    _check_width(_arg(args, kwargs, 1, "linecount"), "batch size")


def _check_slice(args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:  # slice(value, slices, fill_with)
    slices = _arg(args, kwargs, 1, "slices")
    if isinstance(slices, int) and slices > MAX_RANGE:
        raise TemplateLimitError(f"slice({slices:,}) is over the limit of {MAX_RANGE:,} slices")


def _check_format(args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:  # format(value, *args, **kwargs)
    if args and isinstance(args[0], (str, bytes)):
        _check_percent_format(args[0])


def _check_join(args: tuple[Any, ...], kwargs: dict[str, Any]) -> tuple[tuple[Any, ...], dict[str, Any]] | None:
    # join(value, d="", attribute=None)
    value, sep = _arg(args, kwargs, 0, "value"), _arg(args, kwargs, 1, "d", "")
    replaced = None
    if not isinstance(value, _SIZED) and isinstance(value, Iterable):  # a generator: take it in, up to the limit
        value = list(islice(value, MAX_VALUE + 1))
        if args:
            replaced = ((value, *args[1:]), kwargs)
        else:
            replaced = (args, {**kwargs, "value": value})
    if isinstance(value, _SIZED):
        _check_size(len(value), "join()")
        _check_size(len(value) * len(str(sep)), "join()")
    return replaced


def _check_replace(args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:  # replace(s, old, new, count)
    s, old, new = (str(_arg(args, kwargs, i, name, "")) for i, name in ((0, "s"), (1, "old"), (2, "new")))
    _check_size(_replaced_size(s, old, new, _arg(args, kwargs, 3, "count")), "replace()")


def _check_wordwrap(args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
    # wordwrap(s, width=79, break_long_words=True, wrapstring=None, break_on_hyphens=True)
    text, wrap = str(_arg(args, kwargs, 0, "s", "")), _arg(args, kwargs, 3, "wrapstring")
    width = _arg(args, kwargs, 1, "width", 79)
    if isinstance(width, float) and not math.isfinite(width):  # textwrap never ends a line of NaN width
        raise ValueError(f"wordwrap width must be a finite number, not {width}")
    if wrap is not None:
        _check_size(len(text) * (1 + len(str(wrap))), "wordwrap()")


def _check_tojson(args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:  # tojson(value, indent=None)
    indent = _arg(args, kwargs, 1, "indent")
    if (isinstance(indent, int) and indent > MAX_JSON_INDENT) or (isinstance(indent, str) and len(indent) > MAX_JSON_INDENT):
        raise TemplateLimitError(f"tojson indent over {MAX_JSON_INDENT}")


_FILTER_CHECKS: dict[str, _Check] = {
    "center": _check_center,
    "indent": _check_indent,
    "batch": _check_batch,
    "slice": _check_slice,
    "format": _check_format,
    "join": _check_join,
    "replace": _check_replace,
    "wordwrap": _check_wordwrap,
    "tojson": _check_tojson,
}


def _lipsum(n: int = 5, html: bool = True, min: int = 20, max: int = 100) -> str:  # noqa: A002 - Jinja's names
    if not (isinstance(n, int) and isinstance(max, int)) or n > MAX_LIPSUM[0] or max > MAX_LIPSUM[1]:
        raise TemplateLimitError(f"lipsum() is limited to {MAX_LIPSUM[0]} paragraphs of {MAX_LIPSUM[1]} words")
    return generate_lorem_ipsum(n=n, html=html, min=min, max=max)


def _range(*args: int) -> range:
    numbers = range(*args)
    try:
        size = len(numbers)
    except OverflowError:
        size = MAX_RANGE + 1
    if size > MAX_RANGE:
        raise TemplateLimitError(f"a range of more than {MAX_RANGE:,} numbers")
    return numbers


# ----------------------------------------------------------------------------- the environment
_LOOP_FILTER = "limner_counted"


def _counted(iterable: Any) -> Iterator[Any]:
    """What every ``for`` loop iterates over: its items, counted against the render's budget."""
    return _budget().counted(iterable)


class _CodeGenerator(CodeGenerator):
    def visit_Concat(self, node: nodes.Concat, frame: Frame) -> None:
        # ``a ~ b`` builds a new string: route it through the budget
        self.write("environment.limner_concat((")
        for arg in node.nodes:
            self.visit(arg, frame)
            self.write(", ")
        self.write("))")


class BoundedSandbox(ImmutableSandboxedEnvironment):
    """The immutable sandbox, with every render's work bounded (see the module's doc).

    Render its templates through :func:`render_bounded`, which sets up the budget; the bounded
    operations refuse to run without one (Jinja then leaves them to render time instead of
    folding them into constants when it compiles).
    """

    intercepted_binops = frozenset({"*", "**", "+", "%"})
    code_generator_class = _CodeGenerator

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        self.globals["range"] = _range
        self.globals["lipsum"] = _lipsum
        self.filters = {name: _bounded_filter(func, _FILTER_CHECKS.get(name)) for name, func in self.filters.items()}
        self.filters[_LOOP_FILTER] = _counted

    def _parse(self, source: str, name: str | None, filename: str | None) -> nodes.Template:
        tree = super()._parse(source, name, filename)
        for loop in tree.find_all(nodes.For):  # every loop counts its turns against the budget
            loop.iter = nodes.Filter(loop.iter, _LOOP_FILTER, [], [], None, None, lineno=loop.lineno)
        tree.set_environment(self)
        return tree

    def limner_concat(self, parts: tuple[Any, ...]) -> str:
        texts = [str(p) for p in parts]
        _check_size(sum(map(len, texts)), "a joined string")
        return _budget().charge("".join(texts))

    def concat(self, parts: Iterable[str]) -> str:  # type: ignore[override]
        """Joins what a block (``set``, ``macro``, ``filter``, ``call``) captured."""
        texts = list(parts)
        _check_size(sum(map(len, texts)), "a captured block")
        return _budget().charge("".join(texts))

    def call_binop(self, context: Context, operator: str, left: Any, right: Any) -> Any:
        budget = _budget()
        _check_binop(operator, left, right)
        return budget.charge(super().call_binop(context, operator, left, right))

    def wrap_str_format(self, value: Any) -> Callable[..., str] | None:
        wrapped = super().wrap_str_format(value)
        if wrapped is None:
            return None
        text = value.__self__

        def checked(*args: Any, **kwargs: Any) -> str:
            _check_format_string(text)
            return _budget().charge(wrapped(*args, **kwargs))

        return functools.update_wrapper(checked, value)

    def call(__self, __context: Context, __obj: Any, *args: Any, **kwargs: Any) -> Any:  # noqa: N805 - Jinja's names
        budget = _budget()
        budget.check_time()
        if isinstance(__obj, LoopContext) and args:  # a recursive loop's next level counts too
            args = (budget.counted(args[0]), *args[1:])
        owner = getattr(__obj, "__self__", None)
        if isinstance(owner, (str, bytes)):
            _check_text_method(owner, getattr(__obj, "__name__", ""), args, kwargs)
        elif _is_int(owner) and getattr(__obj, "__name__", "") == "to_bytes":
            _check_width(_arg(args, kwargs, 0, "length", 1), "to_bytes() length")
        for value in args:
            if isinstance(value, _SIZED):
                _check_size(len(value), "an argument")
        return budget.charge(super().call(__context, __obj, *args, **kwargs))
