"""The task watchdog, with real processes: a launcher killed by SIGKILL takes its tasks with it.

A small "launcher" script starts a :class:`Watchdog`, spawns tasks as the
agent does (``posix_spawn``, ``setsid=True``), prints the pids and sleeps;
the tests kill it and look at what is left.  This process becomes a child
subreaper for each test, so the orphans land here and are reaped (this VM's
init never reaps, and zombies would look like live process groups).
"""

from __future__ import annotations

import ctypes
import json
import os
import select
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import pytest

from mpilauncher.execution import watchdog
from tests.conftest import launcher_env

GRACE = 0.3
PR_SET_CHILD_SUBREAPER = 36
SLEEP = "sleep 60"
DEAF = "trap '' TERM; sleep 60"  # ignores SIGTERM, only SIGKILL ends it

LAUNCHER = r"""
import json, os, sys, time
from mpilauncher.execution.watchdog import Watchdog

spec = json.loads(sys.argv[1])
dog = Watchdog.start(grace=spec["grace"])
quiet = [
    (os.POSIX_SPAWN_OPEN, 0, os.devnull, os.O_RDONLY, 0),
    (os.POSIX_SPAWN_OPEN, 1, os.devnull, os.O_WRONLY, 0),
    (os.POSIX_SPAWN_DUP2, 1, 2),
]
tasks = []
for command in spec["watched"] + spec["unwatched"]:
    pid = os.posix_spawn("/bin/sh", ["/bin/sh", "-c", command], os.environ, file_actions=quiet, setsid=True)
    tasks.append(pid)
    dog.watch(pid)
dog.flush()
for pid in tasks[len(spec["watched"]):]:
    dog.unwatch(pid)
dog.flush()
if spec["close"]:
    dog.close()
print(json.dumps({"watchdog": dog.pid, "tasks": tasks}), flush=True)
time.sleep(60)
"""


# -- looking at processes -------------------------------------------------------
def processes() -> Iterator[tuple[int, str, int, int]]:
    """(pid, state, ppid, pgid) of every process, from /proc."""
    for name in os.listdir("/proc"):
        if name.isdigit():
            try:
                stat = Path(f"/proc/{name}/stat").read_text()
            except OSError:
                continue
            state, ppid, pgid = stat[stat.rindex(")") + 2 :].split()[:3]
            yield int(name), state, int(ppid), int(pgid)


def live(state: str) -> bool:
    return state not in "ZX"


def group_alive(pgid: int) -> bool:
    """Any process of the group that is not a zombie."""
    return any(g == pgid and live(s) for _, s, _, g in processes())


def pid_alive(pid: int) -> bool:
    return any(p == pid and live(s) for p, s, _, _ in processes())


def reap_children(keep: set[int]) -> None:
    """Reap zombie children (orphans reparented here), except Popen's own."""
    me = os.getpid()
    for pid, state, ppid, _ in processes():
        if ppid == me and state == "Z" and pid not in keep:
            try:
                os.waitpid(pid, os.WNOHANG)
            except ChildProcessError:
                pass


def wait_until(condition: Callable[[], bool], timeout: float, keep: set[int] = frozenset()) -> bool:
    deadline = time.monotonic() + timeout
    while True:
        reap_children(keep)
        if condition():
            return True
        if time.monotonic() > deadline:
            return False
        time.sleep(0.01)


def ignores_term(pid: int) -> bool:
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return False
    mask = int(status.split("SigIgn:")[1].split()[0], 16)
    return bool(mask & (1 << (signal.SIGTERM - 1)))


def kill_group(pgid: int) -> None:
    try:
        os.killpg(pgid, signal.SIGKILL)
    except ProcessLookupError:
        pass


# -- fixtures ------------------------------------------------------------------
@pytest.fixture(autouse=True)
def subreaper() -> Iterator[None]:
    """Orphans of the killed launcher become our children, so they can be reaped (and counted gone)."""
    libc = ctypes.CDLL(None, use_errno=True)
    assert libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) == 0
    try:
        yield
    finally:
        libc.prctl(PR_SET_CHILD_SUBREAPER, 0, 0, 0, 0)
        wait_until(lambda: not any(p == os.getpid() for _, _, p, _ in processes()), 2.0)


@contextmanager
def launcher(
    tmp_path: Path, watched: Sequence[str], unwatched: Sequence[str] = (), close: bool = False
) -> Iterator[tuple[subprocess.Popen, int, list[int]]]:
    """Run the launcher script; yields it, its watchdog's pid and its tasks' pids; kills everything after."""
    script = tmp_path / "launcher.py"
    script.write_text(LAUNCHER)
    spec = {"grace": GRACE, "watched": list(watched), "unwatched": list(unwatched), "close": close}
    proc = subprocess.Popen(
        [sys.executable, str(script), json.dumps(spec)],
        stdout=subprocess.PIPE,
        text=True,
        env=launcher_env(),
        start_new_session=True,  # its own group, as under a terminal or mpiexec, so tests may kill that group
    )
    started: dict = {}
    try:
        assert select.select([proc.stdout], [], [], 20)[0], "the launcher script did not start"
        started = json.loads(proc.stdout.readline())
        yield proc, started["watchdog"], started["tasks"]
    finally:
        proc.kill()
        proc.wait()
        proc.stdout.close()
        for pgid in started.get("tasks", []):
            if group_alive(pgid):
                kill_group(pgid)
        if started and pid_alive(started["watchdog"]):
            os.kill(started["watchdog"], signal.SIGKILL)


def kill_launcher(proc: subprocess.Popen, group: bool = False) -> float:
    """SIGKILL the launcher as a crash would (or its whole process group); returns when."""
    when = time.monotonic()
    if group:
        os.killpg(proc.pid, signal.SIGKILL)
    else:
        proc.kill()
    proc.wait()
    return when


# -- tests ---------------------------------------------------------------------
@pytest.mark.parametrize("group", [False, True], ids=["kill-process", "kill-group"])
def test_tasks_die_with_a_killed_launcher(tmp_path: Path, group: bool) -> None:
    """``kill -9`` of the launcher, or of its whole process group: the watchdog has its own session."""
    with launcher(tmp_path, [SLEEP] * 3) as (proc, dog, tasks):
        assert all(group_alive(t) for t in tasks)
        assert os.getsid(dog) == dog
        kill_launcher(proc, group)
        assert wait_until(lambda: not any(group_alive(t) for t in tasks), 3.0)
        assert wait_until(lambda: not pid_alive(dog), 1.0), "the watchdog exits once its work is done"


def test_a_task_ignoring_sigterm_gets_sigkill_after_the_grace(tmp_path: Path) -> None:
    with launcher(tmp_path, [DEAF]) as (proc, _, [task]):
        assert wait_until(lambda: ignores_term(task), 1.0)
        killed = kill_launcher(proc)
        assert wait_until(lambda: not group_alive(task), 3.0)
        assert time.monotonic() - killed >= GRACE


def test_unwatched_groups_survive(tmp_path: Path) -> None:
    with launcher(tmp_path, [SLEEP], [SLEEP, SLEEP]) as (proc, dog, [watched, *unwatched]):
        kill_launcher(proc)
        assert wait_until(lambda: not group_alive(watched) and not pid_alive(dog), 3.0)
        assert all(group_alive(t) for t in unwatched)
        for pgid in unwatched:
            kill_group(pgid)


def test_close_lets_tasks_live_and_ends_the_watchdog(tmp_path: Path) -> None:
    with launcher(tmp_path, [SLEEP, SLEEP], close=True) as (proc, dog, tasks):
        assert not pid_alive(dog), "close() reaped it"
        kill_launcher(proc)
        time.sleep(GRACE + 0.2)
        assert all(group_alive(t) for t in tasks)


def test_the_watchdog_ignores_stop_signals_while_the_launcher_lives(tmp_path: Path) -> None:
    with launcher(tmp_path, [SLEEP, SLEEP]) as (proc, dog, tasks):
        for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGUSR1):
            os.kill(dog, signum)  # possibly before its main() ran: start() keeps them blocked till then
        time.sleep(0.2)
        assert pid_alive(dog)
        assert all(group_alive(t) for t in tasks)
        kill_launcher(proc)
        assert wait_until(lambda: not any(group_alive(t) for t in tasks), 3.0)


def test_only_the_launcher_holds_the_write_end(tmp_path: Path) -> None:
    with launcher(tmp_path, [SLEEP, SLEEP]) as (proc, dog, tasks):
        pipe = os.readlink(f"/proc/{dog}/fd/0")
        assert pipe.startswith("pipe:")

        def holders(pid: int) -> list[str]:
            found = []
            try:
                for fd in Path(f"/proc/{pid}/fd").iterdir():
                    try:
                        if os.readlink(fd) == pipe:
                            found.append(fd.name)
                    except OSError:
                        continue  # closed while we looked
            except OSError:
                return []  # the process ended while we looked
            return found

        assert len(holders(proc.pid)) == 1, "the launcher keeps the write end (and only that)"
        assert holders(dog) == ["0"]
        for pgid in tasks:
            for pid, _, _, group in processes():
                if group == pgid:
                    assert holders(pid) == []


def test_partial_lines_unwatch_and_dead_groups(tmp_path: Path) -> None:
    """The protocol itself: a line split across writes counts, one cut by EOF does not."""
    done = subprocess.Popen(["true"])
    done.wait()
    split, cut, forgotten = (subprocess.Popen(["sleep", "60"], start_new_session=True) for _ in range(3))
    read_end, write_end = os.pipe()
    dog = subprocess.Popen([sys.executable, "-I", "-S", watchdog.__file__, str(GRACE)], stdin=read_end)
    os.close(read_end)
    try:
        for chunk in (
            b"+%d\n+%d\n+" % (done.pid, forgotten.pid),  # an already-dead group is tolerated
            b"%d\nnonsense\n-%d\n+1\n" % (split.pid, forgotten.pid),
            b"+%d" % cut.pid,
        ):
            os.write(write_end, chunk)
            time.sleep(0.02)
        os.close(write_end)
        write_end = -1
        assert dog.wait(timeout=3) == 0
        assert split.wait(timeout=1) == -signal.SIGTERM
        assert cut.poll() is None and forgotten.poll() is None
    finally:
        if write_end >= 0:
            os.close(write_end)
        dog.kill()
        dog.wait()
        for task in (split, cut, forgotten):
            task.kill()
            task.wait()


def test_a_tagged_process_caught_in_an_exec_is_found_by_its_tag(monkeypatch) -> None:
    """What left its task's group is found by the tag in its environment; a process read in the middle
    of an exec (an empty environment until the new program's is set up) is read again, not missed."""
    tag = f"MPILAUNCHER_LANE=test-{os.getpid()}-{time.monotonic_ns()}"
    name, value = tag.split("=")
    process = subprocess.Popen(["sleep", "30"], env={**os.environ, name: value}, start_new_session=True)
    try:
        read = watchdog.environment
        first_reads: set[int] = set()

        def in_exec_at_first(pid: int) -> list[bytes]:
            if pid == process.pid and pid not in first_reads:
                first_reads.add(pid)
                return [b""]
            return read(pid)

        monkeypatch.setattr(watchdog, "environment", in_exec_at_first)
        assert watchdog.tagged_groups(tag.encode()) == [process.pid]
        assert first_reads == {process.pid}
    finally:
        process.kill()
        process.wait()
