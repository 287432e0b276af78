"""The compiled executor loop (mpilauncher/execution/_cexecutor.c): built where it can be, current,
and really what the lanes run.  Its behaviour is tested with the Python loop's, by the same tests
(test_runners.py's runners, and the faults tests' EXECUTOR_LOOPS)."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

from mpilauncher.execution import executor
from mpilauncher.execution.executor import Executors, compiled_available
from mpilauncher.protocol import StartRequest

SOURCE = Path(executor.__file__).with_name("_cexecutor.c")


def can_build() -> bool:
    """A C compiler and this interpreter's headers: what pip needs to build the extension."""
    include = sysconfig.get_paths().get("include") or ""
    return bool(shutil.which(os.environ.get("CC", "cc")) or shutil.which("gcc")) and Path(include, "Python.h").exists()


def test_the_compiled_loop_is_built_where_a_c_compiler_is():
    if not can_build():
        pytest.skip("no C compiler or Python headers here: the executors run their Python loop")
    assert compiled_available(), "pip install -e . (or pip install .) builds mpilauncher/execution/_cexecutor.c"


def test_a_built_loop_beside_its_source_is_not_older_than_it():
    """In a checkout (an editable install), a .so older than the .c would test yesterday's loop."""
    for built in SOURCE.parent.glob("_cexecutor.*.so"):
        assert built.stat().st_mtime >= SOURCE.stat().st_mtime, f"{built.name} is stale: run pip install -e ."


@pytest.mark.parametrize("compiled", [True, False], ids=["compiled", "python"])
def test_lanes_run_the_loop_asked_for(tmp_path, compiled):
    if compiled and not compiled_available():
        pytest.skip("the compiled loop is not built here")
    runner = Executors(dict(os.environ), lanes=1, cores=1, compiled=compiled)
    try:
        runner.start(StartRequest(1, "true", (0,), output=str(tmp_path / "out1"), env_changes={}))
        ended = []
        while not ended:
            ended = runner.wait(5)
        assert ended[0].exit_code == 0
        maps = Path(f"/proc/{runner.pids[0]}/maps").read_text()  # (it served a task: past its imports)
        assert ("_cexecutor" in maps) == compiled
    finally:
        runner.close()


def test_where_the_compiled_loop_is_missing_its_boot_runs_the_python_loop():
    """An install without a C compiler has no _cexecutor: the same boot serves with the Python loop
    (here it is told BYE at once, and leaves with status 0 and nothing on its outputs)."""
    boot = executor._BOOT_COMPILED.replace("import _cexecutor", "import _no_compiled_loop_here")
    assert boot != executor._BOOT_COMPILED
    bye = executor.frame(["BYE"])
    left = subprocess.run([sys.executable, "-I", "-S", "-c", boot], input=bye, capture_output=True, timeout=60)
    assert (left.returncode, left.stdout, left.stderr) == (0, b"", b"")


def test_the_compiled_loop_uses_the_python_loops_constants():
    """The C file repeats the Python modules' constants (graces, intervals, the shell, the index header):
    one changed on one side only would make the two loops differ where no behaviour test looks."""
    from mpilauncher.execution import gather, leftovers, processes, watchdog

    defined = dict(re.findall(r"^#define (\w+) (.+)$", SOURCE.read_text(), re.M))
    python = {
        "TIMEOUT_GRACE": processes.TIMEOUT_GRACE, "UNWATCHED_POLL": processes.UNWATCHED_POLL,
        "KILL_WAIT": processes.KILL_WAIT, "LONGEST_WAIT": processes.LONGEST_WAIT,
        "WATCHDOG_GRACE": executor.WATCHDOG_GRACE, "GRACE": leftovers.GRACE,
        "SCAN_INTERVAL": leftovers.SCAN_INTERVAL, "RECHECK": leftovers.RECHECK, "MAX_WALK": leftovers.MAX_WALK,
        "EXEC_WAIT": watchdog.EXEC_WAIT, "EXEC_POLL": watchdog.EXEC_POLL,
        "PR_SET_CHILD_SUBREAPER": leftovers.PR_SET_CHILD_SUBREAPER,
    }  # fmt: skip
    assert {name: float(defined[name]) for name in python} == {name: float(v) for name, v in python.items()}
    assert defined["SHELL"] == f'"{processes.ProcessRunner.SHELL}"'
    assert defined["INDEX_HEADER"] == '"' + gather.INDEX_HEADER.replace("\n", "\\n") + '"'
