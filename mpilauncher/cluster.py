"""What the batch system gives us: job id, nodes, cores per node.

Inside a Slurm job the job's own figures win: ``SLURM_JOB_CPUS_PER_NODE``
(e.g. ``48(x2),24``) with ``SLURM_JOB_NODELIST`` says how many cores each
node of the *job* has.  ``SLURM_CPUS_ON_NODE`` is not used for sizing: inside
the launcher's own ``srun`` step it is only the step's share (measured, see
ARCHITECTURE.md).  Outside Slurm, a node has the CPUs this process may run on.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping

from mpilauncher.records import record


@record(frozen=True)
class Allocation:
    """The resources as the environment describes them."""

    job_id: str | None  # None outside a batch job
    nodes: tuple[str, ...]  # node names of the job (just this host outside Slurm)
    cores_per_node: tuple[int, ...]  # same order as ``nodes``
    this_node: str

    @property
    def in_slurm(self) -> bool:
        return self.job_id is not None

    def cores_of(self, host: str) -> int | None:
        """The core count of node ``host`` (a name of ``nodes``); None: not one of the job's."""
        try:
            return self.cores_per_node[self.nodes.index(host)]
        except ValueError:
            return None


def expand_counts(spec: str) -> list[int]:
    """``48(x2),24`` -> ``[48, 48, 24]`` (Slurm's repeated-count syntax)."""
    counts: list[int] = []
    for part in spec.split(","):
        match = re.fullmatch(r"\s*(\d+)(?:\(x(\d+)\))?\s*", part)
        if not match:
            raise ValueError(f"cannot read Slurm count list {spec!r}")
        counts.extend([int(match.group(1))] * int(match.group(2) or 1))
    return counts


def expand_hostlist(spec: str) -> list[str]:
    """``c1-[001-003,7],gpu5`` -> ``['c1-001', 'c1-002', 'c1-003', 'c1-7', 'gpu5']``.

    Handles several bracket groups per name (the cross product, as Slurm does)
    and keeps zero padding.
    """
    names: list[str] = []
    for item in _split_top_level(spec):
        names.extend(_expand_item(item))
    return names


def _split_top_level(spec: str) -> list[str]:
    items, depth, current = [], 0, []
    for char in spec:
        if char == "[":
            depth += 1
        elif char == "]":
            depth -= 1
        if char == "," and depth == 0:
            items.append("".join(current))
            current = []
        else:
            current.append(char)
    if current:
        items.append("".join(current))
    return [i.strip() for i in items if i.strip()]


def _expand_item(item: str) -> list[str]:
    match = re.search(r"\[([^\]]*)\]", item)
    if not match:
        return [item]
    head, tail = item[: match.start()], item[match.end() :]
    out: list[str] = []
    for part in match.group(1).split(","):
        low, sep, high = part.partition("-")
        if sep:
            width = len(low)
            values = [str(v).zfill(width) for v in range(int(low), int(high) + 1)]
        else:
            values = [low]
        for value in values:
            out.extend(_expand_item(head + value + tail))
    return out


def local_cpu_count() -> int:
    """CPUs this process may run on (affinity mask, so cgroup/taskset limits count)."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def detect(environ: Mapping[str, str] | None = None, cores_override: int | None = None) -> Allocation:
    """Read the allocation from Slurm's variables, else from this host."""
    env = os.environ if environ is None else environ
    this_node = env.get("SLURMD_NODENAME") or os.uname().nodename.split(".")[0]
    job_id = env.get("SLURM_JOB_ID") or env.get("SLURM_JOBID")
    if job_id:
        try:
            nodes = tuple(expand_hostlist(env.get("SLURM_JOB_NODELIST", env.get("SLURM_NODELIST", ""))))
        except ValueError:
            nodes = ()
        try:
            counts = tuple(expand_counts(env.get("SLURM_JOB_CPUS_PER_NODE", "")))
        except ValueError:
            counts = ()
        if nodes and len(counts) == len(nodes):
            if cores_override:
                counts = (cores_override,) * len(nodes)
            return Allocation(job_id, nodes, counts, this_node)
        cores = cores_override or local_cpu_count()
        return Allocation(job_id, (this_node,), (cores,), this_node)
    return Allocation(None, (this_node,), (cores_override or local_cpu_count(),), this_node)


def job_seconds_left(environ: Mapping[str, str] | None = None) -> float | None:
    """Seconds until the Slurm job's time limit, or None (no job, no limit, no answer).

    ``SLURM_JOB_END_TIME`` (epoch seconds, newer Slurm) when set, else one
    ``squeue -h -o %e`` call at start-up.
    """
    import time

    env = os.environ if environ is None else environ
    job = env.get("SLURM_JOB_ID")
    if not job:
        return None
    end = env.get("SLURM_JOB_END_TIME")
    if end:
        try:
            return float(end) - time.time()
        except ValueError:
            return None
    import subprocess  # here: only this path needs them (start-up time)
    from datetime import datetime

    try:
        text = subprocess.run(
            ["squeue", "-h", "-j", job, "-o", "%e"], capture_output=True, text=True, timeout=10
        ).stdout.strip()
        if not text or text in ("N/A", "NONE", "Unknown"):
            return None
        return datetime.fromisoformat(text).timestamp() - time.time()
    except (OSError, ValueError, subprocess.SubprocessError):
        return None
