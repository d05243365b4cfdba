"""A bad setting is blamed on where it came from, JSON environment variables (``LIMNER_PROVIDERS``) included."""

from __future__ import annotations

from pathlib import Path

import pytest

from limner.config import load_settings
from limner.errors import ConfigError
from projects import clean_limner_env


clean_env = pytest.fixture(autouse=True)(clean_limner_env)


def project(tmp_path: Path, toml: str = 'provider = "sketch"\n', env: str | None = None) -> Path:
    root = tmp_path / "proj"
    root.mkdir(exist_ok=True)
    (root / "limner.toml").write_text(toml, encoding="utf-8")
    if env is not None:
        (root / ".env").write_text(env, encoding="utf-8")
    return root / "limner.toml"


def message(config: Path) -> str:
    with pytest.raises(ConfigError) as info:
        load_settings(config)
    assert info.value.exit_code == 2
    return str(info.value)


@pytest.mark.parametrize(("name", "value", "setting"), [
    ("LIMNER_PROVIDERS", '{"sketch": {"concurrency": 0}}', "providers.sketch.concurrency"),
    ("LIMNER_PROVIDERS", '{"sketch": {"api_key": "x"}}', "providers.sketch"),
    ("LIMNER_PROVIDERS_SKETCH", '{"concurrency": 0}', "providers.sketch.concurrency"),
    ("LIMNER_STYLES", '{"house": 3}', "styles.house"),
    ("LIMNER_PROJECT_ERA_STYLES", '{"medieval": 3}', "project.era_styles.medieval"),
    ("LIMNER_PROJECT", '{"default_style": 3}', "project.default_style"),
    ("LIMNER_GENERATE", '{"concurrency": 0}', "generate.concurrency"),
    ("LIMNER_GENERATE_WIDTHS", '[480, "wide"]', "generate.widths.1"),
])
def test_a_json_environment_variable_is_named(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, name: str, value: str,
                                              setting: str) -> None:
    config = project(tmp_path, 'provider = "sketch"\n[providers.sketch]\nconcurrency = 2\n[project]\ndefault_style = "oil-painting"\n')
    monkeypatch.setenv(name, value)
    text = message(config)
    assert f"environment variable {name}: setting '{setting}'" in text, text
    assert "limner.toml" not in text


def test_a_json_variable_in_dotenv_is_named(tmp_path: Path) -> None:
    config = project(tmp_path, env="LIMNER_PROVIDERS={\"sketch\": {\"concurrency\": 0}}\n")
    text = message(config)
    assert f"{config.parent / '.env'}: LIMNER_PROVIDERS: setting 'providers.sketch.concurrency'" in text, text


def test_a_variable_that_does_not_give_the_bad_value_is_not_blamed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = project(tmp_path, 'provider = "sketch"\n[providers.sketch]\nconcurrency = 0\n')
    monkeypatch.setenv("LIMNER_PROVIDERS", '{"sketch": {"timeout_s": 5}}')
    text = message(config)
    assert f"{config}:3: setting 'providers.sketch.concurrency'" in text, text
    assert "environment variable" not in text


def test_a_secret_in_provider_settings_is_not_told_to_move_to_the_environment_variable(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LIMNER_PROVIDERS", '{"sketch": {"api_key": "x"}}')
    text = message(project(tmp_path))
    assert "'api_key' looks like a secret" in text and "never in provider settings" in text


def test_source_of_names_each_source(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = project(tmp_path, '# first\nprovider = "sketch"\n', env="LIMNER_CATALOG=c.csv\n")
    monkeypatch.setenv("LIMNER_PROJECT_ERA_STYLES", '{"medieval": "oil-painting"}')
    settings = load_settings(config)
    assert settings.source_of("provider") == f"{config}:2"
    assert settings.source_of("catalog") == f"{config.parent / '.env'}: LIMNER_CATALOG"
    assert settings.source_of("project", "era_styles", "medieval") == "environment variable LIMNER_PROJECT_ERA_STYLES"
    assert settings.source_of("project", "default_style") == "settings"  # the built-in default
    assert load_settings(config, overrides={"provider": "fake"}).source_of("provider") == "command-line option"


@pytest.mark.parametrize(("env", "toml", "source", "setting"), [
    ({"LIMNER_PROJECT_DEFAULT_STYLE": "nope"}, "", "environment variable LIMNER_PROJECT_DEFAULT_STYLE", "project.default_style"),
    ({"LIMNER_PROJECT_ERA_STYLES": '{"ancient": "nope"}'}, "", "environment variable LIMNER_PROJECT_ERA_STYLES",
     "project.era_styles.ancient"),
    ({}, '[project]\ndefault_style = "nope"\n', "limner.toml:3", "project.default_style"),
])
def test_an_unknown_style_names_where_it_was_given(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                   env: dict[str, str], toml: str, source: str, setting: str) -> None:
    from limner.project import Project

    config = project(tmp_path, 'provider = "sketch"\n' + toml)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(ConfigError) as info:
        Project(load_settings(config)).styles
    assert source in str(info.value) and f"setting '{setting}': unknown style 'nope'" in str(info.value)
