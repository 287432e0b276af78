"""MPI transport: rank 0's master talks to one agent rank per node (the only mpi4py import).

Theory of operation
-------------------
Every rank learns every rank's node name once at start-up (one allgather).
Ranks are grouped by node -- ``SLURMD_NODENAME`` when set, else the processor
name, or a virtual node when emulating nodes -- and the lowest rank of each
node is its agent.  Rank 0's node is node 0 and its agent lives inside rank
0's process (driven through :class:`~mpilauncher.transport.local.LocalTransport`,
as in a singleton run); other agents are reached by point-to-point messages
(:class:`MasterTransport` on rank 0, :class:`MpiAgentEndpoint` on the others;
the loops that serve them are in :mod:`mpilauncher.runtime.serve`):

    agent -> master  HELLO (node, cores)      once, at start
    master -> agent  SETUP (workdir, cwd)     once, after input is checked
    master -> agent  START (tasks)            one message per node per scheduling pass
    agent -> master  DONE (ended tasks)       one message per agent loop turn
    agent -> master  BEAT                     when nothing else was sent for a while
    master -> all    SHUTDOWN (grace, exit status)
    any -> master    BYE (tasks an agent ended on the way out)
    any -> master    SIGNALLED (signum)       a stop signal reached this rank

Ranks that are neither master nor agent (``srun``/``ibrun`` start one rank per
core) park: they look for SHUTDOWN a few times a second and sleep otherwise, and
whoever sends their node its SHUTDOWN wakes them with a signal (see wake.py).
Every rank answers SHUTDOWN with BYE, and rank 0 waits for them all before it
goes on to MPI_Finalize: a parked rank may send SIGNALLED at any moment until
it has seen SHUTDOWN, and a message to a rank that is finalizing is an error
(seen under Slurm: "OFI call tinjectdata failed").  Nothing is sent to a rank
known to be dead: MPICH's send to a dead rank on another host retries the
refused connection inside MPI for good.  So a rank parked on another host gets
its SHUTDOWN once its agent's BYE, which names the parked ranks gone on its
host, says it still runs; the ranks on rank 0's host are looked at directly.

Signals.  A stop signal may reach any rank: the starter forwards Ctrl-C and
SIGTERM to all of them, Slurm signals every process of a step, a ``kill``
reaches one.  Only rank 0 decides.  On the other ranks the signal handler just
records it (see ``runtime.stop.SignalGuard``); the agent's or parked rank's loop
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

This module is the launcher's only mpi4py import (``mpilauncher.spawn``, the
proxy of ``--mpi-starter spawn``, is a separate program), and it is imported
only when MPI is used: a singleton run never initialises MPI.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Mapping
from typing import TypeVar

from mpilauncher.errors import LauncherFailure, ProtocolError, StoppedBySignal
from mpilauncher.protocol import (
    PROTOCOL_VERSION,
    Bye,
    Completions,
    Ended,
    Hello,
    Message,
    Setup,
    Shutdown,
    Signalled,
    StartTasks,
    ToAgent,
)
from mpilauncher.records import field, record
from mpilauncher.transport.base import Backoff, InProcessAgent, QuietBackoff, StopSignal, no_signal
from mpilauncher.transport.local import LOCAL_NODE, LocalTransport
from mpilauncher.transport.wake import gone, identity, wake

__all__ = ["Backoff", "Bye", "Layout", "MasterTransport", "MpiAgentEndpoint", "SendClock", "Setup", "discover", "world"]

T = TypeVar("T")

TAG_HELLO, TAG_SETUP, TAG_START, TAG_DONE, TAG_BEAT, TAG_SHUTDOWN, TAG_BYE, TAG_SIGNALLED = range(101, 109)
#: Rank 0's longest sleep between two probes for the BYEs: the end of every MPI run waits on the
#: last one, and it lasts only as long as the other ranks take to see SHUTDOWN (0.05 s made a run
#: end up to 0.05 s after its last BYE; 200 wake-ups a second for that moment cost nothing).
SHUTDOWN_PROBE = 0.005
#: Rank 0's probe schedule for the other agents' reports, seconds (see QuietBackoff): 0.2 ms after news,
#: doubling to 5 ms while reports come; after a quiet spell up to 1% of it, at most 50 ms.  Measured with
#: one long task (benchmarks/dispatch.py, idle cost): a 5 ms ceiling kept rank 0 at 3.5% of a core.
MASTER_PROBE = (0.0002, 0.005)
#: The longest rank 0's shutdown waits for the other ranks' BYEs beyond the grace (and at most the heartbeat
#: timeout): a rank that has not answered by then is lost.
SHUTDOWN_TIMEOUT = 30.0
#: What the end of a run may take beyond that wait once its state is saved (the last sends, MPI_Abort, the
#: output drained) before rank 0's watchdog ends the job (see launch.py's ``EndWatchdog``).
END_MARGIN = 10.0
MASTER_QUIET_PROBE, MASTER_QUIET_SHARE = 0.05, 0.01
#: Rank 0's probes of MPI, seconds apart at least, where every agent is rank 0's own (one node: the other ranks
#: park): only a parked rank's Signalled can come then, and a probe that finds nothing costs 3-7 us (four
#: ``improbe``) -- a turn of the master's loop each, 1,300 turns and 8 ms of its CPU for 2,000 ``true`` under
#: ``mpiexec -n 2`` on 2 CPUs, where every such millisecond is the tasks'.
PARKED_ONLY_PROBE = 0.02

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


@record(frozen=True)
class Layout:
    """Which rank is on which node, and who is each node's agent."""

    node_names: tuple[str, ...]  # per node index
    agent_ranks: tuple[int, ...]  # per node index
    node_of_rank: tuple[int, ...]  # per rank
    #: Rank -> (host, pid, start time), for the ranks on this rank's host only: by it a node's agent wakes the
    #: ranks parked beside it, and rank 0 every rank on its host (see wake.py).  Only this host's: a signal
    #: reaches no other, and at 100,000 ranks everyone's would be 100,000 entries on every rank.
    identities: Mapping[int, tuple[str, int, str]] = field(default_factory=dict, compare=False)

    @classmethod
    def from_names(
        cls, names_by_rank: list[str], identities: Mapping[int, tuple[str, int, str]] | None = None
    ) -> Layout:
        order: dict[str, int] = {}
        agents: list[int] = []
        node_of_rank = []
        for rank, name in enumerate(names_by_rank):
            if name not in order:
                order[name] = len(order)
                agents.append(rank)
            node_of_rank.append(order[name])
        return cls(tuple(order), tuple(agents), tuple(node_of_rank), dict(identities or {}))

    def role(self, rank: int) -> str:
        if rank == 0:
            return "master"
        return "agent" if self.agent_ranks[self.node_of_rank[rank]] == rank else "parked"

    def parked_beside(self, rank: int) -> dict[int, tuple[str, int, str]]:
        """Rank -> identity of the ranks parked on ``rank``'s node (those it wakes after its BYE, and whose
        death its BYE reports), in rank order; those on another host than ``rank``'s are not known here (nor
        could a signal reach them)."""
        node = self.node_of_rank[rank]
        return {
            other: found for other, found in sorted(self.identities.items())
            if self.node_of_rank[other] == node and self.role(other) == "parked"
        }  # fmt: skip


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
    """Every rank's node, grouped (an allgather of the names), and how to find the processes of the ranks
    on this host (an allgather within the host's shared-memory communicator): two short collectives."""
    if emulate_nodes:
        name = emulated_node_name(comm.Get_rank(), comm.Get_size(), emulate_nodes)
    else:
        name = os.environ.get("SLURMD_NODENAME") or processor_name()
    names = comm.allgather(name)
    from mpi4py import MPI

    host = comm.Split_type(MPI.COMM_TYPE_SHARED, key=comm.Get_rank())  # the ranks on this host
    try:
        identities = dict(host.allgather((comm.Get_rank(), identity())))
    finally:
        host.Free()
    return Layout.from_names(names, identities)


class SendClock:
    """When the MPI send (or send test) in progress began, and to which rank (-1: some rank): what a
    watchdog reads from another thread (see launch.py's ``StuckSendWatchdog``).

    Why: MPICH's send to a rank that died on another host retries the refused connection inside the
    call, for good, with Python's lock released (a user walk under srun: a rank killed mid-sweep, and
    rank 0 spun in its send of a start to it until the job's time limit, before the heartbeat timeout
    could say the node was lost; an agent did the same in its report to a rank 0 that was killed).
    Nothing in the loop can notice: the loop is the thread that is stuck."""

    __slots__ = ("since", "rank")

    def __init__(self) -> None:
        self.since: float | None = None
        self.rank = -1

    def stuck_for(self, now: float) -> float:
        """Seconds the send in progress has taken so far; 0 when none is."""
        since = self.since
        return 0.0 if since is None else now - since

    def timed(self, rank: int, call: Callable[..., T], *args, **kwargs) -> T:
        """``call(*args, **kwargs)`` -- a send to ``rank``, or a test of sends -- on the clock while it runs."""
        self.rank, self.since = rank, time.monotonic()
        try:
            return call(*args, **kwargs)
        finally:
            self.since = None


# -- rank 0 ---------------------------------------------------------------
class MasterTransport:
    """Rank 0's endpoint (a :class:`~mpilauncher.transport.base.Transport`): node 0 through the
    in-process :class:`LocalTransport`, exactly as a singleton run drives it, the others over MPI."""

    def __init__(
        self, comm, layout: Layout, local_agent: InProcessAgent, beat_timeout: float | None = None,
        stop_signal: StopSignal = no_signal,
    ) -> None:  # fmt: skip
        self.comm = comm
        self.stop_signal = stop_signal  # a stop signal rank 0's handler recorded (hellos gives up on it)
        self.layout = layout
        self.local = LocalTransport(local_agent)
        #: Whether some node's agent is another rank (node 0's is rank 0); if not, MPI is probed only every
        #: PARKED_ONLY_PROBE s.
        self._agents_elsewhere = len(layout.agent_ranks) > 1
        self._probe_due = 0.0
        self.beat_timeout = beat_timeout
        self._requests: list = []
        self._backoff = QuietBackoff(*MASTER_PROBE, MASTER_QUIET_PROBE, MASTER_QUIET_SHARE, time.monotonic())
        self._last_heard: dict[int, float] = {}
        self._node_of_rank = layout.node_of_rank
        self._shut_down = False
        self._dead_ranks: set[int] = set()
        #: Ranks the MPI library itself reported failed (ULFM, e.g. Open MPI's ``mpirun --with-ft ulfm``).
        self._failed_ranks: set[int] = set()
        #: Some rank is gone or did not answer the shutdown: MPI_Finalize would hang on it.
        self.unclean = False
        #: Which ones (after :meth:`shutdown`).
        self.lost_ranks: list[int] = []
        #: The send in progress, for a watchdog (see :class:`SendClock`).
        self.send_clock = SendClock()

    # -- start-up ---------------------------------------------------------
    def hellos(self, timeout: float = 300.0) -> list[tuple[int, Hello]]:
        """Every node's Hello, rank 0's own first; waits (polling) for all agents, or until a stop signal."""
        got: dict[int, Hello] = dict(self.local.hellos())
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
              task_timeout: float | None = None, output: str = "per-task") -> None:  # fmt: skip
        self.local.setup(workdir, cwd, mpi_starter, emulated, task_timeout, output)
        beat = min(5.0, self.beat_timeout / 4) if self.beat_timeout else 5.0
        for node, rank in enumerate(self.layout.agent_ranks):
            if node != LOCAL_NODE:
                self._isend(Setup(workdir, cwd, beat, mpi_starter, emulated, task_timeout, output), rank, TAG_SETUP)

    def add_wake_fd(self, fd: int) -> None:
        self.local.add_wake_fd(fd)

    # -- the run ----------------------------------------------------------
    def send(self, node: int, message: StartTasks | Shutdown) -> None:
        if node == LOCAL_NODE:
            self.local.send(node, message)
            return
        self._backoff.active(time.monotonic())  # its answers may come soon: probe often again
        tag = TAG_SHUTDOWN if isinstance(message, Shutdown) else TAG_START
        self._isend(message, self.layout.agent_ranks[node], tag)

    def receive(self, timeout: float) -> list[tuple[int, Message]]:
        """Messages from all agents, waiting up to ``timeout`` s (polling with back-off)."""
        deadline = time.monotonic() + timeout
        while True:
            out: list[tuple[int, Message]] = []
            if self._agents_elsewhere:
                self._drain(out)
            elif (now := time.monotonic()) >= self._probe_due:
                self._probe_due = now + PARKED_ONLY_PROBE
                self._drain(out)
            out += self.local.receive(0)
            if not out:
                now = time.monotonic()
                remaining = deadline - now
                if remaining <= 0:
                    return out
                # Sleep in the local agent's epoll: a local task's end wakes us at once.
                out = self.local.receive(min(self._backoff.next_at(now), remaining))
            if out:
                self._backoff.active(time.monotonic())
                return out

    def silent_nodes(self, now: float) -> list[int]:
        """Remote nodes whose agent the MPI library reported failed, or not heard from for
        longer than the heartbeat timeout."""
        remote = [n for n in self._last_heard if n != LOCAL_NODE]
        failed = [n for n in remote if self.layout.agent_ranks[n] in self._failed_ranks]
        if self.beat_timeout is None:
            return failed
        return failed + [n for n in remote if now - self._last_heard[n] > self.beat_timeout and n not in failed]

    def forget(self, node: int) -> None:
        """Give up on a node: never wait for its ranks (agent and parked), never send to them again."""
        self._last_heard.pop(node, None)
        self._dead_ranks.update(rank for rank, n in enumerate(self._node_of_rank) if n == node)

    # -- the end ----------------------------------------------------------
    def shutdown(
        self, grace: float, exit_status: int, timeout: float = SHUTDOWN_TIMEOUT
    ) -> list[tuple[int, Ended]]:  # fmt: skip
        """Tell every other rank to stop and wait for each one's BYE; collect the tasks the agents
        ended on the way out.

        No SHUTDOWN goes to a rank that is known or seen to be dead: MPICH's send to a rank that died on
        another host retries the refused connection inside MPI for good (a user walk: rank 0 spun at 100%
        for 11 minutes after its statistics, a parked rank of another node killed).  The agents (heard from
        within the heartbeat timeout) and the ranks on this host (seen to run) get theirs at once; a rank
        parked on another host once its agent's BYE says it still runs (see :class:`Bye`).

        Idempotent: only the first call sends anything.
        """
        if self._shut_down:
            return []
        self._shut_down = True
        message = Shutdown(grace, exit_status)
        here = self.layout.identities
        self._dead_ranks.update(rank for rank, found in here.items() if rank and gone(*found))
        waiting = {rank for rank in range(1, self.comm.Get_size()) if rank not in self._dead_ranks}
        later = {
            rank for rank in waiting
            if rank not in here and self.layout.role(rank) == "parked" and self._node_of_rank[rank] != LOCAL_NODE
        }  # fmt: skip
        for rank in sorted(waiting - later):  # first: the other ranks stop while node 0 does
            self._isend(message, rank, TAG_SHUTDOWN)
        # The ranks on this host (node 0's parked ones; with emulated nodes, every one): now, not at their next probe.
        wake(found for rank, found in here.items() if rank in waiting)
        ended = self.local.shutdown(grace, exit_status)
        # A live agent answers at once (a parked rank within its longest sleep); one that died unnoticed never will.
        deadline = time.monotonic() + grace + self._shutdown_wait(timeout)
        backoff = Backoff(0.0005, SHUTDOWN_PROBE)
        while waiting and time.monotonic() < deadline:
            got = self._probe()
            if got is None:
                time.sleep(backoff.next())
                continue
            rank, payload = got
            if isinstance(payload, Bye):
                waiting.discard(rank)
                ended.extend((self._node_of_rank[rank], e) for e in payload.items)
                for parked in sorted(p for p in later if self._node_of_rank[p] == self._node_of_rank[rank]):
                    later.discard(parked)
                    if parked in payload.gone:
                        self._dead_ranks.add(parked)
                        waiting.discard(parked)
                    else:
                        self._isend(message, parked, TAG_SHUTDOWN)
            elif isinstance(payload, Completions):
                ended.extend((self._node_of_rank[rank], e) for e in payload.items)
        self._complete_sends(deadline)
        # Ranks the library reported failed do not hold up MPI_Finalize (ULFM); others would.
        self.lost_ranks = sorted(waiting | (self._dead_ranks - self._failed_ranks))
        self.unclean = bool(self.lost_ranks or self._requests)
        return ended

    def end_bound(self) -> float:
        """The longest the end of the run may take once rank 0's state is saved (its :meth:`shutdown`
        without grace, then MPI_Abort or MPI_Finalize): past it something is stuck inside MPI."""
        return self._shutdown_wait(SHUTDOWN_TIMEOUT) + END_MARGIN

    def _shutdown_wait(self, timeout: float) -> float:
        """How long the shutdown waits for the BYEs, beyond the grace: a rank that did not answer within the
        heartbeat timeout is as silent as a lost agent."""
        return min(timeout, self.beat_timeout or timeout)

    def close(self) -> None:
        self.local.close()

    # -- internals --------------------------------------------------------
    def _isend(self, message: object, rank: int, tag: int) -> None:
        if rank in self._failed_ranks:
            return
        try:
            self._requests.append(self.send_clock.timed(rank, self.comm.isend, message, dest=rank, tag=tag))
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
            return self.send_clock.timed(-1, request.Test)
        except Exception as err:
            self._on_failure(err)
            return True

    def _probe(self, tag: int | None = None):
        from mpi4py import MPI

        status = MPI.Status()
        try:
            message = improbe(self.comm, MPI.ANY_SOURCE, MPI.ANY_TAG if tag is None else tag, status)
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
def _untested(requests: list) -> list:
    """The sends of ``requests`` not done yet (testing each moves it on)."""
    return [r for r in requests if not r.Test()]


def improbe(comm, source: int, tag: int, status):
    """``comm.improbe``, asked up to :data:`PROBES_PER_LOOK` times before it counts as "nothing there".

    One probe is not one look: MPICH's probe posts a peek to its network layer and
    progresses it, and the answer comes on a later probe.  Measured here (a message
    that arrived while the rank slept, 490 trials, MPICH 4 over libfabric tcp;ofi_rxm
    and its default provider, 4 and 8 ranks, with and without both CPUs busy): seen
    on the 1st probe 4%, the 2nd 82%, the 3rd 14% (28% with both CPUs busy), never
    later; with a posted receive instead, on the 1st or 2nd test.  A loop that looks
    and then sleeps saw a message a sleep late each time a look fell short -- a
    parked rank its SHUTDOWN up to half a second late, an idle agent its next task a
    back-off late.  A look of two probes fell short once in CI.  An empty probe
    costs 0.2-0.6 us.
    """
    for _ in range(PROBES_PER_LOOK):
        message = comm.improbe(source=source, tag=tag, status=status)
        if message is not None:
            return message
    return None


PROBES_PER_LOOK = 4
"""Probes before "nothing there": one more than the most a message needed (see :func:`improbe`)."""


class MpiAgentEndpoint:
    """An agent's or a parked rank's link to rank 0 (an :class:`~mpilauncher.transport.base.AgentEndpoint`).

    Every receive is a probe (nothing waits inside MPI); every send but the
    first (HELLO) and the last (BYE) is non-blocking, settled by :meth:`settle`.
    """

    def __init__(self, comm, parked: Mapping[int, tuple[str, int, str]] | None = None) -> None:
        """``parked``: rank -> identity of the ranks parked on this agent's node (see
        :meth:`Layout.parked_beside`): its BYE names those that are gone, and wakes the others (see wake.py)."""
        from mpi4py import MPI

        self.comm = comm
        self._parked = dict(parked or {})
        self.rank: int = comm.Get_rank()
        self._status = MPI.Status()
        self._any_tag = MPI.ANY_TAG
        self._requests: list = []
        #: The send to rank 0 in progress, for a watchdog (see :class:`SendClock`).
        self.send_clock = SendClock()

    def hello(self, hello: Hello) -> None:
        self.comm.send(hello, dest=0, tag=TAG_HELLO)

    def messages(self) -> list[ToAgent]:
        out = []
        while (message := improbe(self.comm, 0, self._any_tag, self._status)) is not None:
            payload = message.recv()
            if not isinstance(payload, (Setup, StartTasks, Shutdown)):
                raise ProtocolError(f"agent got unexpected {type(payload).__name__}")
            out.append(payload)
            if isinstance(payload, Shutdown):
                break  # the last word: nothing after it is for us
        return out

    def shutdown_message(self) -> Shutdown | None:
        message = improbe(self.comm, 0, TAG_SHUTDOWN, self._status)
        return None if message is None else message.recv()

    def report(self, message: Completions | Signalled | None) -> None:
        tag = TAG_BEAT if message is None else TAG_SIGNALLED if isinstance(message, Signalled) else TAG_DONE
        self._requests.append(self.send_clock.timed(0, self.comm.isend, message, dest=0, tag=tag))

    def settle(self) -> None:
        if self._requests:
            self._requests = self.send_clock.timed(0, _untested, self._requests)

    def bye(self, ended: tuple[Ended, ...]) -> None:
        """BYE goes last: after it rank 0 may finalize, so every send of ours must be out by then.

        It names the ranks parked on this node that are gone (rank 0 sends the others their SHUTDOWN
        when it reads it), and wakes the others, now, not at their next probe: theirs is on its way."""
        gone_ranks = tuple(rank for rank, found in self._parked.items() if gone(*found))
        self._requests.append(self.send_clock.timed(0, self.comm.isend, Bye(ended, gone_ranks), dest=0, tag=TAG_BYE))
        wake(found for rank, found in self._parked.items() if rank not in gone_ranks)
        deadline = time.monotonic() + 30
        while self._requests and time.monotonic() < deadline:
            self.settle()
            if self._requests:
                time.sleep(0.001)
