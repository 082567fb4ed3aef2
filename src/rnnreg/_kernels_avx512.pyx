# The same kernels as _kernels.pyx, compiled with AVX-512 (F, VL, BW, DQ), AVX2 and FMA enabled
# (see setup.py). rnnreg imports this module when the CPU supports all of them (rnnreg._backend):
# the vector loops and the step products then run on 16 floats (8 doubles) at a time. Every
# result is the same bit for bit as the AVX2 build's: each element is made by the same
# operations in the same order whatever the vector width (see _fastmath.h).
include "_kernels.pyx"
