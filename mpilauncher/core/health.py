"""Which node fails every task at once: suspected, proven, taken out of use (pure bookkeeping).

Why: a node with a missing file system, a broken GPU or a bad library path fails
each task in milliseconds (exit 127, a crash).  It frees its cores fastest, so
it takes the most tasks: left alone, one bad node fails a large part of a sweep
within seconds.  The scheduler asks this module what each end says about its
node, and acts on the answers (:mod:`mpilauncher.core.scheduler`).

A task *fails fast* when it ends non-zero (or killed by a signal) within
:data:`FAST_SECONDS` of its start, or exits 126 or 127 (the shell could not run
the command) whenever; an end at ``--task-timeout`` is the limit's doing, not
the node's.  Per node and task *shape* (core count, GPUs, MPI: "the same kind of
line"), the fast failures since the node's last success of that shape are its
*streak*.  The rule has two steps:

1. **Suspicion** is statistical.  While a node's streak grew to ``s`` fast
   failures, the other nodes ended ``K`` tasks of that shape successfully and
   ``F`` with fast failures.  If nodes made no difference, each of the
   ``s + F`` fast failures would have been as likely to fall on any of those
   ``s + F + K`` ends, and the chance that all ``s`` of this node's ends are
   among them is ``C(s+F, s) / C(s+F+K, s)`` (hypergeometric).  Below
   :data:`SUSPICION_LEVEL` (one in a thousand), with ``s >=`` :data:`MIN_STREAK`,
   the node is suspect.  A sweep whose tasks fail fast everywhere has ``K = 0``
   and a chance of 1: it is the tasks, not a node, and nobody is suspected; a
   node that is the only one able to run a shape (the only GPU node) has
   ``K = 0`` too.  The window is the streak's own time, so that a block of
   broken lines that lands on one node is compared with what the other nodes
   did meanwhile (they get the same lines), not with the whole sweep.
2. **Proof** is by the tasks themselves.  A suspect gets no new task; the tasks
   that failed fast there are queued again, without using up a retry, and are
   *on trial*: the first of them to end on another node decides.  It succeeded:
   the same line works elsewhere, the node is out of use for the rest of the run.
   It failed: the lines are broken, not the node, which is back in use (those
   tasks ran once more: the price of a false suspicion, rare by step 1).  A task
   on trial that had already succeeded elsewhere (``--retries``) is proof at once.

The scheduler keeps at least one node in use: the last one is never suspected.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable

from mpilauncher.records import field, record

#: A non-zero end within this many seconds of the task's start is a fast failure.
FAST_SECONDS = 1.0
#: Exit codes of a command the shell could not run (126: not executable, 127: not found): fast whenever.
CANNOT_RUN = frozenset({126, 127})
#: A node is suspected only after this many fast failures in a row (of one shape).
MIN_STREAK = 3
#: ... and only when chance alone would put them all on it less often than this.
SUSPICION_LEVEL = 1e-3

Shape = tuple[int, int, bool]


def is_fast_failure(exit_code: int, runtime: float, timed_out: bool) -> bool:
    """Did this end fail at once (see the module docstring)?"""
    return exit_code != 0 and not timed_out and (runtime < FAST_SECONDS or exit_code in CANNOT_RUN)


def chance_of_luck(failures: int, others_fast: int, others_ok: int) -> float:
    """The chance that ``failures`` ends of one node are all among the ``failures + others_fast`` fast failures
    of ``failures + others_fast + others_ok`` ends, were nodes alike: C(k, s) / C(n, s)."""
    if not others_ok:
        return 1.0
    s, k = failures, failures + others_fast
    n = k + others_ok
    return math.exp(math.lgamma(k + 1) - math.lgamma(k - s + 1) - math.lgamma(n + 1) + math.lgamma(n - s + 1))


@record
class _Streak:
    """A node's fast failures of one shape since its last success of that shape."""

    ok_before: int  # the shape's successes (all nodes) when the streak began
    fast_before: int  # the shape's fast failures (all nodes) before its first one
    failures: list[tuple[int, int, int]] = field(default_factory=list)  # (task, attempt, exit code), oldest first


@record
class Suspicion:
    """A node to suspect: ``failures`` fast failures in a row there, ``elsewhere`` successes of the same
    shape on other nodes meanwhile, ``exit_code`` the most frequent among the failures; ``victims``:
    every task that failed fast there -> (how many times, its latest attempt there)."""

    node: int
    failures: int
    elsewhere: int
    exit_code: int
    victims: dict[int, tuple[int, int]]


@record
class Verdict:
    """The end of ``task_id`` on ``where`` decided on suspect ``node``: ``guilty`` (it succeeded there)."""

    node: int
    guilty: bool
    task_id: int
    where: int


class NodeHealth:
    """What each end says about its node; see the module docstring.  The scheduler tells it every end
    (:meth:`succeeded`, :meth:`failed`) and applies what comes back."""

    def __init__(self) -> None:
        self._ok: Counter[Shape] = Counter()  # successes by shape, all nodes
        self._fast: Counter[Shape] = Counter()  # fast failures by shape, all nodes
        #: (node, shape) -> its open streak of fast failures.
        self.streaks: dict[tuple[int, Shape], _Streak] = {}
        #: Task on trial -> the suspect node its next end elsewhere judges.
        self.trial: dict[int, int] = {}
        #: Suspect node -> why it was suspected.
        self.suspects: dict[int, Suspicion] = {}
        #: Nodes proven bad, with why.
        self.out_of_use: dict[int, Suspicion] = {}
        #: Suspects and nodes out of use: no task starts there (a failure there uses up no retry).
        self.benched: set[int] = set()
        #: Task -> its failed attempts blamed on a node (they do not count against --retries).
        self.excused: dict[int, int] = {}
        #: Tasks put on trial once already: after an acquittal their failures are their own.
        self.tried: set[int] = set()

    @property
    def watching(self) -> bool:
        """Is there anything a success could change (a streak, a trial)?  False in a healthy sweep."""
        return bool(self.streaks or self.trial)

    def succeeded(self, node: int, shape: Shape, task_id: int) -> Verdict | None:
        """A task ended with exit 0; the verdict on a suspect if it was on trial.

        Only needed while :attr:`watching`: successes count only in the windows of open streaks,
        and while one is open every success is told (so a healthy sweep pays nothing for this).
        """
        self._ok[shape] += 1
        self.streaks.pop((node, shape), None)
        return self._judge(task_id, node, guilty=True) if self.trial else None

    def failed(
        self, node: int, shape: Shape, task_id: int, attempt: int, exit_code: int, fast: bool
    ) -> Verdict | Suspicion | None:
        """A task ended non-zero: a verdict on a suspect if it was on trial elsewhere, or a node to suspect."""
        verdict = self._judge(task_id, node, guilty=False) if self.trial else None
        if not fast or node in self.benched:
            return verdict
        self._fast[shape] += 1
        key = (node, shape)
        streak = self.streaks.get(key)
        if streak is None:
            streak = self.streaks[key] = _Streak(self._ok[shape], self._fast[shape] - 1)
        streak.failures.append((task_id, attempt, exit_code))
        if verdict is not None or len(streak.failures) < MIN_STREAK:
            return verdict
        failures = len(streak.failures)
        others_ok = self._ok[shape] - streak.ok_before
        others_fast = self._fast[shape] - streak.fast_before - failures
        if chance_of_luck(failures, others_fast, others_ok) >= SUSPICION_LEVEL:
            return None
        return self._suspicion(node, failures, others_ok)

    def suspects_among(self, shape: Shape, besides: int) -> list[Suspicion]:
        """Nodes other than ``besides`` whose streak of ``shape`` is suspect now: asked when a success
        elsewhere may tip the balance while those nodes get no new task to fail (nothing of their
        shape is queued any more)."""
        found = []
        for (node, streak_shape), streak in self.streaks.items():
            if streak_shape != shape or node == besides or node in self.benched:
                continue
            failures = len(streak.failures)
            if failures < MIN_STREAK:
                continue
            others_ok = self._ok[shape] - streak.ok_before
            others_fast = self._fast[shape] - streak.fast_before - failures
            if chance_of_luck(failures, others_fast, others_ok) < SUSPICION_LEVEL:
                found.append(self._suspicion(node, failures, others_ok))
        return found

    def suspect(self, suspicion: Suspicion, on_trial: Iterable[int]) -> None:
        """The scheduler took ``suspicion`` up: no new task there; ``on_trial``: the victims whose next end
        elsewhere decides (those queued again, or still to run)."""
        node = suspicion.node
        self.suspects[node] = suspicion
        self.benched.add(node)
        for task_id in on_trial:
            self.trial[task_id] = node
        self.forget_streaks(node)

    def convict(self, node: int) -> Suspicion:
        suspicion = self.suspects.pop(node)
        self.out_of_use[node] = suspicion
        self._end_trial(node)
        return suspicion

    def acquit(self, node: int) -> Suspicion:
        suspicion = self.suspects.pop(node)
        self.benched.discard(node)
        self._end_trial(node)
        return suspicion

    def lost(self, node: int) -> None:
        """The node is gone: nothing it did or does decides anything any more."""
        self.forget_streaks(node)
        if self.suspects.pop(node, None) is not None:
            self._end_trial(node)
        self.benched.discard(node)

    # -- internals -------------------------------------------------------------
    def _suspicion(self, node: int, failures: int, elsewhere: int) -> Suspicion:
        """Everything the node failed fast, over all its streaks (a bad node fails every shape)."""
        victims: dict[int, tuple[int, int]] = {}
        codes: Counter[int] = Counter()
        for (streak_node, _), streak in self.streaks.items():
            if streak_node != node:
                continue
            for task_id, attempt, exit_code in streak.failures:
                count, _ = victims.get(task_id, (0, 0))
                victims[task_id] = (count + 1, attempt)
                codes[exit_code] += 1
        return Suspicion(node, failures, elsewhere, codes.most_common(1)[0][0], victims)

    def _judge(self, task_id: int, where: int, guilty: bool) -> Verdict | None:
        """The end of a task on trial: on another node it decides; on the suspect itself a success
        clears it (the node can run it) and a failure decides nothing."""
        node = self.trial.get(task_id)
        if node is None:
            return None
        if where == node:
            return Verdict(node, False, task_id, where) if guilty else None
        return Verdict(node, guilty, task_id, where)

    def _end_trial(self, node: int) -> None:
        for task_id in [t for t, n in self.trial.items() if n == node]:
            del self.trial[task_id]

    def forget_streaks(self, node: int) -> None:
        for key in [k for k in self.streaks if k[0] == node]:
            del self.streaks[key]
