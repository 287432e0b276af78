"""The chain of Slurm jobs (mpilauncher/chain.py), against a stand-in for sbatch and scontrol."""

from __future__ import annotations

import subprocess

import pytest

from mpilauncher import chain
from mpilauncher.errors import InputError, LauncherFailure


class FakeSlurm:
    """Records sbatch calls and answers with consecutive job ids; scontrol answers ``fields``."""

    def __init__(self, fields: str = "") -> None:
        self.calls: list[list[str]] = []
        self.next_id = 100
        self.fields = fields

    def __call__(self, argv, **_kw) -> subprocess.CompletedProcess:
        self.calls.append(list(argv))
        if argv[0] == "scontrol":
            return subprocess.CompletedProcess(argv, 0, self.fields, "")
        self.next_id += 1
        return subprocess.CompletedProcess(argv, 0, f"{self.next_id};cluster\n", "")


@pytest.fixture(autouse=True)
def sbatch_found(monkeypatch):
    monkeypatch.setattr(chain, "which", lambda name: f"/usr/bin/{name}")


@pytest.mark.parametrize(
    ("text", "expected"),
    [("2/5", chain.Position(2, 5)), (" 1 / 1 ", chain.Position(1, 1)), ("0/3", None), ("4/3", None),
     ("1/101", None), ("x", None), ("", None)],
)  # fmt: skip
def test_position_is_read_from_the_environment(text, expected):
    assert chain.position({"MPILAUNCHER_CHAIN": text}) == expected


def test_every_job_of_a_chain_waits_for_all_earlier_ones_to_end_not_ok():
    slurm = FakeSlurm()
    jobs = chain.submit_chain(3, ["-t", "1", "job.slurm"], run=slurm)
    assert jobs == ["101", "102", "103"]
    first, second, third = slurm.calls
    assert first == ["sbatch", "--parsable", "--export=ALL,MPILAUNCHER_CHAIN=1/3", "-t", "1", "job.slurm"]
    assert "--dependency=afternotok:101" in second and "--kill-on-invalid-dep=yes" in second
    assert "--dependency=afternotok:101:102" in third, "every earlier job: a cancelled one counts as not ok"
    assert third[-3:] == ["-t", "1", "job.slurm"], "the user's sbatch options and the script come last"


def test_a_refused_submission_is_one_line():
    def refuse(argv, **_kw):
        return subprocess.CompletedProcess(argv, 1, "", "sbatch: error: invalid partition specified: nope\n")

    with pytest.raises(LauncherFailure, match="sbatch refused the job: sbatch: error: invalid partition"):
        chain.submit_chain(2, ["-p", "nope", "job.slurm"], run=refuse)
    with pytest.raises(InputError, match="from 1 to 100"):
        chain.submit_chain(0, ["job.slurm"], run=refuse)


def test_a_job_script_that_is_not_there_is_bad_input_not_the_launchers_failure():
    """``chain -n 2 nonexist.sh`` exited 3, "the launcher itself failed" (a user walk): it is exit 2."""

    def no_file(argv, **_kw):
        return subprocess.CompletedProcess(argv, 1, "", "sbatch: error: Unable to open file nonexist.sh\n")

    with pytest.raises(InputError, match="sbatch refused the job: sbatch: error: Unable to open file nonexist.sh"):
        chain.submit_chain(2, ["nonexist.sh"], run=no_file)


def test_resubmit_carries_the_script_and_the_jobs_resources_over(tmp_path):
    script = tmp_path / "job.slurm"
    script.write_text("#!/bin/bash\n")
    slurm = FakeSlurm(f"JobId=77 JobName=sweep Command={script} WorkDir={tmp_path} Partition=debug "
                      "Account=(null) TimeLimit=00:01:00 NumNodes=2-2 StdOut=/x/job.o77")  # fmt: skip
    job, following = chain.resubmit(chain.Position(1, 3), "77", run=slurm)
    assert (job, following) == ("101", chain.Position(2, 3))
    argv = slurm.calls[-1]
    assert argv[:5] == ["sbatch", "--parsable", "--export=ALL,MPILAUNCHER_CHAIN=2/3", "--dependency=afterany:77",
                        "--kill-on-invalid-dep=yes"]  # fmt: skip
    assert argv[5:] == ["-D", str(tmp_path), "-p", "debug", "-t", "00:01:00", "-N", "2", str(script)]


def test_resubmit_of_a_script_that_is_not_a_file_says_so():
    slurm = FakeSlurm("JobId=77 Command=(null)")
    with pytest.raises(LauncherFailure, match="cannot resubmit job 77"):
        chain.resubmit(chain.Position(1, 3), "77", run=slurm)


@pytest.mark.parametrize("argv", [["job.slurm"], ["-n", "x", "job.slurm"], ["-n", "3"]])
def test_the_chain_command_needs_a_count_and_a_script(argv, capsys):
    assert chain.main(argv) == 2
    assert capsys.readouterr().err.count("\n") == 1
