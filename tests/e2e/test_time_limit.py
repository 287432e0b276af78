"""Near the time limit, tasks that cannot finish are held back for the next job, as users run it:
``--max-runtime`` with ``--expected-time`` (per line, after the ``N,`` of ``--cores file``) or with the
estimate from the sweep's own completed tasks; then a resume runs exactly what was held back."""

from __future__ import annotations

import collections
import time
from pathlib import Path

from mpilauncher.core.tasks import CoresSpec
from mpilauncher.persistence.store import load_state
from mpilauncher.report.joblog import read as read_joblog
from tests.conftest import run_cli


def states(directory: Path) -> dict[int, str]:
    return {r.id: r.state for r in load_state(directory / "queuestate", CoresSpec("fixed", 1)).ledger}


def ran(directory: Path) -> collections.Counter:
    return collections.Counter(int(x) for x in (directory / "ran").read_text().split())


def test_tasks_that_cannot_finish_before_max_runtime_are_held_back_and_a_resume_runs_them(sweep_dir: Path) -> None:
    short = ["1,1,sleep 1 && echo PYL_ID >> ran"] * 12  # about 6 s of work on 2 cores
    long = ["1,0:27,sleep 0.2 && echo PYL_ID >> ran"] * 2  # 27 s expected, with less than that left by then
    (sweep_dir / "commandlines").write_text("# cores, expected time, command\n" + "\n".join(short + long) + "\n")
    began = time.monotonic()
    first = run_cli(["commandlines", "--cores", "file", "--expected-time", "file", "--max-runtime", "30",
                     "--workdir", "w", "--cores-per-node", "2"], sweep_dir)  # fmt: skip
    assert first.returncode == 4, first.stderr
    assert time.monotonic() - began < 25, "it stopped once nothing could start, not at --max-runtime"
    assert "14 tasks, cores per line ('N,' prefix), expected time per line ('T,' prefix)" in first.stdout
    held_lines = [line for line in first.stderr.splitlines() if "held back" in line]
    assert len(held_lines) == 2, first.stderr  # the one line for the first task held, and the outcome
    assert held_lines[0].startswith("mpilauncher: task 12 held back for the next job: it needs about 27 s (its")
    assert " s are left before --max-runtime; so is every task that cannot finish in time" in held_lines[0]
    assert "nothing left that can finish before --max-runtime: 2 tasks held back for the next job" in held_lines[1]
    assert "tasks held back: 2 (they could not finish before the time limit" in first.stdout
    assert "Launcherjob stopped: nothing left that can finish before --max-runtime" in first.stdout
    assert {i for i, s in states(sweep_dir).items() if s != "completed"} == {12, 13}
    assert all(row["status"] == "ok" for row in read_joblog(sweep_dir / "w" / "joblog")), "nothing killed half-way"

    second = run_cli(["--resume", "queuestate", "--cores-per-node", "2"], sweep_dir)
    assert second.returncode == 0, second.stderr
    assert "held back" not in second.stderr, "without a deadline nothing is held"
    assert ran(sweep_dir) == collections.Counter(range(14)), "every task exactly once over both runs"


def test_the_sweeps_own_runtimes_hold_back_what_would_be_cut_short(sweep_dir: Path) -> None:
    (sweep_dir / "commandlines").write_text("sleep 0.5 && echo PYL_ID >> ran\n" * 40)
    first = run_cli(["commandlines", "--max-runtime", "7", "--grace", "2.5", "--workdir", "w",
                     "--cores-per-node", "2"], sweep_dir)  # fmt: skip
    assert first.returncode == 4, first.stderr
    assert "(the 90th percentile of the sweep's completed tasks of its size)" in first.stderr
    final = states(sweep_dir)
    assert "running" not in final.values() and "failed" not in final.values(), "no task was cut short"
    assert "tasks held back: " in first.stdout
    second = run_cli(["--resume", "queuestate", "--cores-per-node", "2"], sweep_dir)
    assert second.returncode == 0, second.stderr
    assert ran(sweep_dir) == collections.Counter(range(40))


def test_a_bad_expected_time_is_one_line_naming_the_line_and_nothing_is_written(sweep_dir: Path) -> None:
    (sweep_dir / "commandlines").write_text("10:00,./a\nsoon,./b\n")
    result = run_cli(["commandlines", "--expected-time", "file", "--workdir", "w"], sweep_dir)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "mpilauncher: error: commandlines:2: bad expected time before ',': must be seconds or [[D-]HH:]MM:SS,"
        " not 'soon'"
    ]
    assert sorted(p.name for p in sweep_dir.iterdir()) == ["commandlines"], "nothing written"
