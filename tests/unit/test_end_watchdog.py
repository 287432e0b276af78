"""Rank 0's watchdog on the end of an MPI run (launch.py's ``EndWatchdog``): a call stuck inside MPI cannot
hold the job once the queuestate is written.  Each case runs in a child whose main thread is stuck (a long
sleep stands for MPICH's send to a dead rank, which spins inside MPI with Python's lock released)."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import ROOT

STUCK = """
import os, sys, time
from pathlib import Path
from mpilauncher import launch
from mpilauncher.persistence.lock import SweepLock

class Comm:
    def Abort(self, status):
        print("MPI_Abort", status, flush=True)
        if sys.argv[2] == "abort-hangs":
            time.sleep(60)
        os._exit(status)

launch.ABORT_TIMEOUT = 0.3
lock = SweepLock(Path(sys.argv[1]))
lock.acquire()
launch.EndWatchdog(Comm(), 0.3).arm(1)
time.sleep(60)  # stuck inside MPI
"""


@pytest.mark.parametrize("abort", ["abort-returns", "abort-hangs"])
def test_a_run_stuck_at_its_end_is_aborted_with_its_status_and_its_lock_given_back(tmp_path: Path, abort) -> None:
    state = tmp_path / "queuestate"
    began = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-c", STUCK, str(state), abort], cwd=ROOT, capture_output=True, text=True, timeout=30
    )
    assert time.monotonic() - began < 10, "the watchdog ended the stuck process"
    assert done.returncode == 1, "the run's own exit status (here: some tasks failed)"
    assert done.stdout == "MPI_Abort 1\n", "it ends the whole MPI job, not just rank 0"
    assert not (tmp_path / "queuestate.lock").exists(), "the lock is given back first"
    assert "stuck inside MPI" in done.stderr and "the sweep ran, some tasks failed (exit status 1)" in done.stderr


def test_a_disarmed_watchdog_leaves_the_process_alone() -> None:
    """Disarmed before the run returns: a PyLauncher script goes on after its launcher call."""
    code = "import time; from mpilauncher import launch\n" \
           "w = launch.EndWatchdog(None, 0.1); w.arm(0); w.disarm(); time.sleep(0.4); print('alive')"  # fmt: skip
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=30)
    assert done.returncode == 0 and done.stdout == "alive\n", done.stderr
