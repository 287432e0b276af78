"""Task runners with real processes: in-process ProcessRunner and the executor lanes.

Standby starts (``after=``) and their retraction must behave the same in both.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from mpilauncher.execution.executor import Executors
from mpilauncher.execution.processes import Ended, ProcessRunner


@pytest.fixture(params=["inline", "one-lane", "two-lanes"])
def runner(request):
    env = dict(os.environ)
    if request.param == "inline":
        made = ProcessRunner(guard=False, base_env=env)
    else:
        made = Executors(env, lanes=1 if request.param == "one-lane" else 2, cores=2)
    yield made
    made.close()


def collect(runner, count: int, timeout: float = 20.0) -> list[Ended]:
    ended: list[Ended] = []
    deadline = time.monotonic() + timeout
    while len(ended) < count and time.monotonic() < deadline:
        ended += runner.wait(0.05)
    return ended


def start(runner, tmp_path: Path, task_id: int, command: str, after=None, core: int = 0):
    output, exec_file = str(tmp_path / f"out{task_id}"), (str(tmp_path / f"exec{task_id}"), command)
    return runner.start(task_id, command, {"PYL_ID": str(task_id)}, output, (), None, after, core, exec_file)


def test_a_standby_starts_when_its_predecessor_ends(runner, tmp_path):
    start(runner, tmp_path, 1, "sleep 0.3; date +%s.%N")
    start(runner, tmp_path, 2, "date +%s.%N", after=1)
    time.sleep(0.1)
    assert not (tmp_path / "out2").exists()  # still waiting
    ended = collect(runner, 2)
    assert [e.task_id for e in ended] == [1, 2]
    assert (tmp_path / "exec2").read_text() == "date +%s.%N"
    first_end = ended[0].start + ended[0].runtime
    assert ended[1].start >= first_end - 0.01
    assert float((tmp_path / "out2").read_text()) >= float((tmp_path / "out1").read_text())


def test_a_standby_behind_a_task_that_already_ended_starts_at_once(runner, tmp_path):
    start(runner, tmp_path, 1, "true")
    assert [e.task_id for e in collect(runner, 1)] == [1]
    start(runner, tmp_path, 2, "true", after=1)
    assert [e.task_id for e in collect(runner, 1)] == [2]


def test_a_retracted_standby_never_runs(runner, tmp_path):
    start(runner, tmp_path, 1, "sleep 0.3")
    start(runner, tmp_path, 2, f"touch {tmp_path}/ran", after=1)
    runner.retract(2)
    ended = collect(runner, 1)
    assert [e.task_id for e in ended] == [1]
    assert runner.retracted == [2]
    assert collect(runner, 1, timeout=0.3) == []
    assert not (tmp_path / "out2").exists() and not (tmp_path / "ran").exists()
    assert not (tmp_path / "exec2").exists()  # exec<N> only for tasks that started


def test_retracting_a_started_standby_changes_nothing(runner, tmp_path):
    start(runner, tmp_path, 1, "true")
    start(runner, tmp_path, 2, "sleep 0.2", after=1)
    ended = collect(runner, 1)
    runner.retract(2)
    ended += collect(runner, 1)
    assert [e.task_id for e in ended] == [1, 2] and ended[1].exit_code == 0
    assert runner.retracted == []


def test_stop_drops_standbys_and_ends_running_tasks(runner, tmp_path):
    start(runner, tmp_path, 1, "sleep 30")
    start(runner, tmp_path, 2, f"touch {tmp_path}/ran", after=1)
    assert runner.wait(0.1) == []  # (sends the requests to the executor)
    ended = runner.stop_all(1.0)
    assert [e.task_id for e in ended] == [1] and ended[0].exit_code < 0
    assert collect(runner, 1, timeout=0.3) == []
    assert not (tmp_path / "out2").exists() and not (tmp_path / "ran").exists()


def test_lanes_are_separate_processes_chosen_by_first_core(tmp_path):
    runner = Executors(dict(os.environ), lanes=2, cores=4)
    try:
        assert runner.lanes == 2
        for task_id, core in enumerate([0, 1, 2, 3]):
            start(runner, tmp_path, task_id, "echo $PPID", core=core)
        assert len(collect(runner, 4)) == 4
        parents = [(tmp_path / f"out{i}").read_text().strip() for i in range(4)]
        assert parents[0] == parents[1] != parents[2] == parents[3]
    finally:
        runner.close()


def test_lanes_never_outnumber_cores():
    runner = Executors(dict(os.environ), lanes=8, cores=3)
    try:
        assert runner.lanes == 3
    finally:
        runner.close()


@pytest.mark.parametrize("wait", [30 * 86400.0, 1e300, float("inf")])
def test_waits_and_task_timeouts_beyond_what_epoll_takes(runner, tmp_path, wait):
    """--task-timeout 30-00:00:00 (beyond epoll's 2**31 ms) and waits as long: a task still ends and is seen."""
    output = str(tmp_path / "out1")
    runner.start(1, "sleep 0.2", {}, output, (), 30 * 86400.0, None, 0, None)
    ended: list[Ended] = []
    deadline = time.monotonic() + 20
    while not ended and time.monotonic() < deadline:
        ended = runner.wait(wait)
    assert [(e.task_id, e.exit_code, e.timed_out) for e in ended] == [(1, 0, False)]
