"""`python -m mpilauncher report` on a real finished sweep and a real running one, with the plot looked at."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import launcher_env, run_cli

LINES = (
    ["sleep 0.4; echo fine PYL_ID"] * 10
    + ["echo computing; echo 'error: diverged at step 7' >&2; exit 2"]
    + ["sleep 1.5; echo slow"]
    + ["python3 -c 'b = bytearray(64 << 20); b[::4096] = bytes(len(b[::4096]))'"]
)


def finished_sweep(where: Path, *options: str) -> None:
    (where / "commandlines").write_text("\n".join(LINES) + "\n")
    result = run_cli(["commandlines", "--workdir", "w", "--cores-per-node", "2", "--quiet", *options], where)
    assert result.returncode == 1, result.stderr


@pytest.mark.parametrize("output", ["per-task", "per-node"])
def test_a_finished_sweep_reported_from_its_workdir(tmp_path: Path, output: str) -> None:
    finished_sweep(tmp_path, "--output", output)
    result = run_cli(["report", "w", "--top", "3"], tmp_path)
    assert result.returncode == 0, result.stderr
    text = result.stdout
    assert "State: finished: 13 tasks, 12 completed, 1 failed, 0 running, 0 queued" in text
    assert "# tasks completed: 12" in text and "Host pool of size 2." in text
    assert "Cores: 2 in the pool (1 node); busy" in text
    slowest = text.split("Slowest tasks (3 of 13 ended):")[1].split("\n")[2]
    assert slowest.split()[0] == "11" and "sleep 1.5" in slowest, text
    hungry = text.split("Most memory-hungry tasks")[1].split("\n")[2]
    assert hungry.split()[0] == "12" and "MiB" in hungry, text
    failed = text.split("Failed tasks (1):")[1]
    assert "task 10: failed, exit 2" in failed and "| computing\n    | error: diverged at step 7" in failed


def test_the_plot_shows_the_tasks_on_their_cores_and_the_idle_tail(tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    import matplotlib.image

    finished_sweep(tmp_path)
    result = run_cli(["report", "queuestate", "--plot", "sweep.png"], tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.endswith("Plot: sweep.png\n")
    pixels = matplotlib.image.imread(tmp_path / "sweep.png")[..., :3]

    def share(rgb: tuple[int, int, int]) -> float:
        target = [c / 255 for c in rgb]
        close = ((pixels - target) ** 2).sum(axis=-1) < 0.01
        return float(close.mean())

    assert share((0x2E, 0x8B, 0x57)) > 0.05, "the completed tasks' bars (green) fill much of the chart"
    assert share((0xD6, 0x27, 0x28)) > 0.0002, "the failed task shows (red)"
    assert share((0xFF, 0xCC, 0x80)) > 0.0005 or share((0xFF, 0xEA, 0xCB)) > 0.0005, "the tail is shaded"
    svg = run_cli(["report", "w", "--plot", "sweep.svg"], tmp_path)
    assert svg.returncode == 0 and (tmp_path / "sweep.svg").read_text().lstrip().startswith("<?xml")


def sweep_at_its_long_tasks(where: Path, short: list[str], long: list[str]) -> subprocess.Popen:
    """A launcher (in a session of its own) running the ``short`` lines, then the ``long`` ones, on 2 cores in
    ``where``, returned once the short ones have ended: the long ones run."""
    (where / "commandlines").write_text("".join(f"{line}\n" for line in short + long))
    launcher = subprocess.Popen(
        [sys.executable, "-m", "mpilauncher", "commandlines", "--workdir", "w", "--cores-per-node", "2", "--quiet"],
        cwd=where, env=launcher_env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
    )  # fmt: skip
    deadline = time.monotonic() + 60
    joblog = where / "w" / "joblog"
    while time.monotonic() < deadline:
        if joblog.exists() and joblog.read_text().count("\n") >= len(short) + 1:  # (its header, and a line a task)
            return launcher
        time.sleep(0.1)
    os.killpg(launcher.pid, signal.SIGKILL)
    launcher.wait(timeout=60)
    pytest.fail("the sweep did not get to its long tasks")


def test_a_running_sweep_is_reported_from_its_journal(tmp_path: Path) -> None:
    launcher = sweep_at_its_long_tasks(tmp_path, ["sleep 0.2"] * 8, ["sleep 60"] * 2)
    try:
        result = run_cli(["report", "w", "--plot", "running.png"], tmp_path)
        assert result.returncode == 0, result.stderr
        text = result.stdout
        assert "State: running: 10 tasks, 8 completed, 0 failed, 2 running, 0 queued" in text, text
        assert "Launcherjob running: the figures so far." in text and "stopped" not in text, text
        assert "tasks not run yet: 2 (queued or running now)" in text, "(a user walk: 'resume to run them')"
        assert "Running now (2):" in text and text.count(": sleep 60") >= 2
        if (tmp_path / "running.png").exists():
            import matplotlib.image

            pixels = matplotlib.image.imread(tmp_path / "running.png")[..., :3]
            grey = (((pixels - [0x9E / 255] * 3) ** 2).sum(axis=-1) < 0.003).mean()
            assert grey > 0.01, "the running tasks are drawn up to now, in grey"
        assert launcher.poll() is None, "the report took no lock: the sweep goes on"
    finally:
        os.kill(launcher.pid, signal.SIGTERM)
        launcher.wait(timeout=60)
    stopped = run_cli(["report", "queuestate"], tmp_path)
    assert "State: stopped: 10 tasks, 8 completed, 0 failed, 2 interrupted, 0 queued" in stopped.stdout
    assert "Launcherjob stopped: tasks are left to run." in stopped.stdout, stopped.stdout
    assert "Note: not finished: resume with python -m mpilauncher --resume queuestate" in stopped.stdout
    assert "Interrupted when the sweep stopped (2; a resume runs them again):" in stopped.stdout


def test_a_killed_sweep_reports_its_time_and_the_tasks_the_kill_cut_short(tmp_path: Path) -> None:
    """After a kill -9 the report said "total running time 0.00" (the snapshot's, written at the start)
    and left out the tasks that were running (a user walk)."""
    launcher = sweep_at_its_long_tasks(tmp_path, ["sleep 0.3"] * 8, ["sleep 5"])
    os.killpg(launcher.pid, signal.SIGKILL)  # (its own session: the launcher, its executors, its tasks)
    launcher.wait(timeout=60)
    text = run_cli(["report", "w"], tmp_path).stdout
    assert "State: stopped: 9 tasks, 8 completed, 0 failed, 1 interrupted, 0 queued" in text, text
    total = float(text.split("total running time:")[1].split()[0])
    assert total >= 1.0, text  # four rounds of 0.3 s at least ended before the kill
    assert "Interrupted when the sweep stopped (1; a resume runs them again):\n  task 8: ran " in text, text
    assert "Slowest tasks (8 of 8 ended):" in text, text
    status = run_cli(["--status", "queuestate"], tmp_path).stdout
    said = "(the 1 running task was interrupted when the sweep stopped: a resume runs it again)\n1 task to run"
    assert said in status


def test_a_sweep_resumed_into_a_new_workdir_is_reported_with_the_earlier_one(tmp_path: Path) -> None:
    """``--resume --workdir NEW``: the tasks that ended in the first workdir keep their joblog lines and output
    there; the report and ``output`` read them there (they said "(no joblog line)" and "not run yet")."""
    (tmp_path / "commandlines").write_text("echo first; exit 3\necho fine\nsleep 2; echo late\n")
    first = run_cli(["commandlines", "--workdir", "a", "--max-runtime", "1", "--quiet"], tmp_path)
    assert first.returncode != 0 and "reached --max-runtime" in first.stderr, first.stderr
    stopped = run_cli(["report", "a"], tmp_path).stdout
    assert "State: stopped: 3 tasks, 1 completed, 1 failed, 1 interrupted, 0 queued" in stopped, stopped
    assert "Interrupted when the sweep stopped (1; a resume runs them again):\n  task 2: ran " in stopped, stopped
    resumed = run_cli(["--resume", "queuestate", "--workdir", "b", "--quiet"], tmp_path)
    assert resumed.returncode == 1, resumed.stderr  # (task 0 failed in the first run)
    text = run_cli(["report", "b"], tmp_path).stdout
    assert "State: finished: 3 tasks, 2 completed, 1 failed, 0 running, 0 queued" in text, text
    assert "task 0: failed, exit 3, attempt 1" in text and "    | first\n" in text, text
    assert "Slowest tasks (3 of 3 ended):" in text, text
    output = run_cli(["output", "b", "0-2"], tmp_path)
    assert output.returncode == 0, output.stderr
    assert output.stdout == "==> task 0 <==\nfirst\n==> task 1 <==\nfine\n==> task 2 <==\nlate\n", output.stdout
    assert output.stderr.count("\n") == 1 and f"is read from {tmp_path / 'a'}" in output.stderr, output.stderr
    shutil.rmtree(tmp_path / "a")
    gone = run_cli(["report", "b"], tmp_path)
    assert gone.returncode == 0, gone.stderr
    assert f"Note: {tmp_path / 'a' / 'joblog'}: No such file or directory: the tasks that ended in" in gone.stdout
    assert "task 0: exit 3 (no joblog line)" in gone.stdout, gone.stdout
    missing = run_cli(["output", "b", "0"], tmp_path)
    assert missing.returncode == 1 and "task 0: no output in b" in missing.stderr, missing.stderr


def test_bad_report_input_is_one_line_exit_2(tmp_path: Path) -> None:
    for args, says in (
        (["report", "nowhere"], "nowhere: no such workdir or queuestate"),
        (["report", "commandlines"], "commandlines: is neither a workdir nor an mpilauncher queuestate"),
        (["report", ".", "--plot", "x.jpg"], "--plot must name a .png or .svg file"),
    ):
        (tmp_path / "commandlines").write_text("true\n")
        result = run_cli(args, tmp_path)
        assert result.returncode == 2 and result.stderr.count("\n") == 1, result.stderr
        assert says in result.stderr, result.stderr
    assert not (tmp_path / "x.jpg").exists()


def test_a_failed_tasks_endless_line_is_clipped_and_tail_0_shows_none(tmp_path: Path) -> None:
    """A failed task whose 6.6 MB of output held no newline showed one "line" of 64 KiB, NUL bytes and all,
    and --tail 0 still showed it (a user walk)."""
    endless = "import sys; sys.stdout.write('x' * 100000)"
    nul = "import sys; sys.stdout.write('a' + chr(0) + 'b')"
    (tmp_path / "commandlines").write_text(
        f'{sys.executable} -c "{endless}"; exit 3\n{sys.executable} -c "{nul}"; exit 4\n'
    )
    assert run_cli(["commandlines", "--workdir", "w", "--quiet"], tmp_path).returncode == 1
    text = run_cli(["report", "w"], tmp_path).stdout
    shown = [line.strip() for line in text.split("Failed tasks (2):")[1].splitlines() if line.lstrip().startswith("|")]
    assert len(shown) == 2 and len(shown[0]) < 600, shown
    assert shown[0].endswith("xx... (65,536 characters; all of it: python -m mpilauncher output WORKDIR 0)")
    assert shown[1] == "| a\\0b"
    none = run_cli(["report", "w", "--tail", "0"], tmp_path).stdout.split("Failed tasks (2):")[1]
    assert not [line for line in none.splitlines() if line.lstrip().startswith("|")], none


def six_task_sweep(where: Path) -> None:
    (where / "commandlines").write_text("echo a\necho b\nfalse\necho c\necho d\necho e\n")
    assert run_cli(["commandlines", "--workdir", "w", "--quiet"], where).returncode == 1


def test_output_says_why_a_task_has_none(tmp_path: Path) -> None:
    """A task id the sweep does not have, and a task whose output was removed, were both "not run yet, or
    still running: per-node output is in the workdir once the task ends", in per-task mode too (a user walk)."""
    six_task_sweep(tmp_path)
    past = run_cli(["output", "w", "99"], tmp_path)
    assert past.returncode == 1 and past.stderr == "mpilauncher: error: task 99: the sweep has tasks 0-5\n", past
    some = run_cli(["output", "w", "4-7"], tmp_path)
    assert some.returncode == 1 and some.stdout == "==> task 4 <==\nd\n==> task 5 <==\ne\n", some.stdout
    assert some.stderr == "mpilauncher: error: tasks 6-7: the sweep has tasks 0-5\n", some.stderr
    (tmp_path / "w" / "out0").unlink()
    removed = run_cli(["output", "w", "0"], tmp_path)
    assert removed.returncode == 1 and removed.stderr.count("\n") == 1, removed.stderr
    assert "task 0: no output in w (the task ran: " in removed.stderr and "per-node" not in removed.stderr
    shutil.rmtree(tmp_path / "w")
    deleted = run_cli(["output", "w", "0"], tmp_path)
    assert deleted.returncode == 2 and deleted.stderr == "mpilauncher: error: w: no such workdir or queuestate\n"
    its = run_cli(["output", "queuestate", "0"], tmp_path)
    assert its.returncode == 2 and its.stderr.count("\n") == 1, its.stderr
    assert f"queuestate: its workdir {tmp_path / 'w'} is gone" in its.stderr, its.stderr


def test_output_takes_the_queuestate_as_report_does(tmp_path: Path) -> None:
    """``output queuestate 0`` said "queuestate: no such workdir" (a user walk)."""
    six_task_sweep(tmp_path)
    shown = run_cli(["output", "queuestate", "1", "3"], tmp_path)
    assert shown.returncode == 0, shown.stderr
    assert shown.stdout == "==> task 1 <==\nb\n==> task 3 <==\nc\n", shown.stdout
    script = run_cli(["output", "queuestate", "2", "--exec"], tmp_path)
    assert script.returncode == 0 and script.stdout.endswith("false\n"), script


def test_report_of_what_is_neither_a_workdir_nor_a_queuestate_says_what_it_is(tmp_path: Path) -> None:
    """``report .`` said "joblog: no joblog here", ``report /dev/null`` "no such workdir or queuestate" (a user
    walk)."""
    for args, says in (
        (["report", "."], ".: not a workdir (no joblog in it, and no queuestate found names it) nor a queuestate"),
        (["report", "/dev/null"], "/dev/null: is neither a workdir nor an mpilauncher queuestate"),
        (["output", "/dev/null", "0"], "/dev/null: is neither a workdir nor an mpilauncher queuestate"),
    ):
        result = run_cli(args, tmp_path)
        assert result.returncode == 2 and result.stderr == f"mpilauncher: error: {says}\n", result.stderr


def test_report_top_0_leaves_the_top_tables_out(tmp_path: Path) -> None:
    """``--top 0`` printed an empty "Most memory-hungry tasks (0 of 6 measured)" table (a user walk)."""
    six_task_sweep(tmp_path)
    text = run_cli(["report", "w", "--top", "0"], tmp_path).stdout
    assert "Slowest tasks" not in text and "Most memory-hungry" not in text, text
    assert "Failed tasks (1):\n  task 2: failed, exit 1" in text, text
