"""The job scripts the submitter writes, and the status file each job leaves at its end.

How a job's exit code and runtime are learned without Slurm accounting: the
script notes the time it began, runs the task, and at its end writes one line
-- ``token=... job=... exit=... start=... end=... node=...`` -- to its status
file, atomically (a temporary file renamed into place), so the submitter never
reads half a line.  The token (sweep and submission number) tells this job's
status from one an earlier attempt of the same task left behind.  A job that
is killed (``scancel``, its time limit, a node failure) writes nothing: the
submitter learns its end from ``squeue``/``scontrol`` instead (see
:mod:`.backend`).

One task per job: the script runs the task's line under ``/bin/sh -c`` in the
submitter's directory, with the task's variables (``PYL_ID``...), its output
going to ``out<N>`` (the job's ``--output``); an MPI task gets the starter of
its own job (``srun``, or ``ibrun`` at TACC) in front, or at ``PYL_MPIEXEC``.

A chunk of tasks per job: the script runs ``python -m mpilauncher --resume``
over a queuestate that lists the chunk's tasks with their own numbers, so the
launcher inside the job packs them onto the job's cores and writes each task's
``out<N>``, exit code and runtime as in any run.  The script passes Slurm's
early warning (``--signal=B:USR1@N``) and SIGTERM on to that launcher and
waits for it, so the status is written after a clean stop too.
"""

from __future__ import annotations

import os
import shlex
import sys

from mpilauncher.execution.starters import MARKER, shell_program, srun_mpi_option
from mpilauncher.programs import which

#: Our variables whose values in a job differ from what the agent resolved for a one-slot task.
JOB_OWNED = ("MPILAUNCHER_CORES", "MPILAUNCHER_NODE", "MPILAUNCHER_NCORES", "OMP_NUM_THREADS")

_STATUS_FUNCTION = """\
mpilauncher_status() {{
    printf 'token=%s job=%s exit=%s start=%s end=%s node=%s\\n' {token} "${{SLURM_JOB_ID:-?}}" "$1" \\
        "$mpilauncher_start" "$(date +%s.%N)" "${{SLURMD_NODENAME:-$(hostname)}}" > {partial} \\
        && mv -f {partial} {status}
}}
mpilauncher_start=$(date +%s.%N)
cd {cwd} || {{ mpilauncher_status 1; exit 1; }}
"""


def _head(comment: str, token: str, status: str, cwd: str) -> str:
    return "#!/bin/bash\n" + comment + _STATUS_FUNCTION.format(
        token=shlex.quote(token), partial=shlex.quote(status + ".partial"), status=shlex.quote(status),
        cwd=shlex.quote(cwd),
    )  # fmt: skip


def task_script(
    task_id: int,
    line: int,
    command: str,
    cwd: str,
    variables: dict[str, str | None],
    token: str,
    status: str,
    mpi_starter: str | None = None,
    whole_node: bool = False,
    managed_omp: bool = True,
) -> str:
    """The script of a job that runs one task; ``variables``: set (a str) or unset (None) for it.

    ``whole_node``: the task's core count is the job's CPUs on its node, known only there;
    ``managed_omp``: the launcher sets OMP_NUM_THREADS (the user did not).
    """
    where = f" (commandlines line {line})" if line else ""
    comment = (
        f"# mpilauncher: task {task_id}{where} as a Slurm job of its own, submitted by\n"
        f"# python -m mpilauncher --submit.  Its exit code and times go to {status} at its end.\n"
    )
    exports = " ".join(f"{name}={shlex.quote(value)}" for name, value in variables.items() if value is not None)
    unset = " ".join(name for name, value in variables.items() if value is None)
    body = f"export {exports}\n" if exports else ""
    body += f"unset {unset}\n" if unset else ""
    body += 'export MPILAUNCHER_NODE="${SLURMD_NODENAME:-$(hostname)}"\n'
    if whole_node:
        body += 'export MPILAUNCHER_NCORES="${SLURM_CPUS_ON_NODE:-1}"\n'
        body += 'export OMP_NUM_THREADS="$MPILAUNCHER_NCORES"\n' if managed_omp else ""
    if mpi_starter:
        command = with_starter(command, mpi_starter)
    body += f"/bin/sh -c -- {shlex.quote(command)}\nmpilauncher_exit=$?\n"
    body += "mpilauncher_status $mpilauncher_exit\nexit $mpilauncher_exit\n"
    return _head(comment, token, status, cwd) + body


def chunk_script(tasks: str, queuestate: str, cwd: str, token: str, status: str, options: tuple[str, ...]) -> str:
    """The script of a job that runs a chunk of tasks with the launcher, over the chunk's ``queuestate``."""
    comment = (
        f"# mpilauncher: tasks {tasks} as one Slurm job, run by the launcher inside it; submitted by\n"
        f"# python -m mpilauncher --submit --tasks-per-job.  Its exit status and times go to {status} at its end.\n"
    )
    launcher = shlex.join([sys.executable, "-m", "mpilauncher", "--resume", queuestate, *options])
    body = (
        f"{launcher} &\n"
        "mpilauncher_pid=$!\n"
        "# Slurm's early warning (--signal=B:USR1@N) and SIGTERM reach this shell: pass them on, wait on.\n"
        "trap 'kill -USR1 $mpilauncher_pid 2>/dev/null' USR1\n"
        "trap 'kill -TERM $mpilauncher_pid 2>/dev/null' TERM\n"
        "while :; do\n"
        "    wait $mpilauncher_pid\n"
        "    mpilauncher_exit=$?\n"
        "    kill -0 $mpilauncher_pid 2>/dev/null || break\n"
        "done\n"
        "mpilauncher_status $mpilauncher_exit\nexit $mpilauncher_exit\n"
    )
    return _head(comment, token, status, cwd) + body


def mpi_starter() -> str:
    """The starter of an MPI task that is a job of its own: ``ibrun`` where it exists (TACC), else ``srun``
    (with the MPI plugin Slurm's default lacks, if it does: see :func:`starters.srun_mpi_option`)."""
    return "ibrun" if which("ibrun") else f"srun{srun_mpi_option(os.environ)}"


def with_starter(command: str, starter: str) -> str:
    """An MPI task's line with its job's starter in front, or in place of ``PYL_MPIEXEC``."""
    if MARKER in command:
        before, _, after = command.partition(MARKER)
        return f"{before}{starter} {shell_program(after.strip())}"
    return f"{starter} {shell_program(command)}"


class Status:
    """A job's status line read back: ``exit`` (the script's exit status), ``start``, ``end``, ``host`` (its
    ``node=``: the name of the node the job ran on)."""

    __slots__ = ("token", "job", "exit", "start", "end", "host")

    def __init__(self, token: str, job: str, exit_status: int, start: float, end: float, host: str) -> None:
        self.token, self.job, self.exit, self.start, self.end, self.host = token, job, exit_status, start, end, host

    @property
    def runtime(self) -> float:
        return max(0.0, self.end - self.start)


def read_status(path: str) -> Status | None:
    """The status a job wrote at ``path``; None while there is none (or what is there is not one)."""
    try:
        with open(path, encoding="utf-8", errors="replace") as file:
            text = file.read(4096)
    except OSError:
        return None
    fields = dict(word.partition("=")[::2] for word in text.split())
    try:
        return Status(fields["token"], fields.get("job", "?"), int(fields["exit"]), float(fields["start"]),
                      float(fields["end"]), fields.get("node", ""))  # fmt: skip
    except (KeyError, ValueError):
        return None
