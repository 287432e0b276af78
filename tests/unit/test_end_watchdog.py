"""Rank 0's watchdog on the end of an MPI run (launch.py's ``EndWatchdog``): a call stuck inside MPI cannot
hold the job once the queuestate is written; and every rank's on one send (``StuckSendWatchdog``).  Each
case runs in a child whose main thread is stuck (a long sleep stands for MPICH's send to a dead rank, which
spins inside MPI with Python's lock released)."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import ROOT

#: A child that holds the sweep's lock (argv[1]) and whose MPI_Abort prints itself (and hangs for argv[2]
#: "abort-hangs"): what each case then gets stuck in is its own.
HOLDING_THE_LOCK = """
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
"""

STUCK = f"""{HOLDING_THE_LOCK}
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


STUCK_SEND = f"""{HOLDING_THE_LOCK}
from mpilauncher.transport.mpi import SendClock

clock = SendClock()
with launch.StuckSendWatchdog(Comm(), clock, 0.3, "rank 0 (n0)"):
    for _ in range(10):  # sends that return: nothing happens
        clock.timed(3, time.sleep, 0.05)
    print("sent", flush=True)
    if sys.argv[2] == "stuck":
        clock.timed(3, time.sleep, 60)  # a send to a rank that died on another host: it never returns
print("done", flush=True)
"""


@pytest.mark.parametrize("case", ["stuck", "returns"])
def test_a_send_stuck_inside_mpi_ends_the_job_with_the_lock_given_back(tmp_path: Path, case: str) -> None:
    """A user walk under srun: a rank killed mid-sweep, and rank 0 spun in its send to it until the job's
    time limit (an agent did the same in its report to a killed rank 0).  Past the bound the job is
    aborted; sends that return, however many, are left alone."""
    state = tmp_path / "queuestate"
    began = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-c", STUCK_SEND, str(state), case], cwd=ROOT, capture_output=True, text=True, timeout=30
    )
    assert time.monotonic() - began < 10
    if case == "returns":
        assert done.returncode == 0 and done.stdout == "sent\ndone\n", done.stderr
        return
    assert done.returncode == 3, "the launcher failed: the sweep is left to a resume"
    assert done.stdout == "sent\nMPI_Abort 3\n", "it ends the whole MPI job"
    assert not (tmp_path / "queuestate.lock").exists(), "the lock is given back first"
    assert "rank 0 (n0): a send to rank 3 has been stuck inside MPI" in done.stderr, done.stderr


class _Sent:
    def Test(self) -> bool:  # noqa: N802 (MPI's name)
        return True


class _RecordingComm:
    """A communicator whose sends record what the send clock said while they ran."""

    def __init__(self) -> None:
        self.clock = None
        self.seen: list[tuple[bool, int]] = []

    def isend(self, message, dest: int, tag: int) -> _Sent:
        self.seen.append((self.clock.since is not None, self.clock.rank))
        return _Sent()


def test_every_send_of_rank_0_and_of_an_agent_is_on_the_clock_while_it_runs() -> None:
    from mpilauncher.protocol import Completions, Shutdown
    from mpilauncher.transport import mpi as mpi_transport

    comm = _RecordingComm()
    layout = mpi_transport.Layout(node_names=("n0", "n1"), agent_ranks=(0, 1), node_of_rank=(0, 1))
    master = mpi_transport.MasterTransport(comm, layout, local_agent=None)
    comm.clock = master.send_clock
    master.send(1, Shutdown(0.0, 0))
    assert comm.seen == [(True, 1)] and master.send_clock.since is None
    agent = object.__new__(mpi_transport.MpiAgentEndpoint)  # (no MPI here: the fields the sends use)
    agent.comm, agent._requests, agent.send_clock = comm, [], mpi_transport.SendClock()
    agent.send_clock.rank = 0
    comm.clock = agent.send_clock
    agent.report(Completions(()))
    agent.settle()
    assert comm.seen[1:] == [(True, 0)] and agent.send_clock.since is None and agent._requests == []
