"""The agent: one per node, it runs the tasks the master sends and reports their ends.

It knows nothing of queues or other nodes.  For each :class:`StartItem` it
writes ``exec<N>``, spawns the command with its output in ``out<N>``, and
later answers with the :class:`Ended` records.  The same class serves the
in-process agent of rank 0 (and of singleton runs) and the agents of other
ranks; only the transport around it differs.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from mpilauncher.execution import starters
from mpilauncher.execution.environment import base_environment, exec_script, task_variables
from mpilauncher.execution.executor import Executors
from mpilauncher.execution.processes import Ended, ProcessRunner
from mpilauncher.execution.resources import Gpus, allowed_cpus, binding, gpu_environment
from mpilauncher.protocol import Completions, Hello, Shutdown, StartTasks

#: Executor processes per node at most: each starts ~3,000 tasks/s, the master dispatches ~20,000/s.
MAX_LANES = 8


class Agent:
    """Runs tasks on this node; see the module docstring."""

    def __init__(
        self,
        node_name: str,
        cores: int,
        workdir: Path | None = None,
        cwd: str | None = None,
        gpus: Gpus | None = None,
        bind: bool = False,
    ) -> None:
        self.node_name = node_name
        self.cores = cores
        self.workdir = workdir  # set by the master's Setup before any task starts
        self.cwd = cwd or os.getcwd()
        self.gpus = gpus or Gpus()
        base_env = base_environment(os.environ)
        self._omp_set = "OMP_NUM_THREADS" in base_env
        # Bind only when every core slot maps to a CPU we may use (not with emulated nodes).
        self._all_cpus = allowed_cpus()
        self.runner = _runner(base_env, min(cores, len(self._all_cpus), MAX_LANES), cores)
        self._early: list[Ended] = []  # tasks that could not even start
        self.bound_cpus = self._all_cpus[:cores] if bind and len(self._all_cpus) >= cores else ()
        self.mpi_starter = "mpiexec"  # resolved by configure()
        self.task_timeout: float | None = None
        self.emulated = False

    def configure(
        self,
        workdir: Path,
        cwd: str,
        mpi_starter: str | None = None,
        emulated: bool = False,
        task_timeout: float | None = None,
    ) -> None:
        """The master's Setup: where files go, where tasks run, how MPI tasks start, how long they may run."""
        self.workdir, self.cwd, self.emulated, self.task_timeout = workdir, cwd, emulated, task_timeout
        self._prefix = f"{workdir}{os.sep}"
        self.mpi_starter = starters.choose(mpi_starter, os.environ)

    def hello(self) -> Hello:
        return Hello(self.node_name, self.cores, gpus=self.gpus.ids, bound_cpus=self.bound_cpus)

    def start(self, message: StartTasks) -> None:
        for task_id in message.retract:
            self.runner.retract(task_id)
        for item in message.items:
            started = self._start_one(item)
            if isinstance(started, Ended):
                self._early.append(started)
        flush = getattr(self.runner, "flush", None)
        if flush is not None:
            flush()  # the executors start spawning while the master journals

    def _start_one(self, item):
        variables = task_variables(item.task_id, item.cores, self.node_name)
        variables.update(gpu_environment(self.gpus, item.gpus))
        ncores = len(item.cores)
        command = item.command
        changes: dict[str, str | None] = dict(variables)
        if not self._omp_set:
            changes["OMP_NUM_THREADS"] = str(ncores)
        if item.segments:  # an MPI task: its starter runs the ranks on exactly its slots
            command, wrapped = starters.wrap(self.mpi_starter, command, list(item.segments), self.cores, self.emulated)
            if self._omp_set:
                wrapped.pop("OMP_NUM_THREADS", None)
            changes.update(wrapped)
            variables.update({k: v for k, v in wrapped.items() if v is not None})
        script = exec_script(command, self.cwd, variables, ncores, self._omp_set, item.line)
        cpus = binding(self.bound_cpus, item.cores)
        out = f"{self._prefix}out{item.task_id}"
        exec_file = (f"{self._prefix}exec{item.task_id}", script)
        return self.runner.start(
            item.task_id, command, changes, out, cpus, self.task_timeout, item.after, item.cores[0], exec_file
        )

    def handle(self, message: StartTasks | Shutdown) -> list[Ended]:
        """Act on a master message; a Shutdown returns the tasks it ended."""
        if isinstance(message, StartTasks):
            self.start(message)
            return []
        if isinstance(message, Shutdown):
            return self.shutdown(message.grace)
        raise TypeError(f"agent cannot handle {message!r}")

    def poll(self, timeout: float) -> Completions | None:
        """What to report: standbys taken back and tasks that ended, waiting at most ``timeout`` s for one."""
        early, self._early = self._early, []
        retracted = self.runner.retracted
        ended = early + self.runner.wait(0 if early or retracted else timeout)
        if not ended and not retracted:
            return None
        report = Completions(tuple(ended), tuple(retracted))
        retracted.clear()
        return report

    def shutdown(self, grace: float) -> list[Ended]:
        ended = self._early + self.runner.stop_all(grace)
        self._early = []
        return ended

    def close(self) -> None:
        self.runner.close()


def _runner(base_env: dict[str, str], lanes: int, cores: int):
    """The task executor processes (see executor.py); in-process spawning if they cannot start."""
    if os.environ.get("MPILAUNCHER_EXECUTOR", "process") != "inline":
        try:
            return Executors(base_env, lanes, cores)
        except OSError as err:
            print(f"mpilauncher: warning: no executor process ({err}); spawning tasks in-process", file=sys.stderr)
    return ProcessRunner(base_env=base_env)
