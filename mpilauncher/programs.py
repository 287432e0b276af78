"""Where a program is on ``PATH``: ``shutil.which`` without importing ``shutil``.

Every run asks on its way to the first task (is there an ``ibrun``? an ``nvidia-smi``? an
``srun`` inside a Slurm job?), and ``shutil`` imports ``fnmatch``, ``zlib``, ``bz2`` and
``lzma`` for its archive functions: ~3.5 ms of each rank's start, for a loop over ``PATH``.
This is that loop, for the case the launcher has (a bare name, Linux).
"""

from __future__ import annotations

import os


def which(name: str, path: str | None = None) -> str | None:
    """The first executable file ``name`` in ``path`` (default ``$PATH``), as ``shutil.which``
    finds it for a bare name; a name with a ``/`` is checked as it is."""
    if os.sep in name:
        return name if _executable(name) else None
    search = os.environ.get("PATH", os.defpath) if path is None else path
    if not search:
        return None
    for folder in search.split(os.pathsep):
        candidate = os.path.join(folder, name)  # (an empty entry: the current folder, as a relative name)
        if _executable(candidate):
            return candidate
    return None


def _executable(candidate: str) -> bool:
    return os.access(candidate, os.X_OK) and not os.path.isdir(candidate)
