"""The sweep lock: who holds it, and when a holder provably no longer runs."""

from __future__ import annotations

import errno
import os
import subprocess
import sys
from pathlib import Path

import pytest

from mpilauncher import records
from mpilauncher.errors import InputError
from mpilauncher.persistence.lock import Holder, SweepLock, is_stale, lock_path, process_start, release_held


def here(**changes) -> Holder:
    return records.replace(Holder.me(""), **changes)


def never_asked(job: str) -> bool | None:
    raise AssertionError("Slurm must not be asked about a holder on this host")


def test_a_live_process_on_this_host_holds_its_lock() -> None:
    assert not is_stale(here(), here(), never_asked)


def test_a_dead_pid_or_a_reused_one_or_another_boot_is_stale() -> None:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    assert is_stale(here(pid=child.pid, pid_start=12345), here(), never_asked), "pid gone"
    assert is_stale(here(pid_start=process_start(os.getpid()) + 1), here(), never_asked), "pid reused"
    assert is_stale(here(boot="another-boot"), here(), never_asked), "rebooted"


def test_a_holder_that_ended_but_is_not_reaped_yet_is_stale() -> None:
    """A user walk: after a failed ``mpiexec`` run, its rank 0 stayed a zombie (its parent gone, reaped by
    init a few seconds later); ``mpiexec ... || mpiexec ... --resume`` was refused: "in use by pid ..."."""
    import time

    child = subprocess.Popen([sys.executable, "-c", "pass"])
    started = process_start(child.pid)
    while (Path(f"/proc/{child.pid}/stat").read_bytes().rpartition(b")")[2].split() or [b""])[0] != b"Z":
        time.sleep(0.01)  # (it has exited; nobody has waited for it: a zombie)
    try:
        assert is_stale(here(pid=child.pid, pid_start=started), here(), never_asked), "a zombie runs no sweep"
    finally:
        child.wait()


@pytest.mark.parametrize(
    ("job", "running", "stale"),
    [("77", False, True), ("77", True, False), ("77", None, False), ("", False, False)],
    ids=["job ended", "job running", "Slurm cannot say", "no job recorded"],
)
def test_another_host_is_stale_only_when_its_job_has_provably_ended(job: str, running, stale: bool) -> None:
    holder = Holder("c999", 4242, 1, "b", job, "then")
    assert is_stale(holder, here(job="88"), lambda _: running) is stale


def test_the_same_job_on_another_host_may_still_run() -> None:
    holder = Holder("c999", 4242, 1, "b", "88", "then")
    assert not is_stale(holder, here(job="88"), lambda _: False)


def test_an_earlier_run_of_this_job_requeued_since_is_stale(monkeypatch) -> None:
    """Slurm requeues a job whose node failed (``--requeue``, or its JobRequeue default) and runs its script
    again on other nodes: the lock its first run left names this very job, which runs, and the requeued
    job was refused for good.  Slurm ended every process of that run before requeueing: another
    SLURM_RESTART_COUNT is another run."""
    monkeypatch.setenv("SLURM_RESTART_COUNT", "1")
    me = records.replace(Holder.me("88"), host="c101")
    assert me.restart == "1" and Holder.from_text(me.to_text()) == me
    first_run = Holder("c999", 4242, 1, "b", "88", "then")  # (no restart count: the job's first run)
    assert is_stale(first_run, me, never_asked)
    assert not is_stale(records.replace(first_run, restart="1"), me, never_asked), "the same run: may still run"


def test_acquire_release_and_a_second_acquire_is_refused(tmp_path: Path) -> None:
    state = tmp_path / "qs"
    with SweepLock(state) as first:
        first.acquire()
        assert lock_path(state).exists()
        with pytest.raises(InputError, match=r"in use by another mpilauncher \(pid \d+ on "):
            SweepLock(state).acquire()
    assert not lock_path(state).exists()


def test_release_leaves_a_lock_that_someone_broke_and_took(tmp_path: Path) -> None:
    state = tmp_path / "qs"
    first = SweepLock(state)
    first.acquire()
    second = SweepLock(state)
    second.acquire(break_lock=True)
    first.release()
    assert lock_path(state).exists(), "the lock now belongs to the second run"
    second.release()
    assert not lock_path(state).exists()


def test_a_lock_file_that_is_not_ours_is_refused_unless_broken(tmp_path: Path) -> None:
    state = tmp_path / "qs"
    lock_path(state).write_text("garbage\n")
    with pytest.raises(InputError, match="is not an mpilauncher lock"):
        SweepLock(state).acquire()
    lock = SweepLock(state)
    lock.acquire(break_lock=True)
    lock.release()


@pytest.mark.parametrize("break_lock", [False, True], ids=["plain", "--break-lock"])
def test_a_launcher_starting_while_another_writes_its_lock_never_finds_a_lock_without_a_holder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, break_lock: bool
) -> None:
    """Two runs started at the same instant: the second looks while the first is writing its holder into the
    lock.  It used to find the lock empty and say "is not an mpilauncher lock" -- or, given --break-lock,
    remove it and run beside the first, which went on writing into the removed file.  Now a lock has its
    holder from the moment it has its name: the second finds none yet and takes it, the first finds the
    second's and is told who holds it: exactly one runs."""
    state = tmp_path / "qs"
    first, second = SweepLock(state), SweepLock(state)
    write, refused = os.write, []

    def write_while_another_starts(fd: int, data: bytes) -> int:
        if first._text.encode() == data and not refused:  # (the first's write: the second arrives in the middle)
            refused.append("")
            second.acquire(break_lock)
        return write(fd, data)

    monkeypatch.setattr(os, "write", write_while_another_starts)
    with pytest.raises(InputError, match=r"in use by another mpilauncher \(pid \d+ on ") as err:
        first.acquire()
    monkeypatch.setattr(os, "write", write)
    assert second.held and not first.held, err.value
    assert lock_path(state).read_text() == second._text
    second.release()
    assert not lock_path(state).exists() and os.listdir(tmp_path) == [], "nothing left behind"


def test_on_a_file_system_without_hard_links_the_lock_is_made_in_place(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def no_hard_links(source, target) -> None:
        raise OSError(errno.EPERM, "Operation not permitted")

    monkeypatch.setattr(os, "link", no_hard_links)
    state = tmp_path / "qs"
    with SweepLock(state) as lock:
        lock.acquire()
        assert lock_path(state).read_text() == lock._text and os.listdir(tmp_path) == ["qs.lock"]
        with pytest.raises(InputError, match="in use by another mpilauncher"):
            SweepLock(state).acquire()
    assert os.listdir(tmp_path) == []


def test_a_link_made_whose_answer_said_it_failed_is_the_lock_taken(tmp_path: Path, monkeypatch) -> None:
    """NFS: the link is made, its reply lost, and the retried call answers that the name exists.  The lock
    is ours all the same (our file has two links): taken, not refused as someone else's."""
    link = os.link

    def made_but_said_exists(source, target) -> None:
        link(source, target)
        raise FileExistsError(errno.EEXIST, "File exists")

    monkeypatch.setattr(os, "link", made_but_said_exists)
    state = tmp_path / "qs"
    with SweepLock(state) as lock:
        lock.acquire()
        assert lock.held and lock_path(state).read_text() == lock._text
    assert os.listdir(tmp_path) == []


def test_a_queuestate_of_a_long_name_gets_its_lock(tmp_path: Path) -> None:
    """The lock's holder is written under a short name of its own first: a queuestate named near the file
    system's limit (255 bytes here, its lock 5 more) still gets its lock."""
    state = tmp_path / ("q" * 245)
    with SweepLock(state) as lock:
        lock.acquire()
        assert os.listdir(tmp_path) == [lock_path(state).name]
    assert os.listdir(tmp_path) == []


def test_release_held_gives_back_the_locks_this_process_holds(tmp_path: Path) -> None:
    """For a process about to end without unwinding (an MPI job aborted by rank 0's end watchdog)."""
    lock = SweepLock(tmp_path / "queuestate")
    lock.acquire()
    release_held()
    assert not lock.held and not lock_path(tmp_path / "queuestate").exists()
    release_held()  # nothing held: nothing to do
