"""The launcher's own output (trace ticks, statistics) as the sweep sees it: never fatal.

Why: the terminal is not the sweep.  ``--debug job | head -3`` closes the pipe
after three lines, a batch system may start the launcher with its stdout
closed, and the file system holding a job's output file fills up; none of
that may stop or fail a sweep of thousands of tasks.  An output error is
reported once on stderr and later output is dropped; the exit status keeps
reflecting the tasks.  Nor is a reader that does not read waited for: see
:mod:`mpilauncher.outbox`.
"""

from __future__ import annotations

import os
from typing import TextIO

from mpilauncher import log
from mpilauncher.outbox import TextOutbox


class TolerantOutput(TextOutbox):
    """Writes to ``stream`` (through its outbox) until the first error, then says so once and drops the rest."""

    def __init__(self, stream: TextIO | None, name: str = "standard output") -> None:
        self.name = name
        super().__init__(stream, self._say)

    def _say(self, err: BaseException) -> None:
        try:
            log.warning(
                f"cannot write to {self.name} ({why_not_written(self.stream, err)}): the sweep goes on without"
                " its trace and statistics; the queuestate and joblog hold them"
            )
        except (OSError, ValueError, AttributeError):
            pass
        silence(self.stream)


def why_not_written(stream: TextIO | None, err: BaseException | None) -> str:
    """Why writing to ``stream`` failed with ``err``, in a few words: "it is closed", "No space left on device"."""
    if stream is None:
        return "it is closed"
    if isinstance(err, OSError):
        return err.strerror or str(err)
    return str(err)


def silence(stream: TextIO | None) -> None:
    """Point a failed stream's file descriptor at /dev/null.

    Otherwise Python flushes what is still buffered when the process exits,
    fails again, prints "Exception ignored ... BrokenPipeError" and exits 120
    instead of the sweep's status.
    """
    try:
        fd = stream.fileno()
    except (OSError, ValueError, AttributeError):
        return
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
    except OSError:
        return
    try:
        os.dup2(devnull, fd)
    except OSError:
        pass
    finally:
        os.close(devnull)


def ensure_standard_fds() -> None:
    """Open /dev/null on any of fds 0-2 that is closed (``launcher >&-``).

    A closed standard fd is the next number ``open``/``pipe`` hands out: the
    executor's request pipe or the journal would then *be* "stdout", and
    every print would write into it.
    """
    for fd in (0, 1, 2):
        try:
            os.fstat(fd)
        except OSError:
            try:
                opened = os.open(os.devnull, os.O_RDWR)
            except OSError:
                return
            if opened != fd:
                os.dup2(opened, fd)
                os.close(opened)
