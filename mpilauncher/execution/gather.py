"""Per-node output (``--output per-node``): a handful of files for any number of tasks.

Why: PyLauncher's ``out<N>`` and ``exec<N>`` make two files a task, and a sweep of
100,000 tasks leaves 200,000 small files -- each a create on the parallel file
system's metadata server, which is what HPC centres ask users not to do.

How: a task's stdout and stderr go to an *unnamed* file on the node's own disk
(``O_TMPFILE`` in the spool directory: ``$MPILAUNCHER_SPOOL``, else ``$TMPDIR``,
else ``/tmp``), which no directory lists and which vanishes when closed.  The task
writes there at full speed, with no launcher process in the path of its output
(no pipe: a launcher that dies never hands a task SIGPIPE).  When the task ends,
its runner (each executor process, a "lane") appends the whole file, in one
``sendfile``, to the lane's data file in the workdir, and one line to the lane's
index::

    output.<node>.<lane>            every task's output (and exec script), one after another
    output.<node>.<lane>.index      #mpilauncher-output 1
                                    <task> <kind> <offset> <length> <end>   (tab-separated)

``kind`` is ``out`` (its output) or ``exec`` (the command exactly as run, what
``exec<N>`` holds otherwise); ``end`` (seconds since the epoch) tells the latest
attempt of a task that ran more than once.  Per-task output uses the same format for
the exec scripts alone, in ``exec.<node>.<lane>``: ``exec<N>`` is written only for
the tasks that fail or run 10 s (see processes.EXEC_FILE_AFTER), so this is
where the script of every other task is kept.  So a task's output comes back with
one seek and one read, whole and in order, and the shared file system sees a few
large sequential appends instead of two creates a task.  The price: a running
task's output is in the workdir only once it ends, and what a task left running
writes after its main process ended is not kept.

The writer runs in the executor processes (standard library only); the reader
(:func:`records`, :func:`read_output`) serves ``python -m mpilauncher output`` and
``report``, and finds ``out<N>`` too, so one call reads either mode.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence

#: The first line of an index file.
INDEX_HEADER = "#mpilauncher-output 1\n"
INDEX_SUFFIX = ".index"
PREFIX = "output."
#: Per-task output: every task's exec script in ``exec.<node>.<pid>.<lane>`` (the same format, ``exec``
#: records only), as ``exec<N>`` is written only for the tasks that fail or run a while.
EXEC_PREFIX = "exec."
#: Where a running task's output waits when no spool directory is named.
SPOOL_VARIABLE = "MPILAUNCHER_SPOOL"


def spool_directory(environ) -> str:
    """``$MPILAUNCHER_SPOOL``, else ``$TMPDIR``, else ``/tmp``: a directory on the node's own disk."""
    return environ.get(SPOOL_VARIABLE) or environ.get("TMPDIR") or "/tmp"


def open_spool(directory: str, task_id: int) -> int:
    """An unnamed file in ``directory`` for one task's output (read-write, close-on-exec).

    ``O_TMPFILE`` creates no name at all; where the file system lacks it, a named
    file is created and unlinked at once.  Raises OSError when neither works.
    """
    try:
        return os.open(directory, os.O_TMPFILE | os.O_RDWR | os.O_CLOEXEC, 0o600)
    except OSError as err:
        if not os.path.isdir(directory):
            raise OSError(err.errno, f"spool directory {directory}: {err.strerror}") from None
    path = os.path.join(directory, f".mpilauncher-spool-{os.getpid()}-{task_id}")
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
    os.unlink(path)
    return fd


class Stream:
    """One lane's data file and index in the workdir, appended to as its tasks end."""

    def __init__(self, base: str) -> None:
        """``base``: ``<workdir>/output.<node>``; the lane's own files add ``.<lane>`` to it."""
        self.base = base
        self.data = self.index = -1
        self.offset = 0

    def open(self, lane: str) -> None:
        """Create the lane's two files (once): raises OSError when the workdir takes no file."""
        if self.data >= 0:
            return
        name = f"{self.base}.{lane}"
        # Not O_APPEND: sendfile refuses such a target (EINVAL).  Only this lane writes the file.
        data = os.open(name, os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC, 0o644)
        try:
            index = os.open(name + INDEX_SUFFIX, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC, 0o644)
        except OSError:
            os.close(data)
            raise
        self.data, self.index, self.offset = data, index, os.lseek(data, 0, os.SEEK_END)
        if os.fstat(index).st_size == 0:
            os.write(index, INDEX_HEADER.encode())

    def add_file(self, task_id: int, source: int, end: float) -> None:
        """Append the whole of ``source`` (an fd) as task ``task_id``'s output, then its index line."""
        size = os.fstat(source).st_size
        at, done = self.offset, 0
        try:
            while done < size:
                sent = os.sendfile(self.data, source, done, size - done)
                if sent == 0:  # the file shrank under us (truncated by a leftover): keep what is there
                    break
                done += sent
        except OSError:
            self._rewind()
            raise
        self.offset += done
        os.write(self.index, f"{task_id}\tout\t{at}\t{done}\t{end:.3f}\n".encode())

    def add_text(self, task_id: int, kind: str, text: str, end: float) -> None:
        """Append ``text`` (a task's exec script) as a record of ``kind``."""
        data = text.encode("utf-8", "surrogateescape")
        at = self.offset
        view = memoryview(data)
        try:
            while view:
                view = view[os.write(self.data, view) :]
        except OSError:
            self._rewind()
            raise
        self.offset += len(data)
        os.write(self.index, f"{task_id}\t{kind}\t{at}\t{len(data)}\t{end:.3f}\n".encode())

    def _rewind(self) -> None:
        """After a write that failed part-way (a full disk, a quota): the next record goes where this one
        began, over its unindexed bytes -- not after them, where every later index line would point wrong."""
        try:
            os.lseek(self.data, self.offset, os.SEEK_SET)
        except OSError:
            pass

    def close(self) -> None:
        for fd in (self.data, self.index):
            if fd >= 0:
                os.close(fd)
        self.data = self.index = -1


# -- reading it back -------------------------------------------------------------------
class Record:
    """Where one task's output (or exec script) is: ``path`` (a data file, or ``out<N>``), offset, length."""

    __slots__ = ("path", "offset", "length", "end")

    def __init__(self, path: str, offset: int, length: int | None, end: float) -> None:
        self.path, self.offset, self.length, self.end = path, offset, length, end


def index_files(workdir: str) -> list[str]:
    """The workdir's index files: per-node output's ``output.*`` and per-task output's ``exec.*``."""
    try:
        names = os.listdir(workdir)
    except OSError:
        return []
    return sorted(
        os.path.join(workdir, n) for n in names if n.startswith((PREFIX, EXEC_PREFIX)) and n.endswith(INDEX_SUFFIX)
    )  # fmt: skip


def records(workdir: str, kind: str = "out") -> dict[int, Record]:
    """The latest record of ``kind`` of every task in the workdir's per-node files (by their end time)."""
    latest: dict[int, Record] = {}
    for index in index_files(workdir):
        data = index[: -len(INDEX_SUFFIX)]
        try:
            with open(index, encoding="utf-8", errors="replace") as lines:
                for line in lines:
                    fields = line.split("\t")
                    if len(fields) != 5 or fields[1] != kind or not line.endswith("\n"):
                        continue  # the header, another kind, or a line cut short by a kill
                    task_id, end = int(fields[0]), float(fields[4])
                    known = latest.get(task_id)
                    if known is None or end >= known.end:
                        latest[task_id] = Record(data, int(fields[2]), int(fields[3]), end)
        except (OSError, ValueError):
            continue
    return latest


def locate(workdir: str, task_id: int, kind: str = "out", indexed: dict[int, Record] | None = None) -> Record | None:
    """Where task ``task_id``'s output (``kind`` out, or exec) is: the per-node record or ``out<N>``
    (``exec<N>``), whichever was written last; None if neither exists."""
    record = (records(workdir, kind) if indexed is None else indexed).get(task_id)
    single = os.path.join(workdir, f"{kind}{task_id}")
    try:
        written = os.stat(single).st_mtime
    except OSError:
        return record
    if record is not None and record.end >= written:
        return record
    return Record(single, 0, None, written)


#: How much of a record is read at a time (``output`` of a task that wrote gigabytes: a piece at a time).
CHUNK = 1 << 20


class CutShort(OSError):
    """A record's data file ends before the record does (the file truncated, or damaged)."""

    def __init__(self, record: Record, found: int, length: int) -> None:
        super().__init__(f"cut short: {found:,} of its {length:,} bytes are in {record.path}")


def read_chunks(record: Record, limit: int | None = None, chunk: int = CHUNK) -> Iterator[bytes]:
    """The bytes of a record (its last ``limit`` bytes, when given), a piece at a time; raises
    :class:`CutShort` after the last piece there is when the file ends before the record (a user walk:
    a truncated data file gave 56 bytes of 588,895, and exit status 0)."""
    with open(record.path, "rb") as source:
        length = record.length if record.length is not None else os.fstat(source.fileno()).st_size
        skip = max(0, length - limit) if limit is not None else 0
        source.seek(record.offset + skip)
        left = length - skip
        while left > 0:
            piece = source.read(min(chunk, left))
            if not piece:
                raise CutShort(record, length - left, length)
            left -= len(piece)
            yield piece


def read_record(record: Record, limit: int | None = None) -> bytes:
    """The bytes of a record (its last ``limit`` bytes, when given): see :func:`read_chunks`."""
    return b"".join(read_chunks(record, limit))


class Finder:
    """Finds tasks' output (or exec scripts) in several workdirs: a sweep resumed into a new workdir left
    the output of the tasks that ended before in the earlier one.  The latest record of a task wins,
    wherever it is (a sweep taken back to its first workdir after a second one has both).  Each
    workdir's index files are read once."""

    def __init__(self, workdirs: Sequence[str], kind: str = "out") -> None:
        self.kind = kind
        self._places = [(workdir, records(workdir, kind)) for workdir in workdirs]

    def find(self, task_id: int) -> tuple[Record, str] | None:
        """Where ``task_id``'s latest output is, and in which workdir; None if in none."""
        found = None
        for workdir, indexed in self._places:
            record = locate(workdir, task_id, self.kind, indexed)
            if record is not None and (found is None or record.end > found[0].end):
                found = (record, workdir)
        return found


def iter_output(workdir: str, task_ids: list[int], kind: str = "out") -> Iterator[tuple[int, bytes | None]]:
    """Each task's output (None: none found), reading the index files once."""
    finder = Finder([workdir], kind)
    for task_id in task_ids:
        found = finder.find(task_id)
        yield task_id, (read_record(found[0]) if found is not None else None)
