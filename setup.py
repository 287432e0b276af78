"""The compiled executor loop (mpilauncher/execution/_cexecutor.c), built where a C compiler is.

Everything else is in pyproject.toml.  ``optional=True``: without a compiler (or Python's
headers) the install goes on and the executor processes run their Python loop instead
(see mpilauncher/execution/executor.py).
"""

from setuptools import Extension, setup

setup(
    ext_modules=[
        Extension(
            "mpilauncher.execution._cexecutor",
            ["mpilauncher/execution/_cexecutor.c"],
            extra_compile_args=["-std=gnu11", "-Wall", "-Wextra", "-Wno-unused-parameter"],
            optional=True,
        )
    ]
)
