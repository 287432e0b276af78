"""Messages between the master (rank 0) and the agents (one per node).

Plain frozen dataclasses: the in-process transport hands them over as they
are, the MPI transport pickles them.  Batching is part of the protocol: one
:class:`StartTasks` carries every start for a node decided in one scheduling
pass, one :class:`Completions` every end an agent saw in one loop turn.
"""

from __future__ import annotations

from dataclasses import dataclass

from mpilauncher.execution.processes import Ended

#: Bumped whenever a message changes shape; a mismatch is a clear error.
PROTOCOL_VERSION = 4


@dataclass(frozen=True, slots=True)
class Hello:
    """Agent -> master: a node is ready."""

    node_name: str
    cores: int
    version: int = PROTOCOL_VERSION
    gpus: tuple[str, ...] = ()  # GPU ids, by index
    bound_cpus: tuple[int, ...] = ()  # CPU id per core slot when the agent binds tasks; () when it does not


@dataclass(frozen=True, slots=True)
class StartItem:
    task_id: int
    command: str
    cores: tuple[int, ...]  # the node-local core ids the scheduler gave it
    line: int = 0
    gpus: tuple[int, ...] = ()  # GPU indices on the node
    segments: tuple = ()  # MPI tasks: the Segment(host, ranks, offset) list; () for plain tasks
    after: int | None = None  # a standby start: run it when task ``after`` (on this node) ends


@dataclass(frozen=True, slots=True)
class StartTasks:
    """Master -> agent: start these tasks now (or behind another), take these standbys back."""

    items: tuple[StartItem, ...]
    retract: tuple[int, ...] = ()


@dataclass(frozen=True, slots=True)
class Completions:
    """Agent -> master: these standbys were taken back before they started, these tasks ended."""

    items: tuple[Ended, ...]
    retracted: tuple[int, ...] = ()


@dataclass(frozen=True, slots=True)
class Shutdown:
    """Master -> agent: stop; kill what still runs after ``grace`` seconds.

    ``exit_status`` is the launcher's own, so every rank of the MPI job exits
    with the same status as rank 0.
    """

    grace: float = 0.0
    exit_status: int = 0


@dataclass(frozen=True, slots=True)
class Signalled:
    """Any other rank -> master: a stop signal reached this rank.

    Slurm signals every rank of a step at once, and a ``kill`` may reach only
    one rank; either way only rank 0 decides, so the others pass the news on
    and go on serving until the master's :class:`Shutdown`.
    """

    signum: int
    rank: int


Message = Hello | StartTasks | Completions | Shutdown | Signalled
