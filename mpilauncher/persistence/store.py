"""Rank 0's state store: the ledger kept on disk as snapshot + journal.

The store is an observer of the scheduler's facts (see
:mod:`mpilauncher.core.observer`): every start, end and requeue goes to the
in-memory ledger and, as one short line, to the journal -- the same fact
written twice by one class, the journal being the ledger's write-ahead log.
The snapshot is rewritten atomically at the start, at the end and every so
often in between (never more than a small share of the run's time: see
:meth:`StateStore.flush`).  :func:`load_state` reads both back (which journal
is a snapshot's, wherever the two were moved: :func:`journal_of`).
"""

from __future__ import annotations

import functools
import os
import shlex
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

from mpilauncher.core.events import Requeued, Retried, Start, TaskEnded
from mpilauncher.core.ledger import FAILED, QUEUED, RUNNING, STATES, Ledger
from mpilauncher.core.nodes import Node
from mpilauncher.core.observer import Observer
from mpilauncher.core.ranges import runs_text
from mpilauncher.core.tasks import CoresSpec
from mpilauncher.errors import InputError, LauncherFailure
from mpilauncher.heap import no_full_collections
from mpilauncher.persistence import journal, queuestate
from mpilauncher.persistence.files import atomic_write, put_in_place, write_aside
from mpilauncher.persistence.lock import current_holder, still_held
from mpilauncher.persistence.queuestate import LoadedState, StateMeta
from mpilauncher.persistence.written import WrittenLines
from mpilauncher.plural import counted, them

#: Snapshot at most every this many seconds...
MIN_SNAPSHOT_INTERVAL = 5.0
#: ...and spend at most 1/this of the run writing snapshots.
SNAPSHOT_COST_SHARE = 50


def journal_path(state_path: Path) -> Path:
    return state_path.with_name(state_path.name + ".journal")


class JournalLost(InputError):
    """A snapshot whose run journals after it, and no journal beside it (see :func:`journal_of`)."""

    def __init__(self, path: Path, journal_name: str) -> None:
        super().__init__(
            f"its journal {journal_name} is not beside it, and it holds what happened after this snapshot (the"
            " tasks it ran since would run again): move it back beside the queuestate, or resume from the"
            f" snapshot alone with --resume {shlex.quote(str(path))} --force-resume",
            str(path),
        )
        self.journal_name = journal_name


def journal_of(path: Path, meta: StateMeta) -> Path | None:
    """The journal of the snapshot at ``path`` (``meta``: its ``#meta``), to replay over it; None: none.

    A journal is this snapshot's when its first line names the snapshot's run (a random id each
    snapshot: see :meth:`StateStore.snapshot`): the one the ``#meta`` names, or else ``<path>.journal``,
    the name it has when both were renamed (``mv qs renamed; mv qs.journal renamed.journal``), both
    beside the snapshot.  One of another run is never applied: it predates the snapshot (a kill while
    the journal started over left it), so nothing was journaled after the snapshot yet.  Neither there
    where the snapshot says its run journals after it (``journaled``): the journal is lost, and the
    snapshot alone would run again every task journaled since -- :class:`JournalLost`.  A run always
    has a file at its journal's name while such a snapshot of it is on disk (see :meth:`StateStore.open`),
    so a journal never written is one of another run, never a missing one."""
    named = path.with_name(meta.journal or journal_path(path).name)
    present = False
    for candidate in dict.fromkeys((named, journal_path(path))):
        run = journal.run_in(candidate)
        if run == meta.run:
            return candidate
        present = present or run is not None
    if meta.journaled and not present:
        raise JournalLost(path, named.name)
    return None


class StateStore(Observer):
    """Snapshot + journal for one run; see the module docstring.  ``nodes`` names the nodes the
    facts give by index (the journal and the queuestate write host names)."""

    def __init__(
        self,
        path: Path,
        ledger: Ledger,
        meta: StateMeta,
        default_cores: CoresSpec,
        fsync_interval: float,
        nodes: Mapping[int, Node] | None = None,
        earlier: queuestate.Earlier | None = None,
    ) -> None:
        """``earlier``: a resume's queuestate as read (:attr:`LoadedState.earlier`), for its snapshots
        to copy lines from (see :func:`queuestate.render_pieces`): kept for the run, as the completed
        lines of earlier runs are copied from it, not read (:meth:`Ledger.read_later`)."""
        self.path = path
        self._earlier = earlier
        self.nodes: Mapping[int, Node] = nodes or {}
        self.ledger = ledger
        self.meta = meta
        self.default_cores = default_cores
        self.fsync_interval = fsync_interval
        meta.journal = journal_path(path).name
        self._journal: journal.JournalWriter | None = None
        self._next_snapshot = 0.0
        self._dirty = False
        #: The completed lines of the last snapshot, for the next to copy (see :mod:`.written`), with
        #: what they stand on: the ledger's table and its count of completed rows written again.
        self._written: WrittenLines | None = None
        self._written_for: tuple[object, int] = (None, 0)
        self._spans_later: list[tuple[int, int, int, int]] | None = None

    def open(self, now: float, requeued: Sequence[int] | None = None) -> None:
        """Write the first snapshot, then start this run's journal (in that order: see resume).

        ``requeued``: this run resumes the snapshot at :attr:`path` (and its
        meta's run), and changed nothing of it but these tasks, queued again.
        Then it goes on with that snapshot's journal instead: their requeue
        records are appended to it, and the first snapshot is written at the
        end of the loop turn of the first start.  Why: at half a million tasks
        completed, a snapshot is 52 MB written and synced (a quarter of a
        second) before anything could start, and it would say what the
        snapshot and journal on disk already say.  (No journal of that run, as
        after a clean stop: the snapshot first, as for a new run.  Nor after a
        snapshot that says none follows it, the last of a run killed before
        its journal was removed: appended there, records would follow a
        snapshot that says nothing does.)

        A new run's journal replaces one of an earlier run once the snapshot
        is in place; where there is none, it is put in place before the
        snapshot: a snapshot that says a journal follows it is then never on
        disk without a file of its journal's name (see :func:`journal_of`)."""
        if requeued is not None and self.meta.run and self.meta.journaled is not False:
            self._journal = journal.JournalWriter.reopen(journal_path(self.path), self.meta.run, self.fsync_interval)
            if self._journal is not None:
                for task_id in requeued:
                    self._journal.requeued(task_id)
                self._journal.flush(now)
                return
        self.meta.run = os.urandom(6).hex()
        aside = self.snapshot(now, 0.0, aside=True)  # (its text handed to the OS; synced and renamed by:)
        path = journal_path(self.path)
        in_place = functools.partial(put_in_place, aside, self.path)
        if os.path.lexists(path):  # (one of an earlier run, replaced once the snapshot is in place)
            self._journal = journal.JournalWriter(path, self.meta.run, self.fsync_interval, after=in_place)
            return
        try:  # (none: this run's first, so that its snapshot is never on disk without one: see journal_of)
            self._journal = journal.JournalWriter(path, self.meta.run, self.fsync_interval, then=in_place)
        except LauncherFailure:
            aside.unlink(missing_ok=True)
            raise

    def settle(self) -> None:
        """Return once the run's first snapshot is in place and its journal exists (:meth:`open` leaves
        that to a thread); what failed there is raised here."""
        if self._journal is not None:
            self._journal.settle()

    # -- the facts ----------------------------------------------------------
    def on_started(self, start: Start, at: float) -> None:
        self.started(start.task_id, self.nodes[start.node].name, start.core_ids, at)

    def on_ended(self, ended: TaskEnded) -> None:
        report = ended.report
        self.finished(report.task_id, report.exit_code, report.start, report.runtime, ended.attempt)

    def on_requeued(self, requeued: Requeued | Retried) -> None:
        self.requeued(requeued.task_id)

    def on_turn_end(self, wall: float, elapsed: float) -> None:
        self.flush(wall, elapsed)

    # -- changes ----------------------------------------------------------
    def started(self, task_id: int, host: str, core_ids: tuple[int, ...], start: float) -> None:
        self.ledger.started(task_id, host, core_ids, start)
        self._journal.started(task_id, start, host, core_ids)
        self._dirty = True

    def finished(self, task_id: int, exit_code: int, start: float, runtime: float, attempt: int = 1) -> None:
        self.ledger.finished(task_id, exit_code, start, runtime, attempt)
        self._journal.finished(task_id, exit_code, start, runtime, attempt)
        self._dirty = True

    def requeued(self, task_id: int) -> None:
        self.ledger.requeued(task_id)
        self._journal.requeued(task_id)
        self._dirty = True

    # -- disk -------------------------------------------------------------
    def flush(self, now: float, elapsed: float) -> None:
        """Once per loop turn: journal lines to the OS, snapshot when due."""
        self._journal.flush(now)
        if self._dirty and now >= self._next_snapshot:
            self.snapshot(now, elapsed)

    def snapshot(self, now: float, elapsed: float, restart_journal: bool = True, aside: bool = False) -> Path | None:
        """Write the snapshot; the journal then starts over (``restart_journal``), under a new id that
        pairs it with this snapshot (see :meth:`journal.JournalWriter.restart`).  ``aside``: written
        beside its place, not synced: the caller puts it in place (the first of a run: see :meth:`open`);
        returns that file."""
        began = time.monotonic()
        self.settle()  # (the first snapshot in place before this one is written: never the older one last)
        if self._spans_later is not None:
            self._keep_written(self._spans_later)
            self._spans_later = None
        restart = restart_journal and self._journal is not None
        self.meta.journaled = restart_journal  # (the last of a run says that nothing comes after it)
        if restart:
            self.meta.run = os.urandom(6).hex()
        self.meta.elapsed = self.ledger.total_time(elapsed)
        self.meta.longest = round(self.ledger.longest_completed(), 3)
        self.meta.written = time.strftime("%Y-%m-%dT%H:%M:%S")
        spans: list[tuple[int, int, int, int]] = []
        pieces = queuestate.render_pieces(
            self.ledger, self.meta, self.default_cores, self._earlier, self._copyable(), spans
        )
        written = None
        if aside:
            written = write_aside(self.path, pieces)
            self._spans_later = spans  # (its lines are copied by the next snapshot once it is in place)
        else:
            atomic_write(self.path, pieces)
            self._keep_written(spans)
        if restart:
            self._journal.restart(self.meta.run)
        cost = time.monotonic() - began
        self._next_snapshot = now + max(MIN_SNAPSHOT_INTERVAL, SNAPSHOT_COST_SHARE * cost)
        self._dirty = False
        return written

    def _copyable(self) -> WrittenLines | None:
        """The last snapshot's completed lines, if they still stand: nothing wrote a completed task's row
        since, the table is the same, and its file is as written."""
        written = self._written
        if written is None:
            return None
        table, rewritten = self._written_for  # (the table by identity: comparing two is a pass over both)
        if table is not self.ledger.tasks or rewritten != self.ledger.completed_rewritten or not written.unchanged():
            self._forget_written()
            return None
        return written

    def _keep_written(self, spans: list[tuple[int, int, int, int]]) -> None:
        self._forget_written()
        self._written = WrittenLines.open(self.path, spans)
        self._written_for = (self.ledger.tasks, self.ledger.completed_rewritten)

    def _forget_written(self) -> None:
        if self._written is not None:
            self._written.close()
            self._written = None

    def close(self, now: float, elapsed: float) -> None:
        """Final snapshot; the journal is then redundant and removed."""
        if self._journal is not None:
            self._journal.flush(now, force_sync=True)
        self.snapshot(now, elapsed, restart_journal=False)  # (the journal is removed next)
        self._forget_written()
        if self._journal is not None:
            self._journal.close(remove=True)
            self._journal = None


def load_state(
    path: Path,
    cores_for_pylauncher: CoresSpec,
    states_only: bool = False,
    journal_lost: Callable[[JournalLost], None] | None = None,
) -> LoadedState:
    """Read a queuestate and replay its journal (see :func:`journal_of`): the sweep as it stood at the
    stop (``states_only``: see :func:`queuestate.parse`).  A journal lost is refused, or, where
    ``journal_lost`` is given (``--force-resume``), told to it and the snapshot read alone."""
    with no_full_collections():  # (a million tasks: see heap.py)
        loaded = queuestate.load(path, cores_for_pylauncher, states_only)
        if not loaded.from_pylauncher and loaded.meta.run:
            try:
                loaded.journal = journal_of(path, loaded.meta)
            except JournalLost as lost:
                if journal_lost is None:
                    raise
                journal_lost(lost)
            if loaded.journal is not None:
                journal.replay(loaded.journal, loaded.meta.run, loaded.ledger)
    return loaded


def last_writes(state: Path, journal_file: Path | None) -> tuple[float, float]:
    """When the snapshot ``state`` was written, and when it or ``journal_file`` (the journal replayed over
    it: see :func:`journal_of`) was last written to (file times).  For a sweep no launcher runs, the
    second is about when its last run ended: a kill -9 leaves the run's time after its last snapshot in
    no file's contents, only in the journal's last write (a clean end leaves no journal: the two are one)."""
    times = []
    for path in (state, journal_file or state):
        try:
            times.append(path.stat().st_mtime)
        except OSError:
            times.append(0.0)
    return times[0], max(times)


def time_after_snapshot(state: Path, journal_file: Path | None) -> float:
    """How long the last run of a stopped sweep went on after its last snapshot, whose ``elapsed``
    stops at its writing (see :func:`last_writes`); 0 after a clean end."""
    snapshot, last = last_writes(state, journal_file)
    return max(0.0, last - snapshot)


def state_file_kind(text: str) -> str | None:
    """What ``text`` is if it is a queuestate or its journal ("queuestate", "queuestate journal",
    "PyLauncher queuestate"), else None: such a file given as the commandlines would run its lines as
    commands, and write a new sweep's queuestate over the one it was (a forgotten ``--resume``)."""
    if text.startswith(queuestate.SNAPSHOT_MARK):
        return "queuestate"
    if text.startswith(journal.HEADER):
        return "queuestate journal"
    first = text.lstrip().split("\n", 1)[0].strip()
    return "PyLauncher queuestate" if first == "queued" else None


def describe_state(path: Path) -> str:
    """A human summary of a queuestate with its journal replayed (``--status``)."""
    loaded = load_state(path, CoresSpec("fixed", 1), states_only=True)  # (every line checked all the same)
    ledger = loaded.ledger
    counts = ledger.counts()
    lines = [f"{path}: {counted(len(ledger), 'task')}" + (" (written by PyLauncher)" if loaded.from_pylauncher else "")]
    if loaded.meta.commandlines:
        lines.append(f"commandlines: {loaded.meta.commandlines}")
    if loaded.meta.workdir:
        lines.append(f"workdir: {loaded.meta.workdir}")
    holder = current_holder(path)
    live = still_held(holder)
    if holder is not None:
        if not live:
            lines.append(f"lock: left by a launcher that no longer runs ({holder.describe()}); a resume takes it over")
        else:
            lines.append(f"in use: a launcher is running this sweep ({holder.describe()})")
    for state in STATES:
        label = "aborted" if state == FAILED else state
        lines.append(f"{label:<9} {counts[state]:3d} jobs: {runs_text(ledger.id_runs(state))}")
    todo = counts[QUEUED] + counts[RUNNING]
    if todo:
        if counts[RUNNING] and not live:  # (no launcher runs it: they were cut short, not running now)
            were = "was" if counts[RUNNING] == 1 else "were"
            lines.append(
                f"(the {counted(counts[RUNNING], 'running task')} {were} interrupted when the sweep stopped: a"
                f" resume runs {them(counts[RUNNING])} again)"
            )
        if live:  # (a resume would be refused by the lock: nothing to do but wait)
            lines.append(f"{counted(todo, 'task')} left, being run by the launcher above")
        else:
            lines.append(f"{counted(todo, 'task')} to run: python -m mpilauncher --resume {shlex.quote(str(path))}")
    else:
        lines.append("nothing left to run" + (f" ({counts[FAILED]} failed: --rerun-failed)" if counts[FAILED] else ""))
    return "\n".join(lines) + "\n"
