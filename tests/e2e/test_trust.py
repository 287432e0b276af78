"""Issue 10's promises, tried the way users broke them: nothing rerun, nothing lost, nothing left behind.

Each test here walks a path that the happy-path tests took for granted: a queuestate of the user's
own name, two launchers on one sweep, a broken stdout, a directory where nothing can be written.
"""

from __future__ import annotations

import collections
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from mpilauncher.outbox import STOP_DRAIN
from mpilauncher.persistence.lock import Holder
from tests.conftest import exec_text, launcher_env, recording_task, run_cli


def appending_sweep(directory: Path, n: int, seconds: float) -> None:
    """Tasks that append their id to ``ran`` once they have done their work (see recording_task)."""
    (directory / "commandlines").write_text(f"{recording_task(seconds)}\n" * n)


def ran_counts(directory: Path) -> collections.Counter:
    path = directory / "ran"
    return collections.Counter(int(x) for x in path.read_text().split()) if path.exists() else collections.Counter()


def nothing_left(directory: Path, state: str) -> bool:
    status = run_cli(["--status", state], directory)
    assert status.returncode == 0, status.stderr
    return "nothing left to run" in status.stdout


def run_script(directory: Path, body: str, timeout: float = 120) -> subprocess.CompletedProcess:
    """A PyLauncher-style user script, run as ``python script.py`` in ``directory``."""
    script = directory / "script.py"
    script.write_text("import mpilauncher as pylauncher\n" + textwrap.dedent(body))
    return subprocess.run([sys.executable, str(script)], cwd=directory, env=launcher_env(),
                          capture_output=True, text=True, timeout=timeout)  # fmt: skip


@pytest.mark.parametrize("state", ["mystate", "states/sweep.qs"])
def test_a_resume_chain_under_a_name_of_ones_own_keeps_writing_that_file(sweep_dir: Path, state: str) -> None:
    """Issue 10.1: ``--resume FILE`` wrote progress to ./queuestate, so every later resume of FILE
    ran again every task completed since the first stop."""
    n = 12
    appending_sweep(sweep_dir, n, 0.3)
    (sweep_dir / state).parent.mkdir(exist_ok=True)
    args = ["commandlines", "--queuestate", state, "--workdir", "w"]
    for _ in range(20):
        result = run_cli([*args, "--max-runtime", "0.8", "--grace", "0.05", "--cores-per-node", "2"], sweep_dir)
        assert result.returncode in (0, 4), result.stderr
        assert not (sweep_dir / "queuestate").exists(), "progress went to ./queuestate, not to " + state
        if result.returncode == 0:
            break
        assert f"--resume {state}" in result.stderr
        args = ["--resume", state]
    else:
        pytest.fail("twenty resumes did not finish twelve short tasks")
    assert nothing_left(sweep_dir, state)
    counts = ran_counts(sweep_dir)
    assert set(counts) == set(range(n)) and max(counts.values()) == 1, counts


def test_resume_classic_launcher_of_a_named_queuestate_keeps_writing_it(sweep_dir: Path) -> None:
    n = 10
    appending_sweep(sweep_dir, n, 0.3)
    first = run_script(
        sweep_dir,
        """
        try:
            pylauncher.ClassicLauncher("commandlines", queuestate="mystate", workdir="w", maxruntime=0.8,
                                       corespernode=2)
        except SystemExit:
            pass
    """,
    )
    assert "Traceback" not in first.stderr, first.stderr
    for _ in range(20):
        if nothing_left(sweep_dir, "mystate"):
            break
        again = run_script(
            sweep_dir,
            """
            try:
                pylauncher.ResumeClassicLauncher("mystate", maxruntime=0.8, corespernode=2)
            except SystemExit:
                pass
        """,
        )
        assert "Traceback" not in again.stderr, again.stderr
        assert not (sweep_dir / "queuestate").exists(), "progress went to ./queuestate, not to mystate"
    else:
        pytest.fail("twenty resumes did not finish ten short tasks")
    counts = ran_counts(sweep_dir)
    assert set(counts) == set(range(n)) and max(counts.values()) == 1, counts


def start(directory: Path, *args: str, **popen) -> subprocess.Popen:
    options = {"stdout": subprocess.PIPE, "stderr": subprocess.PIPE, "text": True, **popen}
    return subprocess.Popen([sys.executable, "-m", "mpilauncher", *args], cwd=directory, env=launcher_env(),
                            **options)  # fmt: skip


def wait_until(condition, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out waiting"
        time.sleep(0.02)


def test_a_second_launcher_on_a_running_sweep_is_refused_naming_the_holder(sweep_dir: Path) -> None:
    """Issue 10.2: a resume while the first run was alive ran every remaining task a second time."""
    appending_sweep(sweep_dir, 6, 1.0)
    first = start(sweep_dir, "commandlines", "--workdir", "w", "--cores-per-node", "2")
    wait_until(lambda: (sweep_dir / "w" / "out0").exists())
    for args in (["--resume", "queuestate"], ["commandlines", "--workdir", "w2"]):
        second = run_cli(args, sweep_dir)
        assert second.returncode == 2, second.stderr
        assert second.stderr.count("\n") == 1 and f"pid {first.pid} on " in second.stderr, second.stderr
        assert "in use by another mpilauncher" in second.stderr
    assert not (sweep_dir / "w2").exists()
    status = run_cli(["--status", "queuestate"], sweep_dir)
    assert f"in use: a launcher is running this sweep (pid {first.pid}" in status.stdout
    # A Slurm user walk: the last line said "N tasks to run: python -m mpilauncher --resume queuestate", a
    # command the lock refuses while the sweep runs; it says the tasks are under way instead.
    assert "--resume" not in status.stdout, status.stdout
    assert "tasks left, being run by the launcher above" in status.stdout, status.stdout
    _, err = first.communicate(timeout=60)
    assert first.returncode == 0, err
    counts = ran_counts(sweep_dir)
    assert set(counts) == set(range(6)) and max(counts.values()) == 1, counts
    assert not (sweep_dir / "queuestate.lock").exists(), "a finished run leaves no lock"


def test_two_new_runs_started_at_the_same_instant_one_runs_the_sweep(sweep_dir: Path) -> None:
    appending_sweep(sweep_dir, 4, 1.0)
    runs = [start(sweep_dir, "commandlines", "--workdir", f"w{i}", "--cores-per-node", "2") for i in range(2)]
    results = sorted((proc.wait(timeout=60), proc.stderr.read()) for proc in runs)
    assert [status for status, _ in results] == [0, 2], results
    assert "in use by another mpilauncher" in results[1][1]
    counts = ran_counts(sweep_dir)
    assert set(counts) == set(range(4)) and max(counts.values()) == 1, counts


def test_the_lock_of_a_killed_launcher_is_taken_over_by_the_resume(sweep_dir: Path) -> None:
    appending_sweep(sweep_dir, 6, 0.5)
    first = start(sweep_dir, "commandlines", "--workdir", "w", "--cores-per-node", "2")
    wait_until(lambda: (sweep_dir / "w" / "out0").exists())
    first.kill()
    first.wait(timeout=10)
    assert (sweep_dir / "queuestate.lock").exists()
    status = run_cli(["--status", "queuestate"], sweep_dir)
    assert "lock: left by a launcher that no longer runs" in status.stdout, status.stdout
    resumed = run_cli(["--resume", "queuestate", "--cores-per-node", "2"], sweep_dir)
    assert resumed.returncode == 0, resumed.stderr
    assert f"took over the lock of a launcher that no longer runs (pid {first.pid} on " in resumed.stderr
    assert set(ran_counts(sweep_dir)) == set(range(6))
    assert not (sweep_dir / "queuestate.lock").exists()


def test_a_lock_from_another_host_is_broken_only_on_request(sweep_dir: Path) -> None:
    appending_sweep(sweep_dir, 4, 0.3)
    first = run_cli(["commandlines", "--workdir", "w", "--max-runtime", "0.5", "--grace", "0"], sweep_dir)
    assert first.returncode == 4, first.stderr
    lock = Holder("c999.example.org", 4242, 17, "boot", "", "2026-11-30 09:00:00")
    (sweep_dir / "queuestate.lock").write_text(lock.to_text())
    before = sorted(p.name for p in sweep_dir.iterdir())
    refused = run_cli(["--resume", "queuestate"], sweep_dir)
    assert refused.returncode == 2 and refused.stderr.count("\n") == 1, refused.stderr
    assert "pid 4242 on c999.example.org" in refused.stderr and "--break-lock" in refused.stderr
    assert sorted(p.name for p in sweep_dir.iterdir()) == before, "a refused resume writes nothing"
    broken = run_cli(["--resume", "queuestate", "--break-lock"], sweep_dir)
    assert broken.returncode == 0, broken.stderr
    assert set(ran_counts(sweep_dir)) == set(range(4))


@pytest.mark.parametrize("where", ["missing directory", "read-only file system"])
def test_an_unwritable_queuestate_place_writes_nothing_and_the_fix_runs(sweep_dir: Path, where: str) -> None:
    """Issue 10.8: the workdir was created first, then the run failed, and the corrected rerun was
    refused because that empty workdir now existed."""
    appending_sweep(sweep_dir, 3, 0)
    place = sweep_dir / "place"
    if where == "read-only file system":
        place.mkdir()
        if subprocess.run(["mount", "-t", "tmpfs", "-o", "ro,size=64k", "tmpfs", str(place)]).returncode != 0:
            pytest.skip("cannot mount a read-only tmpfs here (needs root)")
    try:
        before = sorted(p.name for p in sweep_dir.iterdir())
        result = run_cli(["commandlines", "--workdir", "w", "--queuestate", "place/qs"], sweep_dir)
        assert result.returncode == 2, result.stderr
        said = " here: Read-only" if where == "read-only file system" else ": its folder place does not exist"
        assert result.stderr.count("\n") == 1 and f"place/qs: cannot write the queuestate{said}" in result.stderr
        assert sorted(p.name for p in sweep_dir.iterdir()) == before, "nothing written"
        fixed = run_cli(["commandlines", "--workdir", "w", "--queuestate", "qs"], sweep_dir)
        assert fixed.returncode == 0, fixed.stderr
    finally:
        if where == "read-only file system":
            subprocess.run(["umount", "-l", str(place)])


def test_debug_trace_piped_into_head_does_not_stop_the_sweep(sweep_dir: Path) -> None:
    """Issue 10.6: ``--debug job | head -3`` aborted the run at the next tick (BrokenPipeError, exit 3)."""
    appending_sweep(sweep_dir, 12, 0.1)
    proc = start(sweep_dir, "commandlines", "--workdir", "w", "--debug", "job", "--delay", "0.05",
                 "--cores-per-node", "2")  # fmt: skip
    for _ in range(3):
        proc.stdout.readline()
    proc.stdout.close()  # what `head -3` does after its third line
    err = proc.stderr.read()
    assert proc.wait(timeout=60) == 0, err
    assert err.count("cannot write to standard output") == 1 and "Traceback" not in err, err
    assert nothing_left(sweep_dir, "queuestate")
    assert set(ran_counts(sweep_dir)) == set(range(12))


def unread_pipe() -> tuple[int, int]:
    """A pipe that holds 4 KiB (a reader that does not read: ``| less`` not scrolled, a terminal paused)."""
    import fcntl

    read_end, write_end = os.pipe()
    fcntl.fcntl(write_end, 1031, 4096)  # F_SETPIPE_SZ: full after a few trace ticks, not 64 KiB of them
    return read_end, write_end


def test_a_reader_that_does_not_read_holds_up_nothing_and_gets_it_all_once_it_reads(sweep_dir: Path) -> None:
    """``--debug host+job | less`` not scrolled: the trace filled the pipe, the master's loop blocked in
    its write, and no task started until the reader read (a user walk: 90 of 300 done for 19 s)."""
    appending_sweep(sweep_dir, 40, 0.05)
    read_end, write_end = unread_pipe()
    try:
        proc = start(sweep_dir, "commandlines", "--workdir", "w", "--debug", "host+job", "--delay", "0.01",
                     "--cores-per-node", "2", stdout=write_end)  # fmt: skip
        os.close(write_end)
        state = sweep_dir / "queuestate"
        wait_until(lambda: state.exists() and nothing_left(sweep_dir, "queuestate"), timeout=60)  # nothing read
        assert proc.poll() is None, "a plain end waits for its reader, as any program does"
        with os.fdopen(read_end, "rb") as reader:
            trace = reader.read()
        assert proc.wait(timeout=30) == 0, proc.stderr.read()
    finally:
        if proc.poll() is None:
            proc.kill()
    assert b"Launcherjob run completed." in trace and b"tasks completed: 40" in trace, trace[-300:]
    assert set(ran_counts(sweep_dir)) == set(range(40))


def test_a_stop_signal_acts_at_once_and_the_launcher_ends_though_nothing_reads_its_output(sweep_dir: Path) -> None:
    """The same unread pipe: SIGTERM was not acted on until the reader read, as the loop sat in a write;
    under Slurm the job's KillWait then ended it with SIGKILL.  It stops at once now, and what it could
    not write is given STOP_DRAIN s."""
    appending_sweep(sweep_dir, 200, 0.1)
    read_end, write_end = unread_pipe()
    try:
        proc = start(sweep_dir, "commandlines", "--workdir", "w", "--debug", "host+job", "--delay", "0.01",
                     "--cores-per-node", "2", "--grace", "0.2", stdout=write_end)  # fmt: skip
        os.close(write_end)
        wait_until(lambda: len(ran_counts(sweep_dir)) >= 10, timeout=60)
        began = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 143
        took = time.monotonic() - began
        assert took < STOP_DRAIN + 5, took
        assert "stopped by SIGTERM; resume with" in proc.stderr.read()
    finally:
        if proc.poll() is None:
            proc.kill()
        os.close(read_end)
    status = run_cli(["--status", "queuestate"], sweep_dir)
    assert status.returncode == 0 and "nothing left to run" not in status.stdout


@pytest.mark.parametrize("redirect", [">&-", ">/dev/full"], ids=["stdout closed", "stdout on a full device"])
def test_a_closed_or_full_stdout_does_not_fail_the_sweep(sweep_dir: Path, redirect: str) -> None:
    appending_sweep(sweep_dir, 5, 0)
    command = f"{sys.executable} -m mpilauncher commandlines --workdir w --debug job {redirect}"
    result = subprocess.run(["sh", "-c", command], cwd=sweep_dir, env=launcher_env(), capture_output=True, text=True,
                            timeout=60)  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr and "Exception ignored" not in result.stderr, result.stderr
    assert set(ran_counts(sweep_dir)) == set(range(5))


def test_a_line_starting_with_a_dash_or_plus_is_a_command_not_shell_options(sweep_dir: Path) -> None:
    """Issue 10.9: ``/bin/sh -c`` without ``--`` read such a line as options (and differently from
    ``sh exec<N>``): the task died with "Illegal option" instead of running its line."""
    (sweep_dir / "commandlines").write_text("-x-not-a-command; echo PYL_ID >> ran\n+v; echo PYL_ID >> ran\n")
    result = run_cli(["commandlines", "--workdir", "w"], sweep_dir)
    assert result.returncode == 0, result.stderr
    assert sorted(ran_counts(sweep_dir)) == [0, 1], "the rest of each line ran"
    for task in (0, 1):
        assert "not found" in (sweep_dir / "w" / f"out{task}").read_text()
        (sweep_dir / f"again{task}").write_text(exec_text(sweep_dir / "w", task))
        by_hand = subprocess.run(["sh", f"again{task}"], cwd=sweep_dir, capture_output=True, text=True)
        assert by_hand.returncode == 0 and "not found" in by_hand.stderr, "its exec script runs it the same way"
    assert ran_counts(sweep_dir) == collections.Counter({0: 2, 1: 2})


def test_errors_met_through_the_api_name_keywords_not_command_line_flags(sweep_dir: Path) -> None:
    """Issue 11.6: a script's user set workdir=, not --workdir."""
    appending_sweep(sweep_dir, 2, 0)
    (sweep_dir / "w").mkdir()
    result = run_script(
        sweep_dir,
        """
        try:
            pylauncher.ClassicLauncher("commandlines", workdir="w")
        except pylauncher.LauncherException as err:
            print("caught:", err)
    """,
    )
    lines = [line for line in result.stderr.splitlines() if line.startswith("mpilauncher: error")]
    assert len(lines) == 1 and "choose another with workdir=" in lines[0], result.stderr
    assert " --" not in lines[0] and "caught: w: workdir already exists" in result.stdout


def test_break_lock_is_a_keyword_too(sweep_dir: Path) -> None:
    appending_sweep(sweep_dir, 2, 0)
    (sweep_dir / "queuestate.lock").write_text(Holder("c999", 1, 1, "b", "", "then").to_text())
    refused = run_script(
        sweep_dir,
        """
        try:
            pylauncher.ClassicLauncher("commandlines", workdir="w")
        except pylauncher.LauncherException:
            pass
    """,
    )
    assert "break_lock=True" in refused.stderr and "--break-lock" not in refused.stderr, refused.stderr
    broken = run_script(sweep_dir, 'pylauncher.ClassicLauncher("commandlines", workdir="w", break_lock=True)\n')
    assert broken.returncode == 0, broken.stderr
    assert set(ran_counts(sweep_dir)) == {0, 1}


def test_a_second_run_in_the_same_allocation_gets_a_workdir_of_its_own(sweep_dir: Path) -> None:
    """Issue 13: an interactive allocation (salloc, idev) runs two sweeps; PyLauncher refused the
    second because the default workdir pylauncher_tmp<jobid> existed."""
    (sweep_dir / "one").write_text("echo PYL_ID >> ran\n" * 2)
    (sweep_dir / "two").write_text("echo PYL_ID >> ran2\n" * 3)
    job = {"SLURM_JOB_ID": "4242", "SLURM_JOB_END_TIME": str(int(time.time()) + 3600)}  # (no squeue asked:
    # without a controller it waits out its 10 s)
    first = run_cli(["one", "--queuestate", "qs1"], sweep_dir, **job)
    second = run_cli(["two", "--queuestate", "qs2"], sweep_dir, **job)
    assert first.returncode == second.returncode == 0, second.stderr
    assert " .. workdir: " + str(sweep_dir / "pylauncher_tmp4242") + "\n" in first.stdout
    assert " .. workdir: " + str(sweep_dir / "pylauncher_tmp4242-2") + "\n" in second.stdout
    assert (sweep_dir / "pylauncher_tmp4242-2" / "joblog").exists()


@pytest.mark.parametrize("how", ["kill -TERM $$", "kill -HUP $$", "exit 143"])
def test_a_task_that_dies_of_a_stop_signal_of_its_own_fails_and_nothing_runs_twice(sweep_dir: Path, how: str) -> None:
    """A user walk: a task that kills itself with SIGTERM (or exits 143) while standbys wait behind it.
    Its end is held a moment (a batch system's stop may follow), and the standby its executor started
    on its core ended meanwhile: the launcher stopped with an internal InvalidTransition, and the
    resume ran that standby, which had completed, once more."""
    ran = sweep_dir / "ran"
    lines = [f"echo {i} >> {ran}" for i in range(4)] + [f"echo 4 >> {ran}; {how}"]
    lines += [f"echo {i} >> {ran}" for i in range(5, 12)]
    (sweep_dir / "commandlines").write_text("\n".join(lines) + "\n")
    result = run_cli(["commandlines", "--cores-per-node", "1", "-q"], sweep_dir)
    assert result.returncode == 1, result.stderr
    assert "internal" not in result.stderr and "task 4 (line 5)" in result.stderr, result.stderr
    assert ran_counts(sweep_dir) == collections.Counter(range(12))
    status = run_cli(["--status", "queuestate"], sweep_dir)
    assert "11 jobs: 0-3 5-11\n" in status.stdout and "aborted     1 jobs: 4\n" in status.stdout, status.stdout
    resumed = run_cli(["--resume", "queuestate"], sweep_dir)
    assert resumed.returncode in (0, 1), resumed.stderr
    assert ran_counts(sweep_dir) == collections.Counter(range(12)), "a resume runs no completed task again"
