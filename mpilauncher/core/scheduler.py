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
                         +--NeverStarted--> QUEUED  (the node could not start it: Requeued)

Queued tasks wait in one min-heap per *shape* (a core count, or "whole
node"; with a GPU count), keyed by task id.  A placement pass repeatedly
starts the lowest-id task among the heads of the shapes that fit somewhere
(a GPU task of 0 cores, see :mod:`.slots`, fits wherever a GPU is free),
so tasks start in file order wherever they fit and narrow tasks backfill
around wide ones.  The
number of shapes is small (how many distinct ``N,`` counts a file has), so a
decision costs O(shapes x log nodes), independent of the number of cores.

Hand-off: when a task ends and the next queued task in file order has its
shape, it gets the freed cores (and GPUs) directly -- no trip through the
slot pool's heaps, so a steady sweep costs O(1) per decision in the number
of cores.  A StopDispatch anywhere in a burst takes effect before the rest
of it: nothing starts from a burst that says stop.

Standby (``standby=True``, what the master uses): when every core is busy and
more than a full round of tasks is still queued, the next task of a running
task's shape is sent ahead to that task's node as a *standby* start
(``Start(after=pred)``).  The node starts it the moment ``pred`` ends, on
``pred``'s cores, without waiting for the master: for short tasks that round
trip is most of the time a core stands idle.  ``TaskFinished(pred)`` then
*promotes* it (``Promoted``).  A standby only ever waits behind a running
task of its own shape, and only while its shape's queue head is the lowest
queued id, so file order is kept.  When cores are free and nothing queued
fits them, standbys still waiting behind long tasks are taken back
(``Retract``; the node answers ``Retracted`` if it had not started it yet),
so a long task at the end of a sweep never holds up the one queued behind it.
So are standbys that have waited through four rounds of ends (as many ends as
four times the running tasks): their predecessor is a long task, which gets no new
standby; the task asked back goes to the head of the queue::

    QUEUED --Start(after)--> STANDBY --TaskFinished(pred)/Promoted--> RUNNING
                                |  --Retracted, AgentLost, StopDispatch--> QUEUED

Pacing (``start_interval=s``, PyLauncher's ``delay``): at most one start every
``s`` seconds across the job, for tasks that would all hit a file system at
once.  Time arrives in :class:`ClockTick` events; a placement pass starts one
task if ``s`` seconds have passed since the last start, and
:attr:`Scheduler.next_start_due` says when the next may go.  Hand-off and
standby starts are off then: every start waits its turn.
"""

from __future__ import annotations

import heapq
from collections import OrderedDict
from collections.abc import Iterable

from mpilauncher.core.events import (
    Action,
    AgentJoined,
    AgentLost,
    AllDone,
    ClockTick,
    Event,
    NeverStarted,
    Promoted,
    Requeued,
    Retract,
    Retracted,
    Retried,
    Start,
    StopDispatch,
    TaskFinished,
)
from mpilauncher.core.ledger import COMPLETED, FAILED, QUEUED, RUNNING
from mpilauncher.core.slots import WHOLE_NODE, SlotPool
from mpilauncher.core.tasks import Task
from mpilauncher.errors import Unplaceable

#: Scheduler-only state of a task sent ahead behind a running one (the ledger still says queued).
STANDBY = "standby"

Shape = tuple[int, int, bool]


class InvalidTransition(RuntimeError):
    """An event that cannot happen in the task's current state (a bug or a confused peer)."""


class Scheduler:
    """Places tasks on free cores; see the module docstring."""

    def __init__(
        self, tasks: Iterable[Task], retries: int = 0, standby: bool = False, start_interval: float | None = None
    ) -> None:
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
        self.standby = standby
        self.follower: dict[int, int] = {}  # running task -> the standby task waiting behind it
        self.waiting: dict[int, int] = {}  # standby task -> the running task it waits behind
        # OrderedDicts, not dicts: taking the oldest entry of a plain dict again and again
        # scans the holes its deletions left at the front (measured: 9 s of 21 at 100,000 cores).
        self._bare: dict[Shape, OrderedDict[int, None]] = {}  # running tasks that could take a standby, oldest first
        # standby tasks not yet asked back, by shape, oldest first: -> how many ends had been seen when sent
        self._standby_of: dict[Shape, OrderedDict[int, int]] = {}
        self._ends = 0  # TaskFinished events so far: the clock-free measure of how long a standby waits
        self.start_interval = start_interval  # pacing: at most one start per this many seconds
        if start_interval is not None:
            self.standby = False  # a standby would start the moment its predecessor ends, unpaced
        self._now: float | None = None  # the latest ClockTick (paced only)
        self._next_start = float("-inf")  # when the next paced start may go
        self._pace_held = False  # the last placement pass stopped for the pace, with a task that fits
        for task in tasks:
            if task.id in self.tasks:
                raise ValueError(f"task id {task.id} given twice")
            self.tasks[task.id] = task
            self.status[task.id] = QUEUED
            self._queues.setdefault(self._shape(task), []).append(task.id)
        for queue in self._queues.values():
            heapq.heapify(queue)
        self._bare = {shape: OrderedDict() for shape in self._queues}
        self._standby_of = {shape: OrderedDict() for shape in self._queues}

    # -- the one mutator --------------------------------------------------
    def handle(self, *events: Event) -> list[Action]:
        actions: list[Action] = []
        for event in events:  # first: nothing starts from a burst that says stop
            if isinstance(event, StopDispatch):
                actions.extend(self.apply(event))
        for event in events:
            if not isinstance(event, StopDispatch):
                actions.extend(self.apply(event))
        if not self._stopping:
            self._place(actions)
        idle = not self.running and (self._stopping or not self.queued_count)
        if idle and not self._done_sent and (self.pool.nodes or self._stopping):
            self._done_sent = True
            actions.append(AllDone())
        return actions

    def apply(self, event: Event) -> list[Action]:
        """One event's transition, without a placement pass.

        The master applies each completion as it reads it (a standby promoted
        by one completion may end in the same batch) and then calls
        :meth:`handle` once for the placement.
        """
        if isinstance(event, TaskFinished):
            return self._on_finished(event)
        if isinstance(event, AgentJoined):
            self.pool.add_node(event.node, event.name, event.cores, event.gpus)
        elif isinstance(event, AgentLost):
            return self._on_lost(event.node)
        elif isinstance(event, Retracted):
            self._on_retracted(event.task_id)
        elif isinstance(event, ClockTick):
            self._now = event.now
        elif isinstance(event, StopDispatch):
            self._stopping = True
            if event.ask_back:  # those not asked back yet; all stay STANDBY until their node answers
                asked: list[Action] = []
                for waiting in self._standby_of.values():
                    while waiting:
                        asked.append(self._ask_back(waiting.popitem(last=False)[0]))
                return asked
            for tid in list(self.waiting):  # never started (or killed by the stop): queued again
                self._unlink(tid)
                self._enqueue(tid)
        elif isinstance(event, NeverStarted):
            return self._on_never_started(event.task_id)
        else:
            raise TypeError(f"not a scheduler event: {event!r}")
        return []

    # -- queries ----------------------------------------------------------
    @property
    def next_start_due(self) -> float | None:
        """Paced: when the next start may go, if a queued task that fits waits only for that."""
        return self._next_start if self._pace_held and not self._stopping else None

    @property
    def queued_count(self) -> int:
        return sum(len(q) for q in self._queues.values())

    def validate(self) -> None:
        """Check cross-structure invariants (tests call this after every step)."""
        queued = {tid for q in self._queues.values() for tid in q}
        for tid, status in self.status.items():
            assert (status == QUEUED) == (tid in queued), (tid, status)
            assert (status == RUNNING) == (tid in self.running), (tid, status)
            assert (status == STANDBY) == (tid in self.waiting), (tid, status)
        for tid, pred in self.waiting.items():
            assert self.follower[pred] == tid and self.status[pred] == RUNNING, (tid, pred)
            assert self._shape(self.tasks[tid]) == self._shape(self.tasks[pred]), (tid, pred)
        assert len(self.follower) == len(self.waiting)
        used: dict[int, set[int]] = {}
        segments = []
        for tid, placed in self.running.items():
            if self.tasks[tid].cores:
                segments.extend(self.spans.get(tid, (placed,)))
            else:  # a GPU task that shares one core of its node (see slots.py)
                assert tid in self.gpus_of and len(placed[1]) == 1, (tid, placed)
                assert 0 <= placed[1][0] < self.pool.nodes[placed[0]].cores, (tid, placed)
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
        self._ends += 1
        node, cores, shape, promoted = self._vacate(tid)
        actions: list[Action] = [promoted] if promoted else []
        if event.exit_code != 0 and self.attempts.get(tid, 0) < self.retries and not self._stopping:
            self.attempts[tid] = self.attempts.get(tid, 0) + 1
            self._enqueue(tid)
            actions.append(Retried(tid, self.attempts[tid]))
        else:
            self.status[tid] = COMPLETED if event.exit_code == 0 else FAILED
        if promoted is None:
            successor = self._next_in_order(shape)
            if successor is not None:  # hand the cores (and GPUs) straight on: no trip through the pool
                heapq.heappop(self._queues[shape])
                actions.append(Start(node, successor, cores, self._take_over(successor, tid, node, cores, shape)))
            else:
                self._release(tid, node, cores)
        return actions

    def _release(self, tid: int, node: int, cores: tuple[int, ...]) -> None:
        """``tid``'s cores (on every node of an MPI task) and GPUs go back to the pool; a GPU task
        with no core slot of its own (``cores=0``) only shared its core: it gives back its GPUs."""
        if self.tasks[tid].cores:
            for segment_node, segment_cores in self.spans.pop(tid, ((node, cores),)):
                self.pool.release(segment_node, segment_cores)
        self.pool.release_gpus(node, self.gpus_of.pop(tid, ()))

    def _on_never_started(self, tid: int) -> list[Action]:
        """Its start failed on the node: queued again, its cores to its standby (started at once there) or freed."""
        if self.status.get(tid) != RUNNING:
            raise InvalidTransition(f"task {tid} could not start but it is {self.status.get(tid)}")
        node, cores, _, promoted = self._vacate(tid)
        if promoted is None:
            self._release(tid, node, cores)
        self._enqueue(tid)
        return [promoted, Requeued(tid, node)] if promoted else [Requeued(tid, node)]

    def _vacate(self, tid: int) -> tuple[int, tuple[int, ...], Shape, Promoted | None]:
        """``tid`` no longer runs: its node, cores and shape, and the standby that its node has
        started on those very cores and GPUs (promoted here), if one waited behind it."""
        node, cores = self.running.pop(tid)
        shape = self._shape(self.tasks[tid])
        self._bare[shape].pop(tid, None)
        follower = self.follower.get(tid)
        if follower is None:
            return node, cores, shape, None
        self._unlink(follower)
        self._take_over(follower, tid, node, cores, shape)
        return node, cores, shape, Promoted(follower, tid)

    def _take_over(self, successor: int, tid: int, node: int, cores: tuple[int, ...], shape: Shape) -> tuple[int, ...]:
        """``successor`` runs on the cores (and GPUs, returned) that ``tid`` just left."""
        self.running[successor] = (node, cores)
        self.status[successor] = RUNNING
        gpus = self.gpus_of.pop(tid, ())
        if gpus:
            self.gpus_of[successor] = gpus
        self._bare[shape][successor] = None
        return gpus

    def _next_in_order(self, shape: Shape) -> int | None:
        """The queued task of ``shape`` that may take a just-freed slot of that shape:
        the lowest queued id overall, so file order holds (never for MPI tasks)."""
        if self._stopping or shape[2] or self.start_interval is not None or self._lowest_queued_shape() != shape:
            return None
        return self._queues[shape][0]

    def _lowest_queued_shape(self) -> Shape | None:
        """The shape of the lowest queued task id: the only one that may move ahead (file order)."""
        first = lowest = None
        for shape, queue in self._queues.items():
            if queue and (first is None or queue[0] < first):
                first, lowest = queue[0], shape
        return lowest

    def _on_retracted(self, tid: int) -> None:
        if self.status.get(tid) == STANDBY:  # else: promoted meanwhile, or dropped by a stop
            self._unlink(tid)  # its predecessor takes no new standby: it is slow, or the sweep ends
            self._enqueue(tid)

    def _unlink(self, tid: int) -> None:
        """Forget standby ``tid``'s link to the task it waits behind."""
        pred = self.waiting.pop(tid)
        del self.follower[pred]
        self._standby_of[self._shape(self.tasks[tid])].pop(tid, None)

    def _on_lost(self, node: int) -> list[Action]:
        self.pool.remove_node(node)
        lost = sorted(tid for tid, (n, _) in self.running.items() if n == node)
        for tid in lost:
            if tid in self.follower:  # it waited there, never started (or died with the node)
                follower = self.follower[tid]
                self._unlink(follower)
                self._enqueue(follower)
            self._bare[self._shape(self.tasks[tid])].pop(tid, None)
            del self.running[tid]
            self.gpus_of.pop(tid, None)
            for segment_node, segment_cores in self.spans.pop(tid, ())[1:]:
                self.pool.release(segment_node, segment_cores)
            self._enqueue(tid)
        return [Requeued(tid, node) for tid in lost]

    def _enqueue(self, tid: int) -> None:
        self.status[tid] = QUEUED
        heapq.heappush(self._queues[self._shape(self.tasks[tid])], tid)

    def _place(self, actions: list[Action]) -> None:
        pool = self.pool
        self._pace_held = False
        while pool.free_cores or pool.has_free_gpus:  # a GPU task may need no free core
            best_shape = best_id = None
            for shape, queue in self._queues.items():
                if queue and (best_id is None or queue[0] < best_id) and self._fits(shape):
                    best_shape, best_id = shape, queue[0]
            if best_shape is None:
                break
            if self.start_interval is not None:
                if self._now is None or self._now < self._next_start:
                    self._pace_held = True
                    break
                self._next_start = self._now + self.start_interval
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
            if not mpi:
                self._bare[best_shape][best_id] = None
            actions.append(Start(node, best_id, cores, gpu_ids, span))
        if self.standby:
            if self.waiting:
                if pool.free_cores or pool.has_free_gpus:
                    self._retract_idle(actions)
                self._retract_stale(actions)
            self._send_ahead(actions)

    def _send_ahead(self, actions: list[Action]) -> None:
        """Standby starts behind running tasks while more than a round of work is queued."""
        shape = self._lowest_queued_shape()
        if shape is None or shape[2]:
            return
        bare, queue, waiting = self._bare[shape], self._queues[shape], self._standby_of[shape]
        while bare and len(queue) > len(self.running):
            pred = bare.popitem(last=False)[0]  # the oldest: likely to end first
            tid = heapq.heappop(queue)
            node, cores = self.running[pred]
            self.status[tid] = STANDBY
            self.follower[pred], self.waiting[tid] = tid, pred
            waiting[tid] = self._ends
            actions.append(Start(node, tid, cores, self.gpus_of.get(pred, ()), after=pred))

    def _retract_idle(self, actions: list[Action]) -> None:
        """Cores (or GPUs) are free and nothing queued fits them: ask back standbys of shapes that would."""
        for shape, waiting in self._standby_of.items():
            if not waiting or not self._fits(shape):
                continue
            width = shape[0] if shape[0] > 0 else max(1, self.pool.total_cores // max(1, len(self.pool.nodes)))
            for _ in range(min(len(waiting), max(1, self.pool.free_cores // width))):
                actions.append(self._ask_back(waiting.popitem(last=False)[0]))

    def _retract_stale(self, actions: list[Action]) -> None:
        """Ask back standbys that have waited through four rounds of ends (their predecessor is
        a long task): they go back to the head of the queue and start behind a faster one.
        Four, not one or two: with exponential task times a standby's predecessor outlasts
        two rounds 13% of the time, four rounds 2% (simulated), and each ask costs a round trip."""
        limit = 4 * len(self.running)
        for waiting in self._standby_of.values():
            while waiting:
                tid, sent = next(iter(waiting.items()))  # O(1): an OrderedDict starts at its head
                if self._ends - sent <= limit:
                    break
                del waiting[tid]
                actions.append(self._ask_back(tid))

    def _ask_back(self, tid: int) -> Retract:
        """Standby ``tid``, already out of its shape's list, is asked back from its node; it stays
        STANDBY until the node answers (or its predecessor's end shows it had started)."""
        return Retract(self.running[self.waiting[tid]][0], tid)

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
        """Tasks that need the same resources queue together: (cores or WHOLE_NODE, GPUs, may span);
        cores 0: a GPU task with no core slot of its own."""
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
