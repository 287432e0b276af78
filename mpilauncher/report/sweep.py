"""``python -m mpilauncher report``: what a sweep did, in words -- from the joblog and the queuestate.

Pure: it reads rows and records handed to it (:mod:`mpilauncher.commands` finds
and reads the files), so a finished sweep and a running one (its journal
replayed over the snapshot) are reported alike.  The picture of the same facts
is :mod:`mpilauncher.report.plot`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from pathlib import Path

from mpilauncher.core.ledger import COMPLETED, FAILED, QUEUED, RUNNING, Ledger
from mpilauncher.core.ranges import expand
from mpilauncher.core.stats import compute
from mpilauncher.records import field, record
from mpilauncher.report.progress import clock
from mpilauncher.report.summary import final_report

#: Most core ids one joblog cell may name (a node's cores at most).
MOST_CORES = 1 << 16


@record
class Attempt:
    """One run of a task: a joblog line, or a running task of the queuestate (``status`` "running")."""

    task_id: int
    start: float
    end: float
    status: str  # ok, failed, signal, timeout, running
    exit_code: int | None
    attempt: int
    #: (host, core ids) it held; an MPI task over nodes has several.
    slots: list[tuple[str, list[int]]]
    cpu: float | None = None  # user + system CPU seconds
    max_rss: int | None = None  # KiB
    command: str = ""

    @property
    def runtime(self) -> float:
        return self.end - self.start

    @property
    def cores(self) -> int:
        return sum(len(c) for _, c in self.slots) or 1

    @property
    def where(self) -> str:
        return "+".join(f"{host}:{_ranges(core_ids)}" for host, core_ids in self.slots)


@record
class Sweep:
    """A sweep as the report sees it: every attempt, where the sweep stands, the pool of cores."""

    attempts: list[Attempt]
    pool: dict[str, int]
    ledger: Ledger | None = None
    #: "finished", "running" (a launcher holds it) or "stopped" (tasks left, nobody running it).
    state: str = "finished"
    source: str = ""
    notes: list[str] = field(default_factory=list)
    workdir: Path | None = None
    #: The workdirs the sweep wrote into before ``workdir``, oldest first (resumed into a new one).
    earlier_workdirs: list[Path] = field(default_factory=list)
    name: str = "sweep"  # what the plot's title calls it: the commandlines file's name

    @property
    def pool_size(self) -> int:
        return sum(self.pool.values())


def attempts_from_joblog(rows: Iterable[Mapping[str, str]]) -> list[Attempt]:
    """The joblog's lines as attempts (a line that does not parse is skipped: a hand-edited log)."""
    attempts = []
    for row in rows:
        try:
            hosts, cells = row["node"].split("+"), row["cores"].split("+")
            slots = [(h, _core_ids(c)) for h, c in zip(hosts, cells, strict=True)]
            user, system, rss = row.get("user", "-"), row.get("sys", "-"), row.get("maxrss_kib", "-")
            attempts.append(
                Attempt(
                    int(row["id"]),
                    float(row["start"]),
                    float(row["end"]),
                    row["status"],
                    int(row["exit"]),
                    int(row.get("attempt") or 1),
                    slots,
                    float(user) + float(system) if user not in ("-", None) and system not in ("-", None) else None,
                    int(rss) if rss not in ("-", None) else None,
                    row.get("command", ""),
                )  # fmt: skip
            )
        except (KeyError, ValueError, TypeError):
            continue
    return attempts


def _core_ids(cell: str) -> list[int]:
    return expand(cell, largest=MOST_CORES) if cell not in ("", "-") else []


#: The statuses of attempts that have not ended (or not by themselves), and how the report heads them.
CUT_SHORT = {
    "running": "Running now",
    "interrupted": "Interrupted when the sweep stopped",
}


def running_attempts(ledger: Ledger, now: float, status: str = "running") -> list[Attempt]:
    """The tasks the queuestate (journal replayed) says are running, as attempts that end ``now``; of a
    stopped sweep (``status`` "interrupted"), the tasks its stop or its kill cut short."""
    return [
        Attempt(r.id, r.start, max(now, r.start), status, None, 0, [(r.host or "?", list(r.core_ids))],
                command=r.task.command)
        for r in map(ledger.records.__getitem__, ledger.ids_in(RUNNING)) if r.start is not None
    ]  # fmt: skip


def pool_of(attempts: Iterable[Attempt]) -> dict[str, int]:
    """The pool as the attempts show it (highest core id + 1 per node), when the queuestate does not say."""
    pool: dict[str, int] = {}
    for a in attempts:
        for host, core_ids in a.slots:
            pool[host] = max(pool.get(host, 0), max(core_ids, default=0) + 1)
    return pool


# -- figures -------------------------------------------------------------------------------
@record
class Usage:
    """How busy the pool was: the busy curve's area against the pool's, and the tail at the end."""

    first: float  # the sweep's first start (epoch)
    last: float  # its last end (or now)
    busy: float  # core-seconds the tasks held
    last_start: float  # when the last task started: after it, cores only free up
    tail_idle: float  # core-seconds idle from the last start to the end
    #: The time counted: from the first start to the last end, less the time between the sweep's runs
    #: (nobody's idle cores: a resume the next morning read as a night of idle cores, a user walk).
    span: float = 0.0

    @property
    def between_runs(self) -> float:
        return max(0.0, self.last - self.first - self.span)

    def share(self, pool: int) -> float:
        return self.busy / (self.span * pool) if self.span > 0 else 0.0

    def idle(self, pool: int) -> float:
        return max(0.0, self.span * pool - self.busy)


def usage(attempts: list[Attempt], pool: int, ran: float | None = None) -> Usage | None:
    """How busy ``pool`` cores were with ``attempts``; ``ran``: the wall time of the sweep's runs (its
    queuestate's total running time), where known: the time between them is left out of the span."""
    if not attempts:
        return None
    first = min(a.start for a in attempts)
    last = max(a.end for a in attempts)
    busy = sum(a.runtime * a.cores for a in attempts)
    last_start = max(a.start for a in attempts)
    tail_busy = sum((a.end - max(a.start, last_start)) * a.cores for a in attempts if a.end > last_start)
    span = last - first if ran is None else min(last - first, ran)
    return Usage(first, last, busy, last_start, max(0.0, (last - last_start) * pool - tail_busy), span)


def sweep_usage(sweep: Sweep) -> Usage | None:
    """How busy the sweep's pool was (see :func:`usage`), its runs' time from its queuestate where known."""
    ran = sweep.ledger.elapsed_before if sweep.ledger is not None else None
    return usage(sweep.attempts, sweep.pool_size, ran)


def busy_curve(attempts: list[Attempt]) -> tuple[list[float], list[int]]:
    """(times, busy cores from each time on): the step curve of cores held, from starts and ends."""
    changes: dict[float, int] = {}
    for a in attempts:
        changes[a.start] = changes.get(a.start, 0) + a.cores
        changes[a.end] = changes.get(a.end, 0) - a.cores
    times, busy, level = [], [], 0
    for when in sorted(changes):
        level += changes[when]
        times.append(when)
        busy.append(level)
    return times, busy


# -- the text --------------------------------------------------------------------------------
def memory(kib: int | None) -> str:
    if kib is None:
        return "-"
    for unit, size in (("GiB", 1 << 20), ("MiB", 1 << 10)):
        if kib >= size:
            return f"{kib / size:.1f} {unit}"
    return f"{kib} KiB"


def core_time(seconds: float, what: str = "core") -> str:
    """Core-time in the unit that reads best: ``12.3 core-seconds``, ``-minutes``, ``-hours``."""
    for unit, size in (("hours", 3600), ("minutes", 60)):
        if seconds >= 2 * size:
            return f"{seconds / size:.1f} {what}-{unit}"
    return f"{seconds:.1f} {what}-seconds"


def duration(seconds: float) -> str:
    """``12.34s`` under a minute, else ``1:02:03``."""
    return f"{seconds:.2f}s" if seconds < 60 else clock(seconds)


def _ranges(ids: list[int]) -> str:
    from mpilauncher.core.ranges import compress

    return compress(ids, ",") if ids else "-"


def _short(command: str, width: int = 60) -> str:
    command = command.replace("\t", " ")
    return command if len(command) <= width else command[: width - 3] + "..."


def render(
    sweep: Sweep, top: int = 10, tail_lines: int = 5, most_failed: int = 50,
    output_tail: Callable[[int, int], list[str] | None] | None = None,
) -> str:  # fmt: skip
    """The report: where the sweep stands, its statistics, how busy the pool was, the slowest and the
    hungriest tasks, every failed task with the last lines of its output, and what runs now.

    ``output_tail(task_id, lines)``: the last lines of a task's output (None: none found).
    """
    out: list[str] = [f"Sweep: {sweep.source}"]
    ledger = sweep.ledger
    if ledger is not None:
        counts = ledger.counts()
        out.append(
            f"State: {sweep.state}: {len(ledger)} tasks, {counts[COMPLETED]} completed, {counts[FAILED]} failed,"
            f" {counts[RUNNING]} {'interrupted' if sweep.state == 'stopped' else 'running'}, {counts[QUEUED]} queued"
        )
    out += [f"Note: {note}" for note in sweep.notes]
    out.append("")
    if ledger is not None:
        running = sweep.state == "running"  # (a report of a sweep stopped: its state, not why it stopped)
        interrupted = "tasks are left to run" if sweep.state == "stopped" else None
        out.append(final_report(compute(ledger, 0.0, sweep.pool_size), interrupted, running=running).rstrip("\n"))
        out.append("")
    ended = [a for a in sweep.attempts if a.status not in CUT_SHORT]
    use = sweep_usage(sweep)
    if use is not None and sweep.pool_size:
        pool = sweep.pool_size
        until = "now" if sweep.state == "running" else "the last end"
        nodes = f"{len(sweep.pool)} node{'s' if len(sweep.pool) != 1 else ''}"
        gap = use.between_runs
        span = duration(use.span) + (f", {duration(gap)} between its runs left out" if gap >= 0.05 else "")
        out.append(
            f"Cores: {pool} in the pool ({nodes}); busy {use.share(pool):.0%} of the time from the first start to"
            f" {until} ({span}); idle {core_time(use.idle(pool))}"
        )
        tail_so_far = sweep.state == "running" and ledger is not None and ledger.counts()[QUEUED]
        if use.last - use.last_start >= 0.05 and use.idle(pool) >= 0.05 and not tail_so_far:  # (67% of 0.0 ...)
            share = min(1.0, use.tail_idle / use.idle(pool))
            tail = duration(use.last - use.last_start)
            out.append(
                f"Tail: the last task started at +{duration(use.last_start - use.first)}; in the {tail} after it"
                f" {share:.0%} of the idle core-time was spent (put the longest tasks first to shorten it)"
            )
        cpu = [a for a in ended if a.cpu is not None]
        if cpu:
            held = sum(a.runtime * a.cores for a in cpu)
            used = sum(a.cpu for a in cpu)  # type: ignore[misc]
            out.append(
                f"CPU: the tasks used {core_time(used, 'CPU')} of the {core_time(held)} they held ({used / held:.0%})"
                if held > 0
                else "CPU: -"
            )
        out.append("")
    if ended and top:  # (--top 0: no top tables, rather than two empty ones)
        slow = sorted(ended, key=lambda a: a.runtime, reverse=True)[:top]
        out.append(f"Slowest tasks ({len(slow)} of {len(ended)} ended):")
        out.append(f"  {'task':>7} {'runtime':>9} {'cpu s':>9} {'max rss':>10}  {'status':<7} where / command")
        out += [_attempt_line(a) for a in slow]
        out.append("")
        measured = [a for a in ended if a.max_rss is not None]
        if measured:
            hungry = sorted(measured, key=lambda a: a.max_rss, reverse=True)[:top]  # type: ignore[arg-type,return-value]
            out.append(f"Most memory-hungry tasks ({len(hungry)} of {len(measured)} measured):")
            out.append(f"  {'task':>7} {'runtime':>9} {'cpu s':>9} {'max rss':>10}  {'status':<7} where / command")
            out += [_attempt_line(a) for a in hungry]
            out.append("")
    failed_ids = set(ledger.ids_in(FAILED)) if ledger is not None else {a.task_id for a in ended if a.status != "ok"}
    latest: dict[int, Attempt] = {}
    for a in ended:
        if a.task_id in failed_ids and (a.task_id not in latest or a.end >= latest[a.task_id].end):
            latest[a.task_id] = a
    if failed_ids:
        out.append(f"Failed tasks ({len(failed_ids)}):")
        for number, task_id in enumerate(sorted(failed_ids)):
            a = latest.get(task_id)
            if a is None:
                record = ledger.records[task_id] if ledger is not None else None
                code = record.exit_code if record is not None else "?"
                out.append(f"  task {task_id}: exit {code} (no joblog line)")
                continue
            out.append(
                f"  task {task_id}: {a.status}, exit {a.exit_code}, attempt {a.attempt}, {duration(a.runtime)} on"
                f" {a.where}: {_short(a.command, 80)}"
            )
            if output_tail is None or number >= most_failed:
                continue
            lines = output_tail(task_id, tail_lines)
            if lines is None:
                out.append("    (no output found)")
            elif not lines:
                out.append("    (its output is empty)")
            else:
                out += [f"    | {line}" for line in lines]
        if len(failed_ids) > most_failed and output_tail is not None:
            out.append(f"  (the output of the first {most_failed} only: --failed N shows more)")
        out.append("")
    for status, title in CUT_SHORT.items():
        running = [a for a in sweep.attempts if a.status == status]
        if running:
            again = "" if status == "running" else "; a resume runs them again"
            out.append(f"{title} ({len(running)}{again}):")
            for a in sorted(running, key=lambda a: a.start)[:top]:
                # (interrupted: known to have run until the queuestate's last write, not when the stop came)
                ran = f"for {duration(a.runtime)}" if status == "running" else f"ran {duration(a.runtime)} or more"
                out.append(f"  task {a.task_id}: {ran} on {a.where}: {_short(a.command, 80)}")
            if top and len(running) > top:  # (--top 0: the count in the title says it)
                out.append(f"  ... and {len(running) - top} more")
            out.append("")
    return "\n".join(out).rstrip("\n") + "\n"


def _attempt_line(a: Attempt) -> str:
    cpu = f"{a.cpu:.2f}" if a.cpu is not None else "-"
    return (
        f"  {a.task_id:>7} {duration(a.runtime):>9} {cpu:>9} {memory(a.max_rss):>10}  {a.status:<7}"
        f" {a.where}: {_short(a.command)}"
    )
