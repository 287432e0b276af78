"""The pieces of the benchmarks that decide what a figure says: the bound W4 is read against, the
table's wording of a peer that did not run, a timed-out run leaving nothing behind, and which of rank 0's
messages answered which agent report in a dispatch trace."""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

from tests.conftest import ROOT

sys.path.insert(0, str(ROOT / "benchmarks"))

from benchkit import machine  # noqa: E402
from benchkit.report import derive, markdown  # noqa: E402
from benchkit.timing import measure  # noqa: E402
from benchkit.trace import follow, summarise  # noqa: E402
from benchkit.workloads import list_schedule_makespan, standard  # noqa: E402


def test_list_scheduling_bound_starts_each_task_on_the_core_that_frees_first() -> None:
    assert list_schedule_makespan([2, 1, 1, 1], 2) == 3  # 2 | 1+1+1: the third 1 waits for the first core
    assert list_schedule_makespan([1.5], 64) == 1.5  # fewer tasks than cores: the longest task
    assert list_schedule_makespan([1] * 128, 64) == 2
    assert list_schedule_makespan([], 4) == 0


def test_w4_is_the_same_for_every_peer_and_run_and_its_bound_is_near_full() -> None:
    first, again = standard()[3], standard()[3]
    assert first.commands == again.commands and first.tasks == 1000 and first.slots == 64
    assert all(0.5 <= d <= 2.0 for d in first.durations)
    assert 0.9 < first.busy_fraction(first.list_bound()) <= 1.0


def _document(cells: list[dict]) -> dict:
    return {
        "command": "python benchmarks/peers.py --workload W1",
        "date": "2026-11-30 12:00",
        "info": {"cpu": "test CPU", "usable_cpus": 2, "os": "Linux", "python": "CPython 3.11.7 (python)",
                 "sh": "/bin/dash", "loadavg": [0.1, 0.1, 0.1]},
        "locations": {"disk": {"path": "/scratch", "fs": "ext4 /dev/sda on /", "create_us": 40.0}},
        "settings": {"repeat": 3},
        "workloads": {"W1": {"key": "W1", "title": "2,000 x `true`, 2 slots", "tasks": 2000, "slots": 2}},
        "peers": {
            "xargs": {"label": "`xargs -P`", "version": "4.9", "problem": None, "how": {"W1": "xargs"}},
            "pylauncher": {"label": "PyLauncher", "version": "4.0", "problem": None, "how": {"W1": "python ..."}},
            "hyperqueue": {"label": "HyperQueue", "version": "0.27", "problem": None, "how": {"W1": "python ..."}},
            "parallel": {"label": "GNU parallel", "version": "", "problem": "not installed: apt-get download failed"},
            "mpilauncher": {"label": "mpilauncher", "version": "0.1", "problem": None, "how": {"W1": "python ..."}},
        },
        "cells": [{"location": "disk", "workload": "W1", "timeout_s": 150.0, "problem": None, "others": [],
                   **cell} for cell in cells],
    }  # fmt: skip


def test_the_table_says_how_a_peer_fell_short_instead_of_dropping_it() -> None:
    document = _document([
        {"peer": "xargs", "status": "ok", "wall_s": [1.0, 1.2, 0.9]},
        {"peer": "pylauncher", "status": "timed out", "wall_s": []},
        {"peer": "hyperqueue", "status": "failed", "problem": "exit status 1: boom", "wall_s": []},
        {"peer": "mpilauncher", "status": "ok", "wall_s": [1.1, 1.5, 1.0]},
    ])  # fmt: skip
    derive(document)
    table = markdown(document)
    rows = {line.split(" | ")[0]: line for line in table.splitlines() if line.startswith("| ")}
    assert "| 1.00 s (0.90) |" in rows["| `xargs -P`"]
    assert "| 1.10 (1.11) |" in rows["| mpilauncher"]  # median over median, best over best
    assert "> 150 (stopped at 150 s)" in rows["| PyLauncher"]  # a lower bound, not a figure
    assert "failed: exit status 1: boom" in rows["| HyperQueue"]
    assert "not installed: apt-get download failed" in rows["| GNU parallel"]
    assert "python benchmarks/peers.py --workload W1" in table


def test_the_cpu_table_sets_the_launchers_own_cpu_apart_from_idle_cores() -> None:
    document = _document([
        {"peer": "xargs", "status": "ok", "wall_s": [1.0, 1.2, 0.9], "cpu_s": [1.8, 2.0, 1.7]},
        {"peer": "mpilauncher", "status": "ok", "wall_s": [1.2, 1.3, 1.25], "cpu_s": [2.2, 2.4, 2.3]},
    ])  # fmt: skip
    document["settings"]["cpus"] = 2
    derive(document)
    rows = {line.split(" | ")[0]: line for line in markdown(document).splitlines() if line.startswith("| ")}
    assert rows["| `xargs -P`"].endswith("| 1.80 / 0.20 |")  # median CPU; median of 2 x wall - CPU per run
    assert rows["| mpilauncher"].endswith("| 2.30 / 0.20 (+0.50 s, +250 us a task) |")
    document = _document([{"peer": "xargs", "status": "ok", "wall_s": [1.0]}])
    derive(document)
    assert "CPU seconds of each run" not in markdown(document)  # an old JSON without CPU figures


def test_a_run_stopped_at_its_timeout_leaves_no_process_behind(tmp_path: Path) -> None:
    pids = tmp_path / "pids"
    script = f"sleep 60 & echo $$ $! > {pids}; wait"
    began = time.monotonic()
    outcome = measure(["sh", "-c", script], cwd=tmp_path, env=dict(os.environ), timeout=1.0)
    assert outcome.timed_out and time.monotonic() - began < 30
    for pid in map(int, pids.read_text().split()):
        assert _ends_within(pid, 5.0), f"{pid} outlived the timeout"


def _ends_within(pid: int, seconds: float) -> bool:
    """Gone or a zombie within ``seconds``: a killed process closes its files (the pipe's EOF ends the
    run) a moment before the kernel marks it a zombie, and on a busy machine that moment can be seen."""
    deadline = time.monotonic() + seconds
    while True:
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            return True
        if state in ("Z", "X"):
            return True
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)


def test_an_ext4_without_a_journal_is_named_so(monkeypatch) -> None:
    """The figures on such a disk are not a user's: creates there are slow for minutes after a deletion."""
    journals = {"/sys/fs/ext4/vda/journal_task": "<none>\n", "/sys/fs/ext4/loop0/journal_task": "15367\n"}

    def read_text(self: Path, *args, **kwargs) -> str:
        if str(self) not in journals:
            raise FileNotFoundError(str(self))
        return journals[str(self)]

    monkeypatch.setattr(Path, "read_text", read_text)
    assert machine.ext4_journal("ext4", "/dev/vda") == " without a journal"
    assert machine.ext4_journal("ext4", "/dev/loop0") == "", "it has a journal (its thread's pid)"
    assert machine.ext4_journal("ext4", "/dev/mapper/vg-root") == "", "unknown: nothing said"
    assert machine.ext4_journal("tmpfs", "tmpfs") == "" and machine.ext4_journal("xfs", "/dev/vda") == ""


def test_a_checkout_is_measured_with_its_bytecode_compiled_even_where_python_writes_none(
    tmp_path: Path, monkeypatch
) -> None:
    """A fresh clone run with PYTHONDONTWRITEBYTECODE (these machines) would compile every module in every
    launcher process of every run: a cost no user of an installed copy pays, and not the launcher's."""
    package = tmp_path / "mpilauncher"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "sample.py").write_text("VALUE = 1\n")
    monkeypatch.setenv("PYTHONDONTWRITEBYTECODE", "1")
    env = machine.checkout_env(tmp_path)
    assert env["PYTHONPATH"].split(os.pathsep)[0] == str(tmp_path)
    tag = sys.implementation.cache_tag
    assert (package / "__pycache__" / f"sample.{tag}.pyc").is_file()
    assert (package / "__pycache__" / f"__init__.{tag}.pyc").is_file()


def test_a_trace_follows_each_report_to_the_first_start_message_rank_0_sent_that_node_after_reading_it(
    tmp_path: Path,
) -> None:
    import json

    master = [
        ("S", 0.5, 1, 3, 100),  # sent to rank 1 before its report came: not the answer
        ("R", 1.0, 1, 1, 7),  # rank 1's report of task 7 read
        ("R", 1.1, 2, 2, 8),  # rank 2's report of tasks 8 and 9
        ("S", 1.2, 2, 2, 200),  # the answer to rank 2
        ("S", 1.4, 1, 1, 300),  # the answer to rank 1
    ]
    rank1 = [("G", 0.6, 3, 100, 3), ("P", 0.9, 1, 7, True), ("G", 1.7, 1, 300, 0), ("P", 2.0, 1, 301, True)]
    rank2 = [("P", 1.05, 2, 8, False), ("G", 1.25, 2, 200, 2)]
    for rank, events in ((0, master), (1, rank1), (2, rank2)):
        (tmp_path / f"rank{rank}.json").write_text(json.dumps(events))
    rows = follow(tmp_path)
    assert [(r["rank"], r["ends"], r["urgent"]) for r in rows] == [(1, 1, True), (2, 2, False), (1, 1, True)]
    first, second, unread = rows
    assert (first["received"], first["answered"], first["read"], first["starts"]) == (1.0, 1.4, 1.7, 1)
    assert (second["received"], second["answered"], second["read"]) == (1.1, 1.2, 1.25)
    assert "received" not in unread  # sent as the run ended: rank 0 never read it
    assert "3 reports, 4 ends" in summarise(tmp_path, slices=2)
