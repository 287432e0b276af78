"""The cyclic garbage collector while rank 0 reads or runs a sweep: no full collections.

Reading a queuestate and setting a sweep up (:func:`no_full_collections`) and running it
(:func:`young_collections_only`) make objects that live long and are never garbage; a full
collection walks them all and frees nothing.

While a sweep runs, the young generations only. A run makes a few objects a task (its Start
and Task, its ledger record, its end's report), and most of them live long: the records
until the run ends, the running set for a round of tasks. CPython's full collections walk
every tracked object that is not frozen, each time the old generation has grown by a
quarter; measured with ``benchmarks/master_ceiling.py`` (200,000 instant tasks on 64 nodes),
full collections took a fifth of rank 0's CPU even with everything built before the run
frozen, and their cost per task grows with the running set (``benchmarks/simulate.py``). The
master makes no cyclic garbage a task (measured: a collection after 50,000 tasks finds
none), so during the run only the young generations are collected -- the cycles that die
young, which are all the ones there are -- and the old generation waits for the end. The
young generation is collected every :data:`YOUNG` allocations, not CPython's 700: a burst's
objects (its events, actions and facts) are then mostly gone before a collection comes,
instead of walked while alive -- and the walk touches what they point to, such as the Start
of a task that ended, made a round of tasks ago: a tenth of a decision at 100,000 cores
(``simulate.py``: 142-151k decisions/s with 700, 161-170k with 5,000 or 50,000, as many as
with no collector at all). Everything is as it was afterwards, for scripts that call the
API.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager

#: Net allocations between collections of the young generation during a run (CPython's default: 700).
YOUNG = 10_000
#: The old generation's threshold during a run: collections of the middle generation before a full
#: one.  One is counted each ~YOUNG x 10 (CPython's middle threshold) net allocations, so this is
#: never reached.
NEVER = 2**30


@contextmanager
def young_collections_only() -> Iterator[None]:
    """Freeze what exists (the tasks, the ledger, the scheduler's maps), collect only the young
    generations until the block ends, then put the collector back as it was."""
    young, middle, old = gc.get_threshold()
    gc.freeze()
    gc.set_threshold(max(young, YOUNG), middle, NEVER)
    try:
        yield
    finally:
        gc.set_threshold(young, middle, old)
        gc.unfreeze()


@contextmanager
def no_full_collections() -> Iterator[None]:
    """No full collection until the block ends; the young generations as they were.

    For reading a sweep (a queuestate and its journal) and setting one up: an object or more
    for every task with a story (its record, its slots), kept and never garbage, while
    CPython collects the old generation each time it has grown by a quarter, walking every
    object there is.  Measured: one full collection took 219 ms of a ``--resume`` of a
    million tasks (~1.6-2 s), another 46 ms in the set-up after it; both freed nothing.
    """
    young, middle, old = gc.get_threshold()
    gc.set_threshold(young, middle, NEVER)
    try:
        yield
    finally:
        gc.set_threshold(young, middle, old)
