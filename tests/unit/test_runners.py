"""Task runners with real processes: in-process ProcessRunner and the executor lanes.

Standby starts (``after=``) and their retraction must behave the same in both.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import time
from pathlib import Path

import pytest

from mpilauncher.execution import watchdog
from mpilauncher.execution.executor import Executors
from mpilauncher.execution.processes import EXEC_FILE_AFTER, KILL_WAIT, TIMEOUT_GRACE, ProcessRunner
from mpilauncher.protocol import Ended, StartRequest
from tests.conftest import ROOT, kill_tagged, new_tag, process_state, recorded_exec, tagged_pids, wait_for

#: Each runner: in-process, executor lanes (their compiled loop where it is built), a lane's Python loop.
RUNNERS = ["inline", "one-lane", "two-lanes", "one-lane-python"]


def make_runner(kind: str, env: dict[str, str]):
    if kind == "inline":
        return ProcessRunner(guard=False, base_env=env)
    return Executors(env, lanes=2 if kind == "two-lanes" else 1, cores=2, compiled=not kind.endswith("python"))


@pytest.fixture(params=RUNNERS)
def runner(request):
    made = make_runner(request.param, dict(os.environ))
    yield made
    made.close()


def collect(runner, count: int, timeout: float = 20.0) -> list[Ended]:
    ended: list[Ended] = []
    deadline = time.monotonic() + timeout
    while len(ended) < count and time.monotonic() < deadline:
        ended += runner.wait(0.05)
    return ended


def request(task_id, command, output, changes=None, after=None, core=0, timeout=None, exec_file=None) -> StartRequest:
    """A start as the agent resolves it for its backend."""
    return StartRequest(
        task_id, command, (core,), after=after, output=output, env_changes=changes or {}, timeout=timeout,
        exec_file=exec_file,
    )  # fmt: skip


def exec_file(tmp_path: Path, task_id: int, text: str) -> tuple[str, str, str]:
    """What the agent gives a per-task start: exec<N>, its text, and the lane files that record it."""
    return str(tmp_path / f"exec{task_id}"), text, str(tmp_path / "exec.node0")


def start(runner, tmp_path: Path, task_id: int, command: str, after=None, core: int = 0):
    output, script = str(tmp_path / f"out{task_id}"), exec_file(tmp_path, task_id, command)
    return runner.start(request(task_id, command, output, {"PYL_ID": str(task_id)}, after, core, exec_file=script))


def test_a_standby_starts_when_its_predecessor_ends(runner, tmp_path):
    start(runner, tmp_path, 1, "sleep 0.3; date +%s.%N")
    start(runner, tmp_path, 2, "date +%s.%N", after=1)
    time.sleep(0.1)
    assert not (tmp_path / "out2").exists()  # still waiting
    ended = collect(runner, 2)
    assert [e.task_id for e in ended] == [1, 2]
    assert recorded_exec(tmp_path, 2) == "date +%s.%N"
    first_end = ended[0].start + ended[0].runtime
    assert ended[1].start >= first_end - 0.01
    assert float((tmp_path / "out2").read_text()) >= float((tmp_path / "out1").read_text())


def test_a_task_with_no_pidfd_is_reaped_by_polling(tmp_path, monkeypatch):
    """Out of file descriptors, ``pidfd_open`` fails: the task still runs and its end is still seen
    (looked for every turn), beside tasks that have a pidfd."""
    runner = ProcessRunner(guard=False, base_env=dict(os.environ))
    try:
        real = os.pidfd_open

        def out_of_fds(pid: int, flags: int = 0) -> int:
            raise OSError(24, "Too many open files")

        monkeypatch.setattr(os, "pidfd_open", out_of_fds)
        start(runner, tmp_path, 1, "sleep 0.2; echo one")
        monkeypatch.setattr(os, "pidfd_open", real)
        start(runner, tmp_path, 2, "sleep 0.1; echo two")
        ended = collect(runner, 2, timeout=10)
        assert sorted((e.task_id, e.exit_code) for e in ended) == [(1, 0), (2, 0)]
        assert (tmp_path / "out1").read_text() == "one\n"
        assert runner._unwatched == 0 and not runner._by_task
        # A wait with no timeout (an executor's) must still look: no pidfd will wake it.
        monkeypatch.setattr(os, "pidfd_open", out_of_fds)
        start(runner, tmp_path, 3, "true")
        began = time.monotonic()
        seen: list[Ended] = []
        while not seen and time.monotonic() - began < 5:
            seen = runner.wait(None)
        assert [e.task_id for e in seen] == [3] and time.monotonic() - began < 1
    finally:
        runner.close()


@pytest.mark.parametrize("kind", ["one-lane", "one-lane-python"])
def test_a_lane_out_of_file_descriptors_polls_its_tasks_and_recovers(kind, tmp_path):
    """The lanes' loops (the compiled one too) under a file-descriptor limit that leaves them no fd:
    a task's ``pidfd_open`` fails, the task runs all the same and its end is found by polling; once
    fds are free again the next task has its pidfd.  The limit is lowered on the lane process itself
    (``prlimit``) to its lowest free descriptor, so that any open fails, as in a lane out of fds."""
    import resource

    runner = make_runner(kind, dict(os.environ))
    try:
        lane = runner.pids[0]
        start(runner, tmp_path, 1, "true")  # the lane's exec-record files are opened: its fds are all there
        assert [e.exit_code for e in collect(runner, 1)] == [0]

        def pidfds() -> list[str]:
            fds = Path(f"/proc/{lane}/fd")
            return [n for n in os.listdir(fds) if "pidfd" in os.readlink(fds / n)]

        used = {int(n) for n in os.listdir(f"/proc/{lane}/fd")}
        soft, hard = resource.prlimit(lane, resource.RLIMIT_NOFILE)
        resource.prlimit(lane, resource.RLIMIT_NOFILE, (min(set(range(len(used) + 1)) - used), hard))
        try:
            start(runner, tmp_path, 2, "sleep 0.3; echo two")
            runner.flush()
            time.sleep(0.15)
            assert pidfds() == []  # running, unwatched
            ended = collect(runner, 1, timeout=10)
        finally:
            resource.prlimit(lane, resource.RLIMIT_NOFILE, (soft, hard))
        assert [(e.task_id, e.exit_code) for e in ended] == [(2, 0)]
        assert (tmp_path / "out2").read_text() == "two\n" and ended[0].runtime < 3.0
        start(runner, tmp_path, 3, "sleep 0.3")
        runner.flush()
        wait_for(lambda: len(pidfds()) == 1, timeout=10, what="the next task's pidfd")
        assert [(e.task_id, e.exit_code) for e in collect(runner, 1)] == [(3, 0)]
    finally:
        runner.close()


def test_a_standby_behind_a_task_that_already_ended_starts_at_once(runner, tmp_path):
    start(runner, tmp_path, 1, "true")
    assert [e.task_id for e in collect(runner, 1)] == [1]
    start(runner, tmp_path, 2, "true", after=1)
    assert [e.task_id for e in collect(runner, 1)] == [2]


def test_a_retracted_standby_never_runs(runner, tmp_path):
    start(runner, tmp_path, 1, "sleep 0.3")
    start(runner, tmp_path, 2, f"touch {tmp_path}/ran", after=1)
    runner.retract(2)
    ended = collect(runner, 1)
    assert [e.task_id for e in ended] == [1]
    assert runner.retracted == [2]
    assert collect(runner, 1, timeout=0.3) == []
    assert not (tmp_path / "out2").exists() and not (tmp_path / "ran").exists()
    assert recorded_exec(tmp_path, 2) is None  # exec scripts only for tasks that started


def test_retracting_a_started_standby_changes_nothing(runner, tmp_path):
    start(runner, tmp_path, 1, "true")
    start(runner, tmp_path, 2, "sleep 0.2", after=1)
    ended = collect(runner, 1)
    runner.retract(2)
    ended += collect(runner, 1)
    assert [e.task_id for e in ended] == [1, 2] and ended[1].exit_code == 0
    assert runner.retracted == []


def test_stop_drops_standbys_and_ends_running_tasks(runner, tmp_path):
    start(runner, tmp_path, 1, "sleep 30")
    start(runner, tmp_path, 2, f"touch {tmp_path}/ran", after=1)
    assert runner.wait(0.1) == []  # (sends the requests to the executor)
    ended = runner.stop_all(1.0)
    assert [e.task_id for e in ended] == [1] and ended[0].exit_code < 0
    assert collect(runner, 1, timeout=0.3) == []
    assert not (tmp_path / "out2").exists() and not (tmp_path / "ran").exists()


@pytest.mark.parametrize("compiled", [True, False], ids=["compiled", "python"])
def test_lanes_are_separate_processes_chosen_by_first_core(compiled, tmp_path):
    runner = Executors(dict(os.environ), lanes=2, cores=4, compiled=compiled)
    try:
        assert runner.lanes == 2
        for task_id, core in enumerate([0, 1, 2, 3]):
            start(runner, tmp_path, task_id, "echo $PPID", core=core)
        assert len(collect(runner, 4)) == 4
        parents = [(tmp_path / f"out{i}").read_text().strip() for i in range(4)]
        assert parents[0] == parents[1] != parents[2] == parents[3]
    finally:
        runner.close()


def test_lanes_never_outnumber_cores():
    runner = Executors(dict(os.environ), lanes=8, cores=3)
    try:
        assert runner.lanes == 3
    finally:
        runner.close()


@pytest.mark.parametrize("wait", [30 * 86400.0, 1e300, float("inf")])
def test_waits_and_task_timeouts_beyond_what_epoll_takes(runner, tmp_path, wait):
    """--task-timeout 30-00:00:00 (beyond epoll's 2**31 ms) and waits as long: a task still ends and is seen."""
    output = str(tmp_path / "out1")
    runner.start(request(1, "sleep 0.2", output, timeout=30 * 86400.0))
    ended: list[Ended] = []
    deadline = time.monotonic() + 20
    while not ended and time.monotonic() < deadline:
        ended = runner.wait(wait)
    assert [(e.task_id, e.exit_code, e.timed_out) for e in ended] == [(1, 0, False)]


# -- what a task leaves behind ----------------------------------------------
def tagged(runner, tmp_path: Path, task_id: int, command: str, tag: str):
    """Start ``command`` with ``MPL_TEST_TAG=tag`` in its environment, so its processes can be found."""
    output, script = str(tmp_path / f"out{task_id}"), exec_file(tmp_path, task_id, command)
    changes = {"PYL_ID": str(task_id), "MPILAUNCHER_TASK_ID": str(task_id), "MPL_TEST_TAG": tag}
    return runner.start(request(task_id, command, output, changes, exec_file=script))


@pytest.fixture
def tag():
    made = new_tag()
    yield made
    kill_tagged(made)


def keep_waiting(runner, condition, timeout: float = 20.0, what: str = "a condition") -> list[Ended]:
    """Drive the runner (an in-process one works only inside wait) until ``condition`` holds."""
    ended: list[Ended] = []
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        ended += runner.wait(0.05)
    return ended


def test_a_background_child_that_ignores_sigterm_is_counted_and_killed(runner, tmp_path, tag):
    tagged(runner, tmp_path, 1, "trap '' TERM; sleep 300 & exit 0", tag)
    ended = collect(runner, 1)
    assert [(e.task_id, e.exit_code, e.leftovers) for e in ended] == [(1, 0, 1)]
    began = time.monotonic()
    keep_waiting(runner, lambda: not tagged_pids(tag), what="the leftover to be killed")
    assert time.monotonic() - began > 1.0, "it had its grace (SIGTERM first: ignored here)"


def test_a_task_that_leaves_nothing_says_so(runner, tmp_path, tag):
    tagged(runner, tmp_path, 1, "sleep 0.1 & wait", tag)
    assert [(e.task_id, e.leftovers) for e in collect(runner, 1)] == [(1, 0)]


@pytest.mark.parametrize("compiled", [True, False], ids=["compiled", "python"])
def test_escaped_daemons_are_ended_with_their_task_by_executors(compiled, tmp_path, tag):
    """A subreaper executor finds what left the task's process group and session, however deep."""
    runner = Executors(dict(os.environ), lanes=1, cores=2, compiled=compiled)
    try:
        tagged(runner, tmp_path, 1, "setsid sleep 300 & (setsid sh -c 'sleep 300' &); exit 3", tag)
        ended = collect(runner, 1)
        assert [e.exit_code for e in ended] == [3]
        assert ended[0].leftovers >= 2, "sleep, and sh -c (with its sleep, once it has forked it)"
        keep_waiting(runner, lambda: not tagged_pids(tag), 10, "the daemons to end at SIGTERM")
    finally:
        runner.close()


def test_an_environment_read_in_the_middle_of_an_exec_is_read_again(monkeypatch):
    """A leftover caught between setsid() and its program's exec reads an empty environment (the new
    one is not set up yet): it is read again until it is there, not taken for nobody's."""
    reads = iter([[b""], [b""], [b"MPILAUNCHER_TASK_ID=7", b""]])
    monkeypatch.setattr(watchdog, "environment", lambda pid: next(reads))
    assert watchdog.settled_environment(os.getpid()) == [b"MPILAUNCHER_TASK_ID=7", b""]


def test_an_environment_that_cannot_be_read_is_not_waited_for(monkeypatch):
    """A live process whose environment cannot be read at all (a set-uid program's, for a user) is in no
    exec: nothing to wait for, unlike an empty read."""
    reads = []
    monkeypatch.setattr(watchdog, "environment", lambda pid: reads.append(pid) or [])
    began = time.monotonic()
    assert watchdog.settled_environment(os.getpid()) == []
    assert reads == [os.getpid()] and time.monotonic() - began < watchdog.EXEC_WAIT


def test_an_environment_empty_for_good_costs_one_short_wait(tmp_path):
    """``env -i``: nothing to wait for; the wait is bounded, and ends at once for a process that is gone."""
    process = subprocess.Popen(["env", "-i", "sleep", "30"])
    try:
        cmdline = Path(f"/proc/{process.pid}/cmdline")
        wait_for(lambda: cmdline.read_bytes().startswith(b"sleep\0"), 10, "the exec of sleep")
        began = time.monotonic()
        assert not any(watchdog.settled_environment(process.pid))
        assert watchdog.EXEC_WAIT <= time.monotonic() - began < watchdog.EXEC_WAIT + 1.0
    finally:
        process.kill()
        process.wait()
    began = time.monotonic()
    assert watchdog.settled_environment(process.pid) == [] and time.monotonic() - began < watchdog.EXEC_WAIT


def test_the_inline_runner_ends_escaped_daemons_when_it_closes(tmp_path, tag):
    runner = ProcessRunner(guard=False, base_env=dict(os.environ))
    try:
        command = f"setsid sh -c 'touch {tmp_path}/ready; exec sleep 300' & until [ -e {tmp_path}/ready ]; do :; done"
        tagged(runner, tmp_path, 1, command, tag)
        assert [e.leftovers for e in collect(runner, 1)] == [0], "it left the group: not seen at the task's end"
        assert tagged_pids(tag), "...and runs on until the runner closes"
    finally:
        runner.close()
    wait_for(lambda: not tagged_pids(tag), 10, "the daemon to end once the runner has closed")


@pytest.mark.parametrize("compiled", [True, False], ids=["compiled", "python"])
def test_a_running_tasks_own_daemon_is_left_alone_until_the_task_ends(compiled, tmp_path, tag):
    """Orphans are adopted (and reaped) while their task runs, but only ended with it."""
    runner = Executors(dict(os.environ), lanes=1, cores=2, compiled=compiled)
    try:
        command = f"(setsid sh -c 'sleep 1.5; echo alive > {tmp_path}/flag' &); sleep 2.5; cat {tmp_path}/flag"
        tagged(runner, tmp_path, 1, command, tag)
        ended = collect(runner, 1)
        assert [(e.exit_code, e.leftovers) for e in ended] == [(0, 0)]
        assert (tmp_path / "out1").read_text() == "alive\n"
    finally:
        runner.close()


def test_stop_all_ends_running_tasks_and_what_they_left(runner, tmp_path, tag):
    tagged(runner, tmp_path, 1, "(trap '' TERM; setsid sleep 300 &); trap '' TERM; sleep 300 & sleep 300", tag)
    keep_waiting(runner, lambda: len(tagged_pids(tag, b"sleep 300")) >= 4, what="the task and its daemons")
    ended = runner.stop_all(0.5)
    assert [e.task_id for e in ended] == [1]
    if isinstance(runner, Executors):  # the inline runner ends what left the group when it closes
        wait_for(lambda: not tagged_pids(tag), 10, "everything of the stopped task to end")
    runner.close()
    wait_for(lambda: not tagged_pids(tag), 10, "nothing to be left once the runner has closed")


@pytest.mark.parametrize("kind", ["inline", "one-lane", "one-lane-python"])
def test_a_stop_gives_up_on_a_task_that_outlives_sigkill(kind, frozen_fs, tmp_path, tag, capfd):
    """A task stuck in the kernel (here a write to a frozen file system; on a cluster, a hung Lustre
    or NFS mount) cannot be killed.  A stop waits KILL_WAIT s for it after SIGKILL, then reports it
    ended by SIGKILL and says, naming it, that it is left behind -- rather than waiting for good:
    a lane that waited kept the agent in its reap, and the launcher never exited (the job then
    burns its allocation to the time limit)."""
    runner = make_runner(kind, dict(os.environ))
    try:
        tagged(runner, tmp_path, 1, f"echo stuck > {frozen_fs}/file", tag)
        keep_waiting(runner, lambda: [p for p in tagged_pids(tag) if process_state(p) == "D"], what="the stuck write")
        (stuck,) = tagged_pids(tag)
        began = time.monotonic()
        ended = runner.stop_all(0.2)
        took = time.monotonic() - began
        assert [(e.task_id, e.exit_code) for e in ended] == [(1, -signal.SIGKILL)]
        assert KILL_WAIT <= took < KILL_WAIT + 10
        closing = time.monotonic()
        runner.close()  # returns, and soon: what was left behind is no leftover to sweep (and wait for) again
        assert time.monotonic() - closing < KILL_WAIT
        message = [line for line in capfd.readouterr().err.splitlines() if "outlived SIGKILL" in line]
        assert message == [
            f"mpilauncher: warning: task 1: its process {stuck} outlived SIGKILL by {KILL_WAIT:g} s (state D,"
            " uninterruptible sleep: a hung file system?); left behind, it ends when the kernel lets it"
        ]
        assert process_state(stuck) == "D", "left behind, as said (it ends once the file system thaws)"
    finally:
        runner.close()


@pytest.mark.parametrize("kind", ["inline", "one-lane", "one-lane-python"])
def test_a_task_past_its_timeout_that_outlives_sigkill_is_given_up_and_the_next_one_starts(
    kind, frozen_fs, tmp_path, tag, capfd
):
    """At its --task-timeout a task gets SIGTERM, a grace, SIGKILL; one asleep in the kernel outlives it
    and held its cores for good (nothing behind it ever started, the sweep never ended).  KILL_WAIT s
    after the SIGKILL it is given up (ended by SIGKILL, timed out, named on stderr) and the standby
    behind it starts on its cores.  Once the file system is back, a lane reaps it."""
    runner = make_runner(kind, dict(os.environ))
    try:
        command = f"echo stuck > {frozen_fs}/file"
        changes = {"PYL_ID": "1", "MPILAUNCHER_TASK_ID": "1", "MPL_TEST_TAG": tag}
        began = time.monotonic()
        runner.start(
            request(1, command, str(tmp_path / "out1"), changes, timeout=0.3, exec_file=exec_file(tmp_path, 1, command))
        )
        keep_waiting(runner, lambda: tagged_pids(tag), what="the stuck task")
        (stuck,) = tagged_pids(tag)
        start(runner, tmp_path, 2, "echo next", after=1)
        ended = collect(runner, 2, timeout=30)
        assert [(e.task_id, e.exit_code, e.timed_out) for e in ended] == [(1, -signal.SIGKILL, True), (2, 0, False)]
        assert 0.3 + TIMEOUT_GRACE + KILL_WAIT <= time.monotonic() - began < 0.3 + TIMEOUT_GRACE + KILL_WAIT + 10
        assert (tmp_path / "out2").read_text() == "next\n"
        assert f"mpilauncher: warning: task 1: its process {stuck} outlived SIGKILL" in capfd.readouterr().err
        subprocess.run(["fsfreeze", "--unfreeze", str(frozen_fs)], check=True)  # the file system is back
        start(runner, tmp_path, 3, "sleep 1.5")  # (a lane looks at its children while tasks run)
        assert [e.exit_code for e in collect(runner, 1)] == [0]
        if kind != "inline":  # (its own child then: a zombie until the launcher exits, as any other)
            assert process_state(stuck) == "", "a lane reaps what it left behind once it ends"
    finally:
        runner.close()


def command_line(pid: int) -> bytes:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as argv:
            return argv.read()
    except OSError:
        return b""


@pytest.mark.parametrize("kind", ["inline", "one-lane", "one-lane-python"])
def test_a_task_asleep_in_the_kernel_for_long_is_named_once_and_again_when_it_wakes(
    kind, frozen_fs, tmp_path, tag, capfd
):
    """A write to a hung file system neither ends nor progresses, and the sweep stalls behind it with
    nothing to tell why.  A process of a task (here the shell's child) in one uninterruptible sleep for
    MPILAUNCHER_STUCK_AFTER s (1 here, 600 by default) is named on stderr, once, with its node; and
    once more when it wakes.  A task asleep interruptibly (``sleep``, state S) is never named."""
    runner = make_runner(kind, {**os.environ, "MPILAUNCHER_STUCK_AFTER": "1"})
    node, err = os.uname().nodename, []
    try:
        tagged(runner, tmp_path, 1, f"sh -c 'echo stuck > {frozen_fs}/file'; echo back", tag)
        tagged(runner, tmp_path, 2, "sleep 30", tag)

        def the_stuck_write():  # (the task's own shell may be in state D a moment too: at a fork)
            return [p for p in tagged_pids(tag) if process_state(p) == "D" and command_line(p).startswith(b"sh\0-c\0")]

        keep_waiting(runner, the_stuck_write, what="the stuck write")
        (stuck,) = the_stuck_write()

        def said(pattern: str) -> list[str]:
            err.extend(capfd.readouterr().err.splitlines())
            return [line for line in err if re.fullmatch(pattern, line)]

        named = (
            rf"mpilauncher: warning: task 1 on {re.escape(node)}: its process {stuck} \(sh\) has slept in the kernel"
            r" for \d+ s \(state D(, in \w+)?\) using no CPU: a hung file system or device\? No signal ends it until"
            r" the kernel lets it go"
        )
        keep_waiting(runner, lambda: said(named), what="the warning")
        assert collect(runner, 1, timeout=0.5) == []  # (looks 0.1 s apart: a second line would come now)
        assert len(said(named)) == 1 and len(said(".*slept in the kernel.*")) == 1, err
        subprocess.run(["fsfreeze", "--unfreeze", str(frozen_fs)], check=True)  # the file system is back
        ended = collect(runner, 1)
        assert [(e.task_id, e.exit_code) for e in ended] == [(1, 0)]
        assert (tmp_path / "out1").read_text() == "back\n"
        woke = rf"mpilauncher: warning: task 1 on {re.escape(node)}: its process {stuck} \(sh\) woke after \d+ s in the"
        woke += " kernel"
        keep_waiting(runner, lambda: said(woke), what="the line that says it woke")
        assert not said(".*task 2.*"), err
    finally:
        runner.close()


# -- starts that fail ----------------------------------------------------------
def started_or_ended(runner, result, count: int = 1) -> list[Ended]:
    """An in-process runner reports a failed spawn at once, executors on their next report."""
    return [result] if isinstance(result, Ended) else collect(runner, count)


def test_an_output_file_that_cannot_be_created_is_the_launchers_failure_not_the_tasks(runner, tmp_path):
    output = tmp_path / "gone" / "out1"  # the workdir was deleted (or is full, or read-only)
    result = runner.start(request(1, "touch ran", str(output), exec_file=exec_file(tmp_path, 1, "x")))
    (ended,) = started_or_ended(runner, result)
    assert ended.task_id == 1 and ended.not_started == f"{output}: No such file or directory"
    assert not (tmp_path / "exec1").exists() and not (tmp_path / "ran").exists()
    assert recorded_exec(tmp_path, 1) is None, "it did not start: no exec script recorded either"


def test_a_command_too_long_to_exec_is_the_tasks_own_failure_and_its_output_says_why(runner, tmp_path):
    """Exit 127 and an empty output, nothing saying why (a user walk: a 200,000-byte line; or a task of
    24,000 cores, whose MPILAUNCHER_CORES is longer than one variable may be)."""
    result = start(runner, tmp_path, 1, "echo " + "x" * 200_000)
    (ended,) = started_or_ended(runner, result)
    assert (ended.exit_code, ended.not_started) == (127, "")
    said = (tmp_path / "out1").read_text()
    assert said.startswith(
        "mpilauncher: cannot start this task: Argument list too long (its command is 200005 bytes and its environment "
    ), said
    assert "; the kernel takes at most 131072 bytes in one argument or variable, and " in said and said.endswith(
        " in all)\n"
    )


def test_a_standby_whose_start_fails_is_reported_after_its_predecessor(runner, tmp_path):
    start(runner, tmp_path, 1, "sleep 0.2")
    output = tmp_path / "gone" / "out2"
    runner.start(request(2, "true", str(output), after=1))
    ended = collect(runner, 2)
    assert [(e.task_id, bool(e.not_started)) for e in ended] == [(1, False), (2, True)]


@pytest.mark.parametrize("failure", ["output cannot be created", "command too long"])
def test_a_standby_sent_in_the_turn_its_predecessor_was_reaped_is_reported_after_it(tmp_path, failure):
    """An executor reads requests inside wait(): a standby whose predecessor was reaped earlier in
    the same turn (its end not reported yet) must still wait for that report, or the master gets
    the standby's news (a start that failed at once) before the end that promotes it, drops it,
    and waits for it forever."""
    runner = ProcessRunner(guard=False, base_env=dict(os.environ))
    requests, send = os.pipe()
    reported: list = []
    runner.add_reader(requests, lambda fd: (os.read(fd, 1), reported.append(start_two())))
    output = tmp_path / ("gone" if failure == "output cannot be created" else "") / "out2"
    command = "true" if failure == "output cannot be created" else "echo " + "x" * 200_000

    def start_two():
        return runner.start(request(2, command, str(output), after=1))

    try:
        start(runner, tmp_path, 1, "true")
        time.sleep(0.3)  # task 1 has ended: its pidfd is ready first, the request second
        os.write(send, b"x")
        ended = runner.wait(1.0)
        assert reported == [None], "not started at once: it waits for its predecessor's end to be returned"
        assert [e.task_id for e in ended] == [1, 2] and ended[1].exit_code == 127
    finally:
        runner.close()
        os.close(requests)
        os.close(send)


@pytest.mark.parametrize(("shared_by", "expected"), [(1, 4), (2, 2), (3, 1), (64, 1)])
def test_emulated_nodes_share_the_hosts_cpus_between_their_lanes(monkeypatch, shared_by, expected):
    """A lane per CPU of the node's share of the host: 64 emulated nodes on 4 CPUs get one lane each, not four
    (more executors than CPUs only contend for them); a real node (shared by 1) gets one a CPU."""
    from mpilauncher.runtime import agent as agent_module

    monkeypatch.setattr(agent_module, "allowed_cpus", lambda: (0, 1, 2, 3))
    made = agent_module.Agent("vnode0", 16, cpus_shared_by=shared_by)
    try:
        assert made.backend.lanes == expected
    finally:
        made.backend.close()


# -- exec<N>: for the tasks that fail or run a while; every script in the lane's record --------
def test_a_short_task_that_succeeds_leaves_no_exec_file_but_its_script_is_recorded(runner, tmp_path):
    for task_id in range(6):
        start(runner, tmp_path, task_id, f"echo {task_id}", core=task_id % 2)
    ended = collect(runner, 6)
    assert sorted((e.task_id, e.exit_code) for e in ended) == [(i, 0) for i in range(6)]
    assert not list(tmp_path.glob("exec[0-9]*")), "no exec<N> for a short task that succeeded"
    assert [recorded_exec(tmp_path, i) for i in range(6)] == [f"echo {i}" for i in range(6)]
    lanes = sorted(p.name for p in tmp_path.glob("exec.node0.*") if not p.name.endswith(".index"))
    assert 1 <= len(lanes) <= 2, f"one record file a lane, not one a task: {lanes}"


@pytest.mark.parametrize("command", ["exit 3", "kill -9 $$"])
def test_a_task_that_fails_gets_its_exec_file(runner, tmp_path, command):
    start(runner, tmp_path, 4, command)
    (ended,) = collect(runner, 1)
    assert ended.exit_code in (3, -9)
    assert (tmp_path / "exec4").read_text() == command, "sh exec<N> reruns a failed task by hand"


def test_a_task_that_fails_to_spawn_gets_its_exec_file(runner, tmp_path):
    command = "echo " + "x" * 200_000  # too long to exec
    (ended,) = started_or_ended(runner, start(runner, tmp_path, 5, command))
    assert ended.exit_code == 127 and (tmp_path / "exec5").read_text() == command


def test_a_task_still_running_gets_its_exec_file_while_it_runs(tmp_path):
    """One that hangs has its exec<N> for `sh exec<N>` by hand (here after 0.5 s, EXEC_FILE_AFTER by default)."""
    runner = ProcessRunner(guard=False, base_env=dict(os.environ), exec_file_after=0.5)
    try:
        started = time.monotonic()
        start(runner, tmp_path, 1, "sleep 30")
        start(runner, tmp_path, 2, "sleep 0.2", core=1)
        seen = None
        while time.monotonic() - started < 10 and seen is None:
            runner.wait(0.05)
            if (tmp_path / "exec1").exists():
                seen = time.monotonic() - started
        assert seen is not None and seen >= 0.5, f"exec1 after {seen} s"
        assert (tmp_path / "exec1").read_text() == "sleep 30", "written while the task runs"
        assert not (tmp_path / "exec2").exists(), "the short one that succeeded has none"
    finally:
        runner.close()


def test_a_task_that_succeeds_after_its_exec_time_keeps_its_exec_file(tmp_path):
    """The end decides when no wait() came between: a task that ran its time has exec<N> however it ended."""
    runner = ProcessRunner(guard=False, base_env=dict(os.environ), exec_file_after=0.2)
    try:
        start(runner, tmp_path, 1, "sleep 0.4")
        time.sleep(0.6)  # no wait() meanwhile: its end is the first the runner hears of it
        assert [e.task_id for e in collect(runner, 1)] == [1]
        assert (tmp_path / "exec1").read_text() == "sleep 0.4"
    finally:
        runner.close()


def test_the_default_exec_time_is_what_the_readme_says():
    assert EXEC_FILE_AFTER == 10.0
    assert "ran 10 seconds" in (ROOT / "README.md").read_text()


@pytest.mark.parametrize("kind", RUNNERS)
def test_a_tasks_environment_is_the_base_with_its_changes(kind, tmp_path):
    """Set, replace and remove variables; a value that is not UTF-8 (surrogate-escaped) comes through as bytes."""
    runner = make_runner(kind, {**os.environ, "MPL_KEPT": "kept", "MPL_REPLACED": "old", "MPL_GONE": "here"})
    try:
        value = b"caf\xe9".decode("utf-8", "surrogateescape")
        changes = {"MPL_NEW": "new", "MPL_REPLACED": "new too", "MPL_GONE": None, "MPL_BYTES": value}
        command = 'echo "$MPL_KEPT|$MPL_NEW|$MPL_REPLACED|${MPL_GONE-unset}|$MPL_BYTES|$MPILAUNCHER_LANE"'
        output = tmp_path / "out1"
        result = runner.start(request(1, command, str(output), changes))
        assert [e.exit_code for e in started_or_ended(runner, result)] == [0]
        *seen, lane = output.read_bytes().rstrip(b"\n").split(b"|")
        assert seen == [b"kept", b"new", b"new too", b"unset", b"caf\xe9"]
        assert lane, "every task carries its lane's tag (what it leaves behind is found by it)"
    finally:
        runner.close()


def test_a_signal_reaches_the_tasks_whole_group(runner, tmp_path):
    """``signal`` (the backend contract's K request): the task's process group gets it, children included."""
    start(runner, tmp_path, 1, "sleep 30 & sleep 30")
    time.sleep(0.3)  # both sleeps started
    began = time.monotonic()
    runner.signal(1, signal.SIGTERM)
    ended = collect(runner, 1, timeout=10)
    assert [(e.task_id, e.exit_code) for e in ended] == [(1, -signal.SIGTERM)]
    assert time.monotonic() - began < 5, "it ended at the signal, not after its 30 s"
