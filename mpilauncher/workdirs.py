"""Where a sweep's files go: its workdir, its queuestate's folder, and what tells them apart.

A workdir holds the tasks' output and the joblog of the sweep that names it; a new sweep never
writes into one that exists (PyLauncher wrote over another run's files), a resume goes on in its
own -- wherever it went, when the sweep's folder was moved (its marker file names the sweep).  The
queuestate, its journal and its lock are never the workdir, nor one of its files.  Rank 0 asks
here before it writes anything (see :func:`mpilauncher.rank0.run_master`).
"""

from __future__ import annotations

import contextlib
import itertools
import os
import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from mpilauncher import cluster
from mpilauncher.config import CLI_JOB_TYPE, DEFAULT_QUEUESTATE, Config
from mpilauncher.errors import InputError, LauncherFailure
from mpilauncher.persistence.lock import lock_path
from mpilauncher.persistence.queuestate import StateMeta
from mpilauncher.persistence.store import journal_path

if TYPE_CHECKING:
    from typing import Protocol

    class Plan(Protocol):
        """What is read of rank 0's plan here (:class:`mpilauncher.rank0.Plan`: this layer is below it)."""

        meta: StateMeta
        resumed_from: Path | None
        state_path: Path
        notes: list[str]
        ran_in: str | None


def state_target(config: Config) -> Path:
    """Where this run keeps the sweep's state: ``--queuestate``, else the resumed file, else ./queuestate."""
    return Path(config.queuestate or config.resume or DEFAULT_QUEUESTATE)


@contextlib.contextmanager
def state_folder(config: Config) -> Iterator[tuple[Path, ...]]:
    """Make the queuestate's folder where it is missing and this run may make it (see :func:`make_state_folder`);
    the folders made are given, outermost first, and removed again, while still empty, when the run fails:
    bad input leaves nothing behind."""
    made = make_state_folder(config)
    try:
        yield made
    except BaseException:
        for folder in reversed(made):
            with contextlib.suppress(OSError):
                folder.rmdir()
        raise


def make_state_folder(config: Config) -> tuple[Path, ...]:
    """The folders made for the queuestate, before its lock (the first file written beside it) is taken.

    The workdir this run creates may hold it (``--workdir W --queuestate W/qs``); through the PyLauncher
    API any missing folder is made, as PyLauncher's queuestate_update did (``os.makedirs``).  A folder the
    command line names that does not exist is refused, as the workdir's is: a typo in a path would make a
    tree of folders.  (A workdir of this run that exists already is refused later, in :func:`choose_workdir`.)
    """
    state = state_target(config)
    folder = state.parent
    if folder.is_dir():
        return ()
    if folder.exists() or folder.is_symlink():
        raise InputError(f"cannot write the queuestate: {folder} is not a folder", str(state))
    missing = [folder, *itertools.takewhile(lambda p: not p.exists(), folder.parents)][::-1]
    the_workdir = bool(config.workdir) and os.path.abspath(folder) == os.path.abspath(config.workdir or "")
    if config.job_type == CLI_JOB_TYPE and not the_workdir:
        raise InputError(f"cannot write the queuestate: its folder {folder} does not exist", str(state))
    if config.job_type == CLI_JOB_TYPE and len(missing) > 1:
        raise InputError(f"cannot create workdir: {folder.resolve().parent} does not exist", str(folder))
    made = []
    try:
        for path in missing:
            path.mkdir()
            made.append(path)
    except OSError as err:
        for path in reversed(made):
            with contextlib.suppress(OSError):
                path.rmdir()
        raise InputError(f"cannot create the queuestate's folder {path}: {err.strerror or err}", str(state)) from None
    return tuple(made)


def made_here(workdir: Path, made: tuple[Path, ...]) -> bool:
    """Whether ``workdir`` is one of the folders this run made for its queuestate (see :func:`state_folder`)."""
    return bool(made) and workdir.resolve() in {path.resolve() for path in made}


def files_of(state: Path) -> tuple[Path, Path, Path]:
    """A queuestate's file, its journal and its lock."""
    return state, journal_path(state), lock_path(state)


def choose_workdir(config: Config, plan: Plan, allocation: cluster.Allocation, made: tuple[Path, ...] = ()) -> Path:
    """The run's workdir, checked: one that exists is refused unless a resume goes on in the sweep's own (at
    the place its queuestate names, or moved: see :func:`own_workdir`), or this run made it for the
    queuestate to go in (``made``: see :func:`state_folder`)."""
    recorded = Path(plan.meta.workdir) if plan.resumed_from is not None and plan.meta.workdir else None
    if config.workdir:
        workdir = Path(config.workdir)
    elif recorded is not None:
        workdir = recorded if recorded.exists() else moved_workdir(plan, recorded) or recorded
    else:
        workdir = default_workdir(allocation.job_id)
    check_apart(workdir, plan.state_path)
    moved = recorded is not None and not recorded.exists() and own_workdir(workdir, plan.meta)
    resuming_same = recorded is not None and (moved or workdir.resolve() == recorded.resolve())
    if workdir.exists() and not workdir.is_dir():
        raise InputError("workdir exists and is not a directory", str(workdir))
    if resuming_same and sweep_of_workdir(workdir) not in (None, plan.meta.extra.get("sweep")):
        raise InputError("workdir holds another sweep's files: choose another with --workdir", str(workdir))
    if workdir.exists() and not resuming_same and not made_here(workdir, made):
        raise InputError(
            "workdir already exists: remove it or choose another with --workdir (PyLauncher wrote into it; here a"
            " run never writes over another run's files)",
            str(workdir),
        )
    parent = workdir.resolve().parent
    if not parent.is_dir():
        moved_away = " (moved? name the sweep's workdir where it is now, or a new one, with --workdir)"
        raise InputError(
            f"cannot create workdir: {parent} does not exist{moved_away if workdir is recorded else ''}", str(workdir)
        )
    if not os.access(parent, os.W_OK | os.X_OK) and not resuming_same:
        raise InputError(f"cannot create workdir: {parent} is not writable", str(workdir))
    if moved:  # the same workdir as before, not an earlier one (see note_earlier_workdir)
        plan.notes.append(f"the sweep's workdir {recorded} is gone: going on in {workdir}, where it moved")
        plan.meta.workdir = str(workdir.resolve())
    return workdir


#: The file in a workdir that names the sweep that writes into it (see :func:`mark_workdir`).
SWEEP_MARKER = ".mpilauncher-sweep"


def mark_workdir(workdir: Path, sweep: str | None) -> None:
    """Name the sweep in its workdir, by which a resume knows the workdir for its own wherever it went (a
    sweep's folder moved or renamed: a user walk's resume was refused its own workdir at its new place)."""
    if not sweep or sweep_of_workdir(workdir) == sweep:
        return
    marker = workdir / SWEEP_MARKER
    try:
        marker.write_text(f"{sweep}\n")
    except OSError as err:
        raise LauncherFailure(f"{marker}: cannot write: {err.strerror or err}") from None


def sweep_of_workdir(workdir: Path) -> str | None:
    """The sweep whose workdir ``workdir`` is, as its marker says; None: none said (not a workdir, or one
    begun by an earlier version)."""
    try:
        return (workdir / SWEEP_MARKER).read_text(errors="replace").strip()
    except OSError:
        return None


def own_workdir(workdir: Path, meta: StateMeta) -> bool:
    """Whether ``workdir`` is the workdir of the sweep of ``meta``, wherever it is now."""
    sweep = meta.extra.get("sweep")
    return bool(sweep) and sweep_of_workdir(workdir) == sweep


def moved_workdir(plan: Plan, recorded: Path) -> Path | None:
    """A resume's own workdir, gone from the place its queuestate names (``recorded``), found where its name
    relative to the directory the sweep last ran in leads from here or from the queuestate's folder: the
    sweep's folder was moved or renamed, its names relative.  Only the sweep's own (its marker) is taken."""
    if not plan.ran_in or plan.resumed_from is None:
        return None
    relative = os.path.relpath(recorded, plan.ran_in)
    for base in dict.fromkeys([Path.cwd(), plan.resumed_from.resolve().parent]):
        candidate = Path(os.path.normpath(base / relative))
        if own_workdir(candidate, plan.meta):
            return candidate
    return None


#: The files a run writes in its workdir (see README, "The workdir"): no queuestate in it may bear such a name.
_WORKDIR_FILE = re.compile(rf"joblog|(?:out|exec|chunk)\d+|(?:exec|output)\..*|{re.escape(SWEEP_MARKER)}")


def check_apart(workdir: Path, state: Path) -> None:
    """Refuse a workdir that is the queuestate or one of its files, and a queuestate that is one of the
    workdir's files, before anything is written: a user walk's ``--workdir X --queuestate X`` started the
    tasks in the folder X, then could not write the queuestate X (exit 3), and the folder it left behind
    refused the corrected rerun."""
    where = workdir.resolve()
    names = ("the queuestate", "the queuestate's journal", "the queuestate's lock")
    for path, what in zip(files_of(state), names, strict=True):
        if path.resolve() == where:
            raise InputError(
                f"cannot be the workdir: it is {what} ({state}): give the workdir and the queuestate different names",
                str(workdir),
            )
    if state.resolve().parent == where and _WORKDIR_FILE.fullmatch(state.name):
        raise InputError(f"cannot be the queuestate: the workdir {workdir} has a file of that name", str(state))


#: Earlier workdirs a queuestate's ``#meta`` names at most (each resume into a new one adds one).
MOST_EARLIER_WORKDIRS = 100


def note_earlier_workdir(meta: StateMeta, workdir: str) -> None:
    """The sweep writes into ``workdir`` from now on; a resume into another workdir than the sweep's keeps
    the one left behind in the ``#meta`` (``earlier_workdirs``, oldest first), where the tasks that ended
    there keep their output and joblog lines: ``report`` and ``output`` read them there (a user walk:
    after ``--resume --workdir NEW`` a task that had failed showed "(no joblog line)" and no output)."""
    left = meta.workdir
    if left and left != workdir:
        named = meta.extra.get("earlier_workdirs") or ()
        earlier = [w for w in named if isinstance(w, str) and w not in (left, workdir)]
        meta.extra["earlier_workdirs"] = [*earlier, left][-MOST_EARLIER_WORKDIRS:]
    meta.workdir = workdir


def default_workdir(job_id: str | None) -> Path:
    """``pylauncher_tmp<jobid>`` (outside Slurm ``pylauncher_tmplocal<date>-<pid>``), made unique per run.

    A second run in the same allocation (an interactive ``salloc``/``idev``
    session, two sweeps of one job script) would otherwise find the first run's
    workdir and be refused, as PyLauncher refuses it; here it gets
    ``pylauncher_tmp<jobid>-2`` (then -3, ...), and the start-up lines say so.
    """
    local_id = job_id or f"local{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}"
    base = f"pylauncher_tmp{local_id}"
    workdir, run = Path(base), 1
    while workdir.exists() and run < 1000:
        run += 1
        workdir = Path(f"{base}-{run}")
    return workdir


def remove_empty_workdir(workdir: Path) -> None:
    for name in ("joblog", SWEEP_MARKER):
        try:
            (workdir / name).unlink()
        except OSError:
            pass
    try:
        workdir.rmdir()
    except OSError:
        pass
