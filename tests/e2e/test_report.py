"""`python -m mpilauncher report` on a real finished sweep and a real running one, with the plot looked at."""

from __future__ import annotations

import os
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


def test_a_running_sweep_is_reported_from_its_journal(tmp_path: Path) -> None:
    (tmp_path / "commandlines").write_text("sleep 0.2\n" * 8 + "sleep 60\n" * 2)
    launcher = subprocess.Popen(
        [sys.executable, "-m", "mpilauncher", "commandlines", "--workdir", "w", "--cores-per-node", "2", "--quiet"],
        cwd=tmp_path, env=launcher_env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:  # the two long tasks run, the short ones are done
            joblog = tmp_path / "w" / "joblog"
            if joblog.exists() and joblog.read_text().count("\n") >= 9:
                break
            time.sleep(0.2)
        else:
            pytest.fail("the sweep did not get to its long tasks")
        result = run_cli(["report", "w", "--plot", "running.png"], tmp_path)
        assert result.returncode == 0, result.stderr
        text = result.stdout
        assert "State: running: 10 tasks, 8 completed, 0 failed, 2 running, 0 queued" in text, text
        assert "Launcherjob stopped: the sweep is running." in text
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
    assert "State: stopped: 10 tasks, 8 completed" in stopped.stdout
    assert "Note: not finished: resume with python -m mpilauncher --resume queuestate" in stopped.stdout


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
