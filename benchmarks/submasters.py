"""Past one master: sub-masters per group of nodes, simulated at up to a million cores.

One master takes some 86,000 task ends a second (``master_ceiling.py``, 2026-12-01), so it keeps
about 86,000 cores busy with tasks of one second.  Past that, a two-level design: a *top master*
holds the sweep's task ids and hands them out in chunks (ranges of ids) to ``G``
*sub-masters*, each running the real :class:`~mpilauncher.core.scheduler.Scheduler` over its
own group of nodes and writing its own journal segment; the top master journals only the
hand-outs.  A sub-master asks for the next chunk when the tasks it holds (queued or sent
ahead as standbys) fall below a low-water mark: pull, so a slow group takes less.  Chunk
sizes are guided: ``max(min_chunk, remaining / (k * G))``, large while much is left (few
messages), small at the end (no group left holding a long tail).  See benchmarks/README.md
(section ``submasters.py``) for the design and the figures.

    python benchmarks/submasters.py                 # 64k cores one master, then 64k, 256k and 1M cores two-level
    python benchmarks/submasters.py --cores 262144 --groups 16,32 --task-seconds 0.5
    python benchmarks/submasters.py --quick         # small sizes, seconds

Method.  Every task of the sweep is simulated, in simulated time, with seeded random
durations (uniform over 0.4-1.6 x the task length).  *One* group (group 0) is simulated at
its real size with the real Scheduler (standby starts on) behind a sub-master modelled as a
single server: each burst of reports it handles keeps it busy for the time measured inside
``handle`` on this machine plus, for every task end in the burst, the master's cost outside
``handle`` (journal, joblog, statistics, its loop) as measured by ``master_ceiling.py``
before the simulation starts; reports and starts travel with ``--latency`` between node and
sub-master.  The other ``G - 1`` groups are simulated task by task too, with a cheap model:
their sub-master keeps up and costs nothing (each task starts, in order, on the core that
frees first, once its chunk has arrived).  All groups pull from one modelled top master
(``--latency`` each way, ``--chunk-us`` of its time per hand-out, one request at a time), so
the chunk sizes, the top master's load and the tail come from the whole allocation.  Group 0
says whether a sub-master of that size keeps up; the others what the whole allocation does
if it does.  Not modelled: MPI message costs on the sub-master (``master_ceiling.py`` leaves
them out too), node or task failures, tasks of more than one core.

Every figure printed comes from the run: the calibration, the simulated times, the measured
``handle`` times.  Nothing is asserted on timing.
"""

from __future__ import annotations

import argparse
import gc
import heapq
import itertools
import json
import math
import os
import platform
import shlex
import sys
import tempfile
import time
from collections import deque
from dataclasses import asdict, dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from master_ceiling import run as run_master_ceiling  # noqa: E402

from mpilauncher.core.events import AgentJoined, ClockTick, Retract, Retracted, Start, TaskFinished  # noqa: E402
from mpilauncher.core.scheduler import Scheduler  # noqa: E402
from mpilauncher.core.tasks import Task, TaskTable  # noqa: E402

#: The default run: one master at its limit, then the two-level design past it.
DEFAULT_CORES = "65536,65536,262144,1048576"
DEFAULT_GROUPS = "1,auto,auto,auto"
DEFAULT_TASK_SECONDS = "1,1,0.5,1"
DEFAULTS = DEFAULT_CORES, DEFAULT_GROUPS, DEFAULT_TASK_SECONDS
#: --quick: the same shapes, small enough for seconds.
QUICK_CORES, QUICK_GROUPS, QUICK_TASK_SECONDS = "2048,8192", "1,4", "1,0.5"
#: Tasks a core runs in the default sweep: enough rounds that the end of the sweep is a small part of it.
ROUNDS = 16
#: Task durations are uniform over these multiples of the task length (the 1:4 spread of peers.py's W4).
SHORTEST, LONGEST = 0.4, 1.6
#: ``--groups auto`` sizes a group so its sub-master is at most this loaded (by the calibrated ceiling).
AUTO_LOAD = 0.5

# Kinds of events in group 0's simulation (small ints: they sort and compare fast in the heap).
END, AT_SUB, AT_NODE, CHUNK, WAKE = range(5)


@dataclass(frozen=True)
class Design:
    """The two-level design's settings, shared by every configuration of a run."""

    cores_per_node: int
    latency: float  # seconds a message takes between two ranks (node / sub-master / top master)
    chunk_cost: float  # seconds of the top master's time per chunk hand-out (request in, journal line, reply)
    guided_k: float  # chunk = remaining / (k * G): a group takes at most 1/k of its share of what is left
    min_chunk_rounds: float  # the smallest chunk, in rounds of its group (cores of the group)
    low_water_rounds: float  # a sub-master asks for more when it holds fewer tasks than this many rounds
    observer_cost: float  # seconds a master spends per task end outside Scheduler.handle (calibrated)


@dataclass(frozen=True)
class Chunk:
    """Task ids ``first .. first + count - 1``, arriving at their sub-master at ``arrives``.
    ``final``: the top master has nothing left after it (an empty final chunk says just that)."""

    first: int
    count: int
    arrives: float
    final: bool


class TopMaster:
    """Rank 0 of the two-level design: it holds only the next id to hand out, and journals each hand-out.

    A single server: a request reaches it ``latency`` after it was sent, waits while it serves
    earlier ones, takes ``chunk_cost``, and the reply takes ``latency`` back.  With one group there
    is no top master: the one master holds the whole sweep from the start.
    """

    def __init__(self, tasks: int, groups: int, min_chunk: int, design: Design) -> None:
        self.tasks, self.groups, self.min_chunk, self.design = tasks, groups, min_chunk, design
        self.next_id = 0
        self.free_at = 0.0
        self.busy = 0.0
        self.requests_at: list[float] = []  # when each request reached it
        self.longest_wait = 0.0
        self.journal: list[tuple[int, int, int]] = []  # (group, first id, count): all a resume needs of the top
        self.last_handout = 0.0

    def chunk_size(self, remaining: int) -> int:
        """Guided self-scheduling: a group takes 1/(k G) of what is left, never less than the floor."""
        return min(remaining, max(self.min_chunk, math.ceil(remaining / (self.design.guided_k * self.groups))))

    def serve(self, group: int, asked_at: float) -> Chunk:
        """Answer ``group``'s request sent at ``asked_at``: the next ids, and when they reach it."""
        if self.groups == 1:
            self.next_id = self.tasks
            return Chunk(0, self.tasks, asked_at, True)
        arrival = asked_at + self.design.latency
        begin = max(arrival, self.free_at)
        self.longest_wait = max(self.longest_wait, begin - arrival)
        self.free_at = begin + self.design.chunk_cost
        self.busy += self.design.chunk_cost
        self.requests_at.append(arrival)
        first = self.next_id
        count = self.chunk_size(self.tasks - first)
        self.next_id += count
        if count:
            self.journal.append((group, first, count))
            self.last_handout = self.free_at
        return Chunk(first, count, self.free_at + self.design.latency, self.next_id == self.tasks)


class SubMasterScheduler(Scheduler):
    """The real Scheduler as a sub-master would run it: it queues only the tasks of the chunks handed to it.

    A Scheduler takes its whole sweep when it is made; a sub-master gets its tasks a chunk at a
    time.  So this one is made over ``capacity`` local ids (0, 1, ... in the order the chunks
    come), its queue emptied, and :meth:`admit` queues each chunk's ids.  It leans on one private
    member (the queue heap) and adds no instance attribute (the Scheduler stays within the 30
    CPython 3.11 keeps fast); a sub-master built for real would want a public way in.
    """

    def __init__(self, capacity: int) -> None:
        super().__init__(TaskTable(["sim"] * capacity, range(1, capacity + 1), Task(-1, "sim")), standby=True)
        for queue in self._queues.values():
            queue.fresh.clear()

    def admit(self, first: int, count: int) -> None:
        """Queue local ids ``first .. first + count - 1``: each higher than any queued, so they join
        the queue's ids in order.  (Their state is QUEUED since the Scheduler was made.)"""
        (queue,) = self._queues.values()  # one shape: one-core tasks
        queue.admit(range(first, first + count))

    @property
    def held(self) -> int:
        """Tasks admitted and not started: queued, or sent ahead as standbys."""
        return self.queued_count + len(self.waiting)


class RealGroup:
    """Group 0: a sub-master running the real Scheduler over its nodes, as a single server, and its nodes.

    Discrete events in simulated time: a task ends on its node (which starts the standby behind it at
    once), the report reaches the sub-master ``latency`` later, the sub-master handles what has arrived
    in one burst when it is free, and is then busy for the measured ``handle`` time plus the calibrated
    cost of each end outside ``handle``; its starts and retractions reach the nodes ``latency`` after
    that.  :meth:`advance` runs until the sub-master asks the top master for a chunk (its time) or,
    after the final chunk, until every task has ended (None).
    """

    def __init__(self, cores: int, capacity: int, low_water: int, design: Design, durations) -> None:
        self.design, self.low_water, self.capacity = design, low_water, capacity
        self.all_durations = durations  # the sweep's, by global id
        self.durations: list[float] = []  # this group's, by local id (the order the chunks came in)
        self.scheduler = SubMasterScheduler(capacity)
        self.events: list[tuple[float, int, int, object]] = []
        self.sequence = itertools.count()  # ties in time keep the order things happened in
        self.inbox: list[TaskFinished | Retracted] = []
        self.inbox_ends = 0
        self.chunks: list[Chunk] = []
        self.admitted = 0
        self.wake_pending = False
        self.busy_until = self.busy = self.handle_seconds = 0.0
        self.bursts = self.completed = self.standby_starts = 0
        self.running: set[int] = set()  # the nodes' view
        self.behind: dict[int, int] = {}  # running task -> the standby its node starts when it ends
        self.standby_of: dict[int, int] = {}
        self.request_at: float | None = None
        self.asking = True  # a request is out (the first one goes at time 0): no other until its chunk comes
        self.final = False
        self.end = self.work = 0.0
        self.first_fill: float | None = None  # the busy time of the burst that admitted the first chunk
        nodes = cores // design.cores_per_node
        began = time.perf_counter()
        self.scheduler.handle(*(AgentJoined(n, f"node{n}", design.cores_per_node) for n in range(nodes)))
        self.handle_seconds += time.perf_counter() - began

    def push(self, at: float, kind: int, payload: object) -> None:
        heapq.heappush(self.events, (at, next(self.sequence), kind, payload))

    def deliver(self, chunk: Chunk) -> None:
        """The top master's answer to the outstanding request (it arrives at ``chunk.arrives``)."""
        self.final = self.final or chunk.final
        if chunk.count:
            if len(self.durations) + chunk.count > self.capacity:
                raise RuntimeError(f"group 0 was handed more than {self.capacity:,} tasks: its capacity is too small")
            piece = self.all_durations[chunk.first : chunk.first + chunk.count]
            self.durations.extend(piece.tolist())
            self.work += float(piece.sum())
            self.push(chunk.arrives, CHUNK, chunk)

    def advance(self) -> float | None:
        """Run the group's events in time order until its sub-master asks for a chunk (when), or, after
        the final one, until its last task ends (None).  Paused there: the answer depends on the others."""
        events = self.events
        handlers = (self.on_end, self.on_at_sub, self.on_at_node, self.on_chunk, self.on_wake)
        while events:
            now, _, kind, payload = heapq.heappop(events)
            handlers[kind](now, payload)
            if self.request_at is not None:
                asked, self.request_at = self.request_at, None
                return asked
        assert self.final, "group 0 ran dry with a request outstanding"
        return None

    # -- the nodes ----------------------------------------------------------------
    def begin_task(self, task_id: int, now: float) -> None:
        self.running.add(task_id)
        self.push(now + self.durations[task_id], END, task_id)

    def on_end(self, now: float, task_id: int) -> None:
        self.running.discard(task_id)
        self.completed += 1
        self.end = now
        follower = self.behind.pop(task_id, None)
        if follower is not None:  # the node starts it on the freed cores without waiting for anyone
            del self.standby_of[follower]
            self.standby_starts += 1
            self.begin_task(follower, now)
        self.push(now + self.design.latency, AT_SUB, TaskFinished(task_id, 0))

    def on_at_node(self, now: float, action: Start | Retract) -> None:
        if type(action) is Retract:
            predecessor = self.standby_of.pop(action.task_id, None)
            if predecessor is not None:  # not started yet: taken back (else its predecessor's end says it ran)
                del self.behind[predecessor]
                self.push(now + self.design.latency, AT_SUB, Retracted(action.task_id))
        elif action.after is not None and action.after in self.running:
            self.behind[action.after] = action.task_id
            self.standby_of[action.task_id] = action.after
        else:  # a start, or a standby whose predecessor has ended already: it starts now
            self.begin_task(action.task_id, now)

    # -- the sub-master ----------------------------------------------------------------
    def wake(self, now: float) -> None:
        """Something arrived: the sub-master takes it in its next turn, once it is free (one turn pending)."""
        if not self.wake_pending:
            self.wake_pending = True
            self.push(max(now, self.busy_until), WAKE, None)

    def on_at_sub(self, now: float, event: TaskFinished | Retracted) -> None:
        self.inbox.append(event)
        if type(event) is TaskFinished:
            self.inbox_ends += 1
        self.wake(now)

    def on_chunk(self, now: float, chunk: Chunk) -> None:
        self.asking = False
        self.chunks.append(chunk)
        self.wake(now)

    def on_wake(self, now: float, _: object) -> None:
        """One turn of the sub-master's loop: admit the chunks that came, handle the reports in one burst."""
        self.wake_pending = False
        burst, self.inbox = self.inbox, []
        ends, self.inbox_ends = self.inbox_ends, 0
        chunks, self.chunks = self.chunks, []
        scheduler = self.scheduler
        began = time.perf_counter()
        for chunk in chunks:
            scheduler.admit(self.admitted, chunk.count)
            self.admitted += chunk.count
        actions = scheduler.handle(*burst) if burst else scheduler.handle(ClockTick(now))  # a tick: place once
        spent = time.perf_counter() - began
        self.handle_seconds += spent
        service = spent + ends * self.design.observer_cost
        self.busy += service
        self.bursts += 1
        if chunks and self.first_fill is None:  # placing the first round (and its standbys): cores wait for it
            self.first_fill = service
        done = self.busy_until = now + service
        arrives = done + self.design.latency
        for action in actions:
            if type(action) is Start or type(action) is Retract:
                self.push(arrives, AT_NODE, action)
        if not self.asking and not self.final and scheduler.held < self.low_water:
            self.asking = True
            self.request_at = done


class ModelledGroup:
    """One of the other groups: its sub-master keeps up and costs nothing, the tasks start in order.

    Each task starts on the core that frees first, or when its chunk arrives if that is later: list
    scheduling with release times, one heap operation a task.  The sub-master asks for more the moment
    the tasks it holds (arrived, not started) fall below the low-water mark, as group 0's does.  ``pace``:
    its tasks take that many times as long as the sweep says (a slower partition: ``--slow-group``).
    """

    def __init__(self, cores: int, low_water: int, durations, pace: float = 1.0) -> None:
        self.free_at = [0.0] * cores
        self.low_water = low_water
        self.all_durations = durations
        self.pace = pace
        self.pending: deque[list] = deque()  # [arrives, durations, next position] of each chunk not all started
        self.released = self.started = 0
        self.arrived = 0.0
        self.final = False
        self.work = 0.0

    def deliver(self, chunk: Chunk) -> None:
        self.final = self.final or chunk.final
        if chunk.count:
            piece = self.all_durations[chunk.first : chunk.first + chunk.count]
            if self.pace != 1.0:
                piece = piece * self.pace
            self.work += float(piece.sum())
            self.pending.append([chunk.arrives, piece.tolist(), 0])
            self.released += chunk.count
            self.arrived = chunk.arrives

    def advance(self) -> float | None:
        """Start tasks until the next request (its time), or all of them after the final chunk (None)."""
        if self.final:
            self.start_until(self.released)
            return None
        trigger = self.released - self.low_water  # starting this one leaves fewer than low_water held
        if trigger < self.started:
            return self.arrived
        return max(self.start_until(trigger + 1), self.arrived)

    def start_until(self, count: int) -> float:
        """Start tasks in order until ``count`` have started; the last one's start time."""
        free_at, replace = self.free_at, heapq.heapreplace
        last = 0.0
        while self.started < count:
            entry = self.pending[0]
            arrives, durations, position = entry
            stop = min(len(durations), position + count - self.started)
            for duration in durations[position:stop]:
                last = free_at[0]
                if last < arrives:
                    last = arrives
                replace(free_at, last + duration)
            self.started += stop - position
            entry[2] = stop
            if stop == len(durations):
                self.pending.popleft()
        return last

    @property
    def end(self) -> float:
        return max(self.free_at)


@dataclass(frozen=True)
class Calibration:
    """What one master costs a task on this machine, split at ``Scheduler.handle`` (from master_ceiling.py)."""

    master_cost: float  # seconds a task ending, the whole master: the journal, the joblog, the scheduler...
    scheduler_cost: float  # of which inside Scheduler.handle
    shape: str  # what was run

    @property
    def observer_cost(self) -> float:
        """Seconds a task outside ``handle``: what a sub-master pays per end on top of its measured handle time."""
        return self.master_cost - self.scheduler_cost


@dataclass(frozen=True)
class Configuration:
    cores: int  # the whole allocation (groups x cores per group)
    groups: int
    task_seconds: float  # the mean task length
    tasks: int

    @property
    def cores_per_group(self) -> int:
        return self.cores // self.groups


def calibrate(nodes: int, cores: int, tasks: int, repeat: int, workdir: str | None) -> Calibration:
    """Run master_ceiling.py's master (journal, joblog, statistics, instant tasks) and keep its best run.

    Measured here and now rather than quoted: the sub-master's cost per end must come from the same
    machine as the ``handle`` times the simulation measures, and every figure printed from this run."""
    best: tuple[float, float] | None = None
    for _ in range(repeat):
        with tempfile.TemporaryDirectory(prefix="mpl-submasters-", dir=workdir) as scratch:
            figures = run_master_ceiling(nodes, cores, tasks, Path(scratch))
        whole = (figures["wall"] - figures["stand_in"]) / tasks
        if best is None or whole < best[0]:
            best = (whole, figures["scheduler"] / tasks)
    assert best is not None
    return Calibration(best[0], best[1], f"{nodes} x {cores} cores, {tasks:,} tasks, best of {repeat}")


def auto_groups(cores: int, task_seconds: float, cores_per_node: int, master_cost: float) -> int:
    """As few groups as keep each sub-master at most AUTO_LOAD loaded: the largest group of a power of
    two nodes whose ends a second (cores / task length) cost at most that share of a master's second.
    Half, not all: bursts, the MPI messages (not simulated) and a noisy node need the rest."""
    per_group = cores_per_node
    while per_group * 2 <= cores and per_group * 2 / task_seconds * master_cost <= AUTO_LOAD:
        per_group *= 2
    return max(1, cores // per_group)


def greedy_schedule(durations, cores: int, slow_cores: int = 0, pace: float = 1.0) -> tuple[float, float]:
    """One ideal master: greedy list scheduling in file order on all the cores, no cost and no latency
    (peers.py's bound, in slices so that a sweep of millions is never one Python list).  ``slow_cores``
    of the cores take ``pace`` times as long over each task (the slow group's, for a like comparison).
    Its makespan, and the core-seconds its tasks ran (more than the sweep says where some ran slowly)."""
    slices = (durations[begin : begin + (1 << 20)].tolist() for begin in range(0, len(durations), 1 << 20))
    replace = heapq.heapreplace
    if not slow_cores or pace == 1.0:
        free_at = [0.0] * min(cores, len(durations))
        for piece in slices:
            for duration in piece:
                replace(free_at, free_at[0] + duration)
        return max(free_at), float(durations.sum())
    paced = [(0.0, 1.0)] * (cores - slow_cores) + [(0.0, pace)] * slow_cores  # (free at, pace) of each core
    work = 0.0
    for piece in slices:
        for duration in piece:
            at, core_pace = paced[0]
            work += duration * core_pace
            replace(paced, (at + duration * core_pace, core_pace))
    return max(at for at, _ in paced), work


def peak_per_second(times: list[float]) -> int:
    """The most requests that reached the top master within one second of simulated time."""
    counts: dict[int, int] = {}
    for at in times:
        counts[int(at)] = counts.get(int(at), 0) + 1
    return max(counts.values(), default=0)


def simulate(config: Configuration, design: Design, calibration: Calibration, seed: int, slow: float = 1.0) -> dict:
    """One configuration: every task simulated, group 0 with the real Scheduler; its figures.  ``slow``:
    group 1's tasks take that many times as long (it shows whether pulling gives it less).  Group 1 is
    served second at the start, so it is handed one of the largest first chunks: the worst case."""
    import numpy as np  # millions of random draws at once

    rng = np.random.default_rng(seed)
    length = config.task_seconds
    durations = rng.uniform(SHORTEST * length, LONGEST * length, config.tasks)
    groups, per_group = config.groups, config.cores_per_group
    low_water = max(1, round(design.low_water_rounds * per_group))
    min_chunk = max(1, round(design.min_chunk_rounds * per_group))
    capacity = config.tasks if groups == 1 else min(config.tasks, 2 * math.ceil(config.tasks / groups) + min_chunk)
    began = time.perf_counter()
    top = TopMaster(config.tasks, groups, min_chunk, design)
    real = RealGroup(per_group, capacity, low_water, design, durations)
    modelled = [ModelledGroup(per_group, low_water, durations) for _ in range(groups - 1)]
    if modelled and slow != 1.0:
        modelled[0].pace = slow
    members: list[RealGroup | ModelledGroup] = [real, *modelled]
    requests = [(0.0, g) for g in range(groups)]  # every sub-master asks at the start
    # The cyclic GC off while simulating: a full collection walks every object alive, the simulation's own
    # hundreds of thousands of events in flight included, and would be charged to whichever handle call it
    # interrupts.  (The launcher freezes its long-lived objects for the same reason: see rank0.py.)
    gc.disable()
    try:
        while requests:  # in the order they were sent: the top master serves them in that order
            asked_at, g = heapq.heappop(requests)
            members[g].deliver(top.serve(g, asked_at))
            following = members[g].advance()
            if following is not None:
                heapq.heappush(requests, (following, g))
    finally:
        gc.enable()
    simulated = time.perf_counter() - began
    completed = real.completed + sum(m.started for m in modelled)
    assert completed == config.tasks and top.next_id == config.tasks, (completed, config.tasks)
    ends = [real.end] + [m.end for m in modelled]
    makespan = max(ends)
    work = real.work + sum(m.work for m in modelled)  # core-seconds the tasks ran (a slow group's longer)
    cores = groups * per_group
    bound = max(work / cores, float(durations.max()) * max(1.0, slow))
    greedy, greedy_work = greedy_schedule(durations, cores, per_group if modelled else 0, slow)
    return {
        "cores": cores,
        "groups": groups,
        "cores_per_group": per_group,
        "task_seconds": length,
        "tasks": config.tasks,
        "completed": completed,
        "low_water": low_water,
        "min_chunk": min_chunk,
        # group 0: the sub-master with the real Scheduler
        "sub_ends_per_s": round(real.completed / real.end),
        "sub_us_a_task": round(real.busy / real.completed * 1e6, 2),
        "sub_handle_us_a_task": round(real.handle_seconds / real.completed * 1e6, 2),
        "sub_ceiling_per_s": round(real.completed / real.busy),
        "sub_load": round(real.busy / real.end, 3),
        "sub_bursts": real.bursts,
        "sub_standby_share": round(real.standby_starts / real.completed, 3),
        "sub_first_fill_s": round(real.first_fill or 0.0, 3),
        "group0_busy": round(real.work / (per_group * real.end), 4),
        "modelled_busy": round(sum(m.work / (per_group * m.end) for m in modelled) / len(modelled), 4)
        if modelled
        else None,
        # the top master
        "top_chunks": len(top.journal),
        "top_requests": len(top.requests_at),
        "top_requests_per_s": round(len(top.requests_at) / makespan, 1),
        "top_peak_per_s": peak_per_second(top.requests_at),
        "top_load": round(top.busy / makespan, 5),
        "top_longest_wait_us": round(top.longest_wait * 1e6, 1),
        # the whole allocation
        "work_core_s": round(work),
        "makespan_s": round(makespan, 3),
        "bound_s": round(bound, 3),
        "greedy_makespan_s": round(greedy, 3),
        "busy": round(work / (cores * makespan), 4),
        "bound_busy": round(work / (cores * bound), 4),
        "greedy_busy": round(greedy_work / (cores * greedy), 4),
        "tail_s": round(makespan - top.last_handout, 3) if groups > 1 else None,
        "group_end_spread_s": round(makespan - min(ends), 3),
        "slow_group": slow if modelled else 1.0,
        # the tasks the slow group ran over an even share (1: as many as any group)
        "slow_group_share": round(modelled[0].released * groups / config.tasks, 3) if modelled else None,
        "one_master_load": round(cores / length * calibration.master_cost, 2),
        "simulated_in_s": round(simulated, 1),
    }


def percent(share: float | None) -> str:
    return "-" if share is None else f"{share:.1%}"


def markdown(rows: list[dict]) -> str:
    """The figures as a Markdown table, one row a configuration."""
    header = (
        "| cores | groups x cores | task s | tasks | sub-master: ends/s | us a task (handle) | load "
        "| top: chunks | requests/s mean (peak) | load | busy | list bound | one ideal master | tail s (ends within) "
        "| one master's load |"
    )
    lines = [header, "|" + "---|" * (header.count("|") - 1)]
    for r in rows:
        top = "-" if r["groups"] == 1 else f"{r['top_chunks']:,}"
        rate = "-" if r["groups"] == 1 else f"{r['top_requests_per_s']:,} ({r['top_peak_per_s']:,})"
        top_load = "-" if r["groups"] == 1 else percent(r["top_load"])
        tail = "-" if r["tail_s"] is None else f"{r['tail_s']:.2f} ({r['group_end_spread_s']:.2f})"
        lines.append(
            f"| {r['cores']:,} | {r['groups']} x {r['cores_per_group']:,} | {r['task_seconds']:g} | {r['tasks']:,} "
            f"| {r['sub_ends_per_s']:,} | {r['sub_us_a_task']} ({r['sub_handle_us_a_task']}) "
            f"| {percent(r['sub_load'])} | {top} | {rate} | {top_load} | {percent(r['busy'])} "
            f"| {percent(r['bound_busy'])} | {percent(r['greedy_busy'])} | {tail} | {r['one_master_load']:.2f} |"
        )
    return "\n".join(lines)


def describe(row: dict, slow: float) -> str:
    """One configuration's line of progress: its shape, that every task was decided, how long it took."""
    line = (
        f"  {row['cores']:,} cores, {row['groups']} x {row['cores_per_group']:,}, {row['task_seconds']:g} s: "
        f"{row['completed']:,} tasks decided, simulated in {row['simulated_in_s']} s"
    )
    if slow != 1.0 and row["slow_group_share"] is not None:
        line += f"; the {slow:g}x slower group ran {row['slow_group_share']:.2f} of an even share"
    return line


def spread(text: str, name: str, count: int, parser: argparse.ArgumentParser) -> list[str]:
    """A comma-separated option as one value a configuration: a single value serves them all."""
    values = [v.strip() for v in text.split(",") if v.strip()]
    if len(values) == 1:
        return values * count
    if len(values) != count:
        parser.error(f"--{name}: give one value or {count} (one a configuration), not {len(values)}")
    return values


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cores", help=f"comma-separated core counts, one a configuration (default {DEFAULT_CORES})")
    parser.add_argument(
        "--groups", help=f"sub-masters, one a configuration, or auto (default {DEFAULT_GROUPS}; auto with --cores)"
    )
    parser.add_argument("--task-seconds", help=f"mean task lengths (default {DEFAULT_TASK_SECONDS}; 1 with --cores)")
    parser.add_argument("--tasks", help=f"tasks in the sweep (default {ROUNDS} a core)")
    parser.add_argument("--cores-per-node", type=int, default=64)
    parser.add_argument("--latency", type=float, default=200.0, help="microseconds a message takes (default 200)")
    parser.add_argument("--chunk-us", type=float, default=50.0, help="top master's microseconds a hand-out (50)")
    parser.add_argument("--guided-k", type=float, default=2.0, help="chunk = remaining / (k x groups) (default 2)")
    parser.add_argument("--min-chunk", type=float, default=0.125, help="smallest chunk, in rounds of a group (1/8)")
    parser.add_argument("--low-water", type=float, default=0.5, help="ask for more below this many rounds held (0.5)")
    parser.add_argument("--observer-us", type=float, help="a master's microseconds a task outside handle "
                        "(default: measured by master_ceiling.py's master before the run)")  # fmt: skip
    parser.add_argument(
        "--slow-group",
        type=float,
        default=1.0,
        metavar="FACTOR",
        help="group 1's tasks take FACTOR times as long (a slower partition; default 1)",
    )
    parser.add_argument("--workdir", help="where the calibration's journal and joblog go (default: the temp folder)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--quick", action="store_true", help=f"small sizes ({QUICK_CORES} cores) and calibration")
    parser.add_argument("--json", help="also write the figures to this file")
    args = parser.parse_args(argv)
    if args.cores is None:  # the default run (or --quick's), shaped by whatever else was given
        cores, groups, lengths = (QUICK_CORES, QUICK_GROUPS, QUICK_TASK_SECONDS) if args.quick else DEFAULTS
    else:  # configurations of one's own: as few groups as keep each sub-master half loaded, tasks of 1 s
        cores, groups, lengths = args.cores, "auto", "1"
    given = {"cores": cores, "groups": args.groups or groups, "task-seconds": args.task_seconds or lengths}
    count = max(len([v for v in value.split(",") if v.strip()]) for value in given.values())
    try:
        args.cores = [int(c) for c in spread(given["cores"], "cores", count, parser)]
        args.groups = spread(given["groups"], "groups", count, parser)
        args.task_seconds = [float(v) for v in spread(given["task-seconds"], "task-seconds", count, parser)]
        tasks = spread(args.tasks, "tasks", count, parser) if args.tasks else [str(ROUNDS * c) for c in args.cores]
        args.tasks = [int(t) for t in tasks]
    except ValueError as error:
        parser.error(str(error))
    if any(g != "auto" and not g.isdigit() for g in args.groups):
        parser.error("--groups: whole numbers or auto")
    for cores_, groups in zip(args.cores, args.groups, strict=True):
        if groups != "auto" and (int(groups) < 1 or cores_ // int(groups) < args.cores_per_node):
            parser.error(f"--groups {groups}: each group needs at least one node of {args.cores_per_node} cores")
    if (
        args.cores_per_node < 1
        or min(args.tasks) < 1
        or min(args.task_seconds) <= 0
        or min(args.cores) < args.cores_per_node
    ):
        parser.error("--tasks must be at least 1, --task-seconds above 0, --cores at least one node")
    if args.slow_group <= 0:
        parser.error("--slow-group must be above 0")
    return args


def configurations(args: argparse.Namespace, calibration: Calibration) -> list[Configuration]:
    """The run's configurations: ``auto`` groups sized by the calibration, groups whole nodes."""
    out = []
    for cores, groups, length, tasks in zip(args.cores, args.groups, args.task_seconds, args.tasks, strict=True):
        auto = groups == "auto"
        count = auto_groups(cores, length, args.cores_per_node, calibration.master_cost) if auto else int(groups)
        per_group = cores // count // args.cores_per_node * args.cores_per_node
        out.append(Configuration(count * per_group, count, length, tasks))
    return out


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = parse_args(argv)
    began = time.time()
    nodes, cores, tasks, repeat = (4, 16, 3000, 1) if args.quick else (64, 64, 60_000, 3)
    calibration = calibrate(nodes, cores, tasks, repeat, args.workdir)
    observer_cost = calibration.observer_cost if args.observer_us is None else args.observer_us * 1e-6
    design = Design(args.cores_per_node, args.latency * 1e-6, args.chunk_us * 1e-6, args.guided_k, args.min_chunk,
                    args.low_water, observer_cost)  # fmt: skip
    print(f"# sub-masters, simulated: Python {platform.python_version()} on {platform.machine()}, "
          f"{os.cpu_count()} CPUs, {time.strftime('%Y-%m-%d', time.localtime(began))}")  # fmt: skip
    print(f"# calibration ({calibration.shape}): one master {calibration.master_cost * 1e6:.1f} us a task, "
          f"{calibration.scheduler_cost * 1e6:.1f} of them in Scheduler.handle; a sub-master pays "
          f"{observer_cost * 1e6:.1f} us an end on top of its measured handle time")  # fmt: skip
    print(f"# latency {args.latency:g} us a message, top master {args.chunk_us:g} us a chunk, chunk = "
          f"max({args.min_chunk:g} round, remaining / ({args.guided_k:g} x groups)), ask below {args.low_water:g} "
          f"rounds held; task lengths uniform {SHORTEST}-{LONGEST} x the task length, seed {args.seed}")  # fmt: skip
    rows = []
    for config in configurations(args, calibration):
        row = simulate(config, design, calibration, args.seed, args.slow_group)
        rows.append(row)
        print(describe(row, args.slow_group), flush=True)
    print()
    print(markdown(rows))
    print()
    print(
        "sub-master: group 0, the real Scheduler; ends/s it took, its time a task (of which in handle), its load "
        "(busy / its run).  busy: work / (cores x makespan); list bound: work / cores or the longest task; one "
        "ideal master: greedy in file order on all the cores at no cost; one master's load: the ends/s the "
        "allocation makes x one master's calibrated time a task (above 1: one master cannot keep up)"
    )
    if args.json:
        document = {
            "command": shlex.join(["python", "benchmarks/submasters.py", *argv]),
            "date": time.strftime("%Y-%m-%d %H:%M", time.localtime(began)),
            "machine": {"python": platform.python_version(), "cpus": os.cpu_count(), "platform": platform.platform()},
            "calibration": {**asdict(calibration), "observer_cost": calibration.observer_cost},
            "design": asdict(design),
            "rows": rows,
        }
        Path(args.json).write_text(json.dumps(document, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
