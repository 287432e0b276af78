"""What the figures were measured on: the machine, its load, and the file system under a scratch directory."""

from __future__ import annotations

import os
import platform
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path

#: The checkout the benchmarks live in: the one they measure unless told otherwise.
REPO_ROOT = Path(__file__).resolve().parents[2]


def default_slots() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as f:
            for line in f:
                if line.lower().startswith(("model name", "hardware", "cpu model")):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def first_line(argv: list[str], env: dict[str, str] | None = None) -> str:
    try:
        out = subprocess.run(argv, capture_output=True, text=True, timeout=30, env=env)
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    text = (out.stdout or out.stderr).strip()
    return text.splitlines()[0] if text else "unknown"


#: (checkout, interpreter) pairs whose bytecode this process has brought up to date.
_COMPILED: set[tuple[Path, str]] = set()


def compile_checkout(root: Path = REPO_ROOT, python: str = sys.executable) -> None:
    """Bring the bytecode of ``root``'s ``mpilauncher`` up to date for ``python``, as ``pip install``
    does for a user's installed copy (once a process per checkout and interpreter).

    Why: a checkout is run from its sources, and with no up-to-date ``__pycache__`` (a fresh
    clone, or sources edited since) every launcher process compiles each module it imports
    anew, in every run when ``PYTHONDONTWRITEBYTECODE`` is set, as on this project's machines.
    Measured here, one process, 8 tasks of ``true``: 317 ms median from a fresh clone against
    179 ms compiled (7 runs each): a start-up no user of an installed copy pays.
    """
    key = (root.resolve(), python)
    if key in _COMPILED:
        return
    package = root / "mpilauncher"
    if package.is_dir():  # (py_compile writes whatever PYTHONDONTWRITEBYTECODE says)
        subprocess.run([python, "-m", "compileall", "-q", str(package)], check=False, stdout=subprocess.DEVNULL)
    _COMPILED.add(key)


def checkout_env(root: Path = REPO_ROOT, python: str = sys.executable) -> dict[str, str]:
    """This environment, with the checkout ``root`` first on the path (installed or not): the benchmark
    measures that checkout's ``mpilauncher``, not whatever ``pip install -e`` pointed at last; its
    bytecode compiled for ``python`` first (see :func:`compile_checkout`)."""
    compile_checkout(root, python)
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(root), os.environ.get("PYTHONPATH")]))
    return env


def add_checkout_option(parser) -> None:
    """``--checkout LABEL=DIR``, the same in every benchmark that measures a change (A/B)."""
    parser.add_argument("--checkout", action="append", default=[], metavar="LABEL=DIR",
                        help="also measure the mpilauncher of another checkout (A/B), as mpilauncher@LABEL,"
                        " in turn with this one's (repeatable)")  # fmt: skip


def checkouts_given(parser, items: list[str]) -> dict[str, Path]:
    """The ``--checkout`` options as label -> the checkout's root; one that is not a checkout of mpilauncher
    is refused by ``parser`` (one line, exit 2)."""
    checkouts: dict[str, Path] = {}
    for item in items:
        label, _, folder = item.partition("=")
        if not label or not (Path(folder) / "mpilauncher" / "__init__.py").is_file():
            parser.error(f"--checkout {item!r}: LABEL=DIR, DIR a checkout of mpilauncher (with mpilauncher/):"
                         f" {folder or 'none given'} is not a checkout of mpilauncher")  # fmt: skip
        checkouts[label] = Path(folder).resolve()
    return checkouts


def machine_info(python: str) -> dict[str, object]:
    try:
        load = os.getloadavg()
    except OSError:
        load = (float("nan"),) * 3
    return {
        "python": f"{platform.python_implementation()} {platform.python_version()} ({python})",
        "os": platform.platform(),
        "kernel": " ".join(platform.uname()[2:4]),
        "cpu": cpu_model(),
        "cpu_count": os.cpu_count(),
        "usable_cpus": default_slots(),
        "loadavg": [round(x, 2) for x in load],
        "sh": os.path.realpath("/bin/sh"),
        "xargs": first_line(["xargs", "--version"]) if shutil.which("xargs") else "not found",
        "mpilauncher": first_line([python, "-m", "mpilauncher", "--version"], checkout_env(python=python)),
        "bytecode": "compiled before the runs"
        + (" (PYTHONDONTWRITEBYTECODE is set here)" if os.environ.get("PYTHONDONTWRITEBYTECODE") else ""),
    }


def filesystem_of(path: Path) -> str:
    """``type device mountpoint (options)`` of the mount holding ``path`` (Linux), else ``unknown``."""
    best = ("", "unknown")
    try:
        with open("/proc/mounts", encoding="utf-8") as f:
            for line in f:
                device, mountpoint, fstype, options = line.split()[:4]
                inside = str(path) == mountpoint or str(path).startswith(mountpoint.rstrip("/") + "/")
                if inside and len(mountpoint) >= len(best[0]):
                    best = (mountpoint, f"{fstype}{ext4_journal(fstype, device)} {device} on {mountpoint} ({options})")
    except OSError:
        pass
    return best[1]


def ext4_journal(fstype: str, device: str) -> str:
    """`` without a journal`` for an ext4 that has none (else "", also when unknown).

    Why it is said: without a journal, ext4's inode allocator skips every inode freed in the
    last minute (six while its table block is dirty), so on such a file system a create
    costs 200-700 us after any large ``rm`` on it, where a journaled ext4 on the same host
    takes 21-26 us (measured on this project's VMs, whose root file system has no journal).
    Users' disks and Lustre's metadata targets (ldiskfs) have journals.
    """
    if fstype not in ("ext4", "ext3"):
        return ""
    try:
        task = Path(f"/sys/fs/ext4/{os.path.basename(device)}/journal_task").read_text().strip()
    except OSError:
        return ""
    return " without a journal" if task == "<none>" else ""


def file_create_cost(directory: Path, count: int = 500) -> float:
    """Microseconds to create one empty file in ``directory``: mpilauncher creates one a task
    (``out<N>``; ``exec<N>`` too for one that fails or runs 10 s), xargs none, so this
    explains much of the gap on slow disks."""
    probe = directory / "create-probe"
    probe.mkdir()
    t0 = time.perf_counter()
    for i in range(count):
        os.close(os.open(probe / f"f{i}", os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644))
    cost = (time.perf_counter() - t0) / count * 1e6
    shutil.rmtree(probe)
    return cost


def peak_rss_bytes() -> int:
    """This process's peak resident size so far (``ru_maxrss``, kilobytes on Linux), in bytes."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
