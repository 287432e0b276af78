"""A start the node could not carry out for the launcher's fault (``NeverStarted``), and the stop
that follows it (``StopDispatch(ask_back=True)``: the nodes go on running their tasks)."""

from __future__ import annotations

import heapq
import random

import pytest

from mpilauncher.core.events import (
    AgentJoined,
    AllDone,
    NeverStarted,
    Requeued,
    Retract,
    Retracted,
    Start,
    StopDispatch,
    TaskFinished,
)
from mpilauncher.core.ledger import COMPLETED, QUEUED, RUNNING
from mpilauncher.core.scheduler import STANDBY, InvalidTransition, Scheduler
from mpilauncher.core.tasks import Task
from tests.unit.test_scheduler import join, promoted, step, tasks_of

FAILURE = StopDispatch(ask_back=True)  # what the master sends with the first NeverStarted
NOT_STARTED = "never started"  # the reason a Requeued fact gives when the NeverStarted event named none


def test_a_task_that_never_started_is_queued_again_and_its_cores_are_free():
    sched = Scheduler(tasks_of(1, 1, 1, 1))
    step(sched, *join(2))
    assert step(sched, FAILURE, NeverStarted(0)) == [Requeued(0, 0, NOT_STARTED)]
    assert sched.status[0] == QUEUED and sched.pool.free_cores == 1
    assert step(sched, TaskFinished(1, 0)) == [AllDone()], "nothing starts after the failure"
    assert sorted(t for t, s in sched.status.items() if s == QUEUED) == [0, 2, 3]
    assert sched.pool.free_cores == 2


def test_without_a_stop_the_core_only_frees_the_cores_and_queues_the_task():
    """The core stays a pure state machine: stopping is the caller's decision."""
    sched = Scheduler(tasks_of(1, 1, 1))
    step(sched, *join(2))
    assert step(sched, NeverStarted(1)) == [Requeued(1, 0, NOT_STARTED), Start(0, 1, (1,))]


def test_the_standby_behind_it_was_started_at_once_and_takes_its_cores():
    sched = Scheduler(tasks_of(*[1] * 10), standby=True)
    step(sched, *join(2))  # 0 and 1 run; 2 waits behind 0, 3 behind 1
    actions = step(sched, FAILURE, NeverStarted(0))
    assert actions == [Retract(0, 2), Retract(0, 3), promoted(2, after=0), Requeued(0, 0, NOT_STARTED)]
    assert sched.status[2] == RUNNING and (sched.running[2].node, sched.running[2].core_ids) == (0, (0,))
    assert sched.status[3] == STANDBY, "asked back: queued when the node answers"
    assert step(sched, Retracted(3)) == []
    assert sched.status[3] == QUEUED
    assert step(sched, TaskFinished(2, 0)) == []
    assert step(sched, TaskFinished(1, 0)) == [AllDone()]
    assert sched.pool.free_cores == 2
    assert {t for t, s in sched.status.items() if s == COMPLETED} == {1, 2}


def test_a_promoted_standby_that_could_not_start_hands_on_to_the_one_behind_it():
    sched = Scheduler(tasks_of(*[1] * 10), standby=True)
    step(sched, *join(2))
    assert step(sched, TaskFinished(0, 0)) == [promoted(2, after=0), Start(0, 4, (0,), after=2)]
    actions = step(sched, FAILURE, NeverStarted(2))
    assert actions[-2:] == [promoted(4, after=2), Requeued(2, 0, NOT_STARTED)]
    assert sched.status[2] == QUEUED and (sched.running[4].node, sched.running[4].core_ids) == (0, (0,))


def test_asked_back_standbys_whose_predecessor_ended_first_run():
    sched = Scheduler(tasks_of(*[1] * 10), standby=True)
    step(sched, *join(2))
    step(sched, FAILURE, NeverStarted(0))
    assert step(sched, TaskFinished(1, 0)) == [promoted(3, after=1)], "the node started 3 before the Retract came"
    assert step(sched, TaskFinished(2, 0)) == []
    assert step(sched, TaskFinished(3, 0)) == [AllDone()]


def test_a_second_stop_after_the_failure_requeues_the_standbys_still_asked_back():
    """A signal during the drain: the nodes are shut down, which drops their standbys."""
    sched = Scheduler(tasks_of(*[1] * 10), standby=True)
    step(sched, *join(2))
    step(sched, FAILURE)
    assert sched.status[2] == sched.status[3] == STANDBY
    step(sched, StopDispatch())
    assert sched.status[2] == sched.status[3] == QUEUED and not sched.waiting


def test_never_started_for_a_task_that_does_not_run_is_refused():
    sched = Scheduler(tasks_of(1, 1))
    step(sched, *join(1))
    with pytest.raises(InvalidTransition):
        sched.handle(NeverStarted(1))


def test_gpus_of_a_task_that_never_started_are_free_again():
    sched = Scheduler([Task(i, f"t {i}", 1, gpus=1) for i in range(2)])
    step(sched, AgentJoined(0, "g", 2, gpus=2))
    step(sched, FAILURE, NeverStarted(0))
    assert 0 not in sched.running and len(sched.pool.nodes[0].free_gpus) == 1


# -- randomized: a node whose starts begin to fail at some point ---------------
@pytest.mark.parametrize("seed", range(6))
def test_random_failure_mid_sweep_leaves_every_task_done_once_or_queued(seed):
    rng = random.Random(seed)
    nodes = [rng.choice([2, 4]) for _ in range(4)]
    sched = Scheduler(tasks_of(*[1] * 200), standby=True)
    ends: list[tuple[float, int]] = []
    behind: dict[int, int] = {}  # the node's view: predecessor -> standby it will start
    running: set[int] = set()
    runs = dict.fromkeys(range(200), 0)
    fail_after = rng.randint(5, 120)  # the n-th start on the nodes fails, and every one after it
    started = 0
    clock = 0.0
    events: list = []

    def start_on_node(tid: int) -> None:
        nonlocal started
        started += 1
        if started >= fail_after:  # the output file cannot be created: reported, never run
            events.append(NeverStarted(tid))
            follower = behind.pop(tid, None)
            if follower is not None:  # nothing runs ahead of it: the node starts it at once
                start_on_node(follower)
            return
        runs[tid] += 1
        running.add(tid)
        heapq.heappush(ends, (clock + rng.expovariate(1.0), tid))

    def act(actions) -> None:
        for action in actions:
            if isinstance(action, Start):
                if action.after is not None and action.after in running:
                    behind[action.after] = action.task_id
                else:
                    start_on_node(action.task_id)
            elif isinstance(action, Retract):
                for pred, tid in list(behind.items()):
                    if tid == action.task_id:
                        del behind[pred]
                        events.append(Retracted(tid))

    act(step(sched, *(AgentJoined(i, f"n{i}", c) for i, c in enumerate(nodes))))
    stopped = False
    done = False
    while not done:
        if not events:
            assert ends, "the scheduler must have ended the run"
            clock, tid = heapq.heappop(ends)
            running.discard(tid)
            events.append(TaskFinished(tid, 0))
            follower = behind.pop(tid, None)
            if follower is not None:  # the node starts it before it reports the end
                start_on_node(follower)
        batch, events[:] = events[:], []
        if not stopped and any(isinstance(e, NeverStarted) for e in batch):
            stopped = True
            batch.insert(0, FAILURE)
        actions = step(sched, *batch)
        done = any(isinstance(a, AllDone) for a in actions)
        act(actions)
    assert not running and not behind
    assert sched.pool.free_cores == sched.pool.total_cores
    for tid, status in sched.status.items():
        assert (status, runs[tid]) in ((COMPLETED, 1), (QUEUED, 0)), (tid, status, runs[tid])
