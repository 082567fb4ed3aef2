"""Build rnnreg's compiled kernels (rnnreg/_kernels.pyx) with Cython against NumPy's headers.

RNNREG_DEBUG_BUILD=1 compiles the same source with bounds, wraparound and initialization checks
on and without optimization, for the debug run of the kernel tests.
"""
import os

import numpy as np
from Cython.Build import cythonize
from setuptools import Extension, setup

DEBUG_BUILD = os.environ.get("RNNREG_DEBUG_BUILD", "") not in ("", "0")

directives = {
    "language_level": 3,
    "boundscheck": DEBUG_BUILD,
    "wraparound": DEBUG_BUILD,
    "initializedcheck": DEBUG_BUILD,
    "cdivision": not DEBUG_BUILD,
}

if DEBUG_BUILD:
    compile_args = ["-O0", "-g"]
else:
    # Portable x86-64 code (no -march=native). errno and trapping semantics are dropped so that
    # exp/tanh loops can vectorize; IEEE rounding is kept (no -ffast-math).
    compile_args = ["-O3", "-fno-math-errno", "-fno-trapping-math"]

extensions = [
    Extension(
        "rnnreg._kernels",
        ["rnnreg/_kernels.pyx"],
        include_dirs=[np.get_include()],
        define_macros=[("NPY_NO_DEPRECATED_API", "NPY_1_7_API_VERSION")],
        extra_compile_args=compile_args,
    )
]

setup(ext_modules=cythonize(extensions, compiler_directives=directives))
