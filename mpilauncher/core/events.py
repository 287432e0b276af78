"""Events into the scheduler and actions out of it: frozen, slotted values.

Time never enters the core from a clock: where it matters it rides inside an
event, so the core can be driven by a simulation as well as by real agents.
"""

from __future__ import annotations

from dataclasses import dataclass


# -- events (stimuli) ------------------------------------------------------
@dataclass(frozen=True, slots=True)
class AgentJoined:
    """A node's agent is ready with ``cores`` cores."""

    node: int
    name: str
    cores: int
    gpus: int = 0


@dataclass(frozen=True, slots=True)
class TaskFinished:
    """A task ended: ``exit_code`` as Popen reports it (negative: killed by that signal)."""

    task_id: int
    exit_code: int


@dataclass(frozen=True, slots=True)
class AgentLost:
    """A node's agent is gone; its running tasks must run again elsewhere."""

    node: int


@dataclass(frozen=True, slots=True)
class StopDispatch:
    """Start nothing more (time limit, signal, the launcher cannot start tasks): running tasks are left alone.

    Standbys still waiting on their nodes: with ``ask_back=False`` (the nodes are
    about to be shut down, which drops them) they are queued at once; with
    ``ask_back=True`` (the nodes go on running their tasks) they are asked back with
    :class:`Retract` and queued when the node answers -- or run, if their
    predecessor ended first.
    """

    ask_back: bool = False


@dataclass(frozen=True, slots=True)
class Retracted:
    """A standby task was taken back before it started (answer to :class:`Retract`)."""

    task_id: int


@dataclass(frozen=True, slots=True)
class ClockTick:
    """The time is ``now`` (seconds, any fixed origin): what a paced scheduler starts by.

    Only a scheduler with a start interval needs it; the master sends one with
    every burst then (and wakes for :attr:`Scheduler.next_start_due`).
    """

    now: float


@dataclass(frozen=True, slots=True)
class NeverStarted:
    """The node could not start ``task_id`` for the launcher's own fault (its output file cannot
    be created): it never ran and is queued again.  Its cores go to the standby that waited
    behind it, if any -- the node starts that one at once, as behind a task that ended --
    else back to the pool."""

    task_id: int


Event = AgentJoined | TaskFinished | AgentLost | StopDispatch | Retracted | ClockTick | NeverStarted


# -- actions (instructions) ------------------------------------------------
@dataclass(frozen=True, slots=True)
class Start:
    """Run ``task_id`` on ``node`` using exactly the core ids ``cores`` (and GPU indices ``gpus``)."""

    node: int
    task_id: int
    cores: tuple[int, ...]
    gpus: tuple[int, ...] = ()
    #: MPI tasks: every (node, core ids) segment, the first being (node, cores).
    span: tuple[tuple[int, tuple[int, ...]], ...] = ()
    #: A standby start: run it the moment task ``after`` ends, on ``after``'s cores and GPUs.
    after: int | None = None


@dataclass(frozen=True, slots=True)
class Promoted:
    """Standby task ``task_id`` is running: its predecessor ``after`` ended and handed it its cores."""

    task_id: int
    after: int


@dataclass(frozen=True, slots=True)
class Retract:
    """Take standby task ``task_id`` back from ``node``: cores are free elsewhere and it waits there."""

    node: int
    task_id: int


@dataclass(frozen=True, slots=True)
class Requeued:
    """A task that was running on a lost node, or that its node could not start, is queued again."""

    task_id: int
    node: int


@dataclass(frozen=True, slots=True)
class Retried:
    """A failed task is queued again (``--retries``); ``attempt`` is the one that failed, from 1."""

    task_id: int
    attempt: int


@dataclass(frozen=True, slots=True)
class AllDone:
    """Nothing is queued or running any more."""


Action = Start | Promoted | Retract | Requeued | Retried | AllDone
