"""The queuestate snapshot: a readable file that says where the sweep stands.

It keeps PyLauncher's shape -- sections ``queued``, ``running``,
``completed`` (and our ``failed``), each followed by ``<id>: <command>``
lines -- so a user reads it at a glance and PyLauncher's own queuestate files
load here too.  Our lines may carry ``key=value`` facts between the id and the
colon (core count, exit code, times, host), which resume and the statistics
need::

    # mpilauncher queuestate ...
    #meta {"format": 1, "run": "...", "commandlines": "...", ...}
    queued
    7 line=8: ./prog 7
    completed
    0 line=1 exit=0 start=1764072000.125 runtime=0.512 host=c101 slots=0: ./prog 0

The snapshot is always replaced atomically; what happened after it was
written is in the journal beside it (see :mod:`.journal`).
"""

from __future__ import annotations

import functools
import json
import re
import zlib
from array import array
from bisect import bisect_right
from collections.abc import Callable, Iterable, Iterator, Sequence
from itertools import islice, repeat
from operator import eq, itemgetter
from pathlib import Path

from mpilauncher.core import limits
from mpilauncher.core.ledger import (
    COMPLETED,
    FAILED,
    NO_PLACE,
    NO_TIME,
    QUEUED,
    RUNNING,
    STATES,
    LaterColumns,
    LaterOutcomes,
    LaterTasks,
    Ledger,
    Outcomes,
    Place,
    TaskRecord,
)
from mpilauncher.core.ranges import compress, run_breaks, runs_text
from mpilauncher.core.tasks import (
    CoresSpec,
    RepeatedId,
    Task,
    TaskTable,
    needs_key,
    positions_of,
    split_core_prefix,
)
from mpilauncher.errors import InputError
from mpilauncher.persistence import fields
from mpilauncher.persistence.columnar import queued_text
from mpilauncher.persistence.files import ENCODING, ERRORS, read_bytes
from mpilauncher.persistence.written import WrittenLines
from mpilauncher.records import field, record

FORMAT = 1
META_PREFIX = "#meta "
#: How a snapshot begins (its first line's start): by it a queuestate given as a commandlines file is told.
SNAPSHOT_MARK = "# mpilauncher queuestate "
#: Last line of our snapshots: a file we wrote that lacks it was cut short (copied
#: while incomplete, or by a full disk outside our atomic write).
END_MARK = "# end of queuestate:"


@record
class StateMeta:
    """Sweep-wide facts stored in the snapshot's ``#meta`` line."""

    run: str = ""
    commandlines: str = ""
    sha256: str = ""
    cores: str = "1"
    workdir: str = ""
    journal: str = ""
    #: Whether what happened after this snapshot is in its journal: true while its run goes on, false
    #: in the last snapshot of a run that ended (its journal is removed then); None: not said (written by
    #: earlier versions).  A journal missing where it is true is lost, not removed (see store.journal_of).
    journaled: bool | None = None
    elapsed: float = 0.0
    written: str = ""
    #: The longest runtime of a completed task (None: not written, by earlier versions): a resume's
    #: scheduler starts with it, not with every completed task's runtime (see Ledger.read_later).
    longest: float | None = None
    extra: dict = field(default_factory=dict)

    def sweep_facts(self) -> str:
        """What the ``#meta`` line says of the sweep, less what each run's snapshots rewrite anyway: its
        bookkeeping (run, journal, journaled, elapsed, written, longest) and the pool of cores it had (the
        report's).  Equal before and after a resume's preparations: nothing for a snapshot to say."""
        data = {k: getattr(self, k) for k in self.__slots__ if k not in _RUN_BOOKKEEPING}
        data["extra"] = {k: v for k, v in self.extra.items() if k not in _RUN_EXTRA}
        return json.dumps(data, sort_keys=True, default=str)

    def to_json(self) -> str:
        data = {"format": FORMAT}
        data.update({k: getattr(self, k) for k in self.__slots__ if k != "extra" and getattr(self, k) is not None})
        data.update(self.extra)
        return json.dumps(data, sort_keys=False)


#: The fields of :class:`StateMeta` about a run, not the sweep (see :meth:`StateMeta.sweep_facts`).
_RUN_BOOKKEEPING = frozenset({"run", "journal", "journaled", "elapsed", "written", "longest", "extra"})
#: The same of its ``extra``: the pool of cores a run had (the report's), the directory its tasks ran in.
_RUN_EXTRA = frozenset({"pool", "cwd"})


def _place_texts(outcomes: Outcomes | None) -> list[str | None]:
    """The `` host=... slots=...`` of each place of ``outcomes``, and None last: a row without a place
    (-1) reads it.  A sweep runs on few places; half a million completed lines repeat them."""
    texts: list[str | None] = []
    for host, core_ids in outcomes.places if outcomes is not None else ():
        slots = f" slots={compress(core_ids, ',')}" if core_ids else ""
        texts.append(f" host={host}{slots}" if host else None)
    return [*texts, None]


def _completed_lines(
    section: _Section, ledger: Ledger, first: int, after: int, default_cores: CoresSpec, written: WrittenLines | None
) -> None:
    """The lines of the completed tasks of rows ``first..after-1`` (a table by id, the sweep's needs):
    the runs of them that the run's last snapshot wrote are copied from its file (``written``: a
    completed task's line does not change), the others made from the ledger's columns."""
    at = first
    for span_first, span_after, offset, length in written.within(first, after) if written is not None else ():
        if at < span_first:
            _format_completed(section, ledger, at, span_first, default_cores)
        section.add_written(written, span_first, span_after, offset, length)
        at = span_after
    if at < after:
        _format_completed(section, ledger, at, after, default_cores)


def _format_completed(section: _Section, ledger: Ledger, first: int, after: int, default_cores: CoresSpec) -> None:
    """The lines of the completed tasks of rows ``first..after-1``, a piece of up to :data:`PIECE_LINES`
    at a time, each piece knowing its ids (see :meth:`_Section.add_piece`).  What is left for later is
    read first, then the place texts made once (a read adds places: see :func:`_place_texts`)."""
    ledger.read_tasks(first, after)  # (queued in the text read: a journal's tasks)
    if "" in ledger.tasks.commands[first:after]:  # (completed lines left for later: read first, with their places)
        ledger.read_now()
    where = _place_texts(ledger.outcomes)
    for begin in range(first, after, PIECE_LINES):
        end = min(begin + PIECE_LINES, after)
        lines = _completed_line_texts(ledger, begin, end, where, default_cores)
        section.add_piece("\n".join(lines), end - begin, (begin, end))


def _completed_line_texts(
    ledger: Ledger, first: int, after: int, where: list[str | None], default_cores: CoresSpec
) -> Iterator[str]:
    """The lines of the completed tasks of rows ``first..after-1`` (a table by id, the sweep's needs),
    each in one f-string from the ledger's columns, as :func:`_attributes` writes them (a test ties the
    two); one without a time or a host goes through :func:`_attributes`.  Half of a snapshot of a
    sweep half-way through is these lines: it is written before a resume's first start, and now and
    then while rank 0's loop waits for it.  ``where``: :func:`_place_texts` of the ledger, its rows read."""
    outcomes, table = ledger.outcomes, ledger.tasks
    for task_id, number, command, exit_code, start, runtime, place in zip(  # noqa: B905
        range(first, after),
        table.lines[first:after],
        table.commands[first:after],
        outcomes.exit_code[first:after],
        outcomes.start[first:after],
        outcomes.runtime[first:after],
        outcomes.place[first:after],
    ):
        host = where[place]
        if host is None or exit_code or start != start or runtime != runtime or not command:  # (NaN: no time, and
            # "": a line left to read later, see Ledger.read_later: the record reads it)
            yield _line(ledger.records[task_id], default_cores)
        elif number:
            yield f"{task_id} line={number} exit=0 start={start:.3f} runtime={runtime:.3f}{host}: {command}"
        else:
            yield f"{task_id} exit=0 start={start:.3f} runtime={runtime:.3f}{host}: {command}"


def _line(rec: TaskRecord, default_cores: CoresSpec) -> str:
    """The line of any task, field by field (the general writer; the common lines have faster twins)."""
    return f"{_attributes(rec, default_cores)}: {rec.task.command}"


def _attributes(rec: TaskRecord, default_cores: CoresSpec) -> str:
    task = rec.task
    parts = [str(task.id)]
    if task.line:
        parts.append(f"line={task.line}")
    if task.whole_node and default_cores.kind != "node":
        parts.append("cores=node")
    elif not task.whole_node and not (default_cores.kind == "fixed" and task.cores == default_cores.count):
        parts.append(f"cores={task.cores}")
    if task.expected is not None:
        parts.append(f"expected={task.expected:.3f}".rstrip("0").rstrip("."))
    if rec.state in (COMPLETED, FAILED) and rec.exit_code is not None:  # (none: its section says it)
        parts.append(f"exit={rec.exit_code}")
    if rec.state != QUEUED and rec.start is not None:
        parts.append(f"start={rec.start:.3f}")
    if rec.runtime is not None and rec.state in (COMPLETED, FAILED):
        parts.append(f"runtime={rec.runtime:.3f}")
    if rec.state != QUEUED and rec.host:
        parts.append(f"host={rec.host}")
        if rec.core_ids:
            parts.append(f"slots={compress(rec.core_ids, ',')}")
    if rec.attempts and not (rec.state == FAILED and rec.attempts == 1):  # (a failed task's 1 goes without saying)
        parts.append(f"attempt={rec.attempts}")
    return " ".join(parts)


#: Lines of a section joined into one piece of the snapshot at a time (see :class:`_Section`).
PIECE_LINES = 4096


class _Written:
    """A piece of a snapshot copied from the run's last one: ``length`` bytes from ``offset`` of its file."""

    __slots__ = ("source", "offset", "length")

    def __init__(self, source: WrittenLines, offset: int, length: int) -> None:
        self.source, self.offset, self.length = source, offset, length


class _Section:
    """The lines of one section of a snapshot, kept as pieces of up to :data:`PIECE_LINES` lines joined.

    Why pieces: a snapshot of a million tasks was a million line strings, then their join, then
    that text encoded, all alive at once: 140 MB at the first start of a fresh million, 257 MB
    half-way through it, most of rank 0's peak memory.  Joined as they come, the lines live only
    as long as their piece; the pieces are written one by one (:func:`render_pieces`), and no
    whole text or its bytes is ever made.  A piece copied from the text read (:class:`Earlier`)
    is kept as its span, and cut from that text only as it is written."""

    __slots__ = ("pieces", "ids", "count", "_lines")

    def __init__(self) -> None:
        self.pieces: list[str | tuple[str, int, int] | _Written] = []
        #: The ids of each piece's lines (first, after), where they are one run of ids, else None.
        self.ids: list[tuple[int, int] | None] = []
        self.count = 0
        self._lines: list[str] = []

    def add(self, line: str) -> None:
        lines = self._lines
        lines.append(line)
        if len(lines) >= PIECE_LINES:
            self._flush()

    def add_copy(self, text: str, span: tuple[int, int], ids: tuple[int, int]) -> None:
        """The lines of tasks ``ids`` (first, after) as ``text[begin:end]`` holds them (no newline at the end)."""
        self._flush()
        self.pieces.append((text, *span))
        self.ids.append(ids)
        self.count += ids[1] - ids[0]

    def add_piece(self, text: str, count: int, ids: tuple[int, int] | None = None) -> None:
        """``count`` lines joined (no newline at the end), after those added before; ``ids``: they are
        the lines of tasks first..after-1."""
        self._flush()
        self.pieces.append(text)
        self.ids.append(ids)
        self.count += count

    def add_written(self, source: WrittenLines, first: int, after: int, offset: int, length: int) -> None:
        """The lines of tasks ``first..after-1``, copied from ``source``; one piece with the copy before
        it when they follow it there (the next snapshot then copies them as one)."""
        self._flush()
        last = self.pieces[-1] if self.pieces else None
        ids = self.ids[-1] if self.ids else None
        follows = type(last) is _Written and last.source is source and ids is not None and ids[1] == first
        if follows and last.offset + last.length + 1 == offset:  # (+1: the newline between the two)
            last.length = offset + length - last.offset
            self.ids[-1] = (ids[0], after)
            self.count += after - first
            return
        self.pieces.append(_Written(source, offset, length))
        self.ids.append((first, after))
        self.count += after - first

    def extend(self, lines: Iterable[str]) -> None:
        """Lines from an iterable, joined a piece at a time as they come."""
        lines = iter(lines)
        while True:
            self._lines.extend(islice(lines, PIECE_LINES - len(self._lines)))
            if len(self._lines) < PIECE_LINES:
                return
            self._flush()

    def done(self) -> list[str | tuple[str, int, int] | _Written]:
        self._flush()
        return self.pieces

    def _flush(self) -> None:
        if self._lines:
            self.pieces.append("\n".join(self._lines))
            self.ids.append(None)
            self.count += len(self._lines)
            self._lines = []


def render(ledger: Ledger, meta: StateMeta, default_cores: CoresSpec, earlier: Earlier | None = None) -> str:
    """The snapshot text for ``ledger`` (see :func:`render_pieces`, what the state store writes)."""
    return b"".join(render_pieces(ledger, meta, default_cores, earlier)).decode(ENCODING, ERRORS)


def render_pieces(
    ledger: Ledger,
    meta: StateMeta,
    default_cores: CoresSpec,
    earlier: Earlier | None = None,
    written: WrittenLines | None = None,
    spans: list[tuple[int, int, int, int]] | None = None,
) -> Iterator[bytes]:
    """The snapshot of ``ledger`` as pieces of bytes, to be written one after the other (made now; the
    runs copied from ``earlier`` are cut from its text as they are written, a slice at a time).

    A task of the sweep's default needs that waits in the queue or has completed on one node is
    written straight from the columns of the table and the ledger (``7 line=8: cmd``): at a million
    tasks most lines are that, and the first snapshot is written before the first task may start.
    ``earlier``: the snapshot the ledger was read from (:attr:`LoadedState.earlier`); a long run of
    tasks still queued, or still completed, is copied from it as it stands instead of formatted
    again (a resume's first snapshot, before its first start: a million lines are ~0.3 s of
    f-strings queued, ~1 s completed).  ``written``: the completed lines of this run's last
    snapshot, where they lie in its file (see :mod:`.written`; the caller knows they still stand):
    the runs of them inside a run of completed tasks are copied from there.  ``spans``: where this
    snapshot's completed lines lie in it, appended as they are written, for the next one.
    """
    table = ledger.tasks
    sealed: dict[str, list[tuple[int, int]]] = {}  # (see _end_mark)
    fixed = default_cores.count if default_cores.kind == "fixed" else None
    node_default = default_cores.kind == "node"
    proto = table.prototype
    plain = proto.expected is None and proto.whole_node == node_default and (node_default or proto.cores == fixed)
    sections = {s: _Section() for s in STATES}
    queued, completed = sections[QUEUED], sections[COMPLETED]
    overrides = table.overrides
    records = ledger.records
    if plain and table.by_id:  # (runs of tasks in one state between the tasks of needs of their own)
        commands, numbers = table.commands, table.lines
        earlier = earlier or Earlier()
        queued_before = _EarlierLines(
            earlier.text, earlier.queued, earlier.queued_runs,
            lambda i: f"{i} line={table.line(i)}: {table.command(i)}",  # (read if left for later)
            lambda first, after: ledger.queued_unread(earlier.text, first, after),
        )  # fmt: skip
        completed_before = _EarlierLines(  # (a completed task's line is copied only as it was read: see there)
            earlier.text, earlier.completed, earlier.completed_runs,
            as_read=lambda first, after: ledger.unread(earlier.text, first, after),
        )  # fmt: skip
        sealed = {QUEUED: [], COMPLETED: []}
        begin = 0
        # (a task of needs of its own, or a retry waiting in the queue, with its attempt=: a line of its own)
        retries = [t for t in ledger.attempts if ledger.state(t) == QUEUED] if ledger.attempts else []
        for end in [*sorted({*overrides, *retries}), len(table)]:
            for first, after, state in ledger.runs(begin, end):
                if state in sealed:
                    _add_run(sealed[state], first, after)
                if state == QUEUED:
                    for part, upto, span in queued_before.parts(first, after):
                        if span is not None:
                            queued.add_copy(earlier.text, span, (part, upto))
                        else:
                            ledger.read_tasks(part, upto)  # (their commands, if they were left for later)
                            _queued_lines(queued, part, upto, commands, numbers)
                elif state == COMPLETED:
                    for part, upto, span in completed_before.parts(first, after):
                        if span is not None:
                            completed.add_copy(earlier.text, span, (part, upto))
                        else:
                            _completed_lines(completed, ledger, part, upto, default_cores, written)
                else:
                    sections[state].extend(_line(records[i], default_cores) for i in range(first, after))
            if end < len(table):
                rec = records[end]
                sections[rec.state].add(_line(rec, default_cores))
                sealed.pop(rec.state, None)  # (a task of needs of its own: its section is read line by line)
            begin = end + 1
    else:
        for task_id in sorted(table.ids):
            rec = records[task_id]
            sections[rec.state].add(_line(rec, default_cores))
    bodies = {state: section.done() for state, section in sections.items()}
    counts = ", ".join(f"{section.count} {state}" for state, section in sections.items())
    header = (
        f"{SNAPSHOT_MARK}(format {FORMAT}) written {meta.written}: {counts}.\n"
        "# Resume with: python -m mpilauncher --resume <this file>  (or ResumeClassicLauncher).\n"
        f"{_after_it(meta)}\n"
        f"{META_PREFIX}{meta.to_json()}\n"
    )
    return _text(header, bodies, _end_mark(len(ledger), sealed), completed.ids, spans)


def _after_it(meta: StateMeta) -> str:
    """The header's line on what happened after the snapshot, and where that is."""
    if meta.journaled is False:
        return "# Its run ended with this snapshot: nothing happened after it (its journal is removed)."
    return (
        f"# Events after this snapshot are in {_one_line(meta.journal) or 'the journal'};"
        " 'python -m mpilauncher --status <this file>' shows both merged."
    )


def _one_line(name: str) -> str:
    """A file name as a comment line of the snapshot shows it: a newline in it (``--queuestate $'q\\nx'``)
    ended the comment, and the file could not be read back."""
    return name.replace("\r", "\\r").replace("\n", "\\n")


def _queued_lines(section: _Section, first: int, after: int, commands: list[str], numbers: Sequence[int]) -> None:
    """The queued lines of rows (and ids) ``first..after-1``, made a piece at a time by columns (see
    :mod:`.columnar`); a piece in which some task has no line number, an f-string per line."""
    for begin in range(first, after, PIECE_LINES):
        end = min(begin + PIECE_LINES, after)
        text = queued_text(begin, commands[begin:end], numbers[begin:end])
        if text is not None:
            section.add_piece(text, end - begin)
        else:
            section.extend(
                f"{i} line={n}: {c}" if n else f"{i}: {c}"
                for i, c, n in zip(range(begin, end), commands[begin:end], numbers[begin:end])  # noqa: B905
            )


def _add_run(runs: list[tuple[int, int]], first: int, after: int) -> None:
    if runs and runs[-1][1] == first:
        runs[-1] = (runs[-1][0], after)
    else:
        runs.append((first, after))


#: A section's ids are written in the last line when they are at most this many runs of consecutive ids.
MOST_SEALED_RUNS = 1 << 12
#: The last field of our last line: the CRC-32 of the file's bytes before it (see :func:`_end_mark`).
SEAL = "; crc32 "


def _end_mark(count: int, sealed: dict[str, list[tuple[int, int]]]) -> str:
    """The last line, less its seal (:func:`_text` adds it): the task count, then the ids of each
    queued or completed section in which every line is a task of the sweep's needs, as runs
    (``; queued 422781-999999; completed 0-422780``).

    Why: a file whose seal matches is the file as written, and its lines as its writer wrote them:
    such a section need not be matched line by line to know its tasks and that they read, and its
    lines are read when they are needed (see :func:`parse`).  Matching half a million completed
    lines and half a million queued ones was 0.4-0.9 s of a resume's start here, most of what was
    left of it; the CRC of 52 MB is 0.02 s."""
    parts = [f"{END_MARK} {count} tasks"]
    for state, runs in sealed.items():
        if runs and len(runs) <= MOST_SEALED_RUNS:
            parts.append(f"{state} {runs_text(runs, ',')}")
    return "; ".join(parts)


#: Characters of a copied run written at a time (then to the end of its line).
COPY_SLICE = 1 << 20


def _text(
    header: str,
    bodies: dict[str, list[str | tuple[str, int, int] | _Written]],
    end_mark: str,
    completed_ids: list[tuple[int, int] | None] | None = None,
    spans: list[tuple[int, int, int, int]] | None = None,
) -> Iterator[bytes]:
    """The pieces of a snapshot in order, encoded, the last line sealed with the CRC-32 of all the
    bytes before its seal (see :func:`_end_mark`): a copied run is cut from the text it was read from a
    slice at a time (half a million completed lines are one run, 43 MB: a copy whole, beside the text
    it came from and its bytes as written, was the top of a resumed launcher's memory), and one copied
    from the run's last snapshot is read back from its file a slice at a time.

    ``spans``: where each completed piece of known ids (``completed_ids``, as :class:`_Section` keeps
    them) lies in the file, appended as (first id, after id, offset, length) while it is written:
    what the next snapshot may copy (see :mod:`.written`)."""
    crc = 0
    offset = 0

    def counted(data: bytes) -> bytes:
        nonlocal crc, offset
        crc = zlib.crc32(data, crc)
        offset += len(data)
        return data

    yield counted(header.encode(ENCODING, ERRORS))
    for state in STATES:
        yield counted(f"{state}\n".encode())
        ids = completed_ids if state == COMPLETED and spans is not None else None
        for k, piece in enumerate(bodies[state]):
            begin = offset
            if type(piece) is str:
                yield counted(piece.encode(ENCODING, ERRORS))
            elif type(piece) is _Written:
                for data in piece.source.read(piece.offset, piece.length):
                    yield counted(data)
            else:
                text, at, end = piece
                while at < end:
                    stop = text.find("\n", at + COPY_SLICE, end)
                    stop = end if stop < 0 else stop + 1
                    yield counted(text[at:stop].encode(ENCODING, ERRORS))
                    at = stop
            if ids is not None and ids[k] is not None:
                spans.append((*ids[k], begin, offset - begin))  # type: ignore[union-attr]
            yield counted(b"\n")
    yield counted(end_mark.encode(ENCODING, ERRORS)) + f"{SEAL}{crc:08x}\n".encode()


@record
class LoadedState:
    """A queuestate read back: the ledger, its meta, and whether PyLauncher wrote it."""

    ledger: Ledger
    meta: StateMeta
    from_pylauncher: bool
    default_cores: CoresSpec
    #: The text as read, for the next snapshot to copy from (see :class:`Earlier`); None when there is
    #: nothing to copy.
    earlier: Earlier | None = None
    #: The journal replayed over it (see :func:`mpilauncher.persistence.store.load_state`); None: none.
    journal: Path | None = None


@record
class Earlier:
    """A snapshot's text as read, and where its queued and its completed lines are in it (``(0, 0)``: not
    to be copied from).  A section's lines are kept when they were read in one pass of its pattern, in
    id order: the columns then hold exactly what they say, and the next snapshot copies the runs of
    them that still stand (see :class:`_EarlierLines`)."""

    text: str = ""
    queued: tuple[int, int] = (0, 0)
    completed: tuple[int, int] = (0, 0)
    #: The ids of each section's lines as runs of consecutive ids, in the text's order.
    queued_runs: IdRuns | None = None
    completed_runs: IdRuns | None = None


@record
class IdRuns:
    """Ids in ascending order as runs of consecutive ids: run ``k`` is ``firsts[k]..afters[k]-1``."""

    firsts: list[int]
    afters: list[int]

    def around(self, task_id: int) -> tuple[int, bool]:
        """Where ``task_id`` is: (the id after the last of its run, True), or (the first id of the next
        run after it, False; a very large number when there is none)."""
        k = bisect_right(self.firsts, task_id) - 1
        if k >= 0 and task_id < self.afters[k]:
            return self.afters[k], True
        return (self.firsts[k + 1] if k + 1 < len(self.firsts) else 1 << 62), False


#: Most runs of consecutive ids a section may be in for its lines to be copied from (more are runs of a
#: few dozen lines, as fast to format as to look for).
MOST_COPIED_RUNS = 1 << 16


def _id_runs(ids: list[int], begin: int) -> IdRuns | None:
    """The runs of ``ids[begin:]`` when they ascend in at most :data:`MOST_COPIED_RUNS` runs, else None.
    Loops in C: no Python turn an id."""
    after = ids[begin:]
    if not after or after != sorted(after):  # (sorting sorted ids is one pass, in C)
        return None
    breaks = run_breaks(after, MOST_COPIED_RUNS)
    if len(breaks) >= MOST_COPIED_RUNS:
        return None
    firsts = [after[0], *map(after.__getitem__, breaks)]
    afters = [*(after[i - 1] + 1 for i in breaks), after[-1] + 1]
    return IdRuns(firsts, afters)


def parse(
    text: str, source: str, cores_for_pylauncher: CoresSpec, states_only: bool = False, crc: int | None = None
) -> LoadedState:
    """Read a snapshot (ours or PyLauncher's) into a ledger.

    Every task goes into the ledger's table (its command and line in the columns; a task whose
    needs differ from the sweep's default as an override); a task that ran or runs gets its
    outcome too.  Our queued and completed sections are each read in one pass of one pattern when
    every line has the common shape, and make no object per task (a million tasks, half of them
    completed: ``--status`` and the start of a resume); anything else is read line by line, every
    field checked, and a bad line named.

    ``states_only`` (``--status``): those two sections' lines are checked as closely, but only their
    ids, states and places are kept -- no command, line number or time of theirs (the table holds ""
    and 0 for them): half the time of a reading, in which most of the cost is making those strings
    and numbers.  Not for a ledger that runs or is written again.

    A file whose last line's seal matches its bytes (``crc``: theirs before it, see
    :func:`crc_before_seal`) is as we wrote it: the queued and completed sections that line gives
    the ids of are not matched at all (see :func:`_end_mark`), their lines are read when first
    needed, as a resume reads them anyway."""
    meta: StateMeta | None = None
    section: str | None = None
    ids: list[int] = []  # (an array would be 32 MB less at a resume's peak and ~0.08 s slower a million)
    commands: list[str] = []
    numbers = array("i")
    told: list[TaskRecord] = []
    overrides: dict[int, Task] = {}
    default = cores_for_pylauncher
    proto = Task(-1, "", default.count, default.kind == "node")
    plain = needs_key(proto)
    earlier = Earlier(text)
    known = fields.Known()  # the host names and slot lists checked so far
    columns = _Columns(ids, commands, numbers)
    done = _Completed(columns, known)
    queued_later: _QueuedLater | None = None  # (the queued section read in one pass: what reads the rest)
    last_line = _last_line(text)
    if crc is None and SEAL in last_line:
        crc = crc_before_seal(text.encode(ENCODING, ERRORS))
    sealed = _sealed_runs(last_line, crc) if crc is not None else {}
    sealed_runs: list[tuple[int, int]] = []  # (the runs of ids read from the last line, in the file's order)
    base = 0  # the lines before the segment
    for name, begin, end in _segments(text):
        count = text.count("\n", begin, end) + 1
        if name is not None and meta is not None and default.kind != "file":  # a section's lines: in one pass?
            before = len(ids)
            runs = sealed.get(name)
            if runs is not None and sum(after - first for first, after in runs) == count:
                for first, after in runs:
                    ids.extend(range(first, after))
                sealed_runs += runs
                columns.take_count(count)
                copied = None if states_only else IdRuns([run[0] for run in runs], [run[1] for run in runs])
                lines = _SealedLines(text, (begin, end), default, bool(meta.extra.get("gpus_per_task")))
                if name == QUEUED:
                    queued_later = _QueuedLater(text, lines.blocks, ids, before, lines)
                    earlier.queued_runs, earlier.queued = copied, (begin, end)
                else:
                    done.take_sealed(before, count, (begin, end), lines)
                    earlier.completed_runs, earlier.completed = copied, (begin, end)
                base += count
                continue
            if name == QUEUED:
                queued_later = columns.read_queued(text, begin, end, count)
            if name == QUEUED and queued_later is not None:
                earlier.queued_runs = None if states_only else _id_runs(ids, before)
                if earlier.queued_runs is not None:  # (ours always ascend; copied from, they must)
                    earlier.queued = (begin, end)
                base += count
                continue
            if name == COMPLETED and done.read(text, begin, end, count):
                earlier.completed_runs = None if states_only else _id_runs(ids, before)
                if earlier.completed_runs is not None:
                    earlier.completed = (begin, end)
                base += count
                continue
        for number, raw in enumerate(text[begin:end].split("\n"), base + 1):
            line = raw.strip()
            if line.startswith(META_PREFIX):
                if meta is not None:
                    raise InputError("a second #meta line (a queuestate has one)", source, number)
                meta = _parse_meta(line[len(META_PREFIX) :], source, number)
                default = CoresSpec.parse(meta.cores)
                proto = Task(-1, "", default.count, default.kind == "node")
                plain = needs_key(proto)
                continue
            if not line or line.startswith("#"):
                continue
            if line in STATES:
                section = line
                continue
            if section is None:
                raise InputError(
                    f"task line before any of the sections {', '.join(STATES)}: not a queuestate file", source, number
                )
            rec = _parse_common_line(line, section, default, known) if meta is not None else None
            if rec is None:  # anything else, and every line that is not quite right, gets the full reading
                gpu_sweep = meta is not None and bool(meta.extra.get("gpus_per_task"))
                rec = _parse_task_line(
                    line,
                    section,
                    default,
                    from_pylauncher=meta is None,
                    gpu_sweep=gpu_sweep,
                    source=source,
                    number=number,
                )
            task = rec.task
            ids.append(task.id)
            numbers.append(task.line)
            commands.append(task.command)
            if needs_key(task) != plain:
                overrides[task.id] = task
            if section != QUEUED or rec.attempts:  # (a queued task has no story but its attempts that failed)
                told.append(rec)
        base += count
    if not ids and meta is None:
        raise InputError("empty or not a queuestate file (no sections, no tasks)", source)
    if meta is not None:
        _check_count(last_line.partition("; ")[0], len(ids), text, source)
    in_order = _runs_in_order(sealed_runs) if len(ids) == sum(after - first for first, after in sealed_runs) else None
    table = _table(ids, commands, numbers, proto, overrides, source, text, in_order)
    ledger = Ledger.from_records(table, meta.elapsed if meta else 0.0, told)
    if queued_later is not None:
        ledger.read_queued_later(text, queued_later)
    if done.runtimes:
        ledger.finished_all(ids[done.first : done.after], 0, done.starts, done.runtimes, done.places, done.names)
        read = _ReadLater(text, done.span, array("q", islice(ids, done.first, done.after)), done.sealed)
        ledger.read_later(text, read, meta.longest if meta else None)
    copy = earlier if (earlier.queued != (0, 0) or earlier.completed != (0, 0)) and not states_only else None
    return LoadedState(ledger, meta or StateMeta(cores=str(cores_for_pylauncher)), meta is None, default, copy)


def crc_before_seal(data: bytes) -> int | None:
    """The CRC-32 of a file's bytes before the seal of its last line; None when its last line has none."""
    cut = data.rfind(SEAL.encode())
    if cut < 0 or b"\n" in data[cut:].rstrip(b"\n"):
        return None
    return zlib.crc32(memoryview(data)[:cut])


def _sealed_runs(last_line: str, crc: int) -> dict[str, list[tuple[int, int]]]:
    """The runs of ids the last line gives of sections (see :func:`_end_mark`) when its seal is ``crc``,
    the CRC-32 of the bytes before it, else none."""
    head, seal, crc_text = last_line.rpartition(SEAL)
    if not seal or len(crc_text) != 8:
        return {}
    sealed: dict[str, list[tuple[int, int]]] = {}
    try:
        seal_crc = int(crc_text, 16)
        for part in head.split("; ")[1:]:
            state, _, runs = part.partition(" ")
            if state not in (QUEUED, COMPLETED) or state in sealed:
                return {}
            sealed[state] = [_run(run) for run in runs.split(",")]
    except ValueError:
        return {}
    return sealed if seal_crc == crc else {}


def _run(text: str) -> tuple[int, int]:
    """``a-b`` or ``a`` (as :func:`runs_text` writes them) as ``(a, b + 1)``; ValueError if not."""
    low, sep, high = text.partition("-")
    first, last = int(low), int(high) if sep else int(low)
    if not 0 <= first <= last:
        raise ValueError(text)
    return first, last + 1


def _blocks(text: str, begin: int, end: int) -> Iterator[tuple[int, int, int]]:
    """``text[begin:end]`` cut into blocks of about :data:`READ_BLOCK` characters ending at line ends (what
    :func:`_read_lines` matches at a time): each ``(begin, end, lines)``, cut as they are asked for."""
    at = begin
    while at < end:
        stop = text.find("\n", at + READ_BLOCK, end)
        stop = end if stop < 0 else stop
        yield at, stop, text.count("\n", at, stop) + 1
        at = stop + 1


def _check_count(stated: str, found: int, text: str, source: str) -> None:
    """The last line's count of tasks (``stated``: its text before the first ``;``) against the task lines
    ``found``: a last line that is not ours is a file cut short; another count is a task line removed
    or added by hand (once said as "truncated" too: a user walk), named with the last line's number."""
    said = stated[len(END_MARK) :].strip() if stated.startswith(END_MARK) else ""
    count, _, word = said.partition(" ")
    if not (count.isdigit() and word == "tasks"):  # (a line cut short, or none of ours)
        raise InputError("truncated queuestate: its last line is missing (a copy cut short?)", source)
    if int(count) != found:
        raise InputError(
            f"the last line counts {said}, the sections hold {found} task lines: a task line was removed or"
            " added (by hand?); put it back, or run the sweep anew with --start-over",
            source,
            text.rstrip("\n").count("\n") + 1,
        )


def _last_line(text: str) -> str:
    """The last line of ``text`` that is not empty (found from the end: no copy of a 50 MB text)."""
    end = len(text)
    while end and text[end - 1] == "\n":
        end -= 1
    return text[text.rfind("\n", 0, end) + 1 : end]


def _segments(text: str) -> list[tuple[str | None, int, int]]:
    """``text`` cut around the lines of its queued and its completed section, as spans ``(begin, end)``:
    (None, ...) lines to read one by one, up to and including a section's header, and (the section, ...)
    its lines; with the newlines between them they are the whole text.  A section is cut out only when
    it has lines and the next header is ours (running after queued, failed after completed).  At a
    million tasks these lines are nearly the whole file: they are then read in one pass each, never
    split into lines nor copied."""
    segments: list[tuple[str | None, int, int]] = []
    at = 0  # where the text not cut yet begins
    for name, following in ((QUEUED, RUNNING), (COMPLETED, FAILED)):
        header = text.find(f"\n{name}\n", max(at - 1, 0))
        if header < 0:
            continue
        first = header + len(name) + 2
        end = text.find(f"\n{following}\n", first - 1)
        if end < first:  # (none, or the section has no lines)
            continue
        segments += [(None, at, first - 1), (name, first, end)]
        at = end + 1
    segments.append((None, at, len(text)))
    return segments


#: The fields of our sections' common lines, as patterns (digits bounded: ids and line numbers below
#: 10**9, times below 10**10 s).  A place is a host and its slots, one field: few texts, each checked
#: once; a host with a colon is left to the line-by-line reading (the pattern is half again as fast).
_FIELDS = {
    "id": r"0|[1-9][0-9]{0,8}",
    "line": r"[1-9][0-9]{0,8}",
    "start": r"[0-9]{1,10}\.[0-9]{3}",
    "runtime": r"[0-9]{1,10}\.[0-9]{3}",
    "place": r"[^\s:]+(?: slots=[0-9][0-9,-]*)?",
    "command": r"\S(?:[^\n]*\S)?",  # (a command is written stripped)
}
_QUEUED_SHAPE = "<id> line=<line>: <command>"
#: A completed task of the sweep's needs on one node.
_COMPLETED_SHAPE = "<id> line=<line> exit=0 start=<start> runtime=<runtime> host=<place>: <command>"


def _section_pattern(shape: str, *groups: str) -> re.Pattern:
    """The lines of a section, each of ``shape``, with ``groups`` its groups (the other fields are matched
    as closely, not kept: findall's tuples and strings are half of its time); a shape that does not end
    in its command matches the lines' beginnings."""
    fill = {name: f"({text})" if name in groups else f"(?:{text})" for name, text in _FIELDS.items()}
    end = "$" if shape.endswith("<command>") else ""
    return re.compile("^" + re.sub(r"<(\w+)>", lambda field: fill[field.group(1)], shape) + end, re.MULTILINE)


class _SectionPatterns:
    """The sections' patterns, compiled when a queuestate is first read: ~1.6 ms that a run which
    never reads one (a new sweep) would otherwise pay at its start."""

    @functools.cached_property
    def queued(self) -> re.Pattern:
        return _section_pattern(_QUEUED_SHAPE, "id", "line", "command")

    @functools.cached_property
    def queued_ids(self) -> re.Pattern:
        return _section_pattern(_QUEUED_SHAPE, "id")

    @functools.cached_property
    def completed(self) -> re.Pattern:
        return _section_pattern(_COMPLETED_SHAPE, "id", "line", "start", "runtime", "place", "command")

    @functools.cached_property
    def completed_ids(self) -> re.Pattern:
        return _section_pattern(_COMPLETED_SHAPE, "id", "place")

    @functools.cached_property
    def completed_later(self) -> re.Pattern:
        """What is read of a completed line later (see :meth:`Ledger.read_later`)."""
        return _section_pattern(_COMPLETED_SHAPE, "id", "line", "start", "runtime", "command")

    @functools.cached_property
    def completed_outcomes(self) -> re.Pattern:
        """A completed line's runtime and place, and nothing after them (see :meth:`_ReadLater.outcomes`)."""
        return _section_pattern(_COMPLETED_SHAPE.partition("<command>")[0], "runtime", "place")


_PATTERNS = _SectionPatterns()


#: A run of tasks shorter than this is formatted, not looked for in the earlier text (a look costs what
#: a few dozen lines do; a sweep with 1% failures has runs of completed tasks ~100 long).
COPY_AT_LEAST = 48
#: Runs looked for in vain before the rest of a section is formatted (see :class:`_EarlierLines`).
MOST_MISSES = 16


class _EarlierLines:
    """The lines of a section of an earlier snapshot of the same sweep, to copy runs of them from.

    The lines are in id order and were read by the section's one-pass pattern, so the columns hold
    exactly what they say, and ``runs`` says which ids the text has.  Ids ``begin..end-1`` of one run
    there are copied when their rows are as they were read from this text (``as_read``: completed
    tasks whose lines are read later and that nothing wrote since, see :meth:`Ledger.read_later`),
    or -- a queued section, whose lines say only what never changes, a task's id, line and command
    (``line_of``) -- when the text's line of ``begin`` and, ``end - begin - 1`` lines further, its
    line of ``end - 1`` read as they would be written now.  Asked in id order (see :meth:`parts`),
    the text is searched from where the last copy ended.  A run whose ends read otherwise costs a
    search; after :data:`MOST_MISSES` of them the rest is formatted.
    """

    __slots__ = ("text", "at", "end", "runs", "line_of", "as_read", "misses")

    def __init__(
        self,
        text: str,
        span: tuple[int, int],
        runs: IdRuns | None,
        line_of: Callable[[int], str] | None = None,
        as_read: Callable[[int, int], bool] = lambda first, after: False,
    ) -> None:
        self.text, (self.at, self.end), self.runs, self.line_of, self.as_read = text, span, runs, line_of, as_read
        self.misses = 0

    def parts(self, begin: int, end: int) -> Iterator[tuple[int, int, tuple[int, int] | None]]:
        """Ids ``begin..end-1`` in order as parts ``(first, after, span)``: ``span`` is where their lines
        are in the text (without the last newline), None for lines to format.  A run of the ledger
        may begin or end inside a run of the text: a resume's journal completes the tasks after the
        snapshot's completed ones, and its first snapshot copies those and formats these."""
        runs = self.runs
        at = begin
        while at < end:
            if runs is None or self.at >= self.end:
                yield at, end, None
                return
            bound, inside = runs.around(at)
            upto = min(end, bound)
            yield at, upto, self._span(at, upto) if inside else None
            at = upto

    def _span(self, begin: int, end: int) -> tuple[int, int] | None:
        """Where the lines of ids ``begin..end-1``, one run of the text, are; None when they do not read
        as they would be written now (or are few: then it is as fast to write them)."""
        text, line_of = self.text, self.line_of
        as_read = self.as_read(begin, end)  # (then copied however few: formatting them would read them all)
        if self.misses >= MOST_MISSES or not (as_read or (line_of is not None and end - begin >= COPY_AT_LEAST)):
            return None
        first = self._find(begin, self.at)
        last = self._find(end - 1, first) if first >= 0 else -1
        if last < 0:
            self.misses += 1
            return None
        stop = text.find("\n", last, self.end)
        stop = self.end if stop < 0 else stop
        if text.count("\n", first, stop) != end - begin - 1 or not (
            as_read or (text.startswith(line_of(begin) + "\n", first) and text[last:stop] == line_of(end - 1))
        ):
            self.misses += 1
            return None
        self.at = stop
        return first, stop

    def _find(self, task_id: int, start: int) -> int:
        """Where the line of ``task_id`` begins, from ``start`` on; -1 if it is not there."""
        text, key = self.text, f"{task_id} line="
        at = text.find(key, start, self.end)
        while at > 0 and text[at - 1] != "\n":  # (inside another line: a command may say "7 line=")
            at = text.find(key, at + 1, self.end)
        return at


#: Characters of a section matched at a time (then to the end of its line).  A resume reads the block of
#: its first task before that task starts: 512 KiB are ~21,000 queued lines, 0.03 s (2 MiB were 0.14 s).
READ_BLOCK = 1 << 19


def _read_lines(
    text: str, begin: int, end: int, count: int, pattern: re.Pattern, take: Callable[[list], bool],
    blocks: list[tuple[int, int, int]] | None = None,
) -> bool:  # fmt: skip
    """Read the ``count`` lines of ``text[begin:end]`` (a section's) in one pass of ``pattern``, when every
    one has the common shape: ``take`` is given each block's matches, keeps what it needs, and may
    refuse them.  False when a line does not match or a block is refused (the caller then undoes what
    was taken, and the lines are read one by one, a bad one named).

    The pattern runs over blocks of about :data:`READ_BLOCK` characters ending at line ends: the
    matches of a whole million-line section at once were a million tuples of strings, ~150 MB
    alive together for a moment at the start of every resume of a million.  ``blocks``, if given, gets
    each block's span and line count, ``(begin, end, lines)``."""
    lines = 0
    for at, stop, expected in _blocks(text, begin, end):
        found = pattern.findall(text, at, stop) if text.find("\0", at, stop) < 0 else []
        lines += len(found)
        if len(found) != expected or not take(found):
            return False
        if blocks is not None:
            blocks.append((at, stop, expected))
    return lines == count


class _Columns:
    """The parser's columns, in the order of the lines read: ids, commands, line numbers."""

    __slots__ = ("ids", "commands", "numbers")

    def __init__(self, ids: list[int], commands: list[str], numbers: array) -> None:
        self.ids, self.commands, self.numbers = ids, commands, numbers

    def read_queued(self, text: str, begin: int, end: int, count: int) -> _QueuedLater | None:
        """A queued section in one pass, its ids only (see :func:`_read_lines`): what reads the rest of
        its lines later; None, nothing kept, when it cannot be read so."""
        before = len(self.ids)
        blocks: list[tuple[int, int, int]] = []
        if _read_lines(text, begin, end, count, _PATTERNS.queued_ids, self.take_ids, blocks):
            return _QueuedLater(text, blocks, self.ids, before)
        self.undo(before)
        return None

    def take(self, found: list[tuple[str, ...]]) -> bool:
        """Matches whose groups are the id, the line number, ... and the command."""
        self.ids.extend(map(int, map(itemgetter(0), found)))  # (map and itemgetter: loops in C)
        self.numbers.extend(map(int, map(itemgetter(1), found)))
        self.commands.extend(map(itemgetter(-1), found))
        return True

    def take_ids(self, found: list) -> bool:
        """Matches whose first group is the id (a pattern of one group gives the strings themselves): the
        other columns get "" and 0 (``states_only``)."""
        ids = found if not found or type(found[0]) is str else map(itemgetter(0), found)
        self.ids.extend(map(int, ids))
        self.numbers.extend(array("i", bytes(4 * len(found))))  # (an array of zeros: no item converted)
        self.commands.extend(repeat("", len(found)))
        return True

    def take_count(self, count: int) -> None:
        """``count`` tasks whose ids are in already: "" and 0 for the other columns, as :meth:`take_ids`."""
        self.numbers.extend(array("i", bytes(4 * count)))
        self.commands.extend(repeat("", count))

    def take_records(self, records: Iterable[TaskRecord]) -> None:
        """Lines read one by one (see :class:`_SealedLines`)."""
        for rec in records:
            self.ids.append(rec.task.id)
            self.commands.append(rec.task.command)
            self.numbers.append(rec.task.line)

    def undo(self, before: int) -> None:
        del self.ids[before:], self.commands[before:], self.numbers[before:]


class _Completed:
    """The completed section read in one pass (:meth:`read`): its ids and places, the columns
    ``Ledger.finished_all`` takes, and no times (NaN): the tasks are ``ids[first:after]`` of the parser's
    columns, their commands "" and lines 0 (see :meth:`_Columns.take_ids`); the rest is read later
    (:class:`_ReadLater`).  ``places`` index ``names``, each host and slot list checked once (a sweep
    half-way through: half a million lines naming a few)."""

    __slots__ = (
        "first", "after", "span", "starts", "runtimes", "places", "names", "sealed", "_index", "_known", "_columns"
    )  # fmt: skip

    def __init__(self, columns: _Columns, known: fields.Known) -> None:
        self.first = self.after = 0
        self.span = (0, 0)  # (where the section's lines are in the text)
        #: A sealed section's lines (see :func:`_end_mark`): their places are read later too.
        self.sealed: _SealedLines | None = None
        self.starts, self.runtimes, self.places = array("d"), array("d"), array("i")
        self.names: list[Place] = []
        self._index: dict[str, int] = {}  # a place's text (``c101 slots=0-3``) -> its place
        self._known, self._columns = known, columns

    def read(self, text: str, begin: int, end: int, count: int) -> bool:
        """The ``count`` lines of ``text[begin:end]`` (see :func:`_read_lines`); nothing kept when they cannot be."""
        first = len(self._columns.ids)
        if not _read_lines(text, begin, end, count, _PATTERNS.completed_ids, self._take):
            self._columns.undo(first)
            del self.starts[:], self.runtimes[:], self.places[:]
            return False
        self.first, self.after, self.span = first, len(self._columns.ids), (begin, end)
        return True

    def take_sealed(self, first: int, count: int, span: tuple[int, int], lines: _SealedLines) -> None:
        """A sealed section of ``count`` tasks, their ids in the columns from ``first``: nothing of their
        lines is read now, their places neither."""
        self.first, self.after, self.span, self.sealed = first, first + count, span, lines
        self.starts.extend(_NO_TIMES * count)
        self.runtimes.extend(_NO_TIMES * count)
        self.places.extend(_NO_PLACES * count)

    def _take(self, found: list[tuple[str, str]]) -> bool:
        index = self._index
        texts = list(map(itemgetter(1), found))  # (the place's group)
        for text in set(texts).difference(index):
            try:
                name = _place(self._known, text)
            except ValueError:
                return False
            index[text] = len(self.names)
            self.names.append(name)
        self._columns.take_ids(found)
        self.starts.extend(_NO_TIMES * len(found))
        self.runtimes.extend(_NO_TIMES * len(found))
        self.places.extend(map(index.__getitem__, texts))
        return True


class _QueuedLater:
    """The line numbers and commands of a queued section read with :data:`_PATTERNS.queued_ids`, read from its
    text a block at a time (the blocks it was read in, see :func:`_read_lines`) when a task of
    a block is first asked for (see :meth:`Ledger.read_queued_later`): the same lines, already
    checked, in one pass of :data:`_PATTERNS.queued`."""

    __slots__ = ("text", "blocks", "unread", "done", "sealed")

    def __init__(
        self, text: str, blocks: list[tuple[int, int, int]], ids: list[int], first: int,
        sealed: _SealedLines | None = None,
    ) -> None:  # fmt: skip
        """``sealed``: a sealed section's lines (see :func:`_end_mark`), not matched yet: a block of
        them not of the common shape is read line by line."""
        self.text, self.sealed = text, sealed
        #: Each block: (its lowest id, its highest, where it is in the text, its lines).
        self.blocks: list[tuple[int, int, int, int, int]] = []
        for begin, end, lines in blocks:
            part = ids[first : first + lines]
            self.blocks.append((min(part), max(part), begin, end, lines))
            first += lines
        self.unread = bytearray(b"\x01") * len(self.blocks)
        self.done = not self.blocks

    def read(self, first: int, after: int) -> list[LaterTasks]:
        """The blocks not read yet that may hold any of the tasks ``first..after-1``, read now."""
        parts = []
        for k, (low, high, begin, end, lines) in enumerate(self.blocks):
            if self.unread[k] and low < after and high >= first:
                columns = _Columns([], [], array("i"))
                if not _read_lines(self.text, begin, end, lines, _PATTERNS.queued, columns.take):
                    if self.sealed is None:
                        raise AssertionError("queued lines read once no longer read the same")  # (an immutable text)
                    columns.undo(0)
                    columns.take_records(self.sealed.records(begin, end, QUEUED))
                parts.append((columns.ids, columns.commands, columns.numbers))
                self.unread[k] = 0
        self.done = not any(self.unread)
        return parts


#: One missing time, and one missing place, to be repeated (an array times a count: made in C, no item
#: converted).
_NO_TIMES = array("d", (NO_TIME,))
_NO_PLACES = array("i", (NO_PLACE,))


class _ReadLater:
    """The commands, line numbers, starts and runtimes of a completed section read with
    :data:`_PATTERNS.completed_ids`, read from its text when first asked for (see :meth:`Ledger.read_later`):
    the same lines, already checked, in one pass of :data:`_PATTERNS.completed_later`.  A sealed section's
    (see :func:`_end_mark`) were not matched yet: their places are read too, a block at a time, and
    a block not of the common shape line by line."""

    __slots__ = ("text", "span", "ids", "sealed")

    def __init__(self, text: str, span: tuple[int, int], ids: array, sealed: _SealedLines | None = None) -> None:
        # ``ids``: the lines', in order; 8 bytes each (a list kept the parser's int objects alive: +11 MB
        # at a half-way resume of a million)
        self.text, self.span, self.ids, self.sealed = text, span, ids, sealed

    @property
    def count(self) -> int:
        return len(self.ids)

    def outcomes(self) -> LaterOutcomes | None:
        """The lines' runtimes and places, and nothing else: what the final statistics and the estimates
        need, in one pass of a pattern that stops before the command (a million lines 0.8 s; read whole,
        :meth:`__call__`, 2.5 s and a string a command).  Each line is matched from its beginning, once at
        most, so as many matches as lines are theirs in order; None when a block has a line of another
        shape (then everything is read, line by line where need be)."""
        runtimes = array("d")
        places = _Places(self.sealed.known) if self.sealed is not None else None  # (else read at the start)

        def take(found: list[tuple[str, str]]) -> bool:
            if places is not None and not places.take(list(map(itemgetter(1), found))):
                return False
            runtimes.extend(map(float, map(itemgetter(0), found)))
            return True

        if not _read_lines(self.text, *self.span, self.count, _PATTERNS.completed_outcomes, take):
            return None
        return self.ids, runtimes, places.read if places is not None else None

    def __call__(self) -> LaterColumns:
        columns = _Columns([], [], array("i"))
        ids, commands, numbers = columns.ids, columns.commands, columns.numbers
        starts, runtimes = array("d"), array("d")
        sealed = self.sealed
        reader = _Places(sealed.known) if sealed is not None else None
        places = reader.read if reader is not None else None

        def take(found: list[tuple[str, ...]]) -> bool:
            if reader is not None and not reader.take(list(map(itemgetter(4), found))):
                return False
            ids.extend(map(int, map(itemgetter(0), found)))
            numbers.extend(map(int, map(itemgetter(1), found)))
            starts.extend(map(float, map(itemgetter(2), found)))
            runtimes.extend(map(float, map(itemgetter(3), found)))
            commands.extend(map(itemgetter(-1), found))
            return True

        if sealed is None:
            if not _read_lines(self.text, *self.span, self.count, _PATTERNS.completed_later, take):
                raise AssertionError("completed lines read once no longer read the same")  # (the text is immutable)
            return ids, commands, numbers, starts, runtimes, None
        for begin, end, lines in sealed.blocks:
            read = len(ids)
            if not _read_lines(self.text, begin, end, lines, _PATTERNS.completed, take):
                columns.undo(read)
                del starts[read:], runtimes[read:], places[read:]
                records = sealed.records(begin, end, COMPLETED)
                columns.take_records(records)
                for rec in records:
                    starts.append(NO_TIME if rec.start is None else rec.start)
                    runtimes.append(NO_TIME if rec.runtime is None else rec.runtime)
                    places.append((rec.host, rec.core_ids))
        return ids, commands, numbers, starts, runtimes, places


class _Places:
    """The places of a sealed section's lines as they are read (``read``), each place's text checked
    once: a few texts name half a million lines."""

    __slots__ = ("known", "of", "read")

    def __init__(self, known: fields.Known) -> None:
        self.known = known
        self.of: dict[str, Place] = {}  # a place's text (``c101 slots=0-3``) -> its place
        self.read: list[Place] = []

    def take(self, texts: list[str]) -> bool:
        """The places of ``texts``, one a line, after those read; False (nothing taken) when one is not a place."""
        try:
            for text in set(texts).difference(self.of):
                self.of[text] = _place(self.known, text)
        except ValueError:
            return False
        self.read.extend(map(self.of.__getitem__, texts))
        return True


class _SealedLines:
    """The lines of a sealed section (see :func:`_end_mark`): the blocks it is read in, a block at a time
    when it is needed, and what reads a block line by line when its lines are not all of the common shape
    (a task without a line number, a host with a colon: written as they are, read as the file's other
    lines are, every field checked)."""

    __slots__ = ("text", "span", "default", "gpu_sweep", "known", "_blocks")

    def __init__(self, text: str, span: tuple[int, int], default: CoresSpec, gpu_sweep: bool) -> None:
        self.text, self.span, self.default, self.gpu_sweep = text, span, default, gpu_sweep
        self.known = fields.Known()
        self._blocks: list[tuple[int, int, int]] | None = None

    @property
    def blocks(self) -> list[tuple[int, int, int]]:
        """The section's blocks (see :func:`_blocks`), cut when first asked for: a completed section's
        when its lines are read, at the end of a run, not at its start (36 MB of lines counted)."""
        if self._blocks is None:
            self._blocks = list(_blocks(self.text, *self.span))
        return self._blocks

    def records(self, begin: int, end: int, section: str) -> list[TaskRecord]:
        default, known = self.default, self.known
        return [
            _parse_common_line(line, section, default, known)
            or _parse_task_line(line, section, default, from_pylauncher=False, gpu_sweep=self.gpu_sweep,
                                source="queuestate", number=0)
            for line in map(str.strip, self.text[begin:end].split("\n"))
        ]  # fmt: skip


def _table(
    ids: list[int],
    commands: list[str],
    numbers: array,
    proto: Task,
    overrides: dict[int, Task],
    source: str,
    text: str,
    in_order: list[tuple[int, int]] | None = None,
) -> TaskTable:
    """The table of the tasks read: by id when the ids are 0..n-1 in any order (ours always are:
    the columns are put in id order), else with a position per id (PyLauncher's files allow holes).
    ``in_order``: the positions of ``ids`` as runs in id order, when known (see :func:`_runs_in_order`)."""
    count = len(ids)
    if in_order is None:
        if all(map(eq, ids, range(count))):
            return TaskTable(commands, numbers, proto, overrides)
        in_order = _runs(ids)
    elif in_order == [(0, count)]:
        return TaskTable(commands, numbers, proto, overrides)
    if in_order is not None:  # (ours: a few runs of ids in order, one or two a section)
        commands_by_id = []
        numbers_by_id = array("i")
        for begin, end in in_order:
            commands_by_id += commands[begin:end]
            numbers_by_id += numbers[begin:end]
        return TaskTable(commands_by_id, numbers_by_id, proto, overrides)
    # Else each column is scattered into id order, one pass and two new columns (sorting the
    # positions by id made three lists and a million ints besides: ~90 MB for a moment).
    commands_by_id: list[str | None] = [None] * count
    numbers_by_id = array("i", bytes(numbers.itemsize * count))
    for position, task_id in enumerate(ids):
        if not 0 <= task_id < count or commands_by_id[task_id] is not None:
            break  # not 0..n-1 each once
        commands_by_id[task_id] = commands[position]
        numbers_by_id[task_id] = numbers[position]
    else:
        return TaskTable(commands_by_id, numbers_by_id, proto, overrides)  # type: ignore[arg-type]
    try:
        positions = positions_of(ids)
    except RepeatedId as twice:
        raise InputError(f"task {twice.task_id} listed twice", source, _line_of(text, twice.task_id)) from None
    return TaskTable(commands, numbers, proto, overrides, None, positions)


#: Most runs of consecutive ids :func:`_runs` puts in order (a section of a sweep well under way has a
#: run between every two tasks of another state; past this, a loop over the tasks is as fast).
MOST_RUNS = 4096


def _runs(ids: list[int]) -> list[tuple[int, int]] | None:
    """The positions of ``ids`` as runs ``(begin, end)`` of consecutive ids, in the order of their ids,
    when they are 0..n-1 in at most :data:`MOST_RUNS` runs (a snapshot's sections: the queued half of
    a sweep, then its completed half); else None.  Found by loops in C: no Python turn an id."""
    count = len(ids)
    ends = run_breaks(ids, MOST_RUNS)
    if len(ends) >= MOST_RUNS:
        return None
    bounds = [0, *ends, count]
    runs = sorted(zip(bounds, bounds[1:]), key=lambda run: ids[run[0]])  # noqa: B905
    expected = 0  # (each run must start where the one before ended: every id of 0..n-1 once)
    for begin, end in runs:
        if ids[begin] != expected:
            return None
        expected += end - begin
    return runs


def _runs_in_order(runs: list[tuple[int, int]]) -> list[tuple[int, int]] | None:
    """The positions of the ids of ``runs`` (of ids, in the order read) as runs ``(begin, end)`` in the
    order of their ids, as :func:`_runs` finds them, when they are 0..n-1 each once; else None."""
    positions, at = [], 0
    for first, after in runs:
        positions.append((first, at, at + after - first))
        at += after - first
    positions.sort()
    expected = 0
    for first, begin, end in positions:
        if first != expected:
            return None
        expected += end - begin
    return [(begin, end) for _, begin, end in positions]


def _line_of(text: str, task_id: int) -> int | None:
    """The line of the second listing of ``task_id`` (for the message; read again, as it is rare)."""
    seen = False
    pattern = re.compile(rf"{task_id}(?:[ :]|$)")
    for number, raw in enumerate(text.split("\n"), start=1):
        if pattern.match(raw.strip()):
            if seen:
                return number
            seen = True
    return None


def load(path: Path, cores_for_pylauncher: CoresSpec, states_only: bool = False) -> LoadedState:
    data = read_bytes(path, "queuestate file")
    text, crc = data.decode(ENCODING, ERRORS), crc_before_seal(data)
    del data  # (50 MB at a half-way million: not beside the text while it is read)
    return parse(text, str(path), cores_for_pylauncher, states_only, crc)


def _cores_text(value: object) -> str:
    if not isinstance(value, str):
        raise ValueError(f'must be text such as "4", "node" or "file", not {value!r}')
    CoresSpec.parse(value)
    return value


def _elapsed(value: object) -> float:
    if not isinstance(value, (int, float)):  # (a bool is refused by seconds())
        raise ValueError(f"must be a number of seconds, not {value!r}")
    return limits.seconds(value, limits.MAX_TIME, zero=True)


def _flag(value: object) -> bool:
    if not isinstance(value, bool):
        raise ValueError(f"must be true or false, not {value!r}")
    return value


def _gpu_count(value: object) -> int:
    if not isinstance(value, int):
        raise ValueError(f"must be a whole number, not {value!r}")
    return limits.whole_number(value, 0, limits.MAX_GPUS_PER_NODE)


def _output_mode(value: object) -> str:
    if value not in ("per-task", "per-node"):
        raise ValueError(f"must be per-task or per-node, not {value!r}")
    return str(value)


def _pool(value: object) -> dict[str, int]:
    """The last run's nodes and their cores, ``{"c101": 48, ...}`` (for ``report``'s idle cores)."""
    if not isinstance(value, dict) or len(value) > limits.MAX_NODES:
        raise ValueError("must map node names to core counts")
    return {limits.host_name(name): limits.whole_number(cores, 1, limits.MAX_CORES_PER_NODE)
            for name, cores in value.items()}  # fmt: skip


_ID_RUNS = re.compile(r"\d{1,9}(?:-\d{1,9})?(?:,\d{1,9}(?:-\d{1,9})?)*")


def _retry_bases(value: object) -> dict[str, str]:
    """``{"BASE": "ids", ...}``: the retry bases of the tasks whose retry waited at the stop (rank0.py)."""
    if not isinstance(value, dict):
        raise ValueError("must map attempts to task ids")
    for base, ids in value.items():
        limits.whole_number(int(base) if isinstance(base, str) and base.isdigit() else base, 1, limits.MAX_ATTEMPT)
        if not (isinstance(ids, str) and _ID_RUNS.fullmatch(ids)):
            raise ValueError(f"{base}: {str(ids)[:40]!r} is not a list of task ids (like 0-3,7)")
    return value


#: Every #meta key the launcher reads, and how its value is checked (the others are kept as
#: they are, for formats to come).  ``mpi``, ``gpus_per_task`` and ``gpu_share`` (GPU tasks get
#: their GPUs' share of the cores, not cores asked for) are facts of the sweep that rank0.py
#: keeps in ``extra`` (IbrunLauncher, GPU tasks) for resume; ``output`` its output mode, ``pool``
#: the last run's nodes and cores (what ``python -m mpilauncher report`` counts idle cores against),
#: ``task_timeout``, ``retries`` and ``tasks_per_gpu`` its --task-timeout, --retries and --tasks-per-gpu
#: (a resume not given one keeps it: rank0.sweep_setting),
#: ``sweep`` what tells the sweep from others (its workdirs' marker names it: see workdirs.mark_workdir),
#: ``forced_sha256`` the commandlines file as a --force-resume accepted it (rank0.check_commandlines_unchanged),
#: ``retry_bases`` where the retries of a task whose retry waited at the stop began (rank0.keep_retry_bases).
_META_CHECKS = {
    "run": limits.hex_digits,
    "commandlines": limits.path,
    "sha256": lambda v: limits.hex_digits(v, length=64),
    "forced_sha256": lambda v: limits.hex_digits(v, length=64),
    "cores": _cores_text,
    "workdir": limits.path,
    "journal": limits.file_name,
    "journaled": _flag,
    "elapsed": _elapsed,
    "longest": _elapsed,
    "written": limits.text,
    "mpi": _flag,
    "gpus_per_task": _gpu_count,
    "gpu_share": _flag,
    "tasks_per_gpu": lambda v: limits.whole_number(v, 1, limits.MAX_TASKS_PER_GPU),
    "output": _output_mode,
    "task_timeout": limits.duration,
    "retries": lambda v: limits.whole_number(v, 1, limits.MAX_RETRIES),
    "pool": _pool,
    "sweep": limits.hex_digits,
    "retry_bases": _retry_bases,
}


def _parse_meta(text: str, source: str, number: int) -> StateMeta:
    try:
        data = json.loads(text)
    except (ValueError, RecursionError) as err:  # (ValueError: also a number of more than 4,300 digits)
        if isinstance(err, json.JSONDecodeError):
            reason = err.msg
        else:
            reason = "nested too deeply" if isinstance(err, RecursionError) else "a number too long"
        raise InputError(f"corrupt #meta line ({reason})", source, number) from None
    if not isinstance(data, dict):
        raise InputError("corrupt #meta line (not a JSON object)", source, number)
    if type(data.get("format")) is not int or data["format"] != FORMAT:
        raise InputError(f"unsupported queuestate format {data.get('format')!r} (this is {FORMAT})", source, number)
    meta = StateMeta()
    for key, value in data.items():
        if key == "format":
            continue
        check = _META_CHECKS.get(key)
        if check is not None:
            try:
                value = check(value)
            except ValueError as err:
                raise InputError(f"corrupt #meta line: {key} {err}", source, number) from None
        if key in StateMeta.__slots__ and key != "extra":
            setattr(meta, key, value)
        else:
            meta.extra[key] = value
    return meta


#: The facts a task line may carry between its id and the colon, and how each is read.
_TASK_FIELDS = {
    "line": fields.line_number,
    "cores": lambda text, gpu_sweep: text if text == "node" else fields.core_count(text, gpu_sweep),
    # (``exit=None``: what earlier versions wrote for a finished task of a PyLauncher file, which has
    # no exit code; read as none, so that such a snapshot still resumes.)
    "exit": lambda text: None if text == "None" else fields.exit_code(text),
    "start": fields.start_time,
    "runtime": fields.runtime,
    "expected": fields.expected_time,
    "host": fields.host,
    "slots": fields.slots,
    "attempt": fields.attempt,
}


def _parse_common_line(line: str, section: str, default: CoresSpec, known: fields.Known) -> TaskRecord | None:
    """A queued or completed line of the common shape -- the one the sections' one-pass patterns read
    -- or None (then the full reading decides).

    ``known``: the host names and slot lists of the lines read before (a million tasks, half of
    them completed: checking each line's were a fifth of a ``--status``, and a string and a tuple
    a record ~100 bytes)."""
    if default.kind == "file" or "\0" in line:
        return None
    if section == QUEUED:
        match = _PATTERNS.queued.fullmatch(line)
        if match is None:
            return None
        task_id, number, command = match.groups()
        return TaskRecord(Task(int(task_id), command, default.count, default.kind == "node", int(number)))
    if section != COMPLETED:
        return None
    match = _PATTERNS.completed.fullmatch(line)
    if match is None:
        return None
    task_id, number, start, runtime, place, command = match.groups()
    try:
        host, slots = _place(known, place)
    except ValueError:
        return None
    task = Task(int(task_id), command, default.count, default.kind == "node", int(number))
    return TaskRecord(task, COMPLETED, 0, float(start), float(runtime), host, slots)


def _place(known: fields.Known, text: str) -> Place:
    """A place's text as our lines write it (``c101 slots=0-3``, or a host alone), checked; ValueError
    names the problem."""
    host_text, _, slots_text = text.partition(" slots=")
    return known.host(host_text), known.slots(slots_text) if slots_text else ()


def _parse_task_line(
    line: str, section: str, default: CoresSpec, *, from_pylauncher: bool, gpu_sweep: bool, source: str, number: int
) -> TaskRecord:
    head, sep, command = line.partition(":")
    if not sep:
        raise InputError("expected '<id>: <command>'", source, number)
    command = command.strip()
    items = head.split()
    try:
        task_id = fields.task_id(items[0] if items else "")
    except ValueError as err:
        raise InputError(str(err), source, number) from None
    facts: dict[str, object] = {}
    try:
        for item in items[1:]:
            key, eq, value = item.partition("=")
            if not eq:
                raise ValueError(f"bad field {item!r} (expected key=value)")
            if key not in _TASK_FIELDS:
                raise ValueError(f"unknown field {key!r} (known: {', '.join(_TASK_FIELDS)})")
            if key in facts:
                raise ValueError(f"field {key!r} given twice")
            facts[key] = _TASK_FIELDS[key](value, gpu_sweep) if key == "cores" else _TASK_FIELDS[key](value)
        if from_pylauncher and default.kind == "file":
            try:
                cores, command = split_core_prefix(command, source, number)
            except InputError as err:
                raise ValueError(err.problem) from None
            whole = False
        else:
            spec = facts.get("cores")
            whole = spec == "node" if spec is not None else default.kind == "node"
            cores = spec if isinstance(spec, int) else default.count
        fields.command(command)
        _check_exit(facts.get("exit"), section)
    except ValueError as err:
        raise InputError(f"task {task_id}: {err}", source, number) from None
    task = Task(task_id, command, cores, whole, facts.get("line", 0), expected=facts.get("expected"))
    rec = TaskRecord(task, section)
    rec.exit_code = facts.get("exit")
    rec.start = facts.get("start")
    rec.runtime = facts.get("runtime")
    rec.host = facts.get("host")
    rec.core_ids = facts.get("slots", ())
    rec.attempts = facts.get("attempt", 0)
    if rec.exit_code is None and section in (COMPLETED, FAILED):  # (PyLauncher's lines have none)
        rec.exit_code = 0 if section == COMPLETED else 1
    return rec


def _check_exit(code: object, section: str) -> None:
    """An exit code must agree with its section: the statistics count by section, resume by state."""
    if code is None:
        return
    if section not in (COMPLETED, FAILED):
        raise ValueError(f"exit={code} in the {section} section (only finished tasks have one)")
    if (code == 0) != (section == COMPLETED):
        raise ValueError(f"exit={code} in the {section} section (completed means exit 0, failed any other)")
