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

from cpython.pycapsule cimport PyCapsule_GetPointer
from cython cimport floating
from libc.math cimport sqrt, sqrtf
from libc.stdint cimport uint64_t
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
    int rn_all_finite_d(const double* x, Py_ssize_t n)
    int rn_all_finite_f(const float* x, Py_ssize_t n)
    void rn_small_gemm_d(Py_ssize_t m, Py_ssize_t n, Py_ssize_t k, const double* A, Py_ssize_t lda,
                         const double* B, Py_ssize_t ldb, double* C, Py_ssize_t ldc)
    void rn_small_gemm_f(Py_ssize_t m, Py_ssize_t n, Py_ssize_t k, const float* A, Py_ssize_t lda,
                         const float* B, Py_ssize_t ldb, float* C, Py_ssize_t ldc)

# Up to this many batch rows, a time step's matrix products run as plain loops: a BLAS call's
# fixed cost is larger than the arithmetic of a few rows (measured: `rnnreg bench`).
cdef enum:
    SMALL_BATCH = 4


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


cdef inline void _step_gemm(int m, int n, int k, const floating* a, int lda, const floating* b,
                            int ldb, floating* c, int ldc) noexcept nogil:
    """C = A @ B for one time step: plain loops for a tiny batch, BLAS otherwise."""
    if m <= SMALL_BATCH:
        if floating is float:
            rn_small_gemm_f(m, n, k, a, lda, b, ldb, c, ldc)
        else:
            rn_small_gemm_d(m, n, k, a, lda, b, ldb, c, ldc)
    else:
        _gemm(False, False, m, n, k, 1, a, lda, b, ldb, 0, c, ldc)


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


cdef inline object _np_dtype(object arr):
    if arr.dtype == np.float32:
        return np.float32
    return np.float64


# ----------------------------------------------------------------------------- layer norm
cdef void _layer_norm_forward(const floating[:, ::1] x, const floating[::1] gamma,
                              const floating[::1] beta, double eps, floating[:, ::1] out,
                              floating[:, ::1] xhat, floating[::1] rstd):
    cdef Py_ssize_t r, m = x.shape[0], n = x.shape[1]
    with nogil:
        for r in range(m):
            _ln_row_forward(&x[r, 0], n, &gamma[0], &beta[0], eps, &out[r, 0], &xhat[r, 0],
                            &rstd[r])


def layer_norm_forward(x, gamma, beta, double eps):
    """x (M, F), gamma (F,), beta (F,) -> (out (M, F), xhat (M, F), rstd (M,))."""
    dtype = _np_dtype(x)
    out = np.empty(x.shape, dtype)
    xhat = np.empty(x.shape, dtype)
    rstd = np.empty(x.shape[0], dtype)
    if dtype is np.float32:
        _layer_norm_forward[float](x, gamma, beta, eps, out, xhat, rstd)
    else:
        _layer_norm_forward[double](x, gamma, beta, eps, out, xhat, rstd)
    return out, xhat, rstd


cdef void _layer_norm_backward(const floating[:, ::1] dout, const floating[:, ::1] xhat,
                               const floating[::1] rstd, const floating[::1] gamma,
                               floating[:, ::1] dx, double[::1] dgamma,
                               double[::1] dbeta):
    cdef Py_ssize_t r, m = dout.shape[0], n = dout.shape[1]
    with nogil:
        for r in range(m):
            _ln_row_backward(&dout[r, 0], &xhat[r, 0], rstd[r], &gamma[0], n, &dx[r, 0],
                             &dgamma[0], &dbeta[0])


def layer_norm_backward(dout, xhat, rstd, gamma):
    """dout (M, F) -> (dx (M, F), dgamma (F,), dbeta (F,))."""
    dtype = _np_dtype(dout)
    dx = np.empty(dout.shape, dtype)
    dgamma = np.zeros(dout.shape[1], np.float64)
    dbeta = np.zeros(dout.shape[1], np.float64)
    if dtype is np.float32:
        _layer_norm_backward[float](dout, xhat, rstd, gamma, dx, dgamma, dbeta)
    else:
        _layer_norm_backward[double](dout, xhat, rstd, gamma, dx, dgamma, dbeta)
    return dx, dgamma.astype(dtype, copy=False), dbeta.astype(dtype, copy=False)


# ----------------------------------------------------------------------------- dropout
cdef void _dropout_forward(const floating[::1] x, double keep_prob, uint64_t threshold,
                           bitgen_t* bitgen, floating[::1] out, floating[::1] mask):
    # One 64-bit draw serves four elements: element k is kept when 16-bit slice k % 4 (lowest
    # bits first) of draw k // 4 is below `threshold`. The NumPy twin reads the same draws
    # (Generator.integers over the full uint64 range returns next_uint64 unchanged), so both
    # give the same mask for one seed — at a quarter of the generator calls of one draw each.
    cdef Py_ssize_t n = x.shape[0], k, j
    cdef uint64_t raw
    cdef floating scale = <floating>(1.0 / keep_prob)
    with nogil:
        for k in range(0, n, 4):
            raw = bitgen.next_uint64(bitgen.state)
            for j in range(min(4, n - k)):
                if ((raw >> (16 * j)) & 0xFFFF) < threshold:
                    mask[k + j] = scale
                else:
                    mask[k + j] = 0
                out[k + j] = x[k + j] * mask[k + j]


def dropout_forward(x, double keep_prob, rng):
    """x (M,) -> (out, mask); draws from ``rng`` (a np.random.Generator) under its lock."""
    dtype = _np_dtype(x)
    out = np.empty(x.shape, dtype)
    mask = np.empty(x.shape, dtype)
    cdef uint64_t threshold = _reference.dropout_threshold(keep_prob)
    bit_generator = rng.bit_generator
    cdef bitgen_t* bitgen = <bitgen_t*>PyCapsule_GetPointer(bit_generator.capsule, "BitGenerator")
    with bit_generator.lock:
        if dtype is np.float32:
            _dropout_forward[float](x, keep_prob, threshold, bitgen, out, mask)
        else:
            _dropout_forward[double](x, keep_prob, threshold, bitgen, out, mask)
    return out, mask


cdef void _multiply(const floating[::1] a, const floating[::1] b, floating[::1] out):
    cdef Py_ssize_t k
    with nogil:
        for k in range(a.shape[0]):
            out[k] = a[k] * b[k]


def dropout_backward(dout, mask):
    """dout (M,), mask (M,) -> dx = dout * mask."""
    dtype = _np_dtype(dout)
    dx = np.empty(dout.shape, dtype)
    if dtype is np.float32:
        _multiply[float](dout, mask, dx)
    else:
        _multiply[double](dout, mask, dx)
    return dx


# ----------------------------------------------------------------------------- LSTM forward
cdef void _lstm_forward(const floating[:, :, ::1] x, const floating[:, ::1] h0,
                        const floating[:, ::1] c0, const floating[:, ::1] Wx,
                        const floating[:, ::1] Wh, const floating[::1] b,
                        const floating* ln_params[6], const floating* mask, double eps,
                        floating[:, :, ::1] xw, floating[:, :, ::1] hprev,
                        floating[:, :, ::1] gates, floating[:, :, ::1] c,
                        floating[:, :, ::1] tc, floating[:, :, ::1] h,
                        floating* xhat_x, floating* rstd_x, floating* xhat_h,
                        floating* rstd_h, floating* xhat_c, floating* rstd_c,
                        floating* scratch) noexcept nogil:
    cdef Py_ssize_t N = x.shape[0], T = x.shape[1], D = x.shape[2], H = h0.shape[1]
    cdef Py_ssize_t G = 4 * H, n, t, j, row
    cdef bint use_ln = ln_params[0] != NULL
    cdef const floating* src
    cdef const floating* c_prev
    cdef floating* a
    cdef floating* c_row
    cdef floating* dst

    # The input projection of every time step in one matrix product.
    _gemm(False, False, <int>(N * T), <int>G, <int>D, 1, &x[0, 0, 0], <int>D, &Wx[0, 0], <int>G,
          0, &xw[0, 0, 0], <int>G)
    if use_ln:
        for row in range(N * T):
            _ln_row_forward(&xw[0, 0, 0] + row * G, G, ln_params[0], ln_params[1], eps,
                            &xw[0, 0, 0] + row * G, xhat_x + row * G, rstd_x + row)
    for t in range(T):
        # hprev[:, t] = h(t-1) * mask: the recurrent input, kept for dWh in backward.
        for n in range(N):
            if t == 0:
                src = &h0[n, 0]
            else:
                src = &h[n, t - 1, 0]
            dst = &hprev[n, t, 0]
            if mask != NULL:
                for j in range(H):
                    dst[j] = src[j] * mask[n * H + j]
            else:
                memcpy(dst, src, H * sizeof(floating))
        # Recurrent projection, written straight into this step's gate slots (row stride T*G).
        _step_gemm(<int>N, <int>G, <int>H, &hprev[0, t, 0], <int>(T * H), &Wh[0, 0], <int>G,
                   &gates[0, t, 0], <int>(T * G))
        for n in range(N):
            row = n * T + t
            a = &gates[n, t, 0]
            if use_ln:
                _ln_row_forward(a, G, ln_params[2], ln_params[3], eps, a, xhat_h + row * G,
                                rstd_h + row)
            _gates(a, &xw[n, t, 0], &b[0], H)
            if t == 0:
                c_prev = &c0[n, 0]
            else:
                c_prev = &c[n, t - 1, 0]
            c_row = &c[n, t, 0]
            _cell(a, c_prev, c_row, H)
            if use_ln:
                _ln_row_forward(c_row, H, ln_params[4], ln_params[5], eps, scratch,
                                xhat_c + row * H, rstd_c + row)
                _out(scratch, a + 2 * H, &tc[n, t, 0], &h[n, t, 0], H)
            else:
                _out(c_row, a + 2 * H, &tc[n, t, 0], &h[n, t, 0], H)


cdef inline floating* _ptr(floating[::1] flat) noexcept nogil:
    return &flat[0]


cdef inline double* _dptr(double[::1] flat) noexcept:
    return &flat[0]


cdef inline const floating* _cptr(const floating[::1] flat) noexcept nogil:
    return &flat[0]


cdef object _lstm_forward_typed(floating probe, x, h0, c0, Wx, Wh, b, layer_norm,
                                recurrent_mask, double eps, dict cache):
    cdef Py_ssize_t N = x.shape[0], T = x.shape[1], H = h0.shape[1], G = 4 * H, k
    cdef const floating* ln_params[6]
    cdef const floating* mask = NULL
    cdef floating* ln_out[6]
    dtype = np.float32 if floating is float else np.float64
    for key in ("xw", "gates"):
        cache[key] = np.empty((N, T, G), dtype)
    for key in ("hprev", "c", "tc", "h"):
        cache[key] = np.empty((N, T, H), dtype)
    for k in range(6):
        ln_params[k] = NULL
        ln_out[k] = NULL
    if layer_norm is not None:
        for k, name in enumerate(LSTM_LAYER_NORM_PARAMS):
            ln_params[k] = _cptr[floating](layer_norm[name])
        shapes = (("xhat_x", (N, T, G)), ("rstd_x", (N, T)), ("xhat_h", (N, T, G)),
                  ("rstd_h", (N, T)), ("xhat_c", (N, T, H)), ("rstd_c", (N, T)))
        for k, (key, shape) in enumerate(shapes):
            cache[key] = np.empty(shape, dtype)
            ln_out[k] = _ptr[floating](cache[key].reshape(-1))
    if recurrent_mask is not None:
        mask = _cptr[floating](recurrent_mask.reshape(-1))
    cdef const floating[:, :, ::1] x_v = x
    cdef const floating[:, ::1] h0_v = h0, c0_v = c0, Wx_v = Wx, Wh_v = Wh
    cdef const floating[::1] b_v = b
    cdef floating[:, :, ::1] xw_v = cache["xw"], hprev_v = cache["hprev"]
    cdef floating[:, :, ::1] gates_v = cache["gates"], c_v = cache["c"]
    cdef floating[:, :, ::1] tc_v = cache["tc"], h_v = cache["h"]
    scratch = np.empty(H, dtype)
    cdef floating* scratch_p = _ptr[floating](scratch)
    with nogil:
        _lstm_forward(x_v, h0_v, c0_v, Wx_v, Wh_v, b_v, ln_params, mask, eps,
                      xw_v, hprev_v, gates_v, c_v, tc_v, h_v,
                      ln_out[0], ln_out[1], ln_out[2], ln_out[3], ln_out[4], ln_out[5], scratch_p)
    return cache


def lstm_forward(x, h0, c0, Wx, Wh, b, layer_norm, recurrent_mask, double eps):
    """Run an LSTM over x (N, T, D) from (h0, c0) (N, H); returns the cache dict whose ``h``
    (N, T, H) is the output and ``c[:, -1]`` the final cell state. ``layer_norm``: None or a dict
    of the LSTM_LAYER_NORM_PARAMS; ``recurrent_mask``: None or (N, H)."""
    cache = dict(x=x, h0=h0, c0=c0, Wx=Wx, Wh=Wh, b=b, layer_norm=layer_norm,
                 recurrent_mask=recurrent_mask, eps=eps)
    if _np_dtype(x) is np.float32:
        return _lstm_forward_typed[float](0, x, h0, c0, Wx, Wh, b, layer_norm, recurrent_mask,
                                          eps, cache)
    return _lstm_forward_typed[double](0, x, h0, c0, Wx, Wh, b, layer_norm, recurrent_mask,
                                       eps, cache)


# ----------------------------------------------------------------------------- LSTM backward
cdef void _lstm_backward(const floating[:, :, ::1] dh, floating[:, ::1] dh_next,
                         floating[:, ::1] dc_next, const floating[:, :, ::1] x,
                         const floating[:, ::1] c0, const floating[:, ::1] Wx,
                         const floating[:, ::1] Wh, const floating[:, :, ::1] hprev,
                         const floating[:, :, ::1] gates, const floating[:, :, ::1] c,
                         const floating[:, :, ::1] tc, const floating* mask,
                         const floating* ln_params[6], const floating* xhat_x,
                         const floating* rstd_x, const floating* xhat_h,
                         const floating* rstd_h, const floating* xhat_c,
                         const floating* rstd_c, floating* row_buf,
                         floating[:, :, ::1] da, floating* dhw, floating* dxw,
                         floating[:, :, ::1] dx, floating[:, ::1] dWx, floating[:, ::1] dWh,
                         double* db, double* ln_grads[6], const floating* WhT) noexcept nogil:
    cdef Py_ssize_t N = x.shape[0], T = x.shape[1], D = x.shape[2], H = Wh.shape[0]
    cdef Py_ssize_t G = 4 * H, n, t, row, k
    cdef bint use_ln = ln_params[0] != NULL
    cdef const floating* a
    cdef const floating* tc_row
    cdef const floating* c_prev
    cdef floating* da_row
    cdef floating* dhn
    cdef floating* dcn
    cdef floating* da0 = &da[0, 0, 0]

    for t in range(T - 1, -1, -1):
        for n in range(N):
            row = n * T + t
            a = &gates[n, t, 0]
            tc_row = &tc[n, t, 0]
            da_row = &da[n, t, 0]
            dhn = &dh_next[n, 0]
            dcn = &dc_next[n, 0]
            _bwd_out(&dh[n, t, 0], dhn, a, tc_row, da_row, row_buf, H)
            if use_ln:
                _ln_row_backward(row_buf, xhat_c + row * H, rstd_c[row], ln_params[4], H, row_buf,
                                 ln_grads[4], ln_grads[5])
            if t == 0:
                c_prev = &c0[n, 0]
            else:
                c_prev = &c[n, t - 1, 0]
            _bwd_cell(row_buf, dcn, a, c_prev, da_row, H)
            if use_ln:
                _ln_row_backward(da_row, xhat_h + row * G, rstd_h[row], ln_params[2], G,
                                 dhw + row * G, ln_grads[2], ln_grads[3])
        # dh(t-1) = (dhw(t) @ Wh^T) * mask; WhT is Wh transposed once, for the small-batch loops
        if N <= SMALL_BATCH:
            _step_gemm(<int>N, <int>H, <int>G, dhw + t * G, <int>(T * G), WhT, <int>H,
                       &dh_next[0, 0], <int>H)
        else:
            _gemm(False, True, <int>N, <int>H, <int>G, 1, dhw + t * G, <int>(T * G), &Wh[0, 0],
                  <int>G, 0, &dh_next[0, 0], <int>H)
        if mask != NULL:
            dhn = &dh_next[0, 0]
            for k in range(N * H):
                dhn[k] = dhn[k] * mask[k]

    _sum_rows(da0, N * T, G, db)
    if use_ln:
        for row in range(N * T):
            _ln_row_backward(da0 + row * G, xhat_x + row * G, rstd_x[row], ln_params[0], G,
                             dxw + row * G, ln_grads[0], ln_grads[1])
    # One matrix product for each weight gradient and for dx, over all time steps at once.
    _gemm(True, False, <int>D, <int>G, <int>(N * T), 1, &x[0, 0, 0], <int>D, dxw, <int>G,
          0, &dWx[0, 0], <int>G)
    _gemm(True, False, <int>H, <int>G, <int>(N * T), 1, &hprev[0, 0, 0], <int>H, dhw, <int>G,
          0, &dWh[0, 0], <int>G)
    _gemm(False, True, <int>(N * T), <int>D, <int>G, 1, dxw, <int>G, &Wx[0, 0], <int>G,
          0, &dx[0, 0, 0], <int>D)


cdef object _lstm_backward_typed(floating probe, dh, dc_final, dict cache):
    x, Wx, Wh = cache["x"], cache["Wx"], cache["Wh"]
    layer_norm, recurrent_mask = cache["layer_norm"], cache["recurrent_mask"]
    cdef Py_ssize_t N = x.shape[0], T = x.shape[1], D = x.shape[2], H = Wh.shape[0], G = 4 * H, k
    dtype = np.float32 if floating is float else np.float64
    cdef const floating* ln_params[6]
    cdef const floating* ln_saved[6]
    cdef double* ln_grads[6]
    cdef const floating* mask = NULL
    for k in range(6):
        ln_params[k] = NULL
        ln_saved[k] = NULL
        ln_grads[k] = NULL
    da = np.empty((N, T, G), dtype)
    dhw = da
    dxw = da
    ln_acc = {}
    if layer_norm is not None:
        dhw = np.empty((N, T, G), dtype)
        dxw = np.empty((N, T, G), dtype)
        for k, name in enumerate(LSTM_LAYER_NORM_PARAMS):
            ln_params[k] = _cptr[floating](layer_norm[name])
            ln_acc[name] = np.zeros(layer_norm[name].shape[0], np.float64)
            ln_grads[k] = _dptr(ln_acc[name])
        for k, key in enumerate(("xhat_x", "rstd_x", "xhat_h", "rstd_h", "xhat_c", "rstd_c")):
            ln_saved[k] = _cptr[floating](cache[key].reshape(-1))
    if recurrent_mask is not None:
        mask = _cptr[floating](recurrent_mask.reshape(-1))
    dh_next = np.zeros((N, H), dtype)
    dc_next = np.array(dc_final, dtype=dtype, order="C", copy=True)
    row_buf = np.empty(H, dtype)
    dx = np.empty((N, T, D), dtype)
    dWx = np.empty((D, G), dtype)
    dWh = np.empty((H, G), dtype)
    db = np.zeros(G, np.float64)

    cdef const floating[:, :, ::1] dh_v = dh, x_v = x, hprev_v = cache["hprev"]
    cdef const floating[:, :, ::1] gates_v = cache["gates"], c_v = cache["c"], tc_v = cache["tc"]
    cdef const floating[:, ::1] c0_v = cache["c0"], Wx_v = Wx, Wh_v = Wh
    cdef floating[:, ::1] dh_next_v = dh_next, dc_next_v = dc_next, dWx_v = dWx, dWh_v = dWh
    cdef floating[:, :, ::1] da_v = da, dx_v = dx
    cdef floating* dhw_p = _ptr[floating](dhw.reshape(-1))
    cdef floating* dxw_p = _ptr[floating](dxw.reshape(-1))
    cdef floating* row_buf_p = _ptr[floating](row_buf)
    cdef double* db_p = _dptr(db)
    WhT = np.ascontiguousarray(Wh.T) if N <= SMALL_BATCH else Wh
    cdef const floating* WhT_p = _cptr[floating](WhT.reshape(-1))
    with nogil:
        _lstm_backward(dh_v, dh_next_v, dc_next_v, x_v, c0_v, Wx_v, Wh_v, hprev_v, gates_v, c_v,
                       tc_v, mask, ln_params, ln_saved[0], ln_saved[1], ln_saved[2], ln_saved[3],
                       ln_saved[4], ln_saved[5], row_buf_p, da_v, dhw_p, dxw_p, dx_v, dWx_v,
                       dWh_v, db_p, ln_grads, WhT_p)
    grads = dict(dx=dx, dh0=dh_next, dc0=dc_next, dWx=dWx, dWh=dWh, db=db.astype(dtype))
    for name, total in ln_acc.items():
        grads["d" + name] = total.astype(dtype)
    return grads


def lstm_backward(dh, dc_final, cache):
    """dh (N, T, H): upstream gradient of every output; dc_final (N, H): of the final cell state.
    Returns a dict with dx, dh0, dc0, dWx, dWh, db and, with layer norm, ``d`` + the name of each
    LSTM_LAYER_NORM_PARAMS entry."""
    if _np_dtype(dh) is np.float32:
        return _lstm_backward_typed[float](0, dh, dc_final, cache)
    return _lstm_backward_typed[double](0, dh, dc_final, cache)


# ----------------------------------------------------------------------------- LSTM step
def lstm_step_forward(x, prev_h, prev_c, Wx, Wh, b):
    """One time step: x (N, D) -> (next_h, next_c, cache); the sequence kernel with T = 1."""
    cache = lstm_forward(x[:, None, :], prev_h, prev_c, Wx, Wh, b, None, None, 1e-5)
    return cache["h"][:, 0], cache["c"][:, 0], cache


def lstm_step_backward(dnext_h, dnext_c, cache):
    """-> (dx, dprev_h, dprev_c, dWx, dWh, db) for one step."""
    grads = lstm_backward(dnext_h[:, None, :], dnext_c, cache)
    return grads["dx"][:, 0], grads["dh0"], grads["dc0"], grads["dWx"], grads["dWh"], grads["db"]


# ----------------------------------------------------------------------------- matrix product
cdef void _matmul(bint trans_a, bint trans_b, const floating[:, ::1] a, const floating[:, ::1] b,
                  floating[:, ::1] out):
    cdef int m = out.shape[0], n = out.shape[1]
    cdef int k = a.shape[0] if trans_a else a.shape[1]
    with nogil:
        _gemm(trans_a, trans_b, m, n, k, 1, &a[0, 0], <int>a.shape[1], &b[0, 0], <int>b.shape[1],
              0, &out[0, 0], n)


def matmul(a, b, bint trans_a=False, bint trans_b=False):
    """op(a) @ op(b) with op = transpose when asked, on the BLAS the LSTM kernels use — so that a
    whole training step runs on one BLAS thread pool (NumPy and SciPy each bring their own
    OpenBLAS, and two pools spinning on the same cores slow each other down)."""
    m = a.shape[1] if trans_a else a.shape[0]
    n = b.shape[0] if trans_b else b.shape[1]
    dtype = _np_dtype(a)
    out = np.empty((m, n), dtype)
    if dtype is np.float32:
        _matmul[float](trans_a, trans_b, a, b, out)
    else:
        _matmul[double](trans_a, trans_b, a, b, out)
    return out


# ----------------------------------------------------------------------------- validation helper
def all_finite(arr):
    """Whether every entry of a C-contiguous float32/float64 array is finite (for the wrappers'
    input checks: one vectorized pass, no temporary array)."""
    cdef const double[::1] d
    cdef const float[::1] f
    cdef int ok
    flat = arr.reshape(-1)
    if arr.dtype == np.float32:
        f = flat
        with nogil:
            ok = rn_all_finite_f(&f[0], f.shape[0])
    else:
        d = flat
        with nogil:
            ok = rn_all_finite_d(&d[0], d.shape[0])
    return ok != 0


# ----------------------------------------------------------------------------- optimizer
cdef void _adam_update(floating[::1] p, const floating[::1] g, floating[::1] m, floating[::1] v,
                       floating step_size, floating beta1, floating beta2,
                       floating one_minus_b1, floating one_minus_b2, floating eps,
                       floating decay) noexcept nogil:
    # The NumPy twin's operations in the same order (and no contraction into FMA, see setup.py),
    # with every scalar rounded once from double as NumPy does, so the two agree bit for bit.
    cdef Py_ssize_t k
    for k in range(p.shape[0]):
        m[k] = beta1 * m[k] + one_minus_b1 * g[k]
        v[k] = beta2 * v[k] + one_minus_b2 * (g[k] * g[k])
        p[k] = p[k] * decay - (step_size * m[k]) / (_sqrt(v[k]) + eps)


def adam_update(p, g, m, v, double step_size, double beta1, double beta2, double eps,
                double decay):
    """One Adam step on flat arrays, in place: m, v are the moment estimates;
    p = p * decay - step_size * m / (sqrt(v) + eps). ``decay`` is 1 - lr * weight_decay for
    decoupled weight decay (AdamW), else 1."""
    cdef double[::1] pd, md, vd
    cdef const double[::1] gd
    cdef float[::1] pf, mf, vf
    cdef const float[::1] gf
    if p.dtype == np.float32:
        pf, gf, mf, vf = p, g, m, v
        with nogil:
            _adam_update[float](pf, gf, mf, vf, <float>step_size, <float>beta1, <float>beta2,
                                <float>(1 - beta1), <float>(1 - beta2), <float>eps, <float>decay)
    else:
        pd, gd, md, vd = p, g, m, v
        with nogil:
            _adam_update[double](pd, gd, md, vd, step_size, beta1, beta2, 1 - beta1, 1 - beta2,
                                 eps, decay)
