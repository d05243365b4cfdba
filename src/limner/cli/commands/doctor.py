"""``limner doctor``: check credentials and reachability of the providers in use. Generates nothing."""

from __future__ import annotations

from typing import Annotated, Optional

import typer

from limner.cli.commands._selection import JsonOpt
from limner.cli.context import friendly, get_project, out, print_json
from limner.errors import EXIT_AUTH, EXIT_FAILURES, ConfigError, LimnerError
from limner.providers import DEFAULT_PROVIDER, AuthFailed, ProviderError
from limner.registry import UNKNOWN_PROVIDER_HINT, provider_class, provider_specs, unknown_provider


def _in_use(project) -> list[str]:  # type: ignore[no-untyped-def]
    """The default provider, those named in limner.toml, and those whose credentials are present."""
    names = {project.settings.provider or DEFAULT_PROVIDER, *project.settings.providers}
    for name in provider_specs():
        try:
            cls = provider_class(name)
        except LimnerError:
            continue
        if cls.required_env and all(project.settings.secret(v) for v in cls.required_env):
            names.add(name)
    return sorted(n for n in names if n in provider_specs())


def register(app: typer.Typer) -> None:
    @app.command("doctor")
    @friendly
    def doctor_cmd(
        ctx: typer.Context,
        provider: Annotated[Optional[list[str]], typer.Option("--provider", "-p", metavar="NAME", help="Check only this provider (repeatable).")] = None,
        as_json: JsonOpt = False,
    ) -> None:
        """Check credentials and reachability of the providers in use, without generating anything."""
        import asyncio

        from limner.providers.sections import check_provider_sections

        project = get_project(ctx, anywhere=True)
        unknown = [message for message in map(unknown_provider, provider or []) if message]
        if unknown:  # a usage error (exit 2), not a provider that failed its check
            project.close()
            raise ConfigError("option --provider: " + "; ".join(unknown), hint=UNKNOWN_PROVIDER_HINT)
        names = provider or _in_use(project)
        try:  # a section of no provider, or a key its provider does not take, is a configuration error (exit 2)
            check_provider_sections(project.settings, names, installed_only=True)
        except ConfigError:
            project.close()
            raise
        results = []

        async def check_all() -> None:
            for name in names:
                row = {"provider": name, "ok": False, "detail": ""}
                try:
                    instance = project.provider(name)
                    row["detail"] = await instance.check()
                    row["ok"] = True
                    await instance.aclose()
                except AuthFailed as exc:
                    row.update(detail=_unprefixed(name, str(exc)), auth=True)
                except (ProviderError, LimnerError) as exc:
                    row["detail"] = _unprefixed(name, str(exc))
                results.append(row)

        try:
            asyncio.run(check_all())
        finally:
            project.close()
        if as_json:
            print_json(results)
        else:
            for r in results:
                out.print(f"{'ok  ' if r['ok'] else 'FAIL'} {r['provider']}: {r['detail']}", highlight=False, markup=False)
        if any(r.get("auth") for r in results):
            raise typer.Exit(EXIT_AUTH)
        if not all(r["ok"] for r in results):
            raise typer.Exit(EXIT_FAILURES)


def _unprefixed(name: str, message: str) -> str:
    """A provider's error without its leading ``"<name>: "``: the line names the provider already."""
    prefix = f"{name}: "
    return message[len(prefix):] if message.startswith(prefix) else message
