"""Build rnnreg's compiled kernels (src/rnnreg/_kernels.pyx) with Cython against NumPy's headers.

RNNREG_DEBUG_BUILD=1 compiles the same source with bounds, wraparound and initialization checks
on and without optimization, for the debug run of the kernel tests.
"""

import os
import platform
import sys
import tempfile

import numpy as np
from Cython.Build import cythonize
from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext as _build_ext

DEBUG_BUILD = os.environ.get("RNNREG_DEBUG_BUILD", "") not in ("", "0")

directives = {
    "language_level": 3,
    "boundscheck": DEBUG_BUILD,
    "wraparound": DEBUG_BUILD,
    "initializedcheck": DEBUG_BUILD,
    "cdivision": not DEBUG_BUILD,
}

# Flags by compiler family, chosen when the compiler is known (build_ext below).
if DEBUG_BUILD:
    GCC_LIKE_ARGS = ["-O0", "-g"]
else:
    # Portable x86-64 code (no -march=native). errno and trapping semantics are dropped so that
    # exp/tanh loops can vectorize; IEEE rounding is kept (no -ffast-math), and so is the order
    # of every operation: -ffp-contract=off stops the compiler from fusing a*b + c into one FMA,
    # which would break exact cancellations (layer norm of a constant row must give exactly 0).
    # FMA is used only where _fastmath.h asks for it explicitly.
    GCC_LIKE_ARGS = ["-O3", "-fno-math-errno", "-fno-trapping-math", "-ffp-contract=off"]
# MSVC: full optimization with IEEE semantics; /fp:precise does not contract into FMA since
# Visual Studio 2022 (contraction needs /fp:contract). _fastmath.h takes its plain-C branch there.
MSVC_ARGS = ["/Od", "/Zi"] if DEBUG_BUILD else ["/O2", "/fp:precise"]
# Release builds carry no debug information: Python's own CFLAGS add -g (1.6 MB per module,
# 0.3 MB stripped).
STRIP_ARGS = ["-Wl,-S"] if sys.platform == "darwin" else ["-s"] if sys.platform.startswith("linux") else []


# The kernels split their loops across threads with OpenMP when the compiler has it (GCC, Clang
# with libomp, MSVC); without it the same source compiles to serial loops. RNNREG_OPENMP=0 builds
# the serial version on purpose (CI tests that results do not depend on it).
OPENMP_WANTED = os.environ.get("RNNREG_OPENMP", "1") not in ("", "0")


def _compiler_has_openmp(compiler, compile_flag, link_flag):
    """Whether this compiler compiles and links a program using OpenMP with these flags."""
    source = "#include <omp.h>\nint main(void) { return omp_get_max_threads() > 0 ? 0 : 1; }\n"
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "openmp_probe.c")
        with open(path, "w") as f:
            f.write(source)
        try:
            objects = compiler.compile([path], output_dir=tmp, extra_postargs=[compile_flag])
            compiler.link_executable(
                objects, "openmp_probe", output_dir=tmp, extra_postargs=[link_flag] if link_flag else []
            )
        except Exception:  # CompileError, LinkError, or a compiler that cannot link programs
            return False
    return True


# The builds of the same source for wider vectors, each picked at import time on a CPU that has
# its instructions (rnnreg._backend): module -> its -m flags.
SIMD_FLAGS = {
    "rnnreg._kernels_avx2": ["-mavx2", "-mfma"],
    "rnnreg._kernels_avx512": ["-mavx2", "-mfma", "-mavx512f", "-mavx512vl", "-mavx512bw", "-mavx512dq"],
}


class build_ext(_build_ext):
    """Compiler-specific flags: GCC and Clang take GCC_LIKE_ARGS (and the SIMD builds their -m
    flags), MSVC takes MSVC_ARGS and builds only the portable module (it has no GCC vector
    extensions nor __builtin_cpu_supports, so a SIMD module could never be chosen). OpenMP
    flags are added when a probe program builds with them."""

    def build_extensions(self):
        msvc = self.compiler.compiler_type == "msvc"
        if msvc:
            self.extensions = [e for e in self.extensions if e.name not in SIMD_FLAGS]
        openmp_compile, openmp_link = ("/openmp", None) if msvc else ("-fopenmp", "-fopenmp")
        openmp = OPENMP_WANTED and _compiler_has_openmp(self.compiler, openmp_compile, openmp_link)
        print(f"rnnreg: building with OpenMP: {'yes' if openmp else 'no'}")
        for ext in self.extensions:
            simd = SIMD_FLAGS.get(ext.name, [])
            ext.extra_compile_args = (MSVC_ARGS if msvc else GCC_LIKE_ARGS) + simd
            ext.extra_link_args = STRIP_ARGS if not DEBUG_BUILD and not msvc else []
            if openmp:
                ext.extra_compile_args = ext.extra_compile_args + [openmp_compile]
                if openmp_link:
                    ext.extra_link_args = ext.extra_link_args + [openmp_link]
        super().build_extensions()


def kernel_extension(name, source, optional=False):
    return Extension(
        name,
        [source],
        include_dirs=[np.get_include(), os.path.join("src", "rnnreg")],
        # dladdr/dlopen (finding the BLAS's thread setting, see _kernels_threads.h) are in libdl
        # before glibc 2.34, which manylinux2014 still targets.
        libraries=["dl"] if sys.platform.startswith("linux") else [],
        define_macros=[
            ("NPY_NO_DEPRECATED_API", "NPY_1_7_API_VERSION"),
            ("RNNREG_DEBUG_BUILD", "1" if DEBUG_BUILD else "0"),
        ],
        optional=optional,
    )


extensions = [kernel_extension("rnnreg._kernels", "src/rnnreg/_kernels.pyx")]
if platform.machine().lower() in ("x86_64", "amd64") and not DEBUG_BUILD:
    # Builds of the same source for CPUs with AVX2 and FMA, and with AVX-512 too, picked at
    # import time. Optional: a compiler that does not know the flags skips one, and the next
    # narrower build serves.
    for name in SIMD_FLAGS:
        source = "src/" + name.replace(".", "/") + ".pyx"
        extensions.append(kernel_extension(name, source, optional=True))

# Debug and release builds keep separate build trees (and debug always re-cythonizes): pip builds
# in the source tree, and neither build may pick up the other's generated C or compiled modules.
build_base = os.path.join("build", "debug" if DEBUG_BUILD else "release")
setup(
    ext_modules=cythonize(
        extensions,
        compiler_directives=directives,
        force=DEBUG_BUILD,
        build_dir=os.path.join(build_base, "cython"),
    ),
    options={"build": {"build_base": build_base}},
    cmdclass={"build_ext": build_ext},
)
