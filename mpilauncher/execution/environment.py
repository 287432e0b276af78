"""The environment and the ``exec<N>`` script a task gets.

Variables an MPI starter set for the *launcher's* ranks are removed from every
task's environment: a task that is itself an MPI program and inherits them
fails at once under hydra ("PMI_Init returned -1") or hangs under srun (see
ARCHITECTURE.md, measured on these machines).
"""

from __future__ import annotations

import shlex
from collections.abc import Mapping

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


def task_variables(task_id: int, core_ids: tuple[int, ...], node_name: str) -> dict[str, str]:
    """What a task learns about itself (PYL_ID as in PyLauncher, MPILAUNCHER_* as ours)."""
    return {
        "PYL_ID": str(task_id),
        "MPILAUNCHER_TASK_ID": str(task_id),
        "MPILAUNCHER_NCORES": str(len(core_ids)),
        "MPILAUNCHER_CORES": ",".join(map(str, core_ids)),
        "MPILAUNCHER_NODE": node_name,
    }


def exec_script(command: str, cwd: str, variables: Mapping[str, str], ncores: int, omp_set: bool, line: int) -> str:
    """The ``exec<N>`` file: the command exactly as run, runnable by hand with ``sh exec<N>``."""
    exports = dict(variables)
    if not omp_set:
        exports.setdefault("OMP_NUM_THREADS", str(ncores))
    where = f" (commandlines line {line})" if line else ""
    assignments = " ".join(f"{k}={shlex.quote(v)}" for k, v in exports.items())
    return (
        "#!/bin/sh\n"
        f"# mpilauncher task {variables['PYL_ID']}{where}: run by hand with  sh <this file>\n"
        f"cd {shlex.quote(cwd)} || exit 1\n"
        f"export {assignments}\n"
        f"{command}\n"
    )
