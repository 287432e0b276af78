"""Progress as users meet it: a status line in a batch log (a pipe), a live line on a terminal
(a pseudo-terminal, and a real terminal under tmux, read back from the screen), none with --quiet."""

from __future__ import annotations

import os
import pty
import select
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import ROOT, launcher_env, new_tag, run_cli

pytest.importorskip("tqdm")


def sweep(where: Path, count: int = 12, seconds: float = 0.3, failing: int = 1) -> None:
    lines = [f"sleep {seconds}" for _ in range(count - failing)] + ["sleep 0.1; exit 3"] * failing
    (where / "commandlines").write_text("\n".join(lines) + "\n")


def test_a_batch_log_gets_a_plain_status_line_every_interval_and_one_at_the_end(tmp_path: Path) -> None:
    sweep(tmp_path)
    result = run_cli(["commandlines", "--workdir", "w", "--cores-per-node", "2", "--progress-interval", "0.5"],
                     tmp_path)  # fmt: skip
    assert result.returncode == 1, result.stderr
    lines = [line for line in result.stderr.splitlines() if line.startswith("mpilauncher: progress: ")]
    assert len(lines) >= 3, result.stderr
    assert "\r" not in result.stderr and "\x1b" not in result.stderr, "no terminal codes in a log"
    assert lines[-1].startswith("mpilauncher: progress: 11/12 done, 1 failed, 0 running, 0 queued; ")
    assert "2/2 cores busy" in "".join(lines[:-1]), lines
    assert result.stdout.index("Launcherjob run completed.") > 0


@pytest.mark.parametrize("words", [["--quiet"], ["--progress", "off"]])
def test_quiet_or_off_shows_no_progress(tmp_path: Path, words: list[str]) -> None:
    sweep(tmp_path, count=4)
    result = run_cli(["commandlines", "--workdir", "w", "--progress-interval", "0.2", *words], tmp_path)
    assert result.returncode == 1
    assert "progress" not in result.stderr


def run_in_pty(args: list[str], cwd: Path, columns: int = 100) -> tuple[int, str]:
    """The launcher with stdout and stderr on a pseudo-terminal; everything it wrote there."""
    main, secondary = pty.openpty()
    import fcntl
    import struct
    import termios

    fcntl.ioctl(secondary, termios.TIOCSWINSZ, struct.pack("HHHH", 30, columns, 0, 0))
    process = subprocess.Popen(
        [sys.executable, "-m", "mpilauncher", *args], cwd=cwd, env=launcher_env(TERM="xterm"),
        stdin=subprocess.DEVNULL, stdout=secondary, stderr=secondary,
    )  # fmt: skip
    os.close(secondary)
    chunks, deadline = [], time.monotonic() + 120
    while time.monotonic() < deadline:
        if select.select([main], [], [], 0.5)[0]:
            try:
                data = os.read(main, 65536)
            except OSError:  # EIO: the terminal's other side is closed (the launcher exited)
                break
            if not data:
                break
            chunks.append(data)
        elif process.poll() is not None:
            break
    os.close(main)
    return process.wait(timeout=30), b"".join(chunks).decode("utf-8", "replace")


def test_a_terminal_gets_one_live_line_redrawn_in_place(tmp_path: Path) -> None:
    sweep(tmp_path)
    status, screen = run_in_pty(["commandlines", "--workdir", "w", "--cores-per-node", "2"], tmp_path, columns=120)
    assert status == 1, screen
    assert "mpilauncher: progress:" not in screen, "a terminal gets the live line, not status lines"
    draws = [part for part in screen.split("\r") if "%|" in part]
    assert len(draws) >= 3, screen
    assert any("running" in d and "2/2 cores" in d and "ETA" in d for d in draws), draws
    last = [d for d in draws if "11/12 done" in d]
    assert last and "100%" in last[-1] and "1 failed, 0 running, 0 queued" in last[-1], draws[-3:]
    # The bar stays as the last word on progress; the statistics begin on a line of their own below it.
    assert "\nLauncherjob run completed." in screen.replace("\r\n", "\n")
    assert all(len(d.strip("\n")) <= 120 for d in draws), "kept to the terminal's width"


def test_a_narrow_terminal_gets_the_line_cut_to_its_width_most_important_first(tmp_path: Path) -> None:
    sweep(tmp_path, count=6)
    status, screen = run_in_pty(["commandlines", "--workdir", "w", "--cores-per-node", "2"], tmp_path, columns=60)
    assert status == 1, screen
    draws = [part.strip("\n") for part in screen.split("\r") if "%|" in part]
    assert draws and all(len(d) <= 60 for d in draws), draws
    assert any("5/6 done, 1 failed" in d for d in draws), draws


@pytest.mark.parametrize("asked", [[], ["--progress", "bar"]])
def test_a_terminal_that_says_it_has_no_columns_gets_status_lines(tmp_path: Path, asked: list[str]) -> None:
    """A user walk: ``script -qc`` run from no terminal makes a pty of 0 rows and 0 columns, on which the
    live line drew nothing at all, even with --progress bar."""
    sweep(tmp_path, count=6)
    args = ["commandlines", "--workdir", "w", "--cores-per-node", "2", "--progress-interval", "0.2", *asked]
    status, screen = run_in_pty(args, tmp_path, columns=0)
    assert status == 1, screen
    assert "mpilauncher: progress: 5/6 done, 1 failed" in screen, screen
    assert ("narrower than 20 columns" in screen) == bool(asked), screen


def test_a_warning_during_the_run_gets_a_line_of_its_own_above_the_live_line(tmp_path: Path) -> None:
    (tmp_path / "commandlines").write_text("sleep 0.5\n" * 6)
    # Messages of the launcher during a run (a lost node's warning, --debug task's trace) go through one logger.
    status, screen = run_in_pty(["commandlines", "--workdir", "w", "--cores-per-node", "2", "--debug", "task"],
                                tmp_path)  # fmt: skip
    assert status == 0, screen
    visible = [line.split("\r")[-1] for line in screen.replace("\r\n", "\n").split("\n")]  # as the terminal shows
    assert "mpilauncher: task 5 ended: ok (exit 0)" in "\n".join(visible), screen
    messages = [line for line in visible if "mpilauncher: task" in line]
    assert len(messages) == 12 and all(line.startswith("mpilauncher: task") for line in messages), messages
    assert not any("%|" in line for line in visible[:-20] if "mpilauncher: task" in line), "not glued to the bar"


@pytest.mark.skipif(shutil.which("tmux") is None, reason="tmux is not installed (apt-get install tmux)")
def test_the_live_line_on_a_real_terminal_read_back_from_the_screen(tmp_path: Path) -> None:
    sweep(tmp_path, count=16, seconds=0.6)
    socket = new_tag()  # a tmux server of this test's own: other sessions on the machine are not touched
    env = launcher_env()
    command = (
        f"cd {tmp_path} && env PYTHONPATH={ROOT} MPIR_CVAR_CH4_NETMOD=ofi {sys.executable} -m mpilauncher"
        " commandlines --workdir w --cores-per-node 2; echo EXIT=$?; sleep 60"
    )
    tmux = ["tmux", "-L", socket]
    subprocess.run([*tmux, "new-session", "-d", "-x", "120", "-y", "25", command], check=True, env=env)
    try:
        screens, deadline = [], time.monotonic() + 120
        while time.monotonic() < deadline:
            screen = subprocess.run([*tmux, "capture-pane", "-p"], capture_output=True, text=True, env=env).stdout
            screens.append(screen)
            if "EXIT=" in screen:
                break
            time.sleep(0.2)
        final = screens[-1]
        assert "EXIT=1" in final, final
        during = [s for s in screens if "running" in s and "EXIT=" not in s and "queued" in s]
        assert during, "the line was on the screen while the sweep ran"
        bar_lines = [line for line in final.splitlines() if "%|" in line]
        assert len(bar_lines) == 1, f"one line, redrawn in place, not one per draw:\n{final}"
        assert "100%" in bar_lines[0] and "15/16 done, 1 failed, 0 running, 0 queued" in bar_lines[0], final
        assert final.index(bar_lines[0]) < final.index("Launcherjob run completed."), final
    finally:
        subprocess.run([*tmux, "kill-server"], capture_output=True, env=env)
