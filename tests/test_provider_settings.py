"""Each provider declares the ``[providers.<name>]`` settings it reads (``accepted_settings``); any other key of
its section is an error naming the file, the line, the section and the key, with a "did you mean" and the
settings it takes. A provider that declares nothing (a plugin written before) takes any key, as before.

That every key a provider reads is declared is checked by the shared provider suite
(``test_every_setting_it_reads_is_declared``) and, for the providers the suite does not run, below and in their
own test files (diffusers, mflux, sketch)."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from pathlib import Path

import pytest

from limner.config.settings import ProviderSettings
from limner.errors import ConfigError
from limner.providers.base import COMMON_SETTINGS, GenerationRequest
from limner.providers.builtin import BUILTIN_PROVIDERS
from limner.registry import provider_class
from limner.runner import Selection, build_plan
from limner.testing.fake_provider import FakeProvider
from limner.testing.provider_suite import settings_read, undeclared_settings


def test_the_common_settings_are_the_declared_fields_of_a_provider_section() -> None:
    assert COMMON_SETTINGS == set(ProviderSettings.model_fields)


@pytest.mark.parametrize("name", [spec.name for spec in BUILTIN_PROVIDERS] + ["fake"])
def test_every_shipped_provider_declares_its_settings(name: str) -> None:
    cls = provider_class(name)
    assert cls.accepted_settings is not None, f"{name} declares no accepted_settings"
    assert isinstance(cls.accepted_settings, frozenset)
    assert not undeclared_settings(cls, cls.image_settings), "a setting that changes the image is one it takes"


def test_every_setting_the_fake_provider_reads_is_declared(tmp_path: Path) -> None:
    given = FakeProvider(settings={"size": 32, "latency_s": 0, "calls_file": str(tmp_path / "calls.jsonl"),
                                   "spans_file": str(tmp_path / "spans.jsonl"), "retry_after": 0.01})
    call = GenerationRequest(prompt="p", negative_prompt="", width=64, height=64, seed=1, model="",
                             context={"id": "a"})
    read = asyncio.run(settings_read(given, call))
    assert {"refuse_ids", "blank_ids", "corrupt_ids", "auth_fail", "rate_limit_ids", "transient_ids"} <= read
    assert undeclared_settings(FakeProvider, read) == set()


# ------------------------------------------------------------------ unknown keys


def _line(config: Path, text: str) -> int:
    return config.read_text(encoding="utf-8").splitlines().index(text) + 1


def test_a_misspelt_setting_names_its_line_the_closest_name_and_what_the_provider_takes(project_dir) -> None:
    """``concurency = 4`` was passed on to the provider, which never read it: the run kept its default."""
    project_dir.write_config("concurency = 4\n")  # in [providers.fake], written last
    line = _line(project_dir.config, "concurency = 4")
    project = project_dir.project()
    try:
        for attempt in (lambda: build_plan(project, Selection()), lambda: project.provider("fake")):
            with pytest.raises(ConfigError) as info:
                attempt()
            message = info.value.message
            assert info.value.exit_code == 2
            assert (f"{project_dir.config}:{line}: setting 'providers.fake.concurency': unknown setting of provider "
                    "'fake' (did you mean 'concurrency'?); it takes ") in message, message
            takes = message.rpartition("it takes ")[2].split(", ")
            assert {"concurrency", "model", "price_usd", "refuse_ids", "calls_file"} <= set(takes)
            assert info.value.hint and "docs/providers.md" in info.value.hint
    finally:
        project.close()


def test_check_names_every_misspelt_setting_of_every_section(project_dir) -> None:
    project_dir.write_config("[providers.replicate]\nmodel = \"black-forest-labs/flux-dev\"\nconcurency = 4\n"
                             "[providers.diffusers]\nmax_sequense_length = 256\n")
    proc = project_dir.run("check")
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr
    assert (f"limner.toml:{_line(project_dir.config, 'concurency = 4')}: setting 'providers.replicate.concurency': "
            "unknown setting of provider 'replicate' (did you mean 'concurrency'?)") in proc.stderr, proc.stderr
    assert (f"limner.toml:{_line(project_dir.config, 'max_sequense_length = 256')}: setting "
            "'providers.diffusers.max_sequense_length': unknown setting of provider 'diffusers' (did you mean "
            "'max_sequence_length'?)") in proc.stderr, proc.stderr


def test_generate_with_a_misspelt_setting_changes_nothing(project_dir) -> None:
    project_dir.write_config("refuse_idz = [\"event-001\"]\n")
    proc = project_dir.run("generate")
    assert proc.returncode == 2, proc.stderr
    assert "setting 'providers.fake.refuse_idz': unknown setting of provider 'fake' (did you mean 'refuse_ids'?)" \
        in proc.stderr
    assert project_dir.calls() == [] and not (project_dir.root / ".limner").exists()


def test_a_setting_given_in_a_variable_is_named_with_it(project_dir, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LIMNER_PROVIDERS", '{"fake": {"sise": 32}}')
    with pytest.raises(ConfigError) as info:
        project_dir.project().provider("fake")
    assert ("environment variable LIMNER_PROVIDERS: setting 'providers.fake.sise': unknown setting of provider 'fake' "
            "(did you mean 'size'?)") in info.value.message


LOOSE_PLUGIN = '''
from limner.plugins import hookimpl
from limner.providers import GenerationResult, Provider
from limner.registry import ProviderSpec
from limner.testing.fake_provider import noisy_png


class LooseProvider(Provider):  # written before providers declared their settings: declares none
    name = "loose"

    async def generate(self, request):
        assert self.settings["anything_at_all"] == 7
        return GenerationResult(data=noisy_png(request.width, request.height, request.seed), seed=request.seed)


@hookimpl
def register_providers(register):
    register(ProviderSpec("loose", "loose_plugin:LooseProvider"))
'''


def test_a_plugin_provider_that_declares_nothing_takes_any_setting(project_dir, tmp_path: Path) -> None:
    folder = tmp_path / "plugins"
    folder.mkdir()
    (folder / "loose_plugin.py").write_text(LOOSE_PLUGIN, encoding="utf-8")
    project_dir.write_config("[providers.loose]\nanything_at_all = 7\n", provider="loose")
    env = project_dir.env(LIMNER_PLUGINS="limner.testing,loose_plugin",
                          PYTHONPATH=os.pathsep.join([str(folder), os.environ.get("PYTHONPATH", "")]))
    for command in (("check",), ("generate", "--limit", "1")):
        proc = subprocess.run([sys.executable, "-m", "limner", "--config", str(project_dir.config), *command],
                              cwd=project_dir.root, capture_output=True, text=True, timeout=120, env=env)
        assert proc.returncode in (0, 1) and "unknown setting" not in proc.stderr, (command, proc.stderr)
    assert "Generated 1 of 1" in proc.stdout, proc.stdout + proc.stderr
