"""The small subset of PyLauncher's objects that extended scripts use.

PyLauncher's user guide says it "can be extended or integrated into a Python
application"; its examples build a ``LauncherJob`` from a ``HostPool`` and a
``TaskGenerator`` around a ``CommandlineGenerator`` (often a subclass of their
own), or feed a ``DynamicLauncher`` with ``append``.  These classes keep those
scripts running: they collect what the script says (the commandlines, a slot
count, a workdir, keywords) and run it as one sweep through
:func:`~mpilauncher.compat.launchers.launch`.  Executors, host lists and the
like only carry settings: tasks always start through mpilauncher's own
executors.

Commandline generators are read to their end before the first task starts;
so are a DynamicLauncher's appended tasks, which run when ``tick()`` (or
``run()``) follows ``finish()`` -- adding tasks to a running sweep is for a
later release.
"""

from __future__ import annotations

import os
import random
import socket
import time
from collections.abc import Iterable

from mpilauncher.compat.errors import LauncherException, refuse
from mpilauncher.compat.launchers import launch
from mpilauncher.report.summary import PYLAUNCHER_VERSION, final_report
from mpilauncher.report.trace import format_queue
from mpilauncher.result import RunResult

pylauncher_version = PYLAUNCHER_VERSION


def JobId() -> str | None:  # noqa: N802 (PyLauncher's names)
    """The batch job's id (Slurm, or PBS), None outside a batch job."""
    return os.environ.get("SLURM_JOB_ID") or os.environ.get("SLURM_JOBID") or os.environ.get("PBS_JOBID")


def HostName() -> str:  # noqa: N802
    return socket.gethostname()


class Commandline:
    """A command and its core count: ``Commandline("./prog 5", cores=4)``."""

    def __init__(self, command: str, cores: int = 1, **_ignored) -> None:
        self.data = {"command": command, "cores": cores}

    def __getitem__(self, key: str):
        return self.data[key]

    def __str__(self) -> str:
        return f"command=<<{self.data['command']}>>, cores={self.data['cores']}"


class CommandlineGenerator:
    """An iterator of commandlines (strings or :class:`Commandline`), as in PyLauncher.

    Subclass it and override ``next()``: return the next commandline, raise
    ``StopIteration`` at the end.  The base class hands out ``list=``.
    """

    def __init__(self, list: Iterable = (), nmax: int | None = None, **_ignored) -> None:  # noqa: A002
        self.list = [*list]
        self.nmax = nmax
        self.njobs = 0
        self.stopped = False

    def next(self):
        if self.stopped or not self.list or (self.nmax and self.njobs >= self.nmax):
            raise StopIteration
        self.njobs += 1
        return self.list.pop(0)

    def __next__(self):
        return self.next()

    def __iter__(self):
        return self

    def __len__(self) -> int:
        return len(self.list)

    def finish(self) -> None:
        """Nothing more will come (the base class ends with its list anyway)."""

    def abort(self) -> None:
        self.stopped = True


class ListCommandlineGenerator(CommandlineGenerator):
    """The commands of ``list=`` (strings), one core each."""

    def __init__(self, list: Iterable[str] = (), **kwargs) -> None:  # noqa: A002
        super().__init__(list=[Commandline(command) for command in list], **kwargs)


class FileCommandlineGenerator(CommandlineGenerator):
    """A commandlines file: run as the file itself (so resume checks its content, as ClassicLauncher does)."""

    def __init__(self, filename, cores=1, **kwargs) -> None:
        super().__init__(**kwargs)
        self.filename = filename
        self.cores = cores


class CountedCommandGenerator:
    """``echo 0``, ``echo 1``, ... (``command=`` replaces echo); ``nmax`` of them, endless without."""

    def __init__(self, nmax: int = -1, command: str = "echo", catch: str | None = None) -> None:
        self.nmax, self.command, self.catch = nmax, command, catch
        self.count = 0

    @property
    def endless(self) -> bool:
        return self.nmax is None or self.nmax < 0

    def next(self) -> str:
        if self.count == self.nmax:
            raise StopIteration
        line = f"{self.command} {self.count}"
        self.count += 1
        return line + (f" >> {self.catch} 2>&1 " if self.catch is not None else "")

    def __next__(self) -> str:
        return self.next()

    def __iter__(self):
        return self


class SleepCommandGenerator(CountedCommandGenerator):
    """``echo N >> /dev/null 2>&1  ; sleep T`` with T drawn from ``tmin`` to ``tmax``."""

    def __init__(self, nmax: int = -1, tmax: int = 5, tmin: int = 1, barrier: int = 0, **kwargs) -> None:
        if barrier:
            raise refuse("SleepCommandGenerator: barrier= is not supported (tasks have no barriers here)")
        super().__init__(nmax=nmax, catch="/dev/null", **kwargs)
        self.tmax, self.tmin = int(tmax), int(tmin)

    def next(self) -> str:
        return super().next() + f" ; sleep {int(self.tmin + (self.tmax - self.tmin) * random.random())}"


class SSHExecutor:
    """Only carries ``workdir`` (and ``catch_output``): tasks start through mpilauncher's executors, not ssh."""

    def __init__(self, workdir=None, catch_output: bool = True, **_ignored) -> None:
        self.workdir = workdir
        self.catch_output = catch_output


LocalExecutor = SSHExecutor


class HostListByName:
    """The job's nodes (what mpilauncher uses anyway); keywords such as ``corespernode`` are kept."""

    def __init__(self, **kwargs) -> None:
        self.kwargs = {k: v for k, v in kwargs.items() if k in ("corespernode", "gpuspernode", "cores")}


class HostPool:
    """``nhosts=N``: N task slots on this machine; ``hostlist=HostListByName()``: the job's nodes."""

    def __init__(self, nhosts: int = 0, hostlist=None, commandexecutor=None, workdir=None, **_ignored) -> None:
        self.nhosts = int(nhosts or 0)
        self.hostlist = hostlist
        self.commandexecutor = commandexecutor
        self.workdir = workdir or getattr(commandexecutor, "workdir", None)

    def release(self) -> None:
        """PyLauncher closed its ssh connections here; nothing to do."""


def LocalHostPool(nhosts: int = 1, workdir=None, **kwargs) -> HostPool:  # noqa: N802
    return HostPool(nhosts=nhosts, workdir=workdir, **kwargs)


class TaskGenerator:
    """Wraps a commandline generator (or a list of strings) for :class:`LauncherJob`."""

    def __init__(self, commandlines, taskmaxruntime=0, workdir=None, **_ignored) -> None:
        self.commandlinegenerator = commandlines
        self.taskmaxruntime = taskmaxruntime
        self.workdir = workdir

    def finish(self) -> None:
        finish = getattr(self.commandlinegenerator, "finish", None)
        if finish is not None:
            finish()


WrappedTaskGenerator = TaskGenerator
BareTaskGenerator = TaskGenerator

#: LauncherJob keywords that go on to the launch as they are (see the keyword table).
_JOB_KEYWORDS = (
    "debug", "delay", "maxruntime", "taskmaxruntime", "queuestate", "workdir", "gather_output", "cores",
    "corespernode", "schedule", "numactl", "start_interval", "start_over", "retries", "bind", "rerun_failed",
)  # fmt: skip


class LauncherJob:
    """PyLauncher's job object: ``LauncherJob(hostpool=..., taskgenerator=..., **kw).run()``.

    ``run()`` runs the task generator's commandlines as one sweep and returns
    the :class:`RunResult` (so does the first ``tick()``, for a script that drives
    the loop itself); ``final_report()`` returns the statistics block (printed by
    the script, as PyLauncher's examples do).
    """

    job_type = "LauncherJob"

    def __init__(self, hostpool: HostPool | None = None, taskgenerator: TaskGenerator | None = None, **kwargs) -> None:
        self.hostpool = hostpool or HostPool()
        self.taskgenerator = taskgenerator
        self.keywords = dict(kwargs)
        try:  # tick()'s wait; a bad delay is reported by the run, in one line
            self.delay = float(kwargs.get("delay", 0.5))
        except (TypeError, ValueError):
            self.delay = 0.5
        self.result: RunResult | None = None
        self.tock = 0
        self.starttime = time.time()
        self.runningtime = 0.0

    # -- what run() hands to the launch ---------------------------------------------------
    def _keywords(self) -> dict[str, object]:
        keywords = dict(self.keywords)
        if self.hostpool.nhosts:
            keywords["nhosts"] = self.hostpool.nhosts
        if self.hostpool.hostlist is not None and hasattr(self.hostpool.hostlist, "kwargs"):
            for name, value in self.hostpool.hostlist.kwargs.items():
                keywords.setdefault(name, value)
        if self.hostpool.workdir is not None:
            keywords.setdefault("workdir", self.hostpool.workdir)
        generator = self.taskgenerator
        if generator is not None:
            if generator.workdir is not None:
                keywords.setdefault("workdir", generator.workdir)
            if generator.taskmaxruntime:
                keywords.setdefault("taskmaxruntime", generator.taskmaxruntime)
            cores = getattr(generator.commandlinegenerator, "cores", None)
            if cores is not None and cores != 1:
                keywords.setdefault("cores", cores)
        return keywords

    def _commandlines(self):
        if self.taskgenerator is None:
            raise refuse(f"{self.job_type}: no taskgenerator= to take the commandlines from")
        return self.taskgenerator.commandlinegenerator

    def run(self) -> RunResult:
        """Run the whole sweep; returns when it is done (or stopped at maxruntime)."""
        began = time.time()
        self.result = launch(self.job_type, self._commandlines(), self._keywords(), print_statistics=False)
        self.runningtime = time.time() - began
        return self.result

    def tick(self, **_ignored) -> str:
        """PyLauncher's step of a loop the script drives itself: ``while job.tick() != "finished": ...``
        (PyLauncher 3 and 4, and its own tests) or ``while not job.finished(): job.tick()`` (5.4).

        The first call runs the whole sweep, as :meth:`run` does (tasks start as cores free up, not
        one a tick), and every call says "finished" (as ``finished()`` is true) from then on.  What
        PyLauncher's ticks said in between ("enqueueing", "continuing") told a script nothing to act
        on but that the sweep was not done yet.
        """
        self.tock += 1
        if self.result is None:
            self.run()
        return "finished"

    def final_report(self, **_ignored) -> str:
        """The statistics block (empty before the run, and on MPI ranks other than 0)."""
        if self.result is None or self.result.statistics is None:
            return ""
        return final_report(self.result.statistics, self.result.interrupted)

    def finished(self) -> bool:
        return self.result is not None

    @property
    def queue(self) -> str:
        """PyLauncher's four queue lines (completed, aborted, queued, running)."""
        if self.result is None or self.result.queuestate is None:
            return _queue_text([], [], [], [])
        from mpilauncher.core.ledger import COMPLETED, FAILED, QUEUED, RUNNING
        from mpilauncher.core.tasks import CoresSpec
        from mpilauncher.persistence.store import load_state

        ledger = load_state(self.result.queuestate, CoresSpec("fixed", 1)).ledger
        return _queue_text(*(ledger.ids_in(state) for state in (COMPLETED, FAILED, QUEUED, RUNNING)))


class DynamicLauncherJob(LauncherJob):
    """PyLauncher's DynamicLauncher: ``append(command)`` any number of times, ``finish()``, then ``tick()``
    until ``finished()``.  The appended tasks run, as one sweep, at the first ``tick()`` after ``finish()``
    (each earlier ``tick()`` waits ``delay`` seconds, so a polling loop does not spin)."""

    job_type = "DynamicLauncher"

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.commands: list[str] = []
        self._finished = False

    def append(self, commandline) -> int:
        """Add a command (a string or Commandline); returns its task number."""
        if self._finished:
            raise refuse("DynamicLauncher: append() after finish(): no more commands may come")
        self.commands.append(commandline if isinstance(commandline, str) else commandline["command"])
        return len(self.commands) - 1

    def finish(self) -> None:
        """No more commands will be appended."""
        self._finished = True

    def tick(self, **_ignored) -> str:
        """Before ``finish()``: wait ``delay`` and say "stalling" (PyLauncher's word for a generator that
        has nothing now, more to come); after it, :meth:`LauncherJob.tick`: the sweep, then "finished"."""
        if not self._finished:
            self.tock += 1
            time.sleep(self.delay)
            return "stalling"
        return super().tick()

    def _commandlines(self):
        if not self.commands:
            raise refuse("DynamicLauncher: finish() before any append(): there is nothing to run")
        return list(self.commands)

    @property
    def queue(self) -> str:
        if self.result is None:
            return _queue_text([], [], list(range(len(self.commands))), [])
        return super().queue


def DynamicLauncher(*args, **kwargs) -> DynamicLauncherJob:  # noqa: N802
    """A job to feed with ``append()``; see :class:`DynamicLauncherJob`."""
    from mpilauncher.compat.keywords import BY_NAME, unknown_keyword

    for name in kwargs:
        if name not in BY_NAME:
            raise refuse(unknown_keyword("DynamicLauncher", name))
    return DynamicLauncherJob(**kwargs)


def _queue_text(completed, aborted, queued, running) -> str:
    return "\n".join(format_queue(sorted(completed), sorted(aborted), sorted(queued), sorted(running))) + "\n"


__all__ = [
    "Commandline", "CommandlineGenerator", "CountedCommandGenerator", "DynamicLauncher", "DynamicLauncherJob",
    "FileCommandlineGenerator", "HostListByName", "HostName", "HostPool", "JobId", "LauncherException", "LauncherJob",
    "ListCommandlineGenerator", "LocalExecutor", "LocalHostPool", "SSHExecutor", "SleepCommandGenerator",
    "TaskGenerator", "WrappedTaskGenerator", "BareTaskGenerator", "pylauncher_version",
]  # fmt: skip
