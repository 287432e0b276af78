"""The progress counts agree with the ledger at every draw, whatever happens: retries, lost nodes, standbys."""

from __future__ import annotations

from pathlib import Path

from mpilauncher.core.ledger import COMPLETED, FAILED, QUEUED, RUNNING, Ledger
from mpilauncher.core.tasks import Task
from mpilauncher.report.progress import Counts, Progress, clock, status_text
from tests.integration.harness import FakeCluster, run_sweep


def tasks(count: int) -> list[Task]:
    return [Task(i, f"./sim {i}", 1, line=i + 1) for i in range(count)]


class Drawn:
    """A draw function that checks what it is given against the ledger as it stands."""

    def __init__(self, ledger: Ledger) -> None:
        self.ledger = ledger
        self.seen: list[tuple[tuple[int, int, int, int, int], float | None]] = []

    def __call__(self, counts: Counts, elapsed: float, rate: float | None) -> None:
        mine = (counts.done, counts.failed, counts.queued, len(counts.running), counts.busy)
        ledger = self.ledger.counts()
        theirs = (ledger[COMPLETED], ledger[FAILED], ledger[QUEUED], ledger[RUNNING])
        assert mine[:4] == theirs, f"at {elapsed}: progress {mine} against the ledger's {theirs}"
        assert counts.busy == len(counts.running), "one core a task here"
        self.seen.append((mine, rate))


def test_the_counts_follow_retries_lost_nodes_and_standbys(tmp_path: Path) -> None:
    cluster = FakeCluster(("n0", 2), ("n1", 2))
    cluster.runtimes = {i: 2.0 for i in range(12)}
    cluster.exits = {1: [3, 0], 2: [1, 1]}
    cluster.at(1.0, lambda c: c.silence(1))  # its 2 running tasks are queued again
    sweep = tasks(12)
    ledger = Ledger(sweep)
    drawn = Drawn(ledger)
    progress = Progress(0, 0, 12, 4, drawn, interval=1.0)
    record = run_sweep(tmp_path, cluster, sweep, retries=1, extra=[progress], ledger=ledger)
    final, rate = drawn.seen[-1]
    assert final == (11, 1, 0, 0, 0), "task 2 failed twice; the rest completed"
    assert record.statistics.completed == 11 and rate is not None and rate > 0
    assert len(drawn.seen) >= 5, "drawn every interval of the run"


def test_a_resumed_sweep_counts_its_earlier_ends_and_the_text_reads_as_documented() -> None:
    counts = Counts(done=100, failed=2, queued=300)
    counts.running = {7: 4, 8: 4}
    counts.busy = 8
    text = status_text(counts, 3725.0, 0.5, 8)
    assert text == (
        "100/404 done, 2 failed, 2 running, 300 queued; 0.5 tasks/s, ETA 0:10:04; 8/8 cores busy; elapsed 1:02:05"
    )
    assert "ETA ?" in status_text(counts, 10.0, None, 8)
    assert "tasks/h" in status_text(counts, 10.0, 0.01, 8)
    assert clock(2 * 86400 + 3661) == "2-01:01:01"
