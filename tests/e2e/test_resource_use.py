"""The joblog's resource columns against tasks whose use is known: CPU seconds burnt, memory touched."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from mpilauncher.report.joblog import read as read_joblog
from tests.conftest import run_cli

#: Burns ``CPU`` seconds of CPU (by the process's own clock, so a loaded machine does not change
#: the figure) after touching ``MIB`` MiB, and prints the CPU it used in all by its own count: touching
#: the memory costs a page fault a page, 0.1 s for 200 MiB on one host and 0.5 s on another.
BURN = """import resource, sys, time
mib, cpu = int(sys.argv[1]), float(sys.argv[2])
block = bytearray(mib << 20)
for at in range(0, len(block), 4096):
    block[at] = 1
end = time.process_time() + cpu
while time.process_time() < end:
    pass
used = resource.getrusage(resource.RUSAGE_SELF)
print(used.ru_utime + used.ru_stime)
"""


def burn(where: Path, mib: int, cpu: float) -> str:
    """A task line; the shell forks python (``; true`` keeps sh from exec'ing it): the rusage of a
    waited-for descendant is the task's too."""
    script = where / "burn.py"
    script.write_text(BURN)
    return f"{sys.executable} {script} {mib} {cpu}; true"


def test_the_joblog_has_each_tasks_cpu_seconds_and_peak_memory(tmp_path: Path) -> None:
    (tmp_path / "commandlines").write_text(f"{burn(tmp_path, 200, 1.0)}\n{burn(tmp_path, 20, 0.2)}\nsleep 0.3\n")
    result = run_cli(["commandlines", "--workdir", "w", "--quiet"], tmp_path)
    assert result.returncode == 0, result.stderr
    rows = {int(r["id"]): r for r in read_joblog(tmp_path / "w" / "joblog")}
    big, small, idle = rows[0], rows[1], rows[2]
    # CPU: what the task counted itself (its burn, the interpreter, its page faults), plus the shell's and
    # the interpreter's exit (the freeing of the block), well under 0.3 s.
    for row, task_id in ((big, 0), (small, 1)):
        counted = float((tmp_path / "w" / f"out{task_id}").read_text())
        assert counted <= float(row["user"]) + float(row["sys"]) < counted + 0.3, (row, counted)
    assert float(big["user"]) + float(big["sys"]) >= 1.0 and float(small["user"]) + float(small["sys"]) >= 0.2
    assert float(idle["user"]) + float(idle["sys"]) < 0.1, idle
    # Memory: the touched block plus the interpreter (~10-30 MiB), in KiB.
    assert 200 * 1024 <= int(big["maxrss_kib"]) < 260 * 1024, big
    assert 20 * 1024 <= int(small["maxrss_kib"]) < 80 * 1024, small
    assert int(idle["maxrss_kib"]) < 20 * 1024, idle


@pytest.mark.parametrize("executor", ["inline"])
def test_the_in_process_runner_accounts_the_same(tmp_path: Path, executor: str) -> None:
    (tmp_path / "commandlines").write_text(f"{burn(tmp_path, 100, 0.5)}\n")
    result = run_cli(["commandlines", "--workdir", "w", "--quiet"], tmp_path, MPILAUNCHER_EXECUTOR=executor)
    assert result.returncode == 0, result.stderr
    (row,) = read_joblog(tmp_path / "w" / "joblog")
    counted = float((tmp_path / "w" / "out0").read_text())
    assert 0.5 <= counted <= float(row["user"]) + float(row["sys"]) < counted + 0.3, (row, counted)
    assert 100 * 1024 <= int(row["maxrss_kib"]) < 160 * 1024, row
