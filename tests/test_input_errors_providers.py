"""An unknown provider name says where it was given: the catalogue (file, line, entry), a style, a setting
(its environment variable, .env or limner.toml line) or the --provider option; a usage error exits 2."""

from __future__ import annotations

import pytest

from limner.errors import CatalogError, ConfigError, StyleError
from limner.runner import Selection, build_plan


def plan(p, selection: Selection = Selection(), **overrides):
    project = p.project(**overrides)
    try:
        return build_plan(project, selection)
    finally:
        project.close()


def test_an_entry_with_an_unknown_provider_names_file_line_and_entry(project_dir) -> None:
    project_dir.catalog.write_text(
        "entries:\n  - id: a\n    title: A\n  - id: b\n    title: B\n    era: x\n    provider: nope\n"
        "  - id: c\n    provider: opnai\n    title: C\n", encoding="utf-8")
    with pytest.raises(CatalogError) as info:
        plan(project_dir)
    assert info.value.exit_code == 2
    assert [(p.file, p.line, p.entry, p.field) for p in info.value.problems] == [
        (str(project_dir.catalog), 7, "b", "provider"), (str(project_dir.catalog), 9, "c", "provider")]
    assert "catalog.yaml:7: entry 'b': field 'provider': unknown provider 'nope'" in str(info.value)
    assert "unknown provider 'opnai' (did you mean 'openai'?)" in str(info.value)


def test_an_entry_with_an_unknown_provider_in_csv_and_json(project_dir) -> None:
    csv = project_dir.root / "c.csv"
    csv.write_text("id,title,provider\na,A,\nb,B,nope\n", encoding="utf-8")
    with pytest.raises(CatalogError) as info:
        plan(project_dir, catalog="c.csv")
    assert str(info.value.problems[0]).startswith(f"{csv}: row 3: entry 'b': field 'provider': unknown provider 'nope'")
    js = project_dir.root / "c.json"
    js.write_text('[{"id": "a", "title": "A"},\n {"id": "b",\n  "title": "B",\n  "provider": "nope"}]', encoding="utf-8")
    with pytest.raises(CatalogError) as info:
        plan(project_dir, catalog="c.json")
    assert str(info.value.problems[0]).startswith(f"{js}:4: entry 'b': field 'provider': unknown provider 'nope'")


def test_many_entries_with_unknown_providers_read_the_catalogue_again_once(project_dir, monkeypatch) -> None:
    """Every entry naming an unknown provider is reported with its line, from one more reading of the file (one
    per entry made a 3,000-entry catalogue take minutes)."""
    import limner.catalog.loader as loader

    rows = "".join(f"  - id: e-{i}\n    title: E{i}\n    provider: opnai\n" for i in range(300))
    project_dir.catalog.write_text("entries:\n" + rows, encoding="utf-8")
    reads = []
    real = loader.read_yaml
    monkeypatch.setattr(loader, "read_yaml", lambda *a: reads.append(1) or real(*a))
    with pytest.raises(CatalogError) as info:
        plan(project_dir)
    assert len(info.value.problems) == 300 and info.value.problems[-1].line == 2 + 3 * 299 + 2
    assert len(reads) == 2  # loading the catalogue, then finding the lines


def test_an_entry_left_out_by_id_is_no_error(project_dir) -> None:
    entries = project_dir.entries()
    entries[1]["provider"] = "nope"
    project_dir.write_catalog(entries)
    assert [i.entry.id for i in plan(project_dir, Selection(ids=(entries[0]["id"],))).items] == [entries[0]["id"]]


def test_a_style_with_an_unknown_provider_names_the_style_and_its_line(project_dir) -> None:
    project_dir.write_config('[project]\ndefault_style = "house"\n[styles.house]\npositive = "{{ title }}"\nprovider = "nope"\n')
    with pytest.raises(StyleError) as info:
        plan(project_dir)
    text = str(info.value)
    assert info.value.exit_code == 2
    assert text.startswith(f"{project_dir.config}:") and "style 'house': field 'provider': unknown provider 'nope'" in text
    line = int(text.split(":", 2)[1])
    assert project_dir.config.read_text().splitlines()[line - 1].startswith("provider = \"nope\"")


def test_a_style_file_with_an_unknown_provider(project_dir) -> None:
    styles = project_dir.root / "styles"
    styles.mkdir()
    (styles / "filed.toml").write_text('positive = "{{ title }}"\nprovider = "nope"\n', encoding="utf-8")
    project_dir.write_config('[project]\ndefault_style = "filed"\n')
    with pytest.raises(StyleError) as info:
        plan(project_dir)
    assert str(info.value).startswith(f"{styles / 'filed.toml'}:2: style 'filed': field 'provider': unknown provider 'nope'")


def test_the_provider_setting_names_its_source(project_dir, monkeypatch: pytest.MonkeyPatch) -> None:
    project_dir.write_config(provider="nope")
    with pytest.raises(ConfigError) as info:
        plan(project_dir)
    assert str(info.value).startswith(f"{project_dir.config}:2: setting 'provider': unknown provider 'nope'")
    monkeypatch.setenv("LIMNER_PROVIDER", "nope2")
    with pytest.raises(ConfigError) as info:
        plan(project_dir)
    assert str(info.value).startswith("environment variable LIMNER_PROVIDER: setting 'provider': unknown provider 'nope2'")
    with pytest.raises(ConfigError) as info:
        plan(project_dir, Selection(provider="nope3"))
    assert str(info.value).startswith("option --provider: unknown provider 'nope3'")


def test_cli_plan_names_the_entry_and_doctor_exits_2(project_dir) -> None:
    entries = project_dir.entries()
    entries[2]["provider"] = "nope"
    project_dir.write_catalog(entries)
    proc = project_dir.run("plan")
    assert proc.returncode == 2 and proc.stdout == ""
    assert f"catalog.yaml:17: entry '{entries[2]['id']}': field 'provider': unknown provider 'nope'" in proc.stderr
    proc = project_dir.run("doctor", "-p", "nope")
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "option --provider: unknown provider 'nope'" in proc.stderr and proc.stdout == ""


# ------------------------------------------------------------------ [providers.<name>] sections


def test_a_section_of_an_unknown_provider_names_its_line_and_the_known_providers(project_dir) -> None:
    """``[providers.replicat]`` was passed over: a run on replicate had none of the settings meant for it."""
    project_dir.write_config('[providers.replicat]\nmodel = "black-forest-labs/flux-dev"\n')
    line = project_dir.config.read_text().splitlines().index("[providers.replicat]") + 1
    for attempt in (lambda: plan(project_dir), lambda: project_dir.project().provider("fake")):
        with pytest.raises(ConfigError) as info:
            attempt()
        message = info.value.message
        assert info.value.exit_code == 2
        assert (f"{project_dir.config}:{line}: section [providers.replicat]: unknown provider 'replicat' (did you "
                "mean 'replicate'?); known providers: ") in message, message
        known = message.rpartition("known providers: ")[2].split(", ")
        assert {"replicate", "sketch", "diffusers", "fake"} <= set(known)  # built in, and the fake's plugin


def test_commands_refuse_a_section_of_an_unknown_provider(project_dir) -> None:
    project_dir.write_config("[providers.sketchh]\nconcurrency = 2\n")
    line = project_dir.config.read_text().splitlines().index("[providers.sketchh]") + 1
    for command in (("check",), ("generate",), ("plan",), ("doctor",), ("providers",), ("worker",)):
        proc = project_dir.run(*command)
        assert proc.returncode == 2, (command, proc.stdout, proc.stderr)
        assert f"limner.toml:{line}: section [providers.sketchh]: unknown provider 'sketchh' (did you mean 'sketch'?)" \
            in proc.stderr, (command, proc.stderr)
        assert "Traceback" not in proc.stderr
    assert project_dir.calls() == [] and not (project_dir.root / ".limner").exists()


def test_a_plugin_s_provider_section_is_known_once_the_plugin_is_loaded(project_dir) -> None:
    """The fake provider comes from the ``limner.testing`` plugin: without it, ``[providers.fake]`` names no
    provider; with the plugin named in limner.toml (or LIMNER_PLUGINS), it does."""
    project_dir.write_config(provider="sketch")  # its [providers.fake] section stays
    proc = project_dir.run("plan", env=project_dir.env(LIMNER_PLUGINS=""))
    assert proc.returncode == 2 and "section [providers.fake]: unknown provider 'fake'" in proc.stderr, proc.stderr
    assert "hint: a plugin's provider is known once its plugin is loaded" in proc.stderr
    text = project_dir.config.read_text()
    project_dir.config.write_text('plugins = ["limner.testing"]\n' + text, encoding="utf-8")
    proc = project_dir.run("plan", env=project_dir.env(LIMNER_PLUGINS=""))
    assert proc.returncode == 0, proc.stderr


def test_section_names_are_checked_without_importing_any_provider_module(project_dir) -> None:
    """The registry knows the names; the providers' modules (httpx clients, torch hooks) are imported only for
    the provider a command builds."""
    import subprocess
    import sys

    project_dir.write_config("[providers.replicate]\nmodel = \"x\"\n[providers.openai]\n")
    code = ("import sys\nfrom limner.config import load_settings\nfrom limner.providers.sections import "
            f"check_provider_sections\ncheck_provider_sections(load_settings({str(project_dir.config)!r}))\n"
            "print(sorted(m for m in sys.modules if m.startswith('limner.providers.')))")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=project_dir.env(),
                          timeout=120)
    assert proc.returncode == 0, proc.stderr
    imported = eval(proc.stdout)  # noqa: S307 - the list printed just above
    assert "limner.providers.sections" in imported
    assert not {f"limner.providers.{name}" for name in ("replicate", "openai", "sketch", "hosted", "diffusers_local")} \
        & set(imported), imported
