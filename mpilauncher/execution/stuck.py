"""Say when a task's process has slept in the kernel for long: a hung file system, seen from a node.

Why: a process in uninterruptible sleep (state ``D``) waits inside a system call that no signal
interrupts, SIGKILL included -- most often I/O on a Lustre, GPFS or NFS mount whose server has
gone away.  Its task neither ends nor progresses, the sweep stalls behind it, and nothing else
tells the user why: the launcher's own view is only "still running".  A stop or a
``--task-timeout`` gives such a task up (see ``processes.ProcessRunner._give_up``); this says so
long before, while the sweep still waits.

How: every ``after / 10`` s (at most once a minute) each running task's process tree is read from
``/proc``.  The first process of it found in state ``D`` is remembered with its CPU time; seen
again in ``D`` with the same CPU time ``after`` s later, it has been in one sleep all along (a
process that works through slow I/O gets some CPU), and one line names the task, the node, the
process and where in the kernel it waits.  When it leaves that sleep, one more line says so.
The C loop of an executor lane (``_cexecutor.c``) does the same, with the same words.

``MPILAUNCHER_STUCK_AFTER`` sets ``after`` in seconds (default 600; 0: never warn).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping

if __package__:
    from mpilauncher.execution.leftovers import children_of
    from mpilauncher.execution.watchdog import proc_stat_fields
else:  # an executor process: the siblings are top-level modules there
    from leftovers import children_of  # type: ignore[no-redef]
    from watchdog import proc_stat_fields  # type: ignore[no-redef]

STUCK_VARIABLE = "MPILAUNCHER_STUCK_AFTER"
#: Seconds in one uninterruptible sleep, with no CPU used, before a task's process is named.
STUCK_AFTER = 600.0
#: The longest time between two looks at the running tasks' processes.
LONGEST_LOOK = 60.0
#: The most processes of one task's tree looked at, breadth first (its main process and its children are where a
#: task waits on a file system; a task that forks thousands costs no more than 100 reads a minute).
MOST_PROCESSES = 100

#: (command name, CPU ticks) of a process in state D; None when it is not, or gone.
Sleep = tuple[str, int]


def stuck_after(environ: Mapping[str, str]) -> float | None:
    """``MPILAUNCHER_STUCK_AFTER`` in seconds (STUCK_AFTER when unset; 0: never warn); None when it is
    not a number of seconds >= 0 (the agent says so once: see backend.default_backend)."""
    text = environ.get(STUCK_VARIABLE, "").strip()
    if not text:
        return STUCK_AFTER
    try:
        seconds = float(text)
    except ValueError:
        return None
    return seconds if seconds >= 0 and seconds == seconds and seconds != float("inf") else None


def kernel_sleep(pid: int) -> Sleep | None:
    """(command name, user + system CPU ticks) of ``pid`` when it sleeps uninterruptibly (state D)."""
    found = proc_stat_fields(pid)
    if found is None or found[1][0] != b"D":
        return None
    name, fields = found
    return name.decode(errors="replace"), int(fields[11]) + int(fields[12])  # utime, stime (stat's 14th, 15th)


def waiting_in(pid: int) -> str:
    """The kernel function ``pid`` sleeps in (``/proc/<pid>/wchan``), "" where the kernel does not say."""
    try:
        with open(f"/proc/{pid}/wchan", "rb") as wchan:
            where = wchan.read().decode(errors="replace").strip()
    except OSError:
        return ""
    return "" if where in ("", "0") else where


def duration(seconds: float) -> str:
    """Seconds as a person reads them in a warning: "45 s", "10 min"."""
    return f"{seconds:.0f} s" if seconds < 120 else f"{seconds / 60:.0f} min"


def first_sleeper(pid: int, sleep_of: Callable[[int], Sleep | None]) -> tuple[int, Sleep] | None:
    """The first process of ``pid``'s tree (breadth first) in uninterruptible sleep, and its sleep."""
    tree, at = [pid], 0
    while at < len(tree) and at < MOST_PROCESSES:
        sleep = sleep_of(tree[at])
        if sleep is not None:
            return tree[at], sleep
        if len(tree) < MOST_PROCESSES:
            tree.extend(children_of(tree[at]))
        at += 1
    return None


class Asleep:
    """A task's process seen in uninterruptible sleep: since when, with which CPU time; named yet."""

    __slots__ = ("pid", "name", "ticks", "since", "named")

    def __init__(self, pid: int, name: str, ticks: int, since: float) -> None:
        self.pid, self.name, self.ticks, self.since = pid, name, ticks, since
        self.named = False


class Sleepers:
    """The running tasks' processes in uninterruptible sleep; :meth:`look` returns what to say."""

    def __init__(self, after: float, node: str = "", sleep_of: Callable[[int], Sleep | None] = kernel_sleep) -> None:
        """``after``: seconds (0: never look); ``node``: named in each line; ``sleep_of``: how one process
        is read (tests give a fake)."""
        self.after = after
        self.interval = min(max(after / 10, 0.1), LONGEST_LOOK)
        self.node = node or os.uname().nodename
        self._sleep_of = sleep_of
        self._asleep: dict[int, Asleep] = {}  # task -> its process seen asleep

    def __bool__(self) -> bool:
        """Whether any task's process is seen asleep (a reap then asks :meth:`ended`)."""
        return bool(self._asleep)

    def look(self, tasks: Mapping[int, int], now: float) -> list[str]:
        """Look at each task's tree (``tasks``: task -> its main process); the lines to warn with."""
        said = []
        for task_id in [t for t in self._asleep if t not in tasks]:
            del self._asleep[task_id]  # given up asleep (which said so itself): see ended() for the others
        for task_id, pid in tasks.items():
            found = first_sleeper(pid, self._sleep_of)
            was = self._asleep.get(task_id)
            if was is not None and found is not None and found[0] == was.pid and found[1][1] == was.ticks:
                if not was.named and now - was.since >= self.after:
                    was.named = True
                    where = waiting_in(was.pid)
                    said.append(
                        f"task {task_id} on {self.node}: its process {was.pid} ({was.name}) has slept in the kernel"
                        f" for {duration(now - was.since)} (state D{', in ' + where if where else ''}) using no CPU:"
                        " a hung file system or device? No signal ends it until the kernel lets it go"
                    )
                continue
            if was is not None and was.named:
                said.append(self._woke(task_id, was, now))
            if found is None:
                self._asleep.pop(task_id, None)
            else:
                self._asleep[task_id] = Asleep(found[0], found[1][0], found[1][1], now)
        return said

    def ended(self, task_id: int, now: float) -> str | None:
        """A task was reaped: if it was named asleep, the line that says it woke."""
        was = self._asleep.pop(task_id, None)
        return self._woke(task_id, was, now) if was is not None and was.named else None

    def _woke(self, task_id: int, was: Asleep, now: float) -> str:
        return (
            f"task {task_id} on {self.node}: its process {was.pid} ({was.name}) woke after"
            f" {duration(now - was.since)} in the kernel"
        )
