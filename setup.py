"""Build rnnreg's compiled kernels (rnnreg/_kernels.pyx) with Cython against NumPy's headers.

RNNREG_DEBUG_BUILD=1 compiles the same source with bounds, wraparound and initialization checks
on and without optimization, for the debug run of the kernel tests.
"""
import os
import platform

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
    # exp/tanh loops can vectorize; IEEE rounding is kept (no -ffast-math), and so is the order
    # of every operation: -ffp-contract=off stops the compiler from fusing a*b + c into one FMA,
    # which would break exact cancellations (layer norm of a constant row must give exactly 0).
    # FMA is used only where _fastmath.h asks for it explicitly.
    compile_args = ["-O3", "-fno-math-errno", "-fno-trapping-math", "-ffp-contract=off"]

def kernel_extension(name, source, extra_args=(), optional=False):
    return Extension(
        name,
        [source],
        include_dirs=[np.get_include(), "rnnreg"],
        define_macros=[("NPY_NO_DEPRECATED_API", "NPY_1_7_API_VERSION"),
                       ("RNNREG_DEBUG_BUILD", "1" if DEBUG_BUILD else "0")],
        extra_compile_args=compile_args + list(extra_args),
        optional=optional,
    )


extensions = [kernel_extension("rnnreg._kernels", "rnnreg/_kernels.pyx")]
if platform.machine().lower() in ("x86_64", "amd64") and not DEBUG_BUILD:
    # A second build of the same source for CPUs with AVX2 and FMA, picked at import time.
    # Optional: a compiler that does not know the flags skips it, and the portable build serves.
    extensions.append(kernel_extension("rnnreg._kernels_avx2", "rnnreg/_kernels_avx2.pyx",
                                       ["-mavx2", "-mfma"], optional=True))

# Debug and release builds keep separate build trees (and debug always re-cythonizes): pip builds
# in the source tree, and neither build may pick up the other's generated C or compiled modules.
build_base = os.path.join("build", "debug" if DEBUG_BUILD else "release")
setup(
    ext_modules=cythonize(extensions, compiler_directives=directives, force=DEBUG_BUILD,
                          build_dir=os.path.join(build_base, "cython")),
    options={"build": {"build_base": build_base}},
)
