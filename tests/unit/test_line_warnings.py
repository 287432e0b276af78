"""Lines that run, but not as their writer meant, are said once at the start (``rank0.warn_about_lines``)."""

from __future__ import annotations

import pytest

from mpilauncher.rank0 import warn_about_lines


@pytest.mark.parametrize(
    ("text", "mpi", "said"),
    [
        ("echo a \\\necho b\n", False, ["cl:1: ends in a backslash, but each line is a task of its own"]),
        ("# a comment \\\ntrue\necho x\\\\\nls \\\n", False, ["cl:4: ends in a backslash"]),  # (not 1, not 3)
        ("true\n# PYL_MPIEXEC in a comment\nPYL_MPIEXEC ./prog\n", False, ["cl:3: PYL_MPIEXEC stands for the MPI"]),
        ("PYL_MPIEXEC ./prog\n", True, []),  # an MPI sweep: the starter goes there
        ("a \\\nPYL_MPIEXEC b\n", False, ["cl:1: ends in a backslash", "cl:2: PYL_MPIEXEC stands for"]),
        ("echo fine\n" * 1000, False, []),
        # $PYL_ID_out is the shell's variable PYL_ID_out: every task would write the same (empty) name
        (
            "run > $PYL_ID.out\nrun > ${PYL_ID}_x\nrun > PYL_ID_x\nrun > $PYL_ID_x\n",
            False,
            [
                "cl:4: $PYL_ID_x is the shell's variable PYL_ID_x, which nothing sets (every task gets the same empty"
                " text), not the task number PYL_ID followed by _x: write ${PYL_ID}_x"
            ],
        ),
        ("# $PYL_IDx in a comment\nrun $PYLTID2\nrun $PYL_ID3\n", False, ["cl:2: $PYLTID2 is the shell's variable"]),
        ("run $PYL_IDé $PYL_ID-x $PYL_ID\n", False, []),  # (a shell's names are ASCII letters, digits and _)
        (
            "a $PYL_ID_b \\\nPYL_MPIEXEC c\n",
            False,
            ["cl:1: ends in a backslash", "cl:1: $PYL_ID_b", "cl:2: PYL_MPIEXEC"],
        ),
    ],
)
def test_each_kind_is_said_once_at_its_first_line(text: str, mpi: bool, said: list[str], capsys) -> None:
    warn_about_lines(text, "cl", mpi)
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == len(said), lines
    for line, start in zip(lines, said, strict=True):
        assert line.startswith(f"mpilauncher: warning: {start}"), line
