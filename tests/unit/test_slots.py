"""Best-fit core placement (mpilauncher.core.slots.SlotPool)."""

from __future__ import annotations

import random

import pytest

from mpilauncher.core.slots import SlotPool


def pool_of(*sizes: int) -> SlotPool:
    pool = SlotPool()
    for index, cores in enumerate(sizes):
        pool.add_node(index, f"n{index}", cores)
    return pool


def check(pool: SlotPool, held: dict[int, set[int]]) -> None:
    """Cross-check the pool against what the test knows is handed out."""
    free = 0
    total = 0
    for index, node in pool.nodes.items():
        if not node.alive:
            assert node.free == []
            continue
        taken = held.get(index, set())
        assert not taken & set(node.free), f"core both held and free on node {index}"
        assert len(node.free) == len(set(node.free)), "free list has duplicates"
        assert set(node.free) | taken == set(range(node.cores)), "cores lost or invented"
        free += len(node.free)
        total += node.cores
    assert pool.free_cores == free
    assert pool.total_cores == total
    # the live count per bucket matches the nodes' actual free counts
    live = [0] * len(pool._live)
    for node in pool.nodes.values():
        if node.alive:
            live[node.free_count] += 1
    assert live == pool._live


def test_empty_pool():
    pool = SlotPool()
    assert pool.free_cores == pool.total_cores == 0
    assert pool.largest_node == 0
    assert not pool.fits(1)
    assert pool.take(1) is None
    assert pool.take_whole_node() is None
    assert not pool.has_idle_node()


def test_add_node_rejects_duplicates_and_empty_nodes():
    pool = pool_of(4)
    with pytest.raises(ValueError, match="twice"):
        pool.add_node(0, "again", 4)
    with pytest.raises(ValueError, match="no cores"):
        pool.add_node(1, "empty", 0)
    assert pool.total_cores == 4


def test_lowest_core_ids_first_and_accounting():
    pool = pool_of(8)
    assert pool.take(3) == (0, (0, 1, 2))
    assert pool.take(2) == (0, (3, 4))
    assert (pool.free_cores, pool.total_cores) == (3, 8)
    pool.release(0, (0, 1, 2))
    assert pool.free_cores == 6
    # freed low ids are handed out again before higher ones
    assert pool.take(4) == (0, (0, 1, 2, 5))
    check(pool, {0: {0, 1, 2, 5, 3, 4}})


def test_best_fit_takes_fullest_node_that_fits():
    pool = pool_of(8, 8, 8)
    assert pool.take(6)[0] == 0  # node 0 now has 2 free
    assert pool.take(5)[0] == 1  # node 1 now has 3 free
    # 2 cores: node 0 (2 free) fits most tightly, even though node 1 and 2 have more
    assert pool.take(2) == (0, (6, 7))
    # 3 cores: node 1 (3 free) beats idle node 2
    assert pool.take(3) == (1, (5, 6, 7))
    assert pool.take(1) == (2, (0,))
    check(pool, {0: set(range(8)), 1: set(range(8)), 2: {0}})


def test_ties_go_to_the_lowest_node_index():
    pool = SlotPool()
    for index in (5, 2, 9):
        pool.add_node(index, f"n{index}", 4)
    assert pool.take(1)[0] == 2
    assert pool.take(4)[0] == 5
    assert pool.take(4)[0] == 9
    assert pool.take(1)[0] == 2


def test_fits_and_take_respect_node_boundaries():
    pool = pool_of(4, 4)
    assert pool.free_cores == 8
    assert not pool.fits(5)  # 8 free cores, but not on one node
    assert pool.take(5) is None
    assert pool.fits(4)
    pool.take(3)
    pool.take(3)
    assert pool.free_cores == 2
    assert not pool.fits(2)  # one free core on each node
    assert pool.take(2) is None
    assert pool.fits(1)
    assert pool.largest_node == 4


def test_whole_node_taking():
    pool = pool_of(4, 16, 4)
    pool.take(1)  # lands on node 0 (best fit among equals: lowest index)
    assert pool.has_idle_node()
    assert pool.take_whole_node() == (1, tuple(range(16)))
    assert pool.take_whole_node() == (2, (0, 1, 2, 3))
    assert not pool.has_idle_node()
    assert pool.take_whole_node() is None  # node 0 is partly busy
    pool.release(0, (0,))
    assert pool.take_whole_node() == (0, (0, 1, 2, 3))
    assert pool.free_cores == 0


def test_release_makes_node_idle_again():
    pool = pool_of(2)
    node, cores = pool.take(2)
    assert not pool.has_idle_node()
    pool.release(node, cores)
    assert pool.has_idle_node()
    assert pool.free_cores == pool.total_cores == 2


def test_remove_node():
    pool = pool_of(4, 8)
    held = pool.take(3)  # best fit: node 0
    assert held[0] == 0
    pool.remove_node(0)
    assert (pool.total_cores, pool.free_cores) == (8, 8)
    assert pool.largest_node == 8
    pool.remove_node(0)  # twice: no effect
    assert (pool.total_cores, pool.free_cores) == (8, 8)
    pool.release(*held)  # late release on a lost node: ignored
    assert (pool.total_cores, pool.free_cores) == (8, 8)
    # nothing is ever placed on the lost node again
    for _ in range(8):
        assert pool.take(1)[0] == 1
    assert pool.take(1) is None
    assert pool.take_whole_node() is None
    pool.remove_node(1)
    assert (pool.total_cores, pool.free_cores, pool.largest_node) == (0, 0, 0)
    assert not pool.fits(1)


def test_removed_idle_node_is_not_offered_whole():
    pool = pool_of(4, 4)
    pool.remove_node(0)
    assert pool.take_whole_node()[0] == 1
    assert pool.take_whole_node() is None


@pytest.mark.parametrize("seed", range(6))
def test_random_stress_no_core_twice_and_heaps_bounded(seed):
    rng = random.Random(seed)
    pool = SlotPool()
    held: dict[int, set[int]] = {}
    grants: list[tuple[int, tuple[int, ...]]] = []
    next_index = 0
    for _ in range(12):
        pool.add_node(next_index, f"n{next_index}", rng.choice([1, 2, 4, 8, 16, 48]))
        next_index += 1
    for step in range(3000):
        roll = rng.random()
        if roll < 0.45 and grants:
            node, cores = grants.pop(rng.randrange(len(grants)))
            pool.release(node, cores)
            if pool.nodes[node].alive:
                held[node] -= set(cores)
        elif roll < 0.985:
            whole = rng.random() < 0.1
            width = rng.choice([1, 1, 1, 2, 3, 4, 8, 16, 48])
            # fits() predicts take()
            predicted = pool.fits(width) if not whole else pool.has_idle_node()
            got = pool.take_whole_node() if whole else pool.take(width)
            assert (got is not None) == predicted
            if got is not None:
                node, cores = got
                info = pool.nodes[node]
                assert info.alive
                assert len(cores) == (info.cores if whole else width)
                assert list(cores) == sorted(cores)
                assert not set(cores) & held.setdefault(node, set()), f"core handed out twice (step {step})"
                held[node] |= set(cores)
                grants.append(got)
        elif roll < 0.993:
            alive = [i for i, n in pool.nodes.items() if n.alive]
            if len(alive) > 3:
                lost = rng.choice(alive)
                pool.remove_node(lost)
                held.pop(lost, None)
        else:
            pool.add_node(next_index, f"n{next_index}", rng.choice([1, 4, 16, 32]))
            next_index += 1
        check(pool, held)
        bound = 2 * len(pool.nodes) + 16
        assert all(len(bucket) <= bound for bucket in pool._buckets)
        assert len(pool._idle) <= bound
    # give everything back: every live node is whole again
    for node, cores in grants:
        pool.release(node, cores)
    assert pool.free_cores == pool.total_cores == sum(n.cores for n in pool.nodes.values() if n.alive)
    check(pool, {})


def test_best_fit_matches_a_brute_force_choice():
    rng = random.Random(1234)
    pool = pool_of(*(rng.choice([2, 4, 8, 12]) for _ in range(20)))
    grants = []
    for _ in range(2000):
        if grants and rng.random() < 0.4:
            pool.release(*grants.pop(rng.randrange(len(grants))))
            continue
        width = rng.randint(1, 12)
        candidates = [(n.free_count, n.index) for n in pool.nodes.values() if n.free_count >= width]
        got = pool.take(width)
        if not candidates:
            assert got is None
            continue
        expected_node = min(candidates)[1]
        assert got is not None and got[0] == expected_node
        grants.append(got)


def test_heaps_stay_small_under_churn_on_one_node():
    pool = pool_of(4, 4)
    for i in range(5000):
        node, cores = pool.take(1 + i % 4)
        pool.release(node, cores)
        if i % 7 == 0:
            pool.release(*pool.take_whole_node())
    assert all(len(bucket) <= 2 * len(pool.nodes) + 16 for bucket in pool._buckets)
    assert len(pool._buckets[4]) <= 2 * 2 + 16
    assert len(pool._idle) <= 2 * len(pool.nodes) + 16
    check(pool, {})
