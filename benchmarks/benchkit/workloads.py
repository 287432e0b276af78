"""The four workloads of the peer comparison (issue 15), their input files, and the bound W4 is read against.

W1-W3 measure a launcher's cost per task at three task lengths (where the launcher dominates, where it is
about even with the task, where it should vanish); W4 measures how well it keeps many cores busy with
uneven tasks, against what a greedy list scheduler with no overhead at all would reach.
"""

from __future__ import annotations

import heapq
import random
from dataclasses import dataclass
from pathlib import Path

#: Cores of W4's emulated machine, and the nodes mpilauncher splits them into under mpiexec.
W4_CORES = 64
W4_NODES = 4


@dataclass(frozen=True)
class Workload:
    key: str  # "W1".."W4"
    title: str  # what the table's column says
    commands: tuple[str, ...]
    slots: int  # tasks at a time (the emulated cores for W4)
    nodes: int = 1  # emulated nodes for mpilauncher under mpiexec (1: one real node)
    durations: tuple[float, ...] = ()  # each task's length when known (W4), for the busy-core fraction

    @property
    def tasks(self) -> int:
        return len(self.commands)

    @property
    def work(self) -> float:
        """Core-seconds of sleeping the tasks ask for (W4)."""
        return sum(self.durations)

    def list_bound(self) -> float:
        """Makespan of greedy list scheduling in file order with zero overhead: each task starts on the core
        that frees up first.  What a perfect launcher reaches without knowing the durations (W4)."""
        return list_schedule_makespan(self.durations, self.slots)

    def busy_fraction(self, wall: float) -> float:
        """Share of the slots' time spent in tasks, over a run of ``wall`` seconds."""
        return self.work / (self.slots * wall) if wall > 0 else 0.0

    def write_inputs(self, directory: Path) -> tuple[Path, Path]:
        """The commandlines file (one task a line) and the same lines NUL-separated (for ``xargs -0``)."""
        lines, nul = directory / f"{self.key}.commandlines", directory / f"{self.key}.nul"
        lines.write_text("".join(f"{c}\n" for c in self.commands))
        nul.write_bytes(b"".join(f"{c}\0".encode() for c in self.commands))
        return lines, nul


def list_schedule_makespan(durations: tuple[float, ...] | list[float], cores: int) -> float:
    if not durations:
        return 0.0
    free_at = [0.0] * min(cores, len(durations))
    for duration in durations:
        heapq.heapreplace(free_at, free_at[0] + duration)
    return max(free_at)


def standard(*, quick: bool = False, tasks: int | None = None, seed: int = 15) -> list[Workload]:
    """W1-W4 at the issue's sizes; ``quick``: the same shapes, smaller; ``tasks`` overrides every count."""
    counts = (300, 40, 16, 128) if quick else (2000, 200, 40, 1000)
    w1, w2, w3, w4 = (tasks or n for n in counts)
    rng = random.Random(seed)  # the same durations for every peer and every run
    durations = tuple(round(rng.uniform(0.5, 2.0), 3) for _ in range(w4))
    return [
        Workload("W1", f"{w1:,} x `true`, 2 slots", ("true",) * w1, 2),
        Workload("W2", f"{w2:,} x `sleep 0.05`, 2 slots", ("sleep 0.05",) * w2, 2),
        Workload("W3", f"{w3:,} x `sleep 0.5`, 8 slots", ("sleep 0.5",) * w3, 8),
        Workload(
            "W4",
            f"{w4:,} x `sleep` 0.5-2 s, {W4_CORES} emulated cores",
            tuple(f"sleep {d:.3f}" for d in durations),
            W4_CORES,
            nodes=W4_NODES,
            durations=durations,
        ),
    ]


def warmup() -> Workload:
    """A few tasks that start every peer once before anything is measured (page cache, .pyc files, a
    peer's own first start), and show a peer that does not work at all before the measured runs."""
    return Workload("warm-up", "10 x `true`, 2 slots", ("true",) * 10, 2)
