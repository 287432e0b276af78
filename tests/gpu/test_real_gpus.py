"""GPU tasks on real NVIDIA GPUs, as a user runs them: skipped where there is none.

Everywhere else the suite emulates GPUs (``--gpus-per-node``, ``SLURM_GPUS_ON_NODE``): it
proves the bookkeeping, not that a task really finds and uses its GPU, that a GPU found by
``nvidia-smi`` alone is used, or that a killed task gives its GPU memory back.  These tests
do, where ``nvidia-smi`` lists a GPU and this Python has PyTorch (each task runs a small
PyTorch program on its GPU).  Run them on a GPU node with ``python -m pytest tests/gpu``.
Last run on one NVIDIA H200 (16 CPUs, PyTorch 2.11, Open MPI 4.1.6's mpiexec): all pass in ~90 s.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from mpilauncher.report.joblog import read as read_joblog
from tests.conftest import concurrency, kill_tagged, launcher_env, new_tag, tagged_pids, wait_for


def _nvidia_smi(*query: str) -> list[str]:
    """``nvidia-smi`` lines (a query's CSV rows without header or units), [] where it fails."""
    if shutil.which("nvidia-smi") is None:
        return []
    try:
        out = subprocess.run(["nvidia-smi", *query], capture_output=True, text=True, timeout=60).stdout
    except (OSError, subprocess.SubprocessError):
        return []
    return [line.strip() for line in out.splitlines() if line.strip()]


def _gpu_uuids() -> list[str]:
    return _nvidia_smi("--query-gpu=uuid", "--format=csv,noheader")


UUIDS = _gpu_uuids()
pytestmark = pytest.mark.skipif(
    not UUIDS or importlib.util.find_spec("torch") is None,
    reason="needs a real NVIDIA GPU (nvidia-smi) and PyTorch: a GPU node's check",
)

#: A task's program: it says which GPUs it was given and sees, then holds ``MIB`` MiB of its
#: GPU's memory and keeps the GPU busy for ``SECONDS`` s (or sleeps ``SLEEP`` s after "ready").
TASK = r"""
import json, os, sys, time
import torch
mib, seconds, sleep = (float(a) for a in sys.argv[1:4])
assert torch.cuda.is_available(), "no GPU visible to the task"
held = torch.empty(int(mib * 2**20), dtype=torch.uint8, device="cuda")
a = torch.randn(2048, 2048, device="cuda")
began = time.time()
products = 0
while time.time() - began < seconds:
    a = torch.tanh(a @ a)
    torch.cuda.synchronize()
    products += 1
props = torch.cuda.get_device_properties(0)
print(json.dumps({
    "visible": os.environ.get("CUDA_VISIBLE_DEVICES"), "launcher_gpus": os.environ.get("MPILAUNCHER_GPUS"),
    "count": torch.cuda.device_count(), "name": props.name, "uuid": str(getattr(props, "uuid", "")),
    "pid": os.getpid(), "products": products,
}), flush=True)
print("ready", flush=True)
time.sleep(sleep)
"""


def task_line(directory: Path, mib: int = 256, seconds: float = 1.0, sleep: float = 0.0) -> str:
    program = directory / "gpu_task.py"
    if not program.exists():
        program.write_text(TASK)
    return f"{sys.executable} {program} {mib} {seconds} {sleep}\n"


def gpu_env(**extra: str) -> dict[str, str]:
    """The launcher's environment with no GPU named (CUDA_VISIBLE_DEVICES unset): found by nvidia-smi."""
    env = launcher_env(**extra)
    for name in ("CUDA_VISIBLE_DEVICES", "ROCR_VISIBLE_DEVICES", "HIP_VISIBLE_DEVICES", "NVIDIA_VISIBLE_DEVICES"):
        if name not in extra:
            env.pop(name, None)
    return env


def run(args: list[str], cwd: Path, timeout: float = 300, **extra: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "mpilauncher", *args], cwd=cwd, env=gpu_env(**extra),
                          capture_output=True, text=True, timeout=timeout)  # fmt: skip


def reports(workdir: Path) -> dict[str, dict]:
    """Each task's report line (its out<N>), by task id."""
    found = {}
    for row in read_joblog(workdir / "joblog"):
        text = (workdir / f"out{row['id']}").read_text()
        found[row["id"]] = json.loads(next(line for line in text.splitlines() if line.startswith("{")))
    return found


def most_at_once(rows: list[dict[str, str]], gpu: str) -> int:
    """The most tasks that ran on ``gpu`` at one moment (the joblog's start/end stamps)."""
    return concurrency([r for r in rows if r["gpus"] == gpu])


def gpu_memory_used_mib() -> list[int]:
    return [int(v) for v in _nvidia_smi("--query-gpu=memory.used", "--format=csv,noheader,nounits")]


def test_gpus_found_by_nvidia_smi_alone_each_task_on_its_own(sweep_dir: Path) -> None:
    count = len(UUIDS)
    (sweep_dir / "commandlines").write_text(task_line(sweep_dir, seconds=1.0) * (2 * count + 1))
    result = run(["commandlines", "--gpus-per-task", "1", "--workdir", "w"], sweep_dir)
    assert result.returncode == 0, result.stderr + result.stdout
    rows = read_joblog(sweep_dir / "w" / "joblog")
    assert len(rows) == 2 * count + 1 and {r["exit"] for r in rows} == {"0"}
    for task_id, seen in reports(sweep_dir / "w").items():
        row = next(r for r in rows if r["id"] == task_id)
        assert seen["visible"] == seen["launcher_gpus"] == row["gpus"] in {str(i) for i in range(count)}
        assert seen["count"] == 1 and seen["products"] > 0, seen
    for gpu in {r["gpus"] for r in rows}:
        assert most_at_once(rows, gpu) == 1, f"two tasks on GPU {gpu} at once"


def test_tasks_per_gpu_share_each_gpu_as_asked(sweep_dir: Path) -> None:
    count = len(UUIDS)
    (sweep_dir / "commandlines").write_text(task_line(sweep_dir, seconds=3.0) * (3 * count))
    result = run(["commandlines", "--gpus-per-task", "1", "--tasks-per-gpu", "3", "--workdir", "w"], sweep_dir)
    assert result.returncode == 0, result.stderr + result.stdout
    rows = read_joblog(sweep_dir / "w" / "joblog")
    assert {r["exit"] for r in rows} == {"0"}
    assert {seen["count"] for seen in reports(sweep_dir / "w").values()} == {1}
    assert max(most_at_once(rows, gpu) for gpu in {r["gpus"] for r in rows}) == 3, "3 tasks share a GPU at once"


def test_a_gpu_named_by_its_uuid_reaches_the_task(sweep_dir: Path) -> None:
    uuid = UUIDS[0]
    (sweep_dir / "commandlines").write_text(task_line(sweep_dir, seconds=0.2) * 2)
    result = run(["commandlines", "--gpus-per-task", "1", "--workdir", "w"], sweep_dir, CUDA_VISIBLE_DEVICES=uuid)
    assert result.returncode == 0, result.stderr + result.stdout
    for seen in reports(sweep_dir / "w").values():
        assert seen["visible"] == uuid and seen["count"] == 1


def test_pylauncher_gpulauncher_script_uses_the_detected_gpus(sweep_dir: Path) -> None:
    (sweep_dir / "gpucommandlines").write_text(task_line(sweep_dir, seconds=0.2) * 3)
    script = sweep_dir / "job.py"
    script.write_text("import mpilauncher as pylauncher\npylauncher.GPULauncher('gpucommandlines', workdir='w')\n")
    result = subprocess.run([sys.executable, str(script)], cwd=sweep_dir, env=gpu_env(), capture_output=True,
                            text=True, timeout=300)  # fmt: skip
    assert result.returncode == 0, result.stderr + result.stdout
    seen = reports(sweep_dir / "w")
    assert len(seen) == 3 and all(s["count"] == 1 for s in seen.values())


def _wait_ready(workdir: Path, tasks: int, timeout: float = 120) -> list[int]:
    """The pids of ``tasks`` tasks once each has said "ready" (it holds its GPU memory)."""

    def ready() -> list[int]:
        pids = []
        for out in workdir.glob("out*"):
            text = out.read_text(errors="replace")
            if "ready" in text:
                pids.append(json.loads(next(line for line in text.splitlines() if line.startswith("{")))["pid"])
        return pids

    wait_for(lambda: len(ready()) >= tasks, timeout, f"{tasks} GPU tasks to hold their memory")
    return ready()


def _gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return Path(f"/proc/{pid}/stat").exists() and Path(f"/proc/{pid}/stat").read_text().split()[2] == "Z"


def test_a_gpu_task_killed_at_its_timeout_gives_its_gpu_memory_back(sweep_dir: Path) -> None:
    before = gpu_memory_used_mib()
    tag = new_tag()
    (sweep_dir / "commandlines").write_text(task_line(sweep_dir, mib=4096, seconds=0.1, sleep=600))
    try:
        result = run(["commandlines", "--gpus-per-task", "1", "--task-timeout", "20", "--workdir", "w"], sweep_dir,
                     MPL_TEST_TAG=tag)  # fmt: skip
        assert result.returncode == 1, result.stderr + result.stdout
        (row,) = read_joblog(sweep_dir / "w" / "joblog")
        assert row["status"] != "completed" and "ready" in (sweep_dir / "w" / "out0").read_text()
        assert tagged_pids(tag) == [], "a process of the timed-out GPU task is left"
        wait_for(lambda: sum(gpu_memory_used_mib()) < sum(before) + 1024, 30, "the GPU memory to be given back")
    finally:
        kill_tagged(tag)


def test_ctrl_c_leaves_no_gpu_task_behind(sweep_dir: Path) -> None:
    before = gpu_memory_used_mib()
    tag = new_tag()
    (sweep_dir / "commandlines").write_text(task_line(sweep_dir, mib=2048, seconds=0.1, sleep=600) * 2)
    launcher = subprocess.Popen(
        [sys.executable, "-m", "mpilauncher", "commandlines", "--gpus-per-task", "1", "--tasks-per-gpu", "2",
         "--workdir", "w"],
        cwd=sweep_dir, env=gpu_env(MPL_TEST_TAG=tag), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        pids = _wait_ready(sweep_dir / "w", 2)
        launcher.send_signal(signal.SIGINT)
        out, err = launcher.communicate(timeout=60)
        assert launcher.returncode != 0 and "stopped by SIGINT" in out + err, out + err
        deadline = time.monotonic() + 10
        while not all(_gone(pid) for pid in pids) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert all(_gone(pid) for pid in pids) and tagged_pids(tag) == []
        wait_for(lambda: sum(gpu_memory_used_mib()) < sum(before) + 1024, 30, "the GPU memory to be given back")
        resumed = run(["--resume", "queuestate", "--task-timeout", "8"], sweep_dir, MPL_TEST_TAG=tag)
        assert "2 tasks" in resumed.stdout + resumed.stderr, resumed.stdout + resumed.stderr
    finally:
        launcher.kill()
        kill_tagged(tag)


@pytest.mark.skipif(shutil.which("mpiexec") is None, reason="needs mpiexec")
def test_gpu_tasks_under_mpiexec_run_on_the_agents_gpus(sweep_dir: Path) -> None:
    count = len(UUIDS)
    (sweep_dir / "commandlines").write_text(task_line(sweep_dir, seconds=0.5) * (2 * count))
    result = subprocess.run(
        ["mpiexec", "-n", "2", sys.executable, "-m", "mpilauncher", "commandlines", "--gpus-per-task", "1",
         "--workdir", "w"],
        cwd=sweep_dir, capture_output=True, text=True, timeout=300,
        env=gpu_env(OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1"),  # (Open MPI refuses root else)
    )  # fmt: skip
    assert result.returncode == 0, result.stderr + result.stdout
    rows = read_joblog(sweep_dir / "w" / "joblog")
    assert len(rows) == 2 * count and {r["exit"] for r in rows} == {"0"}
    assert all(s["count"] == 1 for s in reports(sweep_dir / "w").values())
