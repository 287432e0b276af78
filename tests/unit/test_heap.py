"""The collector while rank 0 runs: young generations only, and everything as it was afterwards."""

from __future__ import annotations

import gc
import weakref

import pytest

from mpilauncher.heap import NEVER, YOUNG, young_collections_only


class Node:
    def __init__(self) -> None:
        self.me = self  # a cycle: only the cyclic collector frees it


def test_inside_a_run_what_existed_is_frozen_and_no_full_collection_comes():
    before = gc.get_threshold()
    with young_collections_only():
        assert gc.get_freeze_count() > 0, "the tasks, ledger and maps built before the run are out of sight"
        assert gc.get_threshold() == (max(before[0], YOUNG), before[1], NEVER), "young: fewer, larger collections"
        young = weakref.ref(Node())
        gc.collect(1)  # what the collector does on its own every YOUNG allocations
        assert young() is None, "a cycle that dies young is still collected during the run"
        dying = [weakref.ref(Node()) for _ in range(3)]
        kept = [[] for _ in range(3 * YOUNG)]  # net allocations enough for the collector to come on its own
        del kept
        assert [ref() for ref in dying] == [None] * 3, "the collector still comes on its own"
    assert gc.get_threshold() == before and gc.get_freeze_count() == 0


def test_the_collector_is_put_back_when_the_run_fails():
    before = gc.get_threshold()
    with pytest.raises(RuntimeError), young_collections_only():
        raise RuntimeError("the master failed")
    assert gc.get_threshold() == before and gc.get_freeze_count() == 0


def test_a_script_that_set_its_own_thresholds_gets_them_back():
    before = gc.get_threshold()
    gc.set_threshold(50_000, 20, 30)
    try:
        with young_collections_only():
            assert gc.get_threshold() == (50_000, 20, NEVER), "a script's larger young threshold is kept"
        assert gc.get_threshold() == (50_000, 20, 30)
    finally:
        gc.set_threshold(*before)


def test_no_full_collection_while_a_queuestate_is_read(tmp_path) -> None:
    """A resume of a million tasks lost 219 ms to a full collection midway through the reading, which
    freed nothing.  Here the collector is set to come often, and only the young generations may."""
    from mpilauncher.core.tasks import CoresSpec
    from mpilauncher.persistence.store import load_state
    from tests.unit.test_journal import new_store

    store = new_store(tmp_path, n=3000)
    store.open(now=0.0)
    for task_id in range(2000):  # tasks with a story: a record each, read back from the snapshot and journal
        store.started(task_id, "c1", (task_id % 4,), 100.0)
        if task_id % 2:
            store.finished(task_id, 0, 100.0, 1.0)
    store.snapshot(0.0, 1.0)
    for task_id in range(2000, 2500):
        store.started(task_id, "c1", (0,), 101.0)
    store.flush(1.0, 2.0)
    full = {"reading": 0, "after": 0}
    phase = ["reading"]

    def seen(step: str, info: dict) -> None:
        if step == "start" and info["generation"] == 2:
            full[phase[0]] += 1

    before = gc.get_threshold()
    gc.freeze()  # what exists is out of sight, and the full collection below counts none of it as long-lived:
    gc.collect()  # the reading's own objects alone decide when the next full collection is due
    gc.set_threshold(100, 2, 2)
    gc.callbacks.append(seen)
    try:
        loaded = load_state(tmp_path / "queuestate", CoresSpec("fixed", 1))
        assert gc.get_threshold() == (100, 2, 2), "the collector as it was afterwards"
        phase[0] = "after"
        kept = [[] for _ in range(20_000)]  # as many long-lived objects again: now a full collection comes
        del kept
    finally:
        gc.callbacks.remove(seen)
        gc.set_threshold(*before)
        gc.unfreeze()
    assert loaded.ledger.counts()["completed"] == 1000 and loaded.ledger.counts()["running"] == 1500
    assert full["after"], "the test's collector settings make full collections come (else it proves nothing)"
    assert full["reading"] == 0
