# cython: language_level=3
# Directives (boundscheck, wraparound, cdivision, initializedcheck) are set once in setup.py, so
# that RNNREG_DEBUG_BUILD=1 can turn the checks back on for a debug build of this same file.
"""Compiled kernels of rnnreg: LSTM step and sequence, GRU sequence, layer norm, dropout, the loss, Adam.

Each function has a pure-NumPy twin of the same name in ``rnnreg._reference``; the contracts both
follow (gate order, layer-norm names, what a forward saves, the dropout rule) are defined once in
``rnnreg._conventions``. float32 and float64 share one source through the fused type
``floating``; matrix products go to BLAS (``scipy.linalg.cython_blas``) or to the loops of
``_fastmath.h``; all loops run without the GIL, and the time loop of a sequence runs here.

Every entry point checks its own arguments, whoever calls it: each array must be an ndarray of the
kernel's dtype, in native byte order, aligned and C-contiguous (outputs and in-place arguments
writeable), and its real dimensions (``PyArray_DIMS``, never a Python ``.shape``) must agree with
the others'. These checks are integer compares, no pass over the data; a failure raises
``TypeError`` (wrong kind of array) or ``ValueError`` (wrong size), naming the argument. So a direct
kernel call cannot read or write memory it should not. Dimensions too large for BLAS's 32-bit
integers are never cast down: such products run on the plain loops instead. The public wrappers in
``rnnreg.functional`` add the conventions (layouts, defaults, finiteness of inputs and results).
"""
from types import MappingProxyType

import operator

import numpy as np

from rnnreg._conventions import (GATE_ORDER, GRU_GATE_ORDER, GRU_LAYER_NORM_PARAMS, GRU_LN_SAVED,
                                 LN_SAVED, LSTM_LAYER_NORM_PARAMS, GRUCache, LSTMCache,
                                 dropout_threshold, step_functions)

cimport numpy as cnp
from cpython.pycapsule cimport PyCapsule_GetPointer, PyCapsule_New
from cpython.pyport cimport PY_SSIZE_T_MAX
from cython cimport floating
from libc.limits cimport INT_MAX
from libc.math cimport INFINITY, log, sqrt, sqrtf
from libc.stdint cimport int64_t, uint16_t, uint32_t, uint64_t
from libc.stdlib cimport free, malloc
from libc.string cimport memcpy, memset
from cython.parallel cimport parallel, prange
from numpy.random cimport bitgen_t
from scipy.linalg.cython_blas cimport dgemm, sgemm

cdef extern from "_kernels_build.h":
    int RNNREG_DEBUG_BUILD

# True in a debug build (RNNREG_DEBUG_BUILD=1 pip install .): bounds, wraparound and
# initialization checks on, no optimization.
DEBUG_BUILD = bool(RNNREG_DEBUG_BUILD)

cdef extern from "_kernels_build.h":
    int rn_cpu_has_avx2_fma() nogil
    int rn_cpu_has_avx512() nogil


def cpu_has_avx2_fma():
    """Whether the CPU supports AVX2 and FMA (CPUID via the compiler's builtin; False where the
    compiler has none): rnnreg._backend loads the AVX2 build of these kernels when it does."""
    return bool(rn_cpu_has_avx2_fma())


def cpu_has_avx512():
    """Whether the CPU supports AVX2, FMA and AVX-512 F, VL, BW and DQ (CPUID, as above):
    rnnreg._backend loads the AVX-512 build of these kernels when it does."""
    return bool(rn_cpu_has_avx512())


# The kernels in sections, each in its own file (one source: this file and the .pxi files it
# includes are compiled three times: portable, AVX2 and AVX-512, see setup.py).
include "_kernels_loops.pxi"
include "_kernels_threads.pxi"
include "_kernels_arguments.pxi"
include "_kernels_memory.pxi"
include "_kernels_layer_norm.pxi"
include "_kernels_dropout.pxi"
include "_kernels_lstm.pxi"
include "_kernels_gru.pxi"
include "_kernels_matmul.pxi"
include "_kernels_loss.pxi"
include "_kernels_finite.pxi"
include "_kernels_optimizer.pxi"
