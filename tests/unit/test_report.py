"""The final report (PyLauncher's layout) and the debug trace blocks (mpilauncher.report)."""

from __future__ import annotations

import pytest

from mpilauncher.core.ledger import Ledger
from mpilauncher.core.stats import Statistics, compute
from mpilauncher.report.summary import final_report
from mpilauncher.report.trace import tick_block
from mpilauncher.report.words import KNOWN_DEBUG
from tests.unit.ledgers import finished_ledger, make_ledger


# -- final report ----------------------------------------------------------------
def stats_of(**kw) -> Statistics:
    values = dict(
        total_time=20.0,
        completed=4,
        aborted=1,
        not_run=0,
        max_runtime=6.0,
        avg_runtime=4.0,
        aggregate=20.0,
        speedup=1.0,
        pool_size=4,
        per_slot_max=3,
        per_slot_avg=1.25,
        runtime_p50=4.0,
        runtime_p99=5.96,
    )
    values.update(kw)
    return Statistics(**values)


def test_final_report_layout_matches_the_pylauncher_user_guide():
    text = final_report(compute(finished_ledger(), elapsed=10.0, pool_size=4))
    assert text.splitlines() == [
        "Launcherjob run completed.",
        "",
        "total running time:  20.00",
        "",
        "# tasks completed: 4",
        "tasks aborted: 1",
        "max runningtime:   6.00",
        "avg runningtime:   4.00",
        "aggregate  \t:  20.00",
        "speedup    \t:   1.00",
        "",
        "Host pool of size 4.",
        "",
        "Number of tasks executed per node:",
        "max: 3",
        "avg: 1.25",
        "",
        "tasks not run yet: 1 (queued or interrupted: resume to run them)",
    ]
    assert text.endswith("\n")


def test_final_report_without_leftovers_and_whole_averages():
    text = final_report(stats_of(per_slot_avg=4.0, speedup=12.345, total_time=123.456))
    lines = text.splitlines()
    assert "avg: 4" in lines
    assert "speedup    \t:  12.35" in lines
    assert "total running time: 123.46" in lines
    assert "Host pool of size 4." in lines
    assert not any("not run" in line for line in lines)
    assert final_report(stats_of(per_slot_avg=1 / 3)).splitlines()[-1] == "avg: 0.33"


def test_final_report_when_interrupted():
    text = final_report(stats_of(not_run=7), interrupted="stopped by SIGTERM")
    assert text.startswith("Launcherjob stopped: stopped by SIGTERM.\n")
    assert "tasks not run yet: 7 (queued or interrupted: resume to run them)" in text


@pytest.mark.parametrize(("value", "shown"), [(1_000_000.0, "1000000"), (12345.678, "12345.68")])
def test_final_report_large_averages_are_plain_numbers(value, shown):
    assert final_report(stats_of(per_slot_avg=value)).splitlines()[-1] == f"avg: {shown}"


# -- trace ------------------------------------------------------------------------
def trace_ledger() -> Ledger:
    ledger = make_ledger(8)
    for tid in (0, 1, 2):
        ledger.started(tid, "c1", (tid,), 1.0)
        ledger.finished(tid, 0, 1.0, 1.0)
    ledger.started(3, "c1", (0,), 2.0)
    ledger.finished(3, 1, 2.0, 1.0)
    ledger.started(5, "c1", (0, 1), 3.0)
    ledger.started(6, "c2", (2,), 3.0)
    return ledger


def test_tick_block_queue_only():
    assert tick_block(3, trace_ledger(), show_hosts=False) == (
        "tick 3\n"
        "Queue:\n"
        "completed   3 jobs: 0-2\n"
        "aborted     1 jobs: 3\n"
        "queued      2 jobs: 4 7\n"
        "running     2 jobs: 5-6\n"
    )


def test_tick_block_with_hosts():
    placements = {6: ("c2", (2,), (2,)), 5: ("c1", (0, 1), (4, 5)), 9: ("c1", (3,), ())}
    text = tick_block(1, trace_ledger(), True, placements, {"c1": 4, "c2": 4, "c3": 8})
    lines = text.splitlines()
    assert lines[:2] == ["tick 1", "Queue:"]
    assert lines[6:] == [
        "Hosts:",
        "c1: 3/4 cores busy: 5@0-1:cpu4-5 9@3",
        "c2: 1/4 cores busy: 6@2",
        "c3: 0/8 cores busy:",
    ]


def test_tick_block_hosts_without_node_sizes():
    text = tick_block(2, trace_ledger(), True, {5: ("c1", (0, 1), ())})
    assert text.splitlines()[-2:] == ["Hosts:", "c1: 2/2 cores busy: 5@0-1"]
    assert tick_block(2, trace_ledger(), True).splitlines()[-1] == "Hosts:"


def test_known_debug_words():
    assert {"job", "host"} <= KNOWN_DEBUG


def test_the_time_between_a_sweeps_runs_is_not_counted_as_idle_cores():
    """A user walk: a sweep stopped, then resumed 30 s later, read "busy 16% ... idle 61.3 core-seconds":
    the time between the runs counted as idle cores (a resume the next morning: a night of idle cores)."""
    from mpilauncher.report.sweep import Attempt, usage

    def ran(task: int, start: float, core: int) -> Attempt:
        return Attempt(task, start, start + 1.0, "ok", 0, 1, [("n", [core])])

    first_run = [ran(i, 100.0 + i // 2, i % 2) for i in range(4)]  # 2 cores, 2 rounds of 1 s
    second_run = [ran(4 + i, 132.0 + i // 2, i % 2) for i in range(4)]  # 30 s later
    attempts = first_run + second_run
    alone = usage(attempts, 2)
    assert alone is not None and round(alone.share(2), 2) == round(8 / (2 * 34), 2), "no runs known: first to last"
    use = usage(attempts, 2, ran=4.4)  # (the queuestate's total running time: 2.2 s a run)
    assert use is not None and round(use.between_runs, 1) == 29.6
    assert round(use.share(2), 2) == round(8 / 8.8, 2) and round(use.idle(2), 1) == 0.8
    assert usage(first_run, 2, ran=5.0).span == 2.0, "a run's start-up and end do not lengthen the span"
