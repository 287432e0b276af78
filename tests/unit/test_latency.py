"""Dispatch latency: from the start sent to the process started, never below zero."""

from __future__ import annotations

from mpilauncher.core.events import Start, TaskEnded, TaskFinished
from mpilauncher.report.latency import DispatchLatencies


def test_latency_is_the_process_start_after_the_send_and_never_negative():
    """A user walk saw -0.001 s: a standby's send is stamped with the end of the task before it as its node
    reported it (to the millisecond), and its process start by the agent's clock."""
    latencies = DispatchLatencies()
    for task_id, sent, started in ((0, 10.0, 10.25), (1, 20.0, 19.999)):
        start = Start(0, task_id, (0,))
        latencies.on_started(start, sent)
        latencies.on_ended(TaskEnded(start, TaskFinished(task_id, 0, 0, started, 1.0)))
    assert latencies.values == [0.25, 0.0]
