"""Compressed id ranges (mpilauncher.core.ranges)."""

from __future__ import annotations

import random

import pytest

from mpilauncher.core.ranges import compress, expand


@pytest.mark.parametrize(
    ("ids", "text"),
    [
        ([], ""),
        ([5], "5"),
        ([0, 1], "0-1"),
        ([0, 2], "0 2"),
        (list(range(45)) + [47, 48, 50], "0-44 47-48 50"),
        ([9, 3, 4, 1, 2], "1-4 9"),
        ((c for c in (3, 2, 1)), "1-3"),
        ({10, 12, 11, 20}, "10-12 20"),
    ],
)
def test_compress(ids, text):
    assert compress(ids) == text


@pytest.mark.parametrize(
    ("text", "ids"),
    [("", []), ("  ", []), ("7", [7]), ("0-3", [0, 1, 2, 3]), ("0-1 5 8-9", [0, 1, 5, 8, 9]), ("4-4", [4])],
)
def test_expand(text, ids):
    assert expand(text) == ids


def test_expand_rejects_garbage():
    with pytest.raises(ValueError):
        expand("1-x")
    with pytest.raises(ValueError):
        expand("a")


@pytest.mark.parametrize("seed", range(20))
def test_round_trip_random_sets(seed):
    rng = random.Random(seed)
    universe = rng.choice([10, 100, 5000])
    ids = {rng.randrange(universe) for _ in range(rng.randrange(0, universe))}
    text = compress(ids)
    assert expand(text) == sorted(ids)
    # canonical: as few runs as possible, and compressing again changes nothing
    runs = text.split()
    assert len(runs) == sum(1 for i in ids if i - 1 not in ids)
    assert compress(expand(text)) == text


def test_compress_of_a_dense_range_is_one_run():
    assert compress(range(100_000)) == "0-99999"
    assert len(expand("0-99999")) == 100_000
