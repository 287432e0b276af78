"""Who kept a report waiting: each agent report of a dispatch run followed to the answer it got.

Why: at 64 emulated nodes on 2 CPUs a run of ``benchmarks/dispatch.py`` now and then falls into a
regime of one end a report (benchmarks/README.md, "its two regimes"), and the message counts say
only *that* it did.  This follows each report by name -- the ids of the tasks it carries -- from the
agent's send, to rank 0's receive, to rank 0's next start message for that node, to the agent's
receipt of it, so a run says whose latency grew: rank 0's (slow to probe, slow to answer) or the
agents' (slow to read what came).  All processes are on one host, so ``time.monotonic`` (the
system-wide CLOCK_MONOTONIC) is one clock for every rank.

The wrappers go on the classes of the checkout that every rank imports (as
``dispatch.MessageTally`` does), before the run: nothing in the launcher changes.  Each rank
writes its events to ``<folder>/rank<N>.json`` at the end; :func:`summarise` reads them.
"""

from __future__ import annotations

import json
import statistics
import time
from collections import defaultdict
from pathlib import Path

# Event kinds (the first field of each event; the second is the monotonic time):
REPORT = "P"  # agent: sent a report (ends, first ended id, urgent: a core had nothing to run, or a failure)
GOT = "G"  # agent: read a start message (starts, first started id, standbys among them)
RECEIVED = "R"  # rank 0: read a report (rank, ends, first ended id)
SENT = "S"  # rank 0: sent a start message (rank, starts, first started id)


class Tracer:
    """Records one rank's events; :meth:`install` wraps the transport (and on agents, the held ends)."""

    def __init__(self, folder: Path, rank: int) -> None:
        self.folder, self.rank = folder, rank
        self.events: list[tuple] = []

    def install(self) -> None:
        from mpilauncher.protocol import Completions, StartTasks
        from mpilauncher.runtime.serve import HeldEnds
        from mpilauncher.transport.local import LOCAL_NODE
        from mpilauncher.transport.mpi import MasterTransport, MpiAgentEndpoint

        events, clock = self.events, time.monotonic
        send, receive = MasterTransport.send, MasterTransport.receive
        messages = MpiAgentEndpoint.messages
        add, take = HeldEnds.add, HeldEnds.take
        urgent_held = [False]

        def traced_send(transport, node, message):
            if node != LOCAL_NODE and isinstance(message, StartTasks) and message.items:
                rank = transport.layout.agent_ranks[node]
                events.append((SENT, clock(), rank, len(message.items), message.items[0].task_id))
            return send(transport, node, message)

        def traced_receive(transport, timeout):
            got = receive(transport, timeout)
            now = clock()
            for node, message in got:
                if node != LOCAL_NODE and isinstance(message, Completions) and message.items:
                    rank = transport.layout.agent_ranks[node]
                    events.append((RECEIVED, now, rank, len(message.items), message.items[0].task_id))
            return got

        def traced_add(held, completions, now, urgent):
            urgent_held[0] |= bool(urgent and completions.items)
            return add(held, completions, now, urgent)

        def traced_take(held):
            taken = take(held)
            if taken.items:
                events.append((REPORT, clock(), len(taken.items), taken.items[0].task_id, urgent_held[0]))
            urgent_held[0] = False
            return taken

        def traced_messages(link):
            got = messages(link)
            now = clock()
            for message in got:
                if isinstance(message, StartTasks) and message.items:
                    standbys = sum(item.after is not None for item in message.items)
                    events.append((GOT, now, len(message.items), message.items[0].task_id, standbys))
            return got

        MasterTransport.send, MasterTransport.receive = traced_send, traced_receive
        MpiAgentEndpoint.messages = traced_messages
        HeldEnds.add, HeldEnds.take = traced_add, traced_take  # (a report goes out as take() returns)

    def write(self) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        (self.folder / f"rank{self.rank}.json").write_text(json.dumps(self.events))


def follow(folder: Path) -> list[dict]:
    """Every agent report of the run in ``folder``, with the times of its way there and back."""
    ranks = {int(p.stem[4:]): json.loads(p.read_text()) for p in folder.glob("rank*.json")}
    master = ranks.pop(0, [])
    received = {(e[2], e[4]): e[1] for e in master if e[0] == RECEIVED}
    sent_to: dict[int, list[tuple[float, int, int]]] = defaultdict(list)
    for e in master:
        if e[0] == SENT:
            sent_to[e[2]].append((e[1], e[3], e[4]))
    followed = []
    for rank, events in ranks.items():
        got = {e[3]: e[1] for e in events if e[0] == GOT}
        answers = sent_to.get(rank, [])
        cursor = 0
        for e in events:
            if e[0] != REPORT:
                continue
            row = {"rank": rank, "sent": e[1], "ends": e[2], "urgent": e[4]}
            t1 = received.get((rank, e[3]))
            if t1 is not None:
                row["received"] = t1
                while cursor < len(answers) and answers[cursor][0] < t1:
                    cursor += 1
                if cursor < len(answers):
                    row["answered"], row["starts"] = answers[cursor][0], answers[cursor][1]
                    row["read"] = got.get(answers[cursor][2])
            followed.append(row)
    followed.sort(key=lambda r: r["sent"])
    return followed


def _stage(rows: list[dict], begin: str, end: str) -> str:
    """p50 and p90 of the time from ``begin`` to ``end`` among ``rows`` that have both."""
    values = sorted(r[end] - r[begin] for r in rows if r.get(begin) is not None and r.get(end) is not None)
    if not values:
        return "-".center(19)
    return f"{1e3 * values[len(values) // 2]:7.2f} {1e3 * values[int(0.9 * len(values))]:7.2f} ms"


def summarise(folder: Path, slices: int = 10) -> str:
    """The run's reports in ``slices`` equal spans of its time: how many, how many ends each, how many
    urgent, and where the time between a report and the answer's reading went."""
    rows = follow(folder)
    if not rows:
        return f"{folder}: no reports traced"
    first, last = rows[0]["sent"], rows[-1]["sent"]
    span = max(1e-9, last - first) / slices
    lines = [
        f"{folder.name}: {len(rows):,} reports, {sum(r['ends'] for r in rows):,} ends",
        "  slice  reports  ends/rep  urgent%  to rank 0 (p50/p90)  rank 0 answers (p50/p90)  to agent (p50/p90)",
    ]
    for index in range(slices):
        part = [r for r in rows if index == min(slices - 1, int((r["sent"] - first) / span))]
        if part:
            lines.append(
                f"  {index:5d}  {len(part):7,d}  {statistics.mean(r['ends'] for r in part):8.1f}"
                f"  {100 * sum(r['urgent'] for r in part) / len(part):6.0f}%"
                f"  {_stage(part, 'sent', 'received')}  {_stage(part, 'received', 'answered'):>24}"
                f"  {_stage(part, 'answered', 'read'):>18}"
            )
    return "\n".join(lines)
