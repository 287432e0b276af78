"""Standby starts as a user sees them: short tasks keep both cores busy, every task runs
exactly once, and a long task does not hold back the task sent ahead behind it."""

from __future__ import annotations

from pathlib import Path

from mpilauncher.core.tasks import CoresSpec
from mpilauncher.execution.gather import records
from mpilauncher.persistence.store import load_state
from mpilauncher.report.joblog import read as read_joblog
from tests.conftest import run_cli

ONE_CORE = CoresSpec("fixed", 1)


def test_a_long_task_does_not_hold_back_the_standby_behind_it(sweep_dir: Path) -> None:
    lines = ["sleep 2"] + ["true"] * 60
    (sweep_dir / "commandlines").write_text("\n".join(lines) + "\n")
    result = run_cli(["commandlines", "--workdir", "w", "--cores-per-node", "2", "--no-bind"], sweep_dir)
    assert result.returncode == 0, result.stderr
    rows = read_joblog(sweep_dir / "w" / "joblog")
    assert sorted(int(r["id"]) for r in rows) == list(range(61))  # each exactly once
    start = {int(r["id"]): float(r["start"]) for r in rows}
    ahead_of_2 = sum(1 for tid, t in start.items() if t < start[2] and tid != 0)
    assert ahead_of_2 <= 15, f"task 2 waited behind the long task 0 while {ahead_of_2} others started"
    state = load_state(sweep_dir / "queuestate", ONE_CORE)
    assert state.ledger.counts()["completed"] == 61


def test_standbys_never_run_after_a_stop(sweep_dir: Path) -> None:
    (sweep_dir / "commandlines").write_text("sleep 0.05\n" * 400)
    result = run_cli(["commandlines", "--workdir", "w", "--cores-per-node", "2", "--max-runtime", "1"], sweep_dir)
    assert result.returncode == 4, result.stderr
    ran = {int(r["id"]) for r in read_joblog(sweep_dir / "w" / "joblog")}
    state = load_state(sweep_dir / "queuestate", ONE_CORE)
    completed = {r.id for r in state.ledger if r.state == "completed"}
    assert completed == ran  # a standby that never started is not counted, nor lost
    workdir = sweep_dir / "w"
    started = {int(p.name[3:]) for p in workdir.glob("out[0-9]*")}
    assert started == set(records(str(workdir), "exec")), "exec scripts recorded exactly for started tasks"
    killed = {int(p.name[4:]) for p in workdir.glob("exec[0-9]*")}
    assert killed <= started - completed, "exec<N> only for the tasks the stop ended, not the ones that succeeded"
    assert len(started) < 400
    resumed = run_cli(["--resume", "queuestate"], sweep_dir)
    assert resumed.returncode == 0, resumed.stderr
    assert load_state(sweep_dir / "queuestate", ONE_CORE).ledger.counts()["completed"] == 400
