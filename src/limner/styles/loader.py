"""Collect styles: built-ins, then ``styles/*.toml`` in the project, then ``[styles.NAME]`` in limner.toml.

Later definitions of the same name replace earlier ones, so a project can restyle a built-in.
"""

from __future__ import annotations

import re
import sys
import tomllib
from pathlib import Path
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from pydantic import ValidationError

from limner.errors import StyleError
from limner.styles.builtin import BUILTIN_STYLES
from limner.styles.models import Style

if TYPE_CHECKING:
    from limner.styles.templates import PromptRenderer


#: an integer in TOML: digits, maybe with a sign and underscores
_TOML_INTEGER = re.compile(r"[+-]?[0-9][0-9_]*")


def _long_number(text: str) -> str:
    """What is wrong with TOML text holding an integer longer than Python reads from text, and where."""
    limit = sys.get_int_max_str_digits()
    for found in _TOML_INTEGER.finditer(text):
        digits = sum(c.isdigit() for c in found.group())
        if digits > limit:
            line = text.count("\n", 0, found.start()) + 1
            return f"a number of {digits:,} digits (at line {line}): more than the {limit:,} digits an integer may have"
    return f"a number of more than the {limit:,} digits an integer may have"  # pragma: no cover


def _key_line(text: str | None, key: str, section: str | None = None) -> int | None:
    """The line of ``key = ...`` in TOML ``text`` (inside the table ``[section]`` when given), or None."""
    if not text:
        return None
    pattern = re.compile(rf"""\s*["']?{re.escape(key)}["']?\s*=""")
    header = re.compile(r"\s*\[")
    inside = section is None
    for number, line in enumerate(text.splitlines(), 1):
        if header.match(line):
            inside = section is not None and line.strip().strip("[]").replace(" ", "") == section
            continue
        if inside and pattern.match(line):
            return number
    return None


def _build(data: dict[str, Any], *, name: str, source: str, path: str | None = None,
           text: Callable[[], str | None] | None = None, section: str | None = None) -> Style:
    """The style of ``data``; a field it does not know or a value it does not take is a :class:`StyleError`
    naming ``path`` and the line of the field (in the table ``section`` of the file ``text()`` reads), with
    "did you mean" for a typo."""
    try:
        return Style.model_validate({**data, "name": data.get("name", name), "source": source})
    except ValidationError as exc:
        from limner.errors import did_you_mean

        errors = exc.errors()
        msgs = []
        for e in errors:
            field = ".".join(map(str, e["loc"])) or "?"
            msg = e["msg"]
            if e["type"] == "extra_forbidden" and len(e["loc"]) == 1:
                known = [f for f in Style.model_fields if f not in ("name", "source")]
                msg = f"unknown field{did_you_mean(str(e['loc'][0]), known)}; see docs/styles.md"
            msgs.append(f"field {field!r}: {msg}")
        # the line of the first error that has one (a required field that is missing has none)
        content = text() if text is not None else None
        lines = (_key_line(content, str(e["loc"][0]), section) for e in errors if e["loc"] and content is not None)
        line = next((n for n in lines if n is not None), None)
        where = source if path is None or line is None else (
            f"{path}:{line}" + (f" [{section}]" if section else ""))
        raise StyleError(f"{where}: style {name!r}: {'; '.join(msgs)}") from None


def load_styles(styles_dir: Path | None = None, inline: dict[str, dict[str, Any]] | None = None, *,
                config_name: str = "limner.toml") -> dict[str, Style]:
    """The built-in styles, then those of ``styles_dir``, then the inline ones; every template is compiled
    (and tried) now, so a broken one is reported before any work starts."""
    styles, _renderer = load_styles_with_renderer(styles_dir, inline, config_name=config_name)
    return styles


def load_styles_with_renderer(styles_dir: Path | None = None, inline: dict[str, dict[str, Any]] | None = None, *,
                              config_name: str = "limner.toml") -> tuple[dict[str, Style], PromptRenderer]:
    """:func:`load_styles`, with the renderer that compiled the templates (compiling them is most of the
    cost of loading styles: a project keeps this one)."""
    styles = {s.name: s for s in BUILTIN_STYLES}
    if styles_dir is not None and styles_dir.is_dir():
        for path in sorted(styles_dir.glob("*.toml")):
            if path.is_dir():
                raise StyleError(f"{path}: a folder, not a style file")
            try:
                data_bytes = path.read_bytes()
            except OSError as exc:  # a link to a file since removed, a file that may not be read
                raise StyleError(f"{path}: cannot read this style file: {exc.strerror}") from None
            try:
                text = data_bytes.decode("utf-8")
            except UnicodeDecodeError as exc:
                line = data_bytes.count(b"\n", 0, exc.start) + 1
                raise StyleError(f"{path}:{line}: not UTF-8 text ({exc.reason} at byte {exc.start}); "
                                 "save it as UTF-8") from None
            if text.startswith("\ufeff"):  # a byte-order mark: TOML's parser said only "Invalid statement"
                raise StyleError(f"{path}:1: starts with a byte-order mark (BOM), which TOML does not allow; save it "
                                 "as UTF-8 without BOM")
            try:
                data = tomllib.loads(text)
            except tomllib.TOMLDecodeError as exc:
                raise StyleError(f"{path}: invalid TOML: {exc}") from None
            except ValueError:  # int() of an integer longer than Python reads: a bare ValueError naming no line
                raise StyleError(f"{path}: invalid TOML: {_long_number(text)}") from None
            style = _build(data, name=path.stem, source=str(path), path=str(path), text=lambda text=text: text)
            styles[style.name] = style
    def config_text() -> str | None:  # read only to name the line of an error
        try:
            return Path(config_name).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError):
            return None

    for name, data in (inline or {}).items():
        if not isinstance(data, dict):
            raise StyleError(f"{config_name}: [styles.{name}] must be a table")
        style = _build(data, name=name, source=f"{config_name} [styles.{name}]", path=config_name, text=config_text,
                       section=f"styles.{name}")
        styles[style.name] = style
    # compile every template now so a broken one is reported before any work starts
    from limner.styles.templates import PromptRenderer

    return styles, PromptRenderer(styles)
