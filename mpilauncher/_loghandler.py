"""The handler of the launcher's logger (see log.py): imported with ``logging``, at the first message.

It writes to whatever ``sys.stderr`` is when a message is logged (tests and scripts swap it), one
line a message in the format users grep for, and drops a failed write silently: a closed or full
stderr must not end a sweep.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from mpilauncher import outbox


class StderrHandler(logging.StreamHandler):
    """A handler on the current ``sys.stderr``, flushed per message, that never raises.

    ``words``: what follows ``mpilauncher: `` at each level (``error: ``...); ``around``: the context
    manager factory wrapped around each message at the time (a live progress line steps aside), or None.
    """

    def __init__(self, words: dict[int, str], around: Callable[[], Callable | None]) -> None:
        super().__init__()
        self.words, self.around = words, around

    def format(self, record: logging.LogRecord) -> str:
        return f"mpilauncher: {self.words.get(record.levelno, '')}{record.getMessage()}"

    @property
    def stream(self):  # type: ignore[override]
        return outbox.standard_error()

    @stream.setter
    def stream(self, _value) -> None:
        pass

    def handleError(self, record: logging.LogRecord) -> None:  # noqa: N802 (logging's name)
        pass  # stderr closed or full: nothing to tell it with, and the sweep goes on

    def emit(self, record: logging.LogRecord) -> None:
        factory = self.around()
        if factory is None:
            super().emit(record)
            return
        try:
            with factory():  # a live progress line steps aside for the message
                super().emit(record)
        except (OSError, ValueError):
            pass
