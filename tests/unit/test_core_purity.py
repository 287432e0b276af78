"""The scheduling core stays pure: no MPI, no processes, no clock, no sockets, no files."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import mpilauncher.core

CORE = Path(mpilauncher.core.__file__).resolve().parent
MODULES = sorted(CORE.glob("*.py"))

FORBIDDEN_MODULES = {"mpi4py", "subprocess", "os", "time", "socket", "threading", "select", "signal"}
#: Layers above the core that it must never reach into.
FORBIDDEN_PACKAGES = {
    "mpilauncher.runtime",
    "mpilauncher.transport",
    "mpilauncher.execution",
    "mpilauncher.persistence",
    "mpilauncher.launch",
    "mpilauncher.cli",
    "mpilauncher.compat",
    "mpilauncher.cluster",
}
FILE_IO_NAMES = {"open", "__import__", "exec", "eval"}
FILE_IO_METHODS = {"open", "read_text", "write_text", "read_bytes", "write_bytes", "import_module"}


def imported_modules(tree: ast.AST) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative import: inside the core package
                names.add("mpilauncher.core." + (node.module or ""))
            else:
                names.add(node.module or "")
    return names


def test_core_modules_are_found():
    expected = {"tasks.py", "scheduler.py", "slots.py", "events.py", "ledger.py", "ranges.py", "stats.py"}
    assert expected | {"observer.py", "nodes.py"} <= {m.name for m in MODULES}


@pytest.mark.parametrize("module", MODULES, ids=lambda p: p.name)
def test_core_module_imports_nothing_impure(module: Path):
    tree = ast.parse(module.read_text(encoding="utf-8"), filename=str(module))
    for name in imported_modules(tree):
        top = name.split(".")[0]
        assert top not in FORBIDDEN_MODULES, f"{module.name} imports {name}"
        assert not any(name == p or name.startswith(p + ".") for p in FORBIDDEN_PACKAGES), (
            f"{module.name} imports {name} from a layer above the core"
        )


@pytest.mark.parametrize("module", MODULES, ids=lambda p: p.name)
def test_core_module_does_no_file_io(module: Path):
    tree = ast.parse(module.read_text(encoding="utf-8"), filename=str(module))
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call):
            continue
        func = node.func
        if isinstance(func, ast.Name):
            assert func.id not in FILE_IO_NAMES, f"{module.name}:{node.lineno} calls {func.id}()"
        elif isinstance(func, ast.Attribute):
            assert func.attr not in FILE_IO_METHODS, f"{module.name}:{node.lineno} calls .{func.attr}()"


def test_the_master_reads_nothing_of_the_scheduler_but_what_handle_returns():
    """One mutator, and the facts carry what the loop needs: no peeking into the scheduler's maps."""
    master = CORE.parent / "runtime" / "master.py"
    tree = ast.parse(master.read_text(encoding="utf-8"))
    used = {
        node.attr
        for node in ast.walk(tree)
        if isinstance(node, ast.Attribute)
        and (getattr(node.value, "attr", None) == "scheduler" or getattr(node.value, "id", None) == "scheduler")
    }
    assert used == {"handle"}, "self.scheduler.X or scheduler.X for X other than handle"


def test_the_checker_catches_what_it_should():
    bad = ast.parse("import os.path\nfrom time import monotonic\nfrom mpi4py import MPI\nfrom .x import y\n")
    assert imported_modules(bad) == {"os.path", "time", "mpi4py", "mpilauncher.core.x"}
    calls = [n for n in ast.walk(ast.parse("open('f').read()\nPath('x').read_text()")) if isinstance(n, ast.Call)]
    names = {getattr(c.func, "id", None) or getattr(c.func, "attr", None) for c in calls}
    assert {"open", "read_text"} <= names
