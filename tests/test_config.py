"""Settings: defaults, limner.toml, .env, environment, overrides, and the errors bad values give."""

from __future__ import annotations

from pathlib import Path

import pytest

from limner.config import Settings, load_settings
from limner.errors import EXIT_BAD_INPUT, ConfigError
from projects import clean_limner_env

SECRET_VALUE = "sk-live-DO-NOT-LEAK-7c1f3a"


clean_env = pytest.fixture(autouse=True)(clean_limner_env)


def project(tmp_path: Path, toml: str | None = None, env: str | None = None, name: str = "proj") -> Path:
    root = tmp_path / name
    root.mkdir(exist_ok=True)
    if toml is not None:
        (root / "limner.toml").write_text(toml, encoding="utf-8")
    if env is not None:
        (root / ".env").write_text(env, encoding="utf-8")
    return root


def config_error(*args, **kwargs) -> ConfigError:
    with pytest.raises(ConfigError) as info:
        load_settings(*args, **kwargs)
    assert info.value.exit_code == EXIT_BAD_INPUT == 2
    return info.value


TOML = """\
catalog = "events.json"
provider = "fake"

[project]
default_style = "oil-painting"
era_styles = { modern = "documentary-photo" }

[generate]
size = 768
aspect = "16:9"
concurrency = 8

[database]
url = "sqlite:///state/app.db"

[storage]
url = "media"
public_base_url = "https://img.example.org"

[providers.fake]
model = "m-1"
price_usd = 0.01
"""


# ------------------------------------------------------------------------- sources and precedence
def test_defaults_without_a_file(tmp_path: Path) -> None:
    root = project(tmp_path)
    s = load_settings(project_dir=root)
    assert isinstance(s, Settings)
    assert s.config_file is None
    assert s.project_dir == root.resolve()
    assert s.catalog == "catalog.yaml"
    assert s.catalog_path == root.resolve() / "catalog.yaml"
    assert s.provider is None
    assert s.generate.size == 1024 and s.generate.concurrency == 4 and s.generate.aspect == "3:2"
    assert s.storage.url == ".limner/media" and s.storage.public_base_url is None
    assert s.database_url == f"sqlite:///{root.resolve() / '.limner' / 'limner.db'}"
    assert s.state_dir == root.resolve() / ".limner"
    assert s.plugins == []


def test_defaults_use_the_current_directory(tmp_path: Path) -> None:
    s = load_settings()
    assert s.project_dir == tmp_path.resolve()
    assert s.config_file is None


def test_current_directory_limner_toml_is_found(tmp_path: Path) -> None:
    (tmp_path / "limner.toml").write_text('catalog = "here.csv"\n')
    s = load_settings()
    assert s.catalog == "here.csv"
    assert s.config_file == (tmp_path / "limner.toml").resolve()


def test_values_from_limner_toml(tmp_path: Path) -> None:
    root = project(tmp_path, TOML)
    for s in (load_settings(root / "limner.toml"), load_settings(project_dir=root)):
        assert s.config_file == (root / "limner.toml").resolve()
        assert s.project_dir == root.resolve()
        assert s.catalog == "events.json"
        assert s.provider == "fake"
        assert s.project.default_style == "oil-painting"
        assert s.project.era_styles == {"modern": "documentary-photo"}
        assert s.generate.size == 768 and s.generate.aspect == "16:9" and s.generate.concurrency == 8
        assert s.generate.max_attempts == 4  # untouched defaults stay
        assert s.storage.url == "media" and s.storage.public_base_url == "https://img.example.org"
        assert s.provider_settings("fake").model == "m-1"
        assert s.provider_settings("other").model is None


def test_config_path_decides_the_project_dir(tmp_path: Path) -> None:
    root = project(tmp_path, 'catalog = "c.yaml"\n', name="elsewhere")
    s = load_settings(str(root / "limner.toml"))
    assert s.project_dir == root.resolve()
    assert s.catalog_path == root.resolve() / "c.yaml"


def test_relative_sqlite_url_resolves_against_the_project(tmp_path: Path) -> None:
    root = project(tmp_path, TOML)
    s = load_settings(root / "limner.toml")
    assert s.database.url == "sqlite:///state/app.db"  # as written
    assert s.database_url == f"sqlite:///{root.resolve() / 'state' / 'app.db'}"


@pytest.mark.parametrize("url", ["sqlite:////var/lib/limner.db", "sqlite:///:memory:", "postgresql://u@host/db"])
def test_absolute_and_other_urls_are_left_alone(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, url: str) -> None:
    monkeypatch.setenv("LIMNER_DATABASE_URL", url)
    assert load_settings(project_dir=project(tmp_path)).database_url == url


def test_paths_resolve_against_the_project(tmp_path: Path) -> None:
    root = project(tmp_path, TOML)
    s = load_settings(root / "limner.toml")
    assert s.path("media") == root.resolve() / "media"
    assert s.path("/abs/x") == Path("/abs/x")


def test_dotenv_overrides_toml(tmp_path: Path) -> None:
    root = project(tmp_path, TOML, env="LIMNER_CATALOG=from-env-file.csv\nLIMNER_GENERATE_CONCURRENCY=12\n")
    s = load_settings(root / "limner.toml")
    assert s.catalog == "from-env-file.csv"
    assert s.generate.concurrency == 12
    assert s.generate.size == 768  # the rest of the section still comes from the toml
    assert s.provider == "fake"


def test_environment_overrides_dotenv_and_toml(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = project(
        tmp_path,
        TOML,
        env="LIMNER_CATALOG=dotenv.csv\nLIMNER_PROVIDER=dotenv-provider\nLIMNER_GENERATE_CONCURRENCY=12\n",
    )
    monkeypatch.setenv("LIMNER_CATALOG", "environ.yaml")
    monkeypatch.setenv("LIMNER_PROVIDER", "environ-provider")
    monkeypatch.setenv("LIMNER_DATABASE_URL", "sqlite:///env/db.sqlite")
    monkeypatch.setenv("LIMNER_STORAGE_URL", "s3://bucket/prefix")
    monkeypatch.setenv("LIMNER_GENERATE_CONCURRENCY", "2")
    s = load_settings(root / "limner.toml")
    assert s.catalog == "environ.yaml"
    assert s.provider == "environ-provider"
    assert s.database_url == f"sqlite:///{root.resolve() / 'env' / 'db.sqlite'}"
    assert s.storage.url == "s3://bucket/prefix"
    assert s.storage.public_base_url == "https://img.example.org"  # merged with the toml's section
    assert s.generate.concurrency == 2
    assert s.generate.size == 768


def test_removing_the_environment_variable_falls_back(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = project(tmp_path, TOML, env="LIMNER_PROVIDER=dotenv-provider\n")
    monkeypatch.setenv("LIMNER_PROVIDER", "environ-provider")
    assert load_settings(root / "limner.toml").provider == "environ-provider"
    monkeypatch.delenv("LIMNER_PROVIDER")
    assert load_settings(root / "limner.toml").provider == "dotenv-provider"
    (root / ".env").unlink()
    assert load_settings(root / "limner.toml").provider == "fake"


def test_an_empty_environment_variable_is_unset(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A CI job passes a secret that was never created as an empty variable: ``LIMNER_PROVIDER=`` replaced the
    project's paid provider by the offline sketch (whose drawings the job then published), and an empty
    ``LIMNER_SYNC_EVENTS_DATABASE_URL`` turned off the write-back limner.toml set up. Empty now means unset."""
    root = project(tmp_path, TOML + '\n[sync]\nevents_database_url = "sqlite:///app.db"\n',
                   env="LIMNER_GENERATE_CONCURRENCY=\n")
    monkeypatch.setenv("LIMNER_PROVIDER", "")
    monkeypatch.setenv("LIMNER_SYNC_EVENTS_DATABASE_URL", "")
    s = load_settings(root / "limner.toml")
    assert s.provider == "fake"
    assert s.sync.events_database_url == "sqlite:///app.db"
    assert s.generate.concurrency == 8  # an empty line of .env likewise


def test_overrides_beat_everything(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = project(tmp_path, TOML, env="LIMNER_PROVIDER=dotenv-provider\n")
    monkeypatch.setenv("LIMNER_PROVIDER", "environ-provider")
    s = load_settings(root / "limner.toml", overrides={"provider": "cli", "catalog": "cli.csv"})
    assert s.provider == "cli" and s.catalog == "cli.csv"


def test_env_names_are_case_insensitive(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("limner_provider", "lower")
    assert load_settings(project_dir=project(tmp_path)).provider == "lower"


def test_plugins_from_a_comma_separated_variable(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LIMNER_PLUGINS", "a.plugin, b.plugin ,,")
    assert load_settings(project_dir=project(tmp_path)).plugins == ["a.plugin", "b.plugin"]


def test_dotenv_of_another_folder_is_ignored(tmp_path: Path) -> None:
    (tmp_path / ".env").write_text("LIMNER_PROVIDER=cwd-env\n")
    root = project(tmp_path, TOML)
    assert load_settings(root / "limner.toml").provider == "fake"


def test_loading_leaves_no_state_behind(tmp_path: Path) -> None:
    # the toml of one project must not leak into the next load
    a = project(tmp_path, 'provider = "from-a"\n', name="a")
    b = project(tmp_path, name="b")
    assert load_settings(a / "limner.toml").provider == "from-a"
    assert load_settings(project_dir=b).provider is None


# ------------------------------------------------------------------------- errors
def test_invalid_toml_names_the_file(tmp_path: Path) -> None:
    root = project(tmp_path, 'catalog = "x.yaml"\n[generate\nsize = 1\n')
    err = config_error(root / "limner.toml")
    assert str(root.resolve() / "limner.toml") in str(err)
    assert "invalid TOML" in str(err)
    assert "line 2" in str(err)


def test_wrong_type_names_file_line_and_setting(tmp_path: Path) -> None:
    root = project(tmp_path, '# comment\ncatalog = "c.yaml"\n\n[generate]\nsize = 1024\nconcurrency = "lots"\n')
    err = config_error(root / "limner.toml")
    assert f"{root.resolve() / 'limner.toml'}:6:" in str(err)
    assert "'generate.concurrency'" in str(err)
    assert "integer" in str(err)


def test_out_of_range_value(tmp_path: Path) -> None:
    root = project(tmp_path, "[generate]\nsize = 10\n")
    err = config_error(root / "limner.toml")
    assert ":2:" in str(err) and "'generate.size'" in str(err)


def test_every_bad_setting_is_listed(tmp_path: Path) -> None:
    root = project(tmp_path, '[generate]\nsize = "big"\nmax_attempts = 0\n[sync]\nplaceholder_format = "gif"\n')
    text = str(config_error(root / "limner.toml"))
    assert "limner.toml:2: setting 'generate.size'" in text
    assert "limner.toml:3: setting 'generate.max_attempts'" in text
    assert "limner.toml:5: setting 'sync.placeholder_format'" in text


def test_bad_aspect_in_config(tmp_path: Path) -> None:
    root = project(tmp_path, '[generate]\naspect = "wide"\n')
    assert "'generate.aspect'" in str(config_error(root / "limner.toml"))


@pytest.mark.parametrize("value", ["cdn.example.org", "//cdn.example.org", "ftp://cdn.example.org", "https://", "https://cdn example.org"])
def test_a_base_url_that_is_not_an_absolute_http_url_is_refused(tmp_path: Path, value: str) -> None:
    """``cdn.example.org`` was taken as it was: the manifest's ``cdn_base`` failed its own schema, the helper made
    URLs relative to the app's page, and they were written into the app's events table."""
    root = project(tmp_path, f'[storage]\npublic_base_url = "https://images.example.org"\ncdn_base_url = "{value}"\n')
    err = str(config_error(root / "limner.toml"))
    assert f"{root.resolve() / 'limner.toml'}:3:" in err and "'storage.cdn_base_url'" in err and "http(s)" in err, err
    ok = project(tmp_path, name="ok", toml='[storage]\npublic_base_url = "http://127.0.0.1:8766/"\ncdn_base_url = ""\n')
    settings = load_settings(ok / "limner.toml")
    assert (settings.storage.public_base_url, settings.storage.cdn_base_url) == ("http://127.0.0.1:8766/", None)


def test_unknown_top_level_key(tmp_path: Path) -> None:
    root = project(tmp_path, 'catalog = "c.yaml"\ncatalogue = "typo.yaml"\n')
    err = config_error(root / "limner.toml")
    assert "'catalogue' (did you mean 'catalog'?)" in str(err)
    assert str(root.resolve() / "limner.toml") in str(err)


def test_unknown_key_in_a_section(tmp_path: Path) -> None:
    root = project(tmp_path, "[generate]\nsize = 512\nconcurency = 3\n")
    err = config_error(root / "limner.toml")
    assert "limner.toml:3" in str(err) and "generate.concurency" in str(err)
    assert "unknown setting (did you mean 'concurrency'?)" in str(err)


def test_an_unknown_name_far_from_every_setting_suggests_none(tmp_path: Path) -> None:
    root = project(tmp_path, "[storage]\nxyzzy = 1\n")
    err = config_error(root / "limner.toml")
    assert "setting 'storage.xyzzy': unknown setting; see docs/configuration.md" in str(err)


def test_missing_config_file(tmp_path: Path) -> None:
    err = config_error(tmp_path / "nope" / "limner.toml")
    assert "not found" in str(err)
    assert "nope" in str(err)
    assert err.hint and "limner init" in err.hint


def test_bad_value_from_the_environment_blames_the_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = project(tmp_path, "[generate]\nconcurrency = 8\n")
    monkeypatch.setenv("LIMNER_GENERATE_CONCURRENCY", "lots")
    text = str(config_error(root / "limner.toml"))
    assert "LIMNER_GENERATE_CONCURRENCY" in text
    assert "limner.toml:2" not in text  # the toml's value is fine


def test_bad_value_from_dotenv_blames_dotenv(tmp_path: Path) -> None:
    root = project(tmp_path, "[generate]\nconcurrency = 8\n", env="LIMNER_GENERATE_CONCURRENCY=lots\n")
    text = str(config_error(root / "limner.toml"))
    assert ".env" in text and "LIMNER_GENERATE_CONCURRENCY" in text
    assert "limner.toml:2" not in text


# ------------------------------------------------------------------------- secrets
def test_secret_reads_environment_then_dotenv(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("LIMNER_TEST_TOKEN", raising=False)
    monkeypatch.delenv("LIMNER_TEST_ONLY_ENV", raising=False)
    root = project(tmp_path, TOML, env=f"LIMNER_TEST_TOKEN={SECRET_VALUE}\nEMPTY_ONE=\n")
    s = load_settings(root / "limner.toml")
    assert s.secret("LIMNER_TEST_TOKEN") == SECRET_VALUE
    monkeypatch.setenv("LIMNER_TEST_TOKEN", "from-environment")
    assert s.secret("LIMNER_TEST_TOKEN") == "from-environment"
    assert s.secret("EMPTY_ONE") is None
    assert s.secret("NOT_SET_ANYWHERE_12345") is None


def test_repr_never_shows_a_secret(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("REPLICATE_API_TOKEN", raising=False)
    root = project(tmp_path, TOML, env=f"REPLICATE_API_TOKEN={SECRET_VALUE}\nLIMNER_PROVIDER=fake\n")
    s = load_settings(root / "limner.toml")
    assert s.secret("REPLICATE_API_TOKEN") == SECRET_VALUE
    assert SECRET_VALUE not in repr(s)
    assert SECRET_VALUE not in str(s)
    assert SECRET_VALUE not in s.model_dump_json()


# ------------------------------------------------------------------------- no secrets in limner.toml
@pytest.mark.parametrize("line", [
    'authorization = "x"', 'bearer = "x"', 'access_key = "x"', 'private_key = "x"', 'pwd = "x"', 'x_key = "x"',
    'token = "x"', 'api_key = "x"', 'apiKey = "x"', 'password = "x"', 'passwd = "x"', 'client_secret = "x"',
    'cookie = "x"', 'credentials = "x"', 'auth = "x"', 'key = "x"',
    'headers = { Authorization = "x" }', 'headers = { "X-Key" = "x" }', 'extra = { nested = { api-key = "x" } }',
])
def test_secret_like_names_are_refused_nested_too(tmp_path: Path, line: str) -> None:
    root = project(tmp_path, TOML + line + "\n")
    error = config_error(project_dir=root)
    assert "looks like a secret" in str(error)


@pytest.mark.parametrize("value", [
    "Bearer abcdefghijklmnop", "Basic dXNlcjpwYXNzd29yZA==", "r8_FAKE_test_token_0123456789abcdefXYZ",
    "sk-proj-abcdefghijklmnop1234", "hf_abcdefghijklmnopqrstuvwx", "https://user:hunter22@comfy.example:8188",
    "aZ3kP9qL2mN8vB4xC7tY1wE6rU5iO0pQ",
])
def test_secret_shaped_values_are_refused_whatever_the_name(tmp_path: Path, value: str) -> None:
    for line in (f'opts = "{value}"', f'hosts = ["http://127.0.0.1:8188", "{value}"]', f'extra = {{ a = "{value}" }}'):
        root = project(tmp_path, TOML + line + "\n")
        error = config_error(project_dir=root)
        assert "looks like a secret" in str(error)
        assert value not in str(error)


def test_ordinary_provider_settings_are_accepted(tmp_path: Path) -> None:
    extra = """\
author = "Ada"
hosts = ["http://127.0.0.1:8188", "gpu-2:8188"]
workflow = "workflows/MyFlux_v2_checkpoint_final_version.json"
slots = { prompt = "6.text", seed = "3.seed" }
version = "5599ed30703defd1d160a25a63321b4dec97101d98b4674bcc56e41f62f35637"
max_json_bytes = 100000
sort_keys = true
"""
    root = project(tmp_path, TOML + extra)
    s = load_settings(project_dir=root)
    assert s.providers["fake"].model_extra["workflow"].endswith(".json")


def test_an_unknown_storage_scheme_names_the_closest() -> None:
    from limner.errors import ConfigError
    from limner.registry import storage_class

    with pytest.raises(ConfigError, match=r"unknown storage scheme 'supabse://' \(did you mean 'supabase'\?\); available: "):
        storage_class("supabse")


# ------------------------------------------------------------------------- caps need a lower bound
@pytest.mark.parametrize(("name", "value"), [("max_image_bytes", "-1"), ("max_image_bytes", "0"),
                                             ("max_image_pixels", "-1"), ("max_image_pixels", "0"),
                                             ("widths", "[480, -1]"), ("widths", "[0]")])
def test_caps_below_one_are_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, name: str, value: str) -> None:
    # a cap of 0 or less refused every image, after it was paid for
    root = project(tmp_path, f"[generate]\n{name} = {value}\n")
    text = str(config_error(root / "limner.toml"))
    assert f"limner.toml:2: setting 'generate.{name}" in text and "greater than or equal to 1" in text
    (root / "limner.toml").unlink()
    monkeypatch.setenv(f"LIMNER_GENERATE_{name.upper()}", value)
    text = str(config_error(project_dir=root))
    assert f"environment variable LIMNER_GENERATE_{name.upper()}: setting 'generate.{name}" in text


def test_a_negative_image_cap_exits_2_and_changes_nothing(project_dir) -> None:
    before = sorted(project_dir.root.rglob("*"))
    proc = project_dir.run("generate", env=project_dir.env(LIMNER_GENERATE_MAX_IMAGE_BYTES="-1"))
    assert proc.returncode == 2, proc.stderr
    assert "environment variable LIMNER_GENERATE_MAX_IMAGE_BYTES: setting 'generate.max_image_bytes'" in proc.stderr
    assert project_dir.calls() == [] and sorted(project_dir.root.rglob("*")) == before


# ------------------------------------------------------------------------- lists and tables that are no JSON
@pytest.mark.parametrize(("name", "value", "setting"), [
    ("LIMNER_GENERATE_WIDTHS", "480, 1024", "generate.widths"),
    ("LIMNER_PROVIDERS", "{bad", "providers"),
    ("LIMNER_PROJECT_ERA_STYLES", "{medieval: x}", "project.era_styles"),
    ("limner_generate_formats", "webp", "generate.formats"),
])
def test_a_variable_that_is_no_json_names_the_variable(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, name: str,
                                                       value: str, setting: str) -> None:
    root = project(tmp_path, "[generate]\nsize = 512\n")
    monkeypatch.setenv("LIMNER_GENERATE_ASPECT", "16:9")  # a fine variable of the same section is not blamed
    monkeypatch.setenv(name, value)
    text = str(config_error(root / "limner.toml"))
    assert f"environment variable {name}: setting {setting!r}: not valid JSON (" in text
    assert "lists and tables are given as JSON" in text


def test_a_dotenv_line_that_is_no_json_names_dotenv(tmp_path: Path) -> None:
    root = project(tmp_path, "[generate]\nsize = 512\n", env="LIMNER_PROJECT_ERA_STYLES='{medieval: x}'\n")
    text = str(config_error(root / "limner.toml"))
    assert f"{root.resolve() / '.env'}: LIMNER_PROJECT_ERA_STYLES: setting 'project.era_styles': not valid JSON" in text


def test_a_variable_that_is_no_json_exits_2_and_changes_nothing(project_dir) -> None:
    before = sorted(project_dir.root.rglob("*"))
    for command in ("plan", "generate", "status"):
        proc = project_dir.run(command, env=project_dir.env(LIMNER_GENERATE_WIDTHS="480, 1024"))
        assert proc.returncode == 2, proc.stderr
        assert "environment variable LIMNER_GENERATE_WIDTHS: setting 'generate.widths': not valid JSON" in proc.stderr
        assert "Traceback" not in proc.stderr
    assert project_dir.calls() == [] and sorted(project_dir.root.rglob("*")) == before


# ------------------------------------------------------------------------- integers longer than Python reads
LONG = "9" * 5000  # over sys.get_int_max_str_digits() (4300): int() of it is a bare ValueError


def test_an_integer_too_long_to_read_in_limner_toml(tmp_path: Path) -> None:
    root = project(tmp_path, f'catalog = "c.yaml"\n\n[providers.sketch]\nsteps = {LONG}\n')
    text = str(config_error(root / "limner.toml"))
    assert text == (f"{root.resolve() / 'limner.toml'}: invalid TOML: a number of 5,000 digits (at line 4): "
                     "more than the 4,300 digits an integer may have")


def test_an_integer_too_long_to_read_in_a_variable(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = project(tmp_path, "")
    monkeypatch.setenv("LIMNER_GENERATE_WIDTHS", f"[480, {LONG}]")
    text = str(config_error(root / "limner.toml"))
    assert ("environment variable LIMNER_GENERATE_WIDTHS: setting 'generate.widths': a number of 5,000 digits: "
            "more than the 4,300 digits an integer may have") in text


# ------------------------------------------------------------------------- files that are not UTF-8
def test_limner_toml_that_is_not_utf8_names_file_line_and_byte(tmp_path: Path) -> None:
    root = project(tmp_path, "")
    (root / "limner.toml").write_bytes(b'catalog = "c.yaml"\n# caf\xe9\n')
    assert str(config_error(root / "limner.toml")) == (
        f"{root.resolve() / 'limner.toml'}:2: not UTF-8 text (invalid continuation byte at byte 24); save it as UTF-8")


def test_dotenv_that_is_not_utf8_names_file_line_and_byte(tmp_path: Path) -> None:
    root = project(tmp_path, 'catalog = "c.yaml"\n')
    (root / ".env").write_bytes(b"LIMNER_CATALOG=x.yaml\nNAME=caf\xe9\n")
    assert str(config_error(root / "limner.toml")) == (
        f"{root.resolve() / '.env'}:2: not UTF-8 text (invalid continuation byte at byte 30); save it as UTF-8")
    assert str(config_error(project_dir=root)).startswith(f"{root.resolve() / '.env'}:2: not UTF-8 text")


@pytest.mark.parametrize(("text", "line", "name"), [
    ("REPLICATE_API_TOKEN r8_secretvalue\n", 1, "REPLICATE_API_TOKEN"),
    ("A=1\n# a comment\nB='unclosed r8_secretvalue\n", 3, "B"),
])
def test_a_dotenv_line_that_cannot_be_read_names_file_line_and_variable(project_dir, text, line, name) -> None:
    """python-dotenv skipped such a line with a warning that named no file (printed twice), the command went
    on with exit 0, and `limner doctor` then said the variable was not set. It is now an error naming the
    file, the line and the variable, never the value."""
    env = project_dir.root / ".env"
    env.write_text(text)
    before = sorted(project_dir.root.rglob("*"))
    for command in ("plan", "status", "doctor"):
        proc = project_dir.run(command)
        assert proc.returncode == 2, (command, proc.stdout, proc.stderr)
        assert f"{env}:{line}: cannot read this line (it starts with {name})" in proc.stderr
        assert "secretvalue" not in proc.stdout + proc.stderr and "Traceback" not in proc.stderr
        assert "python-dotenv could not parse" not in proc.stderr
    assert sorted(project_dir.root.rglob("*")) == before


def test_files_that_are_not_utf8_exit_2_and_change_nothing(project_dir) -> None:
    toml = project_dir.config.read_bytes()
    for path, data in ((project_dir.config, toml + b"# caf\xe9\n"), (project_dir.root / ".env", b"X=caf\xe9\n"),
                       (project_dir.root / "styles" / "house.toml", b'positive = "caf\xe9 {{ title }}"\n')):
        path.parent.mkdir(exist_ok=True)
        path.write_bytes(data)
        before = sorted(project_dir.root.rglob("*"))
        for command in ("plan", "generate", "status"):
            proc = project_dir.run(command)
            assert proc.returncode == 2, (path, command, proc.stderr)
            assert f"{path}:" in proc.stderr and "not UTF-8 text (invalid continuation byte" in proc.stderr
            assert "Traceback" not in proc.stderr
        assert project_dir.calls() == [] and sorted(project_dir.root.rglob("*")) == before
        path.unlink() if path != project_dir.config else path.write_bytes(toml)


@pytest.mark.parametrize(("toml", "line", "setting", "said"), [
    ("[generate]\nconcurrency = true\n", 2, "generate.concurrency", "expected an integer, got true (a boolean)"),
    ("[generate]\nsize = \"2048\"\n", 2, "generate.size", "expected an integer, got '2048' (a string)"),
    ("[review]\nrequired = \"no\"\n", 2, "review.required", "expected true or false, got 'no' (a string)"),
    ("[providers.replicate]\nprice_usd = \"0.003\"\n", 2, "providers.replicate.price_usd",
     "expected a number, got '0.003' (a string)"),
    ("catalog = 5\n", 1, "catalog", "expected a quoted string, got 5 (a number)"),
])
def test_a_toml_value_of_the_wrong_type_is_an_error_not_converted(tmp_path: Path, toml: str, line: int, setting: str,
                                                                  said: str) -> None:
    """The settings were validated in lax mode, which environment variables need (their values are text), so
    limner.toml's own types were converted: ``concurrency = true`` ran with 1, ``size = "2048"`` with 2048,
    ``required = "no"`` was taken. A TOML value of the wrong type is now an error naming its line."""
    root = project(tmp_path, toml)
    text = str(config_error(root / "limner.toml"))
    assert f"limner.toml:{line}: setting {setting!r}: {said}" in text


def test_toml_types_that_fit_and_environment_text_still_load(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = project(tmp_path, "[generate]\nconcurrency = 8\nsize = 1024\n[providers.replicate]\nprice_usd = 1\n"
                             "custom = \"anything\"\n[review]\nrequired = true\n")
    monkeypatch.setenv("LIMNER_GENERATE_CONCURRENCY", "6")  # text, as every variable is
    s = load_settings(root / "limner.toml")
    assert s.generate.concurrency == 6 and s.providers["replicate"].price_usd == 1.0 and s.review.required is True
    both = str(config_error(project(tmp_path, "[generate]\nsize = true\nmax_attempts = 0\n", name="both") / "limner.toml"))
    assert "setting 'generate.size': expected an integer, got true" in both  # every problem, each said once
    assert "setting 'generate.max_attempts'" in both and both.count("generate.size") == 1
