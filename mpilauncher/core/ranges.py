"""Compressed integer ranges, as PyLauncher prints them: ``0-44 47-48 50``."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from itertools import compress as _chosen
from itertools import islice, repeat
from operator import add, ne


def compress(ids: Iterable[int], sep: str = " ") -> str:
    """Write sorted runs of consecutive ids as ``a-b``, single ids alone, joined by ``sep``.

    The trace separates runs by spaces; files use ``sep=","`` so a range is one field.
    """
    if type(ids) is tuple and len(ids) == 1:  # a task's one core: the journal and joblog write it every task
        return str(ids[0])
    return runs_text(runs_of(ids), sep)


def runs_of(ids: Iterable[int]) -> list[tuple[int, int]]:
    """The ids, sorted, as runs of consecutive ids ``(first, after the last)``."""
    runs: list[tuple[int, int]] = []
    for task_id in sorted(ids):
        if runs and runs[-1][1] == task_id:
            runs[-1] = (runs[-1][0], task_id + 1)
        elif not runs or runs[-1][1] < task_id:  # (an id given twice is one id)
            runs.append((task_id, task_id + 1))
    return runs


def run_breaks(ids: Sequence[int], most: int | None = None) -> list[int]:
    """Where ``ids`` break into runs of consecutive ids: the indices ``i`` at which ``ids[i]`` is not
    ``ids[i - 1] + 1``, in order, at most ``most`` of them.  Loops in C, no Python turn an id: a
    million ids in about 0.1 s (a queuestate's sections are read so)."""
    breaks = _chosen(range(1, len(ids)), map(ne, islice(ids, 1, None), map(add, ids, repeat(1))))
    return list(breaks if most is None else islice(breaks, most))


def runs_text(runs: Iterable[tuple[int, int]], sep: str = " ") -> str:
    """Runs ``(first, after the last)`` of ids, in order, written as :func:`compress` writes them."""
    return sep.join(str(first) if after == first + 1 else f"{first}-{after - 1}" for first, after in runs)


def expand(text: str, *, largest: int, most: int | None = None) -> list[int]:
    """The inverse of :func:`compress`, whichever separator it used: distinct ids from 0 to ``largest``,
    at most ``most`` of them (``largest + 1`` if None).

    Why the bound: the text comes from files people edit, and ``0-999999999999``
    would otherwise be expanded into a trillion ints before anything could refuse
    it.  Each range is checked before it is expanded, so nothing larger than
    ``largest + 1`` ids is ever built.  Raises ValueError with the problem.
    """
    ids: list[int] = []
    most = largest + 1 if most is None else most
    for part in text.replace(",", " ").split():
        low, sep, high = part.partition("-")
        if not (_is_id(low) and (_is_id(high) or not sep)):
            raise ValueError(f"{part[:40]!r} is not an id or a range of ids (like 0-3)")
        first, last = int(low), int(high) if sep else int(low)
        if last > largest or first > last:
            raise ValueError(f"{part[:40]!r} is not a range of ids from 0 to {largest:,}")
        if len(ids) + last - first >= most:
            raise ValueError(f"{part[:40]!r}: more than {most:,} ids at once")
        ids.extend(range(first, last + 1))
    if len(set(ids)) != len(ids):
        raise ValueError(f"{text!r} lists an id twice")
    return ids


def _is_id(text: str) -> bool:
    return text.isascii() and text.isdigit() and len(text) <= 20
