"""One validated configuration, whichever way the launcher was called.

The CLI's flags and the PyLauncher-style keywords both end up here, checked
once, each against a sane bound (:mod:`mpilauncher.core.limits`): every bad
value becomes an :class:`~mpilauncher.errors.OptionError` that carries the
setting's name, so the CLI can word it as ``--cores-per-node`` and a
PyLauncher script as ``corespernode=``.
"""

from __future__ import annotations

import os
import shlex

from mpilauncher.core import limits
from mpilauncher.core.tasks import CoresSpec
from mpilauncher.errors import InputError, OptionError
from mpilauncher.records import field, record
from mpilauncher.report.words import DEBUG_WORDS, KNOWN_DEBUG, TASK_WORDS
from mpilauncher.report.words import DEFAULT_INTERVAL as DEFAULT_PROGRESS_INTERVAL
from mpilauncher.report.words import MODES as PROGRESS_MODES

DEFAULT_DELAY = 0.5
DEFAULT_QUEUESTATE = "queuestate"
#: Seconds running tasks get between SIGTERM and SIGKILL when the launcher stops.
DEFAULT_GRACE = 2.0
#: Agents send a heartbeat every few seconds; silence this long means the agent is gone.
DEFAULT_BEAT_TIMEOUT = 60.0
#: --submit: one squeue for all of the sweep's jobs this often (a login node is shared).
DEFAULT_POLL_INTERVAL = 30.0
#: --max-active: more queued jobs than any site lets one user have.
MAX_ACTIVE_JOBS = 10_000
#: --max-active x --tasks-per-job: the tasks one submitter keeps in flight (its job slots), as many
#: as one node's cores may be.
MAX_SUBMIT_SLOTS = limits.MAX_CORES_PER_NODE
#: sbatch options --submit cannot work with: (long form, short form, why).
REFUSED_SBATCH_OPTIONS = (
    ("--wait", "-W", "each sbatch would wait for its job to end"),
    ("--array", "-a", "the submitter makes one job per task (or chunk) itself"),
    ("--wrap", None, "the job script is the submitter's"),
    ("--test-only", None, "nothing would run"),
)


#: The job type of a run from the command line (an API call's is its launcher's name).
CLI_JOB_TYPE = "python -m mpilauncher"


@record
class Config:
    """What to run and how; see ``python -m mpilauncher --help``."""

    commandlines: str | None = None
    resume: str | None = None
    cores: CoresSpec = field(default_factory=lambda: CoresSpec("fixed", 1))
    workdir: str | None = None
    debug: frozenset[str] = frozenset()
    delay: float = DEFAULT_DELAY
    #: Where the sweep's state goes; None: ./queuestate for a new sweep, the resumed file on --resume.
    queuestate: str | None = None
    cores_per_node: int | None = None
    rerun_failed: bool = False
    force_resume: bool = False
    #: Take over the sweep's lock even though its holder may still run (on a host we cannot look into).
    break_lock: bool = False
    #: Kill a task (its whole process group) that runs longer than this; PyLauncher's taskmaxruntime.
    #: None: not given (a resume keeps the sweep's: rank0.sweep_settings); 0: no limit.
    task_timeout: float | None = None
    #: Run a failed task again, up to this many more times; None: not given (likewise).
    retries: int | None = None
    #: Stop (cleanly, resumable) after this many seconds; PyLauncher's maxruntime.
    max_runtime: float | None = None
    #: Inside a Slurm job with a time limit: stop this many seconds before it.
    time_limit_margin: float = 60.0
    grace: float = DEFAULT_GRACE
    print_statistics: bool = True
    #: Testing/benchmark aid: the MPI ranks stand for this many virtual nodes.
    emulate_nodes: int | None = None
    #: Seconds without a message after which a remote agent counts as lost.
    beat_timeout: float | None = DEFAULT_BEAT_TIMEOUT
    #: Bind each task to its cores (CPU affinity) where the node's cores are real CPUs.
    bind: bool = True
    #: GPUs per task (0: CPU tasks); GPU tasks get their GPUs' share of the node's cores
    #: unless ``cores`` was given.
    gpus_per_task: int = 0
    gpus_per_node: int | None = None
    #: How many tasks may share one GPU (1: never two tasks on one GPU); 0: not given (the
    #: sweep's own on a resume, kept in its queuestate; else 1).
    tasks_per_gpu: int = 0
    cores_given: bool = False
    #: Every task is an MPI program of ``cores`` ranks (IbrunLauncher, --mpi).
    mpi: bool = False
    #: How MPI tasks start: auto, ibrun, srun or mpiexec (see execution/starters.py).
    mpi_starter: str | None = None
    #: PyLauncher's schedule="blockN": N consecutive lines joined with && into one task.
    block: int = 1
    #: At most one task start every this many seconds across the job (None: as fast as cores free up).
    start_interval: float | None = None
    #: Overwrite the queuestate even when it holds an unfinished run of the same sweep (else: continue it).
    start_over: bool = False
    #: The commandlines themselves, when given from Python (a list or generator) instead of a file;
    #: ``commandlines`` then only names them.
    commandlines_text: str | None = None
    #: ``commandlines_text``'s ``N,`` prefixes are the core counts of PyLauncher ``Commandline`` objects (the
    #: start-up lines say so, not "cores per line ('N,' prefix)": a user walk).
    cores_from_objects: bool = False
    #: What started the run, for the start-up lines (PyLauncher prints its launcher type).
    job_type: str = CLI_JOB_TYPE
    #: Lines printed once the input is checked, before the first task starts (on rank 0 only).
    notes: tuple[str, ...] = ()
    #: A multi-node Slurm batch script's singleton re-launches itself across the job (not LocalLauncher).
    relaunch: bool = True
    #: Stopped at the time limit with tasks left: submit the same job script again, up to this many jobs
    #: in all (0: never; see mpilauncher/chain.py).
    resubmit: int = 0
    #: Only warnings, errors and the final statistics: no start-up lines, notes or progress.
    quiet: bool = False
    #: Submit mode (SubmitLauncher, see mpilauncher/submit/): every task, or chunk of tasks, is a Slurm job
    #: submitted with these sbatch options; None: the tasks run in this allocation.
    submit: str | None = None
    #: Submit mode: at most this many of the sweep's jobs queued or running at once (PyLauncher's nactive).
    max_active: int | None = None
    #: Submit mode: tasks per job, run by the launcher inside each job (1: one job per task).
    tasks_per_job: int | None = None
    #: Submit mode: seconds between two squeue calls (the status files are looked for every second).
    poll_interval: float | None = None
    #: Submit mode: a stop (Ctrl-C, SIGTERM...) cancels the submitted jobs instead of leaving them to run.
    cancel_on_stop: bool = False
    #: Submit mode: the partition when the sbatch options name none (PyLauncher's queue=).
    partition: str | None = None
    #: How progress shows while the sweep runs: auto (a live line on a terminal, status lines in a
    #: batch log), bar, lines or off (see report/progress.py); --quiet shows none.
    progress: str = "auto"
    #: Seconds between two status lines (progress "lines").
    progress_interval: float = DEFAULT_PROGRESS_INTERVAL
    #: Where tasks' output goes: per-task (out<N> and exec<N>, PyLauncher's) or per-node (a few files a node,
    #: see execution/gather.py); None: as the sweep began (a resume), else per-task.
    output: str | None = None
    #: Each task's expected run time in seconds, or "file" (a ``T,`` prefix per line); near the deadline a
    #: task that cannot finish is held back for the next job (None: estimated from the sweep's own tasks).
    expected_time: float | str | None = None

    @property
    def trace_jobs(self) -> bool:
        return bool(self.debug & {"job", "host", "queue"})

    @property
    def trace_tasks(self) -> bool:
        """PyLauncher's task/exec/cmd debug words: each task's start and end on stderr."""
        return bool(self.debug & TASK_WORDS)

    @property
    def trace_hosts(self) -> bool:
        return "host" in self.debug


#: How a message names a setting when no front end words it (make_config called directly).
LABELS = {
    "beat_timeout": "agent timeout",
    "emulate_nodes": "emulated nodes",
    "gpus_per_task": "GPUs per task",
    "gpus_per_node": "GPUs per node",
    "tasks_per_gpu": "tasks per GPU",
    "mpi_starter": "MPI starter",
    "submit": "submit options",
}


def option_error(setting: str, problem: object) -> OptionError:
    return OptionError(setting, str(problem), LABELS.get(setting, setting.replace("_", " ")))


def parse_debug(value: object) -> frozenset[str]:
    """PyLauncher's ``debug="host+job"``: the known words found anywhere in the string.

    PyLauncher looks each word up with a substring search, so ``"jobs"`` means
    job and words it does not know are ignored; scripts written for it run
    unchanged here (:func:`debug_notes` says what has no effect).
    """
    if value is None or value is False or value == "":
        return frozenset()
    if value is True:
        return frozenset({"job", "host"})
    text = str(value).lower()
    return frozenset(word for word in KNOWN_DEBUG if word in text)


def debug_notes(value: object) -> list[str]:
    """One note, if any, on debug words that do nothing here: unknown ones, and PyLauncher's without effect."""
    if value is None or isinstance(value, bool) or value == "":
        return []
    tokens = [t for t in str(value).lower().replace(",", "+").replace(" ", "+").split("+") if t]
    unknown = [t for t in tokens if not any(word in t for word in KNOWN_DEBUG)]
    idle = sorted(w for w in parse_debug(value) if DEBUG_WORDS[w] is None)
    parts = []
    if unknown:
        parts.append(f"{'+'.join(unknown)!r} matches none of PyLauncher's debug words ({', '.join(DEBUG_WORDS)})")
    if idle:
        parts.append(f"{', '.join(idle)} trace nothing here (exec<N>, out<N> and the joblog show what ran)")
    return [f"debug={str(value)!r}: " + "; ".join(parts)] if parts else []


def parse_schedule(value: object) -> int:
    """PyLauncher's ``schedule``: "default" (one line per task) or "blockN" (N lines joined into one task)."""
    text = "" if value is None else str(value).strip().lower()
    if text in ("", "default"):
        return 1
    if text.startswith("block"):
        try:
            return limits.whole_number(text[5:], 1, limits.MAX_LINE)
        except ValueError:
            pass
    raise option_error("schedule", f"must be 'default' or 'blockN' (N > 0 lines per task), not {value!r}")


def parse_positive(setting: str, value: object, most: float = limits.MAX_DURATION, zero: bool = False) -> float:
    """Seconds greater than 0 (from 0 with ``zero``) and at most ``most``."""
    try:
        return limits.seconds(value, most, zero=zero)
    except ValueError as err:
        raise option_error(setting, err) from None


#: The shortest delay and progress interval taken: the trace ticks, the journal's flushes and the progress
#: lines come at most 100 times a second (a delay of 1e-9 s ticked 14,000 times a second, 2.3 MB of trace in
#: 1.5 s, and kept a core busy; found by a user walk).
MIN_INTERVAL = 0.01


def parse_interval(setting: str, value: object, what: str, notes: list[str], zero: bool = False) -> float:
    """Seconds as :func:`parse_positive` reads them, below MIN_INTERVAL taken as MIN_INTERVAL with a note
    (``what`` is said: a PyLauncher script's ``delay=0.0001`` runs, it is not refused; so does its
    ``delay=0``, with ``zero``: PyLauncher slept it)."""
    seconds = parse_positive(setting, value, limits.MAX_DELAY, zero)
    if seconds >= MIN_INTERVAL:
        return seconds
    notes.append(f"a {setting.replace('_', ' ')} of {seconds:g} s is taken as {MIN_INTERVAL:g} s ({what})")
    return MIN_INTERVAL


def parse_count(setting: str, value: object, least: int, most: int) -> int:
    """A whole number from ``least`` to ``most``."""
    try:
        return limits.whole_number(value, least, most)
    except ValueError as err:
        raise option_error(setting, err) from None


def _given(value: object) -> bool:
    """Whether an optional setting was given: None and "" mean "not given"."""
    return value is not None and value != ""


def make_config(
    commandlines: str | None = None,
    *,
    resume: str | None = None,
    cores: object = None,
    workdir: str | None = None,
    debug: object = "",
    delay: object = DEFAULT_DELAY,
    queuestate: str | None = None,
    cores_per_node: object = None,
    rerun_failed: bool = False,
    force_resume: bool = False,
    break_lock: bool = False,
    max_runtime: object = None,
    time_limit_margin: object = 60.0,
    task_timeout: object = None,
    retries: object = None,
    grace: object = DEFAULT_GRACE,
    emulate_nodes: object = None,
    beat_timeout: object = DEFAULT_BEAT_TIMEOUT,
    bind: bool = True,
    gpus_per_task: object = 0,
    gpus_per_node: object = None,
    tasks_per_gpu: object = None,
    mpi: bool = False,
    mpi_starter: str | None = None,
    schedule: object = None,
    start_interval: object = None,
    start_over: bool = False,
    resubmit: object = 0,
    quiet: bool = False,
    submit: object = None,
    max_active: object = None,
    tasks_per_job: object = None,
    poll_interval: object = None,
    cancel_on_stop: bool = False,
    partition: object = None,
    progress: object = "auto",
    progress_interval: object = None,
    output: object = None,
    expected_time: object = None,
) -> Config:
    """Check every value against its bound (see :mod:`mpilauncher.core.limits`) and build a :class:`Config`."""
    notes: list[str] = []
    tick = parse_interval(
        "delay", delay, "the trace and the journal's flushes at most 100 times a second", notes, zero=True
    )
    progress_every = (
        parse_interval("progress_interval", progress_interval, "at most 100 progress lines a second", notes)
        if _given(progress_interval)
        else DEFAULT_PROGRESS_INTERVAL
    )
    if (commandlines is None) == (resume is None):
        if commandlines is None and isinstance(debug, str) and debug and os.path.isfile(debug):
            raise InputError(  # (`--debug cl`: the file went to --debug as its words, a user walk)
                f"give either a commandlines file or --resume QUEUESTATE: {debug!r} was read as --debug's words"
                f" (host, job, task, ...); put the commandlines file first: {debug} --debug WORDS"
            )
        raise InputError("give either a commandlines file or --resume QUEUESTATE (exactly one)")
    config = Config(
        commandlines=_path("commandlines", commandlines),
        resume=_path("resume", resume),
        cores=_cores(cores),
        cores_given=cores is not None,
        mpi=bool(mpi),
        mpi_starter=_starter(mpi_starter),
        bind=bool(bind),
        gpus_per_task=parse_count("gpus_per_task", gpus_per_task, 0, limits.MAX_GPUS_PER_NODE) if gpus_per_task else 0,
        gpus_per_node=(
            parse_count("gpus_per_node", gpus_per_node, 0, limits.MAX_GPUS_PER_NODE) if _given(gpus_per_node) else None
        ),
        tasks_per_gpu=(
            parse_count("tasks_per_gpu", tasks_per_gpu, 1, limits.MAX_TASKS_PER_GPU) if _given(tasks_per_gpu) else 0
        ),
        workdir=_named_path("workdir", workdir, "folder"),
        debug=parse_debug(debug),
        delay=tick,
        queuestate=_named_path("queuestate", queuestate, "file"),
        cores_per_node=(
            parse_count("cores_per_node", cores_per_node, 1, limits.MAX_CORES_PER_NODE) if cores_per_node else None
        ),
        rerun_failed=bool(rerun_failed),
        force_resume=bool(force_resume),
        break_lock=bool(break_lock),
        max_runtime=parse_duration("max_runtime", max_runtime) if _given(max_runtime) else None,
        time_limit_margin=parse_duration("time_limit_margin", time_limit_margin, allow_zero=True),
        task_timeout=parse_duration("task_timeout", task_timeout, allow_zero=True) if _given(task_timeout) else None,
        retries=parse_count("retries", retries, 0, limits.MAX_RETRIES) if _given(retries) else None,
        grace=_grace(grace),
        emulate_nodes=parse_count("emulate_nodes", emulate_nodes, 1, limits.MAX_NODES) if emulate_nodes else None,
        beat_timeout=parse_positive("beat_timeout", beat_timeout) if beat_timeout else None,
        block=parse_schedule(schedule),
        start_interval=parse_positive("start_interval", start_interval, limits.MAX_DELAY)
        if _given(start_interval)
        else None,
        start_over=bool(start_over),
        resubmit=parse_count("resubmit", resubmit, 0, limits.MAX_CHAIN) if _given(resubmit) else 0,
        quiet=bool(quiet),
        notes=tuple(debug_notes(debug)) + tuple(notes),
        submit=_sbatch_options(submit) if submit is not None else None,
        max_active=parse_count("max_active", max_active, 1, MAX_ACTIVE_JOBS) if _given(max_active) else None,
        tasks_per_job=(
            parse_count("tasks_per_job", tasks_per_job, 1, MAX_SUBMIT_SLOTS) if _given(tasks_per_job) else None
        ),
        poll_interval=(
            parse_positive("poll_interval", poll_interval, limits.MAX_DELAY) if _given(poll_interval) else None
        ),
        cancel_on_stop=bool(cancel_on_stop),
        partition=_text("partition", partition, "a partition name") if _given(partition) else None,
        progress=_progress(progress),
        progress_interval=progress_every,
        output=_output(output) if _given(output) else None,
        expected_time=_expected_time(expected_time) if _given(expected_time) else None,
    )
    check_submit(config, resuming=resume is not None)
    return config


def check_submit(config: Config, resuming: bool = False) -> None:
    """Submit mode's settings together: what it cannot be combined with, and its companions without it.

    ``resuming``: a resume may take --submit's settings from the queuestate (launch.py), so its
    companions (--max-active...) may come alone.
    """
    slots = (config.max_active or 1) * (config.tasks_per_job or 1)
    if slots > MAX_SUBMIT_SLOTS:
        problem = f"times tasks per job must be at most {MAX_SUBMIT_SLOTS:,} (the tasks kept in flight), not {slots:,}"
        raise option_error("max_active", problem)
    if config.submit is None:
        given = [name for name in ("max_active", "tasks_per_job", "poll_interval", "cancel_on_stop")
                 if getattr(config, name)]  # fmt: skip
        if given and not resuming:
            raise option_error(given[0], "works with --submit only (submitting each task as a Slurm job)")
        return
    clashes = (("emulate_nodes", config.emulate_nodes), ("resubmit", config.resubmit),
               ("gpus_per_task", config.gpus_per_task), ("output", config.output == "per-node"))  # fmt: skip
    for setting, value in clashes:
        if value:
            why = {"gpus_per_task": "give the jobs their GPUs in the sbatch options (--gpus, --gres)",
                   "resubmit": "it continues a launcher that runs inside a Slurm job",
                   "output": "each Slurm job writes its task's out<N> (use --tasks-per-job for fewer files)",
                   }.get(setting, "")  # fmt: skip
            raise option_error(setting, "cannot be combined with --submit" + (f": {why}" if why else ""))


def _sbatch_options(value: object) -> str:
    """--submit's sbatch options, as one string: balanced quotes, and none that the submitter must own."""
    example = 'must be sbatch options in one string, e.g. "-p debug -t 0:15:00"'
    if not isinstance(value, str):
        raise option_error("submit", f"{example}, not {value!r}")
    try:
        words = shlex.split(value)
    except ValueError as err:
        raise option_error("submit", f"{example} ({err})") from None
    for word in words:
        for long, short, why in REFUSED_SBATCH_OPTIONS:
            if word == long or word.startswith(long + "=") or (short and word.startswith(short) and word[:2] != "--"):
                raise option_error("submit", f"must not hold {word}: {why}")
    return _text("submit", value, "sbatch options")


def _text(setting: str, value: object, what: str) -> str:
    try:
        return limits.text(value, what)
    except ValueError as err:
        raise option_error(setting, err) from None


def _cores(value: object) -> CoresSpec:
    try:
        return CoresSpec.parse(1 if value is None else value)
    except ValueError as err:
        raise option_error("cores", err) from None


#: --output: a file per task (PyLauncher's out<N>, exec<N>) or a few files per node.
OUTPUT_MODES = ("per-task", "per-node")


def _output(value: object) -> str:
    text = str(value).strip().lower()
    if text not in OUTPUT_MODES:
        raise option_error("output", f"must be one of {', '.join(OUTPUT_MODES)}, not {value!r}")
    return text


def _progress(value: object) -> str:
    """--progress: one of auto, bar, lines, off (True and False, from a script: auto and off)."""
    if value is None or value is True:
        return "auto"
    if value is False:
        return "off"
    text = str(value).strip().lower()
    if text not in PROGRESS_MODES:
        raise option_error("progress", f"must be one of {', '.join(PROGRESS_MODES)}, not {value!r}")
    return text


def _expected_time(value: object) -> float | str:
    """``file`` (a ``T,`` prefix per line), or one duration for every task."""
    if isinstance(value, str) and value.strip().lower() == "file":
        return "file"
    try:
        return limits.duration(value)
    except ValueError as err:
        raise option_error("expected_time", str(err).replace(", not", ", or 'file', not")) from None


def _grace(value: object) -> float:
    if value is None:
        return DEFAULT_GRACE
    try:
        return limits.seconds(value, limits.MAX_GRACE, zero=True)
    except ValueError as err:
        raise option_error("grace", err) from None


def _path(setting: str, value: object) -> str | None:
    """A file or directory name as the OS takes it (a ``Path`` is fine too), or None.

    A name that begins with ``~`` is refused while nothing of that name is here: nothing expands it
    on this path (a shell does, before the launcher sees it; Python's ``open`` does not), so
    ``workdir="~/run1"`` from a script, or ``--workdir=~/run1`` from ``sh``, names a folder ``~`` in
    the current one, never the home the user meant: said here, once, for what it is (a user walk met
    "cannot create workdir: ./~ does not exist"; PyLauncher made that folder ``~``, which a later
    ``rm -rf ~/...`` typed to remove it would miss, or worse).
    """
    if value is None:
        return None
    try:
        name = limits.path(os.fspath(value) if isinstance(value, os.PathLike) else value)
    except (ValueError, TypeError) as err:
        raise option_error(setting, err) from None
    first = name.split("/", 1)[0]
    if first.startswith("~") and not os.path.lexists(first):
        raise option_error(
            setting,
            f"{name!r} begins with '~', which is not expanded here (a shell expands it, before the launcher"
            f" sees it): give the path in full ({os.path.expanduser(name)!r}?), or ./{name} for a name that"
            " begins with '~'",
        )
    return name


def _named_path(setting: str, value: object, kind: str) -> str | None:
    """:func:`_path` for the workdir (``kind`` "folder") or the queuestate ("file"), which must name one:
    an empty name is refused (``workdir=""`` or ``--workdir ""`` ran in the default workdir), and so is a
    queuestate's name that ends with "/" (``queuestate="qs_dir/"`` wrote a file named qs_dir; PyLauncher
    failed with IsADirectoryError; an existing folder is refused as a queuestate anyway: see
    rank0.check_state_target): a user walk."""
    name = _path(setting, value)
    if name == "":
        raise option_error(setting, f"must name a {kind}, not ''")
    if kind == "file" and name is not None and name.endswith("/"):
        raise option_error(setting, f"must name a file, not {name!r} (a folder's name: it ends with '/')")
    return name


def _starter(value: str | None) -> str | None:
    from mpilauncher.execution.starters import STARTERS

    if value is None or value == "":
        return None
    if str(value).lower() not in STARTERS:
        raise option_error("mpi_starter", f"must be one of {', '.join(STARTERS)}, not {value!r}")
    return str(value).lower()


def parse_duration(setting: str, value: object, allow_zero: bool = False) -> float:
    """Seconds, as a number or Slurm's ``[[D-]HH:]MM:SS`` (``90``, ``1:30``, ``2:00:00``, ``1-00:00:00``).

    At most MAX_DURATION (a year): days are how people write "no limit", and the
    runtime copes with any duration up to that (each sleep is capped to what the
    kernel takes, see ``execution/processes.py``).
    """
    try:
        seconds = limits.clock_seconds(value)
    except ValueError as err:
        raise option_error(setting, err) from None
    try:
        return limits.seconds(seconds, limits.MAX_DURATION, zero=allow_zero)
    except ValueError:
        span = "from 0 to" if allow_zero else "greater than 0 and at most"
        days = round(limits.MAX_DURATION / limits.DAY)
        most = f"{days} days ({days}-00:00:00, {limits.MAX_DURATION:,.0f} s)"
        raise option_error(setting, f"must be {span} {most}, not {value!r}") from None
