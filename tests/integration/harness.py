"""A whole run of the master and the scheduler, with nodes that exist only in memory.

The master, the scheduler and the real observers (state store, joblog, trace,
statistics) run as in a launch; only the transport and what stands behind it
are fakes: a :class:`FakeCluster` of nodes that "run" a task by noting when it
will end, on a :class:`FakeClock` that the cluster moves forward as the
master waits.  So a run is a discrete-event simulation: deterministic, no
process, no MPI, no sleeping (as HyperQueue tests its reactor with
``TestEnv``/``TestComm``).

The test writes the scenario: how long each task runs and how it exits
(``runtimes``, ``exits``, per attempt), and what happens when (``at(t, ...)``:
a node falls silent, a stop signal arrives, the workdir stops taking files).
A node given up as lost goes on running what it had and reports it, as a
rank that only seemed dead would: the core must see those reports as stale.
"""

from __future__ import annotations

import io
import signal
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

from mpilauncher.core.ledger import Ledger
from mpilauncher.core.observer import Observer
from mpilauncher.core.scheduler import Scheduler
from mpilauncher.core.stats import FinalStatistics, Statistics
from mpilauncher.core.tasks import CoresSpec, Task
from mpilauncher.execution.processes import Ended
from mpilauncher.persistence import journal
from mpilauncher.persistence.queuestate import StateMeta
from mpilauncher.persistence.store import StateStore, journal_path, load_state
from mpilauncher.protocol import Completions, Hello, Message, Shutdown, Signalled, StartRequest, StartTasks
from mpilauncher.rank0 import close_observers
from mpilauncher.report import joblog
from mpilauncher.report.joblog import Joblog
from mpilauncher.report.latency import DispatchLatencies
from mpilauncher.report.trace import Trace
from mpilauncher.runtime.master import Master, Outcome, StopRequest, nodes_from_hellos

#: Seconds since the epoch at the fake clock's zero: the wall clock is this plus the monotonic one.
EPOCH = 1_800_000_000.0
#: A run that takes more loop turns than this is a master that waits for nothing.
MAX_TURNS = 100_000


class FakeClock:
    """Monotonic seconds from 0; the wall clock is :data:`EPOCH` later."""

    def __init__(self) -> None:
        self.now = 0.0

    def monotonic(self) -> float:
        return self.now

    def wall(self) -> float:
        return EPOCH + self.now


@dataclass
class Running:
    """A task on a fake node: its start message, when it started and when it will end."""

    item: StartRequest
    started: float
    ends: float
    exit_code: int


@dataclass
class FakeNode:
    index: int
    name: str
    cores: int
    gpu_ids: tuple[str, ...] = ()
    bound_cpus: tuple[int, ...] = ()  # the CPU of each core slot, when the agent binds tasks
    running: dict[int, Running] = field(default_factory=dict)
    behind: dict[int, StartRequest] = field(default_factory=dict)  # running task -> the standby its node starts next
    outbox: list[Ended] = field(default_factory=list)  # reports for the next receive
    retracted: list[int] = field(default_factory=list)
    silent: bool = False  # given up by the master (it goes on running, and reports: it "comes back")


class FakeCluster:
    """The nodes, their agents and the transport the master talks through; see the module docstring."""

    def __init__(self, *nodes: tuple, delay: float = 1.0) -> None:
        """``nodes``: (name, core count[, GPU ids[, bound CPUs]]) each."""
        self.clock = FakeClock()
        self.nodes = [FakeNode(i, spec[0], spec[1], *spec[2:]) for i, spec in enumerate(nodes)]  # type: ignore[arg-type]
        self.runtimes: dict[int, float | list[float]] = {}  # task -> seconds (per attempt), default 1
        self.exits: dict[int, int | list[int]] = {}  # task -> exit code (per attempt), default 0
        self.attempts: dict[int, int] = {}  # task -> starts so far on the nodes
        self.starts: list[tuple[float, int, StartRequest]] = []  # (time, node, item) of every start message
        self.unwritable_from: float | None = None  # from then on, no task's output file can be created
        self.grace_ends: dict[int, int] = {}  # exit code of a task ended by the shutdown (default -15, SIGTERM)
        self.broken: dict[int, tuple[int, float]] = {}  # node -> (exit code, runtime) of every task started there
        self.signalled: list[tuple[int, int]] = []  # (node, signum) to pass on at the next receive
        self._at: list[tuple[float, int, Callable[[FakeCluster], None]]] = []
        self._silenced: list[int] = []  # nodes that fell silent, not yet noticed by the master
        self.turns = 0
        self.shut_down = False

    # -- the scenario ----------------------------------------------------------------
    def at(self, when: float, what: Callable[[FakeCluster], None]) -> None:
        """Make ``what`` happen at ``when`` (clock seconds)."""
        self._at.append((when, len(self._at), what))
        self._at.sort()

    def silence(self, node: int) -> None:
        """The node's agent seems gone: the master gives it up at its next look."""
        self.nodes[node].silent = True
        self._silenced.append(node)

    def node_of(self, task_id: int) -> FakeNode | None:
        return next((n for n in self.nodes if task_id in n.running), None)

    # -- the transport the master sees --------------------------------------------------------
    def hellos(self) -> list[tuple[int, Hello]]:
        return [(n.index, Hello(n.name, n.cores, gpu_ids=n.gpu_ids, bound_cpus=n.bound_cpus)) for n in self.nodes]

    def setup(self, *args, **kwargs) -> None:
        pass

    def send(self, node: int, message: StartTasks | Shutdown) -> None:
        assert not self.nodes[node].silent, f"a start sent to node {node}, which the master gave up"
        assert isinstance(message, StartTasks), message
        target = self.nodes[node]
        for task_id in message.retract:
            for pred, item in list(target.behind.items()):
                if item.task_id == task_id:
                    del target.behind[pred]
                    target.retracted.append(task_id)
        for item in message.items:
            self.starts.append((self.clock.now, node, item))
            if item.after is not None and item.after in target.running:
                target.behind[item.after] = item
            else:
                self._start(target, item)

    def receive(self, timeout: float) -> list[tuple[int, Message]]:
        """What the nodes report: at once if something is waiting, else the clock moves on to the
        next end or happening, or by ``timeout``, whichever comes first."""
        self.turns += 1
        assert self.turns < MAX_TURNS, "the master waits for nothing"
        if not self._pending():
            target = self.clock.now + timeout
            next_end = min((r.ends for n in self.nodes for r in n.running.values()), default=float("inf"))
            next_at = self._at[0][0] if self._at else float("inf")
            self.clock.now = max(self.clock.now, min(target, next_end, next_at))
            while self._at and self._at[0][0] <= self.clock.now:
                self._at.pop(0)[2](self)
            for node in self.nodes:
                for task_id, run in sorted(node.running.items(), key=lambda kv: kv[1].ends):
                    if run.ends <= self.clock.now:
                        self._end(node, task_id, run.exit_code)
        return self._collect()

    def silent_nodes(self, now: float) -> list[int]:
        silenced, self._silenced = self._silenced, []
        return silenced

    def forget(self, node: int) -> None:
        pass

    def shutdown(self, grace: float, exit_status: int) -> list[tuple[int, Ended]]:
        """Stop every node: tasks that end within ``grace`` end as planned, the others die of SIGTERM."""
        assert not self.shut_down, "shut down twice"
        self.shut_down = True
        out: list[tuple[int, Ended]] = [(n.index, e) for n in self.nodes for e in n.outbox]
        limit = self.clock.now + grace
        for node in self.nodes:
            node.outbox.clear()
            node.behind.clear()  # the standbys are dropped
            for task_id, run in sorted(node.running.items()):
                code = run.exit_code if run.ends <= limit else self.grace_ends.get(task_id, -signal.SIGTERM)
                runtime = min(run.ends, limit) - run.started
                out.append((node.index, Ended(task_id, code, EPOCH + run.started, runtime)))
            node.running.clear()
        return out

    def add_wake_fd(self, fd: int) -> None:
        pass

    def close(self) -> None:
        pass

    # -- the nodes ------------------------------------------------------------------------
    def _pending(self) -> bool:
        return any(n.outbox or n.retracted for n in self.nodes) or bool(self.signalled)

    def _collect(self) -> list[tuple[int, Message]]:
        out: list[tuple[int, Message]] = [(node, Signalled(signum, node)) for node, signum in self.signalled]
        self.signalled.clear()
        for node in self.nodes:
            if node.outbox or node.retracted:
                out.append((node.index, Completions(tuple(node.outbox), tuple(node.retracted))))
                node.outbox.clear()
                node.retracted.clear()
        return out

    def _start(self, node: FakeNode, item: StartRequest) -> None:
        now = self.clock.now
        if self.unwritable_from is not None and now >= self.unwritable_from:
            why = f"/work/out{item.task_id}: Disk quota exceeded"
            node.outbox.append(Ended(item.task_id, 127, EPOCH + now, 0.0, not_started=why))
            follower = node.behind.pop(item.task_id, None)
            if follower is not None:  # nothing runs ahead of it: the node starts it at once
                self._start(node, follower)
            return
        attempt = self.attempts.get(item.task_id, 0)
        self.attempts[item.task_id] = attempt + 1
        runtime = _per_attempt(self.runtimes.get(item.task_id, 1.0), attempt)
        code = _per_attempt(self.exits.get(item.task_id, 0), attempt)
        if node.index in self.broken:  # a missing file system, a broken GPU: everything fails at once
            code, runtime = self.broken[node.index]
        node.running[item.task_id] = Running(item, now, now + runtime, code)

    def _end(self, node: FakeNode, task_id: int, exit_code: int) -> None:
        run = node.running.pop(task_id)
        node.outbox.append(Ended(task_id, exit_code, EPOCH + run.started, run.ends - run.started))
        follower = node.behind.pop(task_id, None)
        if follower is not None:  # the node starts it before it reports the end
            self._start(node, follower)


def _per_attempt(value, attempt: int):
    if isinstance(value, list):
        return value[min(attempt, len(value) - 1)]
    return value


@dataclass
class RunRecord:
    """What a run left: its outcome, the state on disk, the joblog, the statistics, the trace."""

    outcome: Outcome
    ledger: Ledger  # the queuestate as a resume reads it
    journal: list[str]  # every record journaled in the run (the journal starts over at each snapshot)
    replayed: Ledger  # the last snapshot with its journal replayed: what a kill -9 at the end would leave
    joblog: list[dict[str, str]]
    statistics: Statistics
    trace: str
    latencies: list[float]

    def states(self) -> dict[int, str]:
        return {record.id: record.state for record in self.ledger}

    def rows_of(self, task_id: int) -> list[dict[str, str]]:
        return [row for row in self.joblog if row["id"] == str(task_id)]


def run_sweep(
    workdir: Path,
    cluster: FakeCluster,
    tasks: Iterable[Task],
    *,
    retries: int = 0,
    standby: bool = True,
    start_interval: float | None = None,
    stop: StopRequest | None = None,
    delay: float = 1.0,
    grace: float = 2.0,
    trace_hosts: bool = True,
    extra: Iterable[Observer] = (),
    ledger: Ledger | None = None,
) -> RunRecord:
    """One run of ``tasks`` on ``cluster``, as ``rank0.py`` wires it, with the fakes' clock
    (``ledger``: the one the state store keeps, when the test wants to watch it)."""
    tasks = list(tasks)
    ledger = Ledger(tasks) if ledger is None else ledger
    state_path = workdir / "queuestate"
    meta = StateMeta(commandlines="<integration test>", sha256="0" * 64, cores="1")
    hellos = cluster.hellos()
    nodes = nodes_from_hellos(hellos)
    clock = cluster.clock
    store = StateStore(state_path, ledger, meta, CoresSpec("fixed", 1), fsync_interval=delay, nodes=nodes)
    store.open(clock.wall())
    journaled = _keep_journal_records(store, journal_path(state_path))
    log = Joblog(workdir / "joblog", nodes)
    statistics = FinalStatistics(ledger, sum(hello.cores for _, hello in hellos), nodes)
    latencies = DispatchLatencies()
    trace = io.StringIO()
    observers = [store, log, statistics, latencies, Trace(trace, ledger, nodes, delay, trace_hosts), *extra]
    master = Master(
        Scheduler(tasks, retries=retries, standby=standby, start_interval=start_interval),
        cluster,
        nodes,
        observers,
        delay=delay,
        grace=grace,
        stop=stop or StopRequest(),
        paced=start_interval is not None,
        clock=clock.monotonic,
        wall_clock=clock.wall,
    )
    outcome = master.run()
    records = journaled + journal_path(state_path).read_text().split("\n")[1:-1]
    replayed = _replayed(workdir, state_path.read_text(), journal_path(state_path).read_text())
    close_observers(observers, clock.wall(), outcome.elapsed)
    assert statistics.result is not None
    return RunRecord(
        outcome,
        load_state(state_path, CoresSpec("fixed", 1)).ledger,
        records,
        replayed,
        joblog.read(workdir / "joblog"),
        statistics.result,
        trace.getvalue(),
        latencies.values,
    )


def _keep_journal_records(store: StateStore, path: Path) -> list[str]:
    """The records of the journal kept as it starts over at each snapshot (the test sees them all)."""
    kept: list[str] = []
    writer = store._journal
    restart = writer.restart

    def keeping(run: str) -> None:
        kept.extend(path.read_text().split("\n")[1:-1])
        restart(run)

    writer.restart = keeping
    return kept


def _replayed(workdir: Path, snapshot: str, journal_text: str) -> Ledger:
    """The ledger a resume would read had the launcher been killed now: the snapshot + its journal."""
    crashed = workdir / "crashed"
    crashed.mkdir()
    (crashed / "queuestate").write_text(snapshot)
    (crashed / "queuestate.journal").write_text(journal_text)
    loaded = load_state(crashed / "queuestate", CoresSpec("fixed", 1))
    assert journal.HEADER in journal_text
    return loaded.ledger
