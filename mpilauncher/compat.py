"""PyLauncher-compatible entry points: ``import mpilauncher as pylauncher``.

Users' scripts call ``pylauncher.ClassicLauncher("commandlines", cores=4,
debug="host+job")``; these functions take PyLauncher's keywords, build one
:class:`~mpilauncher.config.Config` and run it.  Like PyLauncher they print
the final statistics and return when the sweep is done (here with a
:class:`~mpilauncher.launch.RunResult`).  Bad input prints one line and exits
with status 2, the same as the CLI, so a batch job never shows a traceback;
a run stopped by a signal exits 128+N after saving its queuestate.
"""

from __future__ import annotations

import sys

from mpilauncher.config import DEFAULT_DELAY, make_config
from mpilauncher.errors import LauncherError
from mpilauncher.launch import RunResult, run

#: PyLauncher keywords we accept for source compatibility but that change nothing
#: here (ssh and stamp-file tuning, or features that arrive with later releases).
ACCEPTED_WITHOUT_EFFECT = frozenset({"numactl", "gather_output", "hfswitch", "schedule", "dependencies"})


def _launch(commandlines: str | None, resume: str | None, caller: str, kwargs: dict) -> RunResult:
    ignored = sorted(k for k in kwargs if k in ACCEPTED_WITHOUT_EFFECT)
    unknown = sorted(k for k in kwargs if k not in ACCEPTED_WITHOUT_EFFECT and k not in _KEYWORDS)
    try:
        if unknown:
            from mpilauncher.errors import InputError

            raise InputError(f"{caller}: unknown keyword {unknown[0]!r}")
        if ignored:
            print(f"mpilauncher: note: {caller} keyword(s) {', '.join(ignored)} have no effect here", file=sys.stderr)
        config = make_config(
            commandlines,
            resume=resume,
            cores=kwargs.get("cores"),
            workdir=kwargs.get("workdir"),
            debug=kwargs.get("debug", ""),
            delay=kwargs.get("delay", DEFAULT_DELAY),
            queuestate=kwargs.get("queuestate"),
            cores_per_node=kwargs.get("corespernode"),
            rerun_failed=bool(kwargs.get("rerun_failed", False)),
            bind=kwargs.get("bind", True),
            gpus_per_task=kwargs.get("gpuspertask", 0),
            gpus_per_node=kwargs.get("gpuspernode"),
            tasks_per_gpu=kwargs.get("taskspergpu", 1),
            mpi=kwargs.get("mpi", False),
            max_runtime=kwargs.get("maxruntime"),
            task_timeout=kwargs.get("taskmaxruntime"),
            retries=kwargs.get("retries", 0),
            mpi_starter=kwargs.get("mpi_starter"),
        )
        result = run(config)
    except LauncherError as err:
        if not err.reported:
            print(f"mpilauncher: error: {err}", file=sys.stderr)
        raise SystemExit(err.exit_status) from None
    if result.interrupted:
        print(
            f"mpilauncher: {result.interrupted}; resume with ResumeClassicLauncher({str(result.queuestate)!r})",
            file=sys.stderr,
        )
        raise SystemExit(result.exit_status)
    return result


_KEYWORDS = frozenset(
    {"cores", "workdir", "debug", "delay", "queuestate", "corespernode", "rerun_failed", "resume", "bind",
     "gpuspertask", "gpuspernode", "taskspergpu", "mpi", "mpi_starter", "maxruntime",
     "taskmaxruntime", "retries"}
)  # fmt: skip


def ClassicLauncher(commandlines: str, **kwargs) -> RunResult:  # noqa: N802 (PyLauncher's name)
    """Run every line of ``commandlines``; ``resume=1`` reads it as a queuestate instead."""
    if kwargs.pop("resume", None):
        return _launch(None, commandlines, "ClassicLauncher", kwargs)
    return _launch(commandlines, None, "ClassicLauncher", kwargs)


def ResumeClassicLauncher(queuestate: str = "queuestate", **kwargs) -> RunResult:  # noqa: N802
    """Run the tasks of a queuestate that did not complete, with their original numbers."""
    kwargs.pop("resume", None)
    return _launch(None, queuestate, "ResumeClassicLauncher", kwargs)


def GPULauncher(commandlines: str, **kwargs) -> RunResult:  # noqa: N802
    """One GPU per task (``gpuspernode=N`` overrides the detected count per node).

    As in PyLauncher, ``cores=`` is not accepted: each task gets its GPU's share
    of the node's cores.
    """
    if "cores" in kwargs:
        print("mpilauncher: error: GPULauncher takes no cores= (each task gets its GPU's share of the cores)",
              file=sys.stderr)  # fmt: skip
        raise SystemExit(2)
    kwargs.setdefault("gpuspertask", 1)
    if kwargs.pop("resume", None):
        return _launch(None, commandlines, "GPULauncher", kwargs)
    return _launch(commandlines, None, "GPULauncher", kwargs)


def IbrunLauncher(commandlines: str, **kwargs) -> RunResult:  # noqa: N802
    """Each line is an MPI program run with ``cores`` ranks (default 1) on exactly its slots.

    The launcher supplies the MPI starter (ibrun at TACC, srun inside Slurm,
    else mpiexec; ``mpi_starter=`` picks one); ``PYL_MPIEXEC`` in a line marks
    where it goes.
    """
    kwargs["mpi"] = True
    if kwargs.pop("resume", None):
        return _launch(None, commandlines, "IbrunLauncher", kwargs)
    return _launch(commandlines, None, "IbrunLauncher", kwargs)
