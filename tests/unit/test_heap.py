"""The collector while rank 0 runs: young generations only, and everything as it was afterwards."""

from __future__ import annotations

import gc
import weakref

import pytest

from mpilauncher.runtime.heap import NEVER, YOUNG, young_collections_only


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
