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


def expand(text: str) -> list[int]:
    """The inverse of :func:`compress`, whichever separator it used."""
    ids: list[int] = []
    for part in text.replace(",", " ").split():
        low, sep, high = part.partition("-")
        ids.extend(range(int(low), int(high) + 1) if sep else [int(low)])
    return ids
