"""Dispatch at thousands of emulated cores, and what idle ranks cost.

    python benchmarks/dispatch.py                 # 65 ranks x 64 cores, 20,000 `true` tasks, vs xargs -P 2
    python benchmarks/dispatch.py --tasks 5000 --ranks 17 --nodes 16
    python benchmarks/dispatch.py --dir /dev/shm     # the workdirs on tmpfs (default: the temp folder)
    python benchmarks/dispatch.py --trace runs/trace  # each report followed to rank 0's answer

Four figures, all measured in the same run on this machine:

1. Throughput: ``mpiexec -n 65 python -m mpilauncher`` with 64 emulated nodes
   of 64 cores (4,096 cores) runs N tasks that each run ``true``; next to it
   ``xargs -P <real cores>`` runs the same lines.  Forking is the bound here,
   so the ratio is the figure (target: >= 0.9 of xargs).
2. Where the CPU goes, in microseconds a task: rank 0, the agent ranks, their
   executor processes, and the tasks themselves (the joblog's user and sys),
   next to everything xargs ran; the master's CPU per task and
   the dispatch latency, from the master's decision to the agent's process
   start, p50 and p99 (for a standby start, sent ahead behind a running
   task: from that task's end to its own start, the time its cores idled).
   The CPU each rank spends before the run (interpreter, imports) and in
   MPI_Init is printed apart: a rank spins in MPI_Init until the last rank
   arrives, so on an oversubscribed host that is the start-up's, not dispatch's.
   Beside it, how long rank 0 and an agent rank waited, runnable, for a CPU
   (/proc/self/schedstat): on 2 CPUs shared by 130 processes, most of the run
   for rank 0.  With ``--trace FOLDER`` each agent report is followed to rank
   0's answer (benchkit/trace.py), and a table a run says where that time went.
3. Start-up: from the command to the first task start (the joblog's earliest
   start), next to an MPI hello-world at the same rank count (mpi4py: Init, a
   barrier, Finalize) run in the same session (target: at most twice as long).
4. Idle cost: with one long task running, the CPU share of an idle agent rank
   and of a parked rank, read from /proc (target: each below 2% of a core).

The inner run (``--inner``) is this same script started under mpiexec: every
rank calls :func:`mpilauncher.launch.run`, rank 0 writes its figures as JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchkit.machine import checkout_env, compile_checkout, file_create_cost, filesystem_of
from benchkit.processes import TAG_VARIABLE, new_tag, tagged

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def inner(args: argparse.Namespace) -> int:
    from mpilauncher.config import make_config
    from mpilauncher.launch import run

    config = make_config(
        args.commandlines,
        workdir=args.workdir,
        queuestate=args.queuestate,
        cores_per_node=args.cores,
        emulate_nodes=args.nodes,
    )
    config.print_statistics = False
    # MPI_Init apart: under oversubscription a rank spins in it until the last rank arrives, so its CPU
    # is the job's start-up (as for the hello-world), not dispatch; run() finds MPI started.
    from mpilauncher.transport.mpi import world

    before_init = resource.getrusage(resource.RUSAGE_SELF)
    world()
    init = cpu_seconds(resource.getrusage(resource.RUSAGE_SELF)) - cpu_seconds(before_init)
    with open(args.commandlines, "rb") as lines:
        tally = MessageTally(sum(1 for _ in lines))
    tally.install()
    rank = os.environ.get("PMI_RANK", "0")
    tracer = None
    if args.trace:
        from benchkit.trace import Tracer

        tracer = Tracer(Path(args.trace), int(rank))
        tracer.install()
    cpu0 = resource.getrusage(resource.RUSAGE_SELF)
    waited0 = runqueue_wait()
    wall0 = time.perf_counter()
    result = run(config)
    wall = time.perf_counter() - wall0
    waited = runqueue_wait() - waited0
    cpu = cpu_seconds(resource.getrusage(resource.RUSAGE_SELF)) - cpu_seconds(cpu0)
    if tracer is not None:
        tracer.write()
    children = resource.getrusage(resource.RUSAGE_CHILDREN)  # an agent's executors, and their tasks
    used = {
        "self": cpu, "children": cpu_seconds(children), "init": init, "before": cpu_seconds(before_init),
        "waited": waited,
    }  # fmt: skip
    Path(f"{args.json}.cpu{rank}").write_text(json.dumps(used))
    if result.statistics is not None:
        lat = sorted(result.dispatch_latencies)
        figures = {
            "tasks": result.statistics.completed + result.statistics.aborted,
            "completed": result.statistics.completed,
            "pool": result.statistics.pool_size,
            "launcher_seconds": result.statistics.total_time,
            "wall_seconds": wall,
            "master_cpu_seconds": cpu,
            "latency_p50_ms": 1000 * lat[len(lat) // 2] if lat else None,
            "latency_p99_ms": 1000 * lat[min(len(lat) - 1, int(len(lat) * 0.99))] if lat else None,
            "messages": tally.figures(),
        }
        Path(args.json).write_text(json.dumps(figures))
    return result.exit_status


class MessageTally:
    """Rank 0's messages to the other nodes' agents and their reports, counted by wrapping its transport:
    which regime a run fell into (benchmarks/README.md, "its two regimes"), read from the run itself.
    A message or report of one item is the fragmented regime's: a wake-up of rank 0, an agent and
    an executor for a single task.  The reports of one end are also counted by fifth of the sweep
    (by the ends reported before them): where they come says what they cost.  In the last fifth
    of 20,000 tasks on 4,096 cores nothing is queued any more, and a report starts nothing."""

    def __init__(self, tasks: int) -> None:
        self.tasks = max(1, tasks)
        self.messages = self.starts = self.single_starts = 0
        self.reports = self.ends = self.single_ends = 0
        self.single_by_fifth = [0] * 5

    def install(self) -> None:
        from mpilauncher.protocol import Completions, StartTasks
        from mpilauncher.transport.local import LOCAL_NODE
        from mpilauncher.transport.mpi import MasterTransport

        send, receive = MasterTransport.send, MasterTransport.receive

        def counted_send(transport, node, message):
            if node != LOCAL_NODE and isinstance(message, StartTasks) and message.items:
                self.messages += 1
                self.starts += len(message.items)
                self.single_starts += len(message.items) == 1
            return send(transport, node, message)

        def counted_receive(transport, timeout):
            got = receive(transport, timeout)
            for node, message in got:
                if node != LOCAL_NODE and isinstance(message, Completions) and message.items:
                    self.reports += 1
                    if len(message.items) == 1:
                        self.single_ends += 1
                        self.single_by_fifth[min(4, self.ends * 5 // self.tasks)] += 1
                    self.ends += len(message.items)
            return got

        MasterTransport.send, MasterTransport.receive = counted_send, counted_receive

    def figures(self) -> dict:
        return {
            "start_messages": self.messages, "starts": self.starts, "one_start_messages": self.single_starts,
            "reports": self.reports, "ends": self.ends, "one_end_reports": self.single_ends,
            "one_end_reports_by_fifth": self.single_by_fifth,
        }  # fmt: skip


def cpu_seconds(usage: resource.struct_rusage) -> float:
    return usage.ru_utime + usage.ru_stime


def runqueue_wait() -> float:
    """Seconds this process's main thread has waited, runnable, for a CPU: the second field of
    /proc/self/schedstat (0 where the kernel keeps no such count)."""
    try:
        return int(Path("/proc/self/schedstat").read_text().split()[1]) / 1e9
    except (OSError, IndexError, ValueError):
        return 0.0


def xargs_rate(lines_file: Path, tasks: int, slots: int) -> tuple[float, float]:
    """xargs' tasks a second, and the CPU seconds a task of everything it ran (xargs, sh, the task)."""
    cpu0 = cpu_seconds(resource.getrusage(resource.RUSAGE_CHILDREN))
    began = time.perf_counter()
    with open(lines_file) as lines:
        subprocess.run(["xargs", "-d", "\n", "-P", str(slots), "-n", "1", "sh", "-c"], stdin=lines, check=True)
    rate = tasks / (time.perf_counter() - began)
    return rate, (cpu_seconds(resource.getrusage(resource.RUSAGE_CHILDREN)) - cpu0) / tasks


def rank_figures(figures_file: Path, ranks: int) -> list[dict]:
    """What each rank of the inner run wrote of its own CPU and waits (``<figures>.cpu<rank>``), by rank."""
    return [json.loads(Path(f"{figures_file}.cpu{rank}").read_text()) for rank in range(ranks)]


def cpu_split(used: list[dict], rows: list[list[str]], tasks: int) -> dict:
    """Where the CPU went, in microseconds a task: rank 0, the agent ranks, their executor processes,
    and the tasks themselves (``sh`` and what it ran, from the joblog's user and sys columns)."""
    user, system = rows[0].index("user"), rows[0].index("sys")
    in_tasks = sum(float(row[user]) + float(row[system]) for row in rows[1:] if row[user] != "-")
    children = sum(u["children"] for u in used)
    per_task = {
        "master": used[0]["self"],  # rank 0 (with a node of its own: its agent too)
        "agents": sum(u["self"] for u in used[1:]),
        "executors": children - in_tasks,
        "tasks": in_tasks,
    }
    return {name: 1e6 * seconds / tasks for name, seconds in per_task.items()}


def startup_cpu(used: list[dict]) -> dict:
    """CPU milliseconds a rank before the run (the interpreter and the imports) and in MPI_Init, mean
    over the ranks: what the start-up costs, apart from the CPU a task above."""
    return {
        name: 1000 * statistics.mean(u[key] for u in used)
        for name, key in (("imports", "before"), ("MPI_Init", "init"))
    }


def launcher_rate(
    work: Path, lines_file: Path, ranks: int, nodes: int, cores: int, run: int, trace: Path | None = None
) -> dict:
    out = work / f"figures{run}.json"
    cmd = [
        "mpiexec", "-n", str(ranks), sys.executable, __file__, "--inner", "--commandlines", str(lines_file),
        "--workdir", str(work / f"w{run}"), "--queuestate", str(work / f"qs{run}"), "--cores", str(cores),
        "--nodes", str(nodes), "--json", str(out),
    ]  # fmt: skip
    if trace is not None:
        cmd += ["--trace", str(trace)]
    began, began_epoch = time.perf_counter(), time.time()
    subprocess.run(cmd, check=True, cwd=work)
    figures = json.loads(out.read_text())
    figures["command_seconds"] = time.perf_counter() - began
    figures["rate"] = figures["tasks"] / figures["launcher_seconds"]
    rows = [line.split("\t") for line in (work / f"w{run}" / "joblog").read_text().splitlines()]
    figures["first_start_seconds"] = first_start(rows) - began_epoch
    used = rank_figures(out, ranks)
    figures["cpu_us_a_task"] = cpu_split(used, rows, figures["tasks"])
    figures["startup_cpu_ms_a_rank"] = startup_cpu(used)
    waited = [u["waited"] for u in used]
    figures["runqueue_wait_seconds"] = {"master": waited[0], "agent_mean": statistics.mean(waited[1:] or [0.0])}
    shutil.rmtree(work / f"w{run}", ignore_errors=True)
    return figures


def first_start(rows: list[list[str]]) -> float:
    """The earliest task start (seconds since the epoch) in a joblog's rows (its ``start`` column)."""
    column = rows[0].index("start")
    return min(float(row[column]) for row in rows[1:])


def hello_seconds(ranks: int, repeat: int = 3) -> float:
    """The best of ``repeat`` runs of an MPI hello-world at ``ranks`` ranks (mpi4py: Init, a barrier,
    Finalize), command to exit: what any MPI program pays before it does anything."""
    argv = ["mpiexec", "-n", str(ranks), sys.executable, "-c", "from mpi4py import MPI; MPI.COMM_WORLD.Barrier()"]
    best = float("inf")
    for _ in range(repeat):
        began = time.perf_counter()
        subprocess.run(argv, check=True, stdin=subprocess.DEVNULL)
        best = min(best, time.perf_counter() - began)
    return best


def cpu_ticks(pid: int) -> int:
    """The CPU ``pid`` has used so far (utime + stime), in clock ticks."""
    from mpilauncher.procfs import stat_fields  # (this checkout's: see sys.path above)

    fields = stat_fields(pid)
    if fields is None:
        raise ProcessLookupError(f"no process {pid}")
    return int(fields[11]) + int(fields[12])


def rank_pids(marker: str) -> dict[int, int]:
    ranks = {}
    for pid, env in tagged(marker).items():
        rank = [e for e in env if e.startswith(b"PMI_RANK=")]
        try:
            if rank and b"python" in Path(f"/proc/{pid}/cmdline").read_bytes():
                ranks[int(rank[0].split(b"=")[1])] = pid
        except OSError:
            continue
    return ranks


def idle_cost(work: Path, seconds: float = 4.0) -> dict:
    """6 ranks as 3 nodes: rank 0 runs one long task; ranks 2 and 4 are idle agents, 1, 3, 5 parked."""
    (work / "long").write_text("sleep 8\n")
    marker = new_tag()
    env = {**checkout_env(ROOT), TAG_VARIABLE: marker}  # (this checkout's, as the inner runs: not what is installed)
    cmd = [
        "mpiexec", "-n", "6", sys.executable, "-m", "mpilauncher", "long", "--emulate-nodes", "3",
        "--cores-per-node", "1", "--workdir", "widle", "--queuestate", "qsidle",
    ]  # fmt: skip
    proc = subprocess.Popen(cmd, cwd=work, env=env, stdout=subprocess.DEVNULL)
    time.sleep(2.0)
    pids = rank_pids(marker)
    before = {r: cpu_ticks(p) for r, p in pids.items()}
    time.sleep(seconds)
    after = {r: cpu_ticks(p) for r, p in pids.items()}
    status = proc.wait(timeout=60)
    if status != 0 or not pids:
        raise SystemExit(f"idle cost: the launcher's run ended with status {status}, {len(pids)} ranks found")
    tick = os.sysconf("SC_CLK_TCK")
    share = {r: 100.0 * (after[r] - before[r]) / tick / seconds for r in before}
    return {
        "master_with_one_task_percent": share.get(0),
        "idle_agent_percent": max(share.get(2, 0), share.get(4, 0)),
        "parked_percent": max(share.get(1, 0), share.get(3, 0), share.get(5, 0)),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tasks", type=int, default=20_000)
    parser.add_argument("--ranks", type=int, default=65)
    parser.add_argument("--nodes", type=int, default=64, help="emulated nodes")
    parser.add_argument("--cores", type=int, default=64, help="cores per emulated node")
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--json")
    parser.add_argument(
        "--dir", default=None, help="where the workdirs go (default: the temp folder); its file system is printed"
    )
    parser.add_argument(
        "--trace",
        metavar="FOLDER",
        help="follow every agent report to its answer and keep each run's events in FOLDER/run<N>"
        " (benchkit/trace.py); a summary a run is printed",
    )
    parser.add_argument("--inner", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--commandlines", help=argparse.SUPPRESS)
    parser.add_argument("--workdir", help=argparse.SUPPRESS)
    parser.add_argument("--queuestate", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.inner:
        return inner(args)

    compile_checkout(ROOT)  # every rank imports the checkout: compiled as an install would be
    slots = len(os.sched_getaffinity(0))
    print(f"# dispatch benchmark: Python {platform.python_version()}, {platform.machine()}, {slots} real cores")
    print(
        f"# mpilauncher: mpiexec -n {args.ranks}, {args.nodes} emulated nodes x {args.cores} cores "
        f"= {args.nodes * args.cores:,} cores; {args.tasks:,} tasks of `true`; peer: xargs -P {slots}"
    )
    with tempfile.TemporaryDirectory(prefix="mpl-dispatch-", dir=args.dir) as tmp:
        work = Path(tmp).resolve()
        print(f"# workdirs in {work}: {filesystem_of(work)}; a create there {file_create_cost(work):.0f} us")
        lines = work / "commandlines"
        lines.write_text("true\n" * args.tasks)
        peer, ours = [], []
        for run in range(args.repeat):
            rate, xargs_cpu = xargs_rate(lines, args.tasks, slots)
            peer.append(rate)
            trace = Path(args.trace).resolve() / f"run{run}" if args.trace else None
            ours.append(launcher_rate(work, lines, args.ranks, args.nodes, args.cores, run, trace))
            print(
                f"run {run}: xargs {peer[-1]:,.0f} tasks/s; mpilauncher {ours[-1]['rate']:,.0f} tasks/s "
                f"({ours[-1]['launcher_seconds']:.2f} s in the launcher, "
                f"{ours[-1]['command_seconds']:.2f} s with MPI start-up)",
                flush=True,
            )
            split = ours[-1]["cpu_us_a_task"]
            print(
                f"  CPU a task: xargs {1e6 * xargs_cpu:.0f} us in all; mpilauncher {sum(split.values()):.0f} us: "
                + ", ".join(f"{name} {us:.0f}" for name, us in split.items()),
                flush=True,
            )
            tally = ours[-1]["messages"]
            print(
                f"  rank 0 and the other nodes: {tally['start_messages']:,} start messages"
                f" ({tally['starts'] / max(1, tally['start_messages']):.1f} starts each,"
                f" {tally['one_start_messages']:,} of one), {tally['reports']:,} reports"
                f" ({tally['ends'] / max(1, tally['reports']):.1f} ends each, {tally['one_end_reports']:,} of one;"
                f" by fifth of the sweep {' / '.join(map(str, tally['one_end_reports_by_fifth']))})",
                flush=True,
            )
            start = ours[-1]["startup_cpu_ms_a_rank"]
            print(
                f"  start-up CPU a rank (not in the above): interpreter and imports {start['imports']:.0f} ms,"
                f" MPI_Init {start['MPI_Init']:.0f} ms (a rank spins there until the last one arrives)",
                flush=True,
            )
            waited = ours[-1]["runqueue_wait_seconds"]
            print(
                f"  waiting for a CPU while runnable: rank 0 {waited['master']:.2f} s of the launcher's"
                f" {ours[-1]['launcher_seconds']:.2f} s, an agent rank {waited['agent_mean']:.2f} s (mean)",
                flush=True,
            )
            if trace is not None:
                from benchkit.trace import summarise

                print(summarise(trace), flush=True)
        best = max(ours, key=lambda f: f["rate"])
        hello = hello_seconds(args.ranks)
        idle = idle_cost(work)
    rate_ratio = best["rate"] / max(peer)
    median_ratio = statistics.median(f["rate"] for f in ours) / statistics.median(peer)
    print(f"throughput: mpilauncher {best['rate']:,.0f} tasks/s, xargs {max(peer):,.0f} tasks/s (best of each)")
    print(f"ratio mpilauncher/xargs: best {rate_ratio:.2f}, median {median_ratio:.2f}  (target: >= 0.90)")
    print(
        f"master CPU per task: {1e6 * best['master_cpu_seconds'] / best['tasks']:.0f} us "
        f"({best['master_cpu_seconds']:.2f} s for {best['tasks']:,} tasks)"
    )
    print(
        f"dispatch latency (decision -> process start): p50 {best['latency_p50_ms']:.2f} ms, "
        f"p99 {best['latency_p99_ms']:.2f} ms"
    )
    first = min(f["first_start_seconds"] for f in ours)
    print(
        f"start-up at {args.ranks} ranks: first task started {first:.2f} s after the command (best run); an MPI"
        f" hello-world at {args.ranks} ranks takes {hello:.2f} s to its exit: {first / hello:.2f} x  (target: <= 2)"
    )
    print(
        f"idle cost: idle agent {idle['idle_agent_percent']:.2f}% of a core, parked rank "
        f"{idle['parked_percent']:.2f}%, master with one running task {idle['master_with_one_task_percent']:.2f}%"
        "  (target: < 2%)"
    )
    if args.json:
        Path(args.json).write_text(
            json.dumps({"runs": ours, "xargs": peer, "idle": idle, "hello_seconds": hello}, indent=2)
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
