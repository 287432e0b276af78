"""Submit mode's backend (mpilauncher/submit/) against a stand-in Slurm, no cluster: the agent hands it starts as
the master would, a dict plays the controller, and "running" a job runs its real job script with bash."""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

from mpilauncher.core.ledger import COMPLETED, Ledger
from mpilauncher.core.tasks import CoresSpec, Task
from mpilauncher.errors import InputError, LauncherFailure, OptionError
from mpilauncher.execution import starters
from mpilauncher.persistence.files import atomic_write
from mpilauncher.persistence.queuestate import StateMeta, render
from mpilauncher.protocol import Ended, Setup, StartRequest, StartTasks
from mpilauncher.runtime.agent import Agent
from mpilauncher.submit import Settings, SlurmJobs
from mpilauncher.submit.record import FILE_NAME, SubmissionRecord
from mpilauncher.submit.slurm import ENDED_STATES, JobRecord, JobState, SlurmCommands, SubmitRefused, exit_code_of
from tests.conftest import ROOT, exec_text

QOS = "QOSMaxSubmitJobPerUserLimit Batch job submission failed: Job violates accounting/QOS policy"


class FakeJob:
    def __init__(self, job: str, args: list[str]) -> None:
        self.job, self.args = job, args
        self.script = args[-1]
        self.output = next((a.split("=", 1)[1].replace("%%", "%") for a in args if a.startswith("--output=")), "")
        self.comment = next((a.split("=", 1)[1] for a in args if a.startswith("--comment=")), "")
        self.state, self.exit_code = "PENDING", 0
        self.purged = False


class FakeSlurm:
    """The controller as a dict: ``sbatch`` files a job, a test runs it (its real script) or kills it."""

    def __init__(self) -> None:
        self.jobs: dict[str, FakeJob] = {}
        self.next_id = 100
        self.refusals: list[SubmitRefused] = []
        self.calls: Counter = Counter()
        self.most_alive = 0
        self.refuse_test: str | None = None

    def alive(self) -> list[FakeJob]:
        return [j for j in self.jobs.values() if j.state not in ENDED_STATES]

    def available(self) -> bool:
        return True

    def submit(self, args: list[str]) -> str:
        self.calls["sbatch"] += 1
        if self.refusals:
            raise self.refusals.pop(0)
        job = str(self.next_id)
        self.next_id += 1
        self.jobs[job] = FakeJob(job, list(args))
        self.most_alive = max(self.most_alive, len(self.alive()))
        return job

    def test(self, args: list[str]) -> str | None:
        self.calls["test"] += 1
        return self.refuse_test

    def states(self, jobs) -> dict[str, JobState]:
        self.calls["squeue"] += 1
        return {j: JobState(self.jobs[j].state) for j in jobs if j in self.jobs and not self.jobs[j].purged}

    def find(self, comments) -> dict[str, str]:
        self.calls["squeue"] += 1
        return {j.comment: j.job for j in self.jobs.values() if j.comment in set(comments)}

    def record(self, job: str) -> JobRecord | None:
        fake = self.jobs.get(job)
        if fake is None or fake.purged:
            return None
        return JobRecord(fake.state, "None", fake.exit_code, None, None, "fake1")

    def cancel(self, jobs) -> str | None:
        for job in jobs:
            self.kill(job, "CANCELLED")
        return None

    def signal(self, job: str, signum: int) -> None:
        self.calls["signal"] += 1

    def run(self, job: str, **env: str) -> subprocess.CompletedProcess:
        """Run a job's script to its end, as a compute node would."""
        fake = self.jobs[job]
        fake.state = "RUNNING"
        environ = {k: v for k, v in os.environ.items() if not k.startswith("SLURM")}
        environ.update(SLURM_JOB_ID=job, SLURMD_NODENAME="fake1", PYTHONPATH=str(ROOT), **env)
        with open(fake.output, "w") as out:
            done = subprocess.run(["bash", fake.script], env=environ, stdout=out, stderr=subprocess.STDOUT, timeout=120)
        fake.state = "COMPLETED" if done.returncode == 0 else "FAILED"
        return done

    def kill(self, job: str, state: str, exit_code: int = -15) -> None:
        self.jobs[job].state, self.jobs[job].exit_code = state, exit_code


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def slurm(monkeypatch) -> FakeSlurm:
    # (the fake cluster's own MPI default wires MPI: the real one's scontrol, where there is one, is not asked)
    monkeypatch.setattr(starters, "slurm_mpi_plugin", lambda: None)
    return FakeSlurm()


def submitter(tmp_path: Path, slurm: FakeSlurm, tasks: list[Task], clock: Clock | None = None, said=None,
              **settings) -> tuple[SlurmJobs, Agent]:  # fmt: skip
    """A backend under an agent, configured for ``tmp_path/w`` as the master's Setup does."""
    backend = SlurmJobs(Settings("-t 1", **settings), slurm=slurm, clock=clock or Clock(),
                        say=(said.append if said is not None else lambda text: None))  # fmt: skip
    backend.take(tasks)
    workdir = tmp_path / "w"
    workdir.mkdir(exist_ok=True)
    agent = Agent("slurm", backend.slots, backend=backend)
    agent.handle(Setup(str(workdir), str(tmp_path)))
    return backend, agent


def start(agent: Agent, *tasks: Task) -> None:
    agent.handle(StartTasks(tuple(StartRequest(t.id, t.command, (0,), (), t.line) for t in tasks)))


def ends(agent: Agent) -> list[Ended]:
    report = agent.poll(0)
    return list(report.items) if report is not None else []


def sweep(*commands: str, cores: int = 1) -> list[Task]:
    return [Task(i, command, cores, line=i + 1) for i, command in enumerate(commands)]


def test_one_job_per_task_never_more_than_max_active_and_each_end_from_its_status(tmp_path, slurm):
    tasks = sweep("echo out $PYL_ID $MPILAUNCHER_NCORES $OMP_NUM_THREADS $MPILAUNCHER_NODE", "sleep 0.2; exit 3",
                  "true", "true")  # fmt: skip
    clock = Clock()
    backend, agent = submitter(tmp_path, slurm, tasks, clock, max_active=2)
    start(agent, *tasks)  # more than the cap: the backend holds the rest
    assert slurm.calls["sbatch"] == 2 and len(slurm.alive()) == 2
    first, second = slurm.jobs
    assert ends(agent) == []
    slurm.run(second)
    assert ends(agent) == [], "the status is looked for once a second"
    clock.now += 1
    [failed] = ends(agent)
    assert (failed.task_id, failed.exit_code) == (1, 3) and 0.2 <= failed.runtime < 5
    assert slurm.calls["sbatch"] == 3, "a slot freed: the next task's job"
    slurm.run(first)
    clock.now += 1
    [ok] = ends(agent)
    assert ok.exit_code == 0 and ok.start > 1e9
    assert (tmp_path / "w" / "out0").read_text() == "out 0 1 1 fake1\n"
    assert slurm.most_alive == 2
    for job in list(slurm.jobs)[2:]:
        slurm.run(job)
    clock.now += 1
    assert {e.task_id for e in ends(agent)} == {2, 3}
    assert (tmp_path / "w" / "exec0").read_text().startswith("#!/bin/sh\n# mpilauncher task 0")


def test_a_tasks_cores_reach_its_job_as_one_node_and_n_tasks_and_an_mpi_task_asks_for_its_ranks(tmp_path, slurm):
    tasks = [
        Task(0, "echo $MPILAUNCHER_NCORES $OMP_NUM_THREADS", 4, line=1),
        Task(1, "true", 1, line=2),
        Task(2, "prog PYL_MPIEXEC x", 3, line=3, mpi=True),
        Task(3, "true", 1, whole_node=True, line=4),
    ]
    backend, agent = submitter(tmp_path, slurm, tasks, max_active=4)
    start(agent, *tasks)
    shapes = [job.args[2:-1] for job in slurm.jobs.values()]
    assert shapes == [["-t", "1", "--nodes=1", "--ntasks=4"], ["-t", "1"], ["-t", "1", "--ntasks=3"],
                      ["-t", "1", "--nodes=1", "--exclusive"]]  # fmt: skip
    assert "srun" in Path(slurm.jobs["102"].script).read_text() and "prog srun x" in (tmp_path / "w/exec2").read_text()
    slurm.run("100")
    assert (tmp_path / "w" / "out0").read_text() == "4 4\n"


def test_a_submit_limit_is_waited_out_and_no_task_fails_for_it(tmp_path, slurm):
    said: list[str] = []
    clock = Clock()
    slurm.refusals = [SubmitRefused(QOS, transient=True), SubmitRefused(QOS, transient=True)]
    backend, agent = submitter(tmp_path, slurm, sweep("true", "true"), clock, said, max_active=2, poll_interval=30)
    start(agent, *sweep("true", "true"))
    assert slurm.calls["sbatch"] == 1 and not slurm.jobs, "refused: tried again later, not at once"
    assert ends(agent) == [] and slurm.calls["sbatch"] == 1
    clock.now += 1
    assert ends(agent) == [] and slurm.calls["sbatch"] == 2, "refused again: the wait doubles"
    clock.now += 1
    ends(agent)
    assert slurm.calls["sbatch"] == 2
    clock.now += 1
    assert ends(agent) == [] and len(slurm.jobs) == 2
    assert len(said) == 2 and "QOSMaxSubmitJobPerUserLimit" in said[0] and "not failed" in said[0], said
    assert said[1] == "sbatch takes jobs again"


def test_a_refusal_that_does_not_pass_reports_every_waiting_task_not_started(tmp_path, slurm):
    slurm.refusals = [SubmitRefused("Invalid partition name specified", transient=False)]
    backend, agent = submitter(tmp_path, slurm, sweep("true", "true", "true"), max_active=2)
    start(agent, *sweep("true", "true", "true"))
    ended = ends(agent)
    assert [e.task_id for e in ended] == [0, 1, 2] and all("Invalid partition" in e.not_started for e in ended)
    start(agent, *sweep("true"))
    assert ends(agent)[0].not_started and slurm.calls["sbatch"] == 1, "no sbatch after a refusal that does not pass"


@pytest.mark.parametrize(("state", "exit_code", "timed_out"), [("CANCELLED", -15, False), ("TIMEOUT", -15, True),
                                                                ("NODE_FAIL", -9, False)])  # fmt: skip
def test_a_job_killed_before_writing_its_status_is_failed_with_slurms_reason(tmp_path, slurm, state, exit_code,
                                                                             timed_out):  # fmt: skip
    said: list[str] = []
    clock = Clock()
    backend, agent = submitter(tmp_path, slurm, sweep("sleep 60"), clock, said, poll_interval=5)
    start(agent, *sweep("sleep 60"))
    assert ends(agent) == []
    slurm.kill("100", state, exit_code=0 if state == "NODE_FAIL" else -15)
    clock.now += 1
    assert ends(agent) == [], "squeue is asked every poll interval, not every second"
    clock.now += 5
    [ended] = ends(agent)
    assert (ended.exit_code, ended.timed_out) == (exit_code, timed_out)
    assert said == [f"task 0: Slurm job 100 ended without reporting its status: {state}; recorded as failed"
                    f" (exit {exit_code})"]  # fmt: skip


def test_a_job_slurm_says_completed_gets_a_minute_for_its_status_to_appear(tmp_path, slurm):
    clock = Clock()
    said: list[str] = []
    backend, agent = submitter(tmp_path, slurm, sweep("true"), clock, said, poll_interval=5)
    start(agent, *sweep("true"))
    slurm.kill("100", "COMPLETED", exit_code=0)  # (its status is late: a login node's file system cache)
    for _ in range(12):  # the first poll finds it gone, then 55 s more
        clock.now += 5
        assert ends(agent) == []
    clock.now += 5
    [ended] = ends(agent)
    assert ended.exit_code == 0
    assert "COMPLETED; no status appeared in" in said[0] and "a file system the compute nodes share" in said[0]


def test_one_squeue_a_poll_interval_for_all_the_jobs(tmp_path, slurm):
    clock = Clock()
    tasks = sweep(*["sleep 60"] * 6)
    backend, agent = submitter(tmp_path, slurm, tasks, clock, max_active=6, poll_interval=10)
    start(agent, *tasks)
    for _ in range(100):
        clock.now += 0.5
        ends(agent)
    assert slurm.calls["squeue"] == 5, "50 s: one squeue at the first look, then one every 10 s"


def test_a_restarted_submitter_adopts_its_jobs_instead_of_submitting_them_again(tmp_path, slurm):
    tasks = sweep("echo a", "exit 4", "echo c")
    _, first = submitter(tmp_path, slurm, tasks, max_active=2)
    start(first, *tasks)  # two jobs, then the submitter is killed (nothing stopped, nothing cancelled)
    assert slurm.calls["sbatch"] == 2
    slurm.run("101")  # task 1's job ends while no submitter runs
    said: list[str] = []
    clock = Clock()
    backend, agent = submitter(tmp_path, slurm, tasks, clock, said, max_active=2)
    assert said == ["2 Slurm jobs of the earlier run (100 101) are picked up, not submitted again"]
    start(agent, *tasks)
    [ended] = ends(agent)
    assert (ended.task_id, ended.exit_code) == (1, 4), "ended meanwhile: reported at once, with its status"
    assert slurm.calls["sbatch"] == 3 and slurm.jobs["102"].script.endswith("jobscript2"), "only task 2 is new"
    slurm.run("100")
    clock.now += 1
    assert [e.task_id for e in ends(agent)] == [0]
    record = SubmissionRecord(tmp_path / "w" / FILE_NAME)
    assert sorted(record.unsettled()) == [3], "left: task 2's job, not reported yet"


def test_a_resume_with_another_tasks_per_job_still_reads_the_chunks_of_the_earlier_run(tmp_path, slurm):
    tasks = sweep("true", "exit 2", "true")
    _, first = submitter(tmp_path, slurm, tasks, tasks_per_job=3)
    start(first, *tasks)
    slurm.run("100")  # the chunk ends while no submitter runs
    clock = Clock()
    backend, agent = submitter(tmp_path, slurm, tasks, clock)  # one task per job now
    start(agent, *tasks)
    assert sorted((e.task_id, e.exit_code) for e in ends(agent)) == [(0, 0), (1, 2), (2, 0)]
    assert slurm.calls["sbatch"] == 1


def test_a_job_whose_sbatch_was_under_way_at_a_kill_is_found_by_its_comment(tmp_path, slurm):
    tasks = sweep("true")
    backend, agent = submitter(tmp_path, slurm, tasks)
    record = backend.record
    entry = record.submitting((0,))  # ...and the submitter died before it read sbatch's answer:
    slurm.jobs["100"] = FakeJob("100", [f"--comment=mpilauncher:{record.sweep}:{entry.seq}", "x"])
    backend2, agent2 = submitter(tmp_path, slurm, tasks)
    start(agent2, *tasks)
    assert slurm.calls["sbatch"] == 0, "adopted, not submitted again"
    assert SubmissionRecord(tmp_path / "w" / FILE_NAME).entries[entry.seq].job == "100"
    again = SubmissionRecord(tmp_path / "w" / FILE_NAME)
    again.open()
    lost = again.submitting((0,))  # never made a job: submitted afresh
    submitter(tmp_path, slurm, tasks)
    assert SubmissionRecord(tmp_path / "w" / FILE_NAME).entries[lost.seq].dropped


@pytest.mark.parametrize("cancel", [False, True])
def test_a_stop_leaves_the_jobs_running_and_says_so_or_cancels_them(tmp_path, slurm, cancel):
    said: list[str] = []
    tasks = sweep("sleep 60", "sleep 60", "sleep 60")
    backend, agent = submitter(tmp_path, slurm, tasks, None, said, max_active=2, cancel_on_stop=cancel)
    start(agent, *tasks)
    assert agent.shutdown(2.0) == []
    assert [j.state for j in slurm.jobs.values()] == (["CANCELLED"] * 2 if cancel else ["PENDING"] * 2)
    if cancel:
        assert said == ["cancelled 2 Slurm jobs of this sweep (100 101)"]
        assert SubmissionRecord(tmp_path / "w" / FILE_NAME).unsettled() == {}, "cancelled: run again on resume"
    else:
        assert "2 Slurm jobs of this sweep are still queued or running (100 101): left to run" in said[0]
        assert sorted(SubmissionRecord(tmp_path / "w" / FILE_NAME).unsettled()) == [1, 2]


def test_what_a_chunk_cancelled_at_a_stop_had_finished_is_not_run_again_on_resume(tmp_path, slurm):
    """``--cancel-on-stop`` with ``--tasks-per-job``: the chunk's own launcher had finished some of its
    tasks when the stop cancelled its job; they ran again on resume (found by a user walk: 8 of 8 run
    twice).  A resume now reads the cancelled chunks' queuestates: what they finished is reported, and
    only the rest is submitted."""
    chunk = tmp_path / "w" / "chunk1"
    # (the chunk's launcher by ancestry, not by a pattern: the task's parent is its executor lane, whose
    # parent is the launcher)
    stop_own_launcher = "kill -TERM $(cut -d' ' -f4 /proc/$PPID/stat)"
    tasks = sweep("echo done $PYL_ID", f"sleep 1; {stop_own_launcher}; sleep 30", "sleep 30", "sleep 30")
    backend, agent = submitter(tmp_path, slurm, tasks, None, max_active=2, tasks_per_job=2, cancel_on_stop=True)
    start(agent, *tasks)
    assert slurm.run("100").returncode == 143  # its launcher stopped (as by the job's cancel) after task 0
    (chunk / "status").unlink()  # ...and the stop cancelled the job before its status was looked at:
    slurm.jobs["100"].state = "RUNNING"
    assert agent.shutdown(2.0) == []
    assert [j.state for j in slurm.jobs.values()] == ["CANCELLED", "CANCELLED"]
    clock = Clock()
    backend2, agent2 = submitter(tmp_path, slurm, tasks, clock, max_active=2, tasks_per_job=2, cancel_on_stop=True)
    start(agent2, *tasks)
    assert [(e.task_id, e.exit_code) for e in ends(agent2)] == [(0, 0)], "finished in the cancelled chunk"
    assert (tmp_path / "w" / "out0").read_text() == "done 0\n"
    again = [backend2.record.entries[seq].tasks for seq in sorted(backend2.record.entries)[2:]]
    assert sorted(task for entry in again for task in entry) == [1, 2, 3], "the rest, submitted again"


def test_chunks_run_the_launcher_inside_the_job_and_each_task_is_reported_with_its_own_number(tmp_path, slurm):
    tasks = sweep("echo $PYL_ID > ran$PYL_ID", "exit 7", "true", "echo $PYL_ID", "true")
    clock = Clock()
    backend, agent = submitter(tmp_path, slurm, tasks, clock, max_active=2, tasks_per_job=3)
    start(agent, *tasks)
    assert slurm.calls["sbatch"] == 2
    assert [j.args[1] for j in slurm.jobs.values()] == ["--job-name=chunk1", "--job-name=chunk2"]
    for job in slurm.jobs:
        assert slurm.run(job).returncode in (0, 1)
    clock.now += 1
    ended = {e.task_id: e.exit_code for e in ends(agent)}
    assert ended == {0: 0, 1: 7, 2: 0, 3: 0, 4: 0}
    assert (tmp_path / "ran0").read_text() == "0\n" and (tmp_path / "w" / "out3").read_text() == "3\n"
    assert (tmp_path / "w" / "chunk2" / "launcher.out").read_text().count("Launcherjob run completed.") == 1
    assert (tmp_path / "w" / "exec1").read_text().endswith("exit 7\n"), "the failed task's exec<N> is moved out"
    for task in range(5):  # each task's exec script, as `output WORKDIR N --exec` finds it, chunk or not
        assert exec_text(tmp_path / "w", task).endswith(f"{tasks[task].command}\n"), task


def test_a_chunk_stopped_before_its_time_limit_goes_on_in_a_new_job_with_the_tasks_it_left(tmp_path, slurm):
    tasks = sweep("true", "sleep 30", "sleep 30")
    clock = Clock()
    backend, agent = submitter(tmp_path, slurm, tasks, clock, tasks_per_job=3, time_limit_margin=60, grace=0.5)
    start(agent, *tasks)
    import time

    done = slurm.run("100", SLURM_JOB_END_TIME=f"{time.time() + 62:.0f}")  # the launcher stops ~2 s in
    assert done.returncode == 4, (tmp_path / "w" / "chunk1" / "launcher.out").read_text()
    clock.now += 1
    assert [(e.task_id, e.exit_code) for e in ends(agent)] == [(0, 0)]
    assert slurm.calls["sbatch"] == 2
    queued = (tmp_path / "w" / "chunk2" / "queuestate").read_text()
    assert "\n1 line=2: sleep 30\n2 line=3: sleep 30\n" in queued, "the two it left, in a chunk of their own"


def test_a_chunk_that_finished_nothing_does_not_go_on_forever(tmp_path, slurm):
    said: list[str] = []
    clock = Clock()
    tasks = sweep("sleep 30", "sleep 30")
    backend, agent = submitter(tmp_path, slurm, tasks, clock, said, tasks_per_job=2)
    start(agent, *tasks)
    chunk = tmp_path / "w" / "chunk1"
    (chunk / "status").write_text(f"token=mpilauncher:{backend.record.sweep}:1 job=100 exit=4 start=1 end=2 node=x\n")
    clock.now += 1
    assert [(e.task_id, e.exit_code) for e in ends(agent)] == [(0, -15), (1, -15)]
    assert slurm.calls["sbatch"] == 1 and "did not finish: recorded as failed" in said[-1]


def test_the_chunk_queuestate_is_what_a_resume_reads(tmp_path):
    """The chunk's queuestate is written with the persistence layer's own renderer: its ids, lines and sizes."""
    tasks = [Task(5, "a", 2, line=9), Task(8, "b", 1, whole_node=True, line=12)]
    text = render(Ledger(tasks), StateMeta(cores="1", workdir=str(tmp_path)), CoresSpec("fixed", 1))
    atomic_write(tmp_path / "q", text)
    from mpilauncher.persistence.store import load_state

    ledger = load_state(tmp_path / "q", CoresSpec("fixed", 1)).ledger
    facts = [(r.task.id, r.task.cores, r.task.whole_node, r.task.line) for r in ledger]
    assert facts == [(5, 2, False, 9), (8, 1, True, 12)]
    assert COMPLETED not in {r.state for r in ledger}


def test_the_preflight_names_the_options_or_the_task_slurm_would_refuse(tmp_path, slurm):
    backend = SlurmJobs(Settings("-p nosuch"), slurm=slurm)
    backend.take(sweep("true"))
    slurm.refuse_test = "invalid partition specified: nosuch"
    with pytest.raises(OptionError, match="'-p nosuch': Slurm would refuse the jobs: invalid partition"):
        backend.check("cl")
    wide = SlurmJobs(Settings("-t 1"), slurm=slurm)
    wide.take([Task(0, "true", line=1), Task(1, "true", 64, line=7)])
    calls = []
    slurm.test = lambda args: calls.append(args) or ("Requested node configuration is not available"
                                                     if "--ntasks=64" in args else None)  # fmt: skip
    with pytest.raises(InputError, match=r"^cl:7: Slurm would refuse the job of task 1: Requested node configuration"):
        wide.check("cl")
    assert calls[0] == ["-t", "1"], "the options alone first: a bad partition is theirs, not a task's"


@pytest.mark.parametrize(
    ("stderr", "outcome"),
    [
        ("sbatch: error: Batch job submission failed: Invalid partition name specified", "refused"),
        ("sbatch: error: QOSMaxSubmitJobPerUserLimit", "passes"),
        ("allocation failure: Unable to contact slurm controller (connect failure)", "unreachable"),
    ],
)  # fmt: skip
def test_the_preflight_tells_a_full_queue_from_a_bad_option_and_from_no_controller(stderr, outcome):
    """A limit reached passes (the submissions wait it out); no controller at all is said before anything
    is written, not waited on silently as if it were a limit (CI once sat two minutes on that)."""

    def run(args, **kwargs):
        return subprocess.CompletedProcess(args, 1, "", stderr + "\n")

    slurm_commands = SlurmCommands(run=run)
    backend = SlurmJobs(Settings("-p x"), slurm=slurm_commands)
    backend.take(sweep("true"))
    slurm_commands.available = lambda: True
    if outcome == "refused":
        with pytest.raises(OptionError, match="Invalid partition name"):
            backend.check("cl")
    elif outcome == "passes":
        backend.check("cl")
    else:
        with pytest.raises(LauncherFailure, match=r"^cannot reach Slurm's controller \(allocation failure: Unable"):
            backend.check("cl")


def test_queue_names_the_partition_only_where_the_options_name_none():
    assert Settings("-t 1", partition="normal").options == ["-t", "1", "--partition", "normal"]
    assert Settings("-p debug -t 1", partition="normal").options == ["-p", "debug", "-t", "1"]
    assert Settings("--partition=dev", partition="normal").options == ["--partition=dev"]


@pytest.mark.parametrize(("text", "code"), [("0:0", 0), ("3:0", 3), ("0:15", -15), ("garbage", 0)])
def test_slurms_exit_codes_read_as_popens(text, code):
    assert exit_code_of(text) == code


def test_the_job_script_writes_its_status_even_when_the_directory_is_gone(tmp_path):
    """A task whose directory is not there on the compute node: exit 1, and still a status line."""
    from mpilauncher.submit import scripts

    status = tmp_path / "status0"
    text = scripts.task_script(0, 1, "true", str(tmp_path / "gone"), {"PYL_ID": "0"}, "tok", str(status))
    done = subprocess.run(["bash", "-c", text], capture_output=True, text=True)
    assert done.returncode == 1
    line = scripts.read_status(str(status))
    assert line is not None and (line.token, line.exit) == ("tok", 1)
    assert shlex.quote(str(tmp_path / "gone")) in text and sys.executable not in text
