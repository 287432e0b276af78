"""Standby starts (``Scheduler(standby=True)``): tasks sent ahead behind running ones."""

from __future__ import annotations

import heapq
import random

import pytest

from mpilauncher import records
from mpilauncher.core import scheduler as scheduler_module
from mpilauncher.core.events import (
    AgentJoined,
    AgentLost,
    AllDone,
    Promoted,
    Retract,
    Retracted,
    Retried,
    Start,
    StopDispatch,
    TaskFinished,
)
from mpilauncher.core.ledger import COMPLETED, FAILED, QUEUED, RUNNING
from mpilauncher.core.scheduler import STANDBY, InvalidTransition, Scheduler
from mpilauncher.core.states import AS_QUEUED, AS_RUNNING, AS_STANDBY
from mpilauncher.core.tasks import Task
from tests.unit.test_scheduler import join, promoted, step, tasks_of


def standby(*widths, retries: int = 0) -> Scheduler:
    return Scheduler(tasks_of(*widths), retries=retries, standby=True)


def test_standbys_go_out_once_every_core_is_busy_and_more_than_a_round_is_queued():
    sched = standby(*[1] * 10)
    actions = step(sched, *join(2))
    assert actions == [Start(0, 0, (0,)), Start(0, 1, (1,)), Start(0, 2, (0,), after=0), Start(0, 3, (1,), after=1)]
    assert sched.status[2] == sched.status[3] == STANDBY
    assert sched.pool.free_cores == 0


def test_an_end_promotes_the_standby_onto_the_same_cores_and_sends_the_next():
    sched = standby(*[1] * 10)
    step(sched, *join(2))
    actions = step(sched, TaskFinished(0, 0))
    assert actions == [promoted(2, after=0), Start(0, 4, (0,), after=2)]
    assert (sched.running[2].node, sched.running[2].core_ids) == (0, (0,)) and sched.status[0] == COMPLETED
    assert sched.pool.free_cores == 0  # the core went straight from task 0 to task 2


def test_no_standby_for_the_last_round():
    sched = standby(*[1] * 4)
    assert [a.after for a in step(sched, *join(2)) if isinstance(a, Start)] == [None, None]
    assert sched.queued_count == 2


def test_disabled_by_default():
    sched = Scheduler(tasks_of(*[1] * 10))
    assert all(a.after is None for a in step(sched, *join(2)) if isinstance(a, Start))


def test_a_standby_behind_a_long_task_is_asked_back_when_cores_free_up():
    sched = standby(*[1] * 6)
    step(sched, *join(2))  # 0, 1 run; 2 waits behind 0, 3 behind 1
    step(sched, TaskFinished(1, 0))  # 3 promoted; queue [4, 5] is not deeper than 2 running: no standby
    actions = step(sched, TaskFinished(3, 0))  # core 1 free: 4 starts there, 5 queued -> nothing fits; 2 waits
    assert actions == [Start(0, 4, (1,))]
    actions = step(sched, TaskFinished(4, 0))  # core 1 free again: 5 starts
    assert actions == [Start(0, 5, (1,))]
    actions = step(sched, TaskFinished(5, 0))  # core 1 free, queue empty, 2 still waits behind 0
    assert actions == [Retract(0, 2)]
    assert sched.status[2] == STANDBY
    assert step(sched, TaskFinished(0, 0)) == [promoted(2, after=0)]  # the node started it first after all
    step(sched, Retracted(2))  # a late answer is ignored
    assert sched.status[2] == RUNNING


def test_a_retracted_standby_starts_on_the_free_core():
    sched = standby(*[1] * 6)
    step(sched, *join(2))
    for tid in (1, 3, 4):
        step(sched, TaskFinished(tid, 0))
    assert step(sched, TaskFinished(5, 0)) == [Retract(0, 2)]
    actions = step(sched, Retracted(2))
    assert actions == [Start(0, 2, (1,))]
    assert 0 not in sched.follower
    assert step(sched, TaskFinished(0, 0)) == []  # core 0 freed, nothing left to run
    assert step(sched, TaskFinished(2, 0)) == [AllDone()]


def test_standby_never_jumps_ahead_of_a_lower_id_task_of_another_shape():
    sched = standby(1, 1, 2, *[1] * 10)  # task 2 needs both cores
    actions = step(sched, *join(2))
    assert [a.task_id for a in actions] == [0, 1]  # task 2 must wait; nothing goes ahead of it


def test_failed_predecessor_is_retried_and_its_standby_still_runs():
    sched = standby(*[1] * 10, retries=1)
    step(sched, *join(2))
    actions = step(sched, TaskFinished(0, 1))
    assert actions[:2] == [promoted(2, after=0), Retried(0, 1)]
    # the retry is the lowest queued id: next behind 2, as the second attempt
    assert actions[2:] == [Start(0, 0, (0,), after=2, attempt=2)]


def test_lost_node_requeues_its_standbys():
    sched = standby(*[1] * 12)
    step(sched, *join(2, 2))
    assert set(sched.waiting) == {4, 5, 6, 7}
    actions = step(sched, AgentLost(0))
    assert not {t for t, start in sched.waiting.items() if start.node == 0}
    assert sched.status[0] == sched.status[1] == QUEUED or any(isinstance(a, Start) for a in actions)
    for tid in (4, 5):  # the standbys behind node 0's tasks 0 and 1 are queued again
        assert sched.status[tid] in (QUEUED, STANDBY)
        assert tid not in sched.waiting or sched.waiting[tid].after not in (0, 1)


def test_stop_requeues_standbys_and_promotes_nothing():
    sched = standby(*[1] * 10)
    step(sched, *join(2))
    step(sched, StopDispatch())
    assert sched.status[2] == sched.status[3] == QUEUED and not sched.waiting
    assert step(sched, TaskFinished(0, 0)) == []
    assert step(sched, TaskFinished(1, 0)) == [AllDone()]


def test_gpu_standby_inherits_the_predecessors_gpus():
    tasks = [Task(i, f"t {i}", 1, gpus=1) for i in range(8)]
    sched = Scheduler(tasks, standby=True)
    actions = step(sched, AgentJoined(0, "g", 4, gpus=2))
    follow = [a for a in actions if isinstance(a, Start) and a.after is not None]
    gpus = {tid: start.gpu_indices for tid, start in sched.running.items()}
    assert [(a.task_id, a.after, a.gpu_indices) for a in follow] == [(2, 0, gpus[0]), (3, 1, gpus[1])]
    step(sched, TaskFinished(0, 0))
    assert sched.running[2].gpu_indices == follow[0].gpu_indices and 0 not in sched.running


def test_mpi_tasks_never_stand_by():
    tasks = [Task(i, f"t {i}", 2, mpi=True) for i in range(10)]
    sched = Scheduler(tasks, standby=True)
    assert all(a.after is None for a in step(sched, *join(4)) if isinstance(a, Start))
    assert not sched.waiting


# -- randomized: a node that starts standbys on ends and answers retracts ---------
@pytest.mark.parametrize("seed", range(12))
@pytest.mark.parametrize("layout", ["dense", "far apart"])
def test_random_simulation_with_standby(seed, layout, monkeypatch):
    """``far apart``: ids up to billions (the placements in dicts, not lists) and a line of bare tasks
    compacted at every turn past a handful, so that entries met stale and compaction both happen."""
    rng = random.Random(seed)
    nodes = [rng.choice([2, 4, 8]) for _ in range(12)]
    widths = [rng.choice([1, 1, 1, 2, "node"]) if rng.random() < 0.3 else 1 for _ in range(400)]
    tasks = tasks_of(*widths)
    if layout == "far apart":
        tasks = [records.replace(t, id=t.id * 10_000_019) for t in tasks]
        monkeypatch.setattr(scheduler_module, "BARE_SLACK", 2)
    sched = Scheduler(tasks, retries=1, standby=True)
    assert (type(sched.status.codes) is dict) == (layout == "far apart")
    clock = 0.0
    ends: list[tuple[float, int, int]] = []  # (time, seq, task id)
    seq = 0
    behind: dict[int, int] = {}  # the node's view: predecessor -> standby it will start
    runs = dict.fromkeys((t.id for t in tasks), 0)
    alive = set(range(len(nodes)))
    pending: list = []  # answers the node sends on its next report
    asked: set[int] = set()  # standbys asked back since they were last sent
    done = 0

    def run(tid: int) -> None:
        nonlocal seq
        runs[tid] += 1
        seq += 1
        heapq.heappush(ends, (clock + rng.expovariate(1.0) * rng.choice([0.1, 1, 1, 30]), seq, tid))

    def act(actions) -> None:
        nonlocal done
        for action in actions:
            if isinstance(action, Start):
                assert action.node in alive
                asked.discard(action.task_id)
                if action.after is None:
                    run(action.task_id)
                elif action.after in running_on_node:
                    behind[action.after] = action.task_id
                else:  # the predecessor had already ended when the start arrived
                    run(action.task_id)
                    running_on_node.add(action.task_id)
                    continue
            elif isinstance(action, Retract):
                # asked back once a send, and only while it waits (a task sent ahead again is in the
                # scheduler's line twice until the head passes the earlier entry)
                assert action.task_id not in asked and sched.status[action.task_id] == STANDBY, action
                asked.add(action.task_id)
                standby_of = {t: p for p, t in behind.items()}
                if action.task_id in standby_of:
                    del behind[standby_of[action.task_id]]
                    pending.append(Retracted(action.task_id))
            elif isinstance(action, AllDone):
                done += 1
            if isinstance(action, Start) and action.after is None:
                running_on_node.add(action.task_id)

    running_on_node: set[int] = set()
    act(step(sched, *(AgentJoined(i, f"n{i}", c) for i, c in enumerate(nodes))))
    turn = 0
    while ends or pending:
        turn += 1
        events = pending[:]
        pending.clear()
        if ends:
            clock, _, tid = heapq.heappop(ends)
            if tid in running_on_node:
                running_on_node.discard(tid)
                events.append(TaskFinished(tid, rng.choice([0, 0, 0, 1])))
                follower = behind.pop(tid, None)
                if follower is not None:  # the node starts it before it reports the end
                    run(follower)
                    running_on_node.add(follower)
        if turn == 150 and len(alive) > 1:
            victim = rng.choice(sorted(alive))
            alive.discard(victim)
            doomed = {t for t, start in sched.running.items() if start.node == victim}
            doomed |= {behind[p] for p in doomed if p in behind}
            events = [e for e in events if getattr(e, "task_id", None) not in doomed]
            running_on_node -= doomed
            for pred in [p for p in behind if p in doomed]:
                del behind[pred]
            events.insert(0, AgentLost(victim))
        act(step(sched, *events))
    assert done == 1
    assert all(sched.status[t.id] in (COMPLETED, FAILED) for t in tasks)
    assert not sched.running and not sched.waiting and sched.queued_count == 0
    assert sched.pool.free_cores == sched.pool.total_cores
    assert all(n >= 1 for n in runs.values())


def test_a_standby_stuck_behind_a_long_task_is_asked_back_after_four_rounds():
    sched = standby(*[1] * 40)
    step(sched, *join(2))  # 0 runs long on core 0 (2 waits behind it); 1 and its successors cycle on core 1
    short = 1
    retracts = []
    for _ in range(10):
        actions = step(sched, TaskFinished(short, 0))
        retracts += [a for a in actions if isinstance(a, Retract)]
        short = next(a.task_id for a in actions if isinstance(a, Promoted))
    assert retracts == [Retract(0, 2)]  # after 4 x 2 running = 8 ends, not before
    step(sched, Retracted(2))
    assert sched.status[2] == QUEUED and 0 not in sched.follower  # the long task gets no new standby
    actions = step(sched, TaskFinished(short, 0))
    fast = next(a.task_id for a in actions if isinstance(a, Promoted))
    assert Start(0, 2, (1,), after=fast) in actions  # next in line behind the fast core


def test_a_task_sent_ahead_again_is_asked_back_once_and_only_while_it_waits():
    """A standby promoted, failed and retried is sent ahead again while the entry of its first send is
    still in its shape's line (behind an older standby): it is asked back at most once for that send,
    and only while it waits."""
    sched = standby(*[1] * 60, retries=1)
    step(sched, *join(3))  # 0, 1, 2 run; 3 waits behind 0, 4 behind 1, 5 behind 2
    step(sched, TaskFinished(2, 0))  # 5 promoted (its entry stays in the line, behind 3's); 6 behind 5
    actions = step(sched, TaskFinished(5, 1))  # 5 fails: retried, 6 promoted, 5 sent ahead again behind 6
    assert any(isinstance(a, Retried) and a.task_id == 5 for a in actions)
    assert sched.status[5] == STANDBY and sched.waiting[5].after == 6
    retracts: list[int] = []
    short = 1  # 0 and 6 run on; core 1 cycles, so the standbys behind 0 and 6 grow old
    for _ in range(30):
        actions = step(sched, TaskFinished(short, 0))
        for action in actions:
            if isinstance(action, Retract):
                assert sched.status[action.task_id] == STANDBY and action.task_id not in retracts, action
                retracts.append(action.task_id)
        for tid in retracts:
            if tid in sched.waiting:
                step(sched, Retracted(tid))
        short = next(t for t, start in sched.running.items() if start.core_ids == (1,))
    assert 3 in retracts and 5 in retracts, retracts  # both asked back, once each


def test_the_standby_line_skips_what_was_asked_back_or_left_and_keeps_the_order_of_sends():
    from mpilauncher.core.scheduler import _StandbyLine

    codes = bytearray(16)  # (the scheduler's task states)
    codes[10:14] = bytes([AS_STANDBY]) * 4
    line = _StandbyLine(codes)
    for ends, tid in enumerate((10, 11, 12, 13)):
        line.add(tid, ends)
    assert line.oldest() == 10 and line.sent[0] == 0
    assert line.ask(11) and not line.ask(11)  # asked back from the middle: once
    codes[10] = AS_RUNNING  # promoted: it leaves without a word to the line
    assert line.oldest() == 12 and line.sent[0] == 2 and not line.holds(11)
    assert line.ask_oldest() == 12 and line.ask_oldest() == 13 and line.ask_oldest() is None and not line
    line.left(11)  # its node answered: it waits no more
    codes[11] = AS_QUEUED
    codes[11] = AS_STANDBY  # and it is sent ahead again
    line.add(11, 12)
    assert line.oldest() == 11 and line.sent[0] == 12 and line.ask_oldest() == 11 and not line.holds(11)
    assert line.asked == {11, 12, 13}
    for tid in (11, 12, 13):
        line.left(tid)
    assert not line.asked


def test_ids_far_apart_run_with_standbys_to_the_end():
    """A resume of a PyLauncher queuestate may number its tasks up to 999,999,999: the placements are then
    kept in dicts, not lists as long as the largest id, and take the same reads and writes."""
    ids = [0, 5, 77, 4_000_000, 999_999_998, 999_999_999]
    sched = Scheduler([Task(tid, f"./t {tid}") for tid in ids], standby=True)
    actions = step(sched, *join(1))
    assert actions == [Start(0, 0, (0,)), Start(0, 5, (0,), after=0)]
    ended = []
    while sched.running:
        (tid,) = sched.running
        ended.append(tid)
        step(sched, TaskFinished(tid, 0))
    assert ended == ids and all(state == COMPLETED for state in sched.status.values())
    assert not sched._placed.starts and not sched._placed.behind, "a sparse run forgets the tasks that ended"


@pytest.mark.parametrize("task_id", [-1, 2, 10**12])
def test_an_end_of_an_id_outside_the_run_is_refused_not_taken_for_another_task(task_id):
    """-1 would read the last task's place in a list indexed by id (it runs)."""
    sched = Scheduler(tasks_of(1, 1))
    step(sched, *join(2))
    with pytest.raises(InvalidTransition, match=f"task {task_id} is not a task of this run"):
        sched.handle(TaskFinished(task_id, 0, 0))


def test_the_end_of_a_standby_that_never_started_is_refused():
    sched = standby(*[1] * 6)
    step(sched, *join(1))
    assert sched.status[1] == STANDBY
    with pytest.raises(InvalidTransition, match="task 1 is standby"):
        sched.handle(TaskFinished(1, 0, 0))


@pytest.mark.parametrize("with_standby", [True, False])
def test_the_line_of_tasks_that_could_take_a_standby_stays_short(monkeypatch, with_standby):
    """Tasks join it at their start and leave it only where a standby is sent; with no standby (or
    in the sweep's last round) nothing leaves it that way: it is compacted instead."""
    monkeypatch.setattr(scheduler_module, "BARE_SLACK", 4)
    sched = Scheduler(tasks_of(*[1] * 300), standby=with_standby)
    step(sched, *join(2, 2))
    while sched.running:
        step(sched, *(TaskFinished(tid, 0) for tid in list(sched.running)[:3]))
        (line,) = sched._bare.values()
        assert len(line) <= 2 * 4 + 4 + 3, len(line)
        assert len(set(line)) == len(line)
