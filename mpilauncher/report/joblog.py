"""The joblog: one tab-separated line per finished task, in the workdir.

It replaces PyLauncher's ``expire<N>`` stamp files: completion times come from
the agents' messages, so nothing is polled on disk.  Its first columns read
like GNU parallel's ``--joblog`` (Seq Host Starttime JobRuntime Exitval Signal),
with where the task ran and what it used added::

    id  node  cores  cpus  gpus  start  end  runtime  exit  status  attempt  user  sys  maxrss_kib  leftovers  command

``cores`` are the core slots the task ran on (``0-3``; an MPI task over several
nodes lists its nodes and slots joined by ``+``), ``cpus`` the CPUs it
was bound to (``-`` when not bound), ``gpus`` the GPU ids it saw (``-``: none);
``status`` is ok, failed, signal (killed by a signal) or timeout (killed at
``--task-timeout``); ``attempt`` counts from 1 (``--retries``); ``start``/``end`` are
seconds since the epoch; ``exit`` is the exit code, negative when a signal
killed the task (``-9``: SIGKILL); ``user``/``sys`` are the CPU seconds (to the microsecond the kernel counts in: a
sweep's tasks of a fraction of a millisecond each, rounded to milliseconds, would sum to
twice their CPU or none of it) and
``maxrss_kib`` the peak resident memory (KiB, of the largest single process) of the
task's process tree as the kernel accounted it when the task was reaped (``wait4``:
it covers every descendant that was waited for, not what the task left running
nor the remote ranks of an MPI task; ``-``: unknown, as for a Slurm job of submit
mode); ``leftovers`` is how many of the task's
processes were still running when its main process ended (all of them were
ended: see execution/leftovers.py), 0 normally.  ``command`` stays last: it
may hold tabs.  Resumed runs append to the same file, in the columns its
header names (a sweep begun by an older version keeps its columns).

Every line is written from one :class:`~mpilauncher.core.events.TaskEnded`
fact (the joblog is an observer of the scheduler: see
:mod:`mpilauncher.core.observer`).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from mpilauncher.core.events import TaskEnded
from mpilauncher.core.nodes import Node
from mpilauncher.core.observer import Observer
from mpilauncher.core.ranges import compress
from mpilauncher.errors import LauncherFailure

COLUMNS = (
    "id", "node", "cores", "cpus", "gpus", "start", "end", "runtime", "exit", "status", "attempt",
    "user", "sys", "maxrss_kib", "leftovers", "command",
)  # fmt: skip
HEADER = "\t".join(COLUMNS) + "\n"
UNKNOWN = "-"


class Joblog(Observer):
    """Appends lines, handed to the OS once per master loop turn; ``nodes`` turns the facts'
    node indices, core ids and GPU indices into host names, bound CPUs and GPU ids."""

    def __init__(self, path: Path, nodes: Mapping[int, Node] | None = None) -> None:
        self.path = path
        self.nodes: Mapping[int, Node] = nodes or {}
        self._pending: list[str] = []
        try:
            new = not path.exists() or path.stat().st_size == 0
            #: Resuming a sweep whose joblog an older version began: its rows keep its columns.
            self._pick = None if new else _picker(_first_line(path))
            self._file = open(path, "a", encoding="utf-8", errors="surrogateescape")
            if new:  # (handed to the OS now, before any task can fill the disk: said here, nothing started)
                self._file.write(HEADER)
                self._file.flush()
        except OSError as err:
            raise LauncherFailure(f"{path}: cannot write joblog: {err.strerror or err}") from None

    def on_ended(self, ended: TaskEnded) -> None:
        start, report = ended.start, ended.report
        node = self.nodes[start.node]
        if len(start.span) > 1:  # an MPI task over nodes: a+b, 0-3+0-1
            where = "+".join(self.nodes[n].name for n, _ in start.span)
            slots = "+".join(compress(cores, ",") for _, cores in start.span)
        else:
            where, slots = node.name, compress(start.core_ids, ",")
        task = start.task
        self.add(
            start.task_id, where, slots, node.cpus_of(start.core_ids), node.gpu_ids_of(start.gpu_indices), report.start,
            report.runtime, report.exit_code, ended.outcome, start.attempt, report.leftovers,
            task.command if task is not None else "", report.cpu_user, report.cpu_system, report.max_rss,
        )  # fmt: skip

    def on_turn_end(self, wall: float, elapsed: float) -> None:
        self.flush()

    def add(
        self,
        task_id: int,
        host: str,
        slots: str,
        cpus: tuple[int, ...],
        gpu_ids: tuple[str, ...],
        start: float,
        runtime: float,
        exit_code: int,
        status: str,
        attempt: int,
        leftovers: int,
        command: str,
        cpu_user: float | None = None,
        cpu_system: float | None = None,
        max_rss: int | None = None,
    ) -> None:
        """One row: ``host`` the node's name and ``slots`` its core ids (``0-3``; an MPI task over
        several nodes: ``a+b`` and ``0-3+0-1``), ``cpus`` the CPU ids it was bound to, ``gpu_ids``
        the ids of its GPUs (the columns node, cores, cpus, gpus)."""
        bound = compress(cpus, ",") if cpus else UNKNOWN
        seen = ",".join(gpu_ids) if gpu_ids else UNKNOWN
        if cpu_user is None:
            usage = "-\t-\t-"
        else:
            usage = f"{cpu_user:.6f}\t{cpu_system:.6f}\t{max_rss if max_rss is not None else UNKNOWN}"
        line = (
            f"{task_id}\t{host}\t{slots}\t{bound}\t{seen}\t{start:.3f}\t{start + runtime:.3f}"
            f"\t{runtime:.3f}\t{exit_code}\t{status}\t{attempt}\t{usage}\t{leftovers}\t{command}\n"
        )
        if self._pick is not None:
            line = self._pick(line)
        self._pending.append(line)

    def flush(self) -> None:
        if not self._pending:
            return
        try:
            self._file.write("".join(self._pending))
            self._file.flush()
        except OSError as err:
            raise LauncherFailure(f"{self.path}: cannot write joblog: {err.strerror or err}") from None
        self._pending.clear()

    def close(self, wall: float = 0.0, elapsed: float = 0.0) -> None:
        if self._file.closed:
            return
        try:
            self.flush()
        finally:
            self._file.close()


def _picker(header: str):
    """For a joblog whose header is not ours (an older version began it): a function turning one of
    our lines into its columns (a column we do not have: ``-``); None if the header is ours."""
    names = header.rstrip("\n").split("\t")
    if tuple(names) == COLUMNS or names[-1:] != ["command"]:
        return None  # ours, or not a joblog header we can follow: write ours
    where = [COLUMNS.index(name) if name in COLUMNS else None for name in names]

    def pick(line: str) -> str:
        values = line.rstrip("\n").split("\t", len(COLUMNS) - 1)  # the command may hold tabs: it stays whole
        return "\t".join(values[i] if i is not None else UNKNOWN for i in where) + "\n"

    return pick


def _first_line(path: Path) -> str:
    with open(path, encoding="utf-8", errors="surrogateescape") as log:
        return log.readline()


def read(path: Path) -> list[dict[str, str]]:
    """The joblog's rows as dicts (for tests and tools)."""
    with open(path, encoding="utf-8", errors="surrogateescape") as log:
        names = log.readline().rstrip("\n").split("\t")
        return [dict(zip(names, line.rstrip("\n").split("\t", len(names) - 1), strict=False)) for line in log]
