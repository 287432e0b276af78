"""The compiled executor (mpilauncher/execution/_cexecutor.c, a program): built where it can be, current,
really what the lanes run, and reading the requests as the interpreter does.  Its behaviour is tested
with the Python loop's, by the same tests (test_runners.py's runners, and the faults tests' EXECUTOR_LOOPS)."""

from __future__ import annotations

import marshal
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from mpilauncher.execution import executor
from mpilauncher.execution.executor import Executors, compiled_available, executor_argv
from mpilauncher.protocol import StartRequest

SOURCE = Path(executor.__file__).with_name("_cexecutor.c")
PROGRAM = Path(executor.PROGRAM)


def can_build() -> bool:
    """A C compiler: what pip needs to build the executor (no Python headers: it is a program of its own)."""
    return bool(shutil.which(os.environ.get("CC", "cc")) or shutil.which("gcc"))


def test_the_compiled_loop_is_built_where_a_c_compiler_is():
    if not can_build():
        pytest.skip("no C compiler here: the executors run their Python loop")
    assert compiled_available(), "pip install -e . (or pip install .) builds mpilauncher/execution/_cexecutor.c"


def test_a_built_executor_beside_its_source_is_not_older_than_it():
    """In a checkout (an editable install), a program older than the .c would test yesterday's loop."""
    if PROGRAM.exists():
        assert PROGRAM.stat().st_mtime >= SOURCE.stat().st_mtime, f"{PROGRAM.name} is stale: run pip install -e ."


@pytest.mark.parametrize("compiled", [True, False], ids=["compiled", "python"])
def test_lanes_run_the_loop_asked_for(tmp_path, compiled):
    if compiled and not compiled_available():
        pytest.skip("the compiled executor is not built here")
    runner = Executors(dict(os.environ), lanes=1, cores=1, compiled=compiled)
    try:
        runner.start(StartRequest(1, "true", (0,), output=str(tmp_path / "out1"), env_changes={}))
        ended = []
        while not ended:
            ended = runner.wait(5)
        assert ended[0].exit_code == 0
        program = os.readlink(f"/proc/{runner.pids[0]}/exe")  # (it served a task: past any exec of its own)
        assert program == (str(PROGRAM.resolve()) if compiled else os.path.realpath(sys.executable))
    finally:
        runner.close()


def test_the_executors_python_loop_serves_alone():
    """The compiled executor's arguments end with the Python loop's command, which it runs instead where
    it cannot serve (no subreaper): that command serves by itself (told BYE at once here, it leaves with
    status 0 and nothing on its outputs); and so does the program."""
    python, compiled = executor_argv(False), executor_argv(True)
    assert compiled[0] == executor.PROGRAM and compiled[2:] == python
    bye = executor.frame(["BYE"])
    commands = [python] + ([compiled] if compiled_available() else [])
    for argv in commands:
        left = subprocess.run(argv, input=bye, capture_output=True, timeout=60)
        assert (left.returncode, left.stdout, left.stderr) == (0, b"", b""), argv[0]


@pytest.mark.parametrize("compiled", [True, False], ids=["compiled", "python"])
def test_a_request_reads_the_same_in_both_loops(tmp_path, compiled):
    """The compiled executor reads marshal itself: non-ASCII text, bytes that are not UTF-8 (a command
    read with surrogateescape), a value written twice (marshal's back reference), a variable removed,
    a float timeout: the task sees what the Python loop gives it."""
    if compiled and not compiled_available():
        pytest.skip("the compiled executor is not built here")
    word = "été-" + "x" * 300  # (a long str: marshal's 'u', not a short one)
    command = os.fsdecode(b'printf \'%s|%s|%s|%s\' "$A" "$B" "${GONE-unset}" \'\xff\xfe caf\xc3\xa9\'')
    env = {**os.environ, "GONE": "here"}
    changes = {"A": word, "B": word, "GONE": None}
    assert len(marshal.dumps(changes)) < 2 * len(word.encode())  # (the second value a back reference)
    runner = Executors(env, lanes=1, cores=1, compiled=compiled)
    try:
        out = tmp_path / "out é"
        runner.start(StartRequest(7, command, (0,), output=str(out), env_changes=changes, timeout=30.5))
        ended, deadline = [], time.monotonic() + 30
        while not ended and time.monotonic() < deadline:
            ended = runner.wait(1)
        assert [(e.task_id, e.exit_code) for e in ended] == [(7, 0)]
        expected = f"{word}|{word}|unset|".encode() + b"\xff\xfe caf\xc3\xa9"
        assert out.read_bytes() == expected
    finally:
        runner.close()


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


def test_a_request_the_compiled_executor_cannot_read_stops_it_loudly():
    """No task may wait for ever on a request that was dropped: one of a type the program does not
    know (never from its own agent) ends it with a line on stderr and a non-zero status, which its agent
    reports as a dead executor (as the Python loop's traceback is)."""
    if not compiled_available():
        pytest.skip("the compiled executor is not built here")
    unreadable = executor.frame(["S", (1, 2j)]) + executor.frame(["BYE"])
    left = subprocess.run(executor_argv(True), input=unreadable, capture_output=True, timeout=60)
    assert left.returncode == 1 and left.stdout == b"", left
    assert b"a request of " in left.stderr and b"could not be read" in left.stderr, left.stderr


def test_where_file_names_are_not_utf8_the_executors_run_the_python_loop_and_version_says_why(monkeypatch):
    """The program reads the requests' text as UTF-8 (what os.fsencode does under UTF-8): under an
    interpreter whose file system encoding is another, it would give a task other bytes than asked."""
    monkeypatch.setattr(sys, "getfilesystemencoding", lambda: "ascii")
    assert not compiled_available()
    assert executor.why_not_compiled() in (
        "the compiled one reads file names as UTF-8, this interpreter's are ascii",
        "the compiled one is not built: reinstall where a C compiler is, see README",
    )
    if PROGRAM.exists():
        assert "ascii" in executor.why_not_compiled()
