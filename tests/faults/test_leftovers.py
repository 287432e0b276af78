"""Nothing of a task outlives it: what its main process leaves behind is ended (issue 10, item 5).

Each leftover carries a tag of its own in its environment (``export MPL_TEST_TAG=...``
at the start of its task's command): the tests look for exactly those processes, and
never for a pattern over the machine's whole process table.
"""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

import pytest

from mpilauncher.report.joblog import read as read_joblog
from tests.conftest import EXECUTOR_LOOPS, kill_tagged, launcher_env, new_tag, tagged_pids, wait_for

#: What users' tasks leave behind: kinds that survived the launcher before (all in the background).
LEFTOVERS = {
    "background child ignoring SIGTERM": "trap '' TERM; sleep 300 & exit 0",
    "setsid daemon": "setsid sleep 300 & exit 0",
    "double-fork daemon": "(setsid sh -c 'sleep 300' &)",
    "double-fork daemon ignoring SIGTERM": "(trap '' TERM; setsid sh -c 'sleep 300' &)",
}
#: Keeps the launcher running until the test creates the file ``release`` in the sweep directory.
BLOCKER = "while [ ! -e release ]; do sleep 0.05; done"


def launch(directory: Path, *args: str, **env: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "mpilauncher", *args], cwd=directory, env=launcher_env(**env),
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip


def write_sweep(directory: Path) -> dict[int, str]:
    """One task per kind of leftover, each with its own tag, then the blocker; returns task id -> tag."""
    tags = {task_id: new_tag() for task_id in range(len(LEFTOVERS))}
    lines = [f"export MPL_TEST_TAG={tags[i]}; {command}" for i, command in enumerate(LEFTOVERS.values())]
    (directory / "commandlines").write_text("\n".join([*lines, BLOCKER]) + "\n")
    return tags


def leftovers_of(tags: dict[int, str]) -> dict[int, list[int]]:
    return {task_id: pids for task_id, tag in tags.items() if (pids := tagged_pids(tag))}


@pytest.fixture
def tags_to_clean() -> list[str]:
    """Tags whose processes are killed after the test, whatever its outcome."""
    tags: list[str] = []
    yield tags
    for tag in tags:
        kill_tagged(tag)


@pytest.mark.parametrize("executor", EXECUTOR_LOOPS)
def test_leftovers_end_soon_after_their_task_while_the_launcher_runs_on(
    sweep_dir: Path, executor: str, tags_to_clean
) -> None:
    tags = write_sweep(sweep_dir)
    tags_to_clean.extend(tags.values())
    slots = str(len(LEFTOVERS) + 1)
    proc = launch(sweep_dir, "commandlines", "--workdir", "w", "--cores-per-node", slots, "--no-bind",
                  MPILAUNCHER_EXECUTOR=executor)  # fmt: skip
    try:
        wait_for(lambda: all((sweep_dir / "w" / f"out{i}").exists() for i in tags), what="the tasks to start")
        # SIGTERM, a 2 s grace, SIGKILL: gone within seconds, while another task keeps the launcher busy
        wait_for(lambda: not leftovers_of(tags), timeout=20, what="every task's leftovers to end")
        assert proc.poll() is None, "the launcher still runs: leftovers are ended as their task ends"
    finally:
        (sweep_dir / "release").touch()
        out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    rows = {int(r["id"]): r for r in read_joblog(sweep_dir / "w" / "joblog")}
    assert {task_id: int(rows[task_id]["leftovers"]) >= 1 for task_id in tags} == dict.fromkeys(tags, True)
    assert rows[len(LEFTOVERS)]["leftovers"] == "0", "a task that leaves nothing behind says so"
    assert list(rows[0])[-1] == "command", "command stays the last column"
    assert leftovers_of(tags) == {}


def test_inline_runner_ends_its_groups_at_the_task_end_and_escaped_daemons_at_the_run_end(
    sweep_dir: Path, tags_to_clean
) -> None:
    """The in-process runner must not make the user's process a subreaper: leftovers that stayed in
    the task's process group end with the task, those that left it (setsid) when the run ends."""
    tags = write_sweep(sweep_dir)
    tags_to_clean.extend(tags.values())
    slots = str(len(LEFTOVERS) + 1)
    proc = launch(sweep_dir, "commandlines", "--workdir", "w", "--cores-per-node", slots, "--no-bind",
                  MPILAUNCHER_EXECUTOR="inline")  # fmt: skip
    try:
        wait_for(lambda: all((sweep_dir / "w" / f"out{i}").exists() for i in tags), what="the tasks to start")
        wait_for(lambda: 0 not in leftovers_of(tags), timeout=20, what="the TERM-ignoring group member to end")
        assert proc.poll() is None
    finally:
        (sweep_dir / "release").touch()
        out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    wait_for(lambda: not leftovers_of(tags), timeout=10, what="the escaped daemons to end with the run")
    rows = {int(r["id"]): r for r in read_joblog(sweep_dir / "w" / "joblog")}
    assert rows[0]["leftovers"] == "1"


@pytest.mark.parametrize("executor", [*EXECUTOR_LOOPS, "inline"])
def test_escaped_daemons_do_not_outlive_a_launcher_killed_with_kill_9(
    sweep_dir: Path, executor: str, tags_to_clean
) -> None:
    tag = new_tag()
    tags_to_clean.append(tag)
    (sweep_dir / "commandlines").write_text(
        f"export MPL_TEST_TAG={tag}; setsid sleep 300 & (trap '' TERM; setsid sh -c 'sleep 300' &); sleep 300\n"
    )
    proc = launch(sweep_dir, "commandlines", "--workdir", "w", MPILAUNCHER_EXECUTOR=executor)
    wait_for(lambda: len(tagged_pids(tag, b"sleep 300")) >= 4, what="the task and its daemons to run")
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=10)
    wait_for(lambda: not tagged_pids(tag), timeout=20, what="the killed launcher's task and its daemons to end")
