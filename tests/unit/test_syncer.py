"""The journal's fsync runs beside rank 0's loop: the loop never waits for the disk, an fsync that
fails is still reported, and the file is never closed under a running fsync."""

from __future__ import annotations

import errno
import os
import signal
import threading
from pathlib import Path

import pytest

from mpilauncher.errors import LauncherFailure
from mpilauncher.persistence import syncer
from mpilauncher.persistence.journal import JournalWriter

WAIT = 10.0  # seconds a test waits for the other thread before it fails


class SlowDisk:
    """os.fsync as a disk that takes until the test says: records which thread called, on which file."""

    def __init__(self, fail: OSError | None = None) -> None:
        self.release = threading.Event()
        self.entered = threading.Event()
        self.calls: list[tuple[int, int]] = []  # (thread ident, fd)
        self.fail = fail
        self.real = os.fsync

    def __call__(self, fd: int) -> None:
        self.calls.append((threading.get_ident(), fd))
        self.entered.set()
        assert self.release.wait(WAIT), "the test never released the fsync"
        os.fstat(fd)  # the file is still open while its fsync runs
        if self.fail is not None:
            raise self.fail
        self.real(fd)


@pytest.fixture
def slow_disk(monkeypatch: pytest.MonkeyPatch) -> SlowDisk:
    disk = SlowDisk()
    monkeypatch.setattr(syncer, "fsync", disk)  # the journal's fsyncs, not those of its creation
    return disk


def test_the_loop_goes_on_while_the_journal_is_fsynced(tmp_path: Path, slow_disk: SlowDisk):
    writer = JournalWriter(tmp_path / "j", "r", fsync_interval=0.5)
    writer.started(1, 5.0, "h", (0,))
    writer.flush(now=100.0)  # the interval has passed: an fsync begins...
    assert slow_disk.entered.wait(WAIT)
    assert slow_disk.calls[0][0] != threading.get_ident()  # ...in another thread
    writer.finished(1, 0, 5.0, 1.0)
    writer.flush(now=101.0)  # the disk has not answered: the lines go to the OS all the same
    assert (tmp_path / "j").read_text().count("\n") == 3
    assert len(slow_disk.calls) == 1  # one fsync in flight at most
    slow_disk.release.set()
    writer.close()


def test_an_fsync_that_failed_stops_the_run_at_the_next_turn(tmp_path: Path, slow_disk: SlowDisk):
    slow_disk.fail = OSError(errno.EIO, "Input/output error")
    slow_disk.release.set()
    writer = JournalWriter(tmp_path / "j", "r", fsync_interval=0.5)
    writer.flush(now=100.0)
    writer._sync.wait()
    with pytest.raises(LauncherFailure, match=r"j: cannot write journal: Input/output error"):
        writer.flush(now=100.1)
    slow_disk.fail = None
    writer.flush(now=100.2)  # said once
    writer.close()


def test_close_waits_for_the_running_fsync_before_closing_the_file(tmp_path: Path, slow_disk: SlowDisk):
    writer = JournalWriter(tmp_path / "j", "r", fsync_interval=0.5)
    writer.flush(now=100.0)
    assert slow_disk.entered.wait(WAIT)
    closer = threading.Thread(target=writer.close)
    closer.start()
    closer.join(0.2)
    assert closer.is_alive()  # held by the fsync (which checks that its file is still open)
    slow_disk.release.set()
    closer.join(WAIT)
    assert not closer.is_alive()
    assert not writer._sync._thread.is_alive()


def test_a_forced_sync_is_done_when_flush_returns(tmp_path: Path, slow_disk: SlowDisk):
    slow_disk.release.set()
    writer = JournalWriter(tmp_path / "j", "r", fsync_interval=1000.0)
    writer.flush(now=0.0)  # the first turn begins one in the background
    writer.started(1, 5.0, "h", (0,))
    writer.flush(now=1.0, force_sync=True)
    assert slow_disk.calls[-1][0] == threading.get_ident()  # the last one in this thread, after the other
    assert len(slow_disk.calls) == 2
    writer.close()


def test_signals_reach_the_loops_thread_not_the_fsync_thread(tmp_path: Path):
    writer = JournalWriter(tmp_path / "j", "r", fsync_interval=1.0)
    try:
        thread = writer._sync._thread
        status = Path(f"/proc/self/task/{thread.native_id}/status").read_text()
        blocked = int(next(line for line in status.splitlines() if line.startswith("SigBlk:")).split()[1], 16)
        for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGURG, signal.SIGUSR1, signal.SIGCHLD):
            assert blocked >> (signum - 1) & 1, signum
        assert signal.SIGTERM not in signal.pthread_sigmask(signal.SIG_BLOCK, ())  # the caller's mask is as it was
    finally:
        writer.close()


def test_an_unexpected_error_in_the_fsync_thread_is_raised_and_never_hangs_the_close(
    tmp_path: Path, slow_disk: SlowDisk
):
    slow_disk.fail = RuntimeError("not an OSError")
    slow_disk.release.set()
    writer = JournalWriter(tmp_path / "j", "r", fsync_interval=0.5)
    writer.flush(now=100.0)
    writer._sync.wait()
    with pytest.raises(RuntimeError, match="not an OSError"):
        writer.flush(now=100.1)
    slow_disk.fail = None
    writer.flush(now=101.0)  # the thread still serves
    closer = threading.Thread(target=writer.close)
    closer.start()
    closer.join(WAIT)
    assert not closer.is_alive() and len(slow_disk.calls) == 2
