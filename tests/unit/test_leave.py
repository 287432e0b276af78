"""The command's exit (cli.leave): as one process, without the interpreter's teardown, and nothing lost."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

SCRIPT = """
import atexit, sys, threading, time
from mpilauncher.cli import leave

class Teardown:
    def __del__(self):
        sys.stdout.write("teardown ran\\n")

kept = Teardown()
atexit.register(lambda: sys.stdout.write("atexit ran\\n"))
sys.stdout.write("buffered, not flushed\\n")
{before}
leave(3)
"""


def run(before: str = "", shell_redirect: str = "") -> subprocess.CompletedProcess[str]:
    code = textwrap.dedent(SCRIPT).format(before=before)
    env = {k: v for k, v in os.environ.items() if k != "PYTHONUNBUFFERED"}  # stdout buffered, as a user's is
    command = ["sh", "-c", f'"$0" -c "$1" {shell_redirect}', sys.executable, code]
    return subprocess.run(command, capture_output=True, text=True, env=env)


def test_one_process_leaves_with_its_status_after_atexit_and_the_flush_without_the_teardown():
    result = run()
    assert result.returncode == 3, result.stderr
    assert result.stdout == "buffered, not flushed\natexit ran\n", "no teardown: no __del__ of a module global"
    assert result.stderr == ""


def test_a_thread_still_going_gets_the_normal_exit_so_its_work_is_not_cut_short():
    result = run('threading.Thread(target=lambda: (time.sleep(0.3), sys.stdout.write("thread done\\n"))).start()')
    assert result.returncode == 3, result.stderr
    assert "thread done" in result.stdout and "teardown ran" in result.stdout


def test_a_full_stdout_changes_neither_the_status_nor_stderr():
    """The flush at the exit fails (ENOSPC): dropped, as the launcher drops every failed write to stdout
    (tests/e2e/test_trust.py runs the command itself with stdout closed and full)."""
    result = run(shell_redirect=">/dev/full")
    assert result.returncode == 3, result.stderr
    assert result.stderr == ""


def test_under_a_profiler_the_normal_exit_so_that_it_writes_what_it_saw(tmp_path):
    """benchmarks/README.md profiles the command with ``python -m cProfile -o prof -m mpilauncher``."""
    script = tmp_path / "script.py"
    script.write_text("from mpilauncher.cli import leave\nleave(0)\n")
    subprocess.run([sys.executable, "-m", "cProfile", "-o", str(tmp_path / "prof"), str(script)], check=True)
    assert (tmp_path / "prof").stat().st_size > 0
