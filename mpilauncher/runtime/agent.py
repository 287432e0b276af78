"""The agent: one per node, it runs the tasks the master sends and reports their ends.

It knows nothing of queues or other nodes.  Each :class:`StartRequest` from the
master it resolves for its node -- the MPI starter around an MPI task's
command, the task's environment, its ``out<N>`` and ``exec<N>``, the CPUs to
bind it to, its timeout -- and hands to its execution backend (see
:mod:`mpilauncher.execution.backend`), whose :class:`Ended` records it later
reports.  The same class serves the in-process agent of rank 0 (and of
singleton runs, driven by :mod:`mpilauncher.transport.local`) and the agents of
other ranks (driven by :func:`mpilauncher.runtime.serve.serve_agent`); only the
transport around it differs.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from pathlib import Path

from mpilauncher.execution import starters
from mpilauncher.execution.backend import ExecutionBackend, default_backend
from mpilauncher.execution.environment import PlaceEnvironments, base_environment, exec_script, task_variables
from mpilauncher.execution.gather import EXEC_PREFIX, PREFIX, spool_directory
from mpilauncher.execution.processes import Standbys
from mpilauncher.execution.resources import Gpus, allowed_cpus, binding, gpu_environment
from mpilauncher.protocol import Completions, Ended, Hello, Setup, Shutdown, StartRequest, StartTasks, ToAgent

#: Executor processes per node at most: each starts ~3,000 tasks/s, the master dispatches ~20,000/s.
MAX_LANES = 8


class Agent:
    """Runs tasks on this node; see the module docstring.

    ``backend``: how tasks run; by default the executor processes (see
    :func:`~mpilauncher.execution.backend.default_backend`), one per CPU of
    this node's share of the host: ``cpus_shared_by`` nodes share it (emulated
    nodes; 1 on a real cluster).
    """

    def __init__(
        self,
        node_name: str,
        cores: int,
        workdir: Path | None = None,
        cwd: str | None = None,
        gpus: Gpus | None = None,
        bind: bool = False,
        backend: ExecutionBackend | None = None,
        cpus_shared_by: int = 1,
    ) -> None:
        self.node_name = node_name
        self.cores = cores
        self.workdir = workdir  # set by the master's Setup before any task starts
        self._prefix = f"{workdir}{os.sep}" if workdir is not None else ""
        self.cwd = cwd or os.getcwd()
        self.gpus = gpus or Gpus()
        base_env = base_environment(os.environ)
        self._omp_set = "OMP_NUM_THREADS" in base_env
        # Bind only when every core slot maps to a CPU we may use (not with emulated nodes).
        self._all_cpus = allowed_cpus()
        # A lane per CPU of this node's share of the host: emulated nodes share one host's CPUs, and
        # more executors than CPUs only contend for them.
        lanes = min(cores, max(1, len(self._all_cpus) // max(1, cpus_shared_by)), MAX_LANES)
        self.backend: ExecutionBackend = backend if backend is not None else default_backend(base_env, lanes, cores)
        self._early: list[Ended] = []  # tasks that could not even start
        # The node's cores that have a task (see `saturated`): each started task not yet reported, with its
        # core count; each standby waits apart, behind the task whose end starts it (as in the backends).
        self._holding: dict[int, int] = {}
        self._waiting = Standbys()
        self._taken = 0
        self.bound_cpus = self._all_cpus[:cores] if bind and len(self._all_cpus) >= cores else ()
        self.mpi_starter = "mpiexec"  # resolved by configure()
        self.task_timeout: float | None = None
        self.emulated = False
        self._gather: tuple[str, str] | None = None  # per-node output: (spool directory, <workdir>/output.<node>)
        # The base of the lane files every exec script is recorded in ("": none).
        self._exec_records = f"{self._prefix}{EXEC_PREFIX}{node_name}" if workdir is not None else ""
        self._places = self._place_environments()

    def _place_environments(self) -> PlaceEnvironments:
        return PlaceEnvironments(
            self.node_name, self.cwd, self._omp_set, lambda gpu_indices: gpu_environment(self.gpus, gpu_indices)
        )

    def configure(self, setup: Setup) -> None:
        """The master's Setup: where files go, where tasks run, how MPI tasks start, how long they may run."""
        self.workdir, self.cwd = Path(setup.workdir), setup.cwd
        self.emulated, self.task_timeout = setup.emulated, setup.task_timeout
        self._places = self._place_environments()  # (the cwd is in every exec<N>)
        self._prefix = f"{setup.workdir}{os.sep}"
        self.mpi_starter = starters.choose(setup.mpi_starter, os.environ)
        self._exec_records = f"{setup.workdir}{os.sep}{EXEC_PREFIX}{self.node_name}"
        if setup.output == "per-node":
            self._gather = (spool_directory(os.environ), f"{setup.workdir}{os.sep}{PREFIX}{self.node_name}")
            self._exec_records = self._gather[1]  # beside the outputs, in the same files
        configure = getattr(self.backend, "configure", None)  # a backend that keeps files of its own
        if configure is not None:
            configure(setup.workdir, setup.cwd)

    def hello(self) -> Hello:
        return Hello(self.node_name, self.cores, gpu_ids=self.gpus.ids, bound_cpus=self.bound_cpus)

    def start(self, message: StartTasks) -> None:
        backend = self.backend
        for task_id in message.retract:
            backend.retract(task_id)
        for request in message.items:
            started = backend.start(self.resolve(request))
            if isinstance(started, Ended):
                self._early.append(started)
            elif request.after is not None and request.after in self._holding:
                self._waiting.hold(request)
            else:
                self._hold(request)
        backend.flush()  # the executors start spawning while the master journals

    @property
    def saturated(self) -> bool:
        """Every core of the node has a task (started, or waiting in the backend to be): rank 0's next
        start for it is not urgent.  The serving loop probes for rank 0's messages less eagerly then."""
        return self._taken >= self.cores

    def _hold(self, request: StartRequest) -> None:
        cores = self._holding[request.task_id] = len(request.core_ids) or 1
        self._taken += cores

    def _release(self, task_ids: Iterable[int]) -> None:
        """These tasks were reported ended, or taken back: their cores are free, or their standbys' now."""
        waiting = self._waiting
        for task_id in task_ids:
            self._taken -= self._holding.pop(task_id, 0)
            waiting.retract(task_id)  # a standby taken back (or, out of order, ended) before it started
            follower = waiting.follower(task_id)
            if follower is not None:  # it started on this task's cores as this one ended
                self._hold(follower)
        waiting.retracted.clear()  # (the backend's list is what gets reported)

    def resolve(self, request: StartRequest) -> StartRequest:
        """The master's request made concrete for this node: what the backend runs, and how."""
        task_id, core_ids = request.task_id, request.core_ids
        changes: Mapping[str, str | None]
        if request.segments:  # an MPI task: its starter runs the ranks on exactly its slots
            command, changes, script = self._mpi_task(request)
        else:
            command = request.command
            changes, script = self._places.resolve(task_id, core_ids, request.gpu_indices, command, request.line)
        prefix = self._prefix
        output, exec_path = ("", "") if self._gather else (f"{prefix}out{task_id}", f"{prefix}exec{task_id}")
        return StartRequest(
            task_id, command, core_ids, request.gpu_indices, request.line, (), request.after,
            output, changes, binding(self.bound_cpus, core_ids), self.task_timeout,
            (exec_path, script, self._exec_records), self._gather,
        )  # fmt: skip

    def _mpi_task(self, request: StartRequest) -> tuple[str, dict[str, str | None], str]:
        """An MPI task's command wrapped by the starter, its environment's changes and its exec<N> text."""
        core_ids, ncores = request.core_ids, len(request.core_ids)
        variables = task_variables(request.task_id, core_ids, self.node_name)
        variables.update(gpu_environment(self.gpus, request.gpu_indices))
        changes: dict[str, str | None] = dict(variables)
        if not self._omp_set:
            changes["OMP_NUM_THREADS"] = str(ncores)
        segments = list(request.segments)
        command, wrapped = starters.wrap(self.mpi_starter, request.command, segments, self.cores, self.emulated)
        if self._omp_set:
            wrapped.pop("OMP_NUM_THREADS", None)
        changes.update(wrapped)
        variables.update({k: v for k, v in wrapped.items() if v is not None})
        return command, changes, exec_script(command, self.cwd, variables, ncores, self._omp_set, request.line)

    def handle(self, message: ToAgent) -> list[Ended]:
        """Act on a master message; a Shutdown returns the tasks it ended."""
        if isinstance(message, StartTasks):
            self.start(message)
            return []
        if isinstance(message, Setup):
            self.configure(message)
            return []
        if isinstance(message, Shutdown):
            return self.shutdown(message.grace)
        raise TypeError(f"agent cannot handle {message!r}")

    def poll(self, timeout: float) -> Completions | None:
        """What to report: standbys taken back and tasks that ended, waiting at most ``timeout`` s for one."""
        early, self._early = self._early, []
        retracted = self.backend.retracted
        ended = early + self.backend.wait(0 if early or retracted else timeout)
        if not ended and not retracted:
            return None
        report = Completions(tuple(ended), tuple(retracted))
        retracted.clear()
        self._release([e.task_id for e in ended])
        self._release(report.retracted)
        return report

    def shutdown(self, grace: float) -> list[Ended]:
        ended = self._early + self.backend.stop_all(grace)
        self._early = []
        self._holding.clear()
        self._waiting.clear()
        self._taken = 0
        return ended

    def add_wake_fd(self, fd: int) -> None:
        """A signal's wake-up pipe: it ends the agent's wait (the master's sleep, on rank 0) at once."""
        self.backend.add_wake_fd(fd)

    def close(self) -> None:
        self.backend.close()
