"""MPI transport: rank 0's master talks to one agent rank per node (the only mpi4py import).

Theory of operation
-------------------
Every rank learns every rank's node name once at start-up (one allgather).
Ranks are grouped by node -- ``SLURMD_NODENAME`` when set, else the processor
name, or a virtual node when emulating nodes -- and the lowest rank of each
node is its agent.  Rank 0's node is node 0 and its agent lives inside rank
0's process (driven directly, see :class:`~mpilauncher.transport.local`); other
agents are reached by point-to-point messages:

    agent -> master  HELLO (node, cores)      once, at start
    master -> agent  SETUP (workdir, cwd)     once, after input is checked
    master -> agent  START (tasks)            one message per node per scheduling pass
    agent -> master  DONE (ended tasks)       one message per agent loop turn
    agent -> master  BEAT                     when nothing else was sent for a while
    master -> all    SHUTDOWN (grace, exit status)
    any -> master    BYE (tasks an agent ended on the way out)
    any -> master    SIGNALLED (signum)       a stop signal reached this rank

Ranks that are neither master nor agent (``srun``/``ibrun`` start one rank per
core) park: they look for SHUTDOWN a few times a second and sleep otherwise.
Every rank answers SHUTDOWN with BYE, and rank 0 waits for them all before it
goes on to MPI_Finalize: a parked rank may send SIGNALLED at any moment until
it has seen SHUTDOWN, and a message to a rank that is finalizing is an error
(seen under Slurm: "OFI call tinjectdata failed").

Signals.  A stop signal may reach any rank: the starter forwards Ctrl-C and
SIGTERM to all of them, Slurm signals every process of a step, a ``kill``
reaches one.  Only rank 0 decides.  On the other ranks the signal handler just
records it (see ``launch._SignalGuard``); the agent's or parked rank's loop
then sends SIGNALLED to rank 0, once, and goes on serving until SHUTDOWN, so
every rank ends the way rank 0 decides, with its exit status.  An agent sends
SIGNALLED before any end it reports after the signal: MPI keeps the order of
two messages between the same two ranks, so rank 0 knows which ends may have
been caused by the signal (Slurm's SIGTERM reaches the tasks too).

Nobody ever blocks inside an MPI call while user tasks need the cores: a rank
blocked in ``recv`` spins at 100% CPU (measured: 2.8 s CPU in 3 s).  Every wait
is a probe followed by a sleep that grows (:class:`Backoff`, as in
mpi4py.futures) and, for agents, the sleep *is* the epoll wait on the task
processes, so a task's end wakes its agent at once.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

from mpilauncher.errors import LauncherFailure, ProtocolError, StoppedBySignal
from mpilauncher.execution.processes import Ended
from mpilauncher.protocol import PROTOCOL_VERSION, Completions, Hello, Message, Shutdown, Signalled, StartTasks
from mpilauncher.runtime.agent import Agent

TAG_HELLO, TAG_SETUP, TAG_START, TAG_DONE, TAG_BEAT, TAG_SHUTDOWN, TAG_BYE, TAG_SIGNALLED = range(101, 109)

#: How a rank's loop learns of a stop signal its handler recorded: the signal number, or None.
StopSignal = Callable[[], "int | None"]


def _no_signal() -> int | None:
    return None


#: Environment variables by which MPI starters tell a process it is one of several ranks.
WORLD_SIZE_VARIABLES = ("PMI_SIZE", "OMPI_COMM_WORLD_SIZE", "PMIX_SIZE", "MPI_LOCALNRANKS", "MV2_COMM_WORLD_SIZE")


def started_by_mpi(environ: Mapping[str, str] | None = None) -> bool:
    """Was this process started as one of several MPI ranks?

    Decided from the environment, without importing mpi4py: a singleton run
    never initialises MPI at all.
    """
    env = os.environ if environ is None else environ
    for name in WORLD_SIZE_VARIABLES:
        try:
            if int(env.get(name, "1")) > 1:
                return True
        except ValueError:
            continue
    return False


class Backoff:
    """Sleep lengths that double from ``low`` to ``high`` and reset on progress."""

    def __init__(self, low: float, high: float) -> None:
        self.low, self.high = low, high
        self.current = low

    def reset(self) -> None:
        self.current = self.low

    def next(self) -> float:
        value = self.current
        self.current = min(self.high, self.current * 2)
        return value


@dataclass(frozen=True, slots=True)
class Setup:
    """Master -> agent: where task files go, and from where tasks run."""

    workdir: str
    cwd: str
    beat_interval: float = 5.0
    mpi_starter: str | None = None
    emulated: bool = False
    task_timeout: float | None = None


@dataclass(frozen=True, slots=True)
class Bye:
    items: tuple[Ended, ...]


@dataclass(frozen=True, slots=True)
class Layout:
    """Which rank is on which node, and who is each node's agent."""

    node_names: tuple[str, ...]  # per node index
    agent_ranks: tuple[int, ...]  # per node index
    node_of_rank: tuple[int, ...]  # per rank

    @classmethod
    def from_names(cls, names_by_rank: list[str]) -> Layout:
        order: dict[str, int] = {}
        agents: list[int] = []
        node_of_rank = []
        for rank, name in enumerate(names_by_rank):
            if name not in order:
                order[name] = len(order)
                agents.append(rank)
            node_of_rank.append(order[name])
        return cls(tuple(order), tuple(agents), tuple(node_of_rank))

    def role(self, rank: int) -> str:
        if rank == 0:
            return "master"
        return "agent" if self.agent_ranks[self.node_of_rank[rank]] == rank else "parked"


def emulated_node_name(rank: int, size: int, nodes: int) -> str:
    """Node name of ``rank`` when ``size`` ranks stand for ``nodes`` virtual nodes."""
    index = rank * nodes // size
    return f"vnode{index:0{len(str(nodes - 1))}d}"


def world():
    """COMM_WORLD, initialising MPI on first use (threads are not needed)."""
    import mpi4py

    mpi4py.rc.threads = False
    from mpi4py import MPI

    return MPI.COMM_WORLD


def processor_name() -> str:
    from mpi4py import MPI

    return MPI.Get_processor_name()


def discover(comm, emulate_nodes: int | None) -> Layout:
    """Every rank's node, grouped (one short collective at start-up)."""
    if emulate_nodes:
        name = emulated_node_name(comm.Get_rank(), comm.Get_size(), emulate_nodes)
    else:
        name = os.environ.get("SLURMD_NODENAME") or processor_name()
    return Layout.from_names(comm.allgather(name))


# -- rank 0 ---------------------------------------------------------------
class MasterTransport:
    """Rank 0's endpoint: its own agent in-process, the others over MPI."""

    def __init__(
        self, comm, layout: Layout, local_agent: Agent, beat_timeout: float | None = None,
        stop_signal: StopSignal = _no_signal,
    ) -> None:  # fmt: skip
        self.comm = comm
        self.stop_signal = stop_signal  # a stop signal rank 0's handler recorded (hellos gives up on it)
        self.layout = layout
        self.local = local_agent
        self.beat_timeout = beat_timeout
        self._requests: list = []
        self._pending: list[tuple[int, Message]] = []
        self._backoff = Backoff(0.0002, 0.005)
        self._last_heard: dict[int, float] = {}
        self._node_of_rank = layout.node_of_rank
        self._shut_down = False
        self._dead_ranks: set[int] = set()
        #: Ranks the MPI library itself reported failed (ULFM, e.g. Open MPI's ``mpirun --with-ft ulfm``).
        self._failed_ranks: set[int] = set()
        #: Some rank is gone or did not answer the shutdown: MPI_Finalize would hang on it.
        self.unclean = False

    # -- start-up ---------------------------------------------------------
    def hellos(self, timeout: float = 300.0) -> list[tuple[int, Hello]]:
        """Every node's Hello, rank 0's own first; waits (polling) for all agents, or until a stop signal."""
        got: dict[int, Hello] = {0: self.local.hello()}
        deadline = time.monotonic() + timeout
        backoff = Backoff(0.0005, 0.05)
        while len(got) < len(self.layout.agent_ranks):
            message = self._probe(tag=TAG_HELLO)
            if message is None:
                expired, signum = time.monotonic() > deadline, self.stop_signal()
                if expired or signum is not None:
                    missing = [self.layout.node_names[n] for n in range(len(self.layout.agent_ranks)) if n not in got]
                    if signum is not None:  # an agent that hangs in its start-up must not make Ctrl-C useless
                        raise StoppedBySignal(signum, f"while waiting for the agents on {', '.join(missing[:5])}")
                    raise LauncherFailure(f"agents on {', '.join(missing[:5])} did not report within {timeout:.0f} s")
                time.sleep(backoff.next())
                continue
            rank, hello = message
            if not isinstance(hello, Hello) or hello.version != PROTOCOL_VERSION:
                version = getattr(hello, "version", "?")
                raise ProtocolError(
                    f"rank {rank} speaks mpilauncher protocol {version}, rank 0 speaks {PROTOCOL_VERSION}:"
                    " every rank must run the same mpilauncher version"
                )
            got[self._node_of_rank[rank]] = hello
            backoff.reset()
        now = time.monotonic()
        self._last_heard = {node: now for node in got}
        return sorted(got.items())

    def setup(self, workdir: str, cwd: str, mpi_starter: str | None = None, emulated: bool = False,
              task_timeout: float | None = None) -> None:  # fmt: skip
        self.local.configure(Path(workdir), cwd, mpi_starter, emulated, task_timeout)
        beat = min(5.0, self.beat_timeout / 4) if self.beat_timeout else 5.0
        for node, rank in enumerate(self.layout.agent_ranks):
            if node:
                self._isend(Setup(workdir, cwd, beat, mpi_starter, emulated, task_timeout), rank, TAG_SETUP)

    def add_wake_fd(self, fd: int) -> None:
        self.local.runner.add_wake_fd(fd)

    # -- the run ----------------------------------------------------------
    def send(self, node: int, message: StartTasks | Shutdown) -> None:
        if node == 0:
            ended = self.local.handle(message)
            if ended:
                self._pending.append((0, Completions(tuple(ended))))
            return
        tag = TAG_SHUTDOWN if isinstance(message, Shutdown) else TAG_START
        self._isend(message, self.layout.agent_ranks[node], tag)

    def receive(self, timeout: float) -> list[tuple[int, Message]]:
        """Messages from all agents, waiting up to ``timeout`` s (polling with back-off)."""
        deadline = time.monotonic() + timeout
        self._backoff.reset()
        while True:
            out, self._pending = self._pending, []
            self._drain(out)
            report = self.local.poll(0)
            if report is not None:
                out.append((0, report))
            if out:
                return out
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return out
            # Sleep in the local agent's epoll: a local task's end wakes us at once.
            report = self.local.poll(min(self._backoff.next(), remaining))
            if report is not None:
                return [(0, report)]

    def silent_nodes(self, now: float) -> list[int]:
        """Remote nodes whose agent the MPI library reported failed, or not heard from for
        longer than the heartbeat timeout."""
        failed = [n for n in self._last_heard if n and self.layout.agent_ranks[n] in self._failed_ranks]
        if self.beat_timeout is None:
            return failed
        return failed + [
            n for n, t in self._last_heard.items() if n and now - t > self.beat_timeout and n not in failed
        ]

    def forget(self, node: int) -> None:
        """Give up on a node: never wait for its ranks (agent and parked), never send to them again."""
        self._last_heard.pop(node, None)
        self._dead_ranks.update(rank for rank, n in enumerate(self._node_of_rank) if n == node)

    # -- the end ----------------------------------------------------------
    def shutdown(self, grace: float, exit_status: int, timeout: float = 30.0) -> list[tuple[int, Ended]]:
        """Tell every other rank to stop and wait for each one's BYE; collect the tasks the agents
        ended on the way out.

        Idempotent: only the first call sends anything.
        """
        if self._shut_down:
            return []
        self._shut_down = True
        ended = [(0, e) for _, m in self._pending for e in m.items]
        self._pending = []
        ended += [(0, e) for e in self.local.shutdown(grace)]
        for rank in range(1, self.comm.Get_size()):
            if rank not in self._dead_ranks:
                self._isend(Shutdown(grace, exit_status), rank, TAG_SHUTDOWN)
        waiting = {rank for rank in range(1, self.comm.Get_size()) if rank not in self._dead_ranks}
        # A live agent answers at once (a parked rank within its longest sleep); one that died unnoticed never will.
        deadline = time.monotonic() + grace + min(timeout, self.beat_timeout or timeout)
        backoff = Backoff(0.0005, 0.05)
        while waiting and time.monotonic() < deadline:
            message = self._probe()
            if message is None:
                time.sleep(backoff.next())
                continue
            rank, payload = message
            if isinstance(payload, Bye):
                waiting.discard(rank)
                ended.extend((self._node_of_rank[rank], e) for e in payload.items)
            elif isinstance(payload, Completions):
                ended.extend((self._node_of_rank[rank], e) for e in payload.items)
        self._complete_sends(deadline)
        # Ranks the library reported failed do not hold up MPI_Finalize (ULFM); others would.
        self.unclean = bool(waiting or self._dead_ranks - self._failed_ranks or self._requests)
        return ended

    def close(self) -> None:
        self.local.close()

    # -- internals --------------------------------------------------------
    def _isend(self, message: object, rank: int, tag: int) -> None:
        if rank in self._failed_ranks:
            return
        try:
            self._requests.append(self.comm.isend(message, dest=rank, tag=tag))
        except Exception as err:  # MPI.Exception; _on_failure lets all but process failures through
            self._on_failure(err)
        if len(self._requests) > 64:
            self._requests = [r for r in self._requests if not self._settled(r)]

    def _complete_sends(self, deadline: float) -> None:
        while self._requests and time.monotonic() < deadline:
            self._requests = [r for r in self._requests if not self._settled(r)]
            if self._requests:
                time.sleep(0.001)

    def _settled(self, request) -> bool:
        """A send is done -- or can never be: its destination failed."""
        try:
            return request.Test()
        except Exception as err:
            self._on_failure(err)
            return True

    def _probe(self, tag: int | None = None):
        from mpi4py import MPI

        status = MPI.Status()
        try:
            message = self.comm.improbe(source=MPI.ANY_SOURCE, tag=MPI.ANY_TAG if tag is None else tag, status=status)
        except MPI.Exception as err:
            self._on_failure(err)  # acknowledged: the next probe goes on with the living ranks
            return None
        if message is None:
            return None
        return status.Get_source(), message.recv()

    def _on_failure(self, err: Exception) -> None:
        """A process failure the MPI library reports (ULFM): note which ranks died, acknowledge
        them so that ANY_SOURCE receives work again, and never send to them.  Anything else is
        a real error and goes on up."""
        from mpi4py import MPI

        if not isinstance(err, MPI.Exception) or err.Get_error_class() not in (
            MPI.ERR_PROC_FAILED, MPI.ERR_PROC_FAILED_PENDING,
        ):  # fmt: skip
            raise err
        self.comm.Ack_failed()
        failed = self.comm.Get_failed()
        ranks = MPI.Group.Translate_ranks(failed, list(range(failed.Get_size())), self.comm.Get_group())
        failed.Free()
        self._failed_ranks.update(r for r in ranks if r != MPI.UNDEFINED)
        self._dead_ranks.update(self._failed_ranks)

    def _drain(self, out: list[tuple[int, Message]]) -> None:
        now = time.monotonic()
        while (message := self._probe()) is not None:
            rank, payload = message
            node = self._node_of_rank[rank]
            if node in self._last_heard:
                self._last_heard[node] = now
            if rank in self._dead_ranks:
                continue  # a node given up as lost: its news is stale
            if isinstance(payload, (Completions, Signalled)):
                out.append((node, payload))
            elif isinstance(payload, (Bye, Hello)) or payload is None:
                continue
            else:
                raise ProtocolError(f"unexpected {type(payload).__name__} from rank {rank}")


# -- other ranks ------------------------------------------------------------
def serve_agent(comm, agent: Agent, beat_interval: float | None = None, stop_signal: StopSignal = _no_signal) -> int:
    """An agent rank's loop: run what rank 0 sends until it says SHUTDOWN; returns its exit status.

    A stop signal recorded by this rank (``stop_signal``) is passed on to rank 0
    once; the agent goes on serving: rank 0 sends the SHUTDOWN.
    """
    from mpi4py import MPI

    comm.send(agent.hello(), dest=0, tag=TAG_HELLO)
    backoff = Backoff(0.0005, 0.02)
    requests: list = []
    last_sent = time.monotonic()
    status = MPI.Status()
    relay = _SignalRelay(comm, stop_signal)
    while True:
        progressed = False
        while (message := comm.improbe(source=0, tag=MPI.ANY_TAG, status=status)) is not None:
            payload = message.recv()
            progressed = True
            if isinstance(payload, StartTasks):
                agent.start(payload)
            elif isinstance(payload, Setup):
                agent.configure(
                    Path(payload.workdir), payload.cwd, payload.mpi_starter, payload.emulated,
                    payload.task_timeout,
                )  # fmt: skip
                beat_interval = beat_interval or payload.beat_interval
            elif isinstance(payload, Shutdown):
                ended = agent.shutdown(payload.grace)
                comm.send(Bye(tuple(ended)), dest=0, tag=TAG_BYE)
                _wait_all(requests)
                agent.close()
                return payload.exit_status
            else:
                raise ProtocolError(f"agent got unexpected {type(payload).__name__}")
        report = agent.poll(0 if progressed else backoff.next())
        now = time.monotonic()
        if (request := relay.check()) is not None:  # before the report: these ends came after the signal
            requests.append(request)
            progressed = True
            last_sent = now
        if report is not None:
            requests.append(comm.isend(report, dest=0, tag=TAG_DONE))
            progressed = True
            last_sent = now
        elif beat_interval and now - last_sent > beat_interval:
            requests.append(comm.isend(None, dest=0, tag=TAG_BEAT))
            last_sent = now
        if requests:
            requests = [r for r in requests if not r.Test()]
        if progressed:
            backoff.reset()


def park(comm, sleep: Callable[[float], None] = time.sleep, stop_signal: StopSignal = _no_signal) -> int:
    """A surplus rank: wait for SHUTDOWN at negligible CPU and answer BYE; returns the exit status it carries.

    A stop signal recorded by this rank is passed on to rank 0 (within one sleep, 0.25 s at most).
    """
    from mpi4py import MPI

    backoff = Backoff(0.001, 0.25)
    requests: list = []
    relay = _SignalRelay(comm, stop_signal)
    while (message := comm.improbe(source=0, tag=TAG_SHUTDOWN, status=MPI.Status())) is None:
        if (request := relay.check()) is not None:
            requests.append(request)
        sleep(backoff.next())
    status = message.recv().exit_status
    requests.append(comm.isend(Bye(()), dest=0, tag=TAG_BYE))  # after it rank 0 may finalize
    _wait_all(requests)
    return status


class _SignalRelay:
    """Tells rank 0, once, that a stop signal reached this rank."""

    def __init__(self, comm, stop_signal: StopSignal) -> None:
        self.comm, self.stop_signal = comm, stop_signal
        self.sent = False

    def check(self):
        """The (non-blocking) send of the news if a signal has arrived since the last call, else None."""
        if self.sent:
            return None
        signum = self.stop_signal()
        if signum is None:
            return None
        self.sent = True
        return self.comm.isend(Signalled(signum, self.comm.Get_rank()), dest=0, tag=TAG_SIGNALLED)


def _wait_all(requests: list) -> None:
    deadline = time.monotonic() + 30
    while requests and time.monotonic() < deadline:
        requests = [r for r in requests if not r.Test()]
        if requests:
            time.sleep(0.001)
