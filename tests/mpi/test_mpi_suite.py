"""Run the pytest-mpi tests under a real mpiexec from the plain ``python -m pytest`` run."""

from __future__ import annotations

import subprocess
import sys

import pytest

from tests.conftest import ROOT, launcher_env


@pytest.mark.parametrize("ranks", [2, 4])
def test_protocol_tests_pass_under_mpiexec(ranks: int) -> None:
    result = subprocess.run(
        [
            "mpiexec",
            "-n",
            str(ranks),
            sys.executable,
            "-m",
            "pytest",
            "--with-mpi",
            "-q",
            "-p",
            "no:cacheprovider",
            "tests/mpi/test_protocol_mpi.py",
        ],
        cwd=ROOT,
        env=launcher_env(),
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert result.stdout.count(" passed") == ranks, "every rank ran the tests"
    assert " skipped" not in result.stdout, "under mpiexec no MPI test may be skipped"
