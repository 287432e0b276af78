"""The ledger: what happened to every task of the sweep (pure data, no I/O).

The scheduler decides; the ledger remembers.  It is what the queuestate
snapshot writes, what journal replay rebuilds after a crash, what resume
continues from and what the statistics are computed on.  It spans the whole
sweep, across resumed runs: ``elapsed_before`` carries the wall time of the
runs before this one.

It is not a second state machine: it is *derived* from the scheduler's facts
(a task started, ended, was queued again), which the state store applies to
it as they come (see :mod:`mpilauncher.persistence.store`) and journal replay
applies again after a stop -- the same facts, written down.  A standby is
"queued" here until a fact says it started; a task's one state lives in the
scheduler while the run goes on.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from mpilauncher.core.tasks import Task

QUEUED = "queued"
RUNNING = "running"
COMPLETED = "completed"
FAILED = "failed"
#: Section order in the queuestate file (PyLauncher's three plus ours).
STATES = (QUEUED, RUNNING, COMPLETED, FAILED)


@dataclass(slots=True)
class TaskRecord:
    """A task and its latest outcome.  Times are seconds since the epoch; ``host`` (the name of the
    node it runs or ran on) and ``core_ids`` (its core ids there) are the queuestate's ``host=``
    and ``slots=``."""

    task: Task
    state: str = QUEUED
    exit_code: int | None = None
    start: float | None = None
    runtime: float | None = None
    host: str | None = None
    core_ids: tuple[int, ...] = ()

    @property
    def id(self) -> int:
        return self.task.id


class Ledger:
    """Every task's record, by id, plus sweep-wide facts."""

    def __init__(self, tasks: Iterable[Task], elapsed_before: float = 0.0) -> None:
        self.records: dict[int, TaskRecord] = {t.id: TaskRecord(t) for t in tasks}
        self.elapsed_before = elapsed_before

    @classmethod
    def from_records(cls, records: Iterable[TaskRecord], elapsed_before: float = 0.0) -> Ledger:
        """A ledger of records read back (a queuestate): each kept as it is, none made twice."""
        ledger = cls((), elapsed_before)
        ledger.records = {rec.task.id: rec for rec in records}
        return ledger

    def __iter__(self) -> Iterator[TaskRecord]:
        return iter(self.records.values())

    def __len__(self) -> int:
        return len(self.records)

    def started(self, task_id: int, host: str, core_ids: tuple[int, ...], start: float) -> None:
        rec = self.records[task_id]
        rec.state, rec.host, rec.core_ids, rec.start = RUNNING, host, core_ids, start
        rec.exit_code = rec.runtime = None

    def finished(self, task_id: int, exit_code: int, start: float, runtime: float) -> None:
        rec = self.records[task_id]
        rec.state = COMPLETED if exit_code == 0 else FAILED
        rec.exit_code, rec.start, rec.runtime = exit_code, start, runtime

    def requeued(self, task_id: int) -> None:
        rec = self.records[task_id]
        rec.state, rec.exit_code, rec.runtime = QUEUED, None, None
        rec.start, rec.host, rec.core_ids = None, None, ()

    def ids_in(self, *states: str) -> list[int]:
        return [r.id for r in self.records.values() if r.state in states]

    def counts(self) -> dict[str, int]:
        counts = dict.fromkeys(STATES, 0)
        for rec in self.records.values():
            counts[rec.state] += 1
        return counts

    def to_run(self, rerun_failed: bool = False) -> list[Task]:
        """Tasks a resume must run: queued and running ones, failed ones on request."""
        wanted = (QUEUED, RUNNING, FAILED) if rerun_failed else (QUEUED, RUNNING)
        return [r.task for r in self.records.values() if r.state in wanted]
