"""RunResult's account of failed tasks: the line the CLI and the API print at the end of a run."""

from __future__ import annotations

from pathlib import Path

from mpilauncher.core.stats import Statistics
from mpilauncher.records import replace
from mpilauncher.result import FailedTask, RunResult, shell_word


def result(aborted: int, failed: tuple[FailedTask, ...], queuestate: Path | None = Path("qs")) -> RunResult:
    stats = Statistics(1.0, 3, aborted, 0, 0.1, 0.1, 0.3, 0.3, 2, 2, 1.5, 0.1, 0.1)
    return RunResult(stats, Path("w"), queuestate, None, 1 if aborted else 0, failed_tasks=failed)


def test_each_way_a_task_fails_is_said_in_words():
    assert str(FailedTask(4, 5, 2)) == "task 4 (line 5): exit 2"
    assert str(FailedTask(4, 5, -9)) == "task 4 (line 5): killed by signal 9"
    assert str(FailedTask(4, 0, None)) == "task 4: no exit code"  # a generated task has no line
    assert str(FailedTask(4, 5, -15, timed_out=True)) == "task 4 (line 5): timed out (killed by signal 15)"


def test_the_line_names_the_failed_tasks_the_count_beyond_them_and_the_callers_rerun():
    named = (FailedTask(1, 2, 1), FailedTask(3, 4, 127))
    assert result(2, named).failures_text("RERUN") == (
        "2 tasks of the sweep failed: task 1 (line 2): exit 1; task 3 (line 4): exit 127."
        " Why (their output's last lines): python -m mpilauncher report qs; run them again: RERUN"
    )
    assert (
        result(9, named)
        .failures_text("RERUN")
        .startswith("9 tasks of the sweep failed: task 1 (line 2): exit 1; task 3 (line 4): exit 127; and 7 more.")
    )
    assert result(1, named[:1], queuestate=None).failures_text("R") == (
        "1 task of the sweep failed: task 1 (line 2): exit 1; run it again: R"
    )
    assert result(3, ()).failures_text("R").startswith("3 tasks of the sweep failed. Why")  # none named to us
    assert result(0, ()).failures_text("RERUN") is None
    assert RunResult(None, None, None, None, 0).failures_text("RERUN") is None  # another rank


def test_a_path_is_told_as_a_shell_word():
    assert shell_word(Path("queuestate")) == "queuestate"
    assert shell_word(Path("my state")) == "'my state'"
    assert shell_word(Path("it's")) == "'it'\"'\"'s'"


def test_a_stopped_run_whose_next_job_was_submitted_says_that_job_not_how_to_resume_by_hand():
    """With --resubmit the last line said "resume with: ...", which the next job's lock then refused."""
    stopped = replace(result(0, ()), interrupted="stopped by SIGUSR1")
    assert stopped.how_to_go_on("resume with: X") == "resume with: X"
    assert replace(stopped, next_job="4242").how_to_go_on("resume with: X") == "Slurm job 4242 goes on with it"
