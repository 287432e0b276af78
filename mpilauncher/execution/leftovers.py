"""Nothing of a task may outlive it: what its main process leaves behind is found and ended.

Why: a task ends when its main process (``/bin/sh -c``) exits, but it may leave
processes behind: a background child that ignores SIGTERM (``trap '' TERM; x &``),
or a daemon that left the task's process group (``setsid x &``, a double fork).
One SIGTERM to the group did not end them, and they ran on after the launcher,
beside a resume that starts the task again.  Slurm ends what a job step leaves
with its process tracking (cgroups); an executor has no cgroup of its own, but
Linux (>= 3.4) offers the next best thing, the *child subreaper*.

Executor processes (:class:`Subtree`).  Each executor is a child subreaper: a
process whose parent dies is re-parented to it instead of to init.  So whatever
a task started and still lives is in the executor's subtree: among its children
that are not tasks (*orphans*), or below them.

- Whose: an orphan carries its task's ``MPILAUNCHER_TASK_ID`` next to this lane's
  ``MPILAUNCHER_LANE`` in its environment (a nested launcher's tasks carry another
  lane's, so they are never taken for ours).  One that cleared its environment is
  told by its session when it is still in its task's, else it belongs to the last
  to end of the tasks running when it was first seen.
- Cost when nothing is left over: one ``pread`` of ``/proc/self/task/<pid>/children``
  (~1 us) per loop turn in which tasks ended.  It then lists exactly the running
  tasks, and nothing more is done.  While tasks run it is also read once a second,
  so that orphans of running tasks are adopted and reaped when they end: a task
  that double-forks helpers in a loop would otherwise fill the process table with
  the executor's zombies.
- Ending: a task with leftovers gets a sweep.  Every process of it gets SIGTERM
  (and SIGCONT, so a stopped one acts on it), then :data:`GRACE` seconds during
  which the executor goes on starting and reaping other tasks, then SIGKILL.  What
  appears meanwhile (re-parented when its parent dies) gets SIGTERM too, or SIGKILL
  once the grace is over, until nothing of the task is left.  How many processes
  were found when the main process ended goes into the task's end record.
- Orphans are reaped by pid (their pidfds wake the executor's epoll), never with
  ``waitpid(-1)``, which could take the exit status of a task the runner waits for.
- Processes below the orphans are not our children: each is signalled through a
  pidfd opened *after* checking that its parent is still the one it was listed
  under, so a pid reused meanwhile is never hit.

The in-process runner (:class:`GroupSweeper`: ``MPILAUNCHER_EXECUTOR=inline``, or
where no executor process can start, or no subreaper can be had) runs inside the
user's own Python process, which must not become a subreaper: it would inherit
every orphan of everything that script ever starts.  It ends each task's process
group instead (SIGTERM, grace, SIGKILL; its members are the leftovers counted),
and processes that left the group are found by the runner's ``MPILAUNCHER_LANE``
tag when the run stops -- and by the watchdog if the launcher is killed.
"""

from __future__ import annotations

import heapq
import os
from collections.abc import Callable, Iterable, Mapping

try:  # the C module, as in an executor, whose start-up this is on (see executor.py)
    import _signal as signal
except ImportError:
    import signal

if __package__:
    from mpilauncher.execution.watchdog import (
        LANE_VARIABLE,
        proc_stat,
        settled_environment,
        stop_groups,
        tagged_groups,
    )
else:  # an executor process: the siblings are top-level modules there
    from watchdog import (  # type: ignore[no-redef]
        LANE_VARIABLE,
        proc_stat,
        settled_environment,
        stop_groups,
        tagged_groups,
    )

#: In every task's environment: its number (see environment.task_variables), next to its lane's tag.
TASK_VARIABLE = "MPILAUNCHER_TASK_ID"
#: Seconds between SIGTERM and SIGKILL for what a task leaves behind.
GRACE = 2.0
#: While tasks run, look for new orphans at least this often (seconds).
SCAN_INTERVAL = 1.0
#: After a SIGKILL, look again this soon for what was re-parented meanwhile (seconds).
RECHECK = 0.05
#: A sweep that finds more processes than this under one task stops walking (a fork bomb).
MAX_WALK = 100_000
PR_SET_CHILD_SUBREAPER = 36


def enable_subreaper() -> bool:
    """Make this process a child subreaper (Linux >= 3.4); False where that cannot be done.

    Through ``_ctypes``, the core under ``ctypes``: importing ``ctypes`` itself
    costs ~3 ms of an executor's ~16 ms start-up (measured), ``_ctypes`` ~0.5 ms,
    and a C function needs nothing more than the two classes below.
    """
    try:
        import _ctypes

        class Int(_ctypes._SimpleCData):
            _type_ = "i"

        class Libc:
            _handle = _ctypes.dlopen(None)

        class Function(_ctypes.CFuncPtr):
            _flags_ = _ctypes.FUNCFLAG_CDECL
            _restype_ = Int

        prctl = Function(("prctl", Libc()))
        return prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) == 0
    except (ImportError, AttributeError, OSError, TypeError):  # not Linux, not CPython
        return False


# -- /proc ------------------------------------------------------------------
def children_of(pid: int) -> list[int]:
    """The children of ``pid``, all of its threads' (a child belongs to the thread that forked it)."""
    try:
        threads = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return []
    found: list[int] = []
    for tid in threads:
        try:
            with open(f"/proc/{pid}/task/{tid}/children", "rb") as listing:
                found.extend(int(child) for child in listing.read().split())
        except OSError:
            continue
    return found


def group_members(pgid: int) -> list[int]:
    """The live processes of group ``pgid`` (a walk over /proc: only where leftovers exist)."""
    found = []
    for name in os.listdir("/proc"):
        if name.isdigit():
            stat = proc_stat(int(name))
            if stat is not None and stat[2] == pgid and stat[0] != b"Z":
                found.append(int(name))
    return found


def signal_below(pid: int, parent: int, signum: int) -> None:
    """Send ``signum`` to ``pid`` if it is still ``parent``'s child (not a stranger that reused the pid)."""
    try:
        pidfd = os.pidfd_open(pid)
    except (AttributeError, OSError):  # gone, or no pidfds here (Linux < 5.3): check, then kill
        stat = proc_stat(pid)
        if stat is not None and stat[1] == parent:
            _kill(pid, signum)
        return
    try:
        stat = proc_stat(pid)
        if stat is not None and stat[1] == parent:
            signal.pidfd_send_signal(pidfd, signum)
    except OSError:
        pass
    finally:
        os.close(pidfd)


def _kill(pid: int, signum: int) -> None:
    try:
        os.kill(pid, signum)
    except OSError:
        pass


def _reap(pid: int) -> bool:
    """Reap child ``pid`` if it has ended."""
    try:
        return os.waitpid(pid, os.WNOHANG)[0] != 0
    except ChildProcessError:
        return True


# -- executor processes: the subreaper's subtree ------------------------------
class Orphan:
    """A child of the executor that is not a task: left behind by one (``owner``), or by one of ``suspects``."""

    __slots__ = ("pid", "pidfd", "owner", "suspects")

    def __init__(self, pid: int, pidfd: int, owner: int | None, suspects: set[int]) -> None:
        self.pid, self.pidfd, self.owner, self.suspects = pid, pidfd, owner, suspects


class Sweep:
    """Ending one task's leftovers: SIGTERM until ``due``, then SIGKILL until none is left."""

    __slots__ = ("due", "killing", "termed")

    def __init__(self, due: float) -> None:
        self.due = due
        self.killing = False
        self.termed: set[int] = set()


class Subtree:
    """The leftovers of an executor's tasks, found in its subtree; see the module docstring.

    ``watch(fd, callback)`` / ``unwatch(fd)`` register an orphan's pidfd in the
    runner's epoll set, so that the orphan is reaped as soon as it ends.
    """

    def __init__(
        self, lane_tag: str, watch: Callable[[int, Callable[[int], None]], None], unwatch: Callable[[int], None],
        grace: float = GRACE,
    ) -> None:  # fmt: skip
        self._listing = os.open(f"/proc/self/task/{os.getpid()}/children", os.O_RDONLY | os.O_CLOEXEC)
        self._lane_tag = f"{LANE_VARIABLE}={lane_tag}".encode()
        self._task_prefix = f"{TASK_VARIABLE}=".encode()
        self._watch, self._unwatch = watch, unwatch
        self.grace = grace
        self.orphans: dict[int, Orphan] = {}
        self._orphan_fds: dict[int, int] = {}  # pidfd -> pid
        self.sweeps: dict[int | None, Sweep] = {}  # task id (None: nobody's) -> its sweep
        self._limit = float("inf")  # stop_all: no sweep waits for SIGKILL past this
        self._next_scan = 0.0
        self._rescan = False  # an orphan ended: its children were just re-parented to us
        self.left_behind: set[int] = set()  # tasks' processes given up on (see ProcessRunner._give_up)

    @property
    def active(self) -> bool:
        """Leftovers are being ended."""
        return bool(self.sweeps)

    def due(self, running: bool) -> float:
        """When :meth:`settle` must run even if nothing happens (monotonic; inf: never)."""
        due = min((sweep.due for sweep in self.sweeps.values()), default=float("inf"))
        if running or self.orphans:
            due = min(due, self._next_scan)
        return 0.0 if self._rescan else due

    def settle(self, ended: list, reaped: Mapping[int, int], running: Mapping, now: float) -> list:
        """After a loop turn in which tasks ended (``reaped``: task id -> pid), an orphan ended or
        something came due: adopt new orphans, start sweeps for the tasks that ended, carry on the
        sweeps.  Returns ``ended`` with the ``leftovers`` count of every task that left some."""
        self._rescan = False
        self._scan(reaped, running, now)
        if not self.orphans and not self.sweeps:
            return ended
        counts = self._start_sweeps(reaped, running, now)
        self._carry_on(now)
        if not counts:
            return ended
        return [e._replace(leftovers=counts[e.task_id]) if e.task_id in counts else e for e in ended]

    def end_all(self, deadline: float) -> None:
        """Stopping: no leftover waits past ``deadline`` for its SIGKILL, whatever its task's grace."""
        self._limit = deadline
        for sweep in self.sweeps.values():
            sweep.due = min(sweep.due, deadline)

    def close(self) -> None:
        for pidfd in list(self._orphan_fds):
            self._unwatch(pidfd)
            os.close(pidfd)
        self._orphan_fds.clear()
        if self._listing >= 0:
            os.close(self._listing)
            self._listing = -1

    # -- finding ----------------------------------------------------------
    def _scan(self, reaped: Mapping[int, int], running: Mapping, now: float) -> None:
        """Adopt the executor's new children that are not tasks (the usual case: there are none)."""
        self._next_scan = now + SCAN_INTERVAL
        if self.orphans:
            for orphan in [o for o in self.orphans.values() if o.pidfd < 0]:  # no pidfd to wake us: reaped here
                if _reap(orphan.pid):
                    self._forget(orphan)
        if self.left_behind:
            self.left_behind.difference_update([pid for pid in self.left_behind if _reap(pid)])  # (the kernel let go)
        listing = os.pread(self._listing, 1 << 20, 0)
        if listing.count(b" ") == len(running) + len(self.orphans) + len(self.left_behind):
            return  # exactly the running tasks, the orphans already known and what was left behind
        tasks = {r.pid for r in running.values()}
        for pid in map(int, listing.split()):
            if pid not in tasks and pid not in self.orphans and pid not in self.left_behind:
                self._adopt(pid, reaped, running)

    def _adopt(self, pid: int, reaped: Mapping[int, int], running: Mapping) -> None:
        stat = proc_stat(pid)
        if stat is None or stat[0] == b"Z":  # ended before we saw it: only reap it
            _reap(pid)
            return
        owner, suspects = self._owner(pid, stat[3], reaped, running), set()
        if owner is None:
            suspects = set(running)
            if not suspects and reaped:
                owner = max(reaped)  # nothing else runs here: one of the tasks that just ended
        try:
            pidfd = os.pidfd_open(pid)
        except (AttributeError, OSError):
            pidfd = -1
        orphan = Orphan(pid, pidfd, owner, suspects)
        self.orphans[pid] = orphan
        if pidfd >= 0:
            self._orphan_fds[pidfd] = pid
            self._watch(pidfd, self._on_exit)

    def _owner(self, pid: int, session: int, reaped: Mapping[int, int], running: Mapping) -> int | None:
        entries = settled_environment(pid)
        if self._lane_tag in entries:
            for entry in entries:
                if entry.startswith(self._task_prefix):
                    try:
                        return int(entry[len(self._task_prefix) :])
                    except ValueError:
                        break
        for task_id, task_pid in reaped.items():  # still in its task's session (each task is a session leader)
            if task_pid == session:
                return task_id
        for task_id, task in running.items():
            if task.pid == session:
                return task_id
        return None

    def _on_exit(self, pidfd: int) -> None:
        """An orphan's pidfd is readable: it ended; reap it, and look for its re-parented children."""
        orphan = self.orphans.get(self._orphan_fds.get(pidfd, -1))
        if orphan is not None and _reap(orphan.pid):
            self._forget(orphan)
            self._rescan = True

    def _forget(self, orphan: Orphan) -> None:
        del self.orphans[orphan.pid]
        if orphan.pidfd >= 0:
            del self._orphan_fds[orphan.pidfd]
            self._unwatch(orphan.pidfd)
            os.close(orphan.pidfd)

    def _tree(self, owner: int | None) -> list[tuple[int, int]]:
        """(pid, parent) of ``owner``'s live orphans (parent 0) and of everything below them."""
        found: list[tuple[int, int]] = []
        stack = [(o.pid, 0) for o in self.orphans.values() if o.owner == owner]
        while stack and len(found) < MAX_WALK:
            pid, parent = stack.pop()
            stat = proc_stat(pid)
            if stat is None or stat[0] == b"Z" or (parent and stat[1] != parent):
                continue  # ended (a zombie orphan is reaped by its pidfd), or a reused pid
            found.append((pid, parent))
            stack.extend((child, pid) for child in children_of(pid))
        return found

    # -- ending -----------------------------------------------------------
    def _start_sweeps(self, reaped: Mapping[int, int], running: Mapping, now: float) -> dict[int, int]:
        """Sweeps for the owners that no longer run; the number of processes each left, by task."""
        if reaped:
            for orphan in self.orphans.values():
                if orphan.owner is None and orphan.suspects:
                    ended = orphan.suspects.intersection(reaped)
                    orphan.suspects -= ended
                    if ended and not orphan.suspects:  # the last task that may have left it
                        orphan.owner = max(ended)
        counts: dict[int, int] = {}
        for owner in {o.owner for o in self.orphans.values() if not o.suspects and o.owner not in running}:
            if owner in self.sweeps:
                continue
            self.sweeps[owner] = Sweep(min(now + self.grace, self._limit))  # signalled by _carry_on
            if owner in reaped:
                counts[owner] = len(self._tree(owner))
        return counts

    def _carry_on(self, now: float) -> None:
        for owner, sweep in list(self.sweeps.items()):
            tree = self._tree(owner)
            if not tree:
                del self.sweeps[owner]
                continue
            if not sweep.killing and now >= sweep.due:
                sweep.killing = True
            if sweep.killing:
                self._signal(tree, signal.SIGKILL)
                sweep.due = now + RECHECK
            else:
                fresh = [(pid, parent) for pid, parent in tree if pid not in sweep.termed]
                self._signal(fresh, signal.SIGTERM)
                self._signal(fresh, signal.SIGCONT)
                sweep.termed.update(pid for pid, _ in fresh)

    @staticmethod
    def _signal(tree: Iterable[tuple[int, int]], signum: int) -> None:
        for pid, parent in tree:
            if parent:
                signal_below(pid, parent, signum)
            else:  # our own child: its pid stays ours until we reap it
                _kill(pid, signum)


# -- the in-process runner: process groups ------------------------------------
class GroupSweeper:
    """Leftovers found by process group (and, at the end, by the lane tag); see the module docstring."""

    def __init__(self, lane_tag: str, grace: float = GRACE) -> None:
        self._lane_tag = f"{LANE_VARIABLE}={lane_tag}".encode()
        self.grace = grace
        self._groups: list[tuple[float, int, list[tuple[int, int]]]] = []  # heap: (SIGKILL due, pgid, members)
        self._limit = float("inf")
        self.left_behind: set[int] = set()  # tasks' processes given up on (see ProcessRunner._give_up)

    @property
    def active(self) -> bool:
        return bool(self._groups)

    def due(self, running: bool) -> float:
        return self._groups[0][0] if self._groups else float("inf")

    def settle(self, ended: list, reaped: Mapping[int, int], running: Mapping, now: float) -> list:
        counts = {}
        for task_id, pgid in reaped.items():  # each task leads its own group: its pid is the group id
            try:
                os.killpg(pgid, signal.SIGTERM)  # (a group id is never reused while the group exists)
            except OSError:
                continue  # nothing left: the usual case
            members = [(pid, _pidfd(pid)) for pid in group_members(pgid)]
            counts[task_id] = len(members)
            for pid, _ in members:
                _kill(pid, signal.SIGCONT)
            heapq.heappush(self._groups, (min(now + self.grace, self._limit), pgid, members))
        while self._groups and self._groups[0][0] <= now:
            _, pgid, members = heapq.heappop(self._groups)
            _kill_group(pgid, members)
        if not counts:
            return ended
        return [e._replace(leftovers=counts[e.task_id]) if e.task_id in counts else e for e in ended]

    def end_all(self, deadline: float) -> None:
        self._limit = deadline
        self._groups = [(min(due, deadline), pgid, members) for due, pgid, members in self._groups]
        heapq.heapify(self._groups)

    def close(self, grace: float = GRACE) -> None:
        """The run is over: end the groups still in their grace, and what left its group (by the lane tag)."""
        for _, pgid, members in self._groups:
            _kill_group(pgid, members)
        self._groups.clear()
        stop_groups([group for group in tagged_groups(self._lane_tag) if group not in self.left_behind], grace)


def _pidfd(pid: int) -> int:
    try:
        return os.pidfd_open(pid)
    except (AttributeError, OSError):
        return -1


def _kill_group(pgid: int, members: list[tuple[int, int]]) -> None:
    """SIGKILL group ``pgid`` -- only while a member we hold a pidfd of is still in it, which proves
    that the id was not reused -- and those members, wherever they went."""
    held = False
    for pid, pidfd in members:
        if pidfd >= 0 and not held:
            stat = proc_stat(pid)
            try:
                signal.pidfd_send_signal(pidfd, 0)  # still the process we saw (stat above, not a new one)
                held = stat is not None and stat[2] == pgid
            except OSError:
                pass
    if held:
        try:
            os.killpg(pgid, signal.SIGKILL)
        except OSError:
            pass
    for pid, pidfd in members:
        if pidfd >= 0:
            try:
                signal.pidfd_send_signal(pidfd, signal.SIGKILL)
            except OSError:
                pass
            os.close(pidfd)
        elif (stat := proc_stat(pid)) is not None and stat[2] == pgid:  # no pidfds here (Linux < 5.3)
            _kill(pid, signal.SIGKILL)
