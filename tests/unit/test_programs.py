"""mpilauncher.programs.which: the PATH search the launcher does on its way to the first task."""

from __future__ import annotations

import os
import shutil
import stat
from pathlib import Path

from mpilauncher.programs import which


def make(path: Path, mode: int = 0o755) -> Path:
    path.write_text("#!/bin/sh\n")
    path.chmod(mode)
    return path


def test_the_first_executable_on_the_path_is_found_as_shutil_finds_it(tmp_path):
    first, second = tmp_path / "a", tmp_path / "b"
    first.mkdir()
    second.mkdir()
    make(first / "tool", mode=0o644)  # not executable: passed over
    (first / "dir-not-file").mkdir()  # a directory named like the program: passed over
    found = make(second / "tool")
    make(second / "dir-not-file")
    path = os.pathsep.join([str(tmp_path / "missing"), str(first), str(second)])
    assert which("tool", path) == str(found) == shutil.which("tool", path=path)
    assert which("dir-not-file", path) == str(second / "dir-not-file") == shutil.which("dir-not-file", path=path)
    assert which("absent", path) is None and shutil.which("absent", path=path) is None


def test_a_name_with_a_slash_is_checked_as_it_is_and_path_defaults_to_the_environment(tmp_path, monkeypatch):
    program = make(tmp_path / "prog")
    assert which(str(program), "/nowhere") == str(program)
    program.chmod(stat.S_IRUSR)
    if not os.access(program, os.X_OK):  # (root may execute any file with an x bit; this one has none)
        assert which(str(program)) is None
    program.chmod(0o755)
    monkeypatch.setenv("PATH", str(tmp_path))
    assert which("prog") == str(program)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("PATH", "")  # no search at all, as for shutil.which
    assert which("prog") is None is shutil.which("prog")
    monkeypatch.setenv("PATH", os.pathsep + "/nowhere")  # an empty entry: the current folder
    assert which("prog") == "prog" == shutil.which("prog")
