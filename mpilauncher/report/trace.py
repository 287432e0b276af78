"""The debug trace: a ``tick N`` block every ``delay`` seconds, as PyLauncher prints it.

``debug="job"`` prints the queue (completed / aborted / queued / running
task ranges); ``"host"`` adds, per node, which tasks run on which cores.
"""

from __future__ import annotations

from collections.abc import Mapping

from mpilauncher.core.ledger import COMPLETED, FAILED, QUEUED, RUNNING, Ledger
from mpilauncher.core.ranges import compress

#: PyLauncher's debug words and what each does here (None: nothing; accepted so scripts run unchanged).
#: As in PyLauncher, a word counts wherever it occurs in the debug string: "jobs" means job.
DEBUG_WORDS: dict[str, str | None] = {
    "job": "the trace: a `tick N` block with the queue every `delay` seconds",
    "host": "the trace, plus each node's busy cores and which task runs on which",
    "queue": "the trace (as `job`)",
    "task": None,
    "exec": None,
    "command": None,
    "cmd": None,
    "ssh": None,
}
KNOWN_DEBUG = frozenset(DEBUG_WORDS)


def tick_block(
    tick: int,
    ledger: Ledger,
    show_hosts: bool,
    placements: Mapping[int, tuple[str, tuple[int, ...], tuple[int, ...]]] | None = None,
    node_cores: Mapping[str, int] | None = None,
) -> str:
    """One trace block.  ``placements`` maps running task ids to (node, core slots, bound CPUs or ())."""
    lines = [f"tick {tick}", "Queue:", *queue_lines(ledger)]
    if show_hosts:
        lines.append("Hosts:")
        by_node: dict[str, list] = {name: [] for name in (node_cores or {})}
        for task_id, (node, cores, cpus) in (placements or {}).items():
            by_node.setdefault(node, []).append((task_id, cores, cpus))
        for node, tasks in by_node.items():
            busy = len({core for _, c, _ in tasks for core in c})  # GPU tasks may share a core
            total = (node_cores or {}).get(node, busy)
            where = " ".join(_placement(tid, c, cpus) for tid, c, cpus in sorted(tasks))
            lines.append(f"{node}: {busy}/{total} cores busy: {where}".rstrip())
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


def _placement(task_id: int, cores: tuple[int, ...], cpus: tuple[int, ...]) -> str:
    """``45@0-3`` (task@core slots), plus ``:cpu4-7`` when bound to CPUs numbered otherwise."""
    text = f"{task_id}@{compress(cores, ',')}"
    if cpus and cpus != cores:
        text += f":cpu{compress(cpus, ',')}"
    return text
