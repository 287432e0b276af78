"""The words and defaults of the report options (``--progress``, PyLauncher's ``debug=``).

Apart from the observers that act on them: the options are checked on every rank
of a run (config.py), and the observers' imports (the scheduler's events, the
ledger) are rank 0's alone.
"""

from __future__ import annotations

#: ``--progress``: auto (a live line on a terminal, status lines elsewhere), bar, lines, off.
MODES = ("auto", "bar", "lines", "off")
#: Seconds between two status lines in a batch log, by default.
DEFAULT_INTERVAL = 60.0

#: PyLauncher's debug words and what each does here (None: nothing; accepted so scripts run unchanged).
#: As in PyLauncher, a word counts wherever it occurs in the debug string: "jobs" means job.
DEBUG_WORDS: dict[str, str | None] = {
    "job": "the trace: a `tick N` block with the queue every `delay` seconds",
    "host": "the trace, plus each node's busy cores and which task runs on which",
    "queue": "the trace (as `job`)",
    "task": "each task's start (where, which command) and end (how, after how long), on stderr",
    "exec": "as `task`",
    "command": "as `task`",
    "cmd": "as `task`",
    "ssh": None,
}
KNOWN_DEBUG = frozenset(DEBUG_WORDS)
#: The words that ask for each task's start and end (``TaskLog``), as PyLauncher's did.
TASK_WORDS = frozenset({"task", "exec", "command", "cmd"})
