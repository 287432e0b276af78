"""What standbys save and cost at a sweep's tail, with messages that take time.

``simulate.py`` measures the scheduling core's own cost with messages that arrive at
once.  Here every message between rank 0 and a node takes ``--latency`` seconds each
way (a cluster's network, or on an oversubscribed host the wait of a rank for a CPU),
and the figures are the sweep's own: its makespan against greedy list scheduling with
no latency at all (the bound no launcher beats without knowing the durations), the
cores' idle time a task beyond the bound's own, and the messages each way a task.  The real
:class:`~mpilauncher.core.scheduler.Scheduler` decides; the simulated nodes do what an
agent and its executors do: a start runs when it arrives, a standby waits behind the
task it names (or starts at once where that one has already ended), a retract takes back
a standby that has not started, and ends are reported as an agent reports them (one that
leaves every core of its node busy waits a moment, up to 20 ms and a tenth of its task's
runtime, to go with the next; any other goes at once, with what waited).  Rank 0 handles,
in one burst, the reports that arrive at the same instant.

    python benchmarks/tail.py                        # the default grid: 16 nodes x 16 cores, 5 rounds of tasks
    python benchmarks/tail.py --latency 0.001,0.02 --durations exponential --reserve off,1,0

Policies: standbys off, or sent while more than R rounds of tasks are queued (a round:
as many as run; ``--reserve``; the launcher's is ``STANDBY_RESERVE``, 1: its last rounds
start as cores free up).  A smaller reserve sends standbys further into the sweep's end,
which saves a round trip a task there and risks a task bound to a core behind a long one
while another core stands idle (what the idle-core retraction then undoes, at the price
of a message each way).
"""

from __future__ import annotations

import argparse
import heapq
import json
import random
import statistics
import sys
from collections import defaultdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchkit.workloads import list_schedule_makespan  # noqa: E402

from mpilauncher.core import scheduler as scheduler_module  # noqa: E402
from mpilauncher.core.events import AgentJoined, AllDone, Retract, Retracted, Start, TaskFinished  # noqa: E402
from mpilauncher.core.tasks import Task  # noqa: E402
from mpilauncher.protocol import Completions, Ended  # noqa: E402
from mpilauncher.runtime.serve import HeldEnds  # noqa: E402

#: The task lengths of the grid, seconds: each a function of a random generator.
DURATIONS = {
    "exponential": lambda rng: rng.expovariate(1.0) + 0.01,  # mean ~1 s, a long tail
    "uniform": lambda rng: rng.uniform(0.5, 2.0),  # W4's
    "short": lambda rng: rng.uniform(0.005, 0.015),  # a few ms: a round trip is most of a task
}


def durations_of(kind: str, tasks: int, seed: int) -> list[float]:
    rng = random.Random(seed)
    draw = DURATIONS[kind]
    return [draw(rng) for _ in range(tasks)]


def simulate(durations: list[float], nodes: int, cores: int, latency: float, reserve: float | None) -> dict:
    """One sweep; ``reserve`` None: no standbys at all."""
    before = scheduler_module.STANDBY_RESERVE
    scheduler_module.STANDBY_RESERVE = reserve if reserve is not None else before
    try:
        return _sweep(durations, nodes, cores, latency, standby=reserve is not None)
    finally:
        scheduler_module.STANDBY_RESERVE = before


def _sweep(durations: list[float], nodes: int, cores: int, latency: float, standby: bool) -> dict:
    scheduler = scheduler_module.Scheduler([Task(i, f"t{i}", 1) for i in range(len(durations))], standby=standby)
    queue: list[tuple[float, int, str, object]] = []  # (when, order, what, payload): the simulated clock
    order = 0
    running: dict[int, int] = {}  # task -> node, as the nodes see it
    ended: set[int] = set()
    behind: dict[int, int] = {}  # task -> the standby its node starts when it ends
    held: dict[int, int] = {}  # standby -> the task it waits behind
    busy = [0] * nodes  # tasks running on each node
    news = [HeldEnds() for _ in range(nodes)]  # what each node has not reported yet, held as its agent holds it
    counts = defaultdict(int)
    finished_at = 0.0
    all_done = False

    def push(when: float, what: str, payload: object) -> None:
        nonlocal order
        order += 1
        heapq.heappush(queue, (when, order, what, payload))

    def start(task_id: int, node: int, now: float) -> None:
        running[task_id] = node
        busy[node] += 1
        push(now + durations[task_id], "end", task_id)

    def report(node: int, news_now: Completions, now: float, urgent: bool) -> None:
        """As an agent does (runtime/serve.py): its HeldEnds says when the node's news goes."""
        pending = news[node]
        due = pending.due
        pending.add(news_now, now, urgent)
        if pending.due <= now:
            send(node, now)
        elif pending.due < due:
            push(pending.due, "due", node)

    def send(node: int, now: float) -> None:
        """The node's held news reaches rank 0 after ``latency``, as the master reads a report: retracts first."""
        counts["reports"] += 1
        sent = news[node].take()
        events = [Retracted(task_id) for task_id in sent.retracted]
        events += [TaskFinished(ended.task_id, ended.exit_code) for ended in sent.items]
        push(now + latency, "report", events)

    def decide(events: list, now: float) -> None:
        nonlocal all_done
        by_node: dict[int, list] = defaultdict(list)
        for action in scheduler.handle(*events):
            if isinstance(action, (Start, Retract)):
                by_node[action.node].append(action)
            elif isinstance(action, AllDone):
                all_done = True
        for node, actions in by_node.items():
            counts["messages to nodes"] += 1
            counts["standbys sent"] += sum(isinstance(a, Start) and a.after is not None for a in actions)
            counts["retracts sent"] += sum(isinstance(a, Retract) for a in actions)
            push(now + latency, "node", (node, actions))

    decide([AgentJoined(n, f"node{n}", cores) for n in range(nodes)], 0.0)
    while queue:
        now, _, what, payload = heapq.heappop(queue)
        if what == "end":
            task_id = payload
            node = running.pop(task_id)
            busy[node] -= 1
            ended.add(task_id)
            finished_at = now
            follower = behind.pop(task_id, None)
            if follower is not None:
                del held[follower]
                start(follower, node, now)
            runtime = durations[task_id]
            report(node, Completions((Ended(task_id, 0, now - runtime, runtime),)), now, busy[node] < cores)
        elif what == "due":  # (one of a batch sent since finds it gone, or a later batch not yet due)
            node = payload
            if news[node] and news[node].due <= now:
                send(node, now)
        elif what == "node":
            node, actions = payload
            for action in actions:
                if isinstance(action, Retract):
                    if action.task_id in held:
                        del behind[held.pop(action.task_id)]
                        report(node, Completions((), (action.task_id,)), now, urgent=True)
                elif action.after is not None and action.after in running:
                    behind[action.after], held[action.task_id] = action.task_id, action.after
                else:  # an ordinary start, or a standby whose task has already ended here: it starts now
                    start(action.task_id, node, now)
        else:  # reports reaching rank 0: those of the same instant in one burst
            burst = list(payload)
            while queue and queue[0][0] <= now and queue[0][2] == "report":
                burst.extend(heapq.heappop(queue)[3])
            decide(burst, now)
    assert all_done and len(ended) == len(durations), (all_done, len(ended))
    slots = nodes * cores
    tasks = len(durations)
    bound = list_schedule_makespan(durations, slots)
    return {
        "makespan": finished_at,
        "over_bound": finished_at / bound,
        "idle_ms_a_task": slots * (finished_at - bound) / tasks * 1e3,  # (the cores' idle time beyond the bound's)
        "messages_to_nodes_a_task": counts["messages to nodes"] / tasks,
        "reports_a_task": counts["reports"] / tasks,
        "standbys_a_task": counts["standbys sent"] / tasks,
        "retracts_a_task": counts["retracts sent"] / tasks,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--nodes", type=int, default=16)
    parser.add_argument("--cores", type=int, default=16, help="cores per node")
    parser.add_argument("--rounds", type=float, default=5.0, help="tasks: this many times the cores")
    parser.add_argument("--latency", default="0.001,0.01,0.05", help="seconds each way, comma-separated")
    parser.add_argument("--durations", default=",".join(DURATIONS), help=f"of: {', '.join(DURATIONS)}")
    parser.add_argument("--reserve", default="off,1,0.5,0", help="'off' (no standbys) or rounds, comma-separated")
    parser.add_argument("--seeds", type=int, default=3, help="sweeps of each cell (mean printed)")
    parser.add_argument("--json", help="also write the figures to this file")
    args = parser.parse_args()
    tasks = round(args.rounds * args.nodes * args.cores)
    print(f"# standbys at the tail: {args.nodes} nodes x {args.cores} cores, {tasks:,} tasks ({args.rounds:g} rounds),")
    print(f"# mean of {args.seeds} sweeps a cell; makespan over greedy list scheduling, no latency (lower is better)")
    header = "durations     latency  standbys      x bound  +idle ms/task  to nodes/task  reports/task  retracts/task"
    print(header)
    rows = []
    for kind in args.durations.split(","):
        for latency in (float(x) for x in args.latency.split(",")):
            for reserve_text in args.reserve.split(","):
                reserve = None if reserve_text == "off" else float(reserve_text)
                runs = [
                    simulate(durations_of(kind, tasks, seed), args.nodes, args.cores, latency, reserve)
                    for seed in range(1, args.seeds + 1)
                ]
                row = {key: statistics.fmean(run[key] for run in runs) for key in runs[0]}
                row.update(durations=kind, latency=latency, reserve=reserve_text)
                rows.append(row)
                policy = "off" if reserve is None else f"reserve {reserve_text}"
                print(
                    f"{kind:<12} {latency * 1e3:>6g} ms  {policy:<12} {row['over_bound']:>8.4f} "
                    f"{row['idle_ms_a_task']:>14.1f} {row['messages_to_nodes_a_task']:>14.3f} "
                    f"{row['reports_a_task']:>13.3f} {row['retracts_a_task']:>14.3f}",
                    flush=True,
                )
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
