"""Render style templates in a Jinja2 sandbox. Entry text is data, never template code."""

from __future__ import annotations

from jinja2 import TemplateSyntaxError, Undefined
from jinja2.exceptions import SecurityError, TemplateError
from jinja2.sandbox import ImmutableSandboxedEnvironment

from limner.catalog.models import Entry
from limner.errors import StyleError
from limner.styles.models import Style


def _environment() -> ImmutableSandboxedEnvironment:
    env = ImmutableSandboxedEnvironment(autoescape=False, undefined=Undefined, keep_trailing_newline=False)
    return env


class PromptRenderer:
    """Compiles each style's templates once and renders them for entries."""

    def __init__(self, styles: dict[str, Style]) -> None:
        self._env = _environment()
        self._compiled = {}
        for style in styles.values():
            try:
                self._compiled[style.name] = (
                    self._env.from_string(style.positive),
                    self._env.from_string(style.negative or ""),
                )
            except TemplateSyntaxError as exc:
                raise StyleError(f"{style.source}: style {style.name!r}: template error on line {exc.lineno}: {exc.message}") from None

    def render(self, style: Style, entry: Entry) -> tuple[str, str]:
        """Return (prompt, negative prompt). An entry's own ``prompt`` replaces the positive template."""
        positive_t, negative_t = self._compiled[style.name]
        variables = entry.template_vars()
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
