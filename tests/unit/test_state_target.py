"""What a new sweep does with the queuestate already under its name (``rank0.make_plan`` and
``rank0.check_state_target``): it reads it once, whatever it decides."""

from __future__ import annotations

from pathlib import Path

import pytest

from mpilauncher import rank0
from mpilauncher.config import make_config
from mpilauncher.persistence import journal
from mpilauncher.persistence.store import journal_path
from tests.unit.ledgers import opened_store


@pytest.fixture
def finished(tmp_path: Path, monkeypatch) -> Path:
    """A finished sweep of four under ``qs``: tasks 0, 2, 3 completed, 1 failed; its final snapshot, no journal."""
    monkeypatch.chdir(tmp_path)
    store = opened_store(tmp_path, 4)
    for task_id in range(4):
        store.started(task_id, "c1", (0,), 100.0 + task_id)
        store.finished(task_id, 1 if task_id == 1 else 0, 100.0 + task_id, 0.5)
    store.close(now=1.0, elapsed=1.0)
    assert not journal_path(tmp_path / "qs").exists()
    return tmp_path / "qs"


@pytest.fixture
def reads(monkeypatch) -> list[Path]:
    """The queuestates rank 0 reads, in order."""
    read: list[Path] = []
    real = rank0.load_state

    def counted(path, *args, **kwargs):
        read.append(Path(path))
        return real(path, *args, **kwargs)

    monkeypatch.setattr(rank0, "load_state", counted)
    return read


def test_a_new_sweep_reads_the_finished_queuestate_under_its_name_once(finished: Path, reads: list[Path]):
    """Another sweep: the state is read once, where it was read twice (0.6 s a read for a finished sweep of
    a million tasks), and kept aside for its failure."""
    Path("commands2").write_text("./other\n")
    plan = rank0.make_plan(make_config("commands2", queuestate="qs"))
    assert plan.resumed_from is None, "a finished sweep is not continued"
    assert rank0.check_state_target(plan) == rank0.Aside(Path("qs.1"), 1, None)
    assert reads == [Path("qs")]
    assert plan.found is None, "not held for the rest of the run"


def test_the_same_sweep_again_continues_its_finished_queuestate_with_nothing_to_run(finished: Path):
    Path("commands2").write_text("./prog 0\n./prog 1\n./prog 2\n./prog 3\n")
    plan = rank0.make_plan(make_config("commands2", queuestate="qs"))
    assert plan.resumed_from == Path("qs") and len(plan.to_run) == 0
    assert rank0.check_state_target(plan) is None, "continued: nothing to keep aside"
    rerun = rank0.make_plan(make_config("commands2", queuestate="qs", rerun_failed=True))
    assert rerun.to_run.ids == [1]


def test_told_to_start_over_the_queuestate_is_read_once_all_the_same(finished: Path, reads: list[Path]):
    plan = rank0.make_plan(make_config("commands", queuestate="qs", start_over=True))
    assert rank0.check_state_target(plan, start_over=True) is None
    assert reads == [Path("qs")], "checked to be a queuestate before it is written over"


def test_an_unreadable_queuestate_is_said_so_by_the_check(finished: Path, reads: list[Path]):
    finished.write_text("not a queuestate\n")
    plan = rank0.make_plan(make_config("commands", queuestate="qs"))
    with pytest.raises(rank0.InputError, match="exists and is not a readable queuestate"):
        rank0.check_state_target(plan)


def test_a_journal_without_its_queuestate_is_not_replaced_by_a_new_sweep(finished: Path):
    """``mv qs renamed`` after a kill: ``qs.journal`` is ``renamed``'s (its ``#meta`` names it); a new sweep
    under ``qs`` replaced it, then removed it at its end.  Refused unless told to start over; a journal
    with nothing after its first line (a new run's, its snapshot not yet in place at a kill) holds
    nothing to lose."""
    finished.unlink()
    lone = journal_path(finished)
    lone.write_text(f"{journal.HEADER}0ld0ld0ld0ld\n")
    plan = rank0.make_plan(make_config("commands", queuestate="qs"))
    assert rank0.check_state_target(plan) is None
    lone.write_text(f"{journal.HEADER}0ld0ld0ld0ld\nE\t0\t0\t1.000\t1.000\n")
    with pytest.raises(rank0.InputError, match="^qs.journal: is the journal of a queuestate not beside it"):
        rank0.check_state_target(rank0.make_plan(make_config("commands", queuestate="qs")))
    plan = rank0.make_plan(make_config("commands", queuestate="qs", start_over=True))
    assert rank0.check_state_target(plan, start_over=True) is None


def test_a_journal_that_cannot_follow_its_snapshot_aside_takes_it_back(finished: Path, monkeypatch) -> None:
    """keep_aside moves the snapshot, then its journal; where the journal's move fails the snapshot goes
    back, and the run is refused in one line: never a snapshot kept apart from what its journal holds."""
    journal_file = journal_path(finished)
    journal_file.write_text(f"{journal.HEADER}0123456789ab\n")
    before = finished.read_text()
    real = rank0.os.rename

    def failing(source, target):
        if Path(source) == journal_file:
            raise OSError(28, "No space left on device")
        real(source, target)

    monkeypatch.setattr(rank0.os, "rename", failing)
    kept = rank0.Aside(finished.with_name("qs.1"), 1, journal_file)
    with pytest.raises(rank0.InputError, match="cannot keep the finished sweep it holds aside as qs.1: No space"):
        rank0.keep_aside(finished, kept, make_config("commands"))
    assert finished.read_text() == before and journal_file.exists() and not kept.path.exists()
