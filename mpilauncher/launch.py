"""Which part of a run this process plays, and how it ends: every process of a run starts here.

``run`` is the one entry (the CLI and the PyLauncher API call it): with no MPI
starter it is the master with an in-process agent; under ``mpiexec``/``srun``/
``ibrun`` rank 0 is the master, one rank per node an agent, the others park.
Only rank 0 (and a single process) imports :mod:`mpilauncher.rank0`, where the
inputs are checked and the run is planned, run and reported: an agent rank of
a 64-node run needs none of it, and its imports, done by every rank before MPI
starts, are what an MPI job's start-up waits for (benchmarks/dispatch.py).
"""

from __future__ import annotations

import os
import sys
import threading
import time
from io import TextIOBase as TextIO
from pathlib import Path

from mpilauncher import cluster, log, outbox, relaunch
from mpilauncher.config import Config, check_submit, option_error
from mpilauncher.errors import EXIT_LAUNCHER_FAILED, EXIT_OK, EXIT_TASKS_FAILED, InputError, LauncherError
from mpilauncher.execution.resources import allowed_cpus, detect_gpus, widen_to_cpuset
from mpilauncher.records import replace
from mpilauncher.report.output import TolerantOutput, ensure_standard_fds
from mpilauncher.result import RunResult as RunResult
from mpilauncher.runtime.agent import Agent
from mpilauncher.runtime.serve import park, serve_agent
from mpilauncher.runtime.stop import STOP_SIGNALS as STOP_SIGNALS  # (re-exported: what the starters do with them)
from mpilauncher.runtime.stop import SignalGuard, StopRequest, start_mpi
from mpilauncher.transport.local import LocalTransport
from mpilauncher.transport.wake import WakeableSleep, WakeFd


def run(config: Config, out: TextIO | None = None, began: float | None = None) -> RunResult:
    """Run a sweep (or resume one) and return its result, once all it wrote is written (see
    :mod:`mpilauncher.report.output`: the launcher's output is written by a thread of its own).

    Singleton (no MPI starter): one in-process agent on this machine.  Under
    ``mpiexec``/``srun``/``ibrun``: rank 0 is the master, one rank per node is
    an agent, the other ranks park; every rank returns when the sweep is done.
    Raises :class:`LauncherError` for bad input (nothing written then) and for
    failures of the launcher itself.  ``began`` (``time.monotonic()``) is when
    the run began, for ``--max-runtime``: the CLI passes its process's start.
    """
    began = time.monotonic() if began is None else began
    log.configure(config.quiet, tasks=config.trace_tasks)
    ensure_standard_fds()
    outbox.new_run()
    result = None
    try:
        result = _run(config, TolerantOutput(out or sys.stdout), began)
        return result
    finally:
        outbox.run_ended(stopped=result is None or bool(result.interrupted))


def _run(config: Config, out: TextIO, began: float) -> RunResult:
    from mpilauncher.transport import mpi as mpi_transport

    config = _resumed_submission(config)
    if config.submit is not None:
        if mpi_transport.started_by_mpi():
            raise option_error("submit", "runs as one process on a login node, not under an MPI starter")
        from mpilauncher import rank0

        return rank0.run_submit(config, out, began)
    if mpi_transport.started_by_mpi() or config.emulate_nodes:
        return _run_mpi(config, out, began)
    allocation = cluster.detect(cores_override=config.cores_per_node)
    if _step_tasks(os.environ) > 1:
        # srun started several tasks; only MPI itself can say whether they form one job.
        if start_mpi(mpi_transport.world).Get_size() > 1:
            return _run_mpi(config, out, began)
        relaunch.check_step(os.environ)  # raises: unwired MPI would run the sweep once per task
    if config.relaunch and relaunch.needs_relaunch(os.environ):
        relaunch.exec_across_job(os.environ, allocation)
    warning = relaunch.check_step(os.environ)
    if warning:
        log.warning(warning)
    cores = allocation.cores_of(allocation.this_node) or allocation.cores_per_node[0]
    transport = LocalTransport(_agent(config, allocation.this_node, cores))
    try:
        from mpilauncher import rank0

        return rank0.run_master(config, transport, allocation, out, began)
    finally:
        transport.close()


def _resumed_submission(config: Config) -> Config:
    """A plain --resume of a sweep that runs as Slurm jobs goes on in submit mode, with the settings it began
    with (the queuestate keeps them); options given now win."""
    recorded = None
    if config.resume and config.submit is None:
        from mpilauncher import submit  # (a resume only: the settings are in its queuestate)

        recorded = submit.recorded_settings(Path(config.resume))
    if recorded is not None:
        try:
            config = replace(
                config, submit=str(recorded["sbatch"]), max_active=config.max_active or int(recorded["max_active"]),
                tasks_per_job=config.tasks_per_job or int(recorded["tasks_per_job"]),
                poll_interval=config.poll_interval or float(recorded["poll_interval"]),
                partition=config.partition or recorded.get("partition"),
            )  # fmt: skip
        except (KeyError, TypeError, ValueError):
            problem = f"corrupt #meta line: its {submit.META_KEY} settings are {recorded!r}"
            raise InputError(problem, config.resume) from None
        config.notes += (f"this sweep runs as Slurm jobs: resuming it so (--submit {config.submit!r}"
                         f" --max-active {config.max_active})",)  # fmt: skip
    check_submit(config)
    return config


def _agent(config: Config, node_name: str, cores: int) -> Agent:
    """This rank's agent.  ``nvidia-smi`` is asked for GPUs when the run may have GPU tasks: a sweep
    given ``--gpus-per-task``, or any resume (only rank 0 reads the queuestate that may say so; a
    resumed GPU sweep on a machine whose GPUs only nvidia-smi lists was refused, "no GPU found")."""
    probe = config.gpus_per_task > 0 or bool(config.resume)
    gpus = detect_gpus(override=config.gpus_per_node, probe=probe)  # (rank 0 shares them: rank0.share_gpus)
    return Agent(node_name, cores, gpus=gpus, bind=config.bind, cpus_shared_by=config.emulate_nodes or 1)


def _warn_if_confined(node_name: str, cores: int) -> None:
    """Say so when a node's tasks would have to share fewer CPUs than its core slots:
    the launcher's step (its cgroup cpuset) holds only part of the node."""
    usable = len(allowed_cpus())
    if 0 < usable < cores:
        log.warning(
            f"on {node_name} the launcher may use only {usable} of the node's {cores} cores"
            f" (its cpuset): {cores} tasks would share them; give the launcher's step the whole node"
            f" (e.g. srun --cpus-per-task={cores}, or start mpilauncher without srun and let it relaunch itself)"
        )


def _step_tasks(environ) -> int:
    try:
        return int(environ.get("SLURM_STEP_NUM_TASKS") or "1") if "SLURM_STEP_ID" in environ else 1
    except ValueError:
        return 1


def _run_mpi(config: Config, out: TextIO, began: float) -> RunResult:
    """One rank's part of an MPI run, with the stop signals caught from MPI's start to the rank's end.

    Any rank may be signalled (see :data:`STOP_SIGNALS` for what each starter
    does): rank 0 acts on its own signals, the others pass theirs on to it.
    MPI is initialised first, so that no handler MPI might install replaces ours.
    """
    from mpilauncher.transport import mpi as mpi_transport

    comm = start_mpi(mpi_transport.world)
    at_exit = _FinalizeAtExit.register()
    stop = StopRequest()
    try:
        with SignalGuard(stop, then_ignore=True):
            result = _run_rank(config, out, comm, stop, began)
    except BaseException as err:
        at_exit.status = err.exit_status if isinstance(err, LauncherError) else EXIT_LAUNCHER_FAILED
        raise
    at_exit.status = result.exit_status
    return result


class _FinalizeAtExit:
    """MPI_Finalize at the interpreter's exit, bounded as the CLI's is (:func:`finalize_mpi`): a PyLauncher
    script under ``mpirun --with-ft ulfm`` that lost a node would otherwise wait in mpi4py's own finalize,
    unbounded, for the dead rank.  An ``atexit`` handler: it runs before mpi4py's (which then finds MPI
    finalized) and while threads still run, so the bound's timer can fire.  Should it fire, the job ends
    with the last run's exit status, or 1 where the script died of an exception (Python's own status
    then); a script that calls ``sys.exit(N)`` itself is not seen.  The CLI finalizes before the ``atexit``
    handlers run (``cli.leave``), so there this does nothing."""

    registered: _FinalizeAtExit | None = None

    def __init__(self) -> None:
        self.status = EXIT_OK

    @classmethod
    def register(cls) -> _FinalizeAtExit:
        if cls.registered is None:
            import atexit

            cls.registered = cls()
            atexit.register(cls.registered)
        return cls.registered

    def __call__(self) -> None:
        mpi = sys.modules.get("mpi4py.MPI")
        if mpi is not None and mpi.Is_initialized():
            finalize_mpi(mpi, 1 if getattr(sys, "last_value", None) is not None else self.status)


def _run_rank(config: Config, out: TextIO, comm, stop: StopRequest, began: float) -> RunResult:
    from mpilauncher.transport import mpi as mpi_transport

    layout = mpi_transport.discover(comm, config.emulate_nodes)
    rank = comm.Get_rank()
    role = layout.role(rank)
    node_name = layout.node_names[layout.node_of_rank[rank]]
    if role != "parked":
        widen_to_cpuset()  # the starter bound this rank to one CPU for MPI's sake, not for our tasks
    allocation = cluster.detect(cores_override=config.cores_per_node)
    cores = config.cores_per_node or allocation.cores_of(node_name) or cluster.local_cpu_count()
    if role != "parked" and not config.emulate_nodes:
        _warn_if_confined(node_name, cores)
    limit = max(config.beat_timeout or STUCK_SEND_LIMIT, STUCK_SEND_FLOOR)
    where = f"rank {rank} ({node_name})"
    if role != "master":
        try:
            if role == "parked":
                link = mpi_transport.MpiAgentEndpoint(comm)
                with WakeableSleep() as sleep, StuckSendWatchdog(comm, link.send_clock, limit, where):
                    status = park(link, sleep, stop_signal=lambda: stop.signum)
            else:
                link = mpi_transport.MpiAgentEndpoint(comm, parked=layout.parked_beside(rank))
                agent = _agent(config, node_name, cores)
                with WakeFd() as woken, StuckSendWatchdog(comm, link.send_clock, limit, where):
                    if woken.fd >= 0:
                        agent.add_wake_fd(woken.fd)  # rank 0 on this host wakes us with its SHUTDOWN
                    status = serve_agent(link, agent, stop_signal=lambda: stop.signum)
        except BaseException as err:  # an agent that cannot go on must not leave rank 0 waiting
            log.error(f"rank {rank} ({node_name}) failed: {type(err).__name__}: {err}")
            outbox.drain_all(outbox.STOP_DRAIN)  # (MPI_Abort ends the process: what it wrote first)
            comm.Abort(EXIT_LAUNCHER_FAILED)
            raise
        return RunResult(None, None, None, None, status)
    agent = _agent(config, node_name, cores)
    transport = mpi_transport.MasterTransport(
        comm, layout, agent, beat_timeout=config.beat_timeout, stop_signal=lambda: stop.signum
    )
    watchdog = EndWatchdog(comm, transport.end_bound())
    try:
        _check_emulation(config, comm.Get_size())
        from mpilauncher import rank0  # (rank 0 only: see the module docstring)

        with StuckSendWatchdog(comm, transport.send_clock, limit, where):
            result = rank0.run_master(config, transport, allocation, out, began, stop, written=watchdog.arm)
    except BaseException as err:
        status = err.exit_status if isinstance(err, LauncherError) else EXIT_LAUNCHER_FAILED
        transport.shutdown(0.0, status)
        _abort_if_unclean(comm, transport, status)
        watchdog.disarm()
        raise
    finally:
        transport.close()
    _abort_if_unclean(comm, transport, result.exit_status)
    watchdog.disarm()
    return result


#: What :class:`EndWatchdog` says is stuck: the run's end, or MPI_Finalize (``{bound}``: its bound in seconds).
RUN_END_STUCK = (
    "the end of the run is stuck inside MPI ({bound:.0f} s after the queuestate was complete: a rank died unnoticed?)"
)
FINALIZE_STUCK = "MPI_Finalize has not returned in {bound:.0f} s (the MPI library waits for a rank that failed?)"


class EndWatchdog:
    """Rank 0's bound on the end of an MPI run, from the moment its queuestate and statistics are on disk.

    Why: a call can get stuck inside MPI for good -- MPICH's send to a rank that died on another host
    retries the refused connection in its network layer (a user walk: rank 0 spun at 100% for 11
    minutes after printing its statistics, the lock left behind, the job never ending).  The shutdown
    sends nothing to ranks known or seen to be dead, but a rank may die unseen in the last moments.
    MPI releases Python's lock while it works, so this thread still runs: past the bound it gives back
    the sweep's lock, says so in one line and ends the job as :func:`_abort_if_unclean` does, with the
    run's exit status; if even MPI_Abort does not return, the process exits with that status.
    Armed only once the state is written (never while a stop's grace may still decide a task), and
    disarmed before the run returns to its caller (a PyLauncher script goes on after it).
    ``stuck``: what the line says is stuck, ``{bound}`` in it the bound (:func:`finalize_mpi` bounds
    MPI_Finalize with one of its own).
    """

    def __init__(self, comm, bound: float, stuck: str = RUN_END_STUCK) -> None:
        self.comm, self.bound, self.stuck = comm, bound, stuck
        self._timer: threading.Timer | None = None

    def arm(self, status: int) -> None:
        self.disarm()
        self._timer = threading.Timer(self.bound, self._fire, (status,))
        self._timer.daemon = True
        self._timer.start()

    def disarm(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _fire(self, status: int) -> None:
        stuck = self.stuck.format(bound=self.bound)
        _abort_stuck(self.comm, status, f"{stuck}: {_outcome(status)}; aborting the MPI job")


#: How long rank 0 gives MPI_Finalize before it ends the job itself (see :func:`finalize_mpi`).
FINALIZE_TIMEOUT = 30.0


def finalize_mpi(mpi, status: int, bound: float | None = None) -> None:
    """MPI_Finalize at a process's end, if not done yet; on rank 0 bounded: past ``bound`` s
    (:data:`FINALIZE_TIMEOUT` by default) the job is ended with MPI_Abort and the run's ``status``,
    the state long saved and the outcome said in one line.

    Why: Open MPI 5 with fault tolerance (``mpirun --with-ft ulfm``) can keep the living ranks in
    MPI_Finalize for good after a rank failed -- its closing fence waits for the dead one (open-mpi/ompi
    #9434, #11404).  Seen in CI and then in 2 of 10 runs of the agent-loss test on a loaded host: the
    report printed, every task run, and the job holding its nodes until the time limit.  Rank 0 is the
    last to arrive (an agent finalizes once it said BYE, rank 0 after its report), so its finalize has
    nobody left to wait for; an agent's would race with rank 0's last writes, so agents wait unbounded
    (rank 0's abort ends them too).  Called through ctypes: mpi4py's ``Finalize`` keeps Python's lock,
    so no thread of ours could run until it returned; a ctypes call gives the lock up, as MPI's own
    sends do.  MPI_Abort once finalize began is Open MPI's to honour (it ends the job with ``status``);
    MPICH calls it an error and ends the job with a status of its own -- ended either way, not held.
    Without ctypes (a Python built without it) it is mpi4py's ``Finalize``, unbounded, as before."""
    if mpi.Is_finalized():
        return
    bound = FINALIZE_TIMEOUT if bound is None else bound
    try:
        import ctypes

        c_finalize = ctypes.CDLL(mpi.__file__).MPI_Finalize  # (libmpi's symbol, through mpi4py's module)
    except (ImportError, OSError, AttributeError):
        mpi.Finalize()
        return
    watchdog = EndWatchdog(mpi.COMM_WORLD, bound, FINALIZE_STUCK)
    if mpi.COMM_WORLD.Get_rank() == 0:
        watchdog.arm(status)
    c_finalize()
    watchdog.disarm()


class StuckSendWatchdog:
    """A rank's bound on one MPI send, for the whole run: past ``limit`` s inside one send (see
    :class:`~mpilauncher.transport.mpi.SendClock`: a send to a rank that died on another host never
    returns under MPICH), it gives back the sweep's lock (rank 0), says so in one line and ends the MPI
    job, with EXIT_LAUNCHER_FAILED: the queuestate and its journal hold the sweep as it stood, as after a
    kill -9 (the tasks running then, and those whose ends came in that last turn, run again at a resume).
    Without it the job held its nodes until the time limit, and a resume had to wait for that.
    ``limit``: the agent timeout -- a rank that cannot be reached that long is as lost as a silent one."""

    def __init__(self, comm, clock, limit: float, where: str) -> None:
        self.comm, self.clock, self.limit, self.where = comm, clock, limit, where
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._watch, name="stuck-send-watchdog", daemon=True)

    def __enter__(self) -> StuckSendWatchdog:
        self._thread.start()
        return self

    def __exit__(self, *exc_info) -> None:
        self._stopped.set()

    def _watch(self) -> None:
        every = min(1.0, self.limit / 4)
        while not self._stopped.wait(every):
            if self.clock.stuck_for(time.monotonic()) > self.limit:
                rank = self.clock.rank
                to = f"rank {rank}" if rank >= 0 else "another rank"
                _abort_stuck(
                    self.comm,
                    EXIT_LAUNCHER_FAILED,
                    f"{self.where}: a send to {to} has been stuck inside MPI for {self.limit:.0f} s (that rank died"
                    " on another host?): aborting the MPI job; the queuestate and its journal hold the sweep as it"
                    " stood (--resume goes on from there, the tasks running now run again)",
                )


def _abort_stuck(comm, status: int, line: str) -> None:
    """End this process's MPI job from a watchdog's thread, the main one stuck inside MPI: the sweep's lock
    given back first (rank 0 holds it; elsewhere none is held), ``line`` said, the output drained, then
    MPI_Abort with ``status`` -- and if even that does not return, the process exits with it."""
    last = threading.Timer(ABORT_TIMEOUT, os._exit, (status,))  # (MPI_Abort stuck too)
    last.daemon = True
    last.start()
    from mpilauncher.persistence.lock import release_held

    release_held()
    log.warning(line)
    outbox.drain_all(outbox.STOP_DRAIN)
    comm.Abort(status)
    os._exit(status)


#: How long a watchdog gives MPI_Abort before the process exits by itself.
ABORT_TIMEOUT = 5.0
#: A send's bound where the agent timeout is off (``--agent-timeout 0``), and the least it is for a short
#: one: a send that returns takes microseconds, but a rank of an oversubscribed host may wait for a CPU.
STUCK_SEND_LIMIT, STUCK_SEND_FLOOR = 60.0, 10.0


def _check_emulation(config: Config, ranks: int) -> None:
    """Each virtual node needs a rank as its agent: more nodes than ranks would silently be fewer."""
    if config.emulate_nodes and config.emulate_nodes > ranks:
        raise option_error(
            "emulate_nodes",
            f"must be at most the number of MPI ranks, {ranks} here (each virtual node needs a rank as its agent:"
            f" mpiexec -n {config.emulate_nodes} ...), not {config.emulate_nodes}",
        )


def _abort_if_unclean(comm, transport, status: int) -> None:
    """The state is saved; if some rank is gone, MPI_Finalize would wait for it forever: end the job instead.

    With the run's own status: a sweep whose every task exited 0, those of a lost node run again
    elsewhere, is a success (MPICH's mpiexec exits with the status given to MPI_Abort, 0 included;
    it said 3, "the launcher failed", although nothing was left to resume: a user walk).  ``srun``
    does not: it reports a task that died of a signal as 128+N, whatever the others' status (Slurm
    22.05, tested), and the job script sees that.  So the last line says what the sweep's outcome is."""
    if transport.unclean:
        log.warning(
            f"lost {_ranks(transport)}: {_outcome(status)}, and the queuestate is complete; aborting the MPI"
            f" job so that the allocation is freed (srun then reports the lost rank's end, 137 for a kill -9,"
            f" not {status})"
        )
        sys.stdout.flush()
        outbox.drain_all(outbox.STOP_DRAIN)  # (MPI_Abort ends the process: the statistics first)
        comm.Abort(status)


def _ranks(transport) -> str:
    """The ranks the shutdown lost, with their nodes: ``rank 3 (node2)``, ``ranks 1 (c402), 2 (c402)``."""
    layout, lost = transport.layout, transport.lost_ranks
    named = [f"{rank} ({layout.node_names[layout.node_of_rank[rank]]})" for rank in lost[:5]]
    more = f" and {len(lost) - 5} more" if len(lost) > 5 else ""
    return f"rank{'s' if len(lost) > 1 else ''} {', '.join(named)}{more}" if lost else "a send to some rank"


def _outcome(status: int) -> str:
    """What a run's exit status says, in words, for the line that ends an MPI job the starter reports otherwise."""
    if status == EXIT_OK:
        return "the sweep completed, every task exited 0 (exit status 0)"
    if status == EXIT_TASKS_FAILED:
        return "the sweep ran, some tasks failed (exit status 1)"
    return f"the run ended with exit status {status}"
