"""Fixtures for the tests that need a real Slurm cluster.

The cluster is the single-host one of ``tools/slurm-cluster.sh``: slurmctld plus one slurmd per
emulated node (``node1..nodeN``), all on 127.0.0.1.  The session fixture installs it (apt-get,
first time only) and starts it if it is not up yet, and stops it at the end only if it started
it.  Where no cluster can be had (not root, not Linux, no apt-get, install failed) the tests are
skipped with the reason; a cluster that is installed but fails to start is an error.

Always pass a timeout to Slurm commands: a request larger than the cluster waits forever.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.conftest import MPI_TEST_SETTINGS

HERE = Path(__file__).resolve().parent
SCRIPT = HERE.parent.parent / "tools" / "slurm-cluster.sh"

INSTALL_TIMEOUT = 600  # apt-get update + install on a fresh machine
START_TIMEOUT = 120
STOP_TIMEOUT = 60
DEFAULT_TIMEOUT = 60  # any single srun/sbatch/squeue call


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "slurm: needs the local Slurm cluster of tools/slurm-cluster.sh")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    # This hook sees every collected test of the session: mark only the ones in this folder.
    for item in items:
        if HERE in Path(str(item.path)).resolve().parents:
            item.add_marker(pytest.mark.slurm)


class SlurmTimeout(AssertionError):
    """A Slurm command did not finish in time (its job, if it has one, was cancelled)."""


def _job_name(args: Sequence[str]) -> str | None:
    """The job name given among srun/sbatch/salloc options (before the command), if any."""
    for i, a in enumerate(args):
        if not a.startswith("-"):
            return None  # the command starts here
        if a in ("-J", "--job-name") and i + 1 < len(args):
            return args[i + 1]
        if a.startswith("--job-name="):
            return a.split("=", 1)[1]
        if a.startswith("-J") and len(a) > 2:
            return a[2:]
    return None


@dataclass
class SlurmCluster:
    nodes: list[str]
    cpus_per_node: int
    run_dir: Path
    started_here: bool
    env: dict[str, str] = field(default_factory=dict)

    Timeout = SlurmTimeout  # for tests: pytest.raises(slurm_cluster.Timeout)

    @property
    def total_cpus(self) -> int:
        return len(self.nodes) * self.cpus_per_node

    def _state(self) -> str:
        """The queue and the nodes as Slurm sees them now (for the message of a command that hung:
        a job waiting for resources, a node still completing the previous job, or a launcher stuck)."""
        lines = []
        for argv in (["squeue", "-h", "-o", "%i %j %T %R"], ["sinfo", "-N", "-h", "-o", "%N %T %E"]):
            try:
                done = subprocess.run(argv, capture_output=True, text=True, timeout=10, env={**os.environ, **self.env})
                lines.append(f"{' '.join(argv[:2])}: {done.stdout.strip() or done.stderr.strip() or '(empty)'}")
            except (OSError, subprocess.TimeoutExpired) as err:
                lines.append(f"{argv[0]}: {err}")
        return "\n".join(lines)

    def run(
        self,
        cmd: Sequence[str],
        timeout: float = DEFAULT_TIMEOUT,
        check: bool = True,
        cwd: str | os.PathLike[str] | None = None,
    ) -> subprocess.CompletedProcess[str]:
        """Run a Slurm command (or any command) with a hard timeout, capturing text output.

        ``srun``/``sbatch``/``salloc`` get a unique ``--job-name`` unless the command names its job,
        so that a command that times out -- e.g. because it waits for resources that never come --
        has its job cancelled instead of left in the queue.
        """
        cmd = list(cmd)
        job_name = None
        if cmd and Path(cmd[0]).name in ("srun", "sbatch", "salloc"):
            job_name = _job_name(cmd[1:])
            if job_name is None:
                job_name = f"mpltest-{uuid.uuid4().hex[:10]}"
                cmd.insert(1, f"--job-name={job_name}")
        proc = subprocess.Popen(
            cmd,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            cwd=cwd,
            env={**os.environ, **self.env, "PYTHONUNBUFFERED": "1"},  # (a run that hangs still shows its output)
            start_new_session=True,
        )
        try:
            out, err = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            state = self._state()  # (before the kill: where the job was when it did not finish)
            os.killpg(proc.pid, 9)
            out, err = proc.communicate()
            if job_name:
                subprocess.run(["scancel", f"--name={job_name}"], timeout=10, check=False, capture_output=True)
            raise SlurmTimeout(
                f"{' '.join(cmd)!r} did not finish within {timeout} s\nstdout: {out}\nstderr: {err}\n{state}"
            ) from None
        result = subprocess.CompletedProcess(cmd, proc.returncode, out, err)
        if check and result.returncode != 0:
            raise AssertionError(
                f"{' '.join(cmd)!r} exited {result.returncode}\nstdout: {result.stdout}\nstderr: {result.stderr}"
            )
        return result

    def srun(
        self, *args: str, timeout: float = DEFAULT_TIMEOUT, check: bool = True
    ) -> subprocess.CompletedProcess[str]:
        """``srun ARGS`` with a hard timeout (a request larger than the cluster waits forever)."""
        return self.run(["srun", *args], timeout=timeout, check=check)

    def sbatch(self, *args: str, timeout: float = DEFAULT_TIMEOUT) -> int:
        """Submit a batch job (never ``--wait``) and return its id; see :meth:`wait_job`."""
        res = self.run(["sbatch", "--parsable", *args], timeout=timeout)
        return int(res.stdout.strip().split(";")[0])

    def job_state(self, job_id: int) -> str:
        """JobState from ``scontrol show job`` (no accounting here: ``sacct`` does not work)."""
        res = self.run(["scontrol", "show", "job", str(job_id)], timeout=15, check=False)
        for word in res.stdout.split():
            if word.startswith("JobState="):
                return word.split("=", 1)[1]
        return "UNKNOWN"

    def wait_job(self, job_id: int, timeout: float = DEFAULT_TIMEOUT, poll: float = 0.2) -> str:
        """Poll ``squeue -h -j ID`` until the job has left the queue; return its final JobState.

        Polling is faster than ``sbatch --wait``, which notices the end of a job 2-10 s late.
        On timeout the job is cancelled and :class:`SlurmTimeout` raised.
        """
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            res = self.run(["squeue", "-h", "-j", str(job_id), "-o", "%T"], timeout=15, check=False)
            state = res.stdout.strip()
            # squeue lists only pending/running/completing jobs; a purged job is an "Invalid job id"
            gone = res.returncode == 0 and state in ("", "COMPLETED", "FAILED", "CANCELLED", "TIMEOUT")
            if gone or "Invalid job id" in res.stderr:
                return self.job_state(job_id)
            time.sleep(poll)
        subprocess.run(["scancel", str(job_id)], timeout=10, check=False, capture_output=True)
        raise SlurmTimeout(f"job {job_id} still queued/running after {timeout} s (cancelled)")


def _script(action: str, timeout: float) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["bash", str(SCRIPT), action],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def _settings() -> tuple[int, int, Path]:
    nodes = int(os.environ.get("MPILAUNCHER_SLURM_NODES", "4"))
    cpus = int(os.environ.get("MPILAUNCHER_SLURM_CPUS", "2"))
    run_dir = Path(os.environ.get("MPILAUNCHER_SLURM_RUN", "/tmp/mpilauncher-slurm"))
    return nodes, cpus, run_dir


@pytest.fixture(scope="session")
def slurm_cluster() -> Iterator[SlurmCluster]:
    if os.environ.get("MPILAUNCHER_SLURM_TESTS", "1") == "0":
        pytest.skip("Slurm tests disabled (MPILAUNCHER_SLURM_TESTS=0)")
    if not sys.platform.startswith("linux"):
        pytest.skip("a local Slurm cluster needs Linux")
    if os.geteuid() != 0:
        pytest.skip("a local Slurm cluster needs root (slurmd, munged, apt-get)")
    if shutil.which("bash") is None or not SCRIPT.is_file():
        pytest.skip(f"cannot run {SCRIPT}")
    if shutil.which("slurmctld") is None and shutil.which("apt-get") is None:
        pytest.skip("Slurm is not installed and there is no apt-get to install it")

    try:
        res = _script("install", INSTALL_TIMEOUT)
    except subprocess.TimeoutExpired:
        pytest.skip(f"installing Slurm took more than {INSTALL_TIMEOUT} s")
    if res.returncode != 0:
        pytest.skip(f"installing Slurm failed (rc={res.returncode}):\n{res.stderr[-2000:]}")

    # Was it up before us? Then leave it running at the end (someone else owns it).
    was_up = _script("status", 30).returncode == 0
    if not was_up:
        try:
            res = _script("start", START_TIMEOUT)
        except subprocess.TimeoutExpired:
            _script("stop", STOP_TIMEOUT)
            pytest.fail(f"starting the Slurm cluster took more than {START_TIMEOUT} s", pytrace=False)
        if res.returncode != 0:
            pytest.fail(f"starting the Slurm cluster failed (rc={res.returncode}):\n{res.stderr}", pytrace=False)

    nodes, cpus, run_dir = _settings()
    cluster = SlurmCluster(
        nodes=[f"node{i}" for i in range(1, nodes + 1)],
        cpus_per_node=cpus,
        run_dir=run_dir,
        started_here=not was_up,
        env=dict(MPI_TEST_SETTINGS),  # srun/sbatch export it to the launcher's ranks
    )
    # The cluster that is up may not be the one the environment describes: trust sinfo.
    info = cluster.run(["sinfo", "-h", "-N", "-o", "%N %c"], timeout=15).stdout.split()
    cluster.nodes = sorted(set(info[0::2]), key=lambda n: (len(n), n))
    cluster.cpus_per_node = min(int(c) for c in info[1::2])
    try:
        yield cluster
    finally:
        if cluster.started_here:
            _script("stop", STOP_TIMEOUT)
