"""Many queued lines of a snapshot made at once, column by column, instead of one f-string per line.

Why: a fresh sweep's first snapshot is a million queued lines (``7 line=8: cmd``), written
before its first task may start, and every later snapshot of a run writes its queued lines
again.  An f-string per line converts two integers: 0.35-0.55 s a million here, the largest
part of a fresh million's start.  Here the pieces of every line -- the digits of the id,
`` line=``, the digits of the line number, ``: ``, the command -- are put in their places in one
list by slice assignment (loops in C) and joined once.  Integers are not converted one by one
either: consecutive numbers are cut in their thousands (one string shared by a thousand numbers)
and their last three digits (a table of a thousand strings), two neighbouring pieces of the line.
A million queued lines: 0.13-0.18 s.

Not for completed lines: their two times are formatted one by one whichever way (``map`` of
``format`` in C), and half a million of them made this way took 1.3-2.2 s against 1.1-1.5 s an
f-string a line, on a half-way sweep's real columns (the strings of a column made before the
line is joined, not one line's pieces made and dropped at once).
"""

from __future__ import annotations

from array import array
from collections.abc import Sequence

#: "000".."999": the last three digits of a number of 1,000 or more.
_LAST_THREE = tuple(f"{n:03d}" for n in range(1000))
#: "0".."999": a number below 1,000 whole.
_BELOW_THOUSAND = tuple(str(n) for n in range(1000))


def digit_columns(first: int, after: int) -> tuple[list[str], list[str]]:
    """The decimal digits of ``first..after-1`` (not negative) as two columns: all but the last three
    digits (the empty string below 1,000), and the rest; each number is the two joined."""
    thousands: list[str] = []
    rest: list[str] = []
    number = first
    while number < after:
        high, low = divmod(number, 1000)
        count = min(after - number, 1000 - low)
        if high:
            thousands += [str(high)] * count
            rest += _LAST_THREE[low : low + count]
        else:
            thousands += [""] * count
            rest += _BELOW_THOUSAND[low : low + count]
        number += count
    return thousands, rest


def _number_columns(numbers: Sequence[int]) -> tuple[list[str], list[str]]:
    """:func:`digit_columns` of any numbers: consecutive ones cut as there (a fresh sweep's line numbers
    are a range, a resumed one's an array of the same numbers, compared in C), others converted."""
    count = len(numbers)
    if count and not isinstance(numbers, range):
        first = numbers[0]
        consecutive = range(first, first + count)
        if isinstance(numbers, array) and array(numbers.typecode, consecutive) == numbers:
            numbers = consecutive
    if isinstance(numbers, range) and numbers.step == 1 and numbers.start >= 0:
        return digit_columns(numbers.start, numbers.stop)
    return [""] * count, list(map(str, numbers))


def queued_text(first: int, commands: Sequence[str], numbers: Sequence[int]) -> str | None:
    """The queued lines ``<id> line=<number>: <command>`` of ids ``first``, ``first + 1``, ... (one per
    command; ``numbers`` as many), joined by newlines (none after the last): as an f-string per line
    would write them.  None when a task has no line number (0: its line is ``<id>: <command>``)."""
    count = len(commands)
    if first < 0 or count != len(numbers) or 0 in numbers:
        return None
    return _lines(count, [*digit_columns(first, first + count), " line=", *_number_columns(numbers), ": ", commands])


def _lines(count: int, columns: Sequence[str | Sequence[str]]) -> str:
    """``count`` lines joined by newlines, line ``k`` the ``k``-th pieces of the columns joined (a str
    column: that piece on every line).  Every piece is put in its place in one list by slice
    assignment, a column at a time, and the list joined once."""
    if not count:
        return ""
    width = len(columns) + 1
    pieces = ["\n"] * (width * count)
    for at, column in enumerate(columns):
        pieces[at::width] = [column] * count if isinstance(column, str) else column
    pieces.pop()  # (the last newline: the section adds its own)
    return "".join(pieces)
