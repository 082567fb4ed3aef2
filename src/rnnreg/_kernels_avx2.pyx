# The same kernels as _kernels.pyx, compiled with AVX2 and FMA enabled (see setup.py). rnnreg
# imports this module instead of rnnreg._kernels when the CPU supports both (rnnreg._backend),
# so the default build stays portable to any x86-64 CPU while recent ones get wider vectors.
include "_kernels.pyx"
