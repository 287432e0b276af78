"""MPI tasks in the scheduler: k slots on one node, or consecutive whole nodes plus a remainder."""

from __future__ import annotations

from mpilauncher.core.events import AgentJoined, AgentLost, Start, TaskFinished
from mpilauncher.core.scheduler import Scheduler, find_unplaceable
from mpilauncher.core.tasks import Task


def starts(actions):
    return [a for a in actions if isinstance(a, Start)]


def nodes(count: int, cores: int = 4):
    return [AgentJoined(i, f"n{i}", cores) for i in range(count)]


def test_mpi_task_within_a_node_has_a_one_segment_span() -> None:
    sched = Scheduler([Task(0, "prog", cores=3, mpi=True)])
    (start,) = starts(sched.handle(*nodes(2)))
    assert start.span == ((start.node, start.core_ids),) and len(start.core_ids) == 3


def test_wide_mpi_task_takes_consecutive_whole_nodes_plus_remainder() -> None:
    sched = Scheduler([Task(0, "narrow", cores=1), Task(1, "wide", cores=10, mpi=True)])
    actions = starts(sched.handle(*nodes(4)))
    sched.validate()
    wide = next(a for a in actions if a.task_id == 1)
    assert [(n, len(c)) for n, c in wide.span] == [(1, 4), (2, 4), (3, 2)], "node 0 is busy with the narrow task"
    assert wide.node == 1 and wide.core_ids == (0, 1, 2, 3)
    free_before = sched.pool.free_cores
    sched.handle(TaskFinished(1, 0))
    sched.validate()
    assert sched.pool.free_cores == free_before + 10, "every segment is freed"


def test_wide_task_waits_for_consecutive_free_nodes() -> None:
    tasks = [Task(0, "a", cores=1), Task(1, "b", cores=1), Task(2, "wide", cores=8, mpi=True)]
    sched = Scheduler(tasks)
    first = starts(sched.handle(*nodes(3)))
    placed = {a.task_id: a.node for a in first}
    assert 2 in placed or placed[0] == placed[1] == 0
    # a non-MPI task as wide is unplaceable; an MPI one only if wider than everything
    assert find_unplaceable([Task(3, "x", cores=8)], [4, 4, 4]) != []
    assert find_unplaceable([Task(3, "x", cores=8, mpi=True)], [4, 4, 4]) == []
    assert find_unplaceable([Task(3, "x", cores=13, mpi=True)], [4, 4, 4])[0].largest_node == 12


def test_lost_first_node_requeues_the_wide_task_and_frees_its_other_segments() -> None:
    sched = Scheduler([Task(0, "wide", cores=6, mpi=True)])
    (start,) = starts(sched.handle(*nodes(3)))
    first, second = start.span
    sched.handle(AgentLost(first[0]))
    sched.validate()
    assert sched.status[0] in ("queued", "running")
    if sched.status[0] == "running":
        assert sched.running[0].node != first[0]


def test_mpi_task_gets_a_contiguous_run_of_cores() -> None:
    tasks = [Task(i, f"t{i}", cores=1) for i in range(4)] + [Task(4, "mpi", cores=2, mpi=True)]
    sched = Scheduler(tasks)
    sched.handle(*nodes(1, cores=4))
    sched.handle(TaskFinished(0, 0), TaskFinished(2, 0))  # frees cores 0 and 2: no run of 2
    assert sched.status[4] == "queued"
    (start,) = starts(sched.handle(TaskFinished(3, 0)))  # frees 3: run 2-3
    assert start.task_id == 4 and start.core_ids == (2, 3)
    sched.validate()
