"""The state database: Core tables (:mod:`limner.db.tables`), the ORM classes that map them
(:mod:`limner.db.models`, imported only when first named here), Alembic migrations, and the queries
Limner runs."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from limner.db.engine import Database, open_database
from limner.db.tables import EntryState, RenderStatus

if TYPE_CHECKING:
    from limner.db.models import EntryRow, LedgerRow, Render, Template, Variant

__all__ = ["Database", "EntryRow", "EntryState", "LedgerRow", "Render", "RenderStatus", "Template", "Variant", "open_database"]

_ORM = {"EntryRow", "LedgerRow", "Render", "Template", "Variant"}


def __getattr__(name: str) -> Any:
    if name in _ORM:  # the ORM costs start-up time: loaded by the code that names a mapped class
        from limner.db import models

        return getattr(models, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
