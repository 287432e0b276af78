"""Bad nodes: a node on which tasks fail at once, again and again, while the same kind of tasks succeed
elsewhere, is suspected, proven and taken out of use; its tasks run elsewhere without using up retries.

Most tests drive the core with a small discrete-event loop (:func:`drive`): every node "runs" a task by
noting when it ends and how (a function of the task, the node and the attempt), standbys start behind
their predecessors as a node starts them, and every burst goes through ``handle`` with the invariants
checked.  The facts that come out are what the tests read.
"""

from __future__ import annotations

import heapq
import random
from collections.abc import Callable
from dataclasses import dataclass, field

from mpilauncher.core.events import (
    AgentJoined,
    AgentLost,
    AllDone,
    NodeBackInUse,
    NodeOutOfUse,
    NodeSuspended,
    Retract,
    Retracted,
    Retried,
    Start,
    TaskEnded,
    TaskFinished,
)
from mpilauncher.core.health import MIN_STREAK, chance_of_luck, is_fast_failure
from mpilauncher.core.ledger import COMPLETED, FAILED
from mpilauncher.core.scheduler import Scheduler
from mpilauncher.core.tasks import Task

Outcome = Callable[[int, int, int], tuple[int, float]]  # (task, node, attempt) -> (exit code, runtime)


def tasks(count: int, cores: int = 1, gpus: int = 0) -> list[Task]:
    return [Task(i, f"./t {i}", cores, line=i + 1, gpus=gpus) for i in range(count)]


@dataclass
class Run:
    """What a driven sweep left: every burst's facts, in order, and the scheduler."""

    sched: Scheduler
    bursts: list[list] = field(default_factory=list)

    def facts(self, kind) -> list:
        return [a for burst in self.bursts for a in burst if isinstance(a, kind)]

    def starts_on(self, node: int) -> list[int]:
        return [a.task_id for a in self.facts(Start) if a.node == node]

    def ends(self, task_id: int) -> list[TaskEnded]:
        return [e for e in self.facts(TaskEnded) if e.task_id == task_id]

    def index_of(self, kind) -> int:
        """The first burst with a fact of ``kind``."""
        return next(i for i, burst in enumerate(self.bursts) if any(isinstance(a, kind) for a in burst))


def drive(sched: Scheduler, nodes: list[tuple[str, int]], outcome: Outcome, gpus: int = 0) -> Run:
    """Run the sweep to its end on ``nodes`` (name, cores), ``outcome`` deciding how each run ends."""
    run = Run(sched)
    clock = 0.0
    ends: list[tuple[float, int, int, int, int, float]] = []  # (time, seq, task, node, exit, runtime)
    behind: dict[int, Start] = {}  # running task -> the standby its node starts next
    answers: list[Retracted] = []
    attempts: dict[int, int] = {}
    running: set[int] = set()  # the nodes' view
    seq = 0

    def begin(start: Start, now: float) -> None:
        nonlocal seq
        running.add(start.task_id)
        attempts[start.task_id] = attempts.get(start.task_id, 0) + 1
        code, runtime = outcome(start.task_id, start.node, attempts[start.task_id])
        seq += 1
        heapq.heappush(ends, (now + runtime, seq, start.task_id, start.node, code, runtime))

    def apply(actions: list, now: float) -> None:
        sched.validate()
        run.bursts.append(actions)
        for action in actions:
            if isinstance(action, Start):
                if action.after is not None and action.after in running:
                    behind[action.after] = action
                else:
                    begin(action, now)
            elif isinstance(action, Retract):
                for pred, waiting in list(behind.items()):
                    if waiting.task_id == action.task_id:
                        del behind[pred]
                        answers.append(Retracted(action.task_id))

    apply(sched.handle(*(AgentJoined(i, name, cores, gpus) for i, (name, cores) in enumerate(nodes))), clock)
    while ends or answers:
        burst: list = answers[:]
        answers.clear()
        if ends:
            clock = ends[0][0]
        while ends and ends[0][0] <= clock:
            when, _, tid, node, code, runtime = heapq.heappop(ends)
            running.discard(tid)
            follower = behind.pop(tid, None)
            if follower is not None:  # the node starts it before it reports the end
                begin(follower, when)
            burst.append(TaskFinished(tid, code, node, when - runtime, runtime))
        apply(sched.handle(*burst), clock)
        if run.facts(AllDone):
            break
    return run


def broken(bad: int, code: int = 127) -> Outcome:
    """Node ``bad`` fails every task at once with ``code``; elsewhere every task runs 1 s and succeeds."""
    return lambda tid, node, attempt: (code, 0.01) if node == bad else (0, 1.0)


THREE = [("n0", 2), ("n1", 2), ("n2", 2)]


# -- the rule ---------------------------------------------------------------------------------
def test_a_fast_failure_is_a_non_zero_end_within_a_second_or_a_command_that_could_not_run():
    assert is_fast_failure(127, 0.005, False) and is_fast_failure(-11, 0.2, False) and is_fast_failure(1, 0.9, False)
    assert is_fast_failure(127, 3600.0, False), "command not found, whenever"
    assert not is_fast_failure(0, 0.01, False) and not is_fast_failure(1, 5.0, False)
    assert not is_fast_failure(-15, 0.5, True), "killed at --task-timeout: the limit, not the node"


def test_the_chance_of_luck_is_that_of_all_the_nodes_fast_failures_falling_on_it():
    assert chance_of_luck(failures=5, others_fast=0, others_ok=0) == 1.0, "nothing elsewhere: no evidence"
    assert chance_of_luck(failures=20, others_fast=0, others_ok=0) == 1.0
    assert chance_of_luck(failures=3, others_fast=100, others_ok=0) == 1.0, "they fail everywhere: the tasks"
    assert abs(chance_of_luck(failures=3, others_fast=0, others_ok=3) - 1 / 20) < 1e-12  # 1 / C(6, 3)
    assert chance_of_luck(failures=20, others_fast=0, others_ok=3) < 1e-3
    assert chance_of_luck(failures=20, others_fast=20, others_ok=3) > 0.1


# -- a bad node -----------------------------------------------------------------------------------
def test_a_node_that_fails_every_task_at_once_is_taken_out_of_use_and_its_tasks_run_elsewhere():
    run = drive(Scheduler(tasks(200), standby=True), THREE, broken(2))
    (suspected,) = run.facts(NodeSuspended)
    assert suspected.node == 2 and suspected.failures >= MIN_STREAK and suspected.elsewhere >= 1
    (out,) = run.facts(NodeOutOfUse)
    assert out.node == 2 and out.where in (0, 1) and out.exit_code == 127
    assert not run.facts(NodeBackInUse)
    after = run.index_of(NodeOutOfUse)
    assert not [a for burst in run.bursts[after + 1 :] for a in burst if isinstance(a, Start) and a.node == 2]
    assert all(state == COMPLETED for state in run.sched.status.values()), "every task ran elsewhere, retries=0"
    failed_there = {e.task_id for e in run.facts(TaskEnded) if e.start.node == 2}
    assert failed_there and failed_there <= {r.task_id for r in run.facts(Retried) if r.excused == 2}
    assert run.facts(AllDone) == [AllDone()]


def test_a_broken_gpu_is_found_by_the_gpu_tasks_while_the_nodes_cpu_tasks_succeed():
    work = tasks(60) + [Task(60 + i, f"./gpu {i}", 1, line=61 + i, gpus=1) for i in range(60)]

    def outcome(tid: int, node: int, attempt: int) -> tuple[int, float]:
        return (-11, 0.2) if tid >= 60 and node == 1 else (0, 1.0)

    run = drive(Scheduler(work, standby=True), [("g0", 4), ("g1", 4)], outcome, gpus=2)
    assert [f.node for f in run.facts(NodeOutOfUse)] == [1], "CPU successes there do not hide it"
    assert all(state == COMPLETED for state in run.sched.status.values())


def test_failures_on_a_node_out_of_use_do_not_use_up_retries():
    def outcome(tid: int, node: int, attempt: int) -> tuple[int, float]:
        if node == 2:
            return 127, 0.01
        return (3, 2.0) if tid == 7 else (0, 1.0)  # task 7 fails (slowly) wherever it runs

    run = drive(Scheduler(tasks(100), retries=1, standby=True), THREE, outcome)
    assert [f.node for f in run.facts(NodeOutOfUse)] == [2]
    elsewhere = [e for e in run.ends(7) if e.start.node != 2]
    assert len(elsewhere) == 2, "retries=1: two runs elsewhere, whatever it did on node 2"
    assert [e.attempt for e in run.ends(7)] == list(range(1, len(run.ends(7)) + 1)), "attempts count every run"
    assert run.sched.status[7] == FAILED
    assert all(state == COMPLETED for tid, state in run.sched.status.items() if tid != 7)


def test_a_lost_nodes_tasks_do_not_use_up_retries():
    sched = Scheduler(tasks(1), retries=1)
    sched.handle(AgentJoined(0, "n0", 1), AgentJoined(1, "n1", 1))
    assert sched.running[0].node == 0
    again = sched.handle(AgentLost(0))
    (start,) = [a for a in again if isinstance(a, Start)]
    assert (start.node, start.attempt) == (1, 1), "the lost run was no attempt of its own"
    retried = sched.handle(TaskFinished(0, 1, 1, runtime=2.0))
    assert Retried(0, 1) in retried, "its one retry is still there"


# -- it is the tasks, not the node -------------------------------------------------------------------
def test_a_sweep_whose_tasks_all_fail_fast_everywhere_takes_no_node_out_of_use():
    run = drive(Scheduler(tasks(300), standby=True), THREE, lambda tid, node, attempt: (127, 0.01))
    assert not run.facts(NodeSuspended) and not run.facts(NodeOutOfUse)
    assert all(state == FAILED for state in run.sched.status.values())


def test_tasks_that_fail_at_random_everywhere_take_no_node_out_of_use():
    bad = {tid for tid in range(2000) if random.Random(tid).random() < 0.3}

    def outcome(tid: int, node: int, attempt: int) -> tuple[int, float]:
        return (1, 0.05) if tid in bad else (0, 0.5 + (tid % 7) / 10)

    run = drive(Scheduler(tasks(2000), standby=True), [("n0", 4), ("n1", 4), ("n2", 4), ("n3", 4)], outcome)
    assert not run.facts(NodeOutOfUse)
    assert len(run.facts(NodeBackInUse)) == len(run.facts(NodeSuspended)), "every suspect was cleared"
    assert {tid for tid, state in run.sched.status.items() if state == FAILED} == bad


def test_a_suspect_node_is_back_in_use_when_its_failed_tasks_fail_elsewhere_too():
    lines: set[int] = set()  # the first tasks node 2 gets are broken lines: they fail wherever they run

    def outcome(tid: int, node: int, attempt: int) -> tuple[int, float]:
        if node == 2 and attempt == 1 and len(lines) < 30:
            lines.add(tid)
        return (2, 0.3) if tid in lines else (0, 1.0)

    run = drive(Scheduler(tasks(200), standby=True), THREE, outcome)
    suspected = [f.node for f in run.facts(NodeSuspended)]
    assert suspected and set(suspected) == {2}
    back = run.facts(NodeBackInUse)
    assert len(back) == len(suspected) and back[0].task_id in lines and back[0].where in (0, 1)
    assert not run.facts(NodeOutOfUse)
    later = run.bursts[run.index_of(NodeBackInUse) + 1 :]
    assert any(isinstance(a, Start) and a.node == 2 for burst in later for a in burst), "it takes tasks again"
    assert {tid for tid, state in run.sched.status.items() if state == FAILED} == lines
    assert all(state == COMPLETED for tid, state in run.sched.status.items() if tid not in lines)
    assert max(len(run.ends(tid)) for tid in lines) == 2, "a broken line gets one second run, on trial"


def test_a_block_of_broken_lines_that_lands_on_one_node_is_no_evidence_against_it():
    lines: set[int] = set()  # the first tasks node 2 gets fail at once wherever they run

    def outcome(tid: int, node: int, attempt: int) -> tuple[int, float]:
        if node == 2 and attempt == 1 and len(lines) < 30:
            lines.add(tid)
        return (2, 0.01) if tid in lines else (0, 1.0)

    run = drive(Scheduler(tasks(200), standby=True), THREE, outcome)
    assert not run.facts(NodeSuspended), "the other nodes had nothing to compare with while node 2 got them"
    assert {tid for tid, state in run.sched.status.items() if state == FAILED} == lines


def test_slow_failures_never_make_a_node_suspect():
    run = drive(Scheduler(tasks(200), standby=True), THREE, lambda t, n, a: (1, 5.0) if n == 2 else (0, 1.0))
    assert not run.facts(NodeSuspended)


def test_the_last_node_in_use_is_never_suspected():
    sched = Scheduler(tasks(40), standby=False)
    sched.handle(AgentJoined(0, "n0", 1), AgentJoined(1, "n1", 1))
    on = {start.node: tid for tid, start in sched.running.items()}
    facts = sched.handle(TaskFinished(on[1], 127, 1, runtime=0.01))  # n1's streak begins
    for _ in range(10):  # n0 succeeds ten times meanwhile
        on = {start.node: tid for tid, start in sched.running.items()}
        facts += sched.handle(TaskFinished(on[0], 0, 0, runtime=1.0))
    on = {start.node: tid for tid, start in sched.running.items()}
    facts += sched.handle(AgentLost(0))
    for _ in range(10):  # n1 fails again and again, but it is the only node left
        on = {start.node: tid for tid, start in sched.running.items()}
        facts += sched.handle(TaskFinished(on[1], 127, 1, runtime=0.01))
        sched.validate()
    assert not [f for f in facts if isinstance(f, NodeSuspended)]


def test_a_standby_waiting_on_a_suspect_node_is_asked_back_and_runs_elsewhere():
    def outcome(tid: int, node: int, attempt: int) -> tuple[int, float]:
        if tid == 0:
            return 0, 100.0  # a long task that started there before anything went wrong
        return (127, 0.01) if node == 1 else (0, 0.05)

    run = drive(Scheduler(tasks(300), standby=True), [("n0", 16), ("n1", 2)], outcome)
    assert run.sched.running == {} and all(state == COMPLETED for state in run.sched.status.values())
    suspicion = run.bursts[run.index_of(NodeSuspended)]
    asked = [a.task_id for a in suspicion if isinstance(a, Retract) and a.node == 1]
    assert asked, "the standby behind the long task on n1 is asked back"
    assert all(e.start.node == 0 for tid in asked for e in run.ends(tid)), "and it ran elsewhere"
    assert [f.node for f in run.facts(NodeOutOfUse)] == [1]
    (long_task,) = run.ends(0)
    assert long_task.start.node == 1 and long_task.exit_code == 0, "its running task finished there"
