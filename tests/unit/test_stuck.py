"""When a task's process is named as asleep in the kernel (stuck.py), and when it is not.

The rule against a fake /proc (``sleep_of``); the real thing, a write to a frozen file system
in each runner, is in test_runners.py."""

from __future__ import annotations

import os
import re
import subprocess
import time

import pytest

from mpilauncher.execution.stuck import STUCK_AFTER, Sleepers, duration, kernel_sleep, stuck_after

# Pids that exist nowhere: their trees are only themselves (no /proc/<pid>/task to list).
MAIN, CHILD = 2_000_000_001, 2_000_000_002


class FakeProc:
    """What ``kernel_sleep`` reads: pid -> (command name, CPU ticks) while in state D."""

    def __init__(self) -> None:
        self.asleep: dict[int, tuple[str, int]] = {}

    def __call__(self, pid: int):
        return self.asleep.get(pid)


@pytest.fixture
def proc():
    return FakeProc()


def sleepers(proc, after: float = 600.0) -> Sleepers:
    return Sleepers(after, node="c401-001", sleep_of=proc)


def named(task_id: int, pid: int, name: str, slept: str) -> str:
    return (
        f"task {task_id} on c401-001: its process {pid} ({name}) has slept in the kernel for {slept} (state D)"
        " using no CPU: a hung file system or device? No signal ends it until the kernel lets it go"
    )


def test_a_process_in_one_sleep_for_the_whole_time_is_named_once(proc):
    watch = sleepers(proc)
    proc.asleep[MAIN] = ("dd", 40)
    assert watch.look({7: MAIN}, 1000.0) == []  # first seen
    assert watch.look({7: MAIN}, 1599.0) == []  # not yet 600 s
    assert watch.look({7: MAIN}, 1600.0) == [named(7, MAIN, "dd", "10 min")]
    assert watch.look({7: MAIN}, 1660.0) == [], "said once"
    assert watch.look({7: MAIN}, 2600.0) == []


def test_a_process_that_uses_cpu_between_looks_is_working_not_stuck(proc):
    """Slow I/O puts a process in state D at every look, but it runs between them: its CPU time grows."""
    watch = sleepers(proc)
    for step in range(20):
        proc.asleep[MAIN] = ("cp", 40 + step)
        assert watch.look({7: MAIN}, 1000.0 + 60 * step) == []


def test_a_process_seen_awake_in_between_starts_the_count_again(proc):
    watch = sleepers(proc)
    proc.asleep[MAIN] = ("dd", 40)
    watch.look({7: MAIN}, 1000.0)
    del proc.asleep[MAIN]
    watch.look({7: MAIN}, 1300.0)
    proc.asleep[MAIN] = ("dd", 40)
    assert watch.look({7: MAIN}, 1600.0) == []
    assert watch.look({7: MAIN}, 2200.0) == [named(7, MAIN, "dd", "10 min")]


def test_a_child_asleep_below_a_waiting_shell_is_the_one_named(proc, tmp_path):
    """``sh -c 'cmd > file; next'``: the shell waits (state S) and its child sleeps in the kernel."""
    shell = subprocess.Popen(["sh", "-c", "sleep 30; true"])
    try:
        deadline = time.monotonic() + 10
        while not (children := open(f"/proc/{shell.pid}/task/{shell.pid}/children").read().split()):
            assert time.monotonic() < deadline
            time.sleep(0.01)
        child = int(children[0])
        proc.asleep[child] = ("sleep", 3)  # (as if it were in state D)
        watch = sleepers(proc, after=5)
        watch.look({3: shell.pid}, 0.0)
        (line,) = watch.look({3: shell.pid}, 5.0)
        assert re.sub(r", in \w+\)", ")", line) == named(3, child, "sleep", "5 s")  # (where it waits: a real one)
    finally:
        shell.kill()
        shell.wait()


def test_a_named_task_says_when_it_wakes_or_ends_and_nothing_once_given_up(proc):
    watch = sleepers(proc)
    proc.asleep.update({MAIN: ("dd", 1), CHILD: ("tar", 2)})
    watch.look({1: MAIN, 2: CHILD}, 0.0)
    assert len(watch.look({1: MAIN, 2: CHILD}, 600.0)) == 2
    del proc.asleep[MAIN]  # its file system came back; the task runs on
    woke = f"task 1 on c401-001: its process {MAIN} (dd) woke after 11 min in the kernel"
    assert watch.look({1: MAIN, 2: CHILD}, 660.0) == [woke]
    assert watch.ended(1, 700.0) is None, "said once"
    assert watch.ended(2, 720.0) == f"task 2 on c401-001: its process {CHILD} (tar) woke after 12 min in the kernel"
    assert not watch
    proc.asleep[MAIN] = ("dd", 1)
    watch.look({3: MAIN}, 1000.0)
    watch.look({3: MAIN}, 1600.0)
    assert watch.look({}, 1660.0) == [], "given up (a stop, a timeout): the give-up said it all"
    assert not watch


def test_a_task_never_seen_asleep_costs_nothing_at_its_end(proc):
    watch = sleepers(proc)
    watch.look({1: MAIN}, 0.0)
    assert not watch and watch.ended(1, 1.0) is None


def test_the_kernels_own_answer_for_a_live_process_and_one_gone():
    assert kernel_sleep(os.getpid()) is None  # running (state R): not asleep in the kernel
    assert kernel_sleep(MAIN) is None


@pytest.mark.parametrize(
    ("value", "after"),
    [(None, STUCK_AFTER), ("", STUCK_AFTER), ("30", 30.0), (" 2.5 ", 2.5), ("0", 0.0), ("ten", None),
     ("-1", None), ("nan", None), ("inf", None)],
)  # fmt: skip
def test_mpilauncher_stuck_after_is_seconds_and_anything_else_is_refused(value, after):
    environ = {} if value is None else {"MPILAUNCHER_STUCK_AFTER": value}
    assert stuck_after(environ) == after


def test_looks_come_a_tenth_of_the_wait_apart_and_at_most_a_minute():
    assert Sleepers(600.0).interval == 60.0
    assert Sleepers(86_400.0).interval == 60.0
    assert Sleepers(30.0).interval == 3.0
    assert Sleepers(0.5).interval == 0.1


@pytest.mark.parametrize(("seconds", "text"), [(0.4, "0 s"), (45, "45 s"), (119, "119 s"), (600, "10 min")])
def test_durations_read_as_a_person_says_them(seconds, text):
    assert duration(seconds) == text
