"""The loops of the ranks other than rank 0: an agent serving its node, and a parked rank.

Beside the master's loop (:mod:`mpilauncher.runtime.master`), and as transport-blind:
both speak through an :class:`~mpilauncher.transport.base.AgentEndpoint` (over MPI:
:class:`~mpilauncher.transport.mpi.MpiAgentEndpoint`), so they are tested without
MPI and the transport never imports the runtime.

An agent rank says HELLO, then, until SHUTDOWN: acts on what rank 0 sends,
sleeps in its backend's wait (the tasks' pidfds in epoll) for a back-off that
grows while nothing happens, reports the ends it saw, and sends a heartbeat
when it has said nothing for a while.  A parked rank (``srun``/``ibrun`` start
one rank per core) only waits for SHUTDOWN, a few times a second.  Both answer
SHUTDOWN with BYE, and pass a stop signal their handler recorded on to rank 0,
once: only rank 0 decides, and every rank then exits with its status.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from mpilauncher.protocol import Setup, Shutdown, Signalled
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


def serve_agent(
    link: AgentEndpoint, agent: Agent, beat_interval: float | None = None, stop_signal: StopSignal = no_signal
) -> int:
    """An agent rank's loop: run what rank 0 sends until it says SHUTDOWN; returns its exit status.

    ``beat_interval``: seconds of silence before a heartbeat (default: what the
    master's Setup says).  A stop signal recorded by this rank (``stop_signal``)
    is passed on to rank 0 once, before any end reported after it (rank 0 then
    knows which ends the signal may have caused); the agent goes on serving:
    rank 0 sends the SHUTDOWN.
    """
    link.hello(agent.hello())
    backoff = Backoff(*AGENT_PROBE)
    last_sent = time.monotonic()
    relay = _SignalRelay(link, stop_signal)
    while True:
        progressed = False
        for message in link.messages():
            progressed = True
            if isinstance(message, Shutdown):
                link.bye(tuple(agent.handle(message)))
                agent.close()
                return message.exit_status
            agent.handle(message)
            if isinstance(message, Setup):
                beat_interval = beat_interval or message.beat_interval
        report = agent.poll(0 if progressed else backoff.next())
        now = time.monotonic()
        if relay.check():  # before the report: these ends came after the signal
            progressed = True
            last_sent = now
        if report is not None:
            link.report(report)
            progressed = True
            last_sent = now
        elif beat_interval and now - last_sent > beat_interval:
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

    def check(self) -> bool:
        """Pass the news on (without waiting) if a signal has arrived since the last call; whether it did."""
        if self.sent:
            return False
        signum = self.stop_signal()
        if signum is None:
            return False
        self.sent = True
        self.link.report(Signalled(signum, self.link.rank))
        return True
