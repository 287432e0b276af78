"""The loops of the ranks other than rank 0: an agent serving its node, and a parked rank.

Beside the master's loop (:mod:`mpilauncher.runtime.master`), and as transport-blind:
both speak through an :class:`~mpilauncher.transport.base.AgentEndpoint` (over MPI:
:class:`~mpilauncher.transport.mpi.MpiAgentEndpoint`), so they are tested without
MPI and the transport never imports the runtime.

An agent rank says HELLO, then, until SHUTDOWN: acts on what rank 0 sends,
sleeps in its backend's wait (the tasks' pidfds in epoll) for a back-off that
grows while nothing happens, reports the ends it saw (at once when a core has
nothing to run, else a moment later together: :class:`HeldEnds`), and sends a
heartbeat when it has said nothing for a while.  A parked rank (``srun``/``ibrun`` start
one rank per core) only waits for SHUTDOWN, a few times a second.  Both answer
SHUTDOWN with BYE, and pass a stop signal their handler recorded on to rank 0,
once: only rank 0 decides, and every rank then exits with its status.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from mpilauncher.protocol import Completions, Ended, Setup, Shutdown, Signalled
from mpilauncher.runtime.agent import Agent
from mpilauncher.transport.base import AgentEndpoint, Backoff, StopSignal, no_signal

#: An agent's MPI probe schedule, seconds: after progress it probes again in 0.5 ms (rank 0's answer to a report
#: comes within a millisecond or two), doubling to 0.1 s while nothing happens.  A task's end needs no probe (it
#: wakes the agent's epoll at once); what a long wait delays is only what rank 0 sends unasked (a task that became
#: runnable, the shutdown).  The cap is the idle cost: a wake-up of a Python rank costs 50-150 us of CPU here,
#: so 64 agents on a host at 20 ms took a fifth of a 2-CPU machine from its tasks (benchmarks/dispatch.py).
AGENT_PROBE = (0.0005, 0.1)
#: Where the probes start again after progress when every core of the node has a task (running, or queued
#: in its executors): rank 0's answer then only adds standbys behind them, and is not worth a wake-up every
#: half millisecond.  Measured at 64 emulated nodes on 2 CPUs (benchmarks/dispatch.py): an agent's loop turn
#: costs ~90 us there, and the turns that found nothing after each report were most of the agents' CPU.
AGENT_PROBE_SATURATED = 0.01
#: How long an agent whose cores all still have a task may hold the ends it saw before it reports them: at
#: most this long, and at most this share of the shortest of their runtimes (see :class:`HeldEnds`).
REPORT_HOLD = 0.02
REPORT_HOLD_SHARE = 0.1
INFINITY = float("inf")


class HeldEnds:
    """The ends an agent has seen and not reported yet, and when they are due.

    Why hold them: an end whose cores went straight to the standby waiting behind it (the
    sweep's steady state) tells rank 0 nothing it must act on at once -- the node is still
    busy; its answer is one more standby.  Reported one by one, as an agent that gets a CPU
    the moment each task ends does, every end costs a message and a wake-up of the agent
    and of rank 0: measured at 64 emulated nodes on 2 CPUs (benchmarks/dispatch.py), runs
    fell into a regime of one end a report, where the agents spent 272 us of CPU a task
    against 119 in a run that reported 34 ends at a time.  So such ends wait a moment, and
    go together.

    What the wait may cost: rank 0's next standby for those cores comes that much later,
    which idles them only if the task now running there ends sooner.  So the wait is at most
    :data:`REPORT_HOLD_SHARE` of the shortest runtime among the ends held (tasks of a sweep
    run alike), and never above :data:`REPORT_HOLD`: for tasks of a few milliseconds there is
    no wait at all.  Nothing is held that rank 0 may act on at once: ends that leave a core
    with nothing to run (rank 0 may have a task for it; it may be the sweep's last), a
    failure (a retry, the node's health), or a standby taken back (rank 0 places it
    elsewhere).  Rank 0 holds its own probes for reports by the same reasoning (see
    :class:`~mpilauncher.transport.base.QuietBackoff`).  A kill -9 of the launcher in the
    wait reruns those tasks at the resume, as it does any task whose end was not yet journaled.
    """

    def __init__(self, longest: float = REPORT_HOLD, share: float = REPORT_HOLD_SHARE) -> None:
        self.longest, self.share = longest, share
        self.ended: list[Ended] = []
        self.retracted: list[int] = []
        self.since = 0.0  # when the first of them was seen
        self.due = INFINITY  # when they go (INFINITY: nothing held)

    def __bool__(self) -> bool:
        return self.due != INFINITY

    def add(self, report: Completions, now: float, urgent: bool) -> None:
        """Hold ``report``'s news; ``urgent`` (or a standby taken back): it, and all held, is due now."""
        if not self:
            self.since = now
        self.ended.extend(report.items)
        self.retracted.extend(report.retracted)
        if urgent or report.retracted or not report.items:
            self.due = now
        else:
            wait = min(self.longest, self.share * min(e.runtime for e in report.items))
            self.due = min(self.due, self.since + wait)

    def take(self) -> Completions:
        """All that is held, as one report, in the order it was seen; nothing is held after."""
        report = Completions(tuple(self.ended), tuple(self.retracted))
        self.ended, self.retracted, self.due = [], [], INFINITY
        return report


def serve_agent(
    link: AgentEndpoint,
    agent: Agent,
    beat_interval: float | None = None,
    stop_signal: StopSignal = no_signal,
    sleep: Callable[[float], object] = time.sleep,
) -> int:
    """An agent rank's loop: run what rank 0 sends until it says SHUTDOWN; returns its exit status.

    ``beat_interval``: seconds of silence before a heartbeat (default: what the
    master's Setup says).  A stop signal recorded by this rank (``stop_signal``)
    is passed on to rank 0 once, after the ends seen before it and before any end
    seen after it (rank 0 then knows which ends the signal may have caused); the
    agent goes on serving: rank 0 sends the SHUTDOWN.  Ends that need no answer
    at once are held a moment and reported together (:class:`HeldEnds`); while
    they are, the agent sleeps (``sleep``) rather than wake for each end.
    """
    link.hello(agent.hello())
    backoff = Backoff(*AGENT_PROBE)
    last_sent = time.monotonic()
    relay = _SignalRelay(link, stop_signal)
    held = HeldEnds()

    def send_held() -> None:
        if held:
            link.report(held.take())

    while True:
        progressed = False
        for message in link.messages():
            progressed = True
            if isinstance(message, Shutdown):
                send_held()  # (seen before the shutdown: they go first)
                link.bye(tuple(agent.handle(message)))
                agent.close()
                return message.exit_status
            agent.handle(message)
            if isinstance(message, Setup):
                beat_interval = beat_interval or message.beat_interval
        timeout = 0 if progressed else backoff.next()
        if held and timeout:  # the ends to come wait in the executors' pipes: one wake-up for them all
            sleep(max(0.0, min(timeout, held.due - time.monotonic())))
            timeout = 0
        report = agent.poll(timeout)
        now = time.monotonic()
        if relay.check(before=send_held):  # before the report: these ends came after the signal
            progressed = True
            last_sent = now
        if report is not None:
            progressed = True
            urgent = not agent.saturated or any(e.exit_code for e in report.items)
            held.add(report, now, urgent)
        if held and held.due <= now:
            send_held()
            last_sent = now
        elif beat_interval and now - last_sent > beat_interval and not held:
            link.report(None)
            last_sent = now
        link.settle()
        if progressed:
            backoff.reset(AGENT_PROBE_SATURATED if agent.saturated else None)


def park(
    link: AgentEndpoint, sleep: Callable[[float], bool | None] = time.sleep, stop_signal: StopSignal = no_signal
) -> int:
    """A surplus rank: wait for SHUTDOWN at negligible CPU and answer BYE; returns the exit status it carries.

    A stop signal recorded by this rank is passed on to rank 0, and SHUTDOWN seen, within one
    sleep: 0.1 s at most (ten wake-ups a second of two probes each cost a parked rank well
    under 0.1% of a core), or at once where ``sleep`` can be woken (see transport/wake.py):
    a sleep that says it was woken starts the back-off again, for a SHUTDOWN still on its way.
    """
    backoff = Backoff(0.001, 0.1)
    relay = _SignalRelay(link, stop_signal)
    while (shutdown := link.shutdown_message()) is None:
        relay.check()
        link.settle()
        if sleep(backoff.next()):
            backoff.reset()
    link.bye(())  # after it rank 0 may finalize
    return shutdown.exit_status


class _SignalRelay:
    """Tells rank 0, once, that a stop signal reached this rank."""

    def __init__(self, link: AgentEndpoint, stop_signal: StopSignal) -> None:
        self.link, self.stop_signal = link, stop_signal
        self.sent = False

    def check(self, before: Callable[[], None] = lambda: None) -> bool:
        """Pass the news on (without waiting) if a signal has arrived since the last call, after calling
        ``before`` (what is to reach rank 0 ahead of it); whether it did."""
        if self.sent:
            return False
        signum = self.stop_signal()
        if signum is None:
            return False
        self.sent = True
        before()
        self.link.report(Signalled(signum, self.link.rank))
        return True
