"""In-process transport: the master drives an agent living in its own process.

The one piece that handles rank 0's own node, node 0: a singleton run
(``python -m mpilauncher file`` with no MPI starter) uses it as its whole
transport, and under MPI :class:`~mpilauncher.transport.mpi.MasterTransport`
delegates node 0 to it.  Messages are handed over as objects; waiting for
completions is the agent's own epoll wait, so the master sleeps until a task
ends (or a signal wakes it) instead of polling.
"""

from __future__ import annotations

from mpilauncher.protocol import Completions, Ended, Hello, Message, Setup, Shutdown, StartTasks
from mpilauncher.transport.base import InProcessAgent

#: The in-process agent's node index.
LOCAL_NODE = 0


class LocalTransport:
    """Master-side endpoint to the in-process agent, which is node 0 (a :class:`Transport`)."""

    def __init__(self, agent: InProcessAgent) -> None:
        self.agent = agent
        self._pending: list[tuple[int, Message]] = []  # ends a Shutdown returned, not yet received
        self.unclean = False  # nothing here can hold up MPI_Finalize

    def hellos(self) -> list[tuple[int, Hello]]:
        return [(LOCAL_NODE, self.agent.hello())]

    def setup(self, workdir: str, cwd: str, mpi_starter: str | None = None, emulated: bool = False,
              task_timeout: float | None = None, output: str = "per-task") -> None:  # fmt: skip
        self.agent.handle(
            Setup(workdir, cwd, mpi_starter=mpi_starter, emulated=emulated, task_timeout=task_timeout, output=output)
        )

    def send(self, node: int, message: StartTasks | Shutdown) -> None:
        if node != LOCAL_NODE:
            raise ValueError(f"the local transport has only node {LOCAL_NODE}, not {node}")
        ended = self.agent.handle(message)
        if ended:
            self._pending.append((LOCAL_NODE, Completions(tuple(ended))))

    def receive(self, timeout: float) -> list[tuple[int, Message]]:
        """Messages from the agent, waiting at most ``timeout`` s for the first."""
        out, self._pending = self._pending, []
        report = self.agent.poll(0 if out else timeout)
        if report is not None:
            out.append((LOCAL_NODE, report))
        return out

    def silent_nodes(self, now: float) -> list[int]:
        return []  # the agent lives in this very process

    def forget(self, node: int) -> None:
        raise ValueError(f"the local transport cannot give up on node {node}: it is this process")

    def shutdown(self, grace: float, exit_status: int) -> list[tuple[int, Ended]]:
        """Stop the agent's tasks (TERM, ``grace`` s, KILL); returns how they ended."""
        pending = [(node, e) for node, m in self._pending for e in m.items]
        self._pending = []
        return pending + [(LOCAL_NODE, e) for e in self.agent.handle(Shutdown(grace, exit_status))]

    def add_wake_fd(self, fd: int) -> None:
        self.agent.add_wake_fd(fd)

    def close(self) -> None:
        self.agent.close()
