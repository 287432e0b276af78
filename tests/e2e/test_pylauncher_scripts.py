"""PyLauncher users' scripts, written the way they write them, run as they run them (issue 11).

Every pattern of PyLauncher's example scripts and user guide, with only the
import line changed (``import mpilauncher as pylauncher``), run as
``python script.py`` in a fresh directory.  These are our own scripts, not
PyLauncher's tests; the job id comes from ``SLURM_JOBID`` as their scripts read it.
"""

from __future__ import annotations

import collections
import re
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from mpilauncher.report.joblog import read as read_joblog
from tests.conftest import launcher_env

JOB = "4242"


def script(directory: Path, body: str, name: str = "example_launcher.py") -> Path:
    path = directory / name
    path.write_text("import os\nimport mpilauncher as pylauncher\n" + textwrap.dedent(body))
    return path


def run_script(directory: Path, body: str, timeout: float = 120, **env: str) -> subprocess.CompletedProcess:
    """``python example_launcher.py`` in ``directory``, as a job script would run it."""
    path = script(directory, body)
    return subprocess.run(
        [sys.executable, path.name], cwd=directory, env=launcher_env(SLURM_JOBID=JOB, **env),
        capture_output=True, text=True, timeout=timeout,
    )  # fmt: skip


def start_script(directory: Path, body: str) -> subprocess.Popen:
    path = script(directory, body)
    return subprocess.Popen(
        [sys.executable, path.name], cwd=directory, env=launcher_env(SLURM_JOBID=JOB),
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip


def wait_for(condition, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.05)


def notes(result: subprocess.CompletedProcess) -> list[str]:
    return [line for line in result.stderr.splitlines() if line.startswith("mpilauncher: note: ")]


def commandlines(directory: Path, text: str, name: str = "commandlines") -> None:
    (directory / name).write_text(text)


# -- the debug strings of PyLauncher's examples: none may stop the run (item 1) ---------
@pytest.mark.parametrize(
    "debug",
    ["host+exec+task+job+cmd", "host+jobs+exec", "job+host+task+exec+cmd", "job+command", "ssh+host+exec+job",
     "host+queue+exec+job+task", "job+task+host+exec+command", "job"],
)  # fmt: skip
def test_the_examples_debug_strings_run_and_trace(sweep_dir: Path, debug: str) -> None:
    commandlines(sweep_dir, "####\n" + "mkdir -p pylauncher_output && cd pylauncher_output && touch PYLTID\n" * 4)
    result = run_script(
        sweep_dir,
        f"""
        example = "ClassicLauncher"
        pylauncher.ClassicLauncher\\
            ("commandlines",
             # optional spec of output dir:
             workdir=f"pylauncher_tmp_{{example}}_{{ os.environ['SLURM_JOBID'] }}",
             delay=.1,
             debug="{debug}")
        """,
    )
    assert result.returncode == 0, result.stderr
    assert sorted(p.name for p in (sweep_dir / "pylauncher_output").iterdir()) == ["0", "1", "2", "3"]
    assert "# tasks completed: 4" in result.stdout
    assert "type=ClassicLauncher" in result.stdout and f"pylauncher_tmp_ClassicLauncher_{JOB}" in result.stdout
    if debug != "job+command" and "job" in debug or "queue" in debug:
        assert "tick 1\nQueue:" in result.stdout
    debug_notes = [n for n in notes(result) if "debug=" in n]
    assert len(debug_notes) == (1 if "ssh" in debug else 0), result.stderr  # ssh alone traces nothing here
    traced = any(word in debug for word in ("task", "exec", "cmd", "command"))
    assert ("mpilauncher: task 3 ended: ok (exit 0)" in result.stderr) == traced, result.stderr


# -- the launcher calls of PyLauncher's examples and user guide ----------------------------
EXAMPLES = {
    "core": ("echo $OMP_NUM_THREADS\n" * 2, 'pylauncher.ClassicLauncher("commandlines", cores=2, corespernode=2,'
             ' workdir=workdir, debug="host+job+exec")', "2\n"),
    "node": ("echo $OMP_NUM_THREADS\n" * 2, 'pylauncher.ClassicLauncher("commandlines", cores="node", corespernode=2,'
             ' workdir=workdir, debug="job+host+exec")', "2\n"),
    "filecore": ("2,echo $OMP_NUM_THREADS\n1,echo one\n", 'print(f" .. input: {commandlines}")\n'
                 'pylauncher.ClassicLauncher("commandlines", cores="file", corespernode=2, workdir=workdir,'
                 ' debug="host+exec+job+command")', "2\n"),
    "gpu": ("echo $CUDA_VISIBLE_DEVICES\n" * 2, 'gpuspernode = os.environ.get("GPUSPERNODE", 1)\n'
            'pylauncher.GPULauncher("commandlines", gpuspernode=gpuspernode, workdir=workdir,'
            ' debug="ssh+host+exec+job")', "0\n"),
    "fileibrun": ("2,hostname\n1,hostname\n", 'pylauncher.IbrunLauncher("commandlines", cores="file", corespernode=2,'
                  ' mpi_starter="mpiexec", workdir=workdir, debug="job+host+task+exec+cmd")', None),
}  # fmt: skip


@pytest.mark.parametrize("example", EXAMPLES)
def test_the_launcher_calls_of_pylaunchers_examples(sweep_dir: Path, example: str) -> None:
    lines, call, first_output = EXAMPLES[example]
    commandlines(sweep_dir, lines)
    body = f'commandlines = "commandlines"\nworkdir = os.path.abspath("scratch/pylauncher_out{JOB}")\n{call}\n'
    (sweep_dir / "scratch").mkdir()
    result = run_script(sweep_dir, body, GPUSPERNODE="2")
    assert result.returncode == 0, result.stderr
    out0 = (sweep_dir / "scratch" / f"pylauncher_out{JOB}" / "out0").read_text()
    if first_output is not None:
        assert out0 == first_output
    else:
        assert len(out0.split()) == 2, "two ranks"
    assert "Launcherjob run completed." in result.stdout


# -- schedule="blockN" (item 4) ------------------------------------------------------------
def test_block_schedule_runs_blocks_of_lines_as_example_block_launcher_does(sweep_dir: Path) -> None:
    # as PyLauncher's blockcommandlines: each line cds back, for the lines of a block share one shell
    commandlines(sweep_dir, "mkdir -p out && cd out && touch PYLTID && echo PYLTID in $PYL_ID && cd ..\n" * 7)
    result = run_script(
        sweep_dir,
        """
        pylauncher.ClassicLauncher("commandlines", workdir="w", schedule="block3", debug="host+exec+task+job+cmd")
        """,
    )
    assert result.returncode == 0, result.stderr
    assert sorted(int(p.name) for p in (sweep_dir / "out").iterdir()) == list(range(7)), "every line ran"
    assert "# tasks completed: 3" in result.stdout, "7 lines in blocks of 3: 3 tasks"
    assert (sweep_dir / "w" / "out1").read_text() == "3 in 1\n4 in 1\n5 in 1\n"
    assert any("schedule='block3'" in n and "own number" in n for n in notes(result))


# -- delay, taskmaxruntime, non-zero exits: the differences are said once (item 4) --------
def test_a_raised_delay_paces_task_starts_as_pylauncher_did(sweep_dir: Path) -> None:
    commandlines(sweep_dir, "true\n" * 3)
    result = run_script(sweep_dir, 'pylauncher.ClassicLauncher("commandlines", workdir="w", delay=0.8)\n')
    assert result.returncode == 0, result.stderr
    starts = sorted(float(r["start"]) for r in read_joblog(sweep_dir / "w" / "joblog"))
    assert min(b - a for a, b in zip(starts, starts[1:], strict=False)) >= 0.7, starts
    assert any("delay=0.8: at most one task starts every 0.8 s" in n for n in notes(result))


@pytest.mark.parametrize("delay", ["0", "0.0001"])
def test_a_delay_of_zero_or_tiny_runs_at_the_shortest_tick_and_its_notes_agree(sweep_dir: Path, delay: str) -> None:
    """PyLauncher sleeps ``delay`` (0 included); ``delay=0`` was refused (exit 2) while 0.0001 ran, and for
    0.0001 one note said "taken as 0.01 s", the next "the trace ticks every 0.0001 s" (a user walk)."""
    commandlines(sweep_dir, "true\n" * 3)
    result = run_script(sweep_dir, f'pylauncher.ClassicLauncher("commandlines", workdir="w", delay={delay})\n')
    assert result.returncode == 0, result.stderr
    said = [n for n in notes(result) if "delay" in n]
    assert any(f"a delay of {float(delay):g} s is taken as 0.01 s" in n for n in said), said
    ticks = [n for n in said if "the trace ticks every" in n]
    assert ticks and all("the trace ticks every 0.01 s" in n for n in ticks), said


def test_taskmaxruntime_kills_and_failures_count_as_aborted_each_said_once(sweep_dir: Path) -> None:
    commandlines(sweep_dir, "sleep 30\nexit 3\ntrue\n")
    result = run_script(
        sweep_dir,
        """
        example = "TruncateLauncher"
        for attempt in range(2):
            pylauncher.ClassicLauncher(
                "commandlines",
                workdir=f"pylauncher_tmp_{example}_{attempt}",
                queuestate=f"qs{attempt}",
                taskmaxruntime=1,delay=.1,debug="job+host")
        """,
    )
    assert result.returncode == 0, result.stderr
    rows = {r["id"]: r for r in read_joblog(sweep_dir / "pylauncher_tmp_TruncateLauncher_0" / "joblog")}
    assert rows["0"]["status"] == "timeout" and rows["1"]["status"] == "failed" and rows["2"]["status"] == "ok"
    assert result.stdout.count("tasks aborted: 2") == 2
    said = notes(result)
    assert sum("taskmaxruntime=1" in n for n in said) == 1, "said once, not at every call"
    assert sum("count as aborted, not completed" in n for n in said) == 1


def test_taskmaxruntime_zero_on_a_resume_switches_the_sweeps_timeout_off(sweep_dir: Path) -> None:
    """A user walk: ``ResumeClassicLauncher("queuestate", taskmaxruntime=0)`` said "the sweep's
    taskmaxruntime= of 1 s holds" and killed the task at 1 s again: 0 was taken for "not given", where
    ``--task-timeout 0`` (and the keyword table: "0: no limit") switch the sweep's timeout off."""
    commandlines(sweep_dir, "sleep 1.5\n")
    result = run_script(
        sweep_dir,
        """
        first = pylauncher.ClassicLauncher("commandlines", workdir="w", taskmaxruntime=1)
        again = pylauncher.ResumeClassicLauncher("queuestate", rerun_failed=True, taskmaxruntime=0)
        print("statuses:", first.exit_status, again.exit_status)
        """,
    )
    assert result.returncode == 0, result.stderr
    assert "statuses: 1 0" in result.stdout, result.stderr
    assert [r["status"] for r in read_joblog(sweep_dir / "w" / "joblog")] == ["timeout", "ok"]
    assert not any("holds" in n for n in notes(result)), notes(result)
    assert '"task_timeout"' not in (sweep_dir / "queuestate").read_text()


# -- keywords PyLauncher's launchers accept (item 5) ---------------------------------------
def test_pylauncher_keywords_are_accepted_with_their_meaning_or_a_note(sweep_dir: Path) -> None:
    commandlines(sweep_dir, "echo one\necho two\necho three\n")
    result = run_script(
        sweep_dir,
        """
        pylauncher.ClassicLauncher("commandlines", 4,  # an extra positional argument, ignored by PyLauncher
            workdir="w", catch_output=False, timeout=10, numactl="core", ppn=4, nactive=2, queue="normal",
            dependencies=False, hfswitch="-machinefile", resume="no", gpuspernode=0, corespernode=2,
            maxruntime=0, taskmaxruntime=0, append_output="all_output")
        pylauncher.ClassicLauncher("commandlines", workdir="w2", resume="0", gather_output="gathered", start_over=True)
        """,
    )
    assert result.returncode == 0, result.stderr
    assert (sweep_dir / "all_output").read_text() == "one\ntwo\nthree\n", "each task's output, in task order"
    assert (sweep_dir / "gathered").read_text() == "one\ntwo\nthree\n"
    for work in ("w", "w2"):  # what the keywords meant: output in one place, not a file a task
        names = [p.name for p in (sweep_dir / work).iterdir()]
        assert not any(re.fullmatch(r"(out|exec)\d+", n) for n in names), names
        assert any(n.startswith("output.") for n in names), names
    said = "\n".join(notes(result))
    for word in ("extra positional arguments (4,)", "catch_output=False", "timeout=", "ppn=", "nactive=", "queue=",
                 "dependencies=", "hfswitch="):  # fmt: skip
        assert word in said, word
    assert "Host pool of size 2." in result.stdout


def test_resume_zero_or_no_is_not_a_resume_and_resume_one_is(sweep_dir: Path) -> None:
    commandlines(sweep_dir, "echo PYL_ID\n")
    (sweep_dir / "oldstate").write_text("queued\n0: echo resumed\nrunning\ncompleted\n")
    result = run_script(
        sweep_dir,
        """
        pylauncher.ClassicLauncher("commandlines", workdir="w1", resume=0, queuestate="q1")
        pylauncher.ClassicLauncher("oldstate", workdir="w2", resume="yes")
        """,
    )
    assert result.returncode == 0, result.stderr
    assert (sweep_dir / "w1" / "out0").read_text() == "0\n"
    assert (sweep_dir / "w2" / "out0").read_text() == "resumed\n"
    assert any("resume=0 means no here" in n for n in notes(result))


def test_a_misspelt_keyword_is_one_line_naming_the_right_one(sweep_dir: Path) -> None:
    commandlines(sweep_dir, "true\n")
    result = run_script(sweep_dir, 'pylauncher.ClassicLauncher("commandlines", taskmaxrunime=30)\n')
    assert result.returncode == 2
    assert result.stderr == (
        "mpilauncher: error: ClassicLauncher: unknown keyword taskmaxrunime= (did you mean taskmaxruntime=?);"
        " the keywords are listed in the README's migration table\n"
    )
    assert sorted(p.name for p in sweep_dir.iterdir()) == ["commandlines", "example_launcher.py"], "nothing written"


# -- the API does not end the script (item 6) ---------------------------------------------
def test_maxruntime_returns_what_completed_what_is_left_and_how_to_resume(sweep_dir: Path) -> None:
    commandlines(sweep_dir, "sleep 0.3 && echo PYL_ID >> ran\n" * 10)
    result = run_script(
        sweep_dir,
        """
        result = pylauncher.ClassicLauncher("commandlines", workdir="w", corespernode=1, maxruntime=1)
        print("post-processing runs:", result.exit_status, result.completed + result.left, result.resume_command)
        assert 0 < result.completed < 10 and result.interrupted
        final = pylauncher.ResumeClassicLauncher("queuestate")
        print("after resume:", final.exit_status, final.completed, final.left)
        """,
    )
    assert result.returncode == 0, result.stderr
    assert "post-processing runs: 4 10 ResumeClassicLauncher('queuestate')" in result.stdout
    assert "after resume: 0 10 0" in result.stdout
    assert collections.Counter((sweep_dir / "ran").read_text().split()) == {str(i): 1 for i in range(10)}
    (line,) = [x for x in result.stderr.splitlines() if "left; resume with" in x]
    assert line.startswith("mpilauncher: reached maxruntime= of 1 s: ")  # (the script's words, not the CLI's)


def test_ctrl_c_raises_keyboard_interrupt_after_the_state_is_saved(sweep_dir: Path) -> None:
    commandlines(sweep_dir, "sleep 30\n" * 3)
    proc = start_script(
        sweep_dir,
        """
        try:
            pylauncher.ClassicLauncher("commandlines", workdir="w", corespernode=2)
        except KeyboardInterrupt:
            print("caught Ctrl-C; state saved:", "running" in open("queuestate").read())
        """,
    )
    wait_for(lambda: (sweep_dir / "w" / "out1").exists())
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    assert "caught Ctrl-C; state saved: True" in out
    assert "stopped by SIGINT: 0 tasks completed, 3 left; resume with ResumeClassicLauncher('queuestate')" in err


def test_sigterm_ends_the_script_with_143_after_saving_the_state(sweep_dir: Path) -> None:
    commandlines(sweep_dir, "sleep 30\n" * 2)
    proc = start_script(
        sweep_dir, 'pylauncher.ClassicLauncher("commandlines", workdir="w", corespernode=2)\nprint("post")\n'
    )
    wait_for(lambda: (sweep_dir / "w" / "out1").exists())
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 128 + signal.SIGTERM, err
    assert "post" not in out and "Traceback" not in err
    assert "\nrunning\n0 " in (sweep_dir / "queuestate").read_text()


def test_slurms_early_warning_sigusr1_returns_like_a_time_limit(sweep_dir: Path) -> None:
    commandlines(sweep_dir, "sleep 30\n" * 2)
    proc = start_script(
        sweep_dir,
        """
        result = pylauncher.ClassicLauncher("commandlines", workdir="w", corespernode=2)
        print("post-processing:", result.exit_status, result.left, result.resume_command)
        """,
    )
    wait_for(lambda: (sweep_dir / "w" / "out1").exists())
    proc.send_signal(signal.SIGUSR1)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    assert f"post-processing: {128 + signal.SIGUSR1} 2 ResumeClassicLauncher('queuestate')" in out


def test_bad_input_is_one_line_and_status_2_unless_the_script_catches_it(sweep_dir: Path) -> None:
    uncaught = run_script(sweep_dir, 'pylauncher.ClassicLauncher("no_such_file", cores=2)\nprint("not reached")\n')
    assert uncaught.returncode == 2 and uncaught.stdout == ""
    assert uncaught.stderr.count("\n") == 1 and "Traceback" not in uncaught.stderr
    assert uncaught.stderr.startswith("mpilauncher: error: no_such_file: ")
    caught = run_script(
        sweep_dir,
        """
        try:
            pylauncher.ClassicLauncher("no_such_file")
        except ValueError as err:
            print("caught ValueError:", isinstance(err, pylauncher.LauncherException),
                  isinstance(err, pylauncher.InputError))
        try:
            pylauncher.ClassicLauncher("no_such_file", cores="lots")
        except pylauncher.LauncherException as err:
            print("caught LauncherException:", err)
        """,
    )
    assert caught.returncode == 0, caught.stderr
    assert "caught ValueError: True True" in caught.stdout
    assert "caught LauncherException: cores= must be a whole number from 1" in caught.stdout


def test_a_queuestate_in_a_new_folder_gets_its_folder_as_pylauncher_made_it(sweep_dir: Path) -> None:
    """PyLauncher's queuestate_update made the queuestate's folder (os.makedirs): scripts name one."""
    commandlines(sweep_dir, "echo PYL_ID >> ran\n" * 2)
    (sweep_dir / "taken").mkdir()
    taken = 'pylauncher.ClassicLauncher("commandlines", queuestate="states/qs", workdir="taken")'
    refused = run_script(sweep_dir, taken)
    assert refused.returncode == 2 and refused.stderr.count("\n") == 1, refused.stderr
    assert not (sweep_dir / "states").exists(), "a refused run leaves no folder behind"
    same = run_script(sweep_dir, 'pylauncher.ClassicLauncher("commandlines", queuestate="X", workdir="X")')
    assert same.returncode == 2 and "X: cannot be the workdir: it is the queuestate" in same.stderr, same.stderr
    result = run_script(sweep_dir, 'pylauncher.ClassicLauncher("commandlines", queuestate="states/qs")')
    assert result.returncode == 0, result.stderr
    assert "completed\n" in (sweep_dir / "states" / "qs").read_text()
    assert sorted((sweep_dir / "ran").read_text().split()) == ["0", "1"]


def test_a_queuestate_named_as_a_folder_or_an_empty_name_is_one_line(sweep_dir: Path) -> None:
    """``queuestate="qs_dir/"`` wrote a file named qs_dir (PyLauncher: IsADirectoryError), ``workdir=""`` ran in
    the default workdir (a user walk)."""
    commandlines(sweep_dir, "echo PYL_ID >> ran\n")
    for call, says in (
        ('queuestate="qs_dir/"', "queuestate= must name a file, not 'qs_dir/' (a folder's name: it ends with '/')"),
        ('workdir=""', "workdir= must name a folder, not ''"),
        ('queuestate=""', "queuestate= must name a file, not ''"),
    ):
        result = run_script(sweep_dir, f'pylauncher.ClassicLauncher("commandlines", {call})')
        assert result.returncode == 2 and result.stderr == f"mpilauncher: error: {says}\n", result.stderr
    assert sorted(p.name for p in sweep_dir.iterdir()) == ["commandlines", "example_launcher.py"]


def test_a_run_result_prints_short(sweep_dir: Path) -> None:
    """``print(result)`` showed every task's dispatch latency (a user walk)."""
    commandlines(sweep_dir, "true\n" * 40)
    result = run_script(sweep_dir, 'print("RESULT", pylauncher.ClassicLauncher("commandlines", workdir="w"))')
    assert result.returncode == 0, result.stderr
    (line,) = [x for x in result.stdout.splitlines() if x.startswith("RESULT ")]
    assert "dispatch_latencies=<40 values>" in line and len(line) < 800, line
    for shown in ("exit_status=0", "completed=40", "workdir=PosixPath('w')", "queuestate=PosixPath('queuestate')"):
        assert shown in line, line


def test_tasks_per_node_counts_the_tasks_that_ended_as_pylauncher_did(sweep_dir: Path) -> None:
    """10 completed and 2 interrupted on 2 slots gave "max: 6, avg: 6": PyLauncher counted a task on its slot when
    it ended (the slot's release), so a task still running at the stop was not counted (a user walk)."""
    commandlines(sweep_dir, "sleep 0.05\n" * 10 + "sleep 30\n" * 2)
    result = run_script(
        sweep_dir, 'pylauncher.ClassicLauncher("commandlines", workdir="w", corespernode=2, maxruntime=2)'
    )
    assert result.returncode == 0, result.stderr
    assert "# tasks completed: 10\n" in result.stdout, result.stdout
    assert "Number of tasks executed per node:\nmax: 5\navg: 5\n" in result.stdout, result.stdout


# -- re-running the same script continues an unfinished run (item 7) -----------------------
def test_resubmitting_the_same_script_continues_until_the_sweep_is_done(sweep_dir: Path) -> None:
    commandlines(sweep_dir, "sleep 0.3 && echo PYL_ID >> ran\n" * 12)
    body = 'pylauncher.ClassicLauncher("commandlines", corespernode=2, maxruntime=1)\n'
    runs = []
    for _ in range(8):
        runs.append(run_script(sweep_dir, body))
        assert runs[-1].returncode == 0, runs[-1].stderr
        if "Launcherjob run completed." in runs[-1].stdout:
            break
    assert len(runs) >= 2 and "Launcherjob run completed." in runs[-1].stdout
    assert all("holds an unfinished run of these commandlines" in r.stderr for r in runs[1:])
    assert collections.Counter((sweep_dir / "ran").read_text().split()) == {str(i): 1 for i in range(12)}
    assert len([p for p in sweep_dir.iterdir() if p.name.startswith("pylauncher_tmp")]) == 1, "one workdir"


# -- launchers PyLauncher has (item 2) -------------------------------------------------------
def test_local_launcher_runs_nhosts_at_a_time_here_even_inside_a_multi_node_job(sweep_dir: Path) -> None:
    commandlines(sweep_dir, "sleep 0.3\n" * 6)
    result = run_script(
        sweep_dir,
        """
        ncores = 3
        example = "LocalLauncher"
        pylauncher.LocalLauncher(
            "commandlines", ncores,
             # optional spec of output dir:
             workdir=f"pylauncher_tmp_{example}_{ os.environ['SLURM_JOBID'] }",
            debug="job")
        """,
        SLURM_JOB_ID=JOB, SLURM_JOB_NUM_NODES="2", SLURM_JOB_NODELIST="nodea,nodeb", SLURM_JOB_CPUS_PER_NODE="8(x2)",
        SLURM_JOB_END_TIME=str(int(time.time()) + 3600),
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "re-launching" not in result.stderr, "LocalLauncher stays on this machine"
    assert "Host pool of size 3." in result.stdout and "type=LocalLauncher" in result.stdout


def test_remote_launcher_on_this_machine_and_refused_for_other_hosts(sweep_dir: Path) -> None:
    commandlines(sweep_dir, "true\n" * 2)
    result = run_script(
        sweep_dir,
        """
        pylauncher.RemoteLauncher("commandlines", ["localhost", "localhost"], ppn=2, workdir="w")
        """,
    )
    assert result.returncode == 0, result.stderr
    assert "Host pool of size 4." in result.stdout
    other = run_script(sweep_dir, 'pylauncher.RemoteLauncher("commandlines", ["c401-001", "c401-002"], workdir="w2")\n')
    assert other.returncode == 2 and other.stderr.count("\n") == 1
    assert "are not this machine nor the nodes of this job" in other.stderr and "not ssh" in other.stderr


@pytest.mark.parametrize(
    ("call", "says"),
    [
        ('pylauncher.MICLauncher("commandlines", cores=1)', "Xeon Phi"),
        ('pylauncher.DirectoryCommandlineGenerator("dirtest", "direxec")',
         "DirectoryCommandlineGenerator (PyLauncher) is not offered by mpilauncher: write a CommandlineGenerator"),
    ],
)  # fmt: skip
def test_launchers_and_objects_not_offered_say_so_in_one_line(sweep_dir: Path, call: str, says: str) -> None:
    commandlines(sweep_dir, "true\n")
    result = run_script(sweep_dir, call + "\n")
    assert result.returncode == 2 and result.stderr.count("\n") == 1 and says in result.stderr, result.stderr
    assert not (sweep_dir / "w").exists()


def test_submit_launcher_to_a_partition_slurm_does_not_have_is_one_line_and_writes_nothing(sweep_dir: Path) -> None:
    """The user guide's call with a TACC partition: refused before anything is written (``sbatch --test-only``);
    where there is no Slurm at all, because there is no sbatch; where the controller is down (the local
    cluster not started yet), because it cannot be reached: never a submitter waiting silently."""
    commandlines(sweep_dir, "true\n")
    call = 'pylauncher.SubmitLauncher("commandlines", "-A proj -N 1 -n 1 -p skx -t 0:5:0", nactive=2, workdir="w")\n'
    result = run_script(sweep_dir, call)
    assert result.stderr.count("\n") == 1, result.stderr
    refused = "Slurm would refuse the jobs: invalid partition" in result.stderr or "sbatch not found" in result.stderr
    unreachable = "cannot reach Slurm's controller" in result.stderr
    assert (result.returncode, refused or unreachable) == (3 if unreachable else 2, True), result.stderr
    assert sorted(p.name for p in sweep_dir.iterdir()) == ["commandlines", "example_launcher.py"]


def test_mpi_launcher_runs_mpi_tasks_with_their_starter(sweep_dir: Path) -> None:
    # PYL_MPIEXEC marks where the starter goes; the rest of the line runs on every rank (see the README)
    commandlines(sweep_dir, "mkdir -p pyl_out/PYL_ID && cd pyl_out/PYL_ID && PYL_MPIEXEC hostname >> out\n" * 2)
    result = run_script(
        sweep_dir,
        """
        pylauncher.MPILauncher("commandlines", cores=2, corespernode=2, hfswitch="-machinefile",
                               mpi_starter="mpiexec", workdir="w", debug="job+host+task+exec")
        """,
    )
    assert result.returncode == 0, result.stderr
    assert [len((sweep_dir / "pyl_out" / str(i) / "out").read_text().split()) for i in range(2)] == [2, 2]
    assert "MPI tasks" in result.stdout


def test_dynamic_launcher_as_example_dynamic_launcher_uses_it(sweep_dir: Path) -> None:
    result = run_script(
        sweep_dir,
        """
        import random
        import time
        # set debug mode
        debug="host+job+command+exec"
        job = pylauncher.DynamicLauncher(
             workdir=f"pylauncher_tmp_dynamic_{ os.environ['SLURM_JOBID'] }",
            debug=debug,cores=1,delay=.05 )
        icmd = 0
        job.starttime = time.time()
        while True:
            icmd = icmd+1
            if icmd<=15:
                cmdline = "sleep 0."+str( random.randint(1,icmd%3+1) ) + " && echo done"
                job.append( cmdline )
            elif icmd==20:
                job.finish()
            print( f"Cycle {job.tock}:\\n{str(job.queue)}" )
            job.tick()
            if job.finished():
                print( f"dynamic job break" )
                break
        job.hostpool.release()
        print(job.final_report())
        """,
    )
    assert result.returncode == 0, result.stderr
    assert "Cycle 0:\ncompleted   0 jobs: \naborted     0 jobs: \nqueued      1 jobs: 0\n" in result.stdout
    assert "queued     15 jobs: 0-14" in result.stdout and "dynamic job break" in result.stdout
    assert result.stdout.count("# tasks completed: 15") == 1, "the statistics once: the script prints them"
    assert (sweep_dir / f"pylauncher_tmp_dynamic_{JOB}" / "out14").read_text() == "done\n"


# -- the objects extended scripts use (item 3) ---------------------------------------------
def test_commandlines_from_a_list_a_generator_or_commandline_objects(sweep_dir: Path) -> None:
    result = run_script(
        sweep_dir,
        """
        pylauncher.ClassicLauncher([f"echo list {i} PYL_ID" for i in range(3)], workdir="w1", queuestate="q1")
        pylauncher.ClassicLauncher((f"echo generated {i}" for i in range(4)), workdir="w2", queuestate="q2")
        threads = "echo $OMP_NUM_THREADS"
        lines = [pylauncher.Commandline(threads, cores=2), pylauncher.Commandline(threads)]
        pylauncher.ClassicLauncher(lines, workdir="w3", queuestate="q3", corespernode=2)
        """,
    )
    assert result.returncode == 0, result.stderr
    assert (sweep_dir / "w1" / "out2").read_text() == "list 2 2\n"
    assert (sweep_dir / "w2" / "out3").read_text() == "generated 3\n"
    assert [(sweep_dir / "w3" / f"out{i}").read_text() for i in range(2)] == ["2\n", "1\n"], "a Commandline's cores"
    assert "commandlines: <commandlines from example_launcher.py>: 3 tasks" in result.stdout
    # (they were "cores per line ('N,' prefix)", the words of --cores file: a user walk)
    assert (
        "<commandlines from example_launcher.py>: 2 tasks, cores per command (Commandline objects)\n" in result.stdout
    )
    assert '"commandlines": "<commandlines from example_launcher.py>"' in (sweep_dir / "q1").read_text()


def test_a_launcher_job_built_from_a_commandline_generator_subclass(sweep_dir: Path) -> None:
    result = run_script(
        sweep_dir,
        """
        from mpilauncher import *

        class CountingCommandlineGenerator(CommandlineGenerator):
            def __init__(self,n,**kwargs):
                CommandlineGenerator.__init__(self,nmax=0,**kwargs)
                self.n = n; self.i = 0
            def next(self):
                if self.i==self.n:
                    raise StopIteration
                self.i += 1
                return Commandline("echo task %d" % self.i)

        jobid = JobId()
        debug = "job"
        workdir = "pylauncher_tmp"+str(jobid)
        commandexecutor = SSHExecutor(workdir=workdir,debug=debug)
        job = LauncherJob(
            hostpool=HostPool(
                hostlist=HostListByName(commandexecutor=commandexecutor, corespernode=2, workdir=workdir, debug=debug),
                commandexecutor=commandexecutor,workdir=workdir,
                debug=debug ),
            taskgenerator=WrappedTaskGenerator(CountingCommandlineGenerator(5,debug=debug), debug=debug ),
            debug=debug,delay=.1)
        job.run()
        print(job.final_report())
        """,
    )
    assert result.returncode == 0, result.stderr
    assert (sweep_dir / f"pylauncher_tmp{JOB}" / "out4").read_text() == "task 5\n"
    assert result.stdout.count("# tasks completed: 5") == 1 and "Host pool of size 2." in result.stdout
    assert "type=LauncherJob" in result.stdout


def test_sleep_command_generator_and_a_local_host_pool(sweep_dir: Path) -> None:
    result = run_script(
        sweep_dir,
        """
        g = pylauncher.SleepCommandGenerator(nmax=4,tmin=0,tmax=1)
        with open("sleepcommandlines","w") as cfile:
            for i in range(4):
                cfile.write( str(g.next()) + "\\n" )
        job = pylauncher.LauncherJob(
            hostpool=pylauncher.HostPool(nhosts=2, commandexecutor=pylauncher.LocalExecutor(workdir="w")),
            taskgenerator=pylauncher.TaskGenerator(pylauncher.FileCommandlineGenerator("sleepcommandlines")))
        job.run()
        print(job.final_report(), pylauncher.pylauncher_version, pylauncher.JobId())
        """,
    )
    assert result.returncode == 0, result.stderr
    assert (sweep_dir / "sleepcommandlines").read_text().startswith("echo 0 >> /dev/null 2>&1  ; sleep 0\n")
    assert "# tasks completed: 4" in result.stdout and "Host pool of size 2." in result.stdout
    assert f"5.4 {JOB}" in result.stdout


def test_a_launcher_job_driven_tick_by_tick_as_pylaunchers_own_tests_drive_it(sweep_dir: Path) -> None:
    """``while job.tick() != "finished"`` (PyLauncher's launcher_tests.py), and 5.4's ``while not
    job.finished(): job.tick()``: an AttributeError ("Did you mean: tock?") with a traceback (a user walk)."""
    commandlines(sweep_dir, "".join(f"echo line {i}\n" for i in range(4)))
    result = run_script(
        sweep_dir,
        """
        def job(n):
            return pylauncher.LauncherJob(
                taskgenerator=pylauncher.TaskGenerator(pylauncher.FileCommandlineGenerator("commandlines", cores=1)),
                hostpool=pylauncher.HostPool(nhosts=2), delay=.2, debug="queue,job",
                workdir=f"w{n}", queuestate=f"q{n}")
        first = job(1)
        while first.tick() != "finished": pass
        print(first.final_report())
        print("again:", first.tick(), first.finished())
        second = job(2)
        while not second.finished():
            second.tick()
        """,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.count("# tasks completed: 4") == 1 and "again: finished True" in result.stdout
    assert [(sweep_dir / f"w{n}" / "out3").read_text() for n in (1, 2)] == ["line 3\n"] * 2


def test_a_script_of_two_sweeps_keeps_the_first_ones_failures_to_run_again(sweep_dir: Path) -> None:
    """Both sweeps use the default ./queuestate, as in PyLauncher; the first one's failed task was lost with it."""
    commandlines(sweep_dir, "echo a\nfalse\n", "first")
    commandlines(sweep_dir, "echo b\n", "second")
    result = run_script(
        sweep_dir,
        """
        import mpilauncher as pylauncher
        pylauncher.ClassicLauncher("first", cores=1)
        pylauncher.ClassicLauncher("second", cores=1)
        print("script done")
    """,
    )
    assert result.returncode == 0 and "script done" in result.stdout, result.stderr
    assert (
        "mpilauncher: note: queuestate held a finished sweep with 1 failed task: kept as queuestate.1"
        " (ResumeClassicLauncher('queuestate.1', rerun_failed=True) runs it again)" in result.stderr.splitlines()
    )
    first, second = (sweep_dir / "queuestate.1").read_text(), (sweep_dir / "queuestate").read_text()
    assert ": false\n" in first and ": false\n" not in second  # (the command, not the #meta's "journaled": false)


def test_a_job_script_run_again_after_its_sweep_finished_runs_nothing_and_names_start_over(sweep_dir: Path) -> None:
    """PyLauncher ran the whole sweep again; a requeued or resubmitted job script now runs nothing again."""
    commandlines(sweep_dir, "echo PYL_ID >> ran\n" * 2)
    body = """
        pylauncher.ClassicLauncher("commandlines", cores=1)
        """
    assert run_script(sweep_dir, body).returncode == 0
    again = run_script(sweep_dir, body)
    assert again.returncode == 0 and len((sweep_dir / "ran").read_text().split()) == 2, again.stderr
    assert notes(again) == [
        "mpilauncher: note: queuestate holds a finished run of these commandlines (2 tasks, all completed):"
        " nothing to run; start_over=True runs the whole sweep again"
    ]
