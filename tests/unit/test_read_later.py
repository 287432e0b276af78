"""A resume reads the commands, line numbers and starts of earlier runs' completed tasks only when asked.

What a run needs of them (state, place, runtime) is read at once; the rest is read, all at once, the
first time a Task or a record of such a task is made, or such a task would run again; the snapshots
copy those lines from the text read.  Each test holds a read-later ledger against the same sweep read
whole (or the ledger it was written from), so a row read wrong, or never read, shows."""

from __future__ import annotations

import random

import pytest

from mpilauncher.core.ledger import COMPLETED, QUEUED, RUNNING, Ledger
from mpilauncher.core.stats import compute
from mpilauncher.core.tasks import CoresSpec, Task, parse_commandlines
from mpilauncher.persistence import queuestate
from mpilauncher.persistence.queuestate import StateMeta, parse, render

ONE = CoresSpec("fixed", 1)
META = StateMeta(run="abc", cores="1", journal="qs.journal")


def written(tasks: int = 4000, seed: int = 0) -> Ledger:
    """A sweep part-way through: completed runs with failures, running and queued tasks between."""
    rng = random.Random(seed)
    ledger = Ledger(parse_commandlines("\n".join(f"./prog {i} --seed {i * 7}" for i in range(tasks)), "cmds", ONE))
    for task_id in range(tasks * 3 // 5):
        ledger.started(task_id, f"c{task_id % 3}", (task_id % 8,), 1764072000.0 + task_id / 4)
        if rng.random() < 0.99:
            ledger.finished(
                task_id, 0 if rng.random() < 0.98 else 1, 1764072000.0 + task_id / 4, round(rng.random() * 9, 3)
            )
    return ledger


def read_whole(text: str) -> Ledger:
    """The sweep of ``text`` with every line read now."""
    ledger = parse(text, "qs", ONE).ledger
    ledger.read_now()
    ledger.read_tasks(0, len(ledger))
    assert "" not in ledger.tasks.commands
    return ledger


@pytest.fixture
def blocks_read(monkeypatch) -> list[tuple[int, int]]:
    """The queued blocks read later, as (lowest id, highest id) each."""
    read: list[tuple[int, int]] = []
    call = queuestate._QueuedLater.read

    def counting(self, first: int, after: int):
        parts = call(self, first, after)
        read.extend((min(ids), max(ids)) for ids, _, _ in parts)
        return parts

    monkeypatch.setattr(queuestate._QueuedLater, "read", counting)
    return read


def counted_readings(monkeypatch, method: str, size) -> list[int]:
    """How many lines each call of ``_ReadLater.<method>`` read (``size`` of what it returned), in order."""
    counted: list[int] = []
    call = getattr(queuestate._ReadLater, method)

    def counting(self):
        found = call(self)
        counted.append(size(found))
        return found

    monkeypatch.setattr(queuestate._ReadLater, method, counting)
    return counted


@pytest.fixture
def readings(monkeypatch) -> list[int]:
    """How many times completed lines were read later, whole (each reading appends its line count)."""
    return counted_readings(monkeypatch, "__call__", lambda columns: len(columns[0]))


@pytest.fixture
def outcome_readings(monkeypatch) -> list[int]:
    """How many times their runtimes and places alone were read (each appends its count; -1: could not be)."""
    return counted_readings(monkeypatch, "outcomes", lambda found: -1 if found is None else len(found[0]))


def test_what_a_resumes_start_needs_of_completed_tasks_reads_none_of_them(readings, outcome_readings):
    source = written()
    meta = StateMeta(run="abc", cores="1", journal="qs.journal", longest=source.longest_completed())
    text = render(source, meta, ONE)
    whole = read_whole(text)
    readings.clear()
    loaded = parse(text, "qs", ONE)
    ledger = loaded.ledger
    for each in (ledger, whole):  # (what a resume does before its first start)
        each.requeue(each.to_run())
    to_run = ledger.to_run().ids
    assert [ledger.tasks[i] for i in to_run] == [whole.tasks[i] for i in to_run]
    assert ledger.counts() == whole.counts()
    assert ledger.longest_completed() == whole.longest_completed() == max(source.runtimes(COMPLETED)) > 0
    snapshot = render(ledger, meta, ONE, loaded.earlier)
    assert readings == [], "the counts, the longest runtime and a snapshot copying the lines read none"
    assert snapshot == render(whole, meta, ONE)
    completed = whole.counts()[COMPLETED]
    assert ledger.completed_runtimes() == whole.completed_runtimes(), "the estimates' runtimes: read now"
    assert outcome_readings == [completed] and readings == [], "their runtimes and places only, no command"
    assert compute(ledger, 1.0, 8) == compute(whole, 1.0, 8) and ledger.places_used() == whole.places_used()
    assert outcome_readings == [completed] and readings == [], "the final statistics: nothing more"
    assert list(ledger) == list(whole) and readings == [completed], "a record a task: everything, once"
    assert ledger.places_used() == whole.places_used() and outcome_readings == [completed]


def test_a_queuestate_without_the_longest_runtime_reads_the_runtimes_for_it(readings, outcome_readings):
    """Earlier versions wrote no ``longest``: the runtimes are read for it, and it counts the tasks
    completed since the load too (a journal's)."""
    source = written()
    text = render(source, META, ONE)
    assert '"longest"' not in text
    ledger = parse(text, "qs", ONE).ledger
    task_id = ledger.ids_in(QUEUED)[0]
    ledger.started(task_id, "c1", (0,), 1764079000.0)
    ledger.finished(task_id, 0, 1764079000.0, 99.5)
    assert outcome_readings == [] and ledger.longest_completed() == 99.5 and len(outcome_readings) == 1
    assert readings == [], "the runtimes alone"


def test_the_snapshot_keeps_the_longest_runtime_and_a_resume_starts_with_it(tmp_path, readings):
    from mpilauncher.persistence.store import StateStore, load_state

    source = written()
    path = tmp_path / "qs"
    store = StateStore(path, source, StateMeta(cores="1"), ONE, fsync_interval=1.0)
    store.open(1764080000.0)
    store.close(1764080001.0, 1.0)
    loaded = load_state(path, ONE)
    assert loaded.meta.longest == round(max(source.runtimes(COMPLETED)), 3)
    assert loaded.ledger.longest_completed() == loaded.meta.longest and readings == []


@pytest.mark.parametrize(
    "ask",
    [
        lambda ledger, i: ledger.tasks[i].command,
        lambda ledger, i: ledger.tasks.command(i),
        lambda ledger, i: ledger.tasks.line(i),
        lambda ledger, i: ledger.records[i].start,
        lambda ledger, i: next(r for r in ledger.told() if r.id == i).task.command,
        lambda ledger, i: list(ledger.tasks.subset([i]))[0].command,
        lambda ledger, i: ledger.revise(ledger.tasks.subset([i]), expected=5.0)[i].command,
        lambda ledger, i: ledger.requeued(i),
        lambda ledger, i: ledger.started(i, "c9", (3,), 1764079999.0),
    ],
    ids=["task", "command", "line", "record", "told", "subset", "revise", "requeued", "started"],
)
def test_asking_for_one_completed_task_reads_them_all_once_and_right(readings, ask):
    source = written()
    ledger = parse(render(source, META, ONE), "qs", ONE).ledger
    completed = source.ids_in(COMPLETED)
    ask(ledger, completed[5])
    assert readings == [len(completed)], "one reading, of every completed line"
    for task_id in completed:
        task, was = ledger.tasks[task_id], source.tasks[task_id]
        assert (task.command, task.line) == (was.command, was.line)
        if task_id != completed[5]:  # (the one asked about may have been changed by the asking)
            assert ledger.records[task_id] == source.records[task_id]
    assert readings == [len(completed)]


def test_a_table_made_before_the_reading_sees_what_it_read(readings):
    source = written()
    ledger = parse(render(source, META, ONE), "qs", ONE).ledger
    everything = ledger.tasks.subset(ledger.tasks.ids)  # (shares the columns and what reads them)
    revised = ledger.revise(everything, expected=3.0)
    task_id = source.ids_in(COMPLETED)[-1]
    assert revised[task_id].command == source.tasks[task_id].command and revised[task_id].expected == 3.0
    assert everything.line(task_id) == source.tasks.line(task_id) and len(readings) == 1


def test_a_snapshot_without_the_text_read_formats_every_line_reading_them_first(readings):
    source = written()
    ledger = parse(render(source, META, ONE), "qs", ONE).ledger
    assert render(ledger, META, ONE) == render(source, META, ONE) and len(readings) == 1


@pytest.mark.parametrize("seed", range(8))
def test_facts_after_the_load_and_snapshots_copying_the_text_read_agree_with_the_sweep_read_whole(seed: int):
    """Random starts, ends and requeues (of queued, running and completed tasks) on a read-later ledger
    and on the same sweep read whole: every snapshot written with the text read is the one written
    anew from the whole ledger, and so are the records at the end."""
    rng = random.Random(seed)
    text = render(written(3000, seed), META, ONE)
    loaded = parse(text, "qs", ONE)
    later, whole = loaded.ledger, read_whole(text)
    for step in range(300):
        task_id = rng.randrange(3000)
        action = rng.choice(["start", "end", "end", "requeue", "refinish", "statistics"])
        if action == "statistics":  # (the runtimes and places alone read, at any point: the rest may follow)
            assert compute(later, 1.0, 8) == compute(whole, 1.0, 8)
            assert later.completed_runtimes() == whole.completed_runtimes()
        for ledger in (later, whole):
            state = ledger.state(task_id)
            if action == "start" and state in (QUEUED, COMPLETED):
                ledger.started(task_id, "c7", (step % 4,), 1764080000.0 + step)
            elif action == "end" and state == RUNNING:
                ledger.finished(task_id, step % 3 == 0, 1764080000.0 + step, 1.5)
            elif action == "requeue" and state != QUEUED:
                ledger.requeued(task_id)
            elif action == "refinish" and state == COMPLETED:  # (what no run does; the file must say it all the same)
                ledger.finished(task_id, 0, 1764090000.0 + step, 2.5)
        if step % 50 == 0:
            pieces = queuestate.render_pieces(later, META, ONE, loaded.earlier)
            assert b"".join(pieces).decode() == render(whole, META, ONE)
    assert render(later, META, ONE, loaded.earlier) == render(whole, META, ONE)
    assert list(later) == list(whole)


def test_queued_tasks_are_read_a_block_at_a_time_as_they_are_asked_for(monkeypatch, blocks_read):
    """A resume's dispatch asks for its tasks in id order: each asks for its block of queued lines (a
    few thousand here), read once; its first snapshot copies them all unread."""
    monkeypatch.setattr(queuestate, "READ_BLOCK", 1 << 12)  # (~100 lines a block)
    source = written(6000)
    text = render(source, META, ONE)
    loaded = parse(text, "qs", ONE)
    ledger = loaded.ledger
    whole = read_whole(text)
    for each in (ledger, whole):
        each.requeue(each.to_run())
    blocks_read.clear()
    assert render(ledger, META, ONE, loaded.earlier) == render(whole, META, ONE) and blocks_read == []
    queued = source.ids_in(QUEUED)  # (the queued section's: those that were running were read whole)
    assert ledger.tasks[queued[0]] == source.tasks[queued[0]] and len(blocks_read) == 1
    low, high = blocks_read[0]
    assert low <= queued[0] <= high and ledger.tasks.command(high) == source.tasks.command(high)
    assert len(blocks_read) == 1, "the next tasks of the block: read with it"
    assert [ledger.tasks.line(i) for i in queued] == [source.tasks.line(i) for i in queued]
    assert len(blocks_read) == len(set(blocks_read)) > 10, "each block read once"
    assert "" not in [ledger.tasks.command(i) for i in range(len(ledger))]


def test_a_snapshot_writes_queued_tasks_that_it_cannot_copy_reading_their_blocks_first(monkeypatch, blocks_read):
    """Copied from another text (or formatted: a run too short, a task queued again), queued lines are
    read before they are written: the snapshot is the one written from the sweep read whole."""
    monkeypatch.setattr(queuestate, "READ_BLOCK", 1 << 12)
    text = render(written(6000), META, ONE)
    whole = read_whole(text)
    blocks_read.clear()
    ledger = parse(text, "qs", ONE).ledger
    assert render(ledger, META, ONE) == render(whole, META, ONE) and len(blocks_read) > 10


@pytest.mark.parametrize(
    "odd",
    [
        lambda i: f"./prog {i} runtime=9.000 host=x slots=0: tail",  # (a command that reads like the fields)
        lambda i: f"./prog {i}\tand a tab",
    ],
)
def test_the_runtimes_and_places_read_alone_are_those_read_whole(readings, outcome_readings, odd):
    """The pattern that reads a completed line's runtime and place matches from the line's beginning and
    stops before its command, whatever the command holds."""
    source = written()
    for task_id in source.ids_in(COMPLETED)[::7]:
        source.tasks.commands[task_id] = odd(task_id)
    text = render(source, META, ONE)
    ledger, whole = parse(text, "qs", ONE).ledger, read_whole(text)
    readings.clear()
    assert compute(ledger, 1.0, 8) == compute(whole, 1.0, 8) and ledger.places_used() == whole.places_used()
    assert outcome_readings == [whole.counts()[COMPLETED]] and readings == []


def test_lines_of_another_shape_have_their_runtimes_read_with_everything_else(readings, outcome_readings):
    """A completed line the common pattern does not match (no line number, no host, a host with a
    colon) makes the runtimes and places read with everything, line by line where need be: the same."""
    source = Ledger(Task(i, f"./prog {i}", line=i + 1 if i % 5 else 0) for i in range(300))
    for i in range(200):
        if i % 11:
            source.started(i, "c:1" if i == 100 else f"c{i % 3}", (i % 4,), 1764072000.0 + i)
        source.finished(i, 0, 1764072000.0 + i, 0.5 + i % 7)
    text = render(source, META, ONE)
    ledger, whole = parse(text, "qs", ONE).ledger, read_whole(text)
    readings.clear()
    assert compute(ledger, 1.0, 8) == compute(whole, 1.0, 8) and ledger.places_used() == whole.places_used()
    assert outcome_readings == [-1] and readings == [whole.counts()[COMPLETED]]
