"""The scheduling state machine (mpilauncher.core.scheduler), driven by events only."""

from __future__ import annotations

import heapq
import random

import pytest

from mpilauncher import records
from mpilauncher.core.events import (
    AgentJoined,
    AgentLost,
    AllDone,
    Promoted,
    Requeued,
    Start,
    StopDispatch,
    TaskEnded,
    TaskFinished,
)
from mpilauncher.core.ledger import COMPLETED, FAILED, QUEUED, RUNNING
from mpilauncher.core.scheduler import InvalidTransition, Scheduler, find_unplaceable
from mpilauncher.core.tasks import Task
from mpilauncher.errors import Unplaceable


def tasks_of(*widths: int | str) -> list[Task]:
    """Tasks numbered from 0; a width of ``"node"`` makes a whole-node task."""
    return [
        Task(i, f"./t {i}", 1 if w == "node" else w, w == "node", i + 1)  # type: ignore[arg-type]
        for i, w in enumerate(widths)
    ]


def step(sched: Scheduler, *events) -> list:
    """One burst, the invariants checked; the actions without the TaskEnded facts, after checking
    that every end the burst reports was accepted, once, in order (none of these tests sends a stale one)."""
    actions = sched.handle(*events)
    sched.validate()
    ended = [a for a in actions if isinstance(a, TaskEnded)]
    finished = [e for e in events if isinstance(e, TaskFinished)]
    assert [a.report for a in ended] == finished, "one TaskEnded per reported end"
    return [a for a in actions if not isinstance(a, TaskEnded)]


class promoted:  # noqa: N801  (reads as the fact it matches)
    """Matches the fact that standby ``task_id`` started behind ``after``: ``promoted(2, after=0)``."""

    def __init__(self, task_id: int, after: int) -> None:
        self.task_id, self.after = task_id, after

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Promoted) and (other.task_id, other.after) == (self.task_id, self.after)

    def __repr__(self) -> str:
        return f"promoted({self.task_id}, after={self.after})"


def starts(actions) -> list[Start]:
    return [a for a in actions if isinstance(a, Start)]


def started_ids(actions) -> list[int]:
    return [a.task_id for a in starts(actions)]


def join(*sizes: int) -> list[AgentJoined]:
    return [AgentJoined(i, f"n{i}", c) for i, c in enumerate(sizes)]


# -- basics --------------------------------------------------------------------
def test_tasks_start_in_file_order_and_fill_the_cores():
    sched = Scheduler(tasks_of(1, 1, 1, 1, 1, 1))
    sched.validate()
    assert sched.queued_count == 6
    actions = step(sched, *join(2, 2))
    assert started_ids(actions) == [0, 1, 2, 3]
    # best fit: the first node is filled before the second is touched
    assert [(a.node, a.core_ids) for a in starts(actions)] == [(0, (0,)), (0, (1,)), (1, (0,)), (1, (1,))]
    assert sched.queued_count == 2
    assert all(sched.status[i] == RUNNING for i in range(4))
    assert not any(isinstance(a, AllDone) for a in actions)


def test_nothing_happens_without_nodes():
    sched = Scheduler(tasks_of(1, 1))
    assert step(sched) == []
    assert sched.queued_count == 2


def test_task_ids_must_be_unique():
    with pytest.raises(ValueError, match="twice"):
        Scheduler([Task(0, "a"), Task(0, "b")])


def test_finishing_frees_cores_and_records_status():
    sched = Scheduler(tasks_of(1, 1, 1))
    assert started_ids(step(sched, *join(2))) == [0, 1]
    actions = step(sched, TaskFinished(1, 0))
    assert sched.status[1] == COMPLETED
    assert starts(actions) == [Start(0, 2, (1,))]  # task 2 gets the core task 1 left
    actions = step(sched, TaskFinished(0, 3))
    assert sched.status[0] == FAILED
    assert actions == []
    actions = step(sched, TaskFinished(2, -9))  # killed by a signal: failed too
    assert sched.status[2] == FAILED
    assert actions == [AllDone()]


def test_all_done_exactly_once():
    sched = Scheduler(tasks_of(1, 1))
    step(sched, *join(4))
    assert step(sched, TaskFinished(0, 0)) == []
    assert step(sched, TaskFinished(1, 0)) == [AllDone()]
    assert step(sched) == []
    assert step(sched, StopDispatch()) == []
    assert step(sched, AgentJoined(7, "late", 4)) == []


def test_all_done_when_finishes_arrive_in_one_burst():
    sched = Scheduler(tasks_of(1, 1, 1))
    step(sched, *join(3))
    actions = step(sched, TaskFinished(2, 0), TaskFinished(0, 0), TaskFinished(1, 1))
    assert actions == [AllDone()]
    assert [sched.status[i] for i in range(3)] == [COMPLETED, FAILED, COMPLETED]


def test_empty_sweep_is_done_as_soon_as_a_node_joins():
    sched = Scheduler([])
    assert step(sched) == []  # no node yet: not done
    assert step(sched, *join(4)) == [AllDone()]


def test_invalid_transitions():
    sched = Scheduler(tasks_of(1, 1, 1))
    step(sched, *join(1))
    with pytest.raises(InvalidTransition, match="task 1"):
        sched.handle(TaskFinished(1, 0))  # queued, not running
    step(sched, TaskFinished(0, 0))
    with pytest.raises(InvalidTransition):
        sched.handle(TaskFinished(0, 0))  # already completed
    with pytest.raises(InvalidTransition):
        sched.handle(TaskFinished(99, 0))  # no such task
    sched.validate()


def test_unknown_event_type_is_rejected():
    sched = Scheduler(tasks_of(1))
    with pytest.raises(TypeError):
        sched.handle("not an event")  # type: ignore[arg-type]


# -- packing -----------------------------------------------------------------------
def test_mixed_core_counts_pack_onto_nodes():
    # two 8-core nodes: 4+4 fill node 0, then 8 takes node 1; the next 4 must wait
    sched = Scheduler(tasks_of(4, 4, 8, 4, 2))
    actions = step(sched, *join(8, 8))
    assert [(a.task_id, a.node, a.core_ids) for a in starts(actions)] == [
        (0, 0, (0, 1, 2, 3)),
        (1, 0, (4, 5, 6, 7)),
        (2, 1, tuple(range(8))),
    ]
    assert sched.pool.free_cores == 0
    actions = step(sched, TaskFinished(1, 0))
    assert [(a.task_id, a.node, a.core_ids) for a in starts(actions)] == [(3, 0, (4, 5, 6, 7))]
    actions = step(sched, TaskFinished(0, 0))
    assert [(a.task_id, a.node, a.core_ids) for a in starts(actions)] == [(4, 0, (0, 1))]


def test_narrow_tasks_backfill_around_a_wide_one():
    # 4-core node: task 0 takes 3 cores, wide task 1 (4) must wait, narrow 2 and 3 backfill
    sched = Scheduler(tasks_of(3, 4, 1, 1, 1))
    actions = step(sched, *join(4))
    assert started_ids(actions) == [0, 2]
    assert sched.status[1] == QUEUED
    actions = step(sched, TaskFinished(0, 0))
    # lowest id among the shapes that fit: the wide task 1 does not fit (1 core busy)
    assert started_ids(actions) == [3, 4]
    actions = step(sched, TaskFinished(2, 0), TaskFinished(3, 0), TaskFinished(4, 0))
    assert started_ids(actions) == [1]
    assert actions[0].core_ids == (0, 1, 2, 3)


def test_wide_task_goes_first_when_it_fits():
    sched = Scheduler(tasks_of(1, 1, 2, 1))
    actions = step(sched, *join(2, 2))
    assert started_ids(actions) == [0, 1, 2]
    assert {a.task_id: a.node for a in starts(actions)} == {0: 0, 1: 0, 2: 1}


def test_whole_node_tasks_get_an_idle_node():
    sched = Scheduler(tasks_of("node", 1, "node", "node"))
    actions = step(sched, *join(4, 6))
    # task 0 takes the lowest idle node whole; task 1 lands on node 1 (the only one with room);
    # task 2 then finds no idle node and waits
    assert [(a.task_id, a.node, a.core_ids) for a in starts(actions)] == [(0, 0, (0, 1, 2, 3)), (1, 1, (0,))]
    assert sched.pool.free_cores == 5
    assert step(sched, TaskFinished(1, 0)) == [Start(1, 2, tuple(range(6)))]
    assert step(sched, TaskFinished(0, 0)) == [Start(0, 3, (0, 1, 2, 3))]
    step(sched, TaskFinished(2, 0))
    assert step(sched, TaskFinished(3, 0)) == [AllDone()]


def test_narrow_task_prefers_a_busy_node_over_an_idle_one():
    sched = Scheduler(tasks_of(2, 1, "node"))
    actions = step(sched, *join(4, 4))
    assert [(a.task_id, a.node) for a in starts(actions)] == [(0, 0), (1, 0), (2, 1)]


# -- lost nodes ----------------------------------------------------------------
def test_agent_lost_requeues_running_tasks_which_run_again_elsewhere():
    sched = Scheduler(tasks_of(1, 1, 1, 1, 1))
    actions = step(sched, *join(2, 2))
    placed = {a.task_id: a.node for a in starts(actions)}
    assert placed == {0: 0, 1: 0, 2: 1, 3: 1}
    actions = step(sched, AgentLost(0))
    requeued = [a for a in actions if isinstance(a, Requeued)]
    assert requeued == [Requeued(0, 0), Requeued(1, 0)]
    assert sched.status[0] == sched.status[1] == QUEUED
    assert sched.pool.total_cores == 2
    assert starts(actions) == []  # node 1 is full
    actions = step(sched, TaskFinished(2, 0))
    # requeued task 0 comes before task 4 (lowest id first) and runs on node 1
    assert starts(actions) == [Start(1, 0, (0,))]
    actions = step(sched, TaskFinished(3, 0))
    assert starts(actions) == [Start(1, 1, (1,))]
    assert starts(step(sched, TaskFinished(0, 0))) == [Start(1, 4, (0,))]
    assert step(sched, TaskFinished(1, 0)) == []
    assert step(sched, TaskFinished(4, 0)) == [AllDone()]
    assert all(s == COMPLETED for s in sched.status.values())


def test_losing_an_idle_node_requeues_nothing():
    sched = Scheduler(tasks_of(1))
    step(sched, *join(1, 1))
    assert step(sched, AgentLost(1)) == []
    assert step(sched, AgentLost(1)) == []  # reported twice: harmless
    assert step(sched, TaskFinished(0, 0)) == [AllDone()]


def test_requeue_and_restart_in_the_same_burst():
    sched = Scheduler(tasks_of(2))
    step(sched, *join(2))
    actions = step(sched, AgentLost(0), AgentJoined(1, "spare", 4))
    assert actions == [Requeued(0, 0), Start(1, 0, (0, 1))]


def test_finish_of_a_requeued_task_is_invalid():
    sched = Scheduler(tasks_of(1))
    step(sched, *join(1))
    step(sched, AgentLost(0))
    with pytest.raises(InvalidTransition):
        sched.handle(TaskFinished(0, 0))


def test_all_nodes_lost_leaves_work_queued_without_all_done():
    sched = Scheduler(tasks_of(1, 1))
    step(sched, *join(1))
    actions = step(sched, AgentLost(0))
    assert actions == [Requeued(0, 0)]
    assert sched.queued_count == 2
    assert step(sched) == []


# -- stop ----------------------------------------------------------------------
def test_stop_dispatch_starts_nothing_more():
    sched = Scheduler(tasks_of(1, 1, 1, 1))
    step(sched, *join(2))
    assert step(sched, StopDispatch()) == []  # two tasks still running
    assert step(sched, TaskFinished(0, 0)) == []  # its core is not reused
    assert sched.status[2] == QUEUED
    assert step(sched, TaskFinished(1, 0)) == [AllDone()]  # nothing runs: done, queue left
    assert sched.queued_count == 2


def test_stop_in_the_same_burst_as_finishes():
    sched = Scheduler(tasks_of(1, 1, 1))
    step(sched, *join(1))
    assert step(sched, TaskFinished(0, 0), StopDispatch()) == [AllDone()]
    assert sched.status[1] == QUEUED


def test_stop_before_any_node_is_done_at_once():
    sched = Scheduler(tasks_of(1))
    assert step(sched, StopDispatch()) == [AllDone()]


# -- unplaceable -----------------------------------------------------------------
def test_find_unplaceable():
    tasks = tasks_of(1, 8, 16, 4, "node")
    assert find_unplaceable(tasks, [4, 8]) == [Unplaceable(2, 16, 8)]
    assert find_unplaceable(tasks, [16]) == []
    assert find_unplaceable(tasks, iter([2, 1])) == [Unplaceable(1, 8, 2), Unplaceable(2, 16, 2), Unplaceable(3, 4, 2)]
    assert [u.task_id for u in find_unplaceable(tasks, [])] == [0, 1, 2, 3, 4]


def test_too_wide_task_never_starts_but_others_do():
    sched = Scheduler(tasks_of(1, 9, 1))
    actions = step(sched, *join(4))
    assert started_ids(actions) == [0, 2]
    step(sched, TaskFinished(0, 0))
    # task 1 can never run: nothing runs and nothing can start, so the run is over (and resumable)
    assert step(sched, TaskFinished(2, 0)) == [AllDone(stranded=1)]
    assert sched.status[1] == QUEUED


# -- randomized simulation --------------------------------------------------------
@pytest.mark.parametrize("seed", range(5))
def test_random_simulation(seed):
    rng = random.Random(seed)
    nodes = [rng.choice([4, 8, 16, 48]) for _ in range(50)]
    largest = max(nodes)
    widths: list[int | str] = []
    for _ in range(500):
        roll = rng.random()
        widths.append("node" if roll < 0.03 else rng.choice([1, 1, 1, 2, 4, 8, 16, 24, largest]))
    tasks = tasks_of(*widths)
    assert find_unplaceable(tasks, nodes) == []
    sched = Scheduler(tasks)
    clock = 0.0
    ends: list[tuple[float, int]] = []  # heap of (finish time, task id)
    alive = set(range(len(nodes)))
    start_count = dict.fromkeys(range(len(tasks)), 0)
    finished: set[int] = set()
    done = 0
    requeues: list[int] = []
    lost_at = {rng.randrange(50, 400) for _ in range(3)}

    def apply(actions):
        nonlocal done
        for action in actions:
            if isinstance(action, Start):
                task = tasks[action.task_id]
                assert action.node in alive
                node_cores = nodes[action.node]
                assert len(action.core_ids) == (node_cores if task.whole_node else task.cores)
                assert all(0 <= c < node_cores for c in action.core_ids)
                start_count[action.task_id] += 1
                heapq.heappush(ends, (clock + rng.uniform(0.1, 10.0), action.task_id))
            elif isinstance(action, Requeued):
                assert action.node not in alive
                requeues.append(action.task_id)
            elif isinstance(action, AllDone):
                done += 1

    apply(step(sched, *(AgentJoined(i, f"n{i}", c) for i, c in enumerate(nodes))))
    turn = 0
    while ends:
        turn += 1
        clock, tid = heapq.heappop(ends)
        if sched.status[tid] != RUNNING:
            continue  # a stale end of a task requeued after its node was lost
        burst = [TaskFinished(tid, rng.choice([0, 0, 0, 1]))]
        while ends and ends[0][0] == clock:
            burst.append(TaskFinished(heapq.heappop(ends)[1], 0))
        if turn in lost_at and len(alive) > 10:
            victim = rng.choice(sorted(alive))
            alive.discard(victim)
            burst.insert(0, AgentLost(victim))
            # the tasks on the lost node will never report: drop their pending ends
            doomed = {t for t, start in sched.running.items() if start.node == victim}
            burst = [e for e in burst if not (isinstance(e, TaskFinished) and e.task_id in doomed)]
        finished |= {e.task_id for e in burst if isinstance(e, TaskFinished)}
        apply(step(sched, *burst))
        assert sched.pool.total_cores == sum(nodes[i] for i in alive)
    assert done == 1
    assert len(alive) < len(nodes)  # the simulation did lose nodes
    assert all(start_count[t] >= 2 for t in requeues)  # requeued tasks ran again
    assert sched.queued_count == 0 and not sched.running
    assert all(sched.status[t.id] in (COMPLETED, FAILED) for t in tasks)
    assert all(n >= 1 for n in start_count.values())
    assert finished == set(range(len(tasks)))
    assert sched.pool.free_cores == sched.pool.total_cores


def test_resumed_subset_starts_in_id_order():
    tasks = [Task(7, "c"), Task(3, "a"), Task(5, "b"), Task(11, "d")]
    sched = Scheduler(tasks)
    actions = step(sched, *join(3))
    assert started_ids(actions) == [3, 5, 7]
    assert starts(step(sched, TaskFinished(5, 0))) == [Start(0, 11, (1,))]


def test_late_node_gets_queued_work():
    sched = Scheduler(tasks_of(1, 1, 1))
    assert started_ids(step(sched, *join(1))) == [0]
    actions = step(sched, AgentJoined(1, "late", 2))
    assert starts(actions) == [Start(1, 1, (0,)), Start(1, 2, (1,))]


def test_validate_notices_corruption():
    sched = Scheduler(tasks_of(1, 1))
    step(sched, *join(2))
    sched._placed.starts[1] = records.replace(sched.running[0], task_id=1)  # the same core twice
    with pytest.raises(AssertionError, match="core given twice"):
        sched.validate()
    sched = Scheduler(tasks_of(1, 1))
    step(sched, *join(2))
    sched._placed.running_count += 1  # a count that lost track
    with pytest.raises(AssertionError):
        sched.validate()
    sched = Scheduler(tasks_of(1))
    sched.status[0] = RUNNING  # running but not placed
    with pytest.raises(AssertionError):
        sched.validate()


# -- hand-off: a finished task's cores go straight to the next task of its shape ----
def test_freed_cores_go_straight_to_the_next_task_of_the_same_shape():
    sched = Scheduler(tasks_of(1, 1, 1, 1))
    step(sched, *join(2))
    free_before = sched.pool.free_cores
    assert step(sched, TaskFinished(1, 0)) == [Start(0, 2, (1,))]
    assert sched.pool.free_cores == free_before == 0


def test_gpu_cores_and_gpus_are_handed_on_together():
    tasks = [Task(i, f"t {i}", 1, gpus=1) for i in range(3)]
    sched = Scheduler(tasks)
    step(sched, AgentJoined(0, "g", 4, gpus=1))
    gpus = sched.running[0].gpu_indices
    assert step(sched, TaskFinished(0, 0)) == [Start(0, 1, sched.running[1].core_ids, gpus)]
    assert [(tid, start.gpu_indices) for tid, start in sched.running.items()] == [(1, gpus)]


def test_no_hand_off_after_stop_in_the_same_burst():
    sched = Scheduler(tasks_of(1, 1, 1))
    step(sched, *join(1))
    assert step(sched, TaskFinished(0, 0), StopDispatch()) == [AllDone()]
    assert sched.status[1] == QUEUED
