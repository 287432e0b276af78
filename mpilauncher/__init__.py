"""mpilauncher: an MPI-native parametric job launcher, PyLauncher-compatible.

``import mpilauncher as pylauncher`` and call ``pylauncher.ClassicLauncher(...)``
as in PyLauncher scripts, or run ``python -m mpilauncher commandlines``.
"""

__version__ = "0.1.0"

from mpilauncher.errors import InputError as InputError  # noqa: E402
from mpilauncher.errors import LauncherError as LauncherError  # noqa: E402
from mpilauncher.errors import LauncherFailure as LauncherFailure  # noqa: E402

# PyLauncher's names (mpilauncher.compat) and RunResult are imported when a script first asks for one
# (``pylauncher.ClassicLauncher``, ``from mpilauncher import *``), not by ``import mpilauncher``: the
# command line (``python -m mpilauncher``, on every rank of an MPI run) needs none of them, and the
# PyLauncher layer costs 20-30 ms of imports a process.
_LAZY = {"RunResult": "mpilauncher.result", "compat": None}

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
    """A PyLauncher name, loaded on first use; one with no counterpart here: calling it says what to
    use instead, in one line."""
    import importlib

    if name in _LAZY:
        value = importlib.import_module(_LAZY[name] or f"mpilauncher.{name}")
        value = getattr(value, name) if _LAZY[name] else value
    elif name == "__all__":  # (``from mpilauncher import *``)
        value = [*importlib.import_module("mpilauncher.compat").__all__, *_EAGER]
    elif name in NOT_OFFERED:

        def value(*_args, **_kwargs):
            from mpilauncher.compat import errors

            raise errors.refuse(f"{name} (PyLauncher) is not offered by mpilauncher: {NOT_OFFERED[name]}")

        value.__name__ = name
        return value
    elif _may_be_pylauncher(name) and name in importlib.import_module("mpilauncher.compat").__all__:
        value = getattr(importlib.import_module("mpilauncher.compat"), name)
    else:  # (also how ``from mpilauncher import log`` learns that log is a module to import)
        raise AttributeError(f"module 'mpilauncher' has no attribute {name!r}")
    globals()[name] = value  # (asked once)
    return value


def _may_be_pylauncher(name: str) -> bool:
    """PyLauncher's names are classes and functions in CamelCase, and ``pylauncher_version``; the
    package's own modules are lower case, and asking for one must not load the PyLauncher layer."""
    return name[:1].isupper() or name == "pylauncher_version"


def __dir__() -> list[str]:
    import importlib

    return sorted({*globals(), *_LAZY, *importlib.import_module("mpilauncher.compat").__all__})


_EAGER = ["InputError", "LauncherError", "LauncherFailure", "RunResult", "__version__"]
