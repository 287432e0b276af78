"""Slurm's commands as the submitter uses them: sbatch, squeue, scontrol, scancel -- and nothing of sacct.

Why no accounting: it is off on many sites' login nodes (and on the test
cluster); everything here works from the controller's own job records
(``squeue --states=all`` and ``scontrol show job`` know a job until
``MinJobAge`` after its end, 300 s by default) and from the status file each
job writes at its end (see :mod:`.scripts`).

Why one ``squeue`` for all of the submitter's jobs per poll, never one per job:
a login node is shared, and a controller answering a thousand small queries
every few seconds slows every user's ``sbatch``.

Every command runs in a session of its own: a Ctrl-C at the terminal is the
submitter's to act on, and must not kill an ``sbatch`` half-way (a job might be
created whose id nobody learns).
"""

from __future__ import annotations

import os
import re
import subprocess
import time
from collections.abc import Callable, Iterable, Sequence

from mpilauncher.programs import which
from mpilauncher.records import record

#: A job in one of these states is still the submitter's to watch (anything else Slurm shows has ended).
ENDED_STATES = frozenset(
    {"COMPLETED", "FAILED", "CANCELLED", "TIMEOUT", "NODE_FAIL", "PREEMPTED", "BOOT_FAIL", "DEADLINE",
     "OUT_OF_MEMORY", "REVOKED"}
)  # fmt: skip
#: Ended states in which the job script was killed, so it could not write its status.
KILLED_STATES = ENDED_STATES - {"COMPLETED", "FAILED"}
#: sbatch refusals that pass: a submit limit reached (the message names the limit), or a controller
#: too busy to answer.  Deliberately narrow: "Job violates accounting/QOS policy (job submit limit,
#: user's size and/or time limits)" follows every policy refusal, permanent ones included, so only
#: the specific limit names count.
TRANSIENT_REFUSALS = re.compile(
    r"MaxSubmitJob|Socket timed out|Unable to contact slurm controller|temporarily unavailable"
    r"|temporarily unable|Slurm is busy|try again later",
    re.IGNORECASE,
)
#: What sbatch says when no controller answers at all (as opposed to one that is busy or full).
UNREACHABLE = re.compile(r"Unable to contact slurm controller", re.IGNORECASE)
#: Seconds any one Slurm command may take (a controller under load answers within this).
COMMAND_TIMEOUT = 120.0

Runner = Callable[..., subprocess.CompletedProcess]


class SubmitRefused(Exception):
    """sbatch did not take the job: ``reason`` in one line; ``transient`` when trying again later may work."""

    def __init__(self, reason: str, transient: bool) -> None:
        super().__init__(reason)
        self.reason = reason
        self.transient = transient


@record(frozen=True)
class JobState:
    """A job as ``squeue --states=all`` shows it: its state and Slurm's reason (``None`` when there is none)."""

    state: str
    reason: str = "None"

    @property
    def ended(self) -> bool:
        return self.state in ENDED_STATES


@record(frozen=True)
class JobRecord:
    """What ``scontrol show job`` says of an ended job: enough to record a job that left no status."""

    state: str
    reason: str
    exit_code: int  # Popen-style: the script's exit status, or -N when signal N ended it
    start: float | None
    end: float | None
    nodes: str

    def describe(self) -> str:
        return self.state + (f" ({self.reason})" if self.reason not in ("", "None") else "")


def one_line(text: str) -> str:
    """A command's complaint in one line, without sbatch's ``sbatch: error:`` prefixes repeated."""
    words = " ".join(part.strip() for part in text.splitlines() if part.strip())
    return words.replace("sbatch: error: ", "").strip()


class SlurmCommands:
    """The Slurm commands, run with a timeout each; ``run`` is subprocess.run (tests pass a stand-in)."""

    def __init__(self, run: Runner = subprocess.run, timeout: float = COMMAND_TIMEOUT) -> None:
        self._run = run
        self.timeout = timeout

    def _call(self, args: Sequence[str]) -> subprocess.CompletedProcess:
        return self._run(
            list(args), capture_output=True, text=True, timeout=self.timeout, stdin=subprocess.DEVNULL,
            start_new_session=True,
        )  # fmt: skip

    @staticmethod
    def available() -> bool:
        return which("sbatch") is not None

    def submit(self, args: Sequence[str]) -> str:
        """``sbatch --parsable ARGS``: the new job's id; raises :class:`SubmitRefused`."""
        try:
            result = self._call(["sbatch", "--parsable", *args])
        except subprocess.TimeoutExpired:
            raise SubmitRefused(f"sbatch did not answer within {self.timeout:g} s", transient=True) from None
        except OSError as err:
            raise SubmitRefused(f"cannot run sbatch: {err.strerror or err}", transient=False) from None
        if result.returncode != 0:
            why = one_line(result.stderr) or f"exit status {result.returncode}"
            raise SubmitRefused(why, transient=bool(TRANSIENT_REFUSALS.search(why)))
        job = result.stdout.strip().split(";")[0]
        if not job.isdigit():
            raise SubmitRefused(f"sbatch answered {result.stdout.strip()!r}, not a job id", transient=False)
        return job

    def test(self, args: Sequence[str]) -> str | None:
        """``sbatch --test-only ARGS --wrap=true``: why Slurm would refuse such a job, or None if it would not.

        Nothing is submitted.  A submit limit reached now is no reason to refuse (it passes);
        a controller that cannot be contacted at all raises :class:`SubmitRefused`.
        """
        try:
            result = self._call(["sbatch", "--test-only", *args, "--wrap=true"])
        except subprocess.TimeoutExpired:
            return None  # a busy controller: the real submissions will say what is wrong, if anything
        except OSError as err:
            return f"cannot run sbatch: {err.strerror or err}"
        if result.returncode == 0:
            return None
        why = one_line(result.stderr) or f"exit status {result.returncode}"
        if UNREACHABLE.search(why):
            # Before the first submission this is no passing state to wait out
            # silently: the user is told now, with nothing written.
            raise SubmitRefused(why, transient=True)
        return None if TRANSIENT_REFUSALS.search(why) else why

    def states(self, jobs: Iterable[str]) -> dict[str, JobState] | None:
        """Every listed job Slurm still knows, with its state: one ``squeue`` call.

        None when squeue could not answer (the controller is down or busy): then
        nothing may be concluded about any job.  A job missing from the answer is
        unknown to Slurm by now (it ended more than MinJobAge ago).
        """
        ids = sorted(set(jobs), key=int)
        if not ids:
            return {}
        try:
            result = self._call(["squeue", "-h", "--states=all", "-j", ",".join(ids), "-o", "%i|%T|%r"])
        except (subprocess.TimeoutExpired, OSError):
            return None
        if result.returncode != 0:
            # Asked about ids none of which it knows any more, squeue says so and fails.
            return {} if "Invalid job id" in result.stderr else None
        states: dict[str, JobState] = {}
        for line in result.stdout.splitlines():
            fields = line.strip().split("|")
            if len(fields) >= 2 and fields[0] in ids:
                states[fields[0]] = JobState(fields[1], fields[2] if len(fields) > 2 else "None")
        return states

    def find(self, comments: Iterable[str]) -> dict[str, str] | None:
        """This user's jobs whose comment is one of ``comments``: comment -> job id (the newest).

        How a job is found whose ``sbatch`` was under way when the submitter
        was killed: its id was never read, but its comment says whose it is.
        """
        wanted = set(comments)
        if not wanted:
            return {}
        try:
            result = self._call(["squeue", "-h", "--states=all", "-u", str(os.getuid()), "-o", "%i|%k"])
        except (subprocess.TimeoutExpired, OSError):
            return None
        if result.returncode != 0:
            return None
        found: dict[str, str] = {}
        for line in result.stdout.splitlines():
            job, _, comment = line.strip().partition("|")
            if comment in wanted and job.isdigit() and int(job) > int(found.get(comment, "0")):
                found[comment] = job
        return found

    def record(self, job: str) -> JobRecord | None:
        """``scontrol show job``: the state, reason, exit code and times of a job, while Slurm still knows it."""
        try:
            result = self._call(["scontrol", "-o", "show", "job", job])
        except (subprocess.TimeoutExpired, OSError):
            return None
        if result.returncode != 0:
            return None
        fields: dict[str, str] = {}
        for word in result.stdout.split():
            key, eq, value = word.partition("=")
            if eq and key not in fields:
                fields[key] = value
        state = fields.get("JobState", "")
        if not state:
            return None
        return JobRecord(
            state, fields.get("Reason", "None"), exit_code_of(fields.get("ExitCode", "0:0")),
            clock_time(fields.get("StartTime", "")), clock_time(fields.get("EndTime", "")), fields.get("NodeList", ""),
        )  # fmt: skip

    def signal(self, job: str, signum: int) -> None:
        """``scancel --signal`` to every process of a job (its batch script and steps)."""
        try:
            self._call(["scancel", "--full", f"--signal={signum}", job])
        except (subprocess.TimeoutExpired, OSError):
            pass

    def cancel(self, jobs: Iterable[str]) -> str | None:
        """``scancel`` the jobs (one call); what went wrong, if anything."""
        ids = sorted(set(jobs), key=int)
        if not ids:
            return None
        try:
            result = self._call(["scancel", *ids])
        except (subprocess.TimeoutExpired, OSError) as err:
            return str(err)
        if result.returncode == 0:
            return None
        return one_line(result.stderr) or f"scancel exited {result.returncode}"


def exit_code_of(text: str) -> int:
    """Slurm's ``ExitCode=E:S`` (exit status, signal) as Popen's: -S when a signal ended the job, else E."""
    status, _, signum = text.partition(":")
    try:
        return -int(signum) if signum and int(signum) else int(status or 0)
    except ValueError:
        return 0


def clock_time(text: str) -> float | None:
    """Slurm's local ``2026-01-05T12:00:00`` as epoch seconds; None for Unknown, None or garbage."""
    try:
        return time.mktime(time.strptime(text, "%Y-%m-%dT%H:%M:%S"))
    except (ValueError, OverflowError):
        return None
