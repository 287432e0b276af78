"""The joblog: its columns, and a resumed sweep whose joblog an older version began."""

from __future__ import annotations

from pathlib import Path

import pytest

from mpilauncher.report.joblog import HEADER, Joblog, read

ROW = dict(host="n1", slots="0", cpus=(), gpu_ids=(), start=100.0, runtime=1.5, exit_code=0, status="ok", attempt=1)


def test_a_row_says_how_many_leftovers_were_killed_and_command_stays_last(tmp_path: Path) -> None:
    log = Joblog(tmp_path / "joblog")
    log.add(3, **ROW, leftovers=2, command="sleep 1 &\tdone")
    log.close()
    (row,) = read(tmp_path / "joblog")
    assert list(row)[-2:] == ["leftovers", "command"]
    assert row["leftovers"] == "2" and row["command"] == "sleep 1 &\tdone" and row["end"] == "101.500"


def test_a_joblog_begun_without_the_leftovers_column_keeps_its_columns(tmp_path: Path) -> None:
    old = "id\tnode\tcores\tcpus\tgpus\tstart\tend\truntime\texit\tstatus\tattempt\tcommand\n"
    (tmp_path / "joblog").write_text(old + "0\tn1\t0\t-\t-\t1.000\t2.000\t1.000\t0\tok\t1\ttrue\n")
    log = Joblog(tmp_path / "joblog")
    log.add(1, **ROW, leftovers=1, command="echo resumed")
    log.close()
    rows = read(tmp_path / "joblog")
    assert [(r["id"], r["command"]) for r in rows] == [("0", "true"), ("1", "echo resumed")]
    assert "leftovers" not in rows[1]


def test_a_joblog_begun_before_the_resource_columns_keeps_its_columns(tmp_path: Path) -> None:
    old = HEADER.replace("user\tsys\tmaxrss_kib\t", "")
    (tmp_path / "joblog").write_text(old + "0\tn1\t0\t-\t-\t1.000\t2.000\t1.000\t0\tok\t1\t0\ttrue\n")
    log = Joblog(tmp_path / "joblog")
    log.add(1, **ROW, leftovers=1, command="echo\ta tab", cpu_user=1.25, cpu_system=0.5, max_rss=2048)
    log.close()
    rows = read(tmp_path / "joblog")
    assert [(r["id"], r["leftovers"], r["command"]) for r in rows] == [("0", "0", "true"), ("1", "1", "echo\ta tab")]
    assert "user" not in rows[1]


def test_resource_use_is_seconds_and_kib_or_a_dash_when_unknown(tmp_path: Path) -> None:
    log = Joblog(tmp_path / "joblog")
    log.add(0, **ROW, leftovers=0, command="a", cpu_user=1.25, cpu_system=0.5, max_rss=2048)
    log.add(1, **ROW, leftovers=0, command="b")  # a Slurm job of submit mode: not known
    log.close()
    known, unknown = read(tmp_path / "joblog")
    assert (known["user"], known["sys"], known["maxrss_kib"]) == ("1.250000", "0.500000", "2048")
    assert (unknown["user"], unknown["sys"], unknown["maxrss_kib"]) == ("-", "-", "-")


def test_the_cpu_of_many_short_tasks_sums_to_what_they_used(tmp_path: Path) -> None:
    """``sh -c true`` uses ~0.4 ms of CPU: rounded to milliseconds, 1,000 of them would read as a
    second (or as nothing), and a sweep's CPU summed from its joblog would be off by as much."""
    log = Joblog(tmp_path / "joblog")
    for task_id in range(1000):
        log.add(task_id, **ROW, leftovers=0, command="true", cpu_user=0.000262, cpu_system=0.000141, max_rss=1)
    log.close()
    rows = read(tmp_path / "joblog")
    assert sum(float(r["user"]) + float(r["sys"]) for r in rows) == pytest.approx(0.403)
