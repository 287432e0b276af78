"""Kill the tasks of a launcher that died, even by ``kill -9``.

Why: tasks run in their own sessions (``setsid``), so nothing reaches them
when the launcher (or an agent rank) dies abruptly; they run on as orphans,
and a resume runs them a second time while the orphans still write.
``PR_SET_PDEATHSIG`` does not help (it signals only the direct child, and
dash keeps ``sh`` as the parent of the command) and setting it needs a
``preexec_fn``, which forces fork instead of vfork and slows every spawn.

How: the launcher keeps the write end of a pipe whose read end is the
stdin of this small process.  It tells it each task's process group
(``+<pgid>``) and, once the task is reaped, forgets it (``-<pgid>``).  The
kernel closes the write end however the launcher exits, so EOF without a
``bye`` line means "the launcher is gone": SIGTERM every group still held,
and every group of a process that carries the runner's tag in its
environment (what left its task's group: a ``setsid`` daemon), wait
``grace`` s for them to vanish, SIGKILL the rest, exit.  Until then the
watchdog sleeps in a blocking read: no CPU, no MPI.

It is started as ``python -I -S <this file>`` so that it imports only the
standard library (about 10 ms; ``-m mpilauncher...`` would import the package
and numpy), in its own session and ignoring the stop signals that the
launcher handles itself: when the launcher is alive, it stops its tasks.
"""

from __future__ import annotations

import os
import select
import sys
import time
from collections.abc import Iterable

try:  # the C module, as in an executor, whose start-up this is on (see executor.py)
    import _signal as signal
except ImportError:
    import signal

DEFAULT_GRACE = 2.0
# The launcher's stop signals (a terminal's Ctrl-C, scancel, Slurm's --signal) reach the watchdog too
# when they are sent to a whole job step; the launcher then stops its tasks itself and says bye.
IGNORED = (signal.SIGHUP, signal.SIGINT, signal.SIGQUIT, signal.SIGTERM, signal.SIGUSR1, signal.SIGUSR2)
BYE = b"bye"
#: Tasks carry their runner's tag in this variable (see leftovers.py, which imports it from here).
LANE_VARIABLE = "MPILAUNCHER_LANE"


class Watchdog:
    """Launcher-side handle: buffered ``watch``/``unwatch``, one write per :meth:`flush`."""

    def __init__(self, pid: int, fd: int) -> None:
        self.pid = pid
        self.lost = False  # the watchdog died: tasks are no longer guarded (warned once)
        self._fd = fd
        self._buffer = bytearray()

    @classmethod
    def start(cls, grace: float = DEFAULT_GRACE, tag: str = "") -> Watchdog:
        """Start the watchdog process; raises ``OSError`` if it cannot be spawned.

        ``tag``: the runner's ``MPILAUNCHER_LANE`` value, by which the processes
        that left their task's group are found too.

        ``os.pipe`` fds are close-on-exec (PEP 446): neither the watchdog nor any
        task spawned later inherits the write end, which would hide EOF.  The
        stop signals are blocked in the child until ``main`` ignores them, so
        there is no window in which one kills it.
        """
        read_end, write_end = os.pipe()
        here = os.path.abspath(__file__)
        if here.endswith(".py") and os.path.isfile(here):
            argv = [sys.executable, "-I", "-S", here, repr(float(grace))]
        else:  # no source file (zipped install): slower, but it works
            argv = [sys.executable, "-m", __name__, repr(float(grace))]
        if tag:
            argv.append(f"{LANE_VARIABLE}={tag}")
        actions = [
            (os.POSIX_SPAWN_DUP2, read_end, 0),
            (os.POSIX_SPAWN_OPEN, 1, os.devnull, os.O_WRONLY, 0),
            (os.POSIX_SPAWN_DUP2, 1, 2),  # hold none of the launcher's outputs (mpiexec waits for their EOF)
        ]
        try:
            pid = os.posix_spawn(argv[0], argv, os.environ, file_actions=actions, setsid=True, setsigmask=IGNORED)
        except BaseException:
            os.close(write_end)
            raise
        finally:
            os.close(read_end)
        os.set_blocking(write_end, False)  # a stopped watchdog must never block the launcher
        return cls(pid, write_end)

    def watch(self, pgid: int) -> None:
        """Kill group ``pgid`` if the launcher dies (after the next :meth:`flush`)."""
        self._buffer += b"+%d\n" % pgid

    def unwatch(self, pgid: int) -> None:
        """Forget group ``pgid`` (call it once the task is reaped: its id may be reused)."""
        self._buffer += b"-%d\n" % pgid

    def flush(self) -> None:
        """Send what ``watch``/``unwatch`` buffered in one write; whatever a full pipe refuses waits."""
        if not self._buffer:
            return
        if self.lost or self._fd < 0:
            self._buffer.clear()
            return
        try:
            written = os.write(self._fd, self._buffer)
        except BlockingIOError:
            return
        except BrokenPipeError:
            self._lose()
            return
        del self._buffer[:written]

    def close(self, timeout: float = 5.0) -> None:
        """Let the watchdog exit without killing anything, and reap it.

        ``\\nbye\\n`` is one write under PIPE_BUF, so it arrives whole or not at
        all; it also ends any line a full pipe cut short.  If it cannot be
        written, the watchdog is SIGKILLed *before* the write end closes, so it
        never sees an EOF it would take for the launcher's death.
        """
        if self._fd < 0:
            return
        fd, self._fd = self._fd, -1
        self._buffer.clear()
        try:
            os.write(fd, b"\n" + BYE + b"\n")
        except OSError:
            _kill(self.pid)
        finally:
            os.close(fd)
        _reap(self.pid, timeout)

    def __enter__(self) -> Watchdog:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _lose(self) -> None:
        self.lost = True
        self._buffer.clear()
        from mpilauncher import log  # here: the watchdog process runs this file without the package

        log.warning(f"task watchdog (pid {self.pid}) is gone; tasks will outlive the launcher if it is killed")


def _kill(pid: int) -> None:
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def _reap(pid: int, timeout: float) -> None:
    """Wait up to ``timeout`` s for the watchdog to exit, then SIGKILL it; reap it either way."""
    try:
        pidfd = os.pidfd_open(pid)
    except ProcessLookupError:  # already reaped by someone else
        return
    try:
        if not select.select([pidfd], [], [], timeout)[0]:
            _kill(pid)
        os.waitpid(pid, 0)
    except ChildProcessError:  # reaped by a waitpid(-1) elsewhere in this process
        pass
    finally:
        os.close(pidfd)


# -- the watchdog process --------------------------------------------------
def read_groups(fd: int) -> set[int] | None:
    """Follow ``+pgid``/``-pgid`` lines until EOF: the groups still held, or None after ``bye``.

    A line cut short by EOF is ignored (the launcher died mid-write), and so
    is anything malformed; groups 0 and 1 and the watchdog's own are refused
    (``killpg`` would hit the caller, init, or itself).
    """
    groups: set[int] = set()
    refused = {0, 1, os.getpgrp()}
    tail = b""
    while True:
        try:
            chunk = os.read(fd, 65536)
        except OSError:
            break
        if not chunk:
            break
        lines = (tail + chunk).split(b"\n")
        tail = lines.pop()
        for line in lines:
            digits = line[1:]
            if line == BYE:
                return None
            if not digits.isdigit():
                continue
            if line[:1] == b"+" and int(digits) not in refused:
                groups.add(int(digits))
            elif line[:1] == b"-":
                groups.discard(int(digits))
    return groups


def stop_groups(groups: Iterable[int], grace: float) -> None:
    """SIGTERM each group, wait up to ``grace`` s for them to vanish, SIGKILL the rest.

    "Vanished" is ``killpg(pgid, 0)`` failing; zombies still count as present,
    so where init does not reap orphans the full grace passes before a
    (harmless) SIGKILL.  SIGCONT lets a stopped task act on its SIGTERM.
    """
    alive = [pgid for pgid in groups if _signal(pgid, signal.SIGTERM)]
    for pgid in alive:
        _signal(pgid, signal.SIGCONT)
    deadline = time.monotonic() + grace
    delay = 0.005
    while alive and (left := deadline - time.monotonic()) > 0:
        time.sleep(min(delay, left))
        delay = min(2 * delay, 0.1)
        alive = [pgid for pgid in alive if _signal(pgid, 0)]
    for pgid in alive:
        _signal(pgid, signal.SIGKILL)


def tagged_groups(entry: bytes) -> list[int]:
    """Process groups of the processes whose environment holds ``entry`` (``NAME=value``): how the
    tasks of a runner that is gone (and what they left behind) are found.  Our own group is left out.
    A process caught in an exec (an empty environment, see :func:`settled_environment`) is read again
    once the others are read."""
    tagged = []
    unsettled = []
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        pid = int(name)
        entries = environment(pid)
        if entry in entries:
            tagged.append(pid)
        elif entries == [b""] and _may_be_in_exec(pid):
            unsettled.append(pid)
    tagged += [pid for pid in unsettled if entry in settled_environment(pid)]
    groups = {group for group in map(_group, tagged) if group is not None}
    groups.discard(os.getpgrp())
    return sorted(groups)


def _group(pid: int) -> int | None:
    try:
        return os.getpgid(pid)
    except OSError:
        return None


def _may_be_in_exec(pid: int) -> bool:
    """A live process of a program (not a kernel thread: those have no environment at all)."""
    stat = proc_stat(pid)
    return stat is not None and stat[0] != b"Z" and pid != KTHREADD and stat[1] != KTHREADD


# -- /proc ------------------------------------------------------------------
#: The kernel threads' parent: they have no environment, and are never a task's.
KTHREADD = 2
#: A process caught in an exec reads an empty environment until the kernel has set up the new
#: program's (measured here: ~5 ms, 6.6 ms at worst on a busy machine, for ``setsid sleep``):
#: its owner is looked for again this long before it is taken for one that cleared its own.
EXEC_WAIT = 0.1
EXEC_POLL = 0.002


def proc_stat_fields(pid: int) -> tuple[bytes, list[bytes]] | None:
    """``pid``'s command name and the fields of ``/proc/<pid>/stat`` after it (state first); None once
    it is gone."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as stat:
            data = stat.read()
    except OSError:
        return None
    close = data.rindex(b")")  # the command name may hold spaces and ')'
    return data[data.index(b"(") + 1 : close], data[close + 2 :].split()


def proc_stat(pid: int) -> tuple[bytes, int, int, int] | None:
    """(state, parent, process group, session) of ``pid``; None once it is gone."""
    found = proc_stat_fields(pid)
    if found is None:
        return None
    fields = found[1]
    return fields[0], int(fields[1]), int(fields[2]), int(fields[3])


def environment(pid: int) -> list[bytes]:
    """The environment ``pid`` was started with (``NAME=value`` entries); [] if unreadable."""
    try:
        with open(f"/proc/{pid}/environ", "rb") as environ:
            return environ.read().split(b"\0")
    except OSError:
        return []


def settled_environment(pid: int) -> list[bytes]:
    """``pid``'s environment, an exec in progress waited out: an empty read is read again every
    :data:`EXEC_POLL` s for up to :data:`EXEC_WAIT` s while the process lives.  Why: a leftover
    re-parented to the executor as its task ends is often between ``setsid()`` and the exec of its
    program (``setsid sleep 300 &``): read then, it had no tag and no longer its task's session,
    and went uncounted and unended while other tasks ran (a test caught it under load).  A process
    whose environment is empty for good (``env -i``) costs the wait once, when it is adopted; one whose
    environment cannot be read at all (a set-uid program's: no exec in progress reads so) costs none."""
    entries = environment(pid)
    deadline = time.monotonic() + EXEC_WAIT
    while entries == [b""] and time.monotonic() < deadline:  # (read, and empty: as tagged_groups tells it)
        stat = proc_stat(pid)
        if stat is None or stat[0] == b"Z":
            break
        time.sleep(EXEC_POLL)
        entries = environment(pid)
    return entries


def _signal(pgid: int, signum: int) -> bool:
    """``killpg``; False if the group is gone (or now someone else's: its id was reused)."""
    try:
        os.killpg(pgid, signum)
    except (ProcessLookupError, PermissionError):
        return False
    return True


def _close_inherited() -> None:
    """Close fds above 2 that the launcher let through (MPI/PMI sockets), so its peers see it die."""
    try:
        fds = [int(name) for name in os.listdir("/proc/self/fd")]
    except OSError:
        return
    for fd in fds:
        if fd > 2:
            try:
                os.close(fd)
            except OSError:
                pass


def main(argv: list[str] | None = None) -> int:
    """The watchdog process: ``python -I -S watchdog.py [GRACE [NAME=TAG]]`` with the launcher's pipe as stdin."""
    args = sys.argv[1:] if argv is None else argv
    grace = float(args[0]) if args else DEFAULT_GRACE
    tag = args[1].encode() if len(args) > 1 else b""
    for signum in IGNORED:  # ignoring also drops any that arrived while start() had them blocked
        signal.signal(signum, signal.SIG_IGN)
    _close_inherited()
    os.chdir("/")  # pin no directory (an unmount, a job's scratch cleanup)
    groups = read_groups(0)
    if groups is not None and tag:
        groups.update(tagged_groups(tag))
    if groups:
        stop_groups(groups, grace)
    return 0


if __name__ == "__main__":
    sys.exit(main())
