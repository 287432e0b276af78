"""A workdir that stops taking files mid-run is the launcher's failure, not the tasks' (issue 10, item 3).

When ``out<N>`` cannot be created (an inode or file-count quota, the workdir deleted
or made read-only), the launcher used to report exit 127 for every remaining task
and race through the queue.  Now: the task that could not start is queued again,
nothing new starts, one line says why at once, the running tasks finish, exit
status 3, and ``--resume`` runs exactly what did not complete.

Every task appends its number to ``ran`` (outside the workdir): proof of what ran,
and how often.
"""

from __future__ import annotations

import collections
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from mpilauncher.core.tasks import CoresSpec
from mpilauncher.persistence.store import load_state
from mpilauncher.report.joblog import read as read_joblog
from tests.conftest import EXECUTOR_LOOPS, launcher_env, mounted_tmpfs, run_cli, wait_for

N_TASKS = 100


@pytest.fixture
def small_disk(sweep_dir: Path):
    """A tmpfs with room for 40 files (inodes): a file-count quota that runs out mid-sweep."""
    with mounted_tmpfs(sweep_dir / "disk", "size=1m,nr_inodes=40") as disk:
        yield disk


def write_sweep(directory: Path, before: str = "") -> None:
    (directory / "commandlines").write_text(f"{before}echo PYL_ID >> {directory}/ran\n" * N_TASKS)


def ran(directory: Path) -> collections.Counter:
    path = directory / "ran"
    return collections.Counter(int(x) for x in path.read_text().split()) if path.exists() else collections.Counter()


def check_stopped_cleanly(result, directory: Path, workdir: Path, reason: str) -> set[int]:
    """Exit 3, one line, nothing recorded as failed, the rest queued; returns the ids that completed."""
    assert result.returncode == 3, (result.returncode, result.stderr)
    lines = result.stderr.strip().split("\n")
    assert len(lines) == 1 and lines[0].startswith("mpilauncher: error: cannot start tasks: "), result.stderr
    assert f"{workdir}{'/'}out" in lines[0] and reason in lines[0] and "--resume" in lines[0]
    assert "Launcherjob stopped: cannot start tasks" in result.stdout
    ledger = load_state(directory / "qs", CoresSpec("fixed", 1)).ledger
    counts = ledger.counts()
    assert counts["failed"] == 0 and counts["running"] == 0, counts
    completed = set(ledger.ids_in("completed"))
    assert set(ledger.ids_in("queued")) == set(range(N_TASKS)) - completed
    assert completed and len(completed) < N_TASKS
    assert ran(directory) == collections.Counter(completed), "what completed ran once; nothing else ran"
    if (workdir / "joblog").exists():
        assert {r["status"] for r in read_joblog(workdir / "joblog")} == {"ok"}, "no task failed with 127"
    return completed


def resume_finishes(directory: Path) -> None:
    result = run_cli(["--resume", "qs", "--cores-per-node", "2"], directory)
    assert result.returncode == 0, result.stderr
    assert ran(directory) == collections.Counter(range(N_TASKS)), "every task ran exactly once"


@pytest.mark.parametrize("executor", EXECUTOR_LOOPS)
def test_a_file_count_quota_mid_sweep_stops_with_one_line_and_resume_finishes(
    sweep_dir: Path, small_disk: Path, executor: str
):
    write_sweep(sweep_dir)
    workdir = small_disk / "w"
    args = ["commandlines", "--workdir", str(workdir), "--queuestate", "qs", "--cores-per-node", "2"]
    result = run_cli(args, sweep_dir, MPILAUNCHER_EXECUTOR=executor)
    check_stopped_cleanly(result, sweep_dir, workdir, "No space left on device")
    subprocess.run(["mount", "-o", "remount,nr_inodes=1000,size=8m", str(small_disk)], check=True)
    resume_finishes(sweep_dir)


def test_the_same_under_mpi_with_emulated_nodes(sweep_dir: Path, small_disk: Path):
    write_sweep(sweep_dir)
    workdir = small_disk / "w"
    args = ["commandlines", "--workdir", str(workdir), "--queuestate", "qs", "--cores-per-node", "2"]
    result = subprocess.run(
        ["mpiexec", "-n", "3", sys.executable, "-m", "mpilauncher", *args, "--emulate-nodes", "2"],
        cwd=sweep_dir, env=launcher_env(), capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    check_stopped_cleanly(result, sweep_dir, workdir, "No space left on device")
    subprocess.run(["mount", "-o", "remount,nr_inodes=1000,size=8m", str(small_disk)], check=True)
    resume_finishes(sweep_dir)


@pytest.mark.parametrize("executor", EXECUTOR_LOOPS)
def test_per_node_output_that_a_full_disk_cannot_keep_stops_and_its_task_runs_again(
    sweep_dir: Path, executor: str
) -> None:
    """A user walk: with --output per-node, a task's output that the full disk could not take was
    dropped with a warning ("it is lost"), the task counted completed, exit 0, and --rerun-failed ran
    nothing.  Its run does not count now: it is queued again, nothing new starts, one line, exit 3,
    and the resume runs it, its output kept."""
    lines = [f"echo {i} >> {sweep_dir}/ran" for i in range(4)]
    lines[1] = f"seq 1 400000; echo 1 >> {sweep_dir}/ran"  # (2.6 MB of output on a disk of 2 MB)
    (sweep_dir / "commandlines").write_text("\n".join(lines) + "\n")
    with mounted_tmpfs(sweep_dir / "disk", "size=2m") as disk:
        workdir = disk / "w"
        args = ["commandlines", "--workdir", str(workdir), "--queuestate", "qs", "--output", "per-node"]
        result = run_cli([*args, "--cores-per-node", "1"], sweep_dir, MPILAUNCHER_EXECUTOR=executor)
        assert result.returncode == 3, result.stderr
        (line,) = result.stderr.strip().split("\n")
        assert "the output of task 1 cannot be kept" in line and "No space left on device" in line, line
        ledger = load_state(sweep_dir / "qs", CoresSpec("fixed", 1)).ledger
        assert 1 in ledger.ids_in("queued") and not ledger.ids_in("failed"), ledger.counts()
        subprocess.run(["mount", "-o", "remount,size=16m", str(disk)], check=True)
        resumed = run_cli(["--resume", "qs", "--cores-per-node", "1"], sweep_dir, MPILAUNCHER_EXECUTOR=executor)
        assert resumed.returncode == 0, resumed.stderr
        assert set(ran(sweep_dir)) == set(range(4)), "every task ran (task 1 twice: its first run's output lost)"
        output = run_cli(["output", "qs", "1"], sweep_dir)
        assert output.returncode == 0 and output.stdout.endswith("\n399999\n400000\n"), output.stderr


def start_blocked(directory: Path, workdir: Path) -> subprocess.Popen:
    """A sweep whose tasks wait for the file ``go``, so the test can break the workdir while two run."""
    write_sweep(directory, before=f"until [ -e {directory}/go ]; do sleep 0.02; done; ")
    args = ["commandlines", "--workdir", str(workdir), "--queuestate", "qs", "--cores-per-node", "2"]
    proc = subprocess.Popen(
        [sys.executable, "-m", "mpilauncher", *args], cwd=directory, env=launcher_env(),
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    wait_for(lambda: (workdir / "out0").exists() and (workdir / "out1").exists(), what="the first two tasks")
    return proc


def finish(proc: subprocess.Popen, directory: Path) -> subprocess.CompletedProcess:
    (directory / "go").touch()
    out, err = proc.communicate(timeout=120)
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)


def test_a_workdir_deleted_mid_sweep_stops_with_one_line_and_resume_finishes(sweep_dir: Path):
    workdir = sweep_dir / "w"
    proc = start_blocked(sweep_dir, workdir)
    shutil.rmtree(workdir)
    completed = check_stopped_cleanly(finish(proc, sweep_dir), sweep_dir, workdir, "No such file or directory")
    assert completed == {0, 1}, "the tasks running at the failure finished; nothing started after it"
    resume_finishes(sweep_dir)


def test_a_workdir_made_read_only_mid_sweep_stops_with_one_line_and_resume_finishes(sweep_dir: Path):
    with mounted_tmpfs(sweep_dir / "disk", "size=4m") as disk:
        workdir = disk / "w"
        proc = start_blocked(sweep_dir, workdir)
        # root ignores permission bits, and a file system with open files cannot be remounted
        # read-only: the immutable attribute refuses new files to root too
        if subprocess.run(["chattr", "+i", str(workdir)], capture_output=True).returncode:
            finish(proc, sweep_dir)
            pytest.skip("chattr +i does not work here: no way to make the workdir read-only for root")
        try:
            completed = check_stopped_cleanly(finish(proc, sweep_dir), sweep_dir, workdir, "Operation not permitted")
        finally:
            subprocess.run(["chattr", "-i", str(workdir)])
        assert completed == {0, 1}
        resume_finishes(sweep_dir)
