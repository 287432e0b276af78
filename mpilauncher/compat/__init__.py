"""PyLauncher compatibility: ``import mpilauncher as pylauncher`` and a PyLauncher script runs.

- :mod:`.launchers`: ClassicLauncher and the other launcher functions;
- :mod:`.objects`: the small subset of PyLauncher's objects extended scripts use
  (LauncherJob, HostPool, CommandlineGenerator, DynamicLauncher...);
- :mod:`.keywords`: every keyword, what it does here and how that differs
  (the README's migration table is rendered from it);
- :mod:`.errors`: what the API raises.
"""

from mpilauncher import log
from mpilauncher.compat.errors import LauncherException, ScriptInputError, ScriptLauncherFailure
from mpilauncher.compat.launchers import (
    ClassicLauncher,
    GPULauncher,
    IbrunLauncher,
    LocalLauncher,
    MICLauncher,
    MPILauncher,
    RemoteIbrunLauncher,
    RemoteLauncher,
    ResumeClassicLauncher,
    SubmitLauncher,
)
from mpilauncher.compat.objects import (
    BareTaskGenerator,
    Commandline,
    CommandlineGenerator,
    CountedCommandGenerator,
    DynamicLauncher,
    DynamicLauncherJob,
    FileCommandlineGenerator,
    HostListByName,
    HostName,
    HostPool,
    JobId,
    LauncherJob,
    ListCommandlineGenerator,
    LocalExecutor,
    LocalHostPool,
    SleepCommandGenerator,
    SSHExecutor,
    TaskGenerator,
    WrappedTaskGenerator,
    pylauncher_version,
)

# An application that embeds the API may take the launcher's messages over (logging.getLogger("mpilauncher")):
# the logger and its handler are there once it is imported, as the CLI makes them only at the first message.
log.setup()

__all__ = [
    # PyLauncher's launcher functions, as its package exports them
    "ClassicLauncher", "LocalLauncher", "ResumeClassicLauncher", "MPILauncher", "IbrunLauncher", "GPULauncher",
    "RemoteLauncher", "SubmitLauncher", "DynamicLauncher", "RemoteIbrunLauncher", "MICLauncher",
    # PyLauncher's objects offered here (see objects.py)
    "LauncherException", "pylauncher_version", "JobId", "HostName", "Commandline", "CommandlineGenerator",
    "ListCommandlineGenerator", "FileCommandlineGenerator", "CountedCommandGenerator", "SleepCommandGenerator",
    "TaskGenerator", "WrappedTaskGenerator", "BareTaskGenerator", "HostPool", "LocalHostPool", "HostListByName",
    "SSHExecutor", "LocalExecutor", "LauncherJob", "DynamicLauncherJob",
    # what the API raises
    "ScriptInputError", "ScriptLauncherFailure",
]  # fmt: skip
