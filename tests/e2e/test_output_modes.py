"""Per-node output (--output per-node) as users meet it: 10,000 tasks in a handful of files, each task's
output back with `python -m mpilauncher output`, a resume that keeps the mode, a spool that cannot be used."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from mpilauncher.execution.gather import iter_output
from mpilauncher.report.joblog import read as read_joblog
from tests.conftest import EXECUTOR_LOOPS, run_cli


def test_ten_thousand_tasks_make_a_handful_of_files_and_every_output_comes_back(tmp_path: Path) -> None:
    count = 10_000
    # Output of different sizes (0 to ~2 KiB), stdout and stderr, and one without a final newline.
    (tmp_path / "commandlines").write_text(
        "".join(f"echo task PYL_ID; seq {i % 400}; echo err PYL_ID >&2\n" for i in range(count - 1))
        + "printf 'last, no newline'\n"
    )
    result = run_cli(["commandlines", "--workdir", "w", "--output", "per-node", "--quiet"], tmp_path, timeout=600)
    assert result.returncode == 0, result.stderr
    work = tmp_path / "w"
    names = sorted(p.name for p in work.iterdir())
    assert len(names) <= 2 + 2 * 8, names  # the joblog, the sweep's marker, a data file and an index per lane
    assert all(n in ("joblog", ".mpilauncher-sweep") or n.startswith("output.") for n in names), names
    assert len(read_joblog(work / "joblog")) == count
    outputs = dict(iter_output(str(work), list(range(count))))
    for i in range(count - 1):
        numbers = "".join(f"{n}\n" for n in range(1, i % 400 + 1))
        assert outputs[i] == f"task {i}\n{numbers}err {i}\n".encode(), i
    assert outputs[count - 1] == b"last, no newline"
    # The command line, as a user asks for a few of them.
    some = sorted(random.Random(14).sample(range(count - 1), 3))
    shown = run_cli(["output", "w", *map(str, some)], tmp_path)
    assert shown.returncode == 0, shown.stderr
    for i in some:
        assert f"==> task {i} <==\ntask {i}\n" in shown.stdout
    script = run_cli(["output", "w", "17", "--exec"], tmp_path)
    assert script.stdout.startswith("#!/bin/sh\n") and "seq 17" in script.stdout


@pytest.mark.parametrize("executor", EXECUTOR_LOOPS)
def test_a_resume_keeps_per_node_output_and_output_gives_the_latest_attempt(tmp_path: Path, executor: str) -> None:
    # The first attempt fails, the second (on --rerun-failed) succeeds: each says which it is.
    (tmp_path / "commandlines").write_text(
        "n=$(cat count 2>/dev/null || echo 0); echo $((n+1)) > count; echo attempt $n; [ $n -ge 1 ]\necho fine\n"
    )
    first = run_cli(["commandlines", "--workdir", "w", "--output", "per-node", "--quiet"], tmp_path,
                    MPILAUNCHER_EXECUTOR=executor)  # fmt: skip
    assert first.returncode == 1, first.stderr
    assert run_cli(["output", "w", "0"], tmp_path).stdout == "attempt 0\n"
    again = run_cli(["--resume", "queuestate", "--rerun-failed", "--quiet"], tmp_path, MPILAUNCHER_EXECUTOR=executor)
    assert again.returncode == 0, again.stderr
    assert run_cli(["output", "w", "0"], tmp_path).stdout == "attempt 1\n"
    assert not any(p.name.startswith("out") and p.name[3:].isdigit() for p in (tmp_path / "w").iterdir())
    assert '"output": "per-node"' in (tmp_path / "queuestate").read_text()


@pytest.mark.parametrize(("first", "then"), [("per-node", "per-task"), ("per-task", "per-node")])
def test_a_resume_given_the_other_output_mode_switches_to_it_and_says_so(tmp_path: Path, first: str, then: str) -> None:
    """A user walk: ``--resume ... --output per-task`` of a per-node sweep switched in silence (the README
    said a resume keeps the mode): a job script edited for a file-count quota, or the other way, may want
    the switch, but it is said."""
    (tmp_path / "commandlines").write_text("echo one\nsleep 2.5; echo two\n")
    stopped = run_cli(["commandlines", "--workdir", "w", "--output", first, "--max-runtime", "1.5", "--grace", "0.1",
                       "--cores-per-node", "1"], tmp_path)  # fmt: skip
    assert stopped.returncode == 4, stopped.stderr
    resumed = run_cli(["--resume", "queuestate", "--output", then, "--cores-per-node", "1"], tmp_path)
    assert resumed.returncode == 0, resumed.stderr
    assert f"output mode changes from {first} to {then}" in resumed.stderr, resumed.stderr
    assert run_cli(["output", "w", "0", "1"], tmp_path).stdout == "==> task 0 <==\none\n==> task 1 <==\ntwo\n"
    kept = run_cli(["--resume", "queuestate", "--rerun-failed"], tmp_path)  # (nothing to run: no mode said)
    assert "output mode changes" not in kept.stderr, kept.stderr


def test_output_of_a_damaged_data_file_says_it_is_cut_short(tmp_path: Path) -> None:
    """A user walk: data files truncated under their index gave 56 bytes of a task's 588,895, and nothing
    of another, with exit status 0."""
    (tmp_path / "commandlines").write_text("seq 1 100000\necho small\n")
    result = run_cli(["commandlines", "--workdir", "w", "--output", "per-node", "--cores-per-node", "1", "-q"],
                     tmp_path)  # fmt: skip
    assert result.returncode == 0, result.stderr
    (data,) = [p for p in (tmp_path / "w").iterdir() if p.name.startswith("output.") and not p.name.endswith("index")]
    whole = run_cli(["output", "w", "0", "1"], tmp_path)
    assert whole.returncode == 0 and whole.stdout.endswith("100000\n==> task 1 <==\nsmall\n"), whole.stderr
    with open(data, "r+b") as cut:
        cut.truncate(300)
    shown = run_cli(["output", "w", "0", "1"], tmp_path)
    assert shown.returncode == 1, shown.stderr
    assert shown.stdout.startswith("==> task 0 <==\n1\n2\n") and len(shown.stdout) < 400, shown.stdout[:400]
    errors = shown.stderr.strip().split("\n")
    assert len(errors) == 2 and all("cut short" in line for line in errors), shown.stderr
    assert errors[0].startswith("mpilauncher: error: task 0: its out cannot be read whole: cut short: ")
    assert " of its 588,895 bytes are in w/output." in errors[0], errors[0]


def test_the_default_keeps_pylauncher_files_and_output_reads_them_too(tmp_path: Path) -> None:
    (tmp_path / "commandlines").write_text("echo hello PYL_ID\necho failing PYL_ID; exit 4\n")
    assert run_cli(["commandlines", "--workdir", "w", "--quiet"], tmp_path).returncode == 1
    work = tmp_path / "w"
    assert (work / "out0").read_text() == "hello 0\n" and (work / "out1").read_text() == "failing 1\n"
    assert not (work / "exec0").exists(), "a short task that succeeded: its script only in exec.<node>.<lane>"
    assert "echo failing 1; exit 4" in (work / "exec1").read_text(), "a failed one: exec<N>, as PyLauncher's"
    assert run_cli(["output", "w", "0"], tmp_path).stdout == "hello 0\n"
    for task, line in ((0, "echo hello 0\n"), (1, "echo failing 1; exit 4\n")):
        assert run_cli(["output", "w", str(task), "--exec"], tmp_path).stdout.endswith(line)


def test_output_of_a_task_that_has_none_or_of_no_workdir_is_one_line(tmp_path: Path) -> None:
    (tmp_path / "commandlines").write_text("true\n")
    assert run_cli(["commandlines", "--workdir", "w", "--output", "per-node", "--quiet"], tmp_path).returncode == 0
    missing = run_cli(["output", "w", "5"], tmp_path)
    assert missing.returncode == 1 and missing.stderr == "mpilauncher: error: task 5: the sweep has task 0\n"
    nowhere = run_cli(["output", "nowhere", "0"], tmp_path)
    assert nowhere.returncode == 2 and nowhere.stderr == "mpilauncher: error: nowhere: no such workdir or queuestate\n"
    wide = run_cli(["output", "w", "0-100000"], tmp_path)  # (a range past the sweep: one line, not 100,000)
    assert wide.returncode == 1 and wide.stdout == "==> task 0 <==\n", wide.stdout[:200]
    assert wide.stderr.splitlines() == ["mpilauncher: error: tasks 1-100000: the sweep has task 0"]
    (tmp_path / "kept").mkdir()  # (no queuestate found: the workdir alone says what it can)
    (tmp_path / "queuestate").rename(tmp_path / "kept" / "queuestate")
    unknown = run_cli(["output", "w", "5"], tmp_path)
    assert unknown.returncode == 1 and unknown.stderr.splitlines() == [
        "mpilauncher: error: task 5: no output in w (not run yet, or still running: per-node output is in"
        " the workdir once the task ends)"
    ]
    huge = run_cli(["output", "w", "0-1000000000"], tmp_path)
    assert huge.returncode == 2 and "more than 1,000,000 ids at once" in huge.stderr


@pytest.mark.parametrize("executor", EXECUTOR_LOOPS)
def test_a_spool_directory_that_cannot_be_used_stops_the_launcher_and_nothing_fails(
    tmp_path: Path, executor: str
) -> None:
    (tmp_path / "commandlines").write_text("echo a\necho b\n")
    result = run_cli(["commandlines", "--workdir", "w", "--output", "per-node"], tmp_path,
                     MPILAUNCHER_SPOOL=str(tmp_path / "no-such-dir"), MPILAUNCHER_EXECUTOR=executor)  # fmt: skip
    assert result.returncode == 3, result.stderr
    assert "cannot start tasks: spool directory" in result.stderr and "no-such-dir" in result.stderr
    assert "tasks aborted: 0" in result.stdout
    fixed = run_cli(["--resume", "queuestate", "--quiet"], tmp_path)
    assert fixed.returncode == 0, fixed.stderr
    assert run_cli(["output", "w", "0", "1"], tmp_path).stdout == "==> task 0 <==\na\n==> task 1 <==\nb\n"
