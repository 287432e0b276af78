"""The master loop (rank 0): reports in, events to the scheduler, starts out, facts to the observers.

Each turn: wait for agent messages (the in-process agent sleeps in epoll until
a task ends; remote agents are polled with back-off), turn them into events,
let the scheduler handle the whole burst at once (:meth:`Scheduler.handle`,
the only way to change its state), send every node its starts in one message,
then hand the burst's facts -- which task started where, which ended and how,
which was queued again -- to the observers (the state store, the joblog, the
trace, the statistics: see :mod:`mpilauncher.core.observer`) and end their
turn.  The loop reads nothing of the scheduler but what ``handle`` returns.
A standby start (see :mod:`mpilauncher.core.scheduler`) is promoted by its
predecessor's end and may itself end in the same burst: events are applied
in order.

A start that a node could not carry out for the launcher's own fault (the
task's output file cannot be created: quota, full or read-only file system,
workdir deleted) is not a failed task, and every later start would fail the
same way: the task is queued again, nothing new starts anywhere (the first
such report puts a ``StopDispatch(ask_back=True)`` into its turn's burst, so
the whole turn counts as after it), one error line says why at once, the
running tasks finish, and the run ends as a launcher failure (exit status 3)
that ``--resume`` picks up.  Decisions live in :mod:`mpilauncher.core`; this
loop only moves data.

Stopping.  The stop request is checked at the top of every turn, before the
turn's burst is handled (so no start is decided that would not go out), and
while reports are read: once a stop signal is in (rank 0's own, or another
rank's passed on as :class:`Signalled`), ends are no longer turned into
events as they come but held for :meth:`Master._stop_early`, which counts
only a clean exit (0) as completed.  Slurm signals every process of a step,
tasks included, so a task killed by Slurm's SIGTERM must stay *running*
(interrupted, rerun on resume), not be recorded as failed.  An agent passes
its own signal on before any end it reports after it, so the hold covers the
ends of its node that the same signal caused.
"""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping

from mpilauncher import log
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
from mpilauncher.core.nodes import Node
from mpilauncher.core.observer import Observer, overrides
from mpilauncher.core.ranges import compress
from mpilauncher.core.scheduler import Scheduler
from mpilauncher.errors import LauncherFailure, ProtocolError
from mpilauncher.execution.starters import Segment
from mpilauncher.plural import counted
from mpilauncher.protocol import Completions, Ended, Hello, Signalled, StartRequest, StartTasks
from mpilauncher.records import record
from mpilauncher.runtime.stop import STOP_SIGNALS, StopRequest


def nodes_from_hellos(hellos: Iterable[tuple[int, Hello]]) -> dict[int, Node]:
    """The node table the master and the observers share, from the agents' hellos."""
    return {
        index: Node(index, hello.node_name, hello.cores, hello.bound_cpus, hello.gpu_ids)
        for index, hello in sorted(hellos, key=lambda item: item[0])
    }


#: A task that dies of a stop signal we did not send (SIGTERM, SIGINT, SIGHUP, SIGUSR1) was most
#: likely killed by the batch system stopping the whole job (scancel, the time limit: Slurm signals
#: every process of the job at once), a moment before the stop reaches rank 0 itself: its end is
#: held this long, and a stop that comes meanwhile makes it an interruption (rerun on resume) rather
#: than a failure.  Without a stop it is an ordinary end (someone's own kill), only that much later.
#: A shell's exit status 128+N counts too: Slurm signals the processes of a step one by one, so the
#: shell of ``sleep 1 && echo`` may see its child die of the signal and exit 138 before its own turn.
#: Every later end of its node waits behind it, in order: the standby that the node started on its
#: cores the moment it ended may end meanwhile, and its end means nothing before the end it followed.
STOP_DEATHS = frozenset([-s for s in STOP_SIGNALS] + [128 + s for s in STOP_SIGNALS])
SUSPECT_WAIT = 2.0


@record
class Outcome:
    """How the loop ended: ``interrupted`` names the signal when it did not finish; ``failure``
    why the launcher could not start tasks (already reported on stderr), if it could not."""

    interrupted: str | None
    elapsed: float
    failure: str | None = None


class Master:
    """Drives one run; see the module docstring.

    ``nodes``: the node table (:func:`nodes_from_hellos`); ``observers``: the
    consumers of the facts, in the order they are told; ``paced``: the
    scheduler has a start interval, so time goes in with every burst.
    ``clock`` (monotonic) and ``wall_clock`` (epoch) are ``time``'s unless a
    test drives the loop.
    """

    def __init__(
        self,
        scheduler: Scheduler,
        transport,
        nodes: Mapping[int, Node],
        observers: Iterable[Observer] = (),
        *,
        delay: float,
        grace: float,
        stop: StopRequest,
        paced: bool = False,
        job_nodes: tuple[str, ...] = (),
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        self.scheduler = scheduler
        self.transport = transport
        self.nodes = nodes
        self.observers = list(observers)
        self.delay = delay
        self.grace = grace
        self.stop = stop
        self.paced = paced
        self.job_nodes: tuple[str, ...] = job_nodes  # the batch system's node order (ibrun offsets)
        self.clock = clock
        self.wall_clock = wall_clock
        # Only the hooks an observer has: a fact costs nothing for those that ignore it.
        self._on_started = [o.on_started for o in self.observers if overrides(o, "on_started")]
        self._on_ended = [o.on_ended for o in self.observers if overrides(o, "on_ended")]
        self._on_requeued = [o.on_requeued for o in self.observers if overrides(o, "on_requeued")]
        self._on_held = [o.on_held for o in self.observers if overrides(o, "on_held")]
        self._on_node = [o.on_node for o in self.observers if overrides(o, "on_node")]
        self._on_turn_end = [o.on_turn_end for o in self.observers if overrides(o, "on_turn_end")]
        self._slot_base: dict[str, int] | None = None
        self._lost = 0
        self._lost_now: dict[int, int] = {}  # nodes given up this turn -> their tasks queued again
        self._held: list[tuple[int, Ended]] = []  # (node, Ended) read after a stop signal: see _stop_early
        self._suspect: list[tuple[float, int, Ended]] = []  # (until, node, Ended): killed by a stop signal,
        # and the ends of its node that came after it (due with it)
        self._suspect_until: dict[int, float] = {}  # node -> when the ends it has held are due
        self._done = False
        self._left_over: str | None = None  # why queued tasks cannot start in this run (AllDone says)
        self._held_told = False  # the first task held back is said in one line
        self._start_due: float | None = None  # paced: when the next start may go (clock time)
        self.began = clock()
        self.start_failure: str | None = None  # why tasks cannot be started (see the module docstring)

    # -- the loop ---------------------------------------------------------
    def run(self) -> Outcome:
        nodes = self.nodes
        events: list[Event] = [
            AgentJoined(index, node.name, node.core_count, len(node.gpu_ids)) for index, node in sorted(nodes.items())
        ]
        timed = self.paced or self.stop.deadline is not None  # the scheduler needs the time of each burst
        if self.stop.deadline is not None:
            events.append(Deadline(self.stop.deadline))
        while True:
            now = self.clock()
            if self._suspect:
                events += self._settle_suspects(now)
            if self.stop.check(now):  # before this turn's starts are decided
                return self._stop_early(events)
            if timed:
                events.append(ClockTick(now))
            facts = self.scheduler.handle(*events)
            self._send(facts)
            self._notify(facts)
            due = self._turn_end()
            if self._done:
                return Outcome(self._left_over, self.clock() - self.began, self.start_failure)
            now = self.clock()
            timeout = min(self.delay, self.stop.seconds_left(now))
            if due is not None:
                timeout = min(timeout, max(0.0, due - (now - self.began)))
            if self._start_due is not None:
                timeout = min(timeout, max(0.0, self._start_due - now))
            if self._suspect:
                timeout = min(timeout, max(0.0, min(self._suspect_until.values()) - now))
            events = self._events(self.transport.receive(timeout))
            lost = self._lost_nodes(self.clock())
            if lost:
                events += lost

    def _send(self, actions: list[Action]) -> None:
        """Every node its starts (and standbys taken back) of this burst, in one message."""
        starts: dict[int, list[StartRequest]] = defaultdict(list)
        retracts: dict[int, list[int]] = defaultdict(list)
        for action in actions:
            if isinstance(action, Start):
                starts[action.node].append(self._start_item(action))
            elif isinstance(action, Retract):
                retracts[action.node].append(action.task_id)
        for node in starts.keys() | retracts.keys():
            self.transport.send(node, StartTasks(tuple(starts.get(node, ())), tuple(retracts.get(node, ()))))

    def _start_item(self, start: Start) -> StartRequest:
        """The start message for one task, built from its Start alone."""
        task = start.task
        assert task is not None, "the scheduler's starts carry their task"
        segments = tuple(self._segment(node, core_ids) for node, core_ids in start.span) if start.span else ()
        return StartRequest(task.id, task.command, start.core_ids, start.gpu_indices, task.line, segments, start.after)

    def _notify(self, facts: list[Action]) -> None:
        """The burst's facts to the observers, in order; the master notes its own (done, pace)."""
        wall = self.wall_clock()
        self._start_due = None
        for fact in facts:
            if isinstance(fact, Start):
                if fact.after is None:  # a standby starts when it is promoted
                    for hook in self._on_started:
                        hook(fact, wall)
            elif isinstance(fact, TaskEnded):
                for hook in self._on_ended:
                    hook(fact)
            elif isinstance(fact, Promoted):
                for hook in self._on_started:
                    hook(fact.start, fact.at)
            elif isinstance(fact, (Requeued, Retried)):
                if isinstance(fact, Requeued) and not fact.reason and fact.node in self._lost_now:
                    self._lost_now[fact.node] += 1
                for hook in self._on_requeued:
                    hook(fact)
            elif isinstance(fact, StartDue):
                self._start_due = fact.at
            elif isinstance(fact, HeldBack):
                if not self._held_told:
                    self._held_told = True
                    log.info(self._held_line(fact))
                for hook in self._on_held:
                    hook(fact)
            elif isinstance(fact, (NodeSuspended, NodeOutOfUse, NodeBackInUse)):
                self._node_line(fact)
                for hook in self._on_node:
                    hook(fact)
            elif isinstance(fact, AllDone):
                self._done = True
                self._left_over = self._why_left(fact)
        for node, count in self._lost_now.items():
            name = self.nodes[node].name
            self.warn(f"lost contact with the agent of node {name}: its {count} running tasks are queued again")
        self._lost_now.clear()

    def _held_line(self, held: HeldBack) -> str:
        """The one line that says tasks are held back (the first one; the statistics count them all)."""
        why = "its expected time"
        if held.estimated:
            why = "the 90th percentile of the sweep's completed tasks of its size"
        text = (
            f"task {held.task_id} held back for the next job: it needs about {_seconds(held.expected)} s ({why}),"
            f" {_seconds(held.left)} s are left before {self.stop.deadline_name}"
        )
        whole = self.stop.deadline - self.began if self.stop.deadline is not None else None
        if whole is not None and held.expected > whole:
            text += f", and more than this whole run has ({_seconds(whole)} s): give it a longer job"
        return text + "; so is every task that cannot finish in time (resume to run them)"

    def _node_line(self, fact: NodeSuspended | NodeOutOfUse | NodeBackInUse) -> None:
        """A node out of use is one warning line, with its evidence; a suspicion and a clearing are told
        at lower levels (the joblog shows the tasks that ran once more)."""
        name = self.nodes[fact.node].name
        if isinstance(fact, NodeSuspended):
            log.debug(
                f"node {name} suspect: {fact.failures} tasks in a row failed there within a second"
                f" (exit {fact.exit_code}) while {fact.elsewhere} of their kind succeeded on other nodes; no new task"
                " there until one of them has run elsewhere"
            )
        elif isinstance(fact, NodeOutOfUse):
            where = f"on {self.nodes[fact.where].name}" if fact.where is not None else "on another node"
            log.warning(
                f"node {name} taken out of use: {fact.failures} tasks in a row failed there within a second"
                f" (exit {fact.exit_code}) while {fact.elsewhere} of their kind succeeded on other nodes, and task"
                f" {fact.task_id}, which failed there, succeeded {where}; their tasks run elsewhere, without using"
                " up --retries"
            )
        else:
            log.info(
                f"node {name} back in use: task {fact.task_id}, which failed there at once, failed on"
                f" {self.nodes[fact.where].name} too: it is the tasks, not the node"
            )

    def _why_left(self, done: AllDone) -> str | None:
        """Why the run ends with tasks queued that cannot start in it (None: nothing is left)."""
        reasons = []
        if done.held:
            reasons.append(
                f"nothing left that can finish before {self.stop.deadline_name}: {counted(done.held, 'task')}"
                " held back for the next job"
            )
        if done.stranded:
            reasons.append(
                f"{counted(done.stranded, 'task')} {'fits' if done.stranded == 1 else 'fit'} no node still in use"
                " (the others were lost or are out of use)"
            )
        return "; ".join(reasons) or None

    def _turn_end(self) -> float | None:
        """The observers' turn ends (journal lines to the OS, a trace block...); the earliest
        elapsed time one of them wants the next turn by."""
        wall, elapsed = self.wall_clock(), self.clock() - self.began
        due = None
        for hook in self._on_turn_end:
            wanted = hook(wall, elapsed)
            if wanted is not None and (due is None or wanted < due):
                due = wanted
        return due

    def _segment(self, node: int, core_ids: tuple[int, ...]) -> Segment:
        """Where an MPI task's ranks go on one node; ``offset`` numbers slots across the job."""
        if self._slot_base is None:
            cores_by_name: dict[str, int] = {}
            for info in self.nodes.values():
                cores_by_name[info.name] = cores_by_name.get(info.name, 0) + info.core_count
            names = list(cores_by_name)
            order = [n for n in self.job_nodes if n in names] if set(names) <= set(self.job_nodes) else names
            base, self._slot_base = 0, {}
            for name in order:
                self._slot_base[name] = base
                base += cores_by_name[name]
        name = self.nodes[node].name
        return Segment(name, len(core_ids), self._slot_base[name] + core_ids[0], compress(core_ids, ","))

    def _events(self, messages) -> list[Event]:
        """The events of the agents' messages, in order (ends held back once a stop signal is in)."""
        events: list[Event] = []
        for node, message in messages:
            if type(message) is Signalled:
                self.stop.relayed(message.signum, f"rank {message.rank} on {self.nodes[node].name}")
                continue
            if type(message) is not Completions:
                raise ProtocolError(f"unexpected message from node {node}: {type(message).__name__}")
            for task_id in message.retracted:
                events.append(Retracted(task_id))
            if self.stop.signum is not None:  # the signal may have killed these tasks: _stop_early decides
                self._held.extend((node, ended) for ended in message.items)
                continue
            for ended in message.items:
                until = self._suspect_until.get(node)
                if ended.exit_code in STOP_DEATHS and not ended.timed_out and not ended.not_started:
                    until = self._suspect_until[node] = self.clock() + SUSPECT_WAIT
                if until is not None:
                    self._suspect.append((until, node, ended))
                else:
                    events += self._end_events(node, ended)
        return events

    def _end_events(self, node: int, ended: Ended) -> list[Event]:
        """What one end that ``node`` reported tells the scheduler."""
        if not ended.not_started:
            return [_finished(node, ended)]
        first = [self._cannot_start(ended.not_started)] if self.start_failure is None else []
        return [*first, NeverStarted(ended.task_id, node, ended.not_started, ended.start)]

    def _settle_suspects(self, now: float) -> list[Event]:
        """Ends by a stop signal, held a moment with the ends behind them: a stop that came meanwhile
        decides them (they were the batch system's, see SUSPECT_WAIT); else, their time up, they are
        ordinary ends, given in the order they happened."""
        if self.stop.signum is not None:
            self._held[:0] = self._unsettled()  # (before the ends read since the stop: they came first)
            return []
        due = [(node, ended) for until, node, ended in self._suspect if until <= now]
        if not due:
            return []
        self._suspect = [item for item in self._suspect if item[0] > now]
        self._suspect_until = {node: until for node, until in self._suspect_until.items() if until > now}
        return [event for node, ended in due for event in self._end_events(node, ended)]

    def _unsettled(self) -> list[tuple[int, Ended]]:
        """Every end still held as a suspect's (or behind one), in order; none held any more."""
        held = [(node, ended) for _, node, ended in self._suspect]
        self._suspect, self._suspect_until = [], {}
        return held

    def _cannot_start(self, reason: str) -> StopDispatch:
        """The first start that failed for the launcher's fault: say so at once, start nothing more."""
        self.start_failure = f"cannot start tasks: {reason}"
        log.error(
            f"{self.start_failure}; nothing new starts, the running tasks finish,"
            " then the launcher stops (exit status 3): --resume runs what did not complete"
        )
        return StopDispatch(ask_back=True)  # standbys still waiting on nodes are asked back

    def _stop_early(self, events: list[Event]) -> Outcome:
        """Signal received: start nothing more, end running tasks, keep what finished cleanly.

        A task that exits 0 during the grace period completed; any other end
        after the stop signal (ours, or the batch system's own SIGTERM to
        every process of the job) is an interruption: it stays *running* in
        the queuestate, so a resume runs it again.  Nothing goes out to the
        nodes any more but the shutdown.
        """
        self._notify(self.scheduler.handle(StopDispatch(), *events))
        held = self._unsettled() + self._held  # (suspects die of the stop too; they came first)
        self._held = []
        ended = held + self.transport.shutdown(self.grace, self.stop.exit_status)
        clean = [_finished(node, e) for node, e in ended if e.exit_code == 0 and not e.not_started]
        self._notify(self.scheduler.handle(*clean))
        elapsed = self.clock() - self.began
        self._turn_end()
        return Outcome(self.stop.reason, elapsed, self.start_failure)

    def _lost_nodes(self, now: float) -> list[AgentLost]:
        """Agents that went silent: their running tasks go back to the queue."""
        events = []
        for node in self.transport.silent_nodes(now):
            self.transport.forget(node)
            self._lost_now[node] = 0
            events.append(AgentLost(node))
        if events and len(events) + self._lost >= len(self.nodes):
            for event in events:
                self.warn(f"lost contact with the agent of node {self.nodes[event.node].name}")
            raise LauncherFailure("every agent is lost: no node left to run tasks on")
        self._lost += len(events)
        return events

    def warn(self, text: str) -> None:
        log.warning(text)


def _seconds(value: float) -> str:
    """A duration as people read it in a message: ``10``, ``4.5``, ``3600``, ``0.004`` (a user walk read
    "it needs about 0.0 s ..., 0.0 s are left")."""
    if value >= 10 or value == int(value):
        return f"{value:.0f}"
    return f"{value:.1f}" if value >= 0.1 else f"{value:.1g}"


def _finished(node: int, ended: Ended) -> TaskFinished:
    """The event of an end ``node`` reported."""
    return TaskFinished(
        ended.task_id, ended.exit_code, node, ended.start, ended.runtime, ended.timed_out, ended.leftovers,
        ended.cpu_user, ended.cpu_system, ended.max_rss,
    )  # fmt: skip
