"""A sweep that needs several allocations finishes by itself (issue 13): a chain of jobs submitted at
once from the login node (`python -m mpilauncher chain -n K`), and a job that resubmits itself
(`--resubmit K`).  Every job has Slurm's smallest time limit (one minute); a margin of 45 s stops the
launcher about 15 s into each, so a sweep of ~35 s of work needs three jobs (the chain: a margin of
50 s, ~10 s a job, and a sweep of ~16 s, at least two)."""

from __future__ import annotations

import collections
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import ROOT, launcher_env, recording_task

PYTHON = sys.executable
#: 2 cores: 9 rounds of 4 s = 36 s of work, about 3 rounds per job.
SWEEP = f"{recording_task(4)}\n" * 18
#: 2 cores: 8 rounds of 2 s = 16 s of work, more than one job of ~10 s holds.
SHORT_SWEEP = f"{recording_task(2)}\n" * 16


def job_script(directory: Path, *launcher_args: str, extra: str = "") -> Path:
    script = directory / "job.slurm"
    script.write_text(
        f"#!/bin/bash\n#SBATCH -N 1\n#SBATCH -c 2\n#SBATCH -t 1\n#SBATCH -o {directory}/job.o%j\n" + extra
        + f"cd {directory}\nexport PYTHONPATH={ROOT}\n"
        + f"exec {PYTHON} -m mpilauncher commandlines --workdir w --grace 1 {' '.join(launcher_args)}\n"
    )  # fmt: skip
    return script


def job_states(slurm_cluster, jobs: list[str]) -> list[tuple[str, str]]:
    states = []
    for job in jobs:
        text = slurm_cluster.run(["scontrol", "show", "job", job], timeout=15, check=False).stdout
        fields = dict(word.split("=", 1) for word in text.split() if "=" in word)
        states.append((fields.get("JobState", "?"), fields.get("ExitCode", "?")))
    return states


def wait_until_gone(slurm_cluster, jobs: list[str], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    for job in jobs:
        slurm_cluster.wait_job(int(job), timeout=max(5.0, deadline - time.monotonic()))


def ran(directory: Path) -> collections.Counter:
    return collections.Counter(int(x) for x in (directory / "ran").read_text().split())


@pytest.mark.timeout(300)
def test_a_chain_submitted_at_once_finishes_the_sweep_and_ends_itself(slurm_cluster, tmp_path: Path) -> None:
    (tmp_path / "commandlines").write_text(SHORT_SWEEP)
    script = job_script(tmp_path, "--time-limit-margin", "50")
    submitted = subprocess.run([PYTHON, "-m", "mpilauncher", "chain", "-n", "6", str(script)], cwd=tmp_path,
                               env=launcher_env(), capture_output=True, text=True, timeout=120)  # fmt: skip
    assert submitted.returncode == 0, submitted.stderr
    jobs = submitted.stdout.split(":", 1)[1].split("(")[0].split()
    assert len(jobs) == 6, submitted.stdout
    wait_until_gone(slurm_cluster, jobs, timeout=270)
    states = job_states(slurm_cluster, jobs)
    ran_jobs = [s for s in states if s[0] != "CANCELLED"]
    assert len(ran_jobs) >= 2, f"the sweep needs more than one job: {states}"
    assert all(s == ("FAILED", "4:0") for s in ran_jobs[:-1]), f"stopped at the limit with tasks left: {states}"
    assert ran_jobs[-1] == ("COMPLETED", "0:0"), states
    assert all(s[0] == "CANCELLED" for s in states[len(ran_jobs) :]), f"the rest of the chain was cancelled: {states}"
    assert ran(tmp_path) == collections.Counter(range(16)), "every task exactly once over the chain"
    last = (tmp_path / f"job.o{jobs[len(ran_jobs) - 1]}").read_text()
    assert f"This was job {len(ran_jobs)} of a chain of at most 6." in last and "# tasks completed: 16" in last


@pytest.mark.timeout(120)
def test_a_continuation_over_a_finished_sweep_runs_nothing_and_ends_the_chain(slurm_cluster, tmp_path: Path) -> None:
    """A job that finished the sweep with a failed task exits 1, which is "not ok" too: the next job
    must not run the sweep again, and the chain must stop there."""
    (tmp_path / "commandlines").write_text("echo PYL_ID >> ran\nexit 3\n")
    script = job_script(tmp_path, "--time-limit-margin", "30")
    submitted = subprocess.run([PYTHON, "-m", "mpilauncher", "chain", "-n", "3", str(script)], cwd=tmp_path,
                               env=launcher_env(), capture_output=True, text=True, timeout=120)  # fmt: skip
    assert submitted.returncode == 0, submitted.stderr
    jobs = submitted.stdout.split(":", 1)[1].split("(")[0].split()
    wait_until_gone(slurm_cluster, jobs, timeout=100)
    assert job_states(slurm_cluster, jobs) == [("FAILED", "1:0"), ("COMPLETED", "0:0"), ("CANCELLED", "0:0")]
    second = (tmp_path / f"job.o{jobs[1]}").read_text()
    assert "job 2 of a chain of at most 3: the sweep in queuestate is finished" in second, second
    assert ran(tmp_path) == collections.Counter([0]), "nothing ran twice"


@pytest.mark.timeout(300)
def test_a_job_that_resubmits_itself_at_the_early_warning_finishes_the_sweep(slurm_cluster, tmp_path: Path) -> None:
    """--resubmit where compute nodes may submit; the stop comes from Slurm's early warning
    (--signal=B:USR1@45 to the batch shell, which exec'd the launcher).  Slurm sends the warning on its own
    timer, seconds off the time asked: this test keeps the longer sweep (with 16 s of work and @50 the
    warning came after the sweep's end, twice in two tries)."""
    (tmp_path / "commandlines").write_text(SWEEP)
    script = job_script(tmp_path, "--time-limit-margin", "0", "--resubmit", "6", extra="#SBATCH --signal=B:USR1@45\n")
    first = slurm_cluster.sbatch(str(script))
    deadline = time.monotonic() + 270
    while not (tmp_path / "ran").exists() or len(ran(tmp_path)) < 18:
        assert time.monotonic() < deadline, "the resubmitted jobs did not finish the sweep"
        time.sleep(1)
    outputs = sorted(tmp_path.glob("job.o*"), key=lambda p: int(p.name[5:]))
    wait_until_gone(slurm_cluster, [p.name[5:] for p in outputs], timeout=60)
    texts = [p.read_text() for p in outputs]
    assert len(texts) >= 2 and outputs[0].name == f"job.o{first}", texts
    for text in texts[:-1]:
        assert "stopped by SIGUSR1" in text and "to go on with the" in text, text
        assert "goes on with it" in text and "resume with" not in text, "no resume by hand: the next job does"
    assert "Launcherjob run completed." in texts[-1]
    assert ran(tmp_path) == collections.Counter(range(18)), "every task exactly once over the jobs"


@pytest.mark.timeout(240)
def test_a_job_holds_back_what_cannot_finish_stops_early_and_the_next_job_of_the_chain_runs_it(
    slurm_cluster, tmp_path: Path
) -> None:
    """Issue 13: each job has about 14 s (a 1-minute limit less a 45 s margin); every task says it needs
    10 s (it takes 2).  A job starts tasks while 10 s are left, holds the rest back instead of killing them
    at the stop, and ends as soon as nothing more can start (exit 4, long before its limit); the chain's
    next job runs what was held back."""
    (tmp_path / "commandlines").write_text(f"10,{recording_task(2)}\n" * 8)
    script = job_script(tmp_path, "--time-limit-margin", "45", "--expected-time", "file")
    submitted = subprocess.run([PYTHON, "-m", "mpilauncher", "chain", "-n", "3", str(script)], cwd=tmp_path,
                               env=launcher_env(), capture_output=True, text=True, timeout=120)  # fmt: skip
    assert submitted.returncode == 0, submitted.stderr
    jobs = submitted.stdout.split(":", 1)[1].split("(")[0].split()
    wait_until_gone(slurm_cluster, jobs, timeout=200)
    states = job_states(slurm_cluster, jobs)
    assert states[0] == ("FAILED", "4:0") and states[1] == ("COMPLETED", "0:0"), states
    assert states[2][0] == "CANCELLED", states
    first = (tmp_path / f"job.o{jobs[0]}").read_text()
    assert "Launcherjob stopped: nothing left that can finish before the job's time limit" in first, first
    assert first.count(" held back for the next job: it needs about 10 s (its expected time)") == 1, first
    held = int(first.split("tasks held back: ")[1].split()[0])
    assert 1 <= held <= 6, first
    total = float(first.split("total running time:")[1].split()[0])
    assert total < 12, f"it stopped once nothing could start, not at the limit: {first}"
    assert ran(tmp_path) == collections.Counter(range(8)), "every task exactly once, none cut short"


@pytest.mark.timeout(120)
def test_a_resubmit_job_whose_shell_did_not_exec_the_launcher_says_why_nothing_was_resubmitted(
    slurm_cluster, tmp_path: Path
) -> None:
    """A user walk: a script that runs the launcher without ``exec`` (``srun ... --resubmit 3``) got the time
    limit's early warning (USR1 to the batch shell only); the shell died of it, the launcher saw a SIGTERM,
    and ended with "stopped by SIGTERM" and no word on why no next job was submitted."""
    (tmp_path / "commandlines").write_text(SHORT_SWEEP)
    script = tmp_path / "job.slurm"
    script.write_text(
        f"#!/bin/bash\n#SBATCH -N 1\n#SBATCH -c 2\n#SBATCH -o {tmp_path}/job.o%j\ncd {tmp_path}\n"
        f"export PYTHONPATH={ROOT}\nsrun --mpi=pmi2 {PYTHON} -m mpilauncher commandlines --workdir w --grace 1"
        " --resubmit 3\n"
    )
    job = slurm_cluster.sbatch(str(script))
    deadline = time.monotonic() + 60
    while not (tmp_path / "w" / "out0").exists():
        assert time.monotonic() < deadline, "the launcher did not start a task within 60 s"
        time.sleep(0.1)
    slurm_cluster.run(["scancel", "--signal=USR1", "--batch", str(job)], timeout=15)
    slurm_cluster.wait_job(job, timeout=60)
    text = (tmp_path / f"job.o{job}").read_text()
    assert "stopped by SIGTERM" in text and "to go on with the" not in text, text
    assert "--resubmit: no next job submitted: a SIGTERM" in text and "exec" in text, text
