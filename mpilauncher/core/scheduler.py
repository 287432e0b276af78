"""The scheduling state machine: which queued task runs where, and when.

Theory of operation
-------------------
:meth:`Scheduler.handle` is the only mutator.  It takes a burst of events,
applies each (a node joined, a task finished, a node was lost, stop), and then
runs *one* placement pass over the whole burst, as HyperQueue's reactor does:
draining many completions before placing keeps the cost per decision flat.

Task life cycle::

    QUEUED --Start--> RUNNING --TaskFinished(0)--> COMPLETED
                         |     --TaskFinished(!=0)--> FAILED
                         |     --TaskFinished(!=0), retries left--> QUEUED  (Retried)
                         +--AgentLost--> QUEUED  (runs again elsewhere)

Queued tasks wait in one min-heap per *shape* (a core count, or "whole
node"), keyed by task id.  A placement pass repeatedly starts the lowest-id
task among the heads of the shapes that fit somewhere, so tasks start in file
order wherever they fit and narrow tasks backfill around wide ones.  The
number of shapes is small (how many distinct ``N,`` counts a file has), so a
decision costs O(shapes x log nodes), independent of the number of cores.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterable

from mpilauncher.core.events import (
    Action,
    AgentJoined,
    AgentLost,
    AllDone,
    Event,
    Requeued,
    Retried,
    Start,
    StopDispatch,
    TaskFinished,
)
from mpilauncher.core.ledger import COMPLETED, FAILED, QUEUED, RUNNING
from mpilauncher.core.slots import SlotPool
from mpilauncher.core.tasks import Task
from mpilauncher.errors import Unplaceable

#: Shape key of ``cores="node"`` tasks (real core counts are >= 1).
WHOLE_NODE = 0


class InvalidTransition(RuntimeError):
    """An event that cannot happen in the task's current state (a bug or a confused peer)."""


class Scheduler:
    """Places tasks on free cores; see the module docstring."""

    def __init__(self, tasks: Iterable[Task], retries: int = 0) -> None:
        self.tasks: dict[int, Task] = {}
        self.status: dict[int, str] = {}
        self.pool = SlotPool()
        self.running: dict[int, tuple[int, tuple[int, ...]]] = {}  # task -> (node, cores)
        self.gpus_of: dict[int, tuple[int, ...]] = {}  # running task -> GPU indices on its node
        self.spans: dict[int, tuple[tuple[int, tuple[int, ...]], ...]] = {}  # MPI tasks over several nodes
        self._queues: dict[tuple[int, int], list[int]] = {}
        self._stopping = False
        self._done_sent = False
        self.retries = retries
        self.attempts: dict[int, int] = {}  # task -> attempts that failed and were retried
        for task in tasks:
            if task.id in self.tasks:
                raise ValueError(f"task id {task.id} given twice")
            self.tasks[task.id] = task
            self.status[task.id] = QUEUED
            self._queues.setdefault(self._shape(task), []).append(task.id)
        for queue in self._queues.values():
            heapq.heapify(queue)

    # -- the one mutator --------------------------------------------------
    def handle(self, *events: Event) -> list[Action]:
        actions: list[Action] = []
        for event in events:
            if isinstance(event, TaskFinished):
                actions.extend(self._on_finished(event))
            elif isinstance(event, AgentJoined):
                self.pool.add_node(event.node, event.name, event.cores, event.gpus)
            elif isinstance(event, AgentLost):
                actions.extend(self._on_lost(event.node))
            elif isinstance(event, StopDispatch):
                self._stopping = True
            else:
                raise TypeError(f"not a scheduler event: {event!r}")
        if not self._stopping:
            self._place(actions)
        idle = not self.running and (self._stopping or not self.queued_count)
        if idle and not self._done_sent and (self.pool.nodes or self._stopping):
            self._done_sent = True
            actions.append(AllDone())
        return actions

    # -- queries ----------------------------------------------------------
    @property
    def queued_count(self) -> int:
        return sum(len(q) for q in self._queues.values())

    def validate(self) -> None:
        """Check cross-structure invariants (tests call this after every step)."""
        queued = {tid for q in self._queues.values() for tid in q}
        for tid, status in self.status.items():
            assert (status == QUEUED) == (tid in queued), (tid, status)
            assert (status == RUNNING) == (tid in self.running), (tid, status)
        used: dict[int, set[int]] = {}
        segments = [seg for tid, placed in self.running.items() for seg in self.spans.get(tid, (placed,))]
        for node, cores in segments:
            taken = used.setdefault(node, set())
            assert not taken & set(cores), f"core given twice on node {node}"
            taken |= set(cores)
        busy = sum(len(c) for c in used.values())
        assert self.pool.free_cores + busy == self.pool.total_cores, "cores lost or invented"
        for node, taken in used.items():
            assert not taken & set(self.pool.nodes[node].free), f"busy core listed free on {node}"
        gpus_used: dict[int, set[int]] = {}
        for tid, gpus in self.gpus_of.items():
            node = self.running[tid][0]
            taken = gpus_used.setdefault(node, set())
            assert not taken & set(gpus), f"GPU given twice on node {node}"
            assert not set(gpus) & set(self.pool.nodes[node].free_gpus), f"busy GPU listed free on {node}"
            taken |= set(gpus)

    # -- transitions ------------------------------------------------------
    def _on_finished(self, event: TaskFinished) -> list[Action]:
        tid = event.task_id
        if self.status.get(tid) != RUNNING:
            raise InvalidTransition(f"task {tid} finished but it is {self.status.get(tid)}")
        node, cores = self.running.pop(tid)
        for segment_node, segment_cores in self.spans.pop(tid, ((node, cores),)):
            self.pool.release(segment_node, segment_cores)
        self.pool.release_gpus(node, self.gpus_of.pop(tid, ()))
        if event.exit_code != 0 and self.attempts.get(tid, 0) < self.retries and not self._stopping:
            self.attempts[tid] = self.attempts.get(tid, 0) + 1
            self._enqueue(tid)
            return [Retried(tid, self.attempts[tid])]
        self.status[tid] = COMPLETED if event.exit_code == 0 else FAILED
        return []

    def _on_lost(self, node: int) -> list[Action]:
        self.pool.remove_node(node)
        lost = sorted(tid for tid, (n, _) in self.running.items() if n == node)
        for tid in lost:
            del self.running[tid]
            self.gpus_of.pop(tid, None)
            for segment_node, segment_cores in self.spans.pop(tid, ())[1:]:
                self.pool.release(segment_node, segment_cores)
            self._enqueue(tid)
        return [Requeued(tid, node) for tid in lost]

    def _enqueue(self, tid: int) -> None:
        self.status[tid] = QUEUED
        heapq.heappush(self._queues.setdefault(self._shape(self.tasks[tid]), []), tid)

    def _place(self, actions: list[Action]) -> None:
        pool = self.pool
        while pool.free_cores:
            best_shape = best_id = None
            for shape, queue in self._queues.items():
                if queue and (best_id is None or queue[0] < best_id) and self._fits(shape):
                    best_shape, best_id = shape, queue[0]
            if best_shape is None:
                return
            heapq.heappop(self._queues[best_shape])
            width, gpus, mpi = best_shape
            span: tuple[tuple[int, tuple[int, ...]], ...] = ()
            gpu_ids: tuple[int, ...] = ()
            if gpus:
                node, cores, gpu_ids = pool.take_with_gpus(width, gpus)
                self.gpus_of[best_id] = gpu_ids
            elif mpi and width != WHOLE_NODE:
                run = pool.find_run(width)
                if run is not None:
                    node, cores = run[0], pool.take_run(run[0], run[1], width)
                    span = ((node, cores),)
                else:
                    span = pool.take_span(pool.find_span(width))
                    node, cores = span[0]
                    self.spans[best_id] = span
            else:
                node, cores = pool.take_whole_node() if width == WHOLE_NODE else pool.take(width)
                if mpi:
                    span = ((node, cores),)
            self.running[best_id] = (node, cores)
            self.status[best_id] = RUNNING
            actions.append(Start(node, best_id, cores, gpu_ids, span))

    def _fits(self, shape: tuple[int, int, bool]) -> bool:
        width, gpus, mpi = shape
        if gpus:
            return self.pool.fits_gpus(width, gpus)
        if width == WHOLE_NODE:
            return self.pool.has_idle_node()
        if mpi:
            return self.pool.find_run(width) is not None or self.pool.find_span(width) is not None
        return self.pool.fits(width)

    @staticmethod
    def _shape(task: Task) -> tuple[int, int, bool]:
        """Tasks that need the same resources queue together: (cores or WHOLE_NODE, GPUs, may span)."""
        return (WHOLE_NODE if task.whole_node else task.cores, task.gpus, task.mpi)


def find_unplaceable(
    tasks: Iterable[Task], node_cores: Iterable[int], node_gpus: Iterable[int] = ()
) -> list[Unplaceable]:
    """Tasks no node can hold (too many cores, or GPUs): reported before anything starts."""
    cores = list(node_cores)
    gpus = list(node_gpus) or [0] * len(cores)
    largest = max(cores, default=0)
    bad = []
    total = sum(cores)
    for task in tasks:
        if task.mpi and not task.gpus:
            if task.cores > total:
                bad.append(Unplaceable(task.id, task.cores, total))
            continue
        if task.gpus and not any(g >= task.gpus and c >= task.cores for c, g in zip(cores, gpus, strict=True)):
            bad.append(Unplaceable(task.id, task.cores, largest, task.gpus, max(gpus, default=0)))
        elif task.cores > largest:
            bad.append(Unplaceable(task.id, task.cores, largest))
    return bad
