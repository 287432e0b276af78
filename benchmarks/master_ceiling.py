"""How many task ends one master can take a second: the ceiling of a single rank 0.

    python benchmarks/master_ceiling.py                      # 64 nodes x 64 cores, 200,000 tasks
    python benchmarks/master_ceiling.py --nodes 16 --tasks 50000 --workdir /dev/shm

The master, the scheduler and the observers a run has (the state store with its
journal and snapshots, the joblog, the final statistics, the dispatch latencies)
run as in a launch, in this process, on the real clocks; only the nodes are a
stand-in whose tasks end the moment they start (no process, no MPI).  So the
figure is rank 0's own cost per task, journal and joblog included: what decides
how many cores one master can keep busy with tasks of a given length
(cores = completions per second x task length; see benchmarks/README.md).

The stand-in's own time (taking the start messages, handing back the ends) is
measured and reported apart; "master alone" subtracts it.

Memory: how much the process's peak resident size grew over the first run (its task list,
ledger, scheduler and observers, from nothing to the last end), a task: the figure to compare
across ``--nodes`` for a master whose memory a task is flat in the number of nodes.  Only the
first run says it: the ones after it reuse what it freed.
"""

from __future__ import annotations

import argparse
import resource
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchkit.machine import peak_rss_bytes  # noqa: E402

from mpilauncher.core.ledger import Ledger  # noqa: E402
from mpilauncher.core.scheduler import Scheduler  # noqa: E402
from mpilauncher.core.stats import FinalStatistics  # noqa: E402
from mpilauncher.core.tasks import CoresSpec, Task  # noqa: E402
from mpilauncher.heap import young_collections_only  # noqa: E402
from mpilauncher.persistence.queuestate import StateMeta  # noqa: E402
from mpilauncher.persistence.store import StateStore  # noqa: E402
from mpilauncher.protocol import Completions, Ended, Hello, StartTasks  # noqa: E402
from mpilauncher.rank0 import close_observers  # noqa: E402
from mpilauncher.report.joblog import Joblog  # noqa: E402
from mpilauncher.report.latency import DispatchLatencies  # noqa: E402
from mpilauncher.runtime.master import Master, StopRequest, nodes_from_hellos  # noqa: E402


class InstantNodes:
    """A transport whose nodes end every task the moment it starts (exit 0, runtime 0)."""

    def __init__(self, nodes: int, cores: int) -> None:
        self.shape = (nodes, cores)
        self.outbox: list[list[Ended]] = [[] for _ in range(nodes)]
        self.retracted: list[list[int]] = [[] for _ in range(nodes)]
        self.spent = 0.0  # seconds of this stand-in's own work

    def hellos(self) -> list[tuple[int, Hello]]:
        nodes, cores = self.shape
        return [(i, Hello(f"n{i}", cores)) for i in range(nodes)]

    def setup(self, *args, **kwargs) -> None:
        pass

    def send(self, node: int, message) -> None:
        began = time.perf_counter()
        if isinstance(message, StartTasks):
            now = time.time()
            outbox = self.outbox[node]
            # A standby (``after``) starts when its predecessor ends: at once, here, behind it.
            outbox.extend(Ended(item.task_id, 0, now, 0.0) for item in message.items)
            self.retracted[node].extend(message.retract)
        self.spent += time.perf_counter() - began

    def receive(self, timeout: float) -> list:
        began = time.perf_counter()
        out = []
        for node, ended in enumerate(self.outbox):
            if ended or self.retracted[node]:
                out.append((node, Completions(tuple(ended), tuple(self.retracted[node]))))
                self.outbox[node] = []
                self.retracted[node] = []
        self.spent += time.perf_counter() - began
        return out

    def silent_nodes(self, now: float) -> list[int]:
        return []

    def forget(self, node: int) -> None:
        pass

    def shutdown(self, grace: float, exit_status: int) -> list:
        return []

    def add_wake_fd(self, fd: int) -> None:
        pass

    def close(self) -> None:
        pass


class HandleTimer:
    """Stands for the scheduler in the master and counts the seconds spent inside its ``handle``.

    The master reads nothing of the scheduler but what ``handle`` returns, so a stand-in that passes
    the call on splits rank 0's cost in two: the scheduling core, and everything around it (journal,
    joblog, statistics, the loop).  benchmarks/submasters.py needs the second part alone.  A wrapper,
    not a subclass: the Scheduler is kept within the 30 attributes CPython 3.11 keeps fast.
    """

    def __init__(self, scheduler: Scheduler) -> None:
        self.scheduler = scheduler
        self.spent = 0.0

    def handle(self, *events):
        began = time.perf_counter()
        try:
            return self.scheduler.handle(*events)
        finally:
            self.spent += time.perf_counter() - began


def run(nodes: int, cores: int, tasks: int, workdir: Path) -> dict[str, float]:
    """One master run over ``tasks`` instant tasks: its wall and CPU seconds, the stand-in nodes' own
    seconds (``stand_in``), the seconds inside the scheduler's ``handle`` (``scheduler``) and how many
    bytes the process's peak resident size grew from before the task list was made (``peak_growth``)."""
    peak_before = peak_rss_bytes()
    work = [Task(i, f"task {i}", 1, line=i + 1) for i in range(tasks)]
    ledger = Ledger(work)
    transport = InstantNodes(nodes, cores)
    hellos = transport.hellos()
    node_map = nodes_from_hellos(hellos)
    state_path = workdir / "queuestate"
    meta = StateMeta(commandlines="<master_ceiling>", sha256="0" * 64, cores="1")
    store = StateStore(state_path, ledger, meta, CoresSpec("fixed", 1), fsync_interval=1.0, nodes=node_map)
    store.open(time.time())
    statistics = FinalStatistics(ledger, nodes * cores, node_map)
    observers = [store, Joblog(workdir / "joblog", node_map), statistics, DispatchLatencies()]
    timer = HandleTimer(Scheduler(work, standby=True))
    master = Master(timer, transport, node_map, observers, delay=1.0, grace=0.0, stop=StopRequest())  # type: ignore[arg-type]
    cpu0 = resource.getrusage(resource.RUSAGE_SELF)
    began = time.perf_counter()
    with young_collections_only():  # as rank0.py runs the master
        outcome = master.run()
    close_observers(observers, time.time(), outcome.elapsed)
    wall = time.perf_counter() - began
    cpu1 = resource.getrusage(resource.RUSAGE_SELF)
    cpu = (cpu1.ru_utime - cpu0.ru_utime) + (cpu1.ru_stime - cpu0.ru_stime)
    assert statistics.result is not None and statistics.result.completed == tasks, "every task must complete"
    return {"wall": wall, "cpu": cpu, "stand_in": transport.spent, "scheduler": timer.spent,
            "peak_growth": peak_rss_bytes() - peak_before}  # fmt: skip


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--nodes", type=int, default=64)
    parser.add_argument("--cores", type=int, default=64, help="cores per node")
    parser.add_argument("--tasks", type=int, default=200_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--workdir", default=None, help="where the journal and joblog go (default: the temp folder)")
    args = parser.parse_args()
    print(f"# master alone: {args.nodes} nodes x {args.cores} cores, {args.tasks:,} tasks ending at once; "
          f"journal, snapshots, joblog and statistics written to {args.workdir or tempfile.gettempdir()}")  # fmt: skip
    best = None
    for attempt in range(args.repeat):
        with tempfile.TemporaryDirectory(prefix="mpl-ceiling-", dir=args.workdir) as scratch:
            figures = run(args.nodes, args.cores, args.tasks, Path(scratch))
        rate = args.tasks / figures["wall"]
        own = args.tasks / max(1e-9, figures["wall"] - figures["stand_in"])
        wall, cpu, stand_in = figures["wall"], figures["cpu"], figures["stand_in"]
        print(f"run {attempt + 1}: {rate:,.0f} completions/s ({wall:.2f} s, CPU {cpu:.2f} s); "
              f"master alone {own:,.0f}/s = {1e6 / own:.1f} us a task (stand-in {stand_in:.2f} s)")  # fmt: skip
        best = own if best is None else max(best, own)
        if attempt == 0:
            grown = figures["peak_growth"]
            print(f"  memory: the peak grew {grown / 2**20:.1f} MiB over this first run, {grown / args.tasks:.0f} bytes"
                  " a task (compare across --nodes: flat is the target)")  # fmt: skip
    assert best is not None
    print(f"best: {best:,.0f} completions/s, master alone (target: >= 50,000)")
    for length in (1, 10, 60, 600):
        print(f"  tasks of {length:>3} s: one master keeps up to {best * length:>12,.0f} cores busy")
    return 0


if __name__ == "__main__":
    sys.exit(main())
