"""The joblog: one tab-separated line per finished task, in the workdir.

It replaces PyLauncher's ``expire<N>`` stamp files: completion times come from
the agents' messages, so nothing is polled on disk.  Columns::

    id  node  cores  cpus  gpus  start  end  runtime  exit  status  attempt  leftovers  command

``cores`` are the core slots the task ran on (``0-3``; an MPI task over several
nodes lists its nodes and slots joined by ``+``), ``cpus`` the CPUs it
was bound to (``-`` when not bound), ``gpus`` the GPU ids it saw (``-``: none);
``status`` is ok, failed, signal (killed by a signal) or timeout (killed at
``--task-timeout``); ``attempt`` counts from 1 (``--retries``); ``start``/``end`` are
seconds since the epoch; ``exit`` is the exit code, negative when a signal
killed the task (``-9``: SIGKILL); ``leftovers`` is how many of the task's
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

HEADER = "id\tnode\tcores\tcpus\tgpus\tstart\tend\truntime\texit\tstatus\tattempt\tleftovers\tcommand\n"


class Joblog(Observer):
    """Appends lines, handed to the OS once per master loop turn; ``nodes`` turns the facts'
    node indices, core ids and GPU indices into host names, bound CPUs and GPU ids."""

    def __init__(self, path: Path, nodes: Mapping[int, Node] | None = None) -> None:
        self.path = path
        self.nodes: Mapping[int, Node] = nodes or {}
        self._pending: list[str] = []
        try:
            new = not path.exists() or path.stat().st_size == 0
            #: Resuming a sweep whose joblog predates the leftovers column: its rows keep their shape.
            self._leftovers = new or "\tleftovers\t" in _first_line(path)
            self._file = open(path, "a", encoding="utf-8", errors="surrogateescape")
            if new:
                self._file.write(HEADER)
        except OSError as err:
            raise LauncherFailure(f"{path}: cannot write joblog: {err.strerror or err}") from None

    def on_ended(self, ended: TaskEnded) -> None:
        start, report = ended.start, ended.report
        node = self.nodes[start.node]
        if len(start.span) > 1:  # an MPI task over nodes: a+b, 0-3+0-1
            where = "+".join(self.nodes[n].name for n, _ in start.span)
            slots = "+".join(compress(cores, ",") for _, cores in start.span)
        else:
            where, slots = node.name, compress(start.cores, ",")
        task = start.task
        self.add(
            start.task_id, where, slots, node.cpus_of(start.cores), node.gpu_ids_of(start.gpus), report.start,
            report.runtime, report.exit_code, ended.outcome, start.attempt, report.leftovers,
            task.command if task is not None else "",
        )  # fmt: skip

    def on_turn_end(self, wall: float, elapsed: float) -> None:
        self.flush()

    def add(
        self,
        task_id: int,
        node: str,
        cores: str,
        cpus: tuple[int, ...],
        gpus: tuple[str, ...],
        start: float,
        runtime: float,
        exit_code: int,
        status: str,
        attempt: int,
        leftovers: int,
        command: str,
    ) -> None:
        bound = compress(cpus, ",") if cpus else "-"
        seen = ",".join(gpus) if gpus else "-"
        left = f"\t{leftovers}" if self._leftovers else ""
        self._pending.append(
            f"{task_id}\t{node}\t{cores}\t{bound}\t{seen}\t{start:.3f}\t{start + runtime:.3f}"
            f"\t{runtime:.3f}\t{exit_code}\t{status}\t{attempt}{left}\t{command}\n"
        )

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


def _first_line(path: Path) -> str:
    with open(path, encoding="utf-8", errors="surrogateescape") as log:
        return log.readline()


def read(path: Path) -> list[dict[str, str]]:
    """The joblog's rows as dicts (for tests and tools)."""
    with open(path, encoding="utf-8", errors="surrogateescape") as log:
        names = log.readline().rstrip("\n").split("\t")
        return [dict(zip(names, line.rstrip("\n").split("\t", len(names) - 1), strict=False)) for line in log]
