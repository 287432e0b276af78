"""One writer per sweep: an exclusive lock file beside the queuestate.

Why: two launchers on one sweep (a resume while the first run is still
alive, a job script submitted twice, two new runs started at the same
instant) both run every remaining task into the same workdir and write the
same journal; after a crash the snapshot comes from one run and the journal
from the other, and completed tasks are forgotten.  A sweep's state must
have exactly one writer.

Why a lock *file* put in place by ``link`` (of a file already written: see
``SweepLock._create``; ``O_CREAT | O_EXCL`` where there are no hard links) and
not ``fcntl``/``flock``: on NFS and Lustre those are local to one client or
need a mount option (``-o flock``), and a sweep's queuestate usually lives on
such a file system, written by jobs on different nodes.  Exclusive creation is
atomic on all of them.  The price is that a lock outlives a process killed by ``kill -9``, so
the file says who holds it (host, pid, the process's start time, boot id,
Slurm job) and a lock is *stale*, and taken over, when its holder provably
no longer runs:

- same host: the boot id differs (rebooted), or the pid is gone, or the pid
  now belongs to another process (its start time differs);
- another host: the lock names a Slurm job that is no longer running
  (``squeue``), the usual case of a job killed at its time limit and
  resumed on other nodes; or it names this very job in an earlier run of it
  (``SLURM_RESTART_COUNT`` differs): a job requeued after a node failure
  runs its script again elsewhere, and Slurm ends every process of the
  earlier run before it requeues the job;
- otherwise the holder may be alive on a host we cannot look into: refuse,
  and let the user break the lock explicitly (``--break-lock``).

Two launchers that find the same stale lock must not both take it over (one
could remove the lock the other has just created): the removal happens
under a ``flock`` on the lock's directory, after checking that the file
still holds the stale holder.  Both then race for the exclusive create
again, and exactly one wins.
"""

from __future__ import annotations

import errno
import fcntl
import json
import os
import time
from collections.abc import Callable
from pathlib import Path

from mpilauncher.errors import InputError
from mpilauncher.procfs import START_TIME, stat_fields
from mpilauncher.records import asdict, record

SUFFIX = ".lock"
#: What ``link`` says on a file system without hard links (FAT, some FUSE mounts): the lock is then made in place.
_NO_HARD_LINKS = frozenset({errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EMLINK, errno.ENOSYS})


def lock_path(state_path: Path) -> Path:
    return state_path.with_name(state_path.name + SUFFIX)


@record(frozen=True)
class Holder:
    """Who holds a lock: enough to tell, from the same host, whether it still runs."""

    host: str
    pid: int
    pid_start: int  # the process's start time in clock ticks since boot (/proc/PID/stat): pids are reused
    boot: str  # /proc/sys/kernel/random/boot_id: a reboot ends every holder
    job: str  # Slurm job id, "" outside Slurm
    since: str  # when the lock was taken, for people
    token: str = ""  # tells two locks of one process apart: release removes only its own
    restart: str = ""  # the Slurm job's SLURM_RESTART_COUNT ("" before its first requeue)

    @classmethod
    def me(cls, job: str | None) -> Holder:
        pid = os.getpid()
        return cls(os.uname().nodename, pid, process_start(pid), boot_id(), job or "",
                   time.strftime("%Y-%m-%d %H:%M:%S"), os.urandom(6).hex(),
                   os.environ.get("SLURM_RESTART_COUNT", "") if job else "")  # fmt: skip

    def to_text(self) -> str:
        return json.dumps(asdict(self)) + "\n"

    @classmethod
    def from_text(cls, text: str) -> Holder | None:
        try:
            data = json.loads(text)
            return cls(str(data["host"]), int(data["pid"]), int(data["pid_start"]), str(data["boot"]),
                       str(data.get("job", "")), str(data.get("since", "?")), str(data.get("token", "")),
                       str(data.get("restart", "")))  # fmt: skip
        except (ValueError, KeyError, TypeError):
            return None

    def describe(self) -> str:
        job = f", Slurm job {self.job}" if self.job else ""
        return f"pid {self.pid} on {self.host}{job}, since {self.since}"


def process_start(pid: int) -> int:
    """The start time of process ``pid`` in clock ticks since boot; -1 if it does not exist, or has ended
    and waits only to be reaped (a zombie: a failed ``mpiexec`` run's rank 0 stayed one for seconds,
    and the resume of ``mpiexec ... || mpiexec ... --resume`` was refused: "in use by pid ...")."""
    fields = stat_fields(pid)
    if fields is None or len(fields) <= START_TIME or fields[0] in (b"Z", b"X"):
        return -1
    return int(fields[START_TIME])


def boot_id() -> str:
    try:
        with open("/proc/sys/kernel/random/boot_id") as boot:
            return boot.read().strip()
    except OSError:
        return ""


def slurm_job_running(job: str) -> bool | None:
    """Is Slurm job ``job`` pending or running?  None when Slurm cannot be asked."""
    import subprocess  # only here: a stale lock from another host is rare, start-up is not

    try:
        result = subprocess.run(["squeue", "-h", "-j", job, "-o", "%T"], capture_output=True, text=True, timeout=20)
    except (OSError, subprocess.SubprocessError):
        return None
    if result.returncode != 0:
        return False if "Invalid job id" in result.stderr else None
    return result.stdout.strip() not in ("", "COMPLETED", "CANCELLED", "FAILED", "TIMEOUT", "NODE_FAIL", "PREEMPTED")


def is_stale(holder: Holder, here: Holder, job_running: Callable[[str], bool | None] = slurm_job_running) -> bool:
    """True when ``holder`` provably no longer runs (see the module docstring)."""
    if holder.host == here.host:
        if holder.boot and here.boot and holder.boot != here.boot:
            return True
        return process_start(holder.pid) != holder.pid_start
    if holder.job and holder.job != here.job:
        return job_running(holder.job) is False
    return bool(holder.job) and holder.restart != here.restart  # (this job, an earlier run of it: requeued since)


class SweepLock:
    """The exclusive lock of one queuestate, held for a whole run."""

    def __init__(self, state_path: Path, job: str | None = None) -> None:
        self.path = lock_path(state_path)
        self.state_path = state_path
        self.me = Holder.me(job)
        self._text = self.me.to_text()
        self.held = False
        self.took_over: Holder | None = None

    def acquire(self, break_lock: bool = False) -> None:
        """Take the lock, or raise :class:`InputError` naming its holder.

        Creating the lock file is also the first write next to the queuestate:
        a directory where nothing can be written fails here, before anything
        else has been created.
        """
        for _ in range(5):
            try:
                created = self._create()
            except OSError as err:
                raise InputError(
                    f"cannot write the queuestate here: {err.strerror or err} (creating {self.path.name})",
                    str(self.state_path),
                ) from None
            if not created:
                self._clear_stale(break_lock)
                continue
            self.held = True
            _held.add(self)
            return
        raise InputError("cannot take the lock (it keeps changing hands): is another launcher starting?",
                         str(self.path))  # fmt: skip

    def _create(self) -> bool:
        """Put the lock file in place with our text already in it; False if a lock is there.

        Why not create it and then write it: between the two, another launcher started at the same
        instant found a lock without a holder in it, and said "is not an mpilauncher lock" (a test
        of two runs started together failed so, now and then), or with ``--break-lock`` removed it
        and ran too.  So the text goes into a file of our own first, and a hard link gives it the
        lock's name: ``link`` fails where the name exists, atomically, on NFS and Lustre as well.  Over
        NFS a link that was made can still say it failed (its reply lost, the retried call finds the
        name taken): then our file has two links, and the lock is ours (as open(2) advises).  Where
        the file system has no hard links, the lock is created and written as before."""
        aside = self.path.with_name(f".mpilauncher-lock-{self.me.token}")  # (short: whatever the queuestate's name)
        fd = os.open(aside, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        try:
            self._write_and_close(fd)
            os.link(aside, self.path)
        except FileExistsError:
            return os.stat(aside).st_nlink == 2
        except OSError as err:
            if err.errno not in _NO_HARD_LINKS:
                raise
            return self._create_in_place()
        finally:
            aside.unlink(missing_ok=True)
        return True

    def _create_in_place(self) -> bool:
        """The lock file created, then written (a file system without hard links); False if a lock is there."""
        try:
            fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        except FileExistsError:
            return False
        try:
            self._write_and_close(fd)
        except OSError:
            self.path.unlink()  # ours: we have just created it
            raise
        return True

    def _write_and_close(self, fd: int) -> None:
        """Our holder into the file just created (on disk before anyone may read it); closed whatever happens."""
        try:
            os.write(fd, self._text.encode())
            os.fsync(fd)
        finally:
            os.close(fd)

    def release(self) -> None:
        """Remove the lock if it is still ours (``--break-lock`` may have handed it to another run)."""
        if self.held:
            self.held = False
            _held.discard(self)
            self._remove_if_mine()

    def __enter__(self) -> SweepLock:
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()

    # -- internals ----------------------------------------------------------
    def _clear_stale(self, break_lock: bool) -> None:
        """Remove the existing lock if its holder no longer runs (or on request); else refuse."""
        text = read_lock(self.path)
        if text is None:
            return  # released meanwhile: try again
        holder = Holder.from_text(text)
        if holder is None:
            problem = "is not an mpilauncher lock"
        elif break_lock or is_stale(holder, self.me):
            problem = ""
        else:
            elsewhere = holder.host != self.me.host
            raise InputError(
                f"the sweep is in use by another mpilauncher ({holder.describe()}): one sweep has one writer;"
                " wait for it to end"
                + (f", or if it is gone, break its lock with --break-lock (it ran on {holder.host},"
                   " which this host cannot look into)" if elsewhere else "")
                + f" [{self.path}]",
                str(self.state_path),
            )  # fmt: skip
        if problem and not break_lock:
            raise InputError(f"{problem}: remove it if no launcher runs on this sweep, or use --break-lock",
                             str(self.path))  # fmt: skip
        with _directory_lock(self.path.parent):
            if read_lock(self.path) == text:  # still the stale holder's: nobody took over before us
                self.path.unlink()
                self.took_over = holder

    def _remove_if_mine(self) -> None:
        try:
            if read_lock(self.path) == self._text:
                self.path.unlink()
        except OSError:
            pass


#: The locks this process holds: what :func:`release_held` gives back.
_held: set[SweepLock] = set()


def release_held() -> None:
    """Give back every lock this process holds, for a process about to end without unwinding (an MPI job
    aborted while its main thread is stuck inside MPI, see launch.py): its run wrote its state, and a lock
    left behind would make the next run take it over (or, from another host, ask for --break-lock)."""
    for lock in list(_held):
        lock.release()


def read_lock(path: Path) -> str | None:
    """The lock file's text, or None when there is none."""
    try:
        return path.read_text(errors="replace")
    except FileNotFoundError:
        return None
    except OSError as err:
        raise InputError(f"cannot read the lock: {err.strerror or err}", str(path)) from None


def still_held(holder: Holder | None) -> bool:
    """Whether a lock's ``holder`` may still run, as a reader of the sweep (``--status``, ``report``) tells:
    without asking Slurm about a job on another host (it counts as running)."""
    return holder is not None and not is_stale(holder, Holder.me(None), job_running=lambda job: None)


def current_holder(state_path: Path) -> Holder | None:
    """Who holds the lock of a queuestate now, if anyone (for ``--status``)."""
    try:
        text = read_lock(lock_path(state_path))
    except InputError:
        return None
    return Holder.from_text(text) if text else None


class _directory_lock:  # noqa: N801 (used as a context manager)
    """A ``flock`` on a directory, serialising stale-lock removal among launchers of one host.

    Best effort: where the file system refuses ``flock`` on a directory, go on
    without it (the window it closes is two launchers finding the same stale
    lock within microseconds of each other).
    """

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.fd = -1

    def __enter__(self) -> None:
        try:
            self.fd = os.open(self.directory, os.O_RDONLY)
            fcntl.flock(self.fd, fcntl.LOCK_EX)
        except OSError:
            pass

    def __exit__(self, *exc: object) -> None:
        if self.fd >= 0:
            os.close(self.fd)  # closing releases the flock
