"""Options shared by ``plan`` and ``generate``: which entries to consider."""

from __future__ import annotations

from typing import Annotated, Optional

import typer


MissingOpt = Annotated[bool, typer.Option("--missing", help="Only entries without an image (and retryable failures). Default: missing and stale.")]
AllOpt = Annotated[bool, typer.Option("--all", help="Every entry, regenerating published ones too.")]
IdOpt = Annotated[Optional[list[str]], typer.Option("--id", metavar="ID", help="Only this entry (repeatable); regenerates it even if published.")]
StaleOpt = Annotated[bool, typer.Option("--stale", help="Only entries whose prompt, style, provider or seed changed.")]
ProviderOpt = Annotated[Optional[str], typer.Option("--provider", "-p", help="Provider for this run (overrides LIMNER_PROVIDER and limner.toml).")]
LimitOpt = Annotated[Optional[int], typer.Option("--limit", min=0, help="At most this many entries.")]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON on stdout (progress and logs go to stderr).")]


def selection(missing: bool, stale: bool, all_: bool, ids: list[str] | None, provider: str | None, limit: int | None):  # type: ignore[no-untyped-def]
    from limner.runner import Selection

    if provider is not None and not provider.strip():  # a script's unset variable: not "the configured one"
        from limner.errors import ConfigError

        raise ConfigError(f"option --provider: no provider named ({provider!r}); give a provider's name, or leave "
                          "the option out to use the configured one", hint="run `limner providers` to list them")
    if not missing and not stale:
        missing = stale = True
    return Selection(missing=missing, stale=stale, all=all_, ids=tuple(ids or ()), provider=provider, limit=limit)
