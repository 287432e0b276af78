"""mpilauncher: an MPI-native parametric job launcher, PyLauncher-compatible.

``import mpilauncher as pylauncher`` and call ``pylauncher.ClassicLauncher(...)``
as in PyLauncher scripts, or run ``python -m mpilauncher commandlines``.
"""

__version__ = "0.1.0"

from mpilauncher import compat  # noqa: E402
from mpilauncher.compat import *  # noqa: E402, F403 (PyLauncher's names, listed in compat.__all__)
from mpilauncher.errors import InputError, LauncherError, LauncherFailure  # noqa: E402
from mpilauncher.launch import RunResult  # noqa: E402

#: PyLauncher names (5.4 and the 4.x module) with no counterpart here, and what to use instead.
NOT_OFFERED = {
    **dict.fromkeys(
        ("Task", "WrappedTask", "BareTask", "RandomSleepTask", "TaskQueue", "Node", "HostLocator", "HostPoolBase",
         "HostList", "SGEHostList", "SLURMHostList", "PBSHostList", "ListHostList", "DefaultHostPool", "Executor",
         "MPIExecutor", "IbrunExecutor", "MpiexecExecutor", "SubmitExecutor", "Completion", "WrapCompletion",
         "BareCompletion", "FileCompletion", "TaskGeneratorIterate", "ssh_client", "environment_list"),
        "a PyLauncher internal: give your commandlines to ClassicLauncher (a file, a list or a generator of"
        " strings) or to LauncherJob(taskgenerator=TaskGenerator(your_generator))",
    ),
    **dict.fromkeys(
        ("DirectoryCommandlineGenerator", "DynamicCommandlineGenerator", "StateFileCommandlineGenerator"),
        "write a CommandlineGenerator subclass whose next() returns the commands, or use DynamicLauncher().append()",
    ),
    **dict.fromkeys(
        ("RandomDir", "NoRandomDir", "MakeRandomDir", "RandomFile", "NoRandomFile", "RandomID", "RandomNumber",
         "MakeRandomCommandFile", "MakeRandomSleepFile", "SingleSleepCommand", "DebugTraceMsg", "CompactIntList",
         "ClusterName", "ClusterHasSharedFileSystem", "SLURMNnodes", "SLURMCoresPerNode", "NullMonitor",
         "SlurmSqueueMonitor", "queuestate_update", "print_launcher_header"),
        "a PyLauncher helper for its own tests and internals; use Python's own (tempfile, random, os.environ)",
    ),
}  # fmt: skip


def __getattr__(name: str):
    """A PyLauncher name with no counterpart: calling it says what to use instead, in one line."""
    if name not in NOT_OFFERED:
        raise AttributeError(f"module 'mpilauncher' has no attribute {name!r}")

    def not_offered(*_args, **_kwargs):
        raise compat.errors.refuse(f"{name} (PyLauncher) is not offered by mpilauncher: {NOT_OFFERED[name]}")

    not_offered.__name__ = name
    return not_offered


__all__ = [*compat.__all__, "InputError", "LauncherError", "LauncherFailure", "RunResult", "__version__"]
