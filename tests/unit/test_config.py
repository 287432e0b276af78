"""Validating options once (mpilauncher.config)."""

from __future__ import annotations

import math

import pytest

from mpilauncher.config import (
    DEFAULT_DELAY,
    DEFAULT_GRACE,
    make_config,
    parse_debug,
    parse_positive,
)
from mpilauncher.core.tasks import CoresSpec
from mpilauncher.errors import EXIT_BAD_INPUT, InputError


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
        ({"debug": "job+verbose"}, "unknown debug= value 'verbose'"),
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


@pytest.mark.parametrize("value", ["verbose", "job+all", "1"])
def test_parse_debug_rejects_unknown_words(value):
    with pytest.raises(InputError, match="unknown debug= value") as info:
        parse_debug(value)
    assert "job" in str(info.value) and "host" in str(info.value)  # says what is allowed


def test_parse_debug_names_every_unknown_word():
    with pytest.raises(InputError, match="'bar\\+foo'"):
        parse_debug("foo+job+bar")


def test_trace_flags():
    assert make_config("c", debug="queue").trace_jobs
    assert not make_config("c", debug="queue").trace_hosts
    assert not make_config("c", debug="ssh").trace_jobs


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


def test_max_runtime_counts_from_when_the_run_began_not_from_after_planning():
    """Issue 10.9: reading a million commandlines took 3-6 s that --max-runtime did not count."""
    import time

    from mpilauncher.launch import run_deadline

    began = time.monotonic() - 5.0
    deadline, reason = run_deadline(make_config("cmds", max_runtime=60, time_limit_margin=0), began)
    assert deadline == began + 60 and "max-runtime" in reason
