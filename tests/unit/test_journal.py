"""The journal and the state store: what a kill leaves on disk loads back correctly."""

from __future__ import annotations

import os
import shutil
import threading
from pathlib import Path

import pytest

from mpilauncher.core.ledger import COMPLETED, FAILED, QUEUED, RUNNING, Ledger
from mpilauncher.core.stats import compute
from mpilauncher.core.tasks import CoresSpec, Task
from mpilauncher.errors import InputError, LauncherFailure
from mpilauncher.persistence import journal, queuestate
from mpilauncher.persistence import store as store_module
from mpilauncher.persistence.journal import HEADER, JournalWriter, replay
from mpilauncher.persistence.queuestate import StateMeta
from mpilauncher.persistence.store import StateStore, journal_path, load_state

ONE = CoresSpec("fixed", 1)


def fresh_ledger(n: int = 5) -> Ledger:
    return Ledger(Task(i, f"./prog {i}", line=i + 1) for i in range(n))


def snapshot_of(ledger: Ledger) -> list[tuple]:
    return [(r.id, r.state, r.exit_code, r.start, r.runtime, r.host, r.core_ids) for r in ledger]


def kept_by_snapshot(ledger: Ledger) -> list[tuple]:
    return [row if row[1] != QUEUED else (*row[:3], None, None, None, ()) for row in snapshot_of(ledger)]


# -- writer ---------------------------------------------------------------------
def test_writer_writes_header_and_records(tmp_path: Path):
    path = tmp_path / "qs.journal"
    writer = JournalWriter(path, "run42", fsync_interval=1.0)
    assert path.read_text() == f"{HEADER}run42\n"
    writer.started(3, 100.0, "c101", (0, 1, 2, 5))
    writer.finished(3, -9, 100.0, 2.5)
    writer.requeued(4)
    assert path.read_text() == f"{HEADER}run42\n"  # buffered until flush
    writer.flush(now=0.0)
    assert path.read_text().splitlines() == [
        f"{HEADER}run42",
        "S\t3\t100.000\tc101\t0-2,5",
        "E\t3\t-9\t100.000\t2.500",
        "Q\t4",
    ]
    writer.flush(now=0.1)  # nothing pending: nothing written
    assert len(path.read_text().splitlines()) == 4
    writer.close()
    writer.close()  # twice: harmless
    assert path.exists()
    assert not list(tmp_path.glob(".qs.journal.tmp*"))


def test_writer_replaces_an_old_journal_and_close_can_remove(tmp_path: Path):
    path = tmp_path / "j"
    path.write_text("stale garbage\n")
    writer = JournalWriter(path, "new", fsync_interval=0.0)
    assert path.read_text() == f"{HEADER}new\n"
    writer.flush(now=0.0, force_sync=True)
    writer.close(remove=True)
    assert not path.exists()


# -- replay ---------------------------------------------------------------------
def write_journal(tmp_path: Path, run: str, *records: str, tail: str = "") -> Path:
    path = tmp_path / "qs.journal"
    text = f"{HEADER}{run}\n" + "".join(r + "\n" for r in records) + tail
    path.write_bytes(text.encode("utf-8", "surrogateescape"))  # (as the writer does: bytes pass unchanged)
    return path


def test_replay_applies_start_end_and_requeue(tmp_path: Path):
    path = write_journal(
        tmp_path,
        "r1",
        "S\t0\t10.000\tc1\t0",
        "S\t1\t10.500\tc1\t1-3",
        "E\t0\t0\t10.000\t1.250",
        "S\t2\t11.000\tc2\t0",
        "E\t1\t2\t10.500\t4.000",
        "S\t3\t12.000\tc2\t1",
        "Q\t3",
    )
    ledger = fresh_ledger()
    assert replay(path, "r1", ledger) == 7
    recs = ledger.records
    assert (recs[0].state, recs[0].exit_code, recs[0].runtime, recs[0].host, recs[0].core_ids) == (
        COMPLETED,
        0,
        1.25,
        "c1",
        (0,),
    )
    assert (recs[1].state, recs[1].exit_code, recs[1].core_ids) == (FAILED, 2, (1, 2, 3))
    assert (recs[2].state, recs[2].start, recs[2].host) == (RUNNING, 11.0, "c2")
    assert recs[3].state == QUEUED
    assert recs[4].state == QUEUED and recs[4].host is None


def test_replay_is_idempotent(tmp_path: Path):
    path = write_journal(tmp_path, "r", "S\t0\t1.000\th\t0", "E\t0\t0\t1.000\t1.000", "S\t1\t2.000\th\t0")
    once, twice = fresh_ledger(), fresh_ledger()
    replay(path, "r", once)
    replay(path, "r", twice)
    replay(path, "r", twice)
    assert snapshot_of(once) == snapshot_of(twice)


def test_replay_ignores_a_cut_short_last_line(tmp_path: Path):
    path = write_journal(tmp_path, "r", "S\t0\t1.000\th\t0", tail="E\t0\t0\t1.0")
    ledger = fresh_ledger()
    assert replay(path, "r", ledger) == 1
    assert ledger.records[0].state == RUNNING
    # even a cut that leaves garbage is ignored when it is the last line
    path = write_journal(tmp_path, "r", "S\t0\t1.000\th\t0", tail="E\t0\tzz")
    assert replay(path, "r", fresh_ledger()) == 1


def test_replay_of_header_only_or_cut_header(tmp_path: Path):
    path = write_journal(tmp_path, "r")
    assert replay(path, "r", fresh_ledger()) == 0
    path.write_text(f"{HEADER}r")  # header without its newline
    assert replay(path, "r", fresh_ledger()) == 0


def test_replay_ignores_another_runs_journal(tmp_path: Path):
    path = write_journal(tmp_path, "old-run", "S\t0\t1.000\th\t0", "E\t0\t0\t1.000\t1.000")
    ledger = fresh_ledger()
    assert replay(path, "new-run", ledger) == 0
    assert all(r.state == QUEUED for r in ledger)


def test_replay_without_journal(tmp_path: Path):
    assert replay(tmp_path / "absent", "r", fresh_ledger()) == 0


@pytest.mark.parametrize(
    "bad",
    [
        "X\t0",  # unknown kind
        "S\tzero\t1.000\th\t0",  # bad id
        "S\t0\t1.000\th",  # missing field
        "E\t0\tok\t1.000\t1.000",  # bad exit
        "Q\t99",  # no such task
        "",  # empty line in the middle
        "E\t0\t1000000000\t1.000\t1.000",  # exit beyond any exit status
        "E\t0\t0\t1.000\t-1.000",  # negative runtime
        "E\t0\t0\tinf\t1.000",
        "S\t0\tnan\th\t0",
        "S\t0\t1e300\th\t0",
        "S\t0\t1.000\th\t0-999999999999",  # refused before it is expanded
        "S\t0\t1.000\t\t0",  # no host
        "S\t0\t1.000\th\x01\t0",  # a control character in the host
        "S\t0\t1.000\th\udcff\t0",  # a byte that is not UTF-8 in the host
        "S\t0\t1.000\th\t0\textra",
        "Q\t0\t1",
        "S\t-1\t1.000\th\t0",
        "S\t+0\t1.000\th\t0",
        "E\t0\t999\t1.000\t1.000",  # of the common shape, beyond an exit status
        "E\t0\t-200\t1.000\t1.000",
        "S\t5\t1.000\th\t0",  # of the common shape, no such task
        "E\t7\t0\t1.000\t1.000",
        "S\t0\t1.000\th\t0-2,x",  # of the common shape, slots that are not slots
    ],
)
def test_replay_refuses_a_corrupt_middle_line(tmp_path: Path, bad: str):
    path = write_journal(tmp_path, "r", "S\t0\t1.000\th\t0", bad, "E\t0\t0\t1.000\t1.000")
    with pytest.raises(InputError, match="corrupt journal record") as info:
        replay(path, "r", fresh_ledger())
    assert info.value.line == 3
    assert str(info.value).startswith(f"{path}:3: ")


@pytest.mark.parametrize("seed", range(4))
def test_records_of_the_common_shapes_apply_as_the_field_by_field_reading_does(tmp_path: Path, seed: int, monkeypatch):
    """Starts and ends as the writer writes them are applied with one match each; the ledger is the one
    the full reading of every field gives (odd ones among them: leading zeros, a host of its own)."""
    import random

    rng = random.Random(seed)
    lines = []
    for _ in range(400):
        task_id = rng.randrange(20)
        kind = rng.choice("SSEEQ")
        if kind == "S":
            host = rng.choice(["c1", "c2", "node-7.cluster"])
            lines.append(f"S\t{task_id}\t{rng.uniform(0, 2e9):.3f}\t{host}\t{rng.choice(['0', '0-3', '1,5', ''])}")
        elif kind == "E":
            code = rng.choice([0, 0, 0, 1, 137, -9, 255, -128])
            lines.append(f"E\t{task_id}\t{code}\t{rng.uniform(0, 2e9):.3f}\t{rng.uniform(0, 1e5):.3f}")
        else:
            lines.append(f"Q\t{task_id}")
    lines += ["S\t3\t0001.500\tc1\t0", "E\t3\t000\t1.5\t2"]  # (not as written, read all the same)
    path = write_journal(tmp_path, "r", *lines)
    fast = fresh_ledger(20)
    assert replay(path, "r", fast) == len(lines)
    monkeypatch.setattr(journal._Common, "apply", lambda self, line: False)
    slow = fresh_ledger(20)
    assert replay(path, "r", slow) == len(lines)
    assert snapshot_of(fast) == snapshot_of(slow)


def test_replay_refuses_a_file_that_is_not_a_journal(tmp_path: Path):
    path = tmp_path / "j"
    path.write_text("hello\nS\t0\t1\th\t0\n")
    with pytest.raises(InputError, match="not an mpilauncher journal") as info:
        replay(path, "r", fresh_ledger())
    assert info.value.line == 1


def test_writer_output_replays_to_the_same_ledger(tmp_path: Path):
    path = tmp_path / "j"
    live = fresh_ledger()
    writer = JournalWriter(path, "run", fsync_interval=100.0)
    events = [
        ("S", 0, 1.5, "c1", (0, 1)),
        ("S", 1, 2.0, "c1", (2,)),
        ("E", 0, 0, 1.5, 3.25),
        ("S", 2, 2.5, "c2", (0,)),
        ("Q", 2),
        ("S", 2, 4.0, "c1", (0,)),
        ("E", 2, 137, 4.0, 0.125),
    ]
    for event in events:
        if event[0] == "S":
            _, tid, start, host, cores = event
            live.started(tid, host, cores, start)
            writer.started(tid, start, host, cores)
        elif event[0] == "E":
            _, tid, code, start, runtime = event
            live.finished(tid, code, start, runtime)
            writer.finished(tid, code, start, runtime)
        else:
            live.requeued(event[1])
            writer.requeued(event[1])
    writer.flush(now=0.0)
    writer.close()
    replayed = fresh_ledger()
    assert replay(path, "run", replayed) == len(events)
    assert snapshot_of(replayed) == snapshot_of(live)


def test_replayed_starts_on_one_node_share_its_name_and_their_slots(tmp_path: Path):
    """A journal repeats a few hosts and slot lists on every start: each is checked once and shared."""
    records = [f"S\t{i}\t{100.0 + i:.3f}\tc{i % 2}\t{i % 2}" for i in range(5)]
    ledger = fresh_ledger()
    assert replay(write_journal(tmp_path, "r", *records), "r", ledger) == 5
    started = [ledger.records[i] for i in range(5)]
    assert [(rec.host, rec.core_ids) for rec in started[:2]] == [("c0", (0,)), ("c1", (1,))]
    assert len({id(rec.host) for rec in started}) == 2 and len({id(rec.core_ids) for rec in started}) == 2
    bad = write_journal(tmp_path, "r", records[0], "S\t1\t101.000\tc0\t0-x")  # a known host, a new bad slot list
    with pytest.raises(InputError, match="slots") as info:
        replay(bad, "r", fresh_ledger())
    assert info.value.line == 3


# -- state store -----------------------------------------------------------------
def new_store(tmp_path: Path, n: int = 6, cores: CoresSpec = ONE) -> StateStore:
    meta = StateMeta(commandlines="cmds", cores=str(cores), workdir="wd")
    ledger = Ledger((Task(i, f"./prog {i}", line=i + 1) for i in range(n)), elapsed_before=5.0)
    return StateStore(tmp_path / "queuestate", ledger, meta, cores, fsync_interval=0.5)


def run_some(store: StateStore) -> None:
    store.started(0, "c1", (0,), 100.0)
    store.started(1, "c1", (1, 2), 100.0)
    store.started(2, "c2", (0,), 100.5)
    store.finished(0, 0, 100.0, 1.5)
    store.finished(1, 4, 100.0, 2.0)
    store.started(3, "c1", (0,), 101.5)
    store.requeued(2)


@pytest.mark.parametrize("elapsed", [1.8250004, 1.8249996, 0.0049999, 2.0])
def test_the_final_statistics_say_the_total_time_the_queuestate_keeps(tmp_path: Path, elapsed: float):
    """A CI run: the resume printed "total running time: 1.83" and `report` of its queuestate 1.82 (the
    queuestate keeps milliseconds: 6.8250004 s was kept as 6.825, which prints as 6.82)."""
    store = new_store(tmp_path)
    store.open(now=0.0)
    statistics = compute(store.ledger, elapsed, 1)
    store.close(now=1.0, elapsed=elapsed)
    kept = load_state(tmp_path / "queuestate", ONE).ledger.elapsed_before
    assert f"{statistics.total_time:6.2f}" == f"{kept:6.2f}"
    assert statistics.total_time == kept


def test_store_open_writes_snapshot_then_journal(tmp_path: Path):
    store = new_store(tmp_path)
    store.open(now=0.0)
    store.settle()  # (the syncs and renames go on in a thread while the first tasks start)
    state = tmp_path / "queuestate"
    assert state.exists() and not list(tmp_path.glob(".queuestate*.tmp*"))
    assert journal_path(state) == tmp_path / "queuestate.journal"
    assert journal_path(state).read_text() == f"{HEADER}{store.meta.run}\n"
    assert len(store.meta.run) == 12
    loaded = queuestate.load(state, ONE)
    assert loaded.meta.run == store.meta.run
    assert loaded.meta.journal == "queuestate.journal"
    assert loaded.ledger.counts()[QUEUED] == 6
    store.close(now=1.0, elapsed=1.0)


def test_store_round_trip_after_close(tmp_path: Path):
    store = new_store(tmp_path)
    store.open(now=0.0)
    run_some(store)
    store.flush(now=1.0, elapsed=1.0)
    store.close(now=2.0, elapsed=3.0)
    state = tmp_path / "queuestate"
    assert not journal_path(state).exists()  # redundant after the final snapshot
    loaded = load_state(state, ONE)
    # a queued record keeps no placement (Ledger.requeued clears it)
    assert sorted(kept_by_snapshot(loaded.ledger)) == sorted(kept_by_snapshot(store.ledger))
    assert loaded.ledger.elapsed_before == pytest.approx(8.0)  # 5 before + 3 this run
    assert loaded.ledger.counts() == {QUEUED: 3, RUNNING: 1, COMPLETED: 1, FAILED: 1}
    assert loaded.meta.commandlines == "cmds"


def copy_as_killed(tmp_path: Path, into: str = "after-kill") -> Path:
    """What a kill -9 leaves: both files as they are now, copied elsewhere."""
    dead = tmp_path / into
    dead.mkdir()
    for name in ("queuestate", "queuestate.journal"):
        shutil.copy2(tmp_path / name, dead / name)
    return dead / "queuestate"


def test_kill_before_close_loads_from_snapshot_plus_journal(tmp_path: Path):
    store = new_store(tmp_path)
    store.open(now=0.0)
    run_some(store)
    store.flush(now=1.0, elapsed=1.0)  # too early for a new snapshot: the journal holds it all
    stale = queuestate.load(tmp_path / "queuestate", ONE)
    assert stale.ledger.counts()[QUEUED] == 6  # the snapshot alone knows nothing yet
    killed = copy_as_killed(tmp_path)
    loaded = load_state(killed, ONE)
    assert sorted(snapshot_of(loaded.ledger)) == sorted(snapshot_of(store.ledger))
    store.close(now=2.0, elapsed=2.0)


def test_kill_after_a_later_snapshot_replays_over_it(tmp_path: Path):
    store = new_store(tmp_path)
    store.open(now=0.0)
    store.started(0, "c1", (0,), 100.0)
    store.flush(now=1.0, elapsed=1.0)
    store.finished(0, 0, 100.0, 1.5)
    store.started(4, "c2", (3,), 101.0)
    store.flush(now=1000.0, elapsed=1000.0)  # due: the snapshot is rewritten
    assert queuestate.load(tmp_path / "queuestate", ONE).ledger.records[0].state == COMPLETED
    store.finished(4, 1, 101.0, 2.0)
    store.started(5, "c2", (3,), 103.0)
    store.flush(now=1001.0, elapsed=1001.0)  # journal only
    killed = copy_as_killed(tmp_path)
    loaded = load_state(killed, ONE)
    assert sorted(snapshot_of(loaded.ledger)) == sorted(snapshot_of(store.ledger))
    assert loaded.ledger.elapsed_before == pytest.approx(1005.0)  # from the last snapshot
    store.close(now=1002.0, elapsed=1002.0)


def test_a_later_snapshot_starts_the_journal_over(tmp_path: Path):
    """A run's journal was replayed whole at every --status and resume: half-way through a million
    tasks, a million lines.  Each snapshot now starts it over, under the snapshot's new id."""
    store = new_store(tmp_path)
    store.open(now=0.0)
    first_id = store.meta.run
    run_some(store)
    store.flush(now=1.0, elapsed=1.0)
    assert len((tmp_path / "queuestate.journal").read_text().splitlines()) > 5
    store.flush(now=1000.0, elapsed=1000.0)  # due: the snapshot is rewritten, the journal starts over
    assert store.meta.run != first_id
    assert (tmp_path / "queuestate.journal").read_text() == f"{HEADER}{store.meta.run}\n"
    store.started(5, "c2", (3,), 103.0)
    store.flush(now=1001.0, elapsed=1001.0)
    assert (tmp_path / "queuestate.journal").read_text().splitlines()[1:] == ["S\t5\t103.000\tc2\t3"]
    loaded = load_state(copy_as_killed(tmp_path), ONE)
    assert sorted(snapshot_of(loaded.ledger)) == sorted(snapshot_of(store.ledger))
    store.close(now=1002.0, elapsed=1002.0)
    assert not (tmp_path / "queuestate.journal").exists()


def test_a_kill_between_a_snapshot_and_its_new_journal_loses_nothing(tmp_path: Path, monkeypatch):
    """The snapshot is written (and durable) first, then the journal replaced: killed in between, the old
    journal is of another id and is not replayed, and the snapshot holds every fact it held."""
    store = new_store(tmp_path)
    store.open(now=0.0)
    run_some(store)
    store.flush(now=1.0, elapsed=1.0)
    old_journal = (tmp_path / "queuestate.journal").read_text()

    def killed(self, run: str) -> None:
        raise SystemExit("killed")

    monkeypatch.setattr(JournalWriter, "_create", killed)
    with pytest.raises(SystemExit):
        store.flush(now=1000.0, elapsed=1000.0)
    assert (tmp_path / "queuestate.journal").read_text() == old_journal
    loaded = load_state(tmp_path / "queuestate", ONE)
    assert sorted(snapshot_of(loaded.ledger)) == sorted(snapshot_of(store.ledger))


def test_kill_with_unflushed_events_loses_only_those(tmp_path: Path):
    store = new_store(tmp_path)
    store.open(now=0.0)
    store.started(0, "c1", (0,), 100.0)
    store.flush(now=1.0, elapsed=1.0)
    store.finished(0, 0, 100.0, 1.5)  # still in the writer's buffer
    loaded = load_state(copy_as_killed(tmp_path), ONE)
    assert loaded.ledger.records[0].state == RUNNING  # rerun on resume: at-least-once
    store.close(now=2.0, elapsed=2.0)


def test_journal_of_an_older_run_is_not_replayed_over_a_newer_snapshot(tmp_path: Path):
    first = new_store(tmp_path)
    first.open(now=0.0)
    first.started(0, "c1", (0,), 100.0)
    first.flush(now=1.0, elapsed=1.0)
    old_journal = (tmp_path / "queuestate.journal").read_text()
    first.close(now=2.0, elapsed=2.0)
    # a stale journal of a previous run beside the final snapshot changes nothing
    (tmp_path / "queuestate.journal").write_text(old_journal.replace(first.meta.run, "0ld0ld0ld0ld"))
    loaded = load_state(tmp_path / "queuestate", ONE)
    assert loaded.ledger.records[0].state == RUNNING
    assert loaded.ledger.records[0].start == 100.0


def killed_midway(tmp_path: Path, cut_short: str = "") -> Path:
    """A run killed with tasks running, one failed and one completed (``cut_short``: a last record
    the kill cut short, appended to its journal); the files as the kill left them."""
    store = new_store(tmp_path)
    store.open(now=0.0)
    run_some(store)
    store.flush(now=1.0, elapsed=1.0)
    dead = copy_as_killed(tmp_path)
    store.close(now=2.0, elapsed=2.0)
    with open(journal_path(dead), "a") as journal_file:
        journal_file.write(cut_short)
    return dead


def resumed_store(state: Path, rerun_failed: bool = False, journal_lost: bool = False) -> tuple[StateStore, list[int]]:
    """``journal_lost``: resumed from the snapshot alone where its journal is lost (--force-resume)."""
    loaded = load_state(state, ONE, journal_lost=(lambda lost: None) if journal_lost else None)
    requeued = loaded.ledger.requeue(loaded.ledger.to_run(rerun_failed))
    store = StateStore(state, loaded.ledger, loaded.meta, ONE, fsync_interval=0.5, earlier=loaded.earlier)
    return store, requeued


@pytest.mark.parametrize("cut_short", ["", "E\t3\t0\t101.5"])
def test_a_resume_that_only_requeues_goes_on_with_the_snapshot_and_its_journal(tmp_path: Path, cut_short: str):
    """No snapshot before the first start of such a resume (52 MB at a half-way million): the tasks it
    queued again are appended to the snapshot's journal (a record the kill cut short cut off first),
    and any kill from then on loads what the resumed run knew."""
    state = killed_midway(tmp_path, cut_short)
    snapshot_before, journal_before = state.read_bytes(), journal_path(state).read_text()
    store, requeued = resumed_store(state, rerun_failed=True)
    assert requeued == [1, 3]  # the failed one and the running one (2 was queued again already)
    store.open(now=10.0, requeued=requeued)
    assert state.read_bytes() == snapshot_before
    complete = journal_before[: len(journal_before) - len(cut_short)]
    assert journal_path(state).read_text() == complete + "Q\t1\nQ\t3\n"
    assert snapshot_of(load_state(copy_as_killed(state.parent, "kill-1"), ONE).ledger) == snapshot_of(store.ledger)
    store.started(3, "c2", (1,), 110.0)
    store.started(4, "c1", (0,), 110.0)
    store.flush(now=10.0, elapsed=0.0)  # the turn of the first starts ends: the first snapshot
    assert state.read_bytes() != snapshot_before
    assert journal_path(state).read_text() == f"{HEADER}{store.meta.run}\n"
    store.finished(4, 0, 110.0, 1.0)
    store.flush(now=11.0, elapsed=1.0)
    again = load_state(copy_as_killed(state.parent, "kill-2"), ONE)
    assert snapshot_of(again.ledger) == snapshot_of(store.ledger)
    store.close(now=12.0, elapsed=2.0)
    final = load_state(state, ONE)
    assert sorted(kept_by_snapshot(final.ledger)) == sorted(kept_by_snapshot(store.ledger))
    assert final.ledger.elapsed_before == pytest.approx(7.0)  # 5 + this run's 2 (a journal keeps no elapsed time)


def test_a_resume_without_its_journal_writes_its_snapshot_first(tmp_path: Path):
    """After a clean stop the journal is gone (its last snapshot says that none follows it); a stale one of
    another run is not the snapshot's; one lost is gone too where --force-resume resumes without it: then
    nothing says on disk what the resume changed but a snapshot, in place before the first turn's records."""
    state = killed_midway(tmp_path)
    stopped = tmp_path / "queuestate"  # (the run's own, closed)
    assert load_state(stopped, ONE).meta.journaled is False and not journal_path(stopped).exists()
    journal_path(state).write_text(journal_path(state).read_text().replace(load_state(state, ONE).meta.run, "0ld"))
    for case, path in (("stale", state), ("lost", state), ("stopped", stopped)):
        if case == "lost":
            journal_path(state).unlink()
        store, requeued = resumed_store(path, rerun_failed=True, journal_lost=(case == "lost"))
        earlier_run = store.meta.run
        store.open(now=10.0, requeued=requeued)
        store.settle()  # (in place before the first turn's records: its flush waits for it)
        assert store.meta.run != earlier_run
        assert journal_path(path).read_text() == f"{HEADER}{store.meta.run}\n"
        assert sorted(kept_by_snapshot(load_state(path, ONE).ledger)) == sorted(kept_by_snapshot(store.ledger))
        store._journal.close()  # (left as a kill leaves it)


def test_a_snapshot_is_never_on_disk_without_a_file_at_its_journals_name(tmp_path: Path, monkeypatch):
    """Where no journal is, a new run's is put in place before its first snapshot (a kill between leaves
    an empty journal of a run whose snapshot is not in place: of another run, read as nothing journaled);
    where one of an earlier run is, the snapshot first, then the journal replaced (see ``journal_of``)."""
    seen: list[str | None] = []
    real = store_module.put_in_place

    def put_in_place(aside: Path, path: Path) -> None:
        seen.append(journal.run_in(journal_path(path)))
        real(aside, path)

    monkeypatch.setattr(store_module, "put_in_place", put_in_place)
    first = new_store(tmp_path)
    first.open(now=0.0)
    first.settle()
    assert seen == [first.meta.run], "the new run's journal was in place before its snapshot"
    first._journal.close()  # (a kill: the journal stays)
    second = new_store(tmp_path)
    second.open(now=1.0)
    second.settle()
    assert seen[1:] == [first.meta.run], "the earlier run's journal stays until the new snapshot is in place"
    assert journal.run_in(journal_path(tmp_path / "queuestate")) == second.meta.run
    second.close(now=2.0, elapsed=1.0)


def test_each_snapshot_says_whether_a_journal_follows_it(tmp_path: Path):
    store = new_store(tmp_path)
    store.open(now=0.0)
    run_some(store)
    store.flush(now=1000.0, elapsed=1.0)  # (a later snapshot)
    assert queuestate.load(tmp_path / "queuestate", ONE).meta.journaled is True
    assert "# Events after this snapshot are in queuestate.journal;" in (tmp_path / "queuestate").read_text()
    store.close(now=1001.0, elapsed=2.0)
    final = (tmp_path / "queuestate").read_text()
    assert queuestate.load(tmp_path / "queuestate", ONE).meta.journaled is False
    assert "# Its run ended with this snapshot: nothing happened after it (its journal is removed).\n" in final


@pytest.mark.parametrize("renamed_journal", [True, False])
def test_a_renamed_snapshot_finds_its_journal_by_its_run(tmp_path: Path, renamed_journal: bool):
    """``mv queuestate renamed`` (the journal it names stays) or with ``mv queuestate.journal
    renamed.journal`` too: the same state is read; a journal of another run under either name is not."""
    state = killed_midway(tmp_path)
    expected = snapshot_of(load_state(state, ONE).ledger)
    renamed = state.with_name("renamed")
    state.rename(renamed)
    if renamed_journal:
        journal_path(state).rename(journal_path(renamed))
    loaded = load_state(renamed, ONE)
    assert snapshot_of(loaded.ledger) == expected
    assert loaded.journal == (journal_path(renamed) if renamed_journal else journal_path(state))
    other = f"{HEADER}0ld0ld0ld0ld\nE\t5\t0\t1.000\t1.000\n"
    (journal_path(state) if renamed_journal else journal_path(renamed)).write_text(other)
    assert snapshot_of(load_state(renamed, ONE).ledger) == expected, "another run's journal is not applied"
    (loaded.journal or Path()).write_text(other)  # (the snapshot's own gone: one of another run in its place)
    assert load_state(renamed, ONE).journal is None


def test_a_journal_lost_is_refused_unless_told_and_one_never_written_is_not(tmp_path: Path):
    state = killed_midway(tmp_path)
    journal_path(state).unlink()
    with pytest.raises(store_module.JournalLost, match="its journal queuestate.journal is not beside it") as info:
        load_state(state, ONE)
    assert info.value.source == str(state) and "--force-resume" in str(info.value)
    told: list[str] = []
    alone = load_state(state, ONE, journal_lost=lambda lost: told.append(lost.journal_name))
    assert told == ["queuestate.journal"] and alone.journal is None
    assert alone.ledger.counts()[COMPLETED] == 0, "the snapshot alone: the first of its run"
    # a queuestate of an earlier version, which did not say whether a journal follows: read alone
    text = state.read_text()
    assert '"journaled": true, ' in text
    state.write_text(text.replace('"journaled": true, ', ""))
    assert load_state(state, ONE).ledger.counts()[COMPLETED] == 0


def test_a_resume_never_appends_to_a_journal_after_a_snapshot_that_says_none_follows(tmp_path: Path):
    """A kill between the last snapshot of a run and the removal of its journal leaves that journal, of
    the snapshot's own run: it is read (its records change nothing), but appended to, its records would
    follow a snapshot that says nothing does, and be lost with a copy of the queuestate alone."""
    store = new_store(tmp_path)
    store.open(now=0.0)
    run_some(store)
    store.flush(now=1.0, elapsed=1.0)
    left = journal_path(store.path).read_text()
    store.close(now=2.0, elapsed=2.0)
    journal_path(store.path).write_text(left)
    resumed, requeued = resumed_store(store.path)
    before = resumed.meta.run
    resumed.open(now=10.0, requeued=requeued)
    resumed.settle()
    assert resumed.meta.run != before and journal_path(store.path).read_text() == f"{HEADER}{resumed.meta.run}\n"
    resumed.close(now=11.0, elapsed=1.0)


def test_journal_module_exports():
    assert journal.HEADER.startswith("#mpilauncher-journal")


def test_start_without_core_ids_round_trips(tmp_path: Path):
    writer = JournalWriter(tmp_path / "j", "r", fsync_interval=1.0)
    writer.started(1, 5.0, "h", ())
    writer.flush(now=0.0)
    writer.close()
    ledger = fresh_ledger()
    assert replay(tmp_path / "j", "r", ledger) == 1
    assert (ledger.records[1].state, ledger.records[1].core_ids) == (RUNNING, ())


def test_pylauncher_queuestate_loads_without_journal_replay(tmp_path: Path):
    state = tmp_path / "queuestate"
    state.write_text("queued\n1: ./b\nrunning\ncompleted\n0: ./a\n")
    journal_path(state).write_text(f"{HEADER}\nS\t1\t1.000\th\t0\n")
    loaded = load_state(state, ONE)
    assert loaded.from_pylauncher
    assert loaded.ledger.records[1].state == QUEUED


def test_a_resume_whose_journal_cannot_be_reopened_writes_its_snapshot_first(tmp_path: Path, monkeypatch):
    """A journal it may not append to (a copy made read-only, as root cannot show here): the snapshot is
    written first and a new journal replaces that one, as for a new run."""
    state = killed_midway(tmp_path)
    store, requeued = resumed_store(state)
    real_open = os.open

    def refusing(path, flags, *args):
        if flags & os.O_RDWR and Path(path) == journal_path(state):  # (reopen; a new journal is written only)
            raise PermissionError(13, "Permission denied")
        return real_open(path, flags, *args)

    monkeypatch.setattr(journal.os, "open", refusing)
    earlier_run = store.meta.run
    store.open(now=10.0, requeued=requeued)
    store.settle()
    assert store.meta.run != earlier_run and journal_path(state).read_text() == f"{HEADER}{store.meta.run}\n"
    assert sorted(kept_by_snapshot(load_state(state, ONE).ledger)) == sorted(kept_by_snapshot(store.ledger))
    store.close(now=11.0, elapsed=1.0)


def test_a_new_journal_is_made_beside_the_first_tasks_and_the_first_flush_waits_for_it(tmp_path: Path):
    """The first snapshot's sync and rename and the journal's creation run in a thread (37 ms of syncs
    on ext4 before a new sweep's first start) while the first turn sends its tasks; the turn's flush
    waits for them: its records are handed to the OS in that turn, after the snapshot is in place."""
    path = tmp_path / "queuestate.journal"
    gate = threading.Event()
    order: list[str] = []

    def snapshot_in_place() -> None:
        gate.wait(10)
        order.append("snapshot")

    writer = JournalWriter(path, "abc", 0.5, after=snapshot_in_place)
    writer.started(3, 10.0, "c1", (0,))
    writer.finished(3, 0, 10.0, 0.5)
    assert not path.exists() and order == []
    threading.Timer(0.2, gate.set).start()
    writer.flush(now=10.5)
    assert order == ["snapshot"]
    assert path.read_text() == f"{HEADER}abc\nS\t3\t10.000\tc1\t0\nE\t3\t0\t10.000\t0.500\n"
    writer.close()


def test_a_failure_to_put_the_first_snapshot_in_place_is_raised_in_the_loop(tmp_path: Path):
    def cannot() -> None:
        raise LauncherFailure("queuestate: cannot write: Input/output error")

    writer = JournalWriter(tmp_path / "queuestate.journal", "abc", 0.5, after=cannot)
    writer.finished(1, 0, 1.0, 1.0)
    with pytest.raises(LauncherFailure, match="Input/output error"):
        writer.flush(now=2.0)
    assert not (tmp_path / "queuestate.journal").exists(), "no journal of a snapshot that is not in place"
    writer.close()


def attempts_of(ledger: Ledger) -> dict[int, int]:
    return {rec.id: rec.attempts for rec in ledger if rec.attempts}


def test_failed_attempts_are_carried_through_the_journal_and_the_snapshot(tmp_path: Path):
    """A task's attempts that failed are numbered over every run of the sweep: a retry waiting in the queue
    (task 1: failed twice, queued again), a task failed for good (task 2: its third attempt), one that
    failed once (task 3: its 1 implied), one that then completed (task 4: nothing to carry); after a kill
    (snapshot + journal) and after the last snapshot alike.  After --resume --rerun-failed the joblog
    held attempt 1 of a task twice: each run counted from 1."""
    store = new_store(tmp_path)
    store.open(now=0.0)
    for task_id, ends in {1: [(5, 1), (5, 2)], 2: [(5, 1), (5, 2), (6, 3)], 3: [(7, 1)], 4: [(1, 1), (0, 2)]}.items():
        for code, attempt in ends:
            store.started(task_id, "c1", (0,), 100.0)
            store.finished(task_id, code, 100.0, 1.0, attempt)
            if task_id == 1 or (code and attempt < len(ends)):
                store.requeued(task_id)  # (Retried)
    store.flush(now=1.0, elapsed=1.0)
    expected = {1: 2, 2: 3, 3: 1}
    assert attempts_of(store.ledger) == expected
    assert "\t5\t100.000\t1.000\t2\n" in journal_path(tmp_path / "queuestate").read_text()
    assert attempts_of(load_state(copy_as_killed(tmp_path), ONE).ledger) == expected
    store.close(now=2.0, elapsed=2.0)
    text = (tmp_path / "queuestate").read_text()
    assert "1 line=2 attempt=2: ./prog 1\n" in text and " attempt=3: ./prog 2\n" in text
    assert "attempt=1" not in text, "a failed task's first attempt goes without saying"
    loaded = load_state(tmp_path / "queuestate", ONE).ledger
    assert attempts_of(loaded) == expected
    assert loaded.state(1) == QUEUED and loaded.state(2) == FAILED and loaded.state(4) == COMPLETED
    loaded.requeue(loaded.to_run(rerun_failed=True))  # (a resume --rerun-failed: task 3's 1 is said now)
    assert loaded.attempts == {1: 2, 2: 3, 3: 1}


def test_an_attempt_out_of_bounds_in_a_queuestate_is_one_line(tmp_path: Path):
    state = tmp_path / "queuestate"
    state.write_text("queued\n0 line=1 attempt=0: true\ncompleted\n")
    with pytest.raises(InputError, match="task 0: attempt must be"):
        load_state(state, ONE)
