"""``--debug task`` (PyLauncher's ``task``, ``exec``, ``cmd`` words): each task's start and end as it happens.

An observer of the scheduler's facts that writes a DEBUG line per start, end
and requeue through the launcher's logger (stderr), so a user who asked for
PyLauncher's task trace sees which task ran where, how it ended and how long
it took, as it happens; the joblog holds the same, a line per end, on disk.
"""

from __future__ import annotations

from collections.abc import Mapping

from mpilauncher import log
from mpilauncher.core.events import HeldBack, Requeued, Retried, Start, TaskEnded
from mpilauncher.core.nodes import Node
from mpilauncher.core.observer import Observer
from mpilauncher.core.ranges import compress


class TaskLog(Observer):
    """A DEBUG line per task start, end and requeue (see the module docstring)."""

    def __init__(self, nodes: Mapping[int, Node]) -> None:
        self.nodes = nodes

    def on_started(self, start: Start, at: float) -> None:
        where = "+".join(f"{self.nodes[n].name}:{compress(c, ',')}" for n, c in start.segments)
        gpus = f" gpus {','.join(self.nodes[start.node].gpu_ids_of(start.gpu_indices))}" if start.gpu_indices else ""
        again = f" (attempt {start.attempt})" if start.attempt > 1 else ""
        command = start.task.command if start.task is not None else "?"
        log.debug(f"task {start.task_id} started{again} on {where}{gpus}: {command}")

    def on_ended(self, ended: TaskEnded) -> None:
        log.debug(
            f"task {ended.task_id} ended: {ended.outcome} (exit {ended.exit_code})"
            f" after {ended.report.runtime:.3f} s on {self.nodes[ended.start.node].name}"
        )

    def on_requeued(self, requeued: Requeued | Retried) -> None:
        why = ""
        if isinstance(requeued, Requeued) and requeued.reason:
            why = f": {requeued.reason}"
        elif isinstance(requeued, Retried) and requeued.excused is not None:
            why = f": node {self.nodes[requeued.excused].name} is suspect (not counted against --retries)"
        log.debug(f"task {requeued.task_id} queued again{why}")

    def on_held(self, held: HeldBack) -> None:
        log.debug(
            f"task {held.task_id} held back for the next job: it needs about {held.expected:.1f} s,"
            f" {held.left:.1f} s are left"
        )
