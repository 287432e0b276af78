"""What the user asked of the submitter, and how a task becomes ``sbatch`` options.

A task's core count reaches its job as ``-N 1 -n K`` (``--nodes=1 --ntasks=K``),
given after the user's own sbatch options so that it wins over a ``-n 1`` there
(PyLauncher's own example passes ``-N 1 -n 1``).  Why ``-n`` and not ``-c``:
the job script runs on the first node of the job with all the CPUs the job has
there either way, and ``-n K`` lets an MPI task's ``srun`` start K ranks, where
``-c K`` would start one.  One node, because a launcher task's cores are one
node's (``OMP_NUM_THREADS=K``); an MPI task (``--mpi``, IbrunLauncher) asks
only for ``-n K`` and may span nodes.  ``cores=node`` is ``-N 1 --exclusive``.
A one-core task adds nothing: its job is exactly what the sbatch options say,
as in PyLauncher.  ``--task-timeout`` becomes the job's ``--time``.

With several tasks per job the job's size is the sbatch options' alone: the
launcher inside the job packs the chunk's tasks onto whatever the job holds.
"""

from __future__ import annotations

import math
import shlex
from collections.abc import Sequence

from mpilauncher.core.tasks import Task
from mpilauncher.records import record

#: The agent's name for the Slurm jobs' "node": what the joblog, the queuestate and the trace show.
NODE_NAME = "slurm"
#: How a submission's defaults are kept in the queuestate (its #meta line), for --resume.
META_KEY = "submit"


@record(frozen=True)
class Settings:
    """The submitter's settings: see ``--submit`` and its companions in ``python -m mpilauncher --help``."""

    sbatch: str  # the user's sbatch options, as one string
    max_active: int = 1
    tasks_per_job: int = 1
    poll_interval: float = 30.0
    cancel_on_stop: bool = False
    partition: str | None = None  # queue=: the partition when the sbatch options name none
    task_timeout: float | None = None  # a job's --time (one task per job), or the chunk launcher's
    #: For the launcher that runs a chunk inside its job.
    time_limit_margin: float = 60.0
    grace: float = 2.0

    @property
    def options(self) -> list[str]:
        """The user's sbatch options, with ``-p QUEUE`` added where they name no partition."""
        words = shlex.split(self.sbatch)
        if self.partition and not names_option(words, "--partition", "-p"):
            words += ["--partition", self.partition]
        return words

    @property
    def inner_options(self) -> tuple[str, ...]:
        """The options of the launcher that runs a chunk inside its job."""
        options = ["--time-limit-margin", f"{self.time_limit_margin:g}", "--grace", f"{self.grace:g}"]
        if self.task_timeout:
            options += ["--task-timeout", f"{self.task_timeout:g}"]
        return tuple(options)

    @property
    def slots(self) -> int:
        """The agent's "cores": a task takes one whatever its size, a job holds ``tasks_per_job``."""
        return self.max_active * self.tasks_per_job

    @property
    def chunked(self) -> bool:
        return self.tasks_per_job > 1

    def to_meta(self) -> dict:
        return {"sbatch": self.sbatch, "max_active": self.max_active, "tasks_per_job": self.tasks_per_job,
                "poll_interval": self.poll_interval, "partition": self.partition}  # fmt: skip

    def describe(self) -> str:
        per_job = "one task per job" if not self.chunked else f"up to {self.tasks_per_job} tasks per job"
        return (
            f"submitting Slurm jobs, {per_job}, at most {self.max_active} queued or running at once"
            f" (sbatch {shlex.join(self.options) or 'with no options'}); this process only submits and watches them"
        )


def names_option(words: Sequence[str], long: str, short: str | None = None) -> bool:
    """Whether sbatch options name an option (``-p X``, ``-pX``, ``--partition X``, ``--partition=X``)."""
    return any(is_option(word, long, short) for word in words)


def is_option(word: str, long: str, short: str | None = None) -> bool:
    if word == long or word.startswith(long + "="):
        return True
    return short is not None and word.startswith(short) and not word.startswith("--")


def job_shape(task: Task, timeout: float | None = None) -> tuple[str, ...]:
    """The sbatch options a task's own size adds to its job (see the module docstring)."""
    shape: list[str] = []
    if task.whole_node:
        shape += ["--nodes=1", "--exclusive"]
    elif task.mpi:
        shape += [f"--ntasks={task.cores}"]
    elif task.cores > 1:
        shape += ["--nodes=1", f"--ntasks={task.cores}"]
    if timeout:
        shape.append(f"--time={max(1, math.ceil(timeout / 60))}")
    return tuple(shape)
