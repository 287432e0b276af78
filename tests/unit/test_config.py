"""Validating options once (mpilauncher.config)."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from mpilauncher.config import (
    DEFAULT_DELAY,
    DEFAULT_GRACE,
    LABELS,
    debug_notes,
    make_config,
    parse_count,
    parse_debug,
    parse_positive,
    parse_schedule,
)
from mpilauncher.core.tasks import CoresSpec
from mpilauncher.errors import EXIT_BAD_INPUT, InputError, OptionError


def test_defaults():
    config = make_config("cmds")
    assert config.commandlines == "cmds" and config.resume is None
    assert config.cores == CoresSpec("fixed", 1)
    assert config.delay == DEFAULT_DELAY
    assert config.grace == DEFAULT_GRACE
    assert config.queuestate is None, "None: ./queuestate for a new sweep, the resumed file on a resume"
    assert config.debug == frozenset()
    assert config.cores_per_node is None
    assert not config.rerun_failed
    assert not config.trace_jobs and not config.trace_hosts


def test_values_as_the_cli_passes_them():
    config = make_config(
        None,
        resume="qs",
        cores="file",
        debug="host+job",
        delay="0.25",
        queuestate="state",
        cores_per_node="16",
        rerun_failed=True,
        grace="0",
        workdir="wd",
    )
    assert config.resume == "qs" and config.commandlines is None
    assert config.cores == CoresSpec("file")
    assert config.debug == {"host", "job"}
    assert config.trace_jobs and config.trace_hosts
    assert config.delay == 0.25
    assert config.queuestate == "state"
    assert config.cores_per_node == 16 and isinstance(config.cores_per_node, int)
    assert config.rerun_failed
    assert config.grace == 0.0
    assert config.workdir == "wd"


@pytest.mark.parametrize(("commandlines", "resume"), [(None, None), ("cmds", "qs")])
def test_exactly_one_of_commandlines_and_resume(commandlines, resume):
    with pytest.raises(InputError, match="exactly one") as info:
        make_config(commandlines, resume=resume)
    assert info.value.exit_status == EXIT_BAD_INPUT


@pytest.mark.parametrize(
    ("kwargs", "setting", "problem"),
    [
        ({"delay": "-1"}, "delay", "must be a number of seconds from 0 to 86,400 s (1 day), not '-1'"),
        ({"delay": "nan"}, "delay", "from 0 to"),
        ({"delay": float("inf")}, "delay", "from 0 to"),
        ({"delay": "1e300"}, "delay", "from 0 to 86,400 s (1 day), not '1e300'"),
        ({"delay": "86401"}, "delay", "from 0 to 86,400 s"),
        ({"delay": "soon"}, "delay", "must be a number of seconds"),
        ({"delay": None}, "delay", "must be a number of seconds"),
        ({"delay": True}, "delay", "must be a number of seconds"),
        ({"cores": "0"}, "cores", "must be a whole number from 1 to 10,000,000, 'node' or 'file', not '0'"),
        ({"cores": "many"}, "cores", "'node' or 'file', not 'many'"),
        ({"cores": 10_000_001}, "cores", "from 1 to 10,000,000"),
        ({"cores_per_node": "0"}, "cores_per_node", "must be a whole number from 1 to 65,536, not '0'"),
        ({"cores_per_node": "-2"}, "cores_per_node", "from 1 to 65,536"),
        ({"cores_per_node": "4.5"}, "cores_per_node", "must be a whole number"),
        ({"cores_per_node": 4.5}, "cores_per_node", "must be a whole number"),
        ({"cores_per_node": "x"}, "cores_per_node", "must be a whole number"),
        ({"cores_per_node": "10000000"}, "cores_per_node", "from 1 to 65,536, not '10000000'"),
        ({"emulate_nodes": "1000000"}, "emulate_nodes", "from 1 to 65,536"),
        ({"gpus_per_task": "100000"}, "gpus_per_task", "from 0 to 256"),
        ({"gpus_per_node": "100000"}, "gpus_per_node", "from 0 to 256"),
        ({"gpus_per_node": "-1"}, "gpus_per_node", "from 0 to 256"),
        ({"tasks_per_gpu": "0"}, "tasks_per_gpu", "from 1 to 256"),
        ({"tasks_per_gpu": "100000"}, "tasks_per_gpu", "from 1 to 256"),
        ({"retries": "1000000000"}, "retries", "from 0 to 1,000"),
        ({"retries": "-1"}, "retries", "from 0 to 1,000"),
        ({"retries": True}, "retries", "must be a whole number"),
        ({"grace": "-1"}, "grace", "must be a number of seconds from 0 to 86,400 s (1 day)"),
        ({"grace": "soon"}, "grace", "must be a number of seconds"),
        ({"grace": "nan"}, "grace", "must be a number of seconds"),
        ({"grace": "1e300"}, "grace", "from 0 to 86,400 s"),
        ({"task_timeout": "400-00:00:00"}, "task_timeout", "from 0 to 365 days (365-00:00:00, 31,536,000 s)"),
        ({"task_timeout": "nan"}, "task_timeout", "from 0 to 365 days"),
        ({"task_timeout": "-1"}, "task_timeout", "from 0 to 365 days"),
        ({"task_timeout": "1-2-3:00"}, "task_timeout", "must be seconds or [[D-]HH:]MM:SS"),
        # (a user walk: a minus before a clock value was dropped, -0:30 read as 30 s)
        ({"task_timeout": "-0:30"}, "task_timeout", "from 0 to 365 days"),
        ({"max_runtime": "-1:00:00"}, "max_runtime", "greater than 0 and at most 365 days"),
        ({"max_runtime": "-5"}, "max_runtime", "greater than 0 and at most 365 days"),
        ({"time_limit_margin": "-1:00"}, "time_limit_margin", "from 0 to 365 days"),
        ({"expected_time": "-0:30"}, "expected_time", "must be greater than 0"),
        ({"max_runtime": "inf"}, "max_runtime", "at most 365 days"),
        ({"max_runtime": 10**400}, "max_runtime", "at most 365 days"),
        ({"time_limit_margin": "1e300"}, "time_limit_margin", "from 0 to 365 days"),
        ({"beat_timeout": "1e300"}, "beat_timeout", "at most 31,536,000 s (365 days)"),
        ({"mpi_starter": "rsh"}, "mpi_starter", "must be one of"),
        ({"workdir": "w\0rk"}, "workdir", "must not contain a NUL"),
        ({"workdir": "w" * 300}, "workdir", "names of at most 255"),
        ({"queuestate": 5}, "queuestate", "must be a path"),
        ({"workdir": "~/run1"}, "workdir", "'~/run1' begins with '~', which is not expanded here"),
        ({"queuestate": "~"}, "queuestate", "give the path in full ("),
        ({"schedule": "blocks"}, "schedule", "must be 'default' or 'blockN'"),
        ({"schedule": "block0"}, "schedule", "must be 'default' or 'blockN'"),
        ({"schedule": "cyclic"}, "schedule", "must be 'default' or 'blockN'"),
        ({"start_interval": "0"}, "start_interval", "must be a number of seconds greater than 0"),
        ({"start_interval": "soon"}, "start_interval", "must be a number of seconds"),
    ],
)
def test_bad_values_are_option_errors_that_name_the_setting(kwargs, setting, problem):
    with pytest.raises(OptionError) as info:
        make_config("cmds", **kwargs)
    err = info.value
    assert err.setting == setting and problem in err.problem, err.problem
    assert err.exit_status == EXIT_BAD_INPUT
    assert err.named("--the-flag") == f"--the-flag {err.problem}"
    assert str(err) == f"{LABELS.get(setting, setting.replace('_', ' '))} {err.problem}"  # neutral without a front end


def test_a_name_that_begins_with_a_tilde_is_refused_unless_it_is_here(tmp_path, monkeypatch):
    """Nothing expands ``~`` on this path: ``workdir="~/run1"`` from a script would be a folder named ``~``."""
    monkeypatch.chdir(tmp_path)
    with pytest.raises(OptionError) as info:
        make_config(resume="~nosuchuser/qs")
    assert info.value.setting == "resume" and "or ./~nosuchuser/qs for a name that begins with '~'" in str(info.value)
    with pytest.raises(OptionError, match="commandlines '~/cl' begins with '~'"):
        make_config("~/cl")
    (tmp_path / "~").mkdir()  # a folder of that name, made on purpose: the name is what it says
    assert make_config("cmds", workdir="~/run1").workdir == "~/run1"
    assert make_config("cmds", workdir="./~x").workdir == "./~x"
    assert make_config("cmds", workdir="a~b").workdir == "a~b"


@pytest.mark.parametrize(
    ("kwargs", "attribute", "value"),
    [
        ({"task_timeout": "30-00:00:00"}, "task_timeout", 30 * 86400.0),  # days mean "no limit": they work
        ({"task_timeout": "365-00:00:00"}, "task_timeout", 365 * 86400.0),
        ({"max_runtime": "3-00:00:00"}, "max_runtime", 3 * 86400.0),
        ({"time_limit_margin": "0"}, "time_limit_margin", 0.0),
        ({"delay": "86400"}, "delay", 86400.0),
        ({"cores_per_node": "65536"}, "cores_per_node", 65536),
        ({"cores_per_node": 16.0}, "cores_per_node", 16),
        ({"emulate_nodes": "64"}, "emulate_nodes", 64),
        ({"gpus_per_task": "0"}, "gpus_per_task", 0),
        ({"gpus_per_node": "0"}, "gpus_per_node", 0),
        ({"retries": "1000"}, "retries", 1000),
        ({"retries": None}, "retries", None),
        ({"grace": "0"}, "grace", 0.0),
        ({"beat_timeout": 0}, "beat_timeout", None),
        ({"workdir": Path("w")}, "workdir", "w"),
    ],
)
def test_values_at_the_bounds_are_accepted(kwargs, attribute, value):
    assert getattr(make_config("cmds", **kwargs), attribute) == value


# -- parse_debug / parse_positive --------------------------------------------------
@pytest.mark.parametrize(
    ("value", "words"),
    [
        (None, set()),
        (False, set()),
        ("", set()),
        (True, {"job", "host"}),
        ("job", {"job"}),
        ("host+job", {"host", "job"}),
        ("job,host", {"host", "job"}),
        ("job host  queue", {"host", "job", "queue"}),
        ("+job++", {"job"}),
        ("ssh+exec", {"ssh", "exec"}),
    ],
)
def test_parse_debug(value, words):
    assert parse_debug(value) == frozenset(words)


@pytest.mark.parametrize(
    ("value", "words"),
    [
        ("verbose", set()),
        ("1", set()),
        ("jobs", {"job"}),  # PyLauncher's example_comma_launcher.py: "host+jobs+exec"
        ("job+host+task+exec+cmd", {"job", "host", "task", "exec", "cmd"}),
        ("host+exec+task+job+command", {"job", "host", "task", "exec", "command"}),
        ("JOB", {"job"}),
    ],
)
def test_parse_debug_matches_words_anywhere_as_pylauncher_does(value, words):
    assert parse_debug(value) == frozenset(words)


def test_debug_words_that_do_nothing_get_one_note_and_no_error():
    config = make_config("c", debug="host+jobs+exec+verbose+cmd+ssh")
    assert config.trace_jobs and config.trace_hosts and config.trace_tasks
    (note,) = config.notes
    assert "'verbose' matches none of PyLauncher's debug words" in note
    assert "ssh trace nothing here" in note, "exec and cmd trace each task's start and end"
    assert make_config("c", debug="host+job").notes == ()
    assert debug_notes(None) == debug_notes(True) == debug_notes("") == []


def test_trace_flags():
    assert make_config("c", debug="queue").trace_jobs
    assert not make_config("c", debug="queue").trace_hosts
    assert not make_config("c", debug="ssh").trace_jobs


@pytest.mark.parametrize(
    ("value", "block"), [(None, 1), ("", 1), ("default", 1), ("block1", 1), ("block3", 3), ("Block8", 8)]
)
def test_parse_schedule(value, block):
    assert parse_schedule(value) == block
    assert make_config("c", schedule=value).block == block


def test_start_interval_and_start_over():
    config = make_config("c", start_interval="1.5", start_over=True)
    assert config.start_interval == 1.5 and config.start_over
    assert make_config("c").start_interval is None and not make_config("c").start_over


def test_parse_positive():
    assert parse_positive("x", "2.5") == 2.5
    assert parse_positive("x", 3) == 3.0
    assert parse_positive("x", "3e7", most=4e7) == 3e7
    for bad in (0, -0.1, "0", "-inf", "nan", math.nan, "abc", None, [1], "1e2x", True, "4e7"):
        with pytest.raises(OptionError, match="^x must be a number of seconds greater than 0 and at most 3") as info:
            parse_positive("x", bad, most=3e7)
        assert info.value.setting == "x"


def test_parse_count():
    assert parse_count("n", "7", 1, 9) == 7 and isinstance(parse_count("n", "7", 1, 9), int)
    assert parse_count("n", 7.0, 1, 9) == 7 and parse_count("n", " 9 ", 1, 9) == 9
    for bad in ("2.0", "1e1", "+3", "1_0", 2.5, True, None, "", "0", "10", "9" * 5000):
        with pytest.raises(OptionError, match="^n must be a whole number from 1 to 9, not "):
            parse_count("n", bad, 1, 9)


def test_task_environment_drops_the_launchers_mpi_wiring_but_keeps_user_mpi_settings():
    from mpilauncher.execution.environment import base_environment

    env = {
        "PMI_RANK": "0", "PMI_FD": "7", "HYDI_CONTROL_FD": "9", "MPI_LOCALNRANKS": "4", "PMIX_RANK": "1",
        "OMPI_COMM_WORLD_SIZE": "4", "OMPI_MCA_ess_base_jobid": "1", "OMPI_MCA_pmix_server_uri": "x",
        "OMPI_MCA_btl": "self,vader", "OMPI_ALLOW_RUN_AS_ROOT": "1", "MPIR_CVAR_CH4_NETMOD": "ofi",
        "PATH": "/bin", "SLURM_JOB_ID": "5",
    }  # fmt: skip
    assert base_environment(env) == {
        "OMPI_MCA_btl": "self,vader", "OMPI_ALLOW_RUN_AS_ROOT": "1", "MPIR_CVAR_CH4_NETMOD": "ofi",
        "PATH": "/bin", "SLURM_JOB_ID": "5",
    }  # fmt: skip


def test_max_runtime_counts_from_when_the_run_began_not_from_after_planning():
    """Issue 10.9: reading a million commandlines took 3-6 s that --max-runtime did not count."""
    import time

    from mpilauncher.rank0 import run_deadline

    began = time.monotonic() - 5.0
    deadline, reason, name = run_deadline(make_config("cmds", max_runtime=60, time_limit_margin=0), began, None)
    assert deadline == began + 60 and "max-runtime" in reason and name == "--max-runtime"


@pytest.mark.parametrize(("left", "refused"), [(30.0, True), (60.0, True), (61.0, False), (None, False)])
def test_a_job_whose_time_left_is_within_the_margin_is_refused_before_anything_runs(monkeypatch, left, refused):
    """A user walk: ``#SBATCH -t 1`` with the default margin of 60 s ran nothing and exited 4 (resume it):
    every job of a chain the same, and --resubmit would submit such a job again and again."""
    import time

    from mpilauncher import cluster
    from mpilauncher.rank0 import job_end, run_deadline

    monkeypatch.setattr(cluster, "job_seconds_left", lambda: left)
    config = make_config("cmds")
    if refused:
        with pytest.raises(OptionError, match="nothing could run; give the job more time") as info:
            job_end(config)
        # (a user walk: the line read "--time-limit-margin the run would stop 60 s before ...")
        assert "margin of 60 s leaves nothing: the job has " in str(info.value), info.value
        return
    ends = job_end(config)
    if left is None:
        assert ends is None and run_deadline(config, time.monotonic(), ends)[0] is None
    else:
        deadline, reason, _ = run_deadline(config, time.monotonic(), ends)
        assert abs(deadline - (time.monotonic() + left - 60)) < 1 and "before the job's time limit" in reason


@pytest.mark.parametrize(("value", "expected"), [("file", "file"), ("FILE", "file"), (90, 90.0), ("1:30:00", 5400.0)])
def test_expected_time_is_file_or_a_duration(value, expected):
    assert make_config("cmds", expected_time=value).expected_time == expected
    assert make_config("cmds").expected_time is None


@pytest.mark.parametrize("value", ["never", 0, "-5", True])
def test_a_bad_expected_time_names_the_setting(value):
    with pytest.raises(OptionError) as info:
        make_config("cmds", expected_time=value)
    assert info.value.setting == "expected_time" and "'file'" in str(info.value)


@pytest.mark.parametrize(
    ("given", "taken", "said"),
    [
        ({"delay": "1e-9"}, {"delay": 0.01}, ["a delay of 1e-09 s is taken as 0.01 s"]),
        ({"delay": 0}, {"delay": 0.01}, ["a delay of 0 s is taken as 0.01 s"]),  # (PyLauncher sleeps 0)
        ({"delay": 0.01}, {"delay": 0.01}, []),
        ({"progress_interval": 0.001}, {"progress_interval": 0.01}, ["a progress interval of 0.001 s is taken"]),
        ({"delay": 1e-4, "progress_interval": 1e-6}, {"delay": 0.01, "progress_interval": 0.01}, ["delay", "progress"]),
    ],
)  # fmt: skip
def test_a_tiny_interval_is_taken_as_the_shortest_with_a_note_not_a_busy_core(given, taken, said):
    """``--delay 1e-9`` ticked 14,000 times a second and kept a core busy (a user walk); a PyLauncher
    script's tiny ``delay=`` still runs, at 0.01 s, and is told so."""
    config = make_config("cl", **given)
    assert {name: getattr(config, name) for name in taken} == taken
    notes = [n for n in config.notes if "is taken as" in n]
    assert len(notes) == len(said) and all(part in note for part, note in zip(said, notes, strict=True)), notes
