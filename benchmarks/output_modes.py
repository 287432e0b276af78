#!/usr/bin/env python3
"""Files created and metadata operations per task, ``--output per-task`` against ``per-node``.

For each output mode and each scratch directory (this host's disk, and tmpfs), N
tasks that each write one line run once under ``strace -f`` (every process of the
run: the launcher, its executors and the tasks), and once without it for the time.
Counted per task:

- files the sweep leaves in the workdir (``ls``);
- metadata operations on the workdir's file system: the calls that create, remove,
  rename or look up a name under the workdir (``openat`` with ``O_CREAT``, ``mkdir``,
  ``unlink``, ``rename``, ``stat``/``statx``/``access`` of a workdir path); on a
  parallel file system each is a round trip to the metadata server;
- the same on the node's own disk (the spool directory of per-node output), which no
  metadata server sees.

A script that prints figures; it asserts nothing.  Needs ``strace``.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchkit.machine import checkout_env

REPO_ROOT = Path(__file__).resolve().parents[1]
METADATA_CALLS = (
    "openat,creat,mkdir,mkdirat,unlink,unlinkat,rename,renameat,renameat2,stat,lstat,newfstatat,statx,access,"
    "faccessat,faccessat2,link,linkat,symlink,symlinkat,truncate"
)
CREATING = re.compile(r"O_CREAT|O_TMPFILE|^\d+\s+(mkdir|creat|link|symlink)")


def run(commandlines: Path, workdir: Path, mode: str, spool: Path, strace_log: Path | None) -> float:
    env = {**checkout_env(REPO_ROOT), "MPILAUNCHER_SPOOL": str(spool), "MPIR_CVAR_CH4_NETMOD": "ofi"}
    command = [sys.executable, "-m", "mpilauncher", str(commandlines), "--workdir", str(workdir), "--output", mode,
               "--quiet", "--queuestate", str(workdir.parent / f"q-{workdir.name}")]  # fmt: skip
    if strace_log is not None:
        command = ["strace", "-f", "-qq", "-e", f"trace={METADATA_CALLS}", "-o", str(strace_log), *command]
    began = time.monotonic()
    subprocess.run(command, env=env, stdout=subprocess.DEVNULL, check=True)
    return time.monotonic() - began


def count(log: Path, under: str) -> tuple[int, int]:
    """(metadata calls naming a path under ``under``, of which creating a file or directory)."""
    calls = creates = 0
    with open(log, errors="replace") as lines:
        for line in lines:
            if f'"{under}' not in line:
                continue
            calls += 1
            creates += bool(CREATING.search(line))
    return calls, creates


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tasks", type=int, default=2000)
    parser.add_argument("--disk", default=str(REPO_ROOT), help="a directory on this host's disk (default: the repo)")
    parser.add_argument("--tmpfs", default="/dev/shm", help="a directory on tmpfs (default /dev/shm)")
    args = parser.parse_args()
    if shutil.which("strace") is None:
        print("strace is not installed (apt-get install strace)")
        return 1
    n = args.tasks
    print(f"{n} tasks, each `echo line PYL_ID`; per task:")
    print(f"{'scratch':<22} {'mode':<9} {'files left':>10} {'workdir metadata ops':>21} {'of them creates':>16}"
          f" {'node-local ops':>15} {'seconds (no strace)':>20}")  # fmt: skip
    for label, base in (("disk", args.disk), ("tmpfs", args.tmpfs)):
        with tempfile.TemporaryDirectory(prefix="mpl-output-modes-", dir=base) as tmp:
            root = Path(tmp)
            (root / "commandlines").write_text("echo line PYL_ID\n" * n)
            spool = root / "spool"
            spool.mkdir()
            for mode in ("per-task", "per-node"):
                traced = root / f"w-{mode}-traced"
                run(root / "commandlines", traced, mode, spool, root / f"{mode}.strace")
                calls, creates = count(root / f"{mode}.strace", str(traced))
                local, _ = count(root / f"{mode}.strace", str(spool))
                files = len(os.listdir(traced))
                seconds = run(root / "commandlines", root / f"w-{mode}", mode, spool, None)
                fs = f"{label} ({base})"
                print(f"{fs:<22} {mode:<9} {files / n:>10.3f} {calls / n:>21.2f} {creates / n:>16.3f}"
                      f" {local / n:>15.2f} {seconds / n * 1000:>17.3f} ms")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
