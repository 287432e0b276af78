"""The final statistics, worded and laid out as PyLauncher's user guide shows them."""

from __future__ import annotations

import sys
import time
from collections.abc import Sequence

from mpilauncher.core.stats import Statistics
from mpilauncher.plural import counted

#: The PyLauncher release whose scripts, keywords and files this release follows.
PYLAUNCHER_VERSION = "5.4"


def _number(value: float) -> str:
    """An average as the guide prints it: ``4`` rather than ``4.00``, else at most two decimals."""
    return f"{value:.2f}".rstrip("0").rstrip(".")


def final_report(
    stats: Statistics, interrupted: str | None = None, chain: str | None = None, running: bool = False
) -> str:
    """The closing block; ``interrupted`` names why a stopped run ended early, ``chain`` which job
    of a chain of Slurm jobs this was; ``running``: the figures of a sweep still under way (``report``)."""
    if running:
        head = "Launcherjob running: the figures so far."
    else:
        head = "Launcherjob run completed." if interrupted is None else f"Launcherjob stopped: {interrupted}."
    text = (
        f"{head}\n"
        "\n"
        f"total running time: {stats.total_time:6.2f}\n"
        "\n"
        f"# tasks completed: {stats.completed}\n"
        f"tasks aborted: {stats.aborted}\n"
        f"max runningtime: {stats.max_runtime:6.2f}\n"
        f"avg runningtime: {stats.avg_runtime:6.2f}\n"
        f"aggregate  \t: {stats.aggregate:6.2f}\n"
        f"speedup    \t: {stats.speedup:6.2f}\n"
        "\n"
        f"Host pool of size {stats.pool_size}.\n"
        "\n"
        "Number of tasks executed per node:\n"
        f"max: {stats.per_slot_max}\n"
        f"avg: {_number(stats.per_slot_avg)}\n"
    )
    if stats.not_run:
        why = "queued or running now" if running else "queued or interrupted: resume to run them"
        text += f"\ntasks not run yet: {stats.not_run} ({why})\n"
    if stats.held_back:
        text += (
            f"tasks held back: {stats.held_back} (they could not finish before the time limit:"
            " queued for the next job)\n"
        )
    if stats.nodes_out_of_use:
        text += (
            f"\nnodes taken out of use: {', '.join(stats.nodes_out_of_use)} (tasks failed there at once and"
            " succeeded elsewhere; their tasks ran elsewhere)\n"
        )
    if chain:
        text += f"\nThis was {chain}.\n"
    return text


def startup_lines(
    version: str,
    job_type: str,
    commandlines: str,
    tasks: int,
    to_run: int,
    per_task: str,
    workdir: str,
    queuestate: str,
    nodes: Sequence[tuple[str, int]],
    gpus: int = 0,
) -> str:
    """What ran, for the log: PyLauncher's start-up lines in spirit (version, launcher
    type, workdir, core count, and for GPU tasks the GPUs), printed once the input is checked."""
    cores = sum(count for _, count in nodes)
    pool = f"{counted(cores, 'core')} and {counted(gpus, 'GPU')}" if gpus else counted(cores, "core")
    names = [name for name, _ in nodes]
    where = ", ".join(names[:4]) + (f", ... ({len(names)} nodes)" if len(names) > 4 else "")
    run = counted(tasks, "task") if to_run == tasks else f"{to_run} of {counted(tasks, 'task')} to run"
    return (
        f"mpilauncher {version} (PyLauncher {PYLAUNCHER_VERSION} compatible) job, type={job_type},"
        f" starting {time.strftime('%Y-%m-%d %H:%M:%S')}\n"
        f" .. using python {sys.version.split()[0]}\n"
        f" .. commandlines: {commandlines}: {run}, {per_task}\n"
        f" .. workdir: {workdir}\n"
        f" .. queuestate: {queuestate}\n"
        f" .. host pool: {pool} on {counted(len(names), 'node')} ({where})\n"
    )
