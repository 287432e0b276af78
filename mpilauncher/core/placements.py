"""Where every running task and every standby is: their :class:`Start`, in lists indexed by task id.

Why lists and not dicts (what these were): at 100,000 cores a task ends a round
of tasks after it started, and every dict entry its end touches -- the running
task's, the standby's behind it, the standby's own -- was last touched a round
ago, in tables of a hundred thousand entries spread over megabytes: two cache
misses an entry (the dict's index, then its entry), several entries a decision.
Indexed by id, the tasks of one round lie side by side, as they started, and a
round of them is 800 kB of pointers, which the caches keep (as the states'
bytes of :mod:`.states`).  Measured with the simulation at 100,000 cores.  The
cost is memory: 16 bytes a task of the run, 16 MB for a million tasks.

The scheduler's hot path reads and writes the lists itself (``starts[tid]``,
``behind[pred]``) and keeps the two counts; everyone else reads the mappings
(:meth:`Placements.running`, ...), which answer from the lists and the task
states.  Ids spread far apart (see :mod:`.states`) use dicts that answer None
for an id they do not hold, which take the same reads and writes.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator, Mapping

from mpilauncher.core.events import Start
from mpilauncher.core.states import AS_RUNNING, AS_STANDBY


class _NoneForMissing(dict):
    """A dict that answers None for an id it does not hold, as the dense lists do for an empty place, and
    forgets an id set to None (it holds the running tasks and standbys only, not every task that ran)."""

    def __missing__(self, task_id: int) -> None:
        return None

    def __setitem__(self, task_id: int, start: Start | None) -> None:
        if start is None:
            self.pop(task_id, None)
        else:
            super().__setitem__(task_id, start)


class Placements:
    """Each running task's and each standby's Start (``starts``), and the standby waiting behind each
    running task (``behind``), by task id; how many run and how many wait.

    A task's state (``codes``, the scheduler's :class:`.states.TaskStates` codes) says which of the
    two a Start in ``starts`` is: RUNNING, or STANDBY (sent ahead, behind ``start.after``).
    """

    __slots__ = ("starts", "behind", "codes", "top", "running_count", "waiting_count")

    def __init__(self, codes: bytearray | dict[int, int]) -> None:
        self.codes = codes
        if type(codes) is dict:
            self.starts: list[Start | None] | _NoneForMissing = _NoneForMissing()
            self.behind: list[Start | None] | _NoneForMissing = _NoneForMissing()
            self.top = sys.maxsize  # (any id may be asked: the dicts answer None)
        else:
            self.starts = [None] * len(codes)
            self.behind = [None] * len(codes)
            self.top = len(codes)
        self.running_count = 0
        self.waiting_count = 0

    def running_start(self, task_id: int) -> Start | None:
        """``task_id``'s Start if it runs, else None (any int: an id of no task of the run, too)."""
        start = self.starts[task_id] if 0 <= task_id < self.top else None
        return start if start is not None and self.codes[task_id] == AS_RUNNING else None

    def ids(self, code: int) -> Iterator[int]:
        """The ids of the tasks in state ``code``, in id order (a scan of every task: not for the hot path)."""
        codes = self.codes
        if type(codes) is dict:
            yield from sorted(tid for tid, state in codes.items() if state == code)
            return
        at = codes.find(code)
        while at >= 0:
            yield at
            at = codes.find(code, at + 1)

    @property
    def running(self) -> Mapping[int, Start]:
        """Running task -> its Start."""
        return _InState(self, AS_RUNNING)

    @property
    def waiting(self) -> Mapping[int, Start]:
        """Standby -> its Start (``after``: the task it waits behind)."""
        return _InState(self, AS_STANDBY)

    @property
    def follower(self) -> Mapping[int, Start]:
        """Running task -> the Start of the standby waiting behind it."""
        return _Followers(self)


class _InState(Mapping[int, Start]):
    """The Starts of the tasks in one state, as a read-only mapping by id."""

    __slots__ = ("_placed", "_code")

    def __init__(self, placed: Placements, code: int) -> None:
        self._placed, self._code = placed, code

    def __getitem__(self, task_id: object) -> Start:
        placed = self._placed
        start = placed.starts[task_id] if type(task_id) is int and 0 <= task_id < placed.top else None
        if start is None or placed.codes[task_id] != self._code:  # type: ignore[index]
            raise KeyError(task_id)
        return start

    def __iter__(self) -> Iterator[int]:
        return self._placed.ids(self._code)

    def __len__(self) -> int:
        placed = self._placed
        return placed.running_count if self._code == AS_RUNNING else placed.waiting_count


class _Followers(Mapping[int, Start]):
    """Running task -> the standby behind it, as a read-only mapping."""

    __slots__ = ("_placed",)

    def __init__(self, placed: Placements) -> None:
        self._placed = placed

    def __getitem__(self, task_id: object) -> Start:
        placed = self._placed
        start = placed.behind[task_id] if type(task_id) is int and 0 <= task_id < placed.top else None
        if start is None:
            raise KeyError(task_id)
        return start

    def __iter__(self) -> Iterator[int]:
        starts = self._placed.starts
        return (starts[tid].after for tid in self._placed.ids(AS_STANDBY))  # type: ignore[union-attr,misc]

    def __len__(self) -> int:
        return self._placed.waiting_count
