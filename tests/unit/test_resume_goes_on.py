"""When a resume may go on with the snapshot it resumed and that snapshot's journal, and when a first
snapshot is due before anything starts (see ``rank0.goes_on`` and ``StateStore.open``)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from mpilauncher.config import make_config
from mpilauncher.core.tasks import CoresSpec
from mpilauncher.persistence.queuestate import StateMeta
from mpilauncher.persistence.store import journal_path
from mpilauncher.rank0 import goes_on, make_plan
from mpilauncher.workdirs import MOST_EARLIER_WORKDIRS, note_earlier_workdir
from tests.unit.ledgers import opened_store

ONE = CoresSpec("fixed", 1)


@pytest.fixture
def killed(tmp_path: Path, monkeypatch) -> Path:
    """A sweep of six killed with task 0 completed, 1 failed, 3 running (in the snapshot's journal)."""
    monkeypatch.chdir(tmp_path)
    store = opened_store(tmp_path, 6)
    store.started(0, "c1", (0,), 100.0)
    store.started(1, "c1", (1,), 100.0)
    store.finished(0, 0, 100.0, 1.5)
    store.finished(1, 4, 100.0, 2.0)
    store.started(3, "c1", (0,), 101.5)
    store.flush(now=1.0, elapsed=1.0)
    store._journal.close()  # (as a kill leaves it)
    return tmp_path / "qs"


def test_a_plain_resume_goes_on_with_the_tasks_it_queued_again(killed: Path):
    assert goes_on(make_plan(make_config(None, resume="qs"))) == [3]
    assert goes_on(make_plan(make_config(None, resume="qs", rerun_failed=True))) == [1, 3]
    assert goes_on(make_plan(make_config(None, resume="qs", queuestate=str(killed.resolve())))) == [3]


def test_the_same_commandlines_again_continue_and_go_on(killed: Path):
    """Re-submitting the job script over an unfinished state continues it (make_plan): the same."""
    plan = make_plan(make_config("commands", queuestate="qs"))
    assert plan.resumed_from == Path("qs") and goes_on(plan) == [3]


@pytest.mark.parametrize(
    "settings",
    [
        {"queuestate": "elsewhere"},  # the state goes on under another name: written there first
        {"expected_time": "30"},  # the tasks' needs revised: the snapshot says so before they start
        {"mpi": True},  # (IbrunLauncher: every task an MPI program, remembered in the sweep's facts)
    ],
)
def test_a_resume_that_changes_what_the_snapshot_says_writes_it_first(killed: Path, settings: dict):
    assert goes_on(make_plan(make_config(None, resume="qs", **settings))) is None


def test_a_changed_sweep_fact_or_a_renamed_state_writes_it_first(killed: Path):
    plan = make_plan(make_config(None, resume="qs"))
    plan.meta.workdir = str(killed.with_name("another-workdir"))
    assert goes_on(plan) is None
    plan = make_plan(make_config(None, resume="qs"))
    plan.meta.extra["pool"] = {"c9": 64}  # (the report's: every run writes its own)
    assert goes_on(plan) == [3]
    shutil.copy(killed, killed.with_name("renamed"))
    shutil.copy(journal_path(killed), journal_path(killed.with_name("renamed")))
    assert goes_on(make_plan(make_config(None, resume="renamed"))) is None  # its meta names qs.journal


def test_a_resume_into_another_workdir_keeps_the_ones_before_oldest_first():
    """What ``report`` and ``output`` read the tasks that ended in an earlier workdir from."""
    meta = StateMeta(workdir="/w/a")
    note_earlier_workdir(meta, "/w/a")  # a resume into its own workdir: nothing to keep
    assert meta.workdir == "/w/a" and "earlier_workdirs" not in meta.extra
    for workdir in ("/w/b", "/w/c", "/w/a"):  # and back to the first
        note_earlier_workdir(meta, workdir)
    assert (meta.workdir, meta.extra["earlier_workdirs"]) == ("/w/a", ["/w/b", "/w/c"])
    note_earlier_workdir(StateMeta(), "/w/new")  # a new sweep: none before
    for number in range(MOST_EARLIER_WORKDIRS + 5):
        note_earlier_workdir(meta, f"/w/{number}")
    assert len(meta.extra["earlier_workdirs"]) == MOST_EARLIER_WORKDIRS
    assert meta.extra["earlier_workdirs"][-1] == f"/w/{MOST_EARLIER_WORKDIRS + 3}"
