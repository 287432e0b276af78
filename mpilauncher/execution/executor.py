"""The executors: small processes (lanes) per agent that spawn and reap the tasks.

Why separate processes: measured here, ``posix_spawn`` costs ~170 us in a
light Python process but ~450 us in one that has just been busy (the
launcher parsing, scheduling and journaling).  An executor imports nothing
but the standard library (started as ``python -I -S -c "import executor"``,
from cached bytecode), sleeps in ``epoll`` when it has nothing to do, and
only spawns, reaps and reports; the agent's bookkeeping runs beside it
instead of in series with it.  Why several (lanes, one per CPU, up to 8 a
node): ``posix_spawn`` blocks its caller until the child has exec'd, so one
executor both caps a node's start rate and cannot reap while it spawns.

Its loop exists twice: compiled (``_cexecutor.c``, a program of its own that pip builds where a
C compiler is; ~30 us of CPU a task over the system calls, against ~150 us for the interpreter's,
benchmarks/executor_floor.py, and no interpreter to start) and here, in Python: the fallback where
it is not built, and ``MPILAUNCHER_EXECUTOR=python``.  Both keep the protocol and every duty
described here; the tests of these duties run against both.

It is also the tasks' watchdog: the tasks are its children, and when the
agent's end of the request pipe closes without ``BYE`` (the launcher died,
``kill -9`` included) it ends every task's process group (TERM, grace, KILL),
and whatever they left behind, before it exits.  A task still there KILL_WAIT s after its
SIGKILL (asleep in the kernel: a write to a hung file system) is given up, named on stderr:
no stop waits for a file system to come back.  It ignores the stop signals
the launcher handles itself.  It is a child subreaper, so that nothing a task
leaves behind escapes it (see :mod:`leftovers`).

Protocol.  Agent -> executor: ``marshal``-encoded lists, each framed by its
length (4 bytes, little-endian) -- marshal is built in, so the executor
imports no codec, and it encodes and decodes at C speed::

    ["S", (the fields of a resolved StartRequest, see mpilauncher.protocol)]    start
    ["R", id]                                                   take back a standby start
    ["K", id, signum]                                           signal a task's group
    ["STOP", grace]                                             TERM all, KILL after grace
    ["BYE"]                                                     exit, leaving nothing running

Executor -> agent, text: ``E id exit start runtime T|- leftovers user sys maxrss`` per
ended task (T: it was killed at its timeout; leftovers: how many of its processes were
left when it ended; user/sys CPU seconds and max RSS in KiB from ``wait4``, ``-`` when
unknown), ``F id start reason`` per task that could not be started for
the launcher's fault (its output file cannot be created: see
ProcessRunner.start), ``R id`` per standby taken back before it started, and
``STOPPED`` once a STOP is done.
"""

from __future__ import annotations

import marshal
import os
import select
import sys
import time

try:  # the C module: all an executor calls, without the enums `signal` adds (and `enum`: ~5 ms of
    import _signal as signal  # each executor's start, of ~19; at 64 nodes on 2 CPUs, a third of a second)
except ImportError:  # (an interpreter without it)
    import signal

TYPE_CHECKING = False  # (typing itself is not imported: see the test of what an executor loads)
if TYPE_CHECKING:
    from typing import NoReturn

if __package__:
    from mpilauncher.execution.leftovers import LANE_VARIABLE
    from mpilauncher.execution.processes import EXEC_FILE_AFTER, decode_status, kernel_timeout
    from mpilauncher.execution.watchdog import IGNORED, stop_groups, tagged_groups
    from mpilauncher.protocol import Ended, StartRequest
else:  # an executor process (see _BOOT): the siblings, and the protocol one level up, are top-level modules there
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    sys.path.append(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # after the standard library
    from leftovers import LANE_VARIABLE, enable_subreaper  # type: ignore[no-redef]
    from processes import EXEC_FILE_AFTER, ProcessRunner, decode_status, kernel_timeout  # type: ignore[no-redef]
    from protocol import Ended, StartRequest  # type: ignore[no-redef]
    from watchdog import IGNORED, _close_inherited, stop_groups, tagged_groups  # type: ignore[no-redef]

WATCHDOG_GRACE = 2.0
#: How an executor process starts: this module imported from its cached bytecode (run as
#: a script it would be compiled afresh every time), with nothing but the standard library;
#: and how it ends (:func:`leave`).
_HERE = os.path.dirname(os.path.abspath(__file__))
_BOOT = f"import sys; sys.path.insert(0, {_HERE!r}); import executor; "
_SERVE = "executor.leave(executor.serve())"
#: The compiled executor (``_cexecutor.c``), a program that pip builds beside this module where a C
#: compiler is.  It starts in well under a millisecond, where an interpreter takes ~8 ms of CPU: on
#: a small machine, CPU that rank 0's imports wait for (see _cexecutor.c).
PROGRAM = os.path.join(_HERE, "mpilauncher-executor")


def compiled_available() -> bool:
    """The compiled executor is built and can serve here (else executors run the Python loop)."""
    return not why_not_compiled()


def why_not_compiled() -> str:
    """Why the executors run their Python loop here ("": they run the compiled one): it is not built,
    or it could not take the requests' text as the file system does (it reads them as UTF-8)."""
    if not os.access(PROGRAM, os.X_OK):
        return "the compiled one is not built: reinstall where a C compiler is, see README"
    encoding = sys.getfilesystemencoding()
    if encoding != "utf-8":
        return f"the compiled one reads file names as UTF-8, this interpreter's are {encoding}"
    return ""


def executor_argv(compiled: bool) -> list[str]:
    """How an executor process starts: the compiled program, its Python loop after it (what the program
    runs instead where it cannot serve: no subreaper), or that Python loop alone."""
    python = [sys.executable, "-I", "-S", "-c", _BOOT + _SERVE]
    return [PROGRAM, repr(EXEC_FILE_AFTER), *python] if compiled else python


def frame(message: list) -> bytes:
    """One request on the pipe: its marshal encoding, preceded by its length."""
    data = marshal.dumps(message)
    return len(data).to_bytes(4, "little") + data


class Lane:
    """One executor process, seen from the agent: requests out, event lines in."""

    def __init__(self, base_env: dict[str, str], retracted: list[int], tag: str = "", compiled: bool = False) -> None:
        """``compiled``: run the compiled program (its caller found it available: :func:`compiled_available`)."""
        # Every task of this lane inherits the tag: if the executor dies, its orphaned tasks
        # are found by it (/proc/*/environ) and stopped.
        tag = tag or str(os.getpid())
        self.tag = f"{LANE_VARIABLE}={tag}".encode()
        base_env = {**base_env, LANE_VARIABLE: tag}
        requests_read, self.requests = os.pipe()
        self.events, events_write = os.pipe()
        actions = [
            (os.POSIX_SPAWN_DUP2, requests_read, 0),
            (os.POSIX_SPAWN_DUP2, events_write, 1),
        ]
        argv = executor_argv(compiled)
        try:
            self.pid = os.posix_spawn(argv[0], argv, base_env, file_actions=actions, setsid=True, setsigmask=IGNORED)
        finally:
            os.close(requests_read)
            os.close(events_write)
        self.pending: list[bytes] = []
        self.tail = b""
        self.stopped = False
        self.retracted = retracted

    def send(self, message: list) -> None:
        self.pending.append(frame(message))

    def flush(self) -> None:
        if self.pending:
            data, self.pending = b"".join(self.pending), []
            view = memoryview(data)
            try:
                while view:
                    view = view[os.write(self.requests, view) :]
            except BrokenPipeError:
                self.died()

    def read_events(self) -> list[Ended]:
        data = os.read(self.events, 1 << 16)
        if not data:
            self.died()
        lines = (self.tail + data).split(b"\n")
        self.tail = lines.pop()
        ended = []
        for line in lines:
            if line == b"STOPPED":
                self.stopped = True
            elif line.startswith(b"R "):
                self.retracted.append(int(line[2:]))
            elif line.startswith(b"F "):
                _, task_id, start, reason = line.split(b" ", 3)
                text = reason.decode("utf-8", "surrogateescape")
                ended.append(Ended(int(task_id), 127, float(start), 0.0, not_started=text))
            else:
                _, task_id, exit_code, start, runtime, timed_out, leftovers, user, system, rss = line.split()
                record = Ended(
                    int(task_id), int(exit_code), float(start), float(runtime), timed_out == b"T", int(leftovers),
                    "", _number(user, float), _number(system, float), _number(rss, int),
                )  # fmt: skip
                ended.append(record)
        return ended

    def died(self) -> None:
        """The executor process is gone (killed, out of memory): the launcher cannot go on."""
        from mpilauncher.errors import LauncherFailure  # not at the top: the executor process imports this file

        how = ""
        for _ in range(20):  # its pipes close a moment before it can be reaped
            try:
                pid, status = os.waitpid(self.pid, os.WNOHANG)
            except ChildProcessError:
                break
            if pid:
                code = decode_status(status)
                how = f", killed by {signal_name(-code)}" if code < 0 else f", exit status {code}"
                break
            time.sleep(0.005)
        stop_groups(tagged_groups(self.tag), WATCHDOG_GRACE)  # its orphans must not run beside a resume
        raise LauncherFailure(
            f"a task executor process (pid {self.pid}{how}) died: its tasks were stopped and the"
            " launcher stops; the queuestate is saved, --resume runs what did not finish"
        )

    def close(self) -> None:
        self.bye()
        self.reap()

    def bye(self) -> None:
        """Ask the executor to exit (it leaves nothing running)."""
        try:
            os.write(self.requests, frame(["BYE"]))
        except OSError:
            pass
        os.close(self.requests)

    def reap(self) -> None:
        try:
            os.waitpid(self.pid, 0)
        except ChildProcessError:
            pass
        os.close(self.events)


class Executors:
    """The agent's handle on its executor processes: an :class:`~mpilauncher.execution.backend.ExecutionBackend`.

    Several lanes, each an executor process with its own share of the node's
    cores: ``posix_spawn`` blocks its caller until the child has exec'd
    (~0.3 ms for ``sh``), so one executor starts at most ~3,000 tasks/s and
    cannot reap while it spawns.  Lanes spawn and reap in parallel; a task
    goes to the lane of its first core, so a standby start (same cores as its
    predecessor) lands where its predecessor runs.
    """

    def __init__(self, base_env: dict[str, str], lanes: int = 1, cores: int = 1, compiled: bool = True) -> None:
        """``compiled``: the executors run the compiled loop where it is built (False: the Python loop)."""
        self.retracted: list[int] = []  # as ProcessRunner.retracted
        self._cores = max(1, cores)
        self._epoll = select.epoll()
        self._lanes: list[Lane] = []
        self._by_fd: dict[int, Lane] = {}
        compiled = compiled and compiled_available()  # (asked once: every lane runs the same loop)
        try:
            for _ in range(max(1, min(lanes, cores))):
                lane = Lane(base_env, self.retracted, f"{os.getpid()}.{len(self._lanes)}", compiled)
                self._lanes.append(lane)
                self._by_fd[lane.events] = lane
                self._epoll.register(lane.events, select.EPOLLIN)
        except OSError:
            self.close()
            raise
        self._wake_fds: set[int] = set()
        self._lane_of: dict[int, Lane] = {}  # task (started or standing by) -> its lane

    @property
    def lanes(self) -> int:
        return len(self._lanes)

    @property
    def pids(self) -> list[int]:
        """The executor processes, one a lane (what benchmarks measure, and tests look into)."""
        return [lane.pid for lane in self._lanes]

    def add_wake_fd(self, fd: int) -> None:
        self._epoll.register(fd, select.EPOLLIN)
        self._wake_fds.add(fd)

    def start(self, request: StartRequest) -> None:
        """Send ``request`` (resolved: no segments left) to the lane of its first core.

        Its end, or why it could not start, comes from :meth:`wait`.
        """
        first_core = request.core_ids[0] if request.core_ids else 0
        lane = self._lanes[first_core * len(self._lanes) // self._cores % len(self._lanes)]
        lane.send(["S", tuple(request)])
        self._lane_of[request.task_id] = lane

    def retract(self, task_id: int) -> None:
        """Ask for standby ``task_id`` back; the answer (if it had not started) lands in :attr:`retracted`."""
        lane = self._lane_of.get(task_id)
        if lane is not None:
            lane.send(["R", task_id])

    def signal(self, task_id: int, signum: int) -> None:
        lane = self._lane_of.get(task_id)
        if lane is not None:
            lane.send(["K", task_id, int(signum)])
            lane.flush()

    def flush(self) -> None:
        for lane in self._lanes:
            lane.flush()

    def wait(self, timeout: float) -> list[Ended]:
        self.flush()
        ended: list[Ended] = []
        for fd, _ in self._epoll.poll(kernel_timeout(timeout)):
            if fd in self._wake_fds:
                try:
                    os.read(fd, 4096)
                except BlockingIOError:
                    pass
            else:
                ended.extend(self._by_fd[fd].read_events())
        return self._forget(ended)

    def stop_all(self, grace: float) -> list[Ended]:
        """TERM every task, KILL after ``grace`` (all lanes at once); returns how they ended."""
        live = [lane for lane in self._lanes if not lane.stopped]
        for lane in live:
            lane.send(["STOP", grace])
            lane.flush()
        ended: list[Ended] = []
        deadline = time.monotonic() + grace + 30
        while live and time.monotonic() < deadline:
            for fd in select.select([lane.events for lane in live], [], [], 0.5)[0]:
                ended.extend(self._by_fd[fd].read_events())
            live = [lane for lane in live if not lane.stopped]
        self._forget(ended)
        self._lane_of.clear()  # standbys were dropped, every started task reported
        return ended

    def close(self) -> None:
        if self._lane_of:
            self.stop_all(0.0)
        for lane in self._lanes:  # all asked first: they exit in parallel
            lane.bye()
        for lane in self._lanes:
            lane.reap()
        self._lanes = []
        self._epoll.close()

    def _forget(self, ended: list[Ended]) -> list[Ended]:
        for e in ended:
            self._lane_of.pop(e.task_id, None)
        for task_id in self.retracted:
            self._lane_of.pop(task_id, None)
        return ended


def _number(text: bytes, kind: type):
    """A figure of an ``E`` line; ``-``: unknown (None)."""
    return None if text == b"-" else kind(text)


def signal_name(signum: int) -> str:
    """``SIGKILL`` for 9 (the names are ``signal``'s enums: imported only when one is needed)."""
    import signal as names

    try:
        return names.Signals(signum).name
    except ValueError:
        return f"signal {signum}"


# -- the executor process ---------------------------------------------------
def event_line(e: Ended) -> str:
    """How the executor reports an ended task (``E``), or one it could not start (``F``)."""
    if e.not_started:
        return f"F {e.task_id} {e.start!r} {e.not_started.replace(chr(10), ' ')}\n"
    usage = "- - -" if e.cpu_user is None else f"{e.cpu_user!r} {e.cpu_system!r} {e.max_rss}"
    return (
        f"E {e.task_id} {e.exit_code} {e.start!r} {e.runtime!r} {'T' if e.timed_out else '-'} {e.leftovers} {usage}\n"
    )


def serve() -> int:
    """The executor process's Python loop, until the agent says BYE or is gone (see PROGRAM for the
    compiled one, which does the same)."""
    for signum in IGNORED:
        signal.signal(signum, signal.SIG_IGN)
    signal.pthread_sigmask(signal.SIG_SETMASK, [])
    _close_inherited()  # hold none of the agent's other fds (MPI sockets): only the two pipes and stderr
    subreaper = enable_subreaper()  # before the first task: from then on, nothing a task leaves escapes us
    runner = ProcessRunner(guard=False, pin_self=True, tag=os.environ.get(LANE_VARIABLE), subreaper=subreaper)
    out = sys.stdout.fileno()
    state = {"tail": b"", "eof": False, "bye": False}

    def report(ended) -> None:
        if ended or runner.retracted:
            text = "".join(f"R {task_id}\n" for task_id in runner.retracted) + "".join(map(event_line, ended))
            runner.retracted.clear()
            os.write(out, text.encode("utf-8", "surrogateescape"))

    def on_request(fd: int) -> None:
        data = os.read(fd, 1 << 16)
        if not data:
            state["eof"] = True
            return
        buffer = state["tail"] + data
        at, early = 0, []
        while len(buffer) - at >= 4:
            size = int.from_bytes(buffer[at : at + 4], "little")
            if len(buffer) - at - 4 < size:
                break
            message = marshal.loads(buffer[at + 4 : at + 4 + size])
            at += 4 + size
            kind = message[0]
            if kind == "S":
                started = runner.start(StartRequest._make(message[1]))
                if isinstance(started, Ended):
                    early.append(started)
            elif kind == "R":
                runner.retract(message[1])
            elif kind == "K":
                runner.signal(message[1], message[2])
            elif kind == "STOP":
                report(runner.stop_all(float(message[1])))
                os.write(out, b"STOPPED\n")
            elif kind == "BYE":
                state["bye"] = True
        state["tail"] = buffer[at:]
        report(early)

    runner.add_reader(0, on_request)
    while not state["eof"] and not state["bye"]:
        report(runner.wait(None))
    # BYE: the agent has stopped every task, but what they left may still be in its grace.  EOF without
    # BYE: the agent is gone (kill -9 included); its tasks and all they left behind must not outlive it.
    runner.stop_all(WATCHDOG_GRACE)
    runner.close()
    return 0


def leave(status: int) -> NoReturn:
    """End the executor process with ``status`` now, without the interpreter's teardown.

    By the time :func:`serve` returns, every task has been stopped and reaped and every file of
    the executor's is closed; a normal exit would go on to free its objects one by one, which the
    agent waits for: it reaps its executors before it can itself exit, so every run's end paid it
    (BYE to reaped 8-16 ms measured here, 2 ms so).  What a normal exit does that could matter is
    done: the standard streams are flushed (stderr may hold a warning; the events go out with
    ``os.write``), and nothing in the executor registers an ``atexit`` handler.  (The launcher's
    own processes leave through ``mpilauncher.cli.leave``, which also runs ``atexit`` and
    MPI_Finalize; the executor imports nothing of the package.)
    """
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):
            pass  # a closed or broken stream: nothing to tell it with
    os._exit(status)


if __name__ == "__main__":
    leave(serve())
