"""Shared helpers for the test suite."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


#: The MPICH wheel's UCX network module now and then fails its address exchange on this
#: single host (seen: "UCX ERROR failed to unpack address", slurmstepd "mpi/pmi2: value not
#: properly terminated", an MPI_Init that never returns under srun): the tests use the OFI
#: module, which needs no such exchange for ranks on one host.  Within OFI, the provider it
#: picks by itself here is "sockets", which now and then loses a message between the emulated
#: nodes of the local Slurm cluster under CPU load: every rank then spins in a collective inside
#: MPI_Init for good (seen: srun -N 4 --ntasks-per-node=2 printed nothing for 90 s, 5 of 42 runs
#: hung with the CPUs busy; all TCP queues empty; MPICH names the sockets provider's collective
#: hangs a known libfabric bug, pmodels/mpich#5437): the tests use "tcp;ofi_rxm" (0 of 95 hung).
#: Nothing in the launcher depends on the choice; clusters use their own MPI.
#: The executor processes' loops a test of their duties runs against (``MPILAUNCHER_EXECUTOR``):
#: "process" runs the compiled loop where it is built, "python" the Python loop.
EXECUTOR_LOOPS = ["process", "python"]
MPI_TEST_SETTINGS = {"MPIR_CVAR_CH4_NETMOD": "ofi", "FI_PROVIDER": "tcp;ofi_rxm"}


def recording_task(seconds: float) -> str:
    """A task line that works ``seconds``, then appends its id to ``ran``: exactly when it exits 0.

    Once its work is done it ignores SIGTERM, so a stop (``--max-runtime``, Ctrl-C) that reaches
    it after the append sees it exit 0 within the grace, which counts as completed; without the
    trap, a TERM between the append and the shell's exit recorded a run the launcher rightly
    never saw complete, and the "nothing ran twice" checks failed under load (CI, once)."""
    return f"sleep {seconds} && trap '' TERM && echo PYL_ID >> ran"


def launcher_env(**extra: str) -> dict[str, str]:
    """An environment for running the launcher as a user would, outside any Slurm job."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SLURM_", "PMI_", "HYDI_", "OMP_NUM"))}
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    env.update(MPI_TEST_SETTINGS)
    env.update(extra)
    return env


def run_cli(args: list[str], cwd: Path, timeout: float = 120, **env: str) -> subprocess.CompletedProcess:
    """``python -m mpilauncher ARGS`` in ``cwd``; output captured as text."""
    return subprocess.run(
        [sys.executable, "-m", "mpilauncher", *args],
        cwd=cwd,
        env=launcher_env(**env),
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def recorded_exec(workdir: Path, task_id: int) -> str | None:
    """Task ``task_id``'s exec script as ``output --exec`` finds it: its ``exec<N>`` (a task that
    failed or ran a while) or its lane's ``exec.<node>.<lane>`` record, whichever was written last;
    None: nowhere."""
    from mpilauncher.execution.gather import locate, read_record

    found = locate(str(workdir), task_id, "exec")
    return None if found is None else read_record(found).decode()


def exec_text(workdir: Path, task_id: int) -> str:
    """:func:`recorded_exec`, for a task that must have one."""
    text = recorded_exec(workdir, task_id)
    assert text is not None, f"no exec script of task {task_id} in {workdir}"
    return text


def find_launcher_pid(marker: str, variable: str) -> int | None:
    """The launcher process (not its starter) whose environment holds ``MPL_TEST_MARK=marker``
    and ``variable`` (``NAME=value``): how fault tests find the rank they kill.

    Only a ``python -m mpilauncher`` process counts: the rank's executors (``python -I -S -c
    "...mpilauncher/execution..."``) inherit its environment, ``SLURMD_NODENAME`` included, and
    once pids wrap one of them may come first in /proc (seen: the test killed an executor)."""
    wanted = (f"MPL_TEST_MARK={marker}".encode(), variable.encode())
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            environ = (entry / "environ").read_bytes().split(b"\0")
            argv = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        runs_launcher = any(a == b"-m" and b == b"mpilauncher" for a, b in zip(argv, argv[1:], strict=False))
        if all(w in environ for w in wanted) and runs_launcher and Path(argv[0].decode()).name != "srun":
            return int(entry.name)
    return None


#: The environment variable by which a test marks the processes it starts (see :func:`tagged_pids`).
TEST_TAG = "MPL_TEST_TAG"


def new_tag() -> str:
    """A tag no other test (or other work on this machine) carries."""
    return f"tag-{uuid.uuid4().hex[:16]}"


def tagged_pids(tag: str, command: bytes = b"") -> list[int]:
    """Live processes whose environment holds ``MPL_TEST_TAG=<tag>`` (and whose command line contains
    ``command``, when given).

    The one way tests find their own processes.  Never a pattern over the whole machine's
    process table (every process whose command holds ``sleep 30``): other work runs on these machines, and such a
    pattern finds (or kills) its processes too.  A test puts the tag in the launcher's
    environment (``run_cli(..., MPL_TEST_TAG=tag)``: every task inherits it) or in a task's
    command (``export MPL_TEST_TAG=tag; ...``).  Zombies have no environment left: they are
    not found, as they no longer run.
    """
    entry = f"{TEST_TAG}={tag}".encode()
    found = []
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/environ", "rb") as environ:
                if entry not in environ.read().split(b"\0"):
                    continue
            if command:
                with open(f"/proc/{name}/cmdline", "rb") as cmdline:
                    if command not in cmdline.read().replace(b"\0", b" "):
                        continue
        except OSError:  # gone meanwhile, or not ours to read
            continue
        found.append(int(name))
    return found


def kill_tagged(tag: str) -> None:
    """SIGKILL whatever still carries ``tag``: a failed test must not leave its processes behind."""
    for pid in tagged_pids(tag):
        try:
            os.kill(pid, 9)
        except OSError:
            pass


def concurrency(rows: list[dict[str, str]]) -> int:
    """Most tasks running at one instant, from joblog start/end times."""
    points = sorted([(float(r["start"]), 1) for r in rows] + [(float(r["end"]), -1) for r in rows])
    best = current = 0
    for _, step in points:
        current += step
        best = max(best, current)
    return best


def wait_for(condition: Callable[[], object], timeout: float = 30.0, what: str = "a condition") -> None:
    """Poll ``condition`` until it holds; fail after ``timeout`` s (generous: the machine is shared)."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:g} s waiting for {what}")
        time.sleep(0.02)


@pytest.fixture
def sweep_dir(tmp_path: Path) -> Path:
    """An empty directory to run a sweep in (the launcher's cwd)."""
    return tmp_path


def process_state(pid: int) -> str:
    """The one-letter state of ``pid`` (``/proc/<pid>/stat``: R, S, D...); "" once it is gone."""
    from mpilauncher.execution.watchdog import proc_stat

    stat = proc_stat(pid)
    return stat[0].decode() if stat is not None else ""


@contextlib.contextmanager
def mounted_tmpfs(where: Path, options: str):
    """A tmpfs mounted at ``where`` (made here) with ``options`` (``size=1m,nr_inodes=40``...): a small
    or full disk for a test; skipped where it cannot be mounted (not root); unmounted at the end."""
    where.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(where)], capture_output=True).returncode:
        pytest.skip("cannot mount a tmpfs here (needs root)")
    try:
        yield where
    finally:
        subprocess.run(["umount", "-l", str(where)])


@pytest.fixture
def frozen_fs(tmp_path: Path):
    """A small ext4 file system, frozen (``fsfreeze``): a process that writes to it sleeps in the
    kernel, uninterruptible, and outlives SIGKILL until the file system thaws -- as a task does
    on a hung Lustre or NFS mount.  Thawed and unmounted at the end, so what was stuck ends.

    Needs root, a loop device and fsfreeze (util-linux); skipped where any is missing."""
    if os.geteuid() != 0:
        pytest.skip("mounting and freezing a file system needs root")
    image, mount = tmp_path / "frozen.img", tmp_path / "frozen"
    mount.mkdir()
    with open(image, "wb") as f:
        f.truncate(16 << 20)

    def run(*argv: str) -> subprocess.CompletedProcess:
        return subprocess.run(argv, capture_output=True, text=True)

    for step in (["mkfs.ext4", "-q", "-F", str(image)], ["mount", "-o", "loop", str(image), str(mount)]):
        try:
            done = run(*step)
        except FileNotFoundError:
            pytest.skip(f"{step[0]} is not installed")
        if done.returncode:
            pytest.skip(f"{' '.join(step[:3])}: {done.stderr.strip()}")
    try:
        frozen = run("fsfreeze", "--freeze", str(mount))
    except FileNotFoundError:
        frozen = subprocess.CompletedProcess([], 1, "", "fsfreeze is not installed")
    if frozen.returncode:
        run("umount", str(mount))
        pytest.skip(f"cannot freeze a file system here: {frozen.stderr.strip()}")
    try:
        yield mount
    finally:
        run("fsfreeze", "--unfreeze", str(mount))
        deadline = time.monotonic() + 10
        while run("umount", str(mount)).returncode and time.monotonic() < deadline:
            time.sleep(0.1)  # (what was stuck there ends now that it can: it held files open there)
        if os.path.ismount(mount):
            run("umount", "--lazy", str(mount))


def remove_stale_mpich_segments() -> int:
    """Delete /dev/shm/mpich_shm_* files no live process maps.

    An MPI rank that is killed (our fault tests kill ranks on purpose) leaves its
    MPICH shared-memory segments behind, some named after its pid.  pid_max is
    small on these machines and the tests start thousands of processes, so pids
    come round again, and a later MPI job whose rank gets such a pid trips over
    the stale segment and dies at exit (seen: 'Killed (signal 9)' after every
    test passed).  Segments nobody maps are garbage: removing them is safe.
    """
    shm = Path("/dev/shm")
    stale = set(shm.glob("mpich_shm_*")) if shm.is_dir() else set()
    if not stale:
        return 0
    for maps in Path("/proc").glob("[0-9]*/maps"):
        try:
            text = maps.read_text()
        except OSError:
            continue
        stale = {path for path in stale if str(path) not in text}
    removed = 0
    for path in stale:
        try:
            path.unlink()
            removed += 1
        except OSError:
            pass
    return removed


@pytest.fixture(autouse=True, scope="session")
def clean_mpich_shared_memory():
    remove_stale_mpich_segments()
    yield
    remove_stale_mpich_segments()
