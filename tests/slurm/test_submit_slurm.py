"""Submit mode (SubmitLauncher) for real (issue 13): the launcher runs outside any allocation, as on a login
node, and submits every task (or chunk) as a job of the local cluster.  Accounting is off here, as on many
sites' login nodes: exit codes and runtimes come from the jobs' status files, and the reason of a job killed
from outside from squeue/scontrol.

Every test names its jobs (``-J`` in the sbatch options, a name no other test uses), finds them by that
name in squeue and cancels what is left at its end; an sbatch wrapper on PATH logs every submission.
Tasks take a few seconds, jobs have Slurm's smallest time limit (one minute)."""

from __future__ import annotations

import collections
import os
import shutil
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

from tests.conftest import launcher_env

PYTHON = sys.executable


class Sweep:
    """One sweep's directory, its job name, and an sbatch wrapper that logs (and may refuse) submissions."""

    def __init__(self, slurm_cluster, directory: Path, commandlines: str, refusals: int = 0) -> None:
        self.cluster, self.dir = slurm_cluster, directory
        self.name = f"mplsub-{uuid.uuid4().hex[:8]}"
        (directory / "commandlines").write_text(commandlines)
        bin_dir = directory / "bin"
        bin_dir.mkdir()
        real = shutil.which("sbatch")
        (directory / "refusals").write_text(str(refusals))
        (bin_dir / "sbatch").write_text(
            "#!/bin/bash\n"
            f'echo "$*" >> {directory}/sbatch.log\n'
            f'case " $* " in *" --test-only "*) exec {real} "$@";; esac\n'
            f"left=$(cat {directory}/refusals)\n"
            f'if [ "$left" -gt 0 ]; then echo $((left - 1)) > {directory}/refusals\n'
            '  echo "sbatch: error: QOSMaxSubmitJobPerUserLimit" >&2\n'
            '  echo "sbatch: error: Batch job submission failed: Job violates accounting/QOS policy" >&2\n'
            "  exit 1\nfi\n"
            f'exec {real} "$@"\n'
        )
        (bin_dir / "sbatch").chmod(0o755)
        self.env = launcher_env(PATH=f"{bin_dir}{os.pathsep}{os.environ['PATH']}", **slurm_cluster.env)

    def args(self, *extra: str, sbatch: str = "-t 1") -> list[str]:
        return [PYTHON, "-m", "mpilauncher", "commandlines", "--submit", f"{sbatch} -J {self.name}",
                "--poll-interval", "1", "--workdir", "w", *extra]  # fmt: skip

    def run(self, args: list[str], timeout: float = 120) -> subprocess.CompletedProcess:
        return subprocess.run(args, cwd=self.dir, env=self.env, capture_output=True, text=True, timeout=timeout)

    def start(self, args: list[str]) -> subprocess.Popen:
        return subprocess.Popen(args, cwd=self.dir, env=self.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                text=True, start_new_session=True)  # fmt: skip

    def jobs(self) -> list[tuple[str, str]]:
        """This sweep's jobs that Slurm shows as queued or running: (id, state)."""
        out = self.cluster.run(["squeue", "-h", "-n", self.name, "-o", "%i %T"], timeout=15, check=False).stdout
        return [tuple(line.split()) for line in out.splitlines() if line.strip()]

    def wait_for_jobs(self, count: int, state: str | None = None, timeout: float = 60) -> list[tuple[str, str]]:
        deadline = time.monotonic() + timeout
        while True:
            jobs = self.jobs()
            if len([j for j in jobs if state is None or j[1] == state]) >= count:
                return jobs
            assert time.monotonic() < deadline, f"{count} jobs of {self.name} never showed up: {jobs}"
            time.sleep(0.2)

    def submitted_scripts(self) -> collections.Counter:
        """Each job script as often as sbatch was asked to submit it (the wrapper's log)."""
        lines = (self.dir / "sbatch.log").read_text().splitlines()
        return collections.Counter(line.split()[-1] for line in lines if "--test-only" not in line)

    def ran(self) -> collections.Counter:
        return collections.Counter(int(x) for x in (self.dir / "ran").read_text().split())

    def joblog(self) -> dict[int, list[str]]:
        rows = [line.split("\t") for line in (self.dir / "w" / "joblog").read_text().splitlines()[1:]]
        return {int(row[0]): row for row in rows}

    def cancel_all(self) -> None:
        subprocess.run(["scancel", f"--name={self.name}"], timeout=15, check=False, capture_output=True)


@pytest.fixture
def sweeps(slurm_cluster, tmp_path: Path):
    made: list[Sweep] = []

    def make(commandlines: str, refusals: int = 0) -> Sweep:
        made.append(Sweep(slurm_cluster, tmp_path, commandlines, refusals))
        return made[-1]

    yield make
    for sweep in made:
        sweep.cancel_all()


@pytest.mark.timeout(120)
def test_one_job_per_task_never_more_than_max_active_with_exit_codes_and_runtimes(sweeps) -> None:
    sweep = sweeps("sleep 2 && echo PYL_ID >> ran\n" * 4 + "sleep 1; exit 3\n")
    submitter = sweep.start(sweep.args("--max-active", "2"))
    most = 0
    while submitter.poll() is None:
        most = max(most, len(sweep.jobs()))
        time.sleep(0.2)
    out, err = submitter.communicate()
    assert submitter.returncode == 1, err
    assert most == 2, "never more than --max-active of its jobs queued or running, and that many at once"
    assert sweep.ran() == collections.Counter(range(4))
    rows = sweep.joblog()
    assert rows[4][8:10] == ["3", "failed"] and 1.0 <= float(rows[4][7]) < 20, rows[4]
    assert all(row[8:10] == ["0", "ok"] and 2.0 <= float(row[7]) < 20 for i, row in rows.items() if i < 4), rows
    assert "# tasks completed: 4" in out and "tasks aborted: 1" in out
    assert sorted(sweep.submitted_scripts().values()) == [1] * 5


@pytest.mark.timeout(120)
def test_chunks_of_tasks_run_by_the_launcher_inside_each_job(sweeps) -> None:
    sweep = sweeps("sleep 1 && echo PYL_ID $MPILAUNCHER_NODE >> ran\n" * 8)
    result = sweep.run(sweep.args("--max-active", "2", "--tasks-per-job", "4", "--time-limit-margin", "5",
                                  sbatch="-t 1 -N 1 -n 2"))  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert len(sweep.submitted_scripts()) == 2, "8 tasks in chunks of 4: two jobs"
    ran = [line.split() for line in (sweep.dir / "ran").read_text().splitlines()]
    assert sorted(int(task) for task, _ in ran) == list(range(8)) and {node for _, node in ran} <= set(
        sweep.cluster.nodes
    )
    assert all((sweep.dir / "w" / f"out{i}").exists() for i in range(8)) and len(sweep.joblog()) == 8
    assert "Launcherjob run completed." in (sweep.dir / "w" / "chunk1" / "launcher.out").read_text()


@pytest.mark.timeout(120)
def test_a_job_cancelled_from_outside_is_recorded_as_failed_with_its_reason(sweeps) -> None:
    sweep = sweeps("sleep 60\nsleep 1\n")
    submitter = sweep.start(sweep.args("--max-active", "2"))
    jobs = sweep.wait_for_jobs(1, state="RUNNING")
    first = min(job for job, _ in jobs)  # task 0's job, submitted first
    sweep.cluster.run(["scancel", first], timeout=15)
    out, err = submitter.communicate(timeout=60)
    assert submitter.returncode == 1, err
    assert f"task 0: Slurm job {first} ended without reporting its status: CANCELLED; recorded as failed" in err
    assert sweep.joblog()[0][8:10] == ["-15", "signal"] and sweep.joblog()[1][9] == "ok"


@pytest.mark.timeout(180)
def test_a_submitter_killed_with_kill_9_and_resumed_submits_no_job_twice(sweeps) -> None:
    sweep = sweeps("sleep 3 && echo PYL_ID >> ran\n" * 6)
    submitter = sweep.start(sweep.args("--max-active", "2"))
    sweep.wait_for_jobs(2)
    time.sleep(1)
    os.kill(submitter.pid, signal.SIGKILL)
    submitter.communicate()
    time.sleep(3)  # a job may end while no submitter runs
    resumed = sweep.run([PYTHON, "-m", "mpilauncher", "--resume", "queuestate"])
    assert resumed.returncode == 0, resumed.stderr
    assert "picked up, not submitted again" in resumed.stderr
    assert sweep.ran() == collections.Counter(range(6)), "every task exactly once"
    submitted = sweep.submitted_scripts()
    assert len(submitted) == 6 and set(submitted.values()) == {1}, f"no job submitted twice: {submitted}"


@pytest.mark.timeout(120)
def test_ctrl_c_leaves_the_jobs_running_and_says_so_and_the_cancel_option_cancels_them(sweeps) -> None:
    sweep = sweeps("sleep 60\nsleep 60\n")
    submitter = sweep.start(sweep.args("--max-active", "2"))
    jobs = sorted(job for job, _ in sweep.wait_for_jobs(2))
    submitter.send_signal(signal.SIGINT)
    _, err = submitter.communicate(timeout=60)
    assert submitter.returncode == 130, err
    assert f"2 Slurm jobs of this sweep are still queued or running ({' '.join(jobs)}): left to run" in err
    assert sorted(job for job, _ in sweep.jobs()) == jobs, "still there"
    resumed = sweep.start([PYTHON, "-m", "mpilauncher", "--resume", "queuestate", "--cancel-on-stop"])
    time.sleep(3)
    resumed.send_signal(signal.SIGINT)
    _, err = resumed.communicate(timeout=60)
    assert resumed.returncode == 130, err
    assert f"cancelled 2 Slurm jobs of this sweep ({' '.join(jobs)})" in err
    deadline = time.monotonic() + 30
    while sweep.jobs():
        assert time.monotonic() < deadline, sweep.jobs()
        time.sleep(0.2)
    assert len(sweep.submitted_scripts()) == 2, "the resume submitted nothing"


def test_a_partition_slurm_does_not_have_is_one_line_and_nothing_is_written(sweeps) -> None:
    sweep = sweeps("true\n")
    result = sweep.run(sweep.args(sbatch="-p nosuchpartition -t 1"))
    assert result.returncode == 2 and result.stderr.count("\n") == 1, result.stderr
    assert "Slurm would refuse the jobs: invalid partition specified: nosuchpartition" in result.stderr
    assert sorted(p.name for p in sweep.dir.iterdir()) == ["bin", "commandlines", "refusals", "sbatch.log"]


@pytest.mark.timeout(120)
def test_a_submit_limit_is_retried_later_not_counted_as_a_failed_task(sweeps) -> None:
    sweep = sweeps("echo PYL_ID >> ran\n" * 2, refusals=2)
    result = sweep.run(sweep.args("--max-active", "2"))
    assert result.returncode == 0, result.stderr
    limit = [line for line in result.stderr.splitlines() if "QOSMaxSubmitJobPerUserLimit" in line]
    assert len(limit) == 1 and "not failed" in limit[0], result.stderr
    assert sweep.ran() == collections.Counter(range(2))
    assert "# tasks completed: 2" in result.stdout and "tasks aborted: 0" in result.stdout
