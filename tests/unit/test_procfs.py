"""/proc/<pid>/stat as the lock, the wake-up of parked ranks and every rank's start read it."""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from pathlib import Path

from mpilauncher.persistence.lock import process_start
from mpilauncher.procfs import start_ticks, stat_fields
from mpilauncher.transport.wake import start_time


def test_a_command_name_with_spaces_and_parentheses_does_not_shift_the_fields(tmp_path: Path) -> None:
    """The name (field 2) is the program's file name, whatever it holds: the fields are counted from its
    last ')'.  Read from the front, ``sleep) (x 1`` would put the state where the start time is."""
    program = tmp_path / "sl) (x 1"
    shutil.copy(shutil.which("sleep") or "/bin/sleep", program)
    child = subprocess.Popen([str(program), "30"])
    try:
        deadline, stat = time.monotonic() + 10, Path(f"/proc/{child.pid}/stat")
        while b"(x" not in stat.read_bytes():  # (until the child has exec'd the copy)
            assert time.monotonic() < deadline, "the copy never ran under its own name"
            time.sleep(0.01)
        fields = stat_fields(child.pid)
        assert fields is not None and fields[0] in (b"S", b"R")  # field 3: the state
        assert int(fields[1]) == os.getpid()  # field 4: the parent
        ours = start_ticks(os.getpid())
        assert ours is not None and start_ticks(child.pid) >= ours  # started after us
        assert start_time(child.pid) == str(start_ticks(child.pid))
        assert process_start(child.pid) == start_ticks(child.pid)
    finally:
        child.kill()
        child.wait()


def test_a_process_that_is_gone_has_no_fields() -> None:
    child = subprocess.Popen(["true"])
    child.wait()
    assert stat_fields(child.pid) is None and start_ticks(child.pid) is None
    assert start_time(child.pid) == "" and process_start(child.pid) == -1
