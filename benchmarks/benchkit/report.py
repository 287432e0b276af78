"""From the measured runs to figures: ratios to ``xargs -P``, the Markdown table, the JSON, the plots.

Everything here reads the JSON document alone (``peers.py --render FILE`` draws a saved run again), so the
figures of a run can be re-read, compared and re-drawn without running anything.
"""

from __future__ import annotations

import statistics
from pathlib import Path

from benchkit.runners import BASELINES, MPI_BASELINE, PYTHON_BASELINE, REFERENCE

NOISY = 0.10  # warn when other processes kept more than this share of the CPUs busy
LOCATION_TITLES = {"disk": "Workdir on disk", "tmpfs": "Workdir on tmpfs"}


def derive(document: dict) -> None:
    """Add to each cell its median and best wall time, its ratios to xargs' (same workload, same location:
    median over median, best over best, and each round's own ratio) and, for W4, the busy-core fraction."""
    reference = {(c["location"], c["workload"]): c for c in document["cells"] if c["peer"] == REFERENCE}
    for cell in document["cells"]:
        walls = cell["wall_s"]
        cell["median_s"] = statistics.median(walls) if walls else None
        cell["best_s"] = min(walls) if walls else None
        xargs = reference.get((cell["location"], cell["workload"]))
        ok = cell["status"] == "ok" and walls and xargs and xargs["status"] == "ok" and xargs["wall_s"]
        if ok:
            cell["ratio_median"] = cell["median_s"] / statistics.median(xargs["wall_s"])
            cell["ratio_best"] = cell["best_s"] / min(xargs["wall_s"])
            cell["round_ratios"] = [w / x for w, x in zip(walls, xargs["wall_s"], strict=False)]
        if cell["status"] == "timed out" and xargs and xargs["wall_s"]:
            cell["ratio_at_least"] = cell["timeout_s"] / statistics.median(xargs["wall_s"])
        work = document["workloads"][cell["workload"]].get("work_s")
        if work and walls and cell["status"] == "ok" and cell["peer"] not in BASELINES:
            slots = document["workloads"][cell["workload"]]["slots"]
            cell["busy_fraction"] = work / (slots * cell["median_s"])


def markdown(document: dict) -> str:
    info, workloads = document["info"], document["workloads"]
    repeat = document["settings"]["repeat"]
    out = [
        "# mpilauncher and its peers, side by side",
        "",
        f"`{document['command']}`, {document['date']}: {info['cpu']}, {info['usable_cpus']} usable CPUs,"
        f" {info['os']}, Python {info['python'].split()[1]}, `/bin/sh` = {info['sh']}; load average at the"
        f" start {' / '.join(str(x) for x in info['loadavg'])}.",
        "",
        "Each figure is the peer's wall time (the whole command, start-up included) over `xargs -P`'s on the"
        " same workload in the same location, measured in the same run: **lower is better**, 1.00 is xargs."
        f" Median of {repeat} interleaved run(s), best run's ratio in parentheses; xargs' own row gives its"
        " seconds.  `> N`: stopped at the timeout, so at least N.",
        "",
    ]
    if document.get("interrupted"):
        out += ["**Interrupted** by hand: the cells that show `not run` were not reached.", ""]
    for location, where in document["locations"].items():
        out += _table(document, location, where)
    out += _noise(document)
    out += ["", "## What ran", ""]
    for w in workloads.values():
        line = f"- **{w['key']}**: {w['title']}"
        if w.get("list_bound_s"):
            line += (
                f"; total work {w['work_s']:.0f} core-s, list-scheduling bound {w['list_bound_s']:.1f} s"
                f" ({w['work_s'] / (w['slots'] * w['list_bound_s']):.0%} of the cores busy, no overhead at all)"
            )
        out.append(line)
    out.append("")
    for name, peer in document["peers"].items():
        if peer.get("problem"):
            out.append(f"- {peer['label']} (`{name}`): {peer['problem']}")
            continue
        out.append(f"- {peer['label']} (`{name}`, {peer['version']}):")
        for key, how in peer["how"].items():
            out.append(f"  - {key}: `{how}`")
    return "\n".join(out) + "\n"


def _table(document: dict, location: str, where: dict) -> list[str]:
    workloads = document["workloads"]
    cells = {(c["peer"], c["workload"]): c for c in document["cells"] if c["location"] == location}
    title = LOCATION_TITLES.get(location, location)
    out = [
        f"## {title}: {where['fs']}",
        "",
        f"Scratch `{where['path']}`; creating one empty file there takes {where['create_us']:.0f} us.",
        "",
        "| peer | " + " | ".join(f"{k}: {w['title']}" for k, w in workloads.items()) + " |",
        "|---|" + "---|" * len(workloads),
    ]
    for name, peer in document["peers"].items():
        if peer.get("problem"):
            out.append(f"| {peer['label']} | {peer['problem']} |" + " |" * (len(workloads) - 1))
            continue
        out.append(f"| {peer['label']} | " + " | ".join(_cell(cells.get((name, k)), name) for k in workloads) + " |")
    bounds = [_bound(w) for w in workloads.values()]
    if any(bounds):
        out.append("| list scheduling, zero overhead (the bound) | " + " | ".join(bounds) + " |")
    for extra in (_python_floor(cells, workloads), _mpiexec_overhead(cells, workloads)):
        if extra:
            out += ["", extra]
    return [*out, "", *_cpu_table(document, cells)]


def _cpu_table(document: dict, cells: dict) -> list[str]:
    """Where each mpilauncher row's time went next to xargs': the CPU its run used (the command and
    everything it waited for: launcher, executors, tasks), and how much CPU time the machine's usable
    CPUs stood idle during it (wall x CPUs - that CPU).  On a CPU-bound workload (W1) a launcher that
    keeps the cores as busy as xargs does but reads slower spends the difference on its own CPU."""
    cpus = document["settings"].get("cpus") or 1
    workloads = document["workloads"]
    rows = []
    for name, peer in document["peers"].items():
        if name != REFERENCE and not name.startswith("mpilauncher"):
            continue
        figures = []
        for key, w in workloads.items():
            cell = cells.get((name, key))
            if not cell or cell["status"] != "ok" or not cell.get("cpu_s"):
                figures.append("")
                continue
            cpu = statistics.median(cell["cpu_s"])
            idle = statistics.median(
                wall * cpus - used for wall, used in zip(cell["wall_s"], cell["cpu_s"], strict=False)
            )
            text = f"{cpu:.2f} / {idle:.2f}"
            xargs = cells.get((REFERENCE, key))
            if name != REFERENCE and xargs and xargs["status"] == "ok" and xargs.get("cpu_s"):
                more = cpu - statistics.median(xargs["cpu_s"])
                text += f" ({more:+.2f} s, {more / w['tasks'] * 1e6:+.0f} us a task)"
            figures.append(text)
        if any(figures):
            rows.append(f"| {peer['label']} | " + " | ".join(figures) + " |")
    if not rows:
        return []
    return [
        f"CPU seconds of each run (the command and all it waited for) / CPU-seconds that the {cpus} usable"
        " CPUs stood idle during it (wall x CPUs - CPU), medians; in parentheses the CPU more than xargs', in all"
        " and a task:",
        "",
        "| peer | " + " | ".join(workloads) + " |",
        "|---|" + "---|" * len(workloads),
        *rows,
        "",
    ]


def _bound(workload: dict) -> str:
    """What a launcher with no overhead at all reaches on W4: greedy list scheduling in file order."""
    bound = workload.get("list_bound_s")
    if not bound:
        return ""
    return f"{bound:.2f} s, {workload['work_s'] / (workload['slots'] * bound):.0%} busy"


def _cell(cell: dict | None, peer: str) -> str:
    if cell is None or (cell["status"] == "ok" and not cell["wall_s"]):
        return "not run"
    if cell["status"] == "timed out":
        bound = f"> {cell['ratio_at_least']:.0f}" if cell.get("ratio_at_least") else "timed out"
        return f"{bound} (stopped at {cell['timeout_s']:.0f} s)"
    if cell["status"] != "ok":
        return f"{cell['status']}: {cell['problem']}"
    if peer == REFERENCE or peer in BASELINES:
        text = f"{cell['median_s']:.2f} s ({cell['best_s']:.2f})"
    else:
        text = f"{cell.get('ratio_median', float('nan')):.2f} ({cell.get('ratio_best', float('nan')):.2f})"
    if cell.get("busy_fraction") is not None:
        text += f", {cell['busy_fraction']:.0%} busy"
    return text


def _python_floor(cells: dict, workloads: dict) -> str:
    """What mpilauncher as one process adds to xargs' wall time, next to the interpreter's start alone:
    the part of that gap any launcher started as ``python -m`` pays before its first task (and the
    ratio it puts under such a launcher: xargs' time plus the start, over xargs')."""
    parts = []
    for key in workloads:
        xargs, alone, start = (cells.get((p, key)) for p in (REFERENCE, "mpilauncher", PYTHON_BASELINE))
        if all(c and c["status"] == "ok" and c["wall_s"] for c in (xargs, alone, start)):
            gap, floor = alone["median_s"] - xargs["median_s"], start["median_s"]
            under = 1 + floor / xargs["median_s"]
            parts.append(f"{key} {gap:+.2f} s (the interpreter alone {floor:.3f} s: {under:.3f})")
    if not parts:
        return ""
    return (
        "mpilauncher as one process minus xargs (medians), next to the interpreter's start alone (`python -c"
        " pass`, this environment's `site`) and the ratio that start alone puts under a launcher run as"
        " `python -m`: " + "; ".join(parts)
    )


def _mpiexec_overhead(cells: dict, workloads: dict) -> str:
    """What mpiexec adds to mpilauncher, next to what it costs to start MPI at all (the issue's target)."""
    parts = []
    for key in workloads:
        alone, under, hello = (cells.get((p, key)) for p in ("mpilauncher", "mpilauncher-mpiexec", MPI_BASELINE))
        if all(c and c["status"] == "ok" for c in (alone, under, hello)):
            parts.append(f"{key} {under['median_s'] - alone['median_s']:+.2f} s (MPI alone {hello['median_s']:.2f} s)")
    if not parts:
        return ""
    return "mpilauncher under mpiexec minus one process (medians), next to mpiexec + MPI_Init alone: " + "; ".join(
        parts
    )


def _noise(document: dict) -> list[str]:
    shares = [s for c in document["cells"] for s in c.get("others", []) if s is not None]
    if not shares:
        return []
    line = (
        f"Other processes used a median {statistics.median(shares):.0%} and at most {max(shares):.0%} of the"
        " CPUs during the runs."
    )
    if max(shares) > NOISY:
        line += " **Noisy**: the figures move between runs; read the medians, and run again on a quiet machine."
    return ["## Noise", "", line, ""]


def plot(document: dict, path: Path) -> str | None:
    """Bars of each peer's ratio to xargs per workload, one panel per location, on a log scale (PyLauncher
    is two orders of magnitude off on W1).  Returns why there is no plot, or None."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return "no plot: matplotlib is not installed (pip install matplotlib)"
    locations = list(document["locations"])
    workloads = list(document["workloads"])
    peers = [n for n, p in document["peers"].items() if n != REFERENCE and n not in BASELINES and not p.get("problem")]
    if not peers:
        return "no plot: no peer besides xargs ran"
    fig, axes = plt.subplots(1, len(locations), figsize=(6.5 * len(locations), 4.8), sharey=True, squeeze=False)
    width = 0.8 / len(peers)
    cells = {(c["location"], c["workload"], c["peer"]): c for c in document["cells"]}
    for ax, location in zip(axes[0], locations, strict=True):
        for i, name in enumerate(peers):
            xs, heights, hatches = [], [], []
            for j, key in enumerate(workloads):
                cell = cells.get((location, key, name), {})
                value = cell.get("ratio_median") or cell.get("ratio_at_least")
                if value:
                    xs.append(j + (i - (len(peers) - 1) / 2) * width)
                    heights.append(value)
                    hatches.append("//" if "ratio_at_least" in cell else "")
            bars = ax.bar(xs, heights, width, label=document["peers"][name]["label"].replace("`", ""))
            ax.bar_label(bars, labels=[f"{h:.2f}" if h < 10 else f"{h:.0f}" for h in heights], fontsize=6, rotation=90)
            for bar, hatch in zip(bars, hatches, strict=True):
                bar.set_hatch(hatch)
        ax.axhline(1.0, color="black", linewidth=0.8)
        ax.set_yscale("log")
        ax.set_xticks(range(len(workloads)), workloads)
        ax.set_title(f"{LOCATION_TITLES.get(location, location)} ({document['locations'][location]['fs'].split()[0]})")
        ax.set_ylabel("wall time / xargs -P (lower is better)")
    axes[0][-1].legend(fontsize="small", loc="upper right")
    fig.suptitle("mpilauncher and its peers (hatched: stopped at the timeout, at least this)", fontsize="medium")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return None
