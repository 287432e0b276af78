"""GPU tasks (emulated GPU counts) and CPU binding, as a user runs them."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from mpilauncher.execution.resources import binding, detect_gpus, gpu_environment
from mpilauncher.report.joblog import read as read_joblog
from tests.conftest import launcher_env, run_cli

REAL_CPUS = sorted(os.sched_getaffinity(0))


def overlap(rows: list[dict[str, str]], a: dict[str, str], b: dict[str, str]) -> bool:
    return float(a["start"]) < float(b["end"]) and float(b["start"]) < float(a["end"])


def test_each_gpu_task_sees_only_its_gpu_and_never_shares_it(sweep_dir: Path) -> None:
    (sweep_dir / "commandlines").write_text("echo $CUDA_VISIBLE_DEVICES; sleep 0.2\n" * 8)
    result = run_cli(
        ["commandlines", "--gpus-per-task", "1", "--gpus-per-node", "3", "--cores-per-node", "6", "--workdir", "w"],
        sweep_dir,
        CUDA_VISIBLE_DEVICES="4,5,6,7",
    )
    assert result.returncode == 0, result.stderr
    rows = read_joblog(sweep_dir / "w" / "joblog")
    for row in rows:
        seen = (sweep_dir / "w" / f"out{row['id']}").read_text().split()[0]
        assert seen == row["gpus"] and seen in {"4", "5", "6"}, "the first 3 visible GPUs, one per task"
        assert len(row["cores"].split("-")) == 2, "a GPU's share of the cores: 6 // 3 = 2"
    for a in rows:
        for b in rows:
            if a is not b and overlap(rows, a, b):
                assert a["gpus"] != b["gpus"], "two tasks on one GPU at once"


def test_gpu_launcher_api_and_no_gpu_error(sweep_dir: Path) -> None:
    (sweep_dir / "gpucommandlines").write_text("echo $CUDA_VISIBLE_DEVICES\n" * 3)
    script = sweep_dir / "s.py"
    script.write_text("import mpilauncher as pylauncher\npylauncher.GPULauncher('gpucommandlines', workdir='w')\n")
    env = launcher_env(SLURM_GPUS_ON_NODE="2")
    ok = subprocess.run([sys.executable, str(script)], cwd=sweep_dir, env=env, capture_output=True, text=True,
                        timeout=60)  # fmt: skip
    assert ok.returncode == 0, ok.stderr
    assert {(sweep_dir / "w" / f"out{i}").read_text().strip() for i in range(3)} <= {"0", "1"}
    none = run_cli(["gpucommandlines", "--gpus-per-task", "1", "--gpus-per-node", "0", "--workdir", "w2",
                    "--queuestate", "q2"], sweep_dir)  # fmt: skip
    assert none.returncode == 2 and "GPU tasks, but no GPU found" in none.stderr
    assert not (sweep_dir / "w2").exists()
    bad = sweep_dir / "bad.py"
    bad.write_text("import mpilauncher as pylauncher\npylauncher.GPULauncher('gpucommandlines', cores=2)\n")
    refused = subprocess.run([sys.executable, str(bad)], cwd=sweep_dir, env=env, capture_output=True, text=True,
                             timeout=60)  # fmt: skip
    assert refused.returncode == 2 and "GPULauncher takes no cores=" in refused.stderr


def test_too_many_gpus_per_task_is_refused_naming_the_line(sweep_dir: Path) -> None:
    (sweep_dir / "commandlines").write_text("# gpu sweep\ntrue\n")
    result = run_cli(["commandlines", "--gpus-per-task", "3", "--gpus-per-node", "2", "--workdir", "w"], sweep_dir)
    assert result.returncode == 2
    assert "commandlines:2: task 0 needs 3 GPUs" in result.stderr


@pytest.mark.skipif(len(REAL_CPUS) < 2, reason="binding needs at least 2 CPUs")
def test_tasks_are_bound_to_their_cores_and_the_binding_is_reported(sweep_dir: Path) -> None:
    (sweep_dir / "commandlines").write_text("grep Cpus_allowed_list /proc/self/status; sleep 0.2\n" * 4)
    result = run_cli(["commandlines", "--workdir", "w", "--debug", "host", "--delay", "0.05"], sweep_dir)
    assert result.returncode == 0, result.stderr
    for row in read_joblog(sweep_dir / "w" / "joblog"):
        allowed = (sweep_dir / "w" / f"out{row['id']}").read_text().split()[-1]
        core = int(row["cores"])
        assert row["cpus"] == str(REAL_CPUS[core]) == allowed, row
    unbound = run_cli(["commandlines", "--workdir", "w2", "--queuestate", "q2", "--no-bind"], sweep_dir)
    assert unbound.returncode == 0
    rows = read_joblog(sweep_dir / "w2" / "joblog")
    assert {r["cpus"] for r in rows} == {"-"}
    assert (sweep_dir / "w2" / "out0").read_text().split()[-1] == f"{REAL_CPUS[0]}-{REAL_CPUS[-1]}" or len(
        REAL_CPUS
    ) != REAL_CPUS[-1] - REAL_CPUS[0] + 1


def test_no_binding_when_node_cores_are_not_real_cpus(sweep_dir: Path) -> None:
    (sweep_dir / "commandlines").write_text("true\n")
    result = run_cli(["commandlines", "--workdir", "w", "--cores-per-node", str(len(REAL_CPUS) + 5)], sweep_dir)
    assert result.returncode == 0
    assert read_joblog(sweep_dir / "w" / "joblog")[0]["cpus"] == "-"


@pytest.mark.parametrize(
    ("env", "override", "ids", "vendor"),
    [
        ({"CUDA_VISIBLE_DEVICES": "2,3"}, None, ("2", "3"), "nvidia"),
        ({"SLURM_JOB_GPUS": "0,1,2,3", "CUDA_VISIBLE_DEVICES": "0"}, None, ("0", "1", "2", "3"), "nvidia"),
        ({"ROCR_VISIBLE_DEVICES": "0,1"}, None, ("0", "1"), "amd"),
        ({"SLURM_GPUS_ON_NODE": "3"}, None, ("0", "1", "2"), "nvidia"),
        ({"CUDA_VISIBLE_DEVICES": "5,6,7"}, 2, ("5", "6"), "nvidia"),
        ({}, 4, ("0", "1", "2", "3"), "nvidia"),
        ({"CUDA_VISIBLE_DEVICES": "NoDevFiles"}, None, (), ""),
    ],
)
def test_gpu_detection_order(env: dict, override: int | None, ids: tuple, vendor: str) -> None:
    gpus = detect_gpus(env, override, probe=False)
    assert gpus.ids == ids and (gpus.vendor == vendor or not ids)


def test_gpu_environment_and_binding_helpers() -> None:
    amd = detect_gpus({"ROCR_VISIBLE_DEVICES": "0,1,2"}, probe=False)
    assert gpu_environment(amd, (0, 2)) == {
        "CUDA_VISIBLE_DEVICES": "0,2", "MPILAUNCHER_GPUS": "0,2", "ROCR_VISIBLE_DEVICES": "0,2",
        "HIP_VISIBLE_DEVICES": "0,2",
    }  # fmt: skip
    assert gpu_environment(amd, ()) == {}
    assert binding((4, 5, 6, 7), (1, 3)) == (5, 7)
    assert binding((4, 5), (2,)) == (), "a slot beyond the real CPUs: no binding"


def test_tasks_share_a_gpu_only_when_asked(sweep_dir: Path) -> None:
    (sweep_dir / "commandlines").write_text("echo $CUDA_VISIBLE_DEVICES; sleep 0.3\n" * 4)
    result = run_cli(["commandlines", "--gpus-per-task", "1", "--gpus-per-node", "1", "--tasks-per-gpu", "2",
                      "--cores-per-node", "2", "--cores", "1", "--workdir", "w"], sweep_dir)  # fmt: skip
    assert result.returncode == 0, result.stderr
    rows = read_joblog(sweep_dir / "w" / "joblog")
    assert {r["gpus"] for r in rows} == {"0"}
    assert any(overlap(rows, a, b) for a in rows for b in rows if a is not b), "two tasks ran on GPU 0 at once"


def test_four_gpus_on_two_cores_run_four_tasks_at_once(sweep_dir: Path) -> None:
    """GPUs are the scarce resource (issue 12): with fewer cores than GPUs every GPU is busy at once.

    Each task waits (a generous minute at most) until four tasks have started: that
    only happens if four run at the same time, whatever the load on this machine.
    """
    (sweep_dir / "started").mkdir()
    task = (
        "echo $CUDA_VISIBLE_DEVICES $MPILAUNCHER_CORES $MPILAUNCHER_NCORES $OMP_NUM_THREADS; touch started/$PYL_ID;"
        " i=0; while [ $(ls started | wc -l) -lt 4 ] && [ $i -lt 600 ]; do sleep 0.1; i=$((i+1)); done;"
        " [ $(ls started | wc -l) -ge 4 ]"
    )
    (sweep_dir / "commandlines").write_text(f"{task}\n" * 8)
    result = run_cli(
        ["commandlines", "--gpus-per-task", "1", "--cores-per-node", "2", "--workdir", "w"],
        sweep_dir,
        CUDA_VISIBLE_DEVICES="0,1,2,3",
    )
    assert result.returncode == 0, result.stderr
    rows = read_joblog(sweep_dir / "w" / "joblog")
    assert sorted(int(r["id"]) for r in rows) == list(range(8)) and {r["status"] for r in rows} == {"ok"}
    first = [r for r in rows if int(r["id"]) < 4]
    assert all(overlap(rows, a, b) for a in first for b in first), "tasks 0-3 ran at the same time"
    assert sorted(r["gpus"] for r in first) == ["0", "1", "2", "3"], "each on a GPU of its own"
    for row in rows:
        gpu, cores, ncores, threads = (sweep_dir / "w" / f"out{row['id']}").read_text().split()
        assert gpu == row["gpus"] and cores == row["cores"] and row["cores"] in ("0", "1"), row
        assert (ncores, threads) == ("1", "1"), "one core, shared with the task of another GPU"
        if len(REAL_CPUS) >= 2:
            assert row["cpus"] == str(REAL_CPUS[int(row["cores"])]), row
    for a in rows:
        for b in rows:
            if a is not b and overlap(rows, a, b):
                assert a["gpus"] != b["gpus"], "two tasks on one GPU at once"
    assert sorted(r["cores"] for r in first) == ["0", "0", "1", "1"], "the four spread over both cores"
    state = (sweep_dir / "queuestate").read_text()
    assert state.count(" cores=0 exit=0 ") == 8, "each took no core slot of its own, and completed"
    assert "\ncompleted\n" in state and "\nqueued\nrunning\ncompleted\n" in state
    status = run_cli(["--status", "queuestate"], sweep_dir)
    assert status.returncode == 0, status.stderr
    assert "# tasks completed: 8\ntasks aborted: 0\n" in result.stdout
    assert "Host pool of size 2.\n" in result.stdout
    assert "4 GPUs" in result.stdout.split("Launcherjob")[0], "the start-up lines count the GPUs"


def test_a_whole_node_gpu_task_gets_the_nodes_cores(sweep_dir: Path) -> None:
    (sweep_dir / "commandlines").write_text("echo $CUDA_VISIBLE_DEVICES $MPILAUNCHER_CORES\n" * 2)
    result = run_cli(["commandlines", "--gpus-per-task", "1", "--cores", "node", "--cores-per-node", "2",
                      "--workdir", "w"], sweep_dir, CUDA_VISIBLE_DEVICES="0,1,2,3")  # fmt: skip
    assert result.returncode == 0, result.stderr
    for row in read_joblog(sweep_dir / "w" / "joblog"):
        assert row["cores"] == "0-1" and row["gpus"] == "0", row
        assert (sweep_dir / "w" / f"out{row['id']}").read_text().split() == ["0", "0,1"]


def test_a_sweep_of_gpu_tasks_without_a_core_of_their_own_resumes(sweep_dir: Path) -> None:
    """The queuestate's cores=0 reads back, and the resumed tasks again take only their GPUs."""
    (sweep_dir / "commandlines").write_text("echo $CUDA_VISIBLE_DEVICES; test -e fixed || [ $PYL_ID -lt 4 ]\n" * 6)
    args = ["--gpus-per-task", "1", "--cores-per-node", "2"]
    first = run_cli(["commandlines", *args, "--workdir", "w"], sweep_dir, CUDA_VISIBLE_DEVICES="0,1,2,3")
    assert first.returncode == 1, first.stderr
    (sweep_dir / "fixed").touch()
    again = run_cli(["--resume", "queuestate", "--rerun-failed", *args], sweep_dir, CUDA_VISIBLE_DEVICES="0,1,2,3")
    assert again.returncode == 0, again.stderr
    assert "a shared core per task" in again.stdout
    rows = read_joblog(sweep_dir / "w" / "joblog")
    assert sorted(int(r["id"]) for r in rows if r["status"] == "ok") == list(range(6))
    state = (sweep_dir / "queuestate").read_text()
    assert state.count(" cores=0 exit=0 ") == 6 and "\nfailed\n# end of queuestate" in state


def test_tasks_spread_over_the_gpus_before_two_share_one(sweep_dir: Path) -> None:
    """--tasks-per-gpu K offers every GPU once before any GPU twice: two tasks, two GPUs."""
    assert detect_gpus({"CUDA_VISIBLE_DEVICES": "4,5"}, probe=False).shared(2).ids == ("4", "5", "4", "5")
    (sweep_dir / "commandlines").write_text("echo $CUDA_VISIBLE_DEVICES\n" * 2)
    result = run_cli(["commandlines", "--gpus-per-task", "1", "--tasks-per-gpu", "2", "--cores", "1",
                      "--cores-per-node", "2", "--workdir", "w"], sweep_dir, CUDA_VISIBLE_DEVICES="4,5")  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert sorted(r["gpus"] for r in read_joblog(sweep_dir / "w" / "joblog")) == ["4", "5"]


def test_a_resumed_gpu_sweep_finds_gpus_that_only_nvidia_smi_lists(sweep_dir: Path) -> None:
    """A workstation or cloud VM names its GPUs nowhere but in ``nvidia-smi -L``: the resume, not
    given ``--gpus-per-task`` again (the sweep's own), must look there too (it said "no GPU found")."""
    tools = sweep_dir / "bin"
    tools.mkdir()
    smi = tools / "nvidia-smi"
    smi.write_text('#!/bin/sh\n[ "$1" = -L ] && printf "GPU 0: A (UUID: GPU-a)\\nGPU 1: B (UUID: GPU-b)\\n"\n')
    smi.chmod(0o755)
    (sweep_dir / "commandlines").write_text("mkdir once 2>/dev/null && exit 1; echo $CUDA_VISIBLE_DEVICES\n" * 3)
    path = f"{tools}{os.pathsep}{os.environ['PATH']}"
    first = run_cli(["commandlines", "--gpus-per-task", "1", "--workdir", "w"], sweep_dir, PATH=path)
    assert first.returncode == 1 and "1 task of the sweep failed" in first.stderr, first.stdout + first.stderr
    (failed,) = [row["id"] for row in read_joblog(sweep_dir / "w" / "joblog") if row["exit"] != "0"]
    again = run_cli(["--resume", "queuestate", "--rerun-failed"], sweep_dir, PATH=path, CUDA_VISIBLE_DEVICES="")
    assert again.returncode == 0, again.stderr
    rerun = read_joblog(sweep_dir / "w" / "joblog")[-1]
    assert rerun["id"] == failed and rerun["gpus"] in {"0", "1"}
    assert (sweep_dir / "w" / f"out{failed}").read_text().split() == [rerun["gpus"]]


def test_a_resume_keeps_the_sweeps_tasks_per_gpu(sweep_dir: Path) -> None:
    """--tasks-per-gpu is the sweep's (how many of its tasks fit on one GPU), kept like --task-timeout:
    the printed resume command does not repeat it, and a resume ran one task per GPU."""
    (sweep_dir / "started").mkdir()
    task = (
        "test -e ok || exit 1; touch started/$PYL_ID; i=0;"
        " while [ $(ls started | wc -l) -lt 2 ] && [ $i -lt 100 ]; do sleep 0.1; i=$((i+1)); done; ls started | wc -l\n"
    )
    (sweep_dir / "commandlines").write_text(task * 2)
    gpu = ["--gpus-per-node", "1", "--cores-per-node", "2", "--cores", "1"]
    first = run_cli(["commandlines", "--gpus-per-task", "1", "--tasks-per-gpu", "2", *gpu, "--workdir", "w"], sweep_dir)
    assert first.returncode == 1, first.stderr
    (sweep_dir / "ok").touch()
    again = run_cli(["--resume", "queuestate", "--rerun-failed", *gpu], sweep_dir)
    assert again.returncode == 0, again.stderr
    assert "the sweep's --tasks-per-gpu of 2 holds (as it began; give --tasks-per-gpu to change it)" in again.stderr
    assert [(sweep_dir / "w" / f"out{i}").read_text().split() for i in (0, 1)] == [["2"], ["2"]], "together"


def test_a_finished_gpu_sweep_run_again_where_no_gpu_is_runs_nothing_and_needs_none(sweep_dir: Path) -> None:
    """A user walk: the same GPU sweep again, on a node without GPUs, was refused ("no GPU found") where there
    was nothing to run."""
    (sweep_dir / "commandlines").write_text("true\n" * 2)
    first = run_cli(["commandlines", "--gpus-per-task", "1", "--gpus-per-node", "1", "--workdir", "w"], sweep_dir)
    assert first.returncode == 0, first.stderr
    for again in (["commandlines", "--gpus-per-task", "1"], ["--resume", "queuestate"]):
        result = run_cli([*again, "--gpus-per-node", "0"], sweep_dir)
        assert result.returncode == 0 and "no GPU found" not in result.stderr, result.stderr
