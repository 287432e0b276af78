"""The execution backend whose tasks are Slurm jobs (PyLauncher's SubmitLauncher), for the agent.

The agent hands it each task's start as to any backend (see
:mod:`mpilauncher.execution.backend`); the agent's "cores" are the job slots,
``max_active x tasks_per_job``, so the scheduler above keeps exactly as many
tasks in flight as may be.  Here a start becomes a job (or, with several tasks
per job, a place in the next chunk) and an end is learned from the job:

- Submissions.  Starts collect in a queue; they go to ``sbatch`` in order, one
  job per task or ``tasks_per_job`` per job, while fewer than ``max_active`` of
  the sweep's jobs are queued or running -- counted here, from the jobs
  themselves, so that jobs adopted after a restart count too.  A refusal that
  passes (a submit limit reached, a busy controller) leaves the starts queued
  and is tried again after a back-off (1 s, doubling, at most the poll
  interval): such a task is not failed, and one line says so once.  Any other
  refusal is the launcher's failure: every waiting start is reported not
  started (``Ended.not_started``: the master stops dispatching, lets the running
  jobs finish and exits 3; the tasks stay to run).
- Ends.  Each job's status file (see :mod:`.scripts`) is looked for every
  second (one ``stat`` per job in flight); one ``squeue`` for all the sweep's
  jobs every ``poll_interval`` finds those that ended without one (cancelled,
  time limit, node failure): ``scontrol`` says how, and the task is recorded as
  failed with that reason (``timeout`` in the joblog for a time limit).  A job
  that Slurm says completed but whose status has not appeared is given a minute
  (a file system's attribute cache on the login node) before Slurm's own exit
  code is taken.
- Restarts.  Every submission is in the workdir's record (:mod:`.record`).  On
  resume the tasks whose jobs were not reported are *orphans*: a start of one
  is not submitted again but adopted -- reported at once if its job ended
  meanwhile, watched like any job if it still runs.
- Stopping.  :meth:`stop_all` submits nothing more and leaves the jobs queued
  or running (they are the user's allocation requests, not processes of this
  one), saying so in one line; ``cancel_on_stop`` cancels them with ``scancel``.
- Chunks.  With ``tasks_per_job`` > 1 a job runs the launcher over a queuestate
  of its chunk (``chunk<N>/``); its tasks' ends are read from that queuestate,
  their ``out<N>`` and ``exec<N>`` moved into the workdir.  A chunk that
  stopped before its time limit (exit status 4, or 138 at Slurm's
  ``--signal=B:USR1`` warning) with tasks left goes on in a new job of those
  tasks -- unless it finished none, which would loop: then they fail.
"""

from __future__ import annotations

import os
import select
import shlex
import time
from collections import deque
from collections.abc import Callable
from pathlib import Path

from mpilauncher import log
from mpilauncher.core.ledger import COMPLETED, FAILED, Ledger
from mpilauncher.core.tasks import CoresSpec, Task
from mpilauncher.errors import InputError, LauncherError, LauncherFailure, OptionError
from mpilauncher.execution.environment import exec_script
from mpilauncher.execution.gather import EXEC_PREFIX
from mpilauncher.execution.processes import Standbys
from mpilauncher.persistence.files import atomic_write
from mpilauncher.persistence.queuestate import StateMeta, render
from mpilauncher.persistence.store import load_state
from mpilauncher.protocol import Ended, StartRequest
from mpilauncher.records import field, record, replace
from mpilauncher.submit import scripts
from mpilauncher.submit.record import FILE_NAME, Entry, SubmissionRecord, check_settled, describe_tasks, token
from mpilauncher.submit.settings import META_KEY, Settings, job_shape
from mpilauncher.submit.slurm import KILLED_STATES, JobRecord, JobState, SlurmCommands, SubmitRefused

#: Seconds between looks for status files (more jobs in flight: less often, at most one stat per 10 ms).
STATUS_INTERVAL = 1.0
#: Seconds a job that Slurm says ended normally has to make its status file appear.
STATUS_LAG = 60.0
#: Exit statuses of a chunk's launcher that mean "stopped before the job's time limit, tasks left".
STOPPED_FOR_TIME = (4, 128 + 10)
#: How a job that left no status ended, by Slurm's state: the signal that ended its script.
_STATE_SIGNAL = {"NODE_FAIL": -9, "BOOT_FAIL": -9, "OUT_OF_MEMORY": -9}
_DEFAULT_LOST = -15  # CANCELLED, TIMEOUT, PREEMPTED, DEADLINE: Slurm's SIGTERM


@record(eq=False)
class Submission:
    """One job of the sweep, from the moment it was handed to sbatch until its end is known."""

    entry: Entry
    token: str
    status: str  # where its status line appears
    chunk: Path | None = None  # the chunk's directory, for a job of several tasks
    requests: dict[int, StartRequest] = field(default_factory=dict)  # the tasks asked to start
    submitted: float = 0.0  # epoch seconds
    missing_since: float | None = None  # monotonic time squeue first said it had ended (no status yet)

    @property
    def job(self) -> str | None:
        return self.entry.job

    def describe(self) -> str:
        return f"Slurm job {self.job} ({describe_tasks(self.entry.tasks)})"


class SlurmJobs:
    """An :class:`~mpilauncher.execution.backend.ExecutionBackend` that runs tasks as Slurm jobs."""

    def __init__(
        self,
        settings: Settings,
        slurm: SlurmCommands | None = None,
        clock: Callable[[], float] = time.monotonic,
        say: Callable[[str], None] | None = None,
    ) -> None:
        self.settings = settings
        self.slurm = slurm or SlurmCommands()
        self.clock = clock
        self.say = say or _say
        self._standbys = Standbys()
        self.retracted = self._standbys.retracted  # standby tasks taken back, for the next report
        self.workdir: Path | None = None
        self.cwd = os.getcwd()
        self.record: SubmissionRecord | None = None
        self._tasks: dict[int, Task] = {}  # the tasks as the sweep has them (their size), by id
        self._alive: dict[int, Submission] = {}  # submission number -> job not known to have ended
        self._owner: dict[int, Submission] = {}  # task -> the job in flight that runs it
        self._asked: set[int] = set()  # tasks the agent started whose end is not reported yet
        self._results: dict[int, tuple[Submission, Ended]] = {}  # ends of orphans not started (asked) yet
        self._pending: deque[StartRequest] = deque()  # starts not submitted yet
        self._ready: list[tuple[Submission | None, Ended]] = []  # ends for the next wait()
        self._wake_fds: list[int] = []
        self._next_status = 0.0
        self._next_poll = 0.0
        self._retry_at = 0.0
        self._backoff = 0.0
        self._limit_said = False
        self._refused: str | None = None
        self.submissions = 0  # sbatch calls that created a job, this run

    # -- before the run: the plan, the check, the workdir --------------------------------
    @property
    def slots(self) -> int:
        return self.settings.slots

    def take(self, tasks: list[Task]) -> list[Task]:
        """Keep the tasks' real sizes (the jobs' ``-n``); the scheduler gets them as one slot each."""
        for task in tasks:
            self._tasks[task.id] = task
        return [replace(t, cores=1, whole_node=False, mpi=False, gpus=0) for t in tasks]

    def check(self, source: str | None = None) -> None:
        """Before anything is written: sbatch is there and would take such jobs (``sbatch --test-only``).

        The sbatch options alone first (a bad partition is theirs), then each size
        of task the sweep has (one wider than the partition's nodes is that task's
        line: ``source`` is the commandlines file).
        """
        if not self.slurm.available():
            raise InputError(
                "sbatch not found: submitting Slurm jobs (--submit, SubmitLauncher) works where sbatch does, on a"
                " login node of a Slurm cluster"
            )
        options = self.settings.options
        why = self._test(options)
        if why is not None:
            problem = f"{self.settings.sbatch!r}: Slurm would refuse the jobs: {why} (sbatch {shlex.join(options)})"
            raise OptionError("submit", problem)
        if self.settings.chunked:
            return
        shapes: dict[tuple[str, ...], Task] = {}
        for task in self._tasks.values():
            shapes.setdefault(job_shape(task, self.settings.task_timeout), task)
        for shape, task in sorted(shapes.items(), key=lambda item: item[0], reverse=True)[:8]:
            why = self._test([*options, *shape]) if shape else None
            if why is not None:
                asked = shlex.join([*options, *shape])
                raise InputError(f"Slurm would refuse the job of task {task.id}: {why} (sbatch {asked})", source,
                                 task.line or None)  # fmt: skip

    def _test(self, args: list[str]) -> str | None:
        """``sbatch --test-only``; a controller that cannot be reached stops the run before it begins."""
        try:
            return self.slurm.test(args)
        except SubmitRefused as refused:
            raise LauncherFailure(
                f"cannot reach Slurm's controller ({refused.reason}): nothing was submitted or written;"
                " start again when `sinfo` answers"
            ) from None

    def prepare(self, plan, workdir: str | None = None) -> None:
        """rank0.py's hook for a submitted run, once the plan is read and before anything is written.

        ``plan`` is launch's Plan: its tasks become one slot each (their sizes are
        kept here), the submission's settings go into the queuestate (a plain
        ``--resume`` continues in this mode), and sbatch is asked whether it
        would take such jobs.  ``workdir``: the one asked for; a resume into
        another than its own is refused while jobs of the sweep may still run
        (the record of them is in the old one).
        """
        earlier = plan.meta.workdir if plan.resumed_from is not None else ""
        if earlier and workdir and Path(workdir).resolve() != Path(earlier).resolve():
            check_settled(earlier, str(plan.resumed_from))
        plan.to_run = self.take(plan.to_run)
        plan.meta.extra[META_KEY] = self.settings.to_meta()
        self.check(plan.meta.commandlines or str(plan.resumed_from or ""))
        plan.notes.append(self.settings.describe())

    def configure(self, workdir: str, cwd: str) -> None:
        """The run's workdir is known (the agent's Setup): read its record, adopt the jobs of an earlier run."""
        self.workdir, self.cwd = Path(workdir), cwd
        self.record = SubmissionRecord(self.workdir / FILE_NAME)
        self.record.open()
        self._adopt()

    def _adopt(self) -> None:
        self._credit_cancelled_chunks()
        record = self.record
        unsettled = record.unsettled()
        if not unsettled:
            return
        unknown = {token(record.sweep, seq): entry for seq, (entry, _) in unsettled.items() if entry.job is None}
        found = self.slurm.find(unknown) if unknown else {}
        if found is None:
            raise LauncherError("squeue did not answer: cannot tell which jobs of the earlier run still exist;"
                                " resume again in a moment")  # fmt: skip
        adopted = []
        for seq, (entry, tasks) in sorted(unsettled.items()):
            # (a chunk's job by its directory: this run may have another --tasks-per-job)
            submission = self._submission(entry, chunked=(self.workdir / f"chunk{seq}").is_dir())
            if entry.job is None:
                job = found.get(submission.token)
                status = scripts.read_status(submission.status)
                if job is None and status is not None and status.token == submission.token:
                    job = status.job
                if job is None:  # its sbatch never made a job: the tasks are submitted afresh
                    record.dropped(entry)
                    continue
                record.submitted(entry, job)
            self._alive[seq] = submission
            for task in tasks:
                self._owner[task] = submission
            adopted.append(entry.job)
        if adopted:
            self.say(
                f"{len(adopted)} Slurm job{'s' if len(adopted) != 1 else ''} of the earlier run"
                f" ({' '.join(adopted)}) are picked up, not submitted again"
            )

    def _submission(self, entry: Entry, chunked: bool) -> Submission:
        tok = token(self.record.sweep, entry.seq)
        if chunked:
            chunk = self.workdir / f"chunk{entry.seq}"
            return Submission(entry, tok, str(chunk / "status"), chunk)
        return Submission(entry, tok, str(self.workdir / f"status{entry.tasks[0]}"))

    # -- the backend interface --------------------------------------------------------------
    def start(self, request: StartRequest) -> None:
        """Queue a task for submission, or adopt the job an earlier run submitted for it."""
        if request.after is not None and request.after in self._asked:
            self._standbys.hold(request)
            return None
        task_id = request.task_id
        request = request._replace(after=None)
        self._asked.add(task_id)
        if self._refused is not None:
            self._ready.append((None, Ended(task_id, 127, time.time(), 0.0, not_started=self._refused)))
            return None
        if task_id in self._results:
            self._ready.append(self._results.pop(task_id))
            return None
        owner = self._owner.get(task_id)
        if owner is not None:
            owner.requests[task_id] = request
            return None
        self._pending.append(request)
        return None

    def flush(self) -> None:
        """Submit what waits, as far as the cap allows."""
        self._submit_pending()

    def retract(self, task_id: int) -> bool:
        return self._standbys.retract(task_id)

    def signal(self, task_id: int, signum: int) -> None:
        """Signal a task's job (``scancel --signal``); the tasks of a chunk can only be signalled all at once."""
        owner = self._owner.get(task_id)
        if owner is not None and owner.job is not None and task_id in self._asked:
            self.slurm.signal(owner.job, signum)

    def wait(self, timeout: float | None) -> list[Ended]:
        """Tasks whose jobs ended, waiting up to ``timeout`` s for the next look (a wake fd ends it early)."""
        if not self._ready:
            self._sleep(timeout)
        self._look()
        return self._take_ready()

    def stop_all(self, grace: float) -> list[Ended]:
        """Submit nothing more; leave the jobs queued or running (or cancel them), saying which."""
        self._standbys.clear()
        self._pending.clear()  # never submitted: they run on resume
        self._check_statuses()
        ended = self._take_ready()
        jobs = [s for s in self._alive.values() if s.job is not None]
        if not jobs:
            return ended
        ids = " ".join(s.job for s in jobs)
        if self.settings.cancel_on_stop:
            trouble = self.slurm.cancel(s.job for s in jobs)
            if trouble is None:  # (not dropped otherwise: a resume must find them, not submit them again)
                for submission in jobs:
                    self.record.dropped(submission.entry)
                self.say(f"cancelled {len(jobs)} Slurm job{'s' if len(jobs) != 1 else ''} of this sweep ({ids})")
            else:
                self.say(f"could not cancel the Slurm jobs of this sweep ({ids}): {trouble}; a resume picks them up")
        else:
            many = len(jobs) != 1
            self.say(
                f"{len(jobs)} Slurm job{'s' if many else ''} of this sweep {'are' if many else 'is'} still queued or"
                f" running ({ids}): left to run; a resume picks up their results without submitting them again"
                " (--cancel-on-stop cancels them at a stop)"
            )
        self._alive.clear()
        self._owner.clear()
        return ended

    def add_wake_fd(self, fd: int) -> None:
        self._wake_fds.append(fd)

    def close(self) -> None:
        """Nothing to stop: the jobs are Slurm's (see :meth:`stop_all`)."""
        if self.record is not None:
            self.record.close()

    # -- submitting --------------------------------------------------------------------------
    def _submit_pending(self) -> None:
        now = self.clock()
        while self._pending and self._refused is None and len(self._alive) < self.settings.max_active:
            if now < self._retry_at:
                return
            batch = [self._pending.popleft() for _ in range(min(self.settings.tasks_per_job, len(self._pending)))]
            try:
                self._submit(batch)
            except SubmitRefused as refused:
                if not refused.transient:
                    self._refuse(refused.reason, batch)
                    return
                self._pending.extendleft(reversed(batch))
                self._backoff = min(max(1.0, 2 * self._backoff), max(1.0, self.settings.poll_interval))
                self._retry_at = now + self._backoff
                if not self._limit_said:
                    self._limit_said = True
                    self.say(
                        f"sbatch does not take more jobs now ({refused.reason}): {len(self._pending)} tasks wait,"
                        " submitted as soon as it does (they are not failed)"
                    )
                return
            if self._limit_said:
                self._limit_said = False
                self.say("sbatch takes jobs again")
            self._backoff = 0.0

    def _refuse(self, reason: str, batch: list[StartRequest]) -> None:
        """A refusal that does not pass: every waiting start is reported not started (the master stops)."""
        self._refused = f"sbatch refused a job ({describe_tasks([r.task_id for r in batch])}): {reason}"
        for request in [*batch, *self._pending]:
            self._ready.append((None, Ended(request.task_id, 127, time.time(), 0.0, not_started=self._refused)))
        self._pending.clear()

    def _submit(self, batch: list[StartRequest]) -> None:
        entry = self.record.submitting(tuple(r.task_id for r in batch))
        submission = self._submission(entry, self.settings.chunked)
        submission.requests = {r.task_id: r for r in batch}
        try:
            args = self._chunk_job(submission, batch) if self.settings.chunked else self._task_job(submission, batch[0])
            job = self.slurm.submit([f"--comment={submission.token}", *args])
        except (SubmitRefused, OSError) as err:
            self.record.dropped(entry)
            if isinstance(err, OSError):
                raise SubmitRefused(f"cannot write the job's files: {err.strerror or err}", transient=False) from None
            raise
        self.record.submitted(entry, job)
        self.submissions += 1
        submission.submitted = time.time()
        self._alive[entry.seq] = submission
        for request in batch:
            self._owner[request.task_id] = submission

    def _task_job(self, submission: Submission, request: StartRequest) -> list[str]:
        """One task, one job: its script and exec<N>, and its sbatch arguments."""
        task = self._tasks.get(request.task_id) or Task(request.task_id, request.command)
        variables = dict(request.env_changes or {})
        managed_omp = "OMP_NUM_THREADS" in variables
        for name in scripts.JOB_OWNED:
            variables.pop(name, None)
        cores = 1 if task.mpi else task.cores
        if not task.whole_node:
            variables["MPILAUNCHER_NCORES"] = str(task.cores)
            if managed_omp:
                variables["OMP_NUM_THREADS"] = str(cores)
        starter = scripts.mpi_starter() if task.mpi else None
        workdir = self.workdir
        script = workdir / f"jobscript{task.id}"
        text = scripts.task_script(
            task.id, request.line, request.command, self.cwd, variables, submission.token, submission.status, starter,
            whole_node=task.whole_node, managed_omp=managed_omp,
        )  # fmt: skip
        script.write_text(text)
        command = scripts.with_starter(request.command, starter) if starter else request.command
        exported = {k: v for k, v in variables.items() if v is not None}
        (workdir / f"exec{task.id}").write_text(
            exec_script(command, self.cwd, exported, cores, task.whole_node or not managed_omp, request.line)
        )
        output = request.output or str(workdir / f"out{task.id}")
        shape = job_shape(task, request.timeout)
        return [f"--output={_literal(output)}", *self.settings.options, *shape, str(script)]

    def _chunk_job(self, submission: Submission, batch: list[StartRequest]) -> list[str]:
        """Several tasks, one job: the chunk's queuestate and script, and its sbatch arguments."""
        chunk = submission.chunk
        chunk.mkdir(exist_ok=True)
        tasks = [self._tasks.get(r.task_id) or Task(r.task_id, r.command, line=r.line) for r in batch]
        meta = StateMeta(cores="1", workdir=str(chunk))
        if any(t.mpi for t in tasks):
            meta.extra["mpi"] = True
        queuestate = chunk / "queuestate"
        atomic_write(queuestate, render(Ledger(tasks), meta, CoresSpec("fixed", 1)))
        script = chunk / "jobscript"
        ids = describe_tasks([t.id for t in tasks]).split(" ", 1)[1]
        script.write_text(scripts.chunk_script(ids, str(queuestate), self.cwd, submission.token, submission.status,
                                               self.settings.inner_options))  # fmt: skip
        return [f"--job-name=chunk{submission.entry.seq}", f"--output={_literal(str(chunk / 'launcher.out'))}",
                *self.settings.options, str(script)]  # fmt: skip

    # -- watching ------------------------------------------------------------------------------
    def _sleep(self, timeout: float | None) -> None:
        now = self.clock()
        due = []
        if self._alive:
            due += [self._next_status, self._next_poll]
        if self._pending and self._retry_at > now and len(self._alive) < self.settings.max_active:
            due.append(self._retry_at)
        wait = 86_400.0 if timeout is None else timeout
        if due:
            wait = min(wait, max(0.0, min(due) - now))
        if wait <= 0:
            return
        if not self._wake_fds:
            time.sleep(wait)
            return
        readable, _, _ = select.select(self._wake_fds, [], [], wait)
        for fd in readable:
            try:
                os.read(fd, 4096)
            except OSError:
                pass

    def _look(self) -> None:
        now = self.clock()
        if self._alive and now >= self._next_status:
            self._check_statuses()
            self._next_status = now + min(self.settings.poll_interval, max(STATUS_INTERVAL, len(self._alive) / 100))
        if self._alive and now >= self._next_poll:
            self._poll_queue(now)
            self._next_poll = now + self.settings.poll_interval
        if self._pending:
            self._submit_pending()

    def _check_statuses(self) -> None:
        for submission in list(self._alive.values()):
            status = scripts.read_status(submission.status)
            if status is not None and status.token == submission.token:
                self._settle(submission, status)

    def _poll_queue(self, now: float) -> None:
        """One squeue for every job in flight: which ended without a status."""
        jobs = {s.job: s for s in self._alive.values() if s.job is not None}
        states = self.slurm.states(jobs)
        if states is None:
            return  # squeue did not answer: nothing can be concluded this time
        for job, submission in jobs.items():
            state = states.get(job)
            if state is not None and not state.ended:
                submission.missing_since = None
                continue
            status = scripts.read_status(submission.status)
            if status is not None and status.token == submission.token:
                self._settle(submission, status)
            elif state is not None and state.state in KILLED_STATES:
                self._settle_lost(submission, state)
            elif submission.missing_since is None:
                submission.missing_since = now
            elif now - submission.missing_since >= STATUS_LAG:
                self._settle_lost(submission, state, late=True)

    # -- ends --------------------------------------------------------------------------------
    def _settle(self, submission: Submission, status: scripts.Status) -> None:
        """A job wrote its status: its tasks' ends."""
        if submission.chunk is None:
            task = submission.entry.tasks[0]
            self._finish(submission, [Ended(task, status.exit, status.start, status.runtime)])
            return
        if status.exit in STOPPED_FOR_TIME:
            why = f"its launcher stopped before the job's time limit (exit {status.exit})"
            self._finish_chunk(submission, None, why, go_on=True, start=status.start, end=status.end)
        else:
            exit_code = status.exit if status.exit < 128 else 128 - status.exit
            self._finish_chunk(submission, exit_code, f"its launcher exited {status.exit}", go_on=False,
                               start=status.start, end=status.end)  # fmt: skip

    def _settle_lost(self, submission: Submission, state: JobState | None, late: bool = False) -> None:
        """A job ended without a status: how, as Slurm says; its tasks are failed with that reason.

        ``late``: Slurm did not say it was killed, yet no status appeared within STATUS_LAG.
        """
        record = self.slurm.record(submission.job)
        why = record.describe() if record else (state.state if state else "unknown to Slurm by now")
        if late:
            why += (f"; no status appeared in {Path(submission.status).parent} within {STATUS_LAG:g} s (is it on a"
                    " file system the compute nodes share?)")  # fmt: skip
        exit_code = _lost_exit(record, state)
        start = (record.start if record and record.start else None) or submission.submitted or time.time()
        end = (record.end if record and record.end else None) or time.time()
        timed_out = (record.state if record else state.state if state else "") == "TIMEOUT"
        if submission.chunk is not None:
            self._finish_chunk(submission, exit_code, f"the job ended: {why}", go_on=False, start=start, end=end)
            return
        task = submission.entry.tasks[0]
        verdict = f"recorded as failed (exit {exit_code})" if exit_code else "recorded as completed (Slurm's exit code)"
        self.say(f"task {task}: Slurm job {submission.job} ended without reporting its status: {why}; {verdict}")
        self._finish(submission, [Ended(task, exit_code, start, max(0.0, end - start), timed_out)])

    def _finish_chunk(
        self, submission: Submission, exit_code: int | None, why: str, *, go_on: bool, start: float, end: float
    ) -> None:
        """A chunk's job ended: each task as the chunk's queuestate has it; the rest go on or fail."""
        ended, left = self._chunk_ends(submission, submission.entry.tasks, start)
        if left and go_on and ended:
            self.say(f"{submission.describe()}: {why}; {describe_tasks(left)} go on in a new job")
            again = []
            for task in left:
                if self._owner.get(task) is submission:
                    del self._owner[task]
                request = submission.requests.get(task)
                if request is not None and task in self._asked:
                    again.append(request)
            self._pending.extendleft(reversed(again))  # before later tasks: file order
        elif left:
            code = exit_code if exit_code else _DEFAULT_LOST
            self.say(f"{submission.describe()}: {why}; {describe_tasks(left)} did not finish: recorded as failed"
                     f" (exit {code})")  # fmt: skip
            ended += [Ended(task, code, start, max(0.0, end - start)) for task in left]
        self._finish(submission, ended)

    def _chunk_ends(
        self, submission: Submission, tasks: tuple[int, ...], start: float
    ) -> tuple[list[Ended], list[int]]:
        """The ends of ``tasks`` that the chunk's own queuestate (and journal) records, their ``out<N>`` and
        ``exec<N>`` moved into the workdir; and those of them it did not finish (nor reported before)."""
        chunk = submission.chunk
        try:
            ledger = load_state(chunk / "queuestate", CoresSpec("fixed", 1)).ledger
        except LauncherError:
            ledger = None
        ended: list[Ended] = []
        left: list[int] = []
        for task in tasks:
            rec = ledger.records.get(task) if ledger is not None else None
            if rec is not None and rec.state in (COMPLETED, FAILED):
                ended.append(Ended(task, rec.exit_code, rec.start or start, rec.runtime or 0.0))
                for name in (f"out{task}", f"exec{task}"):
                    try:
                        os.replace(chunk / name, self.workdir / name)
                    except OSError:
                        pass
            elif task not in submission.entry.done:
                left.append(task)
        self._adopt_exec_records(chunk)
        return ended, left

    def _credit_cancelled_chunks(self) -> None:
        """What the chunks cancelled at a stop (``--cancel-on-stop``) finished before their cancel: reported
        when a resume asks for those tasks, not run again.  Read here, at the resume, when the chunks'
        launchers have written their last (a task they were still running runs again)."""
        for seq, (entry, tasks) in sorted(self.record.dropped_open().items()):
            if not (self.workdir / f"chunk{seq}").is_dir():
                continue
            submission = self._submission(entry, chunked=True)
            ended, _ = self._chunk_ends(submission, tasks, submission.submitted or time.time())
            self._finish(submission, ended)

    def _adopt_exec_records(self, chunk: Path) -> None:
        """Move the chunk's ``exec.<node>.<lane>`` files into the workdir as ``exec.<chunk>.<node>.<lane>``:
        the exec scripts of its tasks that left no ``exec<N>`` (they succeeded within 10 s), which
        ``output WORKDIR N --exec`` reads there."""
        try:
            names = [n for n in os.listdir(chunk) if n.startswith(EXEC_PREFIX)]
        except OSError:
            return
        for name in names:
            try:
                os.replace(chunk / name, self.workdir / f"{EXEC_PREFIX}{chunk.name}.{name[len(EXEC_PREFIX) :]}")
            except OSError:
                pass  # a convenience: the records stay in the chunk's folder

    def _finish(self, submission: Submission, ended: list[Ended]) -> None:
        self._alive.pop(submission.entry.seq, None)
        for end in ended:
            task = end.task_id
            if self._owner.get(task) is submission:
                del self._owner[task]
            if task in submission.entry.done:
                continue
            if task in self._asked:
                self._ready.append((submission, end))
            else:
                self._results[task] = (submission, end)

    def _take_ready(self) -> list[Ended]:
        """The ends to report now, written to the record as reported; standbys behind them are started."""
        ready, self._ready = self._ready, []
        ended: list[Ended] = []
        reported: dict[int, tuple[Submission, list[int]]] = {}
        followers = []
        for submission, end in ready:
            ended.append(end)
            self._asked.discard(end.task_id)
            if submission is not None:
                reported.setdefault(id(submission), (submission, []))[1].append(end.task_id)
            follower = self._standbys.follower(end.task_id)
            if follower is not None:
                followers.append(follower)
        for submission, tasks in reported.values():
            self.record.reported(submission.entry, tasks)
        for follower in followers:
            self.start(follower)
        if followers:
            self._submit_pending()
        return ended


def _lost_exit(record: JobRecord | None, state: JobState | None) -> int:
    """The exit code of a job that left no status: Slurm's, else the signal its state implies."""
    name = record.state if record else (state.state if state else "")
    if record is not None and (record.exit_code != 0 or name == "COMPLETED"):
        return record.exit_code
    return _STATE_SIGNAL.get(name, _DEFAULT_LOST)


def _literal(path: str) -> str:
    """A path for sbatch's ``--output``, whose ``%`` patterns (``%j``) must not touch it."""
    return path.replace("%", "%%")


def _say(text: str) -> None:
    log.info(text)
