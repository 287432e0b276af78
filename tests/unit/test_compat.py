"""The PyLauncher API's keyword table, errors and commandlines from Python (mpilauncher.compat)."""

from __future__ import annotations

import pytest

import mpilauncher
from mpilauncher.compat import errors
from mpilauncher.compat.keywords import BY_NAME, KEYWORDS, LAUNCHERS, migration_table, sort_keywords
from mpilauncher.compat.launchers import commandlines_from
from mpilauncher.config import make_config
from mpilauncher.errors import InputError

#: Every keyword PyLauncher 5.4's launcher functions read (src/pylauncher/pylauncher_core.py: the launchers and
#: what they pass **kwargs on to: FileCommandlineGenerator, SSHExecutor, HostListByName, LauncherJob), less its
#: internal plumbing (hostpool, taskgenerator, commandexecutor, completion, skip, list, nmax).
PYLAUNCHER_KEYWORDS = {
    "cores", "corespernode", "workdir", "debug", "delay", "queuestate", "resume", "schedule", "maxruntime",
    "taskmaxruntime", "numactl", "gather_output", "append_output", "catch_output", "timeout", "dependencies",
    "hfswitch", "gpuspernode", "nhosts", "ppn", "nactive", "queue",
}  # fmt: skip
#: What PyLauncher 5.4's package exports (src/pylauncher/__init__.py).
PYLAUNCHER_EXPORTS = {
    "pylauncher_version", "ClassicLauncher", "LocalLauncher", "ResumeClassicLauncher", "MPILauncher", "IbrunLauncher",
    "GPULauncher", "RemoteLauncher", "SubmitLauncher", "DynamicLauncher", "RemoteIbrunLauncher", "MICLauncher",
}  # fmt: skip


def test_every_pylauncher_keyword_and_export_is_here():
    assert set(BY_NAME) >= PYLAUNCHER_KEYWORDS
    assert all(callable(getattr(mpilauncher, name)) for name in PYLAUNCHER_EXPORTS - {"pylauncher_version"})
    assert mpilauncher.pylauncher_version == "5.4"
    assert {name.split("(")[0] for name, _ in LAUNCHERS} >= PYLAUNCHER_EXPORTS - {"pylauncher_version"}


def test_every_keyword_of_the_table_is_accepted_and_names_a_config_parameter_or_an_api_setting():
    for keyword in KEYWORDS:
        call, unknown = sort_keywords("ClassicLauncher", {keyword.name: 1})
        assert unknown == [], keyword.name
        params = set(make_config.__code__.co_varnames)
        assert set(call.config) <= params, (keyword.name, call.config)


def test_unknown_keywords_name_the_closest_known_one():
    _, unknown = sort_keywords("IbrunLauncher", {"taskmaxrunime": 30, "zzz": 1})
    assert unknown[0].startswith("IbrunLauncher: unknown keyword taskmaxrunime= (did you mean taskmaxruntime=?)")
    assert "did you mean" not in unknown[1]


@pytest.mark.parametrize(
    ("value", "resume", "noted"),
    [(1, True, False), ("yes", True, False), (True, True, False), ("1", True, False), ("0", False, False),
     ("no", False, False), (0, False, True), (False, False, True), (None, False, False), ("", False, False)],
)  # fmt: skip
def test_resume_values(value, resume, noted):
    call, _ = sort_keywords("ClassicLauncher", {"resume": value})
    assert call.resume is resume
    assert bool(call.notes) is noted


@pytest.mark.parametrize(("delay", "interval"), [(0.1, None), (0.5, None), (2, 2), ("1.5", 1.5), ("soon", None)])
def test_a_delay_above_pylaunchers_default_paces_starts(delay, interval):
    call, _ = sort_keywords("ClassicLauncher", {"delay": delay})
    assert call.config["delay"] == delay
    assert call.config.get("start_interval") == interval


def test_an_explicit_start_interval_wins_over_delay():
    call, _ = sort_keywords("ClassicLauncher", {"start_interval": 0.2, "delay": 3})
    assert call.config["start_interval"] == 0.2


@pytest.mark.parametrize(("name", "param"), [("maxruntime", "max_runtime"), ("taskmaxruntime", "task_timeout")])
def test_zero_means_no_limit_as_in_pylauncher(name, param):
    call, _ = sort_keywords("ClassicLauncher", {name: 0})
    config = make_config("c", **call.config)  # and make_config accepts it
    assert not getattr(config, param)


def test_taskmaxruntime_0_given_to_a_resume_lifts_the_sweeps_timeout_and_unsaid_keeps_it():
    """A resume keeps the sweep's --task-timeout unless given one; taskmaxruntime=0 given is no limit (it was
    read as not given, and the sweep's timeout held, with a note telling the user to give it)."""
    given, _ = sort_keywords("ResumeClassicLauncher", {"taskmaxruntime": 0})
    assert make_config(resume="qs", **given.config).task_timeout == 0
    unsaid, _ = sort_keywords("ResumeClassicLauncher", {})
    assert make_config(resume="qs", **unsaid.config).task_timeout is None


def test_the_readme_holds_the_migration_table_rendered_from_the_code():
    from tests.conftest import ROOT

    readme = (ROOT / "README.md").read_text()
    assert migration_table() in readme, "README's migration table: paste compat.keywords.migration_table()"


# -- what the API raises -------------------------------------------------------------------
def test_bad_input_through_the_api_is_catchable_and_ends_an_uncatching_script_with_status_2(capsys):
    error = errors.refuse("ClassicLauncher: something is wrong")
    assert capsys.readouterr().err == "mpilauncher: error: ClassicLauncher: something is wrong\n"
    assert isinstance(error, ValueError) and isinstance(error, InputError) and isinstance(error, SystemExit)
    assert isinstance(error, mpilauncher.LauncherException) and error.code == 2 and error.exit_status == 2
    failure = errors.report(mpilauncher.LauncherFailure("disk full"))
    assert isinstance(failure, RuntimeError) and failure.code == 3 and str(failure) == "disk full"
    assert errors.report(error) is error and capsys.readouterr().err.count("\n") == 1, "each said once"


@pytest.mark.parametrize(
    ("env", "first"),
    [({}, True), ({"PMI_RANK": "0"}, True), ({"PMI_RANK": "2"}, False), ({"OMPI_COMM_WORLD_RANK": "1"}, False),
     ({"SLURM_PROCID": "0"}, True), ({"SLURM_PROCID": "3"}, False),
     # a launcher's task inherits its agent's SLURM_PROCID (the starters' own are taken from it): a launcher
     # run in that task is no rank 3, and must say its errors; one started there by srun has a PMI rank
     ({"SLURM_PROCID": "3", "PYL_ID": "7"}, True), ({"SLURM_PROCID": "3", "PYL_ID": "7", "PMI_RANK": "1"}, False)],
)  # fmt: skip
def test_only_rank_0_speaks(monkeypatch, env, first):
    for name in (*errors.RANK_VARIABLES, "PYL_ID", "MPILAUNCHER_TASK_ID"):
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    assert errors.first_rank() is first


def test_a_name_pylauncher_had_but_we_do_not_offer_says_what_to_use(capsys):
    with pytest.raises(ValueError, match="TaskQueue \\(PyLauncher\\) is not offered"):
        mpilauncher.TaskQueue()
    with pytest.raises(AttributeError):
        mpilauncher.NoSuchThing  # noqa: B018


# -- commandlines given from Python --------------------------------------------------------
def call_for(**config):
    call, _ = sort_keywords("ClassicLauncher", config)
    return call


def test_a_list_or_generator_becomes_the_text_of_a_commandlines_file():
    name, text = commandlines_from(["echo a", "  # comment", "echo b  "], call_for())
    assert name.startswith("<commandlines from ") and text == "echo a\n# comment\necho b\n"
    assert commandlines_from(iter(["x"]), call_for())[1] == "x\n"
    assert commandlines_from("file", call_for()) == ("file", None)


def test_commandline_objects_bring_their_cores_unless_cores_is_given():
    lines = [mpilauncher.Commandline("a", cores=3), "b"]
    call = call_for()
    assert commandlines_from(lines, call)[1] == "3,a\n1,b\n" and call.config["cores"] == "file"
    given = call_for(cores=2)
    assert commandlines_from(lines, given)[1] == "a\nb\n" and given.config["cores"] == 2


@pytest.mark.parametrize(
    ("source", "problem"),
    [(["ok", "two\nlines"], "commandline 2 from Python holds a newline"), ([1], "commandline 1 from Python is an int"),
     (42, "commandlines must be a file name or a list"), (b"bytes", "commandlines must be a file name"),
     (mpilauncher.CountedCommandGenerator(), "without nmax= never ends"),
     ([], "no tasks: the commandlines given from Python hold no command"),
     (["# only a comment", "  "], "no tasks: the commandlines given from Python hold no command")],
)  # fmt: skip
def test_what_cannot_be_commandlines_is_one_line(source, problem, capsys):
    with pytest.raises(ValueError, match=problem):
        commandlines_from(source, call_for())
    assert capsys.readouterr().err.count("\n") == 1


def test_pylaunchers_generators():
    counted = mpilauncher.CountedCommandGenerator(nmax=2, command="true")
    assert list(counted) == ["true 0", "true 1"]
    listed = mpilauncher.ListCommandlineGenerator(list=["a", "b"])
    assert [c["command"] for c in listed] == ["a", "b"]
    sleeps = [mpilauncher.SleepCommandGenerator(nmax=1, tmin=2, tmax=2).next()]
    assert sleeps == ["echo 0 >> /dev/null 2>&1  ; sleep 2"]


def test_a_generator_read_for_long_is_said_to_be_read_still(monkeypatch, capsys):
    """A user walk: a PyLauncher-style generator with ``nmax=0`` ("wait for finish()") that never ended was
    read in silence until memory ran out; a note now says what is going on once the reading is long."""
    from mpilauncher.compat import launchers

    monkeypatch.setattr(launchers, "LONG_READING", 5)
    commandlines_from(iter(["true"] * 4), call_for())
    assert "no end yet" not in capsys.readouterr().err
    name, text = commandlines_from((f"echo {i}" for i in range(7)), call_for())
    assert text.count("\n") == 7
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "5 commandlines read from generator and no end yet" in err, err
