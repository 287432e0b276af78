"""The re-launch of a singleton across its Slurm job (relaunch.py): what it runs, and what it suggests."""

from __future__ import annotations

import pytest

from mpilauncher import relaunch
from mpilauncher.cluster import Allocation
from mpilauncher.errors import InputError

JOB = {"SLURM_JOB_ID": "77", "SLURM_JOB_NUM_NODES": "2"}
ALLOCATION = Allocation("77", ("c1", "c2"), (4, 4), "c1")
ARGV = ["/usr/bin/python3", "-m", "mpilauncher", "cl"]


@pytest.mark.parametrize("plugin", [["--mpi=pmi2"], []], ids=["MpiDefault=none", "a default MPI plugin"])
def test_the_suggested_srun_is_the_one_the_relaunch_would_run(monkeypatch, plugin):
    """With MPILAUNCHER_STARTER=none the launcher says how to start it, and that command must work where
    the re-launch would: it lacked --mpi=pmi2 where Slurm's MpiDefault is none (a user walk: "srun started
    2 tasks but MPI sees one rank in each")."""
    monkeypatch.setattr(relaunch, "slurm_mpi_plugin", lambda: plugin[0].partition("=")[2] if plugin else None)
    monkeypatch.setattr(relaunch, "which", lambda name: f"/usr/bin/{name}")
    ran = relaunch.relaunch_command({**JOB, "MPILAUNCHER_STARTER": "srun"}, ALLOCATION, ARGV)
    assert ran[:2] == ["/usr/bin/srun", "--nodes=2"] and ran[-len(ARGV) - len(plugin) :] == [*plugin, *ARGV]
    with pytest.raises(InputError) as refused:
        relaunch.relaunch_command({**JOB, "MPILAUNCHER_STARTER": "none"}, ALLOCATION, ARGV)
    suggested = " ".join(["srun", "--ntasks-per-node=1", *plugin, *ARGV])
    assert f"start it as '{suggested}'" in str(refused.value)
