"""The workdir's record of the Slurm jobs a sweep submitted: how the submitter survives its own restart.

One line per event, appended as it happens (``os.write`` on an ``O_APPEND``
file: a ``kill -9`` of the submitter loses nothing written before it)::

    sweep   3f9a0c2e                 the sweep's id: every job's comment and status token carry it
    submit  7   12,13,14   <time>    submission 7 of tasks 12-14 is about to go to sbatch
    job     7   4711                 ...and sbatch answered: it is Slurm job 4711
    done    7   12,13                the ends of tasks 12 and 13 were reported to the launcher
    dropped 7                        cancelled at a stop (--cancel-on-stop): its tasks run again

``submit`` is written *before* sbatch runs, so a job whose sbatch was under
way when the submitter died is still found, by its comment
(``mpilauncher:<sweep>:<submission>``).  On resume, every task whose latest
submission has not reported it (nor been dropped) is *unsettled*: its job is
adopted if it still runs, its status is taken if it ended meanwhile, and it is
submitted again only if no job of it can be found.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

from mpilauncher.core.ranges import compress
from mpilauncher.errors import InputError, LauncherFailure
from mpilauncher.records import field, record

FILE_NAME = "slurm-jobs"
HEADER = "# mpilauncher: the Slurm jobs of this sweep, one event per line (read by --resume; do not edit)\n"


@record
class Entry:
    """One submission: its number, its tasks, its Slurm job once known, the tasks it reported."""

    seq: int
    tasks: tuple[int, ...]
    job: str | None = None
    done: set[int] = field(default_factory=set)
    dropped: bool = False


def token(sweep: str, seq: int) -> str:
    """What marks submission ``seq`` of a sweep: its job's comment and its status line carry it."""
    return f"mpilauncher:{sweep}:{seq}"


def _ids(text: str) -> tuple[int, ...]:
    return tuple(int(part) for part in text.split(",") if part)


class SubmissionRecord:
    """The record file of one workdir; see the module docstring."""

    def __init__(self, path: Path) -> None:
        """Read the record at ``path``, if there is one; nothing is written before :meth:`open`."""
        self.path = path
        self.sweep = ""
        self.entries: dict[int, Entry] = {}
        self._fd = -1
        if path.is_file():
            self._read()

    def open(self) -> None:
        """Start appending (a new record gets the sweep's id first)."""
        fresh = not self.sweep
        if fresh:
            self.sweep = os.urandom(4).hex()
        try:
            self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o644)
        except OSError as err:
            raise LauncherFailure(f"cannot write {self.path}: {err.strerror or err}") from None
        if fresh:
            self._write(HEADER + f"sweep\t{self.sweep}\n")

    def _read(self) -> None:
        for line in self.path.read_text(encoding="utf-8", errors="replace").splitlines():
            words = line.split("\t")
            try:
                kind = words[0]
                if kind == "sweep":
                    self.sweep = words[1]
                elif kind == "submit":
                    seq = int(words[1])
                    self.entries[seq] = Entry(seq, _ids(words[2]))
                elif kind == "job":
                    self.entries[int(words[1])].job = words[2]
                elif kind == "done":
                    self.entries[int(words[1])].done.update(_ids(words[2]))
                elif kind == "dropped":
                    self.entries[int(words[1])].dropped = True
            except (IndexError, ValueError, KeyError):
                continue  # a line cut short by a crash, or not ours

    def _write(self, text: str) -> None:
        try:
            os.write(self._fd, text.encode())
        except OSError as err:
            raise LauncherFailure(f"cannot write {self.path}: {err.strerror or err}") from None

    @property
    def next_seq(self) -> int:
        return max(self.entries, default=0) + 1

    def submitting(self, tasks: tuple[int, ...]) -> Entry:
        entry = Entry(self.next_seq, tasks)
        self.entries[entry.seq] = entry
        self._write(f"submit\t{entry.seq}\t{','.join(map(str, tasks))}\t{time.time():.3f}\n")
        return entry

    def submitted(self, entry: Entry, job: str) -> None:
        entry.job = job
        self._write(f"job\t{entry.seq}\t{job}\n")

    def reported(self, entry: Entry, tasks: list[int]) -> None:
        if tasks:
            entry.done.update(tasks)
            self._write(f"done\t{entry.seq}\t{','.join(map(str, tasks))}\n")

    def dropped(self, entry: Entry) -> None:
        entry.dropped = True
        self._write(f"dropped\t{entry.seq}\n")

    def unsettled(self) -> dict[int, tuple[Entry, tuple[int, ...]]]:
        """Submissions with tasks not reported yet, as seq -> (entry, those tasks): each task's latest only."""
        return self._open(dropped=False)

    def dropped_open(self) -> dict[int, tuple[Entry, tuple[int, ...]]]:
        """The same of the submissions dropped at a stop: a cancelled chunk may have finished some."""
        return self._open(dropped=True)

    def _open(self, dropped: bool) -> dict[int, tuple[Entry, tuple[int, ...]]]:
        latest: dict[int, Entry] = {}
        for seq in sorted(self.entries):
            for task in self.entries[seq].tasks:
                latest[task] = self.entries[seq]
        open_tasks: dict[int, list[int]] = {}
        for task, entry in latest.items():
            if entry.dropped == dropped and task not in entry.done:
                open_tasks.setdefault(entry.seq, []).append(task)
        return {seq: (self.entries[seq], tuple(sorted(tasks))) for seq, tasks in open_tasks.items()}

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1


def describe_tasks(tasks: tuple[int, ...] | list[int]) -> str:
    """``task 5`` or ``tasks 0-3 7``."""
    return f"task {tasks[0]}" if len(tasks) == 1 else f"tasks {compress(sorted(tasks))}"


def check_settled(workdir: str, source: str) -> None:
    """Refuse to go on without this workdir's record while jobs of the sweep may still be queued or running.

    A sweep begun with ``--submit`` and continued without it (or into another
    workdir) would run again the tasks whose jobs still run in Slurm: each twice at once.
    """
    record = SubmissionRecord(Path(workdir) / FILE_NAME) if workdir else None
    unsettled = record.unsettled() if record is not None else {}
    if unsettled:
        jobs = sorted({entry.job or "?" for entry, _ in unsettled.values()})
        raise InputError(
            f"this sweep runs as Slurm jobs (--submit), and {len(jobs)} of them may still be queued or running"
            f" ({' '.join(jobs[:10])}{' ...' if len(jobs) > 10 else ''}): continue it with --submit into its workdir"
            f" {workdir}, which picks them up (a job cancelled meanwhile is recorded as failed)",
            source,
        )
