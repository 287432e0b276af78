"""Stops and resumes: kill -9, SIGTERM, failed tasks, PyLauncher's own queuestate."""

from __future__ import annotations

import collections
import json
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

from mpilauncher.core.ledger import Ledger
from mpilauncher.core.tasks import CoresSpec, parse_commandlines
from mpilauncher.persistence.files import sha256_hex
from mpilauncher.persistence.queuestate import StateMeta
from mpilauncher.persistence.store import StateStore, journal_path
from mpilauncher.report.joblog import read as read_joblog
from tests.conftest import launcher_env, new_tag, run_cli, tagged_pids, wait_for

N_TASKS = 30


def appending_sweep(directory: Path, n: int = N_TASKS, seconds: float = 0.15) -> Path:
    """Tasks that append their id to ``ran`` when they finish: proof of what ran, and how often."""
    lines = [f"sleep {seconds} && echo PYL_ID >> ran" for _ in range(n)]
    path = directory / "commandlines"
    path.write_text("\n".join(lines) + "\n")
    return path


def start_launcher(directory: Path, *args: str, **env: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "mpilauncher", *args],
        cwd=directory,
        env=launcher_env(**env),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def journal_finishes(directory: Path) -> set[int]:
    """Task ids whose successful end reached the journal (what a resume must never rerun)."""
    path = directory / "queuestate.journal"
    if not path.exists():
        return set()
    done = set()
    for line in path.read_text().split("\n")[1:-1]:
        fields = line.split("\t")
        if fields[0] == "E" and fields[2] == "0":
            done.add(int(fields[1]))
    return done


def ran_counts(directory: Path) -> collections.Counter:
    path = directory / "ran"
    return collections.Counter(int(x) for x in path.read_text().split()) if path.exists() else collections.Counter()


def test_kill_9_then_resume_completes_every_task_without_rerunning_journaled_ones(sweep_dir: Path) -> None:
    appending_sweep(sweep_dir)
    proc = start_launcher(sweep_dir, "commandlines", "--workdir", "w", "--cores-per-node", "4")
    wait_for(lambda: len(journal_finishes(sweep_dir)) >= 6)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=10)
    journaled = journal_finishes(sweep_dir)
    time.sleep(0.4)  # the watchdog ends the killed launcher's tasks (see the next test)

    status = run_cli(["--status", "queuestate"], sweep_dir)
    assert status.returncode == 0, status.stderr
    assert "tasks to run: python -m mpilauncher --resume queuestate" in status.stdout

    result = run_cli(["--resume", "queuestate", "--cores-per-node", "4"], sweep_dir)
    assert result.returncode == 0, result.stderr
    assert f"# tasks completed: {N_TASKS}\n" in result.stdout, "statistics cover the whole sweep"
    counts = ran_counts(sweep_dir)
    assert set(counts) == set(range(N_TASKS)), "every task ran"
    for task_id in journaled:
        assert counts[task_id] == 1, f"task {task_id} completed before the kill and ran again"
    assert sum(c > 1 for c in counts.values()) <= 4, "only tasks running at the kill may run twice"
    resumed = {int(r["id"]) for r in read_joblog(sweep_dir / "w" / "joblog")}
    assert resumed == set(range(N_TASKS)), "the resumed run appends to the same joblog"
    final = run_cli(["--status", "queuestate"], sweep_dir).stdout
    assert f"completed  {N_TASKS} jobs: 0-{N_TASKS - 1}" in final


def test_a_resume_after_kill_9_counts_the_killed_runs_time_in_its_statistics(sweep_dir: Path) -> None:
    """A user walk: after a kill -9 the resumed run's "total running time" was its own alone while its
    aggregate was the whole sweep's: a speedup of 3.99 on 2 cores.  The killed run's time after its
    last snapshot is in its journal's last write; the report counted it, the resume did not."""
    appending_sweep(sweep_dir, 12, 0.3)
    proc = start_launcher(sweep_dir, "commandlines", "--workdir", "w", "--cores-per-node", "2")
    wait_for(lambda: len(journal_finishes(sweep_dir)) >= 6)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=10)
    records = [line.split("\t") for line in (sweep_dir / "queuestate.journal").read_text().split("\n")[1:-1]]
    starts = [float(r[2]) for r in records if r[0] == "S"]
    ends = [float(r[3]) + float(r[4]) for r in records if r[0] == "E"]
    killed_run = max(ends) - min(starts)
    time.sleep(0.4)  # (the watchdog ends the killed launcher's tasks)
    result = run_cli(["--resume", "queuestate", "--cores-per-node", "2"], sweep_dir)
    assert result.returncode == 0, result.stderr
    total = float(re.search(r"total running time: *([0-9.]+)", result.stdout).group(1))
    speedup = float(re.search(r"speedup *\t?: *([0-9.]+)", result.stdout).group(1))
    assert total >= killed_run + 0.9, f"the killed run's {killed_run:.2f} s (and 3 rounds of 0.3 s): {result.stdout}"
    assert speedup <= 2.0, f"2 cores run no more than 2 tasks at once: {result.stdout}"
    report = run_cli(["report", "queuestate"], sweep_dir)
    assert f"total running time: {total:6.2f}" in report.stdout or str(round(total, 2)) in report.stdout, (
        "the report and the final statistics agree"
    )


def test_tasks_do_not_outlive_a_launcher_killed_with_kill_9(sweep_dir: Path) -> None:
    tag = new_tag()
    (sweep_dir / "commandlines").write_text("sleep 30\n" * 3)
    proc = start_launcher(sweep_dir, "commandlines", "--workdir", "w", "--cores-per-node", "3", MPL_TEST_TAG=tag)
    wait_for(lambda: len(tagged_pids(tag, b"sh -c -- sleep 30")) == 3, what="the three tasks to run")
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=10)
    wait_for(lambda: not tagged_pids(tag), timeout=10, what="the killed launcher's tasks to end")


def test_sigterm_stops_cleanly_saves_state_and_resume_finishes(sweep_dir: Path) -> None:
    appending_sweep(sweep_dir, n=12, seconds=0.5)
    tag = new_tag()
    proc = start_launcher(sweep_dir, "commandlines", "--workdir", "w", "--cores-per-node", "2", "--grace", "0.1",
                          MPL_TEST_TAG=tag)  # fmt: skip
    wait_for(lambda: (sweep_dir / "w" / "out1").exists())
    time.sleep(0.1)
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=20)
    assert proc.returncode == 128 + signal.SIGTERM, err
    assert "stopped by SIGTERM; resume with: python -m mpilauncher --resume queuestate" in err
    assert "Launcherjob stopped: stopped by SIGTERM." in out
    state = (sweep_dir / "queuestate").read_text()
    assert "\nrunning\n0 " in state and "\nqueued\n" in state
    assert not (sweep_dir / "queuestate.journal").exists()
    assert tagged_pids(tag) == [], "no task outlives a stopped launcher"

    result = run_cli(["--resume", "queuestate"], sweep_dir)
    assert result.returncode == 0, result.stderr
    counts = ran_counts(sweep_dir)
    assert set(counts) == set(range(12)) and all(c == 1 for c in counts.values())


def test_a_resume_keeps_every_earlier_runs_completed_line_and_counts_its_runtimes(sweep_dir: Path) -> None:
    """A resume reads earlier runs' completed tasks without their commands and times, and copies their
    lines into its snapshots: the finished sweep's queuestate has each of them as it was, and the
    statistics count their runtimes (the longest task ran in the first run only)."""
    lines = ["sleep 0.9 && echo 0 >> ran", *(f"sleep 0.05 && echo {i} >> ran" for i in range(1, 60))]
    (sweep_dir / "commandlines").write_text("\n".join(lines) + "\n")
    proc = start_launcher(sweep_dir, "commandlines", "--workdir", "w", "--cores-per-node", "2", "--grace", "0.1")
    wait_for(lambda: len(journal_finishes(sweep_dir)) >= 12 and 0 in journal_finishes(sweep_dir))
    proc.send_signal(signal.SIGTERM)
    proc.communicate(timeout=20)
    before = (sweep_dir / "queuestate").read_text()
    completed = before.split("\ncompleted\n")[1].split("\nfailed\n")[0].split("\n")
    assert len(completed) >= 12 and completed[0].startswith("0 line=1 exit=0 start="), completed[:2]

    result = run_cli(["--resume", "queuestate", "--cores-per-node", "2"], sweep_dir)
    assert result.returncode == 0, result.stderr
    assert "# tasks completed: 60\n" in result.stdout
    longest = float(result.stdout.split("max runningtime:")[1].split()[0])
    assert longest >= 0.9, "the first run's longest task counts in the statistics"
    after = (sweep_dir / "queuestate").read_text()
    assert all(f"\n{line}\n" in after for line in completed), "each earlier completed line kept as it was"
    assert sorted(ran_counts(sweep_dir)) == list(range(60)) and max(ran_counts(sweep_dir).values()) == 1


def test_resume_reruns_failed_only_on_request(sweep_dir: Path) -> None:
    (sweep_dir / "commandlines").write_text("echo a >> ran_a\ntest -e flag && echo b >> ran_b\n")
    first = run_cli(["commandlines", "--workdir", "w"], sweep_dir)
    assert first.returncode == 1
    again = run_cli(["--resume", "queuestate"], sweep_dir)
    assert again.returncode == 1 and "tasks aborted: 1" in again.stdout
    assert not (sweep_dir / "ran_b").exists()
    (sweep_dir / "flag").touch()
    fixed = run_cli(["--resume", "queuestate", "--rerun-failed"], sweep_dir)
    assert fixed.returncode == 0, fixed.stdout
    assert "# tasks completed: 2\n" in fixed.stdout and "tasks aborted: 0\n" in fixed.stdout
    assert (sweep_dir / "ran_a").read_text() == "a\n" and (sweep_dir / "ran_b").read_text() == "b\n"


def test_resume_into_a_new_workdir(sweep_dir: Path) -> None:
    (sweep_dir / "queuestate").write_text("queued\n1: echo one\nrunning\n0: echo zero\ncompleted\n2: echo two\n")
    result = run_cli(["--resume", "queuestate", "--workdir", "w2"], sweep_dir)
    assert result.returncode == 0, result.stderr
    assert (sweep_dir / "w2" / "out0").read_text() == "zero\n"
    assert (sweep_dir / "w2" / "out1").read_text() == "one\n"
    assert not (sweep_dir / "w2" / "out2").exists(), "completed tasks are not rerun"
    assert "# tasks completed: 3\n" in result.stdout
    again = run_cli(["--resume", "queuestate", "--workdir", "w2"], sweep_dir)  # our snapshot of PyLauncher's file
    assert again.returncode == 0 and "# tasks completed: 3\n" in again.stdout, again.stderr


def test_resume_a_pylauncher_queuestate_with_core_counts(sweep_dir: Path) -> None:
    # PyLauncher's own format with cores="file": '<id>: N,command'
    (sweep_dir / "queuestate").write_text(
        "queued\n4: 2,echo $OMP_NUM_THREADS\nrunning\n3: 1,echo $OMP_NUM_THREADS\ncompleted\n0: 1,true\n"
    )
    result = run_cli(["--resume", "queuestate", "--cores", "file", "--cores-per-node", "2"], sweep_dir)
    assert result.returncode == 0, result.stderr
    work = next(p for p in sweep_dir.iterdir() if p.name.startswith("pylauncher_tmp"))
    assert (work / "out4").read_text() == "2\n" and (work / "out3").read_text() == "1\n"


def test_a_run_with_failed_tasks_names_them_and_the_rerun_it_prints_works_as_printed(sweep_dir: Path) -> None:
    """The end of a run with failures names the failed tasks (the first five: line, exit code or
    signal) and says how to see why and how to run them again; that command, run as printed (a
    queuestate whose name has a space), reruns those tasks and only them."""
    lines = ["echo ok >> ran_ok", *(f"test -e flag || exit {code}" for code in (3, 4, 5, 6, 7, 8)), "kill -9 $$"]
    (sweep_dir / "commandlines").write_text("\n".join(lines) + "\n")
    first = run_cli(["commandlines", "--workdir", "w", "--queuestate", "my state", "--quiet"], sweep_dir)
    assert first.returncode == 1
    said = [line for line in first.stderr.splitlines() if "failed:" in line]
    assert said == [
        "mpilauncher: 7 tasks of the sweep failed: task 1 (line 2): exit 3; task 2 (line 3): exit 4;"
        " task 3 (line 4): exit 5; task 4 (line 5): exit 6; task 5 (line 6): exit 7; and 2 more."
        " Why (their output's last lines): python -m mpilauncher report 'my state';"
        " run them again: python -m mpilauncher --resume 'my state' --rerun-failed"
    ], first.stderr
    report = said[0].split("Why (their output's last lines): ")[1].split(";")[0]
    shown = subprocess.run(report, shell=True, cwd=sweep_dir, env=launcher_env(), capture_output=True, text=True)
    assert shown.returncode == 0 and "7 failed" in shown.stdout, shown.stdout + shown.stderr
    (sweep_dir / "flag").touch()
    rerun = said[0].split("run them again: ")[1]
    again = subprocess.run(rerun, shell=True, cwd=sweep_dir, env=launcher_env(), capture_output=True, text=True)
    assert again.returncode == 1, again.stderr  # the kill -9 fails again, alone
    assert [line for line in again.stderr.splitlines() if "failed:" in line] == [
        "mpilauncher: 1 task of the sweep failed: task 7 (line 8): killed by signal 9."
        " Why (its output's last lines): python -m mpilauncher report 'my state';"
        " run it again: python -m mpilauncher --resume 'my state' --rerun-failed"
    ]
    assert "# tasks completed: 7\n" in again.stdout
    assert (sweep_dir / "ran_ok").read_text() == "ok\n"  # the task that succeeded did not run again


def test_a_later_job_of_a_chain_over_a_finished_sweep_names_its_failed_tasks(sweep_dir: Path) -> None:
    """The chain ends at a finished sweep (exit 0, nothing run); what failed earlier is still named."""
    (sweep_dir / "commandlines").write_text("true\nexit 5\n")
    first = run_cli(["commandlines", "--workdir", "w"], sweep_dir, MPILAUNCHER_CHAIN="1/3")
    assert first.returncode == 1, first.stderr
    later = run_cli(["--resume", "queuestate"], sweep_dir, MPILAUNCHER_CHAIN="2/3")
    assert later.returncode == 0, later.stderr
    assert "nothing left to run; the chain ends here" in later.stdout
    assert [line for line in later.stderr.splitlines() if "failed" in line] == [
        "mpilauncher: 1 task of the sweep failed: task 1 (line 2): exit 5. Why (its output's last lines):"
        " python -m mpilauncher report queuestate; run it again: python -m mpilauncher --resume queuestate"
        " --rerun-failed"
    ]


def test_a_run_with_no_failed_task_says_nothing_of_failures(sweep_dir: Path) -> None:
    (sweep_dir / "commandlines").write_text("true\ntrue\n")
    run = run_cli(["commandlines", "--workdir", "w"], sweep_dir)
    assert run.returncode == 0 and "failed" not in run.stderr and "rerun" not in run.stderr


def test_python_api_is_source_compatible(sweep_dir: Path) -> None:
    (sweep_dir / "commandlines").write_text("echo api PYL_ID\nexit 2\n")
    script = sweep_dir / "example_classic_launcher.py"
    script.write_text(
        "import mpilauncher as pylauncher\n"
        "result = pylauncher.ClassicLauncher('commandlines', cores=1, workdir='pw', debug='job', delay=.1,"
        " queuestate='qs')\n"
        "print('exit status', result.exit_status)\n"
        "(open('flag', 'w'))\n"
        "pylauncher.ResumeClassicLauncher('qs', workdir='pw', rerun_failed=True)\n"
    )
    (sweep_dir / "commandlines").write_text("echo api PYL_ID\ntest -e flag\n")
    proc = subprocess.run(
        [sys.executable, str(script)], cwd=sweep_dir, env=launcher_env(), capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 0, proc.stderr
    assert "exit status 1" in proc.stdout
    assert (
        "mpilauncher: 1 task of the sweep failed: task 1 (line 2): exit 1. Why (its output's last lines):"
        " python -m mpilauncher report qs; run it again: ResumeClassicLauncher('qs', rerun_failed=True)\n"
    ) in proc.stderr
    assert proc.stdout.count("Launcherjob run completed.") == 2
    assert (sweep_dir / "pw" / "out0").read_text() == "api 0\n"
    assert "\ncompleted\n0 " in (sweep_dir / "qs").read_text() and "\nfailed\n" + "" in (sweep_dir / "qs").read_text()
    assert "tick 1\nQueue:" in proc.stdout


def test_python_api_bad_input_is_one_line_and_exit_2(sweep_dir: Path) -> None:
    script = sweep_dir / "s.py"
    script.write_text("import mpilauncher as pylauncher\npylauncher.ClassicLauncher('missing', cores='lots')\n")
    proc = subprocess.run(
        [sys.executable, str(script)], cwd=sweep_dir, env=launcher_env(), capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 2
    assert proc.stderr.strip().count("\n") == 0 and "error: cores= must be a whole number from 1" in proc.stderr


# -- re-running the same sweep over an unfinished queuestate (issue 11, item 7) -----
def stopped_sweep(directory: Path, *extra: str) -> subprocess.CompletedProcess:
    """A sweep stopped at --max-runtime with tasks left (tasks append their id when they end)."""
    appending_sweep(directory, n=12, seconds=0.3)
    stopped = run_cli(
        ["commandlines", "--workdir", "w", "--cores-per-node", "2", "--max-runtime", "0.8", *extra], directory
    )
    assert stopped.returncode == 4, stopped.stderr
    return stopped


def test_running_the_same_sweep_again_continues_its_unfinished_run(sweep_dir: Path) -> None:
    stopped_sweep(sweep_dir)
    before = ran_counts(sweep_dir)
    again = run_cli(["commandlines", "--workdir", "w", "--cores-per-node", "2"], sweep_dir)
    assert again.returncode == 0, again.stderr
    notes = [line for line in again.stderr.splitlines() if "holds an unfinished run" in line]
    assert len(notes) == 1 and f"({12 - sum(before.values())} of 12 tasks not completed): continuing it" in notes[0]
    assert ran_counts(sweep_dir) == collections.Counter(range(12)), "each task exactly once over both runs"
    assert "# tasks completed: 12\n" in again.stdout
    assert "(resuming queuestate)" in again.stdout


def test_a_queuestate_inside_the_workdir_is_written_there_and_resumed(sweep_dir: Path) -> None:
    """A user walk: ``--workdir w --queuestate w/qs`` was refused, naming qs.lock, because w did not exist yet."""
    stopped_sweep(sweep_dir, "--queuestate", "w/qs")
    assert (sweep_dir / "w" / "qs").is_file() and not (sweep_dir / "queuestate").exists()
    again = run_cli(["commandlines", "--workdir", "w", "--queuestate", "w/qs", "--cores-per-node", "2"], sweep_dir)
    assert again.returncode == 0, again.stderr
    assert "holds an unfinished run" in again.stderr and ran_counts(sweep_dir) == collections.Counter(range(12))
    clash = run_cli(["commandlines", "--workdir", "w2", "--queuestate", "w2/joblog"], sweep_dir)
    assert clash.returncode == 2 and clash.stderr.count("\n") == 1, clash.stderr
    assert "w2/joblog: cannot be the queuestate: the workdir w2 has a file of that name" in clash.stderr
    assert not (sweep_dir / "w2").exists(), "a refused run leaves no workdir behind"


def test_start_over_runs_the_whole_sweep_again(sweep_dir: Path) -> None:
    stopped_sweep(sweep_dir)
    done = set(ran_counts(sweep_dir))
    again = run_cli(["commandlines", "--workdir", "w2", "--cores-per-node", "2", "--start-over"], sweep_dir)
    assert again.returncode == 0, again.stderr
    counts = ran_counts(sweep_dir)
    assert all(counts[i] == 2 for i in done) and set(counts) == set(range(12))
    assert "unfinished" not in again.stderr


def test_another_sweep_over_an_unfinished_queuestate_is_still_refused(sweep_dir: Path) -> None:
    stopped_sweep(sweep_dir)
    state = (sweep_dir / "queuestate").read_text()
    (sweep_dir / "commandlines").write_text("echo another sweep\n")
    refused = run_cli(["commandlines", "--workdir", "w2", "--cores-per-node", "2"], sweep_dir)
    assert refused.returncode == 2
    assert "holds an unfinished sweep" in refused.stderr and "--start-over" in refused.stderr
    assert (sweep_dir / "queuestate").read_text() == state and not (sweep_dir / "w2").exists()


def test_other_cores_or_blocks_make_another_sweep(sweep_dir: Path) -> None:
    stopped_sweep(sweep_dir)
    for other in (["--cores", "2"], ["--schedule", "block2"]):
        refused = run_cli(["commandlines", "--workdir", "w2", "--cores-per-node", "2", *other], sweep_dir)
        assert refused.returncode == 2 and "holds an unfinished sweep" in refused.stderr, other


def test_a_resume_from_another_directory_says_where_its_tasks_run_now(tmp_path: Path) -> None:
    """Tasks run where the launcher runs: a resume from elsewhere ran the rest of the sweep there, relative
    paths and all, without a word (found by a user walk).  It says so now, once; from the same place, nothing."""
    first, second = tmp_path / "A", tmp_path / "B"
    first.mkdir()
    second.mkdir()
    (first / "cl").write_text("sleep 0.4; pwd\n" * 6)
    stopped = run_cli(["cl", "--workdir", "../w", "--queuestate", "../qs", "--max-runtime", "0.5",
                       "--cores-per-node", "2", "--grace", "0.05"], first)  # fmt: skip
    assert stopped.returncode == 4, stopped.stderr
    resumed = run_cli(["--resume", "../qs"], second)
    assert resumed.returncode == 0, resumed.stderr
    said = f"mpilauncher: warning: ../qs: its tasks ran in {first}; they run here now, in {second}, where their"
    assert said + " relative paths lead" in resumed.stderr.splitlines()
    assert (tmp_path / "w" / "out5").read_text() == f"{second}\n"
    again = run_cli(["--resume", "../qs", "--rerun-failed"], second)
    assert again.returncode == 0 and "its tasks ran in" not in again.stderr, again.stderr


def test_a_resume_given_other_cores_or_blocks_says_it_keeps_the_sweeps_own(tmp_path: Path) -> None:
    """Cores per task and blocks are the sweep's from its start: ``--resume qs --cores 2`` ran on with one
    core a task and said nothing (a user walk).  Each is said, once; given the same, nothing."""
    (tmp_path / "cl").write_text("sleep 0.4; echo $MPILAUNCHER_NCORES\n" * 6)
    stopped = run_cli(["cl", "--workdir", "w", "--max-runtime", "0.5", "--cores-per-node", "2", "--grace", "0.05"],
                      tmp_path)  # fmt: skip
    assert stopped.returncode == 4, stopped.stderr
    resumed = run_cli(["--resume", "queuestate", "--cores", "2", "--schedule", "block2"], tmp_path)
    assert resumed.returncode == 0, resumed.stderr
    warnings = [line for line in resumed.stderr.splitlines() if "a resume does not change them" in line]
    assert warnings == [
        "mpilauncher: warning: queuestate: its tasks keep the cores per task they began with (1), not 2: a resume"
        " does not change them (--start-over does, with the commandlines)",
        "mpilauncher: warning: queuestate: its tasks keep the blocks they began with (block1), not block2: a"
        " resume does not change them (--start-over does, with the commandlines)",
    ]
    assert (tmp_path / "w" / "out5").read_text() == "1\n"
    same = run_cli(["--resume", "queuestate", "--cores", "1", "--rerun-failed"], tmp_path)
    assert same.returncode == 0 and "does not change them" not in same.stderr, same.stderr


def test_a_queuestate_named_with_a_newline_and_a_space_resumes_and_says_how(tmp_path: Path) -> None:
    """``--queuestate $'q\\nx'``: the snapshot's comment naming its journal ended at the newline, and the
    file it wrote could not be read back (a user walk); the resume it suggests quotes the name."""
    (tmp_path / "commandlines").write_text("true\nsleep 3\n")
    name = "my state\nx"
    first = run_cli(["commandlines", "--queuestate", name, "--max-runtime", "1", "--quiet"], tmp_path)
    assert "reached --max-runtime" in first.stderr, first.stderr
    status = run_cli(["--status", name], tmp_path)
    assert status.returncode == 0, status.stderr
    assert "1 task to run: python -m mpilauncher --resume 'my state\nx'\n" in status.stdout, status.stdout
    resumed = run_cli(["--resume", name, "--quiet"], tmp_path)
    assert resumed.returncode == 0, resumed.stderr
    assert "# tasks completed: 2" in resumed.stdout


def test_a_new_sweep_keeps_a_finished_queuestate_with_failed_tasks_aside(tmp_path: Path) -> None:
    """A sweep that ended with failed tasks says "run them again: --resume queuestate --rerun-failed"; the next
    sweep started in the same folder replaced that queuestate in silence (a user walk: a script of two
    sweeps), and the failed tasks could then be found only by running the whole first sweep again."""
    (tmp_path / "first").write_text("echo a >> ran0\necho b >> ran1; test -e fixed\n")
    failed = run_cli(["first", "--workdir", "w1"], tmp_path)
    assert failed.returncode == 1 and "--resume queuestate --rerun-failed" in failed.stderr, failed.stderr
    kept = (tmp_path / "queuestate").read_text()
    (tmp_path / "second").write_text("echo c\n")
    second = run_cli(["second", "--workdir", "w2"], tmp_path)
    assert second.returncode == 0, second.stderr
    assert [line for line in second.stderr.splitlines() if "kept as" in line] == [
        "mpilauncher: note: queuestate held a finished sweep with 1 failed task: kept as queuestate.1"
        " (python -m mpilauncher --resume queuestate.1 --rerun-failed runs it again)"
    ]
    assert (tmp_path / "queuestate.1").read_text() == kept
    assert "/second" in (tmp_path / "queuestate").read_text().split("\n", 4)[3], "the new sweep's own"
    (tmp_path / "fixed").touch()
    again = run_cli(["--resume", "queuestate.1", "--rerun-failed"], tmp_path)
    assert again.returncode == 0, again.stderr
    assert (tmp_path / "ran0").read_text() == "a\n" and (tmp_path / "ran1").read_text() == "b\nb\n"
    # nothing failed in the second sweep: a third one replaces it as before; --start-over replaces any
    third = run_cli(["first", "--workdir", "w3"], tmp_path)
    assert "kept as" not in third.stderr and not (tmp_path / "queuestate.2").exists()
    assert third.returncode == 0, third.stderr  # (the fixed file is still there)
    (tmp_path / "fixed").unlink()
    run_cli(["first", "--workdir", "w4"], tmp_path)
    fourth = run_cli(["second", "--workdir", "w5", "--start-over"], tmp_path)
    assert fourth.returncode == 0 and "kept as" not in fourth.stderr and not (tmp_path / "queuestate.2").exists()


def test_a_sweep_kept_aside_for_its_edited_commandlines_says_the_command_that_runs_its_failed_tasks(tmp_path: Path):
    """A user walk: a sweep ended with a failed task, the user added a line to its commandlines file and ran
    it: a new sweep, which kept the first aside as queuestate.1 "(python -m mpilauncher --resume
    queuestate.1 --rerun-failed runs it again)" -- a command refused at once, the commandlines file having
    changed since that sweep began.  The command given is one that runs (its queuestate holds the commands)."""
    (tmp_path / "commandlines").write_text("echo a >> ran0\necho b >> ran1; test -e fixed\n")
    assert run_cli(["commandlines", "--workdir", "w1"], tmp_path).returncode == 1
    with (tmp_path / "commandlines").open("a") as lines:
        lines.write("echo c >> ran2\n")
    second = run_cli(["commandlines", "--workdir", "w2"], tmp_path)
    assert second.returncode == 1, second.stderr
    (said,) = [line for line in second.stderr.splitlines() if "kept as" in line]
    command = re.search(r"\((python -m mpilauncher [^)]*) runs it again", said)
    assert command is not None and "--force-resume" in command[1], said
    (tmp_path / "fixed").touch()
    again = run_cli(command[1].split()[3:], tmp_path)
    assert again.returncode == 0, again.stderr
    assert (tmp_path / "ran1").read_text() == "b\nb\nb\n", "the kept sweep's failed task, run again"
    assert (tmp_path / "ran2").read_text() == "c\n", "the new sweep's task, once"


def test_a_finished_queuestate_with_failed_tasks_whose_journal_says_so_is_kept_aside_with_it(tmp_path: Path) -> None:
    """A kill -9 after a sweep's last end, before its final snapshot: only the journal says that every task
    ended, one of them failed.  A new sweep under that name refused it ("and its journal"), the user left to
    move the files by hand; it keeps both aside now, the journal renamed with the snapshot, and the
    resume of the kept one runs its failed task alone: nothing the journal held runs again."""
    state = killed_sweep(tmp_path, n=4, completed=(0, 1, 3), failed=(2,), running=())
    records = journal_path(state).read_text()
    (tmp_path / "second").write_text("echo c\n")
    second = run_cli(["second", "--workdir", "w2", "--queuestate", "qs"], tmp_path)
    assert second.returncode == 0, second.stderr
    assert "mpilauncher: note: qs held a finished sweep with 1 failed task: kept as qs.1" in second.stderr
    assert (tmp_path / "qs.1.journal").read_text() == records and not journal_path(state).exists()
    status = run_cli(["--status", "qs.1"], tmp_path)
    assert "completed   3 jobs: 0-1 3\n" in status.stdout and "aborted     1 jobs: 2\n" in status.stdout, status.stdout
    again = run_cli(["--resume", "qs.1", "--rerun-failed", "--workdir", "w3", "--quiet"], tmp_path)
    assert again.returncode == 0, again.stderr
    assert (tmp_path / "ran").read_text() == "2\n", "the failed task alone"


# -- a sweep's folder moved or renamed (a user walk) ---------------------------------------
def moved_sweep(tmp_path: Path) -> Path:
    """A sweep stopped with tasks left in ``OLD`` (workdir ``w``), then its folder renamed ``NEW``."""
    old = tmp_path / "OLD"
    old.mkdir()
    stopped_sweep(old)
    return old.rename(tmp_path / "NEW")


def test_a_moved_sweep_resumes_into_its_own_workdir_at_its_new_place(tmp_path: Path) -> None:
    new = moved_sweep(tmp_path)
    other = tmp_path / "other"  # another sweep's workdir, which a resume must never take for its own
    other.mkdir()
    stopped_sweep(other)
    refused = run_cli(["--resume", "queuestate", "--workdir", str(other / "w")], new)
    assert refused.returncode == 2 and "workdir already exists" in refused.stderr, refused.stderr
    resumed = run_cli(["--resume", "queuestate", "--workdir", "w", "--cores-per-node", "2"], new)
    assert resumed.returncode == 0, resumed.stderr
    assert ran_counts(new) == collections.Counter(range(12)), "each task exactly once over both runs"
    assert len(read_joblog(new / "w" / "joblog")) == 12, "the resume's ends joined the earlier ones"
    meta = json.loads(next(x for x in (new / "queuestate").read_text().splitlines() if x.startswith("#meta "))[6:])
    assert meta["workdir"] == str((new / "w").resolve()) and "earlier_workdirs" not in meta
    report = run_cli(["report", "queuestate"], new)
    assert report.returncode == 0 and "joblog" not in report.stdout, report.stdout


def test_a_moved_sweep_finds_its_workdir_where_its_relative_name_leads(tmp_path: Path) -> None:
    new = moved_sweep(tmp_path)
    resumed = run_cli(["--resume", "queuestate", "--cores-per-node", "2"], new)
    assert resumed.returncode == 0, resumed.stderr
    assert ran_counts(new) == collections.Counter(range(12))
    assert len(read_joblog(new / "w" / "joblog")) == 12


def test_a_resume_whose_workdir_is_nowhere_to_be_found_says_to_name_it_with_workdir(tmp_path: Path) -> None:
    new = moved_sweep(tmp_path)
    (new / "w").rename(new / "renamed")
    lost = run_cli(["--resume", "queuestate"], new)
    assert lost.returncode == 2 and "--workdir" in lost.stderr.splitlines()[-1], lost.stderr
    found = run_cli(["--resume", "queuestate", "--workdir", "renamed", "--cores-per-node", "2"], new)
    assert found.returncode == 0, found.stderr
    assert ran_counts(new) == collections.Counter(range(12))


def killed_sweep(
    directory: Path,
    n: int = 8,
    completed: tuple[int, ...] = (0, 1, 2, 4),
    failed: tuple[int, ...] = (),
    running: tuple[int, ...] = (3,),
) -> Path:
    """``qs`` and ``qs.journal`` as a ``kill -9`` leaves them: the run's first snapshot (every task queued)
    and a journal of ``completed`` (ended well), ``failed`` (exit 3) and ``running``.  Made by the state
    store itself, as a run writes them: a kill at a chosen instant is not something a test can make happen."""
    lines = [f"echo {i} >> ran" for i in range(n)]
    (directory / "commandlines").write_text("\n".join(lines) + "\n")
    (directory / "w").mkdir()
    one = CoresSpec("fixed", 1)
    tasks = parse_commandlines((directory / "commandlines").read_text(), "commandlines", one)
    meta = StateMeta(commandlines=str(directory / "commandlines"), cores=str(one), workdir=str(directory / "w"),
                     sha256=sha256_hex((directory / "commandlines").read_bytes()))  # fmt: skip
    store = StateStore(directory / "qs", Ledger(tasks), meta, one, fsync_interval=0.5)
    store.open(now=0.0)
    for task_id in (*completed, *failed, *running):
        store.started(task_id, "c1", (0,), 100.0 + task_id)
    for task_id in (*completed, *failed):
        store.finished(task_id, 3 if task_id in failed else 0, 100.0 + task_id, 0.5)
    store.flush(now=1.0, elapsed=1.0)  # (too early for a second snapshot: the journal holds them)
    store._journal.close()  # (as a kill leaves it: not removed)
    return directory / "qs"


def test_a_queuestate_renamed_with_its_journal_resumes_without_running_its_journaled_tasks_again(tmp_path: Path):
    """A user walk: ``mv qs renamed; mv qs.journal renamed.journal`` after a ``kill -9``.  The snapshot's
    ``#meta`` names ``qs.journal``: it was looked for alone, not found, and ignored in silence --
    ``--status`` said nothing completed, the resume ran every journaled task again and then removed
    ``renamed.journal`` unread.  ``<queuestate>.journal`` of the snapshot's own run is its journal."""
    state = killed_sweep(tmp_path)
    state.rename(tmp_path / "renamed")
    journal_path(state).rename(tmp_path / "renamed.journal")
    status = run_cli(["--status", "renamed"], tmp_path)
    assert status.returncode == 0, status.stderr
    assert "completed   4 jobs: 0-2 4\n" in status.stdout and "running     1 jobs: 3\n" in status.stdout, status.stdout
    report = run_cli(["report", "renamed"], tmp_path)
    assert "State: stopped: 8 tasks, 4 completed, 0 failed, 1 interrupted, 3 queued\n" in report.stdout, report.stderr
    result = run_cli(["--resume", "renamed", "--workdir", "w2", "--quiet"], tmp_path)
    assert result.returncode == 0, result.stderr
    assert "# tasks completed: 8\n" in result.stdout
    assert sorted(ran_counts(tmp_path).elements()) == [3, 5, 6, 7], "only the tasks not journaled as ended ran"
    assert "completed   8 jobs: 0-7" in run_cli(["--status", "renamed"], tmp_path).stdout


def test_a_queuestate_renamed_alone_still_reads_the_journal_it_names(tmp_path: Path):
    """``mv qs renamed``, its journal left as ``qs.journal``: the name in its ``#meta`` finds it (as before),
    and a new sweep under the name ``qs`` does not replace that journal (it was then lost to ``renamed``)."""
    state = killed_sweep(tmp_path)
    state.rename(tmp_path / "renamed")
    (tmp_path / "other").write_text("echo other >> ran\n")
    refused = run_cli(["other", "--queuestate", "qs", "--workdir", "w3"], tmp_path)
    assert refused.returncode == 2 and refused.stderr.startswith("mpilauncher: error: qs.journal: is the journal of")
    assert not (tmp_path / "ran").exists() and not state.exists()
    assert "completed   4 jobs: 0-2 4\n" in run_cli(["--status", "renamed"], tmp_path).stdout
    result = run_cli(["--resume", "renamed", "--quiet"], tmp_path)
    assert result.returncode == 0, result.stderr
    assert sorted(ran_counts(tmp_path).elements()) == [3, 5, 6, 7]
    assert "# tasks completed: 8\n" in result.stdout


def test_a_queuestate_copied_without_its_journal_is_refused_in_one_line(tmp_path: Path):
    """``cp qs elsewhere/``: resumed without the journal it names, its journaled tasks would run again.
    ``--status``, ``--resume``, ``report`` and a new sweep over it say so in one line and change nothing;
    ``--force-resume`` goes on from the snapshot alone, saying so."""
    killed_sweep(tmp_path)
    (tmp_path / "elsewhere").mkdir()
    copy = tmp_path / "elsewhere" / "qs"
    copy.write_bytes((tmp_path / "qs").read_bytes())
    expected = (
        "mpilauncher: error: elsewhere/qs: its journal qs.journal is not beside it, and it holds what happened"
        " after this snapshot (the tasks it ran since would run again): move it back beside the queuestate,"
        " or resume from the snapshot alone with --resume elsewhere/qs --force-resume\n"
    )
    for args in (["--status", "elsewhere/qs"], ["--resume", "elsewhere/qs"], ["report", "elsewhere/qs"]):
        refused = run_cli(args, tmp_path)
        assert (refused.returncode, refused.stdout, refused.stderr) == (2, "", expected), args
    new_sweep = run_cli(["commandlines", "--queuestate", "elsewhere/qs", "--workdir", "w3"], tmp_path)
    assert new_sweep.returncode == 2 and "its journal qs.journal is not beside it" in new_sweep.stderr
    assert len(new_sweep.stderr.splitlines()) == 1, new_sweep.stderr
    assert not (tmp_path / "ran").exists() and not (tmp_path / "w3").exists()
    assert copy.read_bytes() == (tmp_path / "qs").read_bytes() and not journal_path(copy).exists()
    forced = run_cli(["--resume", "elsewhere/qs", "--force-resume", "--workdir", "w4", "--quiet"], tmp_path)
    assert forced.returncode == 0, forced.stderr
    assert "from the snapshot alone" in forced.stderr, forced.stderr
    assert sorted(ran_counts(tmp_path).elements()) == list(range(8))


def test_a_resume_keeps_the_sweeps_task_timeout(tmp_path: Path) -> None:
    """A user walk: the resume command the launcher prints (``--resume queuestate``) dropped the sweep's
    --task-timeout, so a task that hangs ran unkilled until the job's time limit on resume."""
    (tmp_path / "commandlines").write_text("true\nsleep 2\n")
    first = run_cli(["commandlines", "--workdir", "w", "--task-timeout", "0.5", "--cores-per-node", "2"], tmp_path)
    assert first.returncode == 1, first.stderr
    again = run_cli(["--resume", "queuestate", "--rerun-failed"], tmp_path)
    assert again.returncode == 1, again.stderr
    assert [r["status"] for r in read_joblog(tmp_path / "w" / "joblog") if r["id"] == "1"] == ["timeout"] * 2
    assert "the sweep's --task-timeout of 0.5 s holds" in again.stderr, again.stderr
    longer = run_cli(["--resume", "queuestate", "--rerun-failed", "--task-timeout", "30"], tmp_path)
    assert longer.returncode == 0 and "holds" not in longer.stderr, longer.stderr


def test_a_resume_given_task_timeout_0_runs_without_the_sweeps_limit(tmp_path: Path) -> None:
    """0 switches the sweep's --task-timeout off (it was refused: a sweep kept its limit for good)."""
    (tmp_path / "commandlines").write_text("sleep 1.5\n")
    first = run_cli(["commandlines", "--workdir", "w", "--task-timeout", "0.5"], tmp_path)
    assert first.returncode == 1, first.stderr
    off = run_cli(["--resume", "queuestate", "--rerun-failed", "--task-timeout", "0"], tmp_path)
    assert off.returncode == 0 and "holds" not in off.stderr, off.stderr
    assert '"task_timeout"' not in (tmp_path / "queuestate").read_text(), "off for the resumes after it too"


def test_a_resume_keeps_the_sweeps_retries_and_0_turns_them_off(tmp_path: Path) -> None:
    """--retries is the sweep's too: a flaky task resumed as printed failed for good at its first failure.
    The task fails until its fourth attempt over all runs (a count in a file)."""
    task = "n=$(($(cat tries 2>/dev/null || echo 0) + 1)); echo $n > tries; [ $n -ge 4 ]\n"
    (tmp_path / "commandlines").write_text(task)
    first = run_cli(["commandlines", "--workdir", "w", "--retries", "1"], tmp_path)
    assert first.returncode == 1 and (tmp_path / "tries").read_text() == "2\n", first.stderr
    (tmp_path / "tries").write_text("0\n")
    kept = run_cli(["--resume", "queuestate", "--rerun-failed"], tmp_path)
    assert kept.returncode == 1 and (tmp_path / "tries").read_text() == "2\n", "two attempts: the retry held"
    assert "the sweep's --retries of 1 holds (as it began; give --retries to change it)" in kept.stderr
    off = run_cli(["--resume", "queuestate", "--rerun-failed", "--retries", "0"], tmp_path)
    assert off.returncode == 1 and (tmp_path / "tries").read_text() == "3\n", off.stderr
    assert "holds" not in off.stderr and '"retries"' not in (tmp_path / "queuestate").read_text()


def test_attempts_are_numbered_over_every_run_of_the_sweep(tmp_path: Path) -> None:
    """A user walk: after --resume --rerun-failed the joblog held (task, attempt 1) twice, and ``report``
    said "attempt 2" of a task that had run 4 times.  Attempts go on counting from the queuestate's."""
    (tmp_path / "commandlines").write_text("true\nexit 3\n")
    first = run_cli(["commandlines", "--workdir", "w", "--retries", "1"], tmp_path)
    assert first.returncode == 1, first.stderr
    again = run_cli(["--resume", "queuestate", "--rerun-failed"], tmp_path)
    assert again.returncode == 1, again.stderr
    rows = [(r["id"], r["attempt"], r["status"]) for r in read_joblog(tmp_path / "w" / "joblog")]
    assert sorted(rows) == [("0", "1", "ok")] + [("1", str(n), "failed") for n in (1, 2, 3, 4)], rows
    assert " attempt=4: exit 3\n" in (tmp_path / "queuestate").read_text()


def test_a_retry_waiting_at_a_stop_goes_on_with_the_retries_the_task_had_left(tmp_path: Path) -> None:
    """A user walk: --retries 2, a task that always fails, Ctrl-C while its retry waited in the queue: the
    resume ran it 3 times more (attempts 2, 3, 4), 4 in all where --retries 2 runs it 3 times; each stop
    gave it 2 retries more.  Its retries go on from where the stop left them (--rerun-failed, which runs a
    task that failed for good, still gives it --retries more).  The queuestate as the stop leaves it: attempt
    1 failed, the retry queued (``attempt=1`` on its queued line)."""
    (tmp_path / "commandlines").write_text("echo x >> tries; exit 1\n")
    (tmp_path / "w").mkdir()
    one = CoresSpec("fixed", 1)
    tasks = parse_commandlines((tmp_path / "commandlines").read_text(), "commandlines", one)
    meta = StateMeta(commandlines=str(tmp_path / "commandlines"), cores=str(one), workdir=str(tmp_path / "w"),
                     sha256=sha256_hex((tmp_path / "commandlines").read_bytes()), extra={"retries": 2})  # fmt: skip
    store = StateStore(tmp_path / "queuestate", Ledger(tasks), meta, one, fsync_interval=0.5)
    store.open(now=0.0)
    store.started(0, "c1", (0,), 100.0)
    store.finished(0, 1, 100.0, 0.5)
    store.requeued(0)
    store.close(now=1.0, elapsed=1.0)
    assert "0 line=1 attempt=1: echo x" in (tmp_path / "queuestate").read_text()
    resumed = run_cli(["--resume", "queuestate"], tmp_path)
    assert resumed.returncode == 1 and "the sweep's --retries of 2 holds" in resumed.stderr, resumed.stderr
    rows = [(r["attempt"], r["status"]) for r in read_joblog(tmp_path / "w" / "joblog")]
    assert rows == [("2", "failed"), ("3", "failed")], rows
    rerun = run_cli(["--resume", "queuestate", "--rerun-failed"], tmp_path)
    assert rerun.returncode == 1, rerun.stderr
    assert [r["attempt"] for r in read_joblog(tmp_path / "w" / "joblog")][2:] == ["4", "5", "6"]


def test_a_rerun_failed_stopped_while_a_retry_waits_keeps_the_retries_it_gave(tmp_path: Path) -> None:
    """--retries 2; a task failed for good (attempts 1-3); --rerun-failed gives it 2 retries more, and its
    attempt 4 failed, attempt 5 ran when --max-runtime stopped the run.  The resume counted its retries
    from attempt 1, not from the rerun's start: attempt 5 again was its last (it had one retry left).
    The count of runs is kept in a file: the seventh run of the task succeeds."""
    failed_for_good_after_three_tries(tmp_path)
    stopped = run_cli(["--resume", "queuestate", "--rerun-failed", "--max-runtime", "3"], tmp_path)
    assert stopped.returncode == 4 and (tmp_path / "tries").read_text() == "5\n", stopped.stderr
    assert '"retry_bases": {"3": "0"}' in (tmp_path / "queuestate").read_text()
    resumed = run_cli(["--resume", "queuestate"], tmp_path)
    assert resumed.returncode == 0, resumed.stderr
    rows = [(r["attempt"], r["status"]) for r in read_joblog(tmp_path / "w" / "joblog")]
    assert rows[3:] == [("4", "failed"), ("5", "failed"), ("6", "ok")], rows  # (5 ran twice: the stop cut it)
    assert "retry_bases" not in (tmp_path / "queuestate").read_text(), "a finished sweep keeps none"


def test_a_rerun_failed_killed_with_kill_9_while_a_retry_runs_keeps_the_retries_it_gave(tmp_path: Path) -> None:
    """As above, but the run is killed with kill -9 while attempt 5 runs: no stop wrote the retry bases, and
    the resume counted the task's retries from attempt 1 (attempt 6 was never given: it failed for good with
    one retry of --rerun-failed's two left).  They are in the run's own snapshots from its start."""
    failed_for_good_after_three_tries(tmp_path)
    tag = new_tag()
    proc = start_launcher(tmp_path, "--resume", "queuestate", "--rerun-failed", MPL_TEST_TAG=tag)
    wait_for(lambda: (tmp_path / "tries").exists() and (tmp_path / "tries").read_text() == "5\n")
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=10)
    wait_for(lambda: not tagged_pids(tag))  # (the killed launcher's task is ended by its watchdog)
    resumed = run_cli(["--resume", "queuestate"], tmp_path)
    assert resumed.returncode == 0, resumed.stderr
    rows = [(r["attempt"], r["status"]) for r in read_joblog(tmp_path / "w" / "joblog")]
    assert rows[3:] == [("4", "failed"), ("5", "failed"), ("6", "ok")], rows
    assert (tmp_path / "tries").read_text() == "7\n"


def failed_for_good_after_three_tries(directory: Path) -> None:
    """A task run with --retries 2 that fails its first three tries; its fifth try (its second retry of a
    --rerun-failed) sleeps a minute, and it succeeds from its seventh on: the count is kept in ``tries``."""
    task = (
        "n=$(($(cat tries 2>/dev/null || echo 0) + 1)); echo $n > tries;"
        " if [ $n = 5 ]; then sleep 60; fi; [ $n -ge 7 ]\n"
    )
    (directory / "commandlines").write_text(task)
    first = run_cli(["commandlines", "--workdir", "w", "--retries", "2"], directory)
    assert first.returncode == 1 and (directory / "tries").read_text() == "3\n", first.stderr
