"""The master loop (rank 0): feed events to the scheduler, carry out its actions.

Each turn: wait for agent messages (the in-process agent sleeps in epoll until
a task ends; remote agents are polled with back-off), turn them into events,
let the scheduler decide once for the whole burst, send every node its starts
in one message, then journal the turn and print a trace tick when one is due.
Completions are applied one by one as they are read: a standby start (see
:mod:`mpilauncher.core.scheduler`) is promoted by its predecessor's end and
may itself end in the same batch.

A start that a node could not carry out for the launcher's own fault (the
task's output file cannot be created: quota, full or read-only file system,
workdir deleted) is not a failed task, and every later start would fail the
same way: the task is queued again, nothing new starts anywhere, one error
line says why at once, the running tasks finish, and the run ends as a
launcher failure (exit status 3) that ``--resume`` picks up.  The ledger counts a standby as queued until
then, so the queuestate and the trace only ever show tasks that really run.
Decisions live in :mod:`mpilauncher.core`; this loop only moves data.

Stopping.  The stop request is checked at the top of every turn, before the
turn's starts go out, and while reports are read: once a stop signal is in
(rank 0's own, or another rank's passed on as :class:`Signalled`), ends are
no longer applied as they come but held for :meth:`Master._stop_early`,
which counts only a clean exit (0) as completed.  Slurm signals every process
of a step, tasks included, so a task killed by Slurm's SIGTERM must stay
*running* (interrupted, rerun on resume), not be recorded as failed.  An
agent passes its own signal on before any end it reports after it, so the
hold covers the ends of its node that the same signal caused.
"""

from __future__ import annotations

import signal
import sys
import time
from collections import defaultdict
from dataclasses import dataclass
from io import TextIOBase as TextIO

from mpilauncher.core.events import (
    AgentJoined,
    AgentLost,
    AllDone,
    ClockTick,
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
from mpilauncher.core.ranges import compress
from mpilauncher.core.scheduler import Scheduler
from mpilauncher.errors import EXIT_SIGNAL_BASE, EXIT_STOPPED, LauncherFailure, ProtocolError
from mpilauncher.execution.resources import binding
from mpilauncher.execution.starters import Segment
from mpilauncher.persistence.store import StateStore
from mpilauncher.protocol import Completions, Ended, Hello, Signalled, StartRequest, StartTasks
from mpilauncher.report.joblog import Joblog
from mpilauncher.report.trace import tick_block


@dataclass(slots=True)
class Outcome:
    """How the loop ended: ``interrupted`` names the signal when it did not finish; ``failure``
    why the launcher could not start tasks (already reported on stderr), if it could not."""

    interrupted: str | None
    elapsed: float
    failure: str | None = None


class StopRequest:
    """Why the run must end early: a signal (set from its handler, or passed on by another rank) or a deadline.

    The loop checks it every turn; a deadline (``--max-runtime``, or the
    Slurm job's end less a margin) also bounds how long the loop sleeps.
    Every rank of an MPI run holds one from its start: a signal handler only
    sets :attr:`signum` (no MPI call, no I/O), the rank's loop acts on it.
    """

    def __init__(self, deadline: float | None = None, deadline_reason: str = "") -> None:
        self.signum: int | None = None
        self.origin = ""  # where a signal passed on by another rank arrived, e.g. "rank 2 on c102"
        self.deadline = deadline  # time.monotonic() value
        self.deadline_reason = deadline_reason
        self.expired = False

    def __call__(self, signum: int, _frame: object) -> None:
        if self.signum is None:
            self.signum = signum

    def relayed(self, signum: int, origin: str) -> None:
        """Another rank was signalled: stop as if the signal had reached this one (the first signal counts)."""
        if self.signum is None:
            self.signum, self.origin = signum, origin

    def limit(self, deadline: float | None, reason: str) -> None:
        """Set the deadline once the run's limits are known (the handler may already be in place)."""
        self.deadline, self.deadline_reason = deadline, reason

    def check(self, now: float) -> bool:
        if self.deadline is not None and now >= self.deadline:
            self.expired = True
        return self.signum is not None or self.expired

    def seconds_left(self, now: float) -> float:
        return float("inf") if self.deadline is None else max(0.0, self.deadline - now)

    @property
    def reason(self) -> str | None:
        if self.signum is not None:
            where = f" (received by {self.origin})" if self.origin else ""
            return f"stopped by {signal.Signals(self.signum).name}{where}"
        return self.deadline_reason if self.expired else None

    @property
    def exit_status(self) -> int:
        return EXIT_SIGNAL_BASE + self.signum if self.signum is not None else EXIT_STOPPED

    @property
    def signalled_by_user(self) -> bool:
        """Stopped by Ctrl-C, SIGTERM or SIGHUP: someone ended the run (``scancel``), as opposed to a
        deadline or the time limit's early warning (SIGUSR1): no continuation is wanted then."""
        return self.signum is not None and self.signum != signal.SIGUSR1


class Master:
    """Drives one run; see the module docstring."""

    def __init__(
        self,
        scheduler: Scheduler,
        store: StateStore,
        joblog: Joblog,
        transport,
        *,
        delay: float,
        grace: float,
        trace_jobs: bool,
        trace_hosts: bool,
        stop: StopRequest,
        out: TextIO | None = None,
        job_nodes: tuple[str, ...] = (),
    ) -> None:
        self.scheduler = scheduler
        self.store = store
        self.joblog = joblog
        self.transport = transport
        self.delay = delay
        self.grace = grace
        self.trace_jobs = trace_jobs
        self.trace_hosts = trace_hosts
        self.stop = stop
        self.out = out or sys.stdout
        self.node_names: dict[int, str] = {}
        self.job_nodes: tuple[str, ...] = job_nodes  # the batch system's node order (ibrun offsets)
        self._slot_base: dict[str, int] | None = None
        self.node_cpus: dict[int, tuple[int, ...]] = {}  # CPU per core slot where the agent binds
        self.node_gpus: dict[int, tuple[str, ...]] = {}
        self.node_cores: dict[str, int] = {}
        self._tick = 0
        self._lost = 0
        self.dispatched: dict[int, float] = {}  # task id -> wall time its start was sent
        self.dispatch_latencies: list[float] = []  # agent start - master dispatch, per task
        self._held: list[tuple[int, Ended]] = []  # (node, Ended) read after a stop signal: see _stop_early
        self.began = time.monotonic()
        self._next_tick = self.began
        self.start_failure: str | None = None  # why tasks cannot be started (see the module docstring)

    # -- the loop ---------------------------------------------------------
    def run(self, hellos: list[tuple[int, Hello]]) -> Outcome:
        joined = []
        for node, hello in hellos:  # (the MPI transport has checked their protocol versions)
            self.node_names[node] = hello.node_name
            self.node_cores[hello.node_name] = self.node_cores.get(hello.node_name, 0) + hello.cores
            self.node_cpus[node] = hello.bound_cpus
            self.node_gpus[node] = hello.gpus
            joined.append(AgentJoined(node, hello.node_name, hello.cores, len(hello.gpus)))
        paced = self.scheduler.start_interval is not None  # then time goes in with every burst
        actions = self.scheduler.handle(*joined, *self._clock(paced))
        while True:
            if self.stop.check(time.monotonic()):  # before this turn's starts go out
                return self._stop_early()
            finished = self._carry_out(actions)
            now = time.monotonic()
            self.store.flush(time.time(), now - self.began)
            self.joblog.flush()
            self._maybe_trace(now)
            if finished:
                return Outcome(None, time.monotonic() - self.began, self.start_failure)
            timeout = max(0.0, self._next_tick - now) if self.trace_jobs else self.delay
            timeout = min(timeout, self.stop.seconds_left(now))
            if paced and (due := self.scheduler.next_start_due) is not None:
                timeout = min(timeout, max(0.0, due - now))
            actions = self._apply_reports(self.transport.receive(timeout))
            actions += self.scheduler.handle(*self._lost_nodes(time.monotonic()), *self._clock(paced))

    @staticmethod
    def _clock(paced: bool) -> tuple[ClockTick, ...]:
        return (ClockTick(time.monotonic()),) if paced else ()

    def _carry_out(self, actions) -> bool:
        starts: dict[int, list[StartRequest]] = defaultdict(list)
        retracts: dict[int, list[int]] = defaultdict(list)
        done = False
        wall = time.time()
        for action in actions:
            if isinstance(action, Start):
                task = self.scheduler.tasks[action.task_id]
                segments = tuple(self._segment(node, cores) for node, cores in action.span)
                item = StartRequest(task.id, task.command, action.cores, action.gpus, task.line, segments, action.after)
                starts[action.node].append(item)
                if action.after is None:  # a standby is recorded when it is promoted
                    self.store.started(task.id, self.node_names[action.node], action.cores, wall)
                    self.dispatched[task.id] = wall
            elif isinstance(action, Retract):
                retracts[action.node].append(action.task_id)
            elif isinstance(action, (Requeued, Retried)):
                self.store.requeued(action.task_id)
            elif isinstance(action, AllDone):
                done = True
        for node in starts.keys() | retracts.keys():
            self.transport.send(node, StartTasks(tuple(starts.get(node, ())), tuple(retracts.get(node, ()))))
        return done

    def _segment(self, node: int, cores: tuple[int, ...]) -> Segment:
        """Where an MPI task's ranks go on one node; ``offset`` numbers slots across the job."""
        if self._slot_base is None:
            names = [self.node_names[n] for n in sorted(self.node_names)]
            order = [n for n in self.job_nodes if n in names] if set(names) <= set(self.job_nodes) else names
            base, self._slot_base = 0, {}
            for name in order:
                self._slot_base[name] = base
                base += self.node_cores[name]
        name = self.node_names[node]
        return Segment(name, len(cores), self._slot_base[name] + cores[0], compress(cores, ","))

    def _apply_reports(self, messages) -> list:
        """Apply every reported end (and standby taken back) in order; the scheduler's actions."""
        actions: list = []
        scheduler = self.scheduler
        for node, message in messages:
            if isinstance(message, Signalled):
                self.stop.relayed(message.signum, f"rank {message.rank} on {self.node_names[node]}")
                continue
            if not isinstance(message, Completions):
                raise ProtocolError(f"unexpected message from node {node}: {type(message).__name__}")
            for task_id in message.retracted:
                scheduler.apply(Retracted(task_id))
            if self.stop.signum is not None:  # the signal may have killed these tasks: _stop_early decides
                self._held.extend((node, ended) for ended in message.items)
                continue
            for ended in message.items:
                placed = scheduler.running.get(ended.task_id)
                if placed is None or placed[0] != node:
                    continue  # a node given up as lost came back: its task already runs elsewhere
                if ended.not_started:
                    actions += self._cannot_start(ended.not_started)
                    self.dispatched.pop(ended.task_id, None)
                    event = NeverStarted(ended.task_id)
                else:
                    event = self._record_end(node, ended)
                for action in scheduler.apply(event):
                    if isinstance(action, Promoted):  # started on the node the moment its predecessor ended
                        end = ended.start + ended.runtime
                        self.store.started(action.task_id, self.node_names[node], placed[1], end)
                        self.dispatched[action.task_id] = end
                    else:
                        actions.append(action)
        return actions

    def _cannot_start(self, reason: str) -> list:
        """The first start that failed for the launcher's fault: say so at once, start nothing more."""
        if self.start_failure is not None:
            return []
        self.start_failure = f"cannot start tasks: {reason}"
        print(
            f"mpilauncher: error: {self.start_failure}; nothing new starts, the running tasks finish,"
            " then the launcher stops (exit status 3): --resume runs what did not complete",
            file=sys.stderr,
            flush=True,
        )
        return self.scheduler.apply(StopDispatch(ask_back=True))  # standbys still waiting on nodes

    def _record_end(self, node: int, ended) -> TaskFinished:
        task = self.scheduler.tasks[ended.task_id]
        _, cores = self.scheduler.running[ended.task_id]
        gpus = tuple(self.node_gpus[node][i] for i in self.scheduler.gpus_of.get(ended.task_id, ()))
        self.store.finished(ended.task_id, ended.exit_code, ended.start, ended.runtime)
        dispatched = self.dispatched.pop(ended.task_id, None)
        if dispatched is not None:
            self.dispatch_latencies.append(ended.start - dispatched)
        cpus = binding(self.node_cpus[node], cores)
        segments = self.scheduler.spans.get(ended.task_id, ((node, cores),))
        where = "+".join(self.node_names[n] for n, _ in segments)  # an MPI task over nodes: a+b
        slots = "+".join(compress(c, ",") for _, c in segments)
        attempt = self.scheduler.attempts.get(ended.task_id, 0) + 1
        self.joblog.add(
            ended.task_id, where, slots, cpus, gpus, ended.start, ended.runtime, ended.exit_code,
            outcome_word(ended), attempt, ended.leftovers, task.command,
        )  # fmt: skip
        return TaskFinished(ended.task_id, ended.exit_code)

    def _stop_early(self) -> Outcome:
        """Signal received: start nothing more, end running tasks, keep what finished cleanly.

        A task that exits 0 during the grace period completed; any other end
        after the stop signal (ours, or the batch system's own SIGTERM to
        every process of the job) is an interruption: it stays *running* in
        the queuestate, so a resume runs it again.
        """
        self.scheduler.handle(StopDispatch())
        held, self._held = self._held, []
        for node, ended in held + self.transport.shutdown(self.grace, self.stop.exit_status):
            placed = self.scheduler.running.get(ended.task_id)
            if ended.exit_code == 0 and placed is not None and placed[0] == node:
                self.scheduler.handle(self._record_end(node, ended))
        elapsed = time.monotonic() - self.began
        self.store.flush(time.time(), elapsed)
        self.joblog.flush()
        return Outcome(self.stop.reason, elapsed, self.start_failure)

    def _lost_nodes(self, now: float) -> list[AgentLost]:
        """Agents that went silent: their running tasks go back to the queue."""
        events = []
        for node in self.transport.silent_nodes(now):
            self.transport.forget(node)
            running = sum(1 for n, _ in self.scheduler.running.values() if n == node)
            self.warn(
                f"lost contact with the agent of node {self.node_names[node]}: "
                f"its {running} running tasks are queued again"
            )
            events.append(AgentLost(node))
        if events and len(events) + self._lost >= len(self.node_names):
            raise LauncherFailure("every agent is lost: no node left to run tasks on")
        self._lost += len(events)
        return events

    def warn(self, text: str) -> None:
        print(f"mpilauncher: warning: {text}", file=sys.stderr, flush=True)

    def _maybe_trace(self, now: float) -> None:
        if not self.trace_jobs or now < self._next_tick:
            return
        self._tick += 1
        self._next_tick = now + self.delay
        placements = None
        if self.trace_hosts:
            placements = {
                tid: (self.node_names[node], cores, binding(self.node_cpus[node], cores))
                for tid, (node, cores) in self.scheduler.running.items()
            }
        self.out.write(tick_block(self._tick, self.store.ledger, self.trace_hosts, placements, self.node_cores))
        self.out.flush()


def outcome_word(ended) -> str:
    """The joblog's status column: ok, failed, signal (killed by one) or timeout (killed by us)."""
    if ended.timed_out:
        return "timeout"
    if ended.exit_code == 0:
        return "ok"
    return "signal" if ended.exit_code < 0 else "failed"
