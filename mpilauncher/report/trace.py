"""The debug trace: a ``tick N`` block every ``delay`` seconds, as PyLauncher prints it.

``debug="job"`` prints the queue (completed / aborted / queued / running
task ranges); ``"host"`` adds, per node, which tasks run on which cores.
:class:`Trace` is an observer of the scheduler's facts: the queue comes from
the ledger the state store keeps from them, where tasks run from the starts
and ends themselves.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TextIO

from mpilauncher.core.events import (
    NodeBackInUse,
    NodeFact,
    NodeOutOfUse,
    NodeSuspended,
    Requeued,
    Retried,
    Start,
    TaskEnded,
)
from mpilauncher.core.ledger import COMPLETED, FAILED, QUEUED, RUNNING, Ledger
from mpilauncher.core.nodes import Node
from mpilauncher.core.observer import Observer
from mpilauncher.core.ranges import compress


class Trace(Observer):
    """Prints a tick block to ``out`` every ``delay`` seconds of the run (the first at once)."""

    def __init__(
        self, out: TextIO, ledger: Ledger, nodes: Mapping[int, Node], delay: float, show_hosts: bool = False
    ) -> None:
        self.out, self.ledger, self.nodes, self.delay, self.show_hosts = out, ledger, nodes, delay, show_hosts
        self._tick = 0
        self._next = 0.0  # the run's elapsed time of the next block
        self._running: dict[int, Start] = {}  # where each task runs (show_hosts only)
        self._host_notes: dict[str, str] = {}  # host -> "out of use" / "suspect" (show_hosts only)
        self._host_cores: dict[str, int] = {}  # host -> core count
        for node in nodes.values():  # in index order; a name twice adds up (as the agents' hellos do)
            self._host_cores[node.name] = self._host_cores.get(node.name, 0) + node.core_count

    def on_started(self, start: Start, at: float) -> None:
        if self.show_hosts:
            self._running[start.task_id] = start

    def on_ended(self, ended: TaskEnded) -> None:
        self._running.pop(ended.task_id, None)

    def on_requeued(self, requeued: Requeued | Retried) -> None:
        self._running.pop(requeued.task_id, None)

    def on_node(self, fact: NodeFact) -> None:
        name = self.nodes[fact.node].name
        if isinstance(fact, NodeSuspended):
            self._host_notes[name] = "suspect: no new task"
        elif isinstance(fact, NodeOutOfUse):
            self._host_notes[name] = "out of use"
        elif isinstance(fact, NodeBackInUse):
            self._host_notes.pop(name, None)

    def on_turn_end(self, wall: float, elapsed: float) -> float:
        if elapsed >= self._next:
            self._tick += 1
            self._next = elapsed + self.delay
            placements = None
            if self.show_hosts:
                placements = {}
                for tid, start in self._running.items():
                    node = self.nodes[start.node]
                    placements[tid] = (node.name, start.core_ids, node.cpus_of(start.core_ids))
            self.out.write(
                tick_block(self._tick, self.ledger, self.show_hosts, placements, self._host_cores, self._host_notes)
            )
            self.out.flush()
        return self._next


def tick_block(
    tick: int,
    ledger: Ledger,
    show_hosts: bool,
    placements: Mapping[int, tuple[str, tuple[int, ...], tuple[int, ...]]] | None = None,
    host_cores: Mapping[str, int] | None = None,
    host_notes: Mapping[str, str] | None = None,
) -> str:
    """One trace block.  ``placements`` maps running task ids to (host, core ids, bound CPUs or ());
    ``host_cores`` gives each host's core count, ``host_notes`` says which hosts take no new task
    (suspect, out of use)."""
    lines = [f"tick {tick}", "Queue:", *queue_lines(ledger)]
    if show_hosts:
        lines.append("Hosts:")
        by_host: dict[str, list] = {name: [] for name in (host_cores or {})}
        for task_id, (host, core_ids, cpus) in (placements or {}).items():
            by_host.setdefault(host, []).append((task_id, core_ids, cpus))
        for host, tasks in by_host.items():
            busy = len({core for _, c, _ in tasks for core in c})  # GPU tasks may share a core
            total = (host_cores or {}).get(host, busy)
            where = " ".join(_placement(tid, c, cpus) for tid, c, cpus in sorted(tasks))
            note = (host_notes or {}).get(host)
            state = f" ({note})" if note else ""
            lines.append(f"{host}: {busy}/{total} cores busy{state}: {where}".rstrip())
    return "\n".join(lines) + "\n"


def queue_lines(ledger: Ledger) -> list[str]:
    """PyLauncher's four queue lines: completed, aborted, queued and running task ranges."""
    ids: dict[str, list[int]] = {COMPLETED: [], FAILED: [], QUEUED: [], RUNNING: []}
    for rec in ledger:
        ids[rec.state].append(rec.id)
    return format_queue(ids[COMPLETED], ids[FAILED], ids[QUEUED], ids[RUNNING])


def format_queue(completed: list[int], aborted: list[int], queued: list[int], running: list[int]) -> list[str]:
    """The four lines for sorted task ids: ``completed  60 jobs: 0-44 47-48``..."""
    return [
        f"{label:<9} {len(ids):3d} jobs: {compress(ids)}"
        for label, ids in (("completed", completed), ("aborted", aborted), ("queued", queued), ("running", running))
    ]


def _placement(task_id: int, core_ids: tuple[int, ...], cpus: tuple[int, ...]) -> str:
    """``45@0-3`` (task@core slots), plus ``:cpu4-7`` when bound to CPUs numbered otherwise."""
    text = f"{task_id}@{compress(core_ids, ',')}"
    if cpus and cpus != core_ids:
        text += f":cpu{compress(cpus, ',')}"
    return text
