"""Commandlines parsing and the ``cores=`` value (mpilauncher.core.tasks)."""

from __future__ import annotations

import subprocess

import pytest

from mpilauncher.core.tasks import CoresSpec, Task, parse_commandlines, split_core_prefix, substitute_id
from mpilauncher.errors import EXIT_BAD_INPUT, InputError

ONE = CoresSpec("fixed", 1)
FILE = CoresSpec("file")


def commands(tasks: list[Task]) -> list[str]:
    return [t.command for t in tasks]


# -- plain files --------------------------------------------------------------
def test_comments_and_blank_lines_are_skipped_and_ids_follow_file_order():
    text = "# header\n\n./a\n   \n  # indented comment\n./b\n\t\n./c\n"
    tasks = parse_commandlines(text, "cmds", ONE)
    assert [t.id for t in tasks] == [0, 1, 2]
    assert commands(tasks) == ["./a", "./b", "./c"]
    assert [t.line for t in tasks] == [3, 6, 8]
    assert all(t.cores == 1 and not t.whole_node for t in tasks)


def test_pyl_id_and_pyltid_become_the_task_number():
    text = "echo PYL_ID\n# skipped PYL_ID\necho PYLTID > out.PYL_ID\necho none\necho PYL_ID PYL_ID\n"
    tasks = parse_commandlines(text, "cmds", ONE)
    assert commands(tasks) == ["echo 0", "echo 1 > out.1", "echo none", "echo 3 3"]


def test_substitute_id_leaves_other_text_alone():
    assert substitute_id("run PYL_ID/PYLTID x", 42) == "run 42/42 x"
    assert substitute_id("nothing $PYL", 7) == "nothing $PYL"


def test_last_line_without_newline_is_a_task():
    tasks = parse_commandlines("./a\n./b", "cmds", ONE)
    assert commands(tasks) == ["./a", "./b"]
    *_, last = tasks
    assert last.id == 1 and last.line == 2


def test_crlf_lines_lose_their_carriage_return():
    tasks = parse_commandlines("# c\r\n./a 1\r\n\r\n./b 2\r\n", "cmds", ONE)
    assert commands(tasks) == ["./a 1", "./b 2"]
    assert all("\r" not in c for c in commands(tasks))
    assert [t.line for t in tasks] == [2, 4]


def test_surrounding_whitespace_is_stripped():
    assert commands(parse_commandlines("   ./a  x  \n", "cmds", ONE)) == ["./a  x"]


@pytest.mark.parametrize("text", ["", "\n\n", "# only\n# comments\n", "  \n\t# x\n   "])
def test_file_without_tasks_is_an_input_error(text):
    with pytest.raises(InputError, match="no tasks") as info:
        parse_commandlines(text, "empty.txt", ONE)
    assert str(info.value).startswith("empty.txt: ")
    assert info.value.exit_status == EXIT_BAD_INPUT


def test_nul_bytes_mean_binary_file():
    with pytest.raises(InputError, match="binary") as info:
        parse_commandlines("./a\n\x00\x01\x02", "prog.bin", ONE)
    assert str(info.value).startswith("prog.bin: ")


def test_fixed_cores_and_node_cores_apply_to_every_task():
    tasks = parse_commandlines("./a\n./b\n", "cmds", CoresSpec("fixed", 4))
    assert [(t.cores, t.whole_node) for t in tasks] == [(4, False), (4, False)]
    tasks = parse_commandlines("./a\n./b\n", "cmds", CoresSpec("node"))
    assert all(t.whole_node for t in tasks)


# -- cores="file" ----------------------------------------------------------------
def test_file_cores_prefix_gives_per_task_cores():
    text = "# sizes\n4,./wide PYL_ID\n1,./narrow\n  2 ,  ./mid a,b\n"
    tasks = parse_commandlines(text, "cmds", FILE)
    assert [(t.id, t.cores, t.command, t.line) for t in tasks] == [
        (0, 4, "./wide 0", 2),
        (1, 1, "./narrow", 3),
        (2, 2, "./mid a,b", 4),
    ]
    assert not any(t.whole_node for t in tasks)


@pytest.mark.parametrize(
    ("line", "problem"),
    [
        ("0,./prog", "must be a whole number from 1 to 10,000,000, not '0'"),
        ("-3,./prog", "from 1 to"),
        ("10000001,./prog", "from 1 to 10,000,000, not '10000001'"),
        ("99999999999999999999999,./prog", "from 1 to"),
        ("four,./prog", "must be a whole number"),
        ("2.5,./prog", "must be a whole number"),
        ("+4,./prog", "must be a whole number"),
        (",./prog", "must be a whole number"),
        ("./prog without count", "missing 'N,'"),
        ("4,", "no command"),
        ("4,   ", "no command"),
    ],
)
def test_bad_core_prefix_names_source_and_line(line, problem):
    text = f"1,./ok\n# comment\n{line}\n1,./never\n"
    with pytest.raises(InputError) as info:
        parse_commandlines(text, "sweep.txt", FILE)
    err = info.value
    assert str(err).startswith("sweep.txt:3: ")
    assert problem in str(err)
    assert (err.source, err.line) == ("sweep.txt", 3)
    assert err.exit_status == EXIT_BAD_INPUT


def test_bad_prefix_on_last_line_without_newline_names_that_line():
    with pytest.raises(InputError) as info:
        parse_commandlines("1,./a\r\n2,./b\r\nx,./c", "f", FILE)
    assert info.value.line == 3


def test_split_core_prefix_directly():
    assert split_core_prefix("16, mpirun ./x", "s", 1) == (16, "mpirun ./x")
    with pytest.raises(InputError, match=r"^s:9: "):
        split_core_prefix("nope", "s", 9)


# -- CoresSpec.parse -----------------------------------------------------------
@pytest.mark.parametrize(
    ("value", "kind", "count"),
    [
        (1, "fixed", 1),
        (4, "fixed", 4),
        ("4", "fixed", 4),
        (" 12 ", "fixed", 12),
        ("node", "node", 1),
        ("NODE", "node", 1),
        ("file", "file", 1),
        (" File ", "file", 1),
    ],
)
def test_cores_spec_parse_good_values(value, kind, count):
    spec = CoresSpec.parse(value)
    assert (spec.kind, spec.count) == (kind, count)


@pytest.mark.parametrize(
    "value", [0, -1, "0", "-4", "four", "2.5", 2.5, "", None, "nodes", True, False, 10_000_001, "99999999999", [4]]
)
def test_cores_spec_parse_bad_values(value):
    with pytest.raises(ValueError, match=r"^must be a whole number from 1 to 10,000,000, 'node' or 'file', not "):
        CoresSpec.parse(value)


def test_cores_spec_parse_passes_spec_through_and_str_round_trips():
    spec = CoresSpec("fixed", 3)
    assert CoresSpec.parse(spec) is spec
    for value in ("7", "node", "file"):
        assert str(CoresSpec.parse(value)) == value
        assert CoresSpec.parse(str(CoresSpec.parse(value))) == CoresSpec.parse(value)


# -- schedule="blockN" (PyLauncher's blocks) ------------------------------------
def test_blocks_join_consecutive_lines_with_and_and_keep_each_lines_own_pyl_id():
    text = "# header\necho PYL_ID\necho PYLTID\n\necho PYL_ID\necho PYL_ID\necho PYL_ID\n"
    tasks = parse_commandlines(text, "cmds", ONE, block=2)
    assert commands(tasks) == ["echo 0 && echo 1", "echo 2 && echo 3", "echo 4"], "the last block is shorter"
    assert [t.id for t in tasks] == [0, 1, 2], "tasks are numbered by block"
    assert [t.line for t in tasks] == [2, 5, 7], "a block is where its first line is"


@pytest.mark.parametrize(
    ("lines", "output", "status"),
    [
        (["echo ran 0 #first", "echo ran 1 #second"], "ran 0\nran 1\n", 0),  # (the README's own lines end in #N)
        (["false", "echo a || echo b"], "", 1),  # the block stops at its first failure, whatever the next line holds
        (["false", "echo a; echo b"], "", 1),
        (["echo 'it''s' \"#\" $((2+2))", "echo `echo q`"], "its # 4\nq\n", 0),
        (["sleep 0 &", "wait; echo after"], "after\n", 0),  # (joined bare: a syntax error)
        (["cd /", "pwd"], "/\n", 0),  # one shell: a cd carries over, as with PyLauncher's plain &&
        (["echo it\\'s", "echo x | tr x y"], "it's\ny\n", 0),
    ],
)
def test_every_line_of_a_block_runs_as_it_would_alone_and_the_block_stops_at_the_first_failure(lines, output, status):
    """PyLauncher joins a block's lines with a bare ``&&``: ``run #1 && run #2`` ran only the first
    (the rest was a comment: a sweep that lost lines and said nothing), and ``false && a || b`` ran b."""
    (task,) = parse_commandlines("\n".join(lines) + "\n", "cmds", ONE, block=len(lines))
    done = subprocess.run(["/bin/sh", "-c", task.command], capture_output=True, text=True)
    assert (done.stdout, done.returncode, done.stderr) == (output, status, "")


def test_plain_lines_join_a_block_as_pylauncher_joins_them():
    """Only a line with a shell operator goes through ``eval``: the common block reads as it did."""
    (task,) = parse_commandlines('./a --x 1 > out\necho "a b" $HOME\n', "cmds", ONE, block=2)
    assert task.command == './a --x 1 > out && echo "a b" $HOME'


def test_a_block_needs_the_most_cores_any_of_its_lines_asks_for():
    tasks = parse_commandlines("1,./a\n3,./b\n2,./c\n", "cmds", FILE, block=2)
    assert [(t.cores, t.command) for t in tasks] == [(3, "./a && ./b"), (2, "./c")]
    node = parse_commandlines("./a\n./b\n", "cmds", CoresSpec("node"), block=3)
    assert len(node) == 1 and node[0].whole_node


@pytest.mark.parametrize("block", [1, 200])
def test_block_of_one_or_of_more_than_the_file_holds(block):
    tasks = parse_commandlines("./a\n./b\n./c\n", "cmds", ONE, block=block)
    assert len(tasks) == (3 if block == 1 else 1)
    assert list(tasks)[-1].command == ("./c" if block == 1 else "./a && ./b && ./c")


def test_a_bad_line_inside_a_block_is_named_by_its_own_line():
    with pytest.raises(InputError, match=r"^cmds:3: missing 'N,'"):
        parse_commandlines("1,./a\n1,./b\n./c\n", "cmds", FILE, block=2)


# -- expected times (--expected-time) -------------------------------------------------
def test_expected_times_per_line_come_after_the_core_count():
    text = "4,1:00:00,./big\n1, 90 ,./small\n2,-,./unknown\n"
    tasks = parse_commandlines(text, "cmds", FILE, expected="file")
    assert [(t.cores, t.expected, t.command) for t in tasks] == [
        (4, 3600.0, "./big"),
        (1, 90.0, "./small"),
        (2, None, "./unknown"),
    ]


def test_expected_times_per_line_alone_in_slurms_notation_or_seconds():
    text = "10:00,./a x,y\n2-00:00:00,./b\n0.5,./c\n"
    tasks = parse_commandlines(text, "cmds", ONE, expected="file")
    assert [(t.expected, t.command) for t in tasks] == [(600.0, "./a x,y"), (172800.0, "./b"), (0.5, "./c")]


def test_one_expected_time_for_every_task():
    tasks = parse_commandlines("./a\n./b\n", "cmds", ONE, expected=30.0)
    assert [t.expected for t in tasks] == [30.0, 30.0]
    assert [t.expected for t in parse_commandlines("./a\n", "cmds", ONE)] == [None]


@pytest.mark.parametrize(
    ("text", "cores", "problem"),
    [
        ("./prog", ONE, "missing 'T,' expected time"),
        ("abc,./a", ONE, "bad expected time before ',': must be seconds or [[D-]HH:]MM:SS, not 'abc'"),
        ("0,./a", ONE, "bad expected time before ',': must be greater than 0"),
        ("-0:30,./a", ONE, "bad expected time before ',': must be greater than 0"),
        (
            "400-00:00:00,./a",
            ONE,
            "bad expected time before ',': must be greater than 0 and at most 31,536,000 s (365 days)",
        ),
        ("10,", ONE, "no command after the expected time"),
        ("4,./a", FILE, "missing 'T,' expected time"),
    ],
)
def test_a_bad_expected_time_names_the_file_and_line(text, cores, problem):
    with pytest.raises(InputError) as info:
        parse_commandlines(f"# sweep\n{text}\n", "sweep.txt", cores, expected="file")
    assert str(info.value).startswith("sweep.txt:2: ") and problem in str(info.value)
    assert info.value.exit_status == EXIT_BAD_INPUT


def test_a_blocks_expected_time_is_the_sum_of_its_lines_or_none():
    tasks = parse_commandlines("10,./a\n20,./b\n-,./c\n5,./d\n", "cmds", ONE, block=2, expected="file")
    assert [t.expected for t in tasks] == [30.0, None]
