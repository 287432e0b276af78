"""Lines made column by column are the lines an f-string per line writes, at every digit boundary."""

from __future__ import annotations

import random
from array import array

import pytest

from mpilauncher.persistence.columnar import digit_columns, queued_text


def per_line(first: int, commands: list[str], numbers) -> str:
    return "\n".join(f"{first + k} line={n}: {c}" for k, (c, n) in enumerate(zip(commands, numbers, strict=True)))


@pytest.mark.parametrize(
    ("first", "after"),
    [(0, 0), (0, 1), (0, 1000), (998, 1003), (999, 1000), (1000, 1001), (9_995, 10_010), (999_998, 1_000_002),
     (123_456_789, 123_458_001), (5, 3)],
)  # fmt: skip
def test_digit_columns_join_to_the_numbers(first, after):
    thousands, rest = digit_columns(first, after)
    assert [a + b for a, b in zip(thousands, rest, strict=True)] == [str(n) for n in range(first, after)]


@pytest.mark.parametrize("first", [0, 1, 997, 999, 1000, 4095, 99_999, 999_000, 1_000_000])
@pytest.mark.parametrize("offset", [1, 2, 1000])
def test_queued_text_of_a_fresh_sweep_is_its_lines(first, offset):
    """Line numbers a range (a file with a task on every line: id + 1; or shifted by a header)."""
    rng = random.Random(first * 7 + offset)
    commands = [f"./prog {rng.randrange(10 ** rng.randrange(1, 9))} --x=é" for _ in range(2500)]
    numbers = range(first + offset, first + offset + len(commands))
    assert queued_text(first, commands, numbers) == per_line(first, commands, numbers)


@pytest.mark.parametrize(
    "numbers",
    [[3, 7, 1000, 123456], [998, 999, 1000, 1001], [1, 1, 3, 4], [5, 4, 3, 2], [999, 1001, 1000, 1002]],
)
def test_queued_text_of_numbers_read_from_a_file(numbers):
    """Line numbers as an array read back from a queuestate: consecutive ones (cut like a range), with
    gaps (comments and blank lines between tasks), or edited (in any order, twice the same)."""
    commands = ["a", "b c", "", "d"]
    assert queued_text(41, commands, array("i", numbers)) == per_line(41, commands, numbers)


def test_a_task_without_a_line_number_is_left_to_the_caller():
    assert queued_text(0, ["a", "b"], array("i", [1, 0])) is None


def test_no_lines_is_no_text():
    assert queued_text(5, [], range(6, 6)) == ""
