"""Start user commands as processes and learn when they end, without spinning.

Why ``os.posix_spawn``: it is the cheapest way Python has to start a process
(measured here: 2,000 ``sh -c true`` at about 2,400-2,600/s, ahead of
``subprocess.Popen``), and its file actions open the task's output file in the
child, so the parent never opens it.  ``setsid=True`` puts each task in its own
session and process group: signals for the launcher (Ctrl-C) do not reach
tasks, and a whole task tree is killed with one ``killpg``.

Why pidfds: each child's ``pidfd`` is registered in an epoll set, so waiting
for "any task ended, or a wake-up fd is readable" is one ``epoll.poll`` with a
timeout -- no polling loop, no SIGCHLD handler, and no ``waitpid(-1)`` that
would reap children belonging to the user's own script (the PyLauncher-style
API runs inside it).

Why standby starts: for short tasks the time a core stands idle between one
task's end and the next one's start is mostly the round trip to the master.
A start with ``after=`` waits here, behind a running task, and is spawned the
moment that task is reaped -- before its end is even reported.

Why a watchdog: tasks live in their own sessions, so a launcher killed with
``kill -9`` would leave them running while a resume starts them again; the
:mod:`watchdog` process kills their groups when the launcher's pipe closes.

What a task leaves behind when its main process ends (a background child, a
``setsid`` daemon) is ended too: see :mod:`leftovers`.
"""

from __future__ import annotations

import errno
import heapq
import os
import select
import time
from collections import deque
from collections.abc import Callable, Mapping

try:  # the C module, as in an executor, whose start-up this is on (see executor.py)
    import _signal as signal
except ImportError:
    import signal

if __package__:
    from mpilauncher.execution.gather import Stream, open_spool
    from mpilauncher.execution.leftovers import LANE_VARIABLE, GroupSweeper, Subtree
    from mpilauncher.execution.stuck import STUCK_AFTER, Sleepers, stuck_after
    from mpilauncher.execution.watchdog import proc_stat
    from mpilauncher.protocol import Ended, StartRequest
else:  # an executor process: the siblings, and the protocol, are top-level modules there
    from gather import Stream, open_spool  # type: ignore[no-redef]
    from leftovers import LANE_VARIABLE, GroupSweeper, Subtree  # type: ignore[no-redef]
    from protocol import Ended, StartRequest  # type: ignore[no-redef]
    from stuck import STUCK_AFTER, Sleepers, stuck_after  # type: ignore[no-redef]
    from watchdog import proc_stat  # type: ignore[no-redef]

TYPE_CHECKING = False  # (typing is not imported: this module is on every executor's start)
if TYPE_CHECKING:
    from resource import struct_rusage

__all__ = ["Ended", "ProcessRunner", "Running", "StartRequest"]

#: posix_spawn leaves the parent's ignored signals ignored in the child: Python ignores
#: SIGPIPE and SIGXFSZ (`yes | head -1` would never end cleanly) and the executor ignores
#: the stop signals (a task could then not be stopped with SIGTERM). Tasks get them all back.
DEFAULT_SIGNALS = (
    signal.SIGPIPE, signal.SIGXFSZ, signal.SIGHUP, signal.SIGINT, signal.SIGQUIT, signal.SIGTERM,
    signal.SIGUSR1, signal.SIGUSR2,
)  # fmt: skip


# Plain classes, not dataclasses: this module is imported by every executor process,
# and dataclasses (with inspect) would add ~6 ms to each one's start-up, before any task runs.
class Running:
    """A started task: its process and when it began (``start``: epoch seconds); per-node output:
    the unnamed file its output goes to (``spool``) and the lane's files it is appended to at its end;
    ``exec_file``: its ``exec<N>`` (path, text) while not yet written (see EXEC_FILE_AFTER)."""

    __slots__ = (
        "task_id", "pid", "pidfd", "start", "start_mono", "timed_out", "killed", "spool", "stream", "exec_file",
    )  # fmt: skip

    def __init__(
        self, task_id: int, pid: int, pidfd: int, start: float, start_mono: float, spool: int = -1,
        stream: Stream | None = None,
    ) -> None:  # fmt: skip
        self.task_id, self.pid, self.pidfd, self.start, self.start_mono = task_id, pid, pidfd, start, start_mono
        self.timed_out = self.killed = False  # (killed: at its timeout)
        self.spool, self.stream = spool, stream
        self.exec_file: tuple[str, str] | None = None


INFINITY = float("inf")
#: Seconds a task runs before its ``exec<N>`` is written (a task that fails gets one at its end).
#: Why not at every start: on a disk, creating ``exec<N>`` was half of what a short task's files
#: cost (measured: 3.02 -> 2.21-2.41 s for 2,000 ``true`` right after ``rm -rf`` of the last
#: workdir), and a sweep of short tasks that succeed never needs it -- its script is in the
#: lane's ``exec.<node>.<lane>`` record (``output --exec``).  A task that hangs or fails, where
#: ``sh exec<N>`` by hand is how people debug (PyLauncher's user guide), has one.  Why 10 s and
#: not 1: on a crowded host even ``true`` can take seconds from spawn to reap (4,096 emulated
#: cores on 2 CPUs, benchmarks/dispatch.py: 1 s wrote 14,939 of 20,000), and for a task of 10 s
#: one more file is nothing.
EXEC_FILE_AFTER = 10.0
#: Seconds a timed-out task gets between SIGTERM and SIGKILL.
TIMEOUT_GRACE = 2.0
#: How often a task with no pidfd (out of file descriptors) is looked at: nothing else wakes us at its end.
UNWATCHED_POLL = 0.05
#: stop_all: seconds to wait, after SIGKILL, for the tasks and their leftovers to vanish before giving
#: up on them: a process asleep in the kernel (a write to a hung file system) outlives even SIGKILL.
KILL_WAIT = 5.0

#: The longest one sleep in the kernel lasts.  ``epoll`` takes at most 2**31 - 1 ms (24.8 days)
#: and refuses more with an OverflowError, yet a --task-timeout of 30 days is how people write
#: "no limit": a longer wait wakes after a day with nothing to report, and its caller waits again.
LONGEST_WAIT = 86_400.0


def kernel_timeout(seconds: float | None) -> float | None:
    """``seconds`` as ``epoll.poll`` takes it: None (no limit) stays, the rest within 0..LONGEST_WAIT."""
    if seconds is None:
        return None
    return min(max(seconds, 0.0), LONGEST_WAIT)


class Standbys:
    """The standby starts of a backend (see :class:`~mpilauncher.execution.backend.ExecutionBackend`):
    each held behind the running task it follows, started when that one ends, or taken back.

    One piece for every backend: the bookkeeping of who waits behind whom is the
    same whether the task runs as a process or as a Slurm job.
    """

    __slots__ = ("_behind", "_follower", "retracted")

    def __init__(self) -> None:
        self._follower: dict[int, StartRequest] = {}  # running task -> the start waiting behind it
        self._behind: dict[int, int] = {}  # standby task -> the running task it waits behind
        self.retracted: list[int] = []  # standby tasks taken back by retract(), for the next report

    def __bool__(self) -> bool:
        return bool(self._follower)

    def hold(self, request: StartRequest) -> None:
        """Keep ``request`` until task ``request.after`` ends (it then starts as an ordinary start)."""
        self._follower[request.after] = request._replace(after=None)
        self._behind[request.task_id] = request.after

    def follower(self, ended: int) -> StartRequest | None:
        """The start that waited behind task ``ended``, now due; None if none did."""
        request = self._follower.pop(ended, None)
        if request is not None:
            del self._behind[request.task_id]
        return request

    def retract(self, task_id: int) -> bool:
        """Take standby ``task_id`` back if it has not started (it is then listed in :attr:`retracted`)."""
        after = self._behind.pop(task_id, None)
        if after is None:
            return False
        del self._follower[after]
        self.retracted.append(task_id)
        return True

    def clear(self) -> None:
        """Drop every standby (a stop): they never run."""
        self._follower.clear()
        self._behind.clear()


def decode_status(status: int) -> int:
    """A wait status as Popen's returncode: exit code, or -signal."""
    if os.WIFSIGNALED(status):
        return -os.WTERMSIG(status)
    return os.WEXITSTATUS(status)


class ProcessRunner:
    """Spawns task processes and reports their ends; see the module docstring."""

    SHELL = "/bin/sh"

    def __init__(
        self,
        guard: bool = True,
        base_env: Mapping[str, str] | None = None,
        pin_self: bool = False,
        tag: str | None = None,
        subreaper: bool = False,
        exec_file_after: float = EXEC_FILE_AFTER,
    ) -> None:
        """``tag``: this runner's lane tag, set in every task's environment (``MPILAUNCHER_LANE``):
        by it, what escaped a task is found when the run ends, or when the runner has died.
        ``subreaper``: this process is a child subreaper (an executor process): leftovers are
        found in its subtree, else by process group (see :mod:`leftovers`).
        ``exec_file_after``: seconds a task runs before its ``exec<N>`` is written (tests shorten it)."""
        self._epoll = select.epoll()
        self._by_fd: dict[int, Running] = {}
        self._by_task: dict[int, Running] = {}
        self._unwatched = 0  # running tasks without a pidfd (out of fds): polled each turn
        self._wake_fds: set[int] = set()
        self._readers: dict[int, Callable[[int], None]] = {}
        self._guard = guard
        self._watchdog = None  # started with the first task
        self.base_env = dict(os.environ if base_env is None else base_env)
        self.tag = tag or f"{os.getpid()}.{id(self):x}"
        self.base_env[LANE_VARIABLE] = self.tag
        self._leftovers: Subtree | GroupSweeper = (
            Subtree(self.tag, self.add_reader, self.remove_reader) if subreaper else GroupSweeper(self.tag)
        )
        self._reaped: dict[int, int] = {}  # task -> pid, reaped this loop turn: their leftovers are looked for
        self._deadlines: list[tuple[float, int, int]] = []  # (monotonic, task, pid): TERM, then KILL
        # (monotonic, task, pid): when a task still running gets its exec<N>; in start order, as every
        # task waits the same EXEC_FILE_AFTER, so a deque serves where the deadlines need a heap.
        self._exec_due: deque[tuple[float, int, int]] = deque()
        self._exec_file_after = exec_file_after
        # pin_self (executor processes): bind ourselves to a task's CPUs before spawning it, so
        # the task inherits them from its first instruction.  Binding the child after the spawn
        # races with the shell: under load it can fork the command before we get to it.
        self._pin_self = pin_self
        self._pinned: tuple[int, ...] = ()
        self._unpinned: tuple[int, ...] = ()  # our own CPUs before the first pin
        self._streams: dict[str, Stream] = {}  # <workdir>/output.<node> or exec.<node> -> this lane's files
        self._standbys = Standbys()
        self.retracted = self._standbys.retracted  # standby tasks taken back, for the next report
        after = stuck_after(self.base_env)  # (one not understood is said by the agent: see default_backend)
        self._sleepers = Sleepers(STUCK_AFTER if after is None else after)
        self._next_look = time.monotonic() + self._sleepers.interval if self._sleepers.after else INFINITY

    def _watched(self):
        """The watchdog that kills our tasks if we die (see watchdog.py); None if it cannot run."""
        if self._watchdog is None and self._guard:
            self._guard = False
            from mpilauncher.execution.watchdog import Watchdog  # not needed inside the executor process

            try:
                self._watchdog = Watchdog.start(tag=self.tag)
            except OSError as err:
                from mpilauncher import log  # here: the executor process runs this module without the package

                log.warning(f"no task watchdog ({err}): tasks may outlive a killed launcher")
        return self._watchdog

    def add_wake_fd(self, fd: int) -> None:
        """An extra fd (signal wake-up pipe) that ends :meth:`wait` early when readable."""
        self._epoll.register(fd, select.EPOLLIN)
        self._wake_fds.add(fd)

    def add_reader(self, fd: int, callback: Callable[[int], None]) -> None:
        """Call ``callback(fd)`` from :meth:`wait` whenever ``fd`` is readable (or closed)."""
        self._epoll.register(fd, select.EPOLLIN)
        self._readers[fd] = callback

    def remove_reader(self, fd: int) -> None:
        self._epoll.unregister(fd)
        del self._readers[fd]

    def start(self, request: StartRequest) -> Running | Ended | None:
        """Run ``request.command`` under ``/bin/sh -c`` with stdout+stderr to ``request.output``.

        The environment is the runner's base environment with ``env_changes``
        applied (a None value removes the variable).

        A failure to spawn (a command too long to exec, out of processes) is
        reported as an immediate end with exit code 127, the shell's "cannot
        run", so one bad task never stops the sweep.  Except when the task's
        output file cannot be created (quota, full or read-only file system, the
        workdir deleted): that is the launcher's failure, not the task's, and every
        later start would fail the same way; the end record says so in ``not_started``
        (the task is still to run).  ``cpu_ids``: bind the task to them.
        ``after``: a standby start, spawned when that task ends (None returned
        now); at once if its end has already been returned by :meth:`wait`.
        ``exec_file``: (``exec<N>`` path or "", its text, the base of the lane files the
        text is recorded in): recorded once the task has been spawned, so for exactly
        the tasks that started; ``exec<N>`` is written when the task fails or has run
        EXEC_FILE_AFTER seconds.
        """
        task_id, command, after, output = request.task_id, request.command, request.after, request.output
        if after is not None and (after in self._by_task or after in self._reaped):
            # ...or reaped in this very wait(), which is reading our requests: its end is not returned
            # yet, and the standby's own news (a failed start) must not come before it.
            self._standbys.hold(request)
            return None
        spool, stream = -1, None
        if request.gather is not None:  # per-node output: an unnamed file on the node, appended at the end
            try:
                stream = self._stream(request.gather[1])
                spool = open_spool(request.gather[0], task_id)
            except OSError as err:
                why = f"{err.filename}: {err.strerror}" if err.filename else str(err.strerror or err)
                return Ended(task_id, 127, time.time(), 0.0, not_started=why)
            sink = (os.POSIX_SPAWN_DUP2, spool, 1)
        else:
            sink = (os.POSIX_SPAWN_OPEN, 1, output, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        actions = [(os.POSIX_SPAWN_OPEN, 0, "/dev/null", os.O_RDONLY, 0), sink, (os.POSIX_SPAWN_DUP2, 1, 2)]
        env = dict(self.base_env)
        if request.env_changes:
            for name, value in request.env_changes.items():
                if value is None:
                    env.pop(name, None)
                else:
                    env[name] = value
        cpus = request.cpu_ids
        if self._pin_self and cpus != self._pinned:
            try:
                if not self._pinned:
                    self._unpinned = tuple(os.sched_getaffinity(0))
                os.sched_setaffinity(0, cpus or self._unpinned)  # ~50 us when it moves us; a lane mostly
                self._pinned = cpus  # reuses its CPUs
            except OSError:
                self._pin_self = False  # not allowed here: bind after the spawn instead
        start, start_mono = time.time(), time.monotonic()
        try:
            pid = os.posix_spawn(
                self.SHELL, [self.SHELL, "-c", "--", command], env, file_actions=actions, setsid=True,
                setsigdef=DEFAULT_SIGNALS, setsigmask=(),
            )  # fmt: skip
        except OSError as err:
            if stream is not None:
                os.close(spool)
            elif unwritable := cannot_create(output):
                return Ended(task_id, 127, start, 0.0, not_started=unwritable)
            else:  # the reason, where the task's output would be (else its output is empty and nothing says why)
                write_text((output, cannot_start(err, command, env)))
            write_text(self._record_exec(task_id, request.exec_file, start))  # it failed: exec<N> now
            return Ended(task_id, 127, start, 0.0)
        if cpus and not self._pin_self:
            bind(pid, cpus)
        watchdog = self._watched()
        if watchdog is not None:
            watchdog.watch(pid)  # setsid: the task's process group id is its pid
        try:
            pidfd = os.pidfd_open(pid)
        except OSError:  # already reaped cannot happen; out of fds can: fall back to polling it
            pidfd = -1
            self._unwatched += 1
        running = Running(task_id, pid, pidfd, start, start_mono, spool, stream)
        self._by_task[task_id] = running
        if request.timeout:
            heapq.heappush(self._deadlines, (start_mono + request.timeout, task_id, pid))
        if pidfd >= 0:
            self._by_fd[pidfd] = running
            self._epoll.register(pidfd, select.EPOLLIN)
        exec_file = self._record_exec(task_id, request.exec_file, start)
        if exec_file is not None:
            running.exec_file = exec_file
            self._exec_due.append((start_mono + self._exec_file_after, task_id, pid))
        return running

    def _stream(self, base: str) -> Stream:
        """This lane's files for ``base`` (``<workdir>/output.<node>`` or ``exec.<node>``), made on first use."""
        stream = self._streams.get(base)
        if stream is None:
            stream = Stream(base)
            stream.open(self.tag.replace("/", "_"))
            self._streams[base] = stream
        return stream

    def _record_exec(
        self, task_id: int, exec_file: tuple[str, str, str] | None, start: float
    ) -> tuple[str, str] | None:
        """Record a started task's exec script in its lane's files; its ``exec<N>`` (path, text), if any, to write."""
        if exec_file is None:
            return None
        path, text, records = exec_file
        if records:
            try:
                self._stream(records).add_text(task_id, "exec", text, start)
            except OSError:
                pass  # a convenience, as exec<N> is: left out when it cannot be written
        return (path, text) if path else None

    def _exec_head(self) -> float:
        """When the next exec<N> is due (INFINITY: none); drops the entries of tasks that ended."""
        line, by_task = self._exec_due, self._by_task
        while line:
            due, task_id, pid = line[0]
            running = by_task.get(task_id)
            if running is not None and running.pid == pid and running.exec_file is not None:
                return due
            line.popleft()
        return INFINITY

    def _write_due_exec(self, now: float) -> None:
        """Write the exec<N> of every task that has now run its ``exec_file_after`` seconds."""
        while self._exec_head() <= now:
            running = self._by_task[self._exec_due.popleft()[1]]
            write_text(running.exec_file)
            running.exec_file = None

    @staticmethod
    def _gather(running: Running) -> str | None:
        """Per-node output: append the ended task's output to the lane's files; None, or why it could not
        be (a full disk): the task's run then does not count (see :meth:`_record_end`)."""
        try:
            running.stream.add_file(running.task_id, running.spool, time.time())  # type: ignore[union-attr]
            return None
        except OSError as err:
            where = f"{running.stream.base}.*"  # type: ignore[union-attr]
            return f"the output of task {running.task_id} cannot be kept in {where}: {err.strerror or err}"
        finally:
            os.close(running.spool)
            running.spool = -1

    def flush(self) -> None:
        """Nothing to do: a start is spawned when it is asked for (see ExecutionBackend.flush)."""

    def retract(self, task_id: int) -> bool:
        """Take back standby ``task_id`` if it has not started (it is then listed in :attr:`retracted`)."""
        return self._standbys.retract(task_id)

    def wait(self, timeout: float) -> list[Ended]:
        """Ended tasks, waiting up to ``timeout`` s for the first (0: just look; None: until one).

        The standby behind an ended task is started before this returns.
        """
        if self._watchdog is not None:
            self._watchdog.flush()  # once per loop turn: the starts and ends of the last turn
        due = self._leftovers.due(bool(self._by_task))
        if self._deadlines:
            due = min(due, self._deadlines[0][0])
        if self._exec_due:
            due = min(due, self._exec_head())
        if self._unwatched:
            due = min(due, time.monotonic() + UNWATCHED_POLL)
        if self._by_task:
            due = min(due, self._next_look)
        if due != INFINITY:
            left = max(0.0, due - time.monotonic())
            timeout = left if timeout is None else min(timeout, left)
        ended = self._reap_ready(self._epoll.poll(kernel_timeout(timeout)))
        if self._deadlines:
            ended.extend(self._enforce_timeouts(time.monotonic()))
        if self._exec_due:
            self._write_due_exec(time.monotonic())
        if self._unwatched:  # (a count, not a look at every running task each turn)
            ended.extend(self._reap_unwatched())
        if self._by_task and time.monotonic() >= self._next_look:
            self._look_for_sleepers()
        if self._standbys:
            for done in list(ended):
                follow = self._standbys.follower(done.task_id)
                if follow is not None:
                    started = self.start(follow)
                    if isinstance(started, Ended):  # could not spawn: reported right after its predecessor
                        ended.append(started)
        now = time.monotonic()
        if self._reaped or now >= self._leftovers.due(bool(self._by_task)):
            ended = self._leftovers.settle(ended, self._reaped, self._by_task, now)
            self._reaped = {}
        return ended

    def signal(self, task_id: int, signum: int) -> None:
        """Send ``signum`` to the task's whole process group."""
        running = self._by_task.get(task_id)
        if running is not None:
            try:
                os.killpg(running.pid, signum)
            except ProcessLookupError:
                pass

    def stop_all(self, grace: float) -> list[Ended]:
        """SIGTERM every task's group, SIGKILL what is left after ``grace`` s; reap them all.

        What tasks left behind gets SIGKILL by then too, whatever its own grace.
        Standby starts are dropped: they never run.
        """
        self._standbys.clear()
        ended: list[Ended] = []
        for task_id in list(self._by_task):
            self.signal(task_id, signal.SIGTERM)
        deadline = time.monotonic() + grace
        self._leftovers.end_all(deadline)
        self._leftovers.settle([], {}, self._by_task, time.monotonic())  # also what was left unseen so far
        while (self._by_task or self._leftovers.active) and time.monotonic() < deadline:
            ended.extend(self.wait(min(0.05, max(0.0, deadline - time.monotonic()))))
        for task_id in list(self._by_task):
            self.signal(task_id, signal.SIGKILL)
        give_up = time.monotonic() + KILL_WAIT
        while self._by_task and time.monotonic() < give_up:
            ended.extend(self.wait(0.05))
        ended.extend(self._give_up(running) for running in list(self._by_task.values()))
        while self._leftovers.active and time.monotonic() < give_up:
            ended.extend(self.wait(0.05))
        return ended

    def close(self) -> None:
        """No task may outlive the runner: stop what still runs, then dismiss the watchdog."""
        if self._by_task or self._leftovers.active:
            self.stop_all(0.0)
        self._leftovers.close()
        for stream in self._streams.values():
            stream.close()
        self._streams.clear()
        if self._watchdog is not None:
            self._watchdog.close()
            self._watchdog = None
        self._epoll.close()

    # -- internals --------------------------------------------------------
    def _reap_ready(self, ready: list[tuple[int, int]]) -> list[Ended]:
        ended = []
        for fd, _ in ready:
            reader = self._readers.get(fd)
            if reader is not None:
                reader(fd)
                continue
            if fd in self._wake_fds:
                try:
                    os.read(fd, 4096)
                except BlockingIOError:
                    pass
                continue
            running = self._by_fd.get(fd)
            if running is not None:
                done = self._try_reap(running)
                if done is not None:
                    ended.append(done)
        return ended

    def _reap_unwatched(self) -> list[Ended]:
        return [e for r in list(self._by_task.values()) if r.pidfd < 0 if (e := self._try_reap(r)) is not None]

    def _enforce_timeouts(self, now: float) -> list[Ended]:
        """SIGTERM the groups of tasks past their timeout; SIGKILL them a grace later; the tasks given up
        KILL_WAIT s after that (see _give_up: the sweep goes on, their cores go to the next tasks)."""
        given_up = []
        while self._deadlines and self._deadlines[0][0] <= now:
            _, task_id, pid = heapq.heappop(self._deadlines)
            running = self._by_task.get(task_id)
            if running is None or running.pid != pid:
                continue  # ended in time
            if not running.timed_out:
                running.timed_out = True
                self.signal(task_id, signal.SIGTERM)
                heapq.heappush(self._deadlines, (now + TIMEOUT_GRACE, task_id, pid))
            elif not running.killed:
                running.killed = True
                self.signal(task_id, signal.SIGKILL)
                heapq.heappush(self._deadlines, (now + KILL_WAIT, task_id, pid))
            else:
                given_up.append(self._give_up(running))
        return given_up

    def _look_for_sleepers(self) -> None:
        """Name a task whose process has slept in the kernel for long (see :mod:`stuck`)."""
        now = time.monotonic()
        self._next_look = now + self._sleepers.interval
        for line in self._sleepers.look({task_id: running.pid for task_id, running in self._by_task.items()}, now):
            _warn(line)

    def _try_reap(self, running: Running) -> Ended | None:
        """Reap the task if it ended, with the kernel's account of its resource use (``wait4``).

        The rusage covers the task's main process and every descendant that was waited for
        (the shell's commands, a program's own children).  It misses descendants nobody
        waited for -- a daemon or a ``cmd &`` the task left behind, which the leftovers logic
        ends and this executor reaps later -- and processes outside this node's tree (the
        remote ranks of an MPI task; ``srun``'s ranks, which run under slurmstepd).
        """
        try:
            pid, status, usage = os.wait4(running.pid, os.WNOHANG)
        except ChildProcessError:  # reaped by someone else: exit status and usage lost
            pid, status, usage = running.pid, 255 << 8, None
        if pid == 0:
            return None
        self._reaped[running.task_id] = running.pid  # what it left running (`daemon &`) goes next: see wait()
        if self._sleepers and (woke := self._sleepers.ended(running.task_id, time.monotonic())) is not None:
            _warn(woke)
        return self._record_end(running, decode_status(status), usage)

    def _give_up(self, running: Running) -> Ended:
        """A task still there KILL_WAIT s after SIGKILL (asleep in the kernel: no signal reaches it until
        its system call returns) is reported ended by SIGKILL and left behind, said on stderr: a stop that
        waited for it would never end, and neither would the launcher.  Once this process exits, the
        kernel hands it to an ancestor that reaps it when it does end; until then it is no leftover to
        sweep (it had its SIGKILL), which would only hold the lane up again at its exit."""
        stat = proc_stat(running.pid)
        state = stat[0].decode() if stat is not None else "unknown"
        why = ", uninterruptible sleep: a hung file system?" if state == "D" else ""
        _warn(
            f"task {running.task_id}: its process {running.pid} outlived SIGKILL by {KILL_WAIT:g} s"
            f" (state {state}{why}); left behind, it ends when the kernel lets it"
        )
        self._leftovers.left_behind.add(running.pid)  # (a task leads its own group: its pid is the group's id)
        return self._record_end(running, -signal.SIGKILL, None)

    def _record_end(self, running: Running, exit_code: int, usage: struct_rusage | None) -> Ended:
        """The task runs no more (reaped, or given up): its record, its output gathered, its exec<N> written
        where it failed or ran long."""
        runtime = time.monotonic() - running.start_mono
        del self._by_task[running.task_id]
        if self._watchdog is not None:
            self._watchdog.unwatch(running.pid)  # only now: until reaped (or given up), the pid cannot be reused
        if running.pidfd < 0:
            self._unwatched -= 1
        else:
            del self._by_fd[running.pidfd]
            self._epoll.unregister(running.pidfd)
            os.close(running.pidfd)
        lost = self._gather(running) if running.spool >= 0 else None
        if running.exec_file is not None and (exit_code or running.timed_out or runtime >= self._exec_file_after):
            write_text(running.exec_file)  # it failed (or ran its time while nobody looked)
        if lost is not None:  # its output is gone: its run does not count, it is still to run (Ended.not_started);
            # its cores went to the standby behind it when it ended, which the record's start says
            return Ended(running.task_id, 127, running.start + runtime, 0.0, not_started=lost)
        if usage is None:
            return Ended(running.task_id, exit_code, running.start, runtime, running.timed_out)
        return Ended(
            running.task_id, exit_code, running.start, runtime, running.timed_out, 0, "",
            usage.ru_utime, usage.ru_stime, usage.ru_maxrss,  # ru_maxrss: KiB on Linux
        )  # fmt: skip


def _warn(text: str) -> None:
    """One line on stderr, written at once (an executor process has no logger: it imports no more than it
    must); a stderr that is gone loses it, and nothing else."""
    try:
        os.write(2, f"mpilauncher: warning: {text}\n".encode())
    except OSError:
        pass


def cannot_start(err: OSError, command: str, env: Mapping[str, str]) -> str:
    """Why a task could not be spawned, as its output says it (the C loop writes the same)."""
    text = f"mpilauncher: cannot start this task: {err.strerror or err}"
    if err.errno == errno.E2BIG:  # (MAX_ARG_STRLEN: 32 pages; ARG_MAX: a quarter of the stack limit)
        size = sum(len(k.encode("utf-8", "surrogateescape")) + len(v.encode("utf-8", "surrogateescape")) + 2
                   for k, v in env.items())  # fmt: skip
        text += (
            f" (its command is {len(command.encode('utf-8', 'surrogateescape'))} bytes and its environment {size};"
            f" the kernel takes at most {32 * 4096} bytes in one argument or variable, and"
            f" {os.sysconf('SC_ARG_MAX')} in all)"
        )
    return text + "\n"


def cannot_create(output: str) -> str:
    """Why a task's output file cannot be created ("<path>: <reason>"), or "" if it can."""
    try:
        os.close(os.open(output, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC, 0o644))
    except OSError as err:
        return f"{output}: {err.strerror or err}"
    return ""


def write_text(file: tuple[str, str] | None) -> None:
    """Write ``(path, text)``; a convenience file that cannot be written is left out: one the disk took
    no more of is removed (a full disk left ``exec<N>`` empty, or a script cut short, in silence: a
    user walk)."""
    if file is None:
        return
    try:
        fd = os.open(file[0], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    except OSError:
        return
    try:
        data = file[1].encode("utf-8", "surrogateescape")
        while data:
            data = data[os.write(fd, data) :]
    except OSError:
        try:
            os.unlink(file[0])
        except OSError:
            pass
    finally:
        os.close(fd)


def bind(pid: int, cpus: tuple[int, ...]) -> None:
    """Pin a just-spawned task (and anything it already forked) to ``cpus``.

    For a runner that does not pin itself (the in-process fallback: moving the
    launcher itself around costs ~50 us a time).  Setting the *child's* mask
    costs ~7 us, but it races with the shell: posix_spawn returns once the
    child has exec'd ``/bin/sh``, and under load the shell can fork the command
    before we get here, so its children are pinned as well.  Executor processes
    pin themselves before the spawn instead (``pin_self``), which has no race.
    """
    try:
        os.sched_setaffinity(pid, cpus)
    except OSError:
        return
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as listing:
            early = listing.read().split()
    except OSError:
        return
    for child in early:
        try:
            os.sched_setaffinity(int(child), cpus)
        except OSError:
            pass
