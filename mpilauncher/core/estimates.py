"""How long a task will run, from the sweep's own completed tasks of its shape (pure).

Near the deadline the scheduler holds back a task that cannot finish (see
:mod:`mpilauncher.core.scheduler`).  A task's own expected time (``--expected-time``)
decides when the user gave one; otherwise this estimate does, once there is one:

**the 90th percentile of the runtimes of the completed tasks of the same shape**
(core count, GPUs, MPI), **once 10 of them have completed**.

- *Completed* tasks only: a failed task often fails at once, and would make every
  task look short.
- *The same shape*: tasks of one shape are usually one program; a 1-core and a
  48-core task of one sweep are rarely alike.
- *A high percentile*: holding a task back is cheap -- it runs first thing in the
  next job, and when nothing else can start the job ends at once, handing its
  nodes back -- while a task started that cannot finish is killed at the stop
  having used its cores for nothing, and keeps every node of the allocation
  waiting for it.  So a task starts only when nine in ten of its kind would have
  finished in the time left.  Not the maximum: one straggler would hold back
  every task of its shape.
- *Ten*: below that, a 90th percentile is the largest value seen, and one task
  says too little.

Runtimes of earlier runs of the sweep (a resume) count too.  The percentile is
recomputed only when asked (near the deadline) and only once the sample has
grown by a tenth since, so collecting costs one append per completed task.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence

from mpilauncher.core.stats import percentile

#: Which percentile of the completed tasks' runtimes is a task's expected time.
PERCENTILE = 90
#: How many tasks of a shape must have completed before their runtimes say anything.
MIN_SAMPLES = 10
#: The cached percentile is recomputed once the sample has grown by this share.
REFRESH_GROWTH = 0.1

Shape = tuple[int, int, bool]


class RuntimeEstimates:
    """Runtimes of completed tasks by shape, and the estimate they give (see the module docstring)."""

    def __init__(self) -> None:
        self._runtimes: dict[Shape, list[float]] = {}
        self._cached: dict[Shape, tuple[int, float]] = {}  # shape -> (sample size when computed, estimate)
        #: The longest runtime seen: no estimate is above it (the scheduler's end game starts by it).
        self.longest = 0.0
        self._later: Callable[[], Iterable[tuple[Shape, Sequence[float]]]] | None = None

    def add_later(self, longest: float, read: Callable[[], Iterable[tuple[Shape, Sequence[float]]]]) -> None:
        """Runtimes of earlier runs (by shape), read by ``read`` when an estimate is first asked for --
        near the deadline, if ever; ``longest``, the longest of them, counts now."""
        self.longest = max(self.longest, longest)
        self._later = read

    def add(self, shape: Shape, runtime: float) -> None:
        runtimes = self._runtimes.get(shape)
        if runtimes is None:
            runtimes = self._runtimes[shape] = []
        runtimes.append(runtime)
        if runtime > self.longest:
            self.longest = runtime

    def add_all(self, shape: Shape, runtimes: Sequence[float]) -> None:
        """Many runtimes at once (the completed tasks of earlier runs: half a million, half-way through a million)."""
        if runtimes:
            self._runtimes.setdefault(shape, []).extend(runtimes)
            self.longest = max(self.longest, max(runtimes))

    def of(self, shape: Shape) -> float | None:
        """The expected runtime of a task of ``shape``, or None while too few have completed."""
        if self._later is not None:
            read, self._later = self._later, None
            for each, runtimes in read():
                self.add_all(each, runtimes)
        runtimes = self._runtimes.get(shape)
        if runtimes is None or len(runtimes) < MIN_SAMPLES:
            return None
        count = len(runtimes)
        cached = self._cached.get(shape)
        if cached is not None and count < cached[0] * (1 + REFRESH_GROWTH):
            return cached[1]
        estimate = percentile(sorted(runtimes), PERCENTILE)
        self._cached[shape] = (count, estimate)
        return estimate
