"""The completed lines a snapshot of this run wrote, where they lie in its file: the next snapshot copies
them from there instead of formatting them again.

Why: a running sweep's snapshots are written from its ledger, and nothing of an earlier one was kept
(a resume's first copies what it read, see :class:`.queuestate.Earlier`): half-way through a million
tasks, half a million completed lines were formatted again at every snapshot (~1 s here), which made
the snapshot interval long (50 times the cost: see :mod:`.store`) and so the journal a kill leaves
behind (~90,000 tasks, the largest part of the resume after it).  A task that completed stays so for
the rest of the run, and its line with it; the store keeps the last snapshot open (a descriptor, no
bytes in memory) and the next one copies the runs of those lines, read back a slice at a time.

A snapshot's file changed since it was written (its size or time, which a user's editor would change)
is not copied from.
"""

from __future__ import annotations

import os
from bisect import bisect_left
from collections.abc import Iterator

#: Bytes read back at a time.
READ_SLICE = 1 << 20


class WrittenLines:
    """The lines of completed tasks in the snapshot file open as ``fd``, by runs of ids: ``spans`` are
    (first id, after id, offset, length), in id order, each the lines of tasks ``first..after-1`` in
    order, ``length`` bytes from ``offset``, without the newline after the last."""

    __slots__ = ("fd", "spans", "_firsts", "_stamp")

    def __init__(self, fd: int, spans: list[tuple[int, int, int, int]]) -> None:
        self.fd = fd
        self.spans = spans
        self._firsts = [span[0] for span in spans]
        self._stamp = _stamp(fd)

    @classmethod
    def open(cls, path: os.PathLike | str, spans: list[tuple[int, int, int, int]]) -> WrittenLines | None:
        """The snapshot just written at ``path``, or None if it cannot be opened to read (then the next
        snapshot formats every line, as without this)."""
        if not spans:
            return None
        try:
            fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        except OSError:
            return None
        return cls(fd, spans)

    def unchanged(self) -> bool:
        """Whether the file is as written (not edited in place since: an editor that writes a new file
        and renames it over leaves this one as it was)."""
        return _stamp(self.fd) == self._stamp

    def within(self, first: int, after: int) -> list[tuple[int, int, int, int]]:
        """The spans whose tasks all lie in ``first..after-1``, in id order."""
        spans = self.spans
        found = []
        for k in range(bisect_left(self._firsts, first), len(spans)):
            span = spans[k]
            if span[1] > after:
                break
            found.append(span)
        return found

    def read(self, offset: int, length: int) -> Iterator[bytes]:
        """``length`` bytes from ``offset``, a slice at a time.  Raises OSError if the file is shorter."""
        end = offset + length
        while offset < end:
            data = os.pread(self.fd, min(READ_SLICE, end - offset), offset)
            if not data:
                raise OSError(f"the last snapshot read back ended at byte {offset} of {end}")
            offset += len(data)
            yield data

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1


def _stamp(fd: int) -> tuple[int, int, int] | None:
    try:
        info = os.fstat(fd)
    except OSError:
        return None
    return info.st_ino, info.st_size, info.st_mtime_ns
