"""What a user sees while a sweep runs: a live line on a terminal, a plain status line in a batch log.

An observer of the scheduler's facts (see :mod:`mpilauncher.core.observer`): it
keeps its counts from the facts as they come -- a few dictionary operations a
task, nothing else -- and draws only when its interval is due (the master wakes
for it: :meth:`Progress.on_turn_end` returns when).  So a sweep of a million
tasks pays per task what it pays for a counter, and the drawing costs the same
whether a task takes a millisecond or an hour.

Two ways of drawing the same text (:func:`status_text`):

- on a terminal (stderr is a TTY), :class:`LiveLine`: one line redrawn in place
  with a bar, by tqdm.  Why tqdm and not rich: tqdm is one package without
  dependencies, draws exactly one line with ``\\r`` on the stream it is given and
  leaves every other stream alone (rich's live display takes over the console,
  and our stdout carries the trace and the statistics), keeps to the
  terminal's width as it changes, and has ``external_write_mode`` to clear and
  redraw the line around the launcher's own messages.  It is imported only
  when a terminal is there to draw on: a batch job never loads it.
- elsewhere (a batch job's log, a pipe), :class:`StatusLines`: one plain line
  through the launcher's logger every ``interval`` seconds, and one at the end
  (unless the sweep ended before the first), that greps well:
  ``mpilauncher: progress: 120/400 done, 2 failed, ...``.

``--quiet`` draws neither (the logger's level); ``--progress off`` neither either.
"""

from __future__ import annotations

import collections
import contextlib
import os
import sys
from collections.abc import Callable
from typing import TextIO

from mpilauncher import log, outbox
from mpilauncher.core.events import Requeued, Retried, Start, TaskEnded
from mpilauncher.core.observer import Observer

#: Seconds between two redraws of the live line.
LIVE_INTERVAL = 0.5
#: The rate (and so the ETA) is measured over this many seconds of the run, at most: recent enough to
#: follow a sweep whose tasks grow longer, long enough not to jump with every end.
RATE_WINDOW = 300.0


class Counts:
    """Where the sweep's tasks stand, kept from the facts (see :class:`Progress`)."""

    __slots__ = ("done", "failed", "queued", "running", "busy", "finished_now")

    def __init__(self, done: int, failed: int, queued: int) -> None:
        self.done, self.failed, self.queued = done, failed, queued
        self.running: dict[int, int] = {}  # task id -> the cores it holds
        self.busy = 0  # cores held by running tasks
        self.finished_now = 0  # tasks ended in this run (the rate counts these)

    @property
    def total(self) -> int:
        return self.done + self.failed + self.queued + len(self.running)


class Progress(Observer):
    """Counts the facts; hands :func:`status_text` to ``draw`` every ``interval`` seconds of the run.

    ``done``/``failed``/``queued``: the sweep's counts when this run begins (a resumed sweep
    has earlier completions); ``pool``: the host pool's cores.
    """

    def __init__(
        self, done: int, failed: int, queued: int, pool: int, draw: Callable[[Counts, float, float | None], None],
        interval: float, close: Callable[[], None] | None = None,
    ) -> None:  # fmt: skip
        self.counts = Counts(done, failed, queued)
        self.pool, self.draw, self.interval, self._close = pool, draw, interval, close
        self._next = interval
        self._drawn = close is not None  # a live line draws its end; status lines only after a first one
        self._samples: collections.deque[tuple[float, int]] = collections.deque([(0.0, 0)])

    def on_started(self, start: Start, at: float) -> None:
        counts = self.counts
        cores = sum(len(c) for _, c in start.span) if start.span else len(start.core_ids)
        counts.running[start.task_id] = cores
        counts.busy += cores
        counts.queued -= 1

    def on_ended(self, ended: TaskEnded) -> None:
        counts = self.counts
        cores = counts.running.pop(ended.task_id, None)
        if cores is None:
            return
        counts.busy -= cores
        counts.finished_now += 1
        if ended.report.exit_code == 0:
            counts.done += 1
        else:
            counts.failed += 1

    def on_requeued(self, requeued: Requeued | Retried) -> None:
        counts = self.counts
        if isinstance(requeued, Retried):  # its failed end was counted: it is queued again instead
            counts.failed -= 1
            counts.queued += 1
            return
        cores = counts.running.pop(requeued.task_id, None)
        if cores is not None:  # (a standby taken back never counted as running)
            counts.busy -= cores
            counts.queued += 1

    def on_turn_end(self, wall: float, elapsed: float) -> float:
        if elapsed >= self._next:
            self._next = elapsed + self.interval
            self._drawn = True
            self.draw(self.counts, elapsed, self.rate(elapsed))
        return self._next

    def rate(self, elapsed: float) -> float | None:
        """Tasks ended per second over the last :data:`RATE_WINDOW` seconds (None: none ended yet)."""
        samples = self._samples
        samples.append((elapsed, self.counts.finished_now))
        while len(samples) > 2 and samples[1][0] <= elapsed - RATE_WINDOW:
            samples.popleft()
        then, before = samples[0]
        ended = self.counts.finished_now - before
        if ended <= 0 or elapsed <= then:
            return None
        return ended / (elapsed - then)

    def close(self, wall: float, elapsed: float) -> None:
        """The last word: the live line's end state; a batch log's last status line, unless the sweep was
        over before the first (the statistics follow at once)."""
        if self._drawn:
            self.draw(self.counts, elapsed, self.rate(elapsed))
        if self._close is not None:
            self._close()


def clock(seconds: float) -> str:
    """``1:02:03`` (``4-01:02:03`` past a day), as Slurm writes times."""
    whole = int(round(seconds))
    days, rest = divmod(whole, 86400)
    hours, rest = divmod(rest, 3600)
    text = f"{hours}:{rest // 60:02d}:{rest % 60:02d}"
    return f"{days}-{hours:02d}:{rest // 60:02d}:{rest % 60:02d}" if days else text


def status_text(counts: Counts, elapsed: float, rate: float | None, pool: int, compact: bool = False) -> str:
    """``120/400 done, 2 failed, 8 running, 270 queued; 3.1 tasks/s, ETA 0:01:30; 8/8 cores busy; elapsed 0:00:41``.

    ``compact`` (the live line, whose width is the terminal's): the same, most important first,
    ``120/400 done, 2 failed, 8 running, 270 queued | ETA 0:01:30 | 3.1/s | 8/8 cores | 0:00:41``.
    """
    left = counts.queued + len(counts.running)
    if rate:
        pace = f"{rate:.3g} tasks/s" if rate >= 0.1 else f"{rate * 3600:.3g} tasks/h"
        eta = f"ETA {clock(left / rate)}" if left else "ETA 0:00:00"
    else:
        pace, eta = "- tasks/s", "ETA ?" if left else "ETA 0:00:00"
    where = (
        f"{counts.done}/{counts.total} done, {counts.failed} failed, {len(counts.running)} running,"
        f" {counts.queued} queued"
    )
    busy = min(counts.busy, pool)
    if compact:
        return f"{where} | {eta} | {pace.replace(' tasks', '')} | {busy}/{pool} cores | {clock(elapsed)}"
    return f"{where}; {pace}, {eta}; {busy}/{pool} cores busy; elapsed {clock(elapsed)}"


class StatusLines:
    """A batch log's progress: one ``mpilauncher: progress: ...`` line through the logger per draw."""

    def __init__(self, pool: int) -> None:
        self.pool = pool

    def __call__(self, counts: Counts, elapsed: float, rate: float | None) -> None:
        log.info(f"progress: {status_text(counts, elapsed, rate, self.pool)}")


class LiveLine:
    """A terminal's progress: one line with a bar, redrawn in place by tqdm (see the module docstring)."""

    def __init__(self, stream: TextIO, total: int, finished: int, pool: int) -> None:
        from tqdm import tqdm  # here: only a terminal pays for the import

        self.pool = pool
        self.stream = stream
        self.bar = tqdm(
            total=total, initial=finished, file=stream, dynamic_ncols=True, leave=True, mininterval=0,
            bar_format="{percentage:3.0f}%|{bar:10}| {desc}", desc="starting",
        )  # fmt: skip
        self._external = tqdm.external_write_mode
        self.broken = False
        log.around_messages(self.clear_for_message)

    @contextlib.contextmanager
    def clear_for_message(self):
        """A launcher message (a warning...) goes on a line of its own; the live line is redrawn below it."""
        with self._external(file=self.stream):
            yield

    def __call__(self, counts: Counts, elapsed: float, rate: float | None) -> None:
        if self.broken:
            return
        bar = self.bar
        bar.total = counts.total
        bar.n = counts.done + counts.failed
        try:
            bar.set_description_str(status_text(counts, elapsed, rate, self.pool, compact=True), refresh=False)
            bar.refresh()
        except (OSError, ValueError):  # the terminal is gone (a closed ssh session): the sweep goes on
            self.broken = True
            log.around_messages(None)

    def close(self) -> None:
        log.around_messages(None)
        try:
            self.bar.close()
        except (OSError, ValueError):
            pass


def choose(mode: str, quiet: bool, tracing: bool, stream: TextIO | None = None) -> str:
    """How progress shows for ``--progress mode``: "bar", "lines" or "off".

    auto: a live line where stderr is a terminal (and the tick trace, itself a periodic
    display on stdout, is off), else status lines.  ``--quiet``: off.
    """
    if quiet or mode == "off":
        return "off"
    if mode != "auto":
        return mode
    stream = sys.stderr if stream is None else stream
    try:
        terminal = stream.isatty()
    except (AttributeError, ValueError, OSError):
        terminal = False
    return "bar" if terminal and not tracing and width_of(stream) >= MIN_WIDTH else "lines"


#: The narrowest terminal a live line is drawn on: below it (a pty that says 0 columns, as ``script``
#: run from no terminal makes one), status lines.  A user walk: a pty of 0 rows and columns showed no
#: progress at all, not even with --progress bar.
MIN_WIDTH = 20


def _narrow_terminal(stream: TextIO) -> bool:
    """A terminal too narrow for a live line (a file or a pipe has no width: a bar is drawn there as asked)."""
    try:
        return stream.isatty() and width_of(stream) < MIN_WIDTH
    except (AttributeError, ValueError, OSError):
        return False


def width_of(stream: TextIO) -> int:
    """The columns of the terminal ``stream`` is; 0 where it says none (or is none)."""
    try:
        return os.get_terminal_size(stream.fileno()).columns
    except (AttributeError, ValueError, OSError):
        return 0


def make_progress(
    mode: str, done: int, failed: int, queued: int, pool: int, interval: float, stream: TextIO | None = None
) -> Progress | None:
    """The observer for a chosen mode ("bar", "lines"), None for "off".  A live line that cannot be
    drawn (tqdm missing) falls back to status lines, with one note."""
    if mode == "off":
        return None
    if mode == "bar" and _narrow_terminal(stream or sys.stderr):
        log.note(f"no live progress line: the terminal is narrower than {MIN_WIDTH} columns; status lines instead")
    elif mode == "bar":
        try:
            line = LiveLine(stream or outbox.standard_error(), done + failed + queued, done + failed, pool)
        except ImportError:
            log.note("no live progress line: tqdm is not installed (pip install tqdm); status lines instead")
        except (OSError, ValueError):
            pass  # the terminal went away already: status lines (which the logger drops if need be)
        else:
            return Progress(done, failed, queued, pool, line, LIVE_INTERVAL, line.close)
    return Progress(done, failed, queued, pool, StatusLines(pool), interval)
