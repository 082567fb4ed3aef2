# cython: language_level=3
# Directives (boundscheck, wraparound, cdivision, initializedcheck) are set once in setup.py, so
# that RNNREG_DEBUG_BUILD=1 can turn the checks back on for a debug build of this same file.
"""Compiled kernels of rnnreg: LSTM step and sequence, layer norm, dropout, the loss, Adam.

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

import numpy as np

from rnnreg._conventions import (GATE_ORDER, LN_SAVED, LSTM_LAYER_NORM_PARAMS, LSTMCache,
                                 dropout_threshold, step_functions)

cimport numpy as cnp
from cpython.pycapsule cimport PyCapsule_GetPointer, PyCapsule_New
from cython cimport floating
from libc.limits cimport INT_MAX
from libc.math cimport INFINITY, log, sqrt, sqrtf
from libc.stdint cimport int64_t, uint16_t, uint32_t, uint64_t
from libc.stdlib cimport free, malloc
from libc.string cimport memcpy, memset
from cython.parallel cimport prange
from numpy.random cimport bitgen_t
from scipy.linalg.cython_blas cimport dgemm, sgemm

cdef extern from *:
    """
    #ifndef RNNREG_DEBUG_BUILD
    #define RNNREG_DEBUG_BUILD 0
    #endif
    """
    int RNNREG_DEBUG_BUILD

# True in a debug build (RNNREG_DEBUG_BUILD=1 pip install .): bounds, wraparound and
# initialization checks on, no optimization.
DEBUG_BUILD = bool(RNNREG_DEBUG_BUILD)

cdef extern from *:
    """
    /* Whether this CPU runs AVX2 and FMA code, asked of the CPU itself (CPUID, through the
       compiler's builtin) rather than of another library's private tables. */
    static int rn_cpu_has_avx2_fma(void) {
    #if (defined(__GNUC__) || defined(__clang__)) && (defined(__x86_64__) || defined(__i386__))
        __builtin_cpu_init();
        return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
    #else
        return 0;
    #endif
    }
    """
    int rn_cpu_has_avx2_fma() nogil


def cpu_has_avx2_fma():
    """Whether the CPU supports AVX2 and FMA (CPUID via the compiler's builtin; False where the
    compiler has none): rnnreg._backend loads the AVX2 build of these kernels when it does."""
    return bool(rn_cpu_has_avx2_fma())



# ----------------------------------------------------------------------------- vectorized loops
cdef extern from "_fastmath.h" nogil:
    void rn_gates_d(double* a, const double* xw, const double* b, Py_ssize_t H)
    void rn_gates_f(float* a, const float* xw, const float* b, Py_ssize_t H)
    void rn_cell_d(const double* a, const double* c_prev, double* c, Py_ssize_t H)
    void rn_cell_f(const float* a, const float* c_prev, float* c, Py_ssize_t H)
    void rn_out_d(const double* u, const double* o, double* tc, double* h, Py_ssize_t H)
    void rn_out_f(const float* u, const float* o, float* tc, float* h, Py_ssize_t H)
    void rn_bwd_out_d(const double* dh, const double* dh_next, const double* a, const double* tc,
                      double* da, double* dt, Py_ssize_t H)
    void rn_bwd_out_f(const float* dh, const float* dh_next, const float* a, const float* tc,
                      float* da, float* dt, Py_ssize_t H)
    void rn_bwd_cell_d(const double* dcell, double* dc_next, const double* a, const double* c_prev,
                       double* da, Py_ssize_t H)
    void rn_bwd_cell_f(const float* dcell, float* dc_next, const float* a, const float* c_prev,
                       float* da, Py_ssize_t H)
    void rn_ln_fwd_d(const double* x, Py_ssize_t n, const double* gamma, const double* beta,
                     double eps, double* out, double* xhat, double* rstd)
    void rn_ln_fwd_f(const float* x, Py_ssize_t n, const float* gamma, const float* beta,
                     double eps, float* out, float* xhat, float* rstd)
    void rn_ln_bwd_acc_d(const double* dout, const double* xhat, double rstd, const double* gamma,
                         Py_ssize_t n, double* dx, double* dgamma, double* dbeta)
    void rn_ln_bwd_acc_f(const float* dout, const float* xhat, float rstd, const float* gamma,
                         Py_ssize_t n, float* dx, double* dgamma, double* dbeta)
    double rn_exp_shifted_d(const double* x, double shift, double* out, Py_ssize_t n)
    double rn_exp_shifted_f(const float* x, float shift, float* out, Py_ssize_t n)
    int rn_all_finite_d(const double* x, Py_ssize_t n)
    int rn_all_finite_f(const float* x, Py_ssize_t n)
    double rn_sum_squares_d(const double* x, Py_ssize_t n)
    double rn_sum_squares_f(const float* x, Py_ssize_t n)
    void rn_gemm_nn_d(Py_ssize_t m, Py_ssize_t n, Py_ssize_t k, const double* A,
                      Py_ssize_t sa_row, Py_ssize_t sa_col, const double* B, Py_ssize_t ldb,
                      double* C, Py_ssize_t ldc, int accumulate)
    void rn_gemm_nn_f(Py_ssize_t m, Py_ssize_t n, Py_ssize_t k, const float* A,
                      Py_ssize_t sa_row, Py_ssize_t sa_col, const float* B, Py_ssize_t ldb,
                      float* C, Py_ssize_t ldc, int accumulate)
    Py_ssize_t rn_pack_d_size(Py_ssize_t k, Py_ssize_t n)
    Py_ssize_t rn_pack_f_size(Py_ssize_t k, Py_ssize_t n)
    void rn_pack_d(Py_ssize_t k, Py_ssize_t n, const double* B, Py_ssize_t sb_row,
                   Py_ssize_t sb_col, double* packed)
    void rn_pack_f(Py_ssize_t k, Py_ssize_t n, const float* B, Py_ssize_t sb_row,
                   Py_ssize_t sb_col, float* packed)
    void rn_gemm_packed_d(Py_ssize_t m, Py_ssize_t n, Py_ssize_t k, const double* A,
                          Py_ssize_t lda, const double* packed, double* C, Py_ssize_t ldc,
                          int accumulate)
    void rn_gemm_packed_f(Py_ssize_t m, Py_ssize_t n, Py_ssize_t k, const float* A,
                          Py_ssize_t lda, const float* packed, float* C, Py_ssize_t ldc,
                          int accumulate)
    void rn_gemm_nt_d(Py_ssize_t m, Py_ssize_t n, Py_ssize_t k, const double* A, Py_ssize_t lda,
                      const double* B, Py_ssize_t ldb, double* C, Py_ssize_t ldc)
    void rn_gemm_nt_f(Py_ssize_t m, Py_ssize_t n, Py_ssize_t k, const float* A, Py_ssize_t lda,
                      const float* B, Py_ssize_t ldb, float* C, Py_ssize_t ldc)

# Products run as plain loops (rn_gemm_* in _fastmath.h) instead of BLAS when they have at most
# SMALL_BATCH rows (a time step of a tiny batch) or at most SMALL_PRODUCT multiply-adds (the whole
# sequence of the notebook's setting): below these sizes a BLAS call's fixed cost — checks and
# packing the operands — is larger than the arithmetic (measure: benchmarks/small_products.py).
# A time step of a larger batch multiplies the same Wh at every step: it runs on a copy of Wh
# packed once per sequence (StepWeights below), where BLAS would pack Wh again at every step.
cdef enum:
    SMALL_BATCH = 4
    SMALL_PRODUCT = 1 << 17


cdef inline void _gates(floating* a, const floating* xw, const floating* b,
                        Py_ssize_t H) noexcept nogil:
    if floating is float:
        rn_gates_f(a, xw, b, H)
    else:
        rn_gates_d(a, xw, b, H)


cdef inline void _cell(const floating* a, const floating* c_prev, floating* c,
                       Py_ssize_t H) noexcept nogil:
    if floating is float:
        rn_cell_f(a, c_prev, c, H)
    else:
        rn_cell_d(a, c_prev, c, H)


cdef inline void _out(const floating* u, const floating* o, floating* tc, floating* h,
                      Py_ssize_t H) noexcept nogil:
    if floating is float:
        rn_out_f(u, o, tc, h, H)
    else:
        rn_out_d(u, o, tc, h, H)


cdef inline void _bwd_out(const floating* dh, const floating* dh_next, const floating* a,
                          const floating* tc, floating* da, floating* dt,
                          Py_ssize_t H) noexcept nogil:
    if floating is float:
        rn_bwd_out_f(dh, dh_next, a, tc, da, dt, H)
    else:
        rn_bwd_out_d(dh, dh_next, a, tc, da, dt, H)


cdef inline void _bwd_cell(const floating* dcell, floating* dc_next, const floating* a,
                           const floating* c_prev, floating* da, Py_ssize_t H) noexcept nogil:
    if floating is float:
        rn_bwd_cell_f(dcell, dc_next, a, c_prev, da, H)
    else:
        rn_bwd_cell_d(dcell, dc_next, a, c_prev, da, H)


# BLAS takes its dimensions as 32-bit ints. A product with any dimension or row stride above
# _blas_int_max runs on the plain loops (which index with Py_ssize_t) instead of being cast down.
# The limit is a variable only so that tests can lower it and reach that path with small arrays.
cdef Py_ssize_t _blas_int_max = INT_MAX


def _set_blas_int_max(Py_ssize_t limit):
    """Testing hook: products with a dimension above ``limit`` skip BLAS (default INT_MAX).
    Returns the previous limit."""
    global _blas_int_max
    if limit < 1 or limit > INT_MAX:
        raise ValueError(f"limit must be in [1, {INT_MAX}], got {limit}")
    previous = _blas_int_max
    _blas_int_max = limit
    return previous


cdef inline bint _fits_blas(Py_ssize_t m, Py_ssize_t n, Py_ssize_t k, Py_ssize_t lda,
                            Py_ssize_t ldb, Py_ssize_t ldc) noexcept nogil:
    cdef Py_ssize_t top = _blas_int_max
    return m <= top and n <= top and k <= top and lda <= top and ldb <= top and ldc <= top


cdef inline void _product(bint trans_a, bint trans_b, Py_ssize_t m, Py_ssize_t n, Py_ssize_t k,
                          const floating* a, Py_ssize_t lda, const floating* b, Py_ssize_t ldb,
                          floating* c, Py_ssize_t ldc, bint accumulate=False) noexcept nogil:
    """Row-major C (m, n) = op(A) @ op(B), or C += op(A) @ op(B) when accumulate is set (not
    with trans_b): plain loops for small products (see SMALL_PRODUCT) and for dimensions BLAS's
    ints cannot hold, BLAS otherwise. lda, ldb, ldc are the row strides of A, B, C as stored.
    Not both trans_a and trans_b (no caller needs it; matmul refuses it above the BLAS limit)."""
    if ((m <= SMALL_BATCH or m * n * k <= SMALL_PRODUCT or not _fits_blas(m, n, k, lda, ldb, ldc))
            and not (trans_a and trans_b)):
        if trans_b:       # entries are dot products of rows of A and rows of B
            if floating is float:
                rn_gemm_nt_f(m, n, k, a, lda, b, ldb, c, ldc)
            else:
                rn_gemm_nt_d(m, n, k, a, lda, b, ldb, c, ldc)
        elif trans_a:     # A^T: the stored matrix read with its strides swapped
            if floating is float:
                rn_gemm_nn_f(m, n, k, a, 1, lda, b, ldb, c, ldc, accumulate)
            else:
                rn_gemm_nn_d(m, n, k, a, 1, lda, b, ldb, c, ldc, accumulate)
        else:
            if floating is float:
                rn_gemm_nn_f(m, n, k, a, lda, 1, b, ldb, c, ldc, accumulate)
            else:
                rn_gemm_nn_d(m, n, k, a, lda, 1, b, ldb, c, ldc, accumulate)
    else:
        _gemm(trans_a, trans_b, <int>m, <int>n, <int>k, 1, a, <int>lda, b, <int>ldb,
              1 if accumulate else 0, c, <int>ldc)


cdef struct StepWeights:
    # The recurrent weights one sequence multiplies at every step: B (k, n), packed once for
    # rn_gemm_packed (see _fastmath.h) when the batch is larger than SMALL_BATCH, else read as is.
    void* packed        # NULL: use b_rows with _product
    const void* b_rows  # B row-major, or B^T row-major when transposed
    bint transposed
    Py_ssize_t k, n


cdef inline void _step_weights_init(StepWeights* w, Py_ssize_t N, Py_ssize_t k, Py_ssize_t n,
                                    const floating* b, bint transposed) noexcept nogil:
    """B (k, n) = b (row-major (k, n)), or b^T when transposed (b row-major (n, k))."""
    w.packed = NULL
    w.b_rows = b
    w.transposed = transposed
    w.k = k
    w.n = n
    if N <= SMALL_BATCH:
        return
    if floating is float:
        w.packed = malloc(rn_pack_f_size(k, n) * sizeof(float))
    else:
        w.packed = malloc(rn_pack_d_size(k, n) * sizeof(double))
    if w.packed == NULL:   # out of memory for the copy: every step goes to BLAS instead
        return
    if floating is float:
        rn_pack_f(k, n, b, 1 if transposed else n, k if transposed else 1, <float*>w.packed)
    else:
        rn_pack_d(k, n, b, 1 if transposed else n, k if transposed else 1, <double*>w.packed)


cdef inline void _step_product(const StepWeights* w, Py_ssize_t m, const floating* a,
                               Py_ssize_t lda, floating* c, Py_ssize_t ldc,
                               bint accumulate) noexcept nogil:
    """C (m, n) = A (m, k) @ B, or C += A @ B, for one time step (accumulate not with a
    transposed B on the unpacked path)."""
    if w.packed != NULL:
        if floating is float:
            rn_gemm_packed_f(m, w.n, w.k, a, lda, <const float*>w.packed, c, ldc, accumulate)
        else:
            rn_gemm_packed_d(m, w.n, w.k, a, lda, <const double*>w.packed, c, ldc, accumulate)
    elif w.transposed:
        _product(False, True, m, w.n, w.k, a, lda, <const floating*>w.b_rows, w.k, c, ldc)
    else:
        _product(False, False, m, w.n, w.k, a, lda, <const floating*>w.b_rows, w.n, c, ldc,
                 accumulate)


cdef inline floating _sqrt(floating x) noexcept nogil:
    if floating is float:
        return sqrtf(x)   # libm's sqrt would compute in double and round differently
    else:
        return sqrt(x)


cdef void _gemm(bint trans_a, bint trans_b, int m, int n, int k, floating alpha,
                const floating* a, int lda, const floating* b, int ldb,
                floating beta, floating* c, int ldc) noexcept nogil:
    """Row-major C (m, n) = alpha * op(A) @ op(B) + beta * C, with lda/ldb/ldc the row strides.

    Fortran BLAS is column-major, and a row-major matrix read column-major is its transpose, so
    we ask BLAS for C^T = op(B)^T @ op(A)^T: swap the operands, keep the transpose flags.
    """
    cdef char ta = b'N'
    cdef char tb = b'N'
    if trans_a:
        ta = b'T'
    if trans_b:
        tb = b'T'
    if m == 0 or n == 0:
        return
    if floating is float:
        sgemm(&tb, &ta, &n, &m, &k, &alpha, <float*>b, &ldb, <float*>a, &lda, &beta, c, &ldc)
    else:
        dgemm(&tb, &ta, &n, &m, &k, &alpha, <double*>b, &ldb, <double*>a, &lda, &beta, c, &ldc)


# ----------------------------------------------------------------------------- threads
# The kernels share their work among threads with OpenMP (when the build has it, see setup.py),
# and split it so that the number of threads never changes a result:
# - the time loop of a sequence is split by sequences of the batch: every product and every
#   elementwise step computes a row from that row alone (rn_gemm_packed makes each row with the
#   same operations whatever rows share its call), and sums over the batch (the layer-norm
#   parameters' gradients) are made per sequence, then added in sequence order;
# - a large product is split into blocks of columns (or rows) of its result (PRODUCT_PARTS), a
#   split that depends on the product's shape only, each block one single-threaded BLAS call.
# So BLAS must not thread a block on its own (OpenBLAS's threaded products do not round like its
# single-threaded ones): for the length of a kernel call, BLAS is set to one thread (through its
# own setting, found next to the sgemm these kernels call) and rnnreg's threads do the sharing.
# A call uses min(OpenMP's limit, the threads BLAS was allowed, rnnreg.set_num_threads) threads,
# so threadpoolctl limits on either library, OMP_NUM_THREADS and OPENBLAS_NUM_THREADS all hold.
cdef extern from *:
    """
    #ifdef _OPENMP
    #include <omp.h>
    #define RN_HAVE_OPENMP 1
    static int rn_openmp_max_threads(void) { return omp_get_max_threads(); }
    #else
    #define RN_HAVE_OPENMP 0
    static int rn_openmp_max_threads(void) { return 1; }
    #endif

    typedef void (*rn_set_threads_t)(int);
    typedef int (*rn_get_threads_t)(void);
    static rn_set_threads_t rn_blas_set_threads = NULL;
    static rn_get_threads_t rn_blas_get_threads = NULL;

    #if defined(__unix__) || defined(__APPLE__)
    #include <dlfcn.h>
    /* Find the thread setting of the BLAS library that serves blas_function: the library that
       holds it, reopened without loading anything new (RTLD_NOLOAD), searched with its
       dependencies for OpenBLAS's setter under the names scipy's and NumPy's builds give it. */
    static int rn_find_blas_threads(void *blas_function) {
        static const char *const names[][2] = {
            {"scipy_openblas_set_num_threads", "scipy_openblas_get_num_threads"},
            {"openblas_set_num_threads", "openblas_get_num_threads"},
            {"scipy_openblas_set_num_threads64_", "scipy_openblas_get_num_threads64_"},
            {"openblas_set_num_threads64_", "openblas_get_num_threads64_"},
        };
        Dl_info info;
        void *library, *set, *get;
        size_t i;
        if (!dladdr(blas_function, &info) || info.dli_fname == NULL) return 0;
        library = dlopen(info.dli_fname, RTLD_LAZY | RTLD_NOLOAD);
        if (library == NULL) return 0;
        for (i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
            set = dlsym(library, names[i][0]);
            get = dlsym(library, names[i][1]);
            if (set != NULL && get != NULL) {
                rn_blas_set_threads = (rn_set_threads_t)set;
                rn_blas_get_threads = (rn_get_threads_t)get;
                return 1;
            }
        }
        return 0;
    }
    #else
    static int rn_find_blas_threads(void *blas_function) { (void)blas_function; return 0; }
    #endif
    /* -1: this BLAS's setting is unknown to rnnreg (not OpenBLAS) */
    static int rn_get_blas_threads(void) {
        return rn_blas_get_threads != NULL ? rn_blas_get_threads() : -1;
    }
    static void rn_set_blas_threads(int n) { if (rn_blas_set_threads != NULL) rn_blas_set_threads(n); }
    """
    int RN_HAVE_OPENMP
    int rn_openmp_max_threads() nogil
    int rn_find_blas_threads(void* blas_function) nogil
    int rn_get_blas_threads() nogil
    void rn_set_blas_threads(int n) nogil

cdef bint _blas_threads_known = rn_find_blas_threads(<void*>sgemm)
cdef int _thread_limit = 0          # rnnreg.set_num_threads; 0: none of rnnreg's own
cdef bint _forked = False           # this process is a fork of one that may have used OpenMP
cdef int _calls_in_flight = 0       # kernel calls between _acquire_threads and _release_threads
cdef int _blas_threads_outside = -1  # BLAS's setting before the first of them pinned it to 1


def _set_thread_limit(int limit):
    """rnnreg.set_num_threads's compiled half: kernel calls use at most ``limit`` threads (0: no
    limit of rnnreg's own). Returns the previous limit."""
    global _thread_limit
    if limit < 0:
        raise ValueError(f"limit must be >= 0, got {limit}")
    previous = _thread_limit
    _thread_limit = limit
    return previous


def _after_fork_in_child():
    """Called in a child process made by fork (os.register_at_fork, rnnreg._backend): GNU
    OpenMP's thread pool does not survive fork, and a child that opened a parallel region on the
    parent's pool would wait for threads that no longer exist. Every later call here runs on
    one thread, whatever the limits say."""
    global _forked
    _forked = True


def _thread_info():
    """What a kernel call would use now: a dict with ``openmp`` (the build has it),
    ``blas_threads_known`` (rnnreg found the BLAS's thread setting), ``limit`` (set_num_threads;
    0 none), ``threads`` (the threads the next call gets) and ``forked``."""
    return dict(openmp=bool(RN_HAVE_OPENMP), blas_threads_known=bool(_blas_threads_known),
                limit=_thread_limit, threads=_allowed_threads(), forked=bool(_forked))


cdef int _allowed_threads() noexcept:
    """The threads a call may use now: min(OpenMP's limit, BLAS's own setting — as it was before
    a call in flight pinned it —, set_num_threads), and one in a forked child. GIL held."""
    cdef int n = rn_openmp_max_threads()
    cdef int blas = _blas_threads_outside if _calls_in_flight > 0 else rn_get_blas_threads()
    if 1 <= blas < n:
        n = blas
    if 0 < _thread_limit < n:
        n = _thread_limit
    if _forked:
        n = 1
    return n if n > 1 else 1


cdef int _acquire_threads() noexcept:
    """Called with the GIL held, just before a kernel's nogil work (and _release_threads just
    after, the GIL held again): pins BLAS to one thread while any kernel call runs and returns
    the number of threads this call may use. The GIL orders the calls of Python threads, so the
    count of calls in flight needs no lock of its own."""
    global _calls_in_flight, _blas_threads_outside
    if _calls_in_flight == 0:
        _blas_threads_outside = rn_get_blas_threads()
        if _blas_threads_outside > 1:
            rn_set_blas_threads(1)
    _calls_in_flight += 1
    return _allowed_threads()


cdef void _release_threads() noexcept:
    global _calls_in_flight
    _calls_in_flight -= 1
    if _calls_in_flight == 0 and _blas_threads_outside > 1:
        rn_set_blas_threads(_blas_threads_outside)


# A large product is split into PRODUCT_PARTS blocks along its longer side (so that what each
# block packs again, the other operand, is the smaller one), blocks at least PRODUCT_MIN_PART
# wide and a multiple of 16: four parts feed two or four cores, and cost one thread 1-12%
# against one whole BLAS call where blocks of 256 columns cost 10-20% (benchmarks/products.py).
cdef enum:
    PRODUCT_PARTS = 4
    PRODUCT_MIN_PART = 64
    PARALLEL_MIN = 1 << 18   # elements below which a memory-bound loop stays on one thread
    LN_BLOCK_ROWS = 256      # rows per block of the layer-norm backward's parameter sums


cdef int _threads_for(Py_ssize_t elements) noexcept:
    """Threads for a loop over this many elements that calls no BLAS (so BLAS needs no pin):
    one below PARALLEL_MIN (where starting threads costs more than it saves), else what a
    kernel call may use."""
    return 1 if elements < PARALLEL_MIN else _allowed_threads()


cdef void _product_split(int n_threads, bint trans_a, bint trans_b, Py_ssize_t m, Py_ssize_t n,
                         Py_ssize_t k, const floating* a, Py_ssize_t lda, const floating* b,
                         Py_ssize_t ldb, floating* c, Py_ssize_t ldc) noexcept nogil:
    """_product (no accumulate) in blocks of columns of C, or of rows when C is taller than
    wide, shared among n_threads threads. The blocks depend on the shape alone and each is
    computed by one thread, so the result is the same bit for bit with any number of threads."""
    cdef bint by_columns = n >= m
    cdef Py_ssize_t size = n if by_columns else m
    cdef Py_ssize_t parts = size // PRODUCT_MIN_PART, width, blocks, i, lo, w
    if parts > PRODUCT_PARTS:
        parts = PRODUCT_PARTS
    if parts <= 1 or m * n * k <= SMALL_PRODUCT:
        _product(trans_a, trans_b, m, n, k, a, lda, b, ldb, c, ldc)
        return
    width = ((size + parts - 1) // parts + 15) // 16 * 16
    blocks = (size + width - 1) // width
    for i in prange(blocks, num_threads=n_threads, schedule="static"):
        lo = i * width
        w = size - lo if size - lo < width else width
        if by_columns:
            _product(trans_a, trans_b, m, w, k, a, lda, b + (lo * ldb if trans_b else lo), ldb,
                     c + lo, ldc)
        else:
            _product(trans_a, trans_b, w, n, k, a + (lo if trans_a else lo * lda), lda, b, ldb,
                     c + lo * ldc, ldc)


cdef inline void _ln_row_forward(const floating* x, Py_ssize_t n, const floating* gamma,
                                 const floating* beta, double eps, floating* out,
                                 floating* xhat, floating* rstd) noexcept nogil:
    """Normalize one row of n values (out may be x); see rn_ln_fwd in _fastmath.h."""
    if floating is float:
        rn_ln_fwd_f(x, n, gamma, beta, eps, out, xhat, rstd)
    else:
        rn_ln_fwd_d(x, n, gamma, beta, eps, out, xhat, rstd)


cdef inline void _ln_row_backward(const floating* dout, const floating* xhat, floating rstd,
                                  const floating* gamma, Py_ssize_t n, floating* dx,
                                  double* dgamma, double* dbeta) noexcept nogil:
    """One row's layer-norm input gradient into dx (which may be dout), and its share of the
    gain and bias gradients added to dgamma and dbeta; see rn_ln_bwd_acc in _fastmath.h."""
    if floating is float:
        rn_ln_bwd_acc_f(dout, xhat, rstd, gamma, n, dx, dgamma, dbeta)
    else:
        rn_ln_bwd_acc_d(dout, xhat, rstd, gamma, n, dx, dgamma, dbeta)


cdef inline void _sum_rows(const floating* rows, Py_ssize_t m, Py_ssize_t n,
                           double* total) noexcept nogil:
    """total[j] += sum over r of rows[r, j], in double."""
    cdef Py_ssize_t r, j
    for r in range(m):
        for j in range(n):
            total[j] += rows[r * n + j]


# ----------------------------------------------------------------------------- arguments
# Entry points reach array data through the NumPy C API rather than typed memoryviews: acquiring a
# memoryview costs ~0.17 µs per argument and np.empty ~0.45 µs per array (measured here), and at
# batch 1 a sequence call passes ~20 arrays — more time than its arithmetic. _array is the one
# gate every argument passes: it reads the array's real flags and dimensions from its C struct.
cnp.import_array()

cdef extern from "numpy/arrayobject.h":
    bint PyArray_ISNOTSWAPPED(cnp.ndarray arr)
    bint PyArray_ISALIGNED(cnp.ndarray arr)

# Shorthand for "this dimension is whatever the array has" in _array's expected dimensions.
cdef enum:
    ANY = -1


cdef inline int _typenum(floating probe) noexcept nogil:
    if floating is float:
        return cnp.NPY_FLOAT
    else:
        return cnp.NPY_DOUBLE


cdef str _shape_text(cnp.ndarray arr):
    return str(tuple(cnp.PyArray_DIMS(arr)[k] for k in range(cnp.PyArray_NDIM(arr))))


cdef str _expected_text(int ndim, Py_ssize_t d0, Py_ssize_t d1, Py_ssize_t d2):
    dims = [d0, d1, d2][:ndim]
    return "(" + ", ".join("any" if d == ANY else str(d) for d in dims) + ("," if ndim == 1 else "") + ")"


cdef void* _array(object obj, str name, int typenum, int ndim, Py_ssize_t d0=ANY,
                  Py_ssize_t d1=ANY, Py_ssize_t d2=ANY, bint writeable=False) except NULL:
    """The data pointer of argument ``name``, after checking that it is an ndarray of the given
    type, native byte order, aligned, C-contiguous (and writeable when asked), with ``ndim`` axes
    (any number when ndim is ANY) whose real lengths equal d0, d1, d2 where those are not ANY.
    TypeError for the wrong kind of array, ValueError for the wrong size."""
    if not cnp.PyArray_Check(obj):
        raise TypeError(f"{name} must be a numpy array, got {type(obj).__name__}")
    cdef cnp.ndarray arr = <cnp.ndarray>obj
    if (cnp.PyArray_TYPE(arr) != typenum or not PyArray_ISNOTSWAPPED(arr)
            or not PyArray_ISALIGNED(arr) or not cnp.PyArray_IS_C_CONTIGUOUS(arr)
            or (writeable and not cnp.PyArray_ISWRITEABLE(arr))):
        dtype = np.dtype(cnp.PyArray_TypeObjectFromType(typenum)).name
        raise TypeError(f"{name} must be a C-contiguous, aligned{', writeable' if writeable else ''} "
                        f"{dtype} array in native byte order, got {arr.dtype.str} "
                        f"(C-contiguous {bool(cnp.PyArray_IS_C_CONTIGUOUS(arr))}, aligned "
                        f"{bool(PyArray_ISALIGNED(arr))}, writeable {bool(cnp.PyArray_ISWRITEABLE(arr))})")
    cdef int nd = cnp.PyArray_NDIM(arr)
    cdef cnp.npy_intp* dims = cnp.PyArray_DIMS(arr)
    if ndim == ANY:
        return cnp.PyArray_DATA(arr)
    if nd != ndim:
        raise ValueError(f"{name} must have {ndim} axes, got shape {_shape_text(arr)}")
    if ((d0 != ANY and dims[0] != d0) or (d1 != ANY and dims[1] != d1)
            or (d2 != ANY and dims[2] != d2)):
        raise ValueError(f"{name} has shape {_shape_text(arr)}, expected "
                         f"{_expected_text(ndim, d0, d1, d2)}")
    return cnp.PyArray_DATA(arr)


cdef inline Py_ssize_t _dim(object arr, int axis) noexcept:
    """Length of an axis of an array that _array has accepted."""
    return cnp.PyArray_DIMS(<cnp.ndarray>arr)[axis]


cdef int _nonempty(str name, Py_ssize_t size) except -1:
    if size < 1:
        raise ValueError(f"{name} must not be empty")
    return 0


cdef void* _same_shape(object obj, str name, int typenum, object ref, str ref_name,
                       bint writeable=False) except NULL:
    """_array for an argument whose shape must equal that of an accepted array ``ref``."""
    cdef void* data = _array(obj, name, typenum, ANY, ANY, ANY, ANY, writeable)
    cdef cnp.ndarray arr = <cnp.ndarray>obj, other = <cnp.ndarray>ref
    cdef int k, nd = cnp.PyArray_NDIM(other)
    cdef bint same = cnp.PyArray_NDIM(arr) == nd
    if same:
        for k in range(nd):
            if cnp.PyArray_DIMS(arr)[k] != cnp.PyArray_DIMS(other)[k]:
                same = False
    if not same:
        raise ValueError(f"{name} has shape {_shape_text(arr)}, expected {_shape_text(other)} "
                         f"(the shape of {ref_name})")
    return data


cdef int _positive_eps(double eps) except -1:
    if not (eps > 0 and eps < INFINITY):
        raise ValueError(f"eps must be a finite number > 0, got {eps!r}")
    return 0


cdef object _item(object mapping, str key, str label):
    """mapping[key] for an argument that should be a mapping holding key; TypeError otherwise."""
    try:
        return mapping[key]
    except (KeyError, TypeError, IndexError):
        raise TypeError(f"{label} must be a mapping holding {key!r}") from None


cdef inline void* _ptr(object arr) noexcept:
    """The data pointer of an array this module made itself."""
    return cnp.PyArray_DATA(<cnp.ndarray>arr)


# ----------------------------------------------------------------------------- result memory
# Every call returns new arrays (its results and its cache), and a large new array costs more than
# its arithmetic on this kind of machine: malloc hands memory of that size back to the system on
# free and gets fresh pages on the next request, and each fresh 4 KiB page is a page fault and a
# zeroing (an LSTM forward with layer norm at batch 8, hidden 256 spent 3.5 of its 5.9 ms so,
# measured with perf). So the kernels make arrays of CACHE_MIN_BYTES or more through a NumPy
# memory handler (NEP 49) that keeps freed blocks, up to a byte limit, and gives one back when
# an array of the same size is asked for again — as the next batch of a training loop does.
# Each block carries its true size in a header, so a block is only ever reused for an array it
# holds; the arrays are ordinary NumPy arrays that own their data.
cdef extern from *:
    """
    #include "pythread.h"
    #if defined(__linux__)
    #include <sys/mman.h>
    #endif
    #define RN_CACHE_SLOTS 64
    #define RN_HEADER 64            /* keeps the 16-byte alignment of malloc's blocks */
    typedef struct { char *base; size_t size; unsigned long long used; } rn_block;
    static rn_block rn_cached[RN_CACHE_SLOTS];
    static size_t rn_cached_bytes = 0;
    static size_t rn_cache_limit = (size_t)256 << 20;
    static unsigned long long rn_clock = 0;   /* when each block was kept: oldest leaves first */
    static PyThread_type_lock rn_cache_lock = NULL;

    static char *rn_cache_take(size_t size) {
        char *base = NULL;
        int i;
        PyThread_acquire_lock(rn_cache_lock, WAIT_LOCK);
        for (i = 0; i < RN_CACHE_SLOTS; i++)
            if (rn_cached[i].base != NULL && rn_cached[i].size == size) {
                base = rn_cached[i].base;
                rn_cached[i].base = NULL;
                rn_cached_bytes -= size;
                break;
            }
        PyThread_release_lock(rn_cache_lock);
        return base;
    }
    static void *rn_block_malloc(void *ctx, size_t size) {
        char *base;
        (void)ctx;
        if (size > (size_t)-1 - RN_HEADER) return NULL;
        base = rn_cache_take(size);
        if (base == NULL) {
            base = (char *)malloc(size + RN_HEADER);
            if (base == NULL) return NULL;
    #if defined(__linux__) && defined(MADV_HUGEPAGE)
            /* As NumPy's own allocator does for 4 MiB and more: ask for huge pages, one fault
               per 2 MiB instead of per 4 KiB the first time the block is written. */
            if (size >= ((size_t)4 << 20)) {
                size_t offset = 4096 - (size_t)((Py_uintptr_t)base % 4096);
                madvise(base + offset, size + RN_HEADER - offset, MADV_HUGEPAGE);
            }
    #endif
        }
        *(size_t *)base = size;
        return base + RN_HEADER;
    }
    static void *rn_block_calloc(void *ctx, size_t n, size_t elsize) {
        void *p;
        if (elsize != 0 && n > ((size_t)-1 - RN_HEADER) / elsize) return NULL;
        p = rn_block_malloc(ctx, n * elsize);
        if (p != NULL) memset(p, 0, n * elsize);
        return p;
    }
    static void *rn_block_realloc(void *ctx, void *ptr, size_t size) {
        char *base;
        (void)ctx;
        if (ptr == NULL) return rn_block_malloc(ctx, size);
        if (size > (size_t)-1 - RN_HEADER) return NULL;
        base = (char *)realloc((char *)ptr - RN_HEADER, size + RN_HEADER);
        if (base == NULL) return NULL;
        *(size_t *)base = size;
        return base + RN_HEADER;
    }
    static void rn_block_free(void *ctx, void *ptr, size_t size_hint) {
        char *base;
        size_t size;
        int i, kept = 0;
        (void)ctx; (void)size_hint;   /* the header's size is the one to trust */
        if (ptr == NULL) return;
        base = (char *)ptr - RN_HEADER;
        size = *(size_t *)base;
        if (size > rn_cache_limit) {
            free(base);
            return;
        }
        PyThread_acquire_lock(rn_cache_lock, WAIT_LOCK);
        for (;;) {   /* room for it: the longest-kept blocks make way (sizes no longer asked for) */
            int empty = -1, oldest = -1;
            for (i = 0; i < RN_CACHE_SLOTS; i++) {
                if (rn_cached[i].base == NULL) { if (empty < 0) empty = i; }
                else if (oldest < 0 || rn_cached[i].used < rn_cached[oldest].used) oldest = i;
            }
            if (empty >= 0 && size <= rn_cache_limit - rn_cached_bytes) {
                rn_cached[empty].base = base;
                rn_cached[empty].size = size;
                rn_cached[empty].used = ++rn_clock;
                rn_cached_bytes += size;
                kept = 1;
                break;
            }
            if (oldest < 0) break;
            free(rn_cached[oldest].base);
            rn_cached_bytes -= rn_cached[oldest].size;
            rn_cached[oldest].base = NULL;
        }
        PyThread_release_lock(rn_cache_lock);
        if (!kept) free(base);
    }
    /* Frees every kept block and sets the limit; returns the bytes that were kept. */
    static size_t rn_cache_reset(size_t limit) {
        size_t was;
        int i;
        PyThread_acquire_lock(rn_cache_lock, WAIT_LOCK);
        was = rn_cached_bytes;
        for (i = 0; i < RN_CACHE_SLOTS; i++) {
            free(rn_cached[i].base);
            rn_cached[i].base = NULL;
        }
        rn_cached_bytes = 0;
        rn_cache_limit = limit;
        PyThread_release_lock(rn_cache_lock);
        return was;
    }
    static int rn_cache_init(void) {
        if (rn_cache_lock == NULL) rn_cache_lock = PyThread_allocate_lock();
        return rn_cache_lock != NULL;
    }
    static PyDataMem_Handler rn_block_handler = {
        "rnnreg_kept_blocks", 1,
        {NULL, rn_block_malloc, rn_block_calloc, rn_block_realloc, rn_block_free}
    };
    static void *rn_block_handler_address(void) { return &rn_block_handler; }
    """
    int rn_cache_init()
    size_t rn_cache_reset(size_t limit)
    size_t rn_cached_bytes
    size_t rn_cache_limit
    void* rn_block_handler_address()
    object PyDataMem_SetHandler(object handler)

cdef enum:
    CACHE_MIN_BYTES = 1 << 16   # smaller arrays come from malloc's heap without fresh pages

if not rn_cache_init():
    raise MemoryError("rnnreg._kernels: could not allocate the result-memory lock")
cdef object _block_handler = PyCapsule_New(rn_block_handler_address(), "mem_handler", NULL)


def _set_array_cache_limit(Py_ssize_t limit):
    """Keep at most ``limit`` bytes of freed result memory for reuse (0: keep none); frees what
    is kept now. Returns the number of bytes that were kept."""
    if limit < 0:
        raise ValueError(f"limit must be >= 0, got {limit}")
    return rn_cache_reset(<size_t>limit)


def _array_cache_info():
    """(bytes kept for reuse now, the limit)."""
    return int(rn_cached_bytes), int(rn_cache_limit)


cdef inline cnp.ndarray _new_array(int nd, cnp.npy_intp* dims, int typenum, bint zeroed):
    cdef Py_ssize_t k, nbytes = 4 if typenum == cnp.NPY_FLOAT else 8
    for k in range(nd):
        nbytes *= dims[k]
    if nbytes < CACHE_MIN_BYTES:
        return cnp.PyArray_ZEROS(nd, dims, typenum, 0) if zeroed else \
            cnp.PyArray_EMPTY(nd, dims, typenum, 0)
    previous = PyDataMem_SetHandler(_block_handler)
    try:
        return cnp.PyArray_ZEROS(nd, dims, typenum, 0) if zeroed else \
            cnp.PyArray_EMPTY(nd, dims, typenum, 0)
    finally:
        PyDataMem_SetHandler(previous)


cdef inline cnp.ndarray _empty(int typenum, Py_ssize_t d0, Py_ssize_t d1=-1, Py_ssize_t d2=-1):
    """A new C-ordered array of shape (d0[, d1[, d2]]) (typenum: float32, float64 or int64)."""
    cdef cnp.npy_intp dims[3]
    dims[0], dims[1], dims[2] = d0, d1, d2
    return _new_array(1 if d1 < 0 else (2 if d2 < 0 else 3), dims, typenum, False)


cdef inline cnp.ndarray _zeros(int typenum, Py_ssize_t d0, Py_ssize_t d1=-1):
    cdef cnp.npy_intp dims[2]
    dims[0], dims[1] = d0, d1
    return _new_array(1 if d1 < 0 else 2, dims, typenum, True)


cdef inline object _frozen(cnp.ndarray arr):
    """arr (made here) marked read-only: it is saved in a cache for a backward pass."""
    cnp.PyArray_CLEARFLAGS(arr, cnp.NPY_ARRAY_WRITEABLE)
    return arr


cdef inline bint _finite_run(const floating* p, Py_ssize_t n) noexcept nogil:
    """Whether n values just written (still in cache) are all finite."""
    if floating is float:
        return rn_all_finite_f(p, n) != 0
    else:
        return rn_all_finite_d(p, n) != 0


cdef inline bint _is_tokens(object x) except -1:
    """Whether x is meant as token ids (a 2-axis integer ndarray; _array then checks that it is
    int64, aligned, C-contiguous): see TOKEN_DTYPE in rnnreg._conventions."""
    return (cnp.PyArray_Check(x) and cnp.PyArray_NDIM(<cnp.ndarray>x) == 2
            and cnp.PyArray_ISINTEGER(<cnp.ndarray>x))


cdef int _check_ids(const int64_t* ids, Py_ssize_t n, Py_ssize_t D, str name) except -1:
    """Raise ValueError unless every one of the n ids lies in [0, D) (they index rows of Wx)."""
    cdef Py_ssize_t i, bad = -1
    with nogil:
        for i in range(n):
            if ids[i] < 0 or ids[i] >= D:
                bad = i
                break
    if bad >= 0:
        raise ValueError(f"{name}: token ids must lie in [0, {D}) (the rows of Wx), got "
                         f"{ids[bad]} at position {bad}")
    return 0


cdef inline bint _is_float32(object arr) except -1:
    """Whether the kernels run arr in float32 (else float64; _array checks which it really is)."""
    return cnp.PyArray_Check(arr) and cnp.PyArray_TYPE(<cnp.ndarray>arr) == cnp.NPY_FLOAT


cdef object _as_dtype(cnp.ndarray total, int typenum):
    """A float64 running sum returned in the kernel's dtype (itself when that is float64). A sum
    beyond float32's range becomes inf here without a NumPy warning: the public wrappers report
    non-finite results themselves."""
    if typenum == cnp.NPY_DOUBLE:
        return total
    cdef Py_ssize_t k, n = cnp.PyArray_SIZE(total)
    out = _empty(cnp.NPY_FLOAT, n)
    cdef const double* src = <const double*>_ptr(total)
    cdef float* dst = <float*>_ptr(out)
    for k in range(n):
        dst[k] = <float>src[k]
    return out


# ----------------------------------------------------------------------------- layer norm
cdef object _layer_norm_forward_typed(floating probe, x, gamma, beta, double eps,
                                      bint report_finite):
    cdef int tn = _typenum(probe)
    cdef const floating* xp = <const floating*>_array(x, "x", tn, 2)
    cdef Py_ssize_t r, m = _dim(x, 0), n = _dim(x, 1)
    _nonempty("x", m * n)
    cdef const floating* gp = <const floating*>_array(gamma, "gamma", tn, 1, n)
    cdef const floating* bp = <const floating*>_array(beta, "beta", tn, 1, n)
    _positive_eps(eps)
    out, xhat, rstd = _empty(tn, m, n), _empty(tn, m, n), _empty(tn, m)
    cdef floating* op = <floating*>_ptr(out)
    cdef floating* hp = <floating*>_ptr(xhat)
    cdef floating* rp = <floating*>_ptr(rstd)
    cdef Py_ssize_t nonfinite_rows = 0
    cdef int n_threads = _threads_for(m * n)
    with nogil:
        for r in prange(m, num_threads=n_threads, schedule="static"):
            _ln_row_forward(xp + r * n, n, gp, bp, eps, op + r * n, hp + r * n, rp + r)
            if report_finite:   # the row is still in cache: a cheap second look
                nonfinite_rows += 0 if _finite_run(op + r * n, n) else 1
    if report_finite:
        return out, _frozen(xhat), _frozen(rstd), nonfinite_rows == 0
    return out, _frozen(xhat), _frozen(rstd)


def layer_norm_forward(x, gamma, beta, double eps, bint report_finite=False):
    """x (M, F), gamma (F,), beta (F,), eps > 0 -> (out (M, F), xhat (M, F), rstd (M,)); xhat
    and rstd, saved for the backward pass, are read-only. report_finite: a fourth element tells
    whether out is all finite (checked row by row as it is written)."""
    if _is_float32(x):
        return _layer_norm_forward_typed[float](0, x, gamma, beta, eps, report_finite)
    return _layer_norm_forward_typed[double](0, x, gamma, beta, eps, report_finite)


cdef object _layer_norm_backward_typed(floating probe, dout, xhat, rstd, gamma,
                                       bint report_finite):
    cdef int tn = _typenum(probe)
    cdef const floating* dp = <const floating*>_array(dout, "dout", tn, 2)
    cdef Py_ssize_t r, m = _dim(dout, 0), n = _dim(dout, 1)
    _nonempty("dout", m * n)
    cdef const floating* hp = <const floating*>_array(xhat, "xhat", tn, 2, m, n)
    cdef const floating* rp = <const floating*>_array(rstd, "rstd", tn, 1, m)
    cdef const floating* gp = <const floating*>_array(gamma, "gamma", tn, 1, n)
    dx = _empty(tn, m, n)
    dgamma, dbeta = _zeros(cnp.NPY_DOUBLE, n), _zeros(cnp.NPY_DOUBLE, n)
    cdef floating* dxp = <floating*>_ptr(dx)
    cdef double* dgp = <double*>_ptr(dgamma)
    cdef double* dbp = <double*>_ptr(dbeta)
    # The gain and bias gradients are sums over rows: each block of LN_BLOCK_ROWS rows sums
    # into its own pair of rows, added in block order after — the same sums on any number of
    # threads. (One block, the rows in order, up to LN_BLOCK_ROWS rows.)
    cdef Py_ssize_t blocks = (m + LN_BLOCK_ROWS - 1) // LN_BLOCK_ROWS, block, r0, r1
    cdef Py_ssize_t nonfinite_rows = 0
    cdef int n_threads = _threads_for(m * n) if blocks > 1 else 1
    parts = _zeros(cnp.NPY_DOUBLE, blocks, 2 * n) if blocks > 1 else None
    cdef double* pp = <double*>_ptr(parts) if blocks > 1 else NULL
    with nogil:
        if blocks == 1:
            nonfinite_rows = _ln_rows_backward(dp, hp, rp, gp, n, dxp, 0, m, dgp, dbp,
                                               report_finite)
        else:
            for block in prange(blocks, num_threads=n_threads, schedule="static"):
                r0 = block * LN_BLOCK_ROWS
                r1 = m if m - r0 < LN_BLOCK_ROWS else r0 + LN_BLOCK_ROWS
                nonfinite_rows += _ln_rows_backward(dp, hp, rp, gp, n, dxp, r0, r1,
                                                    pp + block * 2 * n, pp + block * 2 * n + n,
                                                    report_finite)
            _add_parts(pp, blocks, 2 * n, n, dgp)
            _add_parts(pp + n, blocks, 2 * n, n, dbp)
    dgamma, dbeta = _as_dtype(dgamma, tn), _as_dtype(dbeta, tn)
    if report_finite:
        return dx, dgamma, dbeta, nonfinite_rows == 0 and _finite(dgamma) and _finite(dbeta)
    return dx, dgamma, dbeta


cdef Py_ssize_t _ln_rows_backward(const floating* dp, const floating* hp, const floating* rp,
                                  const floating* gp, Py_ssize_t n, floating* dxp, Py_ssize_t r0,
                                  Py_ssize_t r1, double* dgamma, double* dbeta,
                                  bint report_finite) noexcept nogil:
    """Rows r0 <= r < r1 of the layer-norm backward, their gain and bias gradients summed into
    dgamma, dbeta; returns how many of the rows' dx are not all finite (0 unless asked)."""
    cdef Py_ssize_t r, bad = 0
    for r in range(r0, r1):
        _ln_row_backward(dp + r * n, hp + r * n, rp[r], gp, n, dxp + r * n, dgamma, dbeta)
        if report_finite and not _finite_run(dxp + r * n, n):
            bad += 1
    return bad


def layer_norm_backward(dout, xhat, rstd, gamma, bint report_finite=False):
    """dout (M, F), xhat (M, F), rstd (M,), gamma (F,) -> (dx (M, F), dgamma (F,), dbeta (F,));
    report_finite: a fourth element tells whether all three are finite."""
    if _is_float32(dout):
        return _layer_norm_backward_typed[float](0, dout, xhat, rstd, gamma, report_finite)
    return _layer_norm_backward_typed[double](0, dout, xhat, rstd, gamma, report_finite)


# ----------------------------------------------------------------------------- dropout
cdef int _disjoint(object a, str a_name, object b, str b_name, bint same_ok) except -1:
    """Raise unless the memory of accepted arrays a and b does not overlap (or, when same_ok,
    is exactly the same: an elementwise loop may write where it reads)."""
    cdef char* pa = <char*>cnp.PyArray_DATA(<cnp.ndarray>a)
    cdef char* pb = <char*>cnp.PyArray_DATA(<cnp.ndarray>b)
    cdef Py_ssize_t na = cnp.PyArray_NBYTES(<cnp.ndarray>a), nb = cnp.PyArray_NBYTES(<cnp.ndarray>b)
    if same_ok and pa == pb and na == nb:
        return 0
    if pa < pb + nb and pb < pa + na:
        raise ValueError(f"{a_name} overlaps {b_name}" + ("" if not same_ok else
                         f" (it may be {b_name} itself, or apart from it)"))
    return 0


cdef enum:
    DROPOUT_BLOCK = 4096   # elements per block of draws (a multiple of 4)


cdef inline void _dropout_block(const floating* x, floating* out, floating* mask, Py_ssize_t n,
                                const uint16_t* uniforms, uint32_t threshold,
                                floating scale) noexcept nogil:
    """mask[k] = scale where uniforms[k] < threshold, else 0; out[k] = x[k] * mask[k]."""
    cdef Py_ssize_t k
    for k in range(n):
        mask[k] = scale if <uint32_t>uniforms[k] < threshold else 0
        out[k] = x[k] * mask[k]


cdef object _dropout_forward_typed(floating probe, x, double keep_prob, rng, bint report_finite,
                                   out, mask):
    # One 64-bit draw serves four elements (the rule of _conventions.dropout_threshold): element
    # k is kept when 16-bit slice k % 4 (lowest bits first) of draw k // 4 is below `threshold`.
    # The NumPy twin reads the same draws (Generator.integers over the full uint64 range returns
    # next_uint64 unchanged), so both give the same mask for one seed.
    cdef int tn = _typenum(probe)
    cdef const floating* xp = <const floating*>_array(x, "x", tn, 1)
    cdef Py_ssize_t n = _dim(x, 0), k, j
    if not (keep_prob > 0 and keep_prob <= 1):
        raise ValueError(f"keep_prob must be in (0, 1], got {keep_prob!r}")
    if not isinstance(rng, np.random.Generator):
        raise TypeError(f"rng must be a numpy.random.Generator, got {type(rng).__name__}")
    cdef uint64_t raw, threshold = dropout_threshold(keep_prob)
    cdef floating scale = <floating>(1.0 / keep_prob)
    if out is None:
        out = _empty(tn, n)
    else:   # the caller's buffer (x itself for in-place dropout): no fresh pages to fault in
        _same_shape(out, "out", tn, x, "x", True)
        _disjoint(out, "out", x, "x", True)
    if mask is None:
        mask = _empty(tn, n)
    else:
        _same_shape(mask, "mask", tn, x, "x", True)
        _disjoint(mask, "mask", x, "x", False)
        _disjoint(mask, "mask", out, "out", False)
    cdef floating* op = <floating*>_ptr(out)
    cdef floating* mp = <floating*>_ptr(mask)
    bit_generator = rng.bit_generator
    cdef bitgen_t* bitgen = <bitgen_t*>PyCapsule_GetPointer(bit_generator.capsule, "BitGenerator")
    cdef Py_ssize_t k0, k1
    cdef bint finite = True
    cdef uint16_t uniforms[DROPOUT_BLOCK]
    with bit_generator.lock, nogil:
        # Blocks of DROPOUT_BLOCK elements (a multiple of 4: the draws run as without blocks):
        # first the block's draws, cut into their 16-bit uniforms, then one branch-free loop
        # over the elements that the compiler vectorizes; the finiteness look at each block's
        # results finds them in cache. A dropped NaN or inf still shows: it is multiplied by 0.
        for k0 in range(0, n, 4096):   # DROPOUT_BLOCK (range needs a literal step)
            k1 = min(n, k0 + DROPOUT_BLOCK)
            for k in range(0, k1 - k0, 4):
                raw = bitgen.next_uint64(bitgen.state)
                for j in range(4):
                    uniforms[k + j] = <uint16_t>((raw >> (16 * j)) & 0xFFFF)
            _dropout_block(xp + k0, op + k0, mp + k0, k1 - k0, uniforms, <uint32_t>threshold,
                           scale)
            if report_finite and finite:
                finite = _finite_run(op + k0, k1 - k0)
    if report_finite:
        return out, mask, finite
    return out, mask


def dropout_forward(x, double keep_prob, rng, bint report_finite=False, out=None, mask=None):
    """x (M,), keep_prob in (0, 1], rng a np.random.Generator -> (out, mask); draws from
    ``rng`` under its lock. report_finite: a third element tells whether out is all finite.
    out, mask: (M,) writeable arrays to write into (out may be x; mask overlaps neither)."""
    if _is_float32(x):
        return _dropout_forward_typed[float](0, x, keep_prob, rng, report_finite, out, mask)
    return _dropout_forward_typed[double](0, x, keep_prob, rng, report_finite, out, mask)


cdef object _dropout_backward_typed(floating probe, dout, mask):
    cdef int tn = _typenum(probe)
    cdef const floating* dp = <const floating*>_array(dout, "dout", tn, 1)
    cdef Py_ssize_t k, n = _dim(dout, 0)
    cdef const floating* mp = <const floating*>_array(mask, "mask", tn, 1, n)
    dx = _empty(tn, n)
    cdef floating* dxp = <floating*>_ptr(dx)
    with nogil:
        for k in range(n):
            dxp[k] = dp[k] * mp[k]
    return dx


def dropout_backward(dout, mask):
    """dout (M,), mask (M,) -> dx = dout * mask."""
    if _is_float32(dout):
        return _dropout_backward_typed[float](0, dout, mask)
    return _dropout_backward_typed[double](0, dout, mask)


# ----------------------------------------------------------------------------- LSTM
# The arrays of one LSTM sequence, passed to the loops by name (so that no two can be swapped
# silently in a long argument list). Pointers are void* because a struct cannot be generic over
# `floating`: every loop casts them to its own type. Row r = n*T + t of an (N, T, ...) array is
# sequence n at step t.
cdef struct LSTMArrays:
    Py_ssize_t N, T, D, H
    double eps
    int n_threads          # threads the loops may share the work among (_acquire_threads)
    const void* x          # (N, T, D), or NULL when tokens is set
    const int64_t* tokens  # (N, T) ids in [0, D) standing for one-hot rows of x, or NULL
    const void* h0         # (N, H)
    const void* c0         # (N, H)
    const void* Wx         # (D, 4H)
    const void* Wh         # (H, 4H)
    const void* b          # (4H,)
    const void* mask       # (N, H) recurrent-dropout mask, or NULL
    const void* zone_h     # (N, T, H) zoneout weights of h (see _conventions), or NULL
    const void* zone_c     # (N, T, H) zoneout weights of c, or NULL
    bint layer_norm        # whether ln and ln_saved are set
    const void* ln[6]      # LSTM_LAYER_NORM_PARAMS: (4H,) x4, (H,) x2
    # Saved by the forward pass for the backward pass:
    void* hprev            # (N, T, H) h(t-1) * mask, the recurrent input of step t
    void* gates            # (N, T, 4H) activated gates, in GATE_ORDER
    void* c                # (N, T, H) cell state
    void* tc               # (N, T, H) tanh of the (normalized) cell state
    void* h                # (N, T, H) output
    void* ln_saved[6]      # LN_SAVED: xhat (N, T, 4H | H) and rstd (N, T), in turn


cdef struct LSTMGradArrays:
    const void* dh         # (N, T, H) upstream gradient of every output
    void* dh_next          # (N, H): zeros in, dh0 out
    void* dc_next          # (N, H): the final cell state's gradient in, dc0 out
    void* row_buf          # (n_threads, 2H) scratch
    const void* zero_row   # (H,) zeros, with zoneout on h
    void* zone_carry       # (N, H): with zoneout on h, u_h * dh(t), the part that skips step t
    void* da               # (N, T, 4H) gradient of the gate pre-activations
    void* dhw              # (N, T, 4H) of the recurrent projection (da without layer norm)
    void* dxw              # (N, T, 4H) of the input projection (da without layer norm)
    void* dx               # (N, T, D), or NULL when the caller does not need it
    void* dWx              # (D, 4H)
    void* dWh              # (H, 4H)
    double* db             # (4H,) float64 sum, zeros in
    double* ln[6]          # float64 sums per LSTM_LAYER_NORM_PARAMS, zeros in
    double* ln_parts       # with layer norm: (N, 2*4H + 2*H) zeros, each sequence's own sums


cdef void _gather_rows(int n_threads, const int64_t* ids, Py_ssize_t rows, Py_ssize_t G,
                       const floating* table, floating* out) noexcept nogil:
    """out[r] = table[ids[r]] for each of the rows (G values each); ids already checked."""
    cdef Py_ssize_t r
    for r in prange(rows, num_threads=n_threads if rows * G >= PARALLEL_MIN else 1,
                    schedule="static"):
        memcpy(out + r * G, table + ids[r] * G, G * sizeof(floating))


cdef void _add_rows_at(int n_threads, const int64_t* ids, Py_ssize_t rows, Py_ssize_t G,
                       const floating* src, Py_ssize_t D, floating* total) noexcept nogil:
    """total (D, G) = 0, then total[ids[r]] += src[r] for r = 0, 1, ... in turn: the gradient of
    _gather_rows. Threads share the columns, so every sum runs in row order on any number."""
    cdef Py_ssize_t part, parts = n_threads, lo, hi, r, j
    cdef floating* dst
    cdef const floating* row
    if rows * G < PARALLEL_MIN or G < 64 * parts:
        parts = 1
    memset(total, 0, D * G * sizeof(floating))
    for part in prange(parts, num_threads=parts, schedule="static", chunksize=1):
        lo = part * G // parts
        hi = (part + 1) * G // parts
        for r in range(rows):
            dst = total + ids[r] * G
            row = src + r * G
            for j in range(lo, hi):
                dst[j] = dst[j] + row[j]


cdef void _lstm_forward_rows(floating probe, const LSTMArrays* s,
                             const StepWeights* recurrent, const floating* xw, floating* scratch,
                             Py_ssize_t n0, Py_ssize_t n1) noexcept nogil:
    """The time loop for sequences n0 <= n < n1 of the batch, the input projection already in
    the gate slots (or normalized in xw). scratch: H values."""
    cdef Py_ssize_t T = s.T, H = s.H, G = 4 * H, n, t, j, row
    cdef bint summed = not s.layer_norm
    cdef const floating* h0 = <const floating*>s.h0
    cdef const floating* c0 = <const floating*>s.c0
    cdef const floating* b = <const floating*>s.b
    cdef const floating* mask = <const floating*>s.mask
    cdef const floating* zone_h = <const floating*>s.zone_h
    cdef const floating* zone_c = <const floating*>s.zone_c
    cdef floating* hprev = <floating*>s.hprev
    cdef floating* gates = <floating*>s.gates
    cdef floating* c = <floating*>s.c
    cdef floating* tc = <floating*>s.tc
    cdef floating* h = <floating*>s.h
    cdef const floating** ln = <const floating**>s.ln
    cdef floating** saved = <floating**>s.ln_saved
    cdef const floating* src
    cdef const floating* c_prev
    cdef const floating* u
    cdef floating* a
    cdef floating* dst
    for t in range(T):
        # hprev[:, t] = h(t-1) * mask: the recurrent input, kept for dWh in backward.
        for n in range(n0, n1):
            src = h0 + n * H if t == 0 else h + (n * T + t - 1) * H
            dst = hprev + (n * T + t) * H
            if mask != NULL:
                for j in range(H):
                    dst[j] = src[j] * mask[n * H + j]
            else:
                memcpy(dst, src, H * sizeof(floating))
        # Recurrent projection, written straight into this step's gate slots (row stride T*G).
        _step_product(recurrent, n1 - n0, hprev + (n0 * T + t) * H, T * H,
                      gates + (n0 * T + t) * G, T * G, summed)
        for n in range(n0, n1):
            row = n * T + t
            a = gates + row * G
            if not summed:
                _ln_row_forward(a, G, ln[2], ln[3], s.eps, a, saved[2] + row * G, saved[3] + row)
            _gates(a, NULL if summed else xw + row * G, b, H)
            c_prev = c0 + n * H if t == 0 else c + (row - 1) * H
            _cell(a, c_prev, c + row * H, H)
            if not summed:
                _ln_row_forward(c + row * H, H, ln[4], ln[5], s.eps, scratch, saved[4] + row * H,
                                saved[5] + row)
                _out(scratch, a + 2 * H, tc + row * H, h + row * H, H)
            else:
                _out(c + row * H, a + 2 * H, tc + row * H, h + row * H, H)
            # Zoneout: the candidates just written become u * previous + (1 - u) * candidate.
            if zone_c != NULL:
                u = zone_c + row * H
                dst = c + row * H
                for j in range(H):
                    dst[j] = u[j] * c_prev[j] + (1 - u[j]) * dst[j]
            if zone_h != NULL:
                u = zone_h + row * H
                src = h0 + n * H if t == 0 else h + (row - 1) * H
                dst = h + row * H
                for j in range(H):
                    dst[j] = u[j] * src[j] + (1 - u[j]) * dst[j]


cdef inline Py_ssize_t _row_parts(const StepWeights* w, Py_ssize_t N, int n_threads) noexcept nogil:
    """Into how many parts the batch's time loop is split: one per thread, on the packed step
    product only (its rows do not depend on the rows beside them; BLAS's might), at most N."""
    if w.packed == NULL or n_threads <= 1:
        return 1
    return N if N < n_threads else n_threads


cdef void _lstm_forward(floating probe, const LSTMArrays* s, floating* xw,
                        floating* scratch) noexcept nogil:
    """Fill the saved arrays of s. With layer norm xw (N, T, 4H) receives the normalized input
    projection; without it xw is NULL and both projections are summed in the gate slots.
    scratch: H values per thread (s.n_threads)."""
    cdef Py_ssize_t N = s.N, T = s.T, D = s.D, H = s.H, G = 4 * H, row, part, parts
    cdef bint summed = not s.layer_norm
    cdef const floating** ln = <const floating**>s.ln
    cdef floating** saved = <floating**>s.ln_saved
    cdef floating* gates = <floating*>s.gates
    cdef StepWeights recurrent

    # The input projection of every time step in one matrix product — straight into the gate
    # slots when nothing has to be done to it before the recurrent projection is added.
    if s.tokens != NULL:   # one-hot rows: the product picks rows of Wx (exactly)
        _gather_rows(s.n_threads, s.tokens, N * T, G, <const floating*>s.Wx,
                     gates if summed else xw)
    else:
        _product_split(s.n_threads, False, False, N * T, G, D, <const floating*>s.x, D,
                       <const floating*>s.Wx, G, gates if summed else xw, G)
    if not summed:
        for row in prange(N * T, num_threads=s.n_threads, schedule="static"):
            _ln_row_forward(xw + row * G, G, ln[0], ln[1], s.eps, xw + row * G,
                            saved[0] + row * G, saved[1] + row)
    _step_weights_init(&recurrent, N, H, G, <const floating*>s.Wh, False)
    parts = _row_parts(&recurrent, N, s.n_threads)
    if parts == 1:
        _lstm_forward_rows(probe, s, &recurrent, xw, scratch, 0, N)
    else:
        for part in prange(parts, num_threads=parts, schedule="static", chunksize=1):
            _lstm_forward_rows(probe, s, &recurrent, xw, scratch + part * H, part * N // parts,
                               (part + 1) * N // parts)
    free(recurrent.packed)


cdef object _lstm_forward_typed(floating probe, x, h0, c0, Wx, Wh, b, layer_norm,
                                recurrent_mask, double eps, zoneout_h, zoneout_c):
    cdef int tn = _typenum(probe), k
    cdef LSTMArrays s
    memset(&s, 0, sizeof(s))
    if _is_tokens(x):   # one-hot inputs given as ids: D is the number of rows of Wx
        s.tokens = <const int64_t*>_array(x, "x", cnp.NPY_INT64, 2)
        s.N, s.T = _dim(x, 0), _dim(x, 1)
        _array(Wx, "Wx", tn, 2)
        s.D = _dim(Wx, 0)
    else:
        s.x = _array(x, "x", tn, 3)
        s.N, s.T, s.D = _dim(x, 0), _dim(x, 1), _dim(x, 2)
    s.Wh = _array(Wh, "Wh", tn, 2)
    s.H = _dim(Wh, 0)
    cdef Py_ssize_t N = s.N, T = s.T, D = s.D, H = s.H, G = 4 * H
    _nonempty("x", N * T * D)
    _nonempty("Wh", H)
    _array(Wh, "Wh", tn, 2, H, G)
    s.Wx = _array(Wx, "Wx", tn, 2, D, G)
    if s.tokens != NULL:
        _check_ids(s.tokens, N * T, D, "x")
    s.b = _array(b, "b", tn, 1, G)
    s.h0 = _array(h0, "h0", tn, 2, N, H)
    if c0 is None:   # a zero initial cell state
        c0 = _zeros(tn, N, H)
    s.c0 = _array(c0, "c0", tn, 2, N, H)
    _positive_eps(eps)
    s.eps = eps
    ln_params = saved = None
    if layer_norm is not None:
        s.layer_norm = True
        ln_params = {}
        for k, name in enumerate(LSTM_LAYER_NORM_PARAMS):
            arr = _item(layer_norm, name, "layer_norm")
            s.ln[k] = _array(arr, f"layer_norm[{name!r}]", tn, 1, H if k >= 4 else G)
            ln_params[name] = arr
        saved = {}
        for k, name in enumerate(LN_SAVED):   # xhat (N, T, G | H), then its rstd (N, T)
            arr = _empty(tn, N, T, (H if k == 4 else G)) if k % 2 == 0 else _empty(tn, N, T)
            saved[name] = arr
            s.ln_saved[k] = _ptr(arr)
    if recurrent_mask is not None:
        s.mask = _array(recurrent_mask, "recurrent_mask", tn, 2, N, H)
    if zoneout_h is not None:
        s.zone_h = _array(zoneout_h, "zoneout_h", tn, 3, N, T, H)
    if zoneout_c is not None:
        s.zone_c = _array(zoneout_c, "zoneout_c", tn, 3, N, T, H)
    gates, hprev = _empty(tn, N, T, G), _empty(tn, N, T, H)
    c, tc, h = _empty(tn, N, T, H), _empty(tn, N, T, H), _empty(tn, N, T, H)
    s.gates, s.hprev, s.c, s.tc, s.h = _ptr(gates), _ptr(hprev), _ptr(c), _ptr(tc), _ptr(h)
    xw = _empty(tn, N, T, G) if s.layer_norm else None
    cdef floating* xw_p = <floating*>_ptr(xw) if s.layer_norm else NULL
    cdef floating* scratch_p
    s.n_threads = _acquire_threads()
    try:
        scratch = _empty(tn, s.n_threads, H)
        scratch_p = <floating*>_ptr(scratch)
        with nogil:
            _lstm_forward(probe, &s, xw_p, scratch_p)
    finally:
        _release_threads()
    if saved is not None:
        for arr in saved.values():
            _frozen(arr)
        saved = MappingProxyType(saved)
        ln_params = MappingProxyType(ln_params)
    return LSTMCache(x, h0, c0, Wx, Wh, b, ln_params, recurrent_mask, eps, _frozen(hprev),
                     _frozen(gates), _frozen(c), _frozen(tc), _frozen(h), saved, N, T, D, H,
                     zoneout_h, zoneout_c)


def lstm_forward(x, h0, c0, Wx, Wh, b, layer_norm, recurrent_mask, double eps, zoneout_h=None,
                 zoneout_c=None):
    """Run an LSTM over x (N, T, D) — or over one-hot inputs given as int64 token ids x (N, T)
    in [0, D) — from (h0, c0) (N, H; c0 None: zeros) with Wx (D, 4H), Wh (H, 4H), b (4H,);
    ``layer_norm``: None or a mapping of the LSTM_LAYER_NORM_PARAMS; ``recurrent_mask``: None or
    (N, H); eps > 0; ``zoneout_h``, ``zoneout_c``: None or zoneout weights (N, T, H) (see
    _conventions). Returns an LSTMCache whose ``h`` (N, T, H) is the output."""
    if _is_float32(Wx if _is_tokens(x) else x):
        return _lstm_forward_typed[float](0, x, h0, c0, Wx, Wh, b, layer_norm, recurrent_mask,
                                          eps, zoneout_h, zoneout_c)
    return _lstm_forward_typed[double](0, x, h0, c0, Wx, Wh, b, layer_norm, recurrent_mask, eps,
                                       zoneout_h, zoneout_c)


cdef void _lstm_backward_rows(floating probe, const LSTMArrays* s, const LSTMGradArrays* g,
                              const StepWeights* recurrent_t, floating* row_buf, Py_ssize_t n0,
                              Py_ssize_t n1) noexcept nogil:
    """Backpropagation through time for sequences n0 <= n < n1; the layer-norm parameters'
    gradients of the recurrent and cell normalizations go to each sequence's g.ln_parts row.
    row_buf: 2H values."""
    cdef Py_ssize_t T = s.T, H = s.H, G = 4 * H, n, t, row, k, j
    cdef const floating* dh = <const floating*>g.dh
    cdef floating* dh_next = <floating*>g.dh_next
    cdef floating* dc_next = <floating*>g.dc_next
    cdef floating* da = <floating*>g.da
    cdef floating* dhw = <floating*>g.dhw
    cdef const floating* c0 = <const floating*>s.c0
    cdef const floating* mask = <const floating*>s.mask
    cdef const floating* zone_h = <const floating*>s.zone_h
    cdef const floating* zone_c = <const floating*>s.zone_c
    cdef const floating* zero_row = <const floating*>g.zero_row
    cdef floating* carry = <floating*>g.zone_carry
    cdef floating* zone_buf = row_buf + H   # dh~ of the step, then u_c * dc(t)
    cdef const floating* u
    cdef floating total
    cdef const floating* gates = <const floating*>s.gates
    cdef const floating* c = <const floating*>s.c
    cdef const floating* tc = <const floating*>s.tc
    cdef const floating** ln = <const floating**>s.ln
    cdef const floating** saved = <const floating**>s.ln_saved
    cdef const floating* a
    cdef const floating* c_prev
    cdef floating* da_row
    cdef double* sums
    for t in range(T - 1, -1, -1):
        for n in range(n0, n1):
            row = n * T + t
            a = gates + row * G
            da_row = da + row * G
            sums = g.ln_parts + n * (2 * G + 2 * H) if s.layer_norm else NULL
            if zone_h != NULL:
                # h_t = u h(t-1) + (1 - u) h~_t: u of h_t's gradient skips the step (carry),
                # 1 - u of it reaches the cell's output h~_t.
                u = zone_h + row * H
                for j in range(H):
                    total = dh[row * H + j] + dh_next[n * H + j]
                    carry[n * H + j] = u[j] * total
                    zone_buf[j] = (1 - u[j]) * total
                _bwd_out(zone_buf, zero_row, a, tc + row * H, da_row, row_buf, H)
            else:
                _bwd_out(dh + row * H, dh_next + n * H, a, tc + row * H, da_row, row_buf, H)
            if s.layer_norm:
                _ln_row_backward(row_buf, saved[4] + row * H, saved[5][row], ln[4], H, row_buf,
                                 sums + 2 * G, sums + 2 * G + H)
            c_prev = c0 + n * H if t == 0 else c + (row - 1) * H
            if zone_c != NULL:   # c_t = u c(t-1) + (1 - u) c~_t, likewise
                u = zone_c + row * H
                for j in range(H):
                    zone_buf[j] = u[j] * dc_next[n * H + j]
                    dc_next[n * H + j] = (1 - u[j]) * dc_next[n * H + j]
            _bwd_cell(row_buf, dc_next + n * H, a, c_prev, da_row, H)
            if zone_c != NULL:
                for j in range(H):
                    dc_next[n * H + j] = dc_next[n * H + j] + zone_buf[j]
            if s.layer_norm:
                _ln_row_backward(da_row, saved[2] + row * G, saved[3][row], ln[2], G,
                                 dhw + row * G, sums, sums + G)
        # dh(t-1) = (dhw(t) @ Wh^T) * mask
        _step_product(recurrent_t, n1 - n0, dhw + (n0 * T + t) * G, T * G, dh_next + n0 * H, H,
                      False)
        if mask != NULL:
            for k in range(n0 * H, n1 * H):
                dh_next[k] = dh_next[k] * mask[k]
        if zone_h != NULL:
            for k in range(n0 * H, n1 * H):
                dh_next[k] = dh_next[k] + carry[k]


cdef void _add_parts(const double* parts, Py_ssize_t count, Py_ssize_t stride, Py_ssize_t n,
                     double* total) noexcept nogil:
    """total[j] += parts[i * stride + j] for i = 0, 1, ..., count - 1 in turn (a fixed order)."""
    cdef Py_ssize_t i, j
    for i in range(count):
        for j in range(n):
            total[j] += parts[i * stride + j]


cdef void _lstm_backward(floating probe, const LSTMArrays* s,
                         const LSTMGradArrays* g) noexcept nogil:
    """Backpropagation through time over the arrays s saved; see LSTMGradArrays."""
    cdef Py_ssize_t N = s.N, T = s.T, D = s.D, H = s.H, G = 4 * H, n, t, row, part, parts
    cdef Py_ssize_t stride = 2 * G + 2 * H
    cdef floating* row_buf = <floating*>g.row_buf
    cdef floating* da = <floating*>g.da
    cdef floating* dxw = <floating*>g.dxw
    cdef const floating** ln = <const floating**>s.ln
    cdef const floating** saved = <const floating**>s.ln_saved
    cdef StepWeights recurrent_t   # Wh^T, for dh(t-1)

    _step_weights_init(&recurrent_t, N, G, H, <const floating*>s.Wh, True)
    parts = _row_parts(&recurrent_t, N, s.n_threads)
    if parts == 1:
        _lstm_backward_rows(probe, s, g, &recurrent_t, row_buf, 0, N)
    else:
        for part in prange(parts, num_threads=parts, schedule="static", chunksize=1):
            _lstm_backward_rows(probe, s, g, &recurrent_t, row_buf + part * 2 * H,
                                part * N // parts, (part + 1) * N // parts)
    free(recurrent_t.packed)

    _sum_rows(da, N * T, G, g.db)
    if s.layer_norm:
        # The sequences' sums added in sequence order, whichever thread made them.
        _add_parts(g.ln_parts, N, stride, G, g.ln[2])
        _add_parts(g.ln_parts + G, N, stride, G, g.ln[3])
        _add_parts(g.ln_parts + 2 * G, N, stride, H, g.ln[4])
        _add_parts(g.ln_parts + 2 * G + H, N, stride, H, g.ln[5])
        memset(g.ln_parts, 0, N * stride * sizeof(double))
        for n in prange(N, num_threads=s.n_threads, schedule="static"):
            for t in range(T):
                row = n * T + t
                _ln_row_backward(da + row * G, saved[0] + row * G, saved[1][row], ln[0], G,
                                 dxw + row * G, g.ln_parts + n * stride,
                                 g.ln_parts + n * stride + G)
        _add_parts(g.ln_parts, N, stride, G, g.ln[0])
        _add_parts(g.ln_parts + G, N, stride, G, g.ln[1])
    # One matrix product for each weight gradient and for dx, over all time steps at once.
    if s.tokens != NULL:
        _add_rows_at(s.n_threads, s.tokens, N * T, G, dxw, D, <floating*>g.dWx)
    else:
        _product_split(s.n_threads, True, False, D, G, N * T, <const floating*>s.x, D, dxw, G,
                       <floating*>g.dWx, G)
    _product_split(s.n_threads, True, False, H, G, N * T, <const floating*>s.hprev, H,
                   <const floating*>g.dhw, G, <floating*>g.dWh, G)
    if g.dx != NULL:   # a one-hot input layer has no use for it (token ids have none)
        _product_split(s.n_threads, False, True, N * T, D, G, dxw, G, <const floating*>s.Wx, G,
                       <floating*>g.dx, D)


cdef object _lstm_backward_typed(floating probe, dh, dc_final, cache, bint need_dx):
    cdef int tn = _typenum(probe), k
    cdef LSTMArrays s
    cdef LSTMGradArrays g
    memset(&s, 0, sizeof(s))
    memset(&g, 0, sizeof(g))
    if not isinstance(cache, LSTMCache):
        raise TypeError(f"cache must be the LSTMCache lstm_forward returned, got "
                        f"{type(cache).__name__}")
    # The dimensions recorded in the cache; every array is checked against them.
    s.N, s.T, s.D, s.H = cache.N, cache.T, cache.D, cache.H
    cdef Py_ssize_t N = s.N, T = s.T, D = s.D, H = s.H, G = 4 * H
    if N < 1 or T < 1 or D < 1 or H < 1:
        raise ValueError(f"cache dimensions must be >= 1, got N={N}, T={T}, D={D}, H={H}")
    if _is_tokens(cache.x):
        s.tokens = <const int64_t*>_array(cache.x, "cache.x", cnp.NPY_INT64, 2, N, T)
        _check_ids(s.tokens, N * T, D, "cache.x")
        need_dx = False   # ids have no gradient
    else:
        s.x = _array(cache.x, "cache.x", tn, 3, N, T, D)
    s.c0 = _array(cache.c0, "cache.c0", tn, 2, N, H)
    # Not read here, but part of the same forward pass: a cache is consistent as a whole or not.
    _array(cache.h0, "cache.h0", tn, 2, N, H)
    _array(cache.b, "cache.b", tn, 1, G)
    _array(cache.h, "cache.h", tn, 3, N, T, H)
    s.Wx = _array(cache.Wx, "cache.Wx", tn, 2, D, G)
    s.Wh = _array(cache.Wh, "cache.Wh", tn, 2, H, G)
    s.hprev = _array(cache.hprev, "cache.hprev", tn, 3, N, T, H)
    s.gates = _array(cache.gates, "cache.gates", tn, 3, N, T, G)
    s.c = _array(cache.c, "cache.c", tn, 3, N, T, H)
    s.tc = _array(cache.tc, "cache.tc", tn, 3, N, T, H)
    g.dh = _array(dh, "dh", tn, 3, N, T, H)
    if dc_final is not None:
        _array(dc_final, "dc_final", tn, 2, N, H)
    layer_norm, ln_saved = cache.layer_norm, cache.ln_saved
    if (layer_norm is None) != (ln_saved is None):
        raise TypeError("cache.layer_norm and cache.ln_saved must both be None or both set")
    ln_acc = {}
    if layer_norm is not None:
        s.layer_norm = True
        for k, name in enumerate(LSTM_LAYER_NORM_PARAMS):
            s.ln[k] = _array(_item(layer_norm, name, "cache.layer_norm"),
                             f"cache.layer_norm[{name!r}]", tn, 1, H if k >= 4 else G)
            ln_acc[name] = _zeros(cnp.NPY_DOUBLE, H if k >= 4 else G)
            g.ln[k] = <double*>_ptr(ln_acc[name])
        for k, name in enumerate(LN_SAVED):
            arr = _item(ln_saved, name, "cache.ln_saved")
            if k % 2 == 0:
                s.ln_saved[k] = _array(arr, f"cache.ln_saved[{name!r}]", tn, 3, N, T,
                                       H if k == 4 else G)
            else:
                s.ln_saved[k] = _array(arr, f"cache.ln_saved[{name!r}]", tn, 2, N, T)
    if cache.recurrent_mask is not None:
        s.mask = _array(cache.recurrent_mask, "cache.recurrent_mask", tn, 2, N, H)
    zone_carry = zero_row = None
    if cache.zoneout_h is not None:
        s.zone_h = _array(cache.zoneout_h, "cache.zoneout_h", tn, 3, N, T, H)
        zone_carry, zero_row = _empty(tn, N, H), _zeros(tn, H)
        g.zone_carry, g.zero_row = _ptr(zone_carry), _ptr(zero_row)
    if cache.zoneout_c is not None:
        s.zone_c = _array(cache.zoneout_c, "cache.zoneout_c", tn, 3, N, T, H)
    da = _empty(tn, N, T, G)
    dhw = dxw = da
    if s.layer_norm:
        dhw, dxw = _empty(tn, N, T, G), _empty(tn, N, T, G)
    dc_next = _zeros(tn, N, H) if dc_final is None else \
        cnp.PyArray_NewCopy(<cnp.ndarray>dc_final, cnp.NPY_CORDER)
    dh_next = _zeros(tn, N, H)
    dx = _empty(tn, N, T, D) if need_dx else None
    dWx, dWh = _empty(tn, D, G), _empty(tn, H, G)
    db = _zeros(cnp.NPY_DOUBLE, G)
    if s.layer_norm:
        ln_parts = _zeros(cnp.NPY_DOUBLE, N, 2 * G + 2 * H)
        g.ln_parts = <double*>_ptr(ln_parts)
    g.dh_next, g.dc_next = _ptr(dh_next), _ptr(dc_next)
    g.da, g.dhw, g.dxw = _ptr(da), _ptr(dhw), _ptr(dxw)
    g.dx = _ptr(dx) if need_dx else NULL
    g.dWx, g.dWh, g.db = _ptr(dWx), _ptr(dWh), <double*>_ptr(db)
    s.n_threads = _acquire_threads()
    try:
        row_buf = _empty(tn, s.n_threads, 2 * H)
        g.row_buf = _ptr(row_buf)
        with nogil:
            _lstm_backward(probe, &s, &g)
    finally:
        _release_threads()
    grads = dict(dx=dx, dh0=dh_next, dc0=dc_next, dWx=dWx, dWh=dWh, db=_as_dtype(db, tn))
    for name, total in ln_acc.items():
        grads["d" + name] = _as_dtype(total, tn)
    return grads


def lstm_backward(dh, dc_final, cache, bint need_dx=True):
    """dh (N, T, H): upstream gradient of every output; dc_final (N, H): of the final cell state
    (None: zero);
    cache: the LSTMCache of lstm_forward; need_dx False skips the input gradient (dx is None;
    always None for token-id inputs).
    Returns a dict with dx, dh0, dc0, dWx, dWh, db and, with layer norm, ``d`` + the name of
    each LSTM_LAYER_NORM_PARAMS entry."""
    if _is_float32(dh):
        return _lstm_backward_typed[float](0, dh, dc_final, cache, need_dx)
    return _lstm_backward_typed[double](0, dh, dc_final, cache, need_dx)


# One time step is the sequence kernel with T = 1, wrapped the same way as in the NumPy twin.
lstm_step_forward, lstm_step_backward = step_functions(lstm_forward, lstm_backward)


# ----------------------------------------------------------------------------- matrix product
cdef object _matmul_typed(floating probe, a, b, bint trans_a, bint trans_b):
    cdef int tn = _typenum(probe)
    cdef const floating* ap = <const floating*>_array(a, "a", tn, 2)
    cdef const floating* bp = <const floating*>_array(b, "b", tn, 2)
    cdef Py_ssize_t m = _dim(a, 1) if trans_a else _dim(a, 0)
    cdef Py_ssize_t k = _dim(a, 0) if trans_a else _dim(a, 1)
    cdef Py_ssize_t k_b = _dim(b, 1) if trans_b else _dim(b, 0)
    cdef Py_ssize_t n = _dim(b, 0) if trans_b else _dim(b, 1)
    cdef Py_ssize_t lda = _dim(a, 1), ldb = _dim(b, 1)
    if k != k_b:
        raise ValueError(f"a and b do not chain: op(a) has {k} columns, op(b) has {k_b} rows")
    _nonempty("a", m * k)
    _nonempty("b", k * n)
    if trans_a and trans_b and not _fits_blas(m, n, k, lda, ldb, n):
        raise ValueError("matmul with both operands transposed needs every dimension below "
                         f"{_blas_int_max}; transpose the product instead (b @ a)^T")
    out = _empty(tn, m, n)
    cdef floating* op = <floating*>_ptr(out)
    cdef int n_threads = _acquire_threads()
    with nogil:
        _product_split(n_threads, trans_a, trans_b, m, n, k, ap, lda, bp, ldb, op, n)
    _release_threads()
    return out


def matmul(a, b, bint trans_a=False, bint trans_b=False):
    """op(a) @ op(b) with op = transpose when asked, on the BLAS the LSTM kernels use — so that a
    whole training step runs on one BLAS thread pool (NumPy and SciPy each bring their own
    OpenBLAS, and two pools spinning on the same cores slow each other down)."""
    if _is_float32(a):
        return _matmul_typed[float](0, a, b, trans_a, trans_b)
    return _matmul_typed[double](0, a, b, trans_a, trans_b)


# ----------------------------------------------------------------------------- loss
cdef double _softmax_cross_entropy(Py_ssize_t M, Py_ssize_t C, const floating* logits,
                                   const int64_t* targets, floating* dlogits) noexcept nogil:
    """Mean over rows of -log softmax(logits)[target]; dlogits = (softmax - onehot) / M."""
    cdef Py_ssize_t r, j
    cdef const floating* row
    cdef floating* out
    cdef floating top, scale
    cdef floating inv_m = <floating>(1.0 / M)
    cdef double total_exp, log_z, loss = 0
    for r in range(M):
        row = logits + r * C
        out = dlogits + r * C
        top = row[0]
        for j in range(1, C):
            if row[j] > top:
                top = row[j]
        if floating is float:
            total_exp = rn_exp_shifted_f(row, top, out, C)
        else:
            total_exp = rn_exp_shifted_d(row, top, out, C)
        log_z = log(total_exp)
        loss += log_z - (row[targets[r]] - top)
        scale = <floating>(1.0 / total_exp)
        for j in range(C):
            out[j] = out[j] * scale * inv_m
        out[targets[r]] -= inv_m
    return loss / M


cdef object _softmax_cross_entropy_typed(floating probe, logits, targets):
    cdef int tn = _typenum(probe)
    cdef const floating* lp = <const floating*>_array(logits, "logits", tn, 2)
    cdef Py_ssize_t r, M = _dim(logits, 0), C = _dim(logits, 1)
    _nonempty("logits", M * C)
    cdef const int64_t* tp = <const int64_t*>_array(targets, "targets", cnp.NPY_INT64, 1, M)
    for r in range(M):   # an id outside [0, C) would index outside the row
        if tp[r] < 0 or tp[r] >= C:
            raise ValueError(f"targets[{r}] = {tp[r]} is outside [0, {C})")
    dlogits = _empty(tn, M, C)
    cdef floating* dp = <floating*>_ptr(dlogits)
    cdef double loss
    with nogil:
        loss = _softmax_cross_entropy(M, C, lp, tp, dp)
    return loss, dlogits


def softmax_cross_entropy(logits, targets):
    """logits (M, C), targets (M,) int64 in [0, C) -> (mean cross-entropy as a float,
    dlogits (M, C) = (softmax - onehot) / M)."""
    if _is_float32(logits):
        return _softmax_cross_entropy_typed[float](0, logits, targets)
    return _softmax_cross_entropy_typed[double](0, logits, targets)


# ----------------------------------------------------------------------------- validation helper
cdef bint _finite_typed(floating probe, object arr) except -1:
    cdef const floating* p = <const floating*>_array(arr, "arr", _typenum(probe), ANY)
    cdef Py_ssize_t n = cnp.PyArray_SIZE(<cnp.ndarray>arr)
    cdef bint ok
    if n < 16384:   # releasing the GIL costs more than so short a pass
        return _finite_run(p, n)
    with nogil:
        ok = _finite_run(p, n)
    return ok


cdef bint _finite(object arr) except -1:
    """Whether every entry of an accepted float32/float64 array is finite: one vectorized pass."""
    if _is_float32(arr):
        return _finite_typed[float](0, arr)
    return _finite_typed[double](0, arr)


def all_finite(arr):
    """Whether every entry of a C-contiguous float32/float64 array is finite (for the wrappers'
    input checks: one vectorized pass, no temporary array)."""
    return _finite(arr)


cdef double _sum_of_squares_typed(floating probe, object arr) except? -1:
    cdef const floating* p = <const floating*>_array(arr, "arr", _typenum(probe), ANY)
    cdef Py_ssize_t n = cnp.PyArray_SIZE(<cnp.ndarray>arr)
    cdef double total
    with nogil:
        if floating is float:
            total = rn_sum_squares_f(p, n)
        else:
            total = rn_sum_squares_d(p, n)
    return total


def sum_of_squares(arr):
    """Σ x² over a C-contiguous float32/float64 array, summed in float64 (inf when a value or
    the sum is infinite, NaN when one is NaN): the gradient norm of clipping, in one pass."""
    if _is_float32(arr):
        return _sum_of_squares_typed[float](0, arr)
    return _sum_of_squares_typed[double](0, arr)


def first_nonfinite(arrays):
    """The index in ``arrays`` (a tuple or list; None entries are skipped) of the first array
    holding NaN or inf, or -1 when all are finite: one call for all the finiteness checks of a
    public function's inputs and results. Each array must be C-contiguous, aligned, native
    float32/float64 (TypeError otherwise)."""
    cdef Py_ssize_t i = 0
    for arr in arrays:
        if arr is not None and not _finite(arr):
            return i
        i += 1
    return -1


# ----------------------------------------------------------------------------- optimizer
cdef void _adam_update(Py_ssize_t n, floating* p, const floating* g, floating* m, floating* v,
                       floating step_size, floating beta1, floating beta2,
                       floating one_minus_b1, floating one_minus_b2, floating eps,
                       floating decay, floating l2) noexcept nogil:
    # The NumPy twin's operations in the same order (and no contraction into FMA, see setup.py),
    # with every scalar rounded once from double as NumPy does, so the two agree bit for bit.
    cdef Py_ssize_t k
    cdef floating grad
    for k in range(n):
        grad = g[k] + l2 * p[k]
        m[k] = beta1 * m[k] + one_minus_b1 * grad
        v[k] = beta2 * v[k] + one_minus_b2 * (grad * grad)
        p[k] = p[k] * decay - (step_size * m[k]) / (_sqrt(v[k]) + eps)


cdef int _finite_scalar(str name, double value, double low, bint low_open, double high,
                        bint high_open) except -1:
    if not ((value > low if low_open else value >= low)
            and (value < high if high_open else value <= high)):
        raise ValueError(f"{name} must be in {'(' if low_open else '['}{low}, {high}"
                         f"{')' if high_open else ']'}, got {value!r}")
    return 0


cdef object _adam_update_typed(floating probe, p, g, m, v, double step_size, double beta1,
                               double beta2, double eps, double decay, double l2):
    cdef int tn = _typenum(probe)
    cdef floating* pp = <floating*>_array(p, "p", tn, ANY, ANY, ANY, ANY, True)
    cdef const floating* gp = <const floating*>_same_shape(g, "g", tn, p, "p")
    cdef floating* mp = <floating*>_same_shape(m, "m", tn, p, "p", True)
    cdef floating* vp = <floating*>_same_shape(v, "v", tn, p, "p", True)
    cdef Py_ssize_t n = cnp.PyArray_SIZE(<cnp.ndarray>p)
    # A NaN or infinite scalar would turn every weight into NaN without a word.
    _finite_scalar("step_size", step_size, 0, False, INFINITY, True)
    _finite_scalar("beta1", beta1, 0, False, 1, True)
    _finite_scalar("beta2", beta2, 0, False, 1, True)
    _finite_scalar("eps", eps, 0, True, INFINITY, True)
    _finite_scalar("decay", decay, -INFINITY, True, INFINITY, True)
    _finite_scalar("l2", l2, 0, False, INFINITY, True)
    with nogil:
        _adam_update(n, pp, gp, mp, vp, <floating>step_size, <floating>beta1, <floating>beta2,
                     <floating>(1 - beta1), <floating>(1 - beta2), <floating>eps,
                     <floating>decay, <floating>l2)


def adam_update(p, g, m, v, double step_size, double beta1, double beta2, double eps,
                double decay, double l2):
    """One Adam step in place on arrays of one shape (any number of axes): m, v are the moment
    estimates; with grad = g + l2 * p (coupled L2 weight decay, l2 = 0 for none),
    m = beta1 m + (1 - beta1) grad, v = beta2 v + (1 - beta2) grad², and
    p = p * decay - step_size * m / (sqrt(v) + eps). ``decay`` is 1 - lr * weight_decay for
    decoupled weight decay (AdamW), else 1. Scalars must be finite (step_size, l2 >= 0,
    betas in [0, 1), eps > 0)."""
    if _is_float32(p):
        _adam_update_typed[float](0, p, g, m, v, step_size, beta1, beta2, eps, decay, l2)
    else:
        _adam_update_typed[double](0, p, g, m, v, step_size, beta1, beta2, eps, decay, l2)
