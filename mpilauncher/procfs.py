"""What Linux says of a process in ``/proc/<pid>/stat``.

Read by the sweep's lock (is its holder still the process it was?), by the wake-up of parked
ranks (is that pid still the rank it was?), and by every rank for its own start
(``--max-runtime`` counts the interpreter's start-up).  Kept apart from them so that none
imports another for it: an agent rank needs its start time, not the lock's JSON.  (The finder
of a task's leftover processes reads the file itself: it also runs inside the executor
processes, which import only their sibling modules.)
"""

from __future__ import annotations

#: Where the start time is in :func:`stat_fields` (field 22 of the file: clock ticks since boot).
START_TIME = 19


def stat_fields(pid: int) -> list[bytes] | None:
    """The fields of ``/proc/<pid>/stat`` after the command name (``[0]`` is field 3, the state);
    None when there is no such process (or no /proc).  The command name, field 2, may hold spaces
    and parentheses: the fields are counted from its last ``)``."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as stat:
            data = stat.read()
    except OSError:
        return None
    end = data.rfind(b")")
    return data[end + 2 :].split() if end >= 0 else None


def start_ticks(pid: int) -> int | None:
    """When ``pid`` started, in clock ticks since boot; None when there is no such process."""
    fields = stat_fields(pid)
    return int(fields[START_TIME]) if fields is not None and len(fields) > START_TIME else None
