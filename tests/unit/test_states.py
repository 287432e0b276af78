"""The scheduler's task states: one byte per id, read as a mapping of state names."""

from __future__ import annotations

import pytest

from mpilauncher.core.events import AgentJoined, Start, TaskFinished
from mpilauncher.core.ledger import COMPLETED, QUEUED, RUNNING
from mpilauncher.core.scheduler import Scheduler
from mpilauncher.core.states import AS_RUNNING, STANDBY, TaskStates
from mpilauncher.core.tasks import CoresSpec, Task
from mpilauncher.persistence.queuestate import parse


def test_a_sweep_starts_all_queued_and_reads_as_a_mapping():
    states = TaskStates(range(4))
    assert dict(states) == dict.fromkeys(range(4), QUEUED) and len(states) == 4
    states.codes[2] = AS_RUNNING  # (the scheduler's hot path)
    states[3] = STANDBY
    assert (states[2], states[3], states.get(9), 9 in states, "2" in states) == (RUNNING, STANDBY, None, False, False)


def test_the_ids_of_a_resume_may_be_sparse_and_out_of_order():
    states = TaskStates([7, 3, 1_000])
    assert sorted(states) == [3, 7, 1_000] and len(states) == 3
    assert 4 not in states and states.state(4) == "" and states.state(5_000) == "" and states.state(-1) == ""
    with pytest.raises(KeyError):
        states[4] = COMPLETED  # no task of the run: the ids are fixed


@pytest.mark.parametrize("ids, problem", [([1, 2, 1], "given twice"), ([0, -3], "negative")])
def test_a_repeated_or_negative_id_is_refused(ids, problem):
    with pytest.raises(ValueError, match=problem):
        TaskStates(ids)


def test_a_scheduler_refuses_a_task_id_given_twice():
    with pytest.raises(ValueError, match="given twice"):
        Scheduler([Task(0, "a"), Task(0, "b")])


def test_ids_spread_far_apart_cost_no_byte_for_each_id_below_the_largest():
    """Two tasks numbered 0 and 999,999,999 (PyLauncher's files allow it) must not cost a GB."""
    states = TaskStates([999_999_999, 0, 5])
    assert not isinstance(states.codes, bytearray), "a dict of codes, not a gigabyte of bytes"
    states.codes[5] = AS_RUNNING  # (the scheduler's hot path: the same store)
    assert dict(states) == {999_999_999: QUEUED, 0: QUEUED, 5: RUNNING} and len(states) == 3
    assert (states.state(6), 6 in states, states.state(-1)) == ("", False, "")
    with pytest.raises(ValueError, match="given twice"):
        TaskStates([999_999_999, 0, 0])


def test_a_pylauncher_queuestate_with_a_huge_id_is_scheduled_and_run():
    table = parse("queued\n0: ./a\n999999999: ./b\n", "qs", CoresSpec("fixed", 1)).ledger.tasks
    scheduler = Scheduler(table, standby=True)
    assert not isinstance(scheduler.status.codes, bytearray)
    started = [a.task_id for a in scheduler.handle(AgentJoined(0, "n0", 2)) if isinstance(a, Start)]
    assert sorted(started) == [0, 999_999_999]
    scheduler.handle(*(TaskFinished(tid, 0) for tid in started))
    assert scheduler.status[999_999_999] == COMPLETED
    scheduler.validate()
