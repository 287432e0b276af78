"""Values that pass a type check and then crash: every field of everything read is checked.

Hand-edited queuestates and journals, and option values beyond any sane bound, must give
one line naming the file (and line) or the option, exit status 2, no traceback, and
nothing written -- through ``--resume`` and ``--status`` alike.  Durations people write
to mean "no limit" (days) must work, not be refused.
"""

from __future__ import annotations

import hashlib
import os
import shutil
from pathlib import Path

import pytest

from mpilauncher import cli, compat
from mpilauncher.report.joblog import read as read_joblog
from tests.conftest import run_cli

RUN = "0123456789ab"
META = (
    '{"format": 1, "run": "0123456789ab", "commandlines": "DIR/cl", "sha256": "' + "0" * 64 + '", "cores": "1",'
    ' "workdir": "DIR/work", "journal": "queuestate.journal", "elapsed": 2.5, "written": "2026-01-01T00:00:00"}'
)
#: A queuestate as the launcher writes it (line numbers in the comments).
STATE = "\n".join(
    [
        "# mpilauncher queuestate (format 1) written 2026-01-01T00:00:00: 1 queued, 1 running, 1 completed, 1 failed.",
        "#meta " + META,  # 2
        "queued",
        "3 line=4: true",  # 4
        "running",
        "2 line=3 start=1767225600.000 host=node1 slots=1: true",  # 6
        "completed",
        "0 line=1 exit=0 start=1767225600.000 runtime=0.500 host=node1 slots=0: true",  # 8
        "failed",
        "1 line=2 exit=1 start=1767225600.000 runtime=0.500 host=node1 slots=1: false",  # 10
        "# end of queuestate: 4 tasks",
        "",
    ]
)
#: Its journal: lines 2-4 are records.
JOURNAL = f"#mpilauncher-journal 1 run={RUN}\nS\t3\t1767225601.000\tnode1\t0\nE\t3\t0\t1767225601.000\t0.250\nQ\t2\n"

# (case, file, old, new, line the error names, a word the problem names)
RUNNING = b"start=1767225600.000 host=node1 slots=1"  # (on line 6)
STATE_CASES = [
    ("NUL in a command", "queuestate", b"3 line=4: true", b"3 line=4: tr\0ue", 4, "NUL"),
    ("meta retry_bases base", "queuestate", b'"elapsed"', b'"retry_bases": {"x": "0"}, "elapsed"', 2, "retry_bases"),
    ("meta retry_bases ids", "queuestate", b'"elapsed"', b'"retry_bases": {"3": "0-"}, "elapsed"', 2, "retry_bases"),
    ("empty command", "queuestate", b"3 line=4: true", b"3 line=4: ", 4, "no command"),
    ("cores=0", "queuestate", b"3 line=4:", b"3 line=4 cores=0:", 4, "cores"),
    ("cores=-4", "queuestate", b"3 line=4:", b"3 line=4 cores=-4:", 4, "cores"),
    ("cores=1.5", "queuestate", b"3 line=4:", b"3 line=4 cores=1.5:", 4, "cores"),
    ("cores huge", "queuestate", b"3 line=4:", b"3 line=4 cores=99999999999:", 4, "cores"),
    ("negative id", "queuestate", b"3 line=4:", b"-3 line=4:", 4, "task id"),
    ("huge id", "queuestate", b"3 line=4:", b"99999999999999 line=4:", 4, "task id"),
    ("id with a sign", "queuestate", b"3 line=4:", b"+3 line=4:", 4, "task id"),
    ("duplicate id", "queuestate", b"2 line=3 start", b"3 line=3 start", 6, "listed twice"),
    ("negative line", "queuestate", b"3 line=4:", b"3 line=-4:", 4, "line"),
    ("huge line", "queuestate", b"3 line=4:", b"3 line=99999999999999:", 4, "line"),
    ("unknown field", "queuestate", b"3 line=4:", b"3 line=4 colour=red:", 4, "colour"),
    ("field given twice", "queuestate", b"3 line=4:", b"3 line=4 line=5:", 4, "twice"),
    ("exit=1e9", "queuestate", b"exit=1 ", b"exit=1000000000 ", 10, "exit"),
    ("exit not whole", "queuestate", b"exit=1 ", b"exit=1.5 ", 10, "exit"),
    ("exit=-999", "queuestate", b"exit=1 ", b"exit=-999 ", 10, "exit"),
    ("exit 0 among failed", "queuestate", b"exit=1 ", b"exit=0 ", 10, "exit"),
    ("exit 3 among completed", "queuestate", b"exit=0 ", b"exit=3 ", 8, "exit"),
    ("start=nan", "queuestate", RUNNING, RUNNING.replace(b"1767225600.000", b"nan"), 6, "start"),
    ("start=inf", "queuestate", RUNNING, RUNNING.replace(b"1767225600.000", b"inf"), 6, "start"),
    ("start<0", "queuestate", RUNNING, RUNNING.replace(b"1767225600.000", b"-1"), 6, "start"),
    ("start=1e300", "queuestate", RUNNING, RUNNING.replace(b"1767225600.000", b"1e300"), 6, "start"),
    ("runtime<0", "queuestate", b"runtime=0.500 host=node1 slots=0", b"runtime=-0.5 host=node1 slots=0", 8, "runtime"),
    ("runtime=nan", "queuestate", b"runtime=0.500 host=node1 slots=0", b"runtime=nan host=node1 slots=0", 8, "runtime"),
    ("empty host", "queuestate", b"host=node1 slots=1: true", b"host= slots=1: true", 6, "host"),
    ("control char in host", "queuestate", b"host=node1 slots=1: true", b"host=no\x01de slots=1: true", 6, "host"),
    ("non-UTF-8 host", "queuestate", b"host=node1 slots=1: true", b"host=node\xff slots=1: true", 6, "host"),
    ("slots=0-999999999999", "queuestate", b"slots=1: true", b"slots=0-999999999999: true", 6, "slots"),
    ("slots reversed", "queuestate", b"slots=1: true", b"slots=5-3: true", 6, "slots"),
    ("slots twice", "queuestate", b"slots=1: true", b"slots=1,1: true", 6, "slots"),
    ("slots negative", "queuestate", b"slots=1: true", b"slots=-1: true", 6, "slots"),
    ("meta cores a number", "queuestate", b'"cores": "1"', b'"cores": 5', 2, "cores"),
    ("meta cores 0", "queuestate", b'"cores": "1"', b'"cores": "0"', 2, "cores"),
    ("meta cores huge", "queuestate", b'"cores": "1"', b'"cores": "99999999999"', 2, "cores"),
    ("meta elapsed text", "queuestate", b'"elapsed": 2.5', b'"elapsed": "x"', 2, "elapsed"),
    ("meta elapsed NaN", "queuestate", b'"elapsed": 2.5', b'"elapsed": NaN', 2, "elapsed"),
    ("meta elapsed <0", "queuestate", b'"elapsed": 2.5', b'"elapsed": -1', 2, "elapsed"),
    ("meta elapsed huge", "queuestate", b'"elapsed": 2.5', b'"elapsed": 1e400', 2, "elapsed"),
    (
        "task line removed",
        "queuestate",
        b"running\n2 line=3 start=1767225600.000 host=node1 slots=1: true\n",
        b"running\n",
        10,
        "removed or added",
    ),
    ("task line added", "queuestate", b"3 line=4: true\n", b"3 line=4: true\n4 line=5: true\n", 12, "removed or added"),
    ("meta journal ../x", "queuestate", b'"queuestate.journal"', b'"../x"', 2, "journal"),
    ("meta journal sub/x", "queuestate", b'"queuestate.journal"', b'"sub/x"', 2, "journal"),
    ("meta journal ..", "queuestate", b'"queuestate.journal"', b'".."', 2, "journal"),
    ("meta journal a number", "queuestate", b'"queuestate.journal"', b"7", 2, "journal"),
    ("meta workdir a number", "queuestate", b'"DIR/work"', b"5", 2, "workdir"),
    ("meta workdir with NUL", "queuestate", b'"DIR/work"', b'"DIR/w\\u0000rk"', 2, "workdir"),
    ("meta workdir too long", "queuestate", b'"DIR/work"', b'"DIR/' + b"w" * 300 + b'"', 2, "workdir"),
    ("meta commandlines a list", "queuestate", b'"DIR/cl"', b'["cl"]', 2, "commandlines"),
    ("meta run a number", "queuestate", b'"run": "0123456789ab"', b'"run": 5', 2, "run"),
    ("meta run not hex", "queuestate", b'"run": "0123456789ab"', b'"run": "zz top"', 2, "run"),
    ("meta sha256 a number", "queuestate", b'"sha256": "000', b'"sha256": 5, "x": "000', 2, "sha256"),
    ("meta sha256 short", "queuestate", b'"sha256": "000', b'"sha256": "abc", "x": "000', 2, "sha256"),
    ("meta format true", "queuestate", b'"format": 1', b'"format": true', 2, "format"),
    ("meta written a number", "queuestate", b'"written": "2026-01-01T00:00:00"', b'"written": 5', 2, "written"),
    ("meta mpi a word", "queuestate", b'"written"', b'"mpi": "yes", "written"', 2, "mpi"),
    ("meta gpus_per_task text", "queuestate", b'"written"', b'"gpus_per_task": "x", "written"', 2, "gpus_per_task"),
    ("meta gpus_per_task huge", "queuestate", b'"written"', b'"gpus_per_task": 99999, "written"', 2, "gpus_per_task"),
    ("meta non-UTF-8 outside a string", "queuestate", b'"format": 1', b'"format": 1\xff', 2, "#meta"),
    ("journal exit=1e9", "queuestate.journal", b"E\t3\t0\t", b"E\t3\t1000000000\t", 3, "exit"),
    ("journal start=nan", "queuestate.journal", b"S\t3\t1767225601.000", b"S\t3\tnan", 2, "start"),
    ("journal start huge", "queuestate.journal", b"S\t3\t1767225601.000", b"S\t3\t1e300", 2, "start"),
    ("journal runtime<0", "queuestate.journal", b"\t0.250\n", b"\t-0.250\n", 3, "runtime"),
    ("journal huge slots", "queuestate.journal", b"node1\t0\n", b"node1\t0-999999999999\n", 2, "slots"),
    ("journal empty host", "queuestate.journal", b"\tnode1\t", b"\t\t", 2, "host"),
    ("journal non-UTF-8 host", "queuestate.journal", b"\tnode1\t", b"\tnode\xff\t", 2, "host"),
    ("journal extra field", "queuestate.journal", b"node1\t0\n", b"node1\t0\textra\n", 2, "fields"),
    ("journal Q extra field", "queuestate.journal", b"Q\t2\n", b"Q\t2\t1\nQ\t2\n", 4, "fields"),
    ("journal negative id", "queuestate.journal", b"S\t3\t", b"S\t-3\t", 2, "task id"),
    ("journal unknown task", "queuestate.journal", b"S\t3\t", b"S\t99\t", 2, "99"),
    ("journal unknown kind", "queuestate.journal", b"Q\t2\n", b"X\t2\nQ\t2\n", 4, "kind"),
]


def write_sweep(directory: Path, edit: tuple[str, bytes, bytes] | None = None) -> None:
    files = {
        "queuestate": STATE.replace("DIR", str(directory)).encode(),
        "queuestate.journal": JOURNAL.encode(),
    }
    if edit is not None:
        name, old, new = edit
        assert files[name].count(old.replace(b"DIR", str(directory).encode())) >= 1, old
        files[name] = files[name].replace(old.replace(b"DIR", str(directory).encode()), new.replace(
            b"DIR", str(directory).encode()), 1)  # fmt: skip
    for name, data in files.items():
        (directory / name).write_bytes(data)


def listing(directory: Path) -> dict[str, str]:
    """Every file under ``directory`` and a digest of its bytes: 'nothing written' means this is unchanged."""
    return {
        str(p.relative_to(directory)): hashlib.sha256(p.read_bytes()).hexdigest() if p.is_file() else "dir"
        for p in sorted(directory.rglob("*"))
    }


def outside_any_job(monkeypatch) -> None:
    """As a user runs the launcher on a workstation (see tests.conftest.launcher_env)."""
    for name in list(os.environ):
        if name.startswith(("SLURM_", "PMI_", "HYDI_", "OMP_NUM")):
            monkeypatch.delenv(name)


def run_main(args: list[str], directory: Path, monkeypatch, capfd) -> tuple[int, str, str]:
    """``python -m mpilauncher ARGS`` in-process (the CLI's own main: its exits, its one-line errors)."""
    outside_any_job(monkeypatch)
    monkeypatch.chdir(directory)
    status = cli.main(args)
    out, err = capfd.readouterr()
    return status, out, err


def only_failure(err: str) -> str:
    """The line that names the sweep's failed tasks at the end of a run (the only one expected here)."""
    (line,) = [line for line in err.splitlines() if line.startswith("mpilauncher: 1 task of the sweep failed: ")]
    return line


def test_the_untouched_sweep_is_read(sweep_dir: Path, monkeypatch, capfd) -> None:
    write_sweep(sweep_dir)
    status, out, err = run_main(["--status", "queuestate"], sweep_dir, monkeypatch, capfd)
    assert status == 0, err
    assert "completed   2 jobs: 0 3" in out and "queued      1 jobs: 2" in out
    status, out, err = run_main(["--resume", "queuestate"], sweep_dir, monkeypatch, capfd)
    assert status == 1, err  # task 1 failed before; task 2 runs now
    assert err.splitlines() == [only_failure(err)] and "task 1 (line 2)" in err, err  # (named again)
    assert (sweep_dir / "work" / "out2").exists() and not (sweep_dir / "work" / "out3").exists()


@pytest.mark.parametrize("mode", ["--status", "--resume"])
@pytest.mark.parametrize(("case", "name", "old", "new", "line", "word"), STATE_CASES, ids=[c[0] for c in STATE_CASES])
def test_a_hand_edited_state_is_one_line_exit_2_nothing_written(
    sweep_dir: Path, monkeypatch, capfd, mode, case, name, old, new, line, word
) -> None:
    write_sweep(sweep_dir, (name, old, new))
    before = listing(sweep_dir)
    status, out, err = run_main([mode, "queuestate"], sweep_dir, monkeypatch, capfd)
    lines = err.strip().split("\n")
    assert status == 2, (case, status, err)
    assert len(lines) == 1 and "Traceback" not in err, err
    where = f"mpilauncher: error: {name}:{line}: "
    assert lines[0].startswith(where), lines[0]
    assert word in lines[0][len(where) :], lines[0]
    assert out == ""
    assert listing(sweep_dir) == before, "bad input must write nothing"


def test_non_utf8_bytes_in_a_command_are_allowed(sweep_dir: Path, monkeypatch, capfd) -> None:
    write_sweep(sweep_dir, ("queuestate", b"2 line=3 start=1767225600.000 host=node1 slots=1: true",
                            b"2 line=3 start=1767225600.000 host=node1 slots=1: printf '\xff'"))  # fmt: skip
    status, out, err = run_main(["--status", "queuestate"], sweep_dir, monkeypatch, capfd)
    assert status == 0, err
    status, out, err = run_main(["--resume", "queuestate"], sweep_dir, monkeypatch, capfd)
    assert status == 1 and err.splitlines() == [only_failure(err)], err
    assert (sweep_dir / "work" / "out2").read_bytes() == b"\xff"
    assert b"printf '\xff'" in (sweep_dir / "queuestate").read_bytes()


# -- options -----------------------------------------------------------------------------
#: (CLI flag, value, the PyLauncher keyword for it or None)
BAD_OPTIONS = [
    ("--delay", "1e300", "delay"),
    ("--delay", "90000", "delay"),
    ("--cores-per-node", "10000000", "corespernode"),
    ("--cores-per-node", "4.5", "corespernode"),
    ("--cores", "99999999", "cores"),
    ("--task-timeout", "400-00:00:00", "taskmaxruntime"),
    ("--task-timeout", "nan", "taskmaxruntime"),
    ("--max-runtime", "1e300", "maxruntime"),
    ("--max-runtime", "inf", "maxruntime"),
    ("--retries", "1000000000", "retries"),
    ("--retries", "-1", "retries"),
    ("--gpus-per-task", "100000", "gpuspertask"),
    ("--gpus-per-node", "100000", "gpuspernode"),
    ("--tasks-per-gpu", "100000", "taskspergpu"),
    ("--grace", "1e300", None),
    ("--time-limit-margin", "1e300", None),
    ("--agent-timeout", "1e300", None),
    ("--emulate-nodes", "1000000000", None),
    ("--mpi-starter", "rsh", "mpi_starter"),
    ("--progress", "sometimes", "progress"),
    ("--progress-interval", "0", "progress_interval"),
    ("--progress-interval", "1e300", "progress_interval"),
]


@pytest.mark.parametrize(("flag", "value", "keyword"), BAD_OPTIONS, ids=[f"{b[0]}={b[1]}" for b in BAD_OPTIONS])
def test_a_bad_option_names_the_flag_one_line_exit_2_nothing_written(sweep_dir: Path, flag, value, keyword) -> None:
    (sweep_dir / "commandlines").write_text("true\n")
    before = listing(sweep_dir)
    result = run_cli(["commandlines", "--workdir", "w", f"{flag}={value}"], sweep_dir, timeout=60)
    lines = result.stderr.strip().split("\n")
    assert result.returncode == 2, result.stderr
    assert len(lines) == 1 and "Traceback" not in result.stderr, result.stderr
    assert lines[0].startswith(f"mpilauncher: error: {flag} must "), lines[0]
    assert listing(sweep_dir) == before, "bad input must write nothing"


API_CASES = [(keyword, value) for flag, value, keyword in BAD_OPTIONS if keyword] + [
    ("corespernode", 4.5),
    ("delay", float("inf")),
    ("retries", True),
    ("taskmaxruntime", 10**400),
    ("workdir", "w\0rk"),
    ("queuestate", 5),
]


@pytest.mark.parametrize(("keyword", "value"), API_CASES, ids=[f"{k}={v!r}"[:40] for k, v in API_CASES])
def test_a_bad_keyword_names_the_keyword_one_line_exit_2_nothing_written(
    sweep_dir: Path, monkeypatch, capfd, keyword, value
) -> None:
    (sweep_dir / "commandlines").write_text("true\n")
    outside_any_job(monkeypatch)
    monkeypatch.chdir(sweep_dir)
    before = listing(sweep_dir)
    with pytest.raises(SystemExit) as info:
        compat.ClassicLauncher("commandlines", **{keyword: value})
    out, err = capfd.readouterr()
    lines = err.strip().split("\n")
    assert info.value.code == 2, err
    assert len(lines) == 1 and "Traceback" not in err, err
    assert lines[0].startswith(f"mpilauncher: error: {keyword}= must "), lines[0]
    assert listing(sweep_dir) == before, "bad input must write nothing"


# -- durations that mean "no limit" ---------------------------------------------------------
LONG = ["--task-timeout", "30-00:00:00", "--max-runtime", "3-00:00:00", "--time-limit-margin", "2-00:00:00"]


def test_durations_of_days_run_to_completion_and_resume(sweep_dir: Path) -> None:
    """30 days is beyond what epoll takes (2**31 ms): the waits cope, nothing is refused."""
    (sweep_dir / "commandlines").write_text("sleep 0.3\nsleep 0.2; true\ntest -e flag || { touch flag; exit 3; }\n")
    first = run_cli(["commandlines", "--workdir", "w", *LONG], sweep_dir)
    assert first.returncode == 1, first.stderr  # the third task fails its first time
    assert "Traceback" not in first.stderr and "error" not in first.stderr, first.stderr
    rows = read_joblog(sweep_dir / "w" / "joblog")
    assert sorted((r["id"], r["status"]) for r in rows) == [("0", "ok"), ("1", "ok"), ("2", "failed")]
    again = run_cli(["--resume", "queuestate", "--rerun-failed", *LONG], sweep_dir)
    assert again.returncode == 0, again.stderr
    assert "Traceback" not in again.stderr and "error" not in again.stderr, again.stderr
    assert "# tasks completed: 3\n" in again.stdout
    assert [r["status"] for r in read_joblog(sweep_dir / "w" / "joblog") if r["id"] == "2"] == ["failed", "ok"]


# -- an MPI starter that is not there -------------------------------------------------------
def no_starter_on_path(monkeypatch, directory: Path) -> None:
    """PATH with the shell's tools only: no ibrun, srun or mpiexec (a login node's bare PATH)."""
    bare = directory / "bin"
    bare.mkdir()
    for tool in ("sh", "true", "false", "echo"):
        (bare / tool).symlink_to(shutil.which(tool))
    monkeypatch.setenv("PATH", str(bare))


@pytest.mark.parametrize(
    ("starter", "problem"),
    [
        ("ibrun", "--mpi-starter ibrun: no ibrun on PATH"),
        ("srun", "--mpi-starter srun: srun starts MPI tasks only inside a Slurm job"),
        ("mpiexec", "--mpi-starter mpiexec: no mpiexec on PATH"),
        ("auto", "--mpi-starter auto finds no MPI starter here"),
    ],
)
def test_a_sweep_of_mpi_tasks_without_its_starter_is_refused_at_the_start(
    sweep_dir: Path, monkeypatch, capfd, starter, problem
) -> None:
    """Every MPI task would fail at its start (127; srun outside a job retries for seconds), each
    task's output alone saying why: one line, exit 2, nothing run or written."""
    (sweep_dir / "commandlines").write_text("echo one\necho two\n")
    no_starter_on_path(monkeypatch, sweep_dir)
    before = listing(sweep_dir)
    status, out, err = run_main(["commandlines", "--mpi", "--cores", "1", "--mpi-starter", starter], sweep_dir,
                                monkeypatch, capfd)  # fmt: skip
    assert status == 2, err
    assert err.strip() == f"mpilauncher: error: {problem}" + err.strip().partition(problem)[2], err
    assert err.strip().endswith("every MPI task of the sweep would fail at its start"), err
    assert listing(sweep_dir) == before, "a refused run writes nothing"


def test_a_resumed_mpi_sweep_checks_its_starter_and_one_with_nothing_to_run_needs_none(
    sweep_dir: Path, monkeypatch, capfd
) -> None:
    """Whether the tasks are MPI programs is the sweep's (its queuestate's), not the resume's options."""
    (sweep_dir / "commandlines").write_text("echo one\nfalse\n")
    first = ["commandlines", "--mpi", "--cores", "1", "--workdir", "w"]
    status, _, err = run_main(first, sweep_dir, monkeypatch, capfd)
    assert status == 1, err  # its second task failed, under the mpiexec found on PATH
    no_starter_on_path(monkeypatch, sweep_dir)
    before = listing(sweep_dir)
    status, _, err = run_main(["--resume", "queuestate", "--rerun-failed"], sweep_dir, monkeypatch, capfd)
    assert status == 2 and "error: --mpi-starter auto finds no MPI starter here" in err, err
    assert listing(sweep_dir) == before
    status, out, err = run_main(["--resume", "queuestate"], sweep_dir, monkeypatch, capfd)
    assert status == 1 and "error" not in err, err  # nothing to run: no starter needed, the sweep's status


def test_ibrun_launcher_without_ibrun_names_its_keyword(sweep_dir: Path, monkeypatch, capfd) -> None:
    (sweep_dir / "commandlines").write_text("echo one\n")
    outside_any_job(monkeypatch)
    no_starter_on_path(monkeypatch, sweep_dir)
    monkeypatch.chdir(sweep_dir)
    before = listing(sweep_dir)
    with pytest.raises(SystemExit) as info:
        compat.IbrunLauncher("commandlines", cores=1, mpi_starter="ibrun")
    _, err = capfd.readouterr()
    assert info.value.code == 2, err
    assert err.strip().startswith("mpilauncher: error: mpi_starter= ibrun: no ibrun on PATH;"), err
    assert listing(sweep_dir) == before
