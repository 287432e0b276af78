"""The commands that read a sweep without running anything: ``report`` and ``output``.

``python -m mpilauncher report WORKDIR_OR_QUEUESTATE [--plot FILE]`` and
``python -m mpilauncher output WORKDIR_OR_QUEUESTATE TASK_ID...``, dispatched by :func:`mpilauncher.cli.main`
(a commandlines file named ``report`` or ``output`` still runs as one).  They read the
queuestate with its journal replayed (as ``--status`` does: a running sweep is
reported as it stands, without its lock), the workdir's joblog, and the tasks' output
in either output mode (``out<N>``, or the per-node files: :mod:`mpilauncher.execution.gather`).
Bad input is one line and exit status 2, as everywhere; their answer goes through
:func:`~mpilauncher.report.answer.write_answer` (a reader gone, a closed or full stdout).
"""

from __future__ import annotations

import json
import os
import shlex
import time
from pathlib import Path

from mpilauncher import log
from mpilauncher.core.ledger import QUEUED, RUNNING, Ledger
from mpilauncher.core.ranges import compress, expand
from mpilauncher.core.tasks import CoresSpec
from mpilauncher.errors import EXIT_OK, EXIT_TASKS_FAILED, InputError, LauncherError
from mpilauncher.execution import gather
from mpilauncher.persistence.lock import current_holder, still_held
from mpilauncher.persistence.store import last_writes, load_state, time_after_snapshot
from mpilauncher.report import joblog
from mpilauncher.report.answer import AnswerParser, write_answer
from mpilauncher.report.sweep import Sweep, attempts_from_joblog, pool_of, render, running_attempts

#: How much of the end of a task's output is read for its last lines.
TAIL_BYTES = 64 * 1024
#: Task ids one ``output`` call takes at most.
MOST_IDS = 1_000_000


def _fail(err: LauncherError) -> int:
    log.error(str(err))
    return err.exit_status


# -- finding the sweep -------------------------------------------------------------------
def _meta_of(path: Path) -> dict | None:
    """The ``#meta`` of a queuestate (its first lines), or None if ``path`` is not one of ours."""
    try:
        with open(path, encoding="utf-8", errors="replace") as head:
            for _, line in zip(range(8), head, strict=False):
                if line.startswith("#meta "):
                    data = json.loads(line[6:])
                    return data if isinstance(data, dict) else None
    except (OSError, ValueError):
        return None
    return None


def find_queuestate(workdir: Path) -> Path | None:
    """The queuestate whose sweep writes into ``workdir``: looked for in the current directory and in
    the workdir's parent (where the launcher puts both by default), by what its ``#meta`` line names."""
    wanted = str(workdir.resolve())
    for directory in dict.fromkeys([Path.cwd(), workdir.resolve().parent]):
        try:
            entries = sorted(directory.iterdir())
        except OSError:
            continue
        for entry in entries[:10_000]:
            if entry.name.endswith((".journal", ".lock")) or not entry.is_file():
                continue
            meta = _meta_of(entry)
            if meta is not None and meta.get("workdir") == wanted:
                return entry
    return None


def sweep_paths(target: Path) -> tuple[Path, Path | None]:
    """The workdir and the queuestate (None: none found) of the sweep that ``target``, a workdir or a
    queuestate, names: what ``report`` and ``output`` take."""
    if target.is_dir():
        return target, find_queuestate(target)
    if not target.exists():
        raise InputError("no such workdir or queuestate", str(target))
    meta = _meta_of(target) if target.is_file() else None  # (never read a FIFO or a device: /dev/null)
    if meta is None:
        raise InputError("is neither a workdir nor an mpilauncher queuestate", str(target))
    return Path(meta.get("workdir") or "."), target


def load_sweep(target: Path) -> Sweep:
    """The sweep that ``target`` (a workdir or a queuestate) names, as it stands now."""
    workdir, state = sweep_paths(target)
    now = time.time()
    sweep = Sweep([], {}, source=str(target))
    earlier: list[Path] = []
    if state is not None:
        loaded = load_state(state, CoresSpec("fixed", 1))
        ledger, meta = loaded.ledger, loaded.meta
        earlier = earlier_workdirs(meta.extra, workdir)
        sweep.ledger = ledger
        sweep.source = f"{meta.commandlines or state} (queuestate {state}, workdir {meta.workdir or workdir})"
        sweep.pool = dict(meta.extra.get("pool") or {})
        sweep.name = Path(meta.commandlines).name if meta.commandlines else state.name
        counts = ledger.counts()
        holder = current_holder(state)
        live = still_held(holder)
        if live:
            sweep.state = "running"
            try:  # the snapshot's elapsed time is as old as the snapshot
                ledger.elapsed_before += max(0.0, now - time.mktime(time.strptime(meta.written, "%Y-%m-%dT%H:%M:%S")))
            except (ValueError, OverflowError):
                pass
            sweep.attempts += running_attempts(ledger, now)
        elif counts[QUEUED] or counts[RUNNING]:
            sweep.state = "stopped"
            sweep.notes.append(f"not finished: resume with python -m mpilauncher --resume {shlex.quote(str(state))}")
            # Killed (kill -9, a node's crash): the snapshot's time stops at its last write, the journal's
            # ends and starts go on after it (a user walk: "total running time 0.00" after a kill -9).
            ledger.elapsed_before += time_after_snapshot(state, loaded.journal)
            sweep.attempts += running_attempts(ledger, last_writes(state, loaded.journal)[1], "interrupted")
    else:
        sweep.notes.append(
            "no queuestate found for this workdir (looked in the current directory and the workdir's parent):"
            " the joblog alone, finished tasks only; give the queuestate instead for the rest"
        )
    ended = []
    for earlier_workdir in earlier:  # (a resume into a new workdir left these: their tasks' lines stay there)
        try:
            ended += attempts_from_joblog(joblog.read(earlier_workdir / "joblog"))
        except OSError as err:
            sweep.notes.append(f"{earlier_workdir / 'joblog'}: {err.strerror}: the tasks that ended in this earlier"
                               " workdir of the sweep are left out")  # fmt: skip
    log_path = workdir / "joblog"
    try:
        ended += attempts_from_joblog(joblog.read(log_path))
    except OSError as err:
        if state is None and isinstance(err, FileNotFoundError):  # (`report .` said "joblog: no joblog here")
            raise InputError(
                "not a workdir (no joblog in it, and no queuestate found names it) nor a queuestate", str(target)
            ) from None
        if state is None:
            raise InputError(f"cannot read the joblog ({err.strerror})", str(log_path)) from None
        if not earlier:
            sweep.notes.append(f"{log_path}: {err.strerror}: no task has ended yet, or the workdir moved")
    sweep.attempts = ended + sweep.attempts
    if not sweep.pool:
        sweep.pool = pool_of(sweep.attempts)
    sweep.workdir = workdir
    sweep.earlier_workdirs = earlier
    return sweep


def earlier_workdirs(extra: dict, workdir: Path) -> list[Path]:
    """The workdirs a sweep wrote into before its current one ``workdir``, oldest first (its queuestate's
    ``#meta`` names them: see workdirs.note_earlier_workdir)."""
    named = extra.get("earlier_workdirs")
    if not isinstance(named, list):
        return []
    here = os.path.abspath(workdir)
    return [Path(w) for w in dict.fromkeys(named) if isinstance(w, str) and os.path.abspath(w) != here]


def workdirs_of(workdir: Path, state: Path | None) -> list[Path]:
    """``workdir`` and the earlier workdirs of its sweep (by its queuestate ``state``, if found)."""
    meta = _meta_of(state) if state is not None else None
    return [workdir, *earlier_workdirs(meta or {}, workdir)]


def output_tail(workdirs: list[Path]):
    """``tail(task_id, lines)``: the last lines of a task's output, None if there is none; looked for in
    ``workdirs`` (the sweep's current one and its earlier ones: the latest output wins)."""
    finder = gather.Finder([str(workdir) for workdir in workdirs])

    def tail(task_id: int, lines: int) -> list[str] | None:
        found = finder.find(task_id)
        if found is None:
            return None
        try:
            data = gather.read_record(found[0], TAIL_BYTES)
        except OSError:
            return None
        text = data.decode("utf-8", "replace").rstrip("\n")
        if not text or lines == 0:  # ([-0:] is every line: --tail 0 showed the whole 64 KiB read)
            return []
        return [_clipped(line, task_id) for line in text.split("\n")[-lines:]]

    return tail


#: The most characters of one output line a report shows (a failed task's 6.6 MB without a newline was
#: one "line" of 64 KiB, NUL bytes and all, in the report: a user walk).
LONGEST_LINE = 400


def _clipped(line: str, task_id: int) -> str:
    """``line`` as a report shows it: at most LONGEST_LINE characters of it, its NUL bytes written ``\\0``."""
    shown = line[:LONGEST_LINE].replace("\0", "\\0")
    if len(line) <= LONGEST_LINE:
        return shown
    return f"{shown}... ({len(line):,} characters; all of it: python -m mpilauncher output WORKDIR {task_id})"


# -- report -------------------------------------------------------------------------------
def report_main(argv: list[str]) -> int:
    parser = AnswerParser(
        prog="python -m mpilauncher report",
        description="What a sweep did (or is doing): the statistics, how busy the cores were, the slowest and "
        "most memory-hungry tasks, every failed task with the end of its output; --plot draws it.",
    )
    parser.add_argument("sweep", metavar="WORKDIR_OR_QUEUESTATE", help="the sweep's workdir, or its queuestate")
    parser.add_argument("--top", type=int, default=10, metavar="N", help="tasks in each list (default 10; 0: none)")
    parser.add_argument("--tail", type=int, default=5, metavar="N", help="lines of a failed task's output (default 5)")
    parser.add_argument(
        "--failed", type=int, default=50, metavar="N", help="show the output of this many failed tasks (default 50)"
    )
    parser.add_argument(
        "--plot", metavar="FILE", help="also draw a Gantt chart of tasks on cores and the cores' use over time "
        "(FILE.png or FILE.svg; needs matplotlib: pip install 'mpilauncher[plot]')",
    )  # fmt: skip
    args = parser.parse_args(argv)
    try:
        for name in ("top", "tail", "failed"):
            if not 0 <= getattr(args, name) <= MOST_IDS:
                raise InputError(f"--{name} must be from 0 to {MOST_IDS:,}, not {getattr(args, name)}")
        plot_path = Path(args.plot) if args.plot else None
        if plot_path is not None and plot_path.suffix.lower() not in (".png", ".svg"):
            raise InputError("--plot must name a .png or .svg file", args.plot)
        sweep = load_sweep(Path(args.sweep))
        workdirs = [sweep.workdir or Path("."), *sweep.earlier_workdirs]
        text = render(sweep, args.top, args.tail, args.failed, output_tail(workdirs))
        if plot_path is not None:
            from mpilauncher.report.plot import PlotUnavailable, draw

            try:
                draw(sweep, plot_path)
            except PlotUnavailable as err:
                raise InputError(str(err)) from None
            except OSError as err:
                raise InputError(f"cannot write the plot: {err.strerror or err}", args.plot) from None
            text += f"Plot: {plot_path}\n"
    except LauncherError as err:
        return _fail(err)
    write_answer(text)
    return EXIT_OK


# -- output -------------------------------------------------------------------------------
class Absence:
    """Why a task has no output (or exec script) in the workdir, in words.  By the sweep's queuestate,
    read once when a task is first missing: a task id the sweep does not have, a task not run yet, one
    still running, one whose files are gone; without one (or an unreadable one), "not run yet, or still
    running".  Per-node output reaches the workdir only when its task ends: said for that mode alone
    (a user walk: the remark came in per-task mode too, and for a task id past the sweep)."""

    def __init__(self, workdirs: list[Path], state: Path | None, thing: str) -> None:
        self.workdirs, self.state, self.thing = workdirs, state, thing
        self.ledger: Ledger | None = None
        self.per_node = False
        self._read = False

    def _read_sweep(self) -> None:
        self._read = True
        if self.state is not None:
            try:
                loaded = load_state(self.state, CoresSpec("fixed", 1), states_only=True)
            except (LauncherError, OSError):
                pass  # (the output is what was asked for: a bad queuestate only makes this vaguer)
            else:
                self.ledger = loaded.ledger
                self.per_node = loaded.meta.extra.get("output") == "per-node"
                return
        prefix = gather.PREFIX
        self.per_node = any(
            os.path.basename(index).startswith(prefix) for w in self.workdirs for index in gather.index_files(str(w))
        )

    def why(self, task_id: int) -> str:
        """What ``task {task_id}: `` is followed by."""
        if not self._read:
            self._read_sweep()
        ledger, workdir = self.ledger, self.workdirs[0]
        pending = ": per-node output is in the workdir once the task ends" if self.per_node else ""
        if ledger is None:
            return f"no {self.thing} in {workdir} (not run yet, or still running{pending})"
        if task_id not in ledger.tasks:
            ids = ledger.tasks.ids
            return (
                f"the sweep has task{'s' if len(ids) > 1 else ''} {compress(ids, ',')}"
                if ids
                else "the sweep has no tasks"
            )
        state = ledger.state(task_id)
        if state == QUEUED:
            return f"no {self.thing} in {workdir} (not run yet)"
        if state == RUNNING:
            return f"no {self.thing} in {workdir} (still running{pending})"
        return f"no {self.thing} in {workdir} (the task ran: its files are gone from the workdir)"


def output_main(argv: list[str]) -> int:
    parser = AnswerParser(
        prog="python -m mpilauncher output",
        description="Print a task's output (its latest attempt), whichever output mode the sweep ran in: "
        "out<N>, or the per-node files of --output per-node.",
    )
    parser.add_argument("sweep", metavar="WORKDIR_OR_QUEUESTATE", help="the sweep's workdir, or its queuestate")
    parser.add_argument("tasks", nargs="+", metavar="TASK_ID", help="task ids, or ranges such as 3-7")
    parser.add_argument("--exec", action="store_true", help="print the command as it was run (exec<N>) instead")
    args = parser.parse_args(argv)
    try:
        workdir, state = sweep_paths(Path(args.sweep))
        if not workdir.is_dir():  # (a queuestate whose workdir was deleted or moved)
            raise InputError(f"its workdir {workdir} is gone", args.sweep)
        try:
            ids = expand(" ".join(args.tasks), largest=MOST_IDS * 1000, most=MOST_IDS)
        except ValueError as err:
            raise InputError(f"task ids: {err}") from None
    except LauncherError as err:
        return _fail(err)
    kind = "exec" if args.exec else "out"
    workdirs = workdirs_of(workdir, state)
    absence = Absence(workdirs, state, "exec script" if args.exec else "output")
    status = EXIT_OK
    missing: list[int] = []  # (said in runs: 0-100000 on a sweep of 10 is one line, not 99,990)
    missing_why = ""
    told: set[str] = set()

    def say_missing() -> None:
        if missing:
            what = f"task {missing[0]}" if len(missing) == 1 else f"tasks {compress(missing, ',')}"
            log.error(f"{what}: {missing_why}")
            missing.clear()

    finder = gather.Finder([str(w) for w in workdirs], kind)
    for task_id in ids:
        found = finder.find(task_id)
        if found is None:
            why = absence.why(task_id)
            if why != missing_why:
                say_missing()
                missing_why = why
            missing.append(task_id)
            status = EXIT_TASKS_FAILED
            continue
        say_missing()
        record, where = found
        if where != str(workdir) and where not in told:  # (a sweep resumed into a new workdir left it there)
            told.add(where)
            log.note(f"the output of tasks that ended before the sweep moved to {workdir} is read from {where}")
        why = _print_record(record, f"==> task {task_id} <==\n" if len(ids) > 1 else None)
        if why is not None:
            log.error(f"task {task_id}: its {kind} cannot be read whole: {why}")
            status = EXIT_TASKS_FAILED
    say_missing()
    return status


def _print_record(record: gather.Record, header: str | None) -> str | None:
    """Write a record to stdout a piece at a time (a task that wrote gigabytes is not held in memory: a
    user walk saw 313 MB for one of 300 MB), after ``header``, and ending with a newline when there is
    one (several tasks); None, or why it cannot be read whole (what could be read is written first)."""
    prefix = header.encode() if header else b""
    last, why = b"\n", None
    try:
        for piece in gather.read_chunks(record):
            write_answer(prefix + piece if prefix else piece)
            prefix, last = b"", piece[-1:]
    except OSError as err:
        why = str(err) if isinstance(err, gather.CutShort) else f"{record.path}: {err.strerror or err}"
    if prefix:  # (an empty record: its header all the same)
        write_answer(prefix)
    if header and last != b"\n":
        write_answer(b"\n")
    return why


#: ``python -m mpilauncher NAME ...``: the commands beside running a sweep (and ``chain``).
COMMANDS = {"report": report_main, "output": output_main}
