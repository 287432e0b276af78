"""MPI tasks (IbrunLauncher, --mpi): k ranks on exactly the slots the scheduler chose.

A real mpi4py program is the task; from inside, it reports its world size and
which emulated node each rank belongs to; the tests compare that with the
joblog (the scheduler's placement), for k below, equal to and above a node.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

from mpilauncher.core.ranges import expand
from mpilauncher.report.joblog import read as read_joblog
from tests.conftest import ROOT, exec_text, launcher_env

RANKCHECK = ROOT / "tests" / "data" / "rankcheck.py"


def run_mpi(ranks: int, args: list[str], cwd: Path, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        ["mpiexec", "-n", str(ranks), sys.executable, "-m", "mpilauncher", *args],
        cwd=cwd, env=launcher_env(**env), capture_output=True, text=True, timeout=240,
    )  # fmt: skip


def ranks_of(directory: Path, task: int) -> list[dict]:
    return json.loads((directory / f"ranks{task}.json").read_text())


def expected_hosts(row: dict[str, str]) -> list[str]:
    """One host per rank, in rank order, from the joblog's node+node / cores+cores columns."""
    nodes, cores = row["node"].split("+"), row["cores"].split("+")
    return [
        node for node, ids in zip(nodes, cores, strict=True) for _ in expand(ids.replace(",", " "), largest=1 << 16)
    ]


def test_k_ranks_on_the_assigned_slots_below_equal_above_a_node(sweep_dir: Path) -> None:
    widths = [1, 2, 3, 4, 2]
    (sweep_dir / "commandlines").write_text("".join(f"{k},{sys.executable} {RANKCHECK}\n" for k in widths))
    result = run_mpi(3, ["commandlines", "--mpi", "--cores", "file", "--emulate-nodes", "3", "--cores-per-node", "2",
                         "--workdir", "w", "--mpi-starter", "mpiexec"], sweep_dir)  # fmt: skip
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    rows = {int(r["id"]): r for r in read_joblog(sweep_dir / "w" / "joblog")}
    for task, k in enumerate(widths):
        ranks = ranks_of(sweep_dir, task)
        assert [r["size"] for r in ranks] == [k] * k, f"task {task} must have exactly {k} ranks"
        assert [r["host"] for r in ranks] == expected_hosts(rows[task]), rows[task]
        if k > 2:
            assert "+" in rows[task]["node"], "wider than a node: spans nodes"
    assert rows[3]["cores"] == "0-1+0-1"


def test_mpi_task_exit_code_is_the_starters_and_its_slots_are_freed(sweep_dir: Path) -> None:
    lines = [f"2,{sys.executable} {RANKCHECK} 3", f"2,{sys.executable} {RANKCHECK}", f"2,{sys.executable} {RANKCHECK}"]
    (sweep_dir / "commandlines").write_text("\n".join(lines) + "\n")
    result = subprocess.run(
        [sys.executable, "-m", "mpilauncher", "commandlines", "--mpi", "--cores", "file", "--cores-per-node", "2",
         "--workdir", "w"],
        cwd=sweep_dir, env=launcher_env(), capture_output=True, text=True, timeout=240,
    )  # fmt: skip
    assert result.returncode == 1
    exits = {int(r["id"]): r["exit"] for r in read_joblog(sweep_dir / "w" / "joblog")}
    assert exits[0] != "0" and exits[1] == exits[2] == "0", "the failed task freed its 2 slots for the others"


def test_pyl_mpiexec_marker_places_the_starter(sweep_dir: Path) -> None:
    (sweep_dir / "sub").mkdir()
    (sweep_dir / "commandlines").write_text(f"cd sub && PYL_MPIEXEC {sys.executable} {RANKCHECK}\n")
    script = sweep_dir / "s.py"
    script.write_text("import mpilauncher as pylauncher\npylauncher.IbrunLauncher('commandlines', cores=2, "
                      "workdir='w', mpi_starter='mpiexec', corespernode=2)\n")  # fmt: skip
    result = subprocess.run([sys.executable, str(script)], cwd=sweep_dir, env=launcher_env(), capture_output=True,
                            text=True, timeout=120)  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert [r["size"] for r in ranks_of(sweep_dir / "sub", 0)] == [2, 2]
    assert exec_text(sweep_dir / "w", 0).splitlines()[-1].startswith("cd sub && mpiexec -hosts ")


def test_ibrun_offsets_through_a_stand_in(sweep_dir: Path) -> None:
    bindir = sweep_dir / "bin"
    bindir.mkdir()
    shutil.copy(ROOT / "tests" / "data" / "fake_ibrun", bindir / "ibrun")
    log = sweep_dir / "ibrun.log"
    widths = [1, 3, 2, 4, 1]
    (sweep_dir / "commandlines").write_text("".join(f"{k},{sys.executable} {RANKCHECK}\n" for k in widths))
    result = run_mpi(3, ["commandlines", "--mpi", "--cores", "file", "--emulate-nodes", "3", "--cores-per-node", "2",
                         "--workdir", "w"], sweep_dir,  # auto picks ibrun: it is on PATH
                     PATH=f"{bindir}{os.pathsep}{os.environ['PATH']}", FAKE_IBRUN_LOG=str(log))  # fmt: skip
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    rows = {int(r["id"]): r for r in read_joblog(sweep_dir / "w" / "joblog")}
    for line in log.read_text().splitlines():
        task, *slots = line.split()
        row = rows[int(task)]
        want = []
        for node, cores in zip(row["node"].split("+"), row["cores"].split("+"), strict=True):
            index = int(node.removeprefix("vnode"))
            for part in cores.split(","):
                low, _, high = part.partition("-")
                want += [f"{index}:{c}" for c in range(int(low), int(high or low) + 1)]
        assert slots == want, (task, slots, row)
        assert [r["size"] for r in ranks_of(sweep_dir, int(task))] == [widths[int(task)]] * widths[int(task)]
    assert len(log.read_text().splitlines()) == len(widths)


SPAWNED = ROOT / "tests" / "data" / "spawned.py"


def test_spawn_starter_runs_cooperating_tasks_and_times_out_on_others(sweep_dir: Path) -> None:
    lines = [f"1,{sys.executable} {SPAWNED}", f"2,{sys.executable} {SPAWNED} 5", f"3,{sys.executable} {SPAWNED}",
             "1,/bin/sleep 30"]  # fmt: skip
    (sweep_dir / "commandlines").write_text("\n".join(lines) + "\n")
    result = run_mpi(2, ["commandlines", "--mpi", "--cores", "file", "--mpi-starter", "spawn", "--emulate-nodes", "2",
                         "--cores-per-node", "2", "--workdir", "w"], sweep_dir,
                     MPILAUNCHER_SPAWN_TIMEOUT="3")  # fmt: skip
    assert result.returncode == 1, result.stderr[-2000:]
    exits = {int(r["id"]): r["exit"] for r in read_joblog(sweep_dir / "w" / "joblog")}
    assert exits[0] == "0" and exits[1] == "5" and exits[2] == "0", "the task's status is what it reported"
    assert exits[3] != "0"
    assert "did not start MPI within 3 s" in (sweep_dir / "w" / "out3").read_text()
    for task, k in ((0, 1), (1, 2), (2, 3)):
        sizes = [r["size"] for r in json.loads((sweep_dir / f"spawned{task}.json").read_text())]
        assert sizes == [k] * k
