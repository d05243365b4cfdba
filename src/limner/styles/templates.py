"""Render style templates in a bounded Jinja2 sandbox. Entry text is data, never template code.

The sandbox and its limits are in :mod:`limner.styles.sandbox`; every failure to
compile or render, a broken limit included, is a :class:`StyleError` (exit 2)
naming the style's source, the style, the template and the entry.
"""

from __future__ import annotations

from typing import Any

from jinja2 import Template, TemplateSyntaxError, Undefined, meta, nodes
from jinja2.exceptions import SecurityError, TemplateError
from jinja2.runtime import new_context

from limner.catalog.models import Entry
from limner.errors import StyleError
from limner.styles.models import Style
from limner.styles.sandbox import BoundedSandbox, TemplateLimitError, render_bounded

#: the entry every template is tried on when styles load
_PROBE = Entry(id="limner-probe", title="Title")
#: errors a template can raise while it renders, besides Jinja's own: filters and methods given data they do not
#: take (``{{ loc|dictsort }}`` of a list: AttributeError; ``truncate(0)``: AssertionError; ``cycler()`` of
#: nothing: RuntimeError), for some entries only. Each is the style's error for that entry, never a traceback.
_RUNTIME_ERRORS = (ArithmeticError, TypeError, ValueError, LookupError, AttributeError, AssertionError, RuntimeError)


def _environment() -> BoundedSandbox:
    return BoundedSandbox(autoescape=False, undefined=Undefined, keep_trailing_newline=False)


class _Compiled:
    """A compiled template; one that uses no variables is rendered once and kept as text."""

    def __init__(self, env: BoundedSandbox, source: str) -> None:
        self.env = env
        self.template: Template = env.from_string(source)
        self.constant: str | None = None
        parsed = env.parse(source)
        undeclared = meta.find_undeclared_variables(parsed)
        if not undeclared:
            self.constant = self.render(dict(env.globals))
        #: the names the template reads from outside (an entry's fields, the globals): not those it sets
        #: anywhere itself, which Jinja still counts as read when they are set inside an ``if`` or a loop
        self.variables: frozenset[str] = frozenset(undeclared - {
            n.name for n in parsed.find_all(nodes.Name) if n.ctx in ("store", "param")})

    def render(self, variables: dict[str, Any]) -> str:
        if self.constant is not None:
            return self.constant
        # Template.render() copies the environment's globals ChainMap for every call; with
        # thousands of entries that dominates, so hand the context a prepared dict instead.
        t = self.template
        return render_bounded(lambda: t.root_render_func(  # type: ignore[attr-defined]
            new_context(self.env, t.name, t.blocks, variables, shared=True, globals=None)))


def _failure(exc: BaseException) -> str | None:
    """What went wrong, for a render error; ``None`` for errors that are not the template's."""
    if isinstance(exc, TemplateLimitError):
        return f"over a limit: {exc}"
    if isinstance(exc, SecurityError):
        return f"not allowed in the sandbox: {exc}"
    if isinstance(exc, MemoryError):
        return "ran out of memory"
    if isinstance(exc, RecursionError):
        return "recursed too deeply"
    if isinstance(exc, TemplateError):
        return str(exc)
    if isinstance(exc, _RUNTIME_ERRORS):
        return f"{type(exc).__name__}: {exc}"
    return None


class PromptRenderer:
    """Compiles each style's templates once and renders them for entries."""

    def __init__(self, styles: dict[str, Style]) -> None:
        self._env = _environment()
        self._globals = dict(self._env.globals)
        self._compiled: dict[str, tuple[_Compiled, _Compiled]] = {}
        for style in styles.values():
            self._compiled[style.name] = (self._compile(style, "positive", style.positive),
                                          self._compile(style, "negative", style.negative or ""))

    def _compile(self, style: Style, which: str, source: str) -> _Compiled:
        try:
            compiled = _Compiled(self._env, source)
        except TemplateSyntaxError as exc:
            raise StyleError(f"{style.source}: style {style.name!r}: {which} template error on line {exc.lineno}: {exc.message}") from None
        except (SecurityError, TemplateError, MemoryError, RecursionError, *_RUNTIME_ERRORS) as exc:
            raise StyleError(f"{style.source}: style {style.name!r}: cannot render the {which} template: {_failure(exc)}") from None
        if compiled.constant is None:
            # Try it on the smallest entry, so a template that would blow a limit for any entry
            # (nested loops, ``title * 10**8``) is refused when styles load, before any command works.
            # Other errors depend on the entry's data and are reported for the entry that causes them.
            try:
                compiled.render({**self._globals, **_PROBE.template_vars()})
            except (TemplateLimitError, MemoryError, RecursionError) as exc:
                raise StyleError(
                    f"{style.source}: style {style.name!r}: cannot render the {which} template, "
                    f"even for an entry with only an id and a title: {_failure(exc)}"
                ) from None
            except (TemplateError, *_RUNTIME_ERRORS):
                pass
        return compiled

    def variables(self, style_name: str) -> dict[str, frozenset[str]]:
        """``{"positive": names, "negative": names}``: what each template of the style reads from an entry
        (the names it does not set itself, less the sandbox's globals)."""
        positive_t, negative_t = self._compiled[style_name]
        return {"positive": positive_t.variables - self._globals.keys(),
                "negative": negative_t.variables - self._globals.keys()}

    def render(self, style: Style, entry: Entry) -> tuple[str, str]:
        """Return (prompt, negative prompt). An entry's own ``prompt`` replaces the positive template."""
        positive_t, negative_t = self._compiled[style.name]
        variables = {**self._globals, **entry.template_vars()}
        which = "positive"
        try:
            positive = entry.prompt if entry.prompt else positive_t.render(variables)
            which = "negative"
            negative = negative_t.render(variables)
        except (TemplateError, MemoryError, RecursionError, *_RUNTIME_ERRORS) as exc:
            raise StyleError(
                f"{style.source}: style {style.name!r}: cannot render the {which} template for entry {entry.id!r}: {_failure(exc)}"
            ) from None
        return _tidy(positive), _tidy(negative)


def _tidy(text: str) -> str:
    return " ".join(text.split())
