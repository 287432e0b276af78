"""The journal: an append-only log of starts and finishes since the snapshot it belongs to.

Why a journal: rewriting the whole queuestate for every finished task costs
O(tasks) per completion (PyLauncher does this every tick).  Appending one
short line costs O(1).  The snapshot is rewritten only now and then; the
truth after any stop, ``kill -9`` included, is *snapshot + journal replayed*.

Format (text, one record per line, tab-separated)::

    #mpilauncher-journal 1 run=<run id>
    S  <id>  <start>  <host>  <slots>       task started
    E  <id>  <exit>  <start>  <runtime>     task ended (exit < 0: killed by that signal)
    E  <id>  <exit>  <start>  <runtime>  <attempt>    the same, a failed attempt after the first
    Q  <id>                                  task queued again (its node was lost)

Each record is idempotent and the log is in order, so replaying the whole
journal over the snapshot it belongs to (same run id) gives the latest state
(found by that id beside the snapshot, under the name it gives or its own
name's: see :func:`mpilauncher.persistence.store.journal_of`).
A resume that changed nothing but the queue appends to the journal it
replayed (:meth:`JournalWriter.reopen`); each later snapshot starts a new one.
A kill can cut the last line short: a last line without its newline is
ignored (that event is lost, which at worst reruns one task -- at-least-once);
a malformed line anywhere else means the file is corrupt and is refused.
Lines are handed to the OS after every loop turn (a killed launcher loses
nothing the OS has), and an fsync begins at least every ``fsync_interval``
seconds, in a thread beside the loop (see :mod:`mpilauncher.persistence.syncer`).
"""

from __future__ import annotations

import functools
import os
import re
import signal
import threading
from collections.abc import Callable
from pathlib import Path

from mpilauncher.core.ledger import Ledger
from mpilauncher.core.limits import MAX_EXIT, MIN_EXIT
from mpilauncher.core.ranges import compress
from mpilauncher.errors import InputError, LauncherFailure
from mpilauncher.persistence import fields
from mpilauncher.persistence.files import ENCODING, ERRORS, fsync_directory, read_text
from mpilauncher.persistence.syncer import BackgroundSync

HEADER = "#mpilauncher-journal 1 run="


class JournalWriter:
    """Buffered appends, flushed per loop turn, fsynced on an interval (in a thread: see the module docstring)."""

    def __init__(
        self,
        path: Path,
        run: str,
        fsync_interval: float,
        reopened: int = -1,
        after: Callable[[], None] | None = None,
        then: Callable[[], None] | None = None,
    ) -> None:
        """A new, empty journal of ``run`` at ``path`` (``reopened``: the one there, open to append
        to: see :meth:`reopen`).

        ``after``: what must be on disk before this journal exists (the snapshot it belongs to, written
        aside: its sync and rename), done in a thread with the journal's own creation while the run
        sends its first tasks (see :class:`_Creation`); the first flush, at the end of that loop turn,
        waits for it.  ``then``: the same done the other way round, where no file is at ``path`` (see
        :meth:`mpilauncher.persistence.store.StateStore.open`): the journal is put in place here (its
        header handed to the OS, nothing synced), ``then`` and the journal's sync in the thread (the
        snapshot in place as soon as before: a kill then leaves it, with this journal beside it)."""
        self.path = path
        self.fsync_interval = fsync_interval
        self._pending: list[str] = []
        self._last_sync = float("-inf")
        self._fd = -1
        self._creation: _Creation | None = None
        if after is not None:
            self._creation = _Creation(lambda: (after(), self._create(run)), f"create {path.name}")
        elif then is not None:
            self._create(run, synced=False)
            self._creation = _Creation(lambda: (then(), self._sync_created()), f"create {path.name}")
        elif reopened < 0:
            self._create(run)
        else:
            self._fd = reopened
            self._sync = BackgroundSync(reopened, f"fsync {path.name}")

    def settle(self) -> None:
        """Return once the journal exists (see ``after``); what made it fail is raised here."""
        creation, self._creation = self._creation, None
        if creation is not None:
            creation.wait()

    @classmethod
    def reopen(cls, path: Path, run: str, fsync_interval: float) -> JournalWriter | None:
        """The journal of ``run`` at ``path``, to append to; None when there is none (or it cannot be).

        What a resume that changed nothing but the queue does (see
        :meth:`mpilauncher.persistence.store.StateStore.open`): the snapshot on
        disk and this journal, replayed, are the state it began from.  A last
        line cut short by a kill (which :func:`replay` ignored) is cut off first:
        a record appended to it would make one corrupt line of the two."""
        try:
            fd = os.open(path, os.O_RDWR | os.O_APPEND)
        except OSError:  # (none; or one we may not write, as a copy made read-only: a new one replaces it)
            return None
        try:
            first, newline, _ = os.pread(fd, 4096, 0).partition(b"\n")
            if not newline or run_of(first.decode(ENCODING, ERRORS)) != run:
                os.close(fd)
                return None
            size = os.fstat(fd).st_size
            end = _after_last_newline(fd, size)
            if end != size:
                os.ftruncate(fd, end)
        except OSError:
            os.close(fd)
            return None  # (the snapshot is written first then, and says what cannot be written, if anything)
        return cls(path, run, fsync_interval, reopened=fd)

    def _create(self, run: str, synced: bool = True) -> None:
        """An empty journal of ``run`` in place of any file at the path: written aside, fsynced, renamed
        (``synced``: False, neither synced: :meth:`_sync_created` does it)."""
        self._last_sync = float("-inf")
        self._fd = -1
        path = self.path
        tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
            os.write(fd, f"{HEADER}{run}\n".encode())
            if synced:
                os.fsync(fd)
            os.close(fd)
            os.replace(tmp, path)
            if synced:
                fsync_directory(path.parent)
            self._fd = os.open(path, os.O_WRONLY | os.O_APPEND)
        except OSError as err:
            raise LauncherFailure(f"{path}: cannot create journal: {err.strerror or err}") from None
        self._sync = BackgroundSync(self._fd, f"fsync {path.name}")

    def _sync_created(self) -> None:
        """What :meth:`_create` left undone (``synced=False``): the header's sync (the rename's is the
        directory sync that put the snapshot in place after it, in the same folder)."""
        try:
            os.fsync(self._fd)
        except OSError as err:
            raise LauncherFailure(f"{self.path}: cannot create journal: {err.strerror or err}") from None

    def restart(self, run: str) -> None:
        """Start over as the journal of ``run``: the snapshot of that id, just written and durable, holds
        every fact written here so far.  Why: the journal of a run is replayed whole at every ``--status``
        and resume, and a run half-way through a million tasks had a million lines of it (seconds to
        replay, and a file that only grows).  A crash before the new file replaces the old one leaves the
        old journal, of another id: it is not replayed, and nothing is lost (the snapshot has it all)."""
        self.settle()
        self._pending.clear()  # (facts the snapshot has: they were in the ledger it was written from)
        self._sync.close()
        try:
            os.close(self._fd)
        except OSError:
            pass  # (what it held is in the snapshot)
        self._fd = -1
        self._create(run)

    def started(self, task_id: int, start: float, host: str, core_ids: tuple[int, ...]) -> None:
        slots = compress(core_ids, ",")
        self._pending.append(f"S\t{task_id}\t{start:.3f}\t{host}\t{slots}\n")

    def finished(self, task_id: int, exit_code: int, start: float, runtime: float, attempt: int = 1) -> None:
        tail = f"\t{attempt}\n" if exit_code and attempt > 1 else "\n"  # (the common end: five fields)
        self._pending.append(f"E\t{task_id}\t{exit_code}\t{start:.3f}\t{runtime:.3f}{tail}")

    def requeued(self, task_id: int) -> None:
        self._pending.append(f"Q\t{task_id}\n")

    def flush(self, now: float, force_sync: bool = False) -> None:
        """Hand pending lines to the OS; begin an fsync when the interval has passed (``force_sync``:
        fsync now, and return when it is done)."""
        if self._creation is not None:  # (the first turn's: its tasks were sent before, they run meanwhile)
            self.settle()
        try:
            self._sync.check()
            if self._pending:
                data = "".join(self._pending).encode(ENCODING, ERRORS)
                self._pending.clear()
                view = memoryview(data)
                while view:
                    view = view[os.write(self._fd, view) :]
            if force_sync:
                self._sync.sync_now()
                self._last_sync = now
            elif now - self._last_sync >= self.fsync_interval and self._sync.request():
                self._last_sync = now
        except OSError as err:
            raise LauncherFailure(f"{self.path}: cannot write journal: {err.strerror or err}") from None

    def close(self, remove: bool = False) -> None:
        self.settle()
        if self._fd < 0:
            return
        self._sync.close()
        os.close(self._fd)
        self._fd = -1
        if remove:
            try:
                self.path.unlink()
            except OSError:
                pass


class _Creation:
    """A new run's first snapshot put in place and its journal created, in a thread beside the loop.

    Why: on a journaled file system each of their syncs waits for a commit of the file system's own
    journal (measured on ext4 here: 37 ms in all before the first task of a new sweep could start,
    1.4% of a sweep of 2.5 s).  What the snapshot says is written before (its text is handed to the
    OS in the caller's thread: a full disk is said there, before anything starts); only the syncs and
    the renames wait here, while the first loop turn sends its tasks to the nodes, which start them.
    What is promised does not change: the turn's records are handed to the OS at its end, as every
    turn's (its flush waits for this first), the snapshot is in place before its journal exists,
    and a kill meanwhile leaves the previous queuestate whole (no record of the new run is lost:
    none was written)."""

    def __init__(self, work: Callable[[], object], name: str) -> None:
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, args=(work,), name=name, daemon=True)
        before = signal.pthread_sigmask(signal.SIG_BLOCK, signal.valid_signals())  # (as BackgroundSync's)
        try:
            self._thread.start()
        finally:
            signal.pthread_sigmask(signal.SIG_SETMASK, before)

    def _run(self, work: Callable[[], object]) -> None:
        try:
            work()
        except BaseException as err:  # (a LauncherFailure; raised in the loop's thread by wait)
            self._error = err

    def wait(self) -> None:
        self._thread.join()
        if self._error is not None:
            raise self._error


def replay(path: Path, run: str, ledger: Ledger) -> int:
    """Apply the journal at ``path`` to ``ledger`` if it belongs to ``run``.

    Returns the number of records applied (0 when there is no journal, or it
    belongs to another run, i.e. it predates the snapshot).
    """
    if not path.exists():
        return 0
    text = read_text(path, "journal")
    lines = text.split("\n")
    journal_run = run_of(lines[0])
    if journal_run is None:
        raise InputError("not an mpilauncher journal (bad first line)", str(path), 1)
    if journal_run != run:
        return 0
    complete = lines[1:-1]  # the text after the last newline is a cut-short line, or ''
    applied = 0
    known = fields.Known()
    common = _Common(ledger, known)
    for number, line in enumerate(complete, start=2):
        try:
            if not common.apply(line):
                _apply(line, ledger, known)
        except ValueError as err:
            raise InputError(f"corrupt journal record {line[:60]!r}: {err}", str(path), number) from None
        applied += 1
    return applied


def run_in(path: Path) -> str | None:
    """The run of the journal at ``path``, from its first line; None when no file is there.  A file there
    that is not a journal is refused, as :func:`replay` refuses it."""
    try:
        with open(path, "rb") as head:
            first = head.readline(4096).decode(ENCODING, ERRORS)
    except FileNotFoundError:
        return None
    except OSError as err:
        raise InputError(f"cannot read journal: {err.strerror or err}", str(path)) from None
    run = run_of(first)
    if run is None:
        raise InputError("not an mpilauncher journal (bad first line)", str(path), 1)
    return run


def has_records(path: Path) -> bool:
    """Whether the file at ``path`` holds more than a journal's first line (a journal created, and nothing
    written to it yet, holds nothing to lose)."""
    try:
        with open(path, "rb") as head:
            first = head.readline(4096)
            return bool(head.read(1)) or not first.startswith(HEADER.encode())
    except OSError:
        return False


def run_of(first_line: str) -> str | None:
    """The run a journal belongs to, from its first line; None: not a journal's first line."""
    return first_line[len(HEADER) :].strip() if first_line.startswith(HEADER) else None


def _after_last_newline(fd: int, size: int, chunk: int = 65536) -> int:
    """The length of the file's complete lines: the offset after its last newline (0: none)."""
    end = size
    while end > 0:
        begin = max(0, end - chunk)
        found = os.pread(fd, end - begin, begin).rfind(b"\n")
        if found >= 0:
            return begin + found + 1
        end = begin
    return 0


def _apply(line: str, ledger: Ledger, known: fields.Known) -> None:
    """One record, every field checked (see :mod:`.fields`; ``known``: the hosts and slot lists checked
    before); ValueError names the problem."""
    items = line.split("\t")
    kind = items[0]
    if kind not in _FIELD_COUNTS:
        raise ValueError(f"unknown kind {kind!r} (known: {', '.join(_FIELD_COUNTS)})")
    if len(items) != _FIELD_COUNTS[kind] and not (kind == "E" and len(items) == 6):
        raise ValueError(f"{len(items)} fields where a {kind} record has {_FIELD_COUNTS[kind]}")
    task_id = fields.task_id(items[1])
    if task_id not in ledger.records:
        raise ValueError(f"task {task_id} is not in the queuestate")
    if kind == "S":
        ledger.started(task_id, known.host(items[3]), known.slots(items[4]), fields.start_time(items[2]))
    elif kind == "E":
        attempt = fields.attempt(items[5]) if len(items) == 6 else 1
        ledger.finished(task_id, fields.exit_code(items[2]), fields.start_time(items[3]), fields.runtime(items[4]),
                        attempt)  # fmt: skip
    else:
        ledger.requeued(task_id)


#: Tab-separated fields of each kind of record, the kind included (an E record of a failed attempt after the
#: first has one more: its attempt).
_FIELD_COUNTS = {"S": 5, "E": 5, "Q": 2}

#: Start and end records as our writer writes them, digits bounded (ids below 10**9, exit codes of
#: three digits, times below 10**10 s with three decimals): what the fields' readers accept of them.
_ID, _TIME = r"(0|[1-9][0-9]{0,8})", r"([0-9]{1,10}\.[0-9]{3})"


@functools.cache
def _common_shapes() -> tuple[re.Pattern, re.Pattern]:
    """The patterns of the start and end records, compiled when a journal is first read (a new sweep
    reads none: ~0.5 ms of its start)."""
    start = re.compile(rf"S\t{_ID}\t{_TIME}\t([^\t]+)\t([^\t]*)")
    return start, re.compile(rf"E\t{_ID}\t(0|-?[1-9][0-9]{{0,2}})\t{_TIME}\t{_TIME}")


class _Common:
    """The start and end records of the common shapes, applied with one match each (a journal of one
    snapshot interval of short tasks: 112,612 records, 0.35 s a field reader at a time)."""

    __slots__ = ("started", "finished", "known", "start_shape", "end_shape")

    def __init__(self, ledger: Ledger, known: fields.Known) -> None:
        self.started, self.finished, self.known = ledger.started, ledger.finished, known
        self.start_shape, self.end_shape = _common_shapes()

    def apply(self, line: str) -> bool:
        """Apply ``line`` if it has a common shape, its fields within bounds and its task in the ledger;
        False (nothing done) otherwise: :func:`_apply` reads it then, and names what is wrong."""
        try:
            if line[0] == "S":
                match = self.start_shape.fullmatch(line)
                if match is not None:
                    task_id, start, host, slots = match.groups()
                    self.started(int(task_id), self.known.host(host), self.known.slots(slots), float(start))
                    return True
            elif line[0] == "E":
                match = self.end_shape.fullmatch(line)
                if match is not None:
                    task_id, exit_code, start, runtime = match.groups()
                    code = int(exit_code)
                    if MIN_EXIT <= code <= MAX_EXIT:
                        self.finished(int(task_id), code, float(start), float(runtime))
                        return True
        except (KeyError, IndexError, ValueError):  # (no such task, an empty line, a bad host or slots)
            pass
        return False
