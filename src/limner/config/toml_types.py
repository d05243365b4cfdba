"""Types in ``limner.toml`` are the file's own: a value of the wrong type is an error, not converted.

The settings models validate in pydantic's lax mode, which environment variables need (every value there is
text: ``LIMNER_GENERATE_CONCURRENCY=8``). A TOML file states its types, so lax mode turned mistakes into other
values: ``concurrency = true`` ran with 1, ``size = "2048"`` with 2048, ``[review] required = "no"`` was
accepted. :func:`type_problems` finds such values before the models see them.
"""

from __future__ import annotations

import types
import typing
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel

#: what a declared type accepts from TOML, by scalar kind
_WORDS = {bool: "true or false", int: "an integer", float: "a number", str: "a quoted string"}


def _kinds(annotation: Any) -> set[type] | None:
    """The scalar kinds ``annotation`` accepts (``float`` takes integers too), or None when it is not a plain
    scalar (a list, a table, ``Any``): those are left to the model."""
    origin = typing.get_origin(annotation)
    if origin is typing.Annotated:
        return _kinds(typing.get_args(annotation)[0])
    if origin in (typing.Union, types.UnionType):
        found: set[type] = set()
        for arg in typing.get_args(annotation):
            if arg is type(None):
                continue
            kinds = _kinds(arg)
            if kinds is None:
                return None
            found |= kinds
        return found or None
    if origin is Literal:
        return {type(v) for v in typing.get_args(annotation)}
    if annotation is Path:
        return {str}
    if annotation in (bool, int, float, str):
        return {int, float} if annotation is float else {annotation}
    return None


def _fits(value: Any, kinds: set[type]) -> bool:
    if isinstance(value, bool):
        return bool in kinds
    if isinstance(value, int):
        return int in kinds
    if isinstance(value, float):
        return float in kinds
    if isinstance(value, str):
        return str in kinds
    return True  # a list or table where a scalar goes: the model says so


def _shown(value: Any) -> str:
    if isinstance(value, bool):
        return f"{str(value).lower()} (a boolean)"
    if isinstance(value, str):
        from limner.config.settings import secret_shaped

        if secret_shaped(value):  # a token pasted on the wrong line: never quoted
            return "a string shaped like a secret (not shown)"
        return f"{value[:40]!r} (a string)"
    return f"{value!r} (a number)"


def type_problems(data: dict[str, Any], model: type[BaseModel]) -> list[tuple[tuple[str, ...], str]]:
    """``(where, message)`` for each value of ``data`` (a parsed ``limner.toml``) whose TOML type is not one
    its setting takes; ``where`` is the setting's dotted path as a tuple."""
    found: list[tuple[tuple[str, ...], str]] = []
    _walk(data, model, (), found)
    return found


def _walk(data: dict[str, Any], model: type[BaseModel], loc: tuple[str, ...],
          found: list[tuple[tuple[str, ...], str]]) -> None:
    for key, value in data.items():
        field = model.model_fields.get(key)
        if field is None or value is None:
            continue  # an unknown name is reported by the model, with "did you mean"
        annotation = field.annotation
        here = (*loc, key)
        if isinstance(value, dict):
            if isinstance(annotation, type) and issubclass(annotation, BaseModel):
                _walk(value, annotation, here, found)
            elif typing.get_origin(annotation) is dict:  # [providers.NAME] tables: their declared fields
                inner = typing.get_args(annotation)[1]
                if isinstance(inner, type) and issubclass(inner, BaseModel):
                    for name, table in value.items():
                        if isinstance(table, dict):
                            _walk(table, inner, (*here, str(name)), found)
            continue
        kinds = _kinds(annotation)
        if kinds is not None and not _fits(value, kinds):
            shown = [k for k in (bool, int, float, str) if k in kinds and not (k is int and float in kinds)]
            wanted = " or ".join(_WORDS[k] for k in shown)
            found.append((here, f"expected {wanted}, got {_shown(value)}; TOML values keep their type"))
