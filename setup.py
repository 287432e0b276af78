"""The compiled executor (mpilauncher/execution/_cexecutor.c), built where a C compiler is.

Everything else is in pyproject.toml.  The executor is a program, not an extension module: it
starts without an interpreter (see the C file for why).  setuptools builds programs by no
declaration of its own, so this build_ext step compiles it with the compiler setuptools would use
for an extension, into the package beside executor.py (into the source tree for an editable
install).  Optional, as an extension would be with ``optional=True``: without a compiler the
install goes on with a warning and the executor processes run their Python loop instead.
"""

import os
import sys

from setuptools import Distribution, setup
from setuptools.command.build_ext import build_ext

SOURCE = "mpilauncher/execution/_cexecutor.c"
PROGRAM = "mpilauncher/execution/mpilauncher-executor"


class BuildExecutor(build_ext):
    """build_ext, and the executor program with it."""

    def run(self) -> None:
        super().run()
        from distutils.ccompiler import new_compiler  # (setuptools' own copy, once setuptools is imported)
        from distutils.errors import CCompilerError, DistutilsError
        from distutils.sysconfig import customize_compiler

        target = PROGRAM if self.inplace or self.editable_mode else os.path.join(self.build_lib, PROGRAM)
        try:
            compiler = new_compiler(compiler=self.compiler if isinstance(self.compiler, str) else None)
            customize_compiler(compiler)
            objects = compiler.compile(
                [SOURCE],
                output_dir=os.path.join(self.build_temp, "executor"),
                extra_postargs=["-std=gnu11", "-O2", "-Wall", "-Wextra", "-Wno-unused-parameter"],
            )
            os.makedirs(os.path.dirname(target) or ".", exist_ok=True)
            compiler.link_executable(objects, os.path.basename(target), output_dir=os.path.dirname(target),
                                     libraries=["m"])  # fmt: skip
        except (CCompilerError, DistutilsError, OSError) as err:
            sys.stderr.write(
                f"warning: mpilauncher: the compiled executor ({SOURCE}) could not be built ({err}): the"
                " executor processes will run their Python loop, with more CPU a task and at their start\n"
            )

    def get_outputs(self) -> list:
        return [*super().get_outputs(), os.path.join(self.build_lib, PROGRAM)]


class BinaryDistribution(Distribution):
    """A wheel with a program in it is for one platform, though it has no extension module."""

    def has_ext_modules(self) -> bool:
        return True


setup(cmdclass={"build_ext": BuildExecutor}, distclass=BinaryDistribution)
