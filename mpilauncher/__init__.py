"""mpilauncher: an MPI-native parametric job launcher, PyLauncher-compatible.

``import mpilauncher as pylauncher`` and call ``pylauncher.ClassicLauncher(...)``
as in PyLauncher scripts, or run ``python -m mpilauncher commandlines``.
"""

__version__ = "0.1.0"

from mpilauncher.compat import (  # noqa: E402
    ClassicLauncher,
    GPULauncher,
    IbrunLauncher,
    ResumeClassicLauncher,
)
from mpilauncher.errors import InputError, LauncherError  # noqa: E402
from mpilauncher.launch import RunResult  # noqa: E402

__all__ = [
    "ClassicLauncher",
    "GPULauncher",
    "IbrunLauncher",
    "ResumeClassicLauncher",
    "InputError",
    "LauncherError",
    "RunResult",
    "__version__",
]
