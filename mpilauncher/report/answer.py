"""The answer of a command that only writes one (``report``, ``output``, ``--status``, ``--version``,
``--help``): written in full, or its loss said.

Why not as the sweep's own output (:mod:`mpilauncher.report.output`), which a failed stdout never
stops: there the tasks are the point and the trace is a by-product; here the answer *is* the point.
So a reader that went away (``output W 0-2 | head -1``) ends the command quietly, with the status of a
process that SIGPIPE ended (what ``cat`` or ``grep`` leave there, 128 + 13); a closed or full stdout
(``>&-``, ``>/dev/full``, a full disk under a batch job's output file) is one error line on stderr and
exit status 3, never a traceback nor a silent exit 0 with nothing written.  Every such command writes
through :func:`write_answer`, and the CLI turns what it raises into that line and status.
"""

from __future__ import annotations

import argparse
import signal
import sys
from typing import NoReturn

from mpilauncher.errors import EXIT_SIGNAL_BASE, InputError, LauncherFailure
from mpilauncher.report.output import silence, why_not_written


class AnswerLost(LauncherFailure):
    """The answer could not be written to stdout: closed, full, or another write error.  Exit status 3."""

    def __init__(self, why: str, reported: bool = False) -> None:
        super().__init__(f"cannot write to standard output ({why})", reported)


class ReaderGone(AnswerLost):
    """The reader of stdout went away before the answer's end (``| head``): nothing to say about it."""

    exit_status = EXIT_SIGNAL_BASE + signal.SIGPIPE

    def __init__(self) -> None:
        super().__init__("the reader went away", reported=True)


def write_answer(data: str | bytes) -> None:
    """Write ``data`` to stdout now (flushed, so that a failure is met here, not at the exit); raise
    :class:`ReaderGone` or :class:`AnswerLost` if it cannot be, stdout then pointed at /dev/null so that
    the exit's own flush of what is left fails no more."""
    stream = sys.stdout
    try:
        if stream is None:  # (``>&-``: Python sets no sys.stdout)
            raise AnswerLost(why_not_written(stream, None))
        if isinstance(data, str):
            stream.write(data)
        else:
            stream.flush()
            stream.buffer.write(data)
        stream.flush()
    except BrokenPipeError:
        silence(stream)
        raise ReaderGone() from None
    except OSError as err:
        silence(stream)
        raise AnswerLost(why_not_written(stream, err)) from None


class AnswerParser(argparse.ArgumentParser):
    """argparse's parser, its ``--help`` written by :func:`write_answer`: argparse drops a failed write of
    the help silently, and ``--help >/dev/full`` exited 0 with nothing written.  What it cannot read (an
    option's value forgotten, an ambiguous abbreviation, a missing argument) is bad input in one line, as
    every other bad option is, not argparse's whole usage text and its own error line."""

    def error(self, message: str) -> NoReturn:
        raise InputError(f"{message} ({self.prog} --help lists the options)")

    def print_help(self, file=None) -> None:
        if file is not None:
            super().print_help(file)
        else:
            write_answer(self.format_help())
