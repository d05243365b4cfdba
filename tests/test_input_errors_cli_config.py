"""Bad input to the configuration and the command line: a clear error naming where the bad value is, a non-zero
exit, no traceback, and nothing changed (no state database created, no file written, no provider called)."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
from pydantic import BaseModel

from limner.config import load_settings
from limner.errors import EXIT_BAD_INPUT, ConfigError
from projects import ProjectDir, clean_limner_env

clean_env = pytest.fixture(autouse=True)(clean_limner_env)


def tree(root: Path) -> dict[str, str | None]:
    """Every path under ``root`` with its content's hash (None for a folder)."""
    return {str(p.relative_to(root)): (hashlib.sha256(p.read_bytes()).hexdigest() if p.is_file() else None)
            for p in sorted(root.rglob("*"))}


def refused(p: ProjectDir, *args: str, code: int = EXIT_BAD_INPUT, **env: str) -> str:
    """Run the command, which must refuse: ``code``, no traceback, no call, nothing changed; its stderr."""
    before = tree(p.root)
    proc = p.run(*args, env=p.env(**env))
    assert proc.returncode == code, (args, proc.returncode, proc.stdout, proc.stderr)
    assert "Traceback" not in proc.stderr + proc.stdout, proc.stderr
    assert p.calls() == []
    assert tree(p.root) == before, (args, set(tree(p.root)) ^ set(before))
    return proc.stderr


# ------------------------------------------------------------------ command-line options


def test_costs_for_more_days_than_the_calendar_has_is_every_day(project_dir: ProjectDir) -> None:
    """``costs --days 99999999999`` ended in an OverflowError traceback; days before the calendar's first day
    add nothing, so it is every day's spend."""
    project_dir.run("generate", "--limit", "2", check=True)
    for days in ("99999999999", "800000", str(2**70)):
        proc = project_dir.run("costs", "--days", days, "--json")
        assert proc.returncode == 0 and "Traceback" not in proc.stderr, proc.stderr
        assert '"calls": 2' in proc.stdout


@pytest.mark.parametrize("command", [("plan",), ("generate",), ("generate", "--dry-run")])
@pytest.mark.parametrize("value", ["", "  "])
def test_an_empty_provider_option_is_refused(project_dir: ProjectDir, command: tuple[str, ...], value: str) -> None:
    """``--provider ""`` (a script's unset variable) ran the configured provider, a paid one maybe."""
    said = refused(project_dir, *command, "--provider", value)
    assert "option --provider: no provider named" in said


@pytest.mark.parametrize("value", ["inf", "1e400", "nan"])
def test_a_budget_option_that_is_no_finite_number_is_refused(project_dir: ProjectDir, value: str) -> None:
    """``generate --budget inf`` ran with no cap at all (click's range lets inf pass, being at least 0)."""
    said = refused(project_dir, "generate", "--budget", value)
    assert "Invalid value for '--budget'" in said
    if value != "nan":  # nan: typer's own range check refuses it first
        assert "must be a finite number, got inf; leave --budget out" in said


# ------------------------------------------------------------------ commands that would create the database


@pytest.mark.parametrize("command", [("review", "approve", "7"), ("review", "reject", "7", "--note", "bad"),
                                     ("review", "pin", "7")])
def test_a_decision_on_an_unknown_render_creates_no_database(project_dir: ProjectDir, command: tuple[str, ...]) -> None:
    said = refused(project_dir, *command)
    assert "no render 7" in said
    assert not (project_dir.root / ".limner").exists()


@pytest.mark.parametrize("command", [("review", "override", "nope", "--clear"),
                                     ("review", "override", "nope", "--seed", "3"),
                                     ("review", "override", "event-001", "--style", "nope"),
                                     ("review", "regenerate", "nope"),
                                     ("review", "regenerate", "event-001", "--style", "nope")])
def test_an_override_of_an_unknown_entry_or_style_creates_no_database(project_dir: ProjectDir,
                                                                     command: tuple[str, ...]) -> None:
    said = refused(project_dir, *command)
    assert "no entry 'nope'" in said or "no style 'nope'" in said
    assert not (project_dir.root / ".limner").exists()


def test_an_override_of_a_new_entry_still_creates_the_database(project_dir: ProjectDir) -> None:
    proc = project_dir.run("review", "override", "event-001", "--seed", "3", "--json", check=True)
    assert '"seed": 3' in proc.stdout
    assert (project_dir.root / ".limner" / "limner.db").is_file()


def test_an_upload_refused_for_overlapping_storages_creates_no_database(project_dir: ProjectDir) -> None:
    said = refused(project_dir, "upload", "--to", ".")
    assert "the source and the destination overlap" in said
    assert not (project_dir.root / ".limner").exists()


def test_an_upload_from_a_folder_that_is_not_there_is_refused_naming_it(project_dir: ProjectDir, tmp_path: Path) -> None:
    """`limner upload --from <folder>` with a folder that does not exist (mistyped) listed it as empty, said
    "Copied 0 objects ... To use it, set [storage] url" and exited 0; so did a source that is a file, and the
    configured storage folder of a project that has none yet. Each is now refused naming the folder."""
    (project_dir.root / "a-file").write_text("x")
    destination = tmp_path / "copy"
    for source, named in ((str(tmp_path / "mistyped"), tmp_path / "mistyped"),
                          ("relative-missing", project_dir.root / "relative-missing"),
                          (f"file://{tmp_path / 'also-missing'}", tmp_path / "also-missing")):
        said = refused(project_dir, "upload", "--from", source, "--to", str(destination))
        assert f"--from: the folder {named} does not exist; nothing was copied" in said, said
    said = refused(project_dir, "upload", "--from", "a-file", "--to", str(destination), "--all")
    assert f"--from: {project_dir.root / 'a-file'} is not a folder; nothing was copied" in said, said
    said = refused(project_dir, "upload", "--to", str(destination))  # the configured one: none made yet
    assert f"storage.url (its default): the folder {project_dir.root / '.limner' / 'media'} does not exist" in said
    said = refused(project_dir, "upload", "--to", str(destination), LIMNER_STORAGE_URL="store")
    assert f"storage.url (environment variable LIMNER_STORAGE_URL): the folder {project_dir.root / 'store'}" in said
    assert not destination.exists() and not (project_dir.root / ".limner").exists()


def test_generate_without_the_provider_credentials_creates_no_database(project_dir: ProjectDir) -> None:
    """The run stopped before any call for want of the API key, after it had created and migrated the
    state database."""
    env = {k: v for k, v in project_dir.env().items() if k != "OPENAI_API_KEY"}
    before = tree(project_dir.root)
    proc = project_dir.run("generate", "--provider", "openai", env=env)
    assert proc.returncode == 3 and "needs OPENAI_API_KEY" in proc.stderr, proc.stderr
    assert tree(project_dir.root) == before and not (project_dir.root / ".limner").exists()


# ------------------------------------------------------------------ limner.toml


def test_a_limner_toml_that_is_a_folder_is_refused(project_dir: ProjectDir, tmp_path: Path) -> None:
    """A folder named limner.toml was passed over: the project ran on built-in defaults, and generate created a
    state database and media."""
    project_dir.config.unlink()
    project_dir.config.mkdir()
    with pytest.raises(ConfigError) as info:
        load_settings(project_dir=project_dir.root)
    assert info.value.exit_code == EXIT_BAD_INPUT
    assert f"{project_dir.config}: a folder, not a file" in info.value.message
    before = tree(project_dir.root)
    for command in ("generate", "status", "plan"):
        proc = project_dir.run(command)  # `--config <the folder>`
        assert proc.returncode == 2 and "a folder, not a file" in proc.stderr, proc.stderr
    import subprocess
    import sys

    proc = subprocess.run([sys.executable, "-m", "limner", "generate"], cwd=project_dir.root, capture_output=True,
                          text=True, env=project_dir.env(), timeout=120)
    assert proc.returncode == 2 and f"{project_dir.config}: a folder, not a file" in proc.stderr, proc.stderr
    assert tree(project_dir.root) == before and project_dir.calls() == []


def test_a_limner_toml_that_links_to_nothing_is_refused(tmp_path: Path) -> None:
    root = tmp_path / "proj"
    root.mkdir()
    (root / "limner.toml").symlink_to(root / "gone.toml")
    for kwargs in ({"project_dir": root}, {"config": root / "limner.toml"}):
        with pytest.raises(ConfigError) as info:
            load_settings(**kwargs)
        assert f"limner.toml: a link to {root / 'gone.toml'}, which does not exist" in info.value.message


@pytest.mark.parametrize("url", ["ftp://bucket/images", "s3://bucket/images"])
def test_generate_to_a_storage_it_cannot_open_creates_no_database(project_dir: ProjectDir, url: str) -> None:
    """An unknown storage scheme (exit 2), or S3 without credentials: refused before any call, after the state
    database had been created and migrated."""
    env = {k: v for k, v in project_dir.env().items() if not k.startswith("AWS_")}
    before = tree(project_dir.root)
    proc = project_dir.run("generate", env={**env, "LIMNER_STORAGE_URL": url, "AWS_CONFIG_FILE": "/nonexistent",
                                            "AWS_SHARED_CREDENTIALS_FILE": "/nonexistent"})
    assert proc.returncode in (1, 2) and "Traceback" not in proc.stderr, proc.stderr
    assert "unknown storage scheme 'ftp://'" in proc.stderr or "no S3 credentials" in proc.stderr, proc.stderr
    assert tree(project_dir.root) == before and project_dir.calls() == []


def test_a_limner_toml_or_style_file_with_a_byte_order_mark_says_so(project_dir: ProjectDir) -> None:
    """A file saved "UTF-8 with BOM" (Notepad, some Windows editors) was refused as ``invalid TOML: Invalid
    statement (at line 1, column 1)``, which names nothing a person can see in the file."""
    config = project_dir.config.read_text(encoding="utf-8")
    style = project_dir.root / "styles" / "house.toml"
    style.parent.mkdir()
    for path, text in ((project_dir.config, config), (style, 'positive = "{{ title }}"\n')):
        path.write_text("\ufeff" + text, encoding="utf-8")
        said = refused(project_dir, "plan")
        assert f"{path}:1: starts with a byte-order mark (BOM), which TOML does not allow; save it as UTF-8 " \
               "without BOM" in said
        path.write_text(text, encoding="utf-8")


@pytest.mark.parametrize(("toml", "env"), [("[queue]\nheartbeat_s = 60\n", {}),
                                           ("[queue]\nheartbeat_s = 5\nstalled_after_s = 5\n", {}),
                                           ("", {"LIMNER_QUEUE_STALLED_AFTER_S": "2", "LIMNER_QUEUE_HEARTBEAT_S": "10"})])
def test_a_worker_judged_dead_within_one_heartbeat_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                             toml: str, env: dict[str, str]) -> None:
    """``stalled_after_s`` not longer than ``heartbeat_s`` was accepted: live workers' running jobs went back to the
    queue between two of their heartbeats."""
    root = tmp_path / "proj"
    root.mkdir()
    (root / "limner.toml").write_text(toml, encoding="utf-8")
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(ConfigError) as info:
        load_settings(root / "limner.toml")
    assert "setting 'queue.stalled_after_s'" in info.value.message
    assert "is not longer than queue.heartbeat_s" in info.value.message


def test_the_default_heartbeat_and_stall_still_load(tmp_path: Path) -> None:
    (tmp_path / "limner.toml").write_text("[queue]\nstalled_after_s = 11\n", encoding="utf-8")
    assert load_settings(tmp_path / "limner.toml").queue.stalled_after_s == 11


def test_unknown_top_level_names_are_each_named_with_their_line(tmp_path: Path) -> None:
    """An unknown name at the top of limner.toml (or an unknown section) named the file but not the line."""
    (tmp_path / "limner.toml").write_text('catalog = "c.yaml"\nprovidr = "sketch"\n\n[generat]\nsize = 512\n',
                                          encoding="utf-8")
    with pytest.raises(ConfigError) as info:
        load_settings(tmp_path / "limner.toml")
    said = info.value.message
    assert f"{tmp_path / 'limner.toml'}:4: unknown setting 'generat' (did you mean 'generate'?)" in said
    assert f"{tmp_path / 'limner.toml'}:2: unknown setting 'providr' (did you mean 'provider', 'providers'?)" in said


# ------------------------------------------------------------------ secrets in errors

TOKEN = "r8_AbCdEfGhIjKlMnOpQrStUvWxYz0123456789"


@pytest.mark.parametrize("toml", [f'[generate]\nbudget_usd = "{TOKEN}"\n', f'[review]\nport = "{TOKEN}"\n',
                                  f'[sync]\nplaceholder_width = "Bearer {TOKEN}"\n'])
def test_a_secret_given_where_a_number_goes_is_not_shown(tmp_path: Path, toml: str) -> None:
    """A token pasted on the wrong line (a string where a number goes) was quoted in the error."""
    (tmp_path / "limner.toml").write_text(toml, encoding="utf-8")
    with pytest.raises(ConfigError) as info:
        load_settings(tmp_path / "limner.toml")
    said = info.value.message
    assert f"{tmp_path / 'limner.toml'}:2: setting" in said and "got a string shaped like a secret (not shown)" in said
    assert "AbCdEfGh" not in said and "Bearer" not in said


@pytest.mark.parametrize("setting", ["public_base_url", "cdn_base_url"])
@pytest.mark.parametrize("url", ["https://user:hunter2pass@cdn.example.org", "ftp://user:hunter2pass@cdn.example.org"])
def test_a_base_url_with_a_password_is_refused_without_showing_it(tmp_path: Path, setting: str, url: str) -> None:
    """A public or CDN base URL with ``user:password@`` was quoted whole in its error, and an https one was
    accepted: the manifest the app ships then carried the password in every image URL."""
    (tmp_path / "limner.toml").write_text(f'[storage]\n{setting} = "{url}"\n', encoding="utf-8")
    with pytest.raises(ConfigError) as info:
        load_settings(tmp_path / "limner.toml")
    said = info.value.message
    assert f"setting 'storage.{setting}'" in said and "hunter2pass" not in said
    assert "holds a user name or password" in said or "not an absolute http(s) URL" in said


@pytest.mark.parametrize("url", ["https://cdn.example.org/key-art-collection/",
                                 "https://images.example.org/hf_thumbnails_archive/",
                                 "https://cdn.example.org/sk-archive/2026/"])
def test_a_base_url_whose_path_only_looks_like_a_key_is_accepted(tmp_path: Path, url: str) -> None:
    """The base-URL check refused any URL the secret heuristic flagged, path included: a CDN folder named
    ``key-art-collection`` was refused as carrying "a password or token". Credentials, a query and a fragment are
    what a base must not hold (the manifest ships it); a path is the site's own."""
    (tmp_path / "limner.toml").write_text(f'[storage]\ncdn_base_url = "{url}"\n', encoding="utf-8")
    assert load_settings(tmp_path / "limner.toml").storage.cdn_base_url == url


@pytest.mark.parametrize("url", ["https://cdn.example.org/?sig=AbCdEfGh1234", "https://cdn.example.org/#token=x",
                                 "https://user@cdn.example.org/"])
def test_a_base_url_with_a_query_fragment_or_user_is_refused_by_every_command(tmp_path: Path, url: str) -> None:
    """``limner sync`` refused these (the manifest would carry them, and keys are appended to the base), but every
    other command took them: the setting is now refused where it is read, without showing it."""
    (tmp_path / "limner.toml").write_text(f'[storage]\ncdn_base_url = "{url}"\n', encoding="utf-8")
    with pytest.raises(ConfigError) as info:
        load_settings(tmp_path / "limner.toml")
    assert "setting 'storage.cdn_base_url'" in info.value.message and url not in info.value.message


# ------------------------------------------------------------------ serve


def test_serve_on_an_address_it_cannot_listen_on_says_so_before_printing_a_login(project_dir: ProjectDir) -> None:
    """A host name that does not resolve, or a port in use, was found by uvicorn after the studio's address and a
    generated login token had been printed; it exited 3, the code of a rejected credential."""
    import socket

    pytest.importorskip("uvicorn")
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        said = refused(project_dir, "serve", "--port", str(port))
        assert f"cannot listen on 127.0.0.1:{port} (settings, option --port)" in said
        project_dir.config.write_text(project_dir.config.read_text() + "[review]\nhost = \"no-such-host.invalid\"\n")
        said = refused(project_dir, "serve")
        assert "cannot listen on no-such-host.invalid:8765 (" in said and "limner.toml:" in said
    assert not (project_dir.root / ".limner").exists()


@pytest.mark.parametrize("value", ["inf", "+inf", "1e400"])
def test_an_infinite_price_is_refused(tmp_path: Path, value: str) -> None:
    """``price_usd = inf`` was accepted: the ledger recorded an infinite spend, and ``costs --json`` printed
    ``Infinity``, which is no JSON."""
    (tmp_path / "limner.toml").write_text(f"[providers.replicate]\nprice_usd = {value}\n", encoding="utf-8")
    with pytest.raises(ConfigError) as info:
        load_settings(tmp_path / "limner.toml")
    assert f"{tmp_path / 'limner.toml'}:2: setting 'providers.replicate.price_usd': must be a finite number, got inf" \
        in info.value.message


def _number_settings() -> list[tuple[str, str]]:
    """``(section, field)`` of every number setting that takes a fraction (a float can be inf or nan)."""
    import typing

    from limner.config.settings import GenerateSettings, ProviderSettings, QueueSettings, Settings

    sections = {name: field.annotation for name, field in Settings.model_fields.items()
                if isinstance(field.annotation, type) and issubclass(field.annotation, BaseModel)}
    sections["providers.replicate"] = ProviderSettings
    found = [(section, name) for section, model in sections.items() for name, field in model.model_fields.items()
             if float in (field.annotation, *typing.get_args(field.annotation))]
    assert {("generate", "budget_usd"), ("generate", "call_timeout_s"), ("queue", "heartbeat_s"),
            ("providers.replicate", "timeout_s")} <= set(found)
    assert {GenerateSettings, QueueSettings} <= set(sections.values())
    return found


@pytest.mark.parametrize("value", ["inf", "-inf", "nan", "1e400"])
@pytest.mark.parametrize(("section", "name"), _number_settings())
def test_inf_or_nan_in_any_number_setting_is_refused_naming_its_line(tmp_path: Path, section: str, name: str,
                                                                     value: str) -> None:
    """``budget_usd = inf`` and ``call_timeout_s = inf`` (TOML has inf and nan) were read as "no cap" and "no
    deadline" while ``price_usd = inf`` was refused; ``nan`` was refused as "not greater than 0". Each is now
    refused as no finite number, saying what leaving the setting out means."""
    config = tmp_path / "limner.toml"
    config.write_text(f'catalog = "catalog.yaml"\n[{section}]\n{name} = {value}\n', encoding="utf-8")
    with pytest.raises(ConfigError) as info:
        load_settings(config)
    shown = str(float(value))
    assert f"{config}:3: setting '{section}.{name}': must be a finite number, got {shown}; leave it out for " \
        in info.value.message, info.value.message
    if (section, name) == ("generate", "budget_usd"):
        assert info.value.message.endswith("leave it out for no cap")


def test_inf_from_a_variable_is_refused_naming_the_variable(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LIMNER_GENERATE_BUDGET_USD", "inf")
    with pytest.raises(ConfigError) as info:
        load_settings(project_dir=tmp_path)
    assert "environment variable LIMNER_GENERATE_BUDGET_USD: setting 'generate.budget_usd': must be a finite " \
        "number, got inf; leave it out for no cap" in info.value.message


@pytest.mark.parametrize("option", ["max_wait_s = inf", "poll_interval_s = nan", "nested = { waits = [1.0, inf] }"])
def test_inf_or_nan_in_a_provider_s_own_option_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                         option: str) -> None:
    """A provider's own options are passed on as given: ``[providers.fal] max_wait_s = inf`` waited for ever."""
    config = tmp_path / "limner.toml"
    config.write_text(f"[providers.fal]\nmodel = \"fal-ai/flux/dev\"\n{option}\n", encoding="utf-8")
    with pytest.raises(ConfigError) as info:
        load_settings(config)
    name = option.split(" ")[0]
    assert f"{config}:3: setting 'providers.fal.{name}" in info.value.message
    assert "must be a finite number" in info.value.message and "leave it out for the provider's default" \
        in info.value.message
    monkeypatch.setenv("LIMNER_PROVIDERS", '{"fal": {"max_wait_s": Infinity}}')  # JSON's Infinity and NaN too
    with pytest.raises(ConfigError) as info:
        load_settings(project_dir=tmp_path / "elsewhere")  # no limner.toml there
    assert "environment variable LIMNER_PROVIDERS: setting 'providers.fal.max_wait_s': must be a finite number" \
        in info.value.message


def test_a_limner_config_variable_that_names_no_file_is_named(project_dir: ProjectDir) -> None:
    """``LIMNER_CONFIG`` left in the shell, naming a file that is gone, said only ``nope.toml: configuration file
    not found``, when no --config had been typed."""
    import subprocess
    import sys

    for value, said in (("nope.toml", "nope.toml: configuration file not found"),
                        (str(project_dir.root), f"{project_dir.root}: a folder, not a file")):
        proc = subprocess.run([sys.executable, "-m", "limner", "status"], cwd=project_dir.root, capture_output=True,
                              text=True, env=project_dir.env(LIMNER_CONFIG=value), timeout=120)
        assert proc.returncode == 2 and f"error: environment variable LIMNER_CONFIG: {said}" in proc.stderr, \
            proc.stderr
    proc = project_dir.run("status", env=project_dir.env(LIMNER_CONFIG="nope.toml"))  # --config wins, and works
    assert proc.returncode == 0, proc.stderr
    proc = subprocess.run([sys.executable, "-m", "limner", "--config", "nope.toml", "status"], cwd=project_dir.root,
                          capture_output=True, text=True, env=project_dir.env(), timeout=120)
    assert proc.returncode == 2 and "error: nope.toml: configuration file not found" in proc.stderr
