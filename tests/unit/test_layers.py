"""Every layer imports only below it (test_core_purity.py keeps the core itself pure).

The order, lowest first; a module may import its own package and the layers below,
never a peer package of its own layer nor anything above::

    outbox                     the thread that writes the launcher's output (the standard library only)
    records, heap, procfs, programs, plural, _loghandler   how a value record is declared (instead of
                               dataclasses); the collector's rules; what /proc says of a process; where a
                               program is on PATH; "1 task", "2 tasks"; the messages' handler (imported
                               with logging, at the first message)
    errors, protocol, log      what goes wrong, the wire records (imported by the executor too), the messages
    core                       the scheduling core
    execution, transport, persistence, report, cluster, spawn
    runtime, config, relaunch, chain, submit, commands, result   the master and the agent (and its serving loop)
                                                  beside it; report and output, which read a sweep; a run's result
    workdirs                   where a sweep's files go (its workdir, its queuestate's folder)
    rank0                      rank 0's part of a run: plan, master, report
    launch                     which part this process plays (agent ranks never import rank0)
    cli
    compat
    mpilauncher (the package's __init__), __main__

Imports inside functions count too: a lazy import is still an arrow.
"""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from pathlib import Path

import pytest

import mpilauncher

PACKAGE = Path(mpilauncher.__file__).resolve().parent
LAYERS: tuple[tuple[str, ...], ...] = (
    ("outbox",),
    ("records", "heap", "procfs", "programs", "plural", "_loghandler"),
    ("errors", "protocol", "log"),
    ("core",),
    ("execution", "transport", "persistence", "report", "cluster", "spawn"),
    ("runtime", "config", "relaunch", "chain", "submit", "commands", "result"),
    ("workdirs",),
    ("rank0",),
    ("launch",),
    ("cli",),
    ("compat",),
    ("__init__", "__main__"),
)
#: Names taken from the package itself that are not modules: ``__init__`` defines them before its
#: first import, so importing them runs nothing above the importer.
ROOT_CONSTANTS = {"__version__"}
LAYER_OF = {unit: depth for depth, units in enumerate(LAYERS) for unit in units}
MODULES = sorted(PACKAGE.rglob("*.py"))


def unit_of(module: str) -> str:
    """``mpilauncher.transport.mpi`` -> ``transport``; the package itself -> ``__init__``."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def module_name(path: Path, root: Path = PACKAGE) -> str:
    relative = path.relative_to(root.parent).with_suffix("")
    parts = list(relative.parts)
    if parts[-1] == "__init__" and len(parts) > 1:
        parts.pop()
    return ".".join(parts)


def our_imports(path: Path, root: Path = PACKAGE) -> set[str]:
    """The ``mpilauncher`` modules ``path`` imports, anywhere in it (``from mpilauncher import x`` names x)."""
    package = module_name(path, root).split(".")
    if path.name != "__init__.py":
        package = package[:-1]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), filename=str(path))):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.split(".")[0] == "mpilauncher")
        elif isinstance(node, ast.ImportFrom):
            base = ".".join(package[: len(package) - node.level + 1]) if node.level else ""
            module = ".".join(filter(None, [base, node.module or ""]))
            if module.split(".")[0] != "mpilauncher":
                continue
            if module == "mpilauncher":  # from mpilauncher import cluster, relaunch
                found.update(f"mpilauncher.{a.name}" for a in node.names if a.name not in ROOT_CONSTANTS)
            else:
                found.add(module)
    return found


def test_every_module_belongs_to_a_layer():
    units = {unit_of(module_name(path)) for path in MODULES}
    assert units <= set(LAYER_OF), f"modules outside every layer: {sorted(units - set(LAYER_OF))}"


@pytest.mark.parametrize("path", MODULES, ids=lambda p: str(p.relative_to(PACKAGE)))
def test_a_module_imports_only_its_own_package_and_the_layers_below(path: Path):
    importer = unit_of(module_name(path))
    for imported in our_imports(path):
        unit = unit_of(imported)
        if unit == importer:
            continue
        assert LAYER_OF[unit] < LAYER_OF[importer], (
            f"{module_name(path)} imports {imported}: {unit} is not below {importer}"
        )


def test_transport_knows_nothing_of_the_runtime():
    """The arrow that used to run back up: transport/mpi.py held the agent's serving loop."""
    for path in (PACKAGE / "transport").glob("*.py"):
        assert not {m for m in our_imports(path) if unit_of(m) in ("runtime", "execution")}, path.name


def test_the_wire_records_depend_on_nothing_of_ours_and_on_the_standard_library_only():
    """protocol.py sits below everything: the executor process imports it too, with nothing but the
    standard library (and without dataclasses, whose import would cost each executor ~6 ms)."""
    path = PACKAGE / "protocol.py"
    assert our_imports(path) == set()
    tree = ast.parse(path.read_text(encoding="utf-8"))
    imported = {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    imported |= {n.module or "" for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)}
    assert imported <= {"__future__", "collections"}, imported


def test_mpi4py_is_imported_by_the_mpi_transport_and_the_spawn_proxy_only():
    """README: transport/mpi.py is the launcher's one mpi4py import; spawn.py is a separate program."""
    importers = set()
    for path in MODULES:
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else []
            if isinstance(node, ast.ImportFrom):
                names = [node.module or ""]
            if any(name.split(".")[0] == "mpi4py" for name in names):
                importers.add(str(path.relative_to(PACKAGE)))
    assert importers == {"transport/mpi.py", "spawn.py"}


def test_the_checker_sees_relative_lazy_and_package_imports(tmp_path: Path):
    probe = PACKAGE / "transport" / "mpi.py"
    assert "mpilauncher.errors" in our_imports(probe)
    source = "def f():\n    from mpilauncher import cluster\n    from ..runtime.agent import Agent\n"
    fake = tmp_path / "mpilauncher" / "transport" / "x.py"
    fake.parent.mkdir(parents=True)
    fake.write_text(source)
    assert our_imports(fake, tmp_path / "mpilauncher") == {"mpilauncher.cluster", "mpilauncher.runtime.agent"}


def run_probe(probe: str) -> None:
    """Run ``probe`` (Python code that asserts) in a fresh interpreter: imports are counted from nothing."""
    env = {**os.environ, "PYTHONPATH": str(Path(mpilauncher.__file__).parent.parent)}
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=60, env=env)
    assert result.returncode == 0, result.stderr


def test_the_command_line_does_not_load_the_pylauncher_layer_and_a_script_gets_every_name():
    """``python -m mpilauncher`` runs on every rank of an MPI job: the PyLauncher layer (20-30 ms of
    imports a process) is loaded only when a script asks for one of its names."""
    probe = (
        "import sys, mpilauncher.cli, mpilauncher.launch; assert 'mpilauncher.compat' not in sys.modules;"
        "import mpilauncher as pylauncher; from mpilauncher import compat;"
        "missing = [n for n in compat.__all__ if getattr(pylauncher, n) is not getattr(compat, n)];"
        "assert not missing, missing; assert set(compat.__all__) <= set(dir(pylauncher));"
        "namespace = {}; exec('from mpilauncher import *', namespace);"
        "assert {'ClassicLauncher', 'RunResult', 'InputError'} <= set(namespace), sorted(namespace)"
    )
    run_probe(probe)


def test_an_agent_rank_does_not_load_rank_0s_modules():
    """Every rank of an MPI job imports the command line before MPI starts, and the job starts when
    the slowest has (benchmarks/dispatch.py: 65 ranks on 2 CPUs): what only rank 0 uses -- the plan,
    the scheduler, the queuestate, the observers -- is imported by rank 0 alone (launch.py)."""
    probe = (
        "import sys, mpilauncher.cli, mpilauncher.launch, mpilauncher.runtime.serve, mpilauncher.transport.mpi;"
        "mpilauncher.cli.process_began();"
        "rank0 = ['mpilauncher.rank0', 'mpilauncher.core.scheduler', 'mpilauncher.core.events',"
        " 'mpilauncher.runtime.master', 'mpilauncher.persistence.store', 'mpilauncher.persistence.queuestate',"
        " 'mpilauncher.report.progress', 'mpilauncher.report.trace', 'mpilauncher.report.joblog',"
        " 'mpilauncher.submit', 'mpilauncher.persistence.lock', 'json'];"
        "loaded = [m for m in rank0 if m in sys.modules]; assert not loaded, loaded"
    )
    run_probe(probe)


def test_an_ordinary_run_does_not_load_submit_mode_or_subprocess(tmp_path: Path):
    """Every rank of an MPI job starts the command line: submit mode's backend (sbatch, squeue) and the
    subprocess module (~10 ms of imports) load only when a run submits jobs or chains them."""
    (tmp_path / "lines").write_text("true\n")
    probe = (
        "import sys, mpilauncher.cli; status = mpilauncher.cli.main(['lines', '--workdir', 'w', '--quiet']);"
        "loaded = [m for m in ('subprocess', 'mpilauncher.submit.backend', 'mpilauncher.submit.slurm')"
        " if m in sys.modules]; assert status == 0 and not loaded, (status, loaded)"
    )
    env = {**os.environ, "PYTHONPATH": str(Path(mpilauncher.__file__).parent.parent)}
    result = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, timeout=60, env=env, cwd=tmp_path
    )
    assert result.returncode == 0, result.stderr
