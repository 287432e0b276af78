"""Final statistics of a sweep, computed from the ledger.

Plain Python on purpose.  This used numpy, and measured here numpy did not
earn its place: importing it cost ~85 ms of CPU at the end of every run (half
of a short sweep's start-up and exit), while for a million runtimes a sort and
a sum in Python take ~0.23 s against ~0.18 s for numpy's import plus its
vectorised pass -- a tie only at a million tasks, a loss below.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Mapping

from mpilauncher.core.events import HeldBack, NodeFact, NodeOutOfUse
from mpilauncher.core.ledger import COMPLETED, FAILED, Ledger
from mpilauncher.core.nodes import Node
from mpilauncher.core.observer import Observer
from mpilauncher.records import record, replace


@record(frozen=True)
class Statistics:
    """What the final report prints (PyLauncher's figures, same meaning)."""

    total_time: float  # wall time of the whole sweep, resumed runs included
    completed: int  # tasks that exited 0
    aborted: int  # tasks that exited non-zero or were killed by a signal
    not_run: int  # tasks still queued or running when the launcher stopped
    max_runtime: float
    avg_runtime: float
    aggregate: float  # sum of task runtimes
    speedup: float  # aggregate / total_time
    pool_size: int  # cores (slots) of the host pool
    per_slot_max: int  # most tasks that ended on one core slot (started there)
    per_slot_avg: float  # tasks that ended per core slot (of the pool, or of every run's, if more)
    runtime_p50: float
    runtime_p99: float
    #: Tasks of this run held back because they could not finish before the deadline (queued for the next job).
    held_back: int = 0
    #: Nodes of this run taken out of use (tasks failed there at once, and succeeded elsewhere).
    nodes_out_of_use: tuple[str, ...] = ()


class FinalStatistics(Observer):
    """The statistics of the sweep, computed when the run closes (:attr:`result`).

    They cover the whole sweep, earlier runs included, so they are computed
    from the ledger -- which the state store keeps from the same facts -- and
    not counted anew here; ``pool_size`` is the host pool's core count.  What
    only this run knows -- tasks held back, nodes taken out of use (named by
    ``nodes``) -- is counted from its facts.
    """

    def __init__(self, ledger: Ledger, pool_size: int, nodes: Mapping[int, Node] | None = None) -> None:
        self.ledger, self.pool_size = ledger, pool_size
        self.nodes: Mapping[int, Node] = nodes or {}
        self.result: Statistics | None = None
        self._held: set[int] = set()
        self._out_of_use: list[int] = []

    def on_held(self, held: HeldBack) -> None:
        self._held.add(held.task_id)

    def on_node(self, fact: NodeFact) -> None:
        if isinstance(fact, NodeOutOfUse):
            self._out_of_use.append(fact.node)

    def close(self, wall: float, elapsed: float) -> None:
        names = tuple(self.nodes[n].name if n in self.nodes else str(n) for n in self._out_of_use)
        held = len(self._held)
        self.result = replace(compute(self.ledger, elapsed, self.pool_size), held_back=held, nodes_out_of_use=names)


def compute(ledger: Ledger, elapsed: float, pool_size: int) -> Statistics:
    """Statistics over every finished task of the sweep.

    ``elapsed`` is this run's wall time; earlier runs' time comes from the
    ledger.  Runtime figures cover completed and aborted tasks alike (both used
    their cores); a task counts on the core slot it started on, as in PyLauncher,
    whose "node" is one core of the host pool, once it ended: PyLauncher counted a
    task when its slot was released, so not one still running when the run stopped.
    """
    runtimes = sorted(ledger.runtimes(COMPLETED, FAILED))
    counts = ledger.counts()
    total = ledger.total_time(elapsed)
    aggregate = math.fsum(runtimes)
    per_slot: Counter[tuple[str, int]] = Counter()
    for (host, core_ids), count in ledger.places_used(COMPLETED, FAILED).items():
        if host is not None:
            per_slot[host, core_ids[0] if core_ids else 0] += count
    executed = sum(per_slot.values())
    return Statistics(
        total_time=total,
        completed=counts[COMPLETED],
        aborted=counts[FAILED],
        not_run=len(ledger) - counts[COMPLETED] - counts[FAILED],
        max_runtime=runtimes[-1] if runtimes else 0.0,
        avg_runtime=aggregate / len(runtimes) if runtimes else 0.0,
        aggregate=aggregate,
        speedup=aggregate / total if total > 0 else 0.0,
        pool_size=pool_size,
        per_slot_max=max(per_slot.values(), default=0),
        # over every slot the sweep used: a run resumed on other nodes adds slots to this run's pool
        per_slot_avg=executed / max(pool_size, len(per_slot)) if executed else 0.0,
        runtime_p50=percentile(runtimes, 50),
        runtime_p99=percentile(runtimes, 99),
    )


def percentile(ordered: list[float], q: float) -> float:
    """The ``q``-th percentile of sorted values, interpolated linearly between
    the two nearest ranks (numpy's default method); 0.0 for no values."""
    if not ordered:
        return 0.0
    position = (len(ordered) - 1) * q / 100
    below = math.floor(position)
    above = min(below + 1, len(ordered) - 1)
    return ordered[below] + (ordered[above] - ordered[below]) * (position - below)
