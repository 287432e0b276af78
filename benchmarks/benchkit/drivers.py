#!/usr/bin/env python3
"""The small programs that run a commandlines file with a peer that has no command line of its own.

Each runs as its own process, under the peer's interpreter (PyLauncher's and HyperQueue's virtual
environments, or ``mpiexec ... python -m mpi4py.futures``), and ends by printing ``# tasks completed: N``
as mpilauncher and PyLauncher do, so that one check serves every peer.  Standard library only at the top:
the interpreters that run this file have nothing else in common.

    python drivers.py pylauncher FILE SLOTS [DELAY]   # PyLauncher's LocalLauncher, SLOTS local "hosts"
    python drivers.py hyperqueue FILE SLOTS           # a local HyperQueue server + one worker of SLOTS cpus
    mpiexec -n SLOTS+1 python -m mpi4py.futures drivers.py futures FILE
"""

from __future__ import annotations

import sys
from pathlib import Path


def commands(path: str) -> list[str]:
    return [line for line in Path(path).read_text().splitlines() if line.strip()]


def pylauncher(path: str, slots: int, delay: float | None) -> int:
    """What a PyLauncher user runs on one node: its default is one task start per ``delay`` (0.5 s) tick.
    It prints its own statistics, ``# tasks completed: N`` among them."""
    from pylauncher import pylauncher as launcher

    launcher.LocalLauncher(path, slots, **({} if delay is None else {"delay": delay}))
    return 0


def hyperqueue(path: str, slots: int) -> int:
    """A server and one worker of ``slots`` cpus in this process (the PyPI wheel's ``LocalCluster``), one job
    with a task a line; each task's stdout and stderr go to ``<task>.stdout``/``.stderr`` in the current
    directory, HyperQueue's default.  Its server directory goes to ``$TMPDIR`` (given by the caller)."""
    from hyperqueue import Job, LocalCluster
    from hyperqueue.cluster import WorkerConfig

    lines = commands(path)
    with LocalCluster(worker_config=WorkerConfig(cores=slots)) as cluster:
        client = cluster.client()
        job = Job(default_workdir=".")
        for line in lines:
            job.program(["/bin/sh", "-c", line])
        submitted = client.submit(job)
        ok = client.wait_for_jobs([submitted], raise_on_error=False)
        failed = 0 if ok else len(client.get_failed_tasks(submitted))
    print(f"# tasks completed: {len(lines) - failed}")
    return 0 if ok else 1


def futures(path: str) -> int:
    """``mpi4py.futures``' pool of the ranks ``mpiexec`` started (rank 0 is this script, the others are its
    workers), one ``sh -c`` per line, unordered: each worker takes the next line when it is free."""
    import functools
    import subprocess

    from mpi4py.futures import MPIPoolExecutor

    lines = commands(path)
    with MPIPoolExecutor() as pool:
        codes = list(pool.map(functools.partial(subprocess.call, shell=True), lines, unordered=True))
    completed = sum(code == 0 for code in codes)
    print(f"# tasks completed: {completed}")
    return 0 if completed == len(lines) else 1


def main(argv: list[str]) -> int:
    peer, path, *rest = argv
    if peer == "pylauncher":
        return pylauncher(path, int(rest[0]), float(rest[1]) if len(rest) > 1 else None)
    if peer == "hyperqueue":
        return hyperqueue(path, int(rest[0]))
    if peer == "futures":
        return futures(path)
    sys.exit(f"drivers.py: no driver for {peer!r}")


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
