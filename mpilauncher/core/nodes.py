"""What the master knows of each node, by the index the scheduler's facts use.

The facts say *where* with numbers: a node index, core ids, GPU indices.  The
consumers that write for people (queuestate, joblog, trace) turn them into a
node name, bound CPU ids and GPU ids with this table, built once from the
agents' hellos.
"""

from __future__ import annotations

from mpilauncher.records import record


@record(frozen=True)
class Node:
    """One node: ``index`` (the scheduler's), ``name`` (its host name), ``core_count``, the CPU id
    of each core slot where its agent binds tasks (``bound_cpus``, () when it does not), and the
    id of each GPU by index (``gpu_ids``)."""

    index: int
    name: str
    core_count: int
    bound_cpus: tuple[int, ...] = ()
    gpu_ids: tuple[str, ...] = ()

    def cpus_of(self, core_ids: tuple[int, ...]) -> tuple[int, ...]:
        """The CPU ids a task on ``core_ids`` is bound to; () when not bound."""
        return binding(self.bound_cpus, core_ids)

    def gpu_ids_of(self, gpu_indices: tuple[int, ...]) -> tuple[str, ...]:
        if not gpu_indices:  # (most tasks: no generator made, once a task in the joblog)
            return ()
        gpu_ids = self.gpu_ids
        return tuple(gpu_ids[i] for i in gpu_indices)


def binding(cpus: tuple[int, ...], core_ids: tuple[int, ...]) -> tuple[int, ...]:
    """The CPUs a task on core slots ``core_ids`` is bound to; () when binding is impossible."""
    if not cpus or any(core >= len(cpus) for core in core_ids):
        return ()
    return tuple(cpus[core] for core in core_ids)
