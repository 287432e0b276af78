"""How an agent runs its node's tasks: the execution-backend interface, and the choice of one.

The agent resolves each :class:`~mpilauncher.protocol.StartRequest` for its node
(environment, output file, CPUs, exec file) and hands it to a backend; the
backend starts it, tells when it ends, signals or stops it.  Two backends exist:
:class:`~mpilauncher.execution.executor.Executors` (executor processes, the
default) and :class:`~mpilauncher.execution.processes.ProcessRunner` (in the
agent's own process: ``MPILAUNCHER_EXECUTOR=inline``, or where no executor
process can start).  A third runs each task as a Slurm job (PyLauncher's
SubmitLauncher): :class:`~mpilauncher.submit.backend.SlurmJobs`, which rank0.py
gives the agent for ``--submit``; nothing above the agent changes.
"""

from __future__ import annotations

import os
import typing
from collections.abc import Mapping
from typing import Protocol

from mpilauncher import log
from mpilauncher.execution.executor import Executors
from mpilauncher.execution.processes import ProcessRunner
from mpilauncher.execution.stuck import STUCK_AFTER, STUCK_VARIABLE, stuck_after
from mpilauncher.protocol import Ended, StartRequest

#: The environment variable that picks the backend: "process" (default: executor processes, their
#: compiled loop where it is built), "python" (executor processes, their Python loop) or "inline".
BACKEND_VARIABLE = "MPILAUNCHER_EXECUTOR"
BACKENDS = ("process", "python", "inline")


@typing.runtime_checkable
class ExecutionBackend(Protocol):
    """Starts a node's tasks and reports how they ended.

    The contract every backend keeps:

    - :meth:`start` takes a resolved request (its ``segments`` already folded into
      ``command`` by the agent).  It may return an :class:`Ended` at once, for a task
      that could not start; otherwise (a process, or anything else, or None) the task
      is started -- or, with ``after`` set, stands by -- and its end comes from
      :meth:`wait`.  Every started task is reported ended exactly once.
    - *Ended* means the task's main process ended and nothing it left behind runs any
      more: ``exit_code`` is Popen's (negative: killed by that signal), ``timed_out``
      that the backend killed it at ``timeout``, ``leftovers`` how many of its
      processes were still there when its main process ended (all ended since).
      ``not_started`` (a reason) means it never ran for the launcher's fault (its
      output file cannot be created): it is still to run, not a failed task.
    - A *standby* (``after=T``) starts the moment task T ends, before T's end is even
      reported, on the same node; if T has already been reported ended it starts at
      once.  :meth:`retract` asks for a standby back: if it had not started, its id
      is put in :attr:`retracted` (cleared by the caller once reported) and it never
      runs; a standby that started is not affected, and ends like any task.
    - :meth:`stop_all` drops every standby, sends every task's process group SIGTERM,
      SIGKILL after ``grace`` seconds (and whatever they left behind with it), and
      returns how the tasks ended.  :meth:`close` stops what still runs (nothing
      outlives the backend) and frees its resources.  (The Slurm jobs' backend is
      the exception by design: its jobs are Slurm's, left to run at a stop and
      picked up by the resume.)
    - :meth:`add_wake_fd` registers an fd (a signal's wake-up pipe) that ends a
      :meth:`wait` early when readable.
    - Optional: ``configure(workdir, cwd)``, called by the agent with the master's
      Setup before any start, for a backend that keeps files of its own (the
      Slurm jobs' record of what it submitted).
    """

    #: Standbys taken back before they started, for the agent's next report.
    retracted: list[int]

    def start(self, request: StartRequest) -> object: ...

    def retract(self, task_id: int) -> object: ...

    def signal(self, task_id: int, signum: int) -> None: ...

    def flush(self) -> None:
        """Let the starts asked for so far begin (a backend may batch them)."""

    def wait(self, timeout: float | None) -> list[Ended]:
        """Tasks that ended, waiting up to ``timeout`` s for the first (0: just look)."""
        ...

    def stop_all(self, grace: float) -> list[Ended]: ...

    def add_wake_fd(self, fd: int) -> None: ...

    def close(self) -> None: ...


def default_backend(base_env: Mapping[str, str], lanes: int, cores: int) -> ExecutionBackend:
    """The executor processes (``lanes`` of them for ``cores`` core slots), unless
    ``MPILAUNCHER_EXECUTOR=inline`` asks for the in-process runner or they cannot start."""
    choice = os.environ.get(BACKEND_VARIABLE, "process")
    if choice not in BACKENDS:
        log.warning(f"{BACKEND_VARIABLE}={choice!r} is not one of {', '.join(BACKENDS)}; using executor processes")
    if STUCK_VARIABLE in base_env:  # checked once here, and passed on as the lanes' C loop reads it (a float's repr)
        after = stuck_after(base_env)
        if after is None:
            log.warning(
                f"{STUCK_VARIABLE}={base_env[STUCK_VARIABLE]!r} is not a number of seconds >= 0; using {STUCK_AFTER:g}"
            )
        base_env = {**base_env, STUCK_VARIABLE: repr(STUCK_AFTER if after is None else after)}
    if choice != "inline":
        try:
            return Executors(dict(base_env), lanes, cores, compiled=choice != "python")
        except OSError as err:
            log.warning(f"no executor process ({err}); spawning tasks in-process")
    return ProcessRunner(base_env=base_env)
