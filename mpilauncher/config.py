"""One validated configuration, whichever way the launcher was called.

The CLI's flags and the PyLauncher-style keywords both end up here, checked
once: every bad value becomes an :class:`InputError` with one clear line.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from mpilauncher.core.tasks import CoresSpec
from mpilauncher.errors import InputError
from mpilauncher.report.trace import DEBUG_WORDS, KNOWN_DEBUG

DEFAULT_DELAY = 0.5
DEFAULT_QUEUESTATE = "queuestate"
#: Seconds running tasks get between SIGTERM and SIGKILL when the launcher stops.
DEFAULT_GRACE = 2.0
#: Agents send a heartbeat every few seconds; silence this long means the agent is gone.
DEFAULT_BEAT_TIMEOUT = 60.0


@dataclass(slots=True)
class Config:
    """What to run and how; see ``python -m mpilauncher --help``."""

    commandlines: str | None = None
    resume: str | None = None
    cores: CoresSpec = field(default_factory=lambda: CoresSpec("fixed", 1))
    workdir: str | None = None
    debug: frozenset[str] = frozenset()
    delay: float = DEFAULT_DELAY
    queuestate: str = DEFAULT_QUEUESTATE
    cores_per_node: int | None = None
    rerun_failed: bool = False
    force_resume: bool = False
    #: Kill a task (its whole process group) that runs longer than this; PyLauncher's taskmaxruntime.
    task_timeout: float | None = None
    #: Run a failed task again, up to this many more times.
    retries: int = 0
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
    #: How many tasks may share one GPU (1: never two tasks on one GPU).
    tasks_per_gpu: int = 1
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
    #: What started the run, for the start-up lines (PyLauncher prints its launcher type).
    job_type: str = "python -m mpilauncher"
    #: Lines printed once the input is checked, before the first task starts (on rank 0 only).
    notes: tuple[str, ...] = ()
    #: A multi-node Slurm batch script's singleton re-launches itself across the job (not LocalLauncher).
    relaunch: bool = True

    @property
    def trace_jobs(self) -> bool:
        return bool(self.debug & {"job", "host", "queue"})

    @property
    def trace_hosts(self) -> bool:
        return "host" in self.debug


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
    if text.startswith("block") and text[5:].isdigit() and int(text[5:]) > 0:
        return int(text[5:])
    raise InputError(f"schedule must be 'default' or 'blockN' (N > 0 lines per task), not {value!r}")


def parse_positive(name: str, value: object, integer: bool = False) -> float:
    try:
        number = int(value) if integer else float(value)
    except (TypeError, ValueError):
        raise InputError(f"{name} must be a {'whole ' if integer else ''}number, not {value!r}") from None
    if not math.isfinite(number) or number <= 0:
        raise InputError(f"{name} must be greater than 0, not {value!r}")
    return number


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
    max_runtime: object = None,
    time_limit_margin: object = 60.0,
    task_timeout: object = None,
    retries: object = 0,
    grace: object = DEFAULT_GRACE,
    emulate_nodes: object = None,
    beat_timeout: object = DEFAULT_BEAT_TIMEOUT,
    bind: bool = True,
    gpus_per_task: object = 0,
    gpus_per_node: object = None,
    tasks_per_gpu: object = 1,
    mpi: bool = False,
    mpi_starter: str | None = None,
    schedule: object = None,
    start_interval: object = None,
    start_over: bool = False,
) -> Config:
    """Check every value and build a :class:`Config`."""
    if (commandlines is None) == (resume is None):
        raise InputError("give either a commandlines file or --resume QUEUESTATE (exactly one)")
    try:
        grace_value = float(grace) if grace is not None else DEFAULT_GRACE
    except (TypeError, ValueError):
        raise InputError(f"grace must be a number of seconds, not {grace!r}") from None
    if not math.isfinite(grace_value) or grace_value < 0:
        raise InputError(f"grace must be 0 or more seconds, not {grace!r}")
    return Config(
        commandlines=commandlines,
        resume=resume,
        cores=CoresSpec.parse(1 if cores is None else cores),
        cores_given=cores is not None,
        mpi=bool(mpi),
        mpi_starter=_starter(mpi_starter),
        bind=bool(bind),
        gpus_per_task=int(parse_positive("gpus per task", gpus_per_task, integer=True)) if gpus_per_task else 0,
        gpus_per_node=_count_or_none("gpus per node", gpus_per_node),
        tasks_per_gpu=int(parse_positive("tasks per GPU", tasks_per_gpu, integer=True)),
        workdir=workdir,
        debug=parse_debug(debug),
        delay=parse_positive("delay", delay),
        queuestate=queuestate or DEFAULT_QUEUESTATE,
        cores_per_node=int(parse_positive("cores per node", cores_per_node, integer=True)) if cores_per_node else None,
        rerun_failed=rerun_failed,
        force_resume=force_resume,
        max_runtime=parse_duration("max runtime", max_runtime) if max_runtime not in (None, "") else None,
        time_limit_margin=parse_duration("time limit margin", time_limit_margin, allow_zero=True),
        task_timeout=parse_duration("task timeout", task_timeout) if task_timeout not in (None, "") else None,
        retries=_count_or_none("retries", retries) or 0,
        grace=grace_value,
        emulate_nodes=int(parse_positive("emulated nodes", emulate_nodes, integer=True)) if emulate_nodes else None,
        beat_timeout=parse_positive("agent timeout", beat_timeout) if beat_timeout else None,
        block=parse_schedule(schedule),
        start_interval=parse_positive("start interval", start_interval) if start_interval not in (None, "") else None,
        start_over=bool(start_over),
        notes=tuple(debug_notes(debug)),
    )


def _count_or_none(name: str, value: object) -> int | None:
    """A count that may be 0 (no GPUs), or None when not given."""
    if value is None or value == "":
        return None
    try:
        count = int(value)
    except (TypeError, ValueError):
        raise InputError(f"{name} must be a whole number, not {value!r}") from None
    if count < 0:
        raise InputError(f"{name} must be 0 or more, not {count}")
    return count


def _starter(value: str | None) -> str | None:
    from mpilauncher.execution.starters import STARTERS

    if value is None or value == "":
        return None
    if str(value).lower() not in STARTERS:
        raise InputError(f"unknown MPI starter {value!r}: use one of {', '.join(STARTERS)}")
    return str(value).lower()


def parse_duration(name: str, value: object, allow_zero: bool = False) -> float:
    """Seconds, as a number or Slurm's ``[[D-]HH:]MM:SS`` (``90``, ``1:30``, ``2:00:00``, ``1-00:00:00``)."""
    text = str(value).strip()
    try:
        days, _, clock = text.rpartition("-") if ":" in text and "-" in text else ("", "", text)
        parts = [float(p) for p in clock.split(":")]
        if len(parts) > 3 or any(p < 0 for p in parts):
            raise ValueError
        seconds = 0.0
        for part in parts:
            seconds = seconds * 60 + part
        seconds += float(days or 0) * 86400
    except ValueError:
        raise InputError(f"{name} must be seconds or [[HH:]MM:]SS, not {value!r}") from None
    if not math.isfinite(seconds) or seconds < 0 or (seconds == 0 and not allow_zero):
        raise InputError(f"{name} must be greater than 0, not {value!r}")
    return seconds
