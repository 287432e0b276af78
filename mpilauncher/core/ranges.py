"""Compressed integer ranges, as PyLauncher prints them: ``0-44 47-48 50``."""

from __future__ import annotations

from collections.abc import Iterable


def compress(ids: Iterable[int], sep: str = " ") -> str:
    """Write sorted runs of consecutive ids as ``a-b``, single ids alone, joined by ``sep``.

    The trace separates runs by spaces; files use ``sep=","`` so a range is one field.
    """
    parts: list[str] = []
    start = prev = None
    for value in sorted(ids):
        if prev is not None and value == prev + 1:
            prev = value
            continue
        if start is not None:
            parts.append(str(start) if start == prev else f"{start}-{prev}")
        start = prev = value
    if start is not None:
        parts.append(str(start) if start == prev else f"{start}-{prev}")
    return sep.join(parts)


def expand(text: str, *, largest: int) -> list[int]:
    """The inverse of :func:`compress`, whichever separator it used: distinct ids from 0 to ``largest``.

    Why the bound: the text comes from files people edit, and ``0-999999999999``
    would otherwise be expanded into a trillion ints before anything could refuse
    it.  Each range is checked before it is expanded, so nothing larger than
    ``largest + 1`` ids is ever built.  Raises ValueError with the problem.
    """
    ids: list[int] = []
    for part in text.replace(",", " ").split():
        low, sep, high = part.partition("-")
        if not (_is_id(low) and (_is_id(high) or not sep)):
            raise ValueError(f"{part[:40]!r} is not an id or a range of ids (like 0-3)")
        first, last = int(low), int(high) if sep else int(low)
        if last > largest or first > last or len(ids) + last - first >= largest + 1:
            raise ValueError(f"{part[:40]!r} is not a range of ids from 0 to {largest:,}")
        ids.extend(range(first, last + 1))
    if len(set(ids)) != len(ids):
        raise ValueError(f"{text!r} lists an id twice")
    return ids


def _is_id(text: str) -> bool:
    return text.isascii() and text.isdigit() and len(text) <= 20
