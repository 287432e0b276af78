"""The final statistics, worded and laid out as PyLauncher's user guide shows them."""

from __future__ import annotations

from mpilauncher.core.stats import Statistics


def _number(value: float) -> str:
    """An average as the guide prints it: ``4`` rather than ``4.00``, else at most two decimals."""
    return f"{value:.2f}".rstrip("0").rstrip(".")


def final_report(stats: Statistics, interrupted: str | None = None) -> str:
    """The closing block; ``interrupted`` names why a stopped run ended early."""
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
        text += f"\ntasks not run yet: {stats.not_run} (queued or interrupted: resume to run them)\n"
    return text
