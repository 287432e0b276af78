"""Slurm's signals to a running sweep (scancel, the time limit, the early warning) end it cleanly.

``scancel JOB`` -- and the time limit, which ends a job the same way -- sends SIGCONT and SIGTERM
to every process of every step, the launcher's tasks included, and SIGKILL KillWait seconds later;
``scancel --signal=TERM`` signals the steps only; ``scancel --signal=USR1 --batch`` (or ``#SBATCH
--signal=B:USR1@60``) only the batch shell, which reaches the launcher when the job script ``exec``s
``srun``.  Each time: the launcher finishes within KillWait, prints its statistics once, leaves a
complete queuestate (no journal, no task failed by Slurm's own SIGTERM), and a second job resumes
the sweep without running a completed task again.
"""

from __future__ import annotations

import collections
import re
import sys
import time
from pathlib import Path

import pytest

from mpilauncher.core.tasks import CoresSpec
from mpilauncher.persistence.store import load_state
from tests.conftest import ROOT, recording_task

pytestmark = pytest.mark.timeout(150, func_only=True)

PYTHON = sys.executable
SIGNUMS = {"SIGTERM": 15, "SIGUSR1": 10}
TASKS = 16

# (scancel, the signal the launcher reports, ranks per node: 2 = one per core, the second one parked)
CASES = {
    "scancel (as at the time limit), one rank per core": (["scancel"], "SIGTERM", 2),
    "scancel --signal=TERM": (["scancel", "--signal=TERM"], "SIGTERM", 1),
    "scancel --signal=USR1 --batch": (["scancel", "--signal=USR1", "--batch"], "SIGUSR1", 1),
}


def ran(directory: Path) -> collections.Counter:
    path = directory / "ran"
    return collections.Counter(int(x) for x in path.read_text().split()) if path.exists() else collections.Counter()


def job_script(directory: Path, name: str, args: str) -> Path:
    """A job script as in jobscripts/: ``exec srun`` hands the batch shell's signals to srun, which
    forwards them to every rank."""
    script = directory / name
    script.write_text(
        f"#!/bin/bash\ncd {directory}\nexport PYTHONPATH={ROOT}\nexec srun --mpi=pmi2 {PYTHON} -m mpilauncher {args}\n"
    )
    return script


def kill_wait(slurm_cluster) -> float:
    config = slurm_cluster.run(["scontrol", "show", "config"], timeout=15).stdout
    return float(re.search(r"^KillWait\s*=\s*(\d+)", config, re.MULTILINE).group(1))


@pytest.mark.parametrize("case", list(CASES))
def test_slurm_signals_stop_the_sweep_cleanly_and_a_second_job_resumes_it(
    slurm_cluster, tmp_path: Path, case: str
) -> None:
    scancel, signal_name, per_node = CASES[case]
    (tmp_path / "commandlines").write_text(f"{recording_task(1)}\n" * TASKS)
    script = job_script(tmp_path, "job.sh", "commandlines --workdir w")
    layout = ["-N", "2", f"--ntasks-per-node={per_node}", "--exclusive"]
    job = slurm_cluster.sbatch(*layout, "-o", str(tmp_path / "job.out"), str(script))
    try:
        deadline = time.monotonic() + 90
        while sum(ran(tmp_path).values()) < 4:  # the first round is done, the second runs on both nodes
            assert time.monotonic() < deadline, f"the sweep did not get going: {slurm_cluster.job_state(job)}"
            time.sleep(0.1)
        time.sleep(0.3)
        slurm_cluster.run([*scancel, str(job)], timeout=15)
        signalled = time.monotonic()
        while (tmp_path / "queuestate.journal").exists() and time.monotonic() - signalled < 30:
            time.sleep(0.05)
        stop_took = time.monotonic() - signalled
        slurm_cluster.wait_job(job, timeout=60)
    finally:
        slurm_cluster.run(["scancel", str(job)], timeout=15, check=False)
    output = (tmp_path / "job.out").read_text()
    assert stop_took < kill_wait(slurm_cluster), f"the launcher outlasted KillWait: {stop_took:.1f} s\n{output}"
    assert output.count(f"Launcherjob stopped: stopped by {signal_name}") == 1, output
    assert "Traceback" not in output and "MPI_Abort" not in output and " failed" not in output, output
    exits = set(re.findall(r"Exited with exit code (\d+)", output))  # srun's lines, e.g. "node1: tasks 0-1: ..."
    assert exits == {str(128 + SIGNUMS[signal_name])} and "Killed" not in output, "every rank exits with 128+N"
    ledger = load_state(tmp_path / "queuestate", CoresSpec("fixed", 1)).ledger
    completed = set(ledger.ids_in("completed"))
    assert not ledger.ids_in("failed"), "a task ended by Slurm's signal is interrupted, not failed"
    assert len(completed) >= 4 and ledger.ids_in("queued", "running"), ledger.counts()
    assert set(ran(tmp_path)) == completed, "completed in the queuestate exactly when the task finished"

    resume = job_script(tmp_path, "resume.sh", "--resume queuestate")
    second = slurm_cluster.sbatch(*layout, "-o", str(tmp_path / "resume.out"), str(resume))
    assert slurm_cluster.wait_job(second, timeout=90) == "COMPLETED", (tmp_path / "resume.out").read_text()
    assert f"# tasks completed: {TASKS}" in (tmp_path / "resume.out").read_text()
    assert ran(tmp_path) == collections.Counter(range(TASKS)), "every task ran, none twice"
