"""mpilauncher on a real (local, 4-node) Slurm cluster: srun, sbatch, and the singleton re-launch."""

from __future__ import annotations

import collections
import re
import sys
from pathlib import Path

import pytest

from mpilauncher.report.joblog import read as read_joblog
from tests.conftest import MPI_TEST_SETTINGS, ROOT, exec_text, find_launcher_pid, remove_stale_mpich_segments
from tests.mpi.test_mpi_tasks import expected_hosts

PYTHON = sys.executable
SWEEP = "sleep 0.3 && echo PYL_ID $MPILAUNCHER_NODE\n" * 16


@pytest.fixture
def sweep(tmp_path: Path) -> Path:
    (tmp_path / "commandlines").write_text(SWEEP)
    return tmp_path


def nodes_used(workdir: Path) -> set[str]:
    return {row["node"] for row in read_joblog(workdir / "joblog")}


def launcher(*args: str) -> list[str]:
    return [PYTHON, "-m", "mpilauncher", *args]


@pytest.mark.timeout(120)
@pytest.mark.parametrize("per_node", [1, 2])
def test_srun_on_four_nodes(slurm_cluster, sweep: Path, per_node: int) -> None:
    result = slurm_cluster.run(
        ["srun", "-N", "4", f"--ntasks-per-node={per_node}", "--exclusive", "--mpi=pmi2", f"--chdir={sweep}",
         f"--export=ALL,PYTHONPATH={ROOT}", *launcher("commandlines", "--workdir", "w")],
        timeout=90,
    )  # fmt: skip
    assert nodes_used(sweep / "w") == set(slurm_cluster.nodes), result.stdout
    pool = len(slurm_cluster.nodes) * slurm_cluster.cpus_per_node
    assert f"Host pool of size {pool}." in result.stdout, "one rank per core or per node: the same slots"
    assert result.stdout.count("Launcherjob run completed.") == 1
    assert "# tasks completed: 16" in result.stdout


@pytest.mark.timeout(120)
def test_singleton_in_a_multi_node_batch_job_relaunches_across_it(slurm_cluster, sweep: Path) -> None:
    """The user guide's job script: a plain `python3 script.py` on -N 4 must use all four nodes."""
    (sweep / "example_classic_launcher.py").write_text(
        "import mpilauncher as pylauncher\npylauncher.ClassicLauncher('commandlines', workdir='w', debug='job')\n"
    )
    (sweep / "job.sh").write_text(
        f"#!/bin/bash\ncd {sweep}\nexport PYTHONPATH={ROOT}\n{PYTHON} example_classic_launcher.py\necho exit=$?\n"
    )
    job = slurm_cluster.sbatch("-N", "4", "--exclusive", "-o", str(sweep / "job.out"), str(sweep / "job.sh"))
    assert slurm_cluster.wait_job(job, timeout=90) == "COMPLETED"
    output = (sweep / "job.out").read_text()
    assert "re-launching across it" in output and "exit=0" in output, output
    assert output.count("Launcherjob run completed.") == 1
    assert nodes_used(sweep / "w") == set(slurm_cluster.nodes)


@pytest.mark.timeout(60)
def test_srun_without_mpi_wiring_is_refused(slurm_cluster, sweep: Path) -> None:
    result = slurm_cluster.run(
        ["srun", "-N", "2", "--ntasks-per-node=1", "--mpi=none", f"--chdir={sweep}",
         f"--export=ALL,PYTHONPATH={ROOT}", *launcher("commandlines", "--workdir", "w")],
        timeout=45, check=False,
    )  # fmt: skip
    assert result.returncode == 2
    assert "srun started 2 tasks but MPI sees one rank in each" in result.stderr
    assert not (sweep / "w").exists()


@pytest.mark.timeout(120)
def test_lost_agent_tasks_run_again_elsewhere_and_the_sweep_finishes(slurm_cluster, sweep: Path) -> None:
    (sweep / "commandlines").write_text("sleep 1.5 && echo PYL_ID >> ran\n" * 8)
    srun = ["-N", "3", "--ntasks-per-node=1", "--exclusive"]
    rc, out, err, _ = kill_a_rank_mid_sweep(sweep, srun, f"SLURMD_NODENAME={slurm_cluster.nodes[2]}", "2", 90)
    assert f"lost contact with the agent of node {slurm_cluster.nodes[2]}" in err, err
    assert "# tasks completed: 8" in out, out + err
    ran = [int(x) for x in (sweep / "ran").read_text().split()]
    assert set(ran) == set(range(8)), "every task ran; those of the lost node ran again elsewhere"
    rows = read_joblog(sweep / "w" / "joblog")
    assert len(rows) == 8 and all(r["exit"] == "0" for r in rows)
    assert slurm_cluster.nodes[2] not in {r["node"] for r in rows}, "the lost node's tasks finished elsewhere"
    # A user walk: srun said 137 and "CANCELLED" after a sweep whose every task exited 0.  srun reports a rank
    # killed by a signal so whatever the others do (Slurm 22.05): the launcher's last line says the outcome.
    last = [line for line in err.splitlines() if line.startswith("mpilauncher:")][-1]
    assert f"lost rank 2 ({slurm_cluster.nodes[2]})" in last and "the sweep completed" in last, err
    assert "exit status 0" in last and "srun then reports the lost rank's end, 137" in last, err
    assert rc == 137, (rc, err)
    assert not (sweep / "queuestate.lock").exists()


@pytest.mark.timeout(90)
def test_a_parked_rank_killed_on_another_node_does_not_hang_the_end(slurm_cluster, sweep: Path) -> None:
    """A user walk: a rank parked on another node than rank 0's killed mid-sweep; the sweep completed, then
    rank 0 spun for good in MPICH's send of its SHUTDOWN to the dead rank (the refused connection retried
    inside MPI), the lock left behind.  Its agent's BYE says it is gone: no SHUTDOWN goes to it, and the
    run ends at once with its statistics, its queuestate complete and no lock left."""
    (sweep / "commandlines").write_text("sleep 1 && echo PYL_ID >> ran\n" * 12)
    srun = ["-N", "2", "--ntasks-per-node=2"]
    rc, out, err, took = kill_a_rank_mid_sweep(sweep, srun, "SLURM_PROCID=3", "30", 45)
    assert "# tasks completed: 12" in out, out + err
    assert sorted(int(x) for x in (sweep / "ran").read_text().split()) == list(range(12))
    last = [line for line in err.splitlines() if line.startswith("mpilauncher:")][-1]
    assert "lost rank 3 (" in last and "the sweep completed" in last, err
    assert not (sweep / "queuestate.lock").exists(), "the lock is given back"
    assert took < 30, f"the end waited {took:.0f} s: for the agent timeout, not at once"
    assert rc == 137, (rc, err)


@pytest.mark.timeout(150)
def test_an_agent_killed_in_a_long_sweep_never_holds_the_job_and_a_resume_finishes_it(
    slurm_cluster, sweep: Path
) -> None:
    """A user walk: an agent rank killed on another node well into a sweep; rank 0 then sent it a start and
    spun inside MPICH's send (the refused connection retried in the call) until the job's time limit, never
    reaching the agent timeout.  Now the send's watchdog aborts the job within the agent timeout (here 10 s),
    the lock given back, and a resume runs what was left; or, where rank 0 sent nothing to the dead rank
    before the timeout, the lost node's tasks run elsewhere.  Either way nothing holds the nodes."""
    (sweep / "commandlines").write_text("sleep 1 && echo PYL_ID >> ran\n" * 40)
    srun = ["-N", "2", "--ntasks-per-node=2"]
    rc, out, err, took = kill_a_rank_mid_sweep(sweep, srun, "SLURM_PROCID=2", "10", 60, settle=3.0)
    assert took < 40, f"the end waited {took:.0f} s"
    assert not (sweep / "queuestate.lock").exists(), "the lock is given back"
    if "has been stuck inside MPI" in err:
        assert "rank 0 (" in err and "a send to rank 2 has been stuck inside MPI for 10 s" in err, err
        assert rc != 0 and "# tasks completed" not in out, (rc, out)
        resumed = slurm_cluster.run(
            ["srun", *srun, "--mpi=pmi2", f"--chdir={sweep}", f"--export=ALL,PYTHONPATH={ROOT}",
             *launcher("--resume", "queuestate")], timeout=100,
        )  # fmt: skip
        assert resumed.returncode == 0, resumed.stderr
    else:
        assert f"lost contact with the agent of node {slurm_cluster.nodes[1]}" in err, err
    assert set(int(x) for x in (sweep / "ran").read_text().split()) == set(range(40)), "every task ran"


def kill_a_rank_mid_sweep(
    sweep: Path, srun: list[str], victim: str, agent_timeout: str, timeout: float, settle: float = 0.5
) -> tuple[int, str, str, float]:
    """Run ``commandlines`` under ``srun SRUN --mpi=pmi2``, kill -9 the rank whose environment holds ``victim``
    (``NAME=value``) ``settle`` s after the first task has run, and wait up to ``timeout`` s for the end: srun's
    exit status, its output and error, and the seconds from the kill to the end."""
    import os
    import signal
    import subprocess
    import time
    import uuid

    marker = uuid.uuid4().hex
    env = {**os.environ, **MPI_TEST_SETTINGS, "PYTHONPATH": str(ROOT), "MPL_TEST_MARK": marker}
    proc = subprocess.Popen(
        ["srun", *srun, "--mpi=pmi2", f"--job-name=mpl-{marker[:8]}",
         *launcher("commandlines", "--workdir", "w", "--agent-timeout", agent_timeout)],
        cwd=sweep, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        pid = None
        deadline = time.monotonic() + 60
        while pid is None or not (sweep / "w" / "out0").exists():
            if proc.poll() is not None:
                out, err = proc.communicate()
                raise AssertionError(f"the launcher ended before the test could kill a rank:\n{out}\n{err}")
            assert time.monotonic() < deadline, "the launcher did not start within 60 s"
            pid = find_launcher_pid(marker, victim)
            time.sleep(0.1)
        time.sleep(settle)
        os.kill(pid, signal.SIGKILL)
        killed = time.monotonic()
        try:
            out, err = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            out, err = proc.communicate()
            lock = "; queuestate.lock left behind" if (sweep / "queuestate.lock").exists() else ""
            raise AssertionError(f"srun did not end within {timeout} s of the kill{lock}:\n{out}\n{err}") from None
        return proc.returncode, out, err, time.monotonic() - killed
    finally:
        if proc.poll() is None:
            proc.kill()
        subprocess.run(["scancel", f"--name=mpl-{marker[:8]}"], check=False, timeout=10)
        remove_stale_mpich_segments()  # the killed rank's shared memory would trip later MPI jobs


@pytest.mark.timeout(150)
def test_a_node_whose_tasks_fail_at_once_is_taken_out_of_use_and_the_sweep_finishes(slurm_cluster, sweep: Path) -> None:
    """Issue 13: one node lacks what the tasks need (here by an environment difference: its name) and fails
    each at once with exit 127; it is taken out of use with one line and every task completes elsewhere."""
    bad = slurm_cluster.nodes[-1]
    line = f'[ "$MPILAUNCHER_NODE" = {bad} ] && exit 127; sleep 0.5; echo PYL_ID >> ran\n'
    (sweep / "commandlines").write_text(line * 40)
    result = slurm_cluster.run(
        ["srun", "-N", str(len(slurm_cluster.nodes)), "--ntasks-per-node=1", "--exclusive", "--mpi=pmi2",
         f"--chdir={sweep}", f"--export=ALL,PYTHONPATH={ROOT}", *launcher("commandlines", "--workdir", "w")],
        timeout=120,
    )  # fmt: skip
    said = [text for text in result.stderr.splitlines() if "out of use" in text]
    assert len(said) == 1 and said[0].startswith(f"mpilauncher: warning: node {bad} taken out of use:"), result.stderr
    rows = read_joblog(sweep / "w" / "joblog")
    assert all(r["exit"] == "127" for r in rows if r["node"] == bad)
    assert collections.Counter((sweep / "ran").read_text().split()) == collections.Counter(map(str, range(40)))
    assert "# tasks completed: 40" in result.stdout and f"nodes taken out of use: {bad}" in result.stdout


@pytest.mark.timeout(120)
@pytest.mark.parametrize("inherited", [True, False], ids=["srun's SLURM_MPI_TYPE", "none (as under mpiexec)"])
def test_mpi_tasks_via_nested_srun_run_on_exactly_their_nodes(slurm_cluster, sweep: Path, inherited: bool) -> None:
    """IbrunLauncher-style MPI tasks inside the launcher's own step: srun --overlap with an exact layout.

    Without the SLURM_MPI_TYPE the launcher's own srun sets (started by mpiexec inside a Slurm job, a
    user walk), the tasks' srun ran each rank as a program of its own on this cluster (MpiDefault=none):
    it must ask for the MPI plugin itself."""
    import json

    rankcheck = ROOT / "tests" / "data" / "rankcheck.py"
    widths = [1, 2, 3, 4]
    (sweep / "commandlines").write_text("".join(f"{k},{PYTHON} {rankcheck}\n" for k in widths))
    unset = [] if inherited else ["env", "-u", "SLURM_MPI_TYPE"]
    result = slurm_cluster.run(
        ["srun", "-N", "3", "--ntasks-per-node=1", "--exclusive", "--mpi=pmi2", f"--chdir={sweep}",
         f"--export=ALL,PYTHONPATH={ROOT}", *unset,
         *launcher("commandlines", "--mpi", "--cores", "file", "--workdir", "w")],
        timeout=100,
    )  # fmt: skip
    rows = {int(r["id"]): r for r in read_joblog(sweep / "w" / "joblog")}
    for task, k in enumerate(widths):
        ranks = json.loads((sweep / f"ranks{task}.json").read_text())
        assert [r["size"] for r in ranks] == [k] * k, result.stderr
        assert [r["host"] for r in ranks] == expected_hosts(rows[task]), (task, rows[task])
    assert "+" in rows[3]["node"], "4 ranks on 2-CPU nodes span two nodes"
    started = "srun --overlap" if inherited else "srun --mpi=pmi2 --overlap"
    assert exec_text(sweep / "w", 3).splitlines()[-1].startswith(f"{started} --ntasks=4 --nodelist=")


@pytest.mark.timeout(120)
@pytest.mark.parametrize("per_node", [1, 2])
def test_gpu_sweep_with_and_without_one_rank_per_gpu(slurm_cluster, sweep: Path, per_node: int) -> None:
    """The user guide's GPU job asks for --ntasks-per-node = GPUs per node: both ways give each task its GPU."""
    (sweep / "commandlines").write_text("echo $CUDA_VISIBLE_DEVICES $MPILAUNCHER_NODE; sleep 0.3\n" * 8)
    result = slurm_cluster.run(
        ["srun", "-N", "2", f"--ntasks-per-node={per_node}", "--exclusive", "--mpi=pmi2", f"--chdir={sweep}",
         f"--export=ALL,PYTHONPATH={ROOT}", "env", "SLURM_JOB_GPUS=0,1",  # (--export splits values at commas)
         *launcher("commandlines", "--gpus-per-task", "1", "--workdir", "w")],
        timeout=90,
    )  # fmt: skip
    rows = read_joblog(sweep / "w" / "joblog")
    assert len(rows) == 8, result.stderr
    used = {r["node"] for r in rows}  # the two nodes Slurm gave the step: any two (other jobs may run)
    assert len(used) == 2 and used <= set(slurm_cluster.nodes), "both nodes ran GPU tasks"
    assert {(r["node"], r["gpus"]) for r in rows} <= {(n, g) for n in used for g in ("0", "1")}
    assert {r["gpus"] for r in rows} == {"0", "1"}, "both GPUs of a node"
    for row in rows:
        seen = (sweep / "w" / f"out{row['id']}").read_text().split()
        assert seen == [row["gpus"], row["node"]]


@pytest.mark.timeout(150)
def test_four_gpus_on_nodes_of_two_cpus_are_all_busy_at_once(slurm_cluster, sweep: Path) -> None:
    """GPUs are the scarce resource (issue 12): 2 CPUs and 4 GPUs a node, 8 tasks on 2 nodes run at once.

    Each task waits (a minute at most) until all eight have started: only if every GPU is busy at once.
    """
    (sweep / "started").mkdir()
    (sweep / "commandlines").write_text(
        "echo $CUDA_VISIBLE_DEVICES $MPILAUNCHER_NODE; touch started/$PYL_ID; i=0;"
        " while [ $(ls started | wc -l) -lt 8 ] && [ $i -lt 600 ]; do sleep 0.1; i=$((i+1)); done;"
        " [ $(ls started | wc -l) -ge 8 ]\n" * 8
    )
    result = slurm_cluster.run(
        ["srun", "-N", "2", "--ntasks-per-node=1", "--exclusive", "--mpi=pmi2", f"--chdir={sweep}",
         f"--export=ALL,PYTHONPATH={ROOT}", "env", "SLURM_JOB_GPUS=0,1,2,3",
         *launcher("commandlines", "--gpus-per-task", "1", "--workdir", "w")],
        timeout=120,
    )  # fmt: skip
    rows = read_joblog(sweep / "w" / "joblog")
    assert len(rows) == 8 and {r["status"] for r in rows} == {"ok"}, result.stdout + result.stderr
    used = {r["node"] for r in rows}  # the two nodes Slurm gave the step: any two (other jobs may run)
    assert len(used) == 2 and used <= set(slurm_cluster.nodes), rows
    assert sorted((r["node"], r["gpus"]) for r in rows) == sorted((n, g) for n in used for g in ("0", "1", "2", "3")), (
        "every GPU of both nodes, one task each"
    )
    for row in rows:
        assert (sweep / "w" / f"out{row['id']}").read_text().split() == [row["gpus"], row["node"]]
        assert row["cores"] in ("0", "1"), "a core shared with the task of another GPU"
    assert "host pool: 4 cores and 8 GPUs on 2 nodes" in result.stdout


@pytest.mark.timeout(300)
def test_resubmitting_a_pylauncher_job_script_continues_the_sweep_across_the_nodes(slurm_cluster, sweep: Path) -> None:
    """PyLauncher's example_block_launcher.py, stopped by maxruntime and submitted again until done (issue 11)."""
    lines = "mkdir -p out && cd out && sleep 0.4 && touch PYLTID && echo PYLTID >> ../ran && cd ..\n"
    (sweep / "blockcommandlines").write_text(lines * 16)
    (sweep / "example_block_launcher.py").write_text(
        "import os\nimport mpilauncher as pylauncher\n"
        'example = "ClassicLauncher"\n'
        'result = pylauncher.ClassicLauncher("blockcommandlines", schedule="block2", maxruntime=1.5,\n'
        '    debug="host+exec+task+job+cmd")\n'
        "if result.statistics is not None:\n"
        '    print(f"post-processing: {result.completed} done, {result.left} left", flush=True)\n'
    )
    (sweep / "job.sh").write_text(
        f"#!/bin/bash\ncd {sweep}\nexport PYTHONPATH={ROOT}\n{PYTHON} example_block_launcher.py\necho exit=$?\n"
    )
    outputs = []
    for attempt in range(5):
        out = sweep / f"job{attempt}.out"
        job = slurm_cluster.sbatch("-N", "2", "--exclusive", "-o", str(out), str(sweep / "job.sh"))
        assert slurm_cluster.wait_job(job, timeout=90) == "COMPLETED"
        outputs.append(out.read_text())
        assert "exit=0" in outputs[-1], outputs[-1]
        if "Launcherjob run completed." in outputs[-1]:
            break
    assert "Launcherjob run completed." in outputs[-1] and len(outputs) >= 2, outputs
    for output in outputs:
        assert output.count("post-processing: ") == 1, "rank 0 alone has the statistics"
        assert output.count("mpilauncher: note: debug=") <= 1, "the relaunch does not repeat the notes"
    assert all("holds an unfinished run of these commandlines" in output for output in outputs[1:])
    ran = collections.Counter(map(int, (sweep / "ran").read_text().split()))
    assert set(ran) == set(range(16)), "every line ran"
    # a block is one task: one stopped after its first line runs again whole (at-least-once, per block)
    assert all(line % 2 == 0 for line, count in ran.items() if count > 1), ran
    for output in outputs:  # each job on both of its nodes (which two may change from job to job)
        assert re.search(r"host pool: 4 cores on 2 nodes", output), output
