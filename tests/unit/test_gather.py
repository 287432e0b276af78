"""A lane's record files (execution/gather.py): what the executors append, and what ``output`` reads back."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from mpilauncher.execution.gather import Stream, iter_output, locate, read_record, records
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
