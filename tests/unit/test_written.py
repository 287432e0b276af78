"""A run's snapshots copy the completed lines of the one before from its file: the file is always the
one formatting every line would write, whatever happened in between (persistence/written.py)."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from mpilauncher.core.ledger import Ledger
from mpilauncher.core.tasks import CoresSpec, Task, parse_commandlines
from mpilauncher.persistence import queuestate, written
from mpilauncher.persistence.queuestate import StateMeta, parse, render
from mpilauncher.persistence.store import StateStore
from mpilauncher.records import replace

ONE = CoresSpec("fixed", 1)


@pytest.fixture
def copied(monkeypatch) -> list[int]:
    """Bytes each snapshot read back from the one before, appended per snapshot as they are read."""
    counts: list[int] = []
    read = written.WrittenLines.read

    def counted(self, offset: int, length: int):
        counts.append(length)
        return read(self, offset, length)

    monkeypatch.setattr(written.WrittenLines, "read", counted)
    return counts


def formatted(store: StateStore) -> str:
    """What the store's snapshot says, every line formatted afresh."""
    return render(store.ledger, store.meta, ONE)


def sweep(tmp_path: Path, tasks: int = 3000) -> StateStore:
    ledger = Ledger(parse_commandlines("\n".join(f"./prog {i} --x=é" for i in range(tasks)), "cmds", ONE))
    store = StateStore(tmp_path / "qs", ledger, StateMeta(cores="1"), ONE, fsync_interval=0.5)
    store.open(now=0.0)
    return store


def complete(store: StateStore, ids, rng: random.Random, failing: float = 0.02) -> None:
    for task_id in ids:
        start = 1764072000.0 + task_id * 0.01
        store.started(task_id, f"c{task_id % 3}", (task_id % 4,), start)
        store.finished(task_id, 0 if rng.random() >= failing else 2, start, rng.random() * 9)


def test_each_snapshot_copies_the_completed_lines_of_the_one_before(tmp_path: Path, copied: list[int]):
    rng = random.Random(5)
    store = sweep(tmp_path)
    order = list(range(3000))
    for chunk in range(6):  # completions out of order, in chunks that join runs written apart
        part = order[chunk * 400 : (chunk + 1) * 400]
        rng.shuffle(part)
        complete(store, part[:350], rng)
        before = len(copied)
        store.snapshot(now=float(chunk + 1), elapsed=1.0)
        assert (tmp_path / "qs").read_text() == formatted(store), f"snapshot {chunk + 2}"
        if chunk:
            assert sum(copied[before:]) > 0, "the completed lines of the snapshot before were copied"
    loaded = parse((tmp_path / "qs").read_text(), "qs", ONE)
    assert loaded.ledger.counts() == store.ledger.counts()
    store.close(now=9.0, elapsed=2.0)
    assert (tmp_path / "qs").read_text() == formatted(store)


def test_copies_join_into_one_run_read_at_once(tmp_path: Path, copied: list[int]):
    """Runs copied side by side become one span: a long run's snapshot reads back a few spans, not a
    piece per snapshot it went through."""
    store = sweep(tmp_path, 20_000)
    rng = random.Random(2)
    for step in range(10):
        complete(store, range(step * 1000, (step + 1) * 1000), rng, failing=0.0)
        store.snapshot(now=float(step), elapsed=1.0)
    copied.clear()
    store.snapshot(now=20.0, elapsed=1.0)
    assert (tmp_path / "qs").read_text() == formatted(store)
    assert len(copied) == 1 and copied[0] > 500_000, copied


def test_a_snapshot_edited_in_place_is_not_copied_from(tmp_path: Path, copied: list[int]):
    store = sweep(tmp_path)
    rng = random.Random(1)
    complete(store, range(0, 1000), rng)
    store.snapshot(now=1.0, elapsed=1.0)
    path = tmp_path / "qs"
    with open(path, "r+b") as stream:  # (in place: the same file, another line)
        text = stream.read()
        stream.seek(0)
        stream.write(text.replace(b"./prog 7 ", b"./PROG 7 "))
        stream.write(b"\n")
    complete(store, range(1000, 1500), rng)
    store.snapshot(now=2.0, elapsed=1.0)
    assert copied == [] and path.read_text() == formatted(store)


@pytest.mark.parametrize("change", ["started again", "queued again", "set anew"])
def test_a_completed_task_written_again_is_not_copied_as_it_was(tmp_path: Path, copied: list[int], change: str):
    """What no run does to a completed task, but a ledger allows: its line, and every other, formatted."""
    store = sweep(tmp_path)
    rng = random.Random(3)
    complete(store, range(0, 1000), rng)
    store.snapshot(now=1.0, elapsed=1.0)
    ledger = store.ledger
    task_id = next(i for i in range(500, 1000) if ledger.state(i) == "completed")
    if change == "started again":
        store.started(task_id, "c9", (3,), 1764079999.0)
        store.finished(task_id, 0, 1764079999.0, 0.25)
    elif change == "queued again":
        store.requeued(task_id)
    else:
        record = ledger.records[task_id]
        ledger._set(replace(record, runtime=123.0))
    store.snapshot(now=2.0, elapsed=1.0)
    assert copied == [] and (tmp_path / "qs").read_text() == formatted(store)


def test_a_resumed_run_copies_what_it_read_then_what_it_wrote(tmp_path: Path, copied: list[int]):
    """The first snapshot of a resume copies the lines of the file it read (queuestate.Earlier); the
    next ones copy those and the lines since from the snapshot before."""
    store = sweep(tmp_path)
    rng = random.Random(4)
    complete(store, range(0, 1500), rng)
    store.close(now=1.0, elapsed=1.0)
    loaded = queuestate.load(tmp_path / "qs", ONE)
    resumed = StateStore(tmp_path / "qs", loaded.ledger, loaded.meta, ONE, fsync_interval=0.5, earlier=loaded.earlier)
    resumed.open(now=0.0)
    assert copied == []
    complete(resumed, range(1500, 2000), rng)
    resumed.snapshot(now=1.0, elapsed=1.0)
    complete(resumed, range(2000, 2200), rng)
    resumed.snapshot(now=2.0, elapsed=1.0)
    assert (tmp_path / "qs").read_text() == formatted(resumed)
    assert sum(copied) > 30_000, "the lines of tasks 1500-1999 copied from the snapshot before"


def test_a_task_of_needs_of_its_own_between_completed_runs(tmp_path: Path, copied: list[int]):
    tasks = [Task(i, f"./prog {i}", cores=2 if i % 700 == 5 else 1, line=i + 1) for i in range(3000)]
    store = StateStore(tmp_path / "qs", Ledger(tasks), StateMeta(cores="1"), ONE, fsync_interval=0.5)
    store.open(now=0.0)
    rng = random.Random(6)
    for step in range(3):
        complete(store, range(step * 900, (step + 1) * 900), rng)
        store.snapshot(now=float(step), elapsed=1.0)
        assert (tmp_path / "qs").read_text() == formatted(store)
    assert sum(copied) > 0
