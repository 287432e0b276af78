"""MPI tasks started with ``MPI_Comm_spawn``, for tasks that cooperate.

``--mpi-starter spawn`` runs each MPI task as::

    python -m mpilauncher.spawn --timeout 60 --hosts h1:2,h2:1 -- program args

a small proxy (the task's process, so its exit status is the task's) that
spawns ``program`` with the task's rank count on exactly its hosts
(``Spawn_multiple``, one ``host`` per segment) and waits for the spawned
job's verdict.

What MPI_Comm_spawn cannot do, measured here, decides the shape: spawning a
program that never calls ``MPI_Init`` blocks forever, and the parent cannot
see when spawned processes end, or how.  So the spawned program must
cooperate: it calls :func:`report` when it is done (every rank; rank 0's
status counts), which tells the proxy and disconnects::

    from mpilauncher.spawn import report
    ...
    report(0)          # or report(exit_code)

A program that does not start MPI within ``--timeout`` seconds (default 60)
ends the task with a clear message and a non-zero status instead of hanging
the launcher; for arbitrary MPI programs use the ibrun/srun/mpiexec starters.
"""

from __future__ import annotations

import argparse
import os
import sys
import threading
import time

from mpilauncher.programs import which

TAG_STATUS = 7710


def report(status: int = 0) -> None:
    """In a spawned task: tell the launcher's proxy how it went, then disconnect (all ranks)."""
    from mpi4py import MPI

    parent = MPI.Comm.Get_parent()
    if parent == MPI.COMM_NULL:
        return  # not spawned (run by hand or by another starter): nothing to report to
    if MPI.COMM_WORLD.Get_rank() == 0:
        parent.send(int(status), dest=0, tag=TAG_STATUS)
    parent.Disconnect()


def _expire(program: str, timeout: float) -> None:
    print(
        f"mpilauncher spawn: {program} did not start MPI within {timeout:g} s (not an MPI program, or one that does"
        " not cooperate: see mpilauncher.spawn.report); use --mpi-starter mpiexec/srun/ibrun for such programs",
        file=sys.stderr,
        flush=True,
    )
    os._exit(124)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m mpilauncher.spawn", description=__doc__.split("\n\n")[0])
    parser.add_argument("--timeout", type=float, default=60.0, help="seconds the program has to start MPI")
    parser.add_argument("--hosts", default="", help="host:ranks,host:ranks (default: all ranks here)")
    parser.add_argument("-n", type=int, default=0, help="ranks when --hosts is not given")
    parser.add_argument("program", nargs=argparse.REMAINDER)
    args = parser.parse_args(argv)
    program = [p for p in args.program if p != "--"] if args.program[:1] == ["--"] else args.program
    if not program:
        parser.error("no program to spawn")
    segments = [(h, int(n)) for h, _, n in (part.rpartition(":") for part in args.hosts.split(",") if part)]
    if not segments:
        segments = [("", args.n or 1)]
    timer = threading.Timer(args.timeout, _expire, (program[0], args.timeout))
    timer.daemon = True
    timer.start()
    from mpi4py import MPI

    infos = []
    for host, _ in segments:
        info = MPI.Info.Create()
        if host:
            info.Set("host", host)
        infos.append(info)
    command = program[0] if os.sep in program[0] else (which(program[0]) or program[0])
    inter = MPI.COMM_SELF.Spawn_multiple(
        [command] * len(segments), [program[1:]] * len(segments), [n for _, n in segments], infos
    )
    timer.cancel()
    status = MPI.Status()
    # Never block in MPI (a blocked recv spins a core), and probe twice before a sleep: MPICH
    # reports a message that has arrived only on the second probe (see transport.mpi.improbe).
    while not (inter.Iprobe(source=0, tag=TAG_STATUS, status=status) or inter.Iprobe(source=0, tag=TAG_STATUS)):
        time.sleep(0.01)
    code = inter.recv(source=0, tag=TAG_STATUS)
    inter.Disconnect()
    return int(code)


if __name__ == "__main__":
    sys.exit(main())
