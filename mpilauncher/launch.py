"""One run from start to end: check everything, then run, then report.

Order matters for "bad input loses nothing": every input is read and checked
(commandlines or queuestate, cores, workdir, the queuestate we would
overwrite) *before* the first byte is written.  Only then is the workdir
created, the first snapshot written and the first task started.
"""

from __future__ import annotations

import dataclasses
import gc
import hashlib
import os
import signal
import sys
import threading
import time
from dataclasses import dataclass, field
from io import TextIOBase as TextIO
from pathlib import Path

from mpilauncher import cluster, relaunch
from mpilauncher.config import Config
from mpilauncher.core.ledger import FAILED, RUNNING, Ledger
from mpilauncher.core.scheduler import Scheduler, find_unplaceable
from mpilauncher.core.stats import Statistics, compute
from mpilauncher.core.tasks import CoresSpec, Task, parse_commandlines
from mpilauncher.errors import (
    EXIT_LAUNCHER_FAILED,
    EXIT_OK,
    EXIT_TASKS_FAILED,
    InputError,
    LauncherError,
    LauncherFailure,
)
from mpilauncher.execution.resources import allowed_cpus, detect_gpus, widen_to_cpuset
from mpilauncher.persistence.files import read_text
from mpilauncher.persistence.queuestate import StateMeta
from mpilauncher.persistence.store import StateStore, load_state
from mpilauncher.report.joblog import Joblog
from mpilauncher.report.summary import final_report
from mpilauncher.runtime.agent import Agent
from mpilauncher.runtime.master import Master, StopRequest
from mpilauncher.transport.local import LocalTransport

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGUSR1)


@dataclass(slots=True)
class Plan:
    """The checked inputs of a run."""

    ledger: Ledger
    to_run: list[Task]
    meta: StateMeta
    default_cores: CoresSpec
    state_path: Path
    resumed_from: Path | None


@dataclass(slots=True)
class RunResult:
    """What a finished (or stopped) run reports back to the API and the CLI."""

    statistics: Statistics | None  # None on ranks other than 0
    workdir: Path | None
    queuestate: Path | None
    interrupted: str | None
    exit_status: int
    dispatch_latencies: list[float] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.exit_status == EXIT_OK


def plan_from_commandlines(config: Config) -> Plan:
    path = Path(config.commandlines)
    text = read_text(path, "commandlines file")
    tasks = parse_commandlines(text, str(path), config.cores)
    meta = StateMeta(
        commandlines=str(path.resolve()),
        sha256=hashlib.sha256(text.encode("utf-8", "surrogateescape")).hexdigest(),
        cores=str(config.cores),
    )
    plan = Plan(Ledger(tasks), tasks, meta, config.cores, Path(config.queuestate or "queuestate"), None)
    mark_mpi_tasks(plan, config)
    return plan


def plan_from_queuestate(config: Config) -> Plan:
    source = Path(config.resume)
    loaded = load_state(source, config.cores)
    ledger = loaded.ledger
    to_run = ledger.to_run(config.rerun_failed)
    for task in to_run:
        ledger.requeued(task.id)
    meta = loaded.meta
    if loaded.from_pylauncher:
        meta.cores = str(config.cores)
    elif not config.force_resume:
        check_commandlines_unchanged(meta, source)
    target = Path(config.queuestate) if config.queuestate else source
    plan = Plan(ledger, to_run, meta, loaded.default_cores, target, source)
    mark_mpi_tasks(plan, config)
    return plan


def check_commandlines_unchanged(meta: StateMeta, source: Path) -> None:
    """Refuse to resume when the commandlines file changed since the sweep began.

    Task numbers are positions in that file: after an edit, "task 7" may be
    another command, and a resume would silently mix two sweeps.  (A missing
    file is fine: the queuestate holds every command.)
    """
    path = Path(meta.commandlines) if meta.commandlines else None
    if path is None or not meta.sha256 or not path.is_file():
        return
    try:
        current = hashlib.sha256(path.read_bytes()).hexdigest()
    except OSError:
        return
    if current != meta.sha256:
        raise InputError(
            f"the commandlines file {path} changed since this sweep began: task numbers may no longer match;"
            " --force-resume resumes anyway with the commands the queuestate holds",
            str(source),
        )


def mark_mpi_tasks(plan: Plan, config: Config) -> None:
    """IbrunLauncher / --mpi: every task is an MPI program (remembered for resume)."""
    if not (config.mpi or plan.meta.extra.get("mpi")):
        return
    plan.meta.extra["mpi"] = True
    plan.to_run = [dataclasses.replace(t, mpi=True) for t in plan.to_run]
    for task in plan.to_run:
        plan.ledger.records[task.id].task = task


def check_state_target(plan: Plan) -> None:
    """Refuse to overwrite a queuestate that still holds unfinished work of another sweep."""
    target = plan.state_path
    if plan.resumed_from is not None and target.resolve() == plan.resumed_from.resolve():
        return
    if not target.exists():
        return
    if target.is_dir():
        raise InputError("is a directory; --queuestate must name a file", str(target))
    try:
        other = load_state(target, CoresSpec("fixed", 1)).ledger
    except InputError:
        raise InputError(
            "exists and is not a readable queuestate: remove it or choose another --queuestate", str(target)
        ) from None
    unfinished = len(other.ids_in("queued", RUNNING))
    if unfinished:
        raise InputError(
            f"holds an unfinished sweep ({unfinished} tasks not run): resume it with --resume {target},"
            " or remove it, or choose another --queuestate",
            str(target),
        )


def choose_workdir(config: Config, plan: Plan, allocation: cluster.Allocation) -> Path:
    if config.workdir:
        workdir = Path(config.workdir)
    elif plan.resumed_from is not None and plan.meta.workdir:
        workdir = Path(plan.meta.workdir)
    else:
        local_id = allocation.job_id or f"local{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}"
        workdir = Path(f"pylauncher_tmp{local_id}")
    resuming_same = (
        plan.resumed_from is not None and plan.meta.workdir and workdir.resolve() == Path(plan.meta.workdir).resolve()
    )
    if workdir.exists() and not workdir.is_dir():
        raise InputError("workdir exists and is not a directory", str(workdir))
    if workdir.exists() and not resuming_same:
        raise InputError(
            "workdir already exists: remove it or choose another with --workdir (PyLauncher never reuses one)",
            str(workdir),
        )
    parent = workdir.resolve().parent
    if not parent.is_dir():
        raise InputError(f"cannot create workdir: {parent} does not exist", str(workdir))
    if not os.access(parent, os.W_OK | os.X_OK) and not resuming_same:
        raise InputError(f"cannot create workdir: {parent} is not writable", str(workdir))
    return workdir


def run_deadline(config: Config) -> tuple[float | None, str]:
    """When the run must stop by itself: --max-runtime, or the Slurm job's end less a margin."""
    now = time.monotonic()
    candidates = []
    if config.max_runtime:
        candidates.append((now + config.max_runtime, f"reached --max-runtime of {config.max_runtime:g} s"))
    left = cluster.job_seconds_left()
    if left is not None:
        margin = config.time_limit_margin
        candidates.append((now + left - margin, f"stopping {margin:g} s before the job's time limit"))
    if not candidates:
        return None, ""
    return min(candidates)


def check_placeable(plan: Plan, node_cores: list[int], source: str, node_gpus: list[int] | None = None) -> None:
    bad = find_unplaceable(plan.to_run, node_cores, node_gpus or [])
    if bad:
        first = bad[0]
        task = plan.ledger.records[first.task_id].task
        more = f" (and {len(bad) - 1} more)" if len(bad) > 1 else ""
        if first.gpus_needed:
            problem = (
                f"task {first.task_id} needs {first.gpus_needed} GPUs with {first.needed} cores, but no node has"
                f" them (most GPUs on a node: {first.most_gpus}){more}"
            )
        elif task.mpi:
            problem = f"MPI task {first.task_id} needs {first.needed} cores, but all nodes together have"
            problem += f" {first.largest_node}{more}"
        else:
            problem = f"task {first.task_id} needs {first.needed} cores, but the largest node has {first.largest_node}"
            problem += more
        raise InputError(problem, source, task.line or None)


def give_gpus(plan: Plan, config: Config, hellos: list) -> None:
    """GPU tasks: G GPUs each and, unless cores were given, their GPUs' share of a node's cores."""
    per_task = config.gpus_per_task or int(plan.meta.extra.get("gpus_per_task", 0))
    gpu_nodes = [h for h in hellos if h.gpus]
    if not gpu_nodes:
        where = ", ".join(sorted({h.node_name for h in hellos})[:4])
        raise InputError(
            f"GPU tasks, but no GPU found on {where} (looked at --gpus-per-node, SLURM_JOB_GPUS,"
            " CUDA_VISIBLE_DEVICES, ROCR_VISIBLE_DEVICES, SLURM_GPUS_ON_NODE, nvidia-smi)"
        )
    share = min(h.cores // len(h.gpus) for h in gpu_nodes) * per_task
    plan.meta.extra["gpus_per_task"] = per_task
    tasks = []
    for task in plan.to_run:
        cores = task.cores if config.cores_given or config.cores.kind == "file" else max(1, share)
        updated = dataclasses.replace(task, gpus=per_task, cores=cores)
        plan.ledger.records[task.id].task = updated
        tasks.append(updated)
    plan.to_run = tasks


class _SignalGuard:
    """Stop signals set a flag and wake the master's wait; restored afterwards."""

    def __init__(self, stop: StopRequest, transport) -> None:
        self.active = threading.current_thread() is threading.main_thread()
        self.stop, self.transport = stop, transport
        self._previous: dict[int, object] = {}
        self._old_fd = -1
        self._pipe: tuple[int, int] | None = None

    def __enter__(self) -> _SignalGuard:
        if not self.active:
            return self
        self._pipe = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        self.transport.add_wake_fd(self._pipe[0])
        self._old_fd = signal.set_wakeup_fd(self._pipe[1])
        for signum in STOP_SIGNALS:
            self._previous[signum] = signal.signal(signum, self.stop)
        return self

    def __exit__(self, *exc: object) -> None:
        if not self.active:
            return
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)
        signal.set_wakeup_fd(self._old_fd)
        for fd in self._pipe:
            os.close(fd)


def run(config: Config, out: TextIO | None = None) -> RunResult:
    """Run a sweep (or resume one) and return its result.

    Singleton (no MPI starter): one in-process agent on this machine.  Under
    ``mpiexec``/``srun``/``ibrun``: rank 0 is the master, one rank per node is
    an agent, the other ranks park; every rank returns when the sweep is done.
    Raises :class:`LauncherError` for bad input (nothing written then) and for
    failures of the launcher itself.
    """
    out = out or sys.stdout
    from mpilauncher.transport import mpi as mpi_transport

    if mpi_transport.started_by_mpi() or config.emulate_nodes:
        return _run_mpi(config, out)
    allocation = cluster.detect(cores_override=config.cores_per_node)
    if _step_tasks(os.environ) > 1:
        # srun started several tasks; only MPI itself can say whether they form one job.
        if mpi_transport.world().Get_size() > 1:
            return _run_mpi(config, out)
        relaunch.check_step(os.environ)  # raises: unwired MPI would run the sweep once per task
    if relaunch.needs_relaunch(os.environ):
        relaunch.exec_across_job(os.environ, allocation)
    warning = relaunch.check_step(os.environ)
    if warning:
        print(f"mpilauncher: warning: {warning}", file=sys.stderr, flush=True)
    cores = allocation.cores_of(allocation.this_node) or allocation.cores_per_node[0]
    transport = LocalTransport(_agent(config, allocation.this_node, cores))
    try:
        return _run_master(config, transport, allocation, out)
    finally:
        transport.close()


def _agent(config: Config, node_name: str, cores: int) -> Agent:
    gpus = detect_gpus(override=config.gpus_per_node, probe=config.gpus_per_task > 0).shared(config.tasks_per_gpu)
    return Agent(node_name, cores, gpus=gpus, bind=config.bind)


def _warn_if_confined(node_name: str, cores: int) -> None:
    """Say so when a node's tasks would have to share fewer CPUs than its core slots:
    the launcher's step (its cgroup cpuset) holds only part of the node."""
    usable = len(allowed_cpus())
    if 0 < usable < cores:
        print(
            f"mpilauncher: warning: on {node_name} the launcher may use only {usable} of the node's {cores} cores"
            f" (its cpuset): {cores} tasks would share them; give the launcher's step the whole node"
            f" (e.g. srun --cpus-per-task={cores}, or start mpilauncher without srun and let it relaunch itself)",
            file=sys.stderr,
            flush=True,
        )


def _step_tasks(environ) -> int:
    try:
        return int(environ.get("SLURM_STEP_NUM_TASKS") or "1") if "SLURM_STEP_ID" in environ else 1
    except ValueError:
        return 1


def _run_mpi(config: Config, out: TextIO) -> RunResult:
    from mpilauncher.transport import mpi as mpi_transport

    comm = mpi_transport.world()
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
    if role != "master":
        try:
            if role == "parked":
                status = mpi_transport.park(comm)
            else:
                status = mpi_transport.serve_agent(comm, _agent(config, node_name, cores))
        except BaseException as err:  # an agent that cannot go on must not leave rank 0 waiting
            print(f"mpilauncher: rank {rank} ({node_name}) failed: {type(err).__name__}: {err}", file=sys.stderr)
            comm.Abort(EXIT_LAUNCHER_FAILED)
            raise
        return RunResult(None, None, None, None, status)
    agent = _agent(config, node_name, cores)
    transport = mpi_transport.MasterTransport(comm, layout, agent, beat_timeout=config.beat_timeout)
    try:
        result = _run_master(config, transport, allocation, out)
    except BaseException as err:
        status = err.exit_status if isinstance(err, LauncherError) else EXIT_LAUNCHER_FAILED
        transport.shutdown(0.0, status)
        _abort_if_unclean(comm, transport, status)
        raise
    finally:
        transport.close()
    _abort_if_unclean(comm, transport, result.exit_status)
    return result


def _abort_if_unclean(comm, transport, status: int) -> None:
    """The state is saved; if some rank is gone, MPI_Finalize would wait for it forever: end the job instead."""
    if transport.unclean:
        print(
            "mpilauncher: some ranks did not end cleanly (lost agents); the queuestate is complete:"
            " aborting the MPI job so the allocation is freed",
            file=sys.stderr,
            flush=True,
        )
        sys.stdout.flush()
        comm.Abort(status or EXIT_LAUNCHER_FAILED)


def _run_master(config: Config, transport, allocation: cluster.Allocation, out: TextIO) -> RunResult:
    """Rank 0's part, the same for one machine and for many: check, run, report."""
    plan = plan_from_commandlines(config) if config.commandlines else plan_from_queuestate(config)
    source = config.commandlines or config.resume
    hellos = transport.hellos()
    pool_size = sum(hello.cores for _, hello in hellos)
    if config.gpus_per_task or plan.meta.extra.get("gpus_per_task"):
        give_gpus(plan, config, [hello for _, hello in hellos])
    check_placeable(plan, [hello.cores for _, hello in hellos], source, [len(h.gpus) for _, h in hellos])
    check_state_target(plan)
    workdir = choose_workdir(config, plan, allocation)
    try:
        workdir.mkdir(parents=False, exist_ok=plan.resumed_from is not None)
    except OSError as err:
        raise InputError(f"cannot create workdir: {err.strerror or err}", str(workdir)) from None
    plan.meta.workdir = str(workdir.resolve())
    transport.setup(plan.meta.workdir, os.getcwd(), config.mpi_starter, bool(config.emulate_nodes), config.task_timeout)

    store = StateStore(plan.state_path, plan.ledger, plan.meta, plan.default_cores, fsync_interval=config.delay)
    store.open(time.time())
    joblog = Joblog(workdir / "joblog")
    stop = StopRequest(*run_deadline(config))
    master = Master(
        Scheduler(plan.to_run, retries=config.retries, standby=True),
        store,
        joblog,
        transport,
        delay=config.delay,
        grace=config.grace,
        trace_jobs=config.trace_jobs,
        trace_hosts=config.trace_hosts,
        stop=stop,
        out=out,
        job_nodes=allocation.nodes,
    )
    # The tasks, the ledger and the scheduler's maps live as long as the run: out of the cyclic
    # garbage collector's sight, or every full collection walks them all (measured: a full pass
    # takes 0.24 s at 1,000,000 tasks; GC was 13% of rank 0's CPU at 20,000).  Undone at the
    # end, for scripts that call the API.
    gc.freeze()
    try:
        with _SignalGuard(stop, transport):
            outcome = master.run(hellos)
    except BaseException:
        # Whatever broke, no task may outlive us and the state on disk must say where we are.
        transport.shutdown(0.0, EXIT_LAUNCHER_FAILED)
        try:
            store.close(time.time(), time.monotonic() - master.began)
        except LauncherError:
            pass
        raise
    finally:
        joblog.close()
        gc.unfreeze()
    store.close(time.time(), outcome.elapsed)
    statistics = compute(plan.ledger, outcome.elapsed, pool_size)
    if config.print_statistics:
        out.write(final_report(statistics, outcome.failure or outcome.interrupted))
        out.flush()
    if outcome.failure is not None:  # its one line is on stderr already; the state is saved
        transport.shutdown(0.0, EXIT_LAUNCHER_FAILED)
        raise LauncherFailure(outcome.failure, reported=True)
    if outcome.interrupted is not None:
        status = stop.exit_status
    elif plan.ledger.ids_in(FAILED):
        status = EXIT_TASKS_FAILED
    else:
        status = EXIT_OK
    transport.shutdown(0.0, status)
    return RunResult(statistics, workdir, plan.state_path, outcome.interrupted, status, master.dispatch_latencies)
