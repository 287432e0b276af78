"""Tasks and the commandlines file format (pure: text in, tasks out).

The format is PyLauncher's: ``#`` comment lines and blank lines are skipped,
every other line is one task numbered from 0 in file order, and ``PYL_ID`` (or
PyLauncher's older ``PYLTID``) in a line becomes the task number.  With
``cores="file"`` each line starts with a ``N,`` core count.  With
``expected="file"`` (``--expected-time file``) each line gives its expected run
time the same way, after the core count if there is one: ``4,2:00:00,./sim``
(seconds or Slurm's ``[[D-]HH:]MM:SS``; ``-`` for none).
"""

from __future__ import annotations

import re
from array import array
from collections.abc import Callable, Iterable, Iterator, Sequence

from mpilauncher.core.limits import MAX_LINE, MAX_TASK_CORES, duration, whole_number
from mpilauncher.errors import InputError
from mpilauncher.records import record, replace

#: Markers PyLauncher replaces by the task number: PYL_ID, and its older PYLTID.
_ID_PATTERN = re.compile(r"(?<!\$)(?<!\$\{)(?:PYL_ID|PYLTID)")


@record(frozen=True)
class CoresSpec:
    """How many cores each task gets: a fixed number, a whole node, or per line."""

    kind: str  # "fixed" | "node" | "file"
    count: int = 1

    @classmethod
    def parse(cls, value: object) -> CoresSpec:
        """Read PyLauncher's ``cores=`` value: a count, ``"node"`` or ``"file"``.

        Raises ValueError with the problem; the caller names the option or file it came from.
        """
        if isinstance(value, CoresSpec):
            return value
        if isinstance(value, str) and value.strip().lower() in ("node", "file"):
            return cls(value.strip().lower())
        try:
            return cls("fixed", whole_number(value, 1, MAX_TASK_CORES))
        except ValueError:
            raise ValueError(
                f"must be a whole number from 1 to {MAX_TASK_CORES:,}, 'node' or 'file', not {value!r}"
            ) from None

    def __str__(self) -> str:
        return str(self.count) if self.kind == "fixed" else self.kind


@record
class Task:
    """One command line of the sweep.

    ``cores`` is the number of cores the task needs; a ``whole_node`` task
    takes every core of the node it lands on (its ``cores`` is then only the
    minimum).  ``gpus`` GPUs of the same node come with it.  An ``mpi`` task
    runs ``cores`` ranks and may span consecutive nodes.  ``line`` is the
    1-based line in the source file, for messages.  ``expected``: the seconds
    the user expects it to run (``--expected-time``), or None.

    Treat it as immutable (``records.replace`` makes a changed copy): it is
    not frozen only because a frozen record takes half again as long to make,
    and a sweep makes a million of them before its first task starts.
    """

    id: int
    command: str
    cores: int = 1
    whole_node: bool = False
    line: int = 0
    gpus: int = 0
    mpi: bool = False  # an MPI program: started by an MPI starter on its slots, may span nodes
    expected: float | None = None


#: The fields of a task that say what it needs (and so which queue it waits in); the rest is its
#: id, its command and where it came from.
SHAPE_FIELDS = ("cores", "whole_node", "gpus", "mpi", "expected")


class TaskTable:
    """The tasks of a sweep, by id, held as columns: one list of commands, one of line numbers, and
    one *prototype* task whose needs (cores, GPUs, MPI, expected time) every task shares unless it
    is one of the *overrides*.

    Why: a sweep may hold a million tasks, and a million Task objects (plus their records and the
    scheduler's entries) cost half a gigabyte and two seconds before the first task may start,
    for tasks that mostly wait in a queue.  Here a waiting task costs its command string and a
    line number; ``table[task_id]`` makes its Task when someone needs one (the scheduler at its
    start, a report), and iteration makes them one by one.

    A table either holds every task of its columns, numbered 0.. in order (a sweep read from its
    commandlines), or a chosen subset of ids (:meth:`subset`: what a resume runs), with the same
    columns shared.  ``positions`` maps an id to its place in the columns when ids are not 0..n-1
    (a queuestate with holes, which PyLauncher's format allows).  Treat a table as immutable:
    :meth:`revised` makes a changed one.
    """

    __slots__ = ("commands", "lines", "prototype", "overrides", "_ids", "_positions", "_members", "_later")

    def __init__(
        self,
        commands: list[str],
        lines: Sequence[int],
        prototype: Task,
        overrides: dict[int, Task] | None = None,
        ids: Sequence[int] | None = None,
        positions: dict[int, int] | None = None,
    ) -> None:
        self.commands, self.lines, self.prototype = commands, lines, prototype
        self.overrides: dict[int, Task] = overrides or {}
        self._ids = ids  # None: every position, ids 0..n-1
        self._positions = positions  # None: an id is its position
        self._members: set[int] | None = None
        #: What reads the columns of the rows left for later (see :meth:`read_later`), shared by the
        #: tables made from this one; empty once they are all read.
        self._later: list[Callable[[int], None]] = []

    def read_later(self, read: Callable[[int], None]) -> None:
        """Some rows' commands and lines are not in the columns yet: their command is "" (no task has
        that command), and ``read(task_id)`` fills in that task's (and maybe more).  A task asked for
        from such a row is read first (see :meth:`mpilauncher.core.ledger.Ledger.read_later`)."""
        self._later[:] = [read]

    def all_read(self) -> None:
        """No row is left for later any more (for this table and those made from it)."""
        self._later.clear()

    def _read(self, task_id: int) -> None:
        for read in self._later[:]:
            read(task_id)

    @classmethod
    def of(cls, tasks: Iterable[Task]) -> TaskTable:
        """A table of these tasks (in this order): those that differ from the first in their needs
        are overrides, so a list of one shape costs no more than its commands."""
        if isinstance(tasks, TaskTable):
            return tasks
        tasks = list(tasks)
        prototype = tasks[0] if tasks else Task(0, "")
        key = needs_key(prototype)
        dense = all(task.id == i for i, task in enumerate(tasks))
        positions = None if dense else positions_of([t.id for t in tasks])
        return cls(
            [t.command for t in tasks],
            [t.line for t in tasks],
            Task(-1, "", **{name: getattr(prototype, name) for name in SHAPE_FIELDS}),
            {t.id: t for t in tasks if needs_key(t) != key},
            None,
            positions,
        )

    # -- reading -------------------------------------------------------------
    @property
    def ids(self) -> Sequence[int]:
        """The ids of the tasks in the table, in order."""
        if self._ids is not None:
            return self._ids
        if self._positions is not None:
            return list(self._positions)
        return range(len(self.commands))

    def __len__(self) -> int:
        return len(self._ids) if self._ids is not None else len(self.commands)

    @property
    def rows(self) -> int:
        """How many tasks the columns hold (a subset's included)."""
        return len(self.commands)

    @property
    def is_subset(self) -> bool:
        """A chosen part of the columns' tasks (:meth:`subset`), not all of them."""
        return self._ids is not None

    @property
    def by_id(self) -> bool:
        """Each task's place in the columns is its id (ids 0..n-1: every sweep read from its commandlines)."""
        return self._positions is None

    def position(self, task_id: int) -> int:
        """The place of ``task_id`` in the columns; KeyError when the columns have no such task."""
        if self._positions is not None:
            return self._positions[task_id]
        if type(task_id) is int and 0 <= task_id < len(self.commands):
            return task_id
        raise KeyError(task_id)

    def __contains__(self, task_id: object) -> bool:
        if self._ids is not None:
            if self._members is None:
                self._members = set(self._ids)
            return task_id in self._members
        if self._positions is not None:
            return task_id in self._positions
        return type(task_id) is int and 0 <= task_id < len(self.commands)

    def __getitem__(self, task_id: int) -> Task:
        """The task of this id (made now, unless it is an override)."""
        task = self.overrides.get(task_id)
        if task is not None:
            return task
        position = task_id if self._positions is None else self._positions[task_id]
        if position < 0:
            raise IndexError(task_id)
        command = self.commands[position]
        if not command and self._later:
            self._read(task_id)
            command = self.commands[position]
        p = self.prototype
        return Task(task_id, command, p.cores, p.whole_node, self.lines[position], p.gpus, p.mpi, p.expected)

    def needs(self, task_id: int) -> Task:
        """A task with the needs of ``task_id`` (cores, GPUs, MPI, expected time), made for no one:
        the prototype for a plain task (the scheduler asks this at every decision)."""
        return self.overrides.get(task_id) or self.prototype

    def command(self, task_id: int) -> str:
        task = self.overrides.get(task_id)
        if task is not None:
            return task.command
        position = task_id if self._positions is None else self._positions[task_id]
        command = self.commands[position]
        if not command and self._later:
            self._read(task_id)
            command = self.commands[position]
        return command

    def line(self, task_id: int) -> int:
        task = self.overrides.get(task_id)
        if task is not None:
            return task.line
        position = task_id if self._positions is None else self._positions[task_id]
        if self._later and not self.commands[position]:
            self._read(task_id)
        return self.lines[position]

    def __iter__(self) -> Iterator[Task]:
        get = self.__getitem__
        return (get(task_id) for task_id in self.ids)

    def __eq__(self, other: object) -> bool:
        if isinstance(other, (TaskTable, list, tuple)):
            return len(self) == len(other) and all(a == b for a, b in zip(self, other, strict=True))
        return NotImplemented

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"TaskTable({len(self)} tasks, {len(self.overrides)} overrides, like {self.prototype})"

    def groups(self) -> list[tuple[Task, Sequence[int]]]:
        """The tasks by needs: (the first task of each, the ids with the same needs, in order).

        One group in a sweep of one shape, made without a Task per task and with the table's own ids
        (a fresh sweep's are a range, not a list of a million): what the scheduler queues by and what
        :func:`mpilauncher.core.scheduler.find_unplaceable` checks."""
        if not self.overrides:
            ids = self.ids
            return [(self[ids[0]], ids)] if len(ids) else []
        groups: dict[tuple, tuple[Task, list[int]]] = {}
        plain = needs_key(self.prototype)
        for task_id in self.ids:
            task = self.overrides.get(task_id)
            key = plain if task is None else needs_key(task)
            group = groups.get(key)
            if group is None:
                groups[key] = (self[task_id], [task_id])
            else:
                group[1].append(task_id)
        return list(groups.values())

    # -- changed copies --------------------------------------------------------
    def subset(self, ids: Iterable[int]) -> TaskTable:
        """The tasks of these ids (in this order), sharing this table's columns."""
        return self._made(self.prototype, self.overrides, list(ids))

    def revised(self, ids: Iterable[int] | None = None, **changes: object) -> TaskTable:
        """The table with ``changes`` made to the tasks of ``ids`` (all by default).

        The whole table: a new prototype, no Task made.  A part of it: each changed task
        becomes an override."""
        if ids is None:
            overrides = {i: replace(t, **changes) for i, t in self.overrides.items()}
            prototype = replace(self.prototype, **changes)
            return self._made(prototype, overrides, self._ids)
        overrides = dict(self.overrides)
        for task_id in ids:
            overrides[task_id] = replace(self[task_id], **changes)
        return self._made(self.prototype, overrides, self._ids)

    def _made(self, prototype: Task, overrides: dict[int, Task], ids: Sequence[int] | None) -> TaskTable:
        """A table of this one's columns (and of its rows left for later: read once for both)."""
        table = TaskTable(self.commands, self.lines, prototype, overrides, ids, self._positions)
        table._later = self._later
        return table


class RepeatedId(ValueError):
    """A task id given twice (``task_id``: the first one repeated)."""

    def __init__(self, task_id: int) -> None:
        super().__init__(f"task id {task_id} given twice")
        self.task_id = task_id


def positions_of(ids: Sequence[int]) -> dict[int, int]:
    """Each id's place in ``ids``, for a table whose ids are not 0..n-1; :class:`RepeatedId` if one
    comes twice."""
    positions = {task_id: i for i, task_id in enumerate(ids)}
    if len(positions) != len(ids):
        seen: set[int] = set()
        raise RepeatedId(next(i for i in ids if i in seen or seen.add(i)))  # type: ignore[func-returns-value]
    return positions


def needs_key(task: Task) -> tuple:
    """What ``task`` needs (its :data:`SHAPE_FIELDS`), as a value to compare: tasks with equal keys are
    alike but for their id, command and line."""
    return (task.cores, task.whole_node, task.gpus, task.mpi, task.expected)


def substitute_id(command: str, task_id: int) -> str:
    """Replace PyLauncher's task-number markers in a command.

    ``$PYL_ID`` and ``${PYL_ID}`` are left for the shell: the task's environment
    has ``PYL_ID`` set, whereas PyLauncher's blind replacement turned them into
    ``$0`` (the shell's name).
    """
    if "PYL" not in command:
        return command
    return _ID_PATTERN.sub(str(task_id), command)


def split_core_prefix(text: str, source: str, line: int) -> tuple[int, str]:
    """Split a ``cores="file"`` line ``N,command`` into (N, command)."""
    head, sep, rest = text.partition(",")
    if not sep:
        raise InputError("missing 'N,' core count (cores='file' needs one on every line)", source, line)
    head = head.strip()
    try:
        count = whole_number(head, 1, MAX_TASK_CORES)
    except ValueError as err:
        raise InputError(f"bad core count before ',': {err}", source, line) from None
    rest = rest.strip()
    if not rest:
        raise InputError("no command after the core count", source, line)
    return count, rest


def split_time_prefix(text: str, source: str, line: int) -> tuple[float | None, str]:
    """Split an ``expected="file"`` line ``T,command`` into (seconds or None for ``-``, command)."""
    head, sep, rest = text.partition(",")
    if not sep:
        raise InputError(
            "missing 'T,' expected time (--expected-time file needs one on every line, after the core count if"
            " there is one: seconds, [[D-]HH:]MM:SS, or - for none)",
            source,
            line,
        )
    head, rest = head.strip(), rest.strip()
    seconds = None
    if head != "-":
        try:
            seconds = duration(head)
        except ValueError as err:
            raise InputError(f"bad expected time before ',': {err}", source, line) from None
    if not rest:
        raise InputError("no command after the expected time", source, line)
    return seconds, rest


def parse_commandlines(
    text: str, source: str, cores: CoresSpec, block: int = 1, expected: float | str | None = None
) -> TaskTable:
    """Turn the text of a commandlines file into tasks numbered from 0.

    ``block`` > 1 is PyLauncher's ``schedule="blockN"``: see :func:`join_blocks`.
    ``expected``: each task's expected run time in seconds, or ``"file"``: a ``T,``
    prefix per line (see the module docstring).  Raises :class:`InputError` naming
    ``source`` and the line for any bad line, and for a file with no task at all.
    """
    if "\x00" in text:
        raise InputError("binary file (NUL bytes), not a commandlines file", source)
    if text.count("\n") >= MAX_LINE:  # (line numbers are bounded in the queuestate too)
        raise InputError(f"more than {MAX_LINE:,} lines: split the sweep into several files", source)
    per_line, count, whole_node = cores.kind == "file", cores.count, cores.kind == "node"
    timed, seconds = expected == "file", (expected if not isinstance(expected, str) else None)
    if not per_line and not timed:
        tasks = _plain_lines(text, count, whole_node, seconds)
    else:
        tasks = []
        append = tasks.append  # (a million lines: every attribute look-up out of the loop counts)
        for number, raw in enumerate(text.split("\n"), start=1):
            stripped = raw.strip()
            if not stripped or stripped[0] == "#":
                continue
            task_id = len(tasks)
            if per_line:
                count, stripped = split_core_prefix(stripped, source, number)
            if timed:
                seconds, stripped = split_time_prefix(stripped, source, number)
            append(Task(task_id, substitute_id(stripped, task_id), count, whole_node, number, expected=seconds))
    if not tasks:
        raise InputError("no tasks: the file holds only blank and comment lines", source)
    return join_blocks(list(tasks), block) if block > 1 else TaskTable.of(tasks)


def _plain_lines(text: str, count: int, whole_node: bool, seconds: float | None) -> TaskTable:
    """The tasks of a file whose lines carry no prefix to read, straight into a table's columns:
    list comprehensions, no Task per line (a million lines: the first task starts sooner).

    Most sweeps are a generated file with a command on every line: no comment (no ``#`` anywhere)
    and no blank line, so a task's line number is its id + 1 and the stripped lines are the
    commands as they stand; its numbers are then a ``range``, not a column built and filled (a
    million lines: 0.11 s instead of 0.35-0.45 s, the largest part of a fresh sweep's start)."""
    lines = [raw.strip() for raw in text.split("\n")]
    if lines[-1] == "":
        lines.pop()  # (after the last newline)
    numbers: Sequence[int]
    if "#" not in text and "" not in lines:
        commands, numbers = lines, range(1, len(lines) + 1)
    else:
        numbers = array("i", [number for number, line in enumerate(lines, 1) if line and line[0] != "#"])
        commands = [lines[n - 1] for n in numbers]
    if "PYL" in text:
        commands = [substitute_id(command, i) for i, command in enumerate(commands)]
    return TaskTable(commands, numbers, Task(-1, "", count, whole_node, expected=seconds))


#: A line holding none of these joins its block as it stands (PyLauncher's ``a && b``); one that does is
#: passed to ``eval`` whole: joined bare, a trailing comment (``run #1``) would swallow the lines after
#: it, ``a; b`` or ``a || b`` would run on past an earlier line's failure, and ``cmd &`` is a syntax error.
SHELL_OPERATORS = frozenset("#;&|()`\\\n")


def block_part(command: str) -> str:
    """``command`` as one line of a block: itself, or ``eval '<command>'`` where it holds an operator
    (:data:`SHELL_OPERATORS`): each line is then read by the shell as its own complete command line,
    in the block's one shell (a ``cd`` carries over to the next line, as with PyLauncher's joining)."""
    if SHELL_OPERATORS.isdisjoint(command):
        return command
    return "eval '" + command.replace("'", "'\"'\"'") + "'"


def join_blocks(lines: list[Task], block: int) -> TaskTable:
    """Every ``block`` consecutive lines (the last block may be shorter) become one task.

    The lines are joined with ``&&`` (each as :func:`block_part` makes it): they run one after
    another and the block stops at its first failure.  As in PyLauncher, ``PYL_ID`` in each line has
    already become that *line's* number; the task -- its ``out<N>``,
    ``$PYL_ID`` and queuestate entry -- is numbered by block.  A block needs
    the most cores any of its lines asks for, and starts at its first line.  Its
    expected time is the sum of its lines' (they run one after another), if
    every line has one.
    """
    tasks: list[Task] = []
    for first in range(0, len(lines), block):
        group = lines[first : first + block]
        command = " && ".join(block_part(line.command) for line in group)
        cores = max(line.cores for line in group)
        times = [line.expected for line in group]
        expected = None if None in times else sum(times)  # type: ignore[arg-type]
        tasks.append(Task(len(tasks), command, cores, group[0].whole_node, group[0].line, expected=expected))
    return TaskTable.of(tasks)
