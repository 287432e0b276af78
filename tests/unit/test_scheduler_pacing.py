"""Paced starts (start_interval, PyLauncher's delay): at most one start every so many seconds."""

from __future__ import annotations

import pytest

from mpilauncher.core.events import AgentJoined, AllDone, ClockTick, Start, TaskFinished
from mpilauncher.core.scheduler import Scheduler
from mpilauncher.core.tasks import Task


def tasks(n: int) -> list[Task]:
    return [Task(i, f"./t {i}", 1, False, i + 1) for i in range(n)]


def started(actions) -> list[int]:
    return [a.task_id for a in actions if isinstance(a, Start)]


def step(sched: Scheduler, *events) -> list:
    actions = sched.handle(*events)
    sched.validate()
    return actions


def test_one_start_per_interval_however_many_cores_are_free():
    sched = Scheduler(tasks(4), standby=True, start_interval=2.0)
    assert started(step(sched, AgentJoined(0, "n0", 8), ClockTick(100.0))) == [0]
    assert sched.next_start_due == 102.0, "the master wakes then"
    assert started(step(sched, ClockTick(101.9))) == []
    assert started(step(sched, ClockTick(102.0))) == [1]
    assert started(step(sched, ClockTick(103.0))) == []
    assert started(step(sched, ClockTick(104.5))) == [2], "one start, not a burst to catch up"
    assert started(step(sched, ClockTick(105.0))) == []
    assert sched.next_start_due == 106.5


def test_paced_tasks_take_no_standby_and_no_hand_off_so_every_start_waits_its_turn():
    sched = Scheduler(tasks(3), standby=True, start_interval=1.0)
    first = step(sched, AgentJoined(0, "n0", 1), ClockTick(0.0))
    assert [(a.task_id, a.after) for a in first if isinstance(a, Start)] == [(0, None)], "no standby sent ahead"
    ended = step(sched, TaskFinished(0, 0), ClockTick(0.5))
    assert started(ended) == [], "the freed core is not handed on before the interval"
    assert sched.next_start_due == 1.0
    assert started(step(sched, ClockTick(1.0))) == [1]


def test_nothing_due_when_no_queued_task_fits_or_none_is_left():
    sched = Scheduler(tasks(2), start_interval=1.0)
    step(sched, AgentJoined(0, "n0", 1), ClockTick(0.0))
    step(sched, ClockTick(5.0))
    assert sched.next_start_due is None, "task 1 waits for a core, not for the pace: the master must not spin"
    assert started(step(sched, TaskFinished(0, 0), ClockTick(5.1))) == [1]
    actions = step(sched, TaskFinished(1, 0), ClockTick(5.2))
    assert any(isinstance(a, AllDone) for a in actions) and sched.next_start_due is None


def test_without_a_clock_tick_a_paced_scheduler_starts_nothing():
    sched = Scheduler(tasks(1), start_interval=1.0)
    assert started(step(sched, AgentJoined(0, "n0", 1))) == []


@pytest.mark.parametrize("interval", [None, 0.5])
def test_unpaced_schedulers_ignore_clock_ticks(interval):
    sched = Scheduler(tasks(3), start_interval=interval)
    actions = step(sched, AgentJoined(0, "n0", 4), ClockTick(0.0))
    assert started(actions) == ([0, 1, 2] if interval is None else [0])
