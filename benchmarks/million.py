"""A million tasks: how long until the first task starts, how long --status and a resume take, and rank 0's memory.

    python benchmarks/million.py                      # 1,000,000 tasks of `true`, workdir on the disk
    python benchmarks/million.py --tasks 200000 --dir /dev/shm
    python benchmarks/million.py --bytes-only         # where the bytes go per task (tracemalloc), no launcher run

What is measured, each from the outside as a user meets it (``python -m mpilauncher``,
one process, 2 cores):

1. **First start**: from just before the command is started to the first ``S``
   (task started) line in the journal: reading the commandlines, checking them,
   the lock, the first queuestate snapshot (written before any task may start)
   and the scheduler's set-up.
2. **Peak memory** of the launcher process (``VmHWM`` from /proc) a few seconds
   into the run, when every per-task structure exists.
3. The run is then killed with ``kill -9`` (what a node failure or an
   out-of-memory kill does), and **--status** of its queuestate is timed (the
   snapshot read and the journal replayed, then the counts printed).
4. **Resume**: from the start of ``--resume`` to the first ``S`` line of its
   journal (the same reading plus replay, then a new snapshot).
5. **Half-way** (``--no-halfway`` skips it): the same sweep as a kill -9 half-way
   through leaves it.  Running half a million tasks here would take minutes, so the
   first half is marked completed in the queuestate by the launcher's own ledger and
   snapshot writer (on one of two hosts, each task on one of 64 cores, as a 2-node
   run writes them), those of the last snapshot interval in the journal beside it (a
   kill -9 just before the next snapshot: see ``complete_first_half``); then
   ``--status`` and ``--resume`` are timed as above, with the resumed launcher's peak
   memory.  This is the queuestate a user meets when they
   look at a long sweep: nearly all its lines are completed ones.
6. **Finished** (``--no-finished`` skips it): the same sweep as its final snapshot leaves it, every
   task completed but one in the middle, failed (written by the launcher's own ledger and writer, as
   in 5.).  Timed: ``--status``; ``report``; the same commandlines started again (the finished sweep
   continued: nothing to run, to its end); another sweep of the same tasks over it (the commandlines
   with a comment line first: a new sweep, which keeps it aside as ``qs.1``: its first task start);
   and ``--resume qs.1 --rerun-failed`` to its end (its final statistics read every earlier runtime).

``--bytes-only`` (or the end of a full run) attributes the bytes a task costs
to the structures that hold it, with tracemalloc, in this process: the parsed
task table (command strings, line numbers), the ledger's records, the scheduler.

No assertion on time: these machines are shared.  The targets (issue 15) are
first start <= 1 s, --status and resume <= 2 s, peak <= 300 MB at a million.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path
from typing import TYPE_CHECKING

from benchkit.machine import checkout_env
from benchkit.processes import TAG_VARIABLE, new_tag, wait_until_gone

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

if TYPE_CHECKING:
    from mpilauncher.persistence.queuestate import LoadedState


def write_commandlines(path: Path, tasks: int) -> None:
    path.write_text("true\n" * tasks)


def wait_for_start(journal: Path, since: float, timeout: float, after: os.stat_result | None = None) -> float | None:
    """Seconds from ``since`` until ``journal`` holds a task-started line, or None at the timeout.

    ``after``: the journal as it was before (a resume's): a line appended past its end counts (a resume
    that changed nothing but the queue goes on with it), and any in a new file in its place."""
    deadline = since + timeout
    offset = 0
    while time.monotonic() < deadline:
        try:
            with open(journal, "rb") as stream:
                if after is not None and os.fstat(stream.fileno()).st_ino == after.st_ino:
                    offset = max(offset, after.st_size - 1)
                elif after is not None:
                    after, offset = None, 0  # (replaced: from its first line)
                stream.seek(offset)
                chunk = stream.read()
        except FileNotFoundError:
            chunk = b""
        if b"\nS\t" in chunk or (offset == 0 and chunk.startswith(b"S\t")):
            return time.monotonic() - since
        offset += max(0, len(chunk) - 2)
        time.sleep(0.002)
    return None


def peak_rss_mb(pid: int) -> float | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


def launcher(*args: str) -> list[str]:
    return [sys.executable, "-m", "mpilauncher", *args]


#: Every process of this benchmark's runs carries it: after a kill -9 the launcher's watchdog ends its
#: tasks within its grace, and the scratch folder is removed only once they are all gone.
TAG = new_tag()


def environment() -> dict[str, str]:
    return {**checkout_env(ROOT), TAG_VARIABLE: TAG}


def run_and_kill(
    cl: Path, work: Path, timeout: float, settle: float, workdir: str = "w"
) -> tuple[float | None, float | None]:
    """Start a sweep (its queuestate ``qs``, over whatever is there), time its first task start, read its peak
    memory ``settle`` s later (none for 0), kill -9 it."""
    queuestate = work / "qs"
    began = time.monotonic()
    proc = subprocess.Popen(
        launcher(str(cl), "--workdir", str(work / workdir), "--queuestate", str(queuestate), "--cores-per-node", "2",
                 "--no-bind", "--quiet"),
        cwd=work, env=environment(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
    )  # fmt: skip
    try:
        first = wait_for_start(Path(f"{queuestate}.journal"), began, timeout)
        if not settle:
            return first, None
        time.sleep(settle)
        return first, peak_rss_mb(proc.pid)
    finally:
        kill(proc)


def kill(proc: subprocess.Popen) -> None:
    """kill -9 the launcher, then wait for its watchdog to end the tasks it had started."""
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    if not wait_until_gone(TAG):
        print("warning: the killed launcher's tasks are still running after 15 s", file=sys.stderr)


def timed_status(work: Path) -> float:
    began = time.monotonic()
    subprocess.run(launcher("--status", str(work / "qs")), cwd=work, env=environment(), capture_output=True)
    return time.monotonic() - began


def timed_resume(work: Path, timeout: float, settle: float = 0.0) -> tuple[float | None, float | None]:
    """Seconds from ``--resume`` to its first task start, and its peak memory ``settle`` s later (or None)."""
    queuestate = work / "qs"
    journal = Path(f"{queuestate}.journal")
    before = journal.stat() if journal.exists() else None  # (its lines: the run resumed)
    began = time.monotonic()
    proc = subprocess.Popen(
        launcher("--resume", str(queuestate), "--quiet"),
        cwd=work, env=environment(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
    )  # fmt: skip
    try:
        first = wait_for_start(journal, began, timeout, after=before)
        if not settle:
            return first, None
        time.sleep(settle)
        return first, peak_rss_mb(proc.pid)
    finally:
        kill(proc)


def read_whole(path: Path) -> LoadedState:
    """The queuestate at ``path`` with its journal replayed, every line read now (what a read leaves for
    later: a run that began from the commandlines has it all)."""
    from mpilauncher.core.tasks import CoresSpec
    from mpilauncher.persistence.store import load_state

    loaded = load_state(path, CoresSpec("fixed", 1))
    loaded.ledger.read_now()
    loaded.ledger.read_tasks(0, len(loaded.ledger))
    return loaded


def place_of(task_id: int) -> tuple[str, tuple[int, ...]]:
    """Where task ``task_id`` ran, as a 2-node run of 64 cores a node places them: its host and core."""
    return f"node{task_id % 2}", (task_id // 2 % 64,)


def complete_first_half(work: Path) -> tuple[int, int]:
    """Mark the first half of the sweep completed, as a 2-node run half-way leaves it at a kill -9 just
    before its next snapshot: the snapshot, written with the launcher's own ledger and writer, has the
    tasks completed until one snapshot interval ago, and the journal beside it the starts and ends since
    (the journal starts over at each snapshot).  The interval is the launcher's own rule, from what the
    snapshot took to write here (as a run writes it: the completed lines copied from the snapshot before,
    see mpilauncher/persistence/written.py); tasks complete at 1,000 a second.  Returns (completed, in
    the journal)."""
    from mpilauncher.persistence import journal, queuestate
    from mpilauncher.persistence.files import atomic_write
    from mpilauncher.persistence.store import MIN_SNAPSHOT_INTERVAL, SNAPSHOT_COST_SHARE, journal_path
    from mpilauncher.persistence.written import WrittenLines

    path = work / "qs"
    loaded = read_whole(path)
    ledger, meta = loaded.ledger, loaded.meta
    half = len(ledger) // 2
    began = time.time() - half / 1000
    runs = [(i, *place_of(i), began + i / 1000) for i in range(half)]
    for task_id, host, core_ids, start in runs:
        ledger.started(task_id, host, core_ids, start)
        ledger.finished(task_id, 0, start, 0.002)
    spans: list[tuple[int, int, int, int]] = []  # (the run's snapshot before: formatted)
    atomic_write(path, queuestate.render_pieces(ledger, meta, loaded.default_cores, spans=spans))
    before = WrittenLines.open(path, spans)
    cost = time.monotonic()  # (the next: the completed lines copied from the one before, as the store does)
    atomic_write(path, queuestate.render_pieces(ledger, meta, loaded.default_cores, written=before))
    cost = time.monotonic() - cost
    if before is not None:
        before.close()
    tail = min(half, round(max(MIN_SNAPSHOT_INTERVAL, SNAPSHOT_COST_SHARE * cost) * 1000))
    for task_id in range(half - tail, half):
        ledger.requeued(task_id)
    meta.run = os.urandom(6).hex()
    meta.longest = ledger.longest_completed()  # (as the state store writes it)
    atomic_write(path, queuestate.render_pieces(ledger, meta, loaded.default_cores))
    lines = [f"{journal.HEADER}{meta.run}\n"]
    for task_id, host, core_ids, start in runs[half - tail :]:
        lines.append(f"S\t{task_id}\t{start:.3f}\t{host}\t{core_ids[0]}\n")
        lines.append(f"E\t{task_id}\t0\t{start:.3f}\t0.002\n")
    journal_path(path).write_text("".join(lines))
    return half, tail


def complete_all(work: Path) -> int:
    """Finish the sweep, as its final snapshot leaves it: every task completed but one in the middle of
    those left, failed (the usual end of a long sweep: a few failures between the completed), no journal.  Returns
    the failed task's id."""
    from mpilauncher.persistence import queuestate
    from mpilauncher.persistence.files import atomic_write
    from mpilauncher.persistence.store import journal_path

    path = work / "qs"
    loaded = read_whole(path)
    ledger, meta = loaded.ledger, loaded.meta
    todo = ledger.ids_in("queued", "running")  # (after step 5: its resume ran some past the half)
    failed, began = todo[len(todo) // 2], time.time() - len(ledger) / 1000
    for task_id in todo:
        start = began + task_id / 1000
        ledger.started(task_id, *place_of(task_id), start)
        ledger.finished(task_id, 1 if task_id == failed else 0, start, 0.002)
    meta.longest = ledger.longest_completed()
    meta.journaled = False  # (the last snapshot of a run says that no journal follows it)
    atomic_write(path, queuestate.render_pieces(ledger, meta, loaded.default_cores))
    journal_path(path).unlink(missing_ok=True)
    return failed


def timed_to_exit(work: Path, *args: str, expected: int = 0) -> float:
    """Seconds the launcher's command takes to its end (one that ends otherwise than ``expected`` says so)."""
    began = time.monotonic()
    done = subprocess.run(launcher(*args), cwd=work, env=environment(), capture_output=True, text=True, timeout=600)
    took = time.monotonic() - began
    if done.returncode != expected:
        print(f"warning: {' '.join(args[:2])} ended with status {done.returncode}: {done.stderr.strip()[-300:]}",
              file=sys.stderr)  # fmt: skip
    return took


def bytes_per_task(tasks: int) -> list[tuple[str, float]]:
    """Bytes a task costs in each structure, measured one after the other with tracemalloc."""
    from mpilauncher.core.ledger import Ledger
    from mpilauncher.core.scheduler import Scheduler
    from mpilauncher.core.tasks import CoresSpec, parse_commandlines

    text = "true\n" * tasks
    tracemalloc.start()
    base = tracemalloc.get_traced_memory()[0]
    parsed = parse_commandlines(text, "cl", CoresSpec("fixed", 1))
    after_parse = tracemalloc.get_traced_memory()[0]
    ledger = Ledger(parsed)
    after_ledger = tracemalloc.get_traced_memory()[0]
    scheduler = Scheduler(parsed, standby=True)
    after_scheduler = tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()
    del scheduler, ledger
    return [
        ("tasks (the table: the command strings and their list, line numbers)", (after_parse - base) / tasks),
        ("ledger (a record for each task that started: none yet)", (after_ledger - after_parse) / tasks),
        ("scheduler (the state of each task by id, its queue)", (after_scheduler - after_ledger) / tasks),
    ]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tasks", type=int, default=1_000_000)
    parser.add_argument("--dir", default=None, help="where the workdir and queuestate go (default: the temp folder)")
    parser.add_argument("--timeout", type=float, default=120.0)
    parser.add_argument("--settle", type=float, default=3.0, help="seconds after the first start before the kill")
    parser.add_argument("--bytes-only", action="store_true")
    parser.add_argument("--no-halfway", dest="halfway", action="store_false", help="skip the half-way step (5.)")
    parser.add_argument("--no-finished", dest="finished", action="store_false", help="skip the finished step (6.)")
    args = parser.parse_args()

    if not args.bytes_only:
        with tempfile.TemporaryDirectory(prefix="mpl-million-", dir=args.dir) as scratch:
            work = Path(scratch)
            cl = work / "commandlines"
            write_commandlines(cl, args.tasks)
            first, peak = run_and_kill(cl, work, args.timeout, args.settle)
            status = timed_status(work)
            resume, _ = timed_resume(work, args.timeout)
            if args.halfway:
                half, tail = complete_first_half(work)
                half_status = timed_status(work)
                half_resume, half_peak = timed_resume(work, args.timeout, args.settle)
            if args.finished:
                failed = complete_all(work)
                done_status = timed_status(work)
                done_report = timed_to_exit(work, "report", str(work / "qs"))
                same = (str(cl), "--workdir", str(work / "w3"), "--queuestate", str(work / "qs"), "--quiet")
                done_same = timed_to_exit(work, *same, expected=1)  # (nothing to run; the sweep's one failure)
                other = work / "commandlines2"
                other.write_text("# the same tasks, another sweep\n" + cl.read_text())
                done_new, _ = run_and_kill(other, work, args.timeout, 0.0, "w2")  # (keeps qs aside as qs.1)
                done_rerun = timed_to_exit(work, "--resume", str(work / "qs.1"), "--rerun-failed", "--quiet")
        shown = {None: "none within the timeout"}
        print(f"# {args.tasks:,} tasks of `true`, one process, workdir in {args.dir or tempfile.gettempdir()}")
        print(f"first task started: {shown.get(first) or f'{first:.2f} s'} after the command  (target <= 1 s)")
        print(f"peak memory (VmHWM) {args.settle:g} s later: {peak:.0f} MB  (target <= 300 MB)" if peak else "peak: ?")
        print(f"--status after kill -9: {status:.2f} s  (target <= 2 s)")
        print(f"--resume, first task started: {shown.get(resume) or f'{resume:.2f} s'}  (target <= 2 s)")
        if args.halfway:
            print(f"half-way ({half:,} tasks completed, the last {tail:,} in the journal):"
                  f" --status {half_status:.2f} s, --resume first task started"
                  f" {shown.get(half_resume) or f'{half_resume:.2f} s'}, its peak memory {args.settle:g} s later"
                  f" {f'{half_peak:.0f} MB' if half_peak else '?'}")  # fmt: skip
        if args.finished:
            print(f"finished (all completed but task {failed:,}, failed): --status {done_status:.2f} s, report"
                  f" {done_report:.2f} s, the same commandlines again (nothing to run) to its end {done_same:.2f} s,"
                  f" another sweep over it first task started {shown.get(done_new) or f'{done_new:.2f} s'},"
                  f" --resume --rerun-failed of its failure to its end {done_rerun:.2f} s")  # fmt: skip
    print(f"# bytes a task costs, by structure ({min(args.tasks, 200_000):,} tasks, tracemalloc):")
    total = 0.0
    for what, size in bytes_per_task(min(args.tasks, 200_000)):
        total += size
        print(f"  {size:6.0f} B  {what}")
    print(f"  {total:6.0f} B  in all, before any snapshot, journal or output buffer")
    return 0


if __name__ == "__main__":
    sys.exit(main())
