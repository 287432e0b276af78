"""Smoke tests of the local Slurm cluster (tools/slurm-cluster.sh) that mpilauncher's tests run on."""

from __future__ import annotations

import subprocess
import sys
import uuid
from pathlib import Path

import pytest

# func_only: the session fixture may spend minutes installing Slurm the first time; it has its own
# timeouts.  The tests themselves never need more than a few seconds.
pytestmark = [pytest.mark.slurm, pytest.mark.timeout(60, func_only=True)]


def test_all_nodes_idle(slurm_cluster) -> None:
    out = slurm_cluster.run(["sinfo", "-h", "-N", "-o", "%N %T %c"], timeout=15).stdout
    rows = {line.split()[0]: line.split()[1:] for line in out.splitlines()}
    assert sorted(rows) == sorted(slurm_cluster.nodes)
    assert len(slurm_cluster.nodes) >= 2
    for state, cpus in rows.values():
        assert state == "idle"
        assert int(cpus) == slurm_cluster.cpus_per_node


def test_srun_one_task_per_node(slurm_cluster) -> None:
    n = len(slurm_cluster.nodes)
    res = slurm_cluster.srun(f"-N{n}", "--ntasks-per-node=1", "bash", "-c", "echo $SLURMD_NODENAME", timeout=30)
    names = res.stdout.split()
    # every emulated node has the same hostname: only SLURMD_NODENAME tells them apart
    assert len(names) == n
    assert sorted(names) == sorted(slurm_cluster.nodes)


def test_sbatch_polled_with_squeue(slurm_cluster, tmp_path: Path) -> None:
    out = tmp_path / "job.out"
    job_id = slurm_cluster.sbatch(
        "-N2",
        "--ntasks-per-node=1",
        f"--output={out}",
        "--wrap",
        'echo "batch $SLURMD_NODENAME"; srun bash -c "echo step \\$SLURMD_NODENAME"',
    )
    assert slurm_cluster.wait_job(job_id, timeout=30) == "COMPLETED"
    lines = out.read_text().splitlines()
    assert len([ln for ln in lines if ln.startswith("batch ")]) == 1
    steps = {ln.split()[1] for ln in lines if ln.startswith("step ")}
    assert len(steps) == 2 and steps <= set(slurm_cluster.nodes)


def test_job_cpus_per_node(slurm_cluster) -> None:
    # With CR_Core a plain `srun -N2` allocates one CPU per node ("1(x2)"); --exclusive gets the
    # whole nodes, which is how the launcher asks for its allocation.
    cpus = slurm_cluster.cpus_per_node
    res = slurm_cluster.srun(
        "-N2", "--exclusive", "--ntasks-per-node=1", "bash", "-c", "echo $SLURM_JOB_CPUS_PER_NODE", timeout=30
    )
    assert res.stdout.split() == [f"{cpus}(x2)"] * 2


def test_helper_times_out_and_cancels(slurm_cluster) -> None:
    # a job that cannot start (here: begins in an hour) would keep srun waiting forever
    name = f"never-starts-{uuid.uuid4().hex[:8]}"
    with pytest.raises(slurm_cluster.Timeout):
        slurm_cluster.srun(f"--job-name={name}", "-N1", "--begin=now+3600", "true", timeout=2)
    left = slurm_cluster.run(["squeue", "-h", "-n", name, "-o", "%i %T"], timeout=15).stdout
    assert left.strip() == "", f"the helper did not cancel the job: {left}"


def _has_mpi4py() -> bool:
    try:
        res = subprocess.run([sys.executable, "-c", "import mpi4py"], capture_output=True, timeout=60)
    except subprocess.TimeoutExpired:
        return False
    return res.returncode == 0


@pytest.mark.skipif(not _has_mpi4py(), reason="mpi4py is not importable by this python")
def test_mpi4py_pmi2_world(slurm_cluster) -> None:
    code = (
        "import os; from mpi4py import MPI; c = MPI.COMM_WORLD; "
        "s = c.allreduce(c.Get_rank()); "
        "print(c.Get_rank(), c.Get_size(), s, os.environ['SLURMD_NODENAME'], flush=True)"
    )
    res = slurm_cluster.srun("-N2", "-n4", "--mpi=pmi2", sys.executable, "-c", code, timeout=45)
    rows = [line.split() for line in res.stdout.splitlines()]
    assert len(rows) == 4, res.stdout + res.stderr
    assert sorted(int(r[0]) for r in rows) == [0, 1, 2, 3]
    assert {r[1] for r in rows} == {"4"}
    assert {r[2] for r in rows} == {"6"}  # 0+1+2+3: the ranks really talk to each other
    assert len({r[3] for r in rows}) == 2
