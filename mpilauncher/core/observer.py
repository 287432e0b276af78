"""What consumes the core's facts: the queuestate, the joblog, the trace, the statistics...

The master hands every fact that :meth:`Scheduler.handle` returns to each
registered observer, in the order the facts happened, and tells them when a
loop turn ends and when the run is over.  A new consumer (a progress line,
a report) is one new class registered in ``rank0.py``; the loop does not
change.  Every hook does nothing by default, and the master calls only the
hooks an observer overrides, so an observer pays only for what it reads.

Observers never change the scheduler's state, and they see nothing the facts
do not carry: where a task ran is a node *index*, its core ids and GPU
indices are the node's own (a :class:`~mpilauncher.core.nodes.Node` tells
names, bound CPUs and GPU ids).
"""

from __future__ import annotations

from mpilauncher.core.events import HeldBack, NodeFact, Requeued, Retried, Start, TaskEnded


class Observer:
    """Base class of the consumers of facts; override the hooks you need."""

    def on_started(self, start: Start, at: float) -> None:
        """``start`` began at ``at`` (seconds since the epoch): sent now, or a standby promoted."""

    def on_ended(self, ended: TaskEnded) -> None:
        """A task ended (every attempt, a retried one included)."""

    def on_requeued(self, requeued: Requeued | Retried) -> None:
        """A task is queued again: its node was lost or could not start it, or it is retried."""

    def on_held(self, held: HeldBack) -> None:
        """A task that cannot finish before the deadline was held back: it stays queued for the next job."""

    def on_node(self, fact: NodeFact) -> None:
        """A node was suspected, taken out of use, or put back in use (see :mod:`mpilauncher.core.health`)."""

    def on_turn_end(self, wall: float, elapsed: float) -> float | None:
        """A loop turn's facts are all in: flush what is buffered.  ``wall``: seconds since the
        epoch, ``elapsed``: seconds since the run began.  Returns the ``elapsed`` time by which
        the observer wants the next turn (a periodic display), or None."""
        return None

    def close(self, wall: float, elapsed: float) -> None:
        """The run is over (or failed): write what is left.  Called once, also after an error."""


def overrides(observer: Observer, hook: str) -> bool:
    """Whether ``observer`` has its own ``hook`` (the master calls only those)."""
    return getattr(type(observer), hook) is not getattr(Observer, hook)
