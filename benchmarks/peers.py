#!/usr/bin/env python3
"""mpilauncher next to the launchers a user would use instead, in one command, on this machine.

    python benchmarks/peers.py                      # every peer, W1-W4, disk and tmpfs, 3 repeats
    python benchmarks/peers.py --quick              # the same shapes, smaller, 1 repeat: a few minutes
    python benchmarks/peers.py --peers mpilauncher --workload W1 --where disk --repeat 5
    python benchmarks/peers.py --peers mpilauncher --checkout base=../main --workload W1,W3   # A/B two checkouts

Finds or installs the peers (GNU parallel, mpi4py.futures, HyperQueue, PyLauncher 4.0, into a cache, never
into this environment), runs every workload with every peer in the same run, interleaved, with the
scratch directory on the disk and on tmpfs, and writes ``peers.md`` (a table of ratios to ``xargs -P``),
``peers.json`` (every sample) and ``peers.png`` (the ratios as bars) into ``--out``.  A peer that cannot be
installed is reported so, in its row.  Figures only: nothing is asserted on timing.  See
``benchmarks/README.md``.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import shutil
import sys
import tempfile
import time
from pathlib import Path

from benchkit.install import Installer, default_cache
from benchkit.machine import (
    add_checkout_option,
    checkouts_given,
    default_slots,
    file_create_cost,
    filesystem_of,
    machine_info,
)
from benchkit.report import derive, markdown, plot
from benchkit.runners import BASELINES, MPI_BASELINE, PEER_NAMES, PYTHON_BASELINE, REFERENCE, Job, Peer, make_peers
from benchkit.timing import Outcome, measure
from benchkit.workloads import Workload, standard, warmup

WORKLOADS = ("W1", "W2", "W3", "W4")
LOCATIONS = ("disk", "tmpfs")


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--peers",
        default="all",
        help=f"comma-separated, of: {', '.join(PEER_NAMES)} (default all;"
        f" {REFERENCE} is always run, {MPI_BASELINE} with mpilauncher-mpiexec, {PYTHON_BASELINE} with"
        " any mpilauncher)",
    )
    parser.add_argument("--workload", default=",".join(WORKLOADS), help="comma-separated, of W1-W4 (default all)")
    parser.add_argument("--where", default="both", help="disk, tmpfs, or both (also written disk,tmpfs; default both)")
    parser.add_argument(
        "--disk",
        type=Path,
        help="scratch folder on a disk (default: the system temp folder, or the current one where that is tmpfs)",
    )
    parser.add_argument("--tmpfs", type=Path, default=Path("/dev/shm"), help="scratch folder on tmpfs (/dev/shm)")
    parser.add_argument("--quick", action="store_true", help="smaller workloads, 1 repeat, 30 s timeout")
    parser.add_argument("--tasks", type=int, help="tasks in every workload (overrides the sizes)")
    parser.add_argument("--repeat", type=int, help="measured runs of each peer (default 3; --quick 1)")
    parser.add_argument("--timeout", type=float, help="seconds before a run is stopped (default 150; --quick 30)")
    parser.add_argument(
        "--settle",
        type=float,
        default=10.0,
        help="do not repeat a peer whose first run took more"
        " than this many times xargs: noise cannot change that reading (default 10)",
    )
    parser.add_argument("--seed", type=int, default=15, help="seed of W4's task lengths (default 15)")
    parser.add_argument("--out", type=Path, default=Path("peers-results"), help="where the figures go")
    parser.add_argument("--cache", type=Path, default=default_cache(), help=f"peers' installs ({default_cache()})")
    parser.add_argument("--no-install", action="store_true", help="only find peers; install nothing")
    parser.add_argument("--python", default=sys.executable, help="interpreter for mpilauncher and mpi4py")
    add_checkout_option(parser)
    parser.add_argument("--no-warmup", action="store_true", help="skip the unmeasured warm-up run of each peer")
    parser.add_argument("--keep", action="store_true", help="keep the scratch folders (their paths are printed)")
    parser.add_argument("--render", type=Path, metavar="JSON", help="only draw a saved peers.json again into --out")
    args = parser.parse_args(argv)

    names = PEER_NAMES if args.peers == "all" else [n.strip() for n in args.peers.split(",") if n.strip()]
    unknown = sorted(set(names) - set(PEER_NAMES))
    if unknown:
        parser.error(f"--peers: unknown {', '.join(unknown)}; known: {', '.join(PEER_NAMES)}")
    wanted = set(names) | {REFERENCE}
    if "mpilauncher-mpiexec" in names:
        wanted.add(MPI_BASELINE)
    if any(n.startswith("mpilauncher") for n in names):
        wanted.add(PYTHON_BASELINE)
    args.peer_names = [n for n in PEER_NAMES if n in wanted]
    args.workloads = [w.strip().upper() for w in args.workload.split(",") if w.strip()]
    if not args.workloads or set(args.workloads) - set(WORKLOADS):
        parser.error(f"--workload: {args.workload!r}: a comma-separated list of {', '.join(WORKLOADS)}")
    where = ",".join(LOCATIONS) if args.where.strip() == "both" else args.where
    args.locations = [w.strip() for w in where.split(",") if w.strip()]
    if not args.locations or set(args.locations) - set(LOCATIONS):
        parser.error(f"--where: {args.where!r}: disk, tmpfs or both")
    args.repeat = args.repeat or (1 if args.quick else 3)
    args.timeout = args.timeout or (30.0 if args.quick else 150.0)
    if args.repeat < 1 or (args.tasks is not None and args.tasks < 1) or args.timeout <= 0:
        parser.error("--repeat and --tasks must be at least 1, --timeout above 0")
    args.checkouts = checkouts_given(parser, args.checkout)
    for folder in (args.disk, args.tmpfs if "tmpfs" in args.locations else None):
        if folder is not None and not folder.is_dir():
            parser.error(f"{folder}: no such folder")
    if args.render and not args.render.is_file():
        parser.error(f"--render {args.render}: no such file")
    # Before the runs, not after them: a run of many minutes must not end in "cannot write the figures".
    try:
        args.out.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        parser.error(f"--out {args.out}: cannot make the folder: {err.strerror or err}")
    if not os.access(args.out, os.W_OK):
        parser.error(f"--out {args.out}: cannot write there")
    return args


def scratch_bases(args: argparse.Namespace) -> dict[str, Path]:
    """Where each location's scratch folder goes: the disk one must not be tmpfs (some systems mount /tmp so)."""
    disk = args.disk or Path(tempfile.gettempdir())
    if args.disk is None and filesystem_of(disk.resolve()).startswith("tmpfs"):
        disk = Path.cwd()
    bases = {"disk": disk, "tmpfs": args.tmpfs}
    return {where: bases[where] for where in args.locations}


class Bench:
    """The measured runs of one invocation: cells of (location, workload, peer), filled round by round."""

    def __init__(self, args: argparse.Namespace, peers: list[Peer], workloads: list[Workload]) -> None:
        self.args, self.peers, self.workloads = args, peers, workloads
        self.scratch: dict[str, Path] = {}
        self.inputs: dict[tuple[str, str], tuple[Path, Path]] = {}
        self.cells: dict[tuple[str, str, str], dict] = {}
        for where in args.locations:
            for w in workloads:
                for peer in peers:
                    status = "not installed" if peer.problem else "ok"
                    self.cells[where, w.key, peer.name] = {
                        "location": where,
                        "workload": w.key,
                        "peer": peer.name,
                        "status": status,
                        "problem": peer.problem,
                        "timeout_s": args.timeout,
                        "wall_s": [],
                        "cpu_s": [],
                        "own_s": [],
                        "others": [],
                        "settled": bool(peer.problem),
                    }

    def prepare(self, where: str, base: Path) -> dict[str, object]:
        scratch = Path(tempfile.mkdtemp(prefix=f"mpilauncher-peers-{where}-", dir=base)).resolve()
        self.scratch[where] = scratch
        for w in [*self.workloads, warmup()]:
            self.inputs[where, w.key] = w.write_inputs(scratch)
        return {"path": str(scratch), "fs": filesystem_of(scratch), "create_us": round(file_create_cost(scratch), 1)}

    def run(self, where: str, w: Workload, peer: Peer, label: str) -> tuple[Outcome, str | None]:
        """One run of ``peer`` on ``w`` in a fresh folder of ``where``: its outcome, and why it does not count."""
        rundir = self.scratch[where] / f"{peer.name}-{w.key}-{label}"
        rundir.mkdir()
        job = Job(w, *self.inputs[where, w.key], rundir)
        command = peer.command(job)
        timeout = self.args.timeout
        outcome = measure(command.argv, cwd=rundir, env=command.env, stdin_path=command.stdin, timeout=timeout)
        return outcome, peer.check(outcome, job)

    def warm_up(self, where: str) -> None:
        for peer in self.peers:
            if peer.problem:
                continue
            _, problem = self.run(where, warmup(), peer, "warm-up")
            if problem:
                print(f"  [{where}] warm-up of {peer.name} failed: {problem}", flush=True)
                for w in self.workloads:
                    cell = self.cells[where, w.key, peer.name]
                    cell.update(status="failed", problem=f"warm-up: {problem}", settled=True)

    def run_round(self, number: int) -> None:
        for where in self.args.locations:
            for w in self.workloads:
                for peer in self.peers:
                    cell = self.cells[where, w.key, peer.name]
                    if not cell["settled"]:
                        self.run_once(where, w, peer, cell, number)

    def run_once(self, where: str, w: Workload, peer: Peer, cell: dict, number: int) -> None:
        outcome, problem = self.run(where, w, peer, str(number))
        sample = outcome.sample
        line = f"  [{where}] {w.key} run {number}/{self.args.repeat} {peer.name:<22} {sample.wall:7.2f} s"
        if outcome.timed_out:
            cell.update(status="timed out", problem=problem, settled=True)
            print(f"{line}  stopped at the timeout", flush=True)
            return
        if problem:
            cell.update(status="failed", problem=problem, settled=True)
            print(f"{line}  failed: {problem}", flush=True)
            return
        cell["wall_s"].append(sample.wall)
        cell["cpu_s"].append(sample.cpu)
        cell["own_s"].append(peer.own_time(outcome))
        cell["others"].append(sample.others)
        reference = self.cells[where, w.key, REFERENCE]["wall_s"]
        if reference and peer.name != REFERENCE and peer.name not in BASELINES:
            ratio = sample.wall / reference[-1]
            line += f"  {ratio:6.2f} x xargs"
            if ratio > self.args.settle:
                cell["settled"] = True  # one more run would not change the reading
        if sample.others is not None:
            line += f"  (others: {sample.others:.0%} of the CPUs)"
        print(line, flush=True)

    def cleanup(self) -> None:
        # Removed at the very end, not after each run: on some file systems (ext4 with `discard`) mass
        # deletion slows down the next measured run.
        for scratch in self.scratch.values():
            if self.args.keep:
                print(f"kept {scratch}")
            else:
                shutil.rmtree(scratch, ignore_errors=True)


def describe(peers: list[Peer], workloads: list[Workload]) -> dict[str, dict]:
    """Each peer's label, version or problem, and the command it runs each workload with (for the report)."""
    described = {}
    for peer in peers:
        entry: dict[str, object] = {"label": peer.label, "version": peer.found.version, "problem": peer.problem}
        if not peer.problem:
            here = Path()  # shown as a user would type it, in the folder holding the input files
            entry["how"] = {
                w.key: peer.how(Job(w, Path(f"{w.key}.commandlines"), Path(f"{w.key}.nul"), here)) for w in workloads
            }
        described[peer.name] = entry
    return described


def write(document: dict, out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    derive(document)
    (out / "peers.json").write_text(json.dumps(document, indent=2) + "\n")
    note = plot(document, out / "peers.png")
    text = markdown(document) + (f"\n{note}\n" if note else "\n![ratios to xargs -P](peers.png)\n")
    (out / "peers.md").write_text(text)
    print("\n" + text)
    print(f"written: {out / 'peers.md'}, {out / 'peers.json'}" + ("" if note else f", {out / 'peers.png'}"))


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = parse_args(argv)
    if args.render:
        write(json.loads(args.render.read_text()), args.out)
        return 0

    workloads = [w for w in standard(quick=args.quick, tasks=args.tasks, seed=args.seed) if w.key in args.workloads]
    info = machine_info(args.python)
    print("mpilauncher and its peers")
    for key, value in info.items():
        print(f"  {key:<12} {value}")
    print(f"peers (cache {args.cache}):", flush=True)
    installer = Installer(args.cache, install=not args.no_install, python=args.python)
    peers = make_peers(args.peer_names, installer, args.python, args.checkouts)
    for peer in peers:
        print(f"  {peer.name:<22} {peer.problem or peer.found.version}", flush=True)

    bench = Bench(args, peers, workloads)
    locations = {}
    interrupted = False
    began = time.time()
    try:
        for where, base in scratch_bases(args).items():
            locations[where] = bench.prepare(where, base)
            print(
                f"{where}: {locations[where]['path']}: {locations[where]['fs']},"
                f" {locations[where]['create_us']} us to create a file",
                flush=True,
            )
            if not args.no_warmup:
                bench.warm_up(where)
        for number in range(1, args.repeat + 1):
            bench.run_round(number)
    except KeyboardInterrupt:  # a long run stopped by hand: what was measured so far is still worth a table
        interrupted = True
        print("\ninterrupted: writing what was measured so far", flush=True)
    finally:
        bench.cleanup()

    document = {
        "command": "python benchmarks/peers.py" + (" " + shlex.join(argv) if argv else ""),
        "date": time.strftime("%Y-%m-%d %H:%M", time.localtime(began)),
        "duration_s": round(time.time() - began, 1),
        "interrupted": interrupted,
        "info": info,
        "locations": locations,
        "settings": {
            "repeat": args.repeat,
            "timeout_s": args.timeout,
            "settle": args.settle,
            "quick": args.quick,
            "tasks": args.tasks,
            "seed": args.seed,
            "cpus": default_slots(),
        },
        "workloads": {w.key: _workload(w) for w in workloads},
        "peers": describe(peers, workloads),
        "cells": [{k: v for k, v in cell.items() if k != "settled"} for cell in bench.cells.values()],
    }
    write(document, args.out)
    ours = [c for c in document["cells"] if c["peer"] == REFERENCE or c["peer"].startswith("mpilauncher")]
    broken = [c for c in ours if c["status"] not in ("ok",)]
    for cell in broken:
        print(f"peers: {cell['peer']} {cell['status']} on {cell['workload']} ({cell['location']}): {cell['problem']}")
    return 130 if interrupted else 1 if broken else 0


def _workload(w: Workload) -> dict[str, object]:
    entry: dict[str, object] = {"key": w.key, "title": w.title, "tasks": w.tasks, "slots": w.slots, "nodes": w.nodes}
    if w.durations:
        entry.update(work_s=round(w.work, 3), list_bound_s=round(w.list_bound(), 3))
    return entry


if __name__ == "__main__":
    sys.exit(main())
