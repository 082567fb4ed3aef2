# cython: language_level=3
# Directives (boundscheck, wraparound, cdivision, initializedcheck) are set once in setup.py, so
# that RNNREG_DEBUG_BUILD=1 can turn the checks back on for a debug build of this same file.
"""Compiled kernels of rnnreg: LSTM step and sequence, layer norm, dropout.

Each function has a pure-NumPy twin of the same name in ``rnnreg._reference`` (read its module
docstring for the equations and the gate order). The public wrappers in ``rnnreg.functional``
validate shapes, dtypes and values before calling here: these kernels trust their inputs, which are
C-contiguous arrays of one floating dtype, sizes >= 1. float32 and float64 share one source through
the fused type ``floating``; matrix products go to BLAS (``scipy.linalg.cython_blas``); all loops
run without the GIL, and the time loop of a sequence runs here, never in Python.
"""
import numpy as np

from rnnreg import _reference

cimport numpy as cnp
from cpython.pycapsule cimport PyCapsule_GetPointer
from cython cimport floating
from libc.math cimport log, sqrt, sqrtf
from libc.stdint cimport int64_t, uint64_t
from libc.stdlib cimport free, malloc
from libc.string cimport memcpy
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

GATE_ORDER = ("i", "f", "o", "g")
LSTM_LAYER_NORM_PARAMS = ("gamma_x", "beta_x", "gamma_h", "beta_h", "gamma_c", "beta_c")


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


cdef inline void _product(bint trans_a, bint trans_b, Py_ssize_t m, Py_ssize_t n, Py_ssize_t k,
                          const floating* a, Py_ssize_t lda, const floating* b, Py_ssize_t ldb,
                          floating* c, Py_ssize_t ldc, bint accumulate=False) noexcept nogil:
    """Row-major C (m, n) = op(A) @ op(B), or C += op(A) @ op(B) when accumulate is set (not
    with trans_b): plain loops for small products (see SMALL_PRODUCT), BLAS otherwise. lda, ldb,
    ldc are the row strides of A, B, C as stored."""
    if (m <= SMALL_BATCH or m * n * k <= SMALL_PRODUCT) and not (trans_a and trans_b):
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


# ----------------------------------------------------------------------------- arrays
# Entry points reach array data through the NumPy C API rather than typed memoryviews: acquiring a
# memoryview costs ~0.17 µs per argument and np.empty ~0.45 µs per array (measured here), and
# at batch 1 a sequence call passes ~20 arrays — more time than its arithmetic. The wrappers in
# rnnreg.functional validate shapes and values; _data still refuses an array of the wrong kind,
# so that a direct call with bad input raises instead of reading memory it should not.
cnp.import_array()


cdef inline int _typenum(floating probe) noexcept nogil:
    if floating is float:
        return cnp.NPY_FLOAT
    else:
        return cnp.NPY_DOUBLE


cdef void* _data(object arr, int typenum, int ndim, bint writeable=False) except NULL:
    """The data pointer of arr, which must be a C-contiguous ndarray with ndim axes (any number
    when ndim is -1) of the given type (and writeable when asked)."""
    if (not cnp.PyArray_Check(arr)
            or (ndim >= 0 and cnp.PyArray_NDIM(<cnp.ndarray>arr) != ndim)
            or not cnp.PyArray_IS_C_CONTIGUOUS(<cnp.ndarray>arr)
            or cnp.PyArray_TYPE(<cnp.ndarray>arr) != typenum
            or (writeable and not cnp.PyArray_ISWRITEABLE(<cnp.ndarray>arr))):
        raise TypeError(f"kernel argument: expected a C-contiguous{' writeable' if writeable else ''} "
                        f"{np.dtype(cnp.PyArray_TypeObjectFromType(typenum)).name} array with "
                        f"{ndim if ndim >= 0 else 'any number of'} axes, got {type(arr).__name__} "
                        f"{getattr(arr, 'dtype', '')} {getattr(arr, 'shape', '')}")
    return cnp.PyArray_DATA(<cnp.ndarray>arr)


cdef inline void* _ptr(object arr) noexcept:
    """The data pointer of an array this module made itself."""
    return cnp.PyArray_DATA(<cnp.ndarray>arr)


cdef inline cnp.ndarray _empty(int typenum, Py_ssize_t d0, Py_ssize_t d1=-1, Py_ssize_t d2=-1):
    """A new C-ordered array of shape (d0[, d1[, d2]])."""
    cdef cnp.npy_intp dims[3]
    dims[0], dims[1], dims[2] = d0, d1, d2
    return cnp.PyArray_EMPTY(1 if d1 < 0 else (2 if d2 < 0 else 3), dims, typenum, 0)


cdef inline cnp.ndarray _zeros(int typenum, Py_ssize_t d0, Py_ssize_t d1=-1):
    cdef cnp.npy_intp dims[2]
    dims[0], dims[1] = d0, d1
    return cnp.PyArray_ZEROS(1 if d1 < 0 else 2, dims, typenum, 0)


cdef inline bint _is_float32(object arr) except -1:
    """Whether the kernels run arr in float32 (else float64; _data checks which it really is)."""
    return cnp.PyArray_Check(arr) and cnp.PyArray_TYPE(<cnp.ndarray>arr) == cnp.NPY_FLOAT


cdef inline object _as_dtype(cnp.ndarray total, int typenum):
    """A float64 running sum returned in the kernel's dtype (itself when that is float64)."""
    if typenum == cnp.NPY_DOUBLE:
        return total
    return total.astype(np.float32)


# ----------------------------------------------------------------------------- layer norm
cdef object _layer_norm_forward_typed(floating probe, x, gamma, beta, double eps):
    cdef int tn = _typenum(probe)
    cdef const floating* xp = <const floating*>_data(x, tn, 2)
    cdef const floating* gp = <const floating*>_data(gamma, tn, 1)
    cdef const floating* bp = <const floating*>_data(beta, tn, 1)
    cdef Py_ssize_t r, m = x.shape[0], n = x.shape[1]
    out, xhat, rstd = _empty(tn, m, n), _empty(tn, m, n), _empty(tn, m)
    cdef floating* op = <floating*>_ptr(out)
    cdef floating* hp = <floating*>_ptr(xhat)
    cdef floating* rp = <floating*>_ptr(rstd)
    with nogil:
        for r in range(m):
            _ln_row_forward(xp + r * n, n, gp, bp, eps, op + r * n, hp + r * n, rp + r)
    return out, xhat, rstd


def layer_norm_forward(x, gamma, beta, double eps):
    """x (M, F), gamma (F,), beta (F,) -> (out (M, F), xhat (M, F), rstd (M,))."""
    if _is_float32(x):
        return _layer_norm_forward_typed[float](0, x, gamma, beta, eps)
    return _layer_norm_forward_typed[double](0, x, gamma, beta, eps)


cdef object _layer_norm_backward_typed(floating probe, dout, xhat, rstd, gamma):
    cdef int tn = _typenum(probe)
    cdef const floating* dp = <const floating*>_data(dout, tn, 2)
    cdef const floating* hp = <const floating*>_data(xhat, tn, 2)
    cdef const floating* rp = <const floating*>_data(rstd, tn, 1)
    cdef const floating* gp = <const floating*>_data(gamma, tn, 1)
    cdef Py_ssize_t r, m = dout.shape[0], n = dout.shape[1]
    dx = _empty(tn, m, n)
    dgamma, dbeta = _zeros(cnp.NPY_DOUBLE, n), _zeros(cnp.NPY_DOUBLE, n)
    cdef floating* dxp = <floating*>_ptr(dx)
    cdef double* dgp = <double*>_ptr(dgamma)
    cdef double* dbp = <double*>_ptr(dbeta)
    with nogil:
        for r in range(m):
            _ln_row_backward(dp + r * n, hp + r * n, rp[r], gp, n, dxp + r * n, dgp, dbp)
    return dx, _as_dtype(dgamma, tn), _as_dtype(dbeta, tn)


def layer_norm_backward(dout, xhat, rstd, gamma):
    """dout (M, F) -> (dx (M, F), dgamma (F,), dbeta (F,))."""
    if _is_float32(dout):
        return _layer_norm_backward_typed[float](0, dout, xhat, rstd, gamma)
    return _layer_norm_backward_typed[double](0, dout, xhat, rstd, gamma)


# ----------------------------------------------------------------------------- dropout
cdef object _dropout_forward_typed(floating probe, x, double keep_prob, rng):
    # One 64-bit draw serves four elements: element k is kept when 16-bit slice k % 4 (lowest
    # bits first) of draw k // 4 is below `threshold`. The NumPy twin reads the same draws
    # (Generator.integers over the full uint64 range returns next_uint64 unchanged), so both
    # give the same mask for one seed — at a quarter of the generator calls of one draw each.
    cdef int tn = _typenum(probe)
    cdef const floating* xp = <const floating*>_data(x, tn, 1)
    cdef Py_ssize_t n = x.shape[0], k, j
    cdef uint64_t raw, threshold = _reference.dropout_threshold(keep_prob)
    cdef floating scale = <floating>(1.0 / keep_prob)
    out, mask = _empty(tn, n), _empty(tn, n)
    cdef floating* op = <floating*>_ptr(out)
    cdef floating* mp = <floating*>_ptr(mask)
    bit_generator = rng.bit_generator
    cdef bitgen_t* bitgen = <bitgen_t*>PyCapsule_GetPointer(bit_generator.capsule, "BitGenerator")
    with bit_generator.lock, nogil:
        for k in range(0, n, 4):
            raw = bitgen.next_uint64(bitgen.state)
            for j in range(min(4, n - k)):
                if ((raw >> (16 * j)) & 0xFFFF) < threshold:
                    mp[k + j] = scale
                else:
                    mp[k + j] = 0
                op[k + j] = xp[k + j] * mp[k + j]
    return out, mask


def dropout_forward(x, double keep_prob, rng):
    """x (M,) -> (out, mask); draws from ``rng`` (a np.random.Generator) under its lock."""
    if _is_float32(x):
        return _dropout_forward_typed[float](0, x, keep_prob, rng)
    return _dropout_forward_typed[double](0, x, keep_prob, rng)


cdef object _dropout_backward_typed(floating probe, dout, mask):
    cdef int tn = _typenum(probe)
    cdef const floating* dp = <const floating*>_data(dout, tn, 1)
    cdef const floating* mp = <const floating*>_data(mask, tn, 1)
    cdef Py_ssize_t k, n = dout.shape[0]
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


# ----------------------------------------------------------------------------- LSTM forward
# Saved per step for the backward pass, and with layer norm the LN_SAVED arrays too. Row r = n*T+t.
LN_SAVED = ("xhat_x", "rstd_x", "xhat_h", "rstd_h", "xhat_c", "rstd_c")


cdef void _lstm_forward(Py_ssize_t N, Py_ssize_t T, Py_ssize_t D, Py_ssize_t H,
                        const floating* x, const floating* h0, const floating* c0,
                        const floating* Wx, const floating* Wh, const floating* b,
                        const floating** ln, const floating* mask, double eps,
                        floating* xw, floating* hprev, floating* gates, floating* c,
                        floating* tc, floating* h, floating** saved,
                        floating* scratch) noexcept nogil:
    """x (N, T, D); h0, c0, mask (N, H); Wx (D, G); Wh (H, G); b (G,); G = 4H. Writes gates
    (N, T, G) and hprev, c, tc, h (N, T, H); ln: NULL or the LSTM_LAYER_NORM_PARAMS, then saved
    holds the LN_SAVED arrays and xw (N, T, G) receives the normalized input projection (without
    layer norm xw is NULL: the projections are summed in gates). scratch: H values."""
    cdef Py_ssize_t G = 4 * H, n, t, j, row
    cdef bint summed = ln == NULL
    cdef const floating* src
    cdef const floating* c_prev
    cdef floating* a
    cdef floating* dst
    cdef StepWeights recurrent

    # The input projection of every time step in one matrix product — straight into the gate
    # slots when nothing has to be done to it before the recurrent projection is added.
    _product(False, False, N * T, G, D, x, D, Wx, G, gates if summed else xw, G)
    if not summed:
        for row in range(N * T):
            _ln_row_forward(xw + row * G, G, ln[0], ln[1], eps, xw + row * G,
                            saved[0] + row * G, saved[1] + row)
    _step_weights_init(&recurrent, N, H, G, Wh, False)
    for t in range(T):
        # hprev[:, t] = h(t-1) * mask: the recurrent input, kept for dWh in backward.
        for n in range(N):
            src = h0 + n * H if t == 0 else h + (n * T + t - 1) * H
            dst = hprev + (n * T + t) * H
            if mask != NULL:
                for j in range(H):
                    dst[j] = src[j] * mask[n * H + j]
            else:
                memcpy(dst, src, H * sizeof(floating))
        # Recurrent projection, written straight into this step's gate slots (row stride T*G).
        _step_product(&recurrent, N, hprev + t * H, T * H, gates + t * G, T * G, summed)
        for n in range(N):
            row = n * T + t
            a = gates + row * G
            if ln != NULL:
                _ln_row_forward(a, G, ln[2], ln[3], eps, a, saved[2] + row * G, saved[3] + row)
            _gates(a, NULL if summed else xw + row * G, b, H)
            c_prev = c0 + n * H if t == 0 else c + (row - 1) * H
            _cell(a, c_prev, c + row * H, H)
            if ln != NULL:
                _ln_row_forward(c + row * H, H, ln[4], ln[5], eps, scratch, saved[4] + row * H,
                                saved[5] + row)
                _out(scratch, a + 2 * H, tc + row * H, h + row * H, H)
            else:
                _out(c + row * H, a + 2 * H, tc + row * H, h + row * H, H)
    free(recurrent.packed)


cdef object _lstm_forward_typed(floating probe, x, h0, c0, Wx, Wh, b, layer_norm,
                                recurrent_mask, double eps, dict cache):
    cdef int tn = _typenum(probe), k
    cdef const floating* xp = <const floating*>_data(x, tn, 3)
    cdef const floating* h0p = <const floating*>_data(h0, tn, 2)
    cdef const floating* c0p = <const floating*>_data(c0, tn, 2)
    cdef const floating* Wxp = <const floating*>_data(Wx, tn, 2)
    cdef const floating* Whp = <const floating*>_data(Wh, tn, 2)
    cdef const floating* bp = <const floating*>_data(b, tn, 1)
    cdef Py_ssize_t N = x.shape[0], T = x.shape[1], D = x.shape[2], H = h0.shape[1], G = 4 * H
    cdef const floating* ln_params[6]
    cdef floating* saved[6]
    cdef const floating** ln = NULL
    cdef const floating* mask = NULL
    if layer_norm is not None:
        ln = ln_params
        for k, name in enumerate(LSTM_LAYER_NORM_PARAMS):
            ln_params[k] = <const floating*>_data(layer_norm[name], tn, 1)
        # xhat of the input and recurrent projections (N, T, G) and of the cell (N, T, H); each
        # followed by its rstd (N, T)
        for k, (key, width) in enumerate(zip(LN_SAVED, (G, 0, G, 0, H, 0))):
            arr = _empty(tn, N, T, width) if width else _empty(tn, N, T)
            cache[key] = arr
            saved[k] = <floating*>_ptr(arr)
    if recurrent_mask is not None:
        mask = <const floating*>_data(recurrent_mask, tn, 2)
    gates = _empty(tn, N, T, G)
    hprev, c, tc, h = _empty(tn, N, T, H), _empty(tn, N, T, H), _empty(tn, N, T, H), _empty(tn, N, T, H)
    scratch = _empty(tn, H)
    cdef floating* out[6]
    for k, arr in enumerate((hprev, gates, c, tc, h, scratch)):
        out[k] = <floating*>_ptr(arr)
    cdef floating* xw_p = NULL
    if ln != NULL:
        xw = _empty(tn, N, T, G)
        xw_p = <floating*>_ptr(xw)
    with nogil:
        _lstm_forward(N, T, D, H, xp, h0p, c0p, Wxp, Whp, bp, ln, mask, eps,
                      xw_p, out[0], out[1], out[2], out[3], out[4], saved, out[5])
    cache["gates"], cache["hprev"] = gates, hprev
    cache["c"], cache["tc"], cache["h"] = c, tc, h
    return cache


def lstm_forward(x, h0, c0, Wx, Wh, b, layer_norm, recurrent_mask, double eps):
    """Run an LSTM over x (N, T, D) from (h0, c0) (N, H); returns the cache dict whose ``h``
    (N, T, H) is the output and ``c[:, -1]`` the final cell state. ``layer_norm``: None or a dict
    of the LSTM_LAYER_NORM_PARAMS; ``recurrent_mask``: None or (N, H)."""
    cache = dict(x=x, h0=h0, c0=c0, Wx=Wx, Wh=Wh, b=b, layer_norm=layer_norm,
                 recurrent_mask=recurrent_mask, eps=eps)
    if _is_float32(x):
        return _lstm_forward_typed[float](0, x, h0, c0, Wx, Wh, b, layer_norm, recurrent_mask,
                                          eps, cache)
    return _lstm_forward_typed[double](0, x, h0, c0, Wx, Wh, b, layer_norm, recurrent_mask,
                                       eps, cache)


# ----------------------------------------------------------------------------- LSTM backward
cdef void _lstm_backward(Py_ssize_t N, Py_ssize_t T, Py_ssize_t D, Py_ssize_t H,
                         const floating* dh, floating* dh_next, floating* dc_next,
                         const floating* x, const floating* c0, const floating* Wx,
                         const floating* Wh, const floating* hprev, const floating* gates,
                         const floating* c, const floating* tc, const floating* mask,
                         const floating** ln, const floating** saved, floating* row_buf,
                         floating* da, floating* dhw, floating* dxw, floating* dx,
                         floating* dWx, floating* dWh, double* db,
                         double** ln_grads) noexcept nogil:
    """The forward's arrays as in _lstm_forward; dh (N, T, H) in; dh_next (N, H) zeros in,
    dh0 out; dc_next (N, H) the final cell state's gradient in, dc0 out. da (N, T, G) receives
    the gate pre-activation gradients; without layer norm dhw and dxw are da, with it they
    receive the gradients of the recurrent and input projections. db and ln_grads are float64
    sums (zeros in)."""
    cdef Py_ssize_t G = 4 * H, n, t, row, k
    cdef const floating* a
    cdef const floating* c_prev
    cdef floating* da_row
    cdef StepWeights recurrent_t   # Wh^T, for dh(t-1)

    _step_weights_init(&recurrent_t, N, G, H, Wh, True)
    for t in range(T - 1, -1, -1):
        for n in range(N):
            row = n * T + t
            a = gates + row * G
            da_row = da + row * G
            _bwd_out(dh + row * H, dh_next + n * H, a, tc + row * H, da_row, row_buf, H)
            if ln != NULL:
                _ln_row_backward(row_buf, saved[4] + row * H, saved[5][row], ln[4], H, row_buf,
                                 ln_grads[4], ln_grads[5])
            c_prev = c0 + n * H if t == 0 else c + (row - 1) * H
            _bwd_cell(row_buf, dc_next + n * H, a, c_prev, da_row, H)
            if ln != NULL:
                _ln_row_backward(da_row, saved[2] + row * G, saved[3][row], ln[2], G,
                                 dhw + row * G, ln_grads[2], ln_grads[3])
        # dh(t-1) = (dhw(t) @ Wh^T) * mask
        _step_product(&recurrent_t, N, dhw + t * G, T * G, dh_next, H, False)
        if mask != NULL:
            for k in range(N * H):
                dh_next[k] = dh_next[k] * mask[k]
    free(recurrent_t.packed)

    _sum_rows(da, N * T, G, db)
    if ln != NULL:
        for row in range(N * T):
            _ln_row_backward(da + row * G, saved[0] + row * G, saved[1][row], ln[0], G,
                             dxw + row * G, ln_grads[0], ln_grads[1])
    # One matrix product for each weight gradient and for dx, over all time steps at once.
    _product(True, False, D, G, N * T, x, D, dxw, G, dWx, G)
    _product(True, False, H, G, N * T, hprev, H, dhw, G, dWh, G)
    _product(False, True, N * T, D, G, dxw, G, Wx, G, dx, D)


cdef object _lstm_backward_typed(floating probe, dh, dc_final, dict cache):
    cdef int tn = _typenum(probe), k
    x, Wx, Wh = cache["x"], cache["Wx"], cache["Wh"]
    layer_norm, recurrent_mask = cache["layer_norm"], cache["recurrent_mask"]
    cdef Py_ssize_t N = x.shape[0], T = x.shape[1], D = x.shape[2], H = Wh.shape[0], G = 4 * H
    cdef const floating* ln_params[6]
    cdef const floating* saved[6]
    cdef double* ln_grads[6]
    cdef const floating** ln = NULL
    cdef const floating* mask = NULL
    cdef const floating* dhp = <const floating*>_data(dh, tn, 3)
    cdef const floating* xp = <const floating*>_data(x, tn, 3)
    cdef const floating* c0p = <const floating*>_data(cache["c0"], tn, 2)
    cdef const floating* Wxp = <const floating*>_data(Wx, tn, 2)
    cdef const floating* Whp = <const floating*>_data(Wh, tn, 2)
    cdef const floating* hprevp = <const floating*>_data(cache["hprev"], tn, 3)
    cdef const floating* gatesp = <const floating*>_data(cache["gates"], tn, 3)
    cdef const floating* cp = <const floating*>_data(cache["c"], tn, 3)
    cdef const floating* tcp = <const floating*>_data(cache["tc"], tn, 3)
    da = _empty(tn, N, T, G)
    dhw = dxw = da
    ln_acc = {}
    if layer_norm is not None:
        ln = ln_params
        dhw, dxw = _empty(tn, N, T, G), _empty(tn, N, T, G)
        for k, name in enumerate(LSTM_LAYER_NORM_PARAMS):
            ln_params[k] = <const floating*>_data(layer_norm[name], tn, 1)
            ln_acc[name] = _zeros(cnp.NPY_DOUBLE, layer_norm[name].shape[0])
            ln_grads[k] = <double*>_ptr(ln_acc[name])
        for k, key in enumerate(LN_SAVED):
            saved[k] = <const floating*>_data(cache[key], tn, 3 if k % 2 == 0 else 2)
    if recurrent_mask is not None:
        mask = <const floating*>_data(recurrent_mask, tn, 2)
    dc_next = cnp.PyArray_NewCopy(<cnp.ndarray?>dc_final, cnp.NPY_CORDER)
    _data(dc_next, tn, 2)
    dh_next, row_buf = _zeros(tn, N, H), _empty(tn, H)
    dx, dWx, dWh = _empty(tn, N, T, D), _empty(tn, D, G), _empty(tn, H, G)
    db = _zeros(cnp.NPY_DOUBLE, G)
    cdef floating* out[9]
    for k, arr in enumerate((dh_next, dc_next, row_buf, da, dhw, dxw, dx, dWx, dWh)):
        out[k] = <floating*>_ptr(arr)
    cdef double* db_p = <double*>_ptr(db)
    with nogil:
        _lstm_backward(N, T, D, H, dhp, out[0], out[1], xp, c0p, Wxp, Whp, hprevp, gatesp, cp,
                       tcp, mask, ln, saved, out[2], out[3], out[4], out[5], out[6], out[7],
                       out[8], db_p, ln_grads)
    grads = dict(dx=dx, dh0=dh_next, dc0=dc_next, dWx=dWx, dWh=dWh, db=_as_dtype(db, tn))
    for name, total in ln_acc.items():
        grads["d" + name] = _as_dtype(total, tn)
    return grads


def lstm_backward(dh, dc_final, cache):
    """dh (N, T, H): upstream gradient of every output; dc_final (N, H): of the final cell state.
    Returns a dict with dx, dh0, dc0, dWx, dWh, db and, with layer norm, ``d`` + the name of each
    LSTM_LAYER_NORM_PARAMS entry."""
    if _is_float32(dh):
        return _lstm_backward_typed[float](0, dh, dc_final, cache)
    return _lstm_backward_typed[double](0, dh, dc_final, cache)


# ----------------------------------------------------------------------------- LSTM step
# One time step is the sequence kernel with T = 1, wrapped the same way as in the NumPy twin.
lstm_step_forward, lstm_step_backward = _reference._step_functions(lstm_forward, lstm_backward)


# ----------------------------------------------------------------------------- matrix product
cdef object _matmul_typed(floating probe, a, b, bint trans_a, bint trans_b):
    cdef int tn = _typenum(probe)
    cdef const floating* ap = <const floating*>_data(a, tn, 2)
    cdef const floating* bp = <const floating*>_data(b, tn, 2)
    cdef Py_ssize_t m = a.shape[1] if trans_a else a.shape[0]
    cdef Py_ssize_t n = b.shape[0] if trans_b else b.shape[1]
    cdef Py_ssize_t k = a.shape[0] if trans_a else a.shape[1]
    cdef Py_ssize_t lda = a.shape[1], ldb = b.shape[1]
    out = _empty(tn, m, n)
    cdef floating* op = <floating*>_ptr(out)
    with nogil:
        _product(trans_a, trans_b, m, n, k, ap, lda, bp, ldb, op, n)
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
    cdef const floating* lp = <const floating*>_data(logits, tn, 2)
    cdef const int64_t* tp = <const int64_t*>_data(targets, cnp.NPY_INT64, 1)
    cdef Py_ssize_t r, M = logits.shape[0], C = logits.shape[1]
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
def all_finite(arr):
    """Whether every entry of a C-contiguous float32/float64 array is finite (for the wrappers'
    input checks: one vectorized pass, no temporary array)."""
    cdef int ok
    cdef Py_ssize_t n = arr.size
    cdef const float* fp
    cdef const double* dp
    if _is_float32(arr):
        fp = <const float*>_data(arr, cnp.NPY_FLOAT, arr.ndim)
        with nogil:
            ok = rn_all_finite_f(fp, n)
    else:
        dp = <const double*>_data(arr, cnp.NPY_DOUBLE, arr.ndim)
        with nogil:
            ok = rn_all_finite_d(dp, n)
    return ok != 0


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


cdef object _adam_update_typed(floating probe, p, g, m, v, double step_size, double beta1,
                               double beta2, double eps, double decay, double l2):
    cdef int tn = _typenum(probe)
    cdef floating* pp = <floating*>_data(p, tn, -1, True)
    cdef const floating* gp = <const floating*>_data(g, tn, -1)
    cdef floating* mp = <floating*>_data(m, tn, -1, True)
    cdef floating* vp = <floating*>_data(v, tn, -1, True)
    cdef Py_ssize_t n = p.size
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
    decoupled weight decay (AdamW), else 1."""
    if _is_float32(p):
        _adam_update_typed[float](0, p, g, m, v, step_size, beta1, beta2, eps, decay, l2)
    else:
        _adam_update_typed[double](0, p, g, m, v, step_size, beta1, beta2, eps, decay, l2)
