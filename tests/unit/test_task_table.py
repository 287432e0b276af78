"""The table of a sweep's tasks (mpilauncher.core.tasks.TaskTable) and the ledger over it: a waiting
task costs its command and line, no object; Tasks are made when asked for."""

from __future__ import annotations

import pytest

from mpilauncher.core.ledger import COMPLETED, QUEUED, RUNNING, Ledger
from mpilauncher.core.scheduler import find_unplaceable
from mpilauncher.core.tasks import CoresSpec, Task, TaskTable, parse_commandlines

ONE = CoresSpec("fixed", 1)


def test_a_plain_sweep_is_columns_and_one_prototype():
    table = parse_commandlines("# sweep\n./a 0\n\n./a 1\n./a 2\n", "cl", CoresSpec("fixed", 2))
    assert not table.overrides and isinstance(table.ids, range) and len(table) == 3
    assert table[1] == Task(1, "./a 1", 2, line=4)
    assert [t.line for t in table] == [2, 4, 5] and 2 in table and 3 not in table and -1 not in table
    with pytest.raises(IndexError):
        table[3]


def test_tasks_with_needs_of_their_own_are_overrides_and_group_by_needs():
    table = parse_commandlines("1,./a\n4,./b\n1,./c\n4,./d\n", "cl", CoresSpec("file"))
    assert set(table.overrides) == {1, 3}, "the first task's needs are the prototype's"
    assert [(first.id, ids) for first, ids in table.groups()] == [(0, [0, 2]), (1, [1, 3])]
    assert [u.task_id for u in find_unplaceable(table, [2, 2])] == [1, 3]


def test_a_table_of_a_list_keeps_ids_with_holes_and_refuses_one_given_twice():
    table = TaskTable.of([Task(5, "./x"), Task(2, "./y")])
    assert list(table.ids) == [5, 2] and table[2].command == "./y" and 3 not in table
    with pytest.raises(ValueError, match="task id 5 given twice"):
        TaskTable.of([Task(5, "./x"), Task(5, "./y")])


def test_a_subset_shares_the_columns_and_holds_only_its_ids():
    table = parse_commandlines("./a\n./b\n./c\n./d\n", "cl", ONE)
    part = table.subset([3, 1])
    assert part.commands is table.commands and list(part.ids) == [3, 1] and len(part) == 2
    assert [t.command for t in part] == ["./d", "./b"] and 1 in part and 0 not in part


def test_revising_the_whole_table_changes_the_prototype_and_a_part_makes_overrides():
    table = parse_commandlines("./a\n./b\n./c\n", "cl", ONE)
    whole = table.revised(mpi=True)
    assert whole.prototype.mpi and not whole.overrides and all(t.mpi for t in whole)
    part = table.revised([2], gpus=1)
    assert [t.gpus for t in part] == [0, 0, 1] and set(part.overrides) == {2}
    assert [t.gpus for t in table] == [0, 0, 0], "the table revised is unchanged"


def test_a_new_ledger_makes_no_record_until_a_task_has_a_story():
    ledger = Ledger(parse_commandlines("./a\n./b\n./c\n", "cl", ONE))
    assert list(ledger.told()) == [] and ledger.counts()[QUEUED] == 3
    ledger.started(1, "c1", (0,), 10.0)
    assert [r.id for r in ledger.told()] == [1] and ledger.state(1) == RUNNING and ledger.state(0) == QUEUED
    ledger.finished(1, 0, 10.0, 2.0)
    assert ledger.ids_in(COMPLETED) == [1] and ledger.ids_in(QUEUED) == [0, 2]
    ledger.requeued(1)
    assert list(ledger.told()) == [] and ledger.ids_in(QUEUED) == [0, 1, 2], "queued again: its story forgotten"
    with pytest.raises(KeyError):
        ledger.requeued(7)


def test_a_record_is_a_copy_and_the_ledgers_methods_its_only_writers():
    ledger = Ledger(parse_commandlines("./a\n./b\n", "cl", ONE))
    ledger.records[0].host = "c9"
    assert ledger.records[0].host is None and ledger.outcomes is None, "no story made by asking"
    assert 1 in ledger.records and 5 not in ledger.records
    with pytest.raises(KeyError):
        ledger.records[5]


def test_revising_what_runs_changes_the_ledgers_table_and_the_records_of_those_tasks():
    ledger = Ledger(parse_commandlines("./a\n./b\n./c\n", "cl", ONE))
    ledger.started(0, "c1", (0,), 1.0)
    ledger.finished(0, 0, 1.0, 1.0)
    to_run = ledger.revise(ledger.to_run(), mpi=True)
    assert list(to_run.ids) == [1, 2] and all(t.mpi for t in to_run)
    assert ledger.tasks[1].mpi and not ledger.tasks[0].mpi, "a completed task keeps what it ran as"
    everything = ledger.revise(ledger.tasks, gpus=2)
    assert everything is ledger.tasks and ledger.records[0].task.gpus == 2


def test_what_a_resume_runs_is_requeued_at_once_and_the_rest_keeps_its_story():
    ledger = Ledger(parse_commandlines("./a\n./b\n./c\n./d\n", "cl", ONE))
    for task_id, code in ((0, 0), (1, 1), (2, None)):
        ledger.started(task_id, "c1", (0,), 1.0)
        if code is not None:
            ledger.finished(task_id, code, 1.0, 1.0)
    ledger.requeue(ledger.to_run())
    assert ledger.counts() == {QUEUED: 2, RUNNING: 0, COMPLETED: 1, "failed": 1}
    ledger.requeue(ledger.to_run(rerun_failed=True))
    assert ledger.ids_in(QUEUED) == [1, 2, 3] and ledger.ids_in(COMPLETED) == [0]
