"""The CLI starts in a blink: commands import heavy libraries only when they run.

These check *what* is imported, which is stable, rather than how long it takes (see
bench/bench_startup.py for the timings)."""

from __future__ import annotations

import json
import subprocess
import sys

from limner import __version__

HEAVY = ("sqlalchemy", "alembic", "PIL", "numpy", "scipy", "httpx", "pydantic_settings", "jinja2", "yaml",
         "rich.console", "limner.project", "limner.db", "limner.imaging.derive", "sqlalchemy.orm", "limner.db.models",
         "limner.runner.forkserver_exit")
#: the ORM and the classes that map the tables: a run's hot path, ``plan`` and ``status`` use Core tables
ORM = {"sqlalchemy.orm", "limner.db.models"}


def imported_after(code: str, cwd=None, env=None) -> list[str]:
    script = f"""
import json, sys
{code}
print(json.dumps(sorted(m for m in {HEAVY!r} if m in sys.modules)))
"""
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=cwd, env=env, timeout=120)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout.strip().splitlines()[-1])


def run_cli(*args: str) -> str:
    return f"""
from limner.cli.app import app
try:
    app({list(args)!r}, prog_name="limner")
except SystemExit:
    pass
"""


def test_importing_the_cli_imports_nothing_heavy():
    assert imported_after("import limner.cli.app") == []


def test_version_and_help_import_nothing_heavy():
    assert imported_after(run_cli("--version")) == []
    assert imported_after(run_cli("--help")) == []
    assert imported_after(run_cli("generate", "--help")) == []


def test_version_prints_the_version():
    proc = subprocess.run([sys.executable, "-m", "limner", "--version"], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0 and proc.stdout.strip() == f"limner {__version__}"


def test_the_runner_imports_neither_the_imaging_stack_nor_alembic():
    """The main process of ``generate`` makes calls; Pillow and the codecs run in the pool's workers."""
    mods = imported_after("import limner.runner.run, limner.runner.unit")
    assert not {"PIL", "numpy", "scipy", "alembic", "httpx", "limner.imaging.derive", *ORM} & set(mods), mods
    assert "rich.console" not in mods  # rich comes with the progress bar, when it is shown


def test_status_and_plan_import_neither_alembic_nor_the_imaging_stack(make_project_dir):
    project_dir = make_project_dir(n=3, provider="sketch")
    env = project_dir.env_without_the_test_plugin()  # the default provider, no test plugin
    project_dir.run("generate", check=True, env=env)
    for command in ("status", "plan"):
        mods = imported_after(run_cli("--config", str(project_dir.config), command), cwd=project_dir.root, env=env)
        assert not {"alembic", "PIL", "numpy", "scipy", "limner.imaging.derive", *ORM} & set(mods), (command, mods)


def test_a_plan_with_entries_to_generate_imports_no_orm(make_project_dir):
    """What runs before the first provider call (the plan, its rows queued, the run recorded) uses Core
    tables: the ORM is imported while the first calls are out (runner/run.py)."""
    project_dir = make_project_dir(n=3, provider="sketch")
    env = project_dir.env_without_the_test_plugin()
    code = f"""
from pathlib import Path
from limner.config import load_settings
from limner.project import Project
from limner.runner import Selection, build_plan
from limner.runner.claims import RunIdentity
project = Project(load_settings(Path({str(project_dir.config)!r})))
plan = build_plan(project, Selection())
assert len(plan.items) == 3, plan.items
project.repo.sync_entries((i.entry.id, i.entry.title, i.style.name, i.fingerprint) for i in plan.items)
run = RunIdentity()
project.repo.start_run(run.id, run.host, run.pid)
item = plan.items[0]
assert project.repo.claim(item.entry.id, item.fingerprint, run.id).status == "claimed"
project.repo.open_call_lines([dict(entry_id=item.entry.id, fingerprint=item.fingerprint, run_id=run.id,
                                   provider="sketch", model="m", estimate_usd=0.0)])
"""
    mods = imported_after(code, cwd=project_dir.root, env=env)
    assert "sqlalchemy" in mods and not ORM & set(mods), mods


def test_the_command_exits_with_its_code_and_flushes_its_output(project_dir, tmp_path):
    """``main`` leaves without tearing the interpreter down: the exit code, the output and the exit
    handlers must be what a normal exit gives."""
    proc = subprocess.run([sys.executable, "-m", "limner", "--config", str(project_dir.config), "plan", "--json"],
                          capture_output=True, text=True, env=project_dir.env(), timeout=120)
    assert proc.returncode == 0 and json.loads(proc.stdout)["planned"] == 6
    bad = subprocess.run([sys.executable, "-m", "limner", "--config", str(tmp_path / "missing.toml"), "plan"],
                         capture_output=True, text=True, env=project_dir.env(), timeout=120)
    assert bad.returncode == 2 and "error" in bad.stderr
    script = (
        "import atexit, sys\n"
        "from limner.cli.app import main\n"
        f"atexit.register(lambda: open({str(tmp_path / 'ran')!r}, 'w').write('yes'))\n"
        "sys.argv = ['limner', '--version']\n"
        "main()\n"
    )
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0 and out.stdout.strip() == f"limner {__version__}"
    assert (tmp_path / "ran").read_text() == "yes"


def test_the_imaging_pools_results_unpickle_without_the_imaging_stack(tmp_path):
    """A worker's result (validated + derived) crosses to the main process pickled; unpickling imports the
    modules of its classes. They live in limner.imaging.results, so the main process does not import NumPy
    and Pillow (about 60 ms of its GIL) when the first image comes back."""
    import io
    import pickle

    from PIL import Image

    from limner.runner.imaging_task import DeriveOptions, Provenance, process_master

    buf = io.BytesIO()
    Image.radial_gradient("L").convert("RGB").resize((96, 64)).save(buf, "PNG")
    options = DeriveOptions(widths=(64,), formats=("webp",), placeholder_width=32, placeholder_format="webp",
                            placeholder_max_bytes=100_000, max_bytes=10_000_000, max_pixels=10_000_000)
    processed = process_master(buf.getvalue(), Provenance("e", "t", "p", "m", "fake", 1), options)
    (tmp_path / "result.pickle").write_bytes(pickle.dumps(processed))
    mods = imported_after(f"import pickle; r = pickle.loads(open({str(tmp_path / 'result.pickle')!r}, 'rb').read()); "
                          "assert r.derived.variants and r.validated.phash")
    assert not {"PIL", "numpy", "limner.imaging.derive"} & set(mods), mods


def test_the_console_script_pauses_the_collector_only_for_its_start_up():
    """``limner`` (limner.cli.entry) runs without the cyclic collector while it imports (40-50 ms of passes
    over objects that all live on); the run turns it back on (``startup_over``), and a command that never
    does gets it back after ``STARTUP_LIMIT_S`` anyway."""
    script = """
import gc, json, time
from limner import gcpause
gcpause.pause_for_startup(limit_s=0.3)
paused = not gc.isenabled()
gcpause.startup_over()
back = gc.isenabled() and gc.get_freeze_count() > 0
gcpause.pause_for_startup(limit_s=0.2)
again = not gc.isenabled()
time.sleep(0.6)
print(json.dumps([paused, back, again, gc.isenabled()]))
"""
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout) == [True, True, True, True]


def test_the_console_script_answers_version_before_importing_the_cli():
    script = ("import json, sys\nsys.argv = ['limner', '--version']\nfrom limner.cli.entry import main\nmain()\n"
              "print(json.dumps(sorted(m for m in ('typer', 'click', 'pydantic', 'limner.cli.app') if m in sys.modules)))")
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    version, imported = proc.stdout.strip().splitlines()
    assert version == f"limner {__version__}" and json.loads(imported) == []


def test_a_ctrl_c_while_the_command_imports_exits_130_without_a_traceback():
    """A SIGINT that came while the command was still importing (before it set up its own handling) printed
    Python's KeyboardInterrupt traceback; it is now one line and exit 130, as a shell reports an interrupt."""
    script = ("import sys\nimport limner.cli.app as app\n"
              "def interrupted():\n    raise KeyboardInterrupt\n"
              "app.main = interrupted\nsys.argv = ['limner', 'status']\n"
              "from limner.cli.entry import main\nmain()\n")
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 130 and proc.stderr == "limner: interrupted\n", proc.stderr


def test_the_console_script_imports_httpx_without_its_command_line_interface(project_dir):
    """httpx's CLI (click, rich, pygments) is imported with httpx unless its import fails; the console
    script makes it fail: the run needs httpx, never its CLI."""
    script = ("import atexit, json, sys\n"
              "atexit.register(lambda: print(json.dumps(sorted(m for m in ('httpx', 'httpx._main', 'pygments', 'click') "
              "if sys.modules.get(m) is not None))))\n"
              f"sys.argv = ['limner', '--config', {str(project_dir.config)!r}, 'providers']\n"
              "from limner.cli.entry import main\nmain()\n")
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60,
                          env=project_dir.env())
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout.strip().splitlines()[-1]) == ["httpx"]


def test_importing_the_cli_does_not_import_asyncio():
    """asyncio (about 25 ms) comes with the commands that run a loop (generate, worker, queue...), not with
    ``--help``, ``status`` or ``plan``."""
    proc = subprocess.run([sys.executable, "-c", "import sys, limner.cli.app; print('asyncio' in sys.modules)"],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0 and proc.stdout.strip() == "False", proc.stderr


def test_the_pools_forkserver_leaves_without_tearing_its_interpreter_down():
    """The forkserver preloads limner.runner.forkserver_exit first: at its exit (its parent gone) it leaves at
    once, so a reader of the command's output through a pipe does not wait for NumPy and Pillow to unload.
    Here an exit handler registered before the module never runs; the main process never imports it."""
    from limner.runner.pool import _preload

    assert _preload()[0] == "limner.runner.forkserver_exit"
    script = ("import atexit; atexit.register(print, 'torn down'); import limner.runner.forkserver_exit; "
              "print('preloaded', flush=True); raise SystemExit(3)")
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert proc.stdout.split() == ["preloaded"] and proc.returncode == 0, (proc.stdout, proc.returncode)
    assert "limner.runner.forkserver_exit" not in imported_after("import limner.runner.run, limner.runner.unit")


def test_importing_the_orm_classes_configures_their_mappers():
    """A run imports limner.db.models on a thread while its first calls are out; the mappers are configured by
    that import, not by the first Render made on the event loop when the first answer is in."""
    script = ("import limner.db.models as m; print(sorted(mp.class_.__name__ for mp in m.Base.registry.mappers "
              "if not mp.configured))")
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0 and proc.stdout.strip() == "[]", (proc.stdout, proc.stderr)
