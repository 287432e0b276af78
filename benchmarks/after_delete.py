#!/usr/bin/env python3
"""What the files a task leaves cost on a disk, in a fresh workdir and right after the last one was deleted.

    python benchmarks/after_delete.py                        # 2,000 x `true` on 2 slots, 3 rounds, in $TMPDIR
    python benchmarks/after_delete.py --dir /scratch/me --tasks 5000 --slots 8

A user who deletes the last sweep's workdir and runs again creates the new run's
files (``out<N>``, one a task, and ``exec<N>`` for a task that fails or runs a
second) among inodes freed a moment before.
On an ext4 *without a journal* (this project's VMs' root file system) the inode
allocator then skips those (``recently_deleted``: freed in the last 60 s, 360 while
their table block is dirty), block by block, and the creates of two executor lanes
spin on the directory's lock in turn (``perf``: README, "mpilauncher next to its
peers"); a journaled ext4 does not skip them (benchmarks/README.md, "On a disk, file
creation").  The script prints the file system it ran on.  Each command is timed
from the outside (interpreter start-up included):

1. ``xargs -P S``, which creates no file (the reference), beside every round;
2. mpilauncher into a new workdir, nothing deleted by this script before (*fresh*);
3. the same right after ``rm -rf`` of a fresh workdir (*after rm*: N files freed);
4. ``--output per-node`` right after ``rm -rf`` of that one (a few files a node).

Prints the median of each and its ratio to xargs.  A script that prints figures;
it asserts nothing.  Everything it writes is under ``--dir`` and removed at the end --
so a second run within a few minutes finds its *fresh* workdirs among the first run's
freed inodes too (on an ext4 without a journal): for a fresh figure there, run it where
nothing was deleted in the last five minutes.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import sys
import tempfile
from pathlib import Path

from benchkit.machine import checkout_env, filesystem_of
from benchkit.timing import measure

KINDS = ("xargs", "fresh", "after rm", "per-node after rm")


def timed(argv: list[str], root: Path, stdin: Path | None = None) -> float:
    """Wall seconds of ``argv`` run to its end (benchkit's measure: this checkout's mpilauncher first on the path)."""
    outcome = measure(argv, cwd=root, env=checkout_env(), stdin_path=stdin)
    if outcome.returncode != 0:
        sys.exit(f"after_delete: {' '.join(argv[:4])} ... exited {outcome.returncode}:\n{outcome.output[-2000:]}")
    return outcome.sample.wall


def launcher(lines: Path, workdir: Path, slots: int, output: str = "per-task") -> list[str]:
    return [sys.executable, "-m", "mpilauncher", str(lines), "--workdir", str(workdir),
            "--queuestate", f"{workdir}.queuestate", "--no-bind", "--cores-per-node", str(slots),
            "--output", output, "--quiet"]  # fmt: skip


def all_samples(root: Path, lines: Path, slots: int, rounds: int) -> dict[str, list[float]]:
    """Every time, by kind.  The fresh runs come first and their workdirs stay: ext4 skips inodes freed in
    the last 30 s, so a fresh run must not follow one of this script's deletions; then each round
    deletes a fresh workdir and runs at once, per task and (after one more deletion) per node."""
    samples: dict[str, list[float]] = {kind: [] for kind in KINDS}
    xargs = ["xargs", "-P", str(slots), "-n", "1", "sh", "-c"]
    for round_no in range(rounds):
        samples["xargs"].append(timed(xargs, root, stdin=lines))
        samples["fresh"].append(timed(launcher(lines, root / f"fresh{round_no}", slots), root))
    for round_no in range(rounds):
        samples["xargs"].append(timed(xargs, root, stdin=lines))
        shutil.rmtree(root / f"fresh{round_no}")
        samples["after rm"].append(timed(launcher(lines, root / f"after{round_no}", slots), root))
        shutil.rmtree(root / f"after{round_no}")
        per_node = launcher(lines, root / f"pernode{round_no}", slots, "per-node")
        samples["per-node after rm"].append(timed(per_node, root))
    return samples


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tasks", type=int, default=2000)
    parser.add_argument("--slots", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--dir", default=tempfile.gettempdir(), help="where the workdirs go (default: $TMPDIR)")
    parser.add_argument("--json", help="also write every time to this file")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="mpl-after-delete-", dir=args.dir) as tmp:
        root = Path(tmp)
        lines = root / "commandlines"
        lines.write_text("true\n" * args.tasks)
        samples = all_samples(root, lines, args.slots, args.rounds)
    xargs = statistics.median(samples["xargs"])
    print(f"# {args.tasks:,} x `true` on {args.slots} slots, workdirs under {args.dir}; median of {args.rounds} rounds")
    print(f"# file system: {filesystem_of(Path(args.dir).resolve())}")
    print("# fresh: no deletion by this script before it (with no journal, one in the last minutes counts too)")
    for kind in KINDS:
        median = statistics.median(samples[kind])
        every = ", ".join(f"{s:.2f}" for s in samples[kind])
        print(f"{kind:<18} {median:6.2f} s  {median / xargs:5.2f} x xargs   ({every})")
    if args.json:
        Path(args.json).write_text(json.dumps({"tasks": args.tasks, "slots": args.slots, "seconds": samples}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
