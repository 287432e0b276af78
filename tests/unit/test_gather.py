"""A lane's record files (execution/gather.py): what the executors append, and what ``output`` reads back."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from mpilauncher.execution import gather
from mpilauncher.execution.gather import Finder, Stream, iter_output, locate, read_record, records
from tests.conftest import ROOT


def test_records_of_both_kinds_come_back_whole_and_the_latest_attempt_wins(tmp_path: Path) -> None:
    lane = Stream(str(tmp_path / "output.n0"))
    lane.open("0")
    spool = os.open(tmp_path, os.O_TMPFILE | os.O_RDWR)
    os.write(spool, b"first attempt\n")
    lane.add_text(3, "exec", "echo 3\n", 10.0)
    lane.add_file(3, spool, 11.0)
    lane.add_text(3, "exec", "echo 3 again\n", 12.0)
    os.close(spool)
    lane.close()
    assert read_record(records(str(tmp_path), "exec")[3]) == b"echo 3 again\n"
    assert dict(iter_output(str(tmp_path), [3, 4])) == {3: b"first attempt\n", 4: None}


def test_per_task_exec_records_are_read_beside_exec_files(tmp_path: Path) -> None:
    """Per-task output keeps exec scripts in exec.<node>.<lane>; an exec<N> written later wins."""
    lane = Stream(str(tmp_path / "exec.n0"))
    lane.open("1")
    lane.add_text(1, "exec", "sleep 1\n", 1.0)
    lane.add_text(2, "exec", "false\n", 1.0)
    lane.close()
    (tmp_path / "exec2").write_text("false\n# written at its end\n")
    assert read_record(locate(str(tmp_path), 1, "exec")) == b"sleep 1\n"
    assert read_record(locate(str(tmp_path), 2, "exec")).endswith(b"# written at its end\n")
    assert locate(str(tmp_path), 1, "out") is None


WRITER = """
import os, resource, sys
from mpilauncher.execution.gather import Stream
lane = Stream(sys.argv[1])
lane.open("0")
lane.add_text(0, "exec", "a" * 100, 1.0)
resource.setrlimit(resource.RLIMIT_FSIZE, (150, resource.RLIM_INFINITY))  # a quota, met mid-record
try:
    lane.add_text(1, "exec", "b" * 100, 2.0)
except OSError as err:
    print("refused:", err.strerror)
resource.setrlimit(resource.RLIMIT_FSIZE, (resource.RLIM_INFINITY, resource.RLIM_INFINITY))  # space again
lane.add_text(2, "exec", "c" * 30, 3.0)
"""


def test_a_record_cut_short_by_a_full_disk_does_not_shift_the_ones_after_it(tmp_path: Path) -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run([sys.executable, "-c", WRITER, str(tmp_path / "exec.n0")], env=env, capture_output=True,
                          text=True, timeout=60)  # fmt: skip
    assert done.returncode == 0 and "refused: File too large" in done.stdout, done.stdout + done.stderr
    found = records(str(tmp_path), "exec")
    assert sorted(found) == [0, 2], "the cut-short record is not indexed"
    assert read_record(found[0]) == b"a" * 100 and read_record(found[2]) == b"c" * 30


def test_a_sweeps_workdirs_are_searched_together_and_the_latest_output_wins(tmp_path: Path) -> None:
    """A sweep resumed into a new workdir (b), then back into its first (a): each task's latest output,
    wherever it is; one a workdir lacks is found in another."""
    first, second = tmp_path / "a", tmp_path / "b"
    first.mkdir(), second.mkdir()
    for where, task_id, text, when in ((first, 0, "a: 0", 100), (first, 1, "a: 1, first run", 100),
                                       (second, 1, "b: 1, second run", 200), (second, 2, "b: 2", 200)):  # fmt: skip
        (where / f"out{task_id}").write_text(text)
        os.utime(where / f"out{task_id}", (when, when))
    finder = Finder([str(first), str(second)])
    found = {task_id: finder.find(task_id) for task_id in range(4)}
    assert found[3] is None
    assert {task_id: (read_record(f[0]).decode(), Path(f[1]).name) for task_id, f in found.items() if f} == {
        0: ("a: 0", "a"),
        1: ("b: 1, second run", "b"),
        2: ("b: 2", "b"),
    }


def test_a_record_is_read_a_piece_at_a_time_and_a_cut_short_one_says_so(tmp_path):
    data = tmp_path / "output.n.1.0"
    data.write_bytes(b"xxhello world")
    record = gather.Record(str(data), 2, 11, 0.0)
    pieces = list(gather.read_chunks(record, chunk=4))
    assert pieces == [b"hell", b"o wo", b"rld"], "never more than a chunk in memory"
    assert gather.read_record(record, limit=5) == b"world"
    cut = gather.Record(str(data), 2, 20, 0.0)
    read = []
    with pytest.raises(gather.CutShort, match="cut short: 11 of its 20 bytes are in"):
        read.extend(gather.read_chunks(cut, chunk=4))
    assert b"".join(read) == b"hello world", "what is there comes first"
