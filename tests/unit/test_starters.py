"""How an MPI task's ranks are started (execution/starters.py): srun's MPI plugin where Slurm lacks one."""

from __future__ import annotations

import pytest

from mpilauncher.execution import starters
from mpilauncher.execution.starters import Segment
from mpilauncher.submit import scripts

SEGMENTS = [Segment("c1", 2, 0, "0-1"), Segment("c2", 1, 4, "0")]


@pytest.mark.parametrize(
    ("mpi_type", "plugin", "option"),
    [(None, "pmi2", " --mpi=pmi2"), (None, None, ""), ("pmix", "pmi2", ""), ("pmi2", None, "")],
    ids=["MpiDefault=none", "a default plugin", "SLURM_MPI_TYPE=pmix", "started by srun --mpi=pmi2"],
)
def test_an_mpi_tasks_srun_wires_mpi_where_slurms_default_does_not(monkeypatch, mpi_type, plugin, option):
    """A user walk: the launcher started by mpiexec inside a Slurm job (no SLURM_MPI_TYPE), where Slurm's
    MpiDefault is none: each MPI task's srun ran its 3 ranks as 3 programs of 1 rank, and a task that
    failed on one rank was reported ok.  Submit mode's job scripts the same."""
    monkeypatch.setattr(starters, "slurm_mpi_plugin", lambda: plugin)
    monkeypatch.setattr(scripts, "which", lambda name: None)  # (no ibrun: srun)
    if mpi_type is None:
        monkeypatch.delenv("SLURM_MPI_TYPE", raising=False)
    else:
        monkeypatch.setenv("SLURM_MPI_TYPE", mpi_type)
    line, _ = starters.wrap("srun", "./mpi_program", SEGMENTS, 4)
    assert line.startswith(f"srun{option} --overlap --ntasks=3 --nodelist=c1,c1,c2 "), line
    assert scripts.with_starter("./mpi_program", scripts.mpi_starter()) == f"srun{option} ./mpi_program"


def test_slurms_mpi_default_is_asked_once_and_none_means_pmi2(monkeypatch):
    import subprocess

    asked = []

    def scontrol(argv, **_kwargs):
        asked.append(argv)
        return subprocess.CompletedProcess(argv, 0, "SLURM_VERSION = 22.05\nMpiDefault              = none\n", "")

    starters.slurm_mpi_plugin.cache_clear()
    monkeypatch.setattr(subprocess, "run", scontrol)
    try:
        assert starters.slurm_mpi_plugin() == "pmi2" and starters.slurm_mpi_plugin() == "pmi2"
        assert asked == [["scontrol", "show", "config"]]
    finally:
        starters.slurm_mpi_plugin.cache_clear()


def test_a_starter_is_unusable_where_its_program_or_its_slurm_job_is_missing(tmp_path):
    (tmp_path / "ibrun").write_text("#!/bin/sh\n")
    (tmp_path / "ibrun").chmod(0o755)
    (tmp_path / "srun").write_text("#!/bin/sh\n")
    (tmp_path / "srun").chmod(0o755)
    here = {"PATH": str(tmp_path)}
    assert starters.unusable("ibrun", here) is None
    assert starters.unusable("mpiexec", here) == "no mpiexec on PATH"
    assert "only inside a Slurm job" in starters.unusable("srun", here)
    assert starters.unusable("srun", {**here, "SLURM_JOB_ID": "7"}) is None
    assert starters.unusable("srun", {"PATH": "/nonexistent", "SLURM_JOB_ID": "7"}) == "no srun on PATH"
    assert starters.unusable("ibrun", {"PATH": ""}) == "no ibrun on PATH"
