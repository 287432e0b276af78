"""The scheduler's task states: one byte per id, read as a mapping of state names."""

from __future__ import annotations

import pytest

from mpilauncher.core.ledger import COMPLETED, QUEUED, RUNNING
from mpilauncher.core.scheduler import Scheduler
from mpilauncher.core.states import AS_RUNNING, STANDBY, TaskStates
from mpilauncher.core.tasks import Task


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
