"""Errors the launcher reports, split by who is at fault.

A failed *task* is data (an exit code in the joblog and queuestate), never an
exception.  Exceptions are for the launcher itself: the user's input was bad
(:class:`InputError`, exit status 2) or the launcher could not go on
(:class:`LauncherFailure`, exit status 3).  Every message is one line that
names the file, the line and the problem, so the CLI and the PyLauncher-style
API can print it as it is, without a traceback.
"""

from __future__ import annotations

import os
import signal

from mpilauncher.records import record

#: Documented exit statuses of ``python -m mpilauncher`` (see README).
EXIT_OK = 0
EXIT_TASKS_FAILED = 1
EXIT_BAD_INPUT = 2
EXIT_LAUNCHER_FAILED = 3
#: Stopped at --max-runtime or before the job's time limit; resume to finish.
EXIT_STOPPED = 4
#: Stopped by a signal N: the conventional shell status 128 + N.
EXIT_SIGNAL_BASE = 128


#: How MPI starters tell a process its rank (read before MPI is initialised: a bad option or keyword is found first).
RANK_VARIABLES = ("PMI_RANK", "OMPI_COMM_WORLD_RANK", "PMIX_RANK", "MV2_COMM_WORLD_RANK", "SLURM_PROCID")


def first_rank() -> bool:
    """Rank 0 of an MPI job, or no MPI job: the process that speaks for the run.

    Under ``ibrun python3 script.py`` (or ``mpiexec -n K python -m mpilauncher``) every rank finds
    the same bad keyword (option); only one may say so.
    """
    in_a_task = "PYL_ID" in os.environ or "MPILAUNCHER_TASK_ID" in os.environ
    for name in RANK_VARIABLES:
        if name == "SLURM_PROCID" and in_a_task:  # (a launcher's task inherits its agent's: no rank of its own;
            continue  # a nested launcher there said nothing of a bad option, and exited 2)
        value = os.environ.get(name)
        if value is not None and value.strip().isdigit():
            return int(value) == 0
    return True


class LauncherError(Exception):
    """Base of every error the launcher reports as one line."""

    exit_status = EXIT_LAUNCHER_FAILED
    #: The line was printed already, when it happened: the CLI and the API print nothing more.
    reported = False


class InputError(LauncherError):
    """The user's input is wrong: a file, a line or an option.  Exit status 2."""

    exit_status = EXIT_BAD_INPUT

    def __init__(self, problem: str, source: str | None = None, line: int | None = None) -> None:
        where = ""
        if source is not None:
            where = f"{source}:{line}: " if line else f"{source}: "
        super().__init__(f"{where}{problem}")
        self.source = source
        self.line = line
        self.problem = problem


class OptionError(InputError):
    """A bad option value.  It carries the setting (``make_config``'s parameter name) and the
    problem apart, so each front end names the option its own way: the CLI ``--cores-per-node``,
    a PyLauncher script ``corespernode=``.  Its own text uses a neutral ``label``."""

    def __init__(self, setting: str, problem: str, label: str | None = None) -> None:
        super().__init__(f"{label or setting} {problem}")
        self.setting = setting
        self.problem = problem

    def named(self, name: str) -> str:
        """The message with the option called ``name``."""
        return f"{name} {self.problem}"


class LauncherFailure(LauncherError):
    """The launcher itself could not go on (I/O failure, lost agents...).  Exit status 3."""

    def __init__(self, message: str, reported: bool = False) -> None:
        super().__init__(message)
        self.reported = reported


class ProtocolError(LauncherFailure):
    """A peer spoke a different protocol version, or sent something unexpected."""


class StoppedBySignal(LauncherError):
    """A stop signal arrived before the run began (e.g. while rank 0 waited for its agents).

    Nothing was started or written; the exit status is 128+N, as for a run stopped by signal N.
    """

    def __init__(self, signum: int, when: str) -> None:
        super().__init__(f"stopped by {signal.Signals(signum).name} {when}")
        self.exit_status = EXIT_SIGNAL_BASE + signum


@record(frozen=True)
class Unplaceable:
    """A task no node can ever hold: the core reports it, the caller words it."""

    task_id: int
    needed: int
    largest_node: int
    gpus_needed: int = 0
    most_gpus: int = 0
