"""GPU placement in the scheduler: each task its own GPUs, never shared, freed on finish."""

from __future__ import annotations

from mpilauncher.core.events import AgentJoined, AgentLost, Start, TaskFinished
from mpilauncher.core.scheduler import Scheduler, find_unplaceable
from mpilauncher.core.tasks import Task


def starts(actions):
    return [a for a in actions if isinstance(a, Start)]


def test_gpu_tasks_get_distinct_gpus_and_wait_for_a_free_one() -> None:
    sched = Scheduler([Task(i, f"t{i}", cores=2, gpus=1) for i in range(5)])
    first = starts(sched.handle(AgentJoined(0, "g0", 8, 2), AgentJoined(1, "cpu", 8, 0), AgentJoined(2, "g2", 4, 1)))
    sched.validate()
    placed = {(s.node, s.gpus) for s in first}
    assert len(first) == 3 and placed == {(0, (0,)), (0, (1,)), (2, (0,))}
    assert all(s.node != 1 for s in first), "no GPU on node 1"
    freed = next(s for s in first if s.node == 0 and s.gpus == (1,))
    again = starts(sched.handle(TaskFinished(freed.task_id, 0)))
    assert [(s.node, s.gpus) for s in again] == [(0, (1,))]
    sched.validate()


def test_gpu_tasks_need_cores_too_and_cpu_tasks_fill_around_them() -> None:
    tasks = [Task(0, "gpu", cores=3, gpus=1), Task(1, "gpu", cores=3, gpus=1), Task(2, "cpu", cores=1)]
    sched = Scheduler(tasks)
    actions = starts(sched.handle(AgentJoined(0, "g", 4, 2)))
    assert [(s.task_id, s.gpus) for s in actions] == [(0, (0,)), (2, ())]
    assert len(actions[0].cores) == 3
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
