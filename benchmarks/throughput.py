#!/usr/bin/env python3
"""Task throughput of mpilauncher against ``xargs -P`` (and, with ``--peers``, a Python Popen pool).

N tasks that each run ``true`` (so the figure is pure launch/reap overhead) on
``--slots`` concurrent slots, repeated ``--repeat`` times with the tools
interleaved (A B A B ...) so that machine noise spreads over all of them.

Every tool is run as its own command and timed from the outside (wall clock of
the whole command, interpreter start-up included); mpilauncher's own
``total running time:`` figure is parsed from its output as well.  CPU per task
is the ``getrusage(RUSAGE_CHILDREN)`` delta around each command: it contains the
tool *and* its tasks, so compare it with xargs' figure to see the launcher's own
share.

This is a script that prints figures; it never asserts on timing.  See
``benchmarks/README.md``.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from benchkit.machine import checkout_env, default_slots, file_create_cost, filesystem_of, machine_info
from benchkit.timing import Sample, measure

TARGET_RATIO = 0.80
NOISY = 0.10  # warn when other processes kept more than this share of the CPUs busy
TASK_COMMAND = "true"
OWN_TIME = re.compile(r"total running time:\s*([0-9.]+)")
COMPLETED = re.compile(r"# tasks completed:\s*(\d+)")


@dataclass
class Tool:
    name: str
    samples: list[Sample] = field(default_factory=list)

    def rates(self, n: int) -> list[float]:
        return [n / s.wall for s in self.samples]

    def own_rates(self, n: int) -> list[float]:
        return [n / s.own for s in self.samples if s.own]


def timed(argv: list[str], *, stdin_path: Path | None = None, cwd: Path, env: dict[str, str]) -> tuple[Sample, str]:
    """Run ``argv`` to completion; fail loudly (not on timing) if it did not run every task."""
    outcome = measure(argv, stdin_path=stdin_path, cwd=cwd, env=env)
    if outcome.returncode != 0:
        sys.exit(f"throughput: {' '.join(argv[:4])} ... exited {outcome.returncode}:\n{outcome.output[-2000:]}")
    return outcome.sample, outcome.output


class Bench:
    def __init__(self, args: argparse.Namespace, tmp: Path) -> None:
        self.args = args
        self.tmp = tmp
        self.env = checkout_env(python=args.python)
        self.files: dict[int, tuple[Path, Path]] = {}
        self.counter = 0

    def inputs(self, n: int) -> tuple[Path, Path]:
        """The commandlines file (one task a line) and the same lines NUL-separated for xargs."""
        if n not in self.files:
            lines = self.tmp / f"commandlines-{n}"
            nul = self.tmp / f"xargs-input-{n}"
            lines.write_text(f"{TASK_COMMAND}\n" * n)
            nul.write_bytes(f"{TASK_COMMAND}\0".encode() * n)
            self.files[n] = (lines, nul)
        return self.files[n]

    def mpilauncher(self, n: int) -> Sample:
        self.counter += 1
        workdir = self.tmp / f"workdir{self.counter}"
        queuestate = self.tmp / f"queuestate{self.counter}"
        lines, _ = self.inputs(n)
        argv = [self.args.python, "-m", "mpilauncher", str(lines), "--workdir", str(workdir)]
        argv += ["--queuestate", str(queuestate), "--cores-per-node", str(self.args.slots)]
        if self.args.no_bind:
            argv.append("--no-bind")  # tasks unbound, as xargs leaves them
        sample, output = timed(argv, cwd=self.tmp, env=self.env)
        completed = COMPLETED.search(output)
        if completed is None or int(completed.group(1)) != n:
            sys.exit(f"throughput: mpilauncher did not report {n} completed tasks:\n{output[-2000:]}")
        own = OWN_TIME.search(output)
        sample.own = float(own.group(1)) if own else None
        # Workdirs are removed with the scratch directory at the very end, not here: on some file
        # systems (ext4 mounted with `discard`) mass deletion slows down the next measured run.
        return sample

    def xargs(self, n: int) -> Sample:
        # -0 is GNU `xargs -d '\n'` on NUL-separated input, and BSD/macOS xargs understands it too.
        _, nul = self.inputs(n)
        argv = ["xargs", "-0", "-P", str(self.args.slots), "-n", "1", "sh", "-c"]
        sample, _ = timed(argv, stdin_path=nul, cwd=self.tmp, env=self.env)
        return sample

    def popen(self, n: int) -> Sample:
        lines, _ = self.inputs(n)
        argv = [self.args.python, str(Path(__file__).resolve()), "--popen-pool", str(lines)]
        argv += ["--slots", str(self.args.slots)]
        sample, output = timed(argv, cwd=self.tmp, env=self.env)
        own = OWN_TIME.search(output)
        sample.own = float(own.group(1)) if own else None
        return sample


# -- the Popen reference, run as its own process ------------------------------
def popen_pool(path: str, slots: int) -> int:
    """Run every line of ``path`` with ``subprocess.Popen`` under ``sh -c``, ``slots`` at a time."""
    began = time.perf_counter()
    commands = [line for line in Path(path).read_text().splitlines() if line.strip()]
    running: dict[int, subprocess.Popen] = {}
    failed = 0
    todo = iter(commands)
    exhausted = False
    while running or not exhausted:
        while not exhausted and len(running) < slots:
            command = next(todo, None)
            if command is None:
                exhausted = True
                break
            proc = subprocess.Popen(["/bin/sh", "-c", command], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL)
            running[proc.pid] = proc
        if running:
            pid, status = os.wait()  # every child of this process is ours
            proc = running.pop(pid, None)
            if proc is not None:
                proc.returncode = os.waitstatus_to_exitcode(status)
                failed += proc.returncode != 0
    print(f"total running time: {time.perf_counter() - began:6.2f}")
    print(f"# tasks completed: {len(commands) - failed}")
    return 1 if failed else 0


# -- reporting ----------------------------------------------------------------
def summarize(values: list[float]) -> dict[str, float]:
    return {"best": max(values), "median": statistics.median(values)} if values else {}


def report(tools: list[Tool], n: int) -> dict[str, object]:
    figures: dict[str, dict[str, object]] = {}
    print(f"\n{'tool':<26}{'best tasks/s':>13}{'median tasks/s':>16}{'CPU ms/task':>13}   each run (tasks/s)")
    for tool in tools:
        rates = tool.rates(n)
        wall = summarize(rates)
        cpu = statistics.median(s.cpu for s in tool.samples) / n * 1e3
        entry: dict[str, object] = {
            "wall_s": [s.wall for s in tool.samples],
            "tasks_per_s": rates,
            "best_tasks_per_s": wall["best"],
            "median_tasks_per_s": wall["median"],
            "children_cpu_s": [s.cpu for s in tool.samples],
            "children_cpu_ms_per_task": cpu,
            "other_processes_cpu_share": [s.others for s in tool.samples],
        }
        print(_row(f"{tool.name} (wall clock)", wall, f"{cpu:.3f}", rates))
        own = tool.own_rates(n)
        if own:
            mine = summarize(own)
            entry.update(own_s=[s.own for s in tool.samples], own_tasks_per_s=own)
            entry.update(own_best_tasks_per_s=mine["best"], own_median_tasks_per_s=mine["median"])
            print(_row(f"{tool.name} (own figure)", mine, "", own))
        figures[tool.name] = entry

    ratios: dict[str, float] = {}
    launcher = figures["mpilauncher"]
    for peer in ("xargs", "popen-pool"):
        if peer not in figures:
            continue
        other = figures[peer]
        ratios[f"{peer}_best"] = launcher["best_tasks_per_s"] / other["best_tasks_per_s"]
        ratios[f"{peer}_median"] = launcher["median_tasks_per_s"] / other["median_tasks_per_s"]
        print(
            f"\n{'ratio mpilauncher/' + peer:<29} best {ratios[f'{peer}_best']:.2f}   median"
            f" {ratios[f'{peer}_median']:.2f}   (wall clock of both commands)",
            end="",
        )
        if "own_best_tasks_per_s" in launcher:
            ratios[f"{peer}_own_best"] = launcher["own_best_tasks_per_s"] / other["best_tasks_per_s"]
            ratios[f"{peer}_own_median"] = launcher["own_median_tasks_per_s"] / other["median_tasks_per_s"]
            print(
                f"\n{'':<29} best {ratios[f'{peer}_own_best']:.2f}   median {ratios[f'{peer}_own_median']:.2f}"
                "   (mpilauncher's own figure: start-up and exit left out)",
                end="",
            )
    print()
    if "xargs" in figures:
        print(f"target: >= {TARGET_RATIO:.2f} of xargs")
        ours, theirs = launcher["children_cpu_ms_per_task"], figures["xargs"]["children_cpu_ms_per_task"]
        print(
            f"\nCPU per task, tool + its tasks: mpilauncher {ours:.3f} ms, xargs {theirs:.3f} ms"
            f" -> mpilauncher's own share ~ {ours - theirs:.3f} ms a task more than xargs"
        )
    else:
        print("xargs not found: no ratio to the target")
    return {"tools": figures, "ratios_mpilauncher_over": ratios, "target_ratio_of_xargs": TARGET_RATIO}


def _row(label: str, rate: dict[str, float], cpu: str, runs: list[float]) -> str:
    each = " ".join(f"{r:.0f}" for r in runs)
    return f"{label:<26}{rate['best']:>13.0f}{rate['median']:>16.0f}{cpu:>13}   {each}"


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tasks", type=int, default=2000, help="tasks per run (default 2000)")
    parser.add_argument("--slots", type=int, default=default_slots(), help="concurrent tasks (default: usable CPUs)")
    parser.add_argument("--repeat", type=int, default=3, help="measured runs of each tool (default 3)")
    parser.add_argument("--peers", action="store_true", help="also measure a Python subprocess.Popen pool")
    parser.add_argument("--json", metavar="PATH", help="also write the figures as JSON to PATH")
    parser.add_argument("--tmpdir", metavar="DIR", help="where the scratch directory goes (default: system temp)")
    parser.add_argument("--python", default=sys.executable, help="interpreter for mpilauncher (default: this one)")
    parser.add_argument(
        "--no-bind",
        action="store_true",
        help="run mpilauncher with --no-bind, its tasks unbound as xargs leaves them (default: as users run it,"
        " with its default binding of each task to its core where the slots map to this machine's CPUs)",
    )
    parser.add_argument("--no-warmup", action="store_true", help="skip the small unmeasured warm-up round")
    parser.add_argument("--popen-pool", metavar="FILE", help=argparse.SUPPRESS)  # internal: the Popen reference
    args = parser.parse_args(argv)
    if args.tasks < 1 or args.slots < 1 or args.repeat < 1:
        parser.error("--tasks, --slots and --repeat must be at least 1")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.popen_pool:
        return popen_pool(args.popen_pool, args.slots)

    info = machine_info(args.python)
    print("mpilauncher throughput benchmark")
    for key, value in info.items():
        print(f"  {key:<12} {value}")
    n = args.tasks
    print(f"  workload     {n} x `{TASK_COMMAND}` under sh -c, {args.slots} slots, {args.repeat} interleaved repeats")
    binding = "--no-bind (tasks unbound, as xargs)" if args.no_bind else "its default (a task bound to its core)"
    info["mpilauncher_binding"] = binding
    print(f"  binding      mpilauncher: {binding}")

    tools = [Tool("mpilauncher")]
    if shutil.which("xargs"):
        tools.append(Tool("xargs"))
    if args.peers:
        tools.append(Tool("popen-pool"))

    with tempfile.TemporaryDirectory(prefix="mpilauncher-bench-", dir=args.tmpdir) as tmp:
        bench = Bench(args, Path(tmp))
        info["scratch_fs"] = filesystem_of(Path(tmp).resolve())
        info["create_us_per_file"] = round(file_create_cost(Path(tmp)), 1)
        print(f"  scratch      {tmp}: {info['scratch_fs']}")
        print(f"  file create  {info['create_us_per_file']} us per empty file (mpilauncher makes 2 a task)")
        run = {"mpilauncher": bench.mpilauncher, "xargs": bench.xargs, "popen-pool": bench.popen}
        if not args.no_warmup:  # page cache, .pyc files, first fork of a cold interpreter
            for tool in tools:
                run[tool.name](min(n, 100))
        for r in range(args.repeat):
            for tool in tools:
                sample = run[tool.name](n)
                tool.samples.append(sample)
                extra = f", own {sample.own:.2f}s" if sample.own else ""
                if sample.others is not None:
                    extra += f"  (other processes: {sample.others:.0%} of the CPUs)"
                print(f"  run {r + 1}/{args.repeat} {tool.name:<12} {sample.wall:6.2f}s{extra}", flush=True)

    figures = report(tools, n)
    noise = [s.others for t in tools for s in t.samples if s.others is not None]
    if noise and max(noise) > NOISY:
        print(
            f"\nwarning: other processes used up to {max(noise):.0%} of the CPUs during the runs"
            f" (median {statistics.median(noise):.0%}); the figures are unreliable, run again on a quiet machine"
        )
    if args.json:
        document = {"info": info, "tasks": n, "slots": args.slots, "repeat": args.repeat, **figures}
        document["samples"] = {t.name: [asdict(s) for s in t.samples] for t in tools}
        Path(args.json).write_text(json.dumps(document, indent=2) + "\n")
        print(f"\nfigures written to {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
