"""mpilauncher on a real (local, 4-node) Slurm cluster: srun, sbatch, and the singleton re-launch."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from mpilauncher.report.joblog import read as read_joblog
from tests.conftest import ROOT

PYTHON = sys.executable
SWEEP = "sleep 0.3 && echo PYL_ID $MPILAUNCHER_NODE\n" * 16


@pytest.fixture
def sweep(tmp_path: Path) -> Path:
    (tmp_path / "commandlines").write_text(SWEEP)
    return tmp_path


def nodes_used(workdir: Path) -> set[str]:
    return {row["node"] for row in read_joblog(workdir / "joblog")}


def launcher(*args: str) -> list[str]:
    return [PYTHON, "-m", "mpilauncher", *args]


@pytest.mark.timeout(120)
@pytest.mark.parametrize("per_node", [1, 2])
def test_srun_on_four_nodes(slurm_cluster, sweep: Path, per_node: int) -> None:
    result = slurm_cluster.run(
        ["srun", "-N", "4", f"--ntasks-per-node={per_node}", "--exclusive", "--mpi=pmi2", f"--chdir={sweep}",
         f"--export=ALL,PYTHONPATH={ROOT}", *launcher("commandlines", "--workdir", "w")],
        timeout=90,
    )  # fmt: skip
    assert nodes_used(sweep / "w") == set(slurm_cluster.nodes), result.stdout
    pool = len(slurm_cluster.nodes) * slurm_cluster.cpus_per_node
    assert f"Host pool of size {pool}." in result.stdout, "one rank per core or per node: the same slots"
    assert result.stdout.count("Launcherjob run completed.") == 1
    assert "# tasks completed: 16" in result.stdout


@pytest.mark.timeout(120)
def test_singleton_in_a_multi_node_batch_job_relaunches_across_it(slurm_cluster, sweep: Path) -> None:
    """The user guide's job script: a plain `python3 script.py` on -N 4 must use all four nodes."""
    (sweep / "example_classic_launcher.py").write_text(
        "import mpilauncher as pylauncher\npylauncher.ClassicLauncher('commandlines', workdir='w', debug='job')\n"
    )
    (sweep / "job.sh").write_text(
        f"#!/bin/bash\ncd {sweep}\nexport PYTHONPATH={ROOT}\n{PYTHON} example_classic_launcher.py\necho exit=$?\n"
    )
    job = slurm_cluster.sbatch("-N", "4", "--exclusive", "-o", str(sweep / "job.out"), str(sweep / "job.sh"))
    assert slurm_cluster.wait_job(job, timeout=90) == "COMPLETED"
    output = (sweep / "job.out").read_text()
    assert "re-launching across it" in output and "exit=0" in output, output
    assert output.count("Launcherjob run completed.") == 1
    assert nodes_used(sweep / "w") == set(slurm_cluster.nodes)


@pytest.mark.timeout(60)
def test_srun_without_mpi_wiring_is_refused(slurm_cluster, sweep: Path) -> None:
    result = slurm_cluster.run(
        ["srun", "-N", "2", "--ntasks-per-node=1", "--mpi=none", f"--chdir={sweep}",
         f"--export=ALL,PYTHONPATH={ROOT}", *launcher("commandlines", "--workdir", "w")],
        timeout=45, check=False,
    )  # fmt: skip
    assert result.returncode == 2
    assert "srun started 2 tasks but MPI sees one rank in each" in result.stderr
    assert not (sweep / "w").exists()
