"""A singleton started inside a multi-node Slurm job re-launches itself across the job.

The user guide's job script runs ``python3 example_classic_launcher.py`` with
no MPI starter on ``-N 2``.  Running there on one node would silently waste
the others, so mpilauncher replaces itself (``exec``) by the same command under
the site's starter, one rank per node:

    srun --nodes=N --ntasks=N --ntasks-per-node=1 --cpus-per-task=C --cpu-bind=none [--mpi=pmi2] <python> <argv>

``C`` is the smallest node's core count, so the launcher's step (and, with
``task/cgroup``, the tasks it forks) may use every core.  ``--mpi=pmi2`` is
added where Slurm's ``MpiDefault`` is ``none`` (mpi4py would otherwise see
one rank per step task).  ``MPILAUNCHER_STARTER`` picks another way:
``srun`` (default), ``ibrun`` (TACC), ``mpiexec``, or ``none`` (refuse with a
message saying how to start it).  ``MPILAUNCHER_RELAUNCHED`` marks the
re-launched processes so this happens once.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping

from mpilauncher import log, outbox
from mpilauncher.cluster import Allocation
from mpilauncher.errors import InputError, LauncherFailure
from mpilauncher.execution.starters import slurm_mpi_plugin
from mpilauncher.programs import which

MARKER = "MPILAUNCHER_RELAUNCHED"
STARTERS = ("srun", "ibrun", "mpiexec", "none")


def job_node_count(environ: Mapping[str, str]) -> int:
    for name in ("SLURM_JOB_NUM_NODES", "SLURM_NNODES"):
        try:
            return int(environ[name])
        except (KeyError, ValueError):
            continue
    return 1


def needs_relaunch(environ: Mapping[str, str]) -> bool:
    """A plain singleton in the batch script of a job with several nodes."""
    return (
        bool(environ.get("SLURM_JOB_ID"))
        and job_node_count(environ) > 1
        and "SLURM_STEP_ID" not in environ
        and MARKER not in environ
    )


def check_step(environ: Mapping[str, str]) -> str | None:
    """Inside a Slurm step with one MPI rank: an error or a warning to print, if any.

    ``srun -n 4 python -m mpilauncher`` where MPI is not wired (``--mpi=none``)
    starts four unrelated singletons that would each run the whole sweep:
    refuse.  A one-task step in a multi-node job uses one node: say so.
    """
    if "SLURM_STEP_ID" not in environ:
        return None
    try:
        ntasks = int(environ.get("SLURM_STEP_NUM_TASKS") or environ.get("SLURM_NTASKS") or "1")
    except ValueError:
        ntasks = 1
    if ntasks > 1:
        raise InputError(
            f"srun started {ntasks} tasks but MPI sees one rank in each: give srun the MPI plugin "
            "(e.g. srun --mpi=pmi2 ...), or start with ibrun/mpiexec"
        )
    nodes = job_node_count(environ)
    if nodes > 1:
        return f"this step has 1 task: running on 1 of the job's {nodes} nodes (srun -N {nodes} ... to use them all)"
    return None


def relaunch_command(environ: Mapping[str, str], allocation: Allocation, argv: list[str]) -> list[str]:
    """The command that runs ``argv`` (a full Python command line) across the job."""
    starter = environ.get("MPILAUNCHER_STARTER", "srun")
    nodes = job_node_count(environ)
    if starter not in STARTERS:
        raise InputError(f"MPILAUNCHER_STARTER={starter!r}: use one of {', '.join(STARTERS)}")
    # (the MPI plugin the re-launch gives srun, in the command suggested too: without it, on a cluster
    # whose MpiDefault is none, the suggestion failed -- "MPI sees one rank in each", a user walk)
    plugin = slurm_mpi_plugin() if starter in ("none", "srun") else None
    mpi = [f"--mpi={plugin}"] if plugin else []
    how = (
        f"this Slurm job has {nodes} nodes but mpilauncher was started without an MPI starter; "
        f"start it as 'srun --ntasks-per-node=1 {' '.join([*mpi, *argv])}' (or with ibrun/mpiexec)"
    )
    if starter == "none":
        raise InputError(how)
    path = which(starter)
    if path is None:
        raise LauncherFailure(f"{how}: {starter} is not on PATH to do it automatically")
    if starter == "srun":
        cpus = min(allocation.cores_per_node) if allocation.cores_per_node else 1
        return [
            path, f"--nodes={nodes}", f"--ntasks={nodes}", "--ntasks-per-node=1", f"--cpus-per-task={cpus}",
            "--cpu-bind=none", *mpi, *argv,
        ]  # fmt: skip
    if starter == "ibrun":
        return [path, *argv]  # one rank per core: surplus ranks park
    return [path, "-n", str(nodes), "-ppn", "1", *argv]


def python_command_line() -> list[str]:
    """How this Python process was started (``-m mpilauncher ...`` or ``script.py ...``)."""
    argv = list(getattr(sys, "orig_argv", [])) or [sys.executable, *sys.argv]
    argv[0] = sys.executable
    return argv


def exec_across_job(environ: Mapping[str, str], allocation: Allocation) -> None:
    """Replace this process by the launcher started on every node of the job; does not return."""
    command = relaunch_command(environ, allocation, python_command_line())
    log.info(f"{job_node_count(environ)}-node job: re-launching across it: {' '.join(command)}")
    sys.stdout.flush()
    outbox.drain_all(outbox.STOP_DRAIN)  # (the exec ends this process: what it wrote goes first)
    env = dict(environ)
    env[MARKER] = "1"
    os.execvpe(command[0], command, env)
