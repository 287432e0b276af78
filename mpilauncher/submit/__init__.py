"""Submit mode (PyLauncher's SubmitLauncher): the sweep's tasks run as Slurm jobs, submitted from a login node.

It is a backend of the same launcher, not a second program: the commandlines,
the queuestate and its journal, the joblog, the statistics, the trace, the exit
statuses and ``--resume`` are the ordinary run's.  What differs lies below the
agent (see :mod:`.backend`): a task's start is an ``sbatch``, its end is learned
from the job (a status file the job writes, or Slurm's word for a job that was
killed), and the agent's "cores" are job slots, so that never more than
``max_active`` of the sweep's jobs are queued or running at once.

- :mod:`.settings`: the user's choices, and how a task's size becomes sbatch options;
- :mod:`.slurm`: sbatch, squeue, scontrol, scancel (no accounting);
- :mod:`.scripts`: the job scripts and the status line each job writes at its end;
- :mod:`.record`: the workdir's record of every submission, by which a restarted
  submitter adopts its jobs instead of submitting them again;
- :mod:`.backend`: the execution backend.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

from mpilauncher.persistence.queuestate import META_PREFIX
from mpilauncher.submit.record import check_settled
from mpilauncher.submit.settings import META_KEY, NODE_NAME, Settings

if TYPE_CHECKING:
    from mpilauncher.submit.backend import SlurmJobs

__all__ = ["META_KEY", "NODE_NAME", "Settings", "SlurmJobs", "check_settled", "recorded_settings"]


def __getattr__(name: str):
    """``SlurmJobs`` (the backend, with sbatch, squeue and their subprocesses) loads when submit mode runs:
    every other run only reads a queuestate's submission settings (``recorded_settings``)."""
    if name == "SlurmJobs":
        from mpilauncher.submit.backend import SlurmJobs

        return SlurmJobs
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def recorded_settings(queuestate: Path) -> dict | None:
    """The submission settings a queuestate keeps (its sweep ran in submit mode), read from its head only.

    None when it has none, or cannot be read (then loading it says what is wrong).
    """
    try:
        with open(queuestate, encoding="utf-8", errors="replace") as file:
            for _, line in zip(range(16), file, strict=False):
                if line.startswith(META_PREFIX):
                    value = json.loads(line[len(META_PREFIX) :]).get(META_KEY)
                    return value if isinstance(value, dict) else None
    except (OSError, ValueError, AttributeError):
        return None
    return None
