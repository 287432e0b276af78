"""The peers, and the command each one runs a workload with.

Every peer runs the same commandlines file (or the same lines NUL-separated, for ``xargs -0``), each line
under ``/bin/sh -c``, in a fresh directory of its own on the location measured (disk or tmpfs): whatever a
peer writes (mpilauncher's workdir and queuestate, PyLauncher's, HyperQueue's server directory and task
outputs, GNU parallel's buffers) lands there, as it would in a user's working directory.
"""

from __future__ import annotations

import os
import re
import shlex
from dataclasses import dataclass, field
from pathlib import Path

from benchkit.install import Found, Installer
from benchkit.machine import REPO_ROOT, checkout_env, default_slots, first_line
from benchkit.timing import Outcome
from benchkit.workloads import Workload

DRIVERS = Path(__file__).resolve().with_name("drivers.py")
COMPLETED = re.compile(r"# tasks completed:\s*(\d+)")
OWN_TIME = re.compile(r"total running time:\s*([0-9.]+)")

#: Every peer, in the table's order; ``xargs -P`` is the reference each ratio is taken against.
PEER_NAMES = (
    "xargs",
    "parallel",
    "futures",
    "hyperqueue",
    "pylauncher",
    "pylauncher-0.05",
    "mpilauncher",
    "mpilauncher-nobind",
    "mpilauncher-mpiexec",
    "mpi-hello",
    "python-start",
)
REFERENCE = "xargs"
#: The venvs of the Python peers: (folder under the cache, requirements, module to import, distribution).
PYLAUNCHER_VENV = ("pylauncher-4.0", ["pylauncher==4.0", "paramiko"], "pylauncher.pylauncher", "pylauncher")
HYPERQUEUE_VENV = ("hyperqueue", ["hyperqueue"], "hyperqueue", "hyperqueue")
MPI_BASELINE = "mpi-hello"  # not a launcher: the cost of starting MPI with the ranks mpilauncher-mpiexec uses
PYTHON_BASELINE = "python-start"  # not a launcher: the interpreter's start, under any launcher written in Python
#: The rows that are floors, not launchers: shown in seconds, never as a ratio.
BASELINES = (MPI_BASELINE, PYTHON_BASELINE)


@dataclass
class Job:
    """One measured run's inputs: the workload, its two input files, the directory the peer runs in."""

    workload: Workload
    lines: Path
    nul: Path
    rundir: Path


@dataclass
class Command:
    argv: list[str]
    env: dict[str, str]
    stdin: Path | None = None
    counts: bool = False  # the peer prints "# tasks completed: N" (checked against the workload)


@dataclass
class Peer:
    name: str
    label: str
    found: Found = field(default_factory=Found)

    @property
    def problem(self) -> str | None:
        return self.found.problem

    def command(self, job: Job) -> Command:
        raise NotImplementedError

    def check(self, outcome: Outcome, job: Job) -> str | None:
        """Why this run does not count (None: it ran every task)."""
        if outcome.timed_out:
            return "stopped at the timeout"
        if outcome.returncode != 0:
            return f"exit status {outcome.returncode}: {_last_line(outcome.output)}"
        if self.command(job).counts:
            done = COMPLETED.findall(outcome.output)
            if not done or int(done[-1]) != job.workload.tasks:
                return f"reported {done[-1] if done else 'no'} completed tasks of {job.workload.tasks}"
        return None

    def own_time(self, outcome: Outcome) -> float | None:
        own = OWN_TIME.findall(outcome.output)
        return float(own[-1]) if own else None

    def how(self, job: Job) -> str:
        """The command as a user would type it (paths shortened), for the report."""
        command = self.command(job)
        words = ["python" if os.path.isabs(w) and Path(w).name.startswith("python") else w for w in command.argv]
        text = shlex.join(words).replace(str(DRIVERS), "benchmarks/benchkit/drivers.py")
        return text + (f" < {command.stdin.name}" if command.stdin else "")


def mpiexec_ranks(workload: Workload) -> int:
    """Ranks for mpilauncher under mpiexec (and its hello-world baseline): one per emulated node when the
    workload emulates several, else one per slot up to the CPUs here (a user's one rank per core)."""
    return workload.nodes if workload.nodes > 1 else min(workload.slots, default_slots())


def under_mpiexec_emulated(argv: list[str], nodes: int, slots: int) -> list[str]:
    """mpilauncher's ``argv`` under ``mpiexec -n nodes``, each rank an emulated node with its share of ``slots``
    (how W4 runs under mpiexec, and ``startup.py --mpiexec``)."""
    share = str(slots // nodes)
    return ["mpiexec", "-n", str(nodes), *argv, "--emulate-nodes", str(nodes), "--cores-per-node", share]


def mpi_hello_argv(ranks: int, python: str) -> list[str]:
    """An MPI hello-world of ``ranks`` ranks (MPI_Init and MPI_Finalize through mpi4py): the floor under the
    launcher's figure under mpiexec."""
    return ["mpiexec", "-n", str(ranks), python, "-c", "from mpi4py import MPI"]


class Xargs(Peer):
    def command(self, job: Job) -> Command:
        # -0 is GNU `xargs -d '\n'` on NUL-separated input, and BSD/macOS xargs understands it too.
        argv = [self.found.path or "xargs", "-0", "-P", str(job.workload.slots), "-n", "1", "sh", "-c"]
        return Command(argv, dict(os.environ), stdin=job.nul)


class GnuParallel(Peer):
    def command(self, job: Job) -> Command:
        env = dict(os.environ)
        # Its output buffers go to $TMPDIR: on the location measured, like everyone's files.  /bin/sh as
        # for the others (it would pick the invoking shell), and its ~/.parallel kept out of the user's home.
        env.update(TMPDIR=str(job.rundir), PARALLEL_HOME=str(job.rundir / ".parallel"), PARALLEL_SHELL="/bin/sh")
        argv = [self.found.path or "parallel", "--will-cite", "-j", str(job.workload.slots)]
        return Command(argv, env, stdin=job.lines)


class Futures(Peer):
    def __init__(self, name: str, label: str, found: Found, python: str) -> None:
        super().__init__(name, label, found)
        self.python = python

    def command(self, job: Job) -> Command:
        ranks = job.workload.slots + 1  # rank 0 runs the script, every other rank is a worker
        argv = ["mpiexec", "-n", str(ranks), self.python, "-m", "mpi4py.futures", str(DRIVERS), "futures"]
        return Command([*argv, str(job.lines)], dict(os.environ), counts=True)


class HyperQueue(Peer):
    def command(self, job: Job) -> Command:
        env = dict(os.environ, TMPDIR=str(job.rundir))  # its server directory
        argv = [str(self.found.path), str(DRIVERS), "hyperqueue", str(job.lines), str(job.workload.slots)]
        return Command(argv, env, counts=True)


class PyLauncher(Peer):
    def __init__(self, name: str, label: str, found: Found, delay: float | None) -> None:
        super().__init__(name, label, found)
        self.delay = delay

    def command(self, job: Job) -> Command:
        argv = [str(self.found.path), str(DRIVERS), "pylauncher", str(job.lines), str(job.workload.slots)]
        if self.delay is not None:
            argv.append(str(self.delay))
        return Command(argv, dict(os.environ), counts=True)


class Mpilauncher(Peer):
    """mpilauncher as users run it: with its default CPU binding (each task pinned to its core where the
    node's core slots map to this machine's CPUs: W1 and W2 on 2 CPUs, W3 where it has 8; never W4's
    emulated nodes); ``bind=False`` adds ``--no-bind``, tasks unbound as xargs leaves them."""

    def __init__(
        self, name: str, label: str, found: Found, python: str, root: Path, mpiexec: bool, bind: bool = True
    ) -> None:  # fmt: skip
        super().__init__(name, label, found)
        self.python, self.root, self.mpiexec, self.bind = python, root, mpiexec, bind

    def command(self, job: Job) -> Command:
        w = job.workload
        argv = [self.python, "-m", "mpilauncher", str(job.lines), "--workdir", str(job.rundir / "workdir")]
        argv += ["--queuestate", str(job.rundir / "queuestate")]
        if not self.bind:
            argv.append("--no-bind")
        if self.mpiexec and w.nodes > 1:
            argv = under_mpiexec_emulated(argv, w.nodes, w.slots)
        elif self.mpiexec:
            argv = ["mpiexec", "-n", str(mpiexec_ranks(w)), *argv, "--cores-per-node", str(w.slots)]
        else:
            argv += ["--cores-per-node", str(w.slots)]
        return Command(argv, checkout_env(self.root, self.python), counts=True)


class MpiHello(Peer):
    """Not a launcher: ``mpiexec -n R python -c 'from mpi4py import MPI'`` (MPI_Init and MPI_Finalize) with
    the ranks mpilauncher gets under mpiexec, the floor that mpiexec itself puts under that figure."""

    def __init__(self, name: str, label: str, found: Found, python: str) -> None:
        super().__init__(name, label, found)
        self.python = python

    def command(self, job: Job) -> Command:
        return Command(mpi_hello_argv(mpiexec_ranks(job.workload), self.python), dict(os.environ))


class PythonStart(Peer):
    """Not a launcher: ``python -c pass`` with the interpreter and environment (``site``, its ``.pth``
    files) that mpilauncher runs with, so with its checkout first on the path: the floor under any
    launcher started as ``python -m ...``, which xargs' figure does not carry."""

    def __init__(self, name: str, label: str, found: Found, python: str) -> None:
        super().__init__(name, label, found)
        self.python = python

    def command(self, job: Job) -> Command:
        return Command([self.python, "-c", "pass"], checkout_env(REPO_ROOT, self.python))


def make_peers(names: list[str], installer: Installer, python: str, checkouts: dict[str, Path]) -> list[Peer]:
    """The peers named, found or installed, in :data:`PEER_NAMES` order; each mpilauncher peer named comes
    again for every other checkout (``LABEL -> root``), as ``mpilauncher@LABEL``: old and new in one run."""
    mpiexec, mpi4py = installer.program("mpiexec"), installer.module("mpi4py", "mpi4py")
    mpi = mpiexec if mpiexec.problem else mpi4py  # what an MPI peer needs: both, or why not
    interpreter = Found(python, first_line([python, "--version"]))

    def pylauncher(name: str, delay: float | None) -> Peer:
        found = installer.venv(*PYLAUNCHER_VENV)
        label = f"PyLauncher LocalLauncher, delay={delay}" if delay else "PyLauncher LocalLauncher, delay=0.5 (default)"
        return PyLauncher(name, label, found, delay)

    def mpilaunchers(name: str, under: bool, bind: bool = True) -> list[Peer]:
        peers: list[Peer] = []
        title = "mpilauncher under mpiexec" if under else "mpilauncher, one process"
        if not bind:
            title += ", `--no-bind`"
        for label, root in {"": REPO_ROOT, **checkouts}.items():
            version = first_line([python, "-m", "mpilauncher", "--version"], checkout_env(root, python))
            found = mpi if under and mpi.problem else Found(python, version)
            suffix, note = (f"@{label}", f" ({label})") if label else ("", "")
            peers.append(Mpilauncher(name + suffix, title + note, found, python, root, under, bind))
        return peers

    makers = {
        "xargs": lambda: [Xargs("xargs", "`xargs -P`", installer.program("xargs"))],
        "parallel": lambda: [GnuParallel("parallel", "GNU parallel", installer.gnu_parallel())],
        "futures": lambda: [Futures("futures", "mpi4py.futures", mpi, python)],
        "hyperqueue": lambda: [
            HyperQueue("hyperqueue", "HyperQueue, local server + worker", installer.venv(*HYPERQUEUE_VENV))
        ],
        "pylauncher": lambda: [pylauncher("pylauncher", None)],
        "pylauncher-0.05": lambda: [pylauncher("pylauncher-0.05", 0.05)],
        "mpilauncher": lambda: mpilaunchers("mpilauncher", False),
        "mpilauncher-nobind": lambda: mpilaunchers("mpilauncher-nobind", False, bind=False),
        "mpilauncher-mpiexec": lambda: mpilaunchers("mpilauncher-mpiexec", True),
        "mpi-hello": lambda: [MpiHello("mpi-hello", "mpiexec + MPI_Init alone (seconds)", mpi, python)],
        "python-start": lambda: [
            PythonStart("python-start", "the interpreter's start alone (seconds)", interpreter, python)
        ],
    }
    return [peer for name in PEER_NAMES if name in names for peer in makers[name]()]


def _last_line(output: str) -> str:
    lines = [line for line in output.splitlines() if line.strip()]
    return lines[-1].strip()[:200] if lines else "no output"
