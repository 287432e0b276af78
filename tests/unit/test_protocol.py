"""The wire records: one StartRequest from the master to the runner, cheap on every wire it crosses."""

from __future__ import annotations

import marshal
import pickle
import subprocess
import sys

from mpilauncher.execution import executor
from mpilauncher.execution.starters import Segment
from mpilauncher.protocol import Completions, Ended, Hello, StartRequest, StartTasks


def resolved() -> StartRequest:
    return StartRequest(
        42, "sh -c 'x'", (2, 3), (0,), 17, (), 41, "/w/out42", {"PYL_ID": "42", "OMPI_X": None}, (6, 7), 3600.0,
        ("/w/exec42", "#!/bin/sh\nx\n"),
    )  # fmt: skip


def test_a_resolved_start_crosses_the_executor_pipe_as_it_is():
    """The agent -> executor wire is marshal (standard library, C speed): the record's fields, framed."""
    request = resolved()
    data = executor.frame(["S", tuple(request)])
    message = marshal.loads(data[4:])
    assert int.from_bytes(data[:4], "little") == len(data) - 4
    assert message[0] == "S" and StartRequest._make(message[1]) == request


def test_the_masters_start_pickles_with_its_segments_for_the_mpi_wire():
    request = StartRequest(9, "./mpiprog", (0, 1), segments=(Segment("c101", 2, 64, "0-1"),))
    message = StartTasks((request,), retract=(3,))
    assert pickle.loads(pickle.dumps(message)) == message
    assert type(pickle.loads(pickle.dumps(message)).items[0]) is StartRequest


def test_records_keep_their_field_names_and_defaults():
    assert StartRequest(1, "true", (0,)) == (1, "true", (0,), (), 0, (), None, "", None, (), None, None, None)
    assert Hello("n", 2).version > 0 and Hello("n", 2).gpu_ids == ()
    assert Ended(1, 0, 0.0, 0.1).not_started == "" and Completions(()).retracted == ()
    assert Ended(1, 0, 0.0, 0.1).cpu_user is None, "an Ended of an older release loads: its usage is unknown"
    assert Ended(*(1, 0, 0.0, 0.1, False, 0, "")).max_rss is None


def test_an_executor_process_leaves_with_its_status_and_what_it_wrote_on_stderr():
    """leave() skips the interpreter's teardown (the agent waits for it at every run's end), not what
    a normal exit does that matters: a warning still in stderr's buffer comes out."""
    probe = executor._BOOT + "sys.stderr.write('executor: a warning'); executor.leave(3)"
    left = subprocess.run([sys.executable, "-I", "-S", "-c", probe], capture_output=True, text=True, timeout=60)
    assert (left.returncode, left.stderr, left.stdout) == (3, "executor: a warning", "")


def test_an_executor_process_imports_only_the_standard_library_and_no_dataclasses():
    """The executor is started as ``python -I -S``: what it imports is on every node's start-up path."""
    probe = executor._BOOT + "print(sorted(sys.modules))"
    loaded = subprocess.run([sys.executable, "-I", "-S", "-c", probe], capture_output=True, text=True, check=True)
    modules = set(eval(loaded.stdout))  # a printed list of names
    assert {"protocol", "processes", "leftovers", "watchdog"} <= modules
    assert not {"dataclasses", "typing", "inspect", "mpilauncher"} & modules
    assert "enum" not in modules, "signal's enums: a third of what the executor's imports cost"


def test_a_dead_executor_is_said_killed_by_its_signal_s_name():
    """The executor-side modules use the C module ``_signal`` (no names); the launcher's message names it."""
    assert (executor.signal_name(9), executor.signal_name(15), executor.signal_name(99)) == (
        "SIGKILL",
        "SIGTERM",
        "signal 99",
    )
