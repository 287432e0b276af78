"""The environment and the ``exec<N>`` script a task gets.

Variables an MPI starter set for the *launcher's* ranks are removed from every
task's environment: a task that is itself an MPI program and inherits them
fails at once under hydra ("PMI_Init returned -1") or hangs under srun (see
ARCHITECTURE.md, measured on these machines).
"""

from __future__ import annotations

import shlex
from collections.abc import Callable, Mapping

#: Prefixes of variables that wire the launcher's own MPI job (MPICH/hydra, Slurm PMI, PMIx,
#: Open MPI/PRRTE): a task that inherited them would join, or break on, that job.
LAUNCHER_MPI_PREFIXES = ("PMI_", "PMIX_", "HYDI_", "HYDRA_", "MPI_LOCAL", "OMPI_", "PRTE_")
#: ...except the user's own MPI settings, which nested MPI jobs should keep.
USER_MPI_SETTINGS = ("OMPI_MCA_", "OMPI_ALLOW_RUN_AS_ROOT")
#: Open MPI job wiring that hides under OMPI_MCA_.
OMPI_JOB_MCA = ("OMPI_MCA_ess", "OMPI_MCA_orte_", "OMPI_MCA_pmix", "OMPI_MCA_prte", "OMPI_MCA_initial_wdir")


def is_launcher_wiring(name: str) -> bool:
    if not name.startswith(LAUNCHER_MPI_PREFIXES):
        return False
    return not name.startswith(USER_MPI_SETTINGS) or name.startswith(OMPI_JOB_MCA)


def base_environment(environ: Mapping[str, str]) -> dict[str, str]:
    """The launcher's environment minus its MPI job's wiring (the user's MPI settings stay)."""
    return {k: v for k, v in environ.items() if not is_launcher_wiring(k)}


#: The variables that carry a task's number (PyLauncher's, and ours).
ID_VARIABLES = ("PYL_ID", "MPILAUNCHER_TASK_ID")


def task_variables(task_id: int, core_ids: tuple[int, ...], node_name: str) -> dict[str, str]:
    """What a task learns about itself (PYL_ID as in PyLauncher, MPILAUNCHER_* as ours)."""
    return {**dict.fromkeys(ID_VARIABLES, str(task_id)), **slot_variables(core_ids, node_name)}


def slot_variables(core_ids: tuple[int, ...], node_name: str) -> dict[str, str]:
    """The part of :func:`task_variables` that tells where a task runs, the same for every task there."""
    return {
        "MPILAUNCHER_NCORES": str(len(core_ids)),
        "MPILAUNCHER_CORES": ",".join(map(str, core_ids)),
        "MPILAUNCHER_NODE": node_name,
    }


def exec_script(command: str, cwd: str, variables: Mapping[str, str], ncores: int, omp_set: bool, line: int) -> str:
    """The ``exec<N>`` file: the command exactly as run, runnable by hand with ``sh exec<N>``."""
    exports = dict(variables)
    if not omp_set:
        exports.setdefault("OMP_NUM_THREADS", str(ncores))
    return _script(command, cwd, variables[ID_VARIABLES[0]], line, assignments(exports))


def assignments(variables: Mapping[str, str]) -> str:
    """``NAME=value ...`` as the shell reads them back (each value quoted where it needs to be)."""
    return " ".join(f"{k}={shlex.quote(v)}" for k, v in variables.items())


def _script(command: str, cwd: str, number: str, line: int, exports: str) -> str:
    where = f" (commandlines line {line})" if line else ""
    return (
        "#!/bin/sh\n"
        f"# mpilauncher task {number}{where}: run by hand with  sh <this file>\n"
        f"cd {shlex.quote(cwd)} || exit 1\n"
        f"export {exports}\n"
        f"{command}\n"
    )


class PlaceEnvironments:
    """The variables and ``exec<N>`` text of a node's tasks other than MPI tasks, as
    :func:`task_variables` (plus the GPUs' variables and ``OMP_NUM_THREADS``) and :func:`exec_script`
    make them, with what depends only on where a task runs -- its cores and GPUs, its place -- made
    once a place.

    Why: the agent resolves every task of the sweep, and a sweep's tasks come back to the same few
    places; quoting and formatting the same variables again for each one was a good part of what
    rank 0 spends on a task of its own node."""

    #: Places remembered at most (a node with many core counts and offsets); then it starts over.
    LIMIT = 4096

    def __init__(
        self, node_name: str, cwd: str, omp_set: bool, gpu_variables: Callable[[tuple[int, ...]], dict[str, str]]
    ) -> None:  # fmt: skip
        self.node_name, self.cwd, self.omp_set, self.gpu_variables = node_name, cwd, omp_set, gpu_variables
        self._places: dict[tuple, tuple[dict[str, str], str]] = {}
        self._ids = " ".join(f"{name}={{0}}" for name in ID_VARIABLES)  # (a number is never quoted)

    def resolve(
        self, task_id: int, core_ids: tuple[int, ...], gpu_indices: tuple[int, ...], command: str, line: int
    ) -> tuple[dict[str, str], str]:  # fmt: skip
        """(the variables to set in the task's environment, its ``exec<N>`` text)."""
        place = self._places.get((core_ids, gpu_indices))
        if place is None:
            if len(self._places) >= self.LIMIT:
                self._places.clear()
            shared = {**slot_variables(core_ids, self.node_name), **self.gpu_variables(gpu_indices)}
            if not self.omp_set:
                shared.setdefault("OMP_NUM_THREADS", str(len(core_ids)))
            place = self._places[(core_ids, gpu_indices)] = (shared, assignments(shared))
        shared, shared_text = place
        number = str(task_id)
        exports = f"{self._ids.format(number)} {shared_text}"
        return {**dict.fromkeys(ID_VARIABLES, number), **shared}, _script(command, self.cwd, number, line, exports)
