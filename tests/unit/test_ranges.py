"""Compressed id ranges (mpilauncher.core.ranges)."""

from __future__ import annotations

import random

import pytest

from mpilauncher.core.ranges import compress, expand, run_breaks


@pytest.mark.parametrize(
    ("ids", "text"),
    [
        ([], ""),
        ([5], "5"),
        ((5,), "5"),
        ((0,), "0"),
        ((3, 2), "2-3"),
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
    assert expand(text, largest=10) == ids


def test_expand_rejects_garbage():
    with pytest.raises(ValueError):
        expand("1-x", largest=10)
    with pytest.raises(ValueError):
        expand("a", largest=10)


@pytest.mark.parametrize("seed", range(20))
def test_round_trip_random_sets(seed):
    rng = random.Random(seed)
    universe = rng.choice([10, 100, 5000])
    ids = {rng.randrange(universe) for _ in range(rng.randrange(0, universe))}
    text = compress(ids)
    assert expand(text, largest=universe) == sorted(ids)
    # canonical: as few runs as possible, and compressing again changes nothing
    runs = text.split()
    assert len(runs) == sum(1 for i in ids if i - 1 not in ids)
    assert compress(expand(text, largest=universe)) == text


def test_compress_of_a_dense_range_is_one_run():
    assert compress(range(100_000)) == "0-99999"
    assert len(expand("0-99999", largest=99_999)) == 100_000


@pytest.mark.parametrize(
    "text",
    [
        "0-999999999999",  # a trillion ids: refused before anything is allocated
        "65536",
        "0-65536",
        "5-3",
        "1,1",
        "0-3 2",
        "0-65535 0-65535",
        "-1",
        "+1",
        "1_0",
        "1-",
        "\u0661",  # a digit, but not an ASCII one
        "9" * 5000,
    ],
)
def test_expand_refuses_ids_beyond_the_bound_reversed_or_repeated(text):
    with pytest.raises(ValueError):
        expand(text, largest=65_535)


def test_expand_of_many_copies_of_the_widest_range_stops_at_the_bound():
    with pytest.raises(ValueError, match="more than 65,536 ids at once"):
        expand("0-65535," * 100, largest=65_535)
    assert len(expand("0-65535", largest=65_535)) == 65_536


def test_expand_bounds_the_count_apart_from_the_largest_id():
    """``output WORKDIR 0-1000000000``: ids may be that large, but a billion of them at once was a list of
    a billion ints being built (a user walk); the count has a bound of its own."""
    assert expand("999999990-999999999", largest=10**9, most=10) == list(range(999_999_990, 10**9))
    with pytest.raises(ValueError, match="'0-1000000000': more than 1,000,000 ids at once"):
        expand("0-1000000000", largest=10**9, most=1_000_000)


@pytest.mark.parametrize(
    ("ids", "breaks"),
    [([], []), ([7], []), ([3, 4, 5], []), ([0, 1, 3, 4, 9], [2, 4]), ([5, 6, 0, 1], [2]), ([2, 2, 1], [1, 2])],
)
def test_run_breaks_are_where_an_id_is_not_the_one_before_plus_one(ids, breaks):
    assert run_breaks(ids) == breaks
    assert run_breaks(ids, 1) == breaks[:1], "at most as many as asked"
