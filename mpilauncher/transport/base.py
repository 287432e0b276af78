"""What a transport is: the master's side (:class:`Transport`) and an agent's side (:class:`AgentEndpoint`).

The transport only moves the records of :mod:`mpilauncher.protocol`; it knows
neither the scheduler nor how tasks run.  It reaches an in-process agent (rank
0's own node, or the one node of a singleton run) through
:class:`InProcessAgent`, which :class:`mpilauncher.runtime.agent.Agent` is: the
arrow points down from runtime to transport, never up.

Nodes are numbered by index: node 0 is rank 0's own, driven in-process.
"""

from __future__ import annotations

import typing
from collections.abc import Callable
from typing import Protocol

from mpilauncher.protocol import Completions, Ended, Hello, Message, Shutdown, Signalled, StartTasks, ToAgent

#: How a rank's loop learns of a stop signal its handler recorded: the signal number, or None.
StopSignal = Callable[[], "int | None"]


def no_signal() -> int | None:
    """The stop signal of a rank that has none to report."""
    return None


@typing.runtime_checkable
class Transport(Protocol):
    """The master's view of its agents, one per node index.

    :meth:`receive` returns ``(node index, message)`` pairs, each a
    :class:`Completions` or a :class:`Signalled`; the messages of one node come in
    the order that node sent them (an agent's Signalled comes before any end it
    reports after the signal).  Nothing in it blocks for longer than asked.
    """

    #: Some rank is gone or did not answer the shutdown: MPI_Finalize would hang on it.
    unclean: bool

    def hellos(self) -> list[tuple[int, Hello]]:
        """Every node's Hello, by node index, node 0 first."""
        ...

    def setup(
        self, workdir: str, cwd: str, mpi_starter: str | None = None, emulated: bool = False,
        task_timeout: float | None = None, output: str = "per-task",
    ) -> None:  # fmt: skip
        """Tell every agent where task files go and how tasks run (once, after the input is checked)."""
        ...

    def send(self, node: int, message: StartTasks | Shutdown) -> None: ...

    def receive(self, timeout: float) -> list[tuple[int, Message]]:
        """Messages from the agents, waiting up to ``timeout`` s for the first."""
        ...

    def silent_nodes(self, now: float) -> list[int]:
        """Node indices whose agent is lost: reported failed, or silent past the heartbeat timeout."""
        ...

    def forget(self, node: int) -> None:
        """Give up on a node: never wait for it, never send to it again; its later news is dropped."""
        ...

    def shutdown(self, grace: float, exit_status: int) -> list[tuple[int, Ended]]:
        """Stop every agent (TERM, ``grace`` s, KILL); how the tasks they stopped ended.  Idempotent."""
        ...

    def add_wake_fd(self, fd: int) -> None:
        """A signal's wake-up pipe: readable, it ends :meth:`receive`'s wait at once."""
        ...

    def close(self) -> None: ...


@typing.runtime_checkable
class InProcessAgent(Protocol):
    """What the transport needs of the agent it drives in its own process (node 0)."""

    def hello(self) -> Hello: ...

    def handle(self, message: ToAgent) -> list[Ended]:
        """Act on a master message; a Shutdown returns how the tasks it stopped ended."""
        ...

    def poll(self, timeout: float) -> Completions | None:
        """What to report, waiting (asleep in the kernel) at most ``timeout`` s for it."""
        ...

    def add_wake_fd(self, fd: int) -> None: ...

    def close(self) -> None: ...


@typing.runtime_checkable
class AgentEndpoint(Protocol):
    """An agent rank's (or a parked rank's) link to the master: never blocks for long.

    Used by the serving loops of :mod:`mpilauncher.runtime.serve`.
    """

    #: This rank's number in the job.
    rank: int

    def hello(self, hello: Hello) -> None:
        """Announce this node (once, first)."""
        ...

    def messages(self) -> list[ToAgent]:
        """What the master has sent since the last call, in order; [] at once when nothing."""
        ...

    def shutdown_message(self) -> Shutdown | None:
        """A parked rank's one question: has the master said SHUTDOWN?  (Other messages are not for it.)"""
        ...

    def report(self, message: Completions | Signalled | None) -> None:
        """Send a report, the news of a signal, or (None) a heartbeat, without waiting."""
        ...

    def settle(self) -> None:
        """Let the sends under way finish (call once per loop turn)."""
        ...

    def bye(self, ended: tuple[Ended, ...]) -> None:
        """The last message, answering SHUTDOWN: the tasks this rank stopped; waits until it is out."""
        ...


class Backoff:
    """Sleep lengths that double from ``low`` to ``high`` and reset on progress.

    No rank ever waits inside a blocking MPI call (it spins a core at 100%):
    every wait is a probe followed by one of these sleeps.
    """

    def __init__(self, low: float, high: float) -> None:
        self.low, self.high = low, high
        self.current = low

    def reset(self, start: float | None = None) -> None:
        """Short sleeps again: from ``low``, or from ``start`` where the next news is not urgent."""
        self.current = self.low if start is None else max(self.low, min(self.high, start))

    def next(self) -> float:
        value = self.current
        self.current = min(self.high, self.current * 2)
        return value


class QuietBackoff(Backoff):
    """A :class:`Backoff` whose ceiling grows with a quiet spell: rank 0's probe for the agents' reports.

    While reports keep coming the sleeps double from ``low`` to ``busy`` (a report is seen within a few
    milliseconds: short tasks' ends).  Once nothing has happened for a while the ceiling becomes a
    ``share`` of that spell, at most ``quiet``: the master of a sweep of long tasks then wakes a few
    dozen times a second, not 200 (each wake-up of a Python rank costs 50-150 us here), and sees an
    end at most ``share`` of the quiet spell late.  What that delays is mostly bookkeeping: the next
    task on those cores is already there as a standby start, or it is the run's end; at worst (the
    sweep's last round, no standbys) the cores wait that ``share`` of their task's time longer.
    """

    def __init__(self, low: float, busy: float, quiet: float, share: float, now: float) -> None:
        super().__init__(low, busy)
        self.busy, self.quiet, self.share = busy, quiet, share
        self.since = now

    def active(self, now: float) -> None:
        """Something happened (a report came, work was sent): short sleeps again."""
        self.since = now
        self.reset()

    def next_at(self, now: float) -> float:
        """The next sleep, ``now`` being the time of the clock :meth:`active` was given."""
        self.high = min(self.quiet, max(self.busy, (now - self.since) * self.share))
        return self.next()
