"""The records that cross between the master (rank 0), the agents (one per node) and their executors.

Why here, and why named tuples: this module sits below every layer and imports
nothing but ``collections``, so the transport, the agent and the execution layer
all speak in its records without importing each other, and the executor
processes' Python loop (``python -I -S``, standard library only, see
:mod:`mpilauncher.execution.executor`) imports it as a top-level module.  Named
tuples, not dataclasses: importing ``dataclasses`` would add ~6 ms to every such
executor's start-up, a named tuple pickles as its class and its fields, and
``tuple(record)`` is what ``marshal`` carries on the executor's pipe (the compiled
executor reads that marshal itself: a StartRequest's fields keep to the types it
knows, see _cexecutor.c).

Batching is part of the protocol: one :class:`StartTasks` carries every start
for a node decided in one scheduling pass, one :class:`Completions` every end an
agent saw in one loop turn.

The start of a task is one :class:`StartRequest` from end to end: the master
fills in what to run and where (task, command, core ids, GPU indices, MPI
segments, standby); the agent resolves it for its node (the command wrapped by
an MPI starter, the environment, output file, CPUs to bind, timeout, the
``exec<N>`` text) and hands the same record to its execution backend.
"""

from __future__ import annotations

from collections import namedtuple

#: Bumped whenever a message changes shape; a mismatch is a clear error.
PROTOCOL_VERSION = 8


class Hello(namedtuple("Hello", "node_name cores version gpu_ids bound_cpus", defaults=(PROTOCOL_VERSION, (), ()))):
    """Agent -> master: a node is ready.

    ``node_name``: its host name; ``cores``: the node's core count; ``gpu_ids``: its GPU ids, by index,
    each once (rank 0 offers a GPU to several tasks where the sweep says so: rank0.share_gpus);
    ``bound_cpus``: the CPU id of each core slot when the agent binds tasks, () when it does not.
    """

    __slots__ = ()


class Setup(
    namedtuple(
        "Setup",
        "workdir cwd beat_interval mpi_starter emulated task_timeout output",
        defaults=(5.0, None, False, None, "per-task"),
    )
):
    """Master -> agent, once the input is checked: where task files go, from where tasks run,
    how often to send a heartbeat, how MPI tasks start, how long a task may run, and whether
    each task's output is a file of its own (``per-task``) or goes to the node's (``per-node``)."""

    __slots__ = ()


class StartRequest(
    namedtuple(
        "StartRequest",
        "task_id command core_ids gpu_indices line segments after output env_changes cpu_ids timeout exec_file gather",
        defaults=((), 0, (), None, "", None, (), None, None, None),
    )
):
    """The start of one task, the same record from the master to the process that runs it.

    Filled in by the master: ``task_id``, ``command``, ``core_ids`` (node-local core
    ids the scheduler gave it), ``gpu_indices`` (GPU indices on the node), ``line``
    (its commandlines line), ``segments`` (an MPI task's Segment(host, ranks, offset)
    list, () for a plain task) and ``after`` (a standby start: run it when task
    ``after``, on the same node, ends; None: now).

    Filled in by the agent for its execution backend: ``command`` wrapped by the MPI
    starter (``segments`` are then folded into it and left empty), ``output`` (the
    ``out<N>`` path), ``env_changes`` (variables to set; a None value removes one),
    ``cpu_ids`` (CPUs to bind the task to; () leaves it unbound), ``timeout``
    (seconds, or None) and ``exec_file``: (the ``exec<N>`` path, or "" for none; the
    exec script's text; the base of the lane files its text is recorded in once the
    task has started, ``<workdir>/exec.<node>`` or, per-node, ``<workdir>/output.<node>``).
    ``exec<N>`` itself is written for a task that fails or runs ``EXEC_FILE_AFTER`` (10)
    seconds (see execution/processes.py).  With ``--output per-node``, ``gather`` is
    (the node's spool directory, ``<workdir>/output.<node>``) and ``output`` is empty:
    the output goes to the node's output files instead (see execution/gather.py).  Every
    field is then a plain str, int, float, tuple, dict or None, as ``marshal`` carries it.
    """

    __slots__ = ()


class Ended(
    namedtuple(
        "Ended",
        "task_id exit_code start runtime timed_out leftovers not_started cpu_user cpu_system max_rss",
        defaults=(False, 0, "", None, None, None),
    )
):
    """A task's process ended: Popen-style exit code (negative = signal number), ``start``
    (epoch seconds) and ``runtime`` (seconds); ``timed_out``: killed by its backend at its
    --task-timeout; ``leftovers``: how many of its processes were still there when its main
    process ended (all ended since).

    ``cpu_user``/``cpu_system`` (CPU seconds) and ``max_rss`` (KiB): what the kernel accounted
    to the reaped task process and every descendant that was waited for (``wait4``'s rusage;
    ``max_rss`` is the largest peak of any one of those processes, not a sum); None where the
    backend cannot know (a Slurm job of submit mode).  Fields added last, with defaults, so an
    older record still loads.

    ``not_started``: the task's run does not count, and why: the launcher could not start
    it ("<workdir>/out7: Disk quota exceeded": its output file could not be created), or
    could not keep what it wrote (per-node output on a full disk: "the output of task 7
    cannot be kept in ..."), so it is still to run -- not a failed task, nor a completed
    one whose output is gone.  Its other fields mean nothing then.
    """

    __slots__ = ()


class StartTasks(namedtuple("StartTasks", "items retract", defaults=((),))):
    """Master -> agent: start these :class:`StartRequest` now (or behind another), take these standbys back."""

    __slots__ = ()


class Completions(namedtuple("Completions", "items retracted", defaults=((),))):
    """Agent -> master: these standbys were taken back before they started, these tasks ended."""

    __slots__ = ()


class Shutdown(namedtuple("Shutdown", "grace exit_status", defaults=(0.0, 0))):
    """Master -> agent: stop; kill what still runs after ``grace`` seconds.

    ``exit_status`` is the launcher's own, so every rank of the MPI job exits
    with the same status as rank 0.
    """

    __slots__ = ()


class Bye(namedtuple("Bye", "items gone", defaults=((),))):
    """Any other rank -> master, answering :class:`Shutdown`: the tasks an agent ended on the way out.

    ``gone``: the ranks parked on the agent's node whose process no longer runs (it looks, on its
    host): rank 0 sends them no SHUTDOWN -- a send to a dead rank on another host can spin inside
    MPI for good (MPICH over libfabric tcp retries the refused connection) -- and waits for no BYE.
    """

    __slots__ = ()


class Signalled(namedtuple("Signalled", "signum rank")):
    """Any other rank -> master: a stop signal reached this rank.

    Slurm signals every rank of a step at once, and a ``kill`` may reach only
    one rank; either way only rank 0 decides, so the others pass the news on
    and go on serving until the master's :class:`Shutdown`.
    """

    __slots__ = ()


#: What the master sends an agent.
ToAgent = Setup | StartTasks | Shutdown
#: What an agent (or a parked rank) sends the master.
ToMaster = Hello | Completions | Signalled | Bye
Message = ToAgent | ToMaster
