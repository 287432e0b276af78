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

The handler (``_loghandler.py``) writes to whatever ``sys.stderr`` is when a
message is logged, and drops a failed write silently: a closed or full stderr
must not end a sweep (see report/output.py for stdout).  ``logging`` itself is
imported at the first message (see :func:`logger`).
"""

from __future__ import annotations

import _thread

#: logging's levels, and ours between them (named here: ``logging`` is imported at the first message).
DEBUG, INFO, NOTE, WARNING, OUTCOME, ERROR = 10, 20, 25, 30, 35, 40
_WORDS = {ERROR: "error: ", WARNING: "warning: ", NOTE: "note: "}
NAME = "mpilauncher"

#: The logger once made (see :func:`logger`), and the level asked for until then.
_logger = None
_level = INFO
_making = _thread.allocate_lock()  # (the first message may come from two threads at once: one handler)


def logger():
    """The ``mpilauncher`` logger with its stderr handler, made at the first message that passes the
    level (or at :func:`setup`): importing ``logging`` (with ``traceback``, ``tokenize``, ``string``,
    ``weakref``) is ~5 ms of every rank's start, and most runs log nothing.  The API's modules call
    :func:`setup` when imported, so an application that embeds it finds the logger made and its
    handler in place, and may take it over, before it runs anything."""
    global _logger
    if _logger is None:
        with _making:
            if _logger is None:
                _logger = _make()
    return _logger


def _make():
    import logging

    from mpilauncher import _loghandler

    logging.addLevelName(NOTE, "NOTE")
    logging.addLevelName(OUTCOME, "OUTCOME")
    made = logging.getLogger(NAME)
    if not any(isinstance(h, _loghandler.StderrHandler) for h in made.handlers):
        made.addHandler(_loghandler.StderrHandler(_WORDS, lambda: _around))
        made.propagate = False  # an application's root handler would print every line twice
        made.setLevel(_level)
    return made


def setup() -> None:
    """Make the logger now (the API's import: see :func:`logger`)."""
    logger()


#: A context manager factory wrapped around every message (see :func:`around_messages`), or None.
_around = None


def around_messages(factory) -> None:
    """Wrap each message in ``factory()`` -- a live progress line clears itself and is redrawn below
    the message (report/progress.py) -- or, with None, no longer."""
    global _around
    _around = factory


def configure(quiet: bool = False, tasks: bool = False) -> None:
    """``quiet``: warnings and worse only; ``tasks``: also each task's start and end (DEBUG)."""
    global _level
    _level = WARNING if quiet else DEBUG if tasks else INFO
    if _logger is not None:
        _logger.setLevel(_level)


def _log(level: int, text: str) -> None:
    # Below the level asked for, and no logger made yet: no one can have lowered it (see logger()).
    if _logger is not None or level >= _level:
        logger().log(level, text)


def debug(text: str) -> None:
    _log(DEBUG, text)


def info(text: str) -> None:
    _log(INFO, text)


def note(text: str) -> None:
    _log(NOTE, text)


def warning(text: str) -> None:
    _log(WARNING, text)


def outcome(text: str) -> None:
    _log(OUTCOME, text)


def error(text: str) -> None:
    _log(ERROR, text)
