"""The benchmark scripts still run (tiny sizes; the figures are not checked: they are not tests)."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from mpilauncher.execution.executor import compiled_available
from tests.conftest import ROOT, launcher_env

BENCH = ROOT / "benchmarks"


def test_simulate_runs_and_every_task_is_decided(tmp_path: Path) -> None:
    pytest.importorskip("numpy")
    out = tmp_path / "sim.json"
    result = subprocess.run(
        [sys.executable, str(BENCH / "simulate.py"), "--cores", "128,1024", "--tasks", "3000", "--mixed",
         "--repeat", "2", "--json", str(out)],
        capture_output=True, text=True, timeout=300, env=launcher_env(),
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    rows = json.loads(out.read_text())
    assert [r["tasks"] for r in rows] == [3000, 3000]
    assert all(r["decisions_per_second"] > 0 and r["standby_starts"] >= 0 for r in rows)
    assert all(r["microseconds_per_task"] == min(r["microseconds_per_task_runs"]) for r in rows)  # the fastest of 2
    assert [len(r["microseconds_per_task_runs"]) for r in rows] == [2, 2]


def test_tail_simulates_each_policy_and_leaves_the_launchers_reserve_as_it_was(tmp_path: Path) -> None:
    """Every sweep runs to its end under every policy (tail.py asserts each task ended and the scheduler said all
    done); standbys off send none, and the reserve each policy set is put back (a later run in one process
    would otherwise inherit it)."""
    out = tmp_path / "tail.json"
    result = subprocess.run(
        [sys.executable, str(BENCH / "tail.py"), "--nodes", "2", "--cores", "4", "--rounds", "3", "--latency",
         "0,0.01", "--durations", "uniform,short", "--reserve", "off,1,0", "--seeds", "2", "--json", str(out)],
        capture_output=True, text=True, timeout=300, env=launcher_env(),
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    rows = json.loads(out.read_text())
    assert len(rows) == 2 * 2 * 3 and all(r["makespan"] > 0 and r["reports_a_task"] > 0 for r in rows)
    assert all(r["reports_a_task"] == 1 for r in rows if r["reserve"] == "off"), "nothing behind an end: it goes"
    assert all(r["standbys_a_task"] == 0 for r in rows if r["reserve"] == "off")
    assert any(r["standbys_a_task"] > 0 for r in rows if r["reserve"] == "0")
    sys.path.insert(0, str(BENCH))
    try:
        import tail

        from mpilauncher.core import scheduler

        tail.simulate([0.5] * 24, 2, 4, 0.01, 0.0)
        assert scheduler.STANDBY_RESERVE == 1.0
    finally:
        sys.path.remove(str(BENCH))


def test_submasters_runs_and_every_task_is_decided(tmp_path: Path) -> None:
    """submasters.py at a tiny size: one master, then four sub-masters under a top master; every task
    decided in both, and the figures written as JSON and as a Markdown table."""
    pytest.importorskip("numpy")
    out = tmp_path / "submasters.json"
    result = subprocess.run(
        [sys.executable, str(BENCH / "submasters.py"), "--quick", "--cores", "512,2048", "--groups", "1,4",
         "--task-seconds", "0.5", "--tasks", "3000", "--workdir", str(tmp_path), "--json", str(out)],
        capture_output=True, text=True, timeout=300, env=launcher_env(),
    )  # fmt: skip
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    document = json.loads(out.read_text())
    assert document["calibration"]["master_cost"] > 0 and document["calibration"]["observer_cost"] > 0
    rows = document["rows"]
    assert [(r["groups"], r["cores_per_group"], r["completed"]) for r in rows] == [(1, 512, 3000), (4, 512, 3000)]
    assert rows[0]["top_chunks"] == 0 and rows[1]["top_chunks"] >= 4
    assert all(0 < r["busy"] <= r["bound_busy"] <= 1 and r["sub_load"] > 0 for r in rows)
    assert "| 2,048 | 4 x 512 | 0.5 | 3,000 |" in result.stdout


def test_throughput_runs_and_reports_a_ratio(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, str(BENCH / "throughput.py"), "--tasks", "40", "--repeat", "1", "--no-warmup",
         "--tmpdir", str(tmp_path)],
        capture_output=True, text=True, timeout=300, env=launcher_env(),
    )  # fmt: skip
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    assert "ratio mpilauncher/xargs" in result.stdout


def test_startup_times_the_first_start_and_the_exit_of_both_and_leaves_nothing_behind(tmp_path: Path) -> None:
    """startup.py at a tiny size, with another checkout beside this one (``--checkout``: here this one
    again, by another path): each timed, each compared with xargs, nothing left behind."""
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    (tmp_path / "before").symlink_to(BENCH.parent)
    result = subprocess.run(
        [sys.executable, str(BENCH / "startup.py"), "--tasks", "4", "--slots", "2", "--sleep", "0", "--repeat", "2",
         "--dir", str(scratch), "--checkout", f"before={tmp_path / 'before'}"],
        capture_output=True, text=True, timeout=300, env=launcher_env(),
    )  # fmt: skip
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    rows = {line.split()[0] for line in result.stdout.splitlines() if line and not line.startswith("#")}
    assert {"xargs", "mpilauncher", "mpilauncher@before", "python"} <= rows, result.stdout
    assert "mpilauncher minus xargs: " in result.stdout
    assert "mpilauncher@before minus xargs: " in result.stdout
    assert list(scratch.iterdir()) == [], "its folders are removed"
    refused = subprocess.run([sys.executable, str(BENCH / "startup.py"), "--checkout", f"x={scratch}"],
                             capture_output=True, text=True, timeout=60, env=launcher_env())  # fmt: skip
    assert refused.returncode == 2 and "not a checkout of mpilauncher" in refused.stderr


def test_startup_times_the_launcher_under_mpiexec_beside_a_hello_world_of_as_many_ranks(tmp_path: Path) -> None:
    """``--mpiexec R``: the launcher under ``mpiexec -n R`` (R emulated nodes sharing the slots) is a row of its
    own, timed from its tasks as the others are, next to an MPI hello-world of R ranks; R must divide the slots."""
    result = subprocess.run(
        [sys.executable, str(BENCH / "startup.py"), "--tasks", "4", "--slots", "2", "--sleep", "0", "--repeat", "1",
         "--mpiexec", "2", "--dir", str(tmp_path)],
        capture_output=True, text=True, timeout=300, env=launcher_env(),
    )  # fmt: skip
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    rows = {line.split()[0] for line in result.stdout.splitlines() if line and not line.startswith("#")}
    assert {"xargs", "mpilauncher", "mpilauncher-mpiexec", "mpiexec"} <= rows, result.stdout
    assert re.search(r"mpilauncher-mpiexec minus mpilauncher: [+-]\d+\.\d ms; the MPI hello-world with as many"
                     r" ranks \d+\.\d ms", result.stdout), result.stdout  # fmt: skip
    refused = subprocess.run([sys.executable, str(BENCH / "startup.py"), "--slots", "2", "--mpiexec", "3"],
                             capture_output=True, text=True, timeout=60, env=launcher_env())  # fmt: skip
    assert refused.returncode == 2 and "--mpiexec 3: the ranks must divide --slots (2)" in refused.stderr


def test_peers_runs_the_peers_that_are_always_there_and_names_the_missing_one(tmp_path: Path) -> None:
    """peers.py at tiny sizes, disk and tmpfs: xargs and mpilauncher (alone and under mpiexec) measured,
    and PyLauncher, which is never on PATH and may not be installed here (``--no-install``, an empty
    cache), reported as not installed rather than dropped."""
    out = tmp_path / "out"
    result = subprocess.run(
        [sys.executable, str(BENCH / "peers.py"), "--quick", "--tasks", "12", "--repeat", "1", "--no-warmup",
         "--workload", "W1,W4", "--peers", "xargs,mpilauncher,mpilauncher-nobind,mpilauncher-mpiexec,pylauncher",
         "--no-install",
         "--cache", str(tmp_path / "cache"), "--disk", str(tmp_path), "--out", str(out)],
        capture_output=True, text=True, timeout=600, env=launcher_env(),
    )  # fmt: skip
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    document = json.loads((out / "peers.json").read_text())
    cells = {(c["location"], c["workload"], c["peer"]): c for c in document["cells"]}
    for location in ("disk", "tmpfs"):
        for workload in ("W1", "W4"):
            for peer in ("xargs", "mpilauncher", "mpilauncher-nobind", "mpilauncher-mpiexec", "mpi-hello"):
                cell = cells[location, workload, peer]
                assert cell["status"] == "ok" and len(cell["wall_s"]) == 1, cell
            assert cells[location, workload, "mpilauncher"]["ratio_median"] > 0
        assert 0 < cells[location, "W4", "mpilauncher"]["busy_fraction"] <= 1
    assert document["peers"]["pylauncher"]["problem"].startswith("not installed")
    # mpilauncher as users run it (its default binding), and unbound as xargs leaves its tasks
    assert "--no-bind" not in document["peers"]["mpilauncher"]["how"]["W1"]
    assert "--no-bind" in document["peers"]["mpilauncher-nobind"]["how"]["W1"]
    table = (out / "peers.md").read_text()
    assert "python benchmarks/peers.py --quick" in table and "| mpilauncher " in table
    assert "not installed" in table


def test_peers_refuses_a_figures_folder_it_cannot_write_before_measuring_anything(tmp_path: Path) -> None:
    """--out is checked first: a run of many minutes must not end in an error that loses its figures."""
    taken = tmp_path / "a-file"
    taken.write_text("not a folder\n")
    result = subprocess.run(
        [sys.executable, str(BENCH / "peers.py"), "--peers", "xargs", "--out", str(taken)],
        capture_output=True, text=True, timeout=60, env=launcher_env(),
    )  # fmt: skip
    assert result.returncode == 2
    assert f"--out {taken}: cannot make the folder" in result.stderr
    assert "run 1/" not in result.stdout  # nothing was measured
    assert taken.read_text() == "not a folder\n"


def test_master_ceiling_runs_every_task_to_completion(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, str(BENCH / "master_ceiling.py"), "--nodes", "4", "--cores", "8", "--tasks", "500",
         "--repeat", "2", "--workdir", str(tmp_path)],
        capture_output=True, text=True, timeout=300, env=launcher_env(),
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "completions/s, master alone" in result.stdout and "cores busy" in result.stdout
    # The memory a task, said once (the later runs reuse what the first freed), its two figures one measure.
    memory = re.findall(r"memory: the peak grew (\d+\.\d) MiB over this first run, (\d+) bytes a task", result.stdout)
    assert len(memory) == 1, result.stdout
    mib, per_task = float(memory[0][0]), int(memory[0][1])
    assert abs(per_task * 500 - mib * 2**20) <= 0.05 * 2**20 + 500, memory


def test_million_runs_at_a_small_size(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, str(BENCH / "million.py"), "--tasks", "2000", "--settle", "0.2", "--dir", str(tmp_path)],
        capture_output=True, text=True, timeout=300, env=launcher_env(),
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "none within the timeout" not in result.stdout, result.stdout
    assert "--status after kill -9:" in result.stdout and "B  in all" in result.stdout
    assert "half-way (1,000 tasks completed, the last 1,000 in the journal): --status" in result.stdout, result.stdout
    assert "finished (all completed but task " in result.stdout and "warning:" not in result.stderr, result.stderr


def test_dispatch_runs_under_mpiexec_and_sets_the_start_up_next_to_a_hello_world(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, str(BENCH / "dispatch.py"), "--tasks", "300", "--ranks", "5", "--nodes", "4", "--cores",
         "4", "--repeat", "1", "--json", str(tmp_path / "dispatch.json"), "--trace", str(tmp_path / "trace")],
        capture_output=True, text=True, timeout=300, env=launcher_env(), stdin=subprocess.DEVNULL,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    document = json.loads((tmp_path / "dispatch.json").read_text())
    (run,) = document["runs"]
    assert run["completed"] == 300 and 0 < run["first_start_seconds"] < run["command_seconds"]
    assert document["hello_seconds"] > 0 and "an MPI hello-world at 5 ranks" in result.stdout
    start_up = run["startup_cpu_ms_a_rank"]  # (MPI_Init apart from the CPU a task: a rank may spin there)
    assert start_up["imports"] > 0 and start_up["MPI_Init"] >= 0 and "start-up CPU a rank" in result.stdout
    assert set(run["cpu_us_a_task"]) == {"master", "agents", "executors", "tasks"}
    waited = run["runqueue_wait_seconds"]  # (0 on a kernel without schedstat)
    assert 0 <= waited["master"] <= run["wall_seconds"] + 1 and "waiting for a CPU while runnable" in result.stdout
    # Every report of the other nodes' agents followed to rank 0 (the tasks of rank 0's own node send none).
    sys.path.insert(0, str(BENCH))
    from benchkit.trace import follow

    reports = follow(tmp_path / "trace" / "run0")
    assert reports and all("received" in r for r in reports) and sum(r["ends"] for r in reports) < 300
    assert f"run0: {len(reports):,} reports" in result.stdout


def test_after_delete_runs_every_kind_and_leaves_nothing_behind(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, str(BENCH / "after_delete.py"), "--tasks", "40", "--rounds", "1", "--dir", str(tmp_path),
         "--json", str(tmp_path / "times.json")],
        capture_output=True, text=True, timeout=300, env=launcher_env(), stdin=subprocess.DEVNULL,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    times = json.loads((tmp_path / "times.json").read_text())["seconds"]
    assert {kind: len(seconds) for kind, seconds in times.items()} == {
        "xargs": 2, "fresh": 1, "after rm": 1, "per-node after rm": 1
    }  # fmt: skip
    assert "per-node after rm" in result.stdout and "x xargs" in result.stdout
    assert sorted(p.name for p in tmp_path.iterdir()) == ["times.json"], "its workdirs are removed"


def test_executor_floor_runs_each_executor_loop_and_the_floor_and_leaves_nothing_behind(tmp_path: Path) -> None:
    compiler = os.environ.get("CC", "cc")
    probe = tmp_path / "probe.c"
    # The floor's own headers, and the newest things it uses (pidfd_open's number, posix_spawn's setsid):
    # a compiler with older headers than those is no compiler for it, and the test is skipped, not failed.
    headers = [line for line in (BENCH / "executor_floor.c").read_text().splitlines() if line.startswith("#")]
    probe.write_text("\n".join(headers) + "\nint main(void) { return SYS_pidfd_open + POSIX_SPAWN_SETSID; }\n")
    if shutil.which(compiler) is None or subprocess.run([compiler, "-o", os.devnull, str(probe)]).returncode:
        pytest.skip("no working C compiler here: executor_floor.py says so and exits 2")
    probe.unlink()
    result = subprocess.run(
        [sys.executable, str(BENCH / "executor_floor.py"), "--tasks", "40", "--repeat", "1", "--dir", str(tmp_path)],
        capture_output=True, text=True, timeout=300, env=launcher_env(), stdin=subprocess.DEVNULL,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    medians = result.stdout.split("medians:")[1]
    assert "python loop" in medians and "C floor" in medians
    assert ("compiled loop" in medians) == compiled_available()
    assert "the python loop costs" in result.stdout
    assert list(tmp_path.iterdir()) == [], "its scratch folder is removed"
