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

The outcomes are held as columns (:class:`Outcomes`), one entry per task of
the table, not as an object per task: a sweep of a million tasks half-way
through has half a million finished tasks, and an object each (a record and
its Task, ~300 bytes and ~2 us to make) was most of the memory and the time of
a ``--status`` or a resume.  A record (:class:`TaskRecord`) is made when one is
asked for, from the columns, and is a copy: the ledger's methods are the only
writers.
"""

from __future__ import annotations

import re
from array import array
from collections import Counter, deque
from collections.abc import Iterable, Iterator, Mapping, Sequence
from itertools import compress
from operator import eq
from typing import Protocol

from mpilauncher.core.ranges import run_breaks, runs_of
from mpilauncher.core.tasks import Task, TaskTable, needs_key
from mpilauncher.records import record

QUEUED = "queued"
RUNNING = "running"
COMPLETED = "completed"
FAILED = "failed"
#: Section order in the queuestate file (PyLauncher's three plus ours); a state's code in the
#: ledger's column is its place here (0: queued, which is also every task without a story).
STATES = (QUEUED, RUNNING, COMPLETED, FAILED)
CODES = {state: code for code, state in enumerate(STATES)}
AS_QUEUED, AS_RUNNING, AS_COMPLETED, AS_FAILED = range(len(STATES))
#: Tasks a run of consecutive ids must have on average for what a queuestate's reading puts in the
#: columns to go in a slice a run (see :meth:`Ledger._runs_of_rows`: a sweep's failures break its
#: completed tasks into runs; one failure in a million made every one of them a Python turn, 1.4 s of
#: a 1.6 s read); below it, a row at a time.
RUN_SLICES_FROM = 4

#: The exit-code column's value for none (an exit code is from -128 to 255).
NO_EXIT = -(1 << 31)
#: The time columns' value for none.
NO_TIME = float("nan")
#: The place column's value for none (no host).
NO_PLACE = -1
_NO_TIME_BYTES = array("d", (NO_TIME,)).tobytes()

#: A place: the host a task runs or ran on and its core ids there (the queuestate's host= and slots=).
Place = tuple[str | None, tuple[int, ...]]
#: Columns read later (see :meth:`Ledger.read_later`): the ids, their commands, line numbers, starts, runtimes,
#: and places (None: read before).
LaterColumns = tuple[
    Sequence[int], Sequence[str], Sequence[int], Sequence[float], Sequence[float], "Sequence[Place] | None"
]
#: Commands read later, a part at a time (see :meth:`Ledger.read_queued_later`): the ids, commands, line numbers.
LaterTasks = tuple[Sequence[int], Sequence[str], Sequence[int]]
#: Of the columns read later, what the statistics and the estimates need: the ids, runtimes, places (None: read before).
LaterOutcomes = tuple[Sequence[int], Sequence[float], "Sequence[Place] | None"]


class LaterReader(Protocol):
    """What reads the completed tasks' columns left for later (see :meth:`Ledger.read_later`)."""

    def __call__(self) -> LaterColumns:
        """Every column, read now."""
        ...

    def outcomes(self) -> LaterOutcomes | None:
        """The runtimes and places only, read now (None: they cannot be read apart from the rest)."""
        ...


class PartReader(Protocol):
    """What reads the commands and line numbers of queued tasks left for later, a part at a time."""

    #: Every part read.
    done: bool

    def read(self, first: int, after: int) -> list[LaterTasks]:
        """The parts not read yet that hold any of the tasks ``first..after-1``, read now."""
        ...


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
    #: The number of its last attempt that failed, over every run of the sweep (0: none; the queuestate's
    #: ``attempt=``, written where it is not 1 of a failed task): its next attempt is the one after.
    attempts: int = 0

    @property
    def id(self) -> int:
        return self.task.id


class Outcomes:
    """The ledger's columns, one entry per place in the table's columns (a task's *row*): its state's
    code, exit code, start, runtime and place (an index into :attr:`places`).

    Read them (the queuestate's writer does, a run of completed tasks at a time); only the ledger
    writes them.  A queued task's other entries mean nothing.  The places are few -- the slots of
    the allocation -- and each is kept once: half a million completed tasks name the same few."""

    __slots__ = ("state", "exit_code", "start", "runtime", "place", "places", "_place_of")

    def __init__(self, rows: int) -> None:
        # (each made by repeating one item in C: no list of a million items on the way)
        self.state = bytearray(rows)
        self.exit_code = array("i", (NO_EXIT,)) * rows
        self.start = array("d", (NO_TIME,)) * rows
        self.runtime = array("d", (NO_TIME,)) * rows
        self.place = array("i", (NO_PLACE,)) * rows
        self.places: list[Place] = []
        self._place_of: dict[Place, int] = {}

    def place_index(self, host: str | None, core_ids: tuple[int, ...]) -> int:
        if host is None and not core_ids:
            return NO_PLACE
        key = (host, core_ids)
        index = self._place_of.get(key)
        if index is None:
            index = self._place_of[key] = len(self.places)
            self.places.append(key)
        return index

    def where(self, row: int) -> Place:
        place = self.place[row]
        return self.places[place] if place >= 0 else (None, ())


#: Pattern of the runs of one code in the state column (see :meth:`Ledger.runs`).
_RUNS = re.compile(rb"\x00+|\x01+|\x02+|\x03+")


class Ledger:
    """Every task of the sweep (a :class:`TaskTable`) and its outcome (:class:`Outcomes`).

    A task that has only ever waited in the queue has no story: its table entry says all.  The
    columns are made at the first story (a million tasks: none before the first start)."""

    def __init__(self, tasks: Iterable[Task], elapsed_before: float = 0.0) -> None:
        table = TaskTable.of(tasks)
        if table.is_subset:  # (a row per task: a part of a table gets columns of its own)
            table = TaskTable.of(list(table))
        self.tasks: TaskTable = table
        #: The outcomes by row (see :class:`Outcomes`); None until a task has a story.
        self.outcomes: Outcomes | None = None
        self.records = Records(self)
        self.elapsed_before = elapsed_before
        #: Columns read later (see :meth:`read_later`): (their source, what reads them), or None.
        self._later: tuple[object, LaterReader] | None = None
        self._outcomes_read = False  # (the runtimes and places of ``_later``'s rows are in the columns)
        #: Queued tasks' commands read later, a part at a time (see :meth:`read_queued_later`), or None.
        self._queued_later: tuple[object, PartReader] | None = None
        #: The longest runtime of a task that completed (an upper bound once one is queued again); None:
        #: not known without reading the runtimes left for later.
        self._longest: float | None = 0.0
        #: How many times a completed task's row was written again (started, ended, queued or set anew):
        #: the completed lines of a snapshot stand as long as this does (see persistence/written.py).
        self.completed_rewritten = 0
        #: Task -> the number of its last attempt, for every task whose last attempt failed (a failed one,
        #: one queued again to retry): run again, it goes on counting from it (a user walk: after --resume
        #: --rerun-failed the joblog held attempt 1 of a task twice).  Few: the failures only.
        self.attempts: dict[int, int] = {}

    def total_time(self, elapsed: float) -> float:
        """The sweep's wall time so far: earlier runs' and this run's ``elapsed``, in whole milliseconds,
        as its queuestate keeps it: the final statistics and a `report` of the queuestate then say one
        figure (a CI run: 1.8250004 s printed as 1.83 at the end, kept as 1.825, read back as 1.82)."""
        return round(self.elapsed_before + elapsed, 3)

    @classmethod
    def from_records(
        cls, tasks: TaskTable | Iterable[TaskRecord], elapsed_before: float = 0.0, told: Iterable[TaskRecord] = ()
    ) -> Ledger:
        """A ledger read back (a queuestate): its table, and the records of the tasks with a story;
        or records only (the table made of their tasks)."""
        if isinstance(tasks, TaskTable):
            ledger = cls(tasks, elapsed_before)
        else:
            told = list(tasks)
            ledger = cls([rec.task for rec in told], elapsed_before)
        for rec in told:
            ledger._set(rec)
        return ledger

    def read_later(self, source: object, read: LaterReader, longest: float | None) -> None:
        """The commands, line numbers, starts and runtimes of the completed tasks read so far without
        them are read when first asked for, by ``read`` (from ``source``, the text they are in);
        ``longest``: the longest of those runtimes, if known without them.

        Why: a resume half-way through a million tasks reads half a million completed lines, and what
        its start needs of them is their state (what not to run) and the longest runtime (when the
        end game begins); their runtimes are for the estimates near a deadline and the statistics at
        the end, their commands, lines and starts for the file, whose snapshots copy those lines as
        they stand (see :meth:`unread`).  Reading them was ~1 s of a resume's start here.
        Until then such a task's command is "" in the table and its start NaN in the columns; a Task
        or a record made of such a row reads them all first (the table sees the "", see
        :meth:`TaskTable.read_later`), and so does anything that would run such a task again; what
        wrote a row since keeps what it wrote.  What needs only their runtimes and places (the final
        statistics, the estimates, the longest runtime) reads only those (:meth:`_read_outcomes`)."""
        self._later = (source, read)
        self._outcomes_read = False
        self._longest = None if longest is None or self._longest is None else max(self._longest, longest)
        self.tasks.read_later(self._read_task)

    def read_queued_later(self, source: object, reader: PartReader) -> None:
        """The commands and line numbers of the queued tasks read so far without them (their command
        "" in the table) are read by ``reader`` (from ``source``, the text they are in) a part at a
        time, the part of a task when the task is first asked for (its start: a resume's dispatch
        goes in id order, the parts are read as it reaches them) and the parts of the tasks a
        snapshot writes anew (:meth:`read_tasks`); those it copies need not be (:meth:`queued_unread`).
        Why: a resume half-way through a million tasks read half a million queued lines whole
        before its first start (~0.3 s here of the ~0.55 s their reading took)."""
        self._queued_later = (source, reader)
        self.tasks.read_later(self._read_task)

    def read_tasks(self, first: int, after: int) -> None:
        """Read the commands and line numbers of tasks ``first..after-1`` left for later, if any."""
        if self._queued_later is not None:
            reader = self._queued_later[1]
            for ids, commands, lines in reader.read(first, after):
                self._fill_table(ids, commands, lines, self._runs_of_rows(ids))
            if reader.done:
                self._queued_later = None
                self._check_all_read()

    def queued_unread(self, source: object, first: int, after: int) -> bool:
        """Whether tasks ``first..after-1`` (rows of a table by id) are queued ones whose commands wait to
        be read from ``source``: their lines there are what they would be written."""
        return (
            self._queued_later is not None
            and self._queued_later[0] is source
            and self.tasks.commands[first:after].count("") == after - first
        )

    def _read_task(self, task_id: int) -> None:
        """The table met a task whose command is left for later: its queued part, else the completed lines."""
        self.read_tasks(task_id, task_id + 1)
        if not self.tasks.commands[self.tasks.position(task_id)]:
            self.read_now()

    def _fill_table(
        self, ids: Sequence[int], commands: Sequence[str], lines: Sequence[int], runs: list[tuple[int, int]] | None
    ) -> Sequence[int]:
        """The commands and line numbers read later of tasks ``ids``, into the table; their rows.  ``runs``:
        :meth:`_runs_of_rows` of ``ids`` (the caller's, who writes the same rows next)."""
        table = self.tasks
        if runs is not None:  # (a block of queued lines is one run of ids: slices, 84,000 rows 0.12 -> 0.01 s)
            lines = lines if isinstance(lines, array) and lines.typecode == "i" else array("i", lines)
            whole = len(runs) == 1
            for begin, end in runs:
                first = ids[begin]
                table.commands[first : first + end - begin] = commands if whole else commands[begin:end]
                table.lines[first : first + end - begin] = lines if whole else lines[begin:end]
            return ids
        rows = list(map(table.position, ids))
        deque(map(table.commands.__setitem__, rows, commands), maxlen=0)  # (loops in C)
        deque(map(table.lines.__setitem__, rows, lines), maxlen=0)
        return rows

    def _read_before_running(self, rows: Iterable[int]) -> None:
        """Rows about to run again (or be changed): any completed one left for later is read first, as
        it will need its command."""
        outcomes = self.outcomes
        if self._later is not None and outcomes is not None and AS_COMPLETED in map(outcomes.state.__getitem__, rows):
            self.read_now()

    def _check_all_read(self) -> None:
        if self._later is None and self._queued_later is None:
            self.tasks.all_read()

    def read_now(self) -> None:
        """Read the columns left for later, if any (see :meth:`read_later`)."""
        if self._later is None:
            return
        read = self._later[1]
        self._later = None
        self._check_all_read()
        outcomes = self.outcomes
        ids, commands, lines, starts, runtimes, places = read()
        runs = self._runs_of_rows(ids)  # (by id, the rows are the ids: found once for both)
        rows = self._fill_table(ids, commands, lines, runs)
        if outcomes is not None:
            self._write_read(rows, runs, runtimes, places, starts)

    def _read_outcomes(self) -> None:
        """The runtimes and places of the completed tasks left for later, without their commands, lines
        and starts, if they can be read so (else everything, :meth:`read_now`).  Their rows keep no
        start: :meth:`read_now` still reads them whole when anything needs the rest."""
        if self._later is None or self._outcomes_read:
            return
        found = self._later[1].outcomes()
        if found is None:
            self.read_now()
            return
        self._outcomes_read = True
        ids, runtimes, places = found
        if self.outcomes is not None:
            rows = ids if self.tasks.by_id else list(map(self.tasks.position, ids))
            self._write_read(rows, self._runs_of_rows(rows), runtimes, places)

    def _write_read(
        self, rows: Sequence[int], runs: list[tuple[int, int]] | None, runtimes: Sequence[float],
        places: Sequence[Place] | None, starts: Sequence[float] | None = None,
    ) -> None:  # fmt: skip
        """Columns read later into ``rows``: only into rows nothing wrote since (completed, no start).
        ``runs``: :meth:`_runs_of_rows` of ``rows``."""
        outcomes = self.outcomes
        assert outcomes is not None
        if places is not None:  # (each place's index once: a few places, half a million rows)
            index = {place: outcomes.place_index(*place) for place in dict.fromkeys(places)}  # (in order)
            places = array("i", map(index.__getitem__, places))
        read_starts = array("d", starts) if starts is not None else None
        runtimes = array("d", runtimes)
        state, start, runtime, place = outcomes.state, outcomes.start, outcomes.runtime, outcomes.place
        for begin, end in runs if runs is not None else [(0, len(rows))] if rows else []:
            first = rows[begin]
            if runs is not None and self._untouched(first, first + end - begin):  # (as read: slices)
                if read_starts is not None:
                    start[first : first + end - begin] = read_starts[begin:end]
                runtime[first : first + end - begin] = runtimes[begin:end]
                if places is not None:
                    place[first : first + end - begin] = places[begin:end]
                continue
            for k in range(begin, end):  # (only rows nothing wrote since: completed, no start)
                row = rows[k]
                if state[row] == AS_COMPLETED and start[row] != start[row]:
                    if read_starts is not None:
                        start[row] = read_starts[k]
                    runtime[row] = runtimes[k]
                    if places is not None:
                        place[row] = places[k]
        if self._longest is None:  # (not in the file read: from every completed task's runtime now)
            self._longest = _longest(map(runtime.__getitem__, self._rows_in(AS_COMPLETED)))

    def longest_completed(self) -> float:
        """The longest runtime of a completed task (an upper bound once one is queued again: what the
        scheduler's end game starts by, and what the queuestate's meta keeps for a resume)."""
        if self._longest is None:
            self._read_outcomes()
        return self._longest or 0.0  # (None still: nothing was left to read)

    def unread(self, source: object, first: int, after: int) -> bool:
        """Whether rows ``first..after-1`` are completed tasks whose columns wait to be read from
        ``source`` and that nothing wrote since: their lines there are what they would be written."""
        return self._later is not None and self._later[0] is source and self._untouched(first, after)

    def _runs_of_rows(self, ids: Sequence[int]) -> list[tuple[int, int]] | None:
        """``ids`` cut where their rows stop being consecutive, as ``(begin, end)`` spans of ``ids``: by
        id (a task's row is its id), every id a row, and the runs :data:`RUN_SLICES_FROM` tasks or more
        on average; else None (a row at a time).  What is read into a row a task is written a slice a
        run: one failed task in the middle of a sweep's completed section must not turn a million slice
        writes into a million Python turns."""
        count, table = len(ids), self.tasks
        if not table.by_id:
            return None
        first = ids[0] if count else 0
        if all(map(eq, ids, range(first, first + count))):  # (stops at the first break: the common case)
            breaks: list[int] = []
        else:
            breaks = run_breaks(ids, count // RUN_SLICES_FROM + 1)
            if len(breaks) > count // RUN_SLICES_FROM:
                return None
        bounds = [0, *breaks, count]
        runs = [(begin, end) for begin, end in zip(bounds, bounds[1:]) if end > begin]  # noqa: B905
        if not all(ids[begin] >= 0 and ids[begin] + end - begin <= table.rows for begin, end in runs):
            return None  # (an id of no row: position() says which)
        return runs

    def _untouched(self, first: int, after: int) -> bool:
        """Whether rows ``first..after-1`` are all completed without a start (as read, nothing written since)."""
        outcomes = self.outcomes
        return (
            outcomes is not None
            and outcomes.state.count(AS_COMPLETED, first, after) == after - first
            and outcomes.start[first:after].tobytes() == _NO_TIME_BYTES * (after - first)
        )

    # -- reading -------------------------------------------------------------
    def __iter__(self) -> Iterator[TaskRecord]:
        """Every task's record, in table order (made now)."""
        record_of = self._record_of
        return (record_of(task_id) for task_id in self.tasks.ids)

    def __len__(self) -> int:
        return len(self.tasks)

    def told(self) -> Iterator[TaskRecord]:
        """The records of the tasks with a story (every task that started, ran or ended), by id."""
        record_of = self._record_of
        return (record_of(task_id) for task_id in self.ids_in(RUNNING, COMPLETED, FAILED))

    def state(self, task_id: int) -> str:
        row = self.tasks.position(task_id)
        return STATES[self.outcomes.state[row]] if self.outcomes is not None else QUEUED

    def ids_in(self, *states: str) -> list[int]:
        """The ids of the tasks in these states: in table order when queued ones are asked for, else by id."""
        outcomes = self.outcomes
        if outcomes is None:
            return list(self.tasks.ids) if QUEUED in states else []
        ids = self._ids_of(self._rows_in(*(CODES[state] for state in states)))
        return ids if QUEUED in states or self.tasks.by_id else sorted(ids)

    def counts(self) -> dict[str, int]:
        outcomes = self.outcomes
        counts = dict.fromkeys(STATES, 0)
        if outcomes is not None:
            for code in (AS_RUNNING, AS_COMPLETED, AS_FAILED):
                counts[STATES[code]] = outcomes.state.count(code)
        counts[QUEUED] = len(self.tasks) - counts[RUNNING] - counts[COMPLETED] - counts[FAILED]
        return counts

    def to_run(self, rerun_failed: bool = False) -> TaskTable:
        """Tasks a resume must run: queued and running ones, failed ones on request."""
        ids = self.ids_in(*((QUEUED, RUNNING, FAILED) if rerun_failed else (QUEUED, RUNNING)))
        return self.tasks if len(ids) == len(self.tasks) else self.tasks.subset(ids)

    def runs(self, begin: int, end: int) -> Iterator[tuple[int, int, str]]:
        """The runs of rows ``begin..end-1`` in one state: (first row, row after the last, state).

        Rows are ids in a table by id (:attr:`TaskTable.by_id`).  What the queuestate's writer walks:
        a sweep half-way through is a few long runs, each written in one go."""
        outcomes = self.outcomes
        if outcomes is None:
            if end > begin:
                yield begin, end, QUEUED
            return
        state = outcomes.state
        for match in _RUNS.finditer(state, begin, end):
            first, after = match.span()
            yield first, after, STATES[state[first]]

    def id_runs(self, state: str) -> list[tuple[int, int]]:
        """The ids in ``state`` as runs of consecutive ids ``(first, after the last)``, in order: what
        ``--status`` prints (``0-499999``).  In a table by id, the state column's :meth:`runs`: no list
        of a million ids on the way."""
        if not self.tasks.by_id:
            return runs_of(self.ids_in(state))
        return [(first, after) for first, after, name in self.runs(0, len(self.tasks)) if name == state]

    def completed_runtimes(self) -> list[tuple[Task, list[float]]]:
        """The runtimes of the completed tasks, by needs: (a task of those needs, their runtimes).

        What the scheduler's estimates start from on a resume (see :mod:`.estimates`); one group,
        made without a Task or a record per task, in a sweep of one shape."""
        self._read_outcomes()
        outcomes = self.outcomes
        if outcomes is None:
            return []
        rows = self._rows_in(AS_COMPLETED)
        table, runtime = self.tasks, outcomes.runtime
        if not table.overrides:
            times = [t for t in map(runtime.__getitem__, rows) if t == t]  # (NaN: no runtime)
            return [(table.prototype, times)] if times else []
        groups: dict[tuple, tuple[Task, list[float]]] = {}
        rows = list(rows)
        for task_id, row in zip(self._ids_of(rows), rows, strict=True):
            seconds = runtime[row]
            if seconds != seconds:
                continue
            needs = table.needs(task_id)
            groups.setdefault(needs_key(needs), (needs, []))[1].append(seconds)
        return list(groups.values())

    def runtimes(self, *states: str) -> list[float]:
        """The runtimes of the tasks in these states that have one (in row order)."""
        self._read_outcomes()
        outcomes = self.outcomes
        if outcomes is None:
            return []
        rows = self._rows_in(*(CODES[s] for s in states))
        return [t for t in map(outcomes.runtime.__getitem__, rows) if t == t]

    def places_used(self, *states: str) -> Counter[Place]:
        """How many tasks in ``states`` (default: every task with a story) each place holds (where each
        runs or last ran)."""
        self._read_outcomes()  # (a completed task's place may be left for later)
        outcomes = self.outcomes
        if outcomes is None:
            return Counter()
        rows = self._rows_in(*(CODES[state] for state in states or (RUNNING, COMPLETED, FAILED)))
        counts = Counter(map(outcomes.place.__getitem__, rows))
        counts.pop(NO_PLACE, None)
        return Counter({outcomes.places[place]: count for place, count in counts.items()})

    # -- the facts -------------------------------------------------------------
    def started(self, task_id: int, host: str, core_ids: tuple[int, ...], start: float) -> None:
        row = self.tasks.position(task_id)
        outcomes = self.outcomes or self._open()
        if outcomes.state[row] == AS_COMPLETED:  # (see _read_before_running: a journal's 75,000 starts at a
            self._completed_again()  # half-way resume, no call each)
        outcomes.state[row] = AS_RUNNING
        outcomes.place[row] = outcomes.place_index(host, core_ids)
        outcomes.start[row] = start
        outcomes.exit_code[row] = NO_EXIT
        outcomes.runtime[row] = NO_TIME

    def finished(self, task_id: int, exit_code: int, start: float, runtime: float, attempt: int = 1) -> None:
        if exit_code != 0:
            self.attempts[task_id] = attempt
        elif self.attempts:
            self.attempts.pop(task_id, None)
        row = self.tasks.position(task_id)
        outcomes = self.outcomes or self._open()
        if outcomes.state[row] == AS_COMPLETED:  # (a row left for later keeps its place: read first; no run
            self._completed_again()  # ends a completed task without starting it again)
        outcomes.state[row] = AS_COMPLETED if exit_code == 0 else AS_FAILED
        outcomes.exit_code[row] = exit_code
        outcomes.start[row] = start
        outcomes.runtime[row] = runtime
        if exit_code == 0 and self._longest is not None and runtime > self._longest:
            self._longest = runtime

    def requeued(self, task_id: int) -> None:
        """Back in the queue, its story forgotten."""
        row = self.tasks.position(task_id)
        if self.outcomes is not None:
            if self._later is not None:
                self._read_before_running((row,))
            self._forget(row)

    def requeue(self, tasks: TaskTable) -> list[int]:
        """Every task of ``tasks`` back in the queue (what a resume runs): only those with a story
        have anything to forget.  Returns their ids (what a journal records of this: see
        :meth:`mpilauncher.persistence.store.StateStore.open`)."""
        outcomes = self.outcomes
        if outcomes is None:
            return []
        ids = tasks.ids
        rows = ids if self.tasks.by_id else list(map(self.tasks.position, ids))
        told = list(map(outcomes.state.__getitem__, rows))  # (loops in C: a million to run)
        told_rows = list(compress(rows, told))
        told_ids = told_rows if self.tasks.by_id else list(compress(ids, told))
        self._read_before_running(told_rows)
        for row in told_rows:
            self._forget(row)
        return told_ids

    def finished_all(
        self, ids: Sequence[int], exit_code: int, starts: Sequence[float], runtimes: Sequence[float],
        places: Sequence[int], names: Sequence[Place],
    ) -> None:  # fmt: skip
        """Many tasks finished with one exit code (a queuestate's completed section, read in one pass):
        ``places`` index ``names``.  Loops in C, no call a task: each run of consecutive ids is a slice
        a column (see :data:`RUN_SLICES_FROM`)."""
        outcomes = self.outcomes or self._open()
        if exit_code == 0 and self._longest is not None:
            self._longest = max(self._longest, _longest(runtimes))
        index = [outcomes.place_index(*name) for name in names]
        if index != list(range(len(names))):
            places = list(map(index.__getitem__, places))
        count = len(ids)
        code = AS_COMPLETED if exit_code == 0 else AS_FAILED
        columns = (
            (outcomes.state, bytes((code,)) * count),
            (outcomes.exit_code, array("i", (exit_code,)) * count),
            (outcomes.start, starts),
            (outcomes.runtime, runtimes),
            (outcomes.place, places),
        )
        runs = self._runs_of_rows(ids)
        if runs is not None:  # (a slice a run of rows, a column at a time)
            for column, values in columns:
                if isinstance(column, array) and not (isinstance(values, array) and values.typecode == column.typecode):
                    values = array(column.typecode, values)
                for begin, end in runs:
                    first = ids[begin]  # (by id: a task's row is its id)
                    column[first : first + end - begin] = values if len(runs) == 1 else values[begin:end]
            return
        rows = list(map(self.tasks.position, ids))
        for column, values in columns:
            deque(map(column.__setitem__, rows, values), maxlen=0)  # (a loop in C)

    def revise(self, tasks: TaskTable, **changes: object) -> TaskTable:
        """Change the needs of ``tasks`` (the ones to run), here and in what is returned: the table of
        them as they now are.  (IbrunLauncher's tasks are MPI programs, GPU tasks get their GPUs.)"""
        whole = len(tasks) == len(self.tasks)
        if not whole and self._later is not None:  # (a changed task is made whole, its command with it)
            self._read_before_running(tasks.ids if self.tasks.by_id else map(self.tasks.position, tasks.ids))
        self.tasks = self.tasks.revised(None if whole else tasks.ids, **changes)
        return self.tasks if whole else self.tasks.subset(tasks.ids)

    # -- inside ------------------------------------------------------------------
    def _open(self) -> Outcomes:
        self.outcomes = Outcomes(self.tasks.rows)
        return self.outcomes

    def _completed_again(self) -> None:
        """A completed task's row is about to be written again."""
        self.completed_rewritten += 1
        if self._later is not None:
            self.read_now()

    def _forget(self, row: int) -> None:
        outcomes = self.outcomes
        if outcomes.state[row] == AS_COMPLETED:
            self.completed_rewritten += 1
        outcomes.state[row] = AS_QUEUED
        outcomes.exit_code[row] = NO_EXIT
        outcomes.start[row] = outcomes.runtime[row] = NO_TIME
        outcomes.place[row] = NO_PLACE

    def _set(self, rec: TaskRecord) -> None:
        """A record read back, as it is."""
        row = self.tasks.position(rec.id)
        outcomes = self.outcomes or self._open()
        if outcomes.state[row] == AS_COMPLETED:
            self.completed_rewritten += 1
        outcomes.state[row] = CODES[rec.state]
        outcomes.exit_code[row] = NO_EXIT if rec.exit_code is None else rec.exit_code
        outcomes.start[row] = NO_TIME if rec.start is None else rec.start
        outcomes.runtime[row] = NO_TIME if rec.runtime is None else rec.runtime
        outcomes.place[row] = outcomes.place_index(rec.host, rec.core_ids)
        if rec.state == FAILED or (rec.attempts and rec.state != COMPLETED):
            self.attempts[rec.id] = rec.attempts or 1  # (a failed task's line says its 1 only by omission)
        if rec.state == COMPLETED and rec.runtime is not None and self._longest is not None:
            self._longest = max(self._longest, rec.runtime)

    def _record_of(self, task_id: int) -> TaskRecord:
        task = self.tasks[task_id]  # (first: a row left for later is read then, its start with it)
        outcomes = self.outcomes
        attempts = self.attempts.get(task_id, 0) if self.attempts else 0
        if outcomes is None:
            return TaskRecord(task, attempts=attempts)
        row = self.tasks.position(task_id)
        code = outcomes.state[row]
        if code == AS_QUEUED:
            return TaskRecord(task, attempts=attempts)
        exit_code, start, runtime = outcomes.exit_code[row], outcomes.start[row], outcomes.runtime[row]
        host, core_ids = outcomes.where(row)
        return TaskRecord(
            task,
            STATES[code],
            None if exit_code == NO_EXIT else exit_code,
            None if start != start else start,
            None if runtime != runtime else runtime,
            host,
            core_ids,
            attempts,
        )

    def _rows_in(self, *codes: int) -> Iterator[int]:
        """The rows in these states, in order: the state column translated to 1 for these codes, 0 for
        the others, and the rows of its ones taken (loops in C: a million rows in milliseconds)."""
        state = self.outcomes.state
        mask = bytes(1 if code in codes else 0 for code in range(len(STATES))).ljust(256, b"\0")
        return compress(range(len(state)), state.translate(mask))

    def _ids_of(self, rows: Iterable[int]) -> list[int]:
        if self.tasks.by_id:
            return list(rows)
        ids = list(self.tasks.ids)  # (in row order: a table with positions lists its ids by position)
        return [ids[row] for row in rows]


def _longest(runtimes: Iterable[float]) -> float:
    """The longest of ``runtimes``, NaN (none) left out; 0 for none (a filter in C: NaN <= is false)."""
    return max(filter((0.0).__le__, runtimes), default=0.0)


class Records(Mapping[int, TaskRecord]):
    """The ledger's records by task id, as a mapping; each made when asked for (a copy)."""

    __slots__ = ("_ledger",)

    def __init__(self, ledger: Ledger) -> None:
        self._ledger = ledger

    def __getitem__(self, task_id: int) -> TaskRecord:
        if task_id not in self._ledger.tasks:
            raise KeyError(task_id)
        return self._ledger._record_of(task_id)

    def __contains__(self, task_id: object) -> bool:
        return task_id in self._ledger.tasks

    def __iter__(self) -> Iterator[int]:
        return iter(self._ledger.tasks.ids)

    def __len__(self) -> int:
        return len(self._ledger.tasks)
