"""The debug trace: a ``tick N`` block every ``delay`` seconds, as PyLauncher prints it.

``debug="job"`` prints the queue (completed / aborted / queued / running
task ranges); ``"host"`` adds, per node, which tasks run on which cores.
"""

from __future__ import annotations

from collections.abc import Mapping

from mpilauncher.core.ledger import COMPLETED, FAILED, QUEUED, RUNNING, Ledger
from mpilauncher.core.ranges import compress

#: PyLauncher's debug words; the ones without meaning here are accepted and ignored.
KNOWN_DEBUG = frozenset({"job", "host", "queue", "exec", "task", "ssh", "command"})


def tick_block(
    tick: int,
    ledger: Ledger,
    show_hosts: bool,
    placements: Mapping[int, tuple[str, tuple[int, ...]]] | None = None,
    node_cores: Mapping[str, int] | None = None,
) -> str:
    """One trace block.  ``placements`` maps running task ids to (node name, core ids)."""
    ids: dict[str, list[int]] = {COMPLETED: [], FAILED: [], QUEUED: [], RUNNING: []}
    for rec in ledger:
        ids[rec.state].append(rec.id)
    lines = [f"tick {tick}", "Queue:"]
    for label, state in (("completed", COMPLETED), ("aborted", FAILED), ("queued", QUEUED), ("running", RUNNING)):
        lines.append(f"{label:<9} {len(ids[state]):3d} jobs: {compress(ids[state])}")
    if show_hosts:
        lines.append("Hosts:")
        by_node: dict[str, list[tuple[int, tuple[int, ...]]]] = {name: [] for name in (node_cores or {})}
        for task_id, (node, cores) in (placements or {}).items():
            by_node.setdefault(node, []).append((task_id, cores))
        for node, tasks in by_node.items():
            busy = sum(len(c) for _, c in tasks)
            total = (node_cores or {}).get(node, busy)
            where = " ".join(f"{tid}@{compress(c).replace(' ', ',')}" for tid, c in sorted(tasks))
            lines.append(f"{node}: {busy}/{total} cores busy: {where}".rstrip())
    return "\n".join(lines) + "\n"
