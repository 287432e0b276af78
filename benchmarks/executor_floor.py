#!/usr/bin/env python3
"""What an executor costs a task, against the same work done in C: the floor under W1's gap.

peers.py's W1 (2,000 ``true`` on 2 slots) is CPU-bound on 2 CPUs, and of the launcher's own CPU
the executor processes, which spawn and reap the tasks, take the larger part.  This script drives
them as the agent does -- one lane per CPU, each task pinned to its lane's CPU, the variables and
exec record of a plain task -- with N tasks of ``true`` and reads their CPU from ``/proc``: with
their Python loop, with their compiled loop (``mpilauncher/execution/_cexecutor.c``, where it is
built) and, interleaved, the same tasks through ``executor_floor.c``: the same system calls a task
(see its header) and nothing else.  What each loop costs above that floor is the launcher's own.

    python benchmarks/executor_floor.py                    # 3,000 tasks, 3 runs each, scratch in the temp folder
    python benchmarks/executor_floor.py --dir /mnt/j --repeat 5

It compiles the C file with ``$CC`` (default ``cc``) into a temporary folder; without a compiler it
says so and exits 2.  A script that prints figures; it never asserts on timing.
"""

from __future__ import annotations

import argparse
import os
import select
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchkit.machine import REPO_ROOT, compile_checkout, default_slots

sys.path.insert(0, str(REPO_ROOT))
from mpilauncher.execution.environment import exec_script, task_variables  # noqa: E402  (this checkout's)
from mpilauncher.execution.executor import Executors, compiled_available  # noqa: E402
from mpilauncher.procfs import stat_fields  # noqa: E402
from mpilauncher.protocol import StartRequest  # noqa: E402

SOURCE = Path(__file__).with_name("executor_floor.c")
TICK = os.sysconf("SC_CLK_TCK")


def process_cpu(pid: int) -> tuple[float, float]:
    """User and system CPU seconds of ``pid`` so far (fields 14 and 15 of ``/proc/<pid>/stat``)."""
    fields = stat_fields(pid)
    if fields is None:
        raise ProcessLookupError(f"no process {pid}")
    return int(fields[11]) / TICK, int(fields[12]) / TICK


def task_fields(task_id: int, slot: int, workdir: str) -> tuple[dict[str, str], str]:
    """A plain task's variables and exec script, made by the agent's own functions (environment.py)."""
    variables = {**task_variables(task_id, (slot,), "bench"), "OMP_NUM_THREADS": "1"}
    return variables, exec_script("true", workdir, variables, 1, False, task_id + 1)


class LauncherLanes:
    """The launcher's own executor processes (this checkout), driven through :class:`Executors`:
    their Python loop, or their compiled one (``_cexecutor.c``)."""

    def __init__(self, lanes: int, workdir: str, compiled: bool) -> None:
        self.workdir = workdir
        self.executors = Executors(dict(os.environ), lanes, lanes, compiled=compiled)
        self.pids = self.executors.pids

    def start(self, task_id: int, slot: int, cpu: int) -> None:
        variables, script = task_fields(task_id, slot, self.workdir)
        prefix = f"{self.workdir}{os.sep}"
        self.executors.start(StartRequest(
            task_id, "true", (slot,), (), task_id + 1, (), None, f"{prefix}out{task_id}", variables, (cpu,), None,
            ("", script, f"{prefix}exec.bench"), None,
        ))  # fmt: skip

    def ended(self) -> list[int]:
        return [e.task_id for e in self.executors.wait(None)]

    def close(self) -> None:
        self.executors.close()


class CompiledLanes:
    """``executor_floor.c``: one process per lane, requests and events as text lines."""

    def __init__(self, lanes: int, workdir: str, binary: str) -> None:
        self.workdir = workdir
        self.epoll = select.epoll()
        self.lanes: list[tuple[int, int, int]] = []  # (pid, requests, events)
        self.lane_of_fd: dict[int, int] = {}
        self.tails: list[bytes] = []
        for _ in range(lanes):
            requests_read, requests = os.pipe()
            events, events_write = os.pipe()
            actions = [(os.POSIX_SPAWN_DUP2, requests_read, 0), (os.POSIX_SPAWN_DUP2, events_write, 1)]
            pid = os.posix_spawn(binary, [binary], dict(os.environ), file_actions=actions, setsid=True)
            os.close(requests_read)
            os.close(events_write)
            self.lane_of_fd[events] = len(self.lanes)
            self.lanes.append((pid, requests, events))
            self.tails.append(b"")
            self.epoll.register(events, select.EPOLLIN)
        self.pids = [pid for pid, _, _ in self.lanes]

    def start(self, task_id: int, slot: int, cpu: int) -> None:
        variables, script = task_fields(task_id, slot, self.workdir)
        prefix = f"{self.workdir}{os.sep}"
        fields = ["S", str(task_id), str(cpu), f"{prefix}out{task_id}", f"{prefix}exec.bench.c{slot}", "true",
                  script.replace("\n", "\x01"), *(f"{k}={v}" for k, v in variables.items())]  # fmt: skip
        os.write(self.lanes[slot][1], ("\t".join(fields) + "\n").encode())

    def ended(self) -> list[int]:
        done = []
        for fd, _ in self.epoll.poll():
            lane = self.lane_of_fd[fd]
            lines = (self.tails[lane] + os.read(fd, 1 << 16)).split(b"\n")
            self.tails[lane] = lines.pop()
            done += [int(line.split()[1]) for line in lines]
        return done

    def close(self) -> None:
        for pid, requests, events in self.lanes:
            os.write(requests, b"B\n")
            os.close(requests)
            os.waitpid(pid, 0)
            os.close(events)
        self.epoll.close()


def run(make, tasks: int, cpus: list[int], scratch: Path, label: str) -> dict[str, float]:
    """``tasks`` x ``true``, one a lane at a time, slot ``k`` (lane ``k``) pinned to ``cpus[k]``: the wall
    time and the lanes' CPU."""
    workdir = scratch / label.replace(" ", "-")
    shutil.rmtree(workdir, ignore_errors=True)
    workdir.mkdir(parents=True)
    runner = make(str(workdir))
    try:
        time.sleep(0.3)  # the executors' own start-up is not what is measured
        before = [process_cpu(pid) for pid in runner.pids]
        began = time.perf_counter()
        free, slot_of, started, done = list(range(len(cpus))), {}, 0, 0
        while done < tasks:
            while free and started < tasks:
                slot = free.pop()
                runner.start(started, slot, cpus[slot])
                slot_of[started] = slot
                started += 1
            for task_id in runner.ended():
                free.append(slot_of.pop(task_id))
                done += 1
        wall = time.perf_counter() - began
        after = [process_cpu(pid) for pid in runner.pids]
    finally:
        runner.close()
    user = sum(b[0] - a[0] for a, b in zip(before, after, strict=True)) / tasks * 1e6
    system = sum(b[1] - a[1] for a, b in zip(before, after, strict=True)) / tasks * 1e6
    return {"wall": wall, "user": user, "system": system, "cpu": user + system}


def described(figures: dict[str, float]) -> str:
    """A run's line: the wall time (the driver's share differs between the two kinds) and the lanes' CPU."""
    return (
        f"wall {figures['wall']:.3f} s  lanes' CPU {figures['cpu']:4.0f} us a task"
        f" (user {figures['user']:.0f}, system {figures['system']:.0f})"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tasks", type=int, default=3000, help="tasks a run (default 3000)")
    parser.add_argument("--repeat", type=int, default=3, help="runs of each, interleaved (default 3)")
    parser.add_argument(
        "--lanes", type=int, default=min(default_slots(), 8), help="lanes, one a CPU (default: the CPUs, at most 8)"
    )
    parser.add_argument("--dir", default=None, help="scratch folder (default: the system temp folder)")
    args = parser.parse_args()
    usable = sorted(os.sched_getaffinity(0))
    if not 1 <= args.lanes <= len(usable):
        parser.error(f"--lanes {args.lanes}: between 1 and the {len(usable)} CPUs this process may use")
    cpus = usable[: args.lanes]
    compiler = os.environ.get("CC", "cc")
    with tempfile.TemporaryDirectory(prefix="executor-floor-", dir=args.dir) as folder:
        scratch = Path(folder)
        binary = str(scratch / "executor_floor")
        try:
            built = subprocess.run([compiler, "-O2", "-o", binary, str(SOURCE)], capture_output=True, text=True)
            problem = built.stderr.strip() or f"exit status {built.returncode}" if built.returncode else ""
        except OSError as err:
            problem = err.strerror or str(err)
        if problem:
            print(f"cannot compile {SOURCE.name} with {compiler} (set $CC): {problem}")
            return 2
        compile_checkout()
        kinds = [("python loop", lambda workdir: LauncherLanes(args.lanes, workdir, False))]
        if compiled_available():
            kinds.append(("compiled loop", lambda workdir: LauncherLanes(args.lanes, workdir, True)))
        else:
            print("the compiled executor loop is not built here (pip install -e . with a C compiler): not measured")
        kinds.append(("C floor", lambda workdir: CompiledLanes(args.lanes, workdir, binary)))
        rows: dict[str, list[dict[str, float]]] = {label: [] for label, _ in kinds}
        print(f"{args.tasks} x true, {args.lanes} lanes (one task a lane, pinned to CPUs {cpus}), scratch {scratch}")
        for round_ in range(1, args.repeat + 1):
            for label, make in kinds:
                figures = run(make, args.tasks, cpus, scratch, label)
                rows[label].append(figures)
                print(f"  run {round_}/{args.repeat} {label:16s} {described(figures)}")
    medians = {label: {k: statistics.median(r[k] for r in runs) for k in runs[0]} for label, runs in rows.items()}
    print("medians:")
    for label, figures in medians.items():
        print(f"  {label:16s} {described(figures)}")
    floor = medians["C floor"]["cpu"]
    for label in medians:
        if label != "C floor":
            gap = medians[label]["cpu"] - floor
            print(f"the {label} costs ~{gap:.0f} us of CPU a task over the floor "
                  f"({gap * args.tasks / 1e6:.2f} CPU-s a run of {args.tasks})")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
