"""Free cores of every node, and best-fit placement that does not scan them all.

Theory of operation
-------------------
A task of ``k`` cores runs on ``k`` free cores of one node.  Nodes are kept in
buckets by their number of free cores (``0 .. largest node``), each bucket a
min-heap of node indices, so placing a task looks at most at one bucket per
possible free count and never at every core of the machine: a bitmask of the
non-empty buckets finds the fullest node that fits in one step, so the cost
of a placement depends on neither the number of nodes nor their size.  We take
the *fullest* node that still fits (best fit), lowest index first, which packs
nodes tightly and keeps whole nodes free for ``cores="node"`` tasks.

Heaps use lazy deletion: an entry ``(node, version)`` is live only while the
node's version is unchanged; every take/release bumps the version and pushes a
fresh entry.  A bucket whose heap holds many more entries than live nodes is
rebuilt, which bounds memory at O(nodes) and keeps the amortised cost O(log n).

Within a node, free core ids live in a min-heap: a task gets the lowest free
cores, which makes CPU binding (``--bind``) and traces predictable.

GPUs are the scarce resource: a GPU task whose share of its node's cores is
below one core (fewer cores than GPU slots) asks for ``width`` 0.  It takes
only its GPUs and no core slot of its own, so it never waits for a core while
a GPU is free, and CPU tasks still find every core slot free and whole.  It
runs on one core slot that it shares with other such GPU tasks: GPU slot ``g``
of a node with ``c`` cores shares core ``g % c``, so the lowest GPU slots
(taken first) spread over different cores, and a task that takes over a GPU
takes over its core as well.  Nothing about it is kept beyond its GPUs: the
core is a function of the GPU, and a cost of O(1) on top of the GPU placement.
"""

from __future__ import annotations

import heapq

from mpilauncher.records import field, record

#: ``width`` of a task that takes every core of the node it lands on (``cores="node"``);
#: real widths are >= 0 (0: a GPU task with no core slot of its own).
WHOLE_NODE = -1


@record
class NodeSlots:
    """One node's cores; ``free`` is a heap of free core ids."""

    index: int
    name: str
    cores: int
    free: list[int] = field(default_factory=list)
    version: int = 0
    alive: bool = True
    gpus: int = 0
    free_gpus: list[int] = field(default_factory=list)  # heap of free GPU indices

    @property
    def free_count(self) -> int:
        return len(self.free)


class SlotPool:
    """All nodes' free cores, with O(log n) best-fit placement."""

    def __init__(self) -> None:
        self.nodes: dict[int, NodeSlots] = {}
        self._buckets: list[list[tuple[int, int]]] = [[]]  # free count -> heap of (node, version)
        self._live: list[int] = [0]  # free count -> number of live nodes in that bucket
        self._nonempty = 0  # bit f set <=> some live node has exactly f free cores
        self._idle: list[tuple[int, int]] = []  # heap of wholly free nodes
        self.total_cores = 0
        self.free_cores = 0
        self.total_gpus = 0
        self._gpu_nodes: dict[int, None] = {}  # nodes with a free GPU, in joining order

    # -- membership -------------------------------------------------------
    def add_node(self, index: int, name: str, cores: int, gpus: int = 0) -> None:
        if index in self.nodes:
            raise ValueError(f"node {index} joined twice")
        if cores < 1:
            raise ValueError(f"node {index} ({name}) has no cores")
        while len(self._buckets) <= cores:
            self._buckets.append([])
            self._live.append(0)
        node = NodeSlots(index, name, cores, list(range(cores)), gpus=gpus, free_gpus=list(range(gpus)))
        self.nodes[index] = node
        self.total_cores += cores
        self.free_cores += cores
        self.total_gpus += gpus
        if gpus:
            self._gpu_nodes[index] = None
        self._file(node)

    def remove_node(self, index: int) -> None:
        """Forget a lost node: its cores are neither free nor usable again."""
        node = self.nodes[index]
        if not node.alive:
            return
        self._unfile(node)
        node.alive = False
        node.version += 1
        self.total_cores -= node.cores
        self.free_cores -= node.free_count
        self.total_gpus -= node.gpus
        self._gpu_nodes.pop(index, None)
        node.free.clear()
        node.free_gpus.clear()

    def restore_node(self, index: int, busy: set[int], busy_gpus: set[int]) -> None:
        """Take a removed node back (it was out of use, not lost): its cores and GPUs but ``busy`` and
        ``busy_gpus`` (those its running tasks hold, released as they end) are free again."""
        node = self.nodes[index]
        if node.alive:
            return
        node.alive = True
        node.free = [core for core in range(node.cores) if core not in busy]
        node.free_gpus = [gpu for gpu in range(node.gpus) if gpu not in busy_gpus]
        self.total_cores += node.cores
        self.free_cores += len(node.free)
        self.total_gpus += node.gpus
        if node.free_gpus:
            self._gpu_nodes[index] = None
        self._file(node)

    @property
    def largest_node(self) -> int:
        return max((n.cores for n in self.nodes.values() if n.alive), default=0)

    def take_with_gpus(self, width: int, gpus: int) -> tuple[int, tuple[int, ...], tuple[int, ...]] | None:
        """``width`` cores (or WHOLE_NODE) and ``gpus`` GPUs of one node: the first node found that has both.

        ``width`` 0: no core slot of its own; the one core it shares comes with its
        GPUs (see the module docstring).  GPU nodes are few and hold few GPUs each,
        so a scan over the nodes that still have a free GPU is cheap; CPU-only
        placement never comes here.
        """
        for index in self._gpu_nodes:
            node = self.nodes[index]
            cores = node.cores if width == WHOLE_NODE else width
            if len(node.free_gpus) >= gpus and node.free_count >= cores:
                taken = tuple(heapq.heappop(node.free_gpus) for _ in range(gpus))
                if not node.free_gpus:
                    del self._gpu_nodes[index]
                return index, self._take_from(node, cores) if cores else (taken[0] % node.cores,), taken
        return None

    def fits_gpus(self, width: int, gpus: int) -> bool:
        for index in self._gpu_nodes:
            node = self.nodes[index]
            if len(node.free_gpus) >= gpus and node.free_count >= (node.cores if width == WHOLE_NODE else width):
                return True
        return False

    @property
    def has_free_gpus(self) -> bool:
        """Is some GPU free?  (A GPU task with no core slot of its own may start with no core free.)"""
        return bool(self._gpu_nodes)

    def release_gpus(self, index: int, gpu_indices: tuple[int, ...]) -> None:
        node = self.nodes[index]
        if not node.alive or not gpu_indices:
            return
        for gpu in gpu_indices:
            heapq.heappush(node.free_gpus, gpu)
        self._gpu_nodes.setdefault(index, None)

    # -- placement --------------------------------------------------------
    def fits(self, width: int) -> bool:
        """Is there a node with ``width`` free cores?"""
        return width <= self.free_cores and self._nonempty >> width != 0

    def _smallest_bucket_from(self, width: int) -> int | None:
        """The smallest free count >= ``width`` that some node has (bit tricks: O(1) in practice)."""
        above = self._nonempty >> width
        if not above:
            return None
        return width + (above & -above).bit_length() - 1

    def has_idle_node(self) -> bool:
        self._drop_stale(self._idle, lambda n: n.free_count == n.cores)
        return bool(self._idle)

    def take(self, width: int) -> tuple[int, tuple[int, ...]] | None:
        """Best fit: ``width`` cores on the fullest node that has them."""
        free = self._smallest_bucket_from(width)
        if free is None:
            return None
        bucket = self._buckets[free]
        self._drop_stale(bucket, lambda n: n.free_count == free)
        node = self.nodes[bucket[0][0]]
        return node.index, self._take_from(node, width)

    def take_whole_node(self) -> tuple[int, tuple[int, ...]] | None:
        """Every core of the lowest-numbered wholly free node."""
        if not self.has_idle_node():
            return None
        node = self.nodes[self._idle[0][0]]
        return node.index, self._take_from(node, node.cores)

    def find_span(self, width: int) -> list[tuple[int, int]] | None:
        """Where an MPI task wider than a node fits: consecutive nodes, all wholly free but
        the last, which gives the remainder.  Returns [(node, cores to take)] or None.

        A linear scan over the nodes: wide tasks are few and the scan happens only
        while one waits, so it stays off the path of ordinary tasks.
        """
        if width > self.free_cores:
            return None
        order = sorted(i for i, n in self.nodes.items() if n.alive)
        for start in range(len(order)):
            need, plan = width, []
            for position in range(start, len(order)):
                index = order[position]
                node = self.nodes[index]
                if position > start and index != order[position - 1] + 1:
                    break  # not consecutive
                if node.cores <= need:
                    if node.free_count != node.cores:
                        break
                    plan.append((index, node.cores))
                    need -= node.cores
                else:
                    if not set(range(need)) <= set(node.free):
                        break  # the remainder must be cores 0..r-1: one contiguous run of slots
                    plan.append((index, need))
                    need = 0
                if need == 0:
                    return plan
        return None

    def take_span(self, plan: list[tuple[int, int]]) -> tuple[tuple[int, tuple[int, ...]], ...]:
        """Take the cores :meth:`find_span` chose: ((node, core ids), ...)."""
        return tuple((index, self._take_from(self.nodes[index], count)) for index, count in plan)

    def find_run(self, width: int) -> tuple[int, int] | None:
        """A node with ``width`` *consecutive* free cores, and the first of them (MPI tasks:
        ``ibrun -o OFFSET -n K`` addresses a contiguous range of slots).  Fullest node first."""
        if not self.fits(width):
            return None
        for free in range(width, len(self._live)):
            if not self._live[free]:
                continue
            for index, version in self._buckets[free]:
                node = self.nodes[index]
                if node.version != version or not node.alive:
                    continue
                start = _first_run(sorted(node.free), width)
                if start is not None:
                    return index, start
        return None

    def take_run(self, index: int, start: int, width: int) -> tuple[int, ...]:
        node = self.nodes[index]
        self._unfile(node)
        wanted = set(range(start, start + width))
        node.free = [core for core in node.free if core not in wanted]
        heapq.heapify(node.free)
        self.free_cores -= width
        self._file(node)
        return tuple(range(start, start + width))

    def release(self, index: int, core_ids: tuple[int, ...]) -> None:
        node = self.nodes[index]
        if not node.alive:
            return
        self._unfile(node)
        for core in core_ids:
            heapq.heappush(node.free, core)
        self.free_cores += len(core_ids)
        self._file(node)

    # -- internals --------------------------------------------------------
    def _take_from(self, node: NodeSlots, width: int) -> tuple[int, ...]:
        self._unfile(node)
        cores = tuple(heapq.heappop(node.free) for _ in range(width))
        self.free_cores -= width
        self._file(node)
        return cores

    def _file(self, node: NodeSlots) -> None:
        node.version += 1
        entry = (node.index, node.version)
        free = node.free_count
        self._live[free] += 1
        if free == 0:
            return  # a full node is never taken from: keeping it out of the heaps saves their churn
        self._nonempty |= 1 << free
        bucket = self._buckets[free]
        heapq.heappush(bucket, entry)
        if len(bucket) > 2 * self._live[free] + 16:
            self._buckets[free] = self._rebuilt(bucket)
        if free == node.cores:
            heapq.heappush(self._idle, entry)
            if len(self._idle) > 2 * len(self.nodes) + 16:
                self._idle = self._rebuilt(self._idle)

    def _unfile(self, node: NodeSlots) -> None:
        free = node.free_count
        self._live[free] -= 1
        if not self._live[free]:
            self._nonempty &= ~(1 << free)
        node.version += 1
        if len(self._buckets[free]) > 2 * self._live[free] + 16:
            self._buckets[free] = self._rebuilt(self._buckets[free])

    def _rebuilt(self, heap: list[tuple[int, int]]) -> list[tuple[int, int]]:
        live = [(i, v) for i, v in set(heap) if self.nodes[i].version == v]
        heapq.heapify(live)
        return live

    def _drop_stale(self, heap: list[tuple[int, int]], still_valid) -> None:
        while heap:
            index, version = heap[0]
            node = self.nodes[index]
            if node.version == version and node.alive and still_valid(node):
                return
            heapq.heappop(heap)


def _first_run(core_ids: list[int], width: int) -> int | None:
    """The first core of ``width`` consecutive ids in sorted ``core_ids``."""
    run_start, length, previous = None, 0, None
    for core in core_ids:
        if previous is not None and core == previous + 1:
            length += 1
        else:
            run_start, length = core, 1
        if length == width:
            return run_start
        previous = core
    return None
