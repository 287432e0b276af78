"""Issue 10's promises, tried the way users broke them: nothing rerun, nothing lost, nothing left behind.

Each test here walks a path that the happy-path tests took for granted: a queuestate of the user's
own name, two launchers on one sweep, a broken stdout, a directory where nothing can be written.
"""

from __future__ import annotations

import collections
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from tests.conftest import launcher_env, run_cli


def appending_sweep(directory: Path, n: int, seconds: float) -> None:
    """Tasks that append their id to ``ran`` once they have done their work."""
    (directory / "commandlines").write_text(f"sleep {seconds} && echo PYL_ID >> ran\n" * n)


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
