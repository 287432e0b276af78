"""MPI starters for MPI tasks: the command line that runs a task's k ranks on exactly its slots.

A task's slots are one or more *segments* -- (host, number of ranks, global
offset of its first slot) -- decided by the scheduler.  Each starter gets them
in its own terms:

``ibrun``   ``ibrun -o OFFSET -n K cmd`` with ``TACC_TASKS_PER_NODE`` set to the
            cores per node, so that ibrun's task list has one entry per core and
            OFFSET is the first slot's index in the job (PyLauncher's scheme).
            Segments are contiguous by construction.
``srun``    a job step inside the launcher's allocation on exactly those hosts:
            ``--nodelist`` lists each host once per rank with
            ``--distribution=arbitrary``; ``--overlap`` because the launcher's own
            step holds the CPUs (without it the nested srun hangs, measured);
            the outer step's layout variables are removed from the environment;
            ``--mpi=pmi2`` where Slurm's own default would not wire MPI (see
            :func:`srun_mpi_option`).
``mpiexec`` MPICH's hydra: ``-hosts H1:N1,H2:N2`` and one MPMD section per segment;
            Open MPI: ``mpirun`` with one ``-n N --host H:N`` section per segment.  The launcher's own
            PMI/HYDRA/OMPI variables are already gone from every task's environment,
            so the nested job is independent of the launcher's.

Every rank also learns its segment: ``MPILAUNCHER_HOST`` and
``MPILAUNCHER_HOST_CORES`` (with hydra, and from ``SLURMD_NODENAME`` under srun).
``spawn``   ``MPI_Comm_spawn`` through a small proxy (:mod:`mpilauncher.spawn`), for
            programs that cooperate by calling ``mpilauncher.spawn.report``.

A command containing ``PYL_MPIEXEC`` gets the starter put there instead of in
front, as in PyLauncher.
"""

from __future__ import annotations

import functools
import os
import re
import shlex
import sys
from collections.abc import Mapping

from mpilauncher.errors import InputError
from mpilauncher.programs import which
from mpilauncher.records import record

STARTERS = ("auto", "ibrun", "srun", "mpiexec", "spawn")
#: Seconds a spawned program has to start MPI (spawn starter); MPILAUNCHER_SPAWN_TIMEOUT overrides.
SPAWN_TIMEOUT = 60.0
MARKER = "PYL_MPIEXEC"
#: Layout variables of the launcher's own srun step that would leak into a nested srun.
SRUN_LAYOUT_VARIABLES = (
    "SLURM_NTASKS_PER_NODE", "SLURM_TASKS_PER_NODE", "SLURM_NTASKS", "SLURM_NPROCS", "SLURM_CPUS_PER_TASK",
    "SLURM_DISTRIBUTION", "SLURM_NNODES", "SLURM_STEP_NUM_TASKS", "SLURM_STEP_NUM_NODES", "SLURM_STEP_TASKS_PER_NODE",
    "SLURM_CPU_BIND", "SLURM_CPU_BIND_LIST", "SLURM_CPU_BIND_TYPE", "SLURM_CPU_BIND_VERBOSE",
)  # fmt: skip
_SHELL_SYNTAX = re.compile(r"[;&|<>()`$*?\[\]{}~'\"\\\n]")


@record(frozen=True)
class Segment:
    """Part of an MPI task's slots on one host."""

    host: str
    ranks: int
    offset: int  # index of the first slot among all the job's slots (ibrun -o)
    core_ids: str = ""  # the node-local core ids ("0-3"), for MPILAUNCHER_HOST_CORES


def choose(requested: str | None, environ: Mapping[str, str]) -> str:
    """``auto``: ibrun where it exists (TACC), srun inside a Slurm job, else mpiexec."""
    starter = (requested or "auto").lower()
    if starter not in STARTERS:
        raise InputError(f"unknown MPI starter {requested!r}: use one of {', '.join(STARTERS)}")
    if starter != "auto":
        return starter
    if which("ibrun"):
        return "ibrun"
    if environ.get("SLURM_JOB_ID") and which("srun"):
        return "srun"
    return "mpiexec"


def unusable(starter: str, environ: Mapping[str, str]) -> str | None:
    """Why ``starter`` (as :func:`choose` resolved it) cannot start an MPI task here, or None.

    Asked before a sweep of MPI tasks starts: without it every MPI task failed at its start
    (127 for a missing ibrun, ~9 s of srun retrying a controller outside a Slurm job), and
    only each task's output said why (a user walk)."""
    if starter == "spawn":
        import importlib.util  # (only a sweep of MPI tasks asks)

        return None if importlib.util.find_spec("mpi4py") else "spawn needs mpi4py, which this Python lacks"
    if starter == "srun" and not environ.get("SLURM_JOB_ID"):
        return "srun starts MPI tasks only inside a Slurm job, and this is none (no SLURM_JOB_ID)"
    return None if which(starter, environ.get("PATH", os.defpath)) else f"no {starter} on PATH"


@functools.cache
def mpiexec_flavour() -> str:
    """``openmpi`` or ``hydra`` (MPICH, Intel MPI, MVAPICH), from ``mpiexec --version``."""
    import subprocess  # here: only this rare path needs it (start-up time)

    try:
        text = subprocess.run(["mpiexec", "--version"], capture_output=True, text=True, timeout=20).stdout
    except (OSError, subprocess.SubprocessError):
        return "hydra"
    return "openmpi" if ("Open MPI" in text or "OpenRTE" in text or "Open RTE" in text) else "hydra"


@functools.cache
def slurm_mpi_plugin() -> str | None:
    """The MPI plugin srun must be given for the ranks it starts to form one MPI job: ``pmi2`` where
    Slurm's ``MpiDefault`` is ``none`` (each rank would be a program of its own, MPI seeing one rank in
    each), None where its default wires MPI, or where Slurm cannot be asked.  Asked once a process."""
    import subprocess  # here: only an MPI task under srun, or the re-launch, needs it (start-up time)

    try:
        config = subprocess.run(["scontrol", "show", "config"], capture_output=True, text=True, timeout=20).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    for line in config.splitlines():
        name, _, value = line.partition("=")
        if name.strip() == "MpiDefault" and value.strip() == "none":
            return "pmi2"
    return None


def srun_mpi_option(environ: Mapping[str, str]) -> str:
    """`` --mpi=pmi2`` where an srun started with ``environ`` would not wire MPI by itself, else "".

    ``SLURM_MPI_TYPE`` is srun's own default: set by the srun that started the launcher (its
    ``--mpi=``), or by the user (``pmix`` for an MPI that needs it), srun takes it as it is.  Without
    it -- the launcher started by ``mpiexec`` or ``ibrun`` inside a Slurm job, or a job of submit mode
    -- an MPI task's srun ran every rank as a program of its own where ``MpiDefault`` is ``none``, and
    a task that failed on one rank was reported ok (a user walk)."""
    if environ.get("SLURM_MPI_TYPE"):
        return ""
    plugin = slurm_mpi_plugin()
    return f" --mpi={plugin}" if plugin else ""


def shell_program(command: str) -> str:
    """The command each rank runs: as it is, or through ``sh -c`` when it uses shell syntax."""
    return f"/bin/sh -c -- {shlex.quote(command)}" if _SHELL_SYNTAX.search(command) else command


def wrap(
    starter: str,
    command: str,
    segments: list[Segment],
    cores_per_node: int,
    emulated: bool = False,
) -> tuple[str, dict[str, str | None]]:
    """The task's shell command under ``starter``, and environment changes (None: remove)."""
    ranks = sum(s.ranks for s in segments)
    env: dict[str, str | None] = {"OMP_NUM_THREADS": "1"}
    if MARKER in command:
        before, _, after = command.partition(MARKER)
        program = after.strip()
    else:
        before, program = "", command
    if starter == "ibrun":
        env["TACC_TASKS_PER_NODE"] = str(cores_per_node)
        line = f"ibrun -o {segments[0].offset} -n {ranks} {shell_program(program)}"
    elif starter == "srun":
        hosts = ",".join(s.host for s in segments for _ in range(s.ranks))
        env.update(dict.fromkeys(SRUN_LAYOUT_VARIABLES))
        line = (
            f"srun{srun_mpi_option(os.environ)} --overlap --ntasks={ranks} --nodelist={hosts}"
            f" --distribution=arbitrary --cpu-bind=none --kill-on-bad-exit=1 {shell_program(program)}"
        )
    elif starter == "spawn":
        hosts = ",".join(f"{'localhost' if emulated else s.host}:{s.ranks}" for s in segments)
        timeout = os.environ.get("MPILAUNCHER_SPAWN_TIMEOUT", str(SPAWN_TIMEOUT))
        line = f"{shlex.quote(sys.executable)} -m mpilauncher.spawn --timeout {timeout} --hosts {hosts} -- {program}"
    elif mpiexec_flavour() == "openmpi":
        sections = [
            f"-n {s.ranks} --host {'localhost' if emulated else s.host}:{s.ranks} -x MPILAUNCHER_HOST={s.host}"
            f" -x MPILAUNCHER_HOST_CORES={s.core_ids or '-'} {shell_program(program)}"
            for s in segments
        ]
        # Open MPI would bind ranks to cores of its own choosing, trampling other tasks: the
        # launcher binds (the local ranks inherit the task's cores), so Open MPI must not.
        line = f"mpirun --bind-to none{' --oversubscribe' if emulated else ''} " + " : ".join(sections)
    else:
        # hydra: one global host list with counts fills ranks in order; one MPMD section per
        # segment (same order) tells each rank where it is.
        hosts = f"localhost:{ranks}" if emulated else ",".join(f"{s.host}:{s.ranks}" for s in segments)
        sections = [
            f"-n {s.ranks} -env MPILAUNCHER_HOST {s.host} -env MPILAUNCHER_HOST_CORES {s.core_ids or '-'}"
            f" {shell_program(program)}"
            for s in segments
        ]
        line = f"mpiexec -hosts {hosts} " + " : ".join(sections)
    return (f"{before}{line}" if before else line), env
