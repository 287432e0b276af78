"""Dispatch latency: how long from the master sending a start to the task's process starting.

An observer of the scheduler's facts: a start is stamped when it is sent (or,
for a standby, when its node started it: the latency is then ~0), and its
end's ``start`` -- the agent's clock -- closes it.  ``benchmarks/dispatch.py``
prints the figures (``RunResult.dispatch_latencies``).
"""

from __future__ import annotations

from mpilauncher.core.events import Requeued, Retried, Start, TaskEnded
from mpilauncher.core.observer import Observer


class DispatchLatencies(Observer):
    """Seconds from dispatch to the process start, one figure per ended task (:attr:`values`)."""

    def __init__(self) -> None:
        self.values: list[float] = []
        self._sent: dict[int, float] = {}  # task id -> when its start went out

    def on_started(self, start: Start, at: float) -> None:
        self._sent[start.task_id] = at

    def on_ended(self, ended: TaskEnded) -> None:
        """Never below 0: the two stamps come from two clocks (the master's, or for a standby the end of the
        task before it as its node reported it, to the millisecond; the process start the agent's), and a
        user walk saw -0.001 s for a standby -- a task cannot start before it is sent."""
        sent = self._sent.pop(ended.task_id, None)
        if sent is not None:
            self.values.append(max(0.0, ended.report.start - sent))

    def on_requeued(self, requeued: Requeued | Retried) -> None:
        self._sent.pop(requeued.task_id, None)
