"""The launcher's own messages: one logger, one format, on stderr.

Why ``logging``: every message the launcher writes about itself (errors,
warnings, notes, what it did on the user's behalf) goes through one place,
so ``--quiet`` and the task trace of ``--debug task`` are levels, not flags
checked at twenty call sites, and an application that embeds the API can take
the messages over with ``logging.getLogger("mpilauncher")``.

The format is the one users grep for: ``mpilauncher: error: ...``,
``mpilauncher: warning: ...``, ``mpilauncher: note: ...`` and, for what the
launcher did or how the run ended, plain ``mpilauncher: ...``.  Levels, lowest
first: DEBUG (internals, and with ``--debug task`` each task's start and end),
INFO (what the launcher did: a re-launch, a job submitted), NOTE (a keyword or
word that does something else here), WARNING, OUTCOME (how a stopped run ended
and how to resume it), ERROR.  ``--quiet`` shows WARNING and above.

The handler writes to whatever ``sys.stderr`` is when a message is logged
(tests and scripts swap it), and a failed write is dropped silently: a closed
or full stderr must not end a sweep (see report/output.py for stdout).
"""

from __future__ import annotations

import logging
import sys

NOTE = 25
OUTCOME = 35
logging.addLevelName(NOTE, "NOTE")
logging.addLevelName(OUTCOME, "OUTCOME")
_WORDS = {logging.ERROR: "error: ", logging.WARNING: "warning: ", NOTE: "note: "}

LOGGER = logging.getLogger("mpilauncher")


class _Format(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        return f"mpilauncher: {_WORDS.get(record.levelno, '')}{record.getMessage()}"


class _StderrHandler(logging.StreamHandler):
    """A handler on the current ``sys.stderr``, flushed per message, that never raises."""

    def __init__(self) -> None:
        super().__init__()
        self.setFormatter(_Format())

    @property
    def stream(self):  # type: ignore[override]
        return sys.stderr

    @stream.setter
    def stream(self, _value) -> None:
        pass

    def handleError(self, record: logging.LogRecord) -> None:  # noqa: N802 (logging's name)
        pass  # stderr closed or full: nothing to tell it with, and the sweep goes on

    def emit(self, record: logging.LogRecord) -> None:
        if _around is None:
            super().emit(record)
            return
        try:
            with _around():  # a live progress line steps aside for the message
                super().emit(record)
        except (OSError, ValueError):
            pass


#: A context manager factory wrapped around every message (see :func:`around_messages`), or None.
_around = None


def around_messages(factory) -> None:
    """Wrap each message in ``factory()`` -- a live progress line clears itself and is redrawn below
    the message (report/progress.py) -- or, with None, no longer."""
    global _around
    _around = factory


if not any(isinstance(h, _StderrHandler) for h in LOGGER.handlers):
    LOGGER.addHandler(_StderrHandler())
    LOGGER.propagate = False  # an application's root handler would print every line twice
    LOGGER.setLevel(logging.INFO)


def configure(quiet: bool = False, tasks: bool = False) -> None:
    """``quiet``: warnings and worse only; ``tasks``: also each task's start and end (DEBUG)."""
    LOGGER.setLevel(logging.WARNING if quiet else logging.DEBUG if tasks else logging.INFO)


def debug(text: str) -> None:
    LOGGER.debug(text)


def info(text: str) -> None:
    LOGGER.info(text)


def note(text: str) -> None:
    LOGGER.log(NOTE, text)


def warning(text: str) -> None:
    LOGGER.warning(text)


def outcome(text: str) -> None:
    LOGGER.log(OUTCOME, text)


def error(text: str) -> None:
    LOGGER.error(text)


def enabled(level: int) -> bool:
    return LOGGER.isEnabledFor(level)
