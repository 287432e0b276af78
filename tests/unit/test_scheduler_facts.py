"""What comes out of the core: one mutator, facts that carry everything, stale reports, stories."""

from __future__ import annotations

import pytest

from mpilauncher.core import scheduler as scheduler_module
from mpilauncher.core.events import (
    AgentJoined,
    AgentLost,
    AllDone,
    ClockTick,
    NeverStarted,
    Promoted,
    Requeued,
    Retracted,
    Retried,
    Start,
    StartDue,
    StopDispatch,
    TaskEnded,
    TaskFinished,
)
from mpilauncher.core.ledger import COMPLETED, FAILED, QUEUED, RUNNING
from mpilauncher.core.scheduler import STANDBY, InvalidTransition, Scheduler
from mpilauncher.core.tasks import Task, TaskTable
from tests.unit.test_scheduler import join, tasks_of


def facts(actions, kind) -> list:
    return [a for a in actions if isinstance(a, kind)]


def handle(sched: Scheduler, *events) -> list:
    actions = sched.handle(*events)
    sched.validate()
    return actions


# -- one mutator ----------------------------------------------------------------
def test_handle_is_the_only_mutator():
    assert not hasattr(Scheduler, "apply"), "no second way to change the state"


def test_a_burst_without_events_changes_nothing():
    sched = Scheduler(tasks_of(1, 1, 1), start_interval=1.0)
    handle(sched, AgentJoined(0, "n0", 4), ClockTick(0.0))
    before = dict(sched.status)
    assert sched.handle() == [], "the placement pass follows events; none, no pass"
    assert sched.status == before
    assert [a.task_id for a in facts(handle(sched, ClockTick(1.0)), Start)] == [1], "time is an event"


# -- facts ---------------------------------------------------------------------------
def test_a_start_carries_where_the_task_runs_which_attempt_and_the_task_itself():
    tasks = [Task(0, "./gpu 0", 2, gpus=1, line=7)]
    (start,) = facts(handle(Scheduler(tasks), AgentJoined(0, "g", 4, gpus=2)), Start)
    assert (start.node, start.task_id, start.core_ids, start.gpu_indices, start.span) == (0, 0, (0, 1), (0,), ())
    assert start.attempt == 1 and start.after is None
    assert start.task == tasks[0] and start.task.command == "./gpu 0" and start.task.line == 7
    assert start.segments == ((0, (0, 1)),)


def test_an_end_carries_its_start_the_nodes_report_and_an_outcome_word():
    sched = Scheduler(tasks_of(1, 1, 1, 1))
    placed = {a.task_id: a for a in facts(handle(sched, *join(4)), Start)}
    reports = [
        TaskFinished(0, 0, 0, 100.0, 2.5),
        TaskFinished(1, 3, 0, 101.0, 1.0, leftovers=2),
        TaskFinished(2, -9, 0, 102.0, 0.5),
        TaskFinished(3, -15, 0, 103.0, 30.0, timed_out=True),
    ]
    ended = facts(handle(sched, *reports), TaskEnded)
    assert [e.start for e in ended] == [placed[0], placed[1], placed[2], placed[3]]
    assert [e.report for e in ended] == reports
    assert [e.outcome for e in ended] == ["ok", "failed", "signal", "timeout"]
    assert [(e.task_id, e.exit_code, e.attempt) for e in ended] == [(0, 0, 1), (1, 3, 1), (2, -9, 1), (3, -15, 1)]
    assert [sched.status[i] for i in range(4)] == [COMPLETED, FAILED, FAILED, FAILED]


def test_a_retried_task_ends_again_as_its_next_attempt():
    sched = Scheduler(tasks_of(1), retries=2)
    handle(sched, *join(1))
    actions = handle(sched, TaskFinished(0, 1, 0))
    assert [type(a) for a in actions] == [TaskEnded, Retried, Start]
    assert actions[0].attempt == 1 and actions[1] == Retried(0, 1) and actions[2].attempt == 2
    actions = handle(sched, TaskFinished(0, 1, 0))
    assert actions[0].attempt == 2 and actions[1] == Retried(0, 2) and actions[2].attempt == 3
    actions = handle(sched, TaskFinished(0, 0, 0))
    assert [(type(a), getattr(a, "attempt", None)) for a in actions] == [(TaskEnded, 3), (AllDone, None)]


def test_attempts_of_earlier_runs_number_on_and_leave_this_runs_retries_whole():
    """A task failed 3 times in earlier runs (``Ledger.attempts``), resumed with --retries 1: attempts 4 and
    5 here, then failed; a task with no earlier attempt starts at 1."""
    sched = Scheduler(tasks_of(1, 1), retries=1, attempts_before={0: 3})
    assert [a.attempt for a in facts(handle(sched, *join(2)), Start)] == [4, 1]
    actions = handle(sched, TaskFinished(0, 1, 0))
    assert actions[1] == Retried(0, 4) and actions[2].attempt == 5
    actions = handle(sched, TaskFinished(0, 1, 0), TaskFinished(1, 0, 0))
    assert actions[0].attempt == 5 and sched.status[0] == FAILED and sched.status[1] == COMPLETED


def test_a_retry_that_waited_at_a_stop_counts_its_attempts_against_this_runs_retries():
    """Task 0's retry waited at a stop after its first attempt failed (``retry_bases``), with --retries 1:
    attempt 2 here, then failed for good, as without the stop."""
    sched = Scheduler(tasks_of(1), retries=1, attempts_before={0: 1}, retry_bases={0: 0})
    assert [a.attempt for a in facts(handle(sched, *join(1)), Start)] == [2]
    handle(sched, TaskFinished(0, 1, 0))
    assert sched.status[0] == FAILED


def test_a_rerun_failed_task_whose_retry_waited_at_a_stop_counts_its_retries_from_its_base():
    """--retries 2: task 0 failed for good (attempts 1-3), --rerun-failed ran attempt 4, which failed, and the
    stop came while its retry waited.  Its base (3) came with the queuestate: attempts 5 and 6 here, as
    without the stop; from base 0 attempt 5 would have been its last."""
    sched = Scheduler(tasks_of(1, 1), retries=2, attempts_before={0: 4}, retry_bases={0: 3})
    assert [a.attempt for a in facts(handle(sched, *join(2)), Start)] == [5, 1]
    assert sched.pending_retry_bases() == {0: 3}
    actions = handle(sched, TaskFinished(0, 1, 0), TaskFinished(1, 0, 0))
    assert actions[1] == Retried(0, 5) and sched.pending_retry_bases() == {0: 3}
    handle(sched, TaskFinished(0, 1, 0))
    assert sched.status[0] == FAILED and sched.pending_retry_bases() == {}


def test_the_retry_bases_kept_at_a_stop_are_those_of_unfinished_tasks_rerun_after_earlier_attempts():
    """Tasks 0 and 1 failed for good before (--rerun-failed runs them again), task 2 failed for good and is
    not run again (no task of this run), task 3 never failed: only 0 and 1, unfinished, have a base."""
    run = [task for task in tasks_of(1, 1, 1, 1) if task.id != 2]
    sched = Scheduler(run, retries=1, attempts_before={0: 2, 1: 2, 2: 2})
    handle(sched, *join(1))
    assert sched.pending_retry_bases() == {0: 2, 1: 2}
    handle(sched, TaskFinished(0, 0, 0))
    assert sched.pending_retry_bases() == {1: 2}


def test_a_promotion_carries_the_standbys_start_and_when_its_node_started_it():
    sched = Scheduler(tasks_of(*[1] * 10), standby=True)
    actions = handle(sched, *join(2))
    standby = next(a for a in actions if isinstance(a, Start) and a.task_id == 2)
    assert standby.after == 0 and sched.status[2] == STANDBY
    actions = handle(sched, TaskFinished(0, 0, 0, 50.0, 1.5))
    ended, promotion = actions[:2]
    assert isinstance(ended, TaskEnded) and ended.task_id == 0
    assert isinstance(promotion, Promoted) and promotion.start is standby and promotion.at == 51.5
    assert (promotion.task_id, promotion.after) == (2, 0) and sched.status[2] == RUNNING


def test_an_mpi_task_over_nodes_ends_with_every_segment():
    sched = Scheduler([Task(0, "mpi", cores=6, mpi=True)])
    (start,) = facts(handle(sched, *join(4, 4)), Start)
    assert start.segments == start.span == ((0, (0, 1, 2, 3)), (1, (0, 1)))
    (ended,) = facts(handle(sched, TaskFinished(0, 0, 0)), TaskEnded)
    assert ended.start.span == start.span and sched.pool.free_cores == 8


def test_a_lost_node_and_a_start_that_never_happened_say_which_node_and_why():
    sched = Scheduler(tasks_of(1, 1, 1))
    handle(sched, *join(1, 2))
    assert facts(handle(sched, AgentLost(0)), Requeued) == [Requeued(0, 0, "")]
    actions = handle(sched, NeverStarted(1, 1, "/w/out1: Disk quota exceeded", 9.0))
    assert facts(actions, Requeued) == [Requeued(1, 1, "/w/out1: Disk quota exceeded")]


def test_a_paced_start_held_for_the_pace_says_when_it_is_due():
    sched = Scheduler(tasks_of(1, 1), start_interval=2.0)
    actions = handle(sched, AgentJoined(0, "n0", 4), ClockTick(10.0))
    assert facts(actions, StartDue) == [StartDue(12.0)]
    assert facts(handle(sched, ClockTick(12.0)), StartDue) == [], "nothing left waits for the pace"


# -- stale reports ----------------------------------------------------------------------
def test_ends_from_a_node_given_up_as_lost_are_stale_even_when_it_comes_back():
    sched = Scheduler(tasks_of(1, 1))
    handle(sched, *join(1, 1))  # task 0 on node 0, task 1 on node 1
    assert facts(handle(sched, AgentLost(0)), Requeued) == [Requeued(0, 0)]
    (restart,) = facts(handle(sched, TaskFinished(1, 0, 1)), Start)
    assert (restart.task_id, restart.node) == (0, 1), "task 0 runs again on node 1"
    assert handle(sched, TaskFinished(0, 0, 0)) == [], "node 0 came back and reports its old run: ignored"
    assert sched.status[0] == RUNNING and sched.running[0].node == 1
    assert handle(sched, NeverStarted(0, 0, "stale")) == []
    ended = facts(handle(sched, TaskFinished(0, 7, 1)), TaskEnded)
    assert [(e.task_id, e.start.node, e.exit_code) for e in ended] == [(0, 1, 7)]


def test_a_stale_end_of_a_task_still_queued_is_ignored_too():
    sched = Scheduler(tasks_of(1, 1))
    handle(sched, *join(2))
    handle(sched, AgentLost(0))
    assert handle(sched, TaskFinished(1, 0, 0)) == [] and sched.status[1] == QUEUED


def test_a_standby_dropped_by_a_stop_that_its_node_ran_and_completed_anyway_is_completed():
    sched = Scheduler(tasks_of(*[1] * 10), standby=True)
    handle(sched, *join(2))  # 2 waits behind 0 on node 0
    handle(sched, StopDispatch())
    assert sched.status[2] == QUEUED
    handle(sched, TaskFinished(0, 0, 0))
    actions = handle(sched, TaskFinished(2, 0, 0, 10.0, 1.0))
    assert [type(a) for a in actions] == [Promoted, TaskEnded], "its node started it before the shutdown"
    assert actions[0].task_id == 2 and actions[0].at == 10.0
    assert sched.status[2] == COMPLETED, "it ran to its end: a resume must not run it again"
    sched.validate()


@pytest.mark.parametrize("code", [143, -15, 1])
def test_a_standby_dropped_by_a_stop_whose_run_did_not_complete_stays_queued(code: int):
    sched = Scheduler(tasks_of(*[1] * 10), standby=True)
    handle(sched, *join(2))  # 2 waits behind 0 on node 0
    handle(sched, StopDispatch())
    assert handle(sched, TaskFinished(2, code, 0)) == [], "the stop killed it: it runs again on resume"
    assert sched.status[2] == QUEUED
    sched.validate()


def test_a_stop_in_the_burst_of_an_end_promotes_the_standby_its_node_started_and_drops_the_others():
    sched = Scheduler(tasks_of(*[1] * 10), standby=True)
    handle(sched, *join(2))  # 2 waits behind 0, 3 behind 1
    actions = handle(sched, StopDispatch(), TaskFinished(0, 0, 0, 10.0, 1.0))
    assert [type(a) for a in actions] == [TaskEnded, Promoted], "no hand-off, no placement: just the facts"
    assert actions[1].task_id == 2 and actions[1].at == 11.0
    assert sched.status[2] == RUNNING and sched.status[3] == QUEUED
    assert facts(handle(sched, TaskFinished(2, 0, 0)), TaskEnded)[0].task_id == 2, "its end is recorded"
    assert handle(sched, TaskFinished(3, 143, 0)) == [], "3 was dropped, and the shutdown killed it: queued"
    assert sched.status[3] == QUEUED


# -- invalid transitions tell the task's story ----------------------------------------------
def test_an_end_from_the_wrong_live_node_raises_with_the_tasks_story():
    sched = Scheduler(tasks_of(1, 1))
    handle(sched, *join(1, 1))
    with pytest.raises(InvalidTransition) as caught:
        sched.handle(TaskFinished(0, 0, 1))
    err = caught.value
    assert (err.task_id, err.state, err.event) == (0, "running on node 0", TaskFinished(0, 0, 1))
    assert [type(entry) for entry in err.story] == [Start, TaskFinished]
    assert "task 0 is running on node 0" in str(err) and "Start(node=0, task_id=0" in str(err)


def test_a_second_end_raises_and_the_story_shows_the_first():
    sched = Scheduler(tasks_of(1, 1, 1), standby=False)
    handle(sched, *join(1))
    handle(sched, TaskFinished(0, 0, 0))
    with pytest.raises(InvalidTransition, match="task 0 is completed") as caught:
        sched.handle(TaskFinished(0, 0, 0))
    assert [type(entry) for entry in caught.value.story] == [Start, TaskFinished, TaskEnded, TaskFinished]


def test_the_story_of_a_standby_names_the_task_it_waited_behind():
    sched = Scheduler(tasks_of(*[1] * 10), standby=True)
    handle(sched, *join(2))
    handle(sched, StopDispatch(ask_back=True))
    handle(sched, Retracted(2))
    kinds = [type(entry).__name__ for entry in sched.story(0)]
    assert kinds == ["Start", "Start"], "task 0's own start, and task 2's standby start behind it"
    assert [type(entry).__name__ for entry in sched.story(2)] == ["Start", "Retract", "Retracted"]


def test_a_task_of_another_run_is_not_a_task_of_this_one():
    sched = Scheduler(tasks_of(1))
    handle(sched, *join(1))
    with pytest.raises(InvalidTransition, match="task 5 is not a task of this run"):
        sched.handle(TaskFinished(5, 0, 0))


def test_the_scheduler_stays_within_the_attributes_python_keeps_fast():
    """CPython 3.11 specializes ``self.x`` only for instances of at most 30 attributes (shared keys); past
    that every attribute access on the hot path slows down (measured: 4-7% per decision).  New state goes
    into a holder object (as the deadline's and the nodes' health do)."""
    sched = Scheduler(tasks_of(1))
    handle(sched, AgentJoined(0, "n0", 1))
    assert len(vars(sched)) <= 30, sorted(vars(sched))


def test_the_core_decides_on_ids_and_a_start_makes_its_task_once_when_asked(monkeypatch):
    """The scheduler makes no Task at a decision (a fifth of its cost at 100,000 cores); the start
    message asks for it, and gets the same one every time."""
    sched = Scheduler([Task(i, f"echo {i}", line=i + 1) for i in range(20)], standby=True)
    made = []
    real = TaskTable.__getitem__
    monkeypatch.setattr(TaskTable, "__getitem__", lambda table, tid: made.append(tid) or real(table, tid))
    starts = facts(handle(sched, *join(2)), Start)
    for tid in range(6):
        starts += facts(handle(sched, TaskFinished(tid, 0, 0)), Start)
    assert len(starts) == 10 and made == [], "no Task made by the core"
    assert starts[3].task.command == "echo 3" and starts[3].task.line == 4 and starts[3].task is starts[3].task
    assert made == [3], "made once, when first asked"
    assert Start(0, 1, (0,)).task is None, "a start made by hand has no task"


def test_stories_reach_back_at_least_story_depth_records_and_whole_bursts_are_forgotten(monkeypatch):
    monkeypatch.setattr(scheduler_module, "STORY_DEPTH", 30)
    sched = Scheduler(tasks_of(*[1] * 40), standby=False)
    handle(sched, *join(1))
    for tid in range(39):  # each burst: an end, its TaskEnded, the next start: 3 records
        handle(sched, TaskFinished(tid, 0, 0))
    assert [type(e).__name__ for e in sched.story(30)] == ["Start", "TaskFinished", "TaskEnded"]
    assert sched.story(20) == [], "ten bursts back is more than 30 records: forgotten"
    assert 30 <= sum(len(events) + len(actions) for events, actions in sched._log.bursts) < 30 + 3
