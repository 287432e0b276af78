"""``report --plot FILE``: a Gantt chart of tasks on cores over time, and the pool's utilisation below it.

One picture answers "where did my allocation sit idle?": every core slot is a
row, every task a bar on the rows of its cores (green ok, red failed, orange
killed or timed out, grey still running), and the curve below is the share of
the pool's cores busy at each moment, with the tail -- from the last start to
the end, when cores only free up -- shaded.

matplotlib is an optional extra (``pip install 'mpilauncher[plot]'``), imported
here only.  All bars go into one ``PolyCollection`` (one artist, drawn in C), so
100,000 tasks draw in seconds; rows thinner than a pixel are fine, the colours
still show where the cores were busy.
"""

from __future__ import annotations

from pathlib import Path

from mpilauncher.report.sweep import Sweep, busy_curve, core_time, sweep_usage

COLOURS = {
    "ok": "#2e8b57",
    "failed": "#d62728",
    "signal": "#ff8c00",
    "timeout": "#ff8c00",
    "running": "#9e9e9e",
    "interrupted": "#bdbdbd",
}
#: The time axis's unit by the sweep's length: seconds, minutes, hours, days.
UNITS = ((120, 1, "s"), (2 * 3600, 60, "min"), (3 * 86400, 3600, "h"), (float("inf"), 86400, "days"))


class PlotUnavailable(Exception):
    """matplotlib is not installed."""


def draw(sweep: Sweep, path: Path) -> None:
    """Write the picture to ``path`` (PNG or SVG, by its suffix)."""
    try:
        import matplotlib
    except ImportError:
        raise PlotUnavailable("--plot needs matplotlib: pip install 'mpilauncher[plot]'") from None
    matplotlib.use("Agg")  # no display needed, none wanted
    import matplotlib.pyplot as plt
    import numpy as np
    from matplotlib.collections import PolyCollection
    from matplotlib.patches import Patch

    attempts = sweep.attempts
    use = sweep_usage(sweep)
    first = use.first if use else 0.0
    span = (use.last - first) if use else 1.0
    scale, unit = next((size, name) for limit, size, name in UNITS if span <= limit)

    # Rows: the pool's nodes in order, then any node only the joblog names (an earlier run's).
    row_base: dict[str, int] = {}
    rows = 0
    nodes = dict(sweep.pool)
    for a in attempts:
        for host, core_ids in a.slots:
            nodes[host] = max(nodes.get(host, 0), max(core_ids, default=0) + 1)
    for node, count in nodes.items():
        row_base[node] = rows
        rows += count

    boxes, colours = [], []
    for a in attempts:
        x0, x1 = (a.start - first) / scale, (a.end - first) / scale
        colour = COLOURS.get(a.status, COLOURS["failed"])
        for host, core_ids in a.slots:
            base = row_base[host]
            for low, high in _runs(core_ids):
                y0, y1 = base + low + 0.08, base + high + 0.92
                boxes.append(((x0, y0), (x0, y1), (x1, y1), (x1, y0)))
                colours.append(colour)

    figure, (gantt, curve) = plt.subplots(
        2, 1, sharex=True, figsize=(11, 7), gridspec_kw={"height_ratios": [3, 1.2]}, constrained_layout=True
    )
    if boxes:
        # A white edge parts two tasks in a row of one core; with thousands of bars it would be all one sees.
        edges = ("white", 0.6) if len(boxes) <= 3000 else ("none", 0.0)
        gantt.add_collection(
            PolyCollection(np.array(boxes), facecolors=colours, edgecolors=edges[0], linewidths=edges[1],
                           antialiased=False)
        )  # fmt: skip
    gantt.set_xlim(0, max(span / scale, 1e-9) * 1.01)
    gantt.set_ylim(rows, 0)
    gantt.set_ylabel(f"core slots ({rows} on {len(nodes)} node{'s' if len(nodes) != 1 else ''})")
    if len(nodes) <= 32:
        gantt.set_yticks([row_base[n] + nodes[n] / 2 for n in nodes], list(nodes), fontsize=8)
    else:
        gantt.set_yticks([])
    for node in list(nodes)[1:]:
        gantt.axhline(row_base[node], color="#444444", linewidth=0.6)
    total = len(sweep.ledger) if sweep.ledger is not None else len({a.task_id for a in attempts})
    title = f"{sweep.name}: {total} tasks on {sweep.pool_size} cores"
    if use is not None and sweep.pool_size:
        title += f", {use.share(sweep.pool_size):.0%} busy ({sweep.state})"
    gantt.set_title(title)
    shown = sorted({a.status for a in attempts}, key=list(COLOURS).index)
    legend = [Patch(color=COLOURS[s], label="killed" if s in ("signal", "timeout") else s) for s in shown]
    if legend:
        gantt.legend(handles=legend, loc="upper right", fontsize=8, framealpha=0.9)

    times, busy = busy_curve(attempts)
    if times and sweep.pool_size:
        xs = [(t - first) / scale for t in times]
        ys = [100.0 * b / sweep.pool_size for b in busy]
        curve.fill_between(xs, ys, step="post", color="#4c72b0", alpha=0.35, linewidth=0)
        curve.step(xs, ys, where="post", color="#4c72b0", linewidth=1)
        if use is not None and use.last > use.last_start:
            tail0 = (use.last_start - first) / scale
            curve.axvspan(tail0, span / scale, color="#ffcc80", alpha=0.35, linewidth=0)
            curve.annotate(
                "tail", ((tail0 + span / scale) / 2, 104), ha="center", fontsize=8, color="#a65e00",
                annotation_clip=False,
            )  # fmt: skip
            gantt.axvline(tail0, color="#a65e00", linewidth=0.8, linestyle="--")
        idle = core_time(use.idle(sweep.pool_size)) if use is not None else "-"
        curve.set_title(f"cores busy (idle: {idle})", fontsize=9)
    curve.set_ylim(0, 110)
    curve.set_ylabel("% of the pool")
    curve.axhline(100, color="#444444", linewidth=0.6)
    curve.set_xlabel(f"time since the first start ({unit})")
    figure.savefig(path, dpi=110)
    plt.close(figure)


def _runs(core_ids: list[int]) -> list[tuple[int, int]]:
    """Consecutive core ids as (first, last) runs: one bar for a 4-core task, not four."""
    runs: list[tuple[int, int]] = []
    for core in sorted(core_ids):
        if runs and core == runs[-1][1] + 1:
            runs[-1] = (runs[-1][0], core)
        else:
            runs.append((core, core))
    return runs or [(0, 0)]
