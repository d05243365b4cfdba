"""Plugins that fail to load, whatever they raise, are a "cannot load plugin" error (exit 2), never a traceback."""

from __future__ import annotations

import importlib.metadata
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from limner.errors import EXIT_BAD_INPUT, PluginError
from limner.plugins import load_plugins
from limner.plugins import manager

PLUGINS = {
    "plug_missing_dep": ("import limner_no_such_module_anywhere\n",
                         "cannot load plugin 'plug_missing_dep': No module named 'limner_no_such_module_anywhere'"),
    "plug_raises": ("raise RuntimeError('needs a licence key')\n",
                    "cannot load plugin 'plug_raises': RuntimeError: needs a licence key"),
    "plug_syntax": ("def register_providers(register:\n    pass\n",
                    "cannot load plugin 'plug_syntax': {path}:1: SyntaxError: "),
    "plug_indent": ("def f():\n\tpass\n        x = 1\n",
                    "cannot load plugin 'plug_indent': {path}:3: TabError: inconsistent use of tabs and spaces"),
    "plug_wrong_args": (textwrap.dedent("""\
        import pluggy

        hookimpl = pluggy.HookimplMarker("limner")


        @hookimpl
        def register_providers(wrong):
            pass
        """), "cannot load plugin 'plug_wrong_args': PluginValidationError: Plugin 'plug_wrong_args' for hook "
              "'register_providers'; hookimpl definition: register_providers(wrong); Argument(s) {'wrong'} are "
              "declared in the hookimpl but can not be found in the hookspec"),
}


@pytest.fixture
def plugin_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    folder = tmp_path / "plugins"
    folder.mkdir()
    for name, (source, _) in PLUGINS.items():
        (folder / f"{name}.py").write_text(source, encoding="utf-8")
    monkeypatch.syspath_prepend(str(folder))
    return folder


@pytest.mark.parametrize("name", sorted(PLUGINS))
def test_a_plugin_that_fails_to_load_is_a_plugin_error(plugin_dir: Path, name: str) -> None:
    expected = PLUGINS[name][1].replace("{path}", str(plugin_dir / f"{name}.py"))
    for _ in range(2):  # loading it again reports it again: nothing half-registered is taken as loaded
        with pytest.raises(PluginError) as info:
            load_plugins([name])
        assert info.value.exit_code == EXIT_BAD_INPUT == 2
        assert str(info.value).startswith(expected), str(info.value)
        assert "\n" not in str(info.value)
    assert not manager.get_plugin_manager().has_plugin(name)


def test_an_entry_point_that_fails_to_load_is_a_plugin_error(plugin_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    broken = importlib.metadata.EntryPoint(name="raising", value="plug_raises", group="limner")
    monkeypatch.setattr(importlib.metadata, "entry_points", lambda group: [broken] if group == "limner" else [])
    monkeypatch.setattr(manager, "_pm", None)  # a fresh manager reads the entry points (restored afterwards)
    with pytest.raises(PluginError) as info:
        manager.get_plugin_manager()
    assert str(info.value) == "cannot load plugin 'raising' (plug_raises): RuntimeError: needs a licence key"


@pytest.mark.parametrize("name", ["plug_raises", "plug_syntax", "plug_wrong_args"])
def test_the_cli_exits_2_without_a_traceback_and_changes_nothing(project_dir, plugin_dir: Path, name: str) -> None:
    env = project_dir.env(LIMNER_PLUGINS=f"limner.testing,{name}",
                          PYTHONPATH=os.pathsep.join([str(plugin_dir), os.environ.get("PYTHONPATH", "")]))
    before = sorted(project_dir.root.rglob("*"))
    for command in ("status", "generate"):
        proc = subprocess.run([sys.executable, "-m", "limner", "--config", str(project_dir.config), command],
                              cwd=project_dir.root, capture_output=True, text=True, timeout=120, env=env)
        assert proc.returncode == 2, proc.stderr
        assert f"cannot load plugin {name!r}: " in proc.stderr and "Traceback" not in proc.stderr
    assert project_dir.calls() == [] and sorted(project_dir.root.rglob("*")) == before
