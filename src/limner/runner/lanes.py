"""Lanes: each provider a plan uses, resolved once (class, model, price, instance, concurrency, gate).

Planning resolves a lane per provider name; the run takes everything it needs
about a provider from its lane (credentials check, concurrency, rate limit,
retries) instead of asking the project again at each stage. The provider
instance is built only when a run first needs it, so planning stays cheap.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property
from typing import TYPE_CHECKING, Any

from limner.errors import ConfigError
from limner.providers.errors import ProviderError
from limner.providers.sections import check_provider_sections
from limner.registry import provider_class

if TYPE_CHECKING:
    from limner.config.settings import GenerateSettings, ProviderSettings
    from limner.project import Project
    from limner.providers import Provider
    from limner.runner.retry import ProviderGate


@dataclass(eq=False)
class Lane:
    name: str
    cls: type[Provider]
    conf: ProviderSettings
    model: str
    #: ``[providers.<name>]`` settings that shape the image: part of every fingerprint of this lane
    image_settings: dict[str, Any]
    #: ``[generate] concurrency``: the fallback when neither the settings nor the provider say
    default_concurrency: int
    factory: Callable[[], Provider] = field(repr=False)

    @property
    def size_multiple(self) -> int:
        return self.cls.capabilities.size_multiple

    @cached_property
    def provider(self) -> Provider:
        return self.factory()

    @cached_property
    def concurrency(self) -> int:
        """``[providers.<name>] concurrency``, else the provider's own (one slot per ComfyUI host, 5 for
        Replicate, ...), else ``[generate] concurrency``."""
        if self.conf.concurrency:
            return self.conf.concurrency
        try:
            hint = self.provider.concurrency_hint()
        except ProviderError as exc:  # a setting it reads (batch_size, hosts) that cannot work
            raise ConfigError(f"[providers.{self.name}] in limner.toml: {exc}") from None
        return max(1, int(hint)) if hint else self.default_concurrency

    def estimate_usd(self, params: dict[str, Any], width: int, height: int) -> float:
        """What one image of a style on this lane reserves under a cap: ``[providers.<name>] price_usd`` when
        set, else the provider's estimate for that size, the style's params and this lane's settings."""
        if self.conf.price_usd is not None:
            return self.conf.price_usd
        return float(self.cls.estimate_usd(self.model, width, height, params=params,
                                           settings=dict(self.conf.model_extra or {})))

    @property
    def rate_limit_per_minute(self) -> float | None:
        return self.conf.rate_limit_per_minute or self.cls.capabilities.rate_limit_per_minute

    def missing_env(self) -> list[str]:
        return self.provider.missing_env()

    def unavailable(self) -> str | None:
        return self.cls.unavailable()

    def gate(self, generate: GenerateSettings, provider: Provider | None = None) -> ProviderGate:
        """The lane's gate, calling ``provider`` (default: the lane's instance)."""
        from limner.runner.retry import ProviderGate

        return ProviderGate(provider or self.provider, concurrency=self.concurrency, rate_per_minute=self.rate_limit_per_minute,
                            timeout_s=self.conf.timeout_s or generate.call_timeout_s, max_attempts=generate.max_attempts,
                            backoff_initial_s=generate.backoff_initial_s, backoff_max_s=generate.backoff_max_s,
                            retry_after_max_s=generate.retry_after_max_s)


def resolve_lane(project: Project, name: str) -> Lane:
    """Everything a plan and a run need about one provider, read from the project once."""
    settings = project.settings
    check_provider_sections(settings, [name])  # [providers.replicat], concurency = 4: no keys to pass over
    cls = provider_class(name)
    conf = settings.provider_settings(name)
    extra = conf.model_extra or {}
    return Lane(
        name=name, cls=cls, conf=conf, model=conf.model or cls.default_model,
        image_settings={k: extra[k] for k in cls.image_settings if extra.get(k) is not None},
        default_concurrency=settings.generate.concurrency, factory=lambda: project.provider(name),
    )
