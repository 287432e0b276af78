"""Validating options once (mpilauncher.config)."""

from __future__ import annotations

import math

import pytest

from mpilauncher.config import (
    DEFAULT_DELAY,
    DEFAULT_GRACE,
    DEFAULT_QUEUESTATE,
    debug_notes,
    make_config,
    parse_debug,
    parse_positive,
    parse_schedule,
)
from mpilauncher.core.tasks import CoresSpec
from mpilauncher.errors import EXIT_BAD_INPUT, InputError


def test_defaults():
    config = make_config("cmds")
    assert config.commandlines == "cmds" and config.resume is None
    assert config.cores == CoresSpec("fixed", 1)
    assert config.delay == DEFAULT_DELAY
    assert config.grace == DEFAULT_GRACE
    assert config.queuestate == DEFAULT_QUEUESTATE
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
    ("kwargs", "problem"),
    [
        ({"delay": 0}, "delay must be greater than 0"),
        ({"delay": "-1"}, "delay must be greater than 0"),
        ({"delay": "nan"}, "delay must be greater than 0"),
        ({"delay": float("inf")}, "delay must be greater than 0"),
        ({"delay": "soon"}, "delay must be a number"),
        ({"delay": None}, "delay must be a number"),
        ({"cores": "0"}, "at least 1"),
        ({"cores": "many"}, "unknown cores="),
        ({"cores_per_node": "0"}, "greater than 0"),
        ({"cores_per_node": "-2"}, "greater than 0"),
        ({"cores_per_node": "4.5"}, "whole number"),
        ({"cores_per_node": "x"}, "whole number"),
        ({"schedule": "blocks"}, "schedule must be 'default' or 'blockN'"),
        ({"schedule": "block0"}, "schedule must be 'default' or 'blockN'"),
        ({"schedule": "cyclic"}, "schedule must be 'default' or 'blockN'"),
        ({"start_interval": "0"}, "start interval must be greater than 0"),
        ({"start_interval": "soon"}, "start interval must be a number"),
        ({"grace": "-1"}, "grace must be 0 or more"),
    ],
)
def test_bad_values_are_input_errors(kwargs, problem):
    with pytest.raises(InputError, match=problem):
        make_config("cmds", **kwargs)


@pytest.mark.parametrize("grace", ["soon", "nan"])
def test_bad_grace_is_an_input_error(grace):
    with pytest.raises(InputError, match="grace"):
        make_config("cmds", grace=grace)


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
    config = make_config("c", debug="host+jobs+exec+verbose+cmd")
    assert config.trace_jobs and config.trace_hosts
    (note,) = config.notes
    assert "'verbose' matches none of PyLauncher's debug words" in note
    assert "cmd, exec trace nothing here" in note
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
    assert parse_positive("n", "7", integer=True) == 7
    assert isinstance(parse_positive("n", "7", integer=True), int)
    for bad in (0, -0.1, "0", "-inf", "nan", math.nan):
        with pytest.raises(InputError, match="x must be greater than 0"):
            parse_positive("x", bad)
    for bad in ("abc", None, [1], "1e2x"):
        with pytest.raises(InputError, match="x must be a number"):
            parse_positive("x", bad)
    with pytest.raises(InputError, match="n must be a whole number"):
        parse_positive("n", "2.0", integer=True)


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
