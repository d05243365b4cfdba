"""Configuration: ``limner.toml`` + ``.env`` + environment (environment wins)."""

from limner.config.settings import (
    DatabaseSettings,
    GenerateSettings,
    ProjectSettings,
    Settings,
    StorageSettings,
    SyncSettings,
    load_settings,
)

__all__ = [
    "DatabaseSettings",
    "GenerateSettings",
    "ProjectSettings",
    "Settings",
    "StorageSettings",
    "SyncSettings",
    "load_settings",
]
