"""PyLauncher's launcher functions: ``import mpilauncher as pylauncher`` and call them.

Each takes PyLauncher's arguments and keywords (see :mod:`.keywords`), builds
one :class:`~mpilauncher.config.Config` and runs it, printing the start-up
lines and the final statistics as PyLauncher does, and returns a
:class:`~mpilauncher.result.RunResult` -- also when the run stopped at
``maxruntime`` or before the job's time limit (its ``interrupted``,
``completed``, ``left`` and ``resume_command`` say what happened), so the
script's own post-processing runs.  A signal: SIGINT raises
``KeyboardInterrupt`` (as Ctrl-C does in any Python call) and SIGTERM or
SIGHUP end the script with status 128+N (the job is being ended), each after
the queuestate is saved; SIGUSR1 (Slurm's early warning) returns like a time
limit.  Bad input prints one line and raises
:class:`~mpilauncher.compat.errors.ScriptInputError` (see there).
"""

from __future__ import annotations

import os
import signal
import socket
import sys
import time
from collections import Counter
from collections.abc import Iterable
from pathlib import Path

from mpilauncher import cluster, log
from mpilauncher.compat.errors import ScriptInputError, ScriptLauncherFailure, refuse, report
from mpilauncher.compat.keywords import Call, sort_keywords
from mpilauncher.config import make_config
from mpilauncher.errors import (
    EXIT_BAD_INPUT,
    EXIT_LAUNCHER_FAILED,
    EXIT_SIGNAL_BASE,
    InputError,
    LauncherError,
    OptionError,
)
from mpilauncher.launch import run
from mpilauncher.records import replace
from mpilauncher.result import RunResult

#: Notes already printed by this process: each difference is said once, not at every call.
_noted: set[str] = set()


def launch(
    job_type: str,
    commandlines: object,
    kwargs: dict[str, object],
    *,
    args: tuple = (),
    fixed: dict[str, object] | None = None,
    print_statistics: bool = True,
    prepare=None,
) -> RunResult:
    """One launcher call: sort the keywords, build the Config, run, and answer as described above.

    ``fixed`` are keywords the launcher itself sets (IbrunLauncher: ``mpi=True``);
    ``prepare(call)`` may adjust the sorted call (RemoteLauncher's host list).
    """
    call = None
    try:
        call, unknown = sort_keywords(job_type, kwargs)
        if unknown:
            raise refuse(unknown[0])
        call.config.update(fixed or {})
        if args:
            call.notes.append(f"{job_type}: extra positional arguments {args!r} are ignored (PyLauncher ignores them)")
        if prepare is not None:
            prepare(call)
        name, text = commandlines_from(commandlines, call)
        config = make_config(None if call.resume else name, resume=name if call.resume else None, **call.config)
        notes = [note for note in (*config.notes, *call.notes) if note not in _noted]
        config = replace(
            config, commandlines_text=text, job_type=job_type, notes=tuple(notes), relaunch=not call.local,
            print_statistics=print_statistics, cores_from_objects=call.cores_from_objects,
        )  # fmt: skip
        started = time.time()
        result = run(config)
    except OptionError as err:
        name = call.keyword_of.get(err.setting) if call is not None else None
        raise report(InputError(err.named(f"{name}=")) if name else err) from None
    except LauncherError as err:
        raise report(err) from None
    _noted.update(notes)
    return _answer(result, call, started)


def commandlines_from(source: object, call: Call) -> tuple[str, str | None]:
    """(name, text): a file's name and None, or a name for commandlines given from Python and their text.

    A list, a generator or any iterator of strings (or PyLauncher ``Commandline``
    objects, whose ``cores`` count when ``cores=`` is not given) is read to its
    end; each item is one line of a commandlines file (comments and blank
    items are skipped as there).  The queuestate names it ``<commandlines from
    SCRIPT>`` and keeps its content hash, so re-running the same script over an
    unfinished run continues it.
    """
    if isinstance(source, (str, os.PathLike)):
        return os.fspath(source), None
    filename = getattr(source, "filename", None)  # FileCommandlineGenerator
    if filename is not None:
        return os.fspath(filename), None
    if isinstance(source, (bytes, bytearray)) or not isinstance(source, Iterable):
        raise refuse(
            f"{call.launcher}: commandlines must be a file name or a list/iterator of command strings,"
            f" not {type(source).__name__}"
        )
    if getattr(source, "endless", False):
        raise refuse(f"{call.launcher}: {type(source).__name__} without nmax= never ends: give nmax=N")
    lines, per_line = [], False
    for number, item in enumerate(source, start=1):
        if number == LONG_READING:
            log.note(
                f"{call.launcher}: {number:,} commandlines read from {type(source).__name__} and no end yet; every"
                " one is read before the first task starts: a generator must end (raise StopIteration, or nmax=N)"
            )
        cores = None
        if not isinstance(item, str) and hasattr(item, "__getitem__"):  # a Commandline
            item, cores = item["command"], item["cores"]
        if not isinstance(item, str):
            kind = type(item).__name__
            article = "an" if kind[0] in "aeiou" else "a"
            raise refuse(f"commandline {number} from Python is {article} {kind}, not a string")
        if "\n" in item.strip():
            raise refuse(f"commandline {number} from Python holds a newline: give one command per item")
        per_line = per_line or cores is not None
        lines.append((cores, item.strip()))
    if not any(line and not line.startswith("#") for _, line in lines):  # (not "the file holds ...": no file)
        raise refuse(f"{call.launcher}: no tasks: the commandlines given from Python hold no command")
    if per_line and "cores" not in call.config:  # PyLauncher: a Commandline's own core count decides
        call.config["cores"] = "file"
        call.cores_from_objects = True
        text = "\n".join(f"{cores or 1},{line}" if line and not line.startswith("#") else line for cores, line in lines)
    else:
        text = "\n".join(line for _, line in lines)
    script = Path(sys.argv[0]).name if sys.argv and sys.argv[0] else "python"
    return f"<commandlines from {script}>", text + "\n"


#: Commandlines from Python read before a note says that the reading goes on (a generator that never
#: ends -- PyLauncher's ``nmax=0``, "wait for finish()" -- was read in silence until memory ran out).
LONG_READING = 1_000_000


def _answer(result: RunResult, call: Call, started: float) -> RunResult:
    """Gather output, say what differs, and stop the script only where a signal says so."""
    rank0 = result.statistics is not None
    if rank0 and call.gather_output and result.workdir is not None:
        gather_output(result.workdir, Path(call.gather_output), started)
    if rank0 and result.statistics.aborted:
        _note_once(
            "tasks that exit non-zero or are killed count as aborted, not completed (PyLauncher could not see"
            " exit codes); the joblog's exit and status columns say which"
        )
    resume = f"ResumeClassicLauncher({str(result.queuestate)!r})" if result.queuestate else None
    result = replace(result, resume_command=resume)
    if rank0 and resume and not result.interrupted:
        failures = result.failures_text(f"ResumeClassicLauncher({str(result.queuestate)!r}, rerun_failed=True)")
        if failures:
            log.outcome(failures)
    status = result.exit_status
    if not rank0 and status == EXIT_BAD_INPUT:  # rank 0 raised with the one line; every rank stops alike
        raise ScriptInputError("bad input (rank 0 said which)")
    if not rank0 and status == EXIT_LAUNCHER_FAILED:
        raise ScriptLauncherFailure("the launcher failed (rank 0 said why)")
    if status < EXIT_SIGNAL_BASE and not result.interrupted:
        return result
    if rank0:
        log.outcome(
            f"{result.interrupted}: {result.completed} tasks completed, {result.left} left;"
            f" {result.how_to_go_on(f'resume with {resume}')}"
        )
    if status == EXIT_SIGNAL_BASE + signal.SIGINT:
        raise KeyboardInterrupt(f"stopped by SIGINT; the queuestate is saved: resume with {resume}")
    if status in (EXIT_SIGNAL_BASE + signal.SIGTERM, EXIT_SIGNAL_BASE + signal.SIGHUP):
        raise SystemExit(status)
    return result  # a time limit, maxruntime, or SIGUSR1 (Slurm's early warning): the script goes on


def _note_once(note: str) -> None:
    if note not in _noted:
        _noted.add(note)
        log.note(note)


def gather_output(workdir: Path, target: Path, started: float) -> None:
    """PyLauncher's ``append_output``: append the output of every task this run ended to ``target``,
    in task order (tasks whose joblog start is not before the run's), from whichever output mode ran."""
    from mpilauncher.execution.gather import iter_output
    from mpilauncher.report.joblog import read as read_joblog

    try:
        rows = read_joblog(workdir / "joblog")
    except OSError:
        return
    ids = sorted({int(row["id"]) for row in rows if float(row["start"]) >= started})
    try:
        with open(target, "ab") as gathered:
            for _, data in iter_output(str(workdir), ids):
                if data is not None:
                    gathered.write(data)
    except OSError as err:
        log.warning(f"cannot append output to {target}: {err.strerror or err}")


# -- the launchers -----------------------------------------------------------------------
def ClassicLauncher(commandlines, *args, **kwargs) -> RunResult:  # noqa: N802 (PyLauncher's names)
    """Run every line of ``commandlines`` (a file, or a list/iterator of strings); ``resume=1``
    reads it as a queuestate instead."""
    return launch("ClassicLauncher", commandlines, kwargs, args=args)


def ResumeClassicLauncher(queuestate="queuestate", *args, **kwargs) -> RunResult:  # noqa: N802
    """Run the tasks of a queuestate that did not complete, with their original numbers."""
    kwargs["resume"] = 1
    return launch("ResumeClassicLauncher", queuestate, kwargs, args=args)


def LocalLauncher(commandlines, nhosts, *args, **kwargs) -> RunResult:  # noqa: N802
    """``nhosts`` task slots on this machine only (never re-launched across a job)."""
    kwargs["nhosts"] = nhosts
    return launch("LocalLauncher", commandlines, kwargs, args=args)


def GPULauncher(commandlines, *args, **kwargs) -> RunResult:  # noqa: N802
    """One GPU per task (``gpuspernode=N`` overrides the detected count per node).

    As in PyLauncher, ``cores=`` is not accepted: each task gets its GPU's share
    of the node's cores.
    """
    if kwargs.get("cores"):
        raise refuse("GPULauncher takes no cores= (each task gets its GPU's share of the cores)")
    kwargs.pop("cores", None)
    kwargs.setdefault("gpuspertask", 1)
    return launch("GPULauncher", commandlines, kwargs, args=args)


def IbrunLauncher(commandlines, *args, **kwargs) -> RunResult:  # noqa: N802
    """Each line is an MPI program run with ``cores`` ranks (default 1) on exactly its slots.

    The launcher supplies the MPI starter (ibrun at TACC, srun inside Slurm,
    else mpiexec; ``mpi_starter=`` picks one); ``PYL_MPIEXEC`` in a line marks
    where it goes.
    """
    return launch("IbrunLauncher", commandlines, kwargs, args=args, fixed={"mpi": True})


def MPILauncher(commandlines, *args, **kwargs) -> RunResult:  # noqa: N802
    """PyLauncher's launcher of MPI tasks for sites without ibrun: here the same as IbrunLauncher."""
    return launch("MPILauncher", commandlines, kwargs, args=args, fixed={"mpi": True})


def RemoteLauncher(commandlines, hostlist, *args, **kwargs) -> RunResult:  # noqa: N802
    """Tasks on the hosts of ``hostlist``, ``ppn`` (default 4, as PyLauncher) at a time on each.

    mpilauncher does not start tasks over ssh: it starts them through its own
    ranks.  So the hosts must be this machine (then ``ppn`` slots for each time
    it is listed), or the nodes of the job this runs in (a Slurm job, or the
    MPI starter's hosts: ``mpiexec -hosts a,b -ppn 1 python script.py``).
    """
    kwargs.setdefault("ppn", 4)
    return launch("RemoteLauncher", commandlines, kwargs, args=args, prepare=_on_hosts(hostlist))


def RemoteIbrunLauncher(commandlines, hostlist, *args, **kwargs) -> RunResult:  # noqa: N802
    """RemoteLauncher whose tasks are MPI programs (as IbrunLauncher)."""
    kwargs.setdefault("ppn", 4)
    return launch(
        "RemoteIbrunLauncher", commandlines, kwargs, args=args, fixed={"mpi": True}, prepare=_on_hosts(hostlist)
    )


def _on_hosts(hostlist):
    def prepare(call: Call) -> None:
        listed = [hostlist] if isinstance(hostlist, str) else list(hostlist)
        hosts = [h["host"] if isinstance(h, dict) else str(h) for h in listed]  # names, or PyLauncher's host dicts
        if not hosts:
            raise refuse(f"{call.launcher}: the host list is empty")
        per_host = Counter(host.split(".")[0] for host in hosts)
        here = {"localhost", "127.0.0.1", socket.gethostname().split(".")[0]}
        ppn = call.slots_per_host
        try:
            slots = int(ppn)  # type: ignore[arg-type]
        except (TypeError, ValueError):
            raise refuse(f"{call.launcher}: ppn must be a whole number, not {ppn!r}") from None
        if set(per_host) <= here:
            call.config["cores_per_node"] = slots * sum(per_host.values())
            call.local = True
            return
        if len(set(per_host.values())) > 1:
            raise refuse(f"{call.launcher}: list every host equally often (each listing gives it ppn slots)")
        call.config["cores_per_node"] = slots * next(iter(per_host.values()))
        from mpilauncher.transport.mpi import started_by_mpi

        if started_by_mpi():
            return  # the MPI starter put the ranks on its hosts; they are the job's nodes
        allocation = cluster.detect()
        nodes = allocation.nodes if allocation.in_slurm else ()
        if set(per_host) != {node.split(".")[0] for node in nodes}:
            raise refuse(
                f"{call.launcher}: hosts {', '.join(sorted(per_host))} are not this machine nor the nodes of this job"
                f"{' (' + ', '.join(nodes) + ')' if nodes else ''}: mpilauncher starts tasks through its own ranks,"
                " not ssh; run the script in a job on exactly those nodes, or under mpiexec -hosts"
            )

    return prepare


def SubmitLauncher(commandlines, submitparams="", *args, **kwargs) -> RunResult:  # noqa: N802
    """Each task as a Slurm job of its own, submitted from here (a login node) with the sbatch options
    ``submitparams``, at most ``nactive`` (default 1) queued or running at once; ``tasks_per_job=N``
    runs N tasks per job with the launcher inside it.  Running the script again (or
    ``ResumeClassicLauncher``) after a stop picks up the jobs still queued or running."""

    def prepare(call: Call) -> None:
        call.config["submit"] = "" if submitparams is None else submitparams
        call.keyword_of["submit"] = "submitparams"

    return launch("SubmitLauncher", commandlines, kwargs, args=args, prepare=prepare)


def MICLauncher(commandlines, *args, **kwargs) -> RunResult:  # noqa: N802
    """PyLauncher's launcher for Xeon Phi coprocessors: refused."""
    raise refuse(
        "MICLauncher ran tasks on Xeon Phi coprocessors, which no longer exist: use ClassicLauncher"
        " (a KNL node is an ordinary node)"
    )
