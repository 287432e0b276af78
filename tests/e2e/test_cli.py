"""The CLI as a user runs it: files, statistics, exit codes, options."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from mpilauncher.execution.executor import compiled_available
from mpilauncher.report.joblog import read as read_joblog
from tests.conftest import concurrency, launcher_env, run_cli


def write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def test_basic_sweep_files_statistics_and_exit_code(sweep_dir: Path) -> None:
    write(sweep_dir / "commandlines", "# comment\n\necho hello PYL_ID\necho second PYL_ID #1\nprintf 'no newline'")
    result = run_cli(["commandlines", "--workdir", "work"], sweep_dir)
    assert result.returncode == 0, result.stderr
    work = sweep_dir / "work"
    assert (work / "out0").read_text() == "hello 0\n"
    assert (work / "out1").read_text() == "second 1\n"
    assert (work / "out2").read_text() == "no newline"
    assert not list(work.glob("exec[0-9]*")), "short tasks that succeed leave one file each, out<N>"
    assert "echo hello 0" in run_cli(["output", "work", "0", "--exec"], sweep_dir).stdout
    rows = read_joblog(work / "joblog")
    assert sorted(int(r["id"]) for r in rows) == [0, 1, 2]
    assert all(r["exit"] == "0" for r in rows)
    out = result.stdout
    assert "Launcherjob run completed." in out
    assert "# tasks completed: 3\n" in out and "tasks aborted: 0\n" in out
    assert re.search(r"^Host pool of size \d+\.$", out, re.M)
    state = (sweep_dir / "queuestate").read_text()
    assert "\ncompleted\n" in state and "0 line=3" in state
    assert not (sweep_dir / "queuestate.journal").exists(), "a clean end folds the journal into the snapshot"


def test_exec_file_reruns_a_failed_task_by_hand(sweep_dir: Path) -> None:
    write(sweep_dir / "commandlines", "echo id=$PYL_ID omp=$OMP_NUM_THREADS dir=$(basename $PWD); exit 3\n")
    assert run_cli(["commandlines", "--workdir", "w", "--cores", "2"], sweep_dir).returncode != 0
    first = (sweep_dir / "w" / "out0").read_text()
    assert first == f"id=0 omp=2 dir={sweep_dir.name}\n"
    import subprocess

    again = subprocess.run(["sh", str(sweep_dir / "w" / "exec0")], capture_output=True, text=True, cwd="/")
    assert again.stdout == first and again.returncode == 3


def test_the_exec_script_of_a_task_that_succeeded_reruns_it_by_hand(sweep_dir: Path) -> None:
    write(sweep_dir / "commandlines", "echo id=$PYL_ID omp=$OMP_NUM_THREADS dir=$(basename $PWD)\n")
    assert run_cli(["commandlines", "--workdir", "w", "--cores", "2"], sweep_dir).returncode == 0
    assert not (sweep_dir / "w" / "exec0").exists()
    script = run_cli(["output", "w", "0", "--exec"], sweep_dir).stdout
    (sweep_dir / "again.sh").write_text(script)
    import subprocess

    again = subprocess.run(["sh", str(sweep_dir / "again.sh")], capture_output=True, text=True, cwd="/")
    assert again.stdout == (sweep_dir / "w" / "out0").read_text() == f"id=0 omp=2 dir={sweep_dir.name}\n"


def test_task_environment_process_group_and_cwd(sweep_dir: Path) -> None:
    cmd = (
        'echo "$PYL_ID $MPILAUNCHER_TASK_ID $OMP_NUM_THREADS $MPILAUNCHER_NCORES $PWD"; '
        'ps -o pid=,pgid=,sid= -p $$; env | grep -c "^PMI_" || true'
    )
    write(sweep_dir / "commandlines", cmd + "\n")
    result = run_cli(["commandlines", "--workdir", "w"], sweep_dir, PMI_RANK="0", PMI_FD="9")
    assert result.returncode == 0, result.stderr
    lines = (sweep_dir / "w" / "out0").read_text().split("\n")
    assert lines[0] == f"0 0 1 1 {sweep_dir}"
    pid, pgid, sid = lines[1].split()
    assert pid == pgid == sid, "each task runs in its own session and process group"
    assert lines[2] == "0", "the launcher's MPI wiring (PMI_*) never leaks into tasks"


def test_user_omp_num_threads_is_kept(sweep_dir: Path) -> None:
    write(sweep_dir / "commandlines", "echo $OMP_NUM_THREADS\n")
    assert run_cli(["commandlines", "--workdir", "w", "--cores", "2"], sweep_dir, OMP_NUM_THREADS="7").returncode == 0
    assert (sweep_dir / "w" / "out0").read_text() == "7\n"


def test_cores_per_task_limits_concurrency_and_binds_core_ids(sweep_dir: Path) -> None:
    write(sweep_dir / "commandlines", "sleep 0.3\n" * 6)
    result = run_cli(["commandlines", "--workdir", "w", "--cores", "2", "--cores-per-node", "4"], sweep_dir)
    assert result.returncode == 0, result.stderr
    rows = read_joblog(sweep_dir / "w" / "joblog")
    assert {r["cores"] for r in rows} <= {"0-1", "2-3"}
    assert concurrency(rows) == 2
    assert "Host pool of size 4." in result.stdout


def test_cores_file_mixed_widths(sweep_dir: Path) -> None:
    write(sweep_dir / "commandlines", "3,echo $OMP_NUM_THREADS\n1,echo $OMP_NUM_THREADS\n4, echo $OMP_NUM_THREADS\n")
    result = run_cli(["commandlines", "--workdir", "w", "--cores", "file", "--cores-per-node", "4"], sweep_dir)
    assert result.returncode == 0, result.stderr
    assert [(sweep_dir / "w" / f"out{i}").read_text() for i in range(3)] == ["3\n", "1\n", "4\n"]
    widths = {int(r["id"]): r["cores"] for r in read_joblog(sweep_dir / "w" / "joblog")}
    assert widths[2] == "0-3"


def test_cores_node_gives_each_task_the_whole_node(sweep_dir: Path) -> None:
    write(sweep_dir / "commandlines", "echo $OMP_NUM_THREADS\necho $OMP_NUM_THREADS\n")
    result = run_cli(["commandlines", "--workdir", "w", "--cores", "node", "--cores-per-node", "3"], sweep_dir)
    assert result.returncode == 0, result.stderr
    assert (sweep_dir / "w" / "out1").read_text() == "3\n"
    rows = read_joblog(sweep_dir / "w" / "joblog")
    assert all(r["cores"] == "0-2" for r in rows) and concurrency(rows) == 1


def test_failed_and_signalled_tasks_are_aborted_and_exit_status_1(sweep_dir: Path) -> None:
    write(sweep_dir / "commandlines", "true\nexit 3\nkill -9 $$\n")
    result = run_cli(["commandlines", "--workdir", "w"], sweep_dir)
    assert result.returncode == 1
    assert "# tasks completed: 1\n" in result.stdout and "tasks aborted: 2\n" in result.stdout
    exits = {int(r["id"]): r["exit"] for r in read_joblog(sweep_dir / "w" / "joblog")}
    assert exits == {0: "0", 1: "3", 2: "-9"}
    state = (sweep_dir / "queuestate").read_text()
    assert "\nfailed\n1 line=2 exit=3" in state


def test_debug_trace_prints_ticks_with_queue_and_hosts(sweep_dir: Path) -> None:
    write(sweep_dir / "commandlines", "sleep 0.3\n" * 4)
    result = run_cli(["commandlines", "--workdir", "w", "--debug", "host+job", "--delay", "0.1"], sweep_dir)
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert re.search(r"^tick 1\nQueue:\ncompleted +\d+ jobs:", out, re.M)
    assert re.search(r"^running +\d+ jobs: [0-9 -]+$", out, re.M)
    assert "Hosts:" in out and re.search(r"^\S+: \d+/\d+ cores busy: \d+@\d", out, re.M)


def test_debug_words_are_matched_as_pylauncher_does_and_idle_ones_get_one_note(sweep_dir: Path) -> None:
    write(sweep_dir / "commandlines", "sleep 0.2\n" * 2)
    result = run_cli(
        ["commandlines", "--workdir", "w", "--debug", "hosts+jobs+ssh+verbose", "--delay", "0.05"], sweep_dir
    )
    assert result.returncode == 0, result.stderr
    assert "tick 1\nQueue:" in result.stdout and "Hosts:" in result.stdout
    notes = [line for line in result.stderr.splitlines() if line.startswith("mpilauncher: note: debug=")]
    assert len(notes) == 1 and "'verbose' matches none" in notes[0] and "ssh trace nothing here" in notes[0]


def test_debug_task_words_trace_each_task_on_stderr_and_quiet_keeps_only_warnings(sweep_dir: Path) -> None:
    """PyLauncher's task/exec/cmd debug words: each start and end, as they happen (the logger's DEBUG)."""
    write(sweep_dir / "commandlines", "true\nexit 3\n")
    result = run_cli(["commandlines", "--workdir", "w", "--debug", "exec", "--cores-per-node", "1"], sweep_dir)
    assert result.returncode == 1, result.stderr
    lines = [line for line in result.stderr.splitlines() if line.startswith("mpilauncher: task ")]
    assert lines[0].startswith("mpilauncher: task 0 started on ") and lines[0].endswith(":0: true"), lines
    assert lines[1].startswith("mpilauncher: task 0 ended: ok (exit 0) after "), lines
    assert lines[3].startswith("mpilauncher: task 1 ended: failed (exit 3) after "), lines
    quiet = run_cli(["commandlines", "--workdir", "w2", "--quiet", "--debug", "verbose"], sweep_dir)
    assert quiet.returncode == 1, quiet.stderr
    (failed,) = quiet.stderr.splitlines()  # no note, no start-up lines: how the run ended, only
    assert failed.startswith("mpilauncher: 1 task of the sweep failed: task 1 (line 2): exit 3. "), failed
    assert " .. workdir:" not in quiet.stdout and "# tasks completed: 1" in quiet.stdout


def test_startup_lines_say_what_runs_where(sweep_dir: Path) -> None:
    write(sweep_dir / "commandlines", "true\n" * 3)
    result = run_cli(["commandlines", "--workdir", "w", "--cores-per-node", "2"], sweep_dir)
    assert result.returncode == 0, result.stderr
    head = result.stdout.split("Launcherjob run completed.")[0]
    assert re.match(r"mpilauncher \S+ \(PyLauncher 5\.4 compatible\) job, type=python -m mpilauncher, starting ", head)
    assert f" .. commandlines: {sweep_dir / 'commandlines'}: 3 tasks, 1 core per task\n" in head
    assert f" .. workdir: {sweep_dir / 'w'}\n .. queuestate: queuestate\n" in head
    assert re.search(r"^ \.\. host pool: 2 cores on 1 node \(\S+\)$", head, re.M)


def test_the_startup_lines_count_in_the_singular_too(sweep_dir: Path) -> None:
    """The start-up lines said "1 tasks", "1 cores on 1 node", "1 GPU(s) per task" (a user walk)."""
    write(sweep_dir / "commandlines", "true\n")
    result = run_cli(["commandlines", "--workdir", "w", "--cores-per-node", "1", "--gpus-per-task", "1",
                      "--gpus-per-node", "1"], sweep_dir, CUDA_VISIBLE_DEVICES="0")  # fmt: skip
    assert result.returncode == 0, result.stderr
    head = result.stdout.split("Launcherjob run completed.")[0]
    assert f" .. commandlines: {sweep_dir / 'commandlines'}: 1 task, 1 core per task, 1 GPU per task\n" in head
    assert re.search(r"^ \.\. host pool: 1 core and 1 GPU on 1 node \(\S+\)$", head, re.M), head


def test_tasks_too_wide_for_any_node_say_how_many_more_do_not_fit(sweep_dir: Path) -> None:
    """The error said "(and 3 more)": 3 more what? (a user walk)"""
    write(sweep_dir / "commandlines", "true\n" * 4)
    result = run_cli(["commandlines", "--workdir", "w", "--cores", "3", "--cores-per-node", "2"], sweep_dir)
    assert result.returncode == 2
    assert result.stderr == (
        "mpilauncher: error: commandlines:1: task 0 needs 3 cores, but the largest node has 2"
        " (and 3 more tasks that cannot fit)\n"
    )
    write(sweep_dir / "commandlines", "true\n" * 2)
    result = run_cli(["commandlines", "--workdir", "w", "--cores", "3", "--cores-per-node", "2"], sweep_dir)
    assert result.stderr.endswith("(and 1 more task that cannot fit)\n"), result.stderr


def test_rerun_failed_on_a_new_sweep_says_when_it_takes_effect(sweep_dir: Path) -> None:
    """``cl --rerun-failed`` without ``--resume`` was taken in silence (a user walk); it does act when the
    sweep is continued (the same command over its unfinished queuestate, a later job of a chain)."""
    write(sweep_dir / "commandlines", "true\n")
    result = run_cli(["commandlines", "--workdir", "w", "--rerun-failed"], sweep_dir)
    assert result.returncode == 0, result.stderr
    assert (
        "mpilauncher: note: --rerun-failed: a new sweep has no failed task yet; its failed tasks run again when it is"
        " resumed or continued (run again over its unfinished queuestate, a later job of its"
        " chain)\n" in result.stderr
    ), result.stderr


def test_rerun_failed_over_a_finished_sweep_of_the_same_commandlines_reruns_only_its_failed_tasks(
    sweep_dir: Path,
) -> None:
    """A user walk: ``cl --rerun-failed`` again after a sweep that ended with a failed task said "a new sweep has
    no failed task yet", kept the finished sweep aside and ran every task again, the completed ones too."""
    write(sweep_dir / "commandlines", "echo a >> ran0\necho b >> ran1; test -e fixed\n")
    first = run_cli(["commandlines", "--workdir", "w"], sweep_dir)
    assert first.returncode == 1, first.stderr
    (sweep_dir / "fixed").touch()
    again = run_cli(["commandlines", "--rerun-failed"], sweep_dir)
    assert again.returncode == 0, again.stderr
    assert (sweep_dir / "ran0").read_text() == "a\n" and (sweep_dir / "ran1").read_text() == "b\nb\n"
    assert "kept as" not in again.stderr and "a new sweep" not in again.stderr, again.stderr
    assert "1 failed task: --rerun-failed runs it again" in again.stderr, again.stderr


def test_the_same_script_again_after_its_sweep_finished_runs_nothing_again(sweep_dir: Path) -> None:
    """A job script submitted again after its sweep had finished (by hand, Slurm's requeue) ran every task
    again, in silence, over the first run's outputs.  It continues the finished sweep now: nothing to run,
    one line that says so and how to run the whole sweep again (--start-over), which then does."""
    write(sweep_dir / "commandlines", "echo PYL_ID >> ran\n" * 3)
    assert run_cli(["commandlines"], sweep_dir).returncode == 0
    again = run_cli(["commandlines"], sweep_dir)
    assert again.returncode == 0 and sorted((sweep_dir / "ran").read_text().split()) == ["0", "1", "2"]
    assert again.stderr == (
        "mpilauncher: note: queuestate holds a finished run of these commandlines (3 tasks, all completed):"
        " nothing to run; --start-over runs the whole sweep again\n"
    )
    assert run_cli(["commandlines", "--start-over"], sweep_dir).returncode == 0
    assert len((sweep_dir / "ran").read_text().split()) == 6


def test_a_job_script_naming_a_new_workdir_each_run_makes_none_when_nothing_runs(sweep_dir: Path) -> None:
    """``--workdir out.$SLURM_JOB_ID`` in a job script submitted again over its finished sweep: a run
    that starts nothing made the new folder (a joblog's header) and recorded it as the sweep's workdir."""
    write(sweep_dir / "commandlines", "echo PYL_ID >> ran\nexit 4\n")
    assert run_cli(["commandlines", "--workdir", "out.1"], sweep_dir).returncode == 1
    again = run_cli(["commandlines", "--workdir", "out.2"], sweep_dir)
    assert again.returncode == 1, again.stderr
    assert f"note: --workdir out.2 is not made: nothing to run, the sweep's workdir stays {sweep_dir}/out.1\n" in (
        again.stderr
    )
    assert not (sweep_dir / "out.2").exists()
    assert run_cli(["report", "out.1"], sweep_dir).returncode == 0
    rerun = run_cli(["commandlines", "--workdir", "out.3", "--rerun-failed"], sweep_dir)
    assert rerun.returncode == 1 and "is not made" not in rerun.stderr, rerun.stderr
    assert (sweep_dir / "out.3" / "joblog").exists(), "a run that runs a task has its new workdir"


def test_the_same_script_again_after_a_sweep_with_failures_runs_nothing_but_says_how(sweep_dir: Path) -> None:
    write(sweep_dir / "commandlines", "echo a >> ran\nexit 4\n")
    assert run_cli(["commandlines"], sweep_dir).returncode == 1
    again = run_cli(["commandlines"], sweep_dir)
    assert again.returncode == 1 and (sweep_dir / "ran").read_text() == "a\n", again.stderr
    assert (
        "mpilauncher: note: queuestate holds a finished run of these commandlines (2 tasks, 1 failed): nothing to"
        " run; --rerun-failed runs it again, --start-over the whole sweep\n"
    ) in again.stderr
    assert not (sweep_dir / "queuestate.1").exists(), "continued, not kept aside for a new sweep"


def test_the_same_script_again_over_a_finished_sweep_of_kept_settings_says_one_line(sweep_dir: Path) -> None:
    """A user walk: the finished run of a sweep begun with --task-timeout and --retries, its job script run
    again, said three lines: that nothing runs, and that the sweep's --task-timeout and --retries "hold"
    -- for a run that runs nothing.  The one line that nothing runs, as for any finished sweep."""
    write(sweep_dir / "commandlines", "echo PYL_ID >> ran\n" * 2)
    assert run_cli(["commandlines", "--task-timeout", "30", "--retries", "1"], sweep_dir).returncode == 0
    again = run_cli(["commandlines"], sweep_dir)
    assert again.returncode == 0 and again.stderr == (
        "mpilauncher: note: queuestate holds a finished run of these commandlines (2 tasks, all completed):"
        " nothing to run; --start-over runs the whole sweep again\n"
    )
    resumed = run_cli(["--resume", "queuestate"], sweep_dir)
    assert resumed.returncode == 0 and resumed.stderr == "", resumed.stderr
    assert sorted((sweep_dir / "ran").read_text().split()) == ["0", "1"]
    assert '"task_timeout": 30' in (sweep_dir / "queuestate").read_text(), "kept for a later --rerun-failed"


def test_schedule_block_joins_lines_into_tasks_each_line_keeping_its_pyl_id(sweep_dir: Path) -> None:
    write(sweep_dir / "commandlines", "# five lines, blocks of two\n" + "echo line PYL_ID task $PYL_ID\n" * 5)
    result = run_cli(["commandlines", "--workdir", "w", "--schedule", "block2"], sweep_dir)
    assert result.returncode == 0, result.stderr
    assert "# tasks completed: 3\n" in result.stdout
    assert (sweep_dir / "w" / "out0").read_text() == "line 0 task 0\nline 1 task 0\n"
    assert (sweep_dir / "w" / "out2").read_text() == "line 4 task 2\n"
    assert "0 line=2 exit=0" in (sweep_dir / "queuestate").read_text()
    assert " .. commandlines: " in result.stdout and "2 lines per task (schedule=block)" in result.stdout


def test_start_interval_paces_the_starts(sweep_dir: Path) -> None:
    write(sweep_dir / "commandlines", "true\n" * 4)
    result = run_cli(["commandlines", "--workdir", "w", "--cores-per-node", "4", "--start-interval", "0.4"], sweep_dir)
    assert result.returncode == 0, result.stderr
    starts = sorted(float(row["start"]) for row in read_joblog(sweep_dir / "w" / "joblog"))
    gaps = [b - a for a, b in zip(starts, starts[1:], strict=False)]
    assert min(gaps) >= 0.35, gaps  # a lower bound only: a loaded machine makes the gaps longer, never shorter


def test_workdir_default_name_and_queuestate_option(sweep_dir: Path) -> None:
    write(sweep_dir / "commandlines", "true\n")
    result = run_cli(["commandlines", "--queuestate", "qs5"], sweep_dir)
    assert result.returncode == 0, result.stderr
    workdirs = [p.name for p in sweep_dir.iterdir() if p.name.startswith("pylauncher_tmp")]
    assert len(workdirs) == 1
    assert (sweep_dir / "qs5").exists() and not (sweep_dir / "queuestate").exists()


def test_slurm_job_id_names_the_workdir(sweep_dir: Path) -> None:
    write(sweep_dir / "commandlines", "true\n")
    end = str(int(time.time()) + 3600)  # (as Slurm sets it: no squeue asked, which waits 10 s without a controller)
    result = run_cli(["commandlines"], sweep_dir, SLURM_JOB_ID="424242", SLURM_JOB_END_TIME=end)
    assert result.returncode == 0, result.stderr
    assert (sweep_dir / "pylauncher_tmp424242" / "out0").exists()


BAD_INPUTS = [
    ("missing file", None, ["nothere"], "nothere: no such commandlines file"),
    ("empty file", "", ["commandlines"], "commandlines: no tasks"),
    ("comments only", "# x\n\n", ["commandlines"], "commandlines: no tasks"),
    ("binary", "ab\x00cd\n", ["commandlines"], "binary file"),
    (
        "bad prefix",
        "2,ok\nx,bad\n",
        ["commandlines", "--cores", "file"],
        "commandlines:2: bad core count before ',': must be a whole number",
    ),
    (
        "zero prefix",
        "0,bad\n",
        ["commandlines", "--cores", "file"],
        "commandlines:1: bad core count before ',': must be a whole number from 1 to 10,000,000, not '0'",
    ),
    ("missing prefix", "bad\n", ["commandlines", "--cores", "file"], "commandlines:1: missing 'N,'"),
    (
        "too wide",
        "# c\n1,ok\n9,wide\n",
        ["commandlines", "--cores", "file", "--cores-per-node", "4"],
        "commandlines:3: task 1 needs 9 cores, but the largest node has 4",
    ),
    ("too wide fixed", "true\n", ["commandlines", "--cores", "9", "--cores-per-node", "2"], "needs 9 cores"),
    (
        "unknown cores",
        "true\n",
        ["commandlines", "--cores", "lots"],
        "--cores must be a whole number from 1 to 10,000,000, 'node' or 'file'",
    ),
    ("bad schedule", "true\n", ["commandlines", "--schedule", "blocks"], "--schedule must be 'default' or 'blockN'"),
    ("bad start interval", "true\n", ["commandlines", "--start-interval", "-1"], "--start-interval must be a number"),
    ("bad delay", "true\n", ["commandlines", "--delay", "-1"], "--delay must be a number of seconds from 0 to"),
    ("corrupt queuestate", None, ["--resume", "bad_state"], "bad_state:1: task line before any of the sections"),
    ("missing queuestate", None, ["--resume", "nostate"], "nostate: no such queuestate file"),
]


@pytest.mark.parametrize(("name", "content", "args", "message"), BAD_INPUTS, ids=[b[0] for b in BAD_INPUTS])
def test_bad_input_one_line_exit_2_nothing_written(
    sweep_dir: Path, name: str, content: str | None, args: list[str], message: str
) -> None:
    if content is not None:
        (sweep_dir / "commandlines").write_bytes(content.encode())
    (sweep_dir / "bad_state").write_text("garbage line\n")
    before = sorted(p.name for p in sweep_dir.iterdir())
    result = run_cli([*args, "--workdir", "w"], sweep_dir)
    assert result.returncode == 2, (result.stdout, result.stderr)
    lines = result.stderr.strip().split("\n")
    assert len(lines) == 1 and "Traceback" not in result.stderr, result.stderr
    assert message in lines[0], lines[0]
    assert sorted(p.name for p in sweep_dir.iterdir()) == before, "bad input must write nothing"


def test_existing_workdir_is_refused(sweep_dir: Path) -> None:
    write(sweep_dir / "commandlines", "true\n")
    (sweep_dir / "w").mkdir()
    result = run_cli(["commandlines", "--workdir", "w"], sweep_dir)
    assert result.returncode == 2
    assert "w: workdir already exists" in result.stderr
    assert not (sweep_dir / "queuestate").exists()


def test_unwritable_workdir_parent_is_refused(sweep_dir: Path) -> None:
    write(sweep_dir / "commandlines", "true\n")
    result = run_cli(["commandlines", "--workdir", "no/such/parent/w"], sweep_dir)
    assert result.returncode == 2 and "cannot create workdir" in result.stderr


@pytest.mark.parametrize("workdir", ["X", "X.journal", "X.lock"])
def test_a_workdir_named_as_the_queuestate_or_its_files_is_refused_before_anything_starts(
    sweep_dir: Path, workdir: str
) -> None:
    """A user walk: ``--workdir X --queuestate X`` started the tasks, then failed to write the queuestate
    (exit 3), leaving X holding their files, which refused the corrected rerun."""
    write(sweep_dir / "commandlines", "echo PYL_ID >> ran\n" * 2)
    before = sorted(p.name for p in sweep_dir.iterdir())
    result = run_cli(["commandlines", "--workdir", workdir, "--queuestate", "X"], sweep_dir)
    assert result.returncode == 2, (result.stdout, result.stderr)
    assert result.stdout == "" and result.stderr.count("\n") == 1, result.stderr
    assert f"{workdir}: cannot be the workdir: it is the queuestate" in result.stderr
    assert sorted(p.name for p in sweep_dir.iterdir()) == before, "nothing started, nothing written"


def test_a_queuestate_in_a_folder_that_does_not_exist_is_one_line_naming_the_folder(sweep_dir: Path) -> None:
    """As for --workdir, the command line creates no folder of a name given to it: a typo would make a tree."""
    write(sweep_dir / "commandlines", "true\n")
    result = run_cli(["commandlines", "--workdir", "w", "--queuestate", "states/qs"], sweep_dir)
    assert result.returncode == 2 and result.stderr.count("\n") == 1, result.stderr
    assert "states/qs: cannot write the queuestate: its folder states does not exist" in result.stderr
    assert "qs.lock" not in result.stderr and sorted(p.name for p in sweep_dir.iterdir()) == ["commandlines"]


def test_unfinished_queuestate_is_not_overwritten(sweep_dir: Path) -> None:
    write(sweep_dir / "queuestate", "queued\n0: true\nrunning\ncompleted\n")
    write(sweep_dir / "commandlines", "true\n")
    result = run_cli(["commandlines", "--workdir", "w"], sweep_dir)
    assert result.returncode == 2
    assert "holds an unfinished sweep (1 task not run)" in result.stderr
    assert (sweep_dir / "queuestate").read_text().startswith("queued\n")


@pytest.mark.parametrize("given", ["queuestate", "queuestate.journal", "pylauncher_state"])
def test_a_queuestate_given_as_the_commandlines_is_refused_and_left_as_it_was(sweep_dir: Path, given: str) -> None:
    """``python -m mpilauncher queuestate``, ``--resume`` forgotten: its lines ran as commands (``0 line=1
    ... : cmd; rest`` ran ``rest``) and a new sweep's queuestate was written over the finished one."""
    write(sweep_dir / "commandlines", "echo one > ran\ntrue\n")
    assert run_cli(["commandlines", "--workdir", "w1"], sweep_dir).returncode == 0
    write(sweep_dir / "pylauncher_state", "queued\n0: echo again > ran\nrunning\ncompleted\n")
    if given.endswith(".journal"):  # (a finished sweep's is folded into its snapshot: one of a sweep under way)
        write(sweep_dir / given, "#mpilauncher-journal 1 run=r1\nS\t1\t1.000\tnode0\t0\n")
    (sweep_dir / "ran").unlink()
    before = {p.name: p.read_bytes() for p in sweep_dir.iterdir() if p.is_file()}
    result = run_cli([given, "--workdir", "w2"], sweep_dir)
    assert result.returncode == 2, (result.stdout, result.stderr)
    kind = {"queuestate.journal": "queuestate journal", "pylauncher_state": "PyLauncher queuestate"}.get(given, given)
    state = given.removesuffix(".journal")
    what = f"is a {kind}, not a commandlines file: to go on with its sweep, --resume {state}"
    assert result.stderr == f"mpilauncher: error: {given}: {what}\n"
    assert {p.name: p.read_bytes() for p in sweep_dir.iterdir() if p.is_file()} == before, "nothing run or written"


def test_a_byte_order_mark_is_no_part_of_the_first_command(sweep_dir: Path) -> None:
    """Windows editors begin a UTF-8 file with U+FEFF: it was the first command's first word (exit 127),
    or it made a ``#`` comment a task, and ``--cores file`` refused ``'\\ufeff2'``."""
    write(sweep_dir / "commandlines", "\ufeff# sweep\necho bom PYL_ID\n")
    result = run_cli(["commandlines", "--workdir", "w1"], sweep_dir)
    assert result.returncode == 0, result.stderr
    assert (sweep_dir / "w1" / "out0").read_text() == "bom 0\n"
    write(sweep_dir / "per_line", "\ufeff2,echo two PYL_ID\n")
    result = run_cli(["per_line", "--cores", "file", "--workdir", "w2", "--queuestate", "q2"], sweep_dir)
    assert result.returncode == 0, result.stderr
    assert (sweep_dir / "w2" / "out0").read_text() == "two 0\n"


def test_help_and_version() -> None:
    result = run_cli(["--help"], Path("/"))
    assert result.returncode == 0 and "--resume" in result.stdout and "Exit status" in result.stdout
    help_text = " ".join(result.stdout.split())
    assert "python -m mpilauncher report QUEUESTATE" in help_text and "mpilauncher output WORKDIR" in help_text
    version = run_cli(["--version"], Path("/"))
    assert version.returncode == 0 and version.stdout.startswith("mpilauncher ")
    loop = "compiled" if compiled_available() else "Python (the compiled one is not built"
    assert f"\ntask executors' loop: {loop}" in version.stdout


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to make an unreadable file readable again")
def test_unreadable_commandlines(sweep_dir: Path) -> None:
    # root reads everything; a directory stands in for "cannot read"
    (sweep_dir / "commandlines").mkdir()
    result = run_cli(["commandlines", "--workdir", "w"], sweep_dir)
    assert result.returncode == 2 and "is a directory, not a commandlines file" in result.stderr


# -- stop signals outside the run's guard (a user walk: its first and last instants) --------------
def test_a_stop_signal_before_the_run_guards_them_stops_the_run_as_soon_as_it_does(
    sweep_dir: Path, monkeypatch, capfd
) -> None:
    """SIGTERM while the launcher imports or reads the commandlines: it was a silent death (exit 143, the
    sweep's lock left behind) or, for Ctrl-C, a traceback.  Held, it stops the run at its first turn."""
    from mpilauncher import cli
    from mpilauncher.runtime import stop

    write(sweep_dir / "commandlines", "echo ran >> ran\n" * 4)
    monkeypatch.chdir(sweep_dir)
    monkeypatch.setattr(stop, "PENDING", [signal.SIGTERM])  # (as hold_stop_signals records one)
    status = cli.main(["commandlines", "--workdir", "w"])
    err = capfd.readouterr().err
    assert status == 143, err
    assert "mpilauncher: stopped by SIGTERM; resume with: python -m mpilauncher --resume queuestate" in err
    assert not (sweep_dir / "ran").exists() and not (sweep_dir / "queuestate.lock").exists()


def test_a_stop_signal_after_the_run_is_said_and_the_exit_status_stays_the_runs(
    sweep_dir: Path, monkeypatch, capfd
) -> None:
    """SIGTERM as the final statistics were written: exit 143 with nothing said, after a sweep that had
    completed (4 of 15 tries), so a batch script took it for a stopped run; Ctrl-C a traceback."""
    from mpilauncher import cli, launch
    from mpilauncher.runtime import stop

    write(sweep_dir / "commandlines", "true\n")
    monkeypatch.chdir(sweep_dir)
    real_run = launch.run

    def run_then_signal(config, **kwargs):
        result = real_run(config, **kwargs)
        stop.PENDING.extend([signal.SIGTERM, signal.SIGINT, signal.SIGTERM])  # (held, as by hold_stop_signals)
        return result

    monkeypatch.setattr(cli, "run", run_then_signal)
    status = cli.main(["commandlines", "--workdir", "w"])
    err = capfd.readouterr().err
    assert status == 0, err
    assert err.endswith(
        "mpilauncher: note: SIGTERM and SIGINT came after the run had ended: nothing was stopped, the exit status"
        " is the run's\n"
    )


PROBE = """
import builtins, runpy, signal, sys

real_import = builtins.__import__


def spying_import(name, *args, **kwargs):
    if name == "mpilauncher.cli":
        print("SIGTERM", "held" if signal.getsignal(signal.SIGTERM) is not signal.SIG_DFL else "default")
    return real_import(name, *args, **kwargs)


builtins.__import__ = spying_import
sys.argv = ["mpilauncher", "--version"]
runpy.run_module("mpilauncher", run_name="__main__")
"""


def test_the_command_holds_the_stop_signals_from_before_its_imports(sweep_dir: Path) -> None:
    """``python -m mpilauncher`` has its handler in place before it imports the rest of the launcher."""
    (sweep_dir / "probe.py").write_text(PROBE)
    done = subprocess.run([sys.executable, "probe.py"], cwd=sweep_dir, env=launcher_env(), capture_output=True,
                          text=True, timeout=60)  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("SIGTERM held\n"), done.stdout


def test_a_commandlines_file_taken_as_debug_words_is_said_so(sweep_dir: Path) -> None:
    """``--debug cl``: argparse gives ``cl`` to --debug, and the error said only "give either a commandlines
    file or --resume" (a user walk)."""
    write(sweep_dir / "cl", "true\n")
    result = run_cli(["--debug", "cl"], sweep_dir)
    assert result.returncode == 2
    assert result.stderr == (
        "mpilauncher: error: give either a commandlines file or --resume QUEUESTATE: 'cl' was read as --debug's"
        " words (host, job, task, ...); put the commandlines file first: cl --debug WORDS\n"
    )


def test_a_commandlines_file_whose_name_begins_with_a_dash_is_said_how_to_name(sweep_dir: Path) -> None:
    """``python -m mpilauncher -cl``: argparse's whole usage text and "unrecognized arguments: -cl" (a user walk)."""
    write(sweep_dir / "-cl", "echo ran\n")
    result = run_cli(["-cl", "--workdir", "w"], sweep_dir)
    assert result.returncode == 2 and result.stdout == "", result.stdout
    assert result.stderr == (
        "mpilauncher: error: -cl is taken as an option, and there is no such option; to run the commandlines"
        " file -cl: python -m mpilauncher -- -cl (or ./-cl)\n"
    ), result.stderr
    assert not (sweep_dir / "w").exists()
    unknown = run_cli(["--bogus", "-x"], sweep_dir)
    assert unknown.returncode == 2 and unknown.stderr == (
        "mpilauncher: error: unrecognized arguments: --bogus -x (python -m mpilauncher --help lists the options)\n"
    ), unknown.stderr
    ran = run_cli(["--quiet", "--workdir", "w", "--", "-cl"], sweep_dir)
    assert ran.returncode == 0 and (sweep_dir / "w" / "out0").read_text() == "ran\n", ran.stderr


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["commandlines", "--cores"], "argument --cores: expected one argument (python -m mpilauncher --help"),
        (["commandlines", "--re", "q"], "ambiguous option: --re could match --resume, --rerun-failed"),
        (["report"], "the following arguments are required: WORKDIR_OR_QUEUESTATE (python -m mpilauncher report"),
    ],
    ids=["missing-value", "ambiguous", "report-without-sweep"],
)
def test_an_option_argparse_cannot_read_is_one_line_not_the_whole_usage(sweep_dir: Path, args, says) -> None:
    """``--cores`` with its value forgotten was argparse's whole usage text (24 lines) and its own error line,
    not one line naming the flag as every other bad option (a user walk)."""
    write(sweep_dir / "commandlines", "true\n")
    result = run_cli(args, sweep_dir)
    assert result.returncode == 2 and result.stdout == "", result.stdout
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("mpilauncher: error: ") and says in lines[0], result.stderr
    assert sorted(p.name for p in sweep_dir.iterdir()) == ["commandlines"]


def test_an_empty_workdir_or_queuestate_and_a_queuestate_named_as_a_folder_are_refused(sweep_dir: Path) -> None:
    """``--workdir ""`` ran in the default workdir, ``--queuestate qs_dir/`` wrote a file named qs_dir (a user walk)."""
    write(sweep_dir / "commandlines", "true\n")
    for args, says in (
        (["--workdir", ""], "--workdir must name a folder, not ''"),
        (["--queuestate", ""], "--queuestate must name a file, not ''"),
        (
            ["--queuestate", "qs_dir/"],
            "--queuestate must name a file, not 'qs_dir/' (a folder's name: it ends with '/')",
        ),
    ):
        result = run_cli(["commandlines", *args], sweep_dir)
        assert result.returncode == 2 and result.stderr == f"mpilauncher: error: {says}\n", result.stderr
    assert sorted(p.name for p in sweep_dir.iterdir()) == ["commandlines"]


# -- the commands that answer on stdout: a reader gone, a closed or full stdout (a user walk) -------
#: The commands whose whole point is what they write to stdout.
ANSWERS = {
    "report": ["report", "w"],
    "output": ["output", "w", "0-2"],
    "--status": ["--status", "queuestate"],
    "--version": ["--version"],
    "--help": ["--help"],
}


@pytest.fixture(scope="module")
def small_sweep(tmp_path_factory) -> Path:
    where = tmp_path_factory.mktemp("answers")
    write(where / "commandlines", "echo a\necho b\nfalse\n")
    assert run_cli(["commandlines", "--workdir", "w", "--quiet"], where).returncode == 1
    return where


def answer_into(stdout: str, args: list[str], cwd: Path) -> subprocess.CompletedProcess:
    """``python -m mpilauncher ARGS`` with its stdout a pipe whose reader is gone (``| head`` after its
    lines), closed (``>&-``) or full (``>/dev/full``)."""
    command = [sys.executable, "-m", "mpilauncher", *args]
    if stdout != "reader gone":
        command = ["sh", "-c", f'"$@" {stdout}', "sh", *command]
        return subprocess.run(command, cwd=cwd, env=launcher_env(), capture_output=True, text=True, timeout=60)
    read_end, write_end = os.pipe()
    os.close(read_end)
    try:
        return subprocess.run(command, cwd=cwd, env=launcher_env(), stdout=write_end, stderr=subprocess.PIPE,
                              text=True, timeout=60)  # fmt: skip
    finally:
        os.close(write_end)


@pytest.mark.parametrize("command", list(ANSWERS))
def test_an_answer_whose_reader_went_away_ends_quietly(small_sweep: Path, command: str) -> None:
    """``output W 0-2 | head -1``: a BrokenPipeError traceback, exit 1.  Now as Unix tools end: nothing
    said, the status of a process that SIGPIPE ended (128 + 13)."""
    result = answer_into("reader gone", ANSWERS[command], small_sweep)
    assert result.stderr == "" and result.returncode == 128 + signal.SIGPIPE, result.stderr


@pytest.mark.parametrize("stdout", [">&-", ">/dev/full"], ids=["stdout closed", "stdout on a full device"])
@pytest.mark.parametrize("command", list(ANSWERS))
def test_an_answer_that_cannot_be_written_is_one_line_and_a_failure(
    small_sweep: Path, command: str, stdout: str
) -> None:
    """A traceback (AttributeError on a closed stdout, OSError on a full one), "internal: ... (please report
    it)", or silence and exit 0 (``--help``): the answer is lost, and the command must say so."""
    result = answer_into(stdout, ANSWERS[command], small_sweep)
    why = "it is closed" if stdout == ">&-" else "No space left on device"
    assert result.stderr == f"mpilauncher: error: cannot write to standard output ({why})\n", result.stderr
    assert result.returncode == 3


def test_the_status_of_a_sweep_of_one_task_says_one_task(sweep_dir: Path) -> None:
    """``--status`` began "queuestate: 1 tasks" (its singulars were chosen by hand, this one forgotten)."""
    write(sweep_dir / "commandlines", "true\n")
    assert run_cli(["commandlines", "-q"], sweep_dir).returncode == 0
    status = run_cli(["--status", "queuestate"], sweep_dir)
    assert status.returncode == 0 and status.stdout.startswith("queuestate: 1 task\n"), status.stdout
