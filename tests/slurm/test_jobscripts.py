"""Every job script in jobscripts/ submitted for real, as a user would (issue 13).

The scripts are written for real clusters: the test changes only what this 4-node, 2-CPU cluster
cannot give (node count, time limit, a GRES line; sbatch's command-line options override #SBATCH
lines) and puts a stand-in `ibrun` on PATH for the TACC scripts.  All jobs are submitted at once and
run side by side; each test waits for its own.
"""

from __future__ import annotations

import collections
import json
import os
import re
import shutil
import sys
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.conftest import MPI_TEST_SETTINGS, ROOT

PYTHON = sys.executable
SCRIPTS = ROOT / "jobscripts"
RANKCHECK = ROOT / "tests" / "data" / "rankcheck.py"
SWEEP = "echo PYL_ID $MPILAUNCHER_NODE >> ran; sleep 0.2\n" * 12


@dataclass
class Case:
    script: str
    files: dict[str, str]
    sbatch: list[str] = field(default_factory=list)
    env: dict[str, str] = field(default_factory=dict)
    nodes: int = 2  # nodes the sweep must use
    tacc: bool = False  # a TACC script: a stand-in ibrun on PATH, whole nodes (TACC's nodes are exclusive)


CASES = {
    "classic.slurm": Case("classic.slurm", {"commandlines": SWEEP}, nodes=1),
    "cli.slurm": Case("cli.slurm", {"commandlines": SWEEP}, nodes=1),
    "multinode-srun.slurm": Case("multinode-srun.slurm", {"commandlines": SWEEP}),
    "node.slurm": Case("node.slurm", {"commandlines": "echo PYL_ID $OMP_NUM_THREADS >> ran; sleep 0.2\n" * 6}),
    "mpi-srun.slurm": Case(
        "mpi-srun.slurm", {"parallellines": "".join(f"{k},{PYTHON} {RANKCHECK}\n" for k in (1, 2, 3, 4))}
    ),
    "gpu.slurm": Case(
        "gpu.slurm",
        {"gpucommandlines": "echo PYL_ID $CUDA_VISIBLE_DEVICES >> ran; sleep 0.2\n" * 8},
        sbatch=["--ntasks-per-node=2"],  # the script's 4 (= GPUs) is more than a 2-CPU node holds
        env={"CUDA_VISIBLE_DEVICES": "0,1"},  # two GPUs per node, announced by the environment
    ),
    "multinode-ibrun.slurm": Case("multinode-ibrun.slurm", {"commandlines": SWEEP}, tacc=True),
    "mpi-tacc.slurm": Case("mpi-tacc.slurm", {"parallellines": f"{PYTHON} {RANKCHECK}\n" * 3}, tacc=True),
}


def test_every_job_script_has_a_case() -> None:
    assert sorted(CASES) == sorted(p.name for p in SCRIPTS.glob("*.slurm"))


def adapted(text: str) -> str:
    """The script with what no local cluster has removed: a GRES request."""
    return "\n".join(line for line in text.splitlines() if "--gres" not in line) + "\n"


@pytest.fixture(scope="module")
def submitted(slurm_cluster, tmp_path_factory) -> dict[str, tuple[int, Path]]:
    """Every job script submitted at once (they run side by side on the cluster's nodes)."""
    standin = tmp_path_factory.mktemp("bin")
    (standin / "ibrun").write_text(f'#!/bin/sh\nexec {ROOT}/tests/data/ibrun_standin "$@"\n')
    (standin / "ibrun").chmod(0o755)
    (standin / "python3").symlink_to(PYTHON)  # the scripts say python3: the one with mpi4py
    python3 = tmp_path_factory.mktemp("python")  # ...for every script, not only the TACC ones
    (python3 / "python3").symlink_to(PYTHON)
    jobs = {}
    for name, case in CASES.items():
        directory = tmp_path_factory.mktemp(name.replace(".", "_"))
        shutil.copytree(SCRIPTS, directory / "jobscripts")
        (directory / "jobscripts" / name).write_text(adapted((SCRIPTS / name).read_text()))
        for file, text in case.files.items():
            (directory / file).write_text(text)
        path = os.pathsep.join([*([str(standin)] if case.tacc else []), str(python3), os.environ["PATH"]])
        env = {"PATH": path, "PYTHONPATH": str(ROOT), "FAKE_IBRUN_LOG": str(directory / "ibrun.log"),
               **MPI_TEST_SETTINGS, **case.env}  # fmt: skip
        # The job's environment is sbatch's own (--export=ALL): --export=NAME=a,b would split a,b at the comma.
        submit = ["env", *(f"{k}={v}" for k, v in env.items()), "sbatch", "--parsable", "-N", str(case.nodes),
                  "-t", "5", "-o", str(directory / "job.out"), "-D", str(directory), "--export=ALL",
                  *(["--exclusive"] if case.tacc else []), *case.sbatch,
                  str(directory / "jobscripts" / name)]  # fmt: skip
        job = int(slurm_cluster.run(submit, timeout=60).stdout.strip().split(";")[0])
        jobs[name] = (job, directory)
    return jobs


@pytest.mark.timeout(300)
@pytest.mark.parametrize("name", sorted(CASES))
def test_job_script_runs_its_sweep(slurm_cluster, submitted, name: str) -> None:
    job, directory = submitted[name]
    state = slurm_cluster.wait_job(job, timeout=240)
    output = (directory / "job.out").read_text() if (directory / "job.out").exists() else "(no output)"
    assert state == "COMPLETED", f"{name}: {state}\n{output}"
    assert output.count("Launcherjob run completed.") == 1, output
    case = CASES[name]
    if "parallellines" in case.files:
        tasks = case.files["parallellines"].count("\n")
        ranks = [json.loads((directory / f"ranks{i}.json").read_text()) for i in range(tasks)]
        assert all(len(r) == r[0]["size"] for r in ranks), ranks
        assert f"# tasks completed: {tasks}" in output
        if name == "mpi-tacc.slurm":
            assert len((directory / "ibrun.log").read_text().splitlines()) == tasks, "each task through ibrun -o -n"
        return
    rows = [line.split() for line in (directory / "ran").read_text().splitlines()]
    ids = collections.Counter(int(row[0]) for row in rows)
    lines = next(iter(case.files.values())).count("\n")
    assert ids == collections.Counter(range(lines)), f"{name}: every task exactly once\n{output}"
    assert f"# tasks completed: {lines}" in output
    if name == "node.slurm":
        assert {row[1] for row in rows} == {str(slurm_cluster.cpus_per_node)}, "a whole node's threads each"
    if name == "gpu.slurm":
        assert collections.Counter(row[1] for row in rows) == {"0": 4, "1": 4}, "each task its own GPU"
    hosts = re.search(r"host pool: \d+ cores?(?: and \d+ GPUs?)? on (\d+) node", output)
    assert hosts and int(hosts.group(1)) == case.nodes, output
