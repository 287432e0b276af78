"""A stop signal to an MPI run under ``mpiexec`` (hydra) ends it cleanly on every rank.

What users do: Ctrl-C or ``kill -TERM`` of ``mpiexec`` (hydra forwards the signal once to every
rank), or a ``kill -TERM`` of one rank of the job.  Whatever rank it reaches, rank 0 decides: the
run stops with 128+N on every rank, the statistics are printed, the queuestate is complete (no
journal left) and a resume finishes the sweep without running a completed task again.
"""

from __future__ import annotations

import collections
import os
import re
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

from mpilauncher.core.tasks import CoresSpec
from mpilauncher.persistence.store import load_state
from tests.conftest import find_launcher_pid, launcher_env

TASKS = 16
LAYOUT = ["--emulate-nodes", "2", "--cores-per-node", "2"]


def ran(directory: Path) -> collections.Counter:
    path = directory / "ran"
    return collections.Counter(int(x) for x in path.read_text().split()) if path.exists() else collections.Counter()


def start(directory: Path, ranks: int, marker: str, *args: str) -> subprocess.Popen:
    return subprocess.Popen(
        ["mpiexec", "-print-all-exitcodes", "-n", str(ranks), sys.executable, "-m", "mpilauncher", *args],
        cwd=directory, env=launcher_env(MPL_TEST_MARK=marker), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        text=True,
    )  # fmt: skip


def rank_exit_codes(stdout: str) -> list[int]:
    """Every rank's exit status, from the wait statuses ``mpiexec -print-all-exitcodes`` lists."""
    listed = re.search(r"Exit codes: \[[^]]*\] ([\d,]+)", stdout)
    assert listed, stdout
    return [os.waitstatus_to_exitcode(int(code)) for code in listed.group(1).split(",")]


# -n 3 with 2 emulated nodes: rank 0 master (vnode0), rank 1 parked (vnode0), rank 2 agent (vnode1).
# -n 4: ranks 1 and 3 parked.
CASES = {
    "Ctrl-C to mpiexec": (3, signal.SIGINT, None),
    "SIGTERM to mpiexec": (4, signal.SIGTERM, None),
    "SIGTERM to the agent rank only": (3, signal.SIGTERM, 2),
    "SIGTERM to a parked rank only": (3, signal.SIGTERM, 1),
}


@pytest.mark.timeout(150)
@pytest.mark.parametrize("case", list(CASES))
def test_a_stop_signal_stops_every_rank_cleanly_and_resume_finishes(sweep_dir: Path, case: str) -> None:
    ranks, signum, victim_rank = CASES[case]
    (sweep_dir / "commandlines").write_text("sleep 1 && echo PYL_ID >> ran\n" * TASKS)
    marker = uuid.uuid4().hex
    proc = start(sweep_dir, ranks, marker, "commandlines", *LAYOUT, "--workdir", "w")
    try:
        deadline = time.monotonic() + 60
        while sum(ran(sweep_dir).values()) < 4:  # the first round is done, the second runs on both nodes
            assert proc.poll() is None, proc.communicate()
            assert time.monotonic() < deadline, "the sweep did not get going within 60 s"
            time.sleep(0.05)
        time.sleep(0.3)
        target = proc.pid if victim_rank is None else find_launcher_pid(marker, f"PMI_RANK={victim_rank}")
        assert target is not None
        os.kill(target, signum)
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    name = signal.Signals(signum).name
    assert proc.returncode == 128 + signum, out + err
    assert rank_exit_codes(out) == [128 + signum] * ranks, "every rank exits with rank 0's status"
    assert out.count(f"Launcherjob stopped: stopped by {name}") == 1, out + err
    assert "Traceback" not in err and "MPI_Abort" not in err and "BAD TERMINATION" not in out, out + err
    assert f"stopped by {name}" in err and "--resume queuestate" in err, err
    assert not (sweep_dir / "queuestate.journal").exists(), "the snapshot holds everything: no journal left"
    ledger = load_state(sweep_dir / "queuestate", CoresSpec("fixed", 1)).ledger
    completed = set(ledger.ids_in("completed"))
    assert len(completed) >= 4 and ledger.ids_in("queued", "running"), ledger.counts()
    assert not ledger.ids_in("failed"), "a task ended by the stop is interrupted, not failed"
    assert set(ran(sweep_dir)) == completed, "completed in the queuestate exactly when the task finished"

    resumed = subprocess.run(
        ["mpiexec", "-n", str(ranks), sys.executable, "-m", "mpilauncher", "--resume", "queuestate", *LAYOUT],
        cwd=sweep_dir, env=launcher_env(), capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    assert f"# tasks completed: {TASKS}" in resumed.stdout
    assert ran(sweep_dir) == collections.Counter(range(TASKS)), "every task ran, none twice"


@pytest.mark.timeout(120)
def test_ctrl_c_while_mpi_starts_ends_the_job_though_a_rank_is_not_there_yet(sweep_dir: Path) -> None:
    """A user walk: Ctrl-C 0.1 s after ``mpiexec -n 3`` killed two ranks in their imports, and the
    third, inside MPI_Init, held the signal for its run (a signal acts only when MPI_Init returns,
    which it never did: it waits for the ranks that died): mpiexec waited 20 minutes, a rank spinning.
    Here the job's third process stands for a rank that is slow to come (it ignores SIGINT and never
    calls MPI_Init); Ctrl-C comes while the launcher's ranks wait in MPI_Init for it."""
    (sweep_dir / "commandlines").write_text("echo PYL_ID >> ran\n" * 4)
    marker = uuid.uuid4().hex
    launcher = [sys.executable, "-m", "mpilauncher", "commandlines", "--workdir", "w"]
    slow = "import signal, time; signal.signal(signal.SIGINT, signal.SIG_IGN); time.sleep(60)"
    proc = subprocess.Popen(
        ["mpiexec", "-n", "2", *launcher, ":", "-n", "1", sys.executable, "-c", slow],
        cwd=sweep_dir, env=launcher_env(MPL_TEST_MARK=marker), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        text=True,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        while not all(_in_mpi(marker, rank) for rank in (0, 1)):
            assert proc.poll() is None, proc.communicate()
            assert time.monotonic() < deadline, "the launcher's ranks did not reach MPI_Init within 60 s"
            time.sleep(0.05)
        time.sleep(0.5)
        began = time.monotonic()
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=40)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert time.monotonic() - began < 20, "the job waited for the rank that never came"
    assert proc.returncode != 0, out + err
    assert not (sweep_dir / "ran").exists() and not (sweep_dir / "w").exists(), "nothing started"


def _in_mpi(marker: str, rank: int) -> bool:
    """Launcher rank ``rank`` has loaded the MPI library: it is in MPI_Init (or past it)."""
    pid = find_launcher_pid(marker, f"PMI_RANK={rank}")
    try:
        return pid is not None and "libmpi" in Path(f"/proc/{pid}/maps").read_text()
    except OSError:
        return False
