#!/usr/bin/env python3
"""Where a short sweep's time over ``xargs -P`` goes: before the first task, and after the last.

W3 of ``peers.py`` (40 x ``sleep 0.5`` on 8 slots) is the sweep where a launcher should vanish:
its gap to xargs is start-up and end, not dispatch.  This times both from the tasks themselves:
every line records when it starts and ends (``date +%s%N``, nanoseconds, into files of the run),
and the command's own start and exit are taken around it.  The same lines run under xargs and
under mpilauncher, interleaved, and next to them the interpreter's start alone (``python -I -c
pass``, then ``python -c pass`` with this environment's ``site``), the floor under any launcher
run as ``python -m``:

    python benchmarks/startup.py                       # 40 x sleep 0.5 on 8 slots, 5 runs each, temp folder
    python benchmarks/startup.py --dir /mnt/j --repeat 7
    python benchmarks/startup.py --tasks 8 --sleep 0 --repeat 9     # start and end only
    python benchmarks/startup.py --checkout before=../before --repeat 15   # and another checkout, in turn
    python benchmarks/startup.py --tasks 64 --slots 64 --mpiexec 4 --repeat 7   # and under mpiexec (W4's shape)

It prints, per tool (medians over the runs, milliseconds): the command to the first task start,
the first start to the last start of the first round (the slots filling), the last task end to
the command's exit, and the whole command.  ``--mpiexec R`` also runs the launcher under ``mpiexec -n R``,
R emulated nodes sharing the slots (as peers.py runs W4), and times an MPI hello-world with as many ranks
beside it: what the launcher under mpiexec may take above one process.  Figures, never assertions: see
benchmarks/README.md.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from benchkit.machine import add_checkout_option, checkout_env, checkouts_given, filesystem_of  # noqa: E402
from benchkit.runners import mpi_hello_argv, under_mpiexec_emulated  # noqa: E402

#: The row of the launcher under ``mpiexec``, and the hello-world's beside it (``--mpiexec``).
UNDER_MPIEXEC, MPI_HELLO = "mpilauncher-mpiexec", "mpiexec hello-world"


def task_line(folder: Path, seconds: float) -> str:
    """A task that records its start and end (nanoseconds since the epoch) in ``folder``."""
    pause = f" sleep {seconds:g};" if seconds > 0 else ""
    return f"date +%s%N >> {folder}/starts;{pause} date +%s%N >> {folder}/ends"


def stamps(path: Path) -> list[float]:
    return sorted(int(line) / 1e9 for line in path.read_text().split())


def one_run(
    argv: list[str], folder: Path, env: dict[str, str], slots: int, tasks: int, stdin: Path | None = None
) -> dict[str, float]:
    """Run ``argv`` in ``folder`` (its stamps from earlier runs removed), return its phases in milliseconds."""
    for name in ("starts", "ends"):
        (folder / name).unlink(missing_ok=True)
    with open(stdin if stdin is not None else os.devnull, "rb") as lines:
        began = time.time()
        result = subprocess.run(argv, stdin=lines, cwd=folder, env=env, stdout=subprocess.DEVNULL,
                                stderr=subprocess.PIPE, text=True)  # fmt: skip
        exited = time.time()
    if result.returncode != 0:
        sys.exit(f"startup: {' '.join(argv[:3])} ... exited {result.returncode}: {result.stderr[-1000:]}")
    starts, ends = stamps(folder / "starts"), stamps(folder / "ends")
    if len(starts) != tasks or len(ends) != tasks:
        sys.exit(f"startup: {' '.join(argv[:3])} ... ran {len(starts)} of {tasks} tasks")
    return {
        "first start": 1e3 * (starts[0] - began),
        "slots filled": 1e3 * (starts[min(slots, tasks) - 1] - starts[0]),
        "exit after last end": 1e3 * (exited - ends[-1]),
        "whole command": 1e3 * (exited - began),
    }


def alone(argv: list[str], env: dict[str, str], cwd: Path) -> float:
    began = time.perf_counter()
    subprocess.run(argv, cwd=cwd, env=env, check=True)
    return 1e3 * (time.perf_counter() - began)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tasks", type=int, default=40)
    parser.add_argument("--slots", type=int, default=8)
    parser.add_argument("--sleep", type=float, default=0.5, help="seconds each task sleeps (0: none)")
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--dir", type=Path, default=None, help="where the runs' folders go (default: temp folder)")
    parser.add_argument("--python", default=sys.executable)
    parser.add_argument("--mpiexec", type=int, default=0, metavar="RANKS",
                        help="also under mpiexec -n RANKS, RANKS emulated nodes sharing the slots, beside an MPI"
                        " hello-world of as many ranks")  # fmt: skip
    add_checkout_option(parser)
    args = parser.parse_args(argv)
    if args.tasks < 1 or args.slots < 1 or args.repeat < 1:
        parser.error("--tasks, --slots and --repeat must be at least 1")
    if args.mpiexec and (args.mpiexec < 1 or args.slots % args.mpiexec):
        parser.error(f"--mpiexec {args.mpiexec}: the ranks must divide --slots ({args.slots}) among them")
    if not shutil.which("xargs"):
        sys.exit("startup: no xargs on PATH")
    if args.mpiexec and not shutil.which("mpiexec"):
        sys.exit("startup: --mpiexec given, but no mpiexec on PATH")
    env = checkout_env(python=args.python)
    envs = {"xargs": env, "mpilauncher": env}
    if args.mpiexec:
        envs[UNDER_MPIEXEC] = env
    for label, root in checkouts_given(parser, args.checkout).items():
        envs[f"mpilauncher@{label}"] = checkout_env(root, args.python)
    scratch = Path(tempfile.mkdtemp(prefix="mpl-startup-", dir=args.dir))
    try:
        folders = {name: scratch / name.replace("@", "-at-") for name in envs}
        for folder in folders.values():
            folder.mkdir()
            lines = "\n".join(task_line(folder, args.sleep) for _ in range(args.tasks)) + "\n"
            (folder / "commandlines").write_text(lines)
        run_in = [args.python, "-m", "mpilauncher", "commandlines", "--workdir", "w"]
        quietly = ["--quiet", "--progress", "off"]
        launcher = [*run_in, "--cores-per-node", str(args.slots), *quietly]
        commands = {name: launcher for name in envs}
        commands["xargs"] = ["xargs", "-P", str(args.slots), "-d", "\n", "-n", "1", "sh", "-c"]
        if args.mpiexec:
            commands[UNDER_MPIEXEC] = under_mpiexec_emulated([*run_in, *quietly], args.mpiexec, args.slots)
        runs: dict[str, list[dict[str, float]]] = {name: [] for name in commands}
        floors: dict[str, list[float]] = {"python -I -c pass": [], "python -c pass": []}
        if args.mpiexec:
            floors[MPI_HELLO] = []
        for turn in range(args.repeat):
            order = list(commands) if turn % 2 == 0 else list(reversed(commands))  # (neither always first)
            for name in order:
                command, folder = commands[name], folders[name]
                if name == "xargs":
                    runs[name].append(one_run(command, folder, env, args.slots, args.tasks, folder / "commandlines"))
                    continue
                for leftover in ("queuestate", "queuestate.journal"):
                    (folder / leftover).unlink(missing_ok=True)
                shutil.rmtree(folder / "w", ignore_errors=True)
                runs[name].append(one_run(command, folder, envs[name], args.slots, args.tasks))
            floors["python -I -c pass"].append(alone([args.python, "-I", "-c", "pass"], env, scratch))
            floors["python -c pass"].append(alone([args.python, "-c", "pass"], env, scratch))
            if args.mpiexec:
                floors[MPI_HELLO].append(alone(mpi_hello_argv(args.mpiexec, args.python), env, scratch))
        report(runs, floors, args, scratch)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return 0


def report(runs: dict[str, list[dict[str, float]]], floors: dict[str, list[float]], args, scratch: Path) -> None:
    print(f"# {args.tasks} x {task_line(Path('DIR'), args.sleep)!r} on {args.slots} slots, {args.repeat} runs each,"
          f" interleaved; in {filesystem_of(scratch)}")  # fmt: skip
    print(f"# medians (min-max), milliseconds; {sys.version.split()[0]} at {args.python}")
    phases = list(next(iter(runs.values()))[0])
    width = max(14, *(len(name) + 1 for name in runs))
    print(f"{'':<{width}}" + "".join(f"{phase:>26}" for phase in phases))
    for name, samples in runs.items():
        cells = []
        for phase in phases:
            values = [s[phase] for s in samples]
            cells.append(f"{statistics.median(values):8.1f} ({min(values):.1f}-{max(values):.1f})")
        print(f"{name:<{width}}" + "".join(f"{cell:>26}" for cell in cells))
    for name, values in floors.items():
        print(f"{name:<20} {statistics.median(values):8.1f} ({min(values):.1f}-{max(values):.1f})")
    xargs_total = statistics.median(s["whole command"] for s in runs["xargs"])
    for name, samples in runs.items():
        if name != "xargs":
            gap = statistics.median(s["whole command"] for s in samples) - xargs_total
            print(f"{name} minus xargs: {gap:+.1f} ms, {1 + gap / xargs_total:.3f} of xargs' whole command")
    if UNDER_MPIEXEC in runs:
        alone_total = statistics.median(s["whole command"] for s in runs["mpilauncher"])
        under = statistics.median(s["whole command"] for s in runs[UNDER_MPIEXEC]) - alone_total
        print(f"{UNDER_MPIEXEC} minus mpilauncher: {under:+.1f} ms; the MPI hello-world with as many ranks"
              f" {statistics.median(floors[MPI_HELLO]):.1f} ms (the target: no more than it)")  # fmt: skip


if __name__ == "__main__":
    raise SystemExit(main())
