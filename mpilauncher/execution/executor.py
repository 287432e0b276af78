"""The executor: a small process per agent that spawns and reaps the tasks.

Why a separate process: measured here, ``posix_spawn`` costs ~170 us in a
light Python process but ~450 us in one that has just been busy (the
launcher parsing, scheduling and journaling): the kernel treats a process by
its recent CPU use, and that doubles the cost of every start.  The executor
imports nothing but the standard library (``python -I -S <this file>``),
sleeps in ``epoll`` when it has nothing to do, and only spawns, reaps and
reports; the agent's bookkeeping runs beside it instead of in series with
it.  (2,000 ``true`` tasks: ~2,100/s through the executor against ~1,600/s
spawning in the launcher itself.)

It is also the tasks' watchdog: the tasks are its children, and when the
agent's end of the request pipe closes without ``BYE`` (the launcher died,
``kill -9`` included) it ends every task's process group (TERM, grace, KILL)
before it exits.  It ignores the stop signals the launcher handles itself.

Protocol, one line per message.  Agent -> executor, JSON arrays::

    ["S", id, command, output, {env changes; null removes}, [cpus], timeout|null]   start
    ["K", id, signum]                                                   signal a task's group
    ["STOP", grace]                                                     TERM all, KILL after grace
    ["BYE"]                                                             exit, leaving nothing running

Executor -> agent, text: ``E id exit start runtime T|-`` per ended task (T: it
was killed at its timeout), and
``STOPPED`` once a STOP is done.
"""

from __future__ import annotations

import json
import os
import select
import signal
import sys
import time

if __package__:
    from mpilauncher.execution.processes import Ended
    from mpilauncher.execution.watchdog import IGNORED
else:  # run as a script by the agent: the siblings are plain modules
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    from processes import Ended, ProcessRunner  # type: ignore[no-redef]
    from watchdog import IGNORED, _close_inherited, stop_groups  # type: ignore[no-redef]

WATCHDOG_GRACE = 2.0


class Executor:
    """The agent's handle; the same interface as :class:`ProcessRunner`."""

    def __init__(self, base_env: dict[str, str]) -> None:
        here = os.path.abspath(__file__)
        requests_read, self._requests = os.pipe()
        self._events, events_write = os.pipe()
        actions = [
            (os.POSIX_SPAWN_DUP2, requests_read, 0),
            (os.POSIX_SPAWN_DUP2, events_write, 1),
        ]
        try:
            self.pid = os.posix_spawn(
                sys.executable, [sys.executable, "-I", "-S", here], base_env, file_actions=actions, setsid=True,
                setsigmask=IGNORED,
            )  # fmt: skip
        finally:
            os.close(requests_read)
            os.close(events_write)
        self._epoll = select.epoll()
        self._epoll.register(self._events, select.EPOLLIN)
        self._wake_fds: set[int] = set()
        self._pending: list[bytes] = []
        self._tail = b""
        self._running: set[int] = set()
        self._stopped = False

    def __len__(self) -> int:
        return len(self._running)

    def add_wake_fd(self, fd: int) -> None:
        self._epoll.register(fd, select.EPOLLIN)
        self._wake_fds.add(fd)

    def start(self, task_id, command, changes, output, cpus=(), timeout=None) -> None:
        request = ["S", task_id, command, output, changes, list(cpus), timeout]
        self._pending.append(json.dumps(request).encode() + b"\n")
        self._running.add(task_id)

    def flush(self) -> None:
        if self._pending:
            data, self._pending = b"".join(self._pending), []
            view = memoryview(data)
            while view:
                view = view[os.write(self._requests, view) :]

    def signal(self, task_id: int, signum: int) -> None:
        if task_id in self._running:
            self._pending.append(json.dumps(["K", task_id, int(signum)]).encode() + b"\n")
            self.flush()

    def wait(self, timeout: float) -> list[Ended]:
        self.flush()
        ended: list[Ended] = []
        for fd, _ in self._epoll.poll(timeout if timeout > 0 else 0):
            if fd in self._wake_fds:
                try:
                    os.read(fd, 4096)
                except BlockingIOError:
                    pass
            else:
                ended.extend(self._read_events())
        return ended

    def stop_all(self, grace: float) -> list[Ended]:
        """TERM every task, KILL after ``grace``; returns how they ended."""
        if self._stopped:
            return []
        self._pending.append(json.dumps(["STOP", grace]).encode() + b"\n")
        self.flush()
        ended: list[Ended] = []
        deadline = time.monotonic() + grace + 30
        while not self._stopped and time.monotonic() < deadline:
            ready = select.select([self._events], [], [], 0.5)[0]
            if ready:
                ended.extend(self._read_events())
        return ended

    def close(self) -> None:
        if self._requests < 0:
            return
        if self._running and not self._stopped:
            self.stop_all(0.0)
        try:
            os.write(self._requests, b'["BYE"]\n')
        except OSError:
            pass
        os.close(self._requests)
        self._requests = -1
        try:
            os.waitpid(self.pid, 0)
        except ChildProcessError:
            pass
        self._epoll.close()
        os.close(self._events)

    def _read_events(self) -> list[Ended]:
        data = os.read(self._events, 1 << 16)
        if not data:
            raise OSError("the task executor died")
        lines = (self._tail + data).split(b"\n")
        self._tail = lines.pop()
        ended = []
        for line in lines:
            if line == b"STOPPED":
                self._stopped = True
                continue
            _, task_id, exit_code, start, runtime, timed_out = line.split()
            self._running.discard(int(task_id))
            ended.append(Ended(int(task_id), int(exit_code), float(start), float(runtime), timed_out == b"T"))
        return ended


# -- the executor process ---------------------------------------------------
def serve() -> int:
    for signum in IGNORED:
        signal.signal(signum, signal.SIG_IGN)
    signal.pthread_sigmask(signal.SIG_SETMASK, [])
    _close_inherited()  # hold none of the agent's other fds (MPI sockets): only the two pipes and stderr
    runner = ProcessRunner(guard=False)
    out = sys.stdout.fileno()
    state = {"tail": b"", "eof": False, "bye": False}

    def report(ended) -> None:
        if ended:
            text = "".join(
                f"E {e.task_id} {e.exit_code} {e.start!r} {e.runtime!r} {'T' if e.timed_out else '-'}\n" for e in ended
            )
            os.write(out, text.encode())

    def on_request(fd: int) -> None:
        data = os.read(fd, 1 << 16)
        if not data:
            state["eof"] = True
            return
        lines = (state["tail"] + data).split(b"\n")
        state["tail"] = lines.pop()
        early = []
        for line in lines:
            if not line:
                continue
            message = json.loads(line)
            kind = message[0]
            if kind == "S":
                _, task_id, command, output, changes, cpus, timeout = message
                started = runner.start(task_id, command, changes, output, tuple(cpus), timeout)
                if isinstance(started, Ended):
                    early.append(started)
            elif kind == "K":
                runner.signal(message[1], message[2])
            elif kind == "STOP":
                report(runner.stop_all(float(message[1])))
                os.write(out, b"STOPPED\n")
            elif kind == "BYE":
                state["bye"] = True
        report(early)

    runner.add_reader(0, on_request)
    while not state["eof"] and not state["bye"]:
        report(runner.wait(None))
    if not state["bye"]:  # the agent is gone: no task may outlive it
        stop_groups(runner.running_groups(), WATCHDOG_GRACE)
    return 0


if __name__ == "__main__":
    sys.exit(serve())
