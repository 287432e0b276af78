"""Events into the scheduler, and what comes out of it: instructions and facts.

Time never enters the core from a clock: where it matters it rides inside an
event, so the core can be driven by a simulation as well as by real agents.

What comes out of :meth:`Scheduler.handle` is of two kinds, in one list, in
the order it happened:

- *instructions* for the nodes: :class:`Start` (run a task, now or behind
  another one) and :class:`Retract` (take a standby back);
- *facts* for everyone else (the queuestate, the joblog, the trace, the
  statistics, a progress display): a task started -- a :class:`Start`
  without ``after`` once it is sent, or a standby's :class:`Promoted` --, a
  task ended (:class:`TaskEnded`), was queued again (:class:`Requeued`,
  :class:`Retried`), was held back for the next job (:class:`HeldBack`), a
  node was suspected, taken out of use or put back (:class:`NodeSuspended`,
  :class:`NodeOutOfUse`, :class:`NodeBackInUse`), the next paced start is due
  (:class:`StartDue`), the run is over (:class:`AllDone`).

A fact carries everything its consumers need (where a task ran, on which
core ids and GPU indices, which attempt, how it ended), so nobody outside
the core ever reads the scheduler's own maps.

The records (:mod:`mpilauncher.records`) are slotted, but not frozen: a frozen
record sets each field through ``object.__setattr__``, which measured
~110 ns a field here against ~30, and a :class:`Start`, a
:class:`TaskFinished` and a :class:`TaskEnded` are made for every task.
Treat them as values all the same: nothing changes one once it is made.
"""

from __future__ import annotations

from mpilauncher.core.tasks import Task, TaskTable
from mpilauncher.records import field, record


# -- events (stimuli) ------------------------------------------------------
@record
class AgentJoined:
    """A node's agent is ready with ``cores`` cores (a count) and ``gpus`` GPUs (a count)."""

    node: int
    name: str
    cores: int
    gpus: int = 0


@record
class TaskFinished:
    """A task ended on ``node``: ``exit_code`` as Popen reports it (negative: killed by that signal).

    The rest is the node's report, passed on untouched in the :class:`TaskEnded`
    fact: when it started (``start``, seconds since the epoch), how long it ran,
    whether the node killed it at its time limit, how many of its processes
    were still there when its main process ended, and what it used: user and
    system CPU seconds and peak memory (KiB) of its process tree as the kernel
    accounted it (None: unknown).  ``node=None`` (tests, the
    simulation) means "where it runs"; the master always says which node
    reported, so that an end from a node given up as lost is recognised as stale.
    """

    task_id: int
    exit_code: int
    node: int | None = None
    start: float = 0.0
    runtime: float = 0.0
    timed_out: bool = False
    leftovers: int = 0
    cpu_user: float | None = None
    cpu_system: float | None = None
    max_rss: int | None = None


@record
class AgentLost:
    """A node's agent is gone; its running tasks must run again elsewhere.  Whatever it
    reports later (it may come back) is stale and ignored."""

    node: int


@record
class StopDispatch:
    """Start nothing more (time limit, signal, the launcher cannot start tasks): running tasks are left alone.

    Standbys still waiting on their nodes: with ``ask_back=False`` (the nodes are
    about to be shut down, which drops them) they are queued once the burst's ends
    are applied (a standby whose predecessor ended in the same burst was started by
    its node and is promoted); one of them that its node reports anyway (its
    predecessor ended before the shutdown came) completed if it exited 0 (a task
    that ends cleanly after a stop counts), and else stays queued, to run again on
    resume; with
    ``ask_back=True`` (the nodes go on running their tasks) they are asked back with
    :class:`Retract` and queued when the node answers -- or run, if their
    predecessor ended first.
    """

    ask_back: bool = False


@record
class Retracted:
    """A standby task was taken back before it started (answer to :class:`Retract`)."""

    task_id: int


@record
class ClockTick:
    """The time is ``now`` (seconds, any fixed origin): what a paced scheduler starts by.

    Only a scheduler with a start interval needs it; the master sends one with
    every burst then (and wakes when a :class:`StartDue` says so).
    """

    now: float


@record
class NeverStarted:
    """``node`` could not start ``task_id`` for the launcher's own fault (``reason``: its output
    file cannot be created): it never ran and is queued again.  Its cores go to the standby
    that waited behind it, if any -- the node starts that one at once, as behind a task that
    ended, at ``at`` (seconds since the epoch) -- else back to the pool.  Whether dispatch
    stops is the caller's decision (:class:`StopDispatch`)."""

    task_id: int
    node: int | None = None
    reason: str = ""
    at: float = 0.0


@record
class Deadline:
    """The run must stop at ``at`` (the clock of :class:`ClockTick`): ``--max-runtime``, or the Slurm
    job's end less its margin.  A task that cannot finish by then is held back (:class:`HeldBack`);
    the master sends the deadline once, and a :class:`ClockTick` with every burst from then on."""

    at: float


Event = AgentJoined | TaskFinished | AgentLost | StopDispatch | Retracted | ClockTick | NeverStarted | Deadline


# -- instructions, which are facts too ----------------------------------------
@record
class Start:
    """Run ``task_id`` on ``node`` using exactly the core ids ``core_ids`` (and GPU indices ``gpu_indices``).

    Without ``after`` this is also the fact that the task started (the master
    sends it at once); a standby start (``after``) becomes that fact when it is
    :class:`Promoted`.  ``task`` is the task itself (its command and line), so
    that the start message can be built from this record alone: made from
    ``table`` when first asked for, by the start message.  The scheduler decides
    on ids and needs only; a Task made at every decision, touching a command
    string read long before, was a fifth of a decision's cost at 100,000 cores.
    """

    node: int
    task_id: int
    core_ids: tuple[int, ...]
    gpu_indices: tuple[int, ...] = ()
    #: MPI tasks: every (node, core ids) segment, the first being (node, core_ids).
    span: tuple[tuple[int, tuple[int, ...]], ...] = ()
    #: A standby start: run it the moment task ``after`` ends, on ``after``'s cores and GPUs.
    after: int | None = None
    #: Which run of the task this is, from 1 (``--retries``).
    attempt: int = 1
    #: The tasks of the sweep, where ``task`` comes from (None: a start made by hand, with no task).
    table: TaskTable | None = field(default=None, compare=False, repr=False)
    _task: Task | None = field(default=None, compare=False, repr=False, init=False)

    @property
    def task(self) -> Task | None:
        """The task started (made once, when first asked for)."""
        if self._task is None and self.table is not None:
            self._task = self.table[self.task_id]
        return self._task

    @property
    def segments(self) -> tuple[tuple[int, tuple[int, ...]], ...]:
        """Every (node, core ids) the task runs on: its span, or its one node."""
        return self.span or ((self.node, self.core_ids),)


@record
class Retract:
    """Take standby task ``task_id`` back from ``node``: cores are free elsewhere and it waits there."""

    node: int
    task_id: int


# -- facts ---------------------------------------------------------------------
@record
class Promoted:
    """Standby task ``start.task_id`` is running: its predecessor ``start.after`` ended (or never
    started) and its node started it on the same cores and GPUs at ``at`` (seconds since the epoch,
    the predecessor's end as the node reported it)."""

    start: Start
    at: float = 0.0

    @property
    def task_id(self) -> int:
        return self.start.task_id

    @property
    def after(self) -> int:
        return self.start.after  # type: ignore[return-value]  # a standby's Start always has one


@record
class TaskEnded:
    """A task ended: where and which attempt (``start``), and how (``report``, the node's own words)."""

    start: Start
    report: TaskFinished

    @property
    def task_id(self) -> int:
        return self.start.task_id

    @property
    def attempt(self) -> int:
        return self.start.attempt

    @property
    def exit_code(self) -> int:
        return self.report.exit_code

    @property
    def outcome(self) -> str:
        """One word: ok, failed, signal (killed by one) or timeout (killed at its time limit)."""
        report = self.report
        if report.timed_out:
            return "timeout"
        if report.exit_code == 0:
            return "ok"
        return "signal" if report.exit_code < 0 else "failed"


@record
class Requeued:
    """A task is queued again: it was running on ``node``, which was lost (``reason`` empty), or
    ``node`` could not start it (``reason`` says why: see :class:`NeverStarted`)."""

    task_id: int
    node: int
    reason: str = ""


@record
class Retried:
    """A failed task is queued again (``--retries``); ``attempt`` is the one that failed, from 1.

    ``excused``: the node its failure is blamed on (suspect, or out of use: see
    :mod:`mpilauncher.core.health`); such a failure does not use up a retry, and the task may
    have used up its retries, or have none (then it was failed until its node was suspected).
    """

    task_id: int
    attempt: int
    excused: int | None = None


@record
class HeldBack:
    """A queued task that cannot finish before the deadline is not started: it stays queued for the
    next job.  ``expected``: the seconds it needs (its own expected time, or the estimate from the
    sweep's completed tasks when ``estimated``); ``left``: the seconds left before the deadline."""

    task_id: int
    expected: float
    left: float
    estimated: bool = False


@record
class NodeSuspended:
    """No new task starts on ``node`` until one of the tasks it failed at once has run elsewhere:
    ``failures`` fast failures in a row there, while ``elsewhere`` tasks of the same kind succeeded on
    other nodes (``exit_code``: the most frequent among the failures)."""

    node: int
    failures: int
    elsewhere: int
    exit_code: int


@record
class NodeOutOfUse:
    """``node`` is out of use for the rest of the run: ``task_id``, which failed at once there, succeeded
    on ``where`` (None: before the suspicion, on another node); the rest as :class:`NodeSuspended` said."""

    node: int
    task_id: int
    where: int | None
    failures: int
    elsewhere: int
    exit_code: int


@record
class NodeBackInUse:
    """Suspect ``node`` takes tasks again: ``task_id``, which failed at once there, failed on ``where``
    too (or succeeded on ``node`` itself): it is the tasks, not the node."""

    node: int
    task_id: int
    where: int


@record
class StartDue:
    """Paced: a queued task that fits waits only for the pace; the next start may go at ``at``
    (the clock of :class:`ClockTick`).  Said after every burst for as long as it holds."""

    at: float


@record
class AllDone:
    """Nothing is queued or running any more (or nothing more starts and nothing runs).

    Queued tasks may be left that can never start in this run: ``held`` held back for the next job
    (:class:`HeldBack`), ``stranded`` too wide for every node still in use (the others lost or out of
    use).  Either way the run ends at once, resumable, instead of waiting for what cannot come.
    """

    held: int = 0
    stranded: int = 0


NodeFact = NodeSuspended | NodeOutOfUse | NodeBackInUse
Action = Start | Retract | Promoted | TaskEnded | Requeued | Retried | HeldBack | NodeFact | StartDue | AllDone
