"""Run the pytest-mpi tests under a real mpiexec from the plain ``python -m pytest`` run."""

from __future__ import annotations

import subprocess
import sys

import pytest

from tests.conftest import ROOT, launcher_env

HYDRA_TEARDOWN_KILL = "YOUR APPLICATION TERMINATED WITH THE EXIT STRING: Killed (signal 9)"
SUITE = ROOT / "tests" / "mpi" / "test_protocol_mpi.py"
#: What each rank prints when it passed every test of the suite (counted, so that a new test cannot
#: silently turn the retry below off, as it once did).
ALL_PASSED = f"{SUITE.read_text().count(chr(10) + 'def test_')} passed"


def run_suite(ranks: int) -> subprocess.CompletedProcess:
    return subprocess.run(
        ["mpiexec", "-n", str(ranks), sys.executable, "-m", "pytest", "--with-mpi", "-q", "-p", "no:cacheprovider",
         "-p", "no:tmpdir", str(SUITE.relative_to(ROOT))],
        cwd=ROOT, env=launcher_env(), capture_output=True, text=True, timeout=180,
    )  # fmt: skip


@pytest.mark.parametrize("ranks", [2, 4])
def test_protocol_tests_pass_under_mpiexec(ranks: int) -> None:
    result = run_suite(ranks)
    if result.returncode != 0 and result.stdout.count(ALL_PASSED) == ranks and HYDRA_TEARDOWN_KILL in result.stdout:
        # Known, rare, and not ours: after every rank has passed every test, hydra's proxy
        # sometimes SIGKILLs the ranks during teardown on this oversubscribed 2-core machine
        # (traced: hydra_pmi_proxy kill(-rank, SIGKILL); only after heavy process churn,
        # about 1 run in 5, never under strace). Run once more; the second run must be clean.
        result = run_suite(ranks)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert result.stdout.count(ALL_PASSED) == ranks, "every rank ran every test"
    assert " skipped" not in result.stdout, "under mpiexec no MPI test may be skipped"
