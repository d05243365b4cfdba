"""The state database: SQLAlchemy 2 models, Alembic migrations, and the queries Limner runs."""

from limner.db.engine import Database, open_database
from limner.db.models import EntryRow, EntryState, LedgerRow, Render, RenderStatus, Template, Variant

__all__ = ["Database", "EntryRow", "EntryState", "LedgerRow", "Render", "RenderStatus", "Template", "Variant", "open_database"]
