"""The agent and its seams, without processes or MPI: a fake execution backend under it, the
in-process transport and the serving loops (runtime/serve.py) over a fake endpoint around it."""

from __future__ import annotations

import signal
from pathlib import Path

import pytest

from mpilauncher.execution.backend import ExecutionBackend, default_backend
from mpilauncher.execution.environment import PlaceEnvironments, exec_script, task_variables
from mpilauncher.execution.executor import Executors
from mpilauncher.execution.processes import ProcessRunner
from mpilauncher.execution.resources import Gpus, gpu_environment
from mpilauncher.execution.starters import Segment
from mpilauncher.protocol import (
    Completions,
    Ended,
    Hello,
    Setup,
    Shutdown,
    Signalled,
    StartRequest,
    StartTasks,
)
from mpilauncher.runtime.agent import Agent
from mpilauncher.runtime.serve import HeldEnds, park, serve_agent
from mpilauncher.transport.base import AgentEndpoint, InProcessAgent, Transport
from mpilauncher.transport.local import LocalTransport


class FakeBackend:
    """An execution backend that runs nothing: it records what it is asked, and ends what a test says."""

    def __init__(self) -> None:
        self.retracted: list[int] = []
        self.received: list[StartRequest] = []  # every start asked for
        self.started: list[StartRequest] = []  # running now
        self.standing_by: dict[int, StartRequest] = {}
        self.ending: list[Ended] = []  # reported by the next wait()
        self.signals: list[tuple[int, int]] = []
        self.waits: list[float | None] = []
        self.wake_fds: list[int] = []
        self.flushes = 0
        self.closed = False
        self.refuse: set[int] = set()  # tasks whose output file "cannot be created"
        self.end_at: dict[int, list[Ended]] = {}  # ends the Nth wait() reports (counting from 1)

    def start(self, request: StartRequest) -> Ended | None:
        self.received.append(request)
        if request.task_id in self.refuse:
            return Ended(request.task_id, 127, 1.0, 0.0, not_started=f"{request.output}: Disk quota exceeded")
        if request.after is not None:
            self.standing_by[request.task_id] = request
        else:
            self.started.append(request)
        return None

    def retract(self, task_id: int) -> bool:
        if self.standing_by.pop(task_id, None) is None:
            return False
        self.retracted.append(task_id)
        return True

    def signal(self, task_id: int, signum: int) -> None:
        self.signals.append((task_id, signum))

    def flush(self) -> None:
        self.flushes += 1

    def wait(self, timeout: float | None) -> list[Ended]:
        self.waits.append(timeout)
        self.ending += self.end_at.pop(len(self.waits), [])
        ended, self.ending = self.ending, []
        done = {e.task_id for e in ended}
        self.started = [r for r in self.started if r.task_id not in done]
        return ended

    def stop_all(self, grace: float) -> list[Ended]:
        self.standing_by.clear()
        ended = [Ended(r.task_id, -signal.SIGTERM, 1.0, grace) for r in self.started]
        self.started = []
        return ended

    def add_wake_fd(self, fd: int) -> None:
        self.wake_fds.append(fd)

    def close(self) -> None:
        self.closed = True


@pytest.fixture
def backend() -> FakeBackend:
    return FakeBackend()


@pytest.fixture
def agent(backend: FakeBackend, tmp_path: Path) -> Agent:
    made = Agent("c101", 4, gpus=Gpus(("GPU-a", "GPU-b")), backend=backend)
    made.handle(Setup(str(tmp_path), "/where/tasks/run", task_timeout=30.0))
    return made


def test_both_real_backends_and_the_fake_keep_the_backend_interface():
    for backend in (ProcessRunner, Executors, FakeBackend):
        missing = [name for name in ("start", "retract", "signal", "flush", "wait", "stop_all", "add_wake_fd", "close")
                   if not callable(getattr(backend, name, None))]  # fmt: skip
        assert not missing, f"{backend.__name__} lacks {missing}"
    assert isinstance(FakeBackend(), ExecutionBackend)


def test_the_agent_resolves_the_masters_request_for_its_backend(agent, backend, tmp_path):
    agent.handle(StartTasks((StartRequest(7, "./sim 7", (2, 3), (1,), 12),)))
    [request] = backend.started
    assert isinstance(request, StartRequest)
    assert (request.task_id, request.command, request.core_ids, request.gpu_indices) == (7, "./sim 7", (2, 3), (1,))
    assert request.output == f"{tmp_path}/out7" and request.timeout == 30.0 and request.after is None
    assert request.env_changes["MPILAUNCHER_TASK_ID"] == "7" and request.env_changes["MPILAUNCHER_CORES"] == "2,3"
    assert request.env_changes["MPILAUNCHER_NODE"] == "c101" and request.env_changes["CUDA_VISIBLE_DEVICES"] == "GPU-b"
    exec_path, script, records = request.exec_file
    assert exec_path == f"{tmp_path}/exec7" and "line 12" in script and "cd /where/tasks/run" in script
    assert records == f"{tmp_path}/exec.c101", "every exec script is recorded in the node's lane files"
    assert request.cpu_ids == () and request.segments == ()
    assert backend.flushes == 1, "one flush a message: the executors start while the master journals"


@pytest.mark.parametrize("omp_set", [False, True])
def test_a_tasks_environment_and_exec_script_are_what_the_general_builders_make_wherever_it_runs(omp_set, monkeypatch):
    """The agent makes what depends on a task's place once a place (PlaceEnvironments): every task still
    gets exactly the variables and exec<N> that task_variables, the GPUs' variables and exec_script make
    for it alone -- in the same order, quoted the same -- through places seen before, new ones, and the
    cache starting over at its limit."""
    monkeypatch.setattr(PlaceEnvironments, "LIMIT", 3)
    gpus = Gpus(("GPU-a", "GPU b"), vendor="amd")
    places = PlaceEnvironments("node 7's", "/work dir/$HOME", omp_set, lambda g: gpu_environment(gpus, g))
    shapes = [((0,), ()), ((2, 3), (1,)), ((0,), ()), ((1,), (0, 1)), ((4, 5, 6, 7), ()), ((2, 3), (1,)), ((0,), ())]
    for task_id, (core_ids, gpu_indices) in enumerate(shapes * 2, start=1):
        command, line = f"./sim --case {task_id} 'a b'", task_id * 3
        expected = task_variables(task_id, core_ids, "node 7's") | gpu_environment(gpus, gpu_indices)
        changes, script = places.resolve(task_id, core_ids, gpu_indices, command, line)
        assert script == exec_script(command, "/work dir/$HOME", expected, len(core_ids), omp_set, line)
        if not omp_set:
            expected["OMP_NUM_THREADS"] = str(len(core_ids))
        assert list(changes.items()) == list(expected.items())
        assert len(places._places) <= 3
    assert "export PYL_ID=14 MPILAUNCHER_TASK_ID=14 MPILAUNCHER_NCORES=1" in script
    assert "MPILAUNCHER_NODE='node 7'\"'\"'s'" in script and "cd '/work dir/$HOME' || exit 1" in script


def test_an_mpi_task_reaches_the_backend_wrapped_in_its_starter_with_no_segments_left(agent, backend):
    segments = (Segment("c101", 2, 0, "0-1"),)
    agent.handle(StartTasks((StartRequest(3, "./mpiprog", (0, 1), segments=segments),)))
    [request] = backend.started
    assert request.segments == () and request.command != "./mpiprog" and "./mpiprog" in request.command


def test_standbys_go_to_the_backend_and_come_back_retracted_in_the_next_report(agent, backend):
    agent.handle(StartTasks((StartRequest(1, "a", (0,)), StartRequest(2, "b", (0,), after=1))))
    assert [r.task_id for r in backend.started] == [1] and backend.standing_by[2].after == 1
    agent.handle(StartTasks((), retract=(2,)))
    assert agent.poll(5.0) == Completions((), (2,))
    assert backend.waits[-1] == 0, "something to report: the agent does not sleep"
    assert backend.retracted == [], "reported once"
    assert agent.poll(0.5) is None and backend.waits[-1] == 0.5


def test_a_start_the_backend_refuses_at_once_is_reported_without_waiting(agent, backend):
    backend.refuse.add(4)
    agent.handle(StartTasks((StartRequest(4, "x", (0,)),)))
    report = agent.poll(5.0)
    assert [e.not_started for e in report.items] == [f"{agent.workdir}/out4: Disk quota exceeded"]
    assert backend.waits == [0]


def test_shutdown_returns_how_the_backend_stopped_the_tasks(agent, backend):
    agent.handle(StartTasks((StartRequest(1, "a", (0,)),)))
    ended = agent.handle(Shutdown(2.5, 143))
    assert [(e.task_id, e.exit_code, e.runtime) for e in ended] == [(1, -signal.SIGTERM, 2.5)]


def test_an_unknown_message_is_refused(agent):
    with pytest.raises(TypeError, match="cannot handle"):
        agent.handle(Completions(()))


# -- node 0: the in-process transport -------------------------------------------
def test_the_local_transport_drives_the_in_process_agent_as_node_0(agent, backend, tmp_path):
    transport = LocalTransport(agent)
    assert isinstance(transport, Transport) and isinstance(agent, InProcessAgent)
    assert transport.hellos() == [(0, Hello("c101", 4, gpu_ids=("GPU-a", "GPU-b")))]
    transport.setup(str(tmp_path / "w"), "/elsewhere", task_timeout=None)
    transport.send(0, StartTasks((StartRequest(5, "true", (1,)),)))
    assert backend.started[0].output == f"{tmp_path}/w/out5" and backend.started[0].timeout is None
    backend.ending = [Ended(5, 0, 1.0, 0.1)]
    assert transport.receive(1.0) == [(0, Completions((Ended(5, 0, 1.0, 0.1),), ()))]
    assert transport.receive(0.25) == [] and backend.waits[-1] == 0.25
    with pytest.raises(ValueError, match="only node 0"):
        transport.send(1, StartTasks(()))
    transport.send(0, StartTasks((StartRequest(6, "sleep 9", (1,)),)))
    assert transport.shutdown(1.0, 0) == [(0, Ended(6, -signal.SIGTERM, 1.0, 1.0))]
    transport.add_wake_fd(99)
    assert backend.wake_fds == [99]
    transport.close()
    assert backend.closed


# -- the serving loops, over a fake endpoint ------------------------------------
class FakeLink:
    """An agent rank's endpoint with a script of what rank 0 sends, turn by turn."""

    rank = 3

    def __init__(self, turns: list[list], on_turn=None) -> None:
        self.turns = turns
        self.on_turn = on_turn or (lambda turn: None)
        self.turn = 0
        self.sent: list = []

    def hello(self, hello: Hello) -> None:
        self.sent.append(hello)

    def messages(self) -> list:
        self.on_turn(self.turn)
        batch = self.turns[self.turn] if self.turn < len(self.turns) else []
        self.turn += 1
        return batch

    def shutdown_message(self) -> Shutdown | None:
        return next((m for m in self.messages() if isinstance(m, Shutdown)), None)

    def report(self, message) -> None:
        self.sent.append(("beat",) if message is None else message)

    def settle(self) -> None:
        pass

    def bye(self, ended) -> None:
        self.sent.append(("bye", ended))


def test_an_agent_rank_says_hello_serves_and_answers_shutdown_with_bye(backend, tmp_path):
    agent = Agent("c102", 2, backend=backend)
    setup = Setup(str(tmp_path), "/cwd", beat_interval=60.0)
    link = FakeLink([[setup, StartTasks((StartRequest(1, "a", (0,)),))], [], [Shutdown(0.5, 143)]])
    assert isinstance(link, AgentEndpoint)

    def end_task_1(turn: int) -> None:
        if turn == 1:
            backend.ending = [Ended(1, 0, 1.0, 0.2)]

    link.on_turn = end_task_1
    assert serve_agent(link, agent) == 143, "every rank exits with the status rank 0 decides"
    assert link.sent[0] == Hello("c102", 2)
    assert link.sent[1] == Completions((Ended(1, 0, 1.0, 0.2),), ())
    assert link.sent[-1] == ("bye", ()) and backend.closed
    assert agent.workdir == tmp_path and backend.received[0].output == f"{tmp_path}/out1"


def test_an_agent_rank_passes_a_signal_on_once_before_the_ends_that_follow_it(backend):
    agent = Agent("c102", 1, backend=backend)
    signalled: list[int] = []

    def turn(n: int) -> None:
        if n == 1:
            signalled.append(signal.SIGTERM)
            backend.ending = [Ended(1, -signal.SIGTERM, 1.0, 0.1)]

    link = FakeLink([[StartTasks((StartRequest(1, "a", (0,)),))], [], [], [Shutdown(0, 143)]], turn)
    serve_agent(link, agent, beat_interval=60, stop_signal=lambda: signalled[0] if signalled else None)
    news = [m for m in link.sent if isinstance(m, (Signalled, Completions))]
    assert news == [Signalled(signal.SIGTERM, 3), Completions((Ended(1, -signal.SIGTERM, 1.0, 0.1),), ())]


def test_a_silent_agent_rank_sends_heartbeats(backend, monkeypatch):
    clock = iter(range(0, 1000, 10))  # every look at the clock is 10 s later
    monkeypatch.setattr("mpilauncher.runtime.serve.time.monotonic", lambda: float(next(clock)))
    link = FakeLink([[], [], [Shutdown()]])
    serve_agent(link, Agent("c102", 1, backend=backend), beat_interval=5)
    assert link.sent.count(("beat",)) == 2


def test_an_idle_agent_rank_waits_longer_each_time_up_to_a_tenth_of_a_second(backend):
    """Nothing happening: each wait doubles, up to 0.1 s (an idle agent wakes ten times a second, not
    fifty: 64 agents on one host took a fifth of its 2 CPUs); a message from rank 0 starts again at 0.5 ms."""
    idle = [[]] * 10
    link = FakeLink([*idle, [StartTasks((StartRequest(1, "a", (0,)),))], *idle[:3], [Shutdown()]])
    serve_agent(link, Agent("c102", 2, backend=backend), beat_interval=60)
    waits = [w for w in backend.waits if w]  # (0: a look right after progress)
    assert waits[:10] == [0.0005 * 2**k for k in range(8)] + [0.1, 0.1]
    assert waits[10:] == [0.0005, 0.001, 0.002], "a core is free: rank 0's next start is expected soon"


def test_an_agent_whose_cores_all_have_a_task_looks_for_more_work_less_eagerly(backend, monkeypatch):
    """Every core has a task (running, or standing by behind one): after progress the probes start at
    10 ms, not 0.5 (at 64 emulated nodes on 2 CPUs the turns that found nothing were most of the agents'
    CPU); once a task's end is reported a core is free, and rank 0's answer is awaited eagerly again."""
    one, two = StartRequest(1, "a", (0,)), StartRequest(2, "b", (1,))
    standby = StartRequest(3, "c", (0,), after=1)
    link = FakeLink([[StartTasks((one, two, standby))], [], [], [], [], [], [], [Shutdown()]])
    backend.end_at = {3: [Ended(1, 0, 1.0, 0.5)], 5: [Ended(2, 0, 1.0, 0.5)]}
    clock = FakeClock(monkeypatch)
    serve_agent(link, Agent("c102", 2, backend=backend), beat_interval=60, sleep=clock.sleep)
    assert backend.waits[:3] == [0, 0.01, 0.02], "every core has a task: after progress, 10 ms"
    assert clock.slept == [0.01, 0.01], "task 1's end is held (its standby runs): the agent sleeps, at 10 ms"
    assert backend.waits[3:5] == [0, 0], "...and then looks without waiting, for everything at once"
    assert backend.waits[5:] == [0.0005, 0.001], "task 2 ended with nothing behind it: core 1 is free"


class FakeClock:
    """The serving loop's clock (``time.monotonic``), moved on only by its sleeps."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch | None = None) -> None:
        self.now = 1000.0
        self.slept: list[float] = []
        if monkeypatch is not None:
            monkeypatch.setattr("mpilauncher.runtime.serve.time.monotonic", lambda: self.now)

    def sleep(self, seconds: float) -> None:
        self.slept.append(round(seconds, 9))
        self.now += seconds


def test_held_ends_wait_a_share_of_their_shortest_runtime_at_most_20_ms():
    held = HeldEnds()
    assert not held
    held.add(Completions((Ended(1, 0, 1.0, 0.5),)), now=10.0, urgent=False)
    assert held and held.due == 10.02, "a tenth of 0.5 s is more than 20 ms: 20 ms"
    held.add(Completions((Ended(2, 0, 1.0, 0.05),)), now=10.001, urgent=False)
    assert held.due == pytest.approx(10.005), "a tenth of the shortest, counted from the first end held"
    held.add(Completions((Ended(3, 0, 1.0, 9.0),)), now=10.002, urgent=False)
    assert held.due == pytest.approx(10.005), "a longer task never makes them wait longer"
    assert held.take() == Completions((Ended(1, 0, 1.0, 0.5), Ended(2, 0, 1.0, 0.05), Ended(3, 0, 1.0, 9.0)), ())
    assert not held and held.take() == Completions((), ())
    held.add(Completions((Ended(4, 0, 1.0, 0.001),)), now=20.0, urgent=False)
    assert held.due == pytest.approx(20.0001), "tasks of a millisecond: no wait to speak of"


@pytest.mark.parametrize(
    "report",
    [Completions((Ended(1, 0, 1.0, 5.0),)), Completions((), (7,)), Completions((Ended(1, 0, 1.0, 5.0),), (7,))],
    ids=["said urgent", "a standby taken back", "an end and a standby taken back"],
)
def test_held_ends_are_due_at_once_with_news_rank_0_acts_on(report):
    held = HeldEnds()
    held.add(Completions((Ended(9, 0, 1.0, 5.0),)), now=10.0, urgent=False)
    held.add(report, now=10.001, urgent=not report.retracted)
    assert held.due == 10.001, "what was held goes with it"
    assert held.take() == Completions((Ended(9, 0, 1.0, 5.0), *report.items), report.retracted)


def saturated_agent(backend: FakeBackend, standbys: tuple[int, ...] = (1, 2)) -> tuple[Agent, StartTasks]:
    """An agent of 2 cores running tasks 1 and 2, with a standby (11, 12) behind those in ``standbys``."""
    starts = [StartRequest(1, "a", (0,)), StartRequest(2, "b", (1,))]
    starts += [StartRequest(10 + t, "s", (t - 1,), after=t) for t in standbys]
    return Agent("c102", 2, backend=backend), StartTasks(tuple(starts))


def test_ends_that_leave_every_core_busy_are_held_a_moment_and_reported_together(backend, monkeypatch):
    """Task 1's and task 2's standbys start as they end: the node stays busy, and rank 0's answer would be only
    one more standby each.  The ends wait up to 20 ms (the agent asleep, not woken by each) and go in one report."""
    clock = FakeClock(monkeypatch)
    agent, starts = saturated_agent(backend)
    link = FakeLink([[starts], [], [], [], [Shutdown()]])
    backend.end_at = {2: [Ended(1, 0, 1.0, 0.5)], 3: [Ended(2, 0, 1.0, 0.5)]}
    serve_agent(link, agent, beat_interval=60, sleep=clock.sleep)
    reports = [m for m in link.sent if isinstance(m, Completions)]
    assert reports == [Completions((Ended(1, 0, 1.0, 0.5), Ended(2, 0, 1.0, 0.5)), ())]
    assert clock.slept == [0.01, 0.01] and clock.now == 1000.02, "sent 20 ms after the first end"


@pytest.mark.parametrize(
    ("second", "standbys", "why"),
    [
        (Ended(2, 0, 1.0, 0.5), (1,), "task 2's core has nothing to run: rank 0 may have a task for it"),
        (Ended(2, 1, 1.0, 0.5), (1, 2), "task 2 failed: rank 0 may retry it, or doubt the node"),
    ],
    ids=["a core left idle", "a failure"],
)
def test_an_end_rank_0_may_act_on_goes_at_once_with_those_held(backend, monkeypatch, second, standbys, why):
    clock = FakeClock(monkeypatch)
    agent, starts = saturated_agent(backend, standbys)
    link = FakeLink([[starts], [], [], [Shutdown()]])
    backend.end_at = {2: [Ended(1, 0, 1.0, 0.5)], 3: [second]}
    serve_agent(link, agent, beat_interval=60, sleep=clock.sleep)
    assert link.sent[1] == Completions((Ended(1, 0, 1.0, 0.5), second), ()), why
    assert clock.now == 1000.01, "sent as soon as it was seen, 10 ms after the first, not when that was due"


def test_ends_held_go_to_rank_0_before_a_shutdown_is_acted_on_and_before_the_news_of_a_signal(backend, monkeypatch):
    clock = FakeClock(monkeypatch)
    agent, starts = saturated_agent(backend)
    link = FakeLink([[starts], [], [Shutdown(0.0, 143)]])
    backend.end_at = {2: [Ended(1, 0, 1.0, 5.0)]}
    assert serve_agent(link, agent, beat_interval=60, sleep=clock.sleep) == 143
    assert link.sent[1] == Completions((Ended(1, 0, 1.0, 5.0),), ()) and link.sent[2][0] == "bye"
    assert clock.now == 1000.0, "not held through the shutdown"

    backend, signalled = FakeBackend(), []
    agent, starts = saturated_agent(backend)
    link = FakeLink([[starts], [], [], [Shutdown(0.0, 143)]], lambda turn: turn == 2 and signalled.append(15))
    backend.end_at = {2: [Ended(1, 0, 1.0, 5.0)], 3: [Ended(2, -15, 1.0, 5.0)]}
    serve_agent(
        link, agent, beat_interval=60, stop_signal=lambda: signalled[0] if signalled else None, sleep=clock.sleep
    )
    assert link.sent[1:4] == [
        Completions((Ended(1, 0, 1.0, 5.0),), ()),  # seen before the signal
        Signalled(15, 3),
        Completions((Ended(2, -15, 1.0, 5.0),), ()),  # seen after it: the signal may be its cause
    ]


def test_an_agent_counts_the_cores_its_tasks_hold_until_each_is_reported(backend):
    """Started tasks hold their cores until their end is reported; a standby holds none until the task it
    waits for ends (then it runs on those cores), and none once taken back; a task that could not start
    holds none."""
    agent = Agent("c102", 4, backend=backend)
    wide, narrow = StartRequest(1, "a", (0, 1, 2)), StartRequest(2, "b", (3,))
    backend.refuse.add(3)
    agent.start(StartTasks((wide, StartRequest(3, "c", (3,)))))
    assert not agent.saturated, "3 of 4 cores"
    agent.start(StartTasks((narrow, StartRequest(4, "d", (3,), after=2), StartRequest(5, "e", (0, 1, 2), after=1))))
    assert agent.saturated
    backend.ending.append(Ended(2, 0, 1.0, 0.5))
    assert agent.poll(0) is not None and agent.saturated, "task 4 started on core 3 as task 2 ended"
    agent.start(StartTasks((), retract=(5,)))
    backend.ending.append(Ended(1, 0, 1.0, 0.5))
    report = agent.poll(0)
    assert report is not None and report.retracted == (5,)
    assert not agent.saturated, "task 5 was taken back before task 1 ended: cores 0-2 are free"
    backend.ending.append(Ended(4, 0, 1.0, 0.5))
    agent.poll(0)
    assert agent._taken == 0 and not agent._holding and not agent._waiting


def test_a_parked_rank_passes_a_signal_on_and_waits_for_shutdown():
    link = FakeLink([[], [], [Shutdown(0, 130)]])
    naps: list[float] = []
    assert park(link, sleep=naps.append, stop_signal=lambda: signal.SIGINT) == 130
    assert link.sent == [Signalled(signal.SIGINT, 3), ("bye", ())]
    assert naps == [0.001, 0.002], "it sleeps between looks, longer each time"


@pytest.mark.parametrize(
    ("value", "kind", "warning"),
    [
        (None, Executors, ""),
        ("process", Executors, ""),
        ("python", Executors, ""),
        ("inline", ProcessRunner, ""),
        ("inlined", Executors, "inlined"),
    ],
)
def test_mpilauncher_executor_picks_the_backend_and_a_wrong_value_says_so(monkeypatch, capsys, value, kind, warning):
    if value is None:
        monkeypatch.delenv("MPILAUNCHER_EXECUTOR", raising=False)
    else:
        monkeypatch.setenv("MPILAUNCHER_EXECUTOR", value)
    backend = default_backend({"PATH": "/bin:/usr/bin"}, lanes=1, cores=1)
    try:
        assert type(backend) is kind and isinstance(backend, ExecutionBackend)
    finally:
        backend.close()
    err = capsys.readouterr().err
    assert (warning in err and "MPILAUNCHER_EXECUTOR" in err) if warning else err == ""


@pytest.mark.parametrize(
    ("value", "passed_on", "warning"),
    [(None, None, ""), ("30", "30.0", ""), ("0", "0.0", ""), ("ten", "600.0", "'ten' is not a number of seconds")],
)
def test_mpilauncher_stuck_after_is_checked_once_a_node_and_passed_on_as_the_lanes_read_it(
    monkeypatch, capsys, value, passed_on, warning
):
    """A value that is not seconds gets one line and the default, not a lane that quietly reads it its own way."""
    monkeypatch.setenv("MPILAUNCHER_EXECUTOR", "inline")
    env = {"PATH": "/bin:/usr/bin"} | ({} if value is None else {"MPILAUNCHER_STUCK_AFTER": value})
    backend = default_backend(env, lanes=1, cores=1)
    try:
        assert isinstance(backend, ProcessRunner)
        assert backend.base_env.get("MPILAUNCHER_STUCK_AFTER") == passed_on
    finally:
        backend.close()
    err = capsys.readouterr().err
    assert (warning in err and "using 600" in err and len(err.splitlines()) == 1) if warning else err == ""
