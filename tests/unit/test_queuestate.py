"""The queuestate snapshot: render/parse round trips, PyLauncher files, corrupt files."""

from __future__ import annotations

import hashlib
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from mpilauncher.core.ledger import COMPLETED, FAILED, QUEUED, RUNNING, STATES, Ledger, TaskRecord
from mpilauncher.core.tasks import CoresSpec, Task, parse_commandlines
from mpilauncher.errors import InputError
from mpilauncher.persistence import files, queuestate
from mpilauncher.persistence.files import atomic_write, read_text, sha256_hex
from mpilauncher.persistence.queuestate import StateMeta, parse, render

ONE = CoresSpec("fixed", 1)


def sample_ledger(tasks: list[Task]) -> Ledger:
    """Tasks spread over all four states (needs at least 6 tasks)."""
    ledger = Ledger(tasks)
    ledger.started(0, "c101", (0,), 1764072000.125)
    ledger.finished(0, 0, 1764072000.125, 0.512)
    ledger.started(1, "c102", (0, 1, 2, 3), 1764072001.0)
    ledger.finished(1, 3, 1764072001.0, 7.25)
    ledger.started(2, "c101", (4, 5, 7), 1764072002.5)
    ledger.started(3, "c103", (1,), 1764072003.0)
    ledger.finished(3, -9, 1764072003.0, 1.0)
    ledger.started(4, "c101", (0,), 1764072004.0)
    ledger.requeued(4)
    return ledger


def round_trip(ledger: Ledger, cores: CoresSpec, meta: StateMeta | None = None) -> queuestate.LoadedState:
    meta = meta or StateMeta(
        run="abc123", commandlines="cmds", cores=str(cores), workdir="wd", journal="qs.journal", elapsed=42.5
    )
    return parse(render(ledger, meta, cores), "qs", CoresSpec("fixed", 99))


def comparable(rec):
    """What a snapshot keeps of a record (a queued record keeps no placement)."""
    placed = rec.state != QUEUED
    return (
        rec.task,
        rec.state,
        rec.exit_code,
        rec.start if placed else None,
        rec.runtime,
        rec.host if placed else None,
        rec.core_ids if placed else (),
    )


# -- round trips --------------------------------------------------------------------
@pytest.mark.parametrize("cores", [ONE, CoresSpec("fixed", 4), CoresSpec("node"), CoresSpec("file")])
def test_render_parse_round_trip_all_sections(cores):
    text = "\n".join(f"{i % 3 + 1},./prog {i} --x=a:b" if cores.kind == "file" else f"./prog {i}" for i in range(8))
    tasks = parse_commandlines(text, "cmds", cores)
    ledger = sample_ledger(tasks)
    loaded = round_trip(ledger, cores)
    assert not loaded.from_pylauncher
    assert loaded.default_cores == cores
    assert loaded.ledger.elapsed_before == 42.5  # from the #meta line (StateStore keeps it there)
    assert loaded.meta.run == "abc123"
    assert (loaded.meta.commandlines, loaded.meta.workdir, loaded.meta.journal) == ("cmds", "wd", "qs.journal")
    assert sorted(loaded.ledger.records) == sorted(ledger.records)
    assert {i: comparable(r) for i, r in loaded.ledger.records.items()} == {
        i: comparable(r) for i, r in ledger.records.items()
    }
    assert loaded.ledger.counts() == {QUEUED: 4, RUNNING: 1, COMPLETED: 1, FAILED: 2}


def test_render_layout_is_pylauncher_like():
    ledger = sample_ledger([Task(i, f"./prog {i}", line=i + 1) for i in range(7)])
    text = render(ledger, StateMeta(run="a1", written="2025-01-01T00:00:00"), ONE)
    lines = text.splitlines()
    assert lines[0].startswith("# mpilauncher queuestate (format 1) written 2025-01-01T00:00:00:")
    assert "3 queued, 1 running, 1 completed, 2 failed" in lines[0]
    meta_line = next(line for line in lines if line.startswith("#meta "))
    assert json.loads(meta_line[len("#meta ") :])["format"] == 1
    body = [line for line in lines if not line.startswith("#")]
    assert [line for line in body if line in STATES] == list(STATES)
    assert body[body.index("queued") + 1 : body.index("running")] == [
        "4 line=5: ./prog 4",
        "5 line=6: ./prog 5",
        "6 line=7: ./prog 6",
    ]
    assert body[body.index("running") + 1] == "2 line=3 start=1764072002.500 host=c101 slots=4-5,7: ./prog 2"
    assert body[body.index("completed") + 1] == (
        "0 line=1 exit=0 start=1764072000.125 runtime=0.512 host=c101 slots=0: ./prog 0"
    )
    assert body[body.index("failed") + 1 :] == [
        "1 line=2 exit=3 start=1764072001.000 runtime=7.250 host=c102 slots=0-3: ./prog 1",
        "3 line=4 exit=-9 start=1764072003.000 runtime=1.000 host=c103 slots=1: ./prog 3",
    ]
    assert text.endswith("\n")


def test_per_task_cores_are_written_only_when_they_differ_from_the_default():
    tasks = [Task(0, "a", 4), Task(1, "b", 2), Task(2, "c", 1, whole_node=True)]
    text = render(Ledger(tasks), StateMeta(run="ab", cores="4"), CoresSpec("fixed", 4))
    body = [line for line in text.splitlines() if line[:1].isdigit()]
    assert body == ["0: a", "1 cores=2: b", "2 cores=node: c"]
    loaded = parse(text, "qs", ONE)
    got = {r.id: (r.task.cores, r.task.whole_node) for r in loaded.ledger}
    assert got == {0: (4, False), 1: (2, False), 2: (4, True)}


def test_expected_times_round_trip_and_are_written_only_when_given():
    tasks = [Task(0, "a", expected=3600.0), Task(1, "b"), Task(2, "c", expected=0.25)]
    text = render(Ledger(tasks), StateMeta(run="ab"), ONE)
    body = [line for line in text.splitlines() if line[:1].isdigit()]
    assert body == ["0 expected=3600: a", "1: b", "2 expected=0.25: c"]
    assert [r.task.expected for r in parse(text, "qs", ONE).ledger] == [3600.0, None, 0.25]


def test_a_bad_expected_time_in_a_queuestate_names_file_and_line():
    text = render(Ledger([Task(0, "a", expected=10.0)]), StateMeta(run="ab"), ONE).replace("expected=10", "expected=-1")
    with pytest.raises(InputError, match=r"^qs:6: task 0: expected must be"):
        parse(text, "qs", ONE)


def test_whole_node_tasks_round_trip_under_node_default():
    tasks = parse_commandlines("./a\n./b\n", "cmds", CoresSpec("node"))
    text = render(Ledger(tasks), StateMeta(run="ab", cores="node"), CoresSpec("node"))
    assert "cores=" not in text
    loaded = parse(text, "qs", ONE)
    assert [r.task for r in loaded.ledger] == tasks
    assert all(r.task.whole_node for r in loaded.ledger)


def test_meta_extra_keys_survive():
    meta = StateMeta(run="ab", extra={"pylauncher_version": "4.0", "note": [1, 2]})
    loaded = parse(render(Ledger([Task(0, "x")]), meta, ONE), "qs", ONE)
    assert loaded.meta.extra == {"pylauncher_version": "4.0", "note": [1, 2]}


def test_non_utf8_command_survives_the_file_round_trip(tmp_path: Path):
    raw = b"echo caf\xe9 \xff\xfe PYL_ID\n./plain\n"
    source = tmp_path / "cmds"
    source.write_bytes(raw)
    tasks = parse_commandlines(read_text(source, "commandlines file"), str(source), ONE)
    assert tasks[0].command == "echo caf\udce9 \udcff\udcfe 0"
    state = tmp_path / "queuestate"
    atomic_write(state, render(Ledger(tasks), StateMeta(run="ab"), ONE))
    assert b"echo caf\xe9 \xff\xfe 0" in state.read_bytes()
    assert not list(tmp_path.glob(".queuestate.tmp*"))  # no temporary file left behind
    loaded = queuestate.load(state, ONE)
    assert loaded.ledger.records[0].task.command == tasks[0].command
    assert loaded.ledger.records[0].task.command.encode("utf-8", "surrogateescape") == b"echo caf\xe9 \xff\xfe 0"


def test_empty_meta_only_snapshot_is_an_empty_ledger():
    loaded = parse("#meta " + json.dumps({"format": 1, "run": "cd"}) + "\n# end of queuestate: 0 tasks\n", "qs", ONE)
    assert len(loaded.ledger) == 0 and not loaded.from_pylauncher


def test_a_snapshot_cut_short_is_refused():
    ledger = Ledger([Task(i, f"./prog {i}") for i in range(5)])
    text = render(ledger, StateMeta(run="ab"), ONE)
    assert text.splitlines()[-1].startswith("# end of queuestate: 5 tasks; queued 0-4; crc32 ")
    for cut in (text.rindex("5 tasks"), text.index("\nrunning"), text.index("\nqueued") + 1):
        with pytest.raises(InputError, match="qs: truncated queuestate"):
            parse(text[:cut], "qs", ONE)
    for cut in (text.index("\nqueued") + 3, 40):  # inside a section header, inside the comments
        with pytest.raises(InputError, match="qs:"):
            parse(text[:cut], "qs", ONE)


# -- PyLauncher-written files --------------------------------------------------------
PYLAUNCHER_STATE = """queued
5: ./prog 5
6: ./prog 6
running
4: ./prog 4
completed
0: ./prog 0
1: ./prog 1
2: ./prog 2
3: ./prog 3
"""


def test_parse_pylauncher_queuestate():
    loaded = parse(PYLAUNCHER_STATE, "queuestate", ONE)
    assert loaded.from_pylauncher
    assert loaded.default_cores == ONE
    assert loaded.ledger.elapsed_before == 0.0
    ledger = loaded.ledger
    assert ledger.ids_in(QUEUED) == [5, 6]
    assert ledger.ids_in(RUNNING) == [4]
    assert ledger.ids_in(COMPLETED) == [0, 1, 2, 3]
    assert ledger.records[5].task == Task(5, "./prog 5", 1, False, 0)
    assert [t.id for t in ledger.to_run()] == [4, 5, 6]  # (in id order: the order they start in)


def test_parse_pylauncher_queuestate_with_fixed_and_node_cores():
    loaded = parse(PYLAUNCHER_STATE, "queuestate", CoresSpec("fixed", 8))
    assert {r.task.cores for r in loaded.ledger} == {8}
    loaded = parse(PYLAUNCHER_STATE, "queuestate", CoresSpec("node"))
    assert all(r.task.whole_node for r in loaded.ledger)


def test_parse_pylauncher_queuestate_with_file_cores():
    text = "queued\n3: 4,./prog\n4: 1, ./other a,b\nrunning\ncompleted\n0: 2,./done\n"
    loaded = parse(text, "queuestate", CoresSpec("file"))
    got = {r.id: (r.task.cores, r.task.command, r.state) for r in loaded.ledger}
    assert got == {3: (4, "./prog", QUEUED), 4: (1, "./other a,b", QUEUED), 0: (2, "./done", COMPLETED)}


def test_pylauncher_file_cores_bad_prefix_names_file_and_line():
    with pytest.raises(InputError, match=r"^queuestate:3: task 5: .*from 1 to 10,000,000"):
        parse("queued\n3: 4,./prog\n5: 0,./bad\n", "queuestate", CoresSpec("file"))


def test_failed_section_without_exit_code_means_exit_1():
    loaded = parse("failed\n2: ./x\n", "qs", ONE)
    assert (loaded.ledger.records[2].state, loaded.ledger.records[2].exit_code) == (FAILED, 1)


def test_a_resumed_pylauncher_queuestate_is_read_again_after_our_snapshot_of_it():
    """PyLauncher's finished lines carry no exit code: our snapshot of them must still read back
    (it said ``exit=None`` for a completed task, and the second resume stopped at that line)."""
    loaded = parse(PYLAUNCHER_STATE + "failed\n7: ./prog 7\n", "queuestate", ONE)
    again = parse(render(loaded.ledger, loaded.meta, loaded.default_cores), "queuestate", ONE).ledger
    assert again.ids_in(COMPLETED) == [0, 1, 2, 3] and again.ids_in(FAILED) == [7]
    assert [again.records[i].exit_code for i in (0, 7)] == [0, 1]
    assert [t.id for t in again.to_run(rerun_failed=True)] == [4, 5, 6, 7]
    told = [TaskRecord(Task(0, "./a"), COMPLETED), TaskRecord(Task(1, "./b"), FAILED)]  # (records made without one)
    text = render(Ledger.from_records(told), StateMeta(run="ab"), ONE)
    assert "exit=None" not in text and parse(text, "qs", ONE).ledger.counts()[FAILED] == 1
    written_before = render(loaded.ledger, loaded.meta, ONE).replace("exit=0", "exit=None")  # (earlier versions)
    assert parse(written_before, "queuestate", ONE).ledger.records[0].exit_code == 0


# -- corrupt files ----------------------------------------------------------------------
META = "#meta " + json.dumps({"format": 1, "run": "ab"})


@pytest.mark.parametrize(
    ("text", "line", "problem"),
    [
        ("# comment\n0: ./a\nqueued\n", 2, "before any of the sections"),
        ("queued\nx: ./a\n", 2, "task id must be"),
        ("queued\n-1: ./a\n", 2, "task id must be"),
        ("queued\n: ./a\n", 2, "task id must be"),
        ("queued\n0: ./a\ncompleted\n0: ./a\n", 4, "listed twice"),
        ("queued\n0 ./a\n", 2, "expected '<id>: <command>'"),
        ("queued\n0:\n", 2, "no command"),
        (f"{META}\nqueued\n0 cores: ./a\n", 3, "bad field"),
        (f"{META}\nqueued\n0 cores=many: ./a\n", 3, "task 0: cores must be a whole number"),
        (f"{META}\ncompleted\n0 exit=zero: ./a\n", 3, "task 0: exit must be a whole number from -128 to 255"),
        (f"{META}\ncompleted\n0 runtime=1.x: ./a\n", 3, "task 0: runtime must be a number of seconds"),
        (f"{META}\ncompleted\n0 line=x: ./a\n", 3, "task 0: line must be a whole number"),
        (f"{META}\nrunning\n0 start=nan: ./a\n", 3, "task 0: start must be a number of seconds from 0"),
        (f"{META}\nrunning\n0 host=c1 slots=0-999999999999: ./a\n", 3, "task 0: slots '0-999999999999'"),
        (f"{META}\nqueued\n0 cores=0: ./a\n", 3, "task 0: cores must be a whole number from 1"),
        (f"{META}\nqueued\n0 exit=0: ./a\n", 3, "task 0: exit=0 in the queued section"),
        (f"{META}\nfailed\n0 exit=0: ./a\n", 3, "task 0: exit=0 in the failed section"),
        (f"{META}\nqueued\n0 x=1: ./a\n", 3, "task 0: unknown field 'x'"),
        (f"{META}\nqueued\n0: ./\0a\n", 3, "task 0: command contains a NUL"),
        (f"{META}\nqueued\n1000000000: ./a\n", 3, "task id must be a whole number from 0 to 999,999,999"),
        (f"{META}\n{META}\nqueued\n0: ./a\n", 2, "a second #meta line"),
        ('#meta {"format": true}\nqueued\n', 1, "unsupported queuestate format True"),
        ('#meta {"format": 1, "journal": "../j"}\n', 1, "corrupt #meta line: journal must be a plain file name"),
        ('#meta {"format": 1, "cores": 4}\n', 1, "corrupt #meta line: cores must be text"),
        ('#meta {"format": 1, "elapsed": NaN}\n', 1, "corrupt #meta line: elapsed must be a number of seconds"),
        ('#meta {"format": 1, "workdir": 5}\n', 1, "corrupt #meta line: workdir must be a path"),
        ('#meta {"format": 1, "gpus_per_task": "1"}\n', 1, "corrupt #meta line: gpus_per_task must be a whole"),
        ("#meta " + "[" * 100_000 + "\n", 1, "corrupt #meta line"),
        ('#meta {"format": 1, "x": 1' + "0" * 5000 + "}\n", 1, "corrupt #meta line"),
        ("# x\n#meta {not json\nqueued\n", 2, "corrupt #meta"),
        ('#meta {"format": 2}\nqueued\n', 1, "unsupported queuestate format 2"),
        ('#meta {"run": "ab"}\nqueued\n', 1, "unsupported queuestate format None"),
        ('#meta {"format": 1, "elapsed": "soon"}\n', 1, "elapsed"),
    ],
)
def test_corrupt_files_name_file_and_line(text, line, problem):
    with pytest.raises(InputError) as info:
        parse(text, "state.qs", ONE)
    assert str(info.value).startswith(f"state.qs:{line}: "), str(info.value)
    assert problem in str(info.value)
    assert (info.value.source, info.value.line) == ("state.qs", line)


@pytest.mark.parametrize("text", ["", "\n\n", "# only a comment\n"])
def test_empty_file_is_not_a_queuestate(text):
    with pytest.raises(InputError, match=r"^qs: empty or not a queuestate"):
        parse(text, "qs", ONE)


def test_load_missing_file_is_an_input_error(tmp_path: Path):
    with pytest.raises(InputError, match="no such queuestate file"):
        queuestate.load(tmp_path / "nope", ONE)
    with pytest.raises(InputError, match="is a directory"):
        queuestate.load(tmp_path, ONE)


@pytest.mark.parametrize("value", ["[1, 2]", "null", "5"])
def test_meta_that_is_not_an_object_is_an_input_error(value):
    with pytest.raises(InputError, match=r"^qs:1: "):
        parse(f"#meta {value}\nqueued\n0: ./a\n", "qs", ONE)


def test_bad_slots_value_is_an_input_error():
    with pytest.raises(InputError, match=r"^qs:3: "):
        parse(f"{META}\nrunning\n0 host=c1 slots=0-x: ./a\n", "qs", ONE)


def test_bad_meta_cores_value_names_file_and_line():
    text = "#meta " + json.dumps({"format": 1, "run": "ab", "cores": "lots"}) + "\nqueued\n0: ./a\n"
    with pytest.raises(InputError) as info:
        parse(text, "qs", ONE)
    assert str(info.value).startswith("qs:")


def test_a_gpu_sweeps_tasks_without_a_core_of_their_own_round_trip():
    """cores=0: a GPU task whose share of the cores is below one (issue 12); only a GPU sweep has them."""
    tasks = [Task(i, f"./gpu {i}", cores=0, line=i + 1, gpus=1) for i in range(3)]
    ledger = Ledger(tasks)
    ledger.started(0, "g1", (1,), 1764072000.0)
    ledger.finished(0, 0, 1764072000.0, 2.0)
    ledger.started(1, "g1", (1,), 1764072000.5)
    meta = StateMeta(run="ab", commandlines="cmds", cores="1", journal="qs.journal", extra={"gpus_per_task": 1})
    text = render(ledger, meta, ONE)
    assert "0 line=1 cores=0 exit=0" in text and "1 line=2 cores=0 start=1764072000.500 host=g1 slots=1:" in text
    loaded = parse(text, "qs", ONE)
    assert [(r.task.cores, r.state, r.core_ids) for r in sorted(loaded.ledger, key=lambda r: r.id)] == [
        (0, COMPLETED, (1,)), (0, RUNNING, (1,)), (0, QUEUED, ()),
    ]  # fmt: skip
    cpu_sweep = text.replace('"gpus_per_task": 1', '"gpus_per_task": 0')
    only_gpu_sweeps = (
        r"qs:6: task 2: cores must be a whole number from 1 .*not .0. \(0 only for the tasks of a GPU sweep\)"
    )
    with pytest.raises(InputError, match=only_gpu_sweeps):
        parse(cpu_sweep, "qs", ONE)


# -- a large sweep: the queued section in one pass, the table by id ---------------------------
def big_snapshot(tasks: int = 3000) -> str:
    ledger = sample_ledger(parse_commandlines("\n".join(f"./prog {i}" for i in range(tasks)), "cmds", ONE))
    for task_id in range(10, 60):  # a run of completed tasks among the queued
        ledger.started(task_id, "c1", (0,), 1764072000.0)
        ledger.finished(task_id, 0, 1764072000.0, 1.0)
    return render(ledger, StateMeta(run="abc", cores="1", journal="qs.journal"), ONE)


def test_a_resumed_sweeps_snapshot_reads_back_as_a_table_by_id_whatever_its_section_order():
    loaded = parse(big_snapshot(), "qs", ONE)
    table = loaded.ledger.tasks
    assert isinstance(table.ids, range) and len(table) == 3000, "ids 0..n-1: no position per id"
    assert [table[i].command for i in (0, 11, 2999)] == ["./prog 0", "./prog 11", "./prog 2999"]
    assert table.line(2999) == 3000 and not table.overrides
    counts = loaded.ledger.counts()
    assert (counts[COMPLETED], counts[FAILED], counts[RUNNING]) == (51, 2, 1)
    assert len(list(loaded.ledger.told())) == 54, "a queued task has no record of its own"
    assert render(loaded.ledger, StateMeta(run="abc", cores="1", journal="qs.journal"), ONE) == big_snapshot()


@pytest.mark.parametrize(
    ("bad", "problem"),
    [
        ("1500 cores=0: ./prog 1500", "task 1500: cores must be a whole number from 1"),
        ("1500 line=1501: ", "no command"),
        ("1500 line=x: ./prog 1500", "line must be a whole number"),
    ],
)
def test_a_bad_line_amid_a_large_queued_section_is_named_by_its_line(bad: str, problem: str):
    number, error = replaced_line_error("1500 line=1501: ./prog 1500", bad)
    assert (error.line, problem in str(error)) == (number, True), str(error)


def test_a_snapshot_of_many_runs_of_ids_reads_as_one_of_a_few(monkeypatch):
    """The sections' runs of ids are put in id order as slices; past MOST_RUNS of them, a task at a time."""
    few = parse(big_snapshot(), "qs", ONE).ledger
    monkeypatch.setattr(queuestate, "MOST_RUNS", 3)
    many = parse(big_snapshot(), "qs", ONE).ledger
    assert many.tasks.commands == few.tasks.commands and many.tasks.lines == few.tasks.lines
    assert list(many) == list(few) and isinstance(many.tasks.ids, range)


def test_the_queued_section_read_in_blocks_reads_as_in_one(monkeypatch):
    """Matched a few lines at a time, the queued lines read as they do at once; a bad one in a later
    block undoes what the blocks before it read, and the line-by-line reading names it."""
    whole = parse(big_snapshot(), "qs", ONE)
    monkeypatch.setattr(queuestate, "READ_BLOCK", 64)
    blocks = parse(big_snapshot(), "qs", ONE)
    assert blocks.earlier == whole.earlier and blocks.earlier.queued != (0, 0)
    assert render(blocks.ledger, StateMeta(run="abc", cores="1", journal="qs.journal"), ONE) == big_snapshot()
    number, error = replaced_line_error("2500 line=2501: ./prog 2500", "2500 line=2501 cores=0: ./prog 2500")
    assert (error.line, "task 2500: cores must be" in str(error)) == (number, True), str(error)


def test_the_queued_section_read_in_blocks_holds_one_block_of_matches_at_a_time(monkeypatch):
    """The matches of the whole section at once were most of a resume's peak at a million: read in
    blocks, the memory that comes and goes while reading is a block's, not the section's."""
    import tracemalloc

    body = "\n".join(f"{i} line={i + 1}: ./prog {i}" for i in range(30_000))

    def passing_peak(block: int) -> int:
        monkeypatch.setattr(queuestate, "READ_BLOCK", block)
        ids, commands, numbers = [], [], queuestate.array("i")
        tracemalloc.start()
        try:
            columns = queuestate._Columns(ids, commands, numbers)
            assert queuestate._read_lines(body, 0, len(body), 30_000, queuestate._PATTERNS.queued, columns.take)
            held, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
        assert ids == list(range(30_000)) and commands[-1] == "./prog 29999" and numbers[-1] == 30_000
        return peak - held

    assert passing_peak(1 << 14) * 10 < passing_peak(len(body))  # (~0.1 MB against ~5 MB)


def replaced_line_error(good: str, bad: str) -> tuple[int, InputError]:
    """The number of ``big_snapshot()``'s line ``good``, and the error of the snapshot with ``bad`` in its place."""
    lines = big_snapshot().split("\n")
    number = lines.index(good)
    lines[number] = bad
    with pytest.raises(InputError) as info:
        parse("\n".join(lines), "qs", ONE)
    return number + 1, info.value


@pytest.mark.parametrize(
    ("section", "bad", "problem"),
    [
        ("completed", "20 line=21 exit=zero: ./prog 20", "task 20: exit must be a whole number"),
        ("failed", "x: ./prog", "task id must be"),
    ],
)
def test_a_bad_line_after_a_large_queued_section_read_in_one_pass_is_named_by_its_line(section, bad, problem):
    """The queued lines are read without splitting them into lines: what comes after still has its number."""
    lines = big_snapshot().split("\n")
    number = lines.index(section) + 1
    lines.insert(number, bad)
    with pytest.raises(InputError) as info:
        parse("\n".join(lines), "qs", ONE)
    assert (info.value.line, problem in str(info.value)) == (number + 1, True), str(info.value)


def half_done(tasks: int = 2000) -> Ledger:
    """A sweep with most of its first half completed on a few places (some with no slots, some lines
    without a number), a failure, a running task and a task of needs of its own among them."""
    commands = [f"./prog {i}" for i in range(tasks)]
    ledger = sample_ledger([Task(i, c, 2 if i == 700 else 1, line=0 if i % 97 == 5 else i + 1)
                            for i, c in enumerate(commands)])  # fmt: skip
    for task_id in range(6, tasks // 2):
        start = 1764072000.0 + task_id * 0.125  # (times the file's milliseconds hold exactly)
        ledger.started(task_id, f"c{task_id % 3}", () if task_id % 11 == 0 else (task_id % 5, 7), start)
        if task_id != 800:
            ledger.finished(task_id, 0 if task_id != 900 else 2, start, task_id % 50 * 0.25)
    return ledger


def test_the_completed_section_read_in_one_pass_reads_as_line_by_line(monkeypatch):
    """Read in blocks of one pattern, the completed lines give the ledger the line-by-line reading gives."""
    meta = StateMeta(run="abc", cores="1", journal="qs.journal")
    text = render(half_done(), meta, ONE)
    one_pass = parse(text, "qs", ONE).ledger
    assert one_pass.outcomes.places == parse(text, "qs", ONE).ledger.outcomes.places
    monkeypatch.setattr(queuestate, "READ_BLOCK", 300)
    blocks = parse(text, "qs", ONE).ledger
    monkeypatch.setattr(queuestate._PATTERNS, "completed", re.compile("(?!)"))
    by_line = parse(text, "qs", ONE).ledger
    expected = [comparable(rec) for rec in half_done()]
    for ledger in (one_pass, blocks, by_line):
        assert [comparable(rec) for rec in ledger] == expected
        assert render(ledger, meta, ONE) == text


@pytest.mark.parametrize(
    ("good", "bad", "problem"),
    [
        ("host=c1 slots=1,7", "host=c1 slots=7-1", "slots"),
        ("host=c1 slots=1,7", f"host={'c' * 300} slots=1,7", "host"),
        ("exit=0", "exit=0 exit=0", "given twice"),
    ],
)
def test_a_bad_line_amid_a_large_completed_section_is_named_by_its_line(good: str, bad: str, problem: str):
    lines = render(half_done(), StateMeta(run="abc", cores="1", journal="qs.journal"), ONE).split("\n")
    number = next(n for n, line in enumerate(lines) if line.startswith("601 ") and good in line)
    lines[number] = lines[number].replace(good, bad)
    with pytest.raises(InputError) as info:
        parse("\n".join(lines), "qs", ONE)
    assert (info.value.line, "task 601:" in str(info.value), problem in str(info.value)) == (number + 1, True, True)


def snapshots() -> list[str]:
    meta = StateMeta(run="abc", cores="1", journal="qs.journal")
    return [render(half_done(), meta, ONE), big_snapshot(), PYLAUNCHER_STATE, render(Ledger([Task(0, "x")]), meta, ONE)]


@pytest.mark.parametrize("number", range(4))
def test_the_states_only_reading_of_status_has_the_states_of_the_full_one(number: int, monkeypatch):
    """--status reads the common lines keeping ids, states and places only: the same ids in each state,
    and the same places, in one pass or in blocks."""
    text = snapshots()[number]
    full = parse(text, "qs", ONE).ledger
    monkeypatch.setattr(queuestate, "READ_BLOCK", 400)
    assert parse(text, "qs", ONE, states_only=True).earlier is None, "nothing to copy lines from"
    for ledger in (parse(text, "qs", ONE, states_only=True).ledger, parse(text, "qs", ONE).ledger):
        assert ledger.counts() == full.counts() and len(ledger) == len(full)
        assert all(ledger.id_runs(state) == full.id_runs(state) for state in STATES)
        assert ledger.places_used() == full.places_used()


@pytest.mark.parametrize(
    ("good", "bad"),
    [
        ("host=c1 slots=1,7", "host=c1 slots=7-1"),
        ("601 line=602 ", "601 line=6x2 "),
        ("exit=0", "exit=0 exit=0"),
    ],
)
def test_the_states_only_reading_names_a_bad_completed_line_as_the_full_one(good: str, bad: str):
    lines = render(half_done(), StateMeta(run="abc", cores="1", journal="qs.journal"), ONE).split("\n")
    number = next(n for n, line in enumerate(lines) if line.startswith("601 ") and good in line)
    lines[number] = lines[number].replace(good, bad)
    errors = []
    for states_only in (False, True):
        with pytest.raises(InputError) as info:
            parse("\n".join(lines), "qs", ONE, states_only=states_only)
        errors.append(str(info.value))
    assert errors[0] == errors[1] and f"qs:{number + 1}: task 601" in errors[0]


def test_completed_tasks_on_one_node_share_its_name_and_their_slots():
    """Half a million completed lines name a few hosts and slot lists: one object each, not one a record."""
    ledger = sample_ledger(parse_commandlines("\n".join(f"./prog {i}" for i in range(400)), "cmds", ONE))
    for task_id in range(300):
        ledger.started(task_id, f"c{task_id % 2}", (task_id % 4,), 1764072000.0 + task_id)
        ledger.finished(task_id, 0, 1764072000.0 + task_id, 1.0)
    text = render(ledger, StateMeta(run="abc", cores="1", journal="qs.journal"), ONE)
    records = parse(text, "qs", ONE).ledger.records
    done = [records[i] for i in range(300)]
    assert len({id(rec.host) for rec in done}) == 2 and len({id(rec.core_ids) for rec in done}) == 4
    assert [(rec.host, rec.core_ids, rec.start) for rec in done[5:7]] == [
        ("c1", (1,), 1764072005.0),
        ("c0", (2,), 1764072006.0),
    ]


@pytest.mark.parametrize("cores", [ONE, CoresSpec("fixed", 4), CoresSpec("node", 1)])
def test_completed_lines_written_in_one_go_read_as_those_written_field_by_field(cores: CoresSpec):
    """The snapshot writes a completed task of the sweep's needs with one f-string: the same line as the
    general writer, whatever its slots, line number, exit code and times."""
    tasks = [Task(i, f"./prog {i}", cores.count, cores.kind == "node", line=i % 3) for i in range(60)]
    ledger = sample_ledger(tasks)
    slot_lists = [(), (0,), (0, 1, 2, 3), (0, 2, 5), (7, 8), (3,)]
    for task_id in range(0, 60, 2):
        start = 1764072000.0 + task_id * 0.0015 + (0.0005 if task_id % 4 else 0.0)
        ledger.started(task_id, f"c{task_id % 3}", slot_lists[task_id // 2 % len(slot_lists)], start)
        ledger.finished(task_id, 0, start, task_id * 1.0007)
    text = render(ledger, StateMeta(run="abc", cores=str(cores), journal="qs.journal"), cores)
    section = text.split("\ncompleted\n")[1].split("\nfailed\n")[0].split("\n")
    records = ledger.records
    assert section == [
        f"{queuestate._attributes(records[task_id], cores)}: ./prog {task_id}" for task_id in range(0, 60, 2)
    ]
    assert "0 exit=0 start=1764072000.000 runtime=0.000 host=c0: ./prog 0" in section  # no line, no slots
    assert "4 line=1 exit=0 start=1764072000.006 runtime=4.003 host=c1 slots=0-3: ./prog 4" in section


@pytest.mark.parametrize("cores", [ONE, CoresSpec("node", 1)])
def test_lines_made_by_columns_read_as_those_written_field_by_field(cores: CoresSpec):
    """Thousands of queued lines of the common shape (a line number each, every task of the sweep's needs)
    are made a piece at a time by columns, completed ones in an f-string each: the same lines as the
    general writer, across thousands of ids; lines of other shapes (no host, a failure) beside them."""
    text = "\n".join(f"./prog {i} --x=é" for i in range(5000))
    ledger = sample_ledger(parse_commandlines("# header\n" + text, "cmds", cores))
    slot_lists = [(0,), (0, 1, 2, 3), (0, 2, 5), (7, 8), ()]
    for task_id in range(300, 4700):
        start = 1764072000.0 + task_id * 0.0015 + (0.0005 if task_id % 4 else 0.0)
        host = "" if task_id == 2222 else f"c{task_id % 3}"
        ledger.started(task_id, host, slot_lists[task_id % len(slot_lists)], start)
        if task_id % 1000 != 7:  # (running ones between runs of completed)
            ledger.finished(task_id, 3 if task_id == 3333 else 0, start, task_id * 1.0007)
    text = render(ledger, StateMeta(run="abc", cores=str(cores), journal="qs.journal"), cores)
    records = [ledger.records[task_id] for task_id in range(5000)]
    for state in (QUEUED, COMPLETED):
        written = [f"{queuestate._attributes(rec, cores)}: {rec.task.command}" for rec in records if rec.state == state]
        assert text.split(f"\n{state}\n")[1].split("\n")[: len(written)] == written
    assert "\n299 line=301: ./prog 299 --x=é\n4700 line=4702: ./prog 4700 --x=é\n" in text
    assert "\n1000 line=1002 exit=0 start=1764072001.500 runtime=1000.700 host=c1 slots=0: ./prog 1000 --x=é\n" in text
    assert "\n2222 line=2224 exit=0 start=1764072003.333 runtime=2223.555: ./prog 2222" in text  # (no host)
    assert "\n3333 line=3335 exit=3 " in text.split("\nfailed\n")[1]


@pytest.mark.parametrize(
    ("bad", "problem"),
    [
        ("20 line=21 exit=0 start=1764072000.000 runtime=1.000 host=c" + "x" * 300 + " slots=0: ./prog 20", "host"),
        ("20 line=21 exit=0 start=1764072000.000 runtime=1.000 host=c1 slots=70000: ./prog 20", "slots"),
    ],
)
def test_a_bad_host_or_slots_after_good_ones_is_named_by_its_line(bad: str, problem: str):
    """A host or slot list checked once is not taken on trust for a line that differs from it."""
    good = "20 line=21 exit=0 start=1764072000.000 runtime=1.000 host=c1 slots=0: ./prog 20"
    number, error = replaced_line_error(good, bad)
    assert (error.line, f"task 20: {problem}" in str(error)) == (number, True), str(error)


def test_a_large_snapshot_is_pieces_of_bounded_size_written_one_after_the_other(tmp_path: Path, monkeypatch):
    """No line string of a big snapshot outlives its piece, and no text of the whole snapshot is made:
    the pieces hold at most PIECE_LINES lines each, and the file is their concatenation."""
    monkeypatch.setattr(queuestate, "PIECE_LINES", 100)
    ledger = sample_ledger(parse_commandlines("\n".join(f"./prog {i}" for i in range(3000)), "cmds", ONE))
    for task_id in range(500, 1700):
        ledger.started(task_id, f"c{task_id % 2}", (task_id % 4,), 1764072000.0 + task_id)
        ledger.finished(task_id, 0 if task_id % 7 else 3, 1764072000.0 + task_id, 1.0)
    meta = StateMeta(run="abc", cores="1", journal="qs.journal")
    pieces = list(queuestate.render_pieces(ledger, meta, ONE))
    assert max(piece.count(b"\n") for piece in pieces) < 100 and len(pieces) > 2 * 3000 // 100
    atomic_write(tmp_path / "qs", iter(pieces))
    text = (tmp_path / "qs").read_text()
    assert text == b"".join(pieces).decode() == render(ledger, meta, ONE)
    counts = ledger.counts()
    assert parse(text, "qs", ONE).ledger.counts() == counts and counts[COMPLETED] > 1000
    said = ", ".join(f"{counts[state]} {state}" for state in STATES)
    assert text.splitlines()[0].endswith(f": {said}.")  # the counts of the pieces, not of one list


def test_a_second_meta_line_after_the_queued_section_is_named_by_its_line():
    lines = big_snapshot().split("\n")
    number = lines.index("completed")
    lines.insert(number, META)
    with pytest.raises(InputError, match=rf"^qs:{number + 1}: a second #meta line"):
        parse("\n".join(lines), "qs", ONE)


def test_a_queued_line_with_its_own_needs_amid_the_common_ones_is_kept():
    text = big_snapshot().replace("\n1500 line=1501: ./prog 1500\n", "\n1500 line=1501 cores=4: ./prog 1500\n")
    table = parse(text, "qs", ONE).ledger.tasks
    assert table[1500].cores == 4 and table[1499].cores == 1 and set(table.overrides) == {1500}


def test_pylauncher_ids_with_holes_keep_a_position_each():
    text = "queued\n7: ./a\n3: ./b\ncompleted\n40: ./c\n"
    ledger = parse(text, "qs", ONE).ledger
    assert sorted(ledger.tasks.ids) == [3, 7, 40] and ledger.tasks[40].command == "./c"
    assert 5 not in ledger.records and ledger.ids_in(QUEUED) == [7, 3]


# -- a resume's first snapshot copies the runs of queued lines still queued ----------------
def resumed(tasks: int, seed: int, commands=None) -> tuple[queuestate.LoadedState, StateMeta]:
    """A snapshot taken mid-sweep, read back, then what a resume does before its first snapshot:
    the journal's starts and ends replayed, the running requeued.  Tasks start roughly in file
    order, as they do: long runs stay queued between the ones with a story."""
    import random

    rng = random.Random(seed)
    lines = commands or [f"./prog {i}" for i in range(tasks)]
    ledger = Ledger(parse_commandlines("\n".join(lines), "cmds", ONE))
    done = tasks // 5
    for task_id in [*range(done), *rng.sample(range(done, tasks), 40)]:  # the first run
        ledger.started(task_id, "c1", (0,), 1764072000.0)
        if rng.random() < 0.995:  # (a few running and failed among the completed: runs of ~70 each)
            ledger.finished(task_id, 2 if rng.random() < 0.01 else 0, 1764072000.0, 1.0)
    meta = StateMeta(run="abc", cores="1", journal="qs.journal")
    loaded = parse(render(ledger, meta, ONE), "qs", ONE)
    assert loaded.earlier.queued != (0, 0) and loaded.earlier.completed != (0, 0), "read in one pass: kept"
    journal = [*range(done, done + tasks // 10), *rng.sample(range(tasks), 60), tasks - 1]
    for task_id in journal:
        if loaded.ledger.state(task_id) == QUEUED:
            loaded.ledger.started(task_id, "c2", (1,), 1764072100.0)
            if rng.random() < 0.8:
                loaded.ledger.finished(task_id, 0, 1764072100.0, 2.0)
    loaded.ledger.requeue(loaded.ledger.to_run())
    return loaded, meta


def copying(monkeypatch) -> dict[str, int]:
    """How many lines were copied, by section (the test sees that copying happened at all)."""
    runs = {QUEUED: 0, COMPLETED: 0}
    span_of = queuestate._EarlierLines._span

    def counted(self, begin: int, end: int):
        span = span_of(self, begin, end)
        if span is not None:
            runs[COMPLETED if " exit=0 start=" in self.text[span[0] : span[1]].partition("\n")[0] else QUEUED] += (
                end - begin
            )
        return span

    monkeypatch.setattr(queuestate._EarlierLines, "_span", counted)
    return runs


@pytest.mark.parametrize("seed", range(6))
def test_a_resumes_first_snapshot_copied_from_the_lines_read_is_the_snapshot_formatted_anew(seed: int, monkeypatch):
    loaded, meta = resumed(20_000, seed)
    runs = copying(monkeypatch)
    copied = render(loaded.ledger, meta, ONE, loaded.earlier)
    assert copied == render(loaded.ledger, meta, ONE), "(the completed lines read now, all formatted)"
    assert runs[QUEUED] > 5_000 and runs[COMPLETED] > 2_000, runs
    again = parse(copied, "qs", ONE).ledger
    assert again.counts() == loaded.ledger.counts()


def test_a_copied_run_is_cut_from_the_text_read_a_slice_at_a_time(monkeypatch):
    """Half a million completed lines are one run: copied whole, beside the text they come from, they
    were the top of a resumed launcher's memory.  Cut as they are written, the pieces stay small."""
    loaded, meta = resumed(20_000, 3)
    monkeypatch.setattr(queuestate, "COPY_SLICE", 500)
    monkeypatch.setattr(queuestate, "PIECE_LINES", 10)
    runs = copying(monkeypatch)
    pieces = list(queuestate.render_pieces(loaded.ledger, meta, ONE, loaded.earlier))
    assert b"".join(pieces).decode() == render(loaded.ledger, meta, ONE) and runs[QUEUED] > 5_000
    assert runs[COMPLETED] > 2_000
    assert max(len(piece) for piece in pieces[1:-1]) < 2_000, "slices, and ten lines formatted (runs of 100 kB copied)"


def test_runs_that_end_off_the_text_read_copy_what_it_has_without_searching_for_the_rest(monkeypatch):
    """Each run of the ledger that goes on past a run of the text (a task that was running, queued
    again) copies the text's part and formats the rest: the text's runs say where it ends, so no
    search runs off the section."""
    ledger = Ledger(parse_commandlines("\n".join(f"./prog {i}" for i in range(12_000)), "cmds", ONE))
    for task_id in range(0, 12_000, 60):  # every 60th: completed; the one before it was running
        ledger.started(task_id, "c1", (0,), 1764072000.0)
        ledger.finished(task_id, 0, 1764072000.0, 1.0)
        if task_id:
            ledger.started(task_id - 1, "c1", (1,), 1764072000.0)
    meta = StateMeta(run="abc", cores="1", journal="qs.journal")
    loaded = parse(render(ledger, meta, ONE), "qs", ONE)
    loaded.ledger.requeue(loaded.ledger.to_run())  # the running ones are queued again: each run ends off the text
    searches: list[int] = []
    find = queuestate._EarlierLines._find

    def counted(self, task_id: int, start: int) -> int:
        at = find(self, task_id, start)
        searches.append(at)
        return at

    monkeypatch.setattr(queuestate._EarlierLines, "_find", counted)
    runs = copying(monkeypatch)
    assert render(loaded.ledger, meta, ONE, loaded.earlier) == render(loaded.ledger, meta, ONE)
    assert -1 not in searches and runs[QUEUED] == 199 * 58 + 59, "58 of 59 queued lines copied, none looked for in vain"


def test_completed_lines_written_since_they_were_read_are_formatted_without_looking(monkeypatch):
    """A completed task's line is copied only as it was read: one that something wrote since (what no
    run does to a completed task, but a ledger allows) is formatted, and its run with it (the ends
    of a run say nothing of its middle), without a look at the text."""
    ledger = Ledger(parse_commandlines("\n".join(f"./prog {i}" for i in range(12_000)), "cmds", ONE))
    for task_id in range(12_000):
        ledger.started(task_id, "c1", (0,), 1764072000.0)
        if task_id % 60:  # every 60th is running: runs of 59 completed
            ledger.finished(task_id, 0, 1764072000.0, 1.0)
    meta = StateMeta(run="abc", cores="1", journal="qs.journal")
    loaded = parse(render(ledger, meta, ONE), "qs", ONE)
    for task_id in range(30, 12_000, 60):  # the middle of each run: another runtime than the text says
        loaded.ledger.finished(task_id, 0, 1764072000.0, 3.0)
    find = queuestate._EarlierLines._find
    looks: list[int] = []
    monkeypatch.setattr(queuestate._EarlierLines, "_find", lambda self, i, at: looks.append(i) or find(self, i, at))
    copied = render(loaded.ledger, meta, ONE, loaded.earlier)
    assert copied == render(loaded.ledger, meta, ONE) and copied.count("runtime=3.000") == 200
    assert [i for i in looks if loaded.ledger.state(i) == COMPLETED] == [], "no completed line looked for"


def test_queued_lines_that_read_otherwise_are_looked_for_a_bounded_number_of_times(monkeypatch):
    """Copied from a text that is not what the ledger was read from (its commands differ), every run
    of queued lines reads otherwise: after MOST_MISSES of them the rest is formatted, unlooked for."""

    def snapshot(program: str) -> str:
        ledger = Ledger(parse_commandlines("\n".join(f"{program} {i}" for i in range(12_000)), "cmds", ONE))
        for task_id in range(0, 12_000, 60):  # runs of 59 queued
            ledger.started(task_id, "c1", (0,), 1764072000.0)
        return render(ledger, StateMeta(run="abc", cores="1", journal="qs.journal"), ONE)

    meta = StateMeta(run="abc", cores="1", journal="qs.journal")
    ledger, other = parse(snapshot("./prog"), "qs", ONE).ledger, parse(snapshot("./other"), "qs", ONE).earlier
    find = queuestate._EarlierLines._find
    looks: list[int] = []
    monkeypatch.setattr(queuestate._EarlierLines, "_find", lambda self, i, at: looks.append(i) or find(self, i, at))
    assert render(ledger, meta, ONE, other) == render(ledger, meta, ONE)
    assert len(looks) == 2 * queuestate.MOST_MISSES, "two looks a run (its first and last line), 16 runs"


def test_a_resumes_journal_completing_tasks_after_the_snapshots_completed_ones_leaves_those_copied(monkeypatch):
    """Killed between two snapshots, a run leaves a journal of the tasks completed since: on resume the
    completed tasks are one run of the ledger, of which the text has the first part."""
    ledger = Ledger(parse_commandlines("\n".join(f"./prog {i}" for i in range(10_000)), "cmds", ONE))
    for task_id in range(6_000):
        ledger.started(task_id, f"c{task_id % 2}", (task_id % 4,), 1764072000.0 + task_id)
        ledger.finished(task_id, 0, 1764072000.0 + task_id, 0.5)
    meta = StateMeta(run="abc", cores="1", journal="qs.journal")
    loaded = parse(render(ledger, meta, ONE), "qs", ONE)
    for task_id in range(6_000, 7_000):  # the journal's tasks
        loaded.ledger.started(task_id, "c1", (2,), 1764079000.0)
        loaded.ledger.finished(task_id, 0, 1764079000.0, 0.25)
    runs = copying(monkeypatch)
    assert render(loaded.ledger, meta, ONE, loaded.earlier) == render(loaded.ledger, meta, ONE)
    assert runs == {COMPLETED: 6_000, QUEUED: 3_000}, runs


def test_lines_that_only_look_like_another_tasks_line_are_not_copied_from(monkeypatch):
    """A command may say "12 line=13: ..." itself: only a line that begins so is task 12's."""
    commands = [f"echo {i + 1} line={i + 2}: {i} line={i + 1}: x" for i in range(20_000)]
    loaded, meta = resumed(20_000, 7, commands)
    fresh = render(loaded.ledger, meta, ONE)
    runs = copying(monkeypatch)
    assert render(loaded.ledger, meta, ONE, loaded.earlier) == fresh and runs[QUEUED] > 5_000, runs


def test_a_queued_section_out_of_order_is_not_copied_from():
    """Hand-edited: ids 0..n-1 in any order still load; but a run copied from such text could bring
    another task's line along, so it is formatted anew."""
    text = big_snapshot()
    lines = text.split("\n")
    a, b = lines.index("100 line=101: ./prog 100"), lines.index("2000 line=2001: ./prog 2000")
    lines[a], lines[b] = lines[b], lines[a]
    loaded = parse("\n".join(lines), "qs", ONE)
    assert loaded.earlier.queued == (0, 0) and loaded.ledger.state(100) == QUEUED
    assert render(loaded.ledger, StateMeta(run="abc", cores="1", journal="qs.journal"), ONE) == text


@pytest.mark.parametrize("size", [0, 5, files.BUILTIN_DIGEST_BYTES, files.BUILTIN_DIGEST_BYTES + 1])
def test_the_commandlines_digest_is_sha256_whichever_implementation_computes_it(size: int) -> None:
    """A queuestate written by any version names its commandlines by this digest: a resume compares it."""
    data = bytes(range(256)) * (size // 256) + b"x" * (size % 256)
    assert sha256_hex(data) == hashlib.sha256(data).hexdigest()


def test_a_small_commandlines_file_is_digested_without_loading_openssl() -> None:
    """Importing hashlib loads libcrypto: milliseconds of every start, for a file the builtin digests in 40 us."""
    code = (
        "import sys; from mpilauncher.persistence.files import sha256_hex; sha256_hex(b'true\\n' * 2000);"
        " print(sorted(m for m in ('hashlib', '_hashlib') if m in sys.modules))"
    )
    shown = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert shown.strip() == "[]"


# -- sealed files ---------------------------------------------------------------------
def awkward_sweep(tasks: int = 3000) -> tuple[str, StateMeta]:
    """A snapshot whose queued and completed sections hold lines of every shape a sweep of the default
    needs writes: without a line number, completed without a host; and failed and running tasks."""
    ledger = Ledger(Task(i, f"./prog {i}", line=i + 1 if i % 5 else 0) for i in range(tasks))
    for i in range(tasks // 2):
        if i % 11:
            ledger.started(i, f"c{i % 3}", (i % 4,), 1764072000.0 + i)
        ledger.finished(i, 0 if i % 13 else 2, 1764072000.0 + i, 0.5 + i % 7)
    ledger.started(tasks - 1, "c1", (0,), 1764073000.0)
    meta = StateMeta(run="abc", cores="1", journal="qs.journal", longest=6.5)
    return render(ledger, meta, ONE), meta


def unsealed(text: str) -> str:
    return text[: text.rindex(queuestate.SEAL)] + "\n"


def test_a_sealed_file_reads_as_the_same_file_unsealed_and_matches_no_line_until_asked(monkeypatch):
    """The last line gives the ids of the queued and completed sections and the CRC-32 of the file:
    those sections are not matched at a resume's start, and what is read later -- a block of the
    common shape in one pass, any other line by line, places too -- is what the full reading reads."""
    text, meta = awkward_sweep()
    last = text.splitlines()[-1]
    assert re.fullmatch(r"# end of queuestate: 3000 tasks; queued 1500-2998; completed (\d+(-\d+)?,)+\d+(-\d+)?; "
                        r"crc32 [0-9a-f]{8}", last), last  # fmt: skip
    whole = parse(unsealed(text), "qs", ONE)
    matched = []
    read_lines = queuestate._read_lines
    monkeypatch.setattr(queuestate, "_read_lines", lambda *args: matched.append(args[1:3]) or read_lines(*args))
    monkeypatch.setattr(queuestate, "READ_BLOCK", 2000)  # (blocks of both shapes, and of both)
    sealed = parse(text, "qs", ONE)
    assert matched == [] and sealed.ledger.counts() == whole.ledger.counts()
    assert render(sealed.ledger, meta, ONE, sealed.earlier) == text  # (these lines are not copied: read now)
    assert [comparable(rec) for rec in sealed.ledger] == [comparable(rec) for rec in whole.ledger]
    assert matched and sealed.ledger.places_used() == whole.ledger.places_used() != {}
    assert render(sealed.ledger, meta, ONE) == text


@pytest.mark.parametrize(
    ("old", "new"),
    [
        ("16 line=17 exit=0 ", "16 line=17 exit=7 "),  # a hand edit of a line no reading matches at the start
        ("; completed 0-", "; completed 1-"),  # of the ids the last line gives
        ("; crc32 ", "; crc32 0"),  # of the seal itself
    ],
)
def test_a_sealed_file_edited_by_hand_is_read_line_by_line_and_a_bad_line_named(old: str, new: str):
    ledger = Ledger(Task(i, f"./prog {i}", line=i + 1) for i in range(100))
    for i in range(50):
        ledger.started(i, "c1", (0,), 1764072000.0 + i)
        ledger.finished(i, 0, 1764072000.0 + i, 1.0)
    text = render(ledger, StateMeta(run="abc", cores="1", journal="qs.journal"), ONE)
    assert text.count(old) == 1
    edited = text.replace(old, new)
    if "exit=7" in new:
        with pytest.raises(InputError, match="task 16: exit=7 in the completed section") as info:
            parse(edited, "qs", ONE)
        assert info.value.line == text.split("\n").index("16 line=17 exit=0 start=1764072016.000 runtime=1.000 "
                                                         "host=c1 slots=0: ./prog 16") + 1  # fmt: skip
    else:
        loaded = parse(edited, "qs", ONE)
        assert [comparable(rec) for rec in loaded.ledger] == [comparable(rec) for rec in ledger]
