"""Built-in providers, registered through the same hook as any plugin."""

from limner.plugins.hookspecs import hookimpl
from limner.registry import ProviderSpec


@hookimpl
def register_providers(register):  # type: ignore[no-untyped-def]
    register(
        ProviderSpec(
            name="sketch",
            target="limner.providers.sketch:SketchProvider",
            description="Offline deterministic draft illustrations (no network, no GPU). The default.",
        )
    )
