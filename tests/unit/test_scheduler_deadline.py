"""Near the deadline, a task that cannot finish is held back for the next job instead of started.

Time and the deadline arrive in events (``Deadline``, ``ClockTick``); a task's expected time is its
own (``Task.expected``: the user's) or, once enough tasks of its shape completed, the 90th percentile
of their runtimes.  When nothing runs and nothing queued can start, the core says so at once.
"""

from __future__ import annotations

import pytest

from mpilauncher.core.estimates import MIN_SAMPLES, PERCENTILE, RuntimeEstimates
from mpilauncher.core.events import (
    AgentJoined,
    AgentLost,
    AllDone,
    ClockTick,
    Deadline,
    HeldBack,
    Retract,
    Retracted,
    Start,
    TaskFinished,
)
from mpilauncher.core.scheduler import HELD, Scheduler
from mpilauncher.core.tasks import Task


def task(i: int, expected: float | None = None, cores: int = 1) -> Task:
    return Task(i, f"./t {i}", cores, line=i + 1, expected=expected)


def step(sched: Scheduler, *events) -> list:
    actions = sched.handle(*events)
    sched.validate()
    return actions


def started(actions) -> list[int]:
    return [a.task_id for a in actions if isinstance(a, Start) and a.after is None]


def held(actions) -> list[HeldBack]:
    return [a for a in actions if isinstance(a, HeldBack)]


def done(actions) -> list[AllDone]:
    return [a for a in actions if isinstance(a, AllDone)]


# -- the user's expected time ------------------------------------------------------------------
def test_a_task_that_cannot_finish_before_the_deadline_is_held_back_and_the_others_start():
    sched = Scheduler([task(0, 100.0), task(1, 10.0), task(2)], standby=True)
    actions = step(sched, AgentJoined(0, "n0", 3), Deadline(50.0), ClockTick(0.0))
    assert started(actions) == [1, 2], "task 2 has no expected time and no estimate: it starts"
    assert held(actions) == [HeldBack(0, 100.0, 50.0, estimated=False)]
    assert sched.status[0] == HELD and 0 not in sched.running, "no fact says it started: the ledger keeps it queued"


def test_the_time_left_is_counted_from_the_latest_clock_tick():
    sched = Scheduler([task(0, 5.0), task(1, 5.0)], standby=True)
    assert started(step(sched, AgentJoined(0, "n0", 1), Deadline(20.0), ClockTick(0.0))) == [0]
    actions = step(sched, TaskFinished(0, 0, start=0.0, runtime=5.0), ClockTick(14.0))
    assert started(actions) == [1], "6 s left, 5 needed"
    sched = Scheduler([task(0, 5.0), task(1, 5.0)], standby=True)
    step(sched, AgentJoined(0, "n0", 1), Deadline(20.0), ClockTick(0.0))
    actions = step(sched, TaskFinished(0, 0, start=0.0, runtime=5.0), ClockTick(16.0))
    assert started(actions) == [] and held(actions) == [HeldBack(1, 5.0, 4.0, estimated=False)]


def test_without_a_deadline_expected_times_change_nothing():
    sched = Scheduler([task(0, 1e6), task(1, 1e6)], standby=True)
    assert started(step(sched, AgentJoined(0, "n0", 2), ClockTick(0.0))) == [0, 1]


def test_a_held_task_does_not_hold_up_a_later_one_that_fits():
    sched = Scheduler([task(0, 10.0), task(1, 100.0), task(2, 100.0), task(3, 1.0)], standby=True)
    step(sched, AgentJoined(0, "n0", 1), Deadline(50.0), ClockTick(0.0))
    actions = step(sched, TaskFinished(0, 0, runtime=10.0), ClockTick(10.0))
    assert [h.task_id for h in held(actions)] == [1, 2] and started(actions) == [3]


# -- nothing can start and nothing runs: stop at once -------------------------------------------------
def test_when_only_held_tasks_are_left_and_nothing_runs_the_run_is_over_at_once():
    sched = Scheduler([task(0, 5.0), task(1, 30.0), task(2, 30.0)], standby=True)
    first = step(sched, AgentJoined(0, "n0", 2), Deadline(20.0), ClockTick(0.0))
    assert started(first) == [0] and [h.task_id for h in held(first)] == [1, 2] and done(first) == []
    actions = step(sched, TaskFinished(0, 0, runtime=5.0), ClockTick(5.0))
    assert done(actions) == [AllDone(held=2)], "15 s before the deadline, with nothing left that can finish"


def test_the_run_ends_as_soon_as_the_last_running_task_ends_with_only_held_ones_left():
    sched = Scheduler([task(0, 5.0), task(1, 5.0), task(2, 30.0)], standby=True)
    first = step(sched, AgentJoined(0, "n0", 1), Deadline(12.0), ClockTick(0.0))
    assert started(first) == [0] and done(first) == []
    second = step(sched, TaskFinished(0, 0, runtime=5.0), ClockTick(5.0))
    assert started(second) == [1] and [h.task_id for h in held(second)] == [] and done(second) == []
    third = step(sched, TaskFinished(1, 0, runtime=5.0), ClockTick(10.0))
    assert [h.task_id for h in held(third)] == [2]
    assert done(third) == [AllDone(held=1)], "nothing runs and nothing can start: stop now, not at the deadline"


def test_tasks_that_fit_no_node_left_end_the_run_instead_of_waiting_forever():
    sched = Scheduler([task(0, cores=4), task(1, cores=4), task(2, cores=1)], standby=True)
    step(sched, AgentJoined(0, "big", 4), AgentJoined(1, "small", 2))
    actions = step(sched, AgentLost(0))
    assert 2 in sched.running
    actions = step(sched, TaskFinished(2, 0))
    assert done(actions) == [AllDone(stranded=2)], "tasks 0 and 1 need 4 cores, and no node left has them"


def test_a_paced_sweep_waiting_for_its_turn_is_not_stranded():
    sched = Scheduler([task(0), task(1)], start_interval=10.0)
    step(sched, AgentJoined(0, "n0", 2), ClockTick(0.0))
    actions = step(sched, TaskFinished(0, 0), ClockTick(1.0))
    assert done(actions) == [] and sched.next_start_due == 10.0


# -- the estimate from the sweep's own tasks -------------------------------------------------------
def test_the_estimate_is_the_90th_percentile_of_completed_tasks_of_the_same_shape():
    estimates = RuntimeEstimates()
    shape = (1, 0, False)
    for runtime in range(1, MIN_SAMPLES):
        estimates.add(shape, float(runtime))
    assert estimates.of(shape) is None, "too few to say"
    estimates.add(shape, 10.0)
    assert PERCENTILE == 90 and estimates.of(shape) == pytest.approx(9.1)
    assert estimates.of((2, 0, False)) is None, "another shape has its own"
    assert estimates.longest == 10.0


def test_the_estimate_follows_the_runtimes_as_more_tasks_complete():
    estimates = RuntimeEstimates()
    shape = (1, 0, False)
    for _ in range(MIN_SAMPLES):
        estimates.add(shape, 1.0)
    assert estimates.of(shape) == pytest.approx(1.0)
    for _ in range(10 * MIN_SAMPLES):
        estimates.add(shape, 100.0)
    assert estimates.of(shape) == pytest.approx(100.0)


def sweep_with_history(runtimes: list[float], count: int) -> Scheduler:
    """One core; ``len(runtimes)`` tasks completed with those runtimes, then ``count`` more queued."""
    total = len(runtimes) + count
    sched = Scheduler([task(i) for i in range(total)], standby=False)
    now = 0.0
    step(sched, AgentJoined(0, "n0", 1), Deadline(1000.0), ClockTick(now))
    for i, runtime in enumerate(runtimes):
        now += runtime
        step(sched, TaskFinished(i, 0, runtime=runtime), ClockTick(now))
    return sched


def test_an_estimated_task_is_held_only_once_enough_tasks_of_its_shape_completed():
    sched = Scheduler([task(i) for i in range(30)], standby=False)
    step(sched, AgentJoined(0, "n0", 1), Deadline(100.0), ClockTick(0.0))
    now = 0.0
    for i in range(MIN_SAMPLES - 1):
        now += 9.0
        actions = step(sched, TaskFinished(i, 0, runtime=9.0), ClockTick(now))
        assert not held(actions)
    # 81 s gone, 19 left: the next one still starts (no estimate yet); then the estimate (9 s) holds
    now += 9.0
    actions = step(sched, TaskFinished(MIN_SAMPLES - 1, 0, runtime=9.0), ClockTick(now))
    assert started(actions) == [MIN_SAMPLES], "10 s left, 9 needed"
    now += 9.0
    actions = step(sched, TaskFinished(MIN_SAMPLES, 0, runtime=9.0), ClockTick(now))
    assert started(actions) == [] and held(actions)[0] == HeldBack(MIN_SAMPLES + 1, 9.0, 1.0, estimated=True)
    assert done(actions) and done(actions)[0].held == 30 - MIN_SAMPLES - 1


def test_failed_tasks_do_not_count_in_the_estimate():
    sched = Scheduler([task(i) for i in range(30)], standby=False)
    step(sched, AgentJoined(0, "n0", 1), Deadline(100.0), ClockTick(0.0))
    for i in range(20):  # fast failures: 0.1 s each
        step(sched, TaskFinished(i, 1, runtime=0.1), ClockTick(0.1 * (i + 1)))
    actions = step(sched, TaskFinished(20, 1, runtime=0.1), ClockTick(99.5))
    assert started(actions) == [21], "no completed task yet: no estimate, nothing held"


def test_the_runtimes_of_earlier_runs_of_the_sweep_count():
    history = [(task(100), [9.0] * MIN_SAMPLES)]
    sched = Scheduler([task(0), task(1)], standby=False, history=history)
    actions = step(sched, AgentJoined(0, "n0", 1), Deadline(5.0), ClockTick(0.0))
    assert started(actions) == [] and held(actions)[0] == HeldBack(0, 9.0, 5.0, estimated=True)


def test_the_runtimes_of_earlier_runs_given_for_later_are_read_at_the_first_estimate_and_their_longest_at_once():
    """A resume gives the longest earlier runtime now and the runtimes when an estimate is first asked
    for: far from the deadline they are not read, and the end game begins by the longest all the same."""
    reads: list[int] = []

    def earlier():
        reads.append(1)
        return [(task(100), [9.0] * MIN_SAMPLES)]

    sched = Scheduler([task(i) for i in range(6)], standby=True, history_later=(9.0, earlier))
    first = step(sched, AgentJoined(0, "n0", 2), Deadline(100.0), ClockTick(0.0))
    assert started(first) == [0, 1] and [a for a in first if isinstance(a, Start) and a.after is not None]
    assert reads == [], "91 s left, more than twice the longest: no estimate asked for"
    actions = step(sched, ClockTick(83.0))  # 17 s left: less than twice the longest earlier runtime
    assert [a for a in actions if isinstance(a, Retract)], "the end game began by the longest given at once"
    for a in actions:
        if isinstance(a, Retract):
            step(sched, Retracted(a.task_id), ClockTick(83.0))
    actions = step(sched, TaskFinished(0, 0, runtime=1.0), ClockTick(95.0))  # 5 s left: 9 s expected
    assert reads == [1] and started(actions) == [] and held(actions)[0].expected == 9.0
    step(sched, TaskFinished(1, 0, runtime=1.0), ClockTick(95.5))
    assert reads == [1], "read once"


def test_a_task_of_its_own_expected_time_is_not_judged_by_the_estimate():
    history = [(task(100), [50.0] * MIN_SAMPLES)]
    sched = Scheduler([task(0, 2.0), task(1)], standby=False, history=history)
    actions = step(sched, AgentJoined(0, "n0", 2), Deadline(5.0), ClockTick(0.0))
    assert started(actions) == [0] and [h.task_id for h in held(actions)] == [1]


# -- the end game: no hand-off, no standby ---------------------------------------------------------
def test_near_the_deadline_no_standby_is_sent_and_waiting_ones_are_asked_back():
    sched = Scheduler([task(i, 10.0) for i in range(8)], standby=True)
    first = step(sched, AgentJoined(0, "n0", 2), Deadline(100.0), ClockTick(0.0))
    behind = [a for a in first if isinstance(a, Start) and a.after is not None]
    assert behind, "far from the deadline standbys go ahead as usual"
    actions = step(sched, ClockTick(85.0))  # 15 s left: less than twice the longest expected time
    asked = [a.task_id for a in actions if isinstance(a, Retract)]
    assert sorted(asked) == sorted(a.task_id for a in behind)
    for tid in asked:
        step(sched, Retracted(tid), ClockTick(85.0))
    actions = step(sched, TaskFinished(0, 0, runtime=10.0), ClockTick(86.0))
    assert not [a for a in actions if isinstance(a, Start) and a.after is not None], "no new standby"
    assert started(actions) == [2], "14 s left: it fits, through the placement pass (not a hand-off)"
    actions = step(sched, TaskFinished(1, 0, runtime=10.0), ClockTick(95.0))
    assert started(actions) == [] and [h.task_id for h in held(actions)] == [3, 4, 5, 6, 7]
