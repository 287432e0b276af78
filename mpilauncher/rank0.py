"""Rank 0's part of a run (and a single process's): check everything, then run, then report.

Order matters for "bad input loses nothing": every input is read and checked
(commandlines or queuestate, cores, workdir, the queuestate we would
overwrite) *before* the first byte is written.  Only then is the workdir
created, the first snapshot written and the first task started.
"""

from __future__ import annotations

import contextlib
import functools
import os
import re
import time
from io import TextIOBase as TextIO
from pathlib import Path

from mpilauncher import __version__, chain, cluster, log, submit, workdirs
from mpilauncher.config import CLI_JOB_TYPE, DEFAULT_POLL_INTERVAL, Config, option_error
from mpilauncher.core import limits
from mpilauncher.core.events import TaskEnded
from mpilauncher.core.ledger import COMPLETED, FAILED, QUEUED, RUNNING, Ledger
from mpilauncher.core.observer import Observer
from mpilauncher.core.ranges import compress, expand
from mpilauncher.core.scheduler import Scheduler, find_unplaceable
from mpilauncher.core.stats import FinalStatistics, compute
from mpilauncher.core.tasks import CoresSpec, TaskTable, parse_commandlines
from mpilauncher.errors import (
    EXIT_LAUNCHER_FAILED,
    EXIT_OK,
    EXIT_TASKS_FAILED,
    InputError,
    LauncherError,
    LauncherFailure,
)
from mpilauncher.execution import starters
from mpilauncher.execution.resources import Gpus
from mpilauncher.heap import no_full_collections, young_collections_only
from mpilauncher.persistence import journal
from mpilauncher.persistence.files import read_text, sha256_hex
from mpilauncher.persistence.lock import SweepLock
from mpilauncher.persistence.queuestate import Earlier, LoadedState, StateMeta
from mpilauncher.persistence.store import (
    JournalLost,
    StateStore,
    journal_path,
    load_state,
    state_file_kind,
    time_after_snapshot,
)
from mpilauncher.plural import counted, them
from mpilauncher.protocol import Hello
from mpilauncher.records import field, record, replace
from mpilauncher.report import progress
from mpilauncher.report.joblog import Joblog
from mpilauncher.report.latency import DispatchLatencies
from mpilauncher.report.summary import final_report, startup_lines
from mpilauncher.report.tasklog import TaskLog
from mpilauncher.report.trace import Trace
from mpilauncher.result import FAILED_NAMED, FailedTask, RunResult, shell_word
from mpilauncher.runtime.agent import Agent
from mpilauncher.runtime.master import Master, nodes_from_hellos
from mpilauncher.runtime.stop import SignalGuard, StopRequest, signal_name
from mpilauncher.transport.local import LocalTransport


@record
class Plan:
    """The checked inputs of a run."""

    ledger: Ledger
    to_run: TaskTable
    meta: StateMeta
    default_cores: CoresSpec
    state_path: Path
    resumed_from: Path | None
    #: Lines for the start-up block (e.g. that an unfinished run of this sweep is continued).
    notes: list[str] = field(default_factory=list)
    #: A resume: the queuestate as read, for the snapshots to copy lines from.
    earlier: Earlier | None = None
    #: A resume that may go on with the snapshot on disk and its journal (see :func:`goes_on`).
    resumed: Resumed | None = None
    #: A new sweep: the queuestate already at ``state_path``, states only, as :func:`earlier_run_of` read
    #: it, for :func:`check_state_target` (read once: a finished sweep of a million tasks is 0.6 s a read).
    found: LoadedState | None = None
    #: A resume: the directory the sweep's last run ran in, as its queuestate said (see :func:`moved_workdir`).
    ran_in: str | None = None
    #: A resume: the tasks whose retry was waiting (or running) at the stop, whose failed attempts after
    #: their base count against this run's --retries: task -> base (see :class:`~mpilauncher.core.scheduler.
    #: Scheduler`'s ``retry_bases``; 0 unless the queuestate's ``#meta`` says otherwise).
    retrying: dict[int, int] = field(default_factory=dict)


@record
class Resumed:
    """A queuestate as a resume read it: the table and the sweep's facts (see
    :meth:`StateMeta.sweep_facts`) as loaded, and the tasks it queued again."""

    tasks: TaskTable
    facts: str
    requeued: list[int]


def goes_on(plan: Plan) -> list[int] | None:
    """The tasks a resume queued again, when that is all it changed of the snapshot it resumed and it
    keeps it in the same place: then its store goes on with that snapshot and its journal (see
    :meth:`StateStore.open`).  None: a first snapshot is due (a new sweep, a resume that revised the
    tasks or the sweep's facts, or one written under another name)."""
    resumed = plan.resumed
    if resumed is None or plan.resumed_from is None or plan.ledger.tasks is not resumed.tasks:
        return None
    if plan.meta.sweep_facts() != resumed.facts:
        return None
    try:
        if plan.state_path.resolve() != plan.resumed_from.resolve():
            return None
    except OSError:
        return None
    return resumed.requeued


def plan_from_commandlines(config: Config) -> Plan:
    path = Path(config.commandlines)
    given = config.commandlines_text is not None  # from Python: ``commandlines`` only names them
    text = config.commandlines_text if given else read_text(path, "commandlines file")
    kind = None if given else state_file_kind(text)
    if kind is not None:
        state = path if kind != "queuestate journal" else path.with_name(path.name.removesuffix(".journal"))
        go_on = f"to go on with its sweep, --resume {shell_word(state)}"
        raise InputError(f"is a {kind}, not a commandlines file: {go_on}", str(path))
    tasks = parse_commandlines(text, str(path), config.cores, config.block, config.expected_time)
    meta = StateMeta(
        commandlines=config.commandlines if given else str(path.resolve()),
        sha256=sha256_hex(text.encode("utf-8", "surrogateescape")),
        cores=str(config.cores),
    )
    meta.extra["cwd"] = os.getcwd()  # where its tasks run: see plan_from_queuestate
    meta.extra["sweep"] = new_sweep_id()
    if config.block > 1:
        meta.extra["block"] = config.block
    if config.expected_time == "file":  # the same file read without the prefixes is another sweep
        meta.extra["expected_time"] = "file"
    plan = Plan(Ledger(tasks), tasks, meta, config.cores, workdirs.state_target(config), None)
    mark_mpi_tasks(plan, config)
    warn_about_lines(text, str(path), mpi=bool(plan.meta.extra.get("mpi")))
    return plan


#: What ``warn_about_lines`` says of a line ending in a backslash, and of PYL_MPIEXEC outside an MPI sweep.
_CONTINUED = "ends in a backslash, but each line is a task of its own: the next line is not its continuation" \
    " (join them into one line)"  # fmt: skip
_NOT_MPI = "PYL_MPIEXEC stands for the MPI starter only in a sweep of MPI tasks (--mpi, IbrunLauncher); here" \
    " the shell runs it as a command, which it cannot find (exit 127)"  # fmt: skip


def warn_about_lines(text: str, source: str, mpi: bool) -> None:
    """Lines that run, but not as their writer meant (user walks): a line ending in a backslash is not
    continued on the next (each line is a task, as in PyLauncher), ``$PYL_ID_out`` is the shell's
    variable ``PYL_ID_out``, which nothing sets (every task would write the same file), and
    ``PYL_MPIEXEC`` in a sweep that is not of MPI tasks runs as a command (exit 127).  One warning each,
    at the first such line; searches of the text in C (a million lines: milliseconds), not of the tasks:
    a sweep whose every line holds ``$PYL_ID.out`` visits none of them."""

    def continued(at: int) -> str | None:
        return None if text[at - 1 : at] == "\\" else _CONTINUED  # (``\\``: a backslash, not a continuation)

    def longer_name(at: int) -> str | None:
        name = _longer_name().match(text, at)[1]
        marker, rest = name[:6], name[6:]
        return (f"${name} is the shell's variable {name}, which nothing sets (every task gets the same empty"
                f" text), not the task number {marker} followed by {rest}: write ${{{marker}}}{rest}")  # fmt: skip

    looks = [(lambda at: _first(_longer_name(), text, at), longer_name)]
    if "\\" in text:  # (a search for one character is ten times as fast as for two, and most sweeps have none)
        looks.insert(0, (lambda at: text.find("\\\n", at), continued))
    if not mpi:
        looks.append((lambda at: text.find("PYL_MPIEXEC", at), lambda _at: _NOT_MPI))
    for find, problem_at in looks:
        at = find(0)
        while at >= 0:
            begin = text.rfind("\n", 0, at) + 1
            problem = None if text[begin:at].lstrip().startswith("#") else problem_at(at)  # (a comment: no task)
            if problem is not None:
                warn(f"{source}:{text.count(chr(10), 0, begin) + 1}: {problem}")
                break
            at = find(at + 1)


@functools.cache
def _longer_name() -> re.Pattern:
    """``$PYL_ID`` or ``$PYLTID`` read by the shell as the start of a longer name (its names are ASCII);
    compiled when a commandlines file is first read, not at every start."""
    return re.compile(r"\$((?:PYL_ID|PYLTID)[A-Za-z0-9_]+)")


def _first(pattern: re.Pattern, text: str, at: int) -> int:
    found = pattern.search(text, at)
    return found.start() if found else -1


#: The queuestate's ``#meta`` key for the retry bases of the tasks whose retry waited at the stop.
RETRY_BASES = "retry_bases"


def read_retry_bases(saved: dict[str, str] | None, tasks: int, source: str) -> dict[int, int]:
    """Task -> base, from ``#meta``'s ``{"BASE": "ids", ...}`` (its form checked as the line was read)."""
    bases: dict[int, int] = {}
    try:
        for base, ids in (saved or {}).items():
            bases.update(dict.fromkeys(expand(ids, largest=limits.MAX_TASK_ID, most=tasks), int(base)))
    except ValueError as err:
        raise InputError(f"corrupt #meta line: {RETRY_BASES} {err}", source) from None
    return bases


def keep_retry_bases(meta: StateMeta, scheduler: Scheduler) -> None:
    """For the snapshots: the retry bases a resume must count from, where not 0 (none: no key at all).

    Set at the run's start, before its first snapshot, and again at the stop: a run killed with kill -9
    is resumed from a snapshot of its own, and counted its tasks' retries from their first attempt where
    that snapshot had no bases (a retry fewer than ``--rerun-failed --retries`` gave).  Between the two
    the bases are those of the start: a task finished since keeps one that nothing uses (a resume
    does not run it)."""
    by_base: dict[int, list[int]] = {}
    for task_id, base in sorted(scheduler.pending_retry_bases().items()):
        by_base.setdefault(base, []).append(task_id)
    if by_base:
        meta.extra[RETRY_BASES] = {str(base): compress(ids, ",") for base, ids in by_base.items()}
    else:
        meta.extra.pop(RETRY_BASES, None)


def plan_from_queuestate(config: Config) -> Plan:
    source = Path(config.resume)
    loaded = load_state(source, config.cores, journal_lost=_without_journal if config.force_resume else None)
    ledger = loaded.ledger
    meta = loaded.meta
    as_read = ledger.tasks, meta.sweep_facts()
    # (read before the requeue, which makes failed tasks run again queued ones too: a user walk saw a retry
    # that waited at a Ctrl-C get --retries more at the resume, and more at every stop after it)
    retrying = frozenset(t for t in ledger.attempts if ledger.state(t) != FAILED)
    to_run = ledger.to_run(config.rerun_failed)
    if isinstance(config.expected_time, float):  # given now: it wins over what the sweep began with
        to_run = ledger.revise(to_run, expected=config.expected_time)
    requeued = ledger.requeue(to_run)
    if loaded.from_pylauncher:
        meta.cores = str(config.cores)
    else:
        if to_run:  # (nothing to run: nothing a changed file could mix up)
            check_commandlines_unchanged(meta, source, config.force_resume)
        warn_unchanged_by_resume(config, meta, source)
    if not loaded.from_pylauncher:  # (killed: its last run's time after its last snapshot is the sweep's too)
        ledger.elapsed_before += time_after_snapshot(source, loaded.journal)
    plan = Plan(ledger, to_run, meta, loaded.default_cores, workdirs.state_target(config), source)
    plan.earlier = loaded.earlier
    bases = read_retry_bases(meta.extra.pop(RETRY_BASES, None), len(ledger), str(source))
    plan.retrying = {task_id: bases.get(task_id, 0) for task_id in retrying}
    here, began = os.getcwd(), meta.extra.get("cwd")
    if began and began != here:  # (a command's relative paths are read from where it runs)
        warn(f"{source}: its tasks ran in {began}; they run here now, in {here}, where their relative paths lead")
    meta.extra["cwd"] = here
    plan.ran_in = began
    if not loaded.from_pylauncher and meta.journal in ("", journal_path(source).name):
        plan.resumed = Resumed(*as_read, requeued)
    mark_mpi_tasks(plan, config)
    return plan


def _without_journal(lost: JournalLost) -> None:
    """``--force-resume`` of a queuestate whose journal is lost: said, and resumed from the snapshot alone."""
    warn(f"{lost.source}: its journal {lost.journal_name} is not beside it: resuming from the snapshot alone"
         " (--force-resume); the tasks it journaled run again")  # fmt: skip


def warn_unchanged_by_resume(config: Config, meta: StateMeta, source: Path) -> None:
    """What a sweep is made of is fixed at its start: cores per task and blocks given to a resume were
    silently not taken (a user walk: ``--resume qs --cores 2`` said "1 core per task" and ran so)."""
    if config.cores_given and str(config.cores) != meta.cores:
        warn(f"{source}: its tasks keep the cores per task they began with ({meta.cores}), not {config.cores}:"
             " a resume does not change them (--start-over does, with the commandlines)")  # fmt: skip
    began_block = int(meta.extra.get("block", 1))
    if config.block > 1 and config.block != began_block:
        warn(f"{source}: its tasks keep the blocks they began with (block{began_block}), not block{config.block}:"
             " a resume does not change them (--start-over does, with the commandlines)")  # fmt: skip


def lock_sweep(config: Config, job_id: str | None) -> contextlib.ExitStack:
    """Take the exclusive lock of every queuestate this run reads or writes (see persistence/lock.py).

    Before anything is read: a plan read while another launcher still writes
    the state could miss its last completions and run them again.
    """
    paths = [workdirs.state_target(config)]
    if config.resume and Path(config.resume).resolve() != paths[0].resolve():
        paths.append(Path(config.resume))  # read here: nobody else may be writing it meanwhile
    stack = contextlib.ExitStack()
    try:
        for path in paths:
            lock = stack.enter_context(SweepLock(path, job_id))
            lock.acquire(config.break_lock)
            if lock.took_over is not None:
                warn(f"{path}: took over the lock of a launcher that no longer runs ({lock.took_over.describe()})")
    except BaseException:
        stack.close()
        raise
    return stack


def warn(text: str) -> None:
    log.warning(text)


def make_plan(config: Config, continuation: bool = False) -> Plan:
    """The run's plan: a new sweep, a resume, or -- the same commandlines again over
    a queuestate that holds a run of them -- that run continued.

    Continued when finished too: there is then nothing to run (but its failed tasks, with
    --rerun-failed), one line says so, and --start-over runs the whole sweep again.  A job
    script submitted again after its sweep had finished (by hand, Slurm's requeue) ran every
    task again, in silence, over the outputs of the first run.
    ``continuation``: this is a later job of a chain (mpilauncher/chain.py), which says so itself.
    """
    if not config.commandlines:
        return plan_from_queuestate(config)
    plan = plan_from_commandlines(config)
    earlier = earlier_run_of(plan) if not config.start_over else None
    if earlier is None:
        if config.rerun_failed:
            plan.notes.append(rerun_failed_later(config))
        return plan
    left, total = earlier
    continued = plan_from_queuestate(replace(config, commandlines=None, resume=str(plan.state_path)))
    failed = plan.found.ledger.counts()[FAILED]
    again = as_said(config, "--start-over", "start_over=True")
    rerun = as_said(config, "--rerun-failed", "rerun_failed=True")
    over = f"start over with {again}"
    if left:
        continued.notes.append(
            f"{plan.state_path} holds an unfinished run of these commandlines ({left} of {total} tasks not"
            f" completed): continuing it ({over})"
        )
    elif failed and config.rerun_failed:
        # (a user walk: it said "a new sweep has no failed task yet" and ran the completed tasks again too)
        continued.notes.append(
            f"{plan.state_path} holds a finished run of these commandlines with {counted(failed, 'failed task')}:"
            f" {rerun} runs {them(failed)} again ({over})"
        )
    elif not continuation:
        outcome, then = ("all completed", f"{again} runs the whole sweep again")
        if failed:
            outcome, then = (f"{failed} failed", f"{rerun} runs {them(failed)} again, {again} the whole sweep")
        continued.notes.append(
            f"{plan.state_path} holds a finished run of these commandlines ({counted(total, 'task')}, {outcome}):"
            f" nothing to run; {then}"
        )
    return continued


def rerun_failed_later(config: Config) -> str:
    """What --rerun-failed does for a new sweep (it was taken in silence: a user walk): nothing now, but it
    is no mistake either: a job script run again, or a chain's next job, continues the sweep with it."""
    name = as_said(config, "--rerun-failed", "rerun_failed=True")
    return (
        f"{name}: a new sweep has no failed task yet; its failed tasks run again when it is resumed or continued"
        " (run again over its unfinished queuestate, a later job of its chain)"
    )


def earlier_run_of(plan: Plan) -> tuple[int, int] | None:
    """(tasks left, tasks) when the plan's queuestate holds a run of the same sweep, else None.

    The same sweep: the same commandlines content (hash), cores and blocking.
    Re-submitting the job script after a time limit then goes on where it
    stopped instead of being refused or running everything again.
    """
    target = plan.state_path
    if not target.is_file():
        return None
    try:
        plan.found = loaded = load_state(target, CoresSpec("fixed", 1), states_only=True)  # (counts and meta only)
    except InputError:
        return None  # check_state_target says what is wrong with it
    meta = loaded.meta
    same = (
        not loaded.from_pylauncher
        and meta.sha256 == plan.meta.sha256
        and meta.cores == plan.meta.cores
        and meta.extra.get("block", 1) == plan.meta.extra.get("block", 1)
        and meta.extra.get("expected_time") == plan.meta.extra.get("expected_time")
        and bool(meta.extra.get("mpi")) == bool(plan.meta.extra.get("mpi"))
    )
    return (len(loaded.ledger.ids_in("queued", RUNNING)), len(loaded.ledger)) if same else None


def new_sweep_id() -> str:
    """What tells a sweep from every other, kept in its queuestate's ``#meta`` and in its workdirs' marker
    (see :func:`mark_workdir`): 12 random hexadecimal digits, given at its start (a sweep begun by an
    earlier version, or by PyLauncher, has none: its workdir is known by its place alone)."""
    return os.urandom(6).hex()


#: The ``#meta`` key of the commandlines file's hash as a --force-resume last accepted it.
FORCED_SHA256 = "forced_sha256"


def check_commandlines_unchanged(meta: StateMeta, source: Path, force: bool = False) -> None:
    """Refuse to resume when the commandlines file changed since the sweep began, unless forced.

    Task numbers are positions in that file: after an edit, "task 7" may be
    another command, and a resume would silently mix two sweeps.  (A missing
    file is fine: the queuestate holds every command.)  A forced resume remembers the file as it
    accepted it: the later resumes of the sweep were refused again for the same edit (a user walk);
    another edit is refused again.
    """
    path = Path(meta.commandlines) if meta.commandlines else None
    if path is None or not meta.sha256:
        return
    try:
        if not path.is_file():
            return
        current = sha256_hex(path.read_bytes())
    except OSError:  # (unreadable now: the queuestate holds every command)
        return
    if current in (meta.sha256, meta.extra.get(FORCED_SHA256)):
        return
    if force:
        meta.extra[FORCED_SHA256] = current
    else:
        raise InputError(
            f"the commandlines file {path} changed since this sweep began: task numbers may no longer match;"
            " --force-resume resumes anyway with the commands the queuestate holds",
            str(source),
        )


def mark_mpi_tasks(plan: Plan, config: Config) -> None:
    """IbrunLauncher / --mpi: every task is an MPI program (remembered for resume)."""
    if not (config.mpi or plan.meta.extra.get("mpi")):
        return
    plan.meta.extra["mpi"] = True
    plan.to_run = plan.ledger.revise(plan.to_run, mpi=True)


#: What else a new sweep may do with a queuestate it must not overwrite as it stands.
_OTHER_CHOICES = "or remove it, or choose another --queuestate, or overwrite it with --start-over"


def check_state_target(plan: Plan, start_over: bool = False) -> Aside | None:
    """Refuse to overwrite a queuestate that still holds unfinished work of another sweep (unless told
    to start over: then it is overwritten).  A finished one with failed tasks is not overwritten either:
    where to keep it is returned (see :func:`keep_aside`), ``None`` where there is none to keep.

    Why keep it: its run ended saying "run them again: --resume QUEUESTATE --rerun-failed", and a
    second sweep started with the same default name (a PyLauncher script of two sweeps, say) replaced
    it in silence -- the failed tasks could then be found only by running the whole first sweep again.
    Its journal goes with it where it has one (a kill -9 after the last end, before the final snapshot):
    what only the journal holds is part of the sweep kept.
    """
    target = plan.state_path
    found, plan.found = plan.found, None  # (read by earlier_run_of, unless told to start over)
    if plan.resumed_from is not None and target.resolve() == plan.resumed_from.resolve():
        return None
    if not target.exists():
        check_no_lone_journal(target, start_over)
        return None
    if target.is_dir():
        raise InputError("is a directory; --queuestate must name a file", str(target))
    try:
        other = found if found is not None else load_state(target, CoresSpec("fixed", 1), states_only=True)
    except JournalLost as lost:  # (a sweep not finished, for all it says: as one that is)
        if start_over:
            return None
        raise InputError(f"{lost.problem}, {_OTHER_CHOICES}", str(target)) from None
    except InputError as err:  # (the journal beside it, too: said as it is)
        raise InputError(
            f"exists and is not a readable queuestate ({err}): remove it or choose another --queuestate", str(target)
        ) from None
    counts = other.ledger.counts()
    unfinished = counts[QUEUED] + counts[RUNNING]
    if unfinished and not start_over:
        raise InputError(
            f"holds an unfinished sweep ({counted(unfinished, 'task')} not run): resume it with --resume"
            f" {shell_word(str(target))}, {_OTHER_CHOICES}",
            str(target),
        )
    if not counts[FAILED] or start_over:
        return None
    number, aside = 1, target.with_name(f"{target.name}.1")
    while any(os.path.lexists(path) for path in workdirs.files_of(aside)):
        number += 1
        aside = target.with_name(f"{target.name}.{number}")
    return Aside(aside, counts[FAILED], other.journal, commandlines_changed(other.meta))


def commandlines_changed(meta: StateMeta) -> bool:
    """Whether a sweep's resume would be refused for its commandlines file changed since it began."""
    try:
        check_commandlines_unchanged(meta, Path())
    except InputError:
        return True
    return False


@record
class Aside:
    """Where a finished queuestate with failed tasks is kept (see :func:`check_state_target`)."""

    path: Path
    failed: int
    journal: Path | None  # its journal, replayed over it, that goes with it; None: it has none
    #: Its commandlines file changed since it began (the new sweep's, edited in place, say): its resume needs
    #: --force-resume, and runs the commands the queuestate holds.
    changed: bool = False


def check_no_lone_journal(target: Path, start_over: bool) -> None:
    """Refuse to replace a journal with no queuestate beside it that holds records (unless told to start
    over): it belongs to a queuestate renamed or moved without it, whose ``#meta`` names it (``mv qs
    renamed``): replaced, what only it holds would be lost, and that queuestate refused as one whose
    journal is lost (see :func:`mpilauncher.persistence.store.journal_of`)."""
    lone = journal_path(target)
    if start_over or not journal.has_records(lone):
        return
    raise InputError(
        "is the journal of a queuestate not beside it (one renamed or moved without its journal names it):"
        " resume that queuestate, or remove the journal, or choose another --queuestate, or overwrite it"
        " with --start-over",
        str(lone),
    )


def keep_aside(target: Path, kept: Aside, config: Config) -> str:
    """Move the finished queuestate ``target`` to ``kept.path``, and its journal beside it under the name
    that goes with that (where :func:`~mpilauncher.persistence.store.journal_of` finds it, whatever name
    the snapshot gives); what to say.  The snapshot first: until the journal follows, it is still found
    by the name the snapshot gives it, beside it.  A journal that cannot follow takes the snapshot back."""
    aside, failed = kept.path, kept.failed
    try:
        os.rename(target, aside)
        if kept.journal is not None:
            try:
                os.rename(kept.journal, journal_path(aside))
            except OSError:
                os.rename(aside, target)
                raise
    except OSError as err:
        raise InputError(
            f"cannot keep the finished sweep it holds aside as {aside.name}: {err.strerror or err}", str(target)
        ) from None
    # (a user walk: after an edit of the commandlines file in place, the command given was refused at once)
    forced = (" --force-resume", ", force_resume=True") if kept.changed else ("", "")
    again = as_said(
        config,
        f"python -m mpilauncher --resume {shell_word(str(aside))} --rerun-failed{forced[0]}",
        f"ResumeClassicLauncher({str(aside)!r}, rerun_failed=True{forced[1]})",
    )
    why = ", with the commands it holds: its commandlines file changed since it began" if kept.changed else ""
    return (
        f"{target} held a finished sweep with {_failed_tasks(failed)}: kept as {aside} ({again} runs"
        f" {them(failed)} again{why})"
    )


def _failed_tasks(count: int) -> str:
    return counted(count, "failed task")


def as_said(config: Config, option: str, keyword: str) -> str:
    """A setting as the caller gave it: the command line's ``option``, or a PyLauncher script's ``keyword``
    (a script's user never typed --max-runtime, and finds maxruntime= in the script)."""
    return option if config.job_type == CLI_JOB_TYPE else keyword


def keep_workdir_when_idle(config: Config, plan: Plan) -> Config:
    """A sweep gone on with nothing to run keeps its workdir: a new one given would be made, nearly
    empty (a joblog's header), and recorded as the sweep's, all for a run that starts nothing."""
    recorded = plan.meta.workdir if plan.resumed_from is not None and not plan.to_run else None
    if not (config.workdir and recorded and Path(recorded).is_dir()):
        return config
    if Path(config.workdir).resolve() == Path(recorded).resolve():
        return config
    said = as_said(config, f"--workdir {config.workdir}", f"workdir={config.workdir!r}")
    plan.notes.append(f"{said} is not made: nothing to run, the sweep's workdir stays {recorded}")
    return replace(config, workdir=None)


def job_end(config: Config) -> float | None:
    """When the Slurm job ends (``time.monotonic()``), None where no limit is known.  A job whose time
    left is no more than --time-limit-margin can run nothing: refused, before anything is written (a
    user walk: ``#SBATCH -t 1`` with the default 60 s ran nothing and exited 4, a chain of such jobs
    ran nothing in each, and --resubmit would submit such a job again and again)."""
    left = cluster.job_seconds_left()
    if left is None:
        return None
    margin = config.time_limit_margin
    if left <= margin:
        raise option_error(
            "time_limit_margin",
            f"of {margin:g} s leaves nothing: the job has {max(0.0, left):.0f} s left before its time limit, and the"
            " run would stop that margin before it: nothing could run; give the job more time (sbatch -t) or a"
            " smaller margin",
        )
    return time.monotonic() + left


def run_deadline(config: Config, began: float, ends: float | None) -> tuple[float | None, str, str]:
    """When the run must stop by itself: --max-runtime counted from ``began`` (the start of the
    process, or of the API call: reading a million commandlines counts), or the Slurm job's end
    (``ends``: see :func:`job_end`) less a margin.  (deadline, why the run stops there, what the
    deadline is called in messages)."""
    candidates = []
    if config.max_runtime:
        # (in the caller's words: a PyLauncher script gave maxruntime=, not the command line's option)
        name = as_said(config, "--max-runtime", "maxruntime=")
        candidates.append((began + config.max_runtime, f"reached {name} of {config.max_runtime:g} s", name))
    if ends is not None:
        margin = config.time_limit_margin
        reason = f"stopping {margin:g} s before the job's time limit"
        candidates.append((ends - margin, reason, "the job's time limit (less --time-limit-margin)"))
    if not candidates:
        return None, "", ""
    return min(candidates)


def check_placeable(plan: Plan, node_cores: list[int], source: str, node_gpus: list[int] | None = None) -> None:
    bad = find_unplaceable(plan.to_run, node_cores, node_gpus or [])
    if bad:
        first = bad[0]
        task = plan.ledger.tasks[first.task_id]
        more = f" (and {counted(len(bad) - 1, 'more task')} that cannot fit)" if len(bad) > 1 else ""
        needs = counted(first.needed, "core")
        if first.gpus_needed:
            problem = (
                f"task {first.task_id} needs {counted(first.gpus_needed, 'GPU')} with {needs}, but no node has"
                f" them (most GPUs on a node: {first.most_gpus}){more}"
            )
        elif task.mpi:
            problem = f"MPI task {first.task_id} needs {needs}, but all nodes together have"
            problem += f" {first.largest_node}{more}"
        else:
            problem = f"task {first.task_id} needs {needs}, but the largest node has {first.largest_node}"
            problem += more
        raise InputError(problem, source, task.line or None)


def check_mpi_starter(plan: Plan, config: Config) -> None:
    """A sweep of MPI tasks needs its MPI starter where the agents run them: refused at the start
    without it, not found out task by task.  Checked in rank 0's environment, which is the job's."""
    if not (plan.to_run and plan.meta.extra.get("mpi")):
        return
    starter = starters.choose(config.mpi_starter, os.environ)
    problem = starters.unusable(starter, os.environ)
    if problem is None:
        return
    said = config.mpi_starter or "auto"
    if said.lower() == "auto":
        problem = "auto finds no MPI starter here (ibrun, srun in a Slurm job, mpiexec on PATH)"
    else:
        problem = f"{said}: {problem}"
    raise option_error("mpi_starter", f"{problem}; every MPI task of the sweep would fail at its start")


def share_gpus(config: Config, plan: Plan, hellos: list[tuple[int, Hello]]) -> list[tuple[int, Hello]]:
    """The agents' hellos with each GPU offered ``--tasks-per-gpu`` times, the sweep's setting.

    It is the sweep's, kept in its queuestate like --task-timeout: the user knows how many of
    their tasks fit on one GPU, and a resume that forgot it (the printed resume command does
    not repeat it) ran one task per GPU, a third of the sweep's pace at ``--tasks-per-gpu 3``.
    Rank 0 shares, not the agents: only rank 0 reads the queuestate.
    """
    if not (config.gpus_per_task or plan.meta.extra.get("gpus_per_task")):
        return hellos
    name = as_said(config, "--tasks-per-gpu", "taskspergpu=")
    per_gpu = sweep_setting(plan, "tasks_per_gpu", config.tasks_per_gpu or None, 1, name)
    return [(rank, hello._replace(gpu_ids=Gpus(hello.gpu_ids).shared(per_gpu).ids)) for rank, hello in hellos]


def give_gpus(plan: Plan, config: Config, hellos: list) -> None:
    """GPU tasks: G GPUs each and, unless the sweep says how many cores, their GPUs' share of a node's cores.

    The share is the node's cores times the task's part of the node's GPU slots, rounded
    down, on the GPU node where it is smallest.  Below one core it is 0: the task takes no
    core slot of its own, only its GPUs (see core/slots.py), so that a node with fewer cores
    than GPUs keeps every GPU busy -- GPUs are the scarce resource.  Cores the sweep asked
    for (``--cores N``, ``node``, ``N,`` per line) are what its GPU tasks get, on resume too:
    the queuestate's ``gpu_share`` says whether the share was used (earlier releases: yes).
    """
    per_task = config.gpus_per_task or int(plan.meta.extra.get("gpus_per_task", 0))
    gpu_nodes = [h for h in hellos if h.gpu_ids]
    if not gpu_nodes:
        where = ", ".join(sorted({h.node_name for h in hellos})[:4])
        raise InputError(
            f"GPU tasks, but no GPU found on {where} (looked at --gpus-per-node, SLURM_JOB_GPUS,"
            " CUDA_VISIBLE_DEVICES, ROCR_VISIBLE_DEVICES, SLURM_GPUS_ON_NODE, nvidia-smi)"
        )
    share = min(h.cores * per_task // len(h.gpu_ids) for h in gpu_nodes)
    asked = config.cores_given or plan.default_cores.kind != "fixed" or not plan.meta.extra.get("gpu_share", True)
    plan.meta.extra["gpus_per_task"] = per_task
    plan.meta.extra["gpu_share"] = not asked
    changes = {"gpus": per_task} if asked else {"gpus": per_task, "cores": share}
    plan.to_run = plan.ledger.revise(plan.to_run, **changes)


def run_submit(config: Config, out: TextIO, began: float) -> RunResult:
    """--submit (SubmitLauncher): this process submits the tasks as Slurm jobs and watches them.

    The run is the ordinary one; only the agent's backend differs (mpilauncher/submit/),
    and its "cores" are the job slots: a task takes one, whatever its size.
    """
    settings = submit.Settings(
        config.submit or "", config.max_active or 1, config.tasks_per_job or 1,
        config.poll_interval or DEFAULT_POLL_INTERVAL, config.cancel_on_stop, config.partition, config.task_timeout,
        config.time_limit_margin, config.grace,
    )  # fmt: skip
    backend = submit.SlurmJobs(settings)
    transport = LocalTransport(Agent(submit.NODE_NAME, backend.slots, backend=backend))
    prepare = functools.partial(backend.prepare, workdir=config.workdir)
    try:
        return run_master(config, transport, cluster.detect(), out, began, prepare=prepare)
    finally:
        transport.close()


def output_mode(config: Config, plan: Plan) -> str:
    """per-task or per-node: as --output says, else as the sweep began (the queuestate remembers per-node).

    A resume given the other mode takes it, saying so: a job script edited for a file-count quota
    switches a sweep to per-node mid-way on purpose, but the switch was silent (a user walk), and the
    other way a resume may write a file a task where the sweep had written a few a node."""
    before = plan.meta.extra.get("output") or "per-task"
    mode = config.output or before
    if plan.resumed_from is not None and mode != before:
        plan.notes.append(
            f"the sweep's output mode changes from {before} to {mode} with this run (--output): its earlier tasks'"
            " output stays where it is, and `python -m mpilauncher output` finds either"
        )
    if mode == "per-node":
        plan.meta.extra["output"] = mode
    else:
        plan.meta.extra.pop("output", None)
    return mode


def sweep_setting(plan: Plan, key: str, given, off, name: str, unit: str = ""):
    """A setting of the sweep's own, kept in its queuestate's #meta as ``key``: a resume not given it
    (``given`` None) goes on with it, saying so; one given it takes it from then on (``off``: none).

    A user walk: the resume command the launcher prints (``--resume queuestate``) repeats none of
    them, and a task that hangs then ran unkilled until the job's time limit (--task-timeout), a
    flaky task failed for good at its first failure (--retries), a GPU ran one task where the
    sweep had said three fit (--tasks-per-gpu)."""
    if given is not None:
        if given == off:
            plan.meta.extra.pop(key, None)
        else:
            plan.meta.extra[key] = given
        return given
    kept = plan.meta.extra.get(key)
    if plan.resumed_from is None or kept is None or kept == off:
        plan.meta.extra.pop(key, None)
        return off
    if plan.to_run:  # (a run that runs nothing -- a finished sweep again -- says so, in one line: a user walk)
        plan.notes.append(f"the sweep's {name} of {kept:g}{unit} holds (as it began; give {name} to change it)")
    return kept


def sweep_settings(config: Config, plan: Plan) -> Config:
    """--task-timeout and --retries as the sweep keeps them (:func:`sweep_setting`); 0 turns either off."""
    name = as_said(config, "--task-timeout", "taskmaxruntime=")
    timeout = sweep_setting(plan, "task_timeout", config.task_timeout, 0, name, " s")
    retries = sweep_setting(plan, "retries", config.retries, 0, as_said(config, "--retries", "retries="))
    return replace(config, task_timeout=timeout or None, retries=retries)


def _progress_counts(ledger: Ledger) -> tuple[int, int, int]:
    """(done, failed, still to run) as a run begins: a resumed sweep's earlier ends count."""
    counts = ledger.counts()
    return counts[COMPLETED], counts[FAILED], counts[QUEUED] + counts[RUNNING]


def close_observers(observers: list[Observer], wall: float, elapsed: float) -> None:
    """Close every observer, even when one fails (each writes its own file); then raise the first failure."""
    failure: BaseException | None = None
    for observer in observers:
        try:
            observer.close(wall, elapsed)
        except Exception as err:
            failure = failure or err
    if failure is not None:
        raise failure


def _nothing(_status: int) -> None:
    """No hook."""


def _nothing_left(
    plan: Plan, link: chain.Position, pool_size: int, transport, out: TextIO, written=_nothing
) -> RunResult:  # fmt: skip
    """A later job of a chain over a sweep that an earlier job finished: run nothing, write nothing,
    exit 0 (which ends the chain: the jobs after this one can no longer start)."""
    statistics = compute(plan.ledger, 0.0, pool_size)
    out.write(
        f"mpilauncher: {link}: the sweep in {plan.state_path} is finished ({statistics.completed} completed,"
        f" {statistics.aborted} aborted in earlier jobs): nothing left to run; the chain ends here\n"
    )
    out.flush()
    written(EXIT_OK)
    transport.shutdown(0.0, EXIT_OK)
    return RunResult(statistics, Path(plan.meta.workdir) if plan.meta.workdir else None, plan.state_path, None,
                     EXIT_OK, failed_tasks=failed_tasks(plan.ledger, plan.ledger.ids_in(FAILED)))  # fmt: skip


def _resubmit(config: Config, link: chain.Position | None, job: str | None, left: int) -> str:
    """Stopped at the time limit with tasks left: submit this job script again (``--resubmit K``); the job
    submitted, "" where none was."""
    if not left:
        return ""
    here = chain.Position(link.index if link else 1, config.resubmit)
    if not job:
        warn("--resubmit works inside a Slurm batch job only: resume by hand")
        return ""
    if here.last:
        warn(f"{here} stopped with {left} tasks left: the chain ends; resume by hand or submit more jobs")
        return ""
    try:
        submitted, following = chain.resubmit(here, job)
    except LauncherError as err:
        warn(f"could not submit the next job of the chain ({err}): resume by hand")
        return ""
    log.info(f"submitted Slurm job {submitted} to go on with the {left} tasks left ({following})")
    return submitted


def _startup(
    config: Config, plan: Plan, hellos: list, link: chain.Position | None = None, job: str | None = None
) -> str:
    """The start-up lines' facts, from the checked plan and the agents' hellos."""
    nodes: dict[str, int] = {}
    for hello in hellos:  # one entry per node, in rank order
        nodes[hello.node_name] = nodes.get(hello.node_name, 0) + hello.cores
    cores = plan.default_cores
    count = next(iter(plan.to_run)).cores if plan.meta.extra.get("gpu_share") and plan.to_run else cores.count
    objects = config.cores_from_objects  # (their counts are 'N,' prefixes too, but the user wrote none)
    per_line = "cores per command (Commandline objects)" if objects else "cores per line ('N,' prefix)"
    per_task = {"node": "a whole node per task", "file": per_line}.get(cores.kind, f"{counted(count, 'core')} per task")
    if plan.meta.extra.get("gpu_share") and not count:
        per_task = "a shared core per task (its GPUs' share of the cores is below one)"
    if config.block > 1 or plan.meta.extra.get("block"):
        per_task += f", {plan.meta.extra.get('block', config.block)} lines per task (schedule=block)"
    if plan.meta.extra.get("gpus_per_task"):
        per_task += f", {counted(plan.meta.extra['gpus_per_task'], 'GPU')} per task"
    if plan.meta.extra.get("mpi"):
        per_task += ", MPI tasks"
    if plan.meta.extra.get("expected_time") == "file":
        per_task += ", expected time per line ('T,' prefix)"
    elif isinstance(config.expected_time, float):
        per_task += f", {config.expected_time:g} s expected per task"
    source = plan.meta.commandlines or str(plan.resumed_from)
    if plan.resumed_from is not None:
        source = f"{source} (resuming {plan.resumed_from})"
    gpus = sum(len(set(hello.gpu_ids)) for hello in hellos) if plan.meta.extra.get("gpus_per_task") else 0
    text = startup_lines(
        __version__, config.job_type, source, len(plan.ledger), len(plan.to_run), per_task,
        plan.meta.workdir, str(plan.state_path), list(nodes.items()), gpus,
    )  # fmt: skip
    if link is not None:
        text += f" .. {link} (Slurm job {job or '?'})\n"
    return text


def run_master(
    config: Config,
    transport,
    allocation: cluster.Allocation,
    out: TextIO,
    began: float,
    stop: StopRequest | None = None,
    prepare=None,
    written=None,
) -> RunResult:
    """Rank 0's part, the same for one machine and for many: lock, check, run, report.

    ``stop``: under MPI, the stop request whose handler has been in place since MPI started.
    ``prepare(plan)``: submit mode's hook, once the plan is read, before anything is written.
    ``written(exit_status)``: once the queuestate and the statistics are on disk, before the agents are
    told to end: what is left of the run may be cut short from then on (see launch.py's ``EndWatchdog``).
    """
    # Reading and setting up a sweep of a million tasks makes millions of long-lived objects (see heap.py).
    with workdirs.state_folder(config) as made, lock_sweep(config, allocation.job_id), no_full_collections():
        return _run_locked(config, transport, allocation, out, began, stop, prepare, made, written or _nothing)


def _run_locked(
    config: Config, transport, allocation: cluster.Allocation, out: TextIO, began: float, stop: StopRequest | None,
    prepare=None, made: tuple[Path, ...] = (), written=_nothing,
) -> RunResult:  # fmt: skip
    link = chain.position()
    plan = make_plan(config, continuation=link is not None and link.continuation)
    if prepare is not None:
        prepare(plan)
    elif plan.meta.extra.pop(submit.META_KEY, None) is not None:  # begun with --submit, going on without
        submit.check_settled(plan.meta.workdir, str(plan.resumed_from or plan.state_path))
    source = config.commandlines or config.resume
    hellos = share_gpus(config, plan, transport.hellos())
    pool_size = sum(hello.cores for _, hello in hellos)
    if link is not None and link.continuation and not plan.to_run and plan.resumed_from is not None:
        return _nothing_left(plan, link, pool_size, transport, out, written)
    if plan.to_run and (config.gpus_per_task or plan.meta.extra.get("gpus_per_task")):
        give_gpus(plan, config, [hello for _, hello in hellos])  # (none to run: no GPU needed, a user walk)
    check_placeable(plan, [hello.cores for _, hello in hellos], source, [len(h.gpu_ids) for _, h in hellos])
    if prepare is None:  # (submit mode's tasks are Slurm jobs of their own)
        check_mpi_starter(plan, config)
    ends = job_end(config)
    aside = check_state_target(plan, config.start_over)
    config = keep_workdir_when_idle(config, plan)
    workdir = workdirs.choose_workdir(config, plan, allocation, made)
    ours = workdirs.made_here(workdir, made)
    created = ours or not workdir.exists()
    try:
        workdir.mkdir(parents=False, exist_ok=ours or plan.resumed_from is not None)
    except OSError as err:
        raise InputError(f"cannot create workdir: {err.strerror or err}", str(workdir)) from None
    workdirs.note_earlier_workdir(plan.meta, str(workdir.resolve()))
    output = output_mode(config, plan)
    config = sweep_settings(config, plan)
    pool: dict[str, int] = {}
    for _, hello in hellos:
        pool[hello.node_name] = pool.get(hello.node_name, 0) + hello.cores
    plan.meta.extra["pool"] = pool  # for the report: the cores that could have been busy
    if not config.quiet:
        out.write(_startup(config, plan, [hello for _, hello in hellos], link, allocation.job_id))  # for the log
        if output == "per-node":
            out.write(" .. output: per node (output.<node>.*; python -m mpilauncher output WORKDIR TASK_ID)\n")
        out.flush()
    if aside is not None:  # (after every check: a run refused at its start leaves the queuestate where it was)
        plan.notes.append(keep_aside(plan.state_path, aside, config))
    for note in (*config.notes, *plan.notes):
        log.note(note)
    transport.setup(
        plan.meta.workdir, os.getcwd(), config.mpi_starter, bool(config.emulate_nodes), config.task_timeout, output
    )  # fmt: skip

    history = (plan.ledger.longest_completed(), plan.ledger.completed_runtimes)  # (read when first needed)
    scheduler = Scheduler(
        plan.to_run,
        retries=config.retries,
        standby=True,
        start_interval=config.start_interval,
        history_later=history,
        attempts_before=plan.ledger.attempts,
        retry_bases=plan.retrying,
    )
    keep_retry_bases(plan.meta, scheduler)  # (in every snapshot: a resume after a kill -9 needs them as much)
    nodes = nodes_from_hellos(hellos)
    store = StateStore(
        plan.state_path, plan.ledger, plan.meta, plan.default_cores, fsync_interval=config.delay, nodes=nodes,
        earlier=plan.earlier,
    )  # fmt: skip
    plan.earlier = None  # (the store's now: it keeps it while the run goes on)
    try:
        store.open(time.time(), goes_on(plan))
        workdirs.mark_workdir(workdir, plan.meta.extra.get("sweep"))
        joblog = Joblog(workdir / "joblog", nodes)
    except LauncherError:
        # Nothing ran: leave no empty workdir behind, which would refuse the corrected rerun.
        if created:
            workdirs.remove_empty_workdir(workdir)
        raise
    statistics = FinalStatistics(plan.ledger, pool_size, nodes)
    latencies = DispatchLatencies()
    # The consumers of the scheduler's facts; a new one (a progress line, a report) is one more here.
    observers: list[Observer] = [store, joblog, statistics, latencies]
    timed_out = TimedOut()
    if config.task_timeout:
        observers.append(timed_out)
    if config.trace_jobs:
        observers.append(Trace(out, plan.ledger, nodes, config.delay, config.trace_hosts))
    if config.trace_tasks:
        observers.append(TaskLog(nodes))
    shown = progress.make_progress(
        progress.choose(config.progress, config.quiet, config.trace_jobs), *_progress_counts(plan.ledger), pool_size,
        config.progress_interval,
    )  # fmt: skip
    if shown is not None:
        observers.append(shown)
    stop = stop or StopRequest()
    stop.limit(*run_deadline(config, began, ends))
    master = Master(
        scheduler,
        transport,
        nodes,
        observers,
        delay=config.delay,
        grace=config.grace,
        stop=stop,
        paced=config.start_interval is not None,
        job_nodes=allocation.nodes,
    )
    # The tasks, the ledger and the scheduler's maps live as long as the run, and so do most of
    # what it makes a task: out of the cyclic garbage collector's sight (see heap.py;
    # a full pass takes 0.24 s at 1,000,000 tasks).
    try:
        with young_collections_only(), SignalGuard(stop, wake=transport):
            outcome = master.run()
    except BaseException:
        # Whatever broke, no task may outlive us and the state on disk must say where we are.
        transport.shutdown(0.0, EXIT_LAUNCHER_FAILED)
        with contextlib.suppress(Exception):  # the first error is the one to report
            keep_retry_bases(plan.meta, scheduler)
            close_observers(observers, time.time(), time.monotonic() - master.began)
        raise
    keep_retry_bases(plan.meta, scheduler)
    close_observers(observers, time.time(), outcome.elapsed)
    assert statistics.result is not None
    if config.print_statistics:
        interrupted = outcome.failure or outcome.interrupted
        out.write(final_report(statistics.result, interrupted, str(link) if link else None))
        out.flush()
    next_job = ""
    if outcome.interrupted is not None and config.resubmit and not stop.signalled_by_user:
        next_job = _resubmit(config, link, allocation.job_id, statistics.result.not_run)
    elif outcome.interrupted is not None and config.resubmit and statistics.result.not_run and stop.signum:
        # (the early warning killed a batch shell that did not exec srun: srun then sends SIGTERM)
        warn(
            f"--resubmit: no next job submitted: a {signal_name(stop.signum)} is a stop"
            " someone asked for (scancel), not the time limit's early warning; if the warning (SIGUSR1 to the"
            " batch shell) was meant, start the launcher with exec ('exec srun ...') so that it reaches it"
        )
    if outcome.failure is not None:  # its one line is on stderr already; the state is saved
        written(EXIT_LAUNCHER_FAILED)
        transport.shutdown(0.0, EXIT_LAUNCHER_FAILED)
        raise LauncherFailure(outcome.failure, reported=True)
    failed = plan.ledger.ids_in(FAILED)
    if outcome.interrupted is not None:
        status = stop.exit_status
    elif failed:
        status = EXIT_TASKS_FAILED
    else:
        status = EXIT_OK
    written(status)
    transport.shutdown(0.0, status)
    return RunResult(statistics.result, workdir, plan.state_path, outcome.interrupted, status, latencies.values,
                     failed_tasks=failed_tasks(plan.ledger, failed, timed_out.ids),
                     full_disk=full_file_system(workdir) if failed else "", next_job=next_job)  # fmt: skip


#: Free bytes below which a workdir's file system counts as full when tasks failed (a task's write that
#: did not fit failed it, with nothing from the launcher to say so: a user walk, a 1 MiB tmpfs).
NEARLY_FULL = 1 << 20


def full_file_system(workdir: Path) -> str:
    """``workdir`` if its file system has (next to) no space or no inodes left, else ""."""
    try:
        found = os.statvfs(workdir)
    except OSError:
        return ""
    no_space = found.f_bavail * found.f_frsize < NEARLY_FULL
    no_files = found.f_files > 0 and found.f_favail == 0
    return str(workdir) if no_space or no_files else ""


def failed_tasks(ledger: Ledger, failed: list[int], timed_out: set[int] | None = None) -> tuple[FailedTask, ...]:
    """The first of the sweep's ``failed`` tasks (ids, in order), as the end of the run names them;
    ``timed_out``: those this run's time limit ended."""
    records = (ledger.records[task_id] for task_id in failed[:FAILED_NAMED])
    return tuple(FailedTask(rec.id, rec.task.line, rec.exit_code, rec.id in (timed_out or ())) for rec in records)


class TimedOut(Observer):
    """This run's tasks whose latest attempt was ended by their time limit (``--task-timeout``): the run's
    last line says so, as the joblog does (it said "killed by signal 15" where the joblog said timeout,
    a user walk: the ledger keeps exit codes only).  Registered only when there is a time limit."""

    def __init__(self) -> None:
        self.ids: set[int] = set()

    def on_ended(self, ended: TaskEnded) -> None:
        if ended.report.timed_out:
            self.ids.add(ended.task_id)
        elif self.ids:
            self.ids.discard(ended.task_id)
