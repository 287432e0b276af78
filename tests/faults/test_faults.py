"""Faults injected for real: timeouts, retries, deadlines, signals, kill -9 loops, bad tasks, a full disk.

The promise under test: whatever happens, the queuestate tells the truth, and
a resume finishes the sweep without running a completed task twice.
"""

from __future__ import annotations

import collections
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from mpilauncher.core.tasks import CoresSpec
from mpilauncher.persistence.store import load_state
from mpilauncher.report.joblog import read as read_joblog
from tests.conftest import (
    EXECUTOR_LOOPS,
    launcher_env,
    mounted_tmpfs,
    new_tag,
    process_state,
    recording_task,
    run_cli,
    tagged_pids,
    wait_for,
)  # fmt: skip


def launch(directory: Path, *args: str, **env: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "mpilauncher", *args], cwd=directory, env=launcher_env(**env),
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip


@pytest.mark.parametrize("executor", EXECUTOR_LOOPS)
def test_task_timeout_kills_the_whole_tree_even_if_it_ignores_sigterm(sweep_dir: Path, executor: str) -> None:
    tag = new_tag()
    (sweep_dir / "commandlines").write_text("sleep 30\ntrap '' TERM; sleep 30 & sleep 31\ntrue\n")
    began = time.monotonic()
    result = run_cli(["commandlines", "--workdir", "w", "--task-timeout", "1"], sweep_dir, MPL_TEST_TAG=tag,
                     MPILAUNCHER_EXECUTOR=executor)  # fmt: skip
    assert time.monotonic() - began < 15
    assert result.returncode == 1
    rows = {int(r["id"]): r for r in read_joblog(sweep_dir / "w" / "joblog")}
    assert rows[0]["status"] == rows[1]["status"] == "timeout" and rows[2]["status"] == "ok"
    assert int(rows[1]["exit"]) < 0
    assert tagged_pids(tag) == [], "the timed-out trees are gone"
    # The run's last line says what the joblog says (it said "killed by signal 15": a user walk).
    assert "failed: task 0 (line 1): timed out (killed by signal " in result.stderr, result.stderr
    assert "; task 1 (line 2): timed out (killed by signal " in result.stderr, result.stderr


def test_retries_rerun_a_failed_task_and_record_every_attempt(sweep_dir: Path) -> None:
    # fails twice, then works; the other always fails
    (sweep_dir / "commandlines").write_text(
        "n=$(cat count 2>/dev/null || echo 0); echo $((n+1)) > count; test $n -ge 2\nexit 7\n"
    )
    result = run_cli(["commandlines", "--workdir", "w", "--retries", "2"], sweep_dir)
    assert result.returncode == 1
    rows = read_joblog(sweep_dir / "w" / "joblog")
    attempts = collections.defaultdict(list)
    for row in rows:
        attempts[int(row["id"])].append((int(row["attempt"]), row["status"]))
    assert sorted(attempts[0]) == [(1, "failed"), (2, "failed"), (3, "ok")]
    assert sorted(attempts[1]) == [(1, "failed"), (2, "failed"), (3, "failed")]
    assert "# tasks completed: 1\n" in result.stdout and "tasks aborted: 1\n" in result.stdout


def test_max_runtime_stops_cleanly_and_resume_finishes(sweep_dir: Path) -> None:
    (sweep_dir / "commandlines").write_text(f"{recording_task(0.4)}\n" * 12)
    first = run_cli(["commandlines", "--workdir", "w", "--max-runtime", "1", "--grace", "0.1",
                     "--cores-per-node", "2"], sweep_dir)  # fmt: skip
    assert first.returncode == 4, first.stderr
    assert "reached --max-runtime of 1 s; resume with" in first.stderr
    second = run_cli(["--resume", "queuestate", "--cores-per-node", "2"], sweep_dir)
    assert second.returncode == 0
    ran = collections.Counter((sweep_dir / "ran").read_text().split())
    assert set(ran) == {str(i) for i in range(12)} and max(ran.values()) == 1


@pytest.mark.parametrize("signum", [signal.SIGUSR1, signal.SIGINT], ids=["USR1 early warning", "Ctrl-C"])
def test_usr1_and_ctrl_c_stop_like_sigterm(sweep_dir: Path, signum: int) -> None:
    (sweep_dir / "commandlines").write_text("sleep 5\n" * 4)
    proc = launch(sweep_dir, "commandlines", "--workdir", "w", "--grace", "0.2")
    deadline = time.monotonic() + 20
    while not (sweep_dir / "w" / "out1").exists():
        assert time.monotonic() < deadline
        time.sleep(0.05)
    proc.send_signal(signum)
    out, err = proc.communicate(timeout=20)
    assert proc.returncode == 128 + signum
    assert f"stopped by {signal.Signals(signum).name}" in err and "Launcherjob stopped" in out
    counts = load_state(sweep_dir / "queuestate", CoresSpec("fixed", 1)).ledger.counts()
    assert counts["running"] + counts["queued"] == 4


def test_ctrl_c_ends_the_run_even_with_a_task_stuck_in_the_kernel(sweep_dir: Path, frozen_fs: Path) -> None:
    """A task asleep in the kernel (a write to a hung file system: here a frozen one) outlives
    SIGKILL.  Ctrl-C used to print the final report and then hang for good in the executor's exit
    (seen: still there 40 s on, until the file system thawed); under Slurm the job then burns its
    allocation to the time limit.  Now the run ends within the grace and KILL_WAIT, names the task
    it left behind, and keeps it to run again on resume."""
    tag = new_tag()
    (sweep_dir / "commandlines").write_text(f"echo stuck > {frozen_fs}/file\nsleep 30\n")
    proc = launch(sweep_dir, "commandlines", "--workdir", "w", "--grace", "0.2", "--cores-per-node", "2",
                  MPL_TEST_TAG=tag)  # fmt: skip
    try:
        wait_for(lambda: "D" in map(process_state, tagged_pids(tag)) and (sweep_dir / "w" / "out1").exists(), 20,
                 "the stuck write and the other task")  # fmt: skip
        (stuck,) = [pid for pid in tagged_pids(tag) if process_state(pid) == "D"]
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=30)
    finally:
        proc.kill()
    assert proc.returncode == 128 + signal.SIGINT, err
    assert "Launcherjob stopped" in out
    assert f"mpilauncher: warning: task 0: its process {stuck} outlived SIGKILL by 5 s (state D," in err
    assert process_state(stuck) == "D", "left behind, as the warning says"
    counts = load_state(sweep_dir / "queuestate", CoresSpec("fixed", 1)).ledger.counts()
    assert counts["completed"] == 0 and counts["running"] + counts["queued"] == 2, "both run again on resume"


def test_resume_refuses_a_changed_commandlines_file_unless_forced(sweep_dir: Path) -> None:
    (sweep_dir / "commandlines").write_text("true\nexit 1\n")
    assert run_cli(["commandlines", "--workdir", "w"], sweep_dir).returncode == 1
    (sweep_dir / "commandlines").write_text("true\necho changed\n")
    refused = run_cli(["--resume", "queuestate", "--rerun-failed"], sweep_dir)
    assert refused.returncode == 2
    assert "changed since this sweep began" in refused.stderr and "--force-resume" in refused.stderr
    forced = run_cli(["--resume", "queuestate", "--rerun-failed", "--force-resume"], sweep_dir)
    assert forced.returncode == 1, "the queuestate's own command (exit 1) ran, not the edited line"
    # (a user walk: once forced, every later resume of the sweep was refused again, even one with
    # nothing to run; the file as it was forced is remembered, another edit is refused again)
    again = run_cli(["--resume", "queuestate", "--rerun-failed"], sweep_dir)
    assert again.returncode == 1 and "changed since" not in again.stderr, again.stderr
    (sweep_dir / "commandlines").write_text("true\necho changed twice\n")
    assert run_cli(["--resume", "queuestate", "--rerun-failed"], sweep_dir).returncode == 2


def test_a_resume_with_nothing_to_run_does_not_ask_whether_the_commandlines_changed(sweep_dir: Path) -> None:
    (sweep_dir / "commandlines").write_text("true\ntrue\n")
    assert run_cli(["commandlines", "--workdir", "w"], sweep_dir).returncode == 0
    (sweep_dir / "commandlines").write_text("true\necho changed\n")
    resumed = run_cli(["--resume", "queuestate"], sweep_dir)
    assert resumed.returncode == 0 and "changed since" not in resumed.stderr, resumed.stderr


def test_twenty_kill_9_at_random_instants_then_resume_loses_nothing(sweep_dir: Path) -> None:
    n = 500
    (sweep_dir / "commandlines").write_text("sleep 0.1 && echo PYL_ID >> ran\n" * n)
    kills = 0
    rng = random.Random(6)
    lives = [rng.uniform(0.2, 0.8) for _ in range(20)]  # how long each run lives before its kill
    # More work than the runs live in all, were their start-ups free: on a fast machine 300 tasks (7.5 s on 4
    # cores) were all done before the 20th kill (the runs live 10.4 s).
    assert n * 0.1 / 4 > sum(lives) + 2
    frozen: dict[int, int] = {}  # task -> runs it had when a state first called it completed
    args = ["commandlines", "--workdir", "w"]
    for life in lives:
        proc = launch(sweep_dir, *args, "--cores-per-node", "4")
        time.sleep(life)
        proc.kill()
        proc.wait(timeout=10)
        kills += 1
        if not (sweep_dir / "queuestate").exists():
            continue  # killed before its first snapshot: nothing started, start again
        args = ["--resume", "queuestate"]
        time.sleep(0.1)
        ledger = load_state(sweep_dir / "queuestate", CoresSpec("fixed", 1)).ledger
        ran = collections.Counter(int(x) for x in (sweep_dir / "ran").read_text().split()) if (
            sweep_dir / "ran").exists() else collections.Counter()  # fmt: skip
        for task_id in ledger.ids_in("completed"):
            frozen.setdefault(task_id, ran[task_id])
        if not ledger.ids_in("queued", "running"):
            break
    assert kills == 20, "the sweep must still be running at every kill"
    final = run_cli(["--resume", "queuestate", "--cores-per-node", "4"], sweep_dir)
    assert final.returncode == 0, final.stderr
    ran = collections.Counter(int(x) for x in (sweep_dir / "ran").read_text().split())
    assert set(ran) == set(range(n)), "every task ran"
    for task_id, runs in frozen.items():
        assert ran[task_id] == runs, f"task {task_id} ran again after its completion was recorded"
    assert f"# tasks completed: {n}" in final.stdout


@pytest.mark.parametrize("executor", EXECUTOR_LOOPS)
def test_awkward_tasks_are_all_accounted_for(sweep_dir: Path, executor: str) -> None:
    huge = "echo " + "x" * 200_000
    lines = [
        "sleep 30 & echo daemon started",  # leaves a background process behind
        "head -c 5000000 /dev/zero | tr '\\0' x",  # floods stdout
        "exec >&-; exec 2>&-; true",  # closes its output
        huge,  # too long for one exec argument: cannot even start
        "printf '\\377\\376' > /dev/null; echo bytes",
    ]
    (sweep_dir / "commandlines").write_bytes(("\n".join(lines) + "\n").encode() + b"echo caf\xe9\n")
    tag = new_tag()
    result = run_cli(["commandlines", "--workdir", "w"], sweep_dir, MPL_TEST_TAG=tag, MPILAUNCHER_EXECUTOR=executor)
    assert result.returncode == 1, result.stderr  # only the huge line fails
    rows = {int(r["id"]): r for r in read_joblog(sweep_dir / "w" / "joblog")}
    assert set(rows) == set(range(6))
    assert rows[3]["exit"] == "127"
    assert [rows[i]["status"] for i in (0, 1, 2, 4, 5)] == ["ok"] * 5
    assert (sweep_dir / "w" / "out1").stat().st_size == 5_000_000
    assert (sweep_dir / "w" / "out5").read_bytes() == b"caf\xe9\n"
    wait_for(lambda: not tagged_pids(tag), 5, "the background process left by task 0 to end with it")
    again = run_cli(["--resume", "queuestate", "--rerun-failed"], sweep_dir)
    assert again.returncode == 1 and "# tasks completed: 5" in again.stdout, "non-UTF-8 state round-trips"


@pytest.mark.skipif(os.geteuid() != 0, reason="mounting a small tmpfs needs root")
@pytest.mark.parametrize("executor", EXECUTOR_LOOPS)
def test_tasks_that_failed_on_a_full_workdir_are_told_its_file_system_is_full(sweep_dir: Path, executor: str) -> None:
    """The tasks' own writes filled the workdir's file system: they failed (exit 1, their own), and the
    end of the run named them with nothing about the disk (a user walk: 7 of 10 on a 1 MiB tmpfs); their
    exec<N>, written at the failure, were left empty in silence."""
    with mounted_tmpfs(sweep_dir / "disk", "size=1m") as disk:
        (sweep_dir / "commandlines").write_text("head -c 300000 /dev/zero; echo PYL_ID\n" * 10)
        result = run_cli(["commandlines", "--workdir", str(disk / "w"), "--queuestate", "qs"], sweep_dir,
                         MPILAUNCHER_EXECUTOR=executor)  # fmt: skip
        assert result.returncode == 1, result.stderr
        (line,) = [line for line in result.stderr.splitlines() if "of the sweep failed" in line]
        assert f"The file system of the workdir ({disk / 'w'}) is full: tasks that write there may have failed" in line
        scripts = {path.name: path.stat().st_size for path in (disk / "w").glob("exec[0-9]*")}
        assert 0 not in scripts.values(), f"an exec script the disk took no more of is left out, not empty: {scripts}"


@pytest.mark.skipif(os.geteuid() != 0, reason="mounting a small tmpfs needs root")
@pytest.mark.parametrize("executor", EXECUTOR_LOOPS)
def test_disk_full_mid_run_is_a_clear_error_and_the_state_stays_readable(sweep_dir: Path, executor: str) -> None:
    with mounted_tmpfs(sweep_dir / "disk", "size=400k") as disk:
        (sweep_dir / "commandlines").write_text("head -c 60000 /dev/zero; sleep 0.05\n" * 40)
        result = run_cli(["commandlines", "--workdir", str(disk / "w"), "--queuestate", str(disk / "qs")],
                         sweep_dir, MPILAUNCHER_EXECUTOR=executor)  # fmt: skip
        assert result.returncode == 3, (result.returncode, result.stderr)
        errors = [line for line in result.stderr.splitlines() if "error" in line]
        assert len(errors) == 1 and "No space left on device" in errors[0] and "Traceback" not in result.stderr
        subprocess.run(["rm", "-f", *map(str, (disk / "w").glob("out*"))], check=True)
        status = run_cli(["--status", str(disk / "qs")], sweep_dir)
        assert status.returncode == 0, status.stderr
        ledger = load_state(disk / "qs", CoresSpec("fixed", 1)).ledger
        assert len(ledger) == 40


def test_stops_before_the_slurm_jobs_time_limit(sweep_dir: Path) -> None:
    (sweep_dir / "commandlines").write_text("sleep 0.5\n" * 20)
    end = time.time() + 62.0  # the job ends in 62 s; with the default 60 s margin: stop after ~2 s
    began = time.monotonic()
    # --expected-time 0.01: no task is held back as too long to finish (the 90th percentile of a
    # loaded machine's runtimes can hold all back a moment before the deadline, exit 4 by that
    # path, tested in tests/e2e/test_time_limit.py), so the stop at the deadline is what runs here.
    result = run_cli(["commandlines", "--workdir", "w", "--grace", "0.1", "--cores-per-node", "2",
                      "--expected-time", "0.01"], sweep_dir,
                     SLURM_JOB_ID="777", SLURM_JOB_END_TIME=str(end))  # fmt: skip
    assert result.returncode == 4, result.stderr
    assert 1.5 < time.monotonic() - began < 10
    assert "stopping 60 s before the job's time limit" in result.stderr
    counts = load_state(sweep_dir / "queuestate", CoresSpec("fixed", 1)).ledger.counts()
    assert counts["completed"] >= 4 and counts["queued"] + counts["running"] > 0


@pytest.mark.parametrize("case", ["workdir is a file", "truncated queuestate"])
def test_more_bad_input_is_one_line_and_exit_2(sweep_dir: Path, case: str) -> None:
    (sweep_dir / "commandlines").write_text("true\n" * 3)
    if case == "workdir is a file":
        (sweep_dir / "w").write_text("not a directory\n")
        args, message = ["commandlines", "--workdir", "w"], "w: workdir exists and is not a directory"
    else:
        assert run_cli(["commandlines", "--workdir", "w0"], sweep_dir).returncode == 0
        whole = (sweep_dir / "queuestate").read_text()
        (sweep_dir / "queuestate").write_text(whole[:-40])  # the end mark and part of the last task
        args, message = ["--resume", "queuestate"], "queuestate: truncated queuestate"
    before = sorted(p.name for p in sweep_dir.iterdir())
    result = run_cli(args, sweep_dir)
    assert result.returncode == 2
    assert result.stderr.strip().count("\n") == 0 and message in result.stderr
    assert sorted(p.name for p in sweep_dir.iterdir()) == before


@pytest.mark.parametrize("executor", EXECUTOR_LOOPS)
def test_a_dead_executor_stops_its_tasks_and_the_run_with_one_line(sweep_dir: Path, executor: str) -> None:
    """An executor lane killed from outside (OOM killer, an admin): its orphaned tasks must not
    run on beside a resume, and the user gets one line and exit 3, not a traceback."""
    tag = new_tag()
    (sweep_dir / "commandlines").write_text("sleep 30\n" * 4)
    proc = launch(sweep_dir, "commandlines", "--workdir", "w", "--cores-per-node", "2", MPL_TEST_TAG=tag,
                  MPILAUNCHER_EXECUTOR=executor)  # fmt: skip
    deadline = time.monotonic() + 30
    while not all((sweep_dir / "w" / f"out{i}").exists() for i in (0, 1)):
        assert proc.poll() is None and time.monotonic() < deadline
        time.sleep(0.05)
    lanes = [int(p) for p in Path(f"/proc/{proc.pid}/task/{proc.pid}/children").read_text().split()
             if b"import executor" in Path(f"/proc/{p}/cmdline").read_bytes()]  # fmt: skip
    os.kill(lanes[0], signal.SIGKILL)
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 3, err
    assert err.count("\n") == 1 and "a task executor process" in err and "--resume" in err, err
    assert tagged_pids(tag) == [], "tasks of the dead executor (or of the others) outlived the launcher"
    ledger = load_state(sweep_dir / "queuestate", CoresSpec("fixed", 1)).ledger
    assert set(ledger.ids_in("completed")) == set()  # nothing claimed done that did not finish
