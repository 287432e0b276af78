"""The scheduling state machine: which queued task runs where, and when.

Theory of operation
-------------------
:meth:`Scheduler.handle` is the only way to change the scheduler's state.  It
takes a burst of events, applies each in order (a node joined, a task
finished, a node was lost, stop...), and then runs *one* placement pass over
the whole burst, as HyperQueue's reactor does: draining many completions
before placing keeps the cost per decision flat.  The placement pass is the
consequence of the burst's events, never a call of its own: a burst without
events changes nothing and returns nothing.  What ``handle`` returns is the
burst's instructions for the nodes and its facts for everyone else, in the
order they happened (see :mod:`mpilauncher.core.events`); nobody outside
reads the scheduler's maps.

Task life cycle (every task's one state, in :attr:`Scheduler.status`)::

    QUEUED --Start--> RUNNING --TaskFinished(0)--> COMPLETED                 (TaskEnded)
                         |     --TaskFinished(!=0)--> FAILED                  (TaskEnded)
                         |     --TaskFinished(!=0), retries left--> QUEUED    (TaskEnded, Retried)
                         +--AgentLost--> QUEUED  (runs again elsewhere: Requeued)
                         +--NeverStarted--> QUEUED  (the node could not start it: Requeued)

An event that cannot happen in a task's state raises :class:`InvalidTransition`
with the task's story: the last events and actions that named it.  Two kinds
of report are expected out of step and ignored: anything a node reports after
it was given up as lost (``AgentLost``; it may come back), and the end of a
standby that a ``StopDispatch`` dropped (its node may have started it before
the shutdown came); such a task stays where the core has it.

Queued tasks wait in one queue per *shape* (a core count, or "whole
node"; with a GPU count), lowest task id first (:mod:`.queues`: the ids
queued at the start in order, those queued again in a small heap beside
them).  Where each running task and standby is, is kept by task id
(:mod:`.placements`).  A placement pass repeatedly
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
of it: nothing starts from a burst that says stop.  The standbys it drops
(``ask_back=False``) are dropped after the burst's ends, though: one whose
predecessor ended in the same burst was started by its node, and is promoted.

Standby (``standby=True``, what the master uses): when every core is busy and
more than a full round of tasks is still queued, the next task of a running
task's shape is sent ahead to that task's node as a *standby* start
(``Start(after=pred)``).  The node starts it the moment ``pred`` ends, on
``pred``'s cores, without waiting for the master: for short tasks that round
trip is most of the time a core stands idle.  ``TaskFinished(pred)`` then
*promotes* it (``Promoted``, the fact that it started).  A standby only ever waits behind a running
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
    QUEUED (dropped by StopDispatch) --its node's TaskFinished(exit 0)/Promoted--> COMPLETED

A standby is not a started task: no fact says it started until it is promoted,
so the queuestate and the trace only ever show tasks that really run.

Pacing (``start_interval=s``, PyLauncher's ``delay``): at most one start every
``s`` seconds across the job, for tasks that would all hit a file system at
once.  Time arrives in :class:`ClockTick` events; a placement pass starts one
task if ``s`` seconds have passed since the last start, and a :class:`StartDue`
fact says when the next may go.  Hand-off and standby starts are off then:
every start waits its turn.

The deadline (``Deadline``: ``--max-runtime``, or the Slurm job's end less its
margin, on the clock of ``ClockTick``): a task that cannot finish before it is
*held back* -- left queued for the next job, with a :class:`HeldBack` fact --
instead of started and killed half-way at the stop.  Its expected time is its
own (``Task.expected``, the user's ``--expected-time``) or else the estimate of
:mod:`.estimates` (the 90th percentile of its shape's completed runtimes, once
there are enough); a task with neither starts.  Near the deadline (less than
twice the longest expected time left: the *end game*) every start goes through
the placement pass, which checks: no hand-off, no standby, and the standbys
still waiting are asked back.  When nothing runs and nothing queued can start
-- every task left is held back, or fits no node still in use (nodes lost or
out of use) -- the run is over at once: ``AllDone`` says how many were held
back and stranded, so the master stops (resumable) rather than idle until the
deadline.

Bad nodes (:mod:`.health`): every end tells the node's health what it says
about its node.  A node that fails tasks at once, again and again, while the
other nodes succeed with the same kind of task, is *suspected*: it gets no new
task (its standbys are asked back, its cores leave the pool as a lost node's
do, while its running tasks finish), and the tasks that failed fast there are
queued again without using up a retry (``Retried(excused=node)``).  The first of
them to end elsewhere decides: a success takes the node out of use for the run
(:class:`NodeOutOfUse`), a failure puts it back (:class:`NodeBackInUse`).  Any
failure on a suspect or out-of-use node is excused the same way, and so is a
lost node's (its running tasks are queued again as they were).  The last node
in use is never suspected.
"""

from __future__ import annotations

import heapq
from collections import deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from itertools import chain

from mpilauncher.core.estimates import RuntimeEstimates
from mpilauncher.core.events import (
    Action,
    AgentJoined,
    AgentLost,
    AllDone,
    ClockTick,
    Deadline,
    Event,
    HeldBack,
    NeverStarted,
    NodeBackInUse,
    NodeOutOfUse,
    NodeSuspended,
    Promoted,
    Requeued,
    Retract,
    Retracted,
    Retried,
    Start,
    StartDue,
    StopDispatch,
    TaskEnded,
    TaskFinished,
)
from mpilauncher.core.health import NodeHealth, Suspicion, Verdict, is_fast_failure
from mpilauncher.core.ledger import COMPLETED, FAILED, QUEUED, RUNNING
from mpilauncher.core.placements import Placements
from mpilauncher.core.queues import TaskQueue
from mpilauncher.core.slots import WHOLE_NODE, SlotPool
from mpilauncher.core.states import (
    AS_COMPLETED,
    AS_FAILED,
    AS_HELD,
    AS_QUEUED,
    AS_RUNNING,
    AS_STANDBY,
    HELD,
    STANDBY,
    TaskStates,
)
from mpilauncher.core.tasks import Task, TaskTable
from mpilauncher.errors import Unplaceable
from mpilauncher.records import field, record

#: The end game begins when less than this many times the longest expected task time is left.
END_GAME_ROUNDS = 2
#: Standbys are sent while more than this many rounds of tasks (a round: as many as run) are queued: the last
#: rounds start as cores free up, each where it can start first (see "Standby" above, and benchmarks/tail.py for
#: what a smaller reserve costs and saves with messages that take time).
STANDBY_RESERVE = 1.0
#: A shape's line of tasks that could take a standby is compacted when longer than this plus twice the running tasks.
BARE_SLACK = 1024
#: How many recent events and actions the scheduler keeps for the story of an invalid transition.
STORY_DEPTH = 10_000
#: At most this many entries of a story are told.
STORY_TOLD = 12

Shape = tuple[int, int, bool]


@record
class _Deadline:
    """What the scheduler knows of the deadline: when (``at``, the ClockTick clock; None: none), the
    estimates of how long tasks run, the tasks held back (in order), the longest time a task was given."""

    at: float | None = None
    estimates: RuntimeEstimates = field(default_factory=RuntimeEstimates)
    held: dict[int, None] = field(default_factory=dict)
    longest_given: float = 0.0


class _Log:
    """The scheduler's recent bursts, (events, actions), for the story of an invalid transition.

    A burst is logged whole, one append (one a record was 8% of a decision at 100,000 cores), and
    dropped whole once :data:`STORY_DEPTH` newer records are kept.
    """

    __slots__ = ("bursts", "records", "now")

    def __init__(self) -> None:
        self.bursts: deque[tuple[tuple[Event, ...], list[Action]]] = deque()
        self.records = 0  # events and actions in ``bursts``
        self.now: tuple[tuple[Event, ...], list[Action]] = ((), [])  # the burst being handled

    def handled(self) -> None:
        """The burst being handled is done: logged."""
        events, actions = self.now
        self.bursts.append(self.now)
        self.records += len(events) + len(actions)
        self.now = ((), [])
        while self.records > STORY_DEPTH:
            oldest_events, oldest_actions = self.bursts[0]
            size = len(oldest_events) + len(oldest_actions)
            if self.records - size < STORY_DEPTH:
                return
            self.bursts.popleft()
            self.records -= size

    def story(self, task_id: int) -> list[Event | Action]:
        """The logged events and actions that name ``task_id``, the burst being handled included."""
        return [
            entry
            for events, actions in (*self.bursts, self.now)
            for entry in (*events, *actions)
            if _names(entry, task_id)
        ]


class _StandbyLine:
    """The standbys of one shape that have not been asked back, oldest first, each with how many ends
    had been seen when it was sent (:meth:`Scheduler._retract_stale` reads their age at the head).

    Why not an OrderedDict (what this was): a standby leaves the line at its promotion, a round of
    tasks after it joined, from anywhere in it, and an OrderedDict's removal from the middle unlinks
    its neighbours, memory last touched a round ago -- measured at 100,000 cores, 0.85 us of a
    6.5 us decision.  Here a standby joins at the tail of two deques and leaves without a trace:
    it is still in the line while it waits (its state is STANDBY) and is not in ``asked``
    (asked back); the head drops the entries that no longer are.  A task sent ahead
    again (retried, or asked back and sent anew) while an entry of its earlier send is still in
    the line is seen at the earlier place, with the earlier age: it is asked back a little sooner,
    which is always allowed.  The deques hold at most the sends of the last four rounds of ends.
    """

    __slots__ = ("order", "sent", "codes", "asked")

    def __init__(self, codes: bytearray | dict[int, int]) -> None:
        self.order: deque[int] = deque()  # task ids, in the order they were sent ahead
        self.sent: deque[int] = deque()  # how many ends had been seen when each was sent
        self.codes = codes  # (the scheduler's task states: AS_STANDBY for every standby, asked back or not)
        self.asked: set[int] = set()  # standbys asked back whose node has not answered yet

    def add(self, tid: int, ends: int) -> None:
        self.order.append(tid)
        self.sent.append(ends)

    def holds(self, tid: int) -> bool:
        """Whether standby ``tid`` waits and has not been asked back."""
        return self.codes[tid] == AS_STANDBY and tid not in self.asked

    def oldest(self) -> int | None:
        """The standby that has waited longest (still in the line), or None."""
        order, sent, codes, asked = self.order, self.sent, self.codes, self.asked
        while order:
            tid = order[0]
            if codes[tid] == AS_STANDBY and tid not in asked:
                return tid
            order.popleft()
            sent.popleft()
        return None

    def ask_oldest(self) -> int | None:
        """Take the oldest standby out of the line (it is to be asked back); None if the line is empty."""
        tid = self.oldest()
        if tid is not None:
            self.order.popleft()
            self.sent.popleft()
            self.asked.add(tid)
        return tid

    def ask(self, tid: int) -> bool:
        """Take standby ``tid`` out of the line (it is to be asked back); False if it was not in it."""
        if not self.holds(tid):
            return False
        self.asked.add(tid)
        return True

    def left(self, tid: int) -> None:
        """Standby ``tid`` waits no more (promoted, taken back, dropped): forget that it was asked back."""
        if self.asked:
            self.asked.discard(tid)

    def __bool__(self) -> bool:
        return self.oldest() is not None


class InvalidTransition(RuntimeError):
    """An event that cannot happen in the task's current state (a bug or a confused peer).

    ``story`` is the task's recent history, oldest first: the events and actions
    that named it among the scheduler's last :data:`STORY_DEPTH` (as dask tells a
    task's story).
    """

    def __init__(self, task_id: int, state: str, event: Event, story: list[Event | Action]) -> None:
        self.task_id, self.state, self.event, self.story = task_id, state, event, story
        told = "".join(f"\n  {entry!r}" for entry in story[-STORY_TOLD:]) or " (nothing recent)"
        super().__init__(f"task {task_id} is {state}: {event!r} cannot happen; its story, oldest first:{told}")


class Scheduler:
    """Places tasks on free cores; see the module docstring."""

    def __init__(
        self,
        tasks: Iterable[Task],
        retries: int = 0,
        standby: bool = False,
        start_interval: float | None = None,
        history: Iterable[tuple[Task, Sequence[float]]] = (),
        history_later: tuple[float, Callable[[], Iterable[tuple[Task, Sequence[float]]]]] | None = None,
        attempts_before: Mapping[int, int] | None = None,
        retry_bases: Mapping[int, int] | None = None,
    ) -> None:
        """``attempts_before``: task -> its attempts in earlier runs that failed (``Ledger.attempts``): its
        attempts here are numbered on from them, and ``retries`` more are allowed in this run -- but for the
        tasks of ``retry_bases`` (of those, the ones whose retry was waiting or running at a stop), whose
        attempts after their base count against ``retries``: a stop does not give a flaky task more retries.
        A task's base is the attempts before its retries began (0; a task failed for good and run again
        by ``--rerun-failed``: its attempts then), as :meth:`pending_retry_bases` gave it at the stop.
        ``history``: the runtimes of the tasks of the sweep completed in earlier runs, by needs, for the
        estimates: (a task of those needs, their runtimes), as ``Ledger.completed_runtimes`` gives them;
        or ``history_later``: (the longest of them, what gives them when an estimate is first asked for:
        a resume half-way through a million tasks need not read half a million runtimes to start)."""
        table = TaskTable.of(tasks)
        #: Every task by id (a table: a Task is made when one is asked for, at its start).
        self.tasks: TaskTable = table
        #: A task's shape, asked at nearly every decision: the prototype's, unless the task has needs of its
        #: own (one look-up in a small dict, no Task and no method of the table on the way).
        self._shape_of: Callable[[int], Shape] = _shapes(table)
        groups = table.groups()  # (the tasks by needs: the queues below)
        #: Every task's one state (see :mod:`.states`: the hot path writes its codes, ``status.codes[tid]``).
        self.status = TaskStates(table.ids)
        self.pool = SlotPool()
        #: Every running task's and standby's Start (node, core ids, GPU indices, span over nodes, attempt) and
        #: the standby behind each running task, by id (read through ``running``, ``waiting``, ``follower``).
        self._placed = Placements(self.status.codes)
        self._queues: dict[Shape, TaskQueue] = {}
        self._stopping = False
        self._done_sent = False
        self.retries = retries
        self.attempts: dict[int, int] = dict(attempts_before or {})  # task -> attempts that failed and were retried
        # (not counted against this run's --retries)
        bases = retry_bases or {}
        self._attempts_before = {tid: n for tid, n in self.attempts.items() if tid not in bases}
        self._attempts_before.update((tid, base) for tid, base in bases.items() if base)
        self.standby = standby
        # Running tasks that could take a standby, oldest first, by shape: a task joins at its start and is
        # taken from the head when it still can (it runs, has no standby, its node is in use); an entry
        # that no longer can is dropped there, or by the compaction of _place (see _compact).
        self._bare: dict[Shape, deque[int]] = {}
        self._standby_of: dict[Shape, _StandbyLine] = {}  # standbys not yet asked back, by shape, oldest first
        self._ends = 0  # TaskFinished events so far: the clock-free measure of how long a standby waits
        self._lost: set[int] = set()  # nodes given up: what they report is stale
        self._dropped: dict[int, Start] = {}  # standby -> its start, queued by a StopDispatch that dropped it
        self._log = _Log()  # recent events and actions: stories
        self.start_interval = start_interval  # pacing: at most one start per this many seconds
        if start_interval is not None:
            self.standby = False  # a standby would start the moment its predecessor ends, unpaced
        self._now: float | None = None  # the latest ClockTick (paced only)
        self._next_start = float("-inf")  # when the next paced start may go
        self._pace_held = False  # the last placement pass stopped for the pace, with a task that fits
        # (New state goes into holders such as these two: CPython 3.11 specializes attribute access only for
        # instances of at most 30 attributes, and past that every ``self.x`` of the hot path is slower --
        # measured: 4-7% per decision at 1,000 cores.  tests/unit/test_scheduler_facts.py keeps the count.)
        self._time = _Deadline()
        self.health = NodeHealth()
        self._benched = self.health.benched  # (the same set: read on every end)
        self._end_game = False  # near the deadline: every start is checked (see the module docstring)
        #: A success may matter beyond its task: there is a deadline, or some task failed (a streak may be
        #: open).  False in a healthy sweep without one, which then pays one test per end for both features.
        self._watching = False
        # (A million tasks: the tasks and their states above, and the queues here, are made in passes
        # in C where they can be, not a Python loop turn per task.)
        queued: dict[Shape, list[Sequence[int]]] = {}  # (groups of other needs may share a shape: one queue)
        for first, ids in groups:  # one group, made in one pass, in the common sweep
            queued.setdefault(self._shape(first), []).append(ids)
            if first.expected is not None:
                self._time.longest_given = max(self._time.longest_given, first.expected)
        for task, runtimes in history:
            self._time.estimates.add_all(self._shape(task), runtimes)
        if history_later is not None:
            longest, read = history_later
            self._time.estimates.add_later(longest, lambda: [(self._shape(task), times) for task, times in read()])
        self._queues = {
            shape: TaskQueue(parts[0] if len(parts) == 1 else chain.from_iterable(parts))  # (the table's range kept)
            for shape, parts in queued.items()
        }
        del queued
        self._bare = {shape: deque() for shape in self._queues}
        self._standby_of = {shape: _StandbyLine(self.status.codes) for shape in self._queues}
        self._handlers = {
            TaskFinished: self._on_finished,
            AgentJoined: self._on_joined,
            AgentLost: self._on_lost,
            Retracted: self._on_retracted,
            NeverStarted: self._on_never_started,
        }

    # -- the one mutator --------------------------------------------------
    def handle(self, *events: Event) -> list[Action]:
        """Apply a burst of events in order (its time, deadline and every StopDispatch first), then place once.

        Returns the burst's instructions and facts, in the order they happened;
        no events, no change (an empty list).
        """
        if not events:
            return []
        actions: list[Action] = []
        self._log.now = (events, actions)
        drop = False  # a StopDispatch(ask_back=False): drop the standbys once the ends are in
        for event in events:  # first: nothing starts from a burst that says stop; the burst happens now
            kind = type(event)
            if kind is TaskFinished:  # (most events: one test)
                continue
            if kind is StopDispatch:
                drop = self._on_stop(event, actions) or drop
            elif kind is ClockTick:
                self._now = event.now
            elif kind is Deadline:
                self._time.at = event.at
                self._watching = True
        if self._time.at is not None and not self._end_game:
            self._check_end_game(actions)
        handlers = self._handlers
        for event in events:
            kind = type(event)
            if kind is not StopDispatch:
                handler = handlers.get(kind)
                if handler is None:
                    if kind is ClockTick or kind is Deadline:
                        continue
                    raise TypeError(f"not a scheduler event: {event!r}")
                handler(event, actions)
        if drop:
            self._drop_standbys()
        if not self._stopping:
            self._place(actions)
            if self._pace_held:
                actions.append(StartDue(self._next_start))
        if not self._placed.running_count and not self._done_sent and (self.pool.nodes or self._stopping):
            if self._stopping or not self.queued_count:
                self._done_sent = True
                actions.append(AllDone(held=len(self._time.held)))
            elif not self._pace_held and self.pool.total_cores:  # they fit no node in use (with none, a node
                # may yet join: the master decides what no node at all means)
                self._done_sent = True
                actions.append(AllDone(held=len(self._time.held), stranded=self.queued_count))
        self._log.handled()
        return actions

    # -- queries (tests, and the simulation's checks) -------------------------
    @property
    def running(self) -> Mapping[int, Start]:
        """Running task -> its Start: node, core ids, GPU indices, span over nodes, attempt."""
        return self._placed.running

    @property
    def waiting(self) -> Mapping[int, Start]:
        """Standby -> its Start (``after``: the task it waits behind)."""
        return self._placed.waiting

    @property
    def follower(self) -> Mapping[int, Start]:
        """Running task -> the Start of the standby waiting behind it."""
        return self._placed.follower

    @property
    def next_start_due(self) -> float | None:
        """Paced: when the next start may go, if a queued task that fits waits only for that."""
        return self._next_start if self._pace_held and not self._stopping else None

    @property
    def queued_count(self) -> int:
        return sum(len(q) for q in self._queues.values())

    def story(self, task_id: int) -> list[Event | Action]:
        """The recent events and actions that named ``task_id`` (as its own, or as the task a standby
        waits behind), oldest first."""
        return self._log.story(task_id)

    def validate(self) -> None:
        """Check cross-structure invariants (tests call this after every step)."""
        queued = {tid for q in self._queues.values() for tid in q}
        assert len(queued) == self.queued_count, "a task queued twice"
        for queue in self._queues.values():
            assert list(queue.fresh) == sorted(queue.fresh), "the fresh ids out of order"
        placed, counts = self._placed, dict.fromkeys((RUNNING, STANDBY), 0)
        for tid, status in self.status.items():
            assert (status == QUEUED) == (tid in queued), (tid, status)
            assert (status == HELD) == (tid in self._time.held), (tid, status)
            start, follower = placed.starts[tid], placed.behind[tid]
            assert (start is not None) == (status in (RUNNING, STANDBY)), (tid, status, start)
            assert start is None or start.task_id == tid, (tid, start)
            assert follower is None or (status == RUNNING and follower.after == tid), (tid, status, follower)
            assert follower is None or placed.starts[follower.task_id] is follower, (tid, follower)
            counts[status] = counts.get(status, 0) + 1
        assert (placed.running_count, placed.waiting_count) == (counts[RUNNING], counts[STANDBY]), counts
        for node in self.health.benched:
            assert not self.pool.nodes[node].alive, f"node {node} is out of use but its cores are in the pool"
        for tid, start in self.waiting.items():  # a standby on a node out of use is asked back, or started
            line = self._standby_of[self._shape_of(tid)]
            assert start.node not in self.health.benched or not line.holds(tid), (tid, "standby left on a bad node")
        for tid, start in self.waiting.items():
            pred = start.after
            assert pred is not None and self.follower[pred] is start and self.status[pred] == RUNNING, (tid, pred)
            assert self._shape_of(tid) == self._shape_of(pred), (tid, pred)
            placed = self.running[pred]
            same = (start.node, start.core_ids, start.gpu_indices) == (placed.node, placed.core_ids, placed.gpu_indices)
            assert same, (tid, pred)
        assert len(self.follower) == len(self.waiting)
        for line in self._standby_of.values():
            assert line.asked <= self.waiting.keys(), ("asked back, not waiting", line.asked - self.waiting.keys())
        used: dict[int, set[int]] = {}
        for start in self.running.values():
            if not _holds_cores(start):  # a GPU task that shares one core (slots.py)
                assert start.gpu_indices and len(start.core_ids) == 1, start
                assert 0 <= start.core_ids[0] < self.pool.nodes[start.node].cores, start
                continue
            for node, cores in start.segments:
                if not self.pool.nodes[node].alive:  # a node out of use: its cores are not the pool's
                    continue
                taken = used.setdefault(node, set())
                assert not taken & set(cores), f"core given twice on node {node}"
                taken |= set(cores)
        busy = sum(len(c) for c in used.values())
        assert self.pool.free_cores + busy == self.pool.total_cores, "cores lost or invented"
        for node, taken in used.items():
            assert not taken & set(self.pool.nodes[node].free), f"busy core listed free on {node}"
        gpus_used: dict[int, set[int]] = {}
        for start in self.running.values():
            if not start.gpu_indices or not self.pool.nodes[start.node].alive:
                continue
            taken = gpus_used.setdefault(start.node, set())
            assert not taken & set(start.gpu_indices), f"GPU given twice on node {start.node}"
            assert not set(start.gpu_indices) & set(self.pool.nodes[start.node].free_gpus), (
                f"busy GPU listed free on {start.node}"
            )
            taken |= set(start.gpu_indices)

    # -- transitions ------------------------------------------------------
    def _on_joined(self, event: AgentJoined, actions: list[Action]) -> None:
        self.pool.add_node(event.node, event.name, event.cores, event.gpus)

    def _on_stop(self, event: StopDispatch, actions: list[Action]) -> bool:
        """Nothing starts any more; True when the standbys are to be dropped (after the burst's ends)."""
        self._stopping = True
        if event.ask_back:  # those not asked back yet; all stay STANDBY until their node answers
            self._ask_all_back(actions)
            return False
        return True

    def pending_retry_bases(self) -> dict[int, int]:
        """The unfinished tasks whose retries began after attempts of earlier runs (a ``--rerun-failed``):
        task -> those attempts, for the queuestate, so that a resume counts their retries as this run did
        (see ``retry_bases``): the resume cannot tell them from a retry that waited, whose base is 0."""
        state = self.status.state  # ("" for a task not of this run: one failed for good, not run again)
        pending = (QUEUED, RUNNING, STANDBY, HELD)
        return {tid: base for tid, base in self._attempts_before.items() if state(tid) in pending}

    def _drop_standbys(self) -> None:
        """The nodes are about to be shut down, which drops the standbys still waiting there."""
        for tid in list(self.waiting):  # never started (or killed by the stop): queued again
            self._dropped[tid] = self.waiting[tid]
            self._unlink(tid)
            self._enqueue(tid)

    def _out_of_step(self, event: TaskFinished | NeverStarted) -> None:
        """A report of a task that does not run where it says: stale (ignored: see the module
        docstring), or a transition that cannot happen (raised, with the task's story)."""
        tid, node = event.task_id, event.node
        start = self.running.get(tid)
        if node in self._lost or (tid in self._dropped and node in (None, self._dropped[tid].node)):
            return
        state = self.status.state(tid) or "not a task of this run"
        if start is not None:
            state = f"running on node {start.node}"
        raise InvalidTransition(tid, state, event, self.story(tid))

    def _on_finished(self, event: TaskFinished, actions: list[Action]) -> None:
        tid, node = event.task_id, event.node
        placed = self._placed
        start = placed.starts[tid] if 0 <= tid < placed.top else None  # (Placements.running_start, inlined)
        if start is None or placed.codes[tid] != AS_RUNNING or (node is not None and node != start.node):
            if not self._ran_though_dropped(event, actions):
                self._out_of_step(event)
            return
        self._ends += 1
        actions.append(TaskEnded(start, event))
        shape, promoted = self._vacate(start, event.start + event.runtime)
        if promoted is not None:
            actions.append(promoted)
        code = event.exit_code
        judged = None
        if code == 0:
            self.status.codes[tid] = AS_COMPLETED
            if self._watching:  # a deadline to estimate for, or a node's health to follow
                judged = self._succeeded(start, shape, event, actions)
        else:
            judged = self._failed(start, shape, event, actions)
        if judged is not None:
            self._act_on(judged, actions)
        if promoted is None:
            benched = self._benched
            successor = self._next_in_order(shape) if not benched or start.node not in benched else None
            if successor is not None:  # hand the cores (and GPUs) straight on: no trip through the pool
                self._queues[shape].pop()
                actions.append(self._run(start.node, successor, start.core_ids, start.gpu_indices, shape))
            else:
                self._release(start)

    def _ran_though_dropped(self, event: TaskFinished, actions: list[Action]) -> bool:
        """A standby the stop dropped that its node had started after all (behind a task that ended before
        the shutdown came) and that completed in the grace: completed, as any task that ends cleanly
        after a stop is.  Left queued, it would run again on resume: a sweep runs no completed task twice.
        Any other end of a dropped standby is the stop's (the shutdown killed it): it stays queued."""
        tid = event.task_id
        start = self._dropped.get(tid)
        if start is None or event.exit_code != 0 or event.node not in (None, start.node):
            return False
        if self.status.codes[tid] != AS_QUEUED:  # (nothing starts once stopping: only a second report)
            return False
        del self._dropped[tid]
        self._queues[self._shape_of(tid)].remove(tid)
        self.status.codes[tid] = AS_COMPLETED
        actions.append(Promoted(start, event.start))
        actions.append(TaskEnded(start, event))
        return True

    def _succeeded(
        self, start: Start, shape: Shape, event: TaskFinished, actions: list[Action]
    ) -> Suspicion | Verdict | None:
        """What a success says beyond its task: a runtime for the estimates, and about nodes' health."""
        if self._time.at is not None:
            self._time.estimates.add(shape, event.runtime)
        health = self.health
        if not (health.streaks or health.trial):
            return None
        judged = health.succeeded(start.node, shape, start.task_id)
        if judged is None and health.streaks and not self._queues[shape]:
            # Nodes that fail tasks of this shape get none any more: the evidence now grows only here.
            for suspicion in health.suspects_among(shape, besides=start.node):
                self._act_on(suspicion, actions)
        return judged

    def _failed(
        self, start: Start, shape: Shape, event: TaskFinished, actions: list[Action]
    ) -> Suspicion | Verdict | None:
        """A failure: retried (``--retries``; always, without using one up, on a node out of use) or failed;
        and what it says about its node."""
        tid, node, code = start.task_id, start.node, event.exit_code
        judged = None
        if not self._stopping:
            fast = is_fast_failure(code, event.runtime, event.timed_out)
            judged = self.health.failed(node, shape, tid, start.attempt, code, fast)
            self._watching = True
        excused = node in self._benched  # its node is suspect or out of use: not the task's fault
        excused_before = self.health.excused
        counted = start.attempt - excused_before.get(tid, 0) if excused_before else start.attempt
        if self._attempts_before:
            counted -= self._attempts_before.get(tid, 0)
        if not self._stopping and (excused or counted <= self.retries):
            if excused:
                excused_before[tid] = excused_before.get(tid, 0) + 1
            self.attempts[tid] = start.attempt
            self._enqueue(tid)
            actions.append(Retried(tid, start.attempt, node if excused else None))
        else:
            self.status.codes[tid] = AS_FAILED
        return judged

    def _release(self, start: Start) -> None:
        """The cores of ``start`` (on every node of an MPI task) and its GPUs go back to the pool; a GPU
        task with no core slot of its own (``cores=0``) only shared its core: it gives back its GPUs."""
        pool = self.pool
        if _holds_cores(start):
            if start.span:
                for segment_node, segment_cores in start.span:
                    pool.release(segment_node, segment_cores)
            else:
                pool.release(start.node, start.core_ids)
        if start.gpu_indices:
            pool.release_gpus(start.node, start.gpu_indices)

    def _on_never_started(self, event: NeverStarted, actions: list[Action]) -> None:
        """Its start failed on the node: queued again, its cores to its standby (started at once there) or freed."""
        start = self._placed.running_start(event.task_id)
        if start is None or (event.node is not None and event.node != start.node):
            self._out_of_step(event)
            return
        _, promoted = self._vacate(start, event.at)
        if promoted is None:
            self._release(start)
        else:
            actions.append(promoted)
        self._enqueue(start.task_id)
        actions.append(Requeued(start.task_id, start.node, event.reason or "never started"))

    def _vacate(self, start: Start, at: float) -> tuple[Shape, Promoted | None]:
        """``start``'s task no longer runs: its shape, and the standby that its node has started
        on those very cores and GPUs at ``at`` (promoted here), if one waited behind it."""
        tid, placed = start.task_id, self._placed
        placed.starts[tid] = None  # (its entry in _bare, if any, is dropped where it is met: tid's state changes)
        shape = self._shape_of(tid)
        standby = placed.behind[tid]
        if standby is None:
            placed.running_count -= 1
            return shape, None
        placed.behind[tid] = None  # (what _unlink does, with the running count left as it is: one for one)
        placed.waiting_count -= 1
        follower = standby.task_id
        if self._standby_of[shape].asked:  # (_StandbyLine.left, inlined: the hot path)
            self._standby_of[shape].asked.discard(follower)
        self.status.codes[follower] = AS_RUNNING
        if not self._benched or standby.node not in self._benched:
            self._bare[shape].append(follower)
        return shape, Promoted(standby, at)

    def _run(self, node: int, tid: int, core_ids: tuple[int, ...], gpu_indices: tuple[int, ...], shape: Shape) -> Start:
        """``tid`` runs now on ``core_ids`` (and ``gpu_indices``) of ``node``, which a task of its shape just left."""
        attempt = self.attempts.get(tid, 0) + 1 if self.attempts else 1
        start = Start(node, tid, core_ids, gpu_indices, (), None, attempt, self.tasks)
        placed = self._placed
        placed.starts[tid] = start
        placed.running_count += 1
        self.status.codes[tid] = AS_RUNNING
        self._bare[shape].append(tid)
        return start

    def _next_in_order(self, shape: Shape) -> int | None:
        """The queued task of ``shape`` that may take a just-freed slot of that shape:
        the lowest queued id overall, so file order holds (never for MPI tasks)."""
        if self._stopping or shape[2] or self.start_interval is not None or self._end_game:
            return None
        if self._lowest_queued_shape() != shape:
            return None
        return self._queues[shape].head()

    def _lowest_queued_shape(self) -> Shape | None:
        """The shape of the lowest queued task id: the only one that may move ahead (file order)."""
        first = lowest = None
        for shape, queue in self._queues.items():
            if queue:
                head = queue.head()
                if first is None or head < first:
                    first, lowest = head, shape
        return lowest

    def _on_retracted(self, event: Retracted, actions: list[Action]) -> None:
        tid = event.task_id
        if self.status.state(tid) == STANDBY:  # else: promoted meanwhile, or dropped by a stop
            self._unlink(tid)  # its predecessor takes no new standby: it is slow, or the sweep ends
            self._enqueue(tid)

    def _unlink(self, tid: int) -> None:
        """Forget standby ``tid``'s link to the task it waits behind."""
        placed = self._placed
        pred = placed.starts[tid].after  # type: ignore[union-attr]
        placed.starts[tid] = placed.behind[pred] = None  # type: ignore[index]
        placed.waiting_count -= 1
        self._standby_of[self._shape_of(tid)].left(tid)

    def _on_lost(self, event: AgentLost, actions: list[Action]) -> None:
        node = event.node
        self._lost.add(node)
        self.pool.remove_node(node)
        self.health.lost(node)
        placed = self._placed
        lost = [tid for tid, start in self.running.items() if start.node == node]  # (in id order)
        for tid in lost:
            standby = placed.behind[tid]
            if standby is not None:  # it waited there, never started (or died with the node)
                self._unlink(standby.task_id)
                self._enqueue(standby.task_id)
            start = placed.starts[tid]
            placed.starts[tid] = None
            placed.running_count -= 1
            for segment_node, segment_cores in start.span[1:]:
                self.pool.release(segment_node, segment_cores)
            self._enqueue(tid)
            actions.append(Requeued(tid, node))

    def _compact(self, bare: deque[int]) -> None:
        """Drop the entries of ``bare`` that can take no standby any more (see _send_ahead), in place.

        Entries are dropped where _send_ahead meets them, which it does not while few tasks are queued
        (the sweep's last round) or with no standby at all: this keeps the line within twice the
        running tasks."""
        codes, starts, behind, benched = self.status.codes, self._placed.starts, self._placed.behind, self._benched
        kept = [
            tid
            for tid in bare
            if codes[tid] == AS_RUNNING and behind[tid] is None and starts[tid].node not in benched  # type: ignore[union-attr]
        ]
        bare.clear()
        bare.extend(dict.fromkeys(kept))  # (one entry a task: a task can be in the line twice)

    def _enqueue(self, tid: int) -> None:
        self.status.codes[tid] = AS_QUEUED
        self._queues[self._shape_of(tid)].push(tid)

    def _place(self, actions: list[Action]) -> None:
        pool = self.pool
        self._pace_held = False
        while pool.free_cores or pool.has_free_gpus:  # a GPU task may need no free core
            best_shape = best_id = None
            for shape, queue in self._queues.items():
                if queue and (best_id is None or queue.head() < best_id) and self._fits(shape):
                    best_shape, best_id = shape, queue.head()
            if best_shape is None:
                break
            if self._end_game and self._hold_back(best_id, best_shape, actions):
                continue
            if self.start_interval is not None:
                if self._now is None or self._now < self._next_start:
                    self._pace_held = True
                    break
                self._next_start = self._now + self.start_interval
            self._queues[best_shape].pop()
            width, gpus, mpi = best_shape
            span: tuple[tuple[int, tuple[int, ...]], ...] = ()
            gpu_indices: tuple[int, ...] = ()
            if gpus:
                node, core_ids, gpu_indices = pool.take_with_gpus(width, gpus)
            elif mpi and width != WHOLE_NODE:
                run = pool.find_run(width)
                if run is not None:
                    node, core_ids = run[0], pool.take_run(run[0], run[1], width)
                    span = ((node, core_ids),)
                else:
                    span = pool.take_span(pool.find_span(width))
                    node, core_ids = span[0]
            else:
                node, core_ids = pool.take_whole_node() if width == WHOLE_NODE else pool.take(width)
                if mpi:
                    span = ((node, core_ids),)
            attempt = self.attempts.get(best_id, 0) + 1 if self.attempts else 1
            start = Start(node, best_id, core_ids, gpu_indices, span, None, attempt, self.tasks)
            placed = self._placed
            placed.starts[best_id] = start
            placed.running_count += 1
            self.status.codes[best_id] = AS_RUNNING
            if not mpi:
                self._bare[best_shape].append(best_id)
            actions.append(start)
        for bare in self._bare.values():
            if len(bare) > 2 * self._placed.running_count + BARE_SLACK:
                self._compact(bare)
        if self.standby and not self._end_game:
            if self._placed.waiting_count:
                if pool.free_cores or pool.has_free_gpus:
                    self._retract_idle(actions)
                self._retract_stale(actions)
            self._send_ahead(actions)

    # -- the deadline -------------------------------------------------------------
    def _check_end_game(self, actions: list[Action]) -> None:
        """Near the deadline every start is checked: standbys still waiting are asked back (they would
        start unchecked the moment their predecessor ends), and none is sent any more."""
        deadline = self._time
        longest = max(deadline.longest_given, deadline.estimates.longest)
        if self._now is None or not longest or deadline.at - self._now >= END_GAME_ROUNDS * longest:  # type: ignore
            return
        self._end_game = True
        self._ask_all_back(actions)

    def _hold_back(self, tid: int, shape: Shape, actions: list[Action]) -> bool:
        """Hold ``tid`` back (out of its queue, for the next job) if it cannot finish before the deadline."""
        task = self.tasks.needs(tid)
        expected = task.expected if task.expected is not None else self._time.estimates.of(shape)
        left = self._time.at - self._now  # type: ignore[operator]  # (the end game has both)
        if expected is None or expected <= left:
            return False
        self._queues[shape].pop()
        self.status.codes[tid] = AS_HELD
        self._time.held[tid] = None
        actions.append(HeldBack(tid, expected, left, estimated=task.expected is None))
        return True

    # -- bad nodes -------------------------------------------------------------------
    def _act_on(self, judged: Suspicion | Verdict, actions: list[Action]) -> None:
        if isinstance(judged, Suspicion):
            self._suspect(judged, actions)
        elif judged.node in self.health.suspects:
            if judged.guilty:
                self._convict(judged.node, judged.task_id, judged.where, actions)
            else:
                self._acquit(judged, actions)

    def _suspect(self, suspicion: Suspicion, actions: list[Action]) -> None:
        """No new task on the node; its standbys asked back; the tasks it failed fast queued again (not
        using up a retry) and put on trial: the first to end elsewhere decides (see :mod:`.health`)."""
        node, health = suspicion.node, self.health
        in_use = len(self.pool.nodes) - len(self._lost) - len(health.benched)
        if node in self._lost or node in health.benched or in_use <= 1:  # keep one node
            return
        on_trial, proof = self._trial_of(suspicion)
        if not on_trial and proof is None:  # nothing left to decide it: the evidence was tried already
            health.forget_streaks(node)
            return
        self.pool.remove_node(node)
        actions.append(NodeSuspended(node, suspicion.failures, suspicion.elsewhere, suspicion.exit_code))
        for tid, start in self.running.items():
            if start.node != node:
                continue
            shape = self._shape_of(tid)  # (its entry in _bare, if any, is dropped where it is met: its node is benched)
            standby = self._placed.behind[tid]
            if standby is not None and self._standby_of[shape].ask(standby.task_id):
                actions.append(self._ask_back(standby.task_id))
        health.suspect(suspicion, on_trial)
        for tid in on_trial:
            health.tried.add(tid)
            health.excused[tid] = health.excused.get(tid, 0) + suspicion.victims[tid][0]
            if self.status[tid] == FAILED:
                self.attempts[tid] = suspicion.victims[tid][1]
                self._enqueue(tid)
                actions.append(Retried(tid, suspicion.victims[tid][1], node))
        if proof is not None:
            self._convict(node, proof, None, actions)

    def _trial_of(self, suspicion: Suspicion) -> tuple[list[int], int | None]:
        """The tasks the node failed fast that go on trial, and one that is proof already (it succeeded
        elsewhere since).  A task goes on trial once: after an acquittal its failures are its own."""
        on_trial, proof = [], None
        for tid, (_, attempt) in suspicion.victims.items():
            state = self.status[tid]
            if state == COMPLETED:  # it failed there and has succeeded elsewhere since (a retry)
                proof = tid if proof is None else proof
            elif tid in self.health.tried:
                continue
            elif state != FAILED or self.attempts.get(tid, 0) + 1 == attempt:  # (FAILED: there, last)
                on_trial.append(tid)
        return on_trial, proof

    def _convict(self, node: int, tid: int, where: int | None, actions: list[Action]) -> None:
        """The node is out of use for the rest of the run (it stays out of the pool)."""
        suspicion = self.health.convict(node)
        actions.append(NodeOutOfUse(node, tid, where, suspicion.failures, suspicion.elsewhere, suspicion.exit_code))

    def _acquit(self, verdict: Verdict, actions: list[Action]) -> None:
        """It was the tasks: the node is back in use, with the cores its running tasks do not hold."""
        node = verdict.node
        self.health.acquit(node)
        busy: set[int] = set()
        busy_gpus: set[int] = set()
        for tid, start in self.running.items():
            task = self.tasks.needs(tid)
            for segment_node, cores in start.segments:
                if segment_node == node and task.cores:
                    busy.update(cores)
            if start.node == node:
                busy_gpus.update(start.gpu_indices)
                shape = self._shape(task)
                if not shape[2] and self._placed.behind[tid] is None:
                    self._bare[shape].append(tid)  # (one still there from before is met twice: the second is dropped)
        self.pool.restore_node(node, busy, busy_gpus)
        actions.append(NodeBackInUse(node, verdict.task_id, verdict.where))

    def _send_ahead(self, actions: list[Action]) -> None:
        """Standby starts behind running tasks while more than a round of work is queued."""
        shape = self._lowest_queued_shape()
        if shape is None or shape[2]:
            return
        bare, queue, line = self._bare[shape], self._queues[shape], self._standby_of[shape]
        in_order, sent = line.order, line.sent  # (line.add, inlined: the hot path)
        placed, codes, benched = self._placed, self.status.codes, self._benched
        starts, behind = placed.starts, placed.behind
        fresh, again = queue.fresh, queue.again  # (queue.pop, inlined: the hot path)
        queued = len(fresh) + len(again)
        reserve = STANDBY_RESERVE * placed.running_count
        while bare and queued > reserve:
            pred = bare.popleft()  # the oldest: likely to end first
            ahead = starts[pred]
            if codes[pred] != AS_RUNNING or behind[pred] is not None or (benched and ahead.node in benched):  # type: ignore[union-attr]
                continue  # (no longer bare: ended, took a standby, or its node is out of use)
            tid = heapq.heappop(again) if again and (not fresh or again[0] < fresh[0]) else fresh.popleft()
            queued -= 1
            attempt = self.attempts.get(tid, 0) + 1 if self.attempts else 1
            start = Start(ahead.node, tid, ahead.core_ids, ahead.gpu_indices, (), pred, attempt, self.tasks)  # type: ignore[union-attr]
            codes[tid] = AS_STANDBY
            behind[pred] = starts[tid] = start
            placed.waiting_count += 1
            in_order.append(tid)
            sent.append(self._ends)
            actions.append(start)

    def _retract_idle(self, actions: list[Action]) -> None:
        """Cores (or GPUs) are free and nothing queued fits them: ask back standbys of shapes that would."""
        for shape, line in self._standby_of.items():
            if not line or not self._fits(shape):
                continue
            width = shape[0] if shape[0] > 0 else max(1, self.pool.total_cores // max(1, len(self.pool.nodes)))
            for _ in range(max(1, self.pool.free_cores // width)):
                tid = line.ask_oldest()
                if tid is None:
                    break
                actions.append(self._ask_back(tid))

    def _retract_stale(self, actions: list[Action]) -> None:
        """Ask back standbys that have waited through four rounds of ends (their predecessor is
        a long task): they go back to the head of the queue and start behind a faster one.
        Four, not one or two: with exponential task times a standby's predecessor outlasts
        two rounds 13% of the time, four rounds 2% (simulated), and each ask costs a round trip."""
        limit = 4 * self._placed.running_count
        for line in self._standby_of.values():
            while (tid := line.oldest()) is not None and self._ends - line.sent[0] > limit:
                line.ask_oldest()
                actions.append(self._ask_back(tid))

    def _ask_all_back(self, actions: list[Action]) -> None:
        """Every standby not asked back yet is asked back, oldest first."""
        for line in self._standby_of.values():
            while (tid := line.ask_oldest()) is not None:
                actions.append(self._ask_back(tid))

    def _ask_back(self, tid: int) -> Retract:
        """Standby ``tid``, already out of its shape's list, is asked back from its node; it stays
        STANDBY until the node answers (or its predecessor's end shows it had started)."""
        return Retract(self._placed.starts[tid].node, tid)  # type: ignore[union-attr]

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


def _shapes(table: TaskTable) -> Callable[[int], Shape]:
    """The function that gives a task's shape by id (see ``Scheduler._shape_of``)."""
    overrides, plain, shape = table.overrides.get, Scheduler._shape(table.prototype), Scheduler._shape

    def shape_of(task_id: int) -> Shape:
        task = overrides(task_id)
        return plain if task is None else shape(task)

    return shape_of


def _holds_cores(start: Start) -> bool:
    """Whether ``start``'s core ids are its own, not a GPU task's share of one core (read from its needs:
    no Task made here)."""
    return start.table is None or bool(start.table.needs(start.task_id).cores)


def _names(entry: Event | Action, task_id: int) -> bool:
    """Whether a logged event or action is about ``task_id`` (or a standby waiting behind it)."""
    if getattr(entry, "task_id", None) == task_id:
        return True
    start = entry.start if isinstance(entry, (Promoted, TaskEnded)) else entry
    return isinstance(start, Start) and start.after == task_id


def find_unplaceable(
    tasks: Iterable[Task], node_cores: Iterable[int], node_gpus: Iterable[int] = ()
) -> list[Unplaceable]:
    """Tasks no node can hold (too many cores, or GPUs): reported before anything starts."""
    cores = list(node_cores)
    gpus = list(node_gpus) or [0] * len(cores)
    largest = max(cores, default=0)
    bad = []
    total = sum(cores)
    for task, ids in TaskTable.of(tasks).groups():  # the tasks of one shape fit, or none of them
        if task.mpi and not task.gpus:
            if task.cores > total:
                bad.extend(Unplaceable(i, task.cores, total) for i in ids)
            continue
        if task.gpus and not any(g >= task.gpus and c >= task.cores for c, g in zip(cores, gpus, strict=True)):
            bad.extend(Unplaceable(i, task.cores, largest, task.gpus, max(gpus, default=0)) for i in ids)
        elif task.cores > largest:
            bad.extend(Unplaceable(i, task.cores, largest) for i in ids)
    bad.sort(key=lambda u: u.task_id)
    return bad
