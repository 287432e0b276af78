"""What a node's agent may use: its CPUs (for binding) and its GPUs (for GPU tasks).

GPUs, first match wins:

1. ``--gpus-per-node N`` / ``gpuspernode=N`` (the first N of what is visible, else 0..N-1);
2. ``SLURM_JOB_GPUS``: the job's GPUs on this node.  Preferred over
   ``CUDA_VISIBLE_DEVICES`` because a step started with one task per GPU
   (the user guide's ``--ntasks-per-node`` = GPUs) may show each rank only its own;
3. ``CUDA_VISIBLE_DEVICES``, then ``ROCR_VISIBLE_DEVICES`` (AMD);
4. ``SLURM_GPUS_ON_NODE`` (a count);
5. ``nvidia-smi -L`` (one line per GPU).

A task then sees only its own GPUs: ``CUDA_VISIBLE_DEVICES`` (and, on AMD,
``ROCR_VISIBLE_DEVICES`` and ``HIP_VISIBLE_DEVICES``) list exactly them.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

from mpilauncher.core.nodes import binding  # noqa: F401  (the agent binds with it; the joblog and trace read it)
from mpilauncher.programs import which
from mpilauncher.records import record


@record(frozen=True)
class Gpus:
    ids: tuple[str, ...] = ()  # the ids to put in *_VISIBLE_DEVICES, by GPU index
    vendor: str = ""  # "nvidia" | "amd" | ""
    source: str = ""  # where the figure came from, for the trace

    def __len__(self) -> int:
        return len(self.ids)

    def shared(self, tasks_per_gpu: int) -> Gpus:
        """Each GPU offered ``tasks_per_gpu`` times (``--tasks-per-gpu``: tasks share GPUs only when asked).

        Round by round (``0,1,0,1``, not ``0,0,1,1``): the scheduler takes the lowest
        free GPU slots first, so tasks spread over the GPUs before two share one.
        """
        if tasks_per_gpu <= 1:
            return self
        return Gpus(tuple(i for _ in range(tasks_per_gpu) for i in self.ids), self.vendor, self.source)


def _ids(value: str | None) -> tuple[str, ...]:
    if not value or value.strip() in ("", "NoDevFiles", "-1"):
        return ()
    return tuple(part.strip() for part in value.split(",") if part.strip())


def _nvidia_smi_count() -> int:
    if which("nvidia-smi") is None:
        return 0
    import subprocess  # here: only this rare path needs it (start-up time)

    try:
        listing = subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True, timeout=20).stdout
    except (OSError, subprocess.SubprocessError):
        return 0
    return sum(1 for line in listing.splitlines() if line.startswith("GPU "))


def detect_gpus(environ: Mapping[str, str] | None = None, override: int | None = None, probe: bool = True) -> Gpus:
    """This node's GPUs (see the module docstring for the order of sources)."""
    env = os.environ if environ is None else environ
    amd = bool(_ids(env.get("ROCR_VISIBLE_DEVICES")))
    vendor = "amd" if amd else "nvidia"
    visible = (
        _ids(env.get("SLURM_JOB_GPUS"))
        or _ids(env.get("CUDA_VISIBLE_DEVICES"))
        or _ids(env.get("ROCR_VISIBLE_DEVICES"))
    )
    if override is not None:
        ids = visible[:override] if len(visible) >= override else tuple(str(i) for i in range(override))
        return Gpus(ids, vendor, "--gpus-per-node")
    for name in ("SLURM_JOB_GPUS", "CUDA_VISIBLE_DEVICES", "ROCR_VISIBLE_DEVICES"):
        ids = _ids(env.get(name))
        if ids:
            return Gpus(ids, "amd" if name == "ROCR_VISIBLE_DEVICES" or amd else "nvidia", name)
    try:
        count = int(env.get("SLURM_GPUS_ON_NODE", "0"))
    except ValueError:
        count = 0
    if count:
        return Gpus(tuple(str(i) for i in range(count)), vendor, "SLURM_GPUS_ON_NODE")
    count = _nvidia_smi_count() if probe else 0
    if count:
        return Gpus(tuple(str(i) for i in range(count)), "nvidia", "nvidia-smi")
    return Gpus()


def gpu_environment(gpus: Gpus, gpu_indices: tuple[int, ...]) -> dict[str, str]:
    """The variables that make a task see exactly its GPUs (``gpu_indices``, by index into ``gpus``).

    An index past the node's GPUs is a GPU slot of a shared GPU (``--tasks-per-gpu``): rank 0
    offers each GPU once per round (:meth:`Gpus.shared`), so slot ``i`` is GPU ``i mod n``.
    """
    if not gpu_indices or not gpus.ids:
        return {}
    ids = ",".join(dict.fromkeys(gpus.ids[i % len(gpus.ids)] for i in gpu_indices))  # a shared GPU is listed once
    env = {"CUDA_VISIBLE_DEVICES": ids, "MPILAUNCHER_GPUS": ids}
    if gpus.vendor == "amd":
        env["ROCR_VISIBLE_DEVICES"] = ids
        env["HIP_VISIBLE_DEVICES"] = ids
    return env


def widen_to_cpuset() -> None:
    """Let this process run on every CPU its cpuset allows, not only those it was bound to.

    MPI starters bind each rank for the sake of MPI codes (``srun --cpu-bind``, hydra's
    ``-bind-to core``, Open MPI's ``--bind-to core`` for ``-n`` up to 2): a launcher rank
    would then count one core and every task would inherit that CPU (measured:
    ``mpiexec -n 2 -bind-to core``, a pool of size 1, all tasks on CPU 0).  The kernel clips
    the request to the cgroup's cpuset, so what the job was given still holds.
    """
    try:
        os.sched_setaffinity(0, set(range(os.cpu_count() or 1)) | os.sched_getaffinity(0))
    except (AttributeError, OSError):
        pass


def allowed_cpus() -> tuple[int, ...]:
    """The CPU ids this process may run on, in order: core slot i binds to the i-th."""
    try:
        return tuple(sorted(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return ()
