"""Shared helpers for the test suite."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def launcher_env(**extra: str) -> dict[str, str]:
    """An environment for running the launcher as a user would, outside any Slurm job."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SLURM_", "PMI_", "HYDI_", "OMP_NUM"))}
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    env.update(extra)
    return env


def run_cli(args: list[str], cwd: Path, timeout: float = 120, **env: str) -> subprocess.CompletedProcess:
    """``python -m mpilauncher ARGS`` in ``cwd``; output captured as text."""
    return subprocess.run(
        [sys.executable, "-m", "mpilauncher", *args],
        cwd=cwd,
        env=launcher_env(**env),
        capture_output=True,
        text=True,
        timeout=timeout,
    )


@pytest.fixture
def sweep_dir(tmp_path: Path) -> Path:
    """An empty directory to run a sweep in (the launcher's cwd)."""
    return tmp_path
