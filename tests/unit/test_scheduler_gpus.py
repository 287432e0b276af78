"""GPU placement in the scheduler: each task its own GPUs, never shared, freed on finish."""

from __future__ import annotations

from collections import Counter

from mpilauncher.core.events import AgentJoined, AgentLost, Promoted, Retract, Start, TaskFinished
from mpilauncher.core.scheduler import Scheduler, find_unplaceable
from mpilauncher.core.tasks import Task


def starts(actions):
    return [a for a in actions if isinstance(a, Start)]


def test_gpu_tasks_get_distinct_gpus_and_wait_for_a_free_one() -> None:
    sched = Scheduler([Task(i, f"t{i}", cores=2, gpus=1) for i in range(5)])
    first = starts(sched.handle(AgentJoined(0, "g0", 8, 2), AgentJoined(1, "cpu", 8, 0), AgentJoined(2, "g2", 4, 1)))
    sched.validate()
    placed = {(s.node, s.gpu_indices) for s in first}
    assert len(first) == 3 and placed == {(0, (0,)), (0, (1,)), (2, (0,))}
    assert all(s.node != 1 for s in first), "no GPU on node 1"
    freed = next(s for s in first if s.node == 0 and s.gpu_indices == (1,))
    again = starts(sched.handle(TaskFinished(freed.task_id, 0)))
    assert [(s.node, s.gpu_indices) for s in again] == [(0, (1,))]
    sched.validate()


def test_gpu_tasks_need_cores_too_and_cpu_tasks_fill_around_them() -> None:
    tasks = [Task(0, "gpu", cores=3, gpus=1), Task(1, "gpu", cores=3, gpus=1), Task(2, "cpu", cores=1)]
    sched = Scheduler(tasks)
    actions = starts(sched.handle(AgentJoined(0, "g", 4, 2)))
    assert [(s.task_id, s.gpu_indices) for s in actions] == [(0, (0,)), (2, ())]
    assert len(actions[0].core_ids) == 3
    assert starts(sched.handle(TaskFinished(2, 0))) == [], "1 free core is not enough for the second GPU task"
    assert [s.task_id for s in starts(sched.handle(TaskFinished(0, 0)))] == [1]
    sched.validate()


def test_lost_gpu_node_requeues_and_frees_nothing_twice() -> None:
    sched = Scheduler([Task(i, f"t{i}", gpus=1) for i in range(3)])
    sched.handle(AgentJoined(0, "a", 2, 1), AgentJoined(1, "b", 2, 1))
    sched.handle(AgentLost(1))
    sched.validate()
    assert sched.pool.total_gpus == 1
    queued = [t for t, st in sched.status.items() if st == "queued"]
    assert len(queued) == 2


def test_find_unplaceable_names_gpu_shortage_first() -> None:
    bad = find_unplaceable([Task(0, "x", cores=1, gpus=4)], [8, 8], [2, 0])
    assert bad[0].gpus_needed == 4 and bad[0].most_gpus == 2
    assert find_unplaceable([Task(0, "x", cores=4, gpus=1)], [8, 2], [0, 1])[0].gpus_needed == 1
    assert find_unplaceable([Task(0, "x", cores=2, gpus=1)], [8, 2], [0, 1]) == []


# -- GPUs are the scarce resource: a GPU task's share of the cores may be below one core (issue 12) --------
#
# A GPU task with ``cores=0`` (rank0.py gives it that when its GPUs' share of the node's cores is below
# one core) takes no core slot of its own: only its GPUs.  It is bound to one core slot of its node,
# shared with other GPU tasks, and CPU tasks still find every core slot free.


def gpu_tasks(count: int, gpus: int = 1, first: int = 0) -> list[Task]:
    return [Task(i, f"g{i}", cores=0, gpus=gpus) for i in range(first, first + count)]


def step(sched: Scheduler, *events):
    actions = sched.handle(*events)
    sched.validate()
    return actions


def test_four_gpus_on_two_cores_run_four_tasks_at_once() -> None:
    sched = Scheduler(gpu_tasks(6))
    first = starts(step(sched, AgentJoined(0, "g", 2, 4)))
    assert [s.task_id for s in first] == [0, 1, 2, 3], "every GPU busy, though the node has 2 cores"
    assert sorted(s.gpu_indices for s in first) == [(0,), (1,), (2,), (3,)]
    assert Counter(s.core_ids for s in first) == {(0,): 2, (1,): 2}, "each shares one core slot, evenly spread"
    assert sched.pool.free_cores == 2, "no core slot of their own"
    ended = first[2]
    again = starts(step(sched, TaskFinished(ended.task_id, 0)))
    assert [(s.task_id, s.gpu_indices, s.core_ids) for s in again] == [(4, ended.gpu_indices, ended.core_ids)], (
        "handed on: GPU and core"
    )
    step(sched, *(TaskFinished(t, 0) for t in (0, 1, 3, 4)))
    assert starts(step(sched, TaskFinished(5, 0))) == [] and sched.pool.free_cores == 2


def test_eight_gpus_on_two_cores_run_eight_tasks_at_once() -> None:
    sched = Scheduler(gpu_tasks(9))
    first = starts(step(sched, AgentJoined(0, "g", 2, 8)))
    assert len(first) == 8 and sorted(g for s in first for g in s.gpu_indices) == list(range(8))
    assert Counter(s.core_ids for s in first) == {(0,): 4, (1,): 4}
    assert sched.queued_count == 1


def test_two_gpus_per_task_on_two_cores_use_every_gpu() -> None:
    sched = Scheduler(gpu_tasks(5, gpus=2))
    first = starts(step(sched, AgentJoined(0, "g", 2, 8)))
    assert len(first) == 4 and sorted(g for s in first for g in s.gpu_indices) == list(range(8)), "4 disjoint pairs"
    assert all(len(s.gpu_indices) == 2 and len(s.core_ids) == 1 for s in first)
    freed = first[1]
    assert [(s.task_id, s.gpu_indices) for s in starts(step(sched, TaskFinished(freed.task_id, 0)))] == [
        (4, freed.gpu_indices)
    ]


def test_tasks_sharing_gpus_on_few_cores_use_every_gpu_slot() -> None:
    """--tasks-per-gpu 2 with 4 GPUs: the node offers 8 GPU slots (resources.Gpus.shared)."""
    sched = Scheduler(gpu_tasks(8))
    first = starts(step(sched, AgentJoined(0, "g", 2, 4 * 2)))
    assert len(first) == 8 and sorted(s.gpu_indices for s in first) == [(i,) for i in range(8)]
    assert Counter(s.core_ids for s in first) == {(0,): 4, (1,): 4}


def test_gpu_tasks_on_several_nodes_share_each_nodes_own_cores() -> None:
    sched = Scheduler(gpu_tasks(7))
    first = starts(step(sched, AgentJoined(0, "a", 2, 4), AgentJoined(1, "b", 3, 2), AgentJoined(2, "cpu", 4, 0)))
    assert Counter(s.node for s in first) == {0: 4, 1: 2}
    assert {s.core_ids for s in first if s.node == 1} == {(0,), (1,)}, "b's own core slots"
    assert sched.pool.free_cores == 9


def test_a_mixed_sweep_gives_cpu_tasks_whole_cores_and_gpu_tasks_what_they_asked_for() -> None:
    tasks = [
        Task(0, "cpu", cores=2),
        *gpu_tasks(4, first=1),
        Task(5, "cpu", cores=1),
        Task(6, "gpu with a core of its own", cores=1, gpus=1),
        Task(7, "gpu with no core of its own", cores=0, gpus=1),
    ]
    sched = Scheduler(tasks)
    first = starts(step(sched, AgentJoined(0, "g", 2, 4)))
    placed = [(s.task_id, len(s.core_ids), len(s.gpu_indices)) for s in first]
    assert placed == [(0, 2, 0), (1, 1, 1), (2, 1, 1), (3, 1, 1), (4, 1, 1)], "no free core blocks a GPU"
    assert sched.pool.free_cores == 0, "the CPU task holds both cores"
    assert starts(step(sched, TaskFinished(1, 0))) == [Start(0, 7, first[1].core_ids, first[1].gpu_indices)], (
        "the freed GPU goes to the next task that needs no core: 5 and 6 wait for one"
    )
    after = starts(step(sched, TaskFinished(0, 0)))
    assert [(s.task_id, len(s.core_ids), s.gpu_indices) for s in after] == [(5, 1, ())], "6 still waits for a GPU"
    assert sched.pool.free_cores == 1
    last = starts(step(sched, TaskFinished(2, 0)))
    assert [(s.task_id, len(s.core_ids), s.gpu_indices) for s in last] == [(6, 1, first[2].gpu_indices)]
    assert sched.pool.free_cores == 0, "6 holds a core of its own"
    step(sched, *(TaskFinished(t, 0) for t in (3, 4, 5, 6, 7)))
    assert sched.pool.free_cores == 2 and len(sched.pool.nodes[0].free_gpus) == 4


def test_a_whole_node_gpu_task_gets_every_core_and_its_gpus() -> None:
    sched = Scheduler([Task(i, f"w{i}", cores=1, whole_node=True, gpus=1) for i in range(2)])
    first = starts(step(sched, AgentJoined(0, "g", 4, 2)))
    assert [(s.task_id, s.core_ids, s.gpu_indices) for s in first] == [(0, (0, 1, 2, 3), (0,))], (
        "the node's cores, one GPU"
    )
    assert [s.task_id for s in starts(step(sched, TaskFinished(0, 0)))] == [1]


def test_standby_gpu_tasks_wait_behind_their_gpu_and_take_it_over() -> None:
    sched = Scheduler(gpu_tasks(20), standby=True)
    actions = starts(step(sched, AgentJoined(0, "g", 2, 4)))
    running = [s for s in actions if s.after is None]
    ahead = [s for s in actions if s.after is not None]
    assert len(running) == 4 and len(ahead) == 4 and {s.core_ids for s in running} == {(0,), (1,)}
    by_task = {s.task_id: s for s in running}
    assert all((s.core_ids, s.gpu_indices) == (by_task[s.after].core_ids, by_task[s.after].gpu_indices) for s in ahead)
    promoted = step(sched, TaskFinished(ahead[0].after, 0))
    assert any(isinstance(a, Promoted) and a.task_id == ahead[0].task_id for a in promoted)
    assert sched.pool.free_cores == 2 and not sched.pool.nodes[0].free_gpus


def test_a_waiting_gpu_standby_is_asked_back_when_a_gpu_frees_up_with_no_core_free() -> None:
    sched = Scheduler([Task(0, "cpu", cores=2), *gpu_tasks(6, first=1)], standby=True)
    first = step(sched, AgentJoined(0, "g", 2, 2))
    assert [(s.task_id, s.after) for s in starts(first)] == [(0, None), (1, None), (2, None), (3, 1)]
    for ending, successor in ((2, 4), (4, 5), (5, 6)):
        assert [s.task_id for s in starts(step(sched, TaskFinished(ending, 0)))] == [successor]
    actions = step(sched, TaskFinished(6, 0))
    assert Retract(0, 3) in actions, "task 1 runs on and GPU 1 is free, though no core is: 3 is asked back"


def test_lost_node_with_gpu_tasks_frees_nothing_twice() -> None:
    sched = Scheduler(gpu_tasks(6))
    step(sched, AgentJoined(0, "a", 2, 4), AgentJoined(1, "b", 1, 2))
    assert len(sched.running) == 6
    step(sched, AgentLost(0))
    assert sched.pool.free_cores == 1 and sched.pool.total_cores == 1
    assert {tid: (s.node, s.core_ids) for tid, s in sched.running.items()} == {4: (1, (0,)), 5: (1, (0,))}


def test_find_unplaceable_gpu_tasks_without_a_core_of_their_own() -> None:
    assert find_unplaceable(gpu_tasks(2), [2], [4]) == []
    assert find_unplaceable(gpu_tasks(1, gpus=8), [2], [8]) == []
    bad = find_unplaceable(gpu_tasks(1), [2], [0])
    assert bad and bad[0].gpus_needed == 1
