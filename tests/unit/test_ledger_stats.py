"""The ledger and the final statistics (mpilauncher.core.ledger, mpilauncher.core.stats)."""

from __future__ import annotations

import math

import pytest

from mpilauncher.core.ledger import COMPLETED, FAILED, QUEUED, RUNNING, STATES, Ledger
from mpilauncher.core.ranges import compress, runs_of, runs_text
from mpilauncher.core.stats import compute, percentile
from mpilauncher.core.tasks import CoresSpec, Task
from mpilauncher.persistence import queuestate
from tests.unit.ledgers import finished_ledger, make_ledger


# -- ledger ----------------------------------------------------------------------
def test_new_ledger_has_everything_queued():
    ledger = make_ledger(3, elapsed_before=12.5)
    assert len(ledger) == 3
    assert [r.id for r in ledger] == [0, 1, 2]
    assert ledger.counts() == {QUEUED: 3, RUNNING: 0, COMPLETED: 0, FAILED: 0}
    assert list(ledger.counts()) == list(STATES)
    assert ledger.elapsed_before == 12.5
    assert [t.id for t in ledger.to_run()] == [0, 1, 2]


def test_ledger_transitions():
    ledger = make_ledger(4)
    ledger.started(0, "c1", (0, 1), 100.0)
    rec = ledger.records[0]
    assert (rec.state, rec.host, rec.core_ids, rec.start, rec.exit_code, rec.runtime) == (
        RUNNING,
        "c1",
        (0, 1),
        100.0,
        None,
        None,
    )
    ledger.finished(0, 0, 100.5, 2.25)
    assert rec.state == RUNNING, "a record is a copy: what the ledger said when it was asked"
    rec = ledger.records[0]
    assert (rec.state, rec.exit_code, rec.start, rec.runtime, rec.host) == (COMPLETED, 0, 100.5, 2.25, "c1")
    ledger.started(1, "c2", (3,), 101.0)
    ledger.finished(1, -9, 101.0, 1.0)
    assert ledger.records[1].state == FAILED
    ledger.started(2, "c2", (4,), 101.0)
    ledger.requeued(2)
    assert (ledger.records[2].state, ledger.records[2].exit_code, ledger.records[2].runtime) == (QUEUED, None, None)
    ledger.started(3, "c3", (0,), 102.0)
    assert ledger.counts() == {QUEUED: 1, RUNNING: 1, COMPLETED: 1, FAILED: 1}
    assert ledger.ids_in(COMPLETED, FAILED) == [0, 1]
    assert ledger.ids_in(RUNNING) == [3]
    assert [t.id for t in ledger.to_run()] == [2, 3]
    assert [t.id for t in ledger.to_run(rerun_failed=True)] == [1, 2, 3]


def test_restart_clears_the_previous_outcome():
    ledger = make_ledger(1)
    ledger.started(0, "a", (0,), 1.0)
    ledger.finished(0, 2, 1.0, 3.0)
    ledger.started(0, "b", (5,), 10.0)
    rec = ledger.records[0]
    assert (rec.state, rec.exit_code, rec.runtime, rec.host, rec.core_ids) == (RUNNING, None, None, "b", (5,))


@pytest.mark.parametrize(
    "first_ids",
    [
        (1, 2, 3),  # (a run of ids is put in as a slice a column)
        (0, 2, 3),
        (*range(0, 4), *range(6, 10), *range(11, 15)),  # (a sweep's failures break its completed ids into runs)
        (*range(10, 15), *range(0, 4)),  # (runs out of order)
        (0, 2, 4, 6, 8, 10, 12, 14),  # (more runs than RUN_SLICES_FROM allows: a row at a time)
    ],
)
def test_many_finished_at_once_is_each_finished_in_turn(first_ids):
    """A queuestate's completed section goes into the ledger's columns in one call."""
    one_by_one, at_once = make_ledger(21), make_ledger(21)
    for ledger in (one_by_one, at_once):
        ledger.started(20, "c9", (3,), 50.0)  # (a place the ledger has before)
    names = [("c1", (0, 1)), ("c9", (3,))]
    rows = [(task_id, 10.0 + task_id, 0.25 * task_id, task_id % 2) for task_id in first_ids]
    for task_id, start, runtime, place in rows:
        one_by_one.started(task_id, *names[place], start)
        one_by_one.finished(task_id, 0, start, runtime)
    ids, starts, runtimes, places = zip(*rows, strict=True)
    at_once.finished_all(ids, 0, starts, runtimes, places, names)
    assert list(at_once) == list(one_by_one)
    assert at_once.counts() == {QUEUED: 20 - len(ids), RUNNING: 1, COMPLETED: len(ids), FAILED: 0}
    assert at_once.ids_in(COMPLETED) == sorted(ids)
    assert at_once.outcomes.places == [("c9", (3,)), ("c1", (0, 1))], "each place once"


def test_a_ledger_of_ids_with_holes_keeps_a_row_each():
    ledger = Ledger([Task(7, "./a"), Task(3, "./b"), Task(999_999_999, "./c")])
    ledger.started(999_999_999, "c1", (0,), 5.0)
    ledger.finished(999_999_999, 1, 5.0, 1.0)
    ledger.started(3, "c1", (1,), 6.0)
    assert ledger.ids_in(QUEUED) == [7] and ledger.ids_in(RUNNING, FAILED) == [3, 999_999_999]
    assert [r.id for r in ledger.told()] == [3, 999_999_999] and ledger.state(999_999_999) == FAILED
    assert len(ledger.outcomes.state) == 3, "a row a task, not a byte an id"
    with pytest.raises(KeyError):
        ledger.started(4, "c1", (0,), 1.0)


@pytest.mark.parametrize("ids", [range(12), [40, 3, 7, 8, 9, 100, 2, 1]])
def test_the_runs_of_ids_in_a_state_are_those_of_its_ids(ids):
    """What --status prints (``0-4 7``) found in the state column, as the ids it lists."""
    ledger = Ledger([Task(i, f"./p {i}") for i in ids])
    assert ledger.id_runs(QUEUED) == runs_of(ids) and ledger.id_runs(RUNNING) == []
    for n, task_id in enumerate(ids):
        if n % 4 != 3:
            ledger.started(task_id, "c1", (0,), 1.0)
        if n % 4 in (0, 1):
            ledger.finished(task_id, n % 2, 1.0, 1.0)
    for state in STATES:
        assert ledger.id_runs(state) == runs_of(ledger.ids_in(state)), state
    assert runs_text(ledger.id_runs(COMPLETED)) == compress(ledger.ids_in(COMPLETED))


def test_the_runtimes_a_resume_starts_its_estimates_from_are_grouped_by_needs():
    ledger = Ledger([Task(i, f"./p {i}", cores=4 if i in (2, 5) else 1) for i in range(7)])
    for task_id, code, runtime in ((0, 0, 3.0), (1, 0, 5.0), (2, 0, 40.0), (3, 1, 99.0), (5, 0, 60.0)):
        ledger.started(task_id, "c1", (0,), 1.0)
        ledger.finished(task_id, code, 1.0, runtime)
    ledger.started(6, "c1", (0,), 1.0)
    groups = {(task.cores, tuple(times)) for task, times in ledger.completed_runtimes()}
    assert groups == {(1, (3.0, 5.0)), (4, (40.0, 60.0))}, "completed only: a failure says nothing of a runtime"
    assert make_ledger(3).completed_runtimes() == []


# -- statistics ------------------------------------------------------------------
def test_compute_statistics():
    stats = compute(finished_ledger(), elapsed=10.0, pool_size=4)
    assert stats.completed == 4
    assert stats.aborted == 1
    assert stats.not_run == 1
    assert stats.total_time == pytest.approx(20.0)  # elapsed_before included
    assert stats.max_runtime == pytest.approx(6.0)
    assert stats.avg_runtime == pytest.approx(4.0)  # (4+2+6+3+5)/5: failed tasks count too
    assert stats.aggregate == pytest.approx(20.0)
    assert stats.speedup == pytest.approx(1.0)
    assert stats.pool_size == 4
    # slot (c1, 0) ran tasks 0, 3 and 4; (c1, 1) task 1; (c2, 0) task 2
    assert stats.per_slot_max == 3
    assert stats.per_slot_avg == pytest.approx(5 / 4)
    assert stats.runtime_p50 == pytest.approx(4.0)
    assert 5.0 < stats.runtime_p99 <= 6.0


def test_compute_counts_running_tasks_as_not_run_and_skips_their_runtime():
    ledger = make_ledger(2)
    ledger.started(0, "c1", (0,), 1.0)
    ledger.finished(0, 0, 1.0, 8.0)
    ledger.started(1, "c1", (1,), 2.0)
    stats = compute(ledger, elapsed=4.0, pool_size=2)
    assert (stats.completed, stats.aborted, stats.not_run) == (1, 0, 1)
    assert stats.aggregate == pytest.approx(8.0)
    assert stats.speedup == pytest.approx(2.0)


def test_compute_on_nothing_run():
    stats = compute(make_ledger(3), elapsed=0.0, pool_size=0)
    assert (stats.completed, stats.aborted, stats.not_run) == (0, 0, 3)
    assert stats.max_runtime == stats.avg_runtime == stats.aggregate == stats.speedup == 0.0
    assert stats.per_slot_max == 0 and stats.per_slot_avg == 0.0
    assert not any(math.isnan(v) for v in (stats.runtime_p50, stats.runtime_p99))


def test_compute_with_many_records_is_vectorised_and_exact():
    n = 20_000
    ledger = make_ledger(n)
    for i in range(n):
        ledger.started(i, f"n{i % 10}", (i % 4,), float(i))
        ledger.finished(i, 0, float(i), float(i % 100))
    stats = compute(ledger, elapsed=1000.0, pool_size=40)
    assert stats.completed == n
    assert stats.aggregate == pytest.approx(sum(i % 100 for i in range(n)))
    assert stats.max_runtime == 99.0
    assert stats.per_slot_max == n // 20  # 10 nodes x 4 first cores: 20 distinct slots
    assert stats.per_slot_avg == pytest.approx(n / 40)


def test_requeued_task_that_never_ran_again_is_not_counted_as_executed():
    ledger = make_ledger(2)
    ledger.started(0, "c1", (0,), 1.0)
    ledger.finished(0, 0, 1.0, 1.0)
    ledger.started(1, "lost", (0,), 1.0)
    ledger.requeued(1)  # its node died; the run then stopped before it ran again
    stats = compute(ledger, elapsed=2.0, pool_size=2)
    reloaded = queuestate.parse(
        queuestate.render(ledger, queuestate.StateMeta(run="ab"), CoresSpec("fixed", 1)), "qs", CoresSpec("fixed", 1)
    ).ledger
    assert compute(reloaded, elapsed=2.0, pool_size=2).per_slot_avg == pytest.approx(0.5)
    assert stats.per_slot_avg == pytest.approx(0.5)  # one task executed on a pool of 2 slots


@pytest.mark.parametrize("values", [[3.0], [1.0, 2.0], [5.0, 1.0, 4.0, 2.0, 3.0], [0.1 * i * i for i in range(101)]])
@pytest.mark.parametrize("q", [0, 1, 50, 90, 99, 100])
def test_percentile_interpolates_as_numpy_does(values, q):
    np = pytest.importorskip("numpy")
    assert percentile(sorted(values), q) == pytest.approx(float(np.percentile(values, q)))


@pytest.mark.parametrize("seed", range(8))
def test_the_columns_agree_with_a_record_a_task_under_random_facts(seed: int):
    """The ledger's columns against the simplest model of it (a dict of records, as it was): random
    starts, ends, requeues and resumes, on a table by id and on one with holes."""
    import random

    rng = random.Random(seed)
    ids = list(range(40)) if seed % 2 else rng.sample(range(1000), 40)
    ledger = Ledger([Task(i, f"./p {i}", line=n + 1) for n, i in enumerate(ids)])
    model: dict[int, tuple] = {}  # id -> (state, exit, start, runtime, host, core_ids)
    for step in range(400):
        task_id, roll = rng.choice(ids), rng.random()
        if roll < 0.4:
            place = (f"c{rng.randrange(3)}", tuple(sorted(rng.sample(range(8), rng.randrange(1, 3)))))
            ledger.started(task_id, *place, float(step))
            model[task_id] = (RUNNING, None, float(step), None, *place)
        elif roll < 0.75:
            code = rng.choice((0, 0, 1, -9))
            ledger.finished(task_id, code, float(step), step / 8)
            host, core_ids = model[task_id][4:] if task_id in model else (None, ())
            model[task_id] = (COMPLETED if code == 0 else FAILED, code, float(step), step / 8, host, core_ids)
        elif roll < 0.95:
            ledger.requeued(task_id)
            model.pop(task_id, None)
        else:
            again = ledger.to_run(rerun_failed=rng.random() < 0.5)
            ledger.requeue(again)
            for other in again.ids:
                model.pop(other, None)
        if step % 40 == 0 or step == 399:
            for task_id in ids:
                rec = ledger.records[task_id]
                assert (rec.state, rec.exit_code, rec.start, rec.runtime, rec.host, rec.core_ids) == model.get(
                    task_id, (QUEUED, None, None, None, None, ())
                ), (step, task_id)
            for state in STATES:
                expected = sorted(i for i in ids if model.get(i, (QUEUED,))[0] == state)
                assert sorted(ledger.ids_in(state)) == expected and ledger.id_runs(state) == runs_of(expected)
                assert ledger.counts()[state] == len(expected)
            assert sorted(ledger.runtimes(COMPLETED, FAILED)) == sorted(
                r[3] for r in model.values() if r[0] in (COMPLETED, FAILED)
            )


def test_tasks_per_slot_count_the_tasks_that_ended_not_those_still_running():
    """PyLauncher counted a task on its slot when it ended (the slot's release): 10 completed and 2 interrupted
    on 2 slots said "max: 6, avg: 6" here (a user walk)."""
    ledger = make_ledger(12)
    for i in range(10):
        ledger.started(i, "c1", (i % 2,), float(i))
        ledger.finished(i, 0, float(i), 0.5)
    ledger.started(10, "c1", (0,), 11.0)
    ledger.started(11, "c1", (1,), 11.0)
    stats = compute(ledger, elapsed=12.0, pool_size=2)
    assert (stats.per_slot_max, stats.per_slot_avg) == (5, 5.0)


def test_tasks_per_slot_of_a_sweep_resumed_on_other_nodes_average_over_every_slot_used():
    """A sweep of 30 run 24 on node1+node2's 4 slots, then resumed on node3+node4's 4 slots for
    the other 6 said "max: 6, avg: 7.5" (a Slurm user walk): the whole sweep's tasks were divided by
    this run's pool only. The average is over every slot the sweep used, never above the max."""
    ledger = make_ledger(30)
    for i in range(30):
        host = ("n1", "n2")[i % 2] if i < 24 else ("n3", "n4")[i % 2]
        ledger.started(i, host, ((i // 2) % 2,), float(i))
        ledger.finished(i, 0, float(i), 1.0)
    stats = compute(ledger, elapsed=8.0, pool_size=4)
    assert stats.per_slot_max == 6
    assert stats.per_slot_avg == pytest.approx(30 / 8)
    assert stats.per_slot_avg <= stats.per_slot_max
