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
from dataclasses import dataclass

from mpilauncher.core.limits import MAX_LINE, MAX_TASK_CORES, duration, whole_number
from mpilauncher.errors import InputError

#: Markers PyLauncher replaces by the task number: PYL_ID, and its older PYLTID.
_ID_PATTERN = re.compile(r"(?<!\$)(?<!\$\{)(?:PYL_ID|PYLTID)")


@dataclass(frozen=True, slots=True)
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


@dataclass(slots=True)
class Task:
    """One command line of the sweep.

    ``cores`` is the number of cores the task needs; a ``whole_node`` task
    takes every core of the node it lands on (its ``cores`` is then only the
    minimum).  ``gpus`` GPUs of the same node come with it.  An ``mpi`` task
    runs ``cores`` ranks and may span consecutive nodes.  ``line`` is the
    1-based line in the source file, for messages.  ``expected``: the seconds
    the user expects it to run (``--expected-time``), or None.

    Treat it as immutable (``dataclasses.replace`` makes a changed copy): it is
    not frozen only because a frozen dataclass takes half again as long to make,
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
) -> list[Task]:
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
    return join_blocks(tasks, block) if block > 1 else tasks


def _plain_lines(text: str, count: int, whole_node: bool, seconds: float | None) -> list[Task]:
    """The tasks of a file whose lines carry no prefix to read: list comprehensions instead of a
    loop (a million lines: a quarter less time before the first task may start)."""
    lines = [raw.strip() for raw in text.split("\n")]
    numbers = [number for number, line in enumerate(lines, 1) if line and line[0] != "#"]
    if "PYL" in text or seconds is not None:
        return [
            Task(i, substitute_id(lines[n - 1], i), count, whole_node, n, expected=seconds)
            for i, n in enumerate(numbers)
        ]
    return [Task(i, lines[n - 1], count, whole_node, n) for i, n in enumerate(numbers)]


def join_blocks(lines: list[Task], block: int) -> list[Task]:
    """Every ``block`` consecutive lines (the last block may be shorter) become one task.

    The lines are joined with ``&&``: they run one after another and the block
    stops at its first failure.  As in PyLauncher, ``PYL_ID`` in each line has
    already become that *line's* number; the task -- its ``out<N>``,
    ``$PYL_ID`` and queuestate entry -- is numbered by block.  A block needs
    the most cores any of its lines asks for, and starts at its first line.  Its
    expected time is the sum of its lines' (they run one after another), if
    every line has one.
    """
    tasks: list[Task] = []
    for first in range(0, len(lines), block):
        group = lines[first : first + block]
        command = " && ".join(line.command for line in group)
        cores = max(line.cores for line in group)
        times = [line.expected for line in group]
        expected = None if None in times else sum(times)  # type: ignore[arg-type]
        tasks.append(Task(len(tasks), command, cores, group[0].whole_node, group[0].line, expected=expected))
    return tasks
