"""The benchmark scripts still run (tiny sizes; the figures are not checked: they are not tests)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import ROOT, launcher_env

BENCH = ROOT / "benchmarks"


def test_simulate_runs_and_every_task_is_decided(tmp_path: Path) -> None:
    pytest.importorskip("numpy")
    out = tmp_path / "sim.json"
    result = subprocess.run(
        [sys.executable, str(BENCH / "simulate.py"), "--cores", "128,1024", "--tasks", "3000", "--mixed",
         "--json", str(out)],
        capture_output=True, text=True, timeout=300, env=launcher_env(),
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    rows = json.loads(out.read_text())
    assert [r["tasks"] for r in rows] == [3000, 3000]
    assert all(r["decisions_per_second"] > 0 and r["standby_starts"] >= 0 for r in rows)


def test_throughput_runs_and_reports_a_ratio(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, str(BENCH / "throughput.py"), "--tasks", "40", "--repeat", "1", "--no-warmup",
         "--tmpdir", str(tmp_path)],
        capture_output=True, text=True, timeout=300, env=launcher_env(),
    )  # fmt: skip
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    assert "ratio mpilauncher/xargs" in result.stdout
