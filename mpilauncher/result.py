"""What a run reports back to the API and the CLI, on every rank (light: agent ranks import it too)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from mpilauncher.errors import EXIT_OK
from mpilauncher.plural import them
from mpilauncher.records import field, record

if TYPE_CHECKING:
    from mpilauncher.core.stats import Statistics


#: How many failed tasks a run names at its end (the joblog and ``report`` list them all).
FAILED_NAMED = 5
#: The most items of a list that a RunResult's repr shows (more: their count).
SHOWN_ITEMS = 5


@record(frozen=True)
class FailedTask:
    """A failed task as the end of a run names it: its id, its line in the commandlines (0: none, as
    for a generated task) and how it ended (its exit code; negative: killed by that signal; ``timed_out``:
    by its time limit)."""

    task_id: int
    line: int
    exit_code: int | None
    timed_out: bool = False

    def __str__(self) -> str:
        where = f" (line {self.line})" if self.line else ""
        if self.exit_code is None:
            how = "no exit code"
        elif self.timed_out:
            how = "timed out" + (f" (killed by signal {-self.exit_code})" if self.exit_code < 0 else "")
        elif self.exit_code < 0:
            how = f"killed by signal {-self.exit_code}"
        else:
            how = f"exit {self.exit_code}"
        return f"task {self.task_id}{where}: {how}"


@record
class RunResult:
    """What a finished (or stopped) run reports back to the API and the CLI."""

    statistics: Statistics | None  # None on ranks other than 0
    workdir: Path | None
    queuestate: Path | None
    interrupted: str | None
    exit_status: int
    dispatch_latencies: list[float] = field(default_factory=list)
    #: How to run what is left (set by the caller that knows its own words: CLI flag or API call).
    resume_command: str | None = None
    #: The sweep's first failed tasks, by id (at most :data:`FAILED_NAMED`; their count: ``statistics.aborted``).
    failed_tasks: tuple[FailedTask, ...] = ()
    #: The workdir, when tasks failed and its file system was full at the end (their writes may not have fit).
    full_disk: str = ""
    #: The Slurm job submitted to go on with the sweep (``--resubmit``), "" where none was.
    next_job: str = ""

    def __repr__(self) -> str:
        """Every field, a long list as its length: ``print(result)`` showed every task's dispatch latency,
        one float a task (a user walk)."""
        shown = []
        for name in self.__record_repr__:  # type: ignore[attr-defined]
            value = getattr(self, name)
            long = isinstance(value, list) and len(value) > SHOWN_ITEMS
            shown.append(f"{name}=<{len(value)} values>" if long else f"{name}={value!r}")
        return f"RunResult({', '.join(shown)})"

    def how_to_go_on(self, resume: str) -> str:
        """The end of a stopped run's last line: ``resume`` (the caller's words for resuming by hand), or the
        job that goes on with the sweep.  A user walk: with --resubmit the line said to resume by hand,
        which the next job's lock then refused."""
        return f"Slurm job {self.next_job} goes on with it" if self.next_job else resume

    @property
    def ok(self) -> bool:
        return self.exit_status == EXIT_OK

    @property
    def completed(self) -> int:
        """Tasks of the sweep that exited 0 (earlier runs included); 0 on ranks other than 0."""
        return self.statistics.completed if self.statistics else 0

    def failures_text(self, rerun: str) -> str | None:
        """How the run ended for its failed tasks, in one line: which (the first few), where to read
        why, and ``rerun``, the caller's own words for running them again; None when none failed."""
        if self.statistics is None or not self.statistics.aborted:
            return None
        count, named = self.statistics.aborted, self.failed_tasks
        text = f"{count} task{'s' if count != 1 else ''} of the sweep failed"
        if named:
            text += ": " + "; ".join(map(str, named))
            if count > len(named):
                text += f"; and {count - len(named)} more"
        if self.full_disk:
            text += (f". The file system of the workdir ({self.full_disk}) is full: tasks that write there may have"
                     " failed for want of space; free some before running them again")  # fmt: skip
        if self.queuestate is not None:
            their = "its" if count == 1 else "their"
            text += f". Why ({their} output's last lines): python -m mpilauncher report {shell_word(self.queuestate)}"
        return f"{text}; run {them(count)} again: {rerun}"

    @property
    def left(self) -> int:
        """Tasks of the sweep not run to an end yet (queued, or interrupted): what a resume runs."""
        return self.statistics.not_run if self.statistics else 0


def shell_word(path: Path) -> str:
    """``path`` as a shell word, for a command the user is told to run (a name with spaces is quoted)."""
    import shlex

    return shlex.quote(str(path))
