"""A sweep that needs several allocations finishes by itself: a chain of Slurm jobs.

Jobs end by time limit more often than by finishing, and a resume is one more
job to submit by hand.  Two ways to let one job script serve the first run and
every continuation (the launcher continues an unfinished run of the same
commandlines by itself, see ``rank0.make_plan``):

- ``python -m mpilauncher chain -n K [sbatch options] SCRIPT`` on the login
  node submits K jobs at once (TACC and other centres allow ``sbatch`` only
  there).  Job k may start only once *every* earlier job of the chain ended
  "not ok" (``--dependency=afternotok:j1:...:jk-1``) and is cancelled when that
  can no longer happen (``--kill-on-invalid-dep=yes``): the job that finishes
  the sweep (exit status 0) ends the chain.  Why every earlier job and not just
  the previous one: a job cancelled for a dependency that can never be met
  counts as "not ok" too (measured with Slurm 22.05), so with only the
  previous job the third job of a chain would run after the second was
  cancelled.
- ``--resubmit K`` (``resubmit=K``), where compute nodes may submit: a launcher
  that stops at the time limit with tasks left submits its own continuation,
  the same script with ``--dependency=afterany:<this job>``, up to K jobs in all.

Every job of a chain finds its place in ``MPILAUNCHER_CHAIN=k/K`` (set by the
submitter in the job's environment): the start-up lines and statistics say
which job of the chain this is, and a continuation that finds the sweep already
finished (an earlier job ended with failed tasks, exit status 1, which is "not
ok" as well) runs nothing and exits 0, which ends the chain.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING

from mpilauncher import log
from mpilauncher.core.limits import MAX_CHAIN as MAX_JOBS
from mpilauncher.errors import InputError, LauncherFailure
from mpilauncher.programs import which
from mpilauncher.records import record

if TYPE_CHECKING:  # subprocess loads when a job is submitted: every run asks position(), few submit
    import subprocess

VARIABLE = "MPILAUNCHER_CHAIN"


@record(frozen=True)
class Position:
    """Job ``index`` (from 1) of a chain of at most ``length`` jobs."""

    index: int
    length: int

    def __str__(self) -> str:
        return f"job {self.index} of a chain of at most {self.length}"

    @property
    def continuation(self) -> bool:
        return self.index > 1

    @property
    def last(self) -> bool:
        return self.index >= self.length


def position(environ: Mapping[str, str] | None = None) -> Position | None:
    """This job's place in a chain, from ``MPILAUNCHER_CHAIN=k/K``; None outside a chain (or garbled)."""
    text = (os.environ if environ is None else environ).get(VARIABLE, "")
    match = re.fullmatch(r"\s*(\d{1,3})\s*/\s*(\d{1,3})\s*", text)
    if not match:
        return None
    index, length = int(match.group(1)), int(match.group(2))
    return Position(index, length) if 1 <= index <= length <= MAX_JOBS else None


Runner = Callable[..., "subprocess.CompletedProcess"]


def _subprocess_run(*args, **kwargs) -> subprocess.CompletedProcess:
    import subprocess

    return subprocess.run(*args, **kwargs)


def _sbatch(args: Sequence[str], run: Runner) -> str:
    """``sbatch --parsable ARGS``: the new job's id, or one clear line."""
    if which("sbatch") is None:
        raise LauncherFailure("sbatch not found: submit from a login node of a Slurm cluster")
    import subprocess

    try:
        result = run(["sbatch", "--parsable", *args], capture_output=True, text=True, timeout=120)
    except subprocess.TimeoutExpired:
        raise LauncherFailure("sbatch did not answer within 120 s") from None
    if result.returncode != 0:
        why = " ".join(result.stderr.split()) or f"exit status {result.returncode}"
        if "Unable to open file" in why:  # bad input (a script that is not there), not the launcher's failure
            raise InputError(f"sbatch refused the job: {why}")
        raise LauncherFailure(f"sbatch refused the job: {why}")
    job = result.stdout.strip().split(";")[0]
    if not job.isdigit():
        raise LauncherFailure(f"sbatch answered {result.stdout.strip()!r}, not a job id")
    return job


def submit_chain(length: int, sbatch_args: Sequence[str], run: Runner = _subprocess_run) -> list[str]:
    """Submit ``length`` jobs of the same script (the last of ``sbatch_args``, with its arguments).

    Job k depends on every earlier job having ended not ok (see the module
    docstring).  Returns the job ids in order.
    """
    if not 1 <= length <= MAX_JOBS:
        raise InputError(f"chain -n must be a whole number from 1 to {MAX_JOBS}, not {length}")
    jobs: list[str] = []
    for index in range(1, length + 1):
        extra = [f"--export=ALL,{VARIABLE}={index}/{length}"]
        if jobs:
            extra += [f"--dependency=afternotok:{':'.join(jobs)}", "--kill-on-invalid-dep=yes"]
        jobs.append(_sbatch([*extra, *sbatch_args], run))
    return jobs


def resubmit(here: Position, job: str, run: Runner = _subprocess_run) -> tuple[str, Position]:
    """Submit the continuation of Slurm job ``job`` (this one): its script, after it ends.

    What is carried over from this job: its script and directory, partition,
    account, time limit and node count (``scontrol show job``).  Other options
    given on the ``sbatch`` command line are not: put them in the script's
    ``#SBATCH`` lines.
    """
    fields = _job_fields(job, run)
    script = fields.get("Command", "")
    if not script or not os.path.isfile(script):
        raise LauncherFailure(
            f"cannot resubmit job {job}: its script {script or '?'} is not a file (was it given on stdin?)"
        )
    following = Position(here.index + 1, here.length)
    args = [f"--export=ALL,{VARIABLE}={following.index}/{following.length}",
            f"--dependency=afterany:{job}", "--kill-on-invalid-dep=yes"]  # fmt: skip
    for option, key in (("-D", "WorkDir"), ("-p", "Partition"), ("-A", "Account"), ("-t", "TimeLimit"),
                        ("-N", "NumNodes")):  # fmt: skip
        value = fields.get(key, "")
        if value and value not in ("(null)", "UNLIMITED", "None"):
            args += [option, value.split("-")[0] if key == "NumNodes" else value]
    return _sbatch([*args, script], run), following


def _job_fields(job: str, run: Runner) -> dict[str, str]:
    """``scontrol show job`` as key=value pairs (the job's own record; no accounting needed)."""
    import subprocess

    try:
        result = run(["scontrol", "show", "job", job], capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.SubprocessError) as err:
        raise LauncherFailure(f"cannot ask Slurm about job {job}: {err}") from None
    fields: dict[str, str] = {}
    for word in result.stdout.split():
        key, eq, value = word.partition("=")
        if eq and key not in fields:
            fields[key] = value
    return fields


def main(argv: Sequence[str]) -> int:
    """``python -m mpilauncher chain -n K [sbatch options] SCRIPT [ARGS]``."""
    args = list(argv)
    if not args or args[0] in ("-h", "--help"):
        print(
            "usage: python -m mpilauncher chain -n K [sbatch options] SCRIPT [ARGS]\n\n"
            "Submit K jobs of SCRIPT at once; each runs only if every earlier one stopped with tasks left\n"
            "(time limit, signal); the first to finish the sweep ends the chain.  The script runs the\n"
            "launcher as for a single job: a continuation goes on where the previous job stopped."
        )
        return 0 if args else 2
    length = None
    if args[0] in ("-n", "--jobs") and len(args) > 1:
        length, args = args[1], args[2:]
    elif args[0].startswith(("-n", "--jobs=")):
        length, args = args[0].split("=", 1)[-1] if "=" in args[0] else args[0][2:], args[1:]
    try:
        if length is None or not str(length).isdigit():
            raise InputError(f"chain needs -n K, the number of jobs (1 to {MAX_JOBS}), before the sbatch options")
        if not args:
            raise InputError("chain needs the job script to submit, after the sbatch options")
        jobs = submit_chain(int(length), args)
    except (InputError, LauncherFailure) as err:
        log.error(str(err))
        return err.exit_status
    print(
        f"submitted a chain of {len(jobs)} jobs: {' '.join(jobs)} (each runs only if every earlier one stopped"
        " with tasks left; the first to finish the sweep ends the chain)"
    )
    return 0
