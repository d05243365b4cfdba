"""A project: its settings, styles, catalogue, database and storage, opened lazily.

Commands build one :class:`Project` and ask it for what they need, so a command
that only reads the catalogue never opens the database, and a bad catalogue is
reported before anything is written.
"""

from __future__ import annotations

import os
from functools import cached_property
from typing import TYPE_CHECKING, Any

from limner.catalog import Catalog, Entry, load_catalog
from limner.config.settings import Settings
from limner.db import Database, open_database
from limner.db.repository import Repository
from limner.errors import ConfigError, did_you_mean
from limner.providers import DEFAULT_PROVIDER, Provider
from limner.providers.sections import check_provider_sections
from limner.registry import provider_class
from limner.storage import Storage, open_storage
from limner.styles import PromptRenderer, Style
from limner.styles.loader import load_styles_with_renderer

if TYPE_CHECKING:
    from limner.db.review import Reviews


class Project:
    def __init__(self, settings: Settings, *, read_only: bool = False,
                 providers: dict[str, Provider] | None = None) -> None:
        """``read_only``: the command changes nothing, so a state database that does not exist yet is not
        created (nor its folder): the command reads an empty state instead (:func:`open_database`).
        ``providers``: provider instances to use and keep, shared by the projects a long-lived process opens one
        after the other with the same settings (the review studio's regenerations: a local model stays loaded)."""
        self.settings = settings
        self.read_only = read_only
        if settings.plugins:
            from limner.plugins import load_plugins

            load_plugins(settings.plugins)
        self._providers: dict[str, Provider] = providers if providers is not None else {}
        # the plain-http allow-list is read by the HTTP layer from the environment; honour .env too
        if not os.environ.get("LIMNER_ALLOW_HTTP_HOSTS") and settings.secret("LIMNER_ALLOW_HTTP_HOSTS"):
            os.environ["LIMNER_ALLOW_HTTP_HOSTS"] = settings.secret("LIMNER_ALLOW_HTTP_HOSTS") or ""

    # ---------------------------------------------------------------- inputs
    @cached_property
    def _styles_and_renderer(self) -> tuple[dict[str, Style], PromptRenderer]:
        s = self.settings
        inline = {k: dict(v) for k, v in s.styles.items()}
        styles, renderer = load_styles_with_renderer(s.path(s.project.styles_dir), inline,
                                                     config_name=str(s.config_file or "limner.toml"))
        named = [(("project", "default_style"), s.project.default_style),
                 *((("project", "era_styles", era), name) for era, name in s.project.era_styles.items())]
        for loc, name in named:
            if name not in styles:
                raise ConfigError(f"{s.source_of(*loc)}: setting {'.'.join(loc)!r}: unknown style {name!r}"
                                  f"{did_you_mean(name, styles)}; known styles: {', '.join(sorted(styles))}")
        return styles, renderer

    @property
    def styles(self) -> dict[str, Style]:
        return self._styles_and_renderer[0]

    @property
    def renderer(self) -> PromptRenderer:
        """The prompt renderer that compiled every style's templates when the styles loaded."""
        return self._styles_and_renderer[1]

    @cached_property
    def catalog(self) -> Catalog:
        return load_catalog(self.settings.catalog_path, known_styles=self.styles.keys(),
                            allow_fields=self.settings.project.allow_fields)

    def style_for(self, entry: Entry) -> Style:
        p = self.settings.project
        name = entry.style or (p.era_styles.get(entry.era) if entry.era else None) or p.default_style
        return self.styles[name]

    def provider_name_for(self, entry: Entry, style: Style, override: str | None = None) -> str:
        return override or entry.provider or style.provider or self.settings.provider or DEFAULT_PROVIDER

    @property
    def provider_is_default(self) -> bool:
        return not self.settings.provider

    # ---------------------------------------------------------------- backends
    def provider(self, name: str) -> Provider:
        if name not in self._providers:
            check_provider_sections(self.settings, [name])  # [providers.replicat], concurency = 4: no keys to pass over
            cls = provider_class(name)
            conf = self.settings.provider_settings(name)
            extra: dict[str, Any] = dict(conf.model_extra or {})
            extra.update({k: v for k, v in conf.model_dump(exclude={"model"}).items() if v is not None})
            extra["_secret"] = self.settings.secret
            self._providers[name] = cls(model=conf.model, settings=extra)
        return self._providers[name]

    def reload_provider(self, name: str) -> Provider:
        """A new instance of provider ``name`` in place of the one :meth:`provider` kept, so that its credentials
        are read again (the environment, the project's .env) on its first call: a queue worker whose credentials
        a provider refused (the old instance's client holds the refused key)."""
        self._providers.pop(name, None)
        return self.provider(name)

    def provider_price(self, name: str, width: int | None = None, height: int | None = None) -> float:
        """USD per image: ``[providers.<name>] price_usd`` in limner.toml, else the provider's price table."""
        conf = self.settings.provider_settings(name)
        if conf.price_usd is not None:
            return conf.price_usd
        size = self.settings.generate.size
        cls = provider_class(name)
        return float(cls.price_for(conf.model or cls.default_model, width or size, height or size))

    @cached_property
    def db(self) -> Database:
        return open_database(self.settings.database_url, create=not self.read_only)

    @cached_property
    def repo(self) -> Repository:
        return Repository(self.db)

    @cached_property
    def reviews(self) -> Reviews:
        from limner.db.review import Reviews

        return Reviews(self.db)

    @cached_property
    def storage(self) -> Storage:
        return open_storage(self.settings)

    def allow_writes(self) -> None:
        """A project opened ``read_only`` to plan may write from here on (``limner generate`` plans first, so
        that a plan that refuses, an unknown provider or a template that fails, creates no state database): a
        stand-in for a database that did not exist is dropped, and the real one is created when first used."""
        if not self.read_only:
            return
        self.read_only = False
        if "db" in self.__dict__ and self.db.engine.url.database in (None, "", ":memory:"):
            self.db.close()
            for name in ("db", "repo", "reviews"):
                self.__dict__.pop(name, None)

    def close(self) -> None:
        if "db" in self.__dict__:
            self.db.close()
