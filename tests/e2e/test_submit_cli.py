"""Submit mode from the command line, against a stand-in Slurm on PATH (tests/data/fake_slurm.py): the whole
launcher as a user runs it, without a cluster (tests/slurm/test_submit_slurm.py does it for real)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import ROOT, launcher_env, run_cli

FAKE = ROOT / "tests" / "data" / "fake_slurm.py"


@pytest.fixture
def slurm(tmp_path: Path) -> dict[str, str]:
    """The environment that puts the stand-in sbatch, squeue, scontrol and scancel first on PATH."""
    home = tmp_path / "fake-slurm"
    bin_dir = home / "bin"
    bin_dir.mkdir(parents=True)
    for name in ("sbatch", "squeue", "scontrol", "scancel"):
        (bin_dir / name).write_text(f'#!/bin/sh\nexec {sys.executable} {FAKE} {name} "$@"\n')
        (bin_dir / name).chmod(0o755)
    return {"PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}", "FAKE_SLURM_DIR": str(home)}


def submissions(slurm: dict[str, str]) -> list[str]:
    log = Path(slurm["FAKE_SLURM_DIR"]) / "sbatch.log"
    return [line for line in log.read_text().splitlines() if "--test-only" not in line]


def test_every_task_is_a_job_and_the_joblog_has_their_exit_codes_and_runtimes(tmp_path: Path, slurm) -> None:
    (tmp_path / "commandlines").write_text("sleep 0.5; exit 3\n" + "echo PYL_ID > done$PYL_ID\n" * 3)
    result = run_cli(["commandlines", "--submit", "-t 1", "--max-active", "2", "--poll-interval", "1",
                      "--workdir", "w"], tmp_path, **slurm)  # fmt: skip
    assert result.returncode == 1, result.stderr
    assert "# tasks completed: 3" in result.stdout and "tasks aborted: 1" in result.stdout
    rows = [line.split("\t") for line in (tmp_path / "w" / "joblog").read_text().splitlines()[1:]]
    by_id = {int(row[0]): row for row in rows}
    assert by_id[0][8:10] == ["3", "failed"] and 0.5 <= float(by_id[0][7]) < 10
    assert all(by_id[i][8:10] == ["0", "ok"] for i in (1, 2, 3))
    assert all(row[11:14] == ["-", "-", "-"] for row in rows), "a Slurm job's resource use is not known here"
    assert [(tmp_path / f"done{i}").read_text() for i in (1, 2, 3)] == ["1\n", "2\n", "3\n"]
    assert len(submissions(slurm)) == 4


@pytest.mark.parametrize("options", ["-t1", "--time=1"])
def test_sbatch_options_of_one_word_that_starts_with_a_dash_are_taken(tmp_path: Path, slurm, options) -> None:
    """``--submit -t1`` was argparse's "--submit: expected one argument" with the whole usage (a user walk)."""
    (tmp_path / "commandlines").write_text("true\n")
    result = run_cli(["commandlines", "--submit", options, "--poll-interval", "1", "--workdir", "w"], tmp_path,
                     **slurm)  # fmt: skip
    assert result.returncode == 0, result.stderr
    (submitted,) = submissions(slurm)
    assert f" {options} " in f" {submitted} ", submitted


def test_a_stopped_submitter_leaves_its_jobs_and_a_plain_resume_picks_them_up(tmp_path: Path, slurm) -> None:
    (tmp_path / "commandlines").write_text("sleep 3 && echo PYL_ID >> ran\n" * 3)
    first = run_cli(["commandlines", "--submit", "-t 1", "--max-active", "2", "--poll-interval", "1",
                     "--max-runtime", "1.5", "--workdir", "w"], tmp_path, **slurm)  # fmt: skip
    assert first.returncode == 4, first.stderr
    assert "2 Slurm jobs of this sweep are still queued or running (100 101): left to run" in first.stderr
    alone = run_cli(["commandlines", "--workdir", "w2"], tmp_path, **slurm)  # the same sweep, without Slurm
    assert alone.returncode == 2 and alone.stderr.count("\n") == 1, alone.stderr
    assert "continue it with --submit" in alone.stderr and not (tmp_path / "w2").exists()
    resumed = run_cli(["--resume", "queuestate"], tmp_path, **slurm)
    assert resumed.returncode == 0, resumed.stderr
    assert "this sweep runs as Slurm jobs: resuming it so (--submit '-t 1' --max-active 2)" in resumed.stderr
    assert "2 Slurm jobs of the earlier run (100 101) are picked up, not submitted again" in resumed.stderr
    assert sorted((tmp_path / "ran").read_text().split()) == ["0", "1", "2"], "each task once"
    assert len(submissions(slurm)) == 3, "no job submitted twice"


def test_submit_launcher_from_a_script_as_the_user_guide_calls_it(tmp_path: Path, slurm) -> None:
    """PyLauncher's call, unchanged but for the import; queue= names the partition the options do not."""
    (tmp_path / "commandlines").write_text("echo PYL_ID >> ran\n" * 3)
    (tmp_path / "example_submit_launcher.py").write_text(
        "import mpilauncher as pylauncher\n"
        'result = pylauncher.SubmitLauncher("commandlines", "-N 1 -n 1 -t 0:15:0", nactive=2, queue="debug",'
        ' workdir="w", poll_interval=1)\n'
        "print('completed', result.completed)\n"
    )
    env = launcher_env(**slurm)
    result = subprocess.run([sys.executable, "example_submit_launcher.py"], cwd=tmp_path, env=env,
                            capture_output=True, text=True, timeout=120)  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "type=SubmitLauncher" in result.stdout and "completed 3" in result.stdout
    assert sorted((tmp_path / "ran").read_text().split()) == ["0", "1", "2"]
    assert all(line.endswith(f"-N 1 -n 1 -t 0:15:0 --partition debug {tmp_path}/w/jobscript{i}")
               for i, line in enumerate(submissions(slurm))), submissions(slurm)  # fmt: skip


def test_a_submit_limit_is_waited_out_with_one_line_and_no_task_fails(tmp_path: Path, slurm) -> None:
    (Path(slurm["FAKE_SLURM_DIR"]) / "refuse").write_text("2")
    (tmp_path / "commandlines").write_text("true\ntrue\n")
    result = run_cli(["commandlines", "--submit", "-t 1", "--max-active", "2", "--workdir", "w"], tmp_path, **slurm)
    assert result.returncode == 0, result.stderr
    limit = [line for line in result.stderr.splitlines() if "QOSMaxSubmitJobPerUserLimit" in line]
    assert len(limit) == 1 and "not failed" in limit[0]
    assert len(submissions(slurm)) == 4


@pytest.mark.parametrize(
    ("args", "says"),
    [(["--submit", "-p 'debug"], "--submit must be sbatch options in one string"),
     (["--submit", "--wait -t 1"], "--submit must not hold --wait: each sbatch would wait for its job to end"),
     (["--submit", "-t 1 --array=1-4"], "--submit must not hold --array=1-4"),
     (["--max-active", "2"], "--max-active works with --submit only"),
     (["--submit", "-t 1", "--max-active", "0"], "--max-active must be"),
     (["--submit", "-t 1", "--tasks-per-job", "1000", "--max-active", "1000"], "--max-active times tasks per job"),
     (["--submit", "-t 1", "--resubmit", "3"], "--resubmit cannot be combined with --submit"),
     (["--submit", "-t 1", "--gpus-per-task", "1"], "--gpus-per-task cannot be combined with --submit")],
)  # fmt: skip
def test_bad_submit_options_are_one_line_exit_2_nothing_written(tmp_path: Path, slurm, args, says) -> None:
    (tmp_path / "commandlines").write_text("true\n")
    result = run_cli(["commandlines", *args], tmp_path, **slurm)
    assert result.returncode == 2 and result.stderr.count("\n") == 1 and says in result.stderr, result.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["commandlines", "fake-slurm"]


def test_no_sbatch_is_one_line_exit_2_nothing_written(tmp_path: Path) -> None:
    bin_dir = tmp_path / "bin"  # a PATH with python and the shell's tools, and no Slurm
    bin_dir.mkdir()
    (tmp_path / "commandlines").write_text("true\n")
    result = run_cli(["commandlines", "--submit", "-t 1"], tmp_path, PATH=f"{bin_dir}{os.pathsep}/nowhere")
    assert result.returncode == 2 and result.stderr.count("\n") == 1, result.stderr
    assert "sbatch not found" in result.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bin", "commandlines"]
