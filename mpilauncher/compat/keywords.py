"""Every keyword of PyLauncher 5.4's launchers, and mpilauncher's own, in one table.

Each :class:`Keyword` says what the keyword does here (``effect``), how that
differs from PyLauncher (``difference``) and how it is applied: it sets a
:func:`~mpilauncher.config.make_config` parameter or an API setting of the
:class:`Call`, and may return a note, printed once when the run starts, where
the difference applies.  The README's migration table is rendered from this
table (:func:`migration_table`, checked by a test), so the two cannot drift.

Keywords are PyLauncher's public ones: those its launcher functions, user
guide or examples pass.  Its internal plumbing (``hostpool``, ``taskgenerator``,
``commandexecutor``, ``completion``...) has no counterpart; any keyword not
in the table is refused with one line naming the closest known one (PyLauncher
silently ignored misspelt keywords: ``taskmaxrunime=30`` did nothing).
"""

from __future__ import annotations

import difflib
from collections.abc import Callable

from mpilauncher.config import DEFAULT_DELAY, MIN_INTERVAL
from mpilauncher.core import limits
from mpilauncher.records import field, record
from mpilauncher.report.words import DEBUG_WORDS


@record
class Call:
    """One launcher call's keywords, sorted: ``config`` goes to make_config, the rest is the API's."""

    launcher: str
    config: dict[str, object] = field(default_factory=dict)
    resume: bool = False
    gather_output: str | None = None
    slots_per_host: int | None = None  # ppn (RemoteLauncher)
    local: bool = False  # nhosts: this machine only, never re-launched across a job
    notes: list[str] = field(default_factory=list)
    #: Which keyword gave each make_config parameter: an error about it names the keyword (``corespernode=``).
    keyword_of: dict[str, str] = field(default_factory=dict)
    #: The tasks' core counts are their ``Commandline`` objects' (see launchers.commandlines_from).
    cores_from_objects: bool = False


Apply = Callable[[object, Call], str | None]


@record(frozen=True)
class Keyword:
    name: str
    effect: str
    apply: Apply
    difference: str = ""
    ours: bool = False  # mpilauncher's own, not PyLauncher's


def _to(param: str, none_if_zero: bool = False) -> Apply:
    def apply(value: object, call: Call) -> None:
        if none_if_zero and (value is None or value == 0 or value == "0"):
            value = None
        call.config[param] = value

    apply.setting = param  # type: ignore[attr-defined]  # read by SETTING_KEYWORD
    return apply


def _no_effect(why: str) -> Apply:
    def apply(value: object, call: Call) -> str:
        return f"{call.launcher}: {why}"

    return apply


def _resume(value: object, call: Call) -> str | None:
    call.resume = not (value is None or value is False or str(value).strip().lower() in ("", "0", "no", "false"))
    if value is False or value == 0:
        return f"resume={value!r} means no here (PyLauncher 5.4 took every value but '0' and 'no' as a resume)"
    return None


def _delay(value: object, call: Call) -> str | None:
    call.config["delay"] = value
    try:
        seconds = float(value)
    except (TypeError, ValueError):
        return None  # make_config says what is wrong with it
    if seconds > DEFAULT_DELAY and "start_interval" not in call.config:
        call.config["start_interval"] = seconds
        return (
            f"delay={value}: at most one task starts every {value} s, as PyLauncher's tick did"
            f" (start_interval={value}); the trace ticks every {value} s"
        )
    tick = max(seconds, MIN_INTERVAL)  # (below it, make_config's note says why it is taken as MIN_INTERVAL)
    return (
        f"delay={value}: the trace ticks every {tick:g} s; task starts are not paced"
        " (PyLauncher started one task per tick; raise delay above 0.5 or give start_interval= to pace them)"
    )


def _schedule(value: object, call: Call) -> str | None:
    call.config["schedule"] = value
    text = str(value).strip().lower()
    try:
        n = limits.whole_number(text[5:], 1, limits.MAX_LINE) if text.startswith("block") else 1
    except ValueError:
        return None  # make_config says what is wrong with it
    if n > 1:
        return (
            f"schedule={value!r}: every {n} consecutive lines run as one task, joined with &&; PYL_ID in a line"
            " is that line's own number, while out<N>, $PYL_ID and the queuestate count blocks"
        )
    return None


def _task_timeout(value: object, call: Call) -> str | None:
    """0 is no limit, given: a resume then runs without the sweep's timeout (not given, it keeps it)."""
    _to("task_timeout")(value, call)
    if value is None or value == 0 or value == "0":
        return None
    return (
        f"taskmaxruntime={value}: a task still running after {value} s is killed (its whole process tree) and"
        " counts as aborted; PyLauncher counted ticks of delay and left the task running"
    )


def _numactl(value: object, call: Call) -> str | None:
    if value in (None, False, ""):
        return None
    if str(value).lower() == "core":
        call.config["bind"] = True
        return None
    return f"numactl={value!r} has no effect: tasks are bound to their own cores by default (bind=False turns it off)"


def _gather(value: object, call: Call) -> str | None:
    """PyLauncher's gather_output=/append_output=FILE: all output in one place, not a file a task.  Here:
    per-node output (a few files a node: no out<N>), and FILE gets every task's output, in task order, when
    the run ends (SubmitLauncher: its Slurm jobs write out<N>, appended likewise)."""
    call.gather_output = None if value in (None, False, "") else str(value)
    if call.gather_output is None:
        return None
    if call.launcher != "SubmitLauncher":
        call.config.setdefault("output", "per-node")
    return (
        f"output gathered into {call.gather_output}: each task's output is appended to it, in task order, when"
        " the run ends (PyLauncher appended output while tasks ran, interleaved); the workdir has no out<N>"
        " but a few output.<node>.* files"
    )


def _catch_output(value: object, call: Call) -> str | None:
    if value is False or value == 0:
        return "catch_output=False has no effect: each task's output is in the workdir's out<N>"
    return None


def _nhosts(value: object, call: Call) -> None:
    call.config["cores_per_node"] = value
    call.local = True


def _ppn(value: object, call: Call) -> str | None:
    if call.launcher not in ("RemoteLauncher", "RemoteIbrunLauncher"):
        return f"ppn= has no effect on {call.launcher} (it is RemoteLauncher's)"
    call.slots_per_host = value  # type: ignore[assignment]  # checked by make_config as cores per node
    return None


def _submit_only(name: str, param: str) -> Apply:
    """A SubmitLauncher keyword: it sets ``param`` there, and has no effect (one note) on other launchers."""

    def apply(value: object, call: Call) -> str | None:
        if call.launcher not in ("SubmitLauncher", "ResumeClassicLauncher"):
            return f"{name}= has no effect on {call.launcher} (it is SubmitLauncher's)"
        call.config[param] = value
        return None

    apply.setting = param  # type: ignore[attr-defined]  # read by SETTING_KEYWORD
    return apply


#: PyLauncher's keywords first (as its launchers read them), then mpilauncher's own.
KEYWORDS: tuple[Keyword, ...] = (
    Keyword("cores", "cores per task: a number, `\"node\"` (a whole node) or `\"file\"` (`N,` before each line)",
            _to("cores"), "each task also gets `OMP_NUM_THREADS` and is bound to its cores"),
    Keyword("corespernode", "cores per node, instead of what Slurm or the OS says", _to("cores_per_node", True)),
    Keyword("workdir", "directory for `out<N>`, `exec<N>` and the joblog", _to("workdir"),
            "a workdir you name that exists is refused unless the run continues or resumes into it"
            " (PyLauncher 5.4 reused it with a warning); the default is unique per run"
            " (`pylauncher_tmp<jobid>-2` for a second run in one job)"),
    Keyword("debug", "trace words, matched anywhere in the string as PyLauncher does (`jobs` is `job`):"
            " see the debug words below", _to("debug"),
            "words that trace nothing here are accepted, with one note"),
    Keyword("delay", "seconds between trace ticks; above 0.5 (PyLauncher's default) it also paces starts:"
            " one task every `delay` seconds (`start_interval`)", _delay,
            "PyLauncher started at most one task per tick of `delay`; here tasks start as cores free up"
            " unless delay is raised above 0.5 or `start_interval` is given"),
    Keyword("queuestate", "where the sweep's state is kept (default `queuestate`)", _to("queuestate"),
            "re-running the same commandlines over an unfinished queuestate continues that run"
            " (`start_over=True` starts again)"),
    Keyword("resume", "true: the first argument is a queuestate to resume; `0`, `\"0\"`, `\"no\"`, `False`: not",
            _resume, "`resume=0`/`False` mean no (PyLauncher 5.4 resumed for them)"),
    Keyword("schedule", "`\"blockN\"`: every N consecutive lines run as one task, joined with `&&`", _schedule,
            "as PyLauncher: `PYL_ID` in a line is that line's number; `out<N>`, `$PYL_ID` and the queuestate"
            " count blocks; a block gets the most cores any of its lines asks for; a line with a shell operator"
            " (a trailing `#` comment, `;`, `||`, `&`) runs whole, through `eval`: PyLauncher's bare `&&` lost"
            " the lines after a comment"),
    Keyword("maxruntime", "stop cleanly after this many seconds (0: no limit); the call returns its result,"
            " resumable", _to("max_runtime", True), "none: PyLauncher returned too (its queuestate was not"
            " always current)"),
    Keyword("taskmaxruntime", "kill a task (its whole process tree) after this many seconds (0: no limit);"
            " it counts as aborted, `timeout` in the joblog", _task_timeout,
            "PyLauncher counted ticks of `delay`, not seconds, and left the task running"),
    Keyword("numactl", "`\"core\"`: bind each task to its cores (the default here)", _numactl,
            "binding is on by default; `bind=False` turns it off"),
    Keyword("append_output", "a file: every task's output is appended to it, in task order, when the run ends;"
            " the tasks write per-node output (`output=\"per-node\"`: no `out<N>`, `exec<N>`)", _gather,
            "PyLauncher appended output while tasks ran, interleaved"),
    Keyword("gather_output", "as `append_output`", _gather, "PyLauncher 5.4 accepted it and did nothing"),
    Keyword("catch_output", "no effect: output always goes to `out<N>`", _catch_output,
            "`catch_output=False` sent output to the launcher's own output in PyLauncher"),
    Keyword("timeout", "no effect", _no_effect("timeout= (an ssh connection timeout) has no effect: no ssh here"),
            "PyLauncher's ssh connection timeout: tasks do not start over ssh here"),
    Keyword("dependencies", "no effect", _no_effect("dependencies= has no effect (it had none in PyLauncher 5.4)"),
            "none: PyLauncher 5.4 accepted it and did nothing"),
    Keyword("hfswitch", "no effect: each MPI task's starter is given its hosts (`mpi_starter=` picks the starter)",
            _no_effect("hfswitch= has no effect: each MPI task's starter gets its hosts from mpilauncher"),
            "PyLauncher's MPILauncher passed a host file to mpirun with this switch"),
    Keyword("gpuspernode", "GPUs per node, instead of what is detected", _to("gpus_per_node"),
            "PyLauncher assumed 1 when not given; here the GPUs are detected"),
    Keyword("nhosts", "this many task slots on this machine (LocalLauncher's second argument)", _nhosts,
            "never re-launched across a multi-node job"),
    Keyword("ppn", "RemoteLauncher: task slots per host (default 4); elsewhere no effect", _ppn,
            "the hosts are reached through mpilauncher's ranks, not ssh"),
    Keyword("nactive", "SubmitLauncher: at most this many of its Slurm jobs queued or running at once (default 1,"
            " `--max-active`); elsewhere no effect", _submit_only("nactive", "max_active"),
            "as PyLauncher; jobs picked up after a restart count too"),
    Keyword("queue", "SubmitLauncher: the partition (`-p`) when `submitparams` name none; elsewhere no effect",
            _submit_only("queue", "partition"),
            "PyLauncher only named its job slots after it; its jobs went to the default partition"),
    # -- mpilauncher's own -------------------------------------------------------------
    Keyword("start_interval", "at most one task start every this many seconds (`--start-interval`)",
            _to("start_interval"), ours=True),
    Keyword("start_over", "`True`: run the whole sweep again over an unfinished queuestate of it"
            " (`--start-over`)", _to("start_over"), ours=True),
    Keyword("rerun_failed", "on resume (or over a run of the same commandlines, unfinished or ended with failed"
            " tasks), run failed tasks again"
            " too (`--rerun-failed`)", _to("rerun_failed"),
            ours=True),
    Keyword("force_resume", "resume although the commandlines file changed, or the queuestate's journal is lost"
            " (`--force-resume`)", _to("force_resume"), ours=True),
    Keyword("break_lock", "`True`: take over the sweep's lock although its holder may run on another host"
            " (`--break-lock`)", _to("break_lock"), ours=True),
    Keyword("retries", "run a failed task again up to N times (`--retries`)", _to("retries"), ours=True),
    Keyword("output", "`\"per-task\"` (`out<N>`, `exec<N>`, the default) or `\"per-node\"` (a few files a node;"
            " `--output`)", _to("output"), ours=True),
    Keyword("quiet", "`True`: only warnings, errors and the final statistics (`--quiet`)", _to("quiet"), ours=True),
    Keyword("progress", "how progress shows: `\"auto\"` (a live line on a terminal, a status line every"
            " `progress_interval` s elsewhere), `\"bar\"`, `\"lines\"`, `\"off\"` (`--progress`)", _to("progress"),
            ours=True),
    Keyword("progress_interval", "seconds between two status lines in a batch log (`--progress-interval`,"
            " default 60)", _to("progress_interval"), ours=True),
    Keyword("resubmit", "in a Slurm job stopped at its time limit with tasks left: submit the job script again,"
            " up to N jobs in all (`--resubmit`)", _to("resubmit"), ours=True),
    Keyword("tasks_per_job", "SubmitLauncher: N tasks per Slurm job, run by the launcher inside it"
            " (`--tasks-per-job`)", _submit_only("tasks_per_job", "tasks_per_job"), ours=True),
    Keyword("poll_interval", "SubmitLauncher: seconds between two `squeue` calls (`--poll-interval`, default 30)",
            _submit_only("poll_interval", "poll_interval"), ours=True),
    Keyword("cancel_on_stop", "SubmitLauncher: `True`: a stop (Ctrl-C, SIGTERM) cancels its Slurm jobs instead of"
            " leaving them to run (`--cancel-on-stop`)", _submit_only("cancel_on_stop", "cancel_on_stop"),
            ours=True),
    Keyword("bind", "`False`: do not bind tasks to their cores (`--no-bind`)", _to("bind"), ours=True),
    Keyword("grace", "seconds running tasks get between SIGTERM and SIGKILL at a stop (`--grace`)", _to("grace"),
            ours=True),
    Keyword("time_limit_margin", "stop this long before the Slurm job's time limit (`--time-limit-margin`)",
            _to("time_limit_margin"), ours=True),
    Keyword("expected_time", "how long each task runs (seconds or `[[D-]HH:]MM:SS`), or `\"file\"`: a `T,` prefix"
            " per line; near the time limit a task that cannot finish is held back for the next job"
            " (`--expected-time`)", _to("expected_time"), ours=True),
    Keyword("mpi", "`True`: every task is an MPI program (IbrunLauncher sets it; `--mpi`)", _to("mpi"), ours=True),
    Keyword("mpi_starter", "how MPI tasks start: ibrun, srun, mpiexec, spawn (`--mpi-starter`)",
            _to("mpi_starter"), ours=True),
    Keyword("gpuspertask", "GPUs per task (`--gpus-per-task`; GPULauncher: 1)", _to("gpus_per_task"), ours=True),
    Keyword("taskspergpu", "tasks that may share one GPU (`--tasks-per-gpu`)", _to("tasks_per_gpu"), ours=True),
)  # fmt: skip

BY_NAME = {keyword.name: keyword for keyword in KEYWORDS}
for _apply, _setting in ((_delay, "delay"), (_schedule, "schedule"), (_task_timeout, "task_timeout")):
    _apply.setting = _setting  # type: ignore[attr-defined]
#: make_config's setting -> the keyword that sets it (PyLauncher's name before ours): messages in a script's terms.
SETTING_KEYWORD: dict[str, str] = {}
for _keyword in KEYWORDS:
    if hasattr(_keyword.apply, "setting"):
        SETTING_KEYWORD.setdefault(_keyword.apply.setting, _keyword.name)


def unknown_keyword(launcher: str, name: str) -> str:
    """The one line for a keyword no launcher takes, with the closest known one."""
    close = difflib.get_close_matches(name, BY_NAME, n=1)
    hint = f" (did you mean {close[0]}=?)" if close else ""
    return f"{launcher}: unknown keyword {name}={hint}; the keywords are listed in the README's migration table"


def sort_keywords(launcher: str, kwargs: dict[str, object]) -> tuple[Call, list[str]]:
    """Apply every keyword of one call; returns the call and the unknown keywords' lines."""
    call = Call(launcher)
    unknown = []
    for name, value in kwargs.items():
        keyword = BY_NAME.get(name)
        if keyword is None:
            unknown.append(unknown_keyword(launcher, name))
            continue
        before = set(call.config)
        note = keyword.apply(value, call)
        if note:
            call.notes.append(note)
        for param in set(call.config) - before:
            call.keyword_of[param] = name
    return call, unknown


# -- the README's migration table ------------------------------------------------------
#: PyLauncher's launchers and objects: what each is here.
LAUNCHERS: tuple[tuple[str, str], ...] = (
    ("ClassicLauncher(commandlines, **kw)",
     "as PyLauncher; `commandlines` may also be a list, generator or iterator of strings"),
    ("ResumeClassicLauncher(queuestate, **kw)", "as PyLauncher (`ClassicLauncher(..., resume=1)`)"),
    ("LocalLauncher(commandlines, nhosts, **kw)",
     "`nhosts` task slots on this machine; never re-launched across a job"),
    ("IbrunLauncher(commandlines, cores=N, **kw)", "MPI tasks of N ranks; the starter is chosen for the site"),
    ("MPILauncher(commandlines, cores=N, **kw)", "as IbrunLauncher (`mpi_starter=\"mpiexec\"` for mpiexec)"),
    ("GPULauncher(commandlines, **kw)", "one GPU per task; GPUs detected (`gpuspernode=` overrides)"),
    ("RemoteLauncher(commandlines, hostlist, ppn=N, **kw)",
     "no ssh: the hosts must be this machine or the nodes of the job; `ppn` slots each"),
    ("RemoteIbrunLauncher(commandlines, hostlist, ppn=N, **kw)", "as RemoteLauncher, MPI tasks"),
    ("DynamicLauncher(**kw)",
     "a job: `append(cmd)`, `finish()`, `tick()`, `finished()`, `final_report()`; the appended tasks run"
     " when `tick()` (or `run()`) follows `finish()`; until then `tick()` waits `delay` and returns"
     " `\"stalling\"`, from then on `\"finished\"`"),
    ("SubmitLauncher(commandlines, submitparams, **kw)",
     "each task a Slurm job of its own, submitted with the sbatch options `submitparams`, at most `nactive` at once;"
     " `tasks_per_job=N` runs N tasks per job; a restarted script picks up its jobs (see \"Submitting tasks as"
     " Slurm jobs\")"),
    ("MICLauncher(commandlines, **kw)", "refused with one line: Xeon Phi coprocessors are gone"),
    ("LauncherJob(hostpool=, taskgenerator=, **kw)",
     "`run()` runs the task generator's commandlines, `final_report()` returns the statistics; in a loop of your"
     " own (`while job.tick() != \"finished\"`, or `while not job.finished(): job.tick()`) the first `tick()` runs"
     " the whole sweep and every `tick()` returns `\"finished\"` from then on"),
    ("HostPool(nhosts=N)` / `HostPool(hostlist=HostListByName())",
     "N slots on this machine / the job's nodes; executors (`SSHExecutor`, `LocalExecutor`) only give the workdir"),
    ("TaskGenerator(gen)` / `WrappedTaskGenerator(gen)", "wraps a commandline generator for LauncherJob"),
    ("CommandlineGenerator(list=[...])",
     "an iterator of commandlines; subclasses override `next()` (return a string or `Commandline`, raise"
     " StopIteration at the end); read to its end before the first task starts"),
    ("ListCommandlineGenerator`, `FileCommandlineGenerator`, `Commandline(cmd, cores=N)", "as PyLauncher"),
    ("CountedCommandGenerator`, `SleepCommandGenerator", "as PyLauncher (`next()` gives a command string)"),
    ("JobId()`, `HostName()`, `pylauncher_version", "the batch job's id (or None), this host, `\"5.4\"`"),
    ("LauncherException", "what the API raises (bad input is also a `ValueError`, see below)"),
    ("Task`, `TaskQueue`, `Node`, executors, completions, other internals",
     "calling one says in one line what to use instead"),
)  # fmt: skip

#: Behaviour that differs whatever the keywords: (what, here, PyLauncher).
BEHAVIOUR: tuple[tuple[str, str, str], ...] = (
    ("a task that exits non-zero or is killed", "counts as aborted; the joblog has its exit code; exit status 1",
     "counted as completed (it could not see exit codes)"),
    ("how ends are seen", "each end is reported by the process; completion times are in the joblog",
     "polled `expire<N>` stamp files"),
    ("running the same script again over an unfinished run",
     "continues that run (same commandlines content, cores and blocks), saying so in one line",
     "started the sweep again"),
    ("running the same script again over a finished run (a job resubmitted or requeued)",
     "runs nothing again, saying so in one line (`start_over=True` runs the whole sweep again; `rerun_failed=True`"
     " its failed tasks)", "ran the whole sweep again"),
    ("a second sweep (a second call with other commandlines) over a queuestate whose sweep ended with failed"
     " tasks", "keeps that queuestate aside as `queuestate.1`, saying so with the call that runs its failed tasks"
     " again", "overwrote it"),
    ("`maxruntime`, the job's time limit, SIGUSR1", "the call returns its result: `completed`, `left`,"
     " `resume_command`", "returned at `maxruntime`; killed at the time limit"),
    ("Ctrl-C (SIGINT)", "`KeyboardInterrupt`, raised once the queuestate is saved", "`KeyboardInterrupt`"
     " mid-run"),
    ("SIGTERM, SIGHUP", "the script ends with status 128+N once the queuestate is saved", "killed at once"),
    ("bad input", "one line, then `ScriptInputError` (a `ValueError` and `LauncherException`); uncaught: exit"
     " status 2, no traceback", "`LauncherException` with a traceback"),
    ("`$PYL_ID` in a line", "left to the shell: the task's environment has `PYL_ID`", "became `$0`"),
    ("`PYL_MPIEXEC prog > out`", "the rest of the line runs on every rank (`sh -c` for shell syntax), so each"
     " rank writes `out`: use `>> out`, or let rank 0 write", "the redirection took the starter's whole output"),
    ("start-up lines", "version, launcher type, commandlines, workdir, queuestate, host pool", "the same in spirit"),
    ("SubmitLauncher: a job's end", "the status line each job writes at its end (exit code, times); `squeue` and"
     " `scontrol` for a job killed before it (the reason is printed); no accounting needed",
     "polled `expire<N>` stamp files: no exit codes, and a killed job's task never ended"),
)  # fmt: skip


def migration_table() -> str:
    """The README's migration table, rendered from the code."""
    rows = ["| PyLauncher | mpilauncher |", "| --- | --- |"]
    rows += [f"| `{name}` | {what} |" for name, what in LAUNCHERS]
    rows += ["", "| behaviour | here | PyLauncher |", "| --- | --- | --- |"]
    rows += [f"| {what} | {here} | {theirs} |" for what, here, theirs in BEHAVIOUR]
    rows += ["", "| keyword | here | difference from PyLauncher |", "| --- | --- | --- |"]
    for keyword in KEYWORDS:
        name = f"`{keyword.name}`" + (" (ours)" if keyword.ours else "")
        rows.append(f"| {name} | {keyword.effect} | {keyword.difference or ('-' if keyword.ours else 'none')} |")
    rows += ["", "| debug word | here |", "| --- | --- |"]
    idle = "nothing (accepted; one note says so)"
    rows += [f"| `{word}` | {effect or idle} |" for word, effect in DEBUG_WORDS.items()]
    return "\n".join(rows) + "\n"
