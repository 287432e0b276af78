"""``mpiexec -n K python -m mpilauncher ...`` end to end, with emulated nodes."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

from mpilauncher.core.tasks import CoresSpec
from mpilauncher.persistence.store import load_state
from mpilauncher.report.joblog import read as read_joblog
from tests.conftest import launcher_env, run_cli

MIXED = "".join(f"{(i % 3) + 1},sh -c 'exit {i % 4 == 3 and 1 or 0}'\n" for i in range(24)) + "2,kill -9 $$\n"


def run_mpi(
    ranks: int, args: list[str], cwd: Path, timeout: float = 180, starter: tuple[str, ...] = (), **env: str
) -> subprocess.CompletedProcess:
    return subprocess.run(
        ["mpiexec", *starter, "-n", str(ranks), sys.executable, "-m", "mpilauncher", *args],
        cwd=cwd,
        env=launcher_env(**env),
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def outcome(directory: Path, state: str = "queuestate") -> dict:
    ledger = load_state(directory / state, CoresSpec("fixed", 1)).ledger
    return {r.id: (r.state, r.exit_code, r.task.cores) for r in ledger}


def summary_counts(stdout: str) -> tuple[str, str, str]:
    return (
        re.search(r"# tasks completed: (\d+)", stdout).group(1),
        re.search(r"tasks aborted: (\d+)", stdout).group(1),
        re.search(r"Host pool of size (\d+)", stdout).group(1),
    )


def test_a_reading_under_mpiexec_is_said_once(sweep_dir: Path) -> None:
    """``--status`` and ``report`` read the sweep's files: under ``mpiexec -n 3`` rank 0 alone answers
    (each rank printed the whole status)."""
    (sweep_dir / "commandlines").write_text("true\nfalse\n")
    assert run_cli(["commandlines", "--workdir", "w", "-q"], sweep_dir).returncode == 1
    status = run_mpi(3, ["--status", "queuestate"], sweep_dir, timeout=60)
    assert status.returncode == 0, status.stderr
    assert status.stdout.count("queuestate: 2 tasks") == 1, status.stdout
    report = run_mpi(3, ["report", "w"], sweep_dir, timeout=60)
    assert report.returncode == 0, report.stderr
    assert report.stdout.count("Sweep: ") == 1, report.stdout
    missing = run_mpi(3, ["--status", "nothing-here"], sweep_dir, timeout=60)
    assert missing.returncode == 2 and missing.stderr.count("error:") == 1, missing.stderr


@pytest.mark.parametrize("ranks", [2, 4, 8])
def test_same_results_as_singleton(sweep_dir: Path, ranks: int) -> None:
    (sweep_dir / "commandlines").write_text(MIXED)
    single = sweep_dir / "single"
    single.mkdir()
    (single / "commandlines").write_text(MIXED)
    base = ["commandlines", "--cores", "file", "--workdir", "w"]
    ref = run_cli([*base, "--cores-per-node", str(3 * ranks)], single)
    res = run_mpi(ranks, [*base, "--cores-per-node", "3", "--emulate-nodes", str(ranks)], sweep_dir)
    assert ref.returncode == res.returncode == 1, res.stderr
    assert outcome(single) == outcome(sweep_dir)
    assert summary_counts(ref.stdout) == summary_counts(res.stdout) == ("18", "7", str(3 * ranks))
    rows = read_joblog(sweep_dir / "w" / "joblog")
    assert sorted(int(r["id"]) for r in rows) == list(range(25))
    nodes = {r["node"] for r in rows}
    assert nodes == {f"vnode{i}" for i in range(ranks)}, "tasks ran on every emulated node"
    assert {r["exit"] for r in rows if r["id"] == "24"} == {"-9"}
    assert res.stdout.count("Launcherjob run completed.") == 1, "only rank 0 reports"


def test_cores_node_under_mpi(sweep_dir: Path) -> None:
    (sweep_dir / "commandlines").write_text("echo $OMP_NUM_THREADS $MPILAUNCHER_NODE\n" * 6)
    res = run_mpi(
        3,
        ["commandlines", "--cores", "node", "--cores-per-node", "4", "--emulate-nodes", "3", "--workdir", "w"],
        sweep_dir,
    )
    assert res.returncode == 0, res.stderr
    rows = read_joblog(sweep_dir / "w" / "joblog")
    assert all(r["cores"] == "0-3" for r in rows)
    outputs = {(sweep_dir / "w" / f"out{i}").read_text().split()[0] for i in range(6)}
    assert outputs == {"4"}


def test_one_rank_per_core_gives_the_same_slots_as_one_rank_per_node(sweep_dir: Path) -> None:
    (sweep_dir / "commandlines").write_text("true\n" * 8)
    per_node = run_mpi(
        2,
        ["commandlines", "--emulate-nodes", "2", "--cores-per-node", "4", "--workdir", "a", "--queuestate", "qa"],
        sweep_dir,
    )
    per_core = run_mpi(
        8,
        ["commandlines", "--emulate-nodes", "2", "--cores-per-node", "4", "--workdir", "b", "--queuestate", "qb"],
        sweep_dir,
    )
    assert per_node.returncode == per_core.returncode == 0, per_core.stderr
    assert "Host pool of size 8." in per_node.stdout and "Host pool of size 8." in per_core.stdout
    assert {r["node"] for r in read_joblog(sweep_dir / "b" / "joblog")} == {"vnode0", "vnode1"}


def test_bad_input_under_mpi_stops_every_rank_with_one_line(sweep_dir: Path) -> None:
    (sweep_dir / "commandlines").write_text("1,true\n9,too wide\n")
    res = run_mpi(
        4,
        ["commandlines", "--cores", "file", "--emulate-nodes", "2", "--cores-per-node", "4", "--workdir", "w"],
        sweep_dir,
        timeout=60,
    )
    assert res.returncode == 2
    errors = [line for line in res.stderr.splitlines() if line.startswith("mpilauncher")]
    assert errors == ["mpilauncher: error: commandlines:2: task 1 needs 9 cores, but the largest node has 4"]
    assert not (sweep_dir / "w").exists() and not (sweep_dir / "queuestate").exists()


@pytest.mark.parametrize(
    "bad", [["--cores-per-node", "0"], ["--task-timeout", "abc"], ["--bogus"], ["--cores"]], ids=lambda bad: bad[0]
)
def test_a_bad_option_under_mpiexec_is_one_line_from_rank_0_and_status_2_on_every_rank(
    sweep_dir: Path, bad: list[str]
) -> None:
    """A bad option is found before MPI starts, by every rank alike: only rank 0 says it (a user walk saw
    the line once per rank, 64 of them under a 64-node srun, where a bad commandlines line was one)."""
    (sweep_dir / "commandlines").write_text("true\n")
    res = run_mpi(3, ["commandlines", "--workdir", "w", *bad], sweep_dir, timeout=60)
    assert res.returncode == 2, res.stderr
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("mpilauncher: error: "), res.stderr
    assert sorted(p.name for p in sweep_dir.iterdir()) == ["commandlines"], "bad input writes nothing"


def test_pylauncher_script_under_mpiexec(sweep_dir: Path) -> None:
    (sweep_dir / "commandlines").write_text("echo PYL_ID\n" * 5)
    (sweep_dir / "script.py").write_text(
        "import mpilauncher as pylauncher\n"
        "result = pylauncher.ClassicLauncher('commandlines', workdir='w')\n"
        "import os\n"
        "open(f'rank{os.environ[\"PMI_RANK\"]}', 'w').write(f'{result.exit_status} {result.statistics is not None}')\n"
    )
    res = subprocess.run(
        ["mpiexec", "-n", "3", sys.executable, "script.py"],
        cwd=sweep_dir,
        env=launcher_env(),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert res.returncode == 0, res.stderr
    results = sorted((sweep_dir / f"rank{r}").read_text() for r in range(3))
    assert results == ["0 False", "0 False", "0 True"], "every rank returns; only rank 0 has the statistics"
    assert len(read_joblog(sweep_dir / "w" / "joblog")) == 5


REAL_CPUS = sorted(os.sched_getaffinity(0))


@pytest.mark.skipif(len(REAL_CPUS) < 2, reason="needs 2 CPUs")
def test_a_starter_that_binds_each_rank_to_one_cpu_does_not_confine_the_tasks(sweep_dir: Path) -> None:
    """`mpiexec -bind-to core` pins every rank to one CPU for MPI's sake: the node still has all its
    cores, and its tasks are bound to their own CPUs, not all to the agent's."""
    (sweep_dir / "commandlines").write_text("grep Cpus_allowed_list /proc/self/status; sleep 0.3\n" * 4)
    result = run_mpi(2, ["commandlines", "--workdir", "w"], sweep_dir, starter=("-bind-to", "core"))
    assert result.returncode == 0, result.stderr
    assert f"Host pool of size {len(REAL_CPUS)}." in result.stdout
    seen = {(sweep_dir / "w" / f"out{i}").read_text().split()[-1] for i in range(4)}
    assert len(seen) == min(4, len(REAL_CPUS)), seen  # one CPU per task, not the agent's one for all
    assert "warning" not in result.stderr


def test_a_rank_confined_to_fewer_cpus_than_its_node_says_so(monkeypatch, capsys) -> None:
    from mpilauncher import launch

    monkeypatch.setattr(launch, "allowed_cpus", lambda: (3,))
    launch._warn_if_confined("c101", 48)
    err = capsys.readouterr().err
    assert "on c101 the launcher may use only 1 of the node's 48 cores" in err
    assert "srun --cpus-per-task=48" in err
    monkeypatch.setattr(launch, "allowed_cpus", lambda: tuple(range(48)))
    launch._warn_if_confined("c101", 48)
    assert capsys.readouterr().err == ""


def test_a_sweep_run_by_mpiexec_is_locked_against_a_second_launcher(sweep_dir: Path) -> None:
    """Issue 10.2 under MPI: rank 0 holds the lock; a resume started beside it is refused, and a
    resume with a state name of its own keeps writing that file."""
    (sweep_dir / "commandlines").write_text("sleep 1 && echo PYL_ID >> ran\n" * 6)
    args = ["commandlines", "--workdir", "w", "--queuestate", "mine", "--cores-per-node", "2", "--emulate-nodes", "2"]
    first = subprocess.Popen(["mpiexec", "-n", "3", sys.executable, "-m", "mpilauncher", *args], cwd=sweep_dir,
                             env=launcher_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)  # fmt: skip
    deadline = time.monotonic() + 60
    while not (sweep_dir / "w" / "out0").exists():
        assert first.poll() is None and time.monotonic() < deadline
        time.sleep(0.05)
    second = run_cli(["--resume", "mine"], sweep_dir)
    assert second.returncode == 2 and "in use by another mpilauncher" in second.stderr, second.stderr
    _, err = first.communicate(timeout=120)
    assert first.returncode == 0, err
    assert not (sweep_dir / "queuestate").exists() and not (sweep_dir / "mine.lock").exists()
    assert sorted(int(x) for x in (sweep_dir / "ran").read_text().split()) == list(range(6))


def run_script_mpi(directory: Path, body: str, ranks: int = 3) -> subprocess.CompletedProcess:
    """``mpiexec -n 3 python script.py``: every rank runs the user's script (issue 11)."""
    (directory / "script.py").write_text("import os\nimport mpilauncher as pylauncher\n" + body)
    return subprocess.run(
        ["mpiexec", "-n", str(ranks), sys.executable, "script.py"],
        cwd=directory, env=launcher_env(), capture_output=True, text=True, timeout=180,
    )  # fmt: skip


def test_a_stopped_pylauncher_script_returns_on_every_rank_and_only_rank_0_speaks(sweep_dir: Path) -> None:
    # maxruntime=3, not 1: under a loaded CI machine mpiexec -n 3's start-up alone once took the whole second,
    # and no task had started to be traced; 12 tasks of 2 s on 2 cores still cannot finish in time.
    (sweep_dir / "commandlines").write_text("sleep 2\n" * 12)
    res = run_script_mpi(
        sweep_dir,
        "result = pylauncher.ClassicLauncher('commandlines', workdir='w', corespernode=2, maxruntime=3,"
        " debug='job+exec+ssh')\n"
        "open(f'rank{os.environ[\"PMI_RANK\"]}', 'w').write(f'{result.exit_status} {result.left > 0}')\n",
    )
    assert res.returncode == 0, res.stderr
    assert sorted((sweep_dir / f"rank{r}").read_text() for r in range(3)) == ["4 False", "4 False", "4 True"]
    assert res.stderr.count("left; resume with ResumeClassicLauncher('queuestate')") == 1
    assert res.stderr.count("mpilauncher: note: debug=") == 1, "a note once (ssh), not once per rank"
    assert res.stderr.count("mpilauncher: task 0 started on ") == 1, "exec traces each task, on rank 0 only"
    assert res.stdout.count("PyLauncher 5.4 compatible) job, type=ClassicLauncher") == 1


@pytest.mark.parametrize(
    ("call", "says"),
    [("pylauncher.ClassicLauncher('commandlines', taskmaxrunime=3)", "unknown keyword taskmaxrunime="),
     ("pylauncher.ClassicLauncher('no_such_file')", "no_such_file")],
)  # fmt: skip
def test_bad_input_in_a_script_under_mpiexec_is_one_line_and_status_2_on_every_rank(
    sweep_dir: Path, call: str, says: str
) -> None:
    (sweep_dir / "commandlines").write_text("true\n")
    res = run_script_mpi(sweep_dir, call + "\nprint('not reached')\n")
    assert res.returncode == 2, res.stderr
    errors = [line for line in res.stderr.splitlines() if line.startswith("mpilauncher")]
    assert len(errors) == 1 and says in errors[0], res.stderr
    assert "not reached" not in res.stdout and "Traceback" not in res.stderr


@pytest.mark.parametrize("ranks", [1, 2])
def test_more_emulated_nodes_than_ranks_is_refused_in_one_line(sweep_dir: Path, ranks: int) -> None:
    """Issue 10.9: --emulate-nodes 3 on two ranks was silently run on two virtual nodes."""
    (sweep_dir / "commandlines").write_text("true\n")
    before = sorted(p.name for p in sweep_dir.iterdir())
    result = run_mpi(ranks, ["commandlines", "--emulate-nodes", "3"], sweep_dir)
    assert result.returncode == 2, result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("mpilauncher")]
    assert errors == [
        f"mpilauncher: error: --emulate-nodes must be at most the number of MPI ranks, {ranks} here (each virtual"
        " node needs a rank as its agent: mpiexec -n 3 ...), not 3"
    ], result.stderr
    assert sorted(p.name for p in sweep_dir.iterdir()) == before


def test_a_node_whose_tasks_fail_at_once_is_taken_out_of_use_and_its_tasks_run_elsewhere(sweep_dir: Path) -> None:
    """Issue 13: a node that lacks what the tasks need (here: vnode2, by an environment difference) fails
    every task at once; it is taken out of use with one line and every task still completes."""
    line = '[ "$MPILAUNCHER_NODE" = vnode2 ] && exit 127; sleep 0.3; echo PYL_ID >> ran\n'
    (sweep_dir / "commandlines").write_text(line * 60)
    res = run_mpi(3, ["commandlines", "--emulate-nodes", "3", "--cores-per-node", "2", "--workdir", "w"], sweep_dir)
    assert res.returncode == 0, res.stderr
    said = [text for text in res.stderr.splitlines() if "out of use" in text]
    assert len(said) == 1 and said[0].startswith("mpilauncher: warning: node vnode2 taken out of use:"), res.stderr
    assert "(exit 127)" in said[0]
    rows = read_joblog(sweep_dir / "w" / "joblog")
    assert [r for r in rows if r["node"] == "vnode2"], "it did fail tasks before it was found out"
    assert all(r["exit"] == "127" for r in rows if r["node"] == "vnode2")
    ran = (sweep_dir / "ran").read_text().split()
    assert sorted(map(int, ran)) == list(range(60)), "every task completed once, elsewhere"
    assert "# tasks completed: 60" in res.stdout and "nodes taken out of use: vnode2" in res.stdout


@pytest.mark.timeout(120)
def test_a_lost_agent_under_mpich_ends_the_job_with_the_sweeps_own_status(sweep_dir: Path) -> None:
    """An agent rank that stops answering (SIGSTOP: a hung node) is given up after --agent-timeout, its
    tasks run elsewhere, and MPICH's job is ended with MPI_Abort (its Finalize would wait for the lost
    rank).  The status was 3, "the launcher failed", for a sweep whose every task exited 0 (a user walk);
    it is the sweep's: 0, the statistics printed before the abort."""
    import signal as signals

    from tests.conftest import find_launcher_pid, new_tag, remove_stale_mpich_segments

    marker = new_tag()
    (sweep_dir / "commandlines").write_text("sleep 1.5; echo PYL_ID >> ran\n" * 8)
    proc = subprocess.Popen(
        ["mpiexec", "-n", "3", sys.executable, "-m", "mpilauncher", "commandlines", "--emulate-nodes", "2",
         "--cores-per-node", "2", "--workdir", "w", "--agent-timeout", "2"],
        cwd=sweep_dir, env=launcher_env(MPL_TEST_MARK=marker), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        text=True,
    )  # fmt: skip
    victim = None
    try:
        deadline = time.monotonic() + 60
        while victim is None or not (sweep_dir / "w" / "out1").exists():
            assert proc.poll() is None, proc.communicate()
            assert time.monotonic() < deadline, "the launcher did not start within 60 s"
            victim = find_launcher_pid(marker, "PMI_RANK=2")
            time.sleep(0.05)
        os.kill(victim, signals.SIGSTOP)
        out, err = proc.communicate(timeout=90)
    finally:
        if victim is not None:
            for signum in (signals.SIGCONT, signals.SIGKILL):
                try:
                    os.kill(victim, signum)
                except ProcessLookupError:
                    pass
        if proc.poll() is None:
            proc.kill()
        remove_stale_mpich_segments()
    assert "lost contact with the agent of node vnode1" in err, err
    assert proc.returncode == 0, out + err
    assert "# tasks completed: 8" in out, out + err
    ran = [int(x) for x in (sweep_dir / "ran").read_text().split()]
    assert set(ran) == set(range(8)), "every task; those of the lost node at least once (they ran on there)"
