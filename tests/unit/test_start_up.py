"""What a run imports on its way to the first task: modules kept off that path stay off it."""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys

from mpilauncher import cli
from tests.conftest import launcher_env

#: Imported by nothing a run needs, each for a few ms of every rank's start (see programs.py, cli.HelpFormatter,
#: records.py, log.py): shutil (with zlib, bz2, lzma), dataclasses (with inspect), logging until a message.
KEPT_OFF = ("shutil", "bz2", "lzma", "dataclasses", "inspect", "logging")


def test_a_run_imports_none_of_the_modules_kept_off_its_start(tmp_path):
    """Without ``site`` (``-S``: a machine's ``.pth`` files may import any of them first, and then the
    listing would not show the run's own imports); the checkout is on PYTHONPATH."""
    lines = tmp_path / "commandlines"
    lines.write_text("true\n")
    run = subprocess.run(
        [sys.executable, "-S", "-X", "importtime", "-m", "mpilauncher", str(lines), "--cores-per-node", "1",
         "--workdir", str(tmp_path / "wd"), "--queuestate", str(tmp_path / "qs")],
        capture_output=True, text=True, timeout=120, env=launcher_env(), cwd=tmp_path,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr[-2000:]
    imported = set(re.findall(r"^import time:\s+\d+ \|\s+\d+ \|\s*([\w.]+)\s*$", run.stderr, re.M))
    assert "mpilauncher.rank0" in imported  # (the listing is read right)
    assert sorted(imported & set(KEPT_OFF)) == []


def test_help_is_laid_out_as_argparse_lays_it_out(monkeypatch):
    for columns in ("61", "143"):
        monkeypatch.setenv("COLUMNS", columns)
        parser = cli.build_parser()
        ours = parser.format_help()
        parser.formatter_class = argparse.HelpFormatter
        assert ours == parser.format_help()
    monkeypatch.delenv("COLUMNS")
    expected = os.get_terminal_size(sys.__stdout__.fileno()).columns if sys.__stdout__.isatty() else 80
    assert cli.terminal_columns() == expected


def test_the_api_makes_the_logger_at_import_so_an_application_can_take_its_messages_over():
    """The CLI imports ``logging`` at its first message; a script that imports the API finds the
    ``mpilauncher`` logger with its handler, and what it puts in that handler's place gets the messages."""
    code = (
        "import logging, mpilauncher as pylauncher; pylauncher.ClassicLauncher\n"
        "from mpilauncher import log\n"
        "logger = logging.getLogger('mpilauncher')\n"
        "print([type(h).__name__ for h in logger.handlers], logger.propagate)\n"
        "seen = []\n"
        "class Keep(logging.Handler):\n"
        "    def emit(self, record): seen.append(record.getMessage())\n"
        "logger.handlers[:] = [Keep()]\n"
        "logger.setLevel(logging.DEBUG)\n"
        "log.debug('a detail'); log.warning('a warning')\n"
        "print(seen)\n"
    )
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, env=launcher_env())
    assert run.returncode == 0, run.stderr
    assert run.stdout.splitlines() == ["['StderrHandler'] False", "['a detail', 'a warning']"]
    assert run.stderr == ""


def test_the_cli_logs_at_the_level_asked_for_before_and_after_its_first_message(capsys):
    from mpilauncher import log

    try:
        log.configure(quiet=True)
        log.info("not shown")
        log.warning("shown")
        log.configure(tasks=True)
        log.debug("a task")
        log.configure()
        log.debug("not shown either")
        log.note("a note")
    finally:
        log.configure()
    assert capsys.readouterr().err.splitlines() == [
        "mpilauncher: warning: shown", "mpilauncher: a task", "mpilauncher: note: a note",
    ]  # fmt: skip
