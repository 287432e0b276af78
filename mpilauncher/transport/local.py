"""In-process transport: the master drives an agent living in its own process.

Used for singleton runs (``python -m mpilauncher file`` with no MPI starter)
and, under MPI, for rank 0's own node.  Messages are handed over as objects;
waiting for completions is the agent's own epoll wait, so the master sleeps
until a task ends (or a signal wakes it) instead of polling.
"""

from __future__ import annotations

from pathlib import Path

from mpilauncher.execution.processes import Ended
from mpilauncher.protocol import Completions, Hello, Message, Shutdown, StartTasks
from mpilauncher.runtime.agent import Agent


class LocalTransport:
    """Master-side endpoint to the in-process agent, which is node 0."""

    def __init__(self, agent: Agent) -> None:
        self.agent = agent
        self._pending: list[tuple[int, Message]] = []

    def hellos(self) -> list[tuple[int, Hello]]:
        return [(0, self.agent.hello())]

    def send(self, node: int, message: StartTasks | Shutdown) -> None:
        if node != 0:
            raise ValueError(f"the local transport has only node 0, not {node}")
        ended = self.agent.handle(message)
        if ended:
            self._pending.append((0, Completions(tuple(ended))))

    def receive(self, timeout: float) -> list[tuple[int, Message]]:
        """Messages from the agent, waiting at most ``timeout`` s for the first."""
        out, self._pending = self._pending, []
        report = self.agent.poll(0 if out else timeout)
        if report is not None:
            out.append((0, report))
        return out

    def setup(self, workdir: str, cwd: str, mpi_starter: str | None = None, emulated: bool = False,
              task_timeout: float | None = None) -> None:  # fmt: skip
        self.agent.configure(Path(workdir), cwd, mpi_starter, emulated, task_timeout)

    def silent_nodes(self, now: float) -> list[int]:
        return []

    def shutdown(self, grace: float, exit_status: int) -> list[tuple[int, Ended]]:
        """Stop the agent's tasks (TERM, ``grace`` s, KILL); returns how they ended."""
        pending = [(0, e) for _, m in self._pending for e in m.items]
        self._pending = []
        return pending + [(0, e) for e in self.agent.shutdown(grace)]

    def add_wake_fd(self, fd: int) -> None:
        self.agent.runner.add_wake_fd(fd)

    def close(self) -> None:
        self.agent.close()
