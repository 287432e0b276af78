"""``python -m mpilauncher``: the command line, and the one place that exits.

Errors become one line on stderr and a documented exit status (see
:mod:`mpilauncher.errors` and the README), never a traceback.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path
from typing import NoReturn

from mpilauncher import __version__, log
from mpilauncher.config import DEFAULT_BEAT_TIMEOUT, DEFAULT_DELAY, DEFAULT_GRACE, DEFAULT_POLL_INTERVAL, make_config
from mpilauncher.errors import EXIT_LAUNCHER_FAILED, InputError, LauncherError, OptionError, first_rank
from mpilauncher.launch import finalize_mpi, run
from mpilauncher.procfs import start_ticks
from mpilauncher.report.answer import AnswerParser, write_answer
from mpilauncher.result import shell_word
from mpilauncher.runtime.stop import hold_stop_signals, release_stop_signals, signal_name, take_pending

#: make_config's settings whose name here is not simply ``--setting-with-dashes``.
FLAGS = {"beat_timeout": "--agent-timeout", "commandlines": "the commandlines file"}


def flag(setting: str) -> str:
    """How the command line names a setting, for its error messages."""
    return FLAGS.get(setting, "--" + setting.replace("_", "-"))


class HelpFormatter(argparse.HelpFormatter):
    """argparse's formatter, sized to the terminal as argparse sizes it but without ``shutil``: argparse
    makes one for every ``add_argument`` (to check its metavar), and the default imports ``shutil`` for
    ``get_terminal_size``, and with it ``zlib``, ``bz2`` and ``lzma``: ~3.5 ms of every run's start."""

    def __init__(self, prog: str, indent_increment: int = 2, max_help_position: int = 24, width: int | None = None):
        super().__init__(prog, indent_increment, max_help_position, terminal_columns() - 2 if width is None else width)


def terminal_columns() -> int:
    """``shutil.get_terminal_size().columns``: ``$COLUMNS`` if a positive number, else the width of the
    terminal on stdout, else 80."""
    try:
        columns = int(os.environ.get("COLUMNS", "0"))
    except ValueError:
        columns = 0
    if columns > 0:
        return columns
    try:
        return os.get_terminal_size(sys.__stdout__.fileno()).columns or 80
    except (AttributeError, ValueError, OSError):
        return 80


def build_parser() -> argparse.ArgumentParser:
    parser = AnswerParser(
        prog="python -m mpilauncher",
        formatter_class=HelpFormatter,
        description="Run every line of a commandlines file on the cores you have, as they free up "
        "(PyLauncher-compatible).",
        epilog="Exit status: 0 all tasks exited 0; 1 some task failed; 2 bad input (nothing was run); "
        "3 the launcher itself failed; 4 stopped at --max-runtime or before the job's time limit; "
        "128+N stopped by signal N (resume with --resume after 4 or 128+N).  "
        "Also: 'python -m mpilauncher report QUEUESTATE' tells how a sweep went and why its failed tasks failed "
        "(their output's last lines); 'python -m mpilauncher output WORKDIR TASK_ID...' prints a task's output "
        "(--exec: its script), whichever output mode it ran in; 'python -m mpilauncher chain -n K "
        "[sbatch options] SCRIPT' submits a chain of up to K Slurm jobs of SCRIPT that continue the sweep until "
        "it is done.  Each has its own --help.",
    )
    parser.add_argument("commandlines", nargs="?", help="file with one command per line ('#' comments)")
    parser.add_argument(
        "--resume",
        metavar="QUEUESTATE",
        help="run the tasks a queuestate lists as not completed (ours or PyLauncher's)",
    )
    parser.add_argument(
        "--status",
        metavar="QUEUESTATE",
        help="print where a sweep stands (snapshot and journal merged) and exit; runs nothing",
    )
    parser.add_argument(
        "--rerun-failed",
        action="store_true",
        help="with --resume (or over a run of the same commandlines, unfinished or ended with failed tasks):"
        " also rerun tasks that exited non-zero",
    )
    parser.add_argument(
        "--force-resume",
        action="store_true",
        help="with --resume: go on even though the commandlines file changed since the sweep began, or the"
        " queuestate's journal is lost (from the snapshot alone: the tasks it journaled run again)",
    )
    parser.add_argument(
        "--break-lock",
        action="store_true",
        help="take over the sweep's lock (queuestate.lock) although its holder may still run: for a lock left "
        "by a launcher that died on another host (a lock of a dead launcher on this host, or of a Slurm job "
        "that has ended, is taken over without it)",
    )
    parser.add_argument(
        "--cores",
        default=None,
        metavar="N|node|file",
        help="cores per task: a number, 'node' (a whole node each) or 'file' ('N,' prefix per line)",
    )
    parser.add_argument(
        "--cores-per-node",
        type=str,
        default=None,
        metavar="N",
        help="use N cores per node instead of what Slurm or the OS reports",
    )
    parser.add_argument(
        "--workdir",
        help="directory for exec<N>, out<N> and the joblog "
        "(default pylauncher_tmp<jobid>); must not exist, except when resuming into it",
    )
    parser.add_argument(
        "--queuestate",
        default=None,
        metavar="FILE",
        help="where to keep the sweep's state (default ./queuestate; on --resume, that file)",
    )
    parser.add_argument(
        "--debug",
        nargs="?",
        const="host+job",
        default="",
        metavar="WORDS",
        help="trace every DELAY seconds: 'job' (queue), 'host' (placement), e.g. host+job "
        "(the default when given without a value)",
    )
    parser.add_argument(
        "--delay",
        default=str(DEFAULT_DELAY),
        metavar="SECONDS",
        help=f"trace interval and journal sync interval (default {DEFAULT_DELAY})",
    )
    parser.add_argument(
        "--start-interval",
        default=None,
        metavar="SECONDS",
        help="start at most one task every SECONDS across the job, to stagger tasks that all hit the file "
        "system at start-up (PyLauncher's delay did this; default: start tasks as soon as cores free up)",
    )
    parser.add_argument(
        "--schedule",
        default=None,
        metavar="blockN",
        help="PyLauncher's schedule: blockN joins every N consecutive lines with && into one task "
        "(PYL_ID in each line is that line's number; the task is numbered by block)",
    )
    parser.add_argument(
        "--start-over",
        action="store_true",
        help="run the whole sweep again even when the queuestate holds an unfinished run of the same "
        "commandlines (by default that run is continued)",
    )
    parser.add_argument(
        "--max-runtime",
        default=None,
        metavar="TIME",
        help="stop cleanly (resumable, exit status 4) after TIME: seconds or [[D-]HH:]MM:SS (PyLauncher's maxruntime)",
    )
    parser.add_argument(
        "--task-timeout",
        default=None,
        metavar="TIME",
        help="kill a task (its whole process tree) that runs longer than TIME: seconds or [[D-]HH:]MM:SS; "
        "recorded as 'timeout' in the joblog (a resume keeps the sweep's; 0: no limit)",
    )
    parser.add_argument(
        "--expected-time",
        default=None,
        metavar="TIME|file",
        help="how long each task runs: TIME (seconds or [[D-]HH:]MM:SS) for every task, or 'file' ('T,' prefix "
        "per line, after the 'N,' of --cores file; '-' for none); near --max-runtime or the job's time limit a "
        "task that cannot finish is held back for the next job (without it, the 90th percentile of the sweep's "
        "completed tasks of its size is the estimate)",
    )
    parser.add_argument(
        "--retries",
        default=None,
        metavar="N",
        help="run a task that failed (or timed out) again, up to N more times; each attempt is in the joblog"
        " (a resume keeps the sweep's)",
    )
    parser.add_argument(
        "--time-limit-margin",
        default="60",
        metavar="TIME",
        help="inside a Slurm job with a time limit, stop cleanly this long before it (default 60 s)",
    )
    parser.add_argument(
        "--grace",
        default=str(DEFAULT_GRACE),
        metavar="SECONDS",
        help=f"on SIGTERM/Ctrl-C, time running tasks get before SIGKILL (default {DEFAULT_GRACE})",
    )
    parser.add_argument(
        "--mpi",
        action="store_true",
        help="every task is an MPI program: run it with --cores ranks on exactly its slots (spanning "
        "consecutive nodes when wider than one), started by the MPI starter (IbrunLauncher)",
    )
    parser.add_argument(
        "--mpi-starter",
        default=None,
        metavar="auto|ibrun|srun|mpiexec|spawn",
        help="how MPI tasks start (default auto: ibrun where it exists, srun inside Slurm, else mpiexec; "
        "spawn: MPI_Comm_spawn for programs that call mpilauncher.spawn.report)",
    )
    parser.add_argument(
        "--gpus-per-task",
        default=0,
        metavar="G",
        help="give each task G GPUs of its node (CUDA_VISIBLE_DEVICES / ROCR_VISIBLE_DEVICES list only them) "
        "and, unless --cores is given, its GPUs' share of the node's cores",
    )
    parser.add_argument(
        "--gpus-per-node",
        default=None,
        metavar="N",
        help="use N GPUs per node instead of what Slurm, CUDA_VISIBLE_DEVICES or nvidia-smi report",
    )
    parser.add_argument(
        "--tasks-per-gpu",
        metavar="K",
        help="let K tasks share one GPU (default 1: never two tasks on one GPU; a resume keeps the sweep's)",
    )
    parser.add_argument(
        "--no-bind",
        dest="bind",
        action="store_false",
        help="do not bind tasks to their cores (binding, like PyLauncher's numactl option, is on by default "
        "where the node's core slots are real CPUs this process may use)",
    )
    parser.add_argument(
        "--agent-timeout",
        default=str(DEFAULT_BEAT_TIMEOUT),
        metavar="SECONDS",
        help="under MPI, declare a node's agent lost after this long without a message and run its tasks "
        f"elsewhere (default {DEFAULT_BEAT_TIMEOUT:g}; agents send a heartbeat every min(5, this/4) s)",
    )
    parser.add_argument(
        "--emulate-nodes",
        type=str,
        default=None,
        metavar="V",
        help="testing/benchmark aid: under mpiexec, the ranks stand for V virtual nodes "
        "(with --cores-per-node C each), e.g. mpiexec -n 64 ... --emulate-nodes 64 --cores-per-node 64",
    )
    parser.add_argument(
        "--resubmit",
        default=0,
        metavar="K",
        help="inside a Slurm batch job: when the launcher stops at the time limit with tasks left, submit the "
        "same job script again (it continues the sweep), up to K jobs in all; for sites whose compute nodes may "
        "submit jobs (elsewhere: 'python -m mpilauncher chain -n K SCRIPT' on the login node)",
    )
    parser.add_argument(
        "-q",
        "--quiet",
        action="store_true",
        help="only warnings, errors and the final statistics: no start-up lines, notes or progress",
    )
    parser.add_argument(
        "--output",
        default=None,
        metavar="per-task|per-node",
        help="per-task (default): each task's output in the workdir's out<N>, as in PyLauncher, its command in "
        "exec<N> if it failed or ran 10 s ('output WORKDIR ID --exec' prints any task's); "
        "per-node: a few files per node however many tasks (for parallel file systems), read back "
        "with 'python -m mpilauncher output WORKDIR ID'; a resume keeps the sweep's mode unless given this",
    )
    parser.add_argument(
        "--progress",
        default="auto",
        metavar="auto|bar|lines|off",
        help="how progress shows on stderr: a live line on a terminal and a status line every "
        "--progress-interval seconds elsewhere (auto, the default), always one of them (bar, lines), or none",
    )
    parser.add_argument(
        "--progress-interval",
        default=None,
        metavar="SECONDS",
        help="seconds between two status lines ('mpilauncher: progress: ...') in a batch log (default 60)",
    )
    submit = parser.add_argument_group(
        "submit mode (PyLauncher's SubmitLauncher)",
        "Run on a login node, outside any allocation: every task (or chunk of tasks) becomes a Slurm job of its "
        "own. The queuestate, joblog, statistics and --resume work as in any run; a restarted submitter picks up "
        "the jobs it had submitted instead of submitting them again.",
    )
    submit.add_argument(
        "--submit",
        default=None,
        metavar="SBATCH_OPTIONS",
        help='submit every task as a Slurm job with these sbatch options, in one string (e.g. "-p debug -t 0:15:00"); '
        "a task of K cores (--cores K, 'N,' per line) gets -N 1 -n K, --cores node a whole node",
    )
    submit.add_argument(
        "--max-active",
        default=None,
        metavar="N",
        help="at most N of the sweep's jobs queued or running at once (default 1; PyLauncher's nactive)",
    )
    submit.add_argument(
        "--tasks-per-job",
        default=None,
        metavar="K",
        help="K tasks per job, run by the launcher inside the job on whatever the sbatch options give it "
        "(for sweeps of short tasks: fewer, larger jobs; default 1, one job per task)",
    )
    submit.add_argument(
        "--poll-interval",
        default=None,
        metavar="SECONDS",
        help=f"ask squeue about all the sweep's jobs this often (default {DEFAULT_POLL_INTERVAL:g}); the status "
        "file each job writes at its end is looked for every second",
    )
    submit.add_argument(
        "--cancel-on-stop",
        action="store_true",
        help="on Ctrl-C, SIGTERM or SIGHUP cancel the submitted jobs (scancel); by default they are left to run "
        "and a resume picks up their results",
    )
    parser.add_argument("--version", action=ShowVersion, help="show the version, and which executor loop runs tasks")
    return parser


class ShowVersion(argparse.Action):
    """``--version``: the version and the executor loop this install runs (whether pip built the
    compiled one: its warning is easily lost in pip's output), looked up only when asked."""

    def __init__(self, option_strings, dest, **kwargs) -> None:
        super().__init__(option_strings, dest, nargs=0, default=argparse.SUPPRESS, **kwargs)

    def __call__(self, parser, namespace, values, option_string=None) -> NoReturn:
        from mpilauncher.execution.executor import why_not_compiled

        why = why_not_compiled()
        loop = f"Python ({why})" if why else "compiled"
        write_answer(f"mpilauncher {__version__}\ntask executors' loop: {loop}\n")
        parser.exit()


def process_began() -> float:
    """``time.monotonic()`` at this process's start: --max-runtime counts the interpreter's start-up too."""
    ticks = start_ticks(os.getpid())
    if ticks is None:  # (no /proc)
        return time.monotonic()
    try:
        age = time.clock_gettime(time.CLOCK_BOOTTIME) - ticks / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, AttributeError):
        return time.monotonic()
    return time.monotonic() - min(max(0.0, age), 60.0)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] == "chain" and not Path("chain").is_file():  # a commandlines file may be called so
        from mpilauncher.chain import main as chain_main

        release_stop_signals()
        return chain_main(argv[1:])
    try:  # (from here an answer that cannot be written, --version's or report's, is one line too)
        if argv and argv[0] in ("report", "output") and not Path(argv[0]).is_file():
            from mpilauncher.commands import COMMANDS

            if not first_rank():  # (a reading under ``mpiexec -n K``: said once, by rank 0, not K times)
                return 0

            release_stop_signals()  # (reading a sweep: Ctrl-C simply interrupts it)
            return COMMANDS[argv[0]](argv[1:])
        args, unknown = build_parser().parse_known_args(_with_attached_values(argv))
        if unknown:
            raise InputError(unknown_words(unknown))
        if args.status:
            from mpilauncher.persistence.store import describe_state

            release_stop_signals()
            if first_rank():  # (as report's)
                write_answer(describe_state(Path(args.status)))
            return 0
        config = make_config(
            args.commandlines,
            resume=args.resume,
            cores=args.cores,
            workdir=args.workdir,
            debug=args.debug,
            delay=args.delay,
            queuestate=args.queuestate,
            cores_per_node=args.cores_per_node,
            rerun_failed=args.rerun_failed,
            force_resume=args.force_resume,
            break_lock=args.break_lock,
            max_runtime=args.max_runtime,
            task_timeout=args.task_timeout,
            retries=args.retries,
            time_limit_margin=args.time_limit_margin,
            grace=args.grace,
            emulate_nodes=args.emulate_nodes,
            beat_timeout=args.agent_timeout,
            bind=args.bind,
            gpus_per_task=args.gpus_per_task,
            gpus_per_node=args.gpus_per_node,
            tasks_per_gpu=args.tasks_per_gpu,
            mpi=args.mpi,
            mpi_starter=args.mpi_starter,
            schedule=args.schedule,
            start_interval=args.start_interval,
            start_over=args.start_over,
            resubmit=args.resubmit,
            quiet=args.quiet,
            submit=args.submit,
            max_active=args.max_active,
            tasks_per_job=args.tasks_per_job,
            poll_interval=args.poll_interval,
            cancel_on_stop=args.cancel_on_stop,
            progress=args.progress,
            progress_interval=args.progress_interval,
            output=args.output,
            expected_time=args.expected_time,
        )
        result = run(config, began=process_began())
    except LauncherError as err:
        if not err.reported and _speaks_for_the_run():
            log.error(str(err.named(flag(err.setting)) if isinstance(err, OptionError) else err))
        return err.exit_status
    except KeyboardInterrupt:
        log.outcome("interrupted")
        return 130
    except Exception as err:  # a bug: still one line, with where to look
        log.error(f"internal: {type(err).__name__}: {err} (please report it)")
        return EXIT_LAUNCHER_FAILED
    resume = f"python -m mpilauncher --resume {shell_word(result.queuestate)}" if result.queuestate else ""
    if result.interrupted:
        log.outcome(f"{result.interrupted}; {result.how_to_go_on(f'resume with: {resume}')}")
    elif resume:
        failures = result.failures_text(f"{resume} --rerun-failed")
        if failures:
            log.outcome(failures)
    late = take_pending()
    if late and result.statistics is not None:  # (rank 0 says it; the other ranks held it too)
        names = " and ".join(dict.fromkeys(signal_name(signum) for signum in late))
        log.note(f"{names} came after the run had ended: nothing was stopped, the exit status is the run's")
    return result.exit_status


def _speaks_for_the_run() -> bool:
    """Whether this process says an error nobody said yet: always once MPI is up (the run's own errors
    are said where they are met), and before it only rank 0 of a starter's ranks, by its environment
    (a bad option is found by every rank alike, before MPI starts: ``mpiexec -n 64`` said it 64 times)."""
    mpi = sys.modules.get("mpi4py.MPI")
    if mpi is not None and mpi.Is_initialized():
        return True
    return first_rank()


def unknown_words(words: list[str]) -> str:
    """What is wrong with words the command line does not take, in one line, not argparse's whole usage
    text: a commandlines file whose name begins with "-" (``python -m mpilauncher -cl``, a user walk) is
    said how to name, else the words are said unknown."""
    for word in words:
        if word.startswith("-") and os.path.lexists(word):
            return (
                f"{word} is taken as an option, and there is no such option; to run the commandlines file {word}:"
                f" python -m mpilauncher -- {shell_word(word)} (or {shell_word('./' + word)})"
            )
    return f"unrecognized arguments: {' '.join(words)} (python -m mpilauncher --help lists the options)"


#: Options whose value is often one word that starts with "-" (sbatch's own options: ``--submit -t1``).
_DASH_VALUES = ("--submit",)


def _with_attached_values(argv: list[str]) -> list[str]:
    """``--submit -t1`` as ``--submit=-t1``: argparse takes a lone ``-t1`` or ``--time=1`` for an option
    of ours and said "--submit: expected one argument" with its whole usage (a user walk); a value of
    several words (``"-p debug -t 5"``) it reads as it is."""
    joined: list[str] = []
    words = iter(argv)
    for word in words:
        if word in _DASH_VALUES:
            value = next(words, None)
            joined.append(word if value is None else f"{word}={value}")
        else:
            joined.append(word)
    return joined


def console() -> NoReturn:
    """The command's entry (``python -m mpilauncher``, the ``mpilauncher`` script): :func:`main`, then out;
    the stop signals held from the start to the end (see :func:`~mpilauncher.runtime.stop.hold_stop_signals`)."""
    hold_stop_signals()
    leave(main())


def leave(status: int) -> NoReturn:
    """Exit with ``status`` without the interpreter's teardown.

    Everything the run writes is closed by then (queuestate, journal, joblog, outputs); what
    is left is freeing every object one by one: ~15 ms here after a run's imports, more after
    a large sweep's tables, on every rank.  What a normal exit does that matters is done here:
    under MPI, MPI_Finalize first, bounded on rank 0 (:func:`~mpilauncher.launch.finalize_mpi`;
    mpi4py's own hook runs only at the end of a full teardown, and without a bound); the
    ``atexit`` handlers (logging's among them); the standard streams' flush (an error there is
    dropped, as everywhere on stdout: a closed or full stdout must not fail the sweep); and under
    MPI the C library's ``exit``: MPICH's starter killed the ranks still in MPI_Finalize when
    another left through ``os._exit``, which skips the C exit handlers (BAD TERMINATION, status
    9, with every rank at status 0).  The normal way instead, after the same MPI_Finalize: under
    MPI with a non-zero status (the first rank out would have the starter kill the others still
    finalizing), and under a profiler or tracer (``python -m cProfile``, coverage), which writes
    what it saw once the program returns.  With a thread of ours still going, the normal way
    and no MPI_Finalize here (the thread may still use MPI, and its work would be cut short):
    the launcher's ``atexit`` handler finalizes, bounded, once it is done.
    """
    mpi = sys.modules.get("mpi4py.MPI")
    under_mpi = mpi is not None and mpi.Is_initialized() and not mpi.Is_finalized()
    threading = sys.modules.get("threading")
    threads_going = threading is not None and any(
        t is not threading.main_thread() and not t.daemon and t.is_alive() for t in threading.enumerate()
    )
    if under_mpi and not threads_going:
        finalize_mpi(mpi, status)  # bounded (mpi4py's own at the teardown's end is not)
    if (under_mpi and status != 0) or sys.getprofile() is not None or sys.gettrace() is not None or threads_going:
        sys.exit(status)
    c_exit = None
    if under_mpi:
        try:
            import ctypes

            c_exit = ctypes.CDLL(None).exit
        except (ImportError, OSError, AttributeError):  # no ctypes in this Python: the normal way
            sys.exit(status)
    import atexit

    atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):
        try:
            if stream is not None:
                stream.flush()
        except (OSError, ValueError):
            pass
    if c_exit is not None:
        c_exit(status)
    os._exit(status)
