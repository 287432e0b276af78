"""The queue of one shape (mpilauncher.core.queues): lowest id first, whatever was queued again."""

from __future__ import annotations

import heapq
import random

import pytest

from mpilauncher.core.queues import TaskQueue


def test_ids_given_in_any_order_come_out_lowest_first():
    queue = TaskQueue([7, 3, 9, 1])
    assert (len(queue), queue.head()) == (4, 1)
    assert [queue.pop() for _ in range(4)] == [1, 3, 7, 9] and not queue


def test_an_id_queued_again_goes_before_the_higher_fresh_ones():
    queue = TaskQueue(range(10))
    taken = [queue.pop() for _ in range(4)]  # 0-3 start
    queue.push(2)  # a standby asked back, a retry
    queue.push(0)
    assert sorted(queue) == [0, 2, 4, 5, 6, 7, 8, 9] and len(queue) == 8
    assert [queue.pop() for _ in range(4)] == [0, 2, 4, 5] and taken == [0, 1, 2, 3]
    queue.admit(range(10, 12))  # a sweep that grows at its end
    assert [queue.pop() for _ in range(len(queue))] == [6, 7, 8, 9, 10, 11]


def test_the_last_fresh_id_gone_the_queued_again_ones_still_come_out():
    queue = TaskQueue([0, 1])
    queue.pop(), queue.pop()
    queue.push(1), queue.push(0)
    assert (queue.head(), queue.pop(), queue.pop(), len(queue)) == (0, 0, 1, 0)


@pytest.mark.parametrize("seed", range(20))
def test_it_agrees_with_one_heap_of_every_id(seed):
    """What it replaces: a heap of every queued id.  Random takes and re-queues, as a sweep with
    retries and standbys asked back makes them."""
    rng = random.Random(seed)
    ids = rng.sample(range(500), 200)
    queue, heap, taken = TaskQueue(ids), sorted(ids), []
    for _ in range(2_000):
        if heap and (rng.random() < 0.6 or not taken):
            assert queue.head() == heap[0]
            taken.append(queue.pop())
            assert taken[-1] == heapq.heappop(heap)
        elif taken:
            again = taken.pop(rng.randrange(len(taken)))
            queue.push(again)
            heapq.heappush(heap, again)
        assert len(queue) == len(heap) and sorted(queue) == sorted(heap)


def test_a_scheduler_queues_groups_of_one_shape_in_one_queue_in_id_order():
    """Tasks whose needs differ only in their expected time (``T,`` prefixes) are groups of their own that
    share one shape: one queue of all their ids, lowest first, made in one pass (not a list copied per group)."""
    from mpilauncher.core.scheduler import Scheduler
    from mpilauncher.core.tasks import CoresSpec, parse_commandlines

    text = "".join(f"{1 + (i * 7919) % 1000 * 0.01:.2f},true\n" for i in range(3000))
    scheduler = Scheduler(parse_commandlines(text, "cl", CoresSpec("fixed", 1), expected="file"))
    (queue,) = scheduler._queues.values()
    assert list(queue.fresh) == list(range(3000))
