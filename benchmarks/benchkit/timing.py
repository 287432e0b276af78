"""One command, timed from the outside: wall clock, the CPU it and its children used, and how busy the
rest of the machine was meanwhile (the noise that makes a figure unreliable)."""

from __future__ import annotations

import os
import resource
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

#: Seconds a stopped command gets between SIGTERM and SIGKILL: enough for mpilauncher to stop its tasks.
STOP_GRACE = 10.0


@dataclass
class Sample:
    wall: float  # seconds, whole command
    cpu: float  # seconds, user+sys of the command and everything it waited for
    own: float | None = None  # seconds, the tool's own figure when it prints one
    others: float | None = None  # share of the machine's CPUs busy with *other* processes meanwhile


@dataclass
class Outcome:
    sample: Sample
    output: str  # stdout and stderr together
    returncode: int | None  # None: stopped at the timeout

    @property
    def timed_out(self) -> bool:
        return self.returncode is None


def children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def self_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def machine_busy() -> float | None:
    """CPU seconds all CPUs spent busy since boot (Linux ``/proc/stat``), or None elsewhere."""
    try:
        with open("/proc/stat", encoding="ascii") as f:
            fields = [int(x) for x in f.readline().split()[1:]]
    except (OSError, ValueError):
        return None
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)  # idle + iowait
    guest = sum(fields[8:10])  # already counted in user/nice
    return (sum(fields) - idle - guest) / os.sysconf("SC_CLK_TCK")


def measure(
    argv: list[str],
    *,
    cwd: Path,
    env: dict[str, str],
    stdin_path: Path | None = None,
    timeout: float | None = None,
) -> Outcome:
    """Run ``argv`` to its end (or ``timeout`` seconds) and time it.

    The command gets a session of its own, so that a timeout or a Ctrl-C here stops all of it -- mpiexec
    and its ranks, a launcher and its helpers -- by process group, and nothing of it outlives the benchmark.
    """
    stdin = open(stdin_path, "rb") if stdin_path else subprocess.DEVNULL
    try:
        busy0, self0, cpu0 = machine_busy(), self_cpu(), children_cpu()
        t0 = time.perf_counter()
        proc = subprocess.Popen(
            argv,
            stdin=stdin,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            cwd=cwd,
            env=env,
            start_new_session=True,
        )
        try:
            raw, _ = proc.communicate(timeout=timeout)
            returncode: int | None = proc.returncode
        except subprocess.TimeoutExpired:
            raw = _stop(proc)
            returncode = None
        except BaseException:
            _stop(proc)
            raise
        wall = time.perf_counter() - t0
        cpu = children_cpu() - cpu0
        busy1, ours = machine_busy(), cpu + self_cpu() - self0
    finally:
        if stdin_path:
            stdin.close()
    others = None
    if busy0 is not None and busy1 is not None:
        # /proc/stat counts in clock ticks (10 ms): a run of a few ticks can read below 0% or above 100%.
        others = min(1.0, max(0.0, (busy1 - busy0 - ours) / (wall * (os.cpu_count() or 1))))
    return Outcome(Sample(wall, cpu, others=others), raw.decode("utf-8", "replace"), returncode)


def _stop(proc: subprocess.Popen) -> bytes:
    """SIGTERM the command's process group, SIGKILL it after :data:`STOP_GRACE`; what it wrote so far.

    A task that left the group (a launcher's tasks have sessions of their own) and still holds the pipe
    open does not hold the benchmark up: past the grace after SIGKILL, the output is given up."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            pass
        try:
            raw, _ = proc.communicate(timeout=STOP_GRACE)
            return raw or b""
        except subprocess.TimeoutExpired:
            continue
    proc.wait()
    return b""
