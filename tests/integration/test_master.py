"""The master and the scheduler driven end to end through a fake cluster (see harness.py).

Each test is a scenario -- nodes lost and back, standbys, MPI tasks over nodes,
a stop signal, retries, starts that never happened, the time limit, pacing --
checked on what a user reads afterwards: the queuestate (and what a kill -9
would have left: the first snapshot with the journal replayed), the joblog,
the statistics and the trace.
"""

from __future__ import annotations

import signal
from pathlib import Path

import pytest

from mpilauncher.core.events import Requeued, Retried, Start, TaskEnded
from mpilauncher.core.observer import Observer
from mpilauncher.core.tasks import Task
from mpilauncher.runtime.master import StopRequest
from tests.integration.harness import EPOCH, FakeCluster, RunRecord, run_sweep


def tasks(count: int, cores: int = 1, **kw) -> list[Task]:
    return [Task(i, f"./sim {i}", cores, line=i + 1, **kw) for i in range(count)]


def assert_consistent(record: RunRecord) -> None:
    """What every run must satisfy, whatever happened in it."""
    final = {r.id: (r.state, r.exit_code, r.host) for r in record.ledger}
    assert final == {r.id: (r.state, r.exit_code, r.host) for r in record.replayed}, "a kill -9 loses nothing"
    for rec in record.ledger:
        rows = record.rows_of(rec.id)
        if rec.state in ("completed", "failed"):
            last = rows[-1]
            first_node = last["node"].split("+")[0]  # an MPI task over nodes: the queuestate names the first
            assert (int(last["exit"]), first_node) == (rec.exit_code, rec.host), rec
            assert [int(r["attempt"]) for r in rows] == list(range(1, len(rows) + 1)), rows
    stats = record.statistics
    states = record.states()
    assert stats.completed == sum(s == "completed" for s in states.values())
    assert stats.aborted == sum(s == "failed" for s in states.values())
    assert stats.not_run == sum(s in ("queued", "running") for s in states.values())


# -- a plain sweep -------------------------------------------------------------------
def test_a_sweep_runs_every_task_once_and_every_record_agrees(tmp_path: Path) -> None:
    cluster = FakeCluster(("n0", 2), ("n1", 2))
    cluster.runtimes = {i: 0.5 + (i * 7 % 5) / 2 for i in range(40)}
    cluster.exits = {3: 1, 17: -9, 30: 2}
    record = run_sweep(tmp_path, cluster, tasks(40))
    assert record.outcome.interrupted is None and record.outcome.failure is None
    states = record.states()
    assert {i for i, s in states.items() if s == "failed"} == {3, 17, 30}
    assert all(s == "completed" for i, s in states.items() if i not in (3, 17, 30))
    assert sorted(int(r["id"]) for r in record.joblog) == list(range(40)), "one joblog line per task"
    assert {r["status"] for r in record.joblog if r["id"] in ("3", "30")} == {"failed"}
    assert record.rows_of(17)[0]["status"] == "signal"
    assert sum(1 for _, _, item in cluster.starts if item.after is not None) > 0, "standbys were sent ahead"
    assert record.statistics.pool_size == 4 and record.statistics.completed == 37
    assert len(record.latencies) == 40
    assert_consistent(record)


def test_a_standby_is_recorded_as_started_when_its_predecessor_ends(tmp_path: Path) -> None:
    cluster = FakeCluster(("n0", 1))
    cluster.runtimes = {0: 2.0, 1: 3.0, 2: 1.0}
    record = run_sweep(tmp_path, cluster, tasks(3))
    behind = [(item.task_id, item.after) for _, _, item in cluster.starts if item.after is not None]
    assert behind and behind[0] == (1, 0)
    starts = {int(r["id"]): float(r["start"]) for r in record.joblog}
    assert starts[1] == starts[0] + 2.0, "task 1 started on task 0's end, without waiting for the master"
    assert [rec.start for rec in record.ledger] == [EPOCH, EPOCH + 2.0, EPOCH + 5.0]
    s_lines = [line.split("\t")[:3] for line in record.journal if line.startswith("S")]
    assert [(tid, float(start)) for _, tid, start in s_lines] == [("0", EPOCH), ("1", EPOCH + 2.0), ("2", EPOCH + 5.0)]
    assert_consistent(record)


def test_standbys_behind_a_long_task_are_taken_back_and_run_elsewhere(tmp_path: Path) -> None:
    cluster = FakeCluster(("n0", 2))
    cluster.runtimes = {0: 100.0, **{i: 1.0 for i in range(1, 12)}}
    record = run_sweep(tmp_path, cluster, tasks(12))
    waited = next(item.task_id for _, _, item in cluster.starts if item.after == 0)
    assert sum(1 for _, _, item in cluster.starts if item.task_id == waited) == 2, "sent behind 0, then started"
    assert float(record.rows_of(waited)[0]["start"]) < EPOCH + 100.0, "it did not wait for the long task"
    assert "running" not in record.states().values()
    first = record.trace.split("tick 2")[0]  # the standbys are out, nothing has ended yet
    assert "queued     10 jobs: 2-11" in first and "running     2 jobs: 0-1" in first, "a standby is not running yet"
    assert "n0: 2/2 cores busy: 0@0 1@1" in first
    assert_consistent(record)


# -- lost nodes ---------------------------------------------------------------------
def test_stale_ends_from_a_node_given_up_as_lost_and_back_again_are_ignored(tmp_path: Path, capsys) -> None:
    cluster = FakeCluster(("n0", 2), ("n1", 2))
    cluster.runtimes = {i: 2.0 for i in range(8)}
    cluster.at(1.0, lambda c: c.silence(1))  # n1 seems gone; it goes on and reports its ends later
    record = run_sweep(tmp_path, cluster, tasks(8))
    assert "lost contact with the agent of node n1: its 2 running tasks are queued again" in capsys.readouterr().err
    moved = [item.task_id for _, node, item in cluster.starts if node == 1 and item.after is None]
    assert moved == [2, 3]
    for task_id in moved:
        rows = record.rows_of(task_id)
        assert [r["node"] for r in rows] == ["n0"], "the stale end from n1 is not recorded"
    assert all(s == "completed" for s in record.states().values())
    assert {line for line in record.journal if line.startswith("Q")} == {"Q\t2", "Q\t3"}
    assert not any(node == 1 for _, node, _ in cluster.starts[4:]), "nothing more goes to n1"
    assert_consistent(record)


def test_the_last_node_lost_is_the_launchers_failure(tmp_path: Path) -> None:
    from mpilauncher.errors import LauncherFailure

    cluster = FakeCluster(("n0", 2))
    cluster.at(0.5, lambda c: c.silence(0))
    with pytest.raises(LauncherFailure, match="every agent is lost"):
        run_sweep(tmp_path, cluster, tasks(4))


# -- MPI tasks over nodes ---------------------------------------------------------------
def test_an_mpi_task_over_nodes_gets_its_segments_and_one_joblog_line_naming_them(tmp_path: Path) -> None:
    cluster = FakeCluster(("n0", 4), ("n1", 4), ("n2", 4))
    work = [Task(0, "./mpi a", 1, line=1), Task(1, "./mpi b", 6, mpi=True, line=2), Task(2, "./mpi c", 3, mpi=True)]
    record = run_sweep(tmp_path, cluster, work)
    items = {item.task_id: (node, item) for _, node, item in cluster.starts}
    node, wide = items[1]
    assert node == 1 and [(s.host, s.ranks, s.offset, s.core_ids) for s in wide.segments] == [
        ("n1", 4, 4, "0-3"),
        ("n2", 2, 8, "0-1"),
    ]
    (row,) = record.rows_of(1)
    assert (row["node"], row["cores"]) == ("n1+n2", "0-3+0-1")
    assert record.ledger.records[1].host == "n1"
    assert [(s.host, s.ranks) for s in items[2][1].segments] == [("n0", 3)]
    assert all(s == "completed" for s in record.states().values())
    assert_consistent(record)


def test_gpu_tasks_name_their_gpu_ids_and_bound_cpus_in_the_joblog(tmp_path: Path) -> None:
    cluster = FakeCluster(("g0", 4, ("7", "9"), (10, 11, 12, 13)), ("cpu", 2))
    work = [Task(i, f"./train {i}", 2, gpus=1, line=i + 1) for i in range(6)]
    record = run_sweep(tmp_path, cluster, work)
    rows = {int(r["id"]): r for r in record.joblog}
    assert {(r["node"], r["gpus"], r["cores"], r["cpus"]) for r in rows.values()} == {
        ("g0", "7", "0-1", "10-11"),
        ("g0", "9", "2-3", "12-13"),
    }, "GPU index -> id, core ids -> bound CPU ids; nothing on the node without GPUs"
    assert all(s == "completed" for s in record.states().values())
    assert_consistent(record)


# -- stopping -------------------------------------------------------------------------
def test_a_stop_signal_mid_run_keeps_clean_ends_and_leaves_the_rest_to_resume(tmp_path: Path) -> None:
    cluster = FakeCluster(("n0", 2), ("n1", 2))
    cluster.runtimes = {i: 1.0 for i in range(20)} | {5: 3.0, 6: 9.0, 7: 9.0}
    cluster.exits = {5: 0}
    stop = StopRequest()
    cluster.at(4.5, lambda c: setattr(stop, "signum", signal.SIGTERM))
    record = run_sweep(tmp_path, cluster, tasks(20), stop=stop, grace=2.0)
    assert record.outcome.interrupted == "stopped by SIGTERM" and stop.exit_status == 143
    states = record.states()
    assert "failed" not in states.values(), "a task ended by the stop is interrupted, not failed"
    running = {i for i, s in states.items() if s == "running"}
    assert {6, 7} <= running, "killed at the stop: they stay running and run again on resume"
    assert not any(item.task_id > 13 for _, _, item in cluster.starts if item.after is None)
    assert all(r["status"] == "ok" for r in record.joblog)
    assert {int(r["id"]) for r in record.joblog} == {i for i, s in states.items() if s == "completed"}
    assert cluster.shut_down
    assert_consistent(record)


@pytest.mark.parametrize("runtime, state", [(0.5, "completed"), (5.0, "queued")])
def test_a_standby_its_node_started_in_the_instant_of_the_stop_and_that_completed_in_grace_counts(
    tmp_path: Path, runtime: float, state: str
) -> None:
    """The stop dropped it before the master knew it ran: completed in the grace it is not run again
    on resume (it once was); killed by the shutdown it is."""
    cluster = FakeCluster(("n0", 1))
    cluster.runtimes = {0: 1.0, 1: runtime}
    stop = StopRequest()
    cluster.at(1.0, lambda c: setattr(stop, "signum", signal.SIGINT))  # with task 0's end, which starts 1
    record = run_sweep(tmp_path, cluster, tasks(4), stop=stop, grace=2.0)
    assert [(item.task_id, item.after) for _, _, item in cluster.starts] == [(0, None), (1, 0)]
    states = record.states()
    assert (states[0], states[1]) == ("completed", state)
    assert [r["id"] for r in record.joblog] == ["0", "1"][: 1 + (state == "completed")]
    assert record.replayed.records[1].state == state, "as journaled"
    assert_consistent(record)


# -- a task that dies of a stop signal (SIGTERM, SIGINT, SIGHUP, SIGUSR1) with no stop --------
@pytest.mark.parametrize("code", [-signal.SIGTERM, 128 + signal.SIGINT, -signal.SIGUSR1])
def test_a_task_killed_by_a_stop_signal_of_its_own_lets_the_standby_behind_it_end_in_order(
    tmp_path: Path, code: int
) -> None:
    """The end is held a moment (the batch system's stop may follow it); the standby its node started
    on those cores meanwhile ends too: its end must wait behind the held one, not reach the scheduler
    as the end of a task still waiting (once a crash: InvalidTransition, and a rerun on resume)."""
    cluster = FakeCluster(("n0", 1))
    cluster.runtimes = {0: 1.0, 1: 0.01, 2: 0.01, 3: 0.5}
    cluster.exits = {1: code}
    record = run_sweep(tmp_path, cluster, tasks(4), delay=0.1)
    assert record.outcome.interrupted is None
    states = record.states()
    assert states == {0: "completed", 1: "failed", 2: "completed", 3: "completed"}
    assert [r["id"] for r in record.joblog] == ["0", "1", "2", "3"], "the ends in the order they happened"
    assert record.ledger.records[1].exit_code == code
    assert_consistent(record)


def test_a_stop_while_a_self_killed_task_is_held_interrupts_it_and_keeps_what_ran_behind_it(
    tmp_path: Path,
) -> None:
    cluster = FakeCluster(("n0", 1))
    cluster.runtimes = {0: 1.0, 1: 0.01, 2: 5.0}
    cluster.exits = {0: -signal.SIGTERM}
    stop = StopRequest()
    cluster.at(2.0, lambda c: setattr(stop, "signum", signal.SIGTERM))  # within SUSPECT_WAIT of task 0's end
    record = run_sweep(tmp_path, cluster, tasks(4), stop=stop, grace=1.0, delay=0.1)
    states = record.states()
    assert states[0] == "running", "its death was the stop's: interrupted, it runs again on resume"
    assert states[1] == "completed", "it ran, behind task 0, before the stop: not rerun"
    assert (states[2], states[3]) == ("queued", "queued")
    assert [r["id"] for r in record.joblog] == ["1"]
    assert_consistent(record)


def test_a_signal_passed_on_by_another_rank_stops_the_run_the_same_way(tmp_path: Path) -> None:
    cluster = FakeCluster(("n0", 2), ("n1", 2))
    cluster.at(2.5, lambda c: c.signalled.append((1, signal.SIGUSR1)))
    stop = StopRequest()
    record = run_sweep(tmp_path, cluster, tasks(20), stop=stop)
    assert record.outcome.interrupted == "stopped by SIGUSR1 (received by rank 1 on n1)"
    assert "queued" in record.states().values() and "failed" not in record.states().values()
    assert_consistent(record)


def test_the_time_limit_stops_the_run_and_what_ends_in_grace_counts(tmp_path: Path) -> None:
    cluster = FakeCluster(("n0", 2))
    cluster.runtimes = {0: 1.0, 1: 5.5, 2: 1.0, 3: 20.0, 4: 1.0}
    stop = StopRequest(deadline=5.0, deadline_reason="reached --max-runtime of 5 s")
    record = run_sweep(tmp_path, cluster, tasks(5), stop=stop, grace=1.0, delay=1.0)
    assert record.outcome.interrupted == "reached --max-runtime of 5 s" and stop.exit_status == 4
    assert record.outcome.elapsed == pytest.approx(5.0)
    states = record.states()
    assert states[1] == "completed", "it ended cleanly within the grace period"
    assert states[3] == "running" and states[4] == "queued"
    assert_consistent(record)


def test_a_standby_started_by_an_end_in_the_turn_of_the_time_limit_counts(tmp_path: Path) -> None:
    cluster = FakeCluster(("n0", 1))
    cluster.runtimes = {0: 5.0, 1: 0.5}
    stop = StopRequest(deadline=5.0, deadline_reason="stopping 60 s before the job's time limit")
    record = run_sweep(tmp_path, cluster, tasks(4), stop=stop, grace=1.0)
    assert [(item.task_id, item.after) for _, _, item in cluster.starts] == [(0, None), (1, 0)]
    states = record.states()
    assert (states[0], states[1]) == ("completed", "completed"), "task 0's end started 1 on its node"
    assert float(record.rows_of(1)[0]["start"]) == EPOCH + 5.0
    assert (states[2], states[3]) == ("queued", "queued")
    assert_consistent(record)


def test_one_task_held_back_is_said_in_the_singular(tmp_path: Path) -> None:
    """A user walk: "nothing left that can finish before --max-runtime: 1 tasks held back"."""
    cluster = FakeCluster(("n0", 1))
    cluster.runtimes = {0: 10.0, 1: 10.0}
    stop = StopRequest(deadline=15.0, deadline_reason="reached --max-runtime of 15 s", deadline_name="--max-runtime")
    record = run_sweep(tmp_path, cluster, timed(2, 10.0), stop=stop, grace=1.0)
    assert record.outcome.interrupted == (
        "nothing left that can finish before --max-runtime: 1 task held back for the next job"
    )


def timed(count: int, expected: float) -> list[Task]:
    return [Task(i, f"./sim {i}", 1, line=i + 1, expected=expected) for i in range(count)]


def test_near_the_deadline_tasks_that_cannot_finish_are_held_back_and_the_run_stops_at_once(
    tmp_path: Path, capsys
) -> None:
    cluster = FakeCluster(("n0", 2))
    cluster.runtimes = {i: 10.0 for i in range(8)}
    stop = StopRequest(deadline=35.0, deadline_reason="reached --max-runtime of 35 s", deadline_name="--max-runtime")
    record = run_sweep(tmp_path, cluster, timed(8, 10.0), stop=stop, grace=1.0)
    assert record.outcome.elapsed == pytest.approx(30.0), "stopped when nothing could start, not at the deadline"
    assert record.outcome.interrupted == (
        "nothing left that can finish before --max-runtime: 2 tasks held back for the next job"
    )
    assert stop.exit_status == 4, "resumable, as at the deadline"
    states = record.states()
    assert (states[6], states[7]) == ("queued", "queued") and "running" not in states.values()
    assert all(r["status"] == "ok" for r in record.joblog), "nothing was killed half-way"
    assert record.statistics.held_back == 2
    err = capsys.readouterr().err
    assert err.count("held back") == 1, "one line, for the first task held"
    assert "task 6 held back for the next job: it needs about 10 s (its expected time)" in err
    assert "5 s are left before --max-runtime" in err
    assert_consistent(record)


def test_the_sweeps_own_runtimes_tell_what_cannot_finish(tmp_path: Path, capsys) -> None:
    cluster = FakeCluster(("n0", 2))
    cluster.runtimes = {i: 4.0 for i in range(30)}
    stop = StopRequest(deadline=58.0, deadline_reason="stopping 60 s before the job's time limit",
                       deadline_name="the job's time limit")  # fmt: skip
    record = run_sweep(tmp_path, cluster, tasks(30), stop=stop)
    assert record.outcome.elapsed == pytest.approx(56.0)
    states = record.states()
    assert [i for i, s in states.items() if s == "queued"] == [28, 29]
    assert record.statistics.held_back == 2 and record.statistics.completed == 28
    err = capsys.readouterr().err
    assert "it needs about 4 s (the 90th percentile of the sweep's completed tasks of its size)" in err
    assert_consistent(record)


def test_a_task_longer_than_the_whole_run_is_held_back_and_said_so(tmp_path: Path, capsys) -> None:
    cluster = FakeCluster(("n0", 1))
    stop = StopRequest(deadline=60.0, deadline_reason="reached --max-runtime of 60 s", deadline_name="--max-runtime")
    record = run_sweep(tmp_path, cluster, [Task(0, "./long", 1, line=1, expected=3600.0)], stop=stop)
    assert record.outcome.elapsed == pytest.approx(0.0)
    assert "more than this whole run has (60 s): give it a longer job" in capsys.readouterr().err
    assert record.states() == {0: "queued"}


def test_tasks_that_fit_no_node_left_stop_the_run_instead_of_waiting_forever(tmp_path: Path) -> None:
    cluster = FakeCluster(("big", 4), ("small", 2))
    cluster.runtimes = {0: 5.0, 1: 5.0, 2: 1.0, 3: 1.0}
    cluster.at(2.0, lambda c: c.silence(0))
    work = [Task(0, "./wide", 4, line=1), Task(1, "./wide", 4, line=2), *tasks(4)[2:]]
    record = run_sweep(tmp_path, cluster, work)
    assert record.outcome.interrupted == "2 tasks fit no node still in use (the others were lost or are out of use)"
    assert {i: s for i, s in record.states().items() if s != "completed"} == {0: "queued", 1: "queued"}
    assert_consistent(record)


# -- bad nodes ----------------------------------------------------------------------------------
def test_a_node_that_fails_every_task_at_once_is_taken_out_of_use_with_one_line(tmp_path: Path, capsys) -> None:
    cluster = FakeCluster(("n0", 2), ("n1", 2), ("n2", 2))
    cluster.broken = {2: (127, 0.01)}
    record = run_sweep(tmp_path, cluster, tasks(60), trace_hosts=True)
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if "out of use" in line]
    assert len(lines) == 1 and lines[0].startswith("mpilauncher: warning: node n2 taken out of use:")
    assert "failed there within a second (exit 127)" in lines[0] and "their tasks run elsewhere" in lines[0]
    states = record.states()
    assert all(s == "completed" for s in states.values()), "every task ran elsewhere, without --retries"
    on_n2 = [r for r in record.joblog if r["node"] == "n2"]
    assert on_n2 and all(r["exit"] == "127" for r in on_n2)
    assert all(record.rows_of(i)[-1]["node"] != "n2" for i in range(60))
    assert record.statistics.nodes_out_of_use == ("n2",) and record.statistics.aborted == 0
    assert "n2: 0/2 cores busy (out of use):" in record.trace
    assert_consistent(record)


# -- retries -------------------------------------------------------------------------------
def test_retries_give_every_attempt_a_joblog_line_and_the_last_one_decides(tmp_path: Path) -> None:
    cluster = FakeCluster(("n0", 2))
    cluster.exits = {1: [3, -9, 0], 2: [1]}
    record = run_sweep(tmp_path, cluster, tasks(4), retries=2)
    assert [(r["attempt"], r["status"]) for r in record.rows_of(1)] == [("1", "failed"), ("2", "signal"), ("3", "ok")]
    assert [(r["attempt"], r["exit"]) for r in record.rows_of(2)] == [("1", "1"), ("2", "1"), ("3", "1")]
    states = record.states()
    assert (states[1], states[2]) == ("completed", "failed")
    assert record.statistics.completed == 3 and record.statistics.aborted == 1
    kinds = [line.split("\t")[0] for line in record.journal if line.split("\t")[1] == "1"]
    assert kinds == ["S", "E", "Q", "S", "E", "Q", "S", "E"], "each attempt journaled: started, ended, queued again"
    assert_consistent(record)


# -- starts that never happened ----------------------------------------------------------------
def test_a_start_that_never_happened_stops_dispatch_and_the_task_stays_queued(tmp_path: Path, capsys) -> None:
    cluster = FakeCluster(("n0", 2), ("n1", 2))
    cluster.runtimes = {i: 1.0 for i in range(30)}
    cluster.unwritable_from = 2.5
    record = run_sweep(tmp_path, cluster, tasks(30))
    err = capsys.readouterr().err
    assert err.count("mpilauncher: error: cannot start tasks: /work/out") == 1, "one line, once"
    assert record.outcome.failure is not None and record.outcome.failure.endswith("Disk quota exceeded")
    states = record.states()
    assert "running" not in states.values() and "failed" not in states.values()
    completed = {i for i, s in states.items() if s == "completed"}
    assert completed and completed == {int(r["id"]) for r in record.joblog}
    failed_starts = {line.split("\t")[1] for line in record.journal if line.startswith("Q")}
    assert failed_starts and all(states[int(t)] == "queued" for t in failed_starts)
    assert_consistent(record)


# -- pacing --------------------------------------------------------------------------------------
def test_paced_starts_wake_the_master_when_the_next_one_is_due(tmp_path: Path) -> None:
    cluster = FakeCluster(("n0", 8))
    cluster.runtimes = {i: 100.0 for i in range(4)}
    record = run_sweep(tmp_path, cluster, tasks(4), start_interval=2.5, delay=10.0)
    assert [when for when, _, _ in cluster.starts] == [0.0, 2.5, 5.0, 7.5], "woken for each, not after --delay"
    assert_consistent(record)


# -- a new consumer is one class ----------------------------------------------------------------------
class Progress(Observer):
    """What a live progress line would count: one class, no edit of the loop."""

    def __init__(self) -> None:
        self.started = self.ended = self.taken_back = self.retried = 0
        self.lines: list[str] = []

    def on_started(self, start: Start, at: float) -> None:
        self.started += 1

    def on_ended(self, ended: TaskEnded) -> None:
        self.ended += 1

    def on_requeued(self, requeued: Requeued | Retried) -> None:
        if isinstance(requeued, Retried):  # after its end
            self.retried += 1
        else:  # it was running (or its start failed)
            self.taken_back += 1

    def on_turn_end(self, wall: float, elapsed: float) -> None:
        self.lines.append(f"{self.ended} done, {self.started - self.ended - self.taken_back} running")


def test_a_new_consumer_of_the_facts_is_one_observer(tmp_path: Path) -> None:
    cluster = FakeCluster(("n0", 2), ("n1", 2))
    cluster.exits = {0: [1, 0]}
    cluster.at(0.5, lambda c: c.silence(1))
    progress = Progress()
    record = run_sweep(tmp_path, cluster, tasks(10), retries=1, extra=[progress])
    assert progress.ended == len(record.joblog) == 11
    assert (progress.taken_back, progress.retried) == (2, 1), "two from the lost node, one retry"
    assert progress.lines[-1] == "11 done, 0 running"


@pytest.mark.parametrize("exit_code", [-signal.SIGUSR1, 128 + signal.SIGUSR1], ids=["killed", "its shell exited 138"])
def test_a_task_the_batch_system_killed_just_before_the_launcher_heard_of_the_stop_is_interrupted(
    tmp_path: Path, exit_code: int
) -> None:
    """Slurm signals every process of the job at once (scancel, its time limit): a task may die of
    the signal, and its end reach rank 0, a moment before rank 0 hears of the stop itself.  That end
    is held a moment: the stop that follows makes it an interruption (rerun on resume), not a
    failure.  A task run by a shell may instead exit 128+N: the shell saw its child die of the
    signal before it was signalled itself (this failed a Slurm test in CI)."""
    cluster = FakeCluster(("n0", 2), ("n1", 2))
    cluster.runtimes = {i: 1.0 for i in range(20)} | {3: 2.2}
    cluster.exits = {3: exit_code}
    cluster.at(2.6, lambda c: c.signalled.append((1, signal.SIGUSR1)))
    stop = StopRequest()
    record = run_sweep(tmp_path, cluster, tasks(20), stop=stop)
    assert record.outcome.interrupted == "stopped by SIGUSR1 (received by rank 1 on n1)"
    states = record.states()
    assert states[3] == "running" and "failed" not in states.values(), states
    assert_consistent(record)


def test_a_task_killed_by_a_stop_signal_with_no_stop_following_is_a_failure_after_all(tmp_path: Path) -> None:
    cluster = FakeCluster(("n0", 2))
    cluster.runtimes = {0: 1.0, 1: 1.5, 2: 1.0}
    cluster.exits = {1: -signal.SIGTERM}  # someone's own kill, not the batch system's stop
    record = run_sweep(tmp_path, cluster, tasks(3))
    assert record.states() == {0: "completed", 1: "failed", 2: "completed"}
    assert [r["status"] for r in record.rows_of(1)] == ["signal"]
    assert_consistent(record)


def test_a_duration_under_a_tenth_of_a_second_is_not_said_as_zero() -> None:
    """A user walk: 100,000 x `true` near --max-runtime: "it needs about 0.0 s ..., 0.0 s are left"."""
    from mpilauncher.runtime.master import _seconds

    assert [_seconds(v) for v in (0.004, 0.04, 0.45, 4.5, 10.2, 3600.0)] == [
        "0.004",
        "0.04",
        "0.5",
        "4.5",
        "10",
        "3600",
    ]
