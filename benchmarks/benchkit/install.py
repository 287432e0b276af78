"""Find the peers on this machine, or install them into a cache of their own.

Nothing is installed into the project's environment or the system: PyLauncher and HyperQueue each get a
virtual environment under the cache (PyLauncher's ``pylauncher`` package would shadow mpilauncher's
PyLauncher-compatible API otherwise), and GNU parallel, a Perl script, is unpacked there from its Debian
package.  A second run finds them in the cache.  What cannot be found or installed is said in one line,
which the report shows in the peer's row.
"""

from __future__ import annotations

import fcntl
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from benchkit.machine import first_line

#: What a finished install leaves behind; a folder without it is a broken install, removed and redone.
DONE = ".installed"


def default_cache() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "mpilauncher-peers"


@dataclass
class Found:
    """A peer's program: ``path`` (an executable or a venv's python) and version, or why there is none."""

    path: str | None = None
    version: str = ""
    problem: str | None = None


class Installer:
    def __init__(self, cache: Path, *, install: bool, python: str = sys.executable) -> None:
        self.cache = cache
        self.install = install
        self.python = python

    # -- Python peers: a venv each -------------------------------------------
    def venv(self, name: str, requirements: list[str], module: str, distribution: str) -> Found:
        """A venv under the cache with ``requirements``, whose python imports ``module``."""
        home = self.cache / name
        python = home / "bin" / "python"
        if not (home / DONE).exists():
            if not self.install:
                return Found(problem=f"not installed (--no-install; not in {home})")
            with self._locked():
                if not (home / DONE).exists():
                    problem = self._make_venv(home, requirements)
                    if problem:
                        return Found(problem=f"not installed: {problem}")
        probe = [str(python), "-c", f"import {module}, importlib.metadata as m; print(m.version({distribution!r}))"]
        version = first_line(probe)
        if not version[:1].isdigit():
            return Found(problem=f"installed in {home} but `import {module}` fails: {version}")
        return Found(str(python), f"{distribution} {version}")

    def _make_venv(self, home: Path, requirements: list[str]) -> str | None:
        shutil.rmtree(home, ignore_errors=True)
        print(f"  installing {' '.join(requirements)} into {home} ...", flush=True)
        steps = [
            [self.python, "-m", "venv", str(home)],
            [str(home / "bin" / "python"), "-m", "pip", "install", "--disable-pip-version-check", "-q", *requirements],
        ]
        for step in steps:
            problem = _run(step)
            if problem:
                return f"{' '.join(step[2:5])} ... failed: {problem}"
        (home / DONE).touch()
        return None

    # -- GNU parallel: on PATH, or its Debian package unpacked -----------------
    def gnu_parallel(self) -> Found:
        on_path = shutil.which("parallel")
        if on_path and "GNU parallel" in first_line([on_path, "--version"]):
            return Found(on_path, first_line([on_path, "--version"]))
        home = self.cache / "gnu-parallel"
        program = home / "root" / "usr" / "bin" / "parallel"
        if not (home / DONE).exists():
            why = "no GNU parallel on PATH" + (f" ({on_path} is another program)" if on_path else "")
            if not self.install:
                return Found(problem=f"not installed (--no-install; {why}, not in {home})")
            with self._locked():
                if not (home / DONE).exists():
                    problem = self._unpack_deb(home, "parallel")
                    if problem:
                        return Found(problem=f"not installed: {why}; {problem}")
        version = first_line([str(program), "--version"])
        if "GNU parallel" not in version:
            return Found(problem=f"unpacked in {home} but `parallel --version` says: {version}")
        return Found(str(program), version)

    def _unpack_deb(self, home: Path, package: str) -> str | None:
        """``apt-get download`` (no root needed, nothing installed) and ``dpkg-deb -x`` into ``home``."""
        if not (shutil.which("apt-get") and shutil.which("dpkg-deb")):
            return "no apt-get/dpkg-deb here to fetch the Debian package (install GNU parallel, then run again)"
        shutil.rmtree(home, ignore_errors=True)
        home.mkdir(parents=True)
        print(f"  fetching the Debian package {package} into {home} ...", flush=True)
        problem = _run(["apt-get", "download", package], cwd=home)
        debs = sorted(home.glob(f"{package}_*.deb"))
        if problem or not debs:
            return f"apt-get download {package} failed: {problem or 'no .deb'} (try apt-get update, or install it)"
        problem = _run(["dpkg-deb", "-x", str(debs[-1]), str(home / "root")])
        if problem:
            return f"dpkg-deb -x failed: {problem}"
        (home / DONE).touch()
        return None

    # -- what is there or not ----------------------------------------------------
    def program(self, name: str, version_argv: list[str] | None = None) -> Found:
        path = shutil.which(name)
        if path is None:
            return Found(problem=f"not installed: no `{name}` on PATH")
        return Found(path, first_line(version_argv or [path, "--version"]))

    def module(self, module: str, distribution: str) -> Found:
        """A module of the benchmark's own interpreter (mpi4py: mpilauncher depends on it)."""
        version = first_line(
            [self.python, "-c", f"import {module}, importlib.metadata as m; print(m.version({distribution!r}))"]
        )
        if not version[:1].isdigit():
            return Found(problem=f"not installed: `import {module}` fails in {self.python}: {version}")
        return Found(self.python, f"{distribution} {version}")

    @contextmanager
    def _locked(self) -> Iterator[None]:
        """One install at a time into the cache (two benchmark runs may start together)."""
        self.cache.mkdir(parents=True, exist_ok=True)
        with open(self.cache / ".lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            yield


def _run(argv: list[str], cwd: Path | None = None) -> str | None:
    """None when ``argv`` succeeds, else its last line of output (the reason, usually)."""
    try:
        done = subprocess.run(argv, cwd=cwd, capture_output=True, text=True, timeout=900)
    except (OSError, subprocess.SubprocessError) as error:
        return str(error)
    if done.returncode == 0:
        return None
    lines = [line for line in (done.stderr + done.stdout).splitlines() if line.strip()]
    return lines[-1].strip() if lines else f"exit status {done.returncode}"
