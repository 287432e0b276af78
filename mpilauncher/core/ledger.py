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

from collections.abc import Iterable, Iterator, Mapping

from mpilauncher.core.tasks import Task, TaskTable
from mpilauncher.records import record

QUEUED = "queued"
RUNNING = "running"
COMPLETED = "completed"
FAILED = "failed"
#: Section order in the queuestate file (PyLauncher's three plus ours).
STATES = (QUEUED, RUNNING, COMPLETED, FAILED)


@record
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
    """Every task of the sweep (a :class:`TaskTable`) and a record for each task that has a story.

    A task that has only ever waited in the queue has no record of its own: it is its table
    entry (a million tasks: no million records before the first start).  A record is made when
    the task starts, or when someone asks for it by id (:attr:`records`, which then keeps it so
    that a change made to it stays).
    """

    def __init__(self, tasks: Iterable[Task], elapsed_before: float = 0.0) -> None:
        self.tasks: TaskTable = TaskTable.of(tasks)
        self._told: dict[int, TaskRecord] = {}  # the tasks with a story (started once, or asked for)
        self.records = Records(self)
        self.elapsed_before = elapsed_before

    @classmethod
    def from_records(
        cls, tasks: TaskTable | Iterable[TaskRecord], elapsed_before: float = 0.0, told: Iterable[TaskRecord] = ()
    ) -> Ledger:
        """A ledger read back (a queuestate): its table, and the records of the tasks with a story;
        or records only (each kept as it is, the table made of their tasks)."""
        if isinstance(tasks, TaskTable):
            ledger = cls(tasks, elapsed_before)
        else:
            told = list(tasks)
            ledger = cls([rec.task for rec in told], elapsed_before)
        ledger._told = {rec.task.id: rec for rec in told}
        return ledger

    def __iter__(self) -> Iterator[TaskRecord]:
        """Every task's record, in table order (one made for each task without one; not kept)."""
        told, tasks = self._told, self.tasks
        for task_id in tasks.ids:
            rec = told.get(task_id)
            yield rec if rec is not None else TaskRecord(tasks[task_id])

    def __len__(self) -> int:
        return len(self.tasks)

    def told(self) -> Iterator[TaskRecord]:
        """The records of tasks with a story: every task that started, ran or ended is among them."""
        return iter(self._told.values())

    def state(self, task_id: int) -> str:
        rec = self._told.get(task_id)
        if rec is not None:
            return rec.state
        if task_id not in self.tasks:
            raise KeyError(task_id)
        return QUEUED

    def _record(self, task_id: int, task: Task | None = None) -> TaskRecord:
        rec = self._told.get(task_id)
        if rec is None:
            rec = self._told[task_id] = TaskRecord(task or self.tasks[task_id])
        return rec

    def started(
        self, task_id: int, host: str, core_ids: tuple[int, ...], start: float, task: Task | None = None
    ) -> None:
        """``task``: the task as it starts, when the caller has it (the scheduler's start carries it)."""
        rec = self._record(task_id, task)
        rec.state, rec.host, rec.core_ids, rec.start = RUNNING, host, core_ids, start
        rec.exit_code = rec.runtime = None

    def finished(self, task_id: int, exit_code: int, start: float, runtime: float) -> None:
        rec = self._record(task_id)
        rec.state = COMPLETED if exit_code == 0 else FAILED
        rec.exit_code, rec.start, rec.runtime = exit_code, start, runtime

    def requeued(self, task_id: int) -> None:
        """Back in the queue, its story forgotten: a queued task is its table entry again."""
        if self._told.pop(task_id, None) is None and task_id not in self.tasks:
            raise KeyError(task_id)

    def requeue(self, tasks: TaskTable) -> None:
        """Every task of ``tasks`` back in the queue (what a resume runs): only those with a story
        have anything to forget."""
        for task_id in [i for i in self._told if i in tasks]:
            del self._told[task_id]

    def ids_in(self, *states: str) -> list[int]:
        told = self._told
        if QUEUED not in states:
            return sorted(i for i, r in told.items() if r.state in states)
        if not told:
            return list(self.tasks.ids)
        return [i for i in self.tasks.ids if i not in told or told[i].state in states]

    def counts(self) -> dict[str, int]:
        counts = dict.fromkeys(STATES, 0)
        for rec in self._told.values():
            counts[rec.state] += 1
        counts[QUEUED] += len(self.tasks) - len(self._told)
        return counts

    def to_run(self, rerun_failed: bool = False) -> TaskTable:
        """Tasks a resume must run: queued and running ones, failed ones on request."""
        ids = self.ids_in(*((QUEUED, RUNNING, FAILED) if rerun_failed else (QUEUED, RUNNING)))
        return self.tasks if len(ids) == len(self.tasks) else self.tasks.subset(ids)

    def revise(self, tasks: TaskTable, **changes: object) -> TaskTable:
        """Change the needs of ``tasks`` (the ones to run), here and in what is returned: the table of
        them as they now are.  (IbrunLauncher's tasks are MPI programs, GPU tasks get their GPUs.)"""
        whole = len(tasks) == len(self.tasks)
        self.tasks = self.tasks.revised(None if whole else tasks.ids, **changes)
        for task_id in tasks.ids:
            rec = self._told.get(task_id)
            if rec is not None:
                rec.task = self.tasks[task_id]
        return self.tasks if whole else self.tasks.subset(tasks.ids)


class Records(Mapping[int, TaskRecord]):
    """The ledger's records by task id, as a mapping; a record asked for is kept (see :class:`Ledger`)."""

    __slots__ = ("_ledger",)

    def __init__(self, ledger: Ledger) -> None:
        self._ledger = ledger

    def __getitem__(self, task_id: int) -> TaskRecord:
        if task_id not in self._ledger.tasks:
            raise KeyError(task_id)
        return self._ledger._record(task_id)

    def __contains__(self, task_id: object) -> bool:
        return task_id in self._ledger.tasks

    def __iter__(self) -> Iterator[int]:
        return iter(self._ledger.tasks.ids)

    def __len__(self) -> int:
        return len(self._ledger.tasks)
