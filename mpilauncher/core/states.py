"""The scheduler's one state per task, as one byte per task id.

Why bytes and not a dict of strings: the scheduler sets a state three times a
decision (the task that ended, the standby promoted, the one sent ahead), and at
100,000 cores those ids are a round of tasks apart.  In a dict of a million
entries each such write lands in memory last touched a round ago (the dict's
entries alone are 24 MB); here the states of a whole round of 100,000 tasks lie
in 100 kB, which the caches keep.  A million tasks also cost 1 MB instead of
~40 MB.

The scheduler writes codes (``AS_RUNNING``...) straight into the bytearray
(:attr:`TaskStates.codes`, one C-level store); everyone else reads the names
(``"running"``...) through :class:`TaskStates`, a mapping of the ids in the run.
A few ids spread far apart (a PyLauncher queuestate may number its tasks up to
999,999,999) keep their codes in a dict instead, which takes the same stores.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Iterator, MutableMapping
from itertools import repeat

from mpilauncher.core.ledger import COMPLETED, FAILED, QUEUED, RUNNING

#: A task sent ahead behind a running one, not started yet (no fact says it started).
STANDBY = "standby"
#: A queued task that cannot finish before the deadline: left for the next job (the ledger says queued).
HELD = "held"

#: The state each code stands for; code 0: no task of this run has that id.
NAMES = ("", QUEUED, RUNNING, STANDBY, COMPLETED, FAILED, HELD)
AS_QUEUED, AS_RUNNING, AS_STANDBY, AS_COMPLETED, AS_FAILED, AS_HELD = range(1, len(NAMES))
CODES = {name: code for code, name in enumerate(NAMES) if name}
#: Ids whose largest is more than SPARSE times their count (plus SPARSE_SLACK) are kept in a dict.
SPARSE = 8
SPARSE_SLACK = 1 << 20


class TaskStates(MutableMapping[int, str]):
    """Task id -> state name, for the ids of the run (all queued to begin with)."""

    __slots__ = ("codes",)

    def __init__(self, ids: Iterable[int]) -> None:
        """Raises ValueError for an id given twice (or a negative one)."""
        if isinstance(ids, range) and ids.start == 0 and ids.step == 1:  # the common sweep: one pass in C
            self.codes: bytearray | dict[int, int] = bytearray((AS_QUEUED,)) * len(ids)
            return
        ids = ids if isinstance(ids, (list, tuple, range)) else list(ids)
        if ids and min(ids) < 0:  # (a negative index would name another task's byte)
            raise ValueError("a negative task id")
        top = max(ids, default=-1) + 1
        if top > SPARSE * len(ids) + SPARSE_SLACK:
            # A few ids spread far apart (PyLauncher's files allow any id up to 999,999,999): a
            # byte for every id below the largest would be up to a GB for two tasks.  A dict of
            # codes takes the same stores (``codes[tid] = code``) at a dict's cost per task.
            self.codes = dict.fromkeys(ids, AS_QUEUED)
            if len(self.codes) != len(ids):
                raise ValueError("a task id given twice")
            return
        self.codes = bytearray(top)
        deque(map(self.codes.__setitem__, ids, repeat(AS_QUEUED)), maxlen=0)  # (a loop in C: a resume's ids)
        if self.codes.count(AS_QUEUED) != len(ids):
            raise ValueError("a task id given twice")

    def state(self, task_id: int) -> str:
        """The state's name; "" for an id that is no task of this run."""
        codes = self.codes
        if type(codes) is dict:
            return NAMES[codes.get(task_id, 0)]
        return NAMES[codes[task_id]] if 0 <= task_id < len(codes) else ""

    def __getitem__(self, task_id: int) -> str:
        state = self.state(task_id) if type(task_id) is int else ""
        if not state:
            raise KeyError(task_id)
        return state

    def __setitem__(self, task_id: int, state: str) -> None:
        if not self.state(task_id):
            raise KeyError(task_id)  # (the run's ids are fixed when it is made)
        self.codes[task_id] = CODES[state]

    def __delitem__(self, task_id: int) -> None:
        raise TypeError("a task of the run stays in it")

    def __iter__(self) -> Iterator[int]:
        codes = self.codes
        return iter(codes) if type(codes) is dict else (tid for tid, code in enumerate(codes) if code)

    def __len__(self) -> int:
        codes = self.codes
        return len(codes) if type(codes) is dict else len(codes) - codes.count(0)

    def __contains__(self, task_id: object) -> bool:
        return type(task_id) is int and bool(self.state(task_id))
