"""Render style templates in a Jinja2 sandbox. Entry text is data, never template code."""

from __future__ import annotations

from typing import Any

from jinja2 import Template, TemplateSyntaxError, Undefined, meta
from jinja2.runtime import new_context
from jinja2.exceptions import SecurityError, TemplateError
from jinja2.sandbox import ImmutableSandboxedEnvironment

from limner.catalog.models import Entry
from limner.errors import StyleError
from limner.styles.models import Style


def _environment() -> ImmutableSandboxedEnvironment:
    env = ImmutableSandboxedEnvironment(autoescape=False, undefined=Undefined, keep_trailing_newline=False)
    return env


class _Compiled:
    """A compiled template; one that uses no variables is rendered once and kept as text."""

    def __init__(self, env: ImmutableSandboxedEnvironment, source: str) -> None:
        self.env = env
        self.template: Template = env.from_string(source)
        self.constant: str | None = None
        if not meta.find_undeclared_variables(env.parse(source)):
            self.constant = self.template.render()

    def render(self, variables: dict[str, Any]) -> str:
        if self.constant is not None:
            return self.constant
        # Template.render() copies the environment's globals ChainMap for every call; with
        # thousands of entries that dominates, so hand the context a prepared dict instead.
        t = self.template
        ctx = new_context(self.env, t.name, t.blocks, variables, shared=True, globals=None)
        return self.env.concat(self.template.root_render_func(ctx))  # type: ignore[attr-defined]


class PromptRenderer:
    """Compiles each style's templates once and renders them for entries."""

    def __init__(self, styles: dict[str, Style]) -> None:
        self._env = _environment()
        self._globals = dict(self._env.globals)
        self._compiled: dict[str, tuple[_Compiled, _Compiled]] = {}
        for style in styles.values():
            try:
                self._compiled[style.name] = (_Compiled(self._env, style.positive), _Compiled(self._env, style.negative or ""))
            except TemplateSyntaxError as exc:
                raise StyleError(f"{style.source}: style {style.name!r}: template error on line {exc.lineno}: {exc.message}") from None
            except (SecurityError, TemplateError, ArithmeticError, TypeError, ValueError, LookupError) as exc:
                raise StyleError(f"{style.source}: style {style.name!r}: cannot render: {type(exc).__name__}: {exc}") from None

    def render(self, style: Style, entry: Entry) -> tuple[str, str]:
        """Return (prompt, negative prompt). An entry's own ``prompt`` replaces the positive template."""
        positive_t, negative_t = self._compiled[style.name]
        variables = {**self._globals, **entry.template_vars()}
        try:
            positive = entry.prompt if entry.prompt else positive_t.render(variables)
            negative = negative_t.render(variables)
        except SecurityError as exc:
            raise StyleError(f"{style.source}: style {style.name!r}: template not allowed in the sandbox: {exc}") from None
        except TemplateError as exc:
            raise StyleError(f"{style.source}: style {style.name!r}: cannot render for entry {entry.id!r}: {exc}") from None
        except (ArithmeticError, TypeError, ValueError, LookupError) as exc:  # e.g. the sandbox's range cap, 1/0
            raise StyleError(
                f"{style.source}: style {style.name!r}: cannot render for entry {entry.id!r}: {type(exc).__name__}: {exc}"
            ) from None
        return _tidy(positive), _tidy(negative)


def _tidy(text: str) -> str:
    return " ".join(text.split())
