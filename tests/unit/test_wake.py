"""Waking parked ranks (transport/wake.py): a real signal between real processes, found by pid and start time."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest

from mpilauncher.transport.wake import WAKE_SIGNAL, gone, identity, start_time, wake
from tests.conftest import ROOT

#: A parked rank's sleep in a child: says "ready", waits for "go" on stdin (a wake may come meanwhile),
#: sleeps up to SLEEP seconds, and prints whether a wake ended it and how long it slept.
SLEEPER = """
import sys, time
from mpilauncher.transport.wake import WakeableSleep
with WakeableSleep() as sleep:
    print("ready", flush=True)
    sys.stdin.readline()
    began = time.monotonic()
    woken = sleep(float(sys.argv[1]))
    print(woken, round(time.monotonic() - began, 2), flush=True)
import signal
print("blocked after:", signal.SIGURG in signal.pthread_sigmask(signal.SIG_BLOCK, []), flush=True)
"""


def sleeper(seconds: float) -> subprocess.Popen:
    child = subprocess.Popen(
        [sys.executable, "-c", SLEEPER, str(seconds)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )  # fmt: skip
    assert child.stdout.readline() == "ready\n"
    return child


def finish(child: subprocess.Popen) -> tuple[bool, float]:
    out, _ = child.communicate(timeout=60)
    first, last = out.splitlines()
    assert last == "blocked after: False", "the signal mask is as it was"
    woken, slept = first.split()
    return woken == "True", float(slept)


def test_a_wake_ends_the_sleep_at_once() -> None:
    child = sleeper(30)
    child.stdin.write("go\n")
    child.stdin.flush()
    time.sleep(0.3)
    wake([(os.uname().nodename, child.pid, start_time(child.pid))])
    woken, slept = finish(child)
    assert woken and slept < 20


def test_a_wake_sent_before_the_sleep_is_not_lost() -> None:
    child = sleeper(30)
    wake([(os.uname().nodename, child.pid, start_time(child.pid))])
    child.stdin.write("go\n")
    child.stdin.flush()
    woken, slept = finish(child)
    assert woken and slept < 20


@pytest.mark.parametrize("who", ["another process with that pid", "another host"])
def test_no_signal_to_a_process_that_is_not_the_rank(who: str) -> None:
    child = sleeper(1.0)
    host, started = os.uname().nodename, start_time(child.pid)
    wake([("elsewhere", child.pid, started)] if who == "another host" else [(host, child.pid, str(int(started) - 1))])
    child.stdin.write("go\n")
    child.stdin.flush()
    woken, slept = finish(child)
    assert not woken and slept >= 0.9


def test_identity_is_this_process_and_its_start_time_stays() -> None:
    host, pid, started = identity()
    assert (host, pid) == (os.uname().nodename, os.getpid()) and started.isdigit()
    assert start_time(pid) == started and start_time(2**22 + 12345) == ""
    assert WAKE_SIGNAL not in (2, 15), "not a signal anyone sends to stop a rank"


#: An agent's wake in a child: says "ready", waits on the wake fd for up to 30 s, says whether it became
#: readable and how long it took, and whether SIGURG's handler and the wake-up fd are as they were after.
AGENT = """
import select, signal, sys, time
from mpilauncher.transport.wake import WAKE_SIGNAL, WakeFd
with WakeFd() as woken:
    print("ready", flush=True)
    began = time.monotonic()
    readable, _, _ = select.select([woken.fd], [], [], 30)
    print(bool(readable), round(time.monotonic() - began, 2), flush=True)
print("restored:", signal.getsignal(WAKE_SIGNAL) is signal.SIG_DFL and signal.set_wakeup_fd(-1) == -1, flush=True)
"""


def test_an_agents_wake_fd_becomes_readable_at_the_signal_and_everything_is_restored_after() -> None:
    child = subprocess.Popen([sys.executable, "-c", AGENT], stdout=subprocess.PIPE, text=True,
                             env={**os.environ, "PYTHONPATH": str(ROOT)})  # fmt: skip
    assert child.stdout.readline() == "ready\n"
    time.sleep(0.2)
    wake([(os.uname().nodename, child.pid, start_time(child.pid))])
    out, _ = child.communicate(timeout=60)
    first, last = out.splitlines()
    readable, waited = first.split()
    assert readable == "True" and float(waited) < 20
    assert last == "restored: True"


def test_a_wake_fd_that_is_someone_elses_is_left_alone() -> None:
    import signal

    from mpilauncher.transport.wake import WakeFd

    theirs = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
    before = signal.set_wakeup_fd(theirs[1])
    try:
        with WakeFd() as woken:
            assert woken.fd == -1 and signal.getsignal(WAKE_SIGNAL) is not None
            assert signal.set_wakeup_fd(theirs[1]) == theirs[1], "still theirs"
        assert signal.set_wakeup_fd(theirs[1]) == theirs[1], "still theirs after"
    finally:
        signal.set_wakeup_fd(before)
        for fd in theirs:
            os.close(fd)


def test_a_rank_is_gone_only_on_proof() -> None:
    """An agent's BYE names the ranks parked beside it that are gone (rank 0 then sends them nothing: MPICH's
    send to a dead rank on another host spins for good); a process this host cannot look into is not gone."""
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    found = (os.uname().nodename, child.pid, start_time(child.pid))
    child.wait()
    assert gone(*identity()) is False
    assert gone(*found) is True, "ended (its pid, if reused, has another start time)"
    assert gone("another-host", 1, "1") is False and gone(os.uname().nodename, os.getpid(), "") is False
